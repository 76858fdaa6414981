//! Processes spawned by other threads while ndstore writes an HDF5 file: a child that inherits a
//! descriptor of the temporary file libhdf5 writes must not keep a lock that refuses readers of
//! the published file.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use ndstore_core::{Backend, DType, DTypeKind, DynArray, SaveOptions};
use ndstore_hdf5::Hdf5Backend;

/// Saves and loads a file many times while another thread keeps spawning short-lived children;
/// every load must succeed.
#[test]
fn children_spawned_during_saves_never_lock_readers_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.h5");
    let stop = AtomicBool::new(false);
    let array = DynArray::from(ArrayD::from_shape_fn(vec![64, 64], |i| {
        (i[0] * 64 + i[1]) as f64
    }));
    let failures = std::thread::scope(|scope| {
        let spawner = scope.spawn(|| {
            let mut spawned = 0u32;
            let mut children = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A child that lives a while holds whatever it inherited for that long.
                let child = Command::new("sleep")
                    .arg("0.2")
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap();
                children.push(child);
                children.retain_mut(|child| child.try_wait().unwrap().is_none());
                spawned += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            for mut child in children {
                child.wait().unwrap();
            }
            spawned
        });
        let mut failures = Vec::new();
        let start = Instant::now();
        let mut rounds = 0usize;
        while start.elapsed() < Duration::from_secs(8) {
            // Each of the three ways to publish a file through a temporary, in turn.
            let saved = match rounds % 3 {
                0 => Hdf5Backend.save(&path, &array, &SaveOptions::default()),
                1 => ndstore_hdf5::add_dataset(&path, "other", &array, &SaveOptions::default()),
                _ => Hdf5Backend
                    .writer(
                        &path,
                        DType::native(DTypeKind::F64),
                        &[64],
                        &SaveOptions::default(),
                    )
                    .and_then(|mut writer| {
                        writer.append(&array)?;
                        writer.commit()
                    }),
            };
            if let Err(e) = saved {
                failures.push((rounds, format!("round {rounds}, save: {e}")));
            }
            if let Err(e) = Hdf5Backend.load(&path) {
                failures.push((rounds, format!("round {rounds}, load: {e}")));
            }
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let spawned = spawner.join().unwrap();
        assert!(
            spawned > 10 && rounds > 10,
            "{spawned} children, {rounds} rounds"
        );
        failures
    });
    let kinds = ["save", "add_dataset", "writer"];
    let tally: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let n = failures.iter().filter(|(round, _)| round % 3 == k).count();
            format!("{kind}: {n}")
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures by the round's way of saving ({}), first: {}",
        failures.len(),
        tally.join(", "),
        failures[0].1
    );
}

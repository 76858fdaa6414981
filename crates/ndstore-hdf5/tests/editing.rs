//! Editing files in place and adding datasets: `H5InPlace::sync` fsyncs libhdf5's own
//! descriptor and a failed sync poisons the handle, whose close then fails in every durability
//! mode (strace injects the failure and shows which descriptor was synced); `add_dataset` in two
//! processes at once loses no dataset, and refuses to copy a file an in-place writer holds.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use ndarray::{ArrayD, IxDyn};
use ndstore_core::{Durability, Durable, DynArray, ErrorKind, InPlaceArray, SaveOptions};
use ndstore_hdf5::H5InPlace;

use common::{lines_of, serial};

fn values(seed: i64) -> DynArray {
    DynArray::from(ArrayD::from_shape_fn(IxDyn(&[64, 8]), |i| {
        seed * 1000 + (i[0] * 8 + i[1]) as i64
    }))
}

/// The words a result is reported in: `ok`, or `err <kind>`.
fn word(result: &ndstore_core::Result<()>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err {:?}", e.kind()),
    }
}

/// Waits for `GO` on standard input.
fn wait_for_go() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "GO");
}

/// The children's entry point: does nothing unless this binary was started as a child.
#[test]
fn child_entry() {
    let Some((task, args)) = common::child_task() else {
        return;
    };
    let path = PathBuf::from(&args[0]);
    match task.as_str() {
        // Writes new values in place, then (once traced) syncs twice and closes.
        "poison" => {
            let durability = if args[1] == "flushed" {
                Durability::Flushed
            } else {
                Durability::Synced
            };
            let mut handle = H5InPlace::open(&path, "data", durability).unwrap();
            handle.write_all(&values(2)).unwrap();
            println!("READY");
            wait_for_go();
            println!("SYNC1 {}", word(&handle.sync()));
            println!("SYNC2 {}", word(&handle.sync()));
            println!("CLOSE {}", word(&Box::new(handle).close()));
        }
        // Opens the file in place, then (once its path names another file) syncs.
        "sync-after-replace" => {
            let mut handle = H5InPlace::open(&path, "data", Durability::Synced).unwrap();
            handle.write_all(&values(3)).unwrap();
            println!("READY");
            wait_for_go();
            println!("SYNC {}", word(&handle.sync()));
            println!("CLOSE {}", word(&Box::new(handle).close()));
        }
        // Adds `count` datasets named `<prefix><i>`.
        "add" => {
            let count: i64 = args[2].parse().unwrap();
            for i in 0..count {
                let name = format!("/{}{i}", args[1]);
                let result =
                    ndstore_hdf5::add_dataset(&path, &name, &values(i), &SaveOptions::default());
                println!("ADD {name} {}", word(&result));
            }
        }
        other => panic!("unknown child task {other}"),
    }
}

/// A child doing `task`, with its standard input and output piped, and its output lines.
fn spawn_child(task: &str, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = common::child_command(task, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    (child, lines)
}

/// The next line containing `word`, from `word` on; fails after two minutes.
fn expect(lines: &Receiver<String>, word: &str) -> String {
    common::next_line_with(lines, &[word], Duration::from_secs(120), word)
}

/// Whether strace can run here; a note when it cannot (and a failure when the oracles are
/// required, as `cargo xtask test` requires them).
fn strace_or_skip() -> bool {
    let works = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_none(),
            "strace is required (apt-get install strace)"
        );
        eprintln!("not run: strace is missing");
    }
    works
}

/// Attaches strace with `args` to `child`, waits until it is attached, then tells the child
/// to go on.
fn trace(child: &mut Child, args: &[&str]) -> Child {
    let mut tracer = Command::new("strace")
        .args(["-f", "-p", &child.id().to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let traced = lines_of(tracer.stderr.take().unwrap());
    expect(&traced, "attached");
    child.stdin.take().unwrap().write_all(b"GO\n").unwrap();
    tracer
}

fn saved(dir: &Path) -> PathBuf {
    let path = dir.join("edit.h5");
    ndstore_hdf5::save_dyn(&path, "data", &values(1), &SaveOptions::default()).unwrap();
    path
}

#[test]
fn a_failed_sync_poisons_the_handle_and_close_fails_in_every_durability_mode() {
    let _serial = serial();
    if !strace_or_skip() {
        return;
    }
    for mode in ["synced", "flushed"] {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path());
        let (mut child, lines) = spawn_child("poison", &[path.to_str().unwrap(), mode]);
        expect(&lines, "READY");
        let mut tracer = trace(
            &mut child,
            &[
                "-o",
                "/dev/null",
                "-e",
                "trace=fsync",
                "-e",
                "inject=fsync:error=EIO:when=1",
            ],
        );
        let reports = [
            expect(&lines, "SYNC1"),
            expect(&lines, "SYNC2"),
            expect(&lines, "CLOSE"),
        ];
        assert!(child.wait().unwrap().success());
        let _ = tracer.wait();
        assert_eq!(
            reports,
            ["SYNC1 err Io", "SYNC2 err Poisoned", "CLOSE err Poisoned"],
            "{mode}"
        );
    }
}

#[test]
fn sync_fsyncs_libhdf5s_own_descriptor_even_after_the_path_was_replaced() {
    let _serial = serial();
    if !strace_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let real = path.canonicalize().unwrap();
    let (mut child, lines) = spawn_child("sync-after-replace", &[path.to_str().unwrap()]);
    expect(&lines, "READY");
    // Another version is saved over the path while the handle is open (atomic saves take no
    // lock): the handle's file is now unlinked.
    ndstore_hdf5::save_dyn(&path, "data", &values(9), &SaveOptions::default()).unwrap();
    let log = dir.path().join("sync.strace");
    let mut tracer = trace(
        &mut child,
        &[
            "-y",
            "-o",
            log.to_str().unwrap(),
            "-e",
            "trace=fsync,open,openat",
        ],
    );
    assert_eq!(expect(&lines, "SYNC"), "SYNC ok");
    assert_eq!(expect(&lines, "CLOSE"), "CLOSE ok");
    assert!(child.wait().unwrap().success());
    let _ = tracer.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let fsyncs: Vec<&str> = text.lines().filter(|l| l.contains("fsync(")).collect();
    assert!(!fsyncs.is_empty(), "no fsync was traced:\n{text}");
    // strace -y names the descriptor's file, "(deleted)" once it has no name.
    for line in &fsyncs {
        assert!(
            line.contains(real.to_str().unwrap()) && line.contains("(deleted)"),
            "sync fsynced another descriptor than the handle's own:\n{text}"
        );
    }
    let reopened: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("open") && l.contains(real.to_str().unwrap()))
        .collect();
    assert!(reopened.is_empty(), "sync opened the path again:\n{text}");
}

#[test]
fn two_processes_adding_datasets_at_once_lose_none() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let per_child = 25;
    let count = per_child.to_string();
    let (mut a, a_lines) = spawn_child("add", &[path.to_str().unwrap(), "a", &count]);
    let (mut b, b_lines) = spawn_child("add", &[path.to_str().unwrap(), "b", &count]);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    for (name, lines) in [("a", a_lines), ("b", b_lines)] {
        // Every line, up to the end of the child's output (the reader thread may still be
        // passing the last ones on when the child has exited).
        let reports: Vec<String> = lines.iter().filter(|l| l.contains("ADD ")).collect();
        assert_eq!(reports.len(), per_child, "{name}: {reports:?}");
        assert!(
            reports.iter().all(|r| r.ends_with(" ok")),
            "{name}: {reports:?}"
        );
    }
    let names = common::dataset_names(&path);
    let mut expected: Vec<String> = (0..per_child)
        .flat_map(|i| [format!("/a{i}"), format!("/b{i}")])
        .chain(["/data".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(names, expected, "datasets were lost");
    for i in [0, per_child as i64 - 1] {
        let (_, a) = ndstore_hdf5::load_dyn(&path, &format!("/a{i}")).unwrap();
        assert!(a.bit_eq(&values(i)));
    }
}

#[test]
fn adding_a_dataset_beside_an_in_place_writer_is_refused_and_the_writer_keeps_its_data() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut handle = H5InPlace::open(&path, "data", Durability::Synced).unwrap();
    handle.write_all(&values(5)).unwrap();
    let err = ndstore_hdf5::add_dataset(&path, "/other", &values(6), &SaveOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    handle.write_all(&values(7)).unwrap();
    Box::new(handle).close().unwrap();
    let (_, data) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
    assert!(data.bit_eq(&values(7)), "the writer's last values are lost");
    // Once the writer is gone, the addition goes through.
    ndstore_hdf5::add_dataset(&path, "/other", &values(6), &SaveOptions::default()).unwrap();
    assert!(
        ndstore_hdf5::load_dyn(&path, "/other")
            .unwrap()
            .1
            .bit_eq(&values(6))
    );
    assert!(
        ndstore_hdf5::load_dyn(&path, "data")
            .unwrap()
            .1
            .bit_eq(&values(7))
    );
}

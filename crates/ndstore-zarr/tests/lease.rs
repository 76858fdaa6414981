//! The writer lease of arrays in object storage, against object_store's `InMemory` (its
//! conditional puts are atomic, so the races are meaningful here): a second writer is refused
//! before it writes a chunk, so of racing writers exactly one array lands, whole; a killed
//! writer's lease is taken over once it expired; a writer whose lease was taken over cannot
//! commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{bits, load, sample};
use ndstore_core::{DType, DTypeKind, DynArray, ErrorKind, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{ObjectStoreExt, PutPayload};
use ndstore_zarr::{ObjectTarget, ZarrArray, save_object};

const SHAPE: [usize; 2] = [8, 8];

fn meta() -> ZarrMeta {
    ZarrMeta::new(DType::native(DTypeKind::F64), &SHAPE, &[4, 4]).unwrap()
}

fn options() -> SaveOptions {
    SaveOptions::default()
}

/// Writes `bytes` as the lease object of the array at `prefix`, unconditionally (a lease of
/// a writer this test plays).
fn plant_lease(target: &ObjectTarget, prefix: &str, bytes: String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let location = Path::from(format!("{prefix}/.ndstore-lease"));
    runtime
        .block_on(
            target
                .store()
                .put(&location, PutPayload::from(bytes.into_bytes())),
        )
        .unwrap();
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn a_second_writer_is_refused_before_it_writes_a_chunk() {
    let target = ObjectTarget::in_memory("a.zarr").unwrap();
    let old = sample(&SHAPE, 1);
    save_object(&target, &old, meta(), &options()).unwrap();
    // Opened before the first writer claims the lease, and after.
    let early = ZarrArray::open_object(&target, &options()).unwrap();
    let first = ZarrArray::open_object(&target, &options()).unwrap();
    let block = sample(&[4, 4], 2);
    first.write_region(&[0, 0], &block).unwrap();
    let late = ZarrArray::open_object(&target, &options()).unwrap();
    for second in [&early, &late] {
        let err = second
            .write_region(&[4, 4], &sample(&[4, 4], 3))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    }
    // The writer that found the lease held is told when it expires, should its holder have died.
    let err = late.write_region(&[4, 4], &sample(&[4, 4], 3)).unwrap_err();
    assert!(
        err.to_string().contains(" s, when the lease expires"),
        "{err}"
    );
    first.write_metadata().unwrap();
    let mut expected = bits(&old);
    expected
        .slice_mut(ndarray::s![0..4, 0..4])
        .assign(&bits(&block));
    assert_eq!(bits(&load(&target).unwrap()), expected);
    // The early writer opened before the first one's claim, so it stays refused after that
    // writer released the lease: the array may have changed under it.
    let err = early.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(
        err.to_string().contains("another writer committed"),
        "{err}"
    );
    // A writer that opens now goes through.
    let after = ZarrArray::open_object(&target, &options()).unwrap();
    after.write_region(&[4, 4], &sample(&[4, 4], 4)).unwrap();
    after.write_metadata().unwrap();
}

/// Runs `racers` threads that each save their own version at `target` (opened or created at
/// once, then released together), and returns the results and the versions.
fn race(target: &ObjectTarget, racers: u64) -> (Vec<ndstore_core::Result<()>>, Vec<DynArray>) {
    let versions: Vec<DynArray> = (0..racers).map(|i| sample(&SHAPE, 100 + i)).collect();
    let barrier = Arc::new(Barrier::new(racers as usize));
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = versions
            .iter()
            .map(|values| {
                let (target, barrier) = (target.clone(), barrier.clone());
                scope.spawn(move || {
                    let array = ZarrArray::create_object(&target, meta(), &options());
                    barrier.wait();
                    let array = array?;
                    array
                        .write_region(&[0, 0], values)
                        .and_then(|()| array.write_metadata())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (results, versions)
}

/// Exactly one racer won, the others were refused with `Locked`, and the array is the
/// winner's, whole: the losers wrote no chunk.
fn one_whole_winner(
    target: &ObjectTarget,
    results: &[ndstore_core::Result<()>],
    versions: &[DynArray],
) {
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
    assert_eq!(
        bits(&load(target).unwrap()),
        bits(&versions[winners[0]]),
        "the array is not the winner's whole"
    );
}

#[test]
fn of_racing_writers_of_a_new_array_one_lands_whole() {
    for round in 0..20 {
        let target = ObjectTarget::in_memory(&format!("new-{round}.zarr")).unwrap();
        let (results, versions) = race(&target, 6);
        one_whole_winner(&target, &results, &versions);
    }
}

#[test]
fn of_racing_writers_of_an_existing_array_one_lands_whole() {
    for round in 0..20 {
        let target = ObjectTarget::in_memory(&format!("old-{round}.zarr")).unwrap();
        save_object(&target, &sample(&SHAPE, 1), meta(), &options()).unwrap();
        let (results, versions) = race(&target, 6);
        one_whole_winner(&target, &results, &versions);
    }
}

#[test]
fn a_killed_writers_lease_blocks_until_it_expires_then_is_taken_over() {
    let base = ObjectTarget::in_memory("k.zarr").unwrap();
    save_object(&base, &sample(&SHAPE, 1), meta(), &options()).unwrap();
    // A writer killed after its first chunk: it never releases its lease.
    for (duration, refused) in [(Duration::from_secs(3600), true), (Duration::ZERO, false)] {
        let target = base.clone().with_lease_duration(duration);
        let killed = ZarrArray::open_object(&target, &options()).unwrap();
        killed.write_region(&[0, 0], &sample(&[4, 4], 2)).unwrap();
        std::mem::forget(killed);
        let next = sample(&SHAPE, 3);
        let saved = save_object(&target, &next, meta(), &options());
        if refused {
            let err = saved.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
            assert!(
                err.to_string().contains("holds this array's lease"),
                "{err}"
            );
            // Free the array for the next round, as the lease's expiry would.
            plant_lease(
                &base,
                "k.zarr",
                r#"{"owner":"x","expires_ms":null}"#.to_owned(),
            );
        } else {
            saved.unwrap();
            assert_eq!(bits(&load(&target).unwrap()), bits(&next));
        }
    }
}

#[test]
fn a_lease_object_written_by_another_program_is_judged_by_its_expiry() {
    let target = ObjectTarget::in_memory("p.zarr").unwrap();
    let live = format!(
        r#"{{"owner":"other","expires_ms":{}}}"#,
        now_ms() + 3_600_000
    );
    plant_lease(&target, "p.zarr", live);
    let err = save_object(&target, &sample(&SHAPE, 1), meta(), &options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert_eq!(load(&target).unwrap_err().kind(), ErrorKind::NotFound);
    plant_lease(
        &target,
        "p.zarr",
        r#"{"owner":"other","expires_ms":1}"#.to_owned(),
    );
    save_object(&target, &sample(&SHAPE, 1), meta(), &options()).unwrap();
}

#[test]
fn a_writer_whose_lease_was_taken_over_cannot_commit() {
    let target = ObjectTarget::in_memory("t.zarr").unwrap();
    let old = sample(&SHAPE, 1);
    save_object(&target, &old, meta(), &options()).unwrap();
    let writer = ZarrArray::open_object(&target, &options()).unwrap();
    writer.write_region(&[0, 0], &sample(&SHAPE, 2)).unwrap();
    // Another writer takes the lease over (as after an expiry).
    let taken = format!(
        r#"{{"owner":"taker","expires_ms":{}}}"#,
        now_ms() + 3_600_000
    );
    plant_lease(&target, "t.zarr", taken);
    let err = writer.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(err.to_string().contains("took it over"), "{err}");
}

#[test]
fn a_dropped_writer_releases_its_lease() {
    let target = ObjectTarget::in_memory("d.zarr").unwrap();
    save_object(&target, &sample(&SHAPE, 1), meta(), &options()).unwrap();
    let writer = ZarrArray::open_object(&target, &options()).unwrap();
    writer.write_region(&[0, 0], &sample(&[4, 4], 2)).unwrap();
    drop(writer);
    let next = sample(&SHAPE, 3);
    save_object(&target, &next, meta(), &options()).unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&next));
}

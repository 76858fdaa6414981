//! Faults injected between ndstore-zarr and its object store: the n-th request fails before it
//! reaches the store, is answered 503, or reaches it and then reports an error (a timeout
//! after the PUT landed). Whatever request the fault hits, a save returns an error or
//! succeeds, and the array a reader then finds is never a wrong one: a new array is absent or
//! whole, an updated one is the new version after a success and holds each chunk of the old
//! or the new version (per-chunk atomicity) after a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ndarray::{ArrayD, Slice};
use ndstore_core::{DType, DTypeKind, DynArray, ErrorKind, LoadOptions, Order, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::{ObjectTarget, ZarrArray, save_object};

// The fault-injecting store of the `zarr-s3` row's IO check, which this suite shares: it
// numbers every request and injects one fault into the n-th.
#[allow(dead_code)]
#[path = "conformance_s3/store.rs"]
mod store;

use store::{Counted, Fault, Observed};

const SHAPE: [usize; 2] = [8, 8];
const CHUNKS: [usize; 2] = [4, 4];

fn meta() -> ZarrMeta {
    ZarrMeta::new(DType::native(DTypeKind::F64), &SHAPE, &CHUNKS).unwrap()
}

fn version(seed: u64) -> DynArray {
    ndstore_conformance::sample::array(DTypeKind::F64, &SHAPE, Order::C, seed)
}

/// The values' bits (NaN payloads compare equal to themselves).
fn typed(a: &DynArray) -> ArrayD<u64> {
    a.clone().into_typed::<f64>().unwrap().mapv(f64::to_bits)
}

/// Saves `new` through a store that injects `fault` at request `at` into a copy of `base`;
/// returns whether the save succeeded and what a fault-free reader then finds.
fn save_with_fault(
    base: &InMemory,
    at: usize,
    fault: Fault,
    new: &DynArray,
) -> (
    Result<(), ndstore_core::Error>,
    ndstore_core::Result<DynArray>,
    usize,
) {
    let faulty = Observed::new(base.fork(), at, Counted::Any, fault);
    let target = ObjectTarget::new(Arc::new(faulty.clone()), "faulty://", "a.zarr").unwrap();
    let saved = save_object(&target, new, meta(), &SaveOptions::default());
    let requests = faulty.requests();
    let reader = ObjectTarget::new(Arc::new(faulty.inner().fork()), "faulty://", "a.zarr").unwrap();
    let found = ZarrArray::open_object(&reader, &SaveOptions::default())
        .and_then(|a| a.read_all(&LoadOptions::default()));
    (saved, found, requests)
}

/// Every request of a save, in turn, gets each fault.
fn every_fault(
    base: &InMemory,
    mut check: impl FnMut(Fault, usize, bool, ndstore_core::Result<DynArray>),
) {
    let (saved, _, requests) = save_with_fault(base, 0, Fault::Fail, &version(2));
    saved.unwrap();
    assert!(requests > 4, "{requests} requests");
    for fault in Fault::ALL {
        for at in 1..=requests {
            let (saved, found, _) = save_with_fault(base, at, fault, &version(2));
            check(fault, at, saved.is_ok(), found);
        }
    }
}

#[test]
fn a_new_array_is_absent_or_whole_whatever_request_fails() {
    let mut errors = 0;
    every_fault(&InMemory::new(), |fault, at, ok, found| match found {
        Ok(found) => assert_eq!(typed(&found), typed(&version(2)), "{fault:?} at {at}"),
        Err(e) => {
            assert!(
                !ok,
                "{fault:?} at {at}: the save succeeded but the array is gone"
            );
            assert_eq!(e.kind(), ErrorKind::NotFound, "{fault:?} at {at}: {e}");
            errors += 1;
        }
    });
    assert!(errors > 0);
}

#[test]
fn an_updated_array_is_new_after_success_and_per_chunk_old_or_new_after_failure() {
    let base = Arc::new(InMemory::new());
    let target = ObjectTarget::new(base.clone(), "faulty://", "a.zarr").unwrap();
    save_object(&target, &version(1), meta(), &SaveOptions::default()).unwrap();
    let (old, new) = (typed(&version(1)), typed(&version(2)));
    every_fault(&base, |fault, at, ok, found| {
        let found = typed(&found.unwrap_or_else(|e| panic!("{fault:?} at {at}: {e}")));
        if ok {
            assert_eq!(found, new, "{fault:?} at {at}");
            return;
        }
        for r in 0..SHAPE[0] / CHUNKS[0] {
            for c in 0..SHAPE[1] / CHUNKS[1] {
                let block = |a: &ArrayD<u64>| {
                    a.slice_each_axis(|ax| {
                        let i = if ax.axis.index() == 0 { r } else { c };
                        Slice::from(i * CHUNKS[0]..(i + 1) * CHUNKS[0])
                    })
                    .to_owned()
                };
                let got = block(&found);
                assert!(
                    got == block(&old) || got == block(&new),
                    "{fault:?} at {at}: chunk {r},{c} is neither version"
                );
            }
        }
    });
}

/// A replacement by a smaller array removes the old array's chunks outside the new grid while
/// it still holds the writer lease, and only then releases it: a writer killed in between
/// leaves its lease unreleased, which marks the leftovers (a hostile review killed `ndstore cp`
/// right after the commit: the old chunks stayed with nothing marking them, and came back as
/// values when zarr-python later grew the array), and no other writer can claim the array and
/// write chunks that the removal would then take.
#[test]
fn a_shrinking_replace_removes_the_old_chunks_before_it_releases_its_lease() {
    let store = Observed::plain(InMemory::new());
    let target = ObjectTarget::new(Arc::new(store.clone()), "observed://", "a.zarr").unwrap();
    save_object(&target, &version(1), meta(), &SaveOptions::default()).unwrap();
    let before = store.log().len();
    let small = ndstore_conformance::sample::array(DTypeKind::F64, &CHUNKS, Order::C, 3);
    let small_meta = ZarrMeta::new(DType::native(DTypeKind::F64), &CHUNKS, &CHUNKS).unwrap();
    save_object(&target, &small, small_meta, &SaveOptions::default()).unwrap();
    let log = store.log().split_off(before);
    let deleted: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].put.is_none() && log[i].key.as_ref().contains("/c/"))
        .collect();
    assert_eq!(deleted.len(), 3, "{log:?}");
    let lease = (0..log.len())
        .rev()
        .find(|&i| log[i].key.as_ref().ends_with(".ndstore-lease"))
        .unwrap();
    let released = String::from_utf8(log[lease].put.clone().unwrap().to_vec()).unwrap();
    assert!(released.contains("\"expires_ms\":null"), "{released}");
    assert!(deleted.iter().all(|&i| i < lease), "{log:?}");
    let found = ZarrArray::open_object(&target, &SaveOptions::default())
        .and_then(|a| a.read_all(&LoadOptions::default()))
        .unwrap();
    assert_eq!(typed(&found), typed(&small));
}

/// A reader that opens an array for reading only sends the GET of `zarr.json`, one GET per
/// chunk and one HEAD of `zarr.json` after them (the array did not change under the read): no
/// lease read, no HEAD before the GET. A write through it is refused before any request.
#[test]
fn a_read_only_open_asks_only_for_the_metadata_and_the_chunks_and_refuses_writes() {
    let store = Observed::plain(InMemory::new());
    let target = ObjectTarget::new(Arc::new(store.clone()), "observed://", "a.zarr").unwrap();
    save_object(&target, &version(1), meta(), &SaveOptions::default()).unwrap();
    let chunks = (SHAPE[0] / CHUNKS[0]) * (SHAPE[1] / CHUNKS[1]);
    let before = store.requests();
    let array = ZarrArray::open_object_read_only(&target, &SaveOptions::default()).unwrap();
    let found = array.read_all(&LoadOptions::default()).unwrap();
    assert_eq!(typed(&found), typed(&version(1)));
    assert_eq!(store.requests() - before, chunks + 2);
    let before = (store.requests(), store.log().len());
    let block = ndstore_conformance::sample::array(DTypeKind::F64, &CHUNKS, Order::C, 2);
    let err = array.write_region(&[0, 0], &block).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("reading only"), "{err}");
    assert_eq!((store.requests(), store.log().len()), before);
    // A box covering part of a chunk would read the chunk first: refused before that too,
    // and so is a commit.
    let part = ndstore_conformance::sample::array(DTypeKind::F64, &[2, 2], Order::C, 3);
    let err = array.write_region(&[1, 1], &part).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = array.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!((store.requests(), store.log().len()), before);
    // Opened for writing, the array reads the lease first: one request more.
    let before = store.requests();
    let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
    array.read_all(&LoadOptions::default()).unwrap();
    assert_eq!(store.requests() - before, chunks + 3);
}

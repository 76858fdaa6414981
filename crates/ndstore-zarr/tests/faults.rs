//! Faults injected between ndstore-zarr and its object store: the n-th request fails before it
//! reaches the store, or reaches it and then reports an error (a timeout after the PUT
//! landed). Whatever request the fault hits, a save returns an error or succeeds, and the
//! array a reader then finds is never a wrong one: a new array is absent or whole, an updated
//! one is the new version after a success and holds each chunk of the old or the new version
//! (per-chunk atomicity) after a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use ndarray::{ArrayD, Slice};
use ndstore_core::{DType, DTypeKind, DynArray, ErrorKind, LoadOptions, Order, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use ndstore_zarr::{ObjectTarget, ZarrArray, save_object};

/// What happens to the request a fault hits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// It fails without reaching the store.
    Fail,
    /// It reaches the store, then the client sees an error.
    AfterLanded,
}

/// An object store that injects `fault` into its `at`-th request (counting from 1; 0 never).
#[derive(Debug)]
struct Faulty {
    inner: InMemory,
    requests: AtomicUsize,
    at: usize,
    fault: Fault,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({:?} at request {})", self.fault, self.at)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "Faulty",
        source: what.into(),
    }
}

impl Faulty {
    fn new(inner: InMemory, at: usize, fault: Fault) -> Faulty {
        Faulty {
            inner,
            requests: AtomicUsize::new(0),
            at,
            fault,
        }
    }

    /// Counts a request and returns the fault it gets, if any.
    fn next(&self) -> Option<Fault> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.at).then_some(self.fault)
    }

    /// Runs `request` under the fault plan.
    async fn around<T>(
        &self,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        match self.next() {
            Some(Fault::Fail) => Err(injected("injected failure before the request")),
            Some(Fault::AfterLanded) => {
                request.await?;
                Err(injected("injected timeout after the request landed"))
            }
            None => request.await,
        }
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.around(self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.around(self.inner.put_multipart_opts(location, opts))
            .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.around(self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.around(self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.next() {
            Some(Fault::Fail) => {
                futures::stream::once(async { Err(injected("injected failure of a delete")) })
                    .boxed()
            }
            Some(Fault::AfterLanded) => {
                let deleted = self.inner.delete_stream(locations);
                deleted
                    .map(|r| r.and(Err(injected("injected timeout after a delete landed"))))
                    .boxed()
            }
            None => self.inner.delete_stream(locations),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.next() {
            Some(_) => {
                futures::stream::once(async { Err(injected("injected failure of a list")) }).boxed()
            }
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.around(self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.around(self.inner.copy_opts(from, to, options)).await
    }
}

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
    let faulty = Arc::new(Faulty::new(base.fork(), at, fault));
    let target = ObjectTarget::new(faulty.clone(), "faulty://", "a.zarr").unwrap();
    let saved = save_object(&target, new, meta(), &SaveOptions::default());
    let requests = faulty.requests.load(Ordering::SeqCst);
    let reader = ObjectTarget::new(Arc::new(faulty.inner.fork()), "faulty://", "a.zarr").unwrap();
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
    for fault in [Fault::Fail, Fault::AfterLanded] {
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

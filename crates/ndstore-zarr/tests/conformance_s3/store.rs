//! An object store for the checks that observe requests: it wraps object_store's `InMemory`,
//! numbers every request, injects one fault into the n-th (fail it before it reaches the
//! store, answer it as an unavailable service would, or let it land and then report a
//! timeout), and logs every PUT and DELETE that reached the store with the moments it started
//! and was acknowledged, so CP can rebuild the states a crash could leave.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// What happens to the request a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// It fails without reaching the store (a connection refused, a reset before the body).
    Fail,
    /// The service answers 503 Slow Down / Service Unavailable (after the client's retries):
    /// the request did not land.
    Unavailable,
    /// It reaches the store, then the client sees a timeout.
    TimeoutAfterLanding,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 3] = [Fault::Fail, Fault::Unavailable, Fault::TimeoutAfterLanding];
}

/// Which requests a plan counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Every request.
    Any,
    /// PUTs only (single PUTs and multipart uploads).
    Puts,
}

/// A mutating request that reached the store.
#[derive(Clone, Debug)]
pub struct Op {
    /// The object.
    pub key: Path,
    /// The bytes put, or `None` for a DELETE.
    pub put: Option<Bytes>,
    /// When it started (a moment of the store's clock, which ticks at every start and
    /// acknowledgement).
    pub start: u64,
    /// When the client saw it acknowledged; `None` when the client saw an error although it
    /// landed.
    pub ack: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    inner: InMemory,
    requests: AtomicUsize,
    counted: AtomicUsize,
    clock: AtomicU64,
    log: Mutex<Vec<Op>>,
    at: usize,
    of: Counted,
    fault: Fault,
    /// A request the log cannot replay (a multipart upload) was made.
    unlogged: AtomicUsize,
    /// Mutating requests take this long between their start and reaching the store, so the
    /// requests of concurrent writers overlap as they do over a network.
    latency: std::time::Duration,
}

/// The store: see the module documentation. Clones share everything.
#[derive(Clone, Debug)]
pub struct Observed {
    shared: Arc<Shared>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Observed({:?} at {:?} request {})",
            self.shared.fault, self.shared.of, self.shared.at
        )
    }
}

fn injected(fault: Fault) -> object_store::Error {
    let what = match fault {
        Fault::Fail => "injected failure before the request reached the store",
        Fault::Unavailable => "injected answer: 503 Service Unavailable",
        Fault::TimeoutAfterLanding => "injected timeout after the request landed",
    };
    object_store::Error::Generic {
        store: "Observed",
        source: what.into(),
    }
}

impl Observed {
    /// A store over `inner` that injects `fault` into the `at`-th request `of` kind (counting
    /// from 1; 0 never).
    pub fn new(inner: InMemory, at: usize, of: Counted, fault: Fault) -> Observed {
        Observed {
            shared: Arc::new(Shared {
                inner,
                requests: AtomicUsize::new(0),
                counted: AtomicUsize::new(0),
                clock: AtomicU64::new(0),
                log: Mutex::new(Vec::new()),
                at,
                of,
                fault,
                unlogged: AtomicUsize::new(0),
                latency: std::time::Duration::ZERO,
            }),
        }
    }

    /// A store that injects nothing and gives every mutating request `latency`.
    pub fn slow(inner: InMemory, latency: std::time::Duration) -> Observed {
        let mut store = Observed::plain(inner);
        if let Some(shared) = Arc::get_mut(&mut store.shared) {
            shared.latency = latency;
        }
        store
    }

    /// A store that injects nothing.
    pub fn plain(inner: InMemory) -> Observed {
        Observed::new(inner, 0, Counted::Any, Fault::Fail)
    }

    /// The store underneath, as it is now.
    pub fn inner(&self) -> &InMemory {
        &self.shared.inner
    }

    /// How many requests were made.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many requests of the counted kind were made.
    pub fn counted(&self) -> usize {
        self.shared.counted.load(Ordering::SeqCst)
    }

    /// The PUTs and DELETEs that reached the store, in the order they started.
    pub fn log(&self) -> Vec<Op> {
        let mut log = self.shared.log.lock().unwrap().clone();
        log.sort_by_key(|op| op.start);
        log
    }

    /// How many requests the log cannot replay were made.
    pub fn unlogged(&self) -> usize {
        self.shared.unlogged.load(Ordering::SeqCst)
    }

    /// Counts a request and returns the fault it gets, if any.
    fn next(&self, put: bool) -> Option<Fault> {
        self.shared.requests.fetch_add(1, Ordering::SeqCst);
        if self.shared.of == Counted::Puts && !put {
            return None;
        }
        let n = self.shared.counted.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.shared.at).then_some(self.shared.fault)
    }

    fn tick(&self) -> u64 {
        self.shared.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Runs a read under the fault plan.
    async fn read<T>(
        &self,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        match self.next(false) {
            Some(Fault::TimeoutAfterLanding) => {
                request.await?;
                Err(injected(Fault::TimeoutAfterLanding))
            }
            Some(fault) => Err(injected(fault)),
            None => request.await,
        }
    }

    /// Runs a mutating request on `key` under the fault plan, logging it when it lands.
    async fn mutate<T>(
        &self,
        key: &Path,
        put: Option<Bytes>,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        let fault = self.next(put.is_some());
        if let Some(fault @ (Fault::Fail | Fault::Unavailable)) = fault {
            return Err(injected(fault));
        }
        let start = self.tick();
        if !self.shared.latency.is_zero() {
            tokio::time::sleep(self.shared.latency).await;
        }
        let result = request.await;
        if result.is_ok() {
            let ack = (fault.is_none()).then(|| self.tick());
            self.shared.log.lock().unwrap().push(Op {
                key: key.clone(),
                put,
                start,
                ack,
            });
        }
        match fault {
            Some(fault) => result.and(Err(injected(fault))),
            None => result,
        }
    }
}

#[async_trait]
impl ObjectStore for Observed {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let bytes = Bytes::from(payload.clone());
        self.mutate(
            location,
            Some(bytes),
            self.shared.inner.put_opts(location, payload, opts),
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.shared.unlogged.fetch_add(1, Ordering::SeqCst);
        match self.next(true) {
            Some(fault) => Err(injected(fault)),
            None => self.shared.inner.put_multipart_opts(location, opts).await,
        }
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.read(self.shared.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.read(self.shared.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .and_then(move |location| {
                let this = this.clone();
                async move {
                    let inner = this.shared.inner.clone();
                    this.mutate(&location, None, async { inner.delete(&location).await })
                        .await
                        .map(|()| location.clone())
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.next(false) {
            Some(fault) => futures::stream::once(async move { Err(injected(fault)) }).boxed(),
            None => self.shared.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.read(self.shared.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.shared.unlogged.fetch_add(1, Ordering::SeqCst);
        self.read(self.shared.inner.copy_opts(from, to, options))
            .await
    }
}

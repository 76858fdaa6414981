//! Zarr arrays on object storage (S3-compatible services, or object_store's `InMemory`): keys
//! are objects under a prefix, each chunk one atomic PUT (a multipart upload for a large one),
//! and `zarr.json` written last with a conditional PUT, so a new array appears whole or not at
//! all and two committers conflict instead of interleaving their metadata.
//!
//! There is no fsync and no rename on object storage. A PUT, or a completed multipart upload,
//! is atomic per object and durable once acknowledged; a conditional PUT (create-if-absent, or
//! update-if-the-ETag-matches) is the only compare-and-swap. The store runs object_store's
//! futures on a small tokio runtime it owns and blocks on them at its synchronous API.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use ndstore_core::{Durability, Error, ErrorKind, Result, SaveOptions};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, UpdateVersion, WriteMultipart,
};

use crate::lease::{DEFAULT_LEASE, Lease};
use crate::meta::{METADATA_FILE, is_chunk_key};
use crate::store::{KeyStore, RangeReader, Span, Spanned};

/// Objects at least this long are sent as multipart uploads.
const MULTIPART_THRESHOLD: usize = 16 << 20;

/// The part size of a multipart upload (S3 wants at least 5 MiB for every part but the last).
const PART_SIZE: usize = 8 << 20;

/// The parts of one multipart upload in flight at once.
const PART_CONCURRENCY: usize = 2;

/// The worker threads of a store's runtime: requests are I/O bound, and the callers' threads
/// (up to four per region call) do the blocking.
const RUNTIME_WORKERS: usize = 2;

/// The most attempts per request `AWS_MAX_ATTEMPTS` may ask for. object_store stops retrying
/// a request 3 minutes after its first attempt anyway (its retry timeout, with backoff of up to
/// 15 s between attempts), so a larger count would change nothing and is taken for a typo.
const MAX_ATTEMPTS: usize = 100;

/// Where a Zarr array lives in object storage: a store (S3, in memory, or any object_store
/// implementation, a fault-injecting wrapper among them) and a prefix in it.
///
/// Clones share the store and its runtime.
#[derive(Clone, Debug)]
pub struct ObjectTarget {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The name errors give: `s3://bucket/prefix`, `memory:///prefix`.
    name: PathBuf,
    /// The scheme and bucket part of `name`, for [`ObjectTarget::at`].
    base: String,
    runtime: Arc<tokio::runtime::Runtime>,
    /// How long a writer's lease lasts unless renewed.
    lease: Duration,
}

impl ObjectTarget {
    /// The array at `url`, `s3://bucket/prefix`, with credentials, region and endpoint from the
    /// usual AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_MAX_ATTEMPTS` (the first
    /// request and its retries: object_store retries a failed request up to ten times with
    /// backoff by default), ...). Conditional puts use S3's
    /// `If-None-Match` and `If-Match` headers.
    ///
    /// # Errors
    ///
    /// As [`ObjectTarget::from_url_with`].
    pub fn from_url(url: &str) -> Result<ObjectTarget> {
        ObjectTarget::from_url_with(url, &[])
    }

    /// As [`ObjectTarget::from_url`], with `settings` (named as the environment variables are,
    /// `AWS_ENDPOINT_URL` say) taking precedence over the environment.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a URL that is not `s3://bucket/prefix`, a setting
    /// object_store does not know, or a configuration it refuses; the I/O error of starting
    /// the runtime.
    pub fn from_url_with(url: &str, settings: &[(&str, &str)]) -> Result<ObjectTarget> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("not an s3:// array URL: {why}"),
            )
            .with_path(url)
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        install_tls_provider();
        let mut builder = object_store::aws::AmazonS3Builder::from_env();
        // object_store's environment reading leaves AWS_ALLOW_HTTP and AWS_MAX_ATTEMPTS out.
        let environment: Vec<(&str, String)> = ["AWS_ALLOW_HTTP", "AWS_MAX_ATTEMPTS"]
            .into_iter()
            .filter_map(|name| Some((name, std::env::var(name).ok()?)))
            .collect();
        let environment = environment.iter().map(|(k, v)| (*k, v.as_str()));
        let refused = |why: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the S3 settings are refused: {why}"),
            )
            .with_path(url)
        };
        for (key, value) in environment.chain(settings.iter().copied()) {
            let key = key.to_ascii_lowercase();
            if key == "aws_allow_http" {
                builder =
                    builder.with_allow_http(value.eq_ignore_ascii_case("true") || value == "1");
                continue;
            }
            if key == "aws_max_attempts" {
                // The AWS SDKs' setting: attempts in all, the first one included.
                let attempts =
                    value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                        .ok_or_else(|| {
                            refused(format!(
                                "AWS_MAX_ATTEMPTS is '{value}', not a count of attempts from 1 to {MAX_ATTEMPTS}"
                            ))
                        })?;
                builder = builder.with_retry(object_store::RetryConfig {
                    max_retries: attempts - 1,
                    ..object_store::RetryConfig::default()
                });
                continue;
            }
            let key = key
                .parse::<object_store::aws::AmazonS3ConfigKey>()
                .map_err(|e| refused(format!("unknown setting {key}: {e}")))?;
            builder = builder.with_config(key, value);
        }
        // Without this, a plain-HTTP endpoint fails only at the first request, with the HTTP
        // client's "builder error" and nothing that names the setting to change.
        let allow_http = builder
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            ))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(endpoint) =
            builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint)
            && endpoint.to_ascii_lowercase().starts_with("http://")
            && !allow_http
        {
            return Err(refused(format!(
                "the endpoint {endpoint} is plain HTTP: set AWS_ALLOW_HTTP=true to allow it (for a local test server), or use https://"
            )));
        }
        // object_store builds each request's URL from the endpoint (or the bucket's AWS host)
        // and the bucket, and panics while signing one its HTTP library cannot parse.
        let endpoint = builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint);
        if let Some(endpoint) = &endpoint
            && !is_http_url(endpoint)
        {
            return Err(refused(format!(
                "the endpoint '{endpoint}' (AWS_ENDPOINT_URL) is not an http:// or https:// URL"
            )));
        }
        let probe = match &endpoint {
            Some(endpoint) => format!("{}/{bucket}/", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.amazonaws.com/"),
        };
        if !is_http_url(&probe) {
            return Err(bad(&format!(
                "the bucket name '{bucket}' cannot be part of a URL (bucket names hold letters, digits, '.' and '-')"
            )));
        }
        let store = builder
            .with_bucket_name(bucket)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|e| refused(e.to_string()))?;
        ObjectTarget::new(Arc::new(store), &format!("s3://{bucket}"), prefix)
    }

    /// The array at `prefix` in `store`, named `base/prefix` in errors (`base` as
    /// `s3://bucket` or `memory://`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a prefix object_store refuses (empty segments, `..`);
    /// the I/O error of starting the runtime.
    pub fn new(store: Arc<dyn ObjectStore>, base: &str, prefix: &str) -> Result<ObjectTarget> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .thread_name("ndstore-zarr-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the object store's runtime", e))?;
        let mut target = ObjectTarget {
            store,
            prefix: ObjectPath::default(),
            name: PathBuf::new(),
            base: base.trim_end_matches('/').to_owned(),
            runtime: Arc::new(runtime),
            lease: DEFAULT_LEASE,
        };
        target.set_prefix(prefix)?;
        Ok(target)
    }

    /// An array at `prefix` in a new, empty in-memory store (for tests).
    ///
    /// # Errors
    ///
    /// As [`ObjectTarget::new`].
    pub fn in_memory(prefix: &str) -> Result<ObjectTarget> {
        ObjectTarget::new(
            Arc::new(object_store::memory::InMemory::new()),
            "memory://",
            prefix,
        )
    }

    /// The array at `prefix` in the same store (sharing its runtime).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a prefix object_store refuses.
    pub fn at(&self, prefix: &str) -> Result<ObjectTarget> {
        let mut target = self.clone();
        target.set_prefix(prefix)?;
        Ok(target)
    }

    /// The same target with writers' leases lasting `duration` unless renewed (30 s by
    /// default). A writer claims the array's lease before its first chunk and holds it until
    /// its commit or abort; a killed writer's lease blocks other writers until it expires.
    /// Every writer of one array should use the same duration, longer than any pause between
    /// a writer's requests and than the difference between the writers' clocks.
    #[must_use]
    pub fn with_lease_duration(mut self, duration: Duration) -> ObjectTarget {
        self.lease = duration;
        self
    }

    /// How long a writer's lease lasts unless renewed.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The state of the writer lease of the array at this prefix: absent, released, held by
    /// a writer (writing now, or died less than a lease ago), or expired unreleased (a writer
    /// died mid-write: a replaced array may hold chunks of two versions, each chunk whole, and
    /// a new array's chunks may lie there without its `zarr.json`).
    ///
    /// # Errors
    ///
    /// The store's errors other than the lease object's absence.
    pub fn lease_state(&self) -> Result<crate::lease::LeaseState> {
        crate::lease::state(self)
    }

    fn set_prefix(&mut self, prefix: &str) -> Result<()> {
        let prefix = prefix.trim_matches('/');
        self.prefix = ObjectPath::parse(prefix).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("not a valid object prefix: {e}"),
            )
            .with_path(prefix)
        })?;
        self.name = PathBuf::from(format!("{}/{}", self.base, self.prefix));
        Ok(())
    }

    /// The prefix the array's objects are under (`data/a.zarr`; empty for the store's root).
    pub fn prefix(&self) -> &str {
        self.prefix.as_ref()
    }

    /// The array's name in errors: `s3://bucket/prefix`.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object of `key` (`zarr.json`, `c/0/1`).
    pub(crate) fn object(&self, key: &str) -> ObjectPath {
        key.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// What lies directly under the prefix, as a directory's entries: the names of the
    /// "directories" (common prefixes, as `g` for `g/zarr.json`) and of the objects, each in
    /// name order. One LIST request (object_store pages through longer listings); no object's
    /// data is read.
    ///
    /// # Errors
    ///
    /// The store's errors naming the prefix ([`ErrorKind::NotFound`] for a missing bucket).
    pub fn list_level(&self) -> Result<Listing> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = self
            .run(self.store.list_with_delimiter(prefix))
            .map_err(|e| object_error(self, "cannot list the objects under the prefix", "", e))?;
        let name_of = |path: &ObjectPath| path.filename().unwrap_or_default().to_owned();
        let mut dirs: Vec<String> = listed.common_prefixes.iter().map(name_of).collect();
        let mut objects: Vec<String> = listed
            .objects
            .iter()
            .map(|m| name_of(&m.location))
            .collect();
        dirs.sort();
        objects.sort();
        Ok(Listing { dirs, objects })
    }

    /// Every key under the prefix (`zarr.json`, `c/0/1`, ...), in name order: an array's
    /// stored chunks found without reading them. LIST requests only.
    ///
    /// # Errors
    ///
    /// The store's errors naming the prefix.
    pub fn keys(&self) -> Result<Vec<String>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed: Vec<object_store::ObjectMeta> = self
            .run(self.store.list(prefix).try_collect())
            .map_err(|e| object_error(self, "cannot list the objects under the prefix", "", e))?;
        let mut keys: Vec<String> = listed
            .iter()
            .filter_map(|meta| {
                let parts = meta.location.prefix_match(&self.prefix)?;
                Some(
                    parts
                        .map(|p| p.as_ref().to_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                )
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// The object at `key` under the prefix, `None` when there is none; refused without being
    /// read when it holds more than `limit` bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] naming the object when it is longer than `limit`; the store's
    /// errors naming it.
    pub fn read_object(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let location = self.object(key);
        let result = self.run(async {
            let got = self
                .store
                .get_opts(&location, GetOptions::default())
                .await?;
            if usize::try_from(got.meta.size).map_or(true, |size| size > limit) {
                return Ok(Err(got.meta.size));
            }
            Ok(Ok(got.bytes().await?))
        });
        match result {
            Ok(Ok(bytes)) => Ok(Some(bytes.to_vec())),
            Ok(Err(size)) => Err(Error::new(
                ErrorKind::Format,
                format!("the object holds {size} bytes, more than the {limit} it can need"),
            )
            .with_path(self.name.join(key))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(self, "cannot read the object", key, e)),
        }
    }

    /// Runs `future` on the target's runtime and waits for it. Called from inside another
    /// tokio runtime (where blocking on one is refused), it waits on a scoped thread instead.
    pub(crate) fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(future);
        }
        std::thread::scope(
            |scope| match scope.spawn(|| self.runtime.block_on(future)).join() {
                Ok(output) => output,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
    }
}

/// What lies directly under a prefix ([`ObjectTarget::list_level`]): names relative to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The "directories": names followed by `/` and more in some key.
    pub dirs: Vec<String>,
    /// The objects directly under the prefix.
    pub objects: Vec<String>,
}

/// An array's keys as objects under its target's prefix, with the commit protocol of
/// `zarr.json`.
#[derive(Debug)]
pub(crate) struct ObjectArrayStore {
    target: ObjectTarget,
    options: SaveOptions,
    /// The version of `zarr.json` this array was opened at: `Some` when it existed (a commit
    /// then updates that version only), `None` for a new array (a commit creates it only).
    version: Mutex<Option<UpdateVersion>>,
    /// The chunk keys this store put since it was opened, which an abandoned new array removes
    /// and a committed save keeps when it clears stale chunks.
    written: Mutex<BTreeSet<String>>,
    /// A request failed: what reached the store is unknown, so `sync` fails from now on.
    poisoned: Mutex<bool>,
    /// The writer lease: read when the store is opened, so a writer that opened before another
    /// one's claim stays refused after that one's release (the array may have changed under
    /// it); claimed before the first chunk is written, released at commit. `None` in a store
    /// opened for reading, which writes nothing.
    lease: Mutex<Option<Lease>>,
    /// The store holds a new array replacing whatever is at the prefix (a save), so its
    /// commit removes the chunks it did not write; an opened array's commit keeps them.
    whole: bool,
}

impl ObjectArrayStore {
    /// The store of the array at `target`, with the writer lease as it is now. The version of
    /// `zarr.json` that a commit must replace is recorded when the caller reads it next (none
    /// for a new array), in the GET that gives its content.
    ///
    /// # Errors
    ///
    /// The errors of reading the lease.
    pub(crate) fn open(target: &ObjectTarget, options: &SaveOptions) -> Result<ObjectArrayStore> {
        let mut store = ObjectArrayStore::open_read_only(target, options);
        store.lease = Mutex::new(Some(Lease::open(target)?));
        Ok(store)
    }

    /// The store of the array at `target` for reading: it sends no request of its own (no
    /// lease is read), and refuses every write.
    pub(crate) fn open_read_only(target: &ObjectTarget, options: &SaveOptions) -> ObjectArrayStore {
        ObjectArrayStore {
            target: target.clone(),
            options: *options,
            version: Mutex::new(None),
            written: Mutex::new(BTreeSet::new()),
            poisoned: Mutex::new(false),
            lease: Mutex::new(None),
            whole: false,
        }
    }

    /// The store of a new array at `target`, replacing the one there (if any) when committed:
    /// the commit then removes the chunks this store did not write.
    ///
    /// # Errors
    ///
    /// As [`ObjectArrayStore::open`].
    pub(crate) fn create(target: &ObjectTarget, options: &SaveOptions) -> Result<ObjectArrayStore> {
        let mut store = ObjectArrayStore::open(target, options)?;
        store.whole = true;
        Ok(store)
    }

    /// True when the array's `zarr.json` existed when it was read (the GET that follows every
    /// opening records its version); false for a new array.
    pub(crate) fn replaces(&self) -> bool {
        self.version.lock().is_ok_and(|v| v.is_some())
    }

    fn set_version(&self, version: Option<UpdateVersion>) -> Result<()> {
        *self.version.lock().map_err(|_| self.lock_error())? = version;
        Ok(())
    }

    fn lock_error(&self) -> Error {
        Error::new(
            ErrorKind::Poisoned,
            "a thread panicked while it held the store",
        )
        .with_path(self.target.name())
    }

    fn poison(&self) {
        if let Ok(mut p) = self.poisoned.lock() {
            *p = true;
        }
    }

    /// The error of `what` on `key`, of a kind a caller can branch on.
    fn error(&self, what: &str, key: &str, e: object_store::Error) -> Error {
        object_error(&self.target, what, key, e)
    }

    /// Holds the writer lease (claiming it the first time, renewing it when half of it has
    /// passed) before anything is written. A refusal (`Locked`) wrote nothing; a failed
    /// request poisons the store.
    fn hold_lease(&self) -> Result<()> {
        let mut lease = self.lease.lock().map_err(|_| self.lock_error())?;
        let Some(lease) = lease.as_mut() else {
            return Err(self.read_only_error());
        };
        lease.hold(&self.target).inspect_err(|e| {
            if e.kind() != ErrorKind::Locked {
                self.poison();
            }
        })
    }

    fn read_only_error(&self) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            "the array was opened for reading only; open it with ZarrArray::open_object to write",
        )
        .with_path(self.target.name())
    }

    /// Releases the writer lease, logging a failure (the lease then expires by itself).
    fn release_lease(&self) {
        if let Ok(mut lease) = self.lease.lock()
            && let Some(lease) = lease.as_mut()
            && let Err(e) = lease.release(&self.target)
        {
            log::warn!("the array's lease could not be released (it expires by itself): {e}");
        }
    }

    /// Sends `bytes` to `key` in one PUT with `mode`, or as a multipart upload when they are
    /// large (and the mode is an overwrite), aborting the upload when it fails.
    fn send(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<object_store::PutResult> {
        let location = self.target.object(key);
        let store = &self.target.store;
        let result = if bytes.len() < MULTIPART_THRESHOLD || mode != PutMode::Overwrite {
            let payload = PutPayload::from(bytes.to_vec());
            self.target
                .run(store.put_opts(&location, payload, PutOptions::from(mode)))
        } else {
            self.target.run(async {
                let upload = store
                    .put_multipart_opts(&location, PutMultipartOptions::default())
                    .await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                for part in bytes.chunks(PART_SIZE) {
                    if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                        abort(writer, &location).await;
                        return Err(e);
                    }
                    writer.write(part);
                }
                // A failed completion aborts the upload itself.
                writer.finish().await
            })
        };
        result.map_err(|e| self.error("cannot store the object", key, e))
    }

    /// Removes the chunks this store wrote (an abandoned new array), logging what it could
    /// not remove.
    pub(crate) fn remove_written(&self) {
        let keys: Vec<String> = match self.written.lock() {
            Ok(mut written) => std::mem::take(&mut *written).into_iter().collect(),
            Err(_) => return,
        };
        for key in keys {
            if let Err(e) = self.delete(&key) {
                log::error!("an abandoned array's chunk could not be removed: {e}");
            }
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let location = self.target.object(key);
        match self.target.run(self.target.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("cannot remove the object", key, e)),
        }
    }

    /// Removes the chunk objects under the prefix that this store did not write: what a
    /// replaced array held beyond the new one's chunks.
    fn remove_stale_chunks(&self) -> Result<()> {
        let written = self.written.lock().map_err(|_| self.lock_error())?.clone();
        let prefix = self.target.prefix.clone();
        let listed: Vec<object_store::ObjectMeta> = self
            .target
            .run(self.target.store.list(Some(&prefix)).try_collect())
            .map_err(|e| self.error("cannot list the array's objects", "", e))?;
        for meta in listed {
            let Some(parts) = meta.location.prefix_match(&prefix) else {
                continue;
            };
            let key = parts
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/");
            if is_chunk_key(&key) && !written.contains(&key) {
                // Renewed when half of it has passed: a long removal keeps other writers out.
                self.hold_lease()?;
                self.delete(&key)?;
            }
        }
        Ok(())
    }
}

impl ObjectArrayStore {
    /// One GET of `key` with `options` (the whole object, or a range): its bytes and the
    /// object's metadata, `None` when there is no such key; an object longer than `limit` is
    /// refused before its body is read.
    fn get_with(
        &self,
        key: &str,
        options: GetOptions,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, object_store::ObjectMeta)>> {
        let location = self.target.object(key);
        let store = &self.target.store;
        let result = self.target.run(async {
            let got = store.get_opts(&location, options).await?;
            let meta = got.meta.clone();
            if usize::try_from(meta.size).map_or(true, |size| size > limit) {
                return Ok(Err(meta.size));
            }
            Ok(Ok((got.bytes().await?.to_vec(), meta)))
        });
        match result {
            Ok(Ok(got)) => Ok(Some(got)),
            Ok(Err(size)) => Err(Error::new(
                ErrorKind::Format,
                format!("the object holds {size} bytes, more than the {limit} its chunk can need"),
            )
            .with_path(self.path_of(key))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("cannot read the object", key, e)),
        }
    }
}

/// Makes rustls' ring provider the process's default TLS provider unless one is installed
/// already (by this function earlier, or by the application), so object_store's HTTPS client,
/// built with reqwest's `rustls-no-provider`, finds one instead of panicking. Idempotent and
/// safe to race: a second installation is refused by rustls, and the refusal is ignored since
/// a provider is then in place.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread or the application installed one first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The error of `what` on `key` of the array at `target`, of a kind a caller can branch on.
pub(crate) fn object_error(
    target: &ObjectTarget,
    what: &str,
    key: &str,
    e: object_store::Error,
) -> Error {
    let kind =
        match &e {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => ErrorKind::Locked,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
            object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. } => ErrorKind::Unsupported,
            _ => ErrorKind::Io,
        };
    Error::new(kind, format!("{what}: {e}")).with_path(target.name().join(key))
}

/// Whether `text` parses, as the HTTP library under object_store parses a request's URL, into
/// an `http` or `https` URL with a host.
fn is_http_url(text: &str) -> bool {
    text.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    })
}

/// Aborts a multipart upload that failed, logging a failure to abort (the parts then wait
/// for the bucket's lifecycle rule).
async fn abort(writer: WriteMultipart, location: &ObjectPath) {
    if let Err(e) = writer.abort().await {
        log::error!("{location}: a failed multipart upload could not be aborted: {e}");
    }
}

impl KeyStore for ObjectArrayStore {
    fn check_writable(&self) -> Result<()> {
        match *self.lease.lock().map_err(|_| self.lock_error())? {
            Some(_) => Ok(()),
            None => Err(self.read_only_error()),
        }
    }

    fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let Some((bytes, meta)) = self.get_with(key, GetOptions::default(), limit)? else {
            return Ok(None);
        };
        if key == METADATA_FILE {
            // The version a commit of this array must replace is the one its metadata was
            // read at.
            self.set_version(Some(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }))?;
        }
        Ok(Some(bytes))
    }

    /// One ranged GET for `span`: its response gives the object's length and ETag, and every
    /// later range is read with `If-Match` on that ETag, so a shard replaced meanwhile is
    /// noticed (the reader answers `None`) instead of read as a mix of two versions.
    fn get_span(&self, key: &str, span: Span, limit: usize) -> Result<Option<Spanned<'_>>> {
        let range = match span {
            Span::Head(n) => GetRange::Bounded(0..n.max(1)),
            Span::Tail(n) => GetRange::Suffix(n.max(1)),
        };
        let options = GetOptions {
            range: Some(range),
            ..GetOptions::default()
        };
        let Some((bytes, meta)) = self.get_with(key, options, limit)? else {
            return Ok(None);
        };
        let location = self.target.object(key);
        let reader = ObjectRanges {
            store: self,
            key: key.to_owned(),
            location,
            len: meta.size,
            e_tag: meta.e_tag,
        };
        Ok(Some((bytes, Box::new(reader))))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.hold_lease()?;
        if let Err(e) = self.send(key, bytes, PutMode::Overwrite) {
            self.poison();
            return Err(e);
        }
        self.written
            .lock()
            .map_err(|_| self.lock_error())?
            .insert(key.to_owned());
        Ok(())
    }

    fn erase(&self, key: &str) -> Result<()> {
        self.hold_lease()?;
        if let Ok(mut written) = self.written.lock() {
            written.remove(key);
        }
        self.delete(key).inspect_err(|_| self.poison())
    }

    fn contains(&self, key: &str) -> Result<bool> {
        let location = self.target.object(key);
        match self.target.run(self.target.store.head(&location)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("cannot look for the object", key, e)),
        }
    }

    /// Every put returned only once the store acknowledged it, so there is nothing left to
    /// make durable; a store whose request failed refuses.
    fn sync(&self) -> Result<()> {
        if self.poisoned.lock().map_or(true, |p| *p) {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "an earlier request of this array failed; what reached the store is unknown",
            )
            .with_path(self.target.name()));
        }
        Ok(())
    }

    fn durability(&self) -> Durability {
        self.options.durability
    }

    fn root(&self) -> &Path {
        self.target.name()
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.target.name().join(key)
    }

    /// `zarr.json` with a conditional PUT, by the holder of the writer lease only: the lease
    /// is renewed first (which fails when it was taken over), then `zarr.json` is created
    /// only if absent for a new array, or replaced only if still the version this array was
    /// opened at; then, for a whole new array, the chunks of an earlier one that the new one
    /// does not have are removed, and the lease is released.
    fn commit_metadata(&self, bytes: &[u8]) -> Result<()> {
        self.sync()?;
        {
            let mut lease = self.lease.lock().map_err(|_| self.lock_error())?;
            if let Some(lease) = lease.as_mut().filter(|lease| lease.is_held()) {
                lease.renew(&self.target)?;
            } else {
                drop(lease);
                self.hold_lease()?;
            }
        }
        let version = self.version.lock().map_err(|_| self.lock_error())?.clone();
        let mode = version.map_or(PutMode::Create, PutMode::Update);
        let put = self.send(METADATA_FILE, bytes, mode).map_err(|e| {
            if e.kind() == ErrorKind::Locked {
                Error::new(
                    ErrorKind::Locked,
                    "another writer committed this array first (its zarr.json is not the version this writer started from); nothing of this writer was published over it",
                )
                .with_path(self.path_of(METADATA_FILE))
            } else {
                e
            }
        })?;
        self.set_version(Some(UpdateVersion::from(put)))?;
        // The chunks of the replaced array the new one does not have (outside its grid, or at
        // keys it left all fill) go before the lease is released: a new array's prefix may also
        // hold the chunks of a killed writer. Under the lease, no other writer's chunks can be
        // among them; and a kill before the end leaves the lease unreleased, which tells readers
        // (`ndstore verify`) and the next writer that objects of another version may be left.
        // A failure leaves the lease to expire by itself, for the same reason.
        if self.whole
            && let Err(e) = self.remove_stale_chunks()
        {
            log::warn!(
                "{}: the array is committed, but the chunks of an earlier array at its prefix could not all be removed (its lease is left to expire, marking them): {e}",
                self.target.name().display()
            );
            return Ok(());
        }
        self.release_lease();
        Ok(())
    }

    fn still_current(&self) -> Result<bool> {
        let Some(read) = self.version.lock().map_err(|_| self.lock_error())?.clone() else {
            return Ok(false);
        };
        let location = self.target.object(METADATA_FILE);
        match self.target.run(self.target.store.head(&location)) {
            Ok(meta) => Ok(meta.e_tag == read.e_tag && meta.version == read.version),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("cannot look for the array's zarr.json", METADATA_FILE, e)),
        }
    }

    /// A new array's chunks are removed, unless another writer committed an array at the
    /// prefix meanwhile: the keys this store wrote may hold that array's chunks now.
    /// The writer lease is then released, or, for a new array whose chunks are gone, removed.
    fn abandon(&self) {
        if !self.replaces() && matches!(self.contains(METADATA_FILE), Ok(false)) {
            self.remove_written();
            if let Ok(mut lease) = self.lease.lock()
                && let Some(lease) = lease.as_mut()
                && let Err(e) = lease.remove(&self.target)
            {
                log::warn!("an abandoned array's lease could not be removed: {e}");
            }
        }
        self.release_lease();
    }
}

/// Ranges of one object, read with `If-Match` on the ETag its first ranged GET returned;
/// ranges less than object_store's default gap (1 MiB) apart are fetched in one request, up to
/// ten requests at once.
struct ObjectRanges<'a> {
    store: &'a ObjectArrayStore,
    key: String,
    location: ObjectPath,
    len: u64,
    e_tag: Option<String>,
}

impl RangeReader for ObjectRanges<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, ranges: &[std::ops::Range<u64>]) -> Result<Option<Vec<Vec<u8>>>> {
        let target = &self.store.target;
        let fetch = |range: std::ops::Range<u64>| {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                if_match: self.e_tag.clone(),
                ..GetOptions::default()
            };
            let (store, location) = (&target.store, &self.location);
            async move { store.get_opts(location, options).await?.bytes().await }
        };
        let fetched = target.run(object_store::coalesce_ranges(
            ranges,
            fetch,
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        ));
        let parts = match fetched {
            Ok(parts) => parts,
            Err(
                object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. },
            ) => {
                return Ok(None);
            }
            Err(e) => return Err(self.store.error("cannot read the object", &self.key, e)),
        };
        let mut out = Vec::with_capacity(parts.len());
        for (part, range) in parts.iter().zip(ranges) {
            if part.len() as u64 != range.end - range.start {
                return Err(Error::new(
                    ErrorKind::Truncated,
                    format!(
                        "the object ends before byte {} (the store answered {} of the range's bytes)",
                        range.end,
                        part.len()
                    ),
                )
                .with_path(self.store.path_of(&self.key)));
            }
            out.push(part.to_vec());
        }
        Ok(Some(out))
    }
}

impl Drop for ObjectArrayStore {
    /// A writer that neither committed nor abandoned the array releases its lease.
    fn drop(&mut self) {
        self.release_lease();
    }
}

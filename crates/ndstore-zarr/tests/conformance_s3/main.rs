//! The `zarr-s3` backend's conformance suite: Zarr v3 arrays in object storage, judged by the
//! guarantee they declare (per-chunk atomicity: a new array appears whole or not at all, a
//! replaced one holds each chunk of the old or the new version under one version's metadata).
//!
//! RT, FC and CK are the shared checks, run against the local S3 server (moto) that this
//! binary starts: paths name prefixes in its bucket, and the children the checks start reach
//! the same server. The checks the shared harness observes through a file system are this
//! backend's own ([`Fixtures::own_check`]): FD drops uncommitted writers (an in-place writer
//! has no meaning where nothing is published before the commit), CO races committers (threads on `InMemory`, whose
//! conditional puts are atomic, which moto's are not under races; one request at a time on
//! moto), BI uploads the `zarr` backend's hostile and damaged trees as objects, IO, FS and CP
//! observe the requests of a save through a fault-injecting, request-logging store, and IX is
//! zarr-python through obstore both ways. SE is N/A: object storage has no modes, owners or
//! links.
//!
//! Without the server every check SKIPs with the reason, except under `CI=true` (or with
//! `NDSTORE_REQUIRE_ORACLES`), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../codec_cases/mod.rs"]
mod codec_cases;
#[path = "../common/mod.rs"]
mod common;
mod drops;
mod faults;
mod judge;
mod races;
#[path = "../s3_interop/mod.rs"]
mod s3_interop;
mod store;
mod untrusted;
#[path = "../zarr_fixtures/mod.rs"]
mod zarr_fixtures;

use std::sync::OnceLock;
use std::time::Duration;

use ndstore_conformance::python::{S3_BUCKET, S3Server};
use ndstore_conformance::report::Status;
use ndstore_conformance::{Check, CheckResult, Ctx, Fixtures};
use ndstore_core::ArrayMeta;
use ndstore_zarr::{ObjectTarget, ZarrObjectBackend};

ndstore_conformance::suite!(backend(), S3Fixtures);

/// The variable that gives children (and, when set by the caller, this process) the local S3
/// server's endpoint.
const ENDPOINT_ENV: &str = "NDSTORE_ZARR_S3_ENDPOINT";

/// How long a writer's lease lasts: short, so a save after a killed writer waits little (the
/// backend's save waits for an expired lease), yet far longer than a save's pauses between
/// requests to the local server.
const LEASE: Duration = Duration::from_secs(1);

/// The bytes a chunk aims at: small, so a save of the checks' 768 KiB versions is six chunk
/// PUTs, with room for a crash between them.
pub const CHUNK_BYTES: usize = 128 << 10;

/// The local S3 server, or why there is none.
enum Server {
    /// Started by this process.
    Started(S3Server),
    /// Started by the process that started this one.
    Given(String),
    /// None: why.
    Missing(String),
}

impl Server {
    fn endpoint(&self) -> Option<String> {
        match self {
            Server::Started(server) => Some(server.endpoint()),
            Server::Given(endpoint) => Some(endpoint.clone()),
            Server::Missing(_) => None,
        }
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(endpoint) = std::env::var(ENDPOINT_ENV) {
            return Server::Given(endpoint);
        }
        match S3Server::start() {
            Ok(server) => {
                ndstore_conformance::child::pass_to_children(ENDPOINT_ENV, &server.endpoint());
                Server::Started(server)
            }
            Err(e) => Server::Missing(e),
        }
    })
}

/// Whether a missing server must fail rather than skip.
fn server_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_some()
}

/// The target `prefix` in the server's bucket, or `None` without a server.
pub fn s3_at(prefix: &str) -> Option<ObjectTarget> {
    let endpoint = server().endpoint()?;
    let settings = ndstore_conformance::python::s3_settings(&endpoint);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Some(
        ObjectTarget::from_url_with(&format!("s3://{S3_BUCKET}/{prefix}"), &settings)
            .unwrap()
            .with_lease_duration(LEASE),
    )
}

/// The backend under test: arrays under `conformance/` in the server's bucket (in memory
/// when there is no server; every check then SKIPs or fails before using it).
fn backend() -> ZarrObjectBackend {
    static BACKEND: OnceLock<ZarrObjectBackend> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let target = s3_at("conformance").unwrap_or_else(|| {
                ObjectTarget::in_memory("conformance")
                    .unwrap()
                    .with_lease_duration(LEASE)
            });
            ZarrObjectBackend::new(target).with_chunk_bytes(CHUNK_BYTES)
        })
        .clone()
}

/// What the `zarr-s3` backend knows beyond the shared checks.
struct S3Fixtures;

impl Fixtures for S3Fixtures {
    fn chunk_shape(&self, meta: &ArrayMeta) -> Option<Vec<usize>> {
        Some(backend().chunk_shape(&meta.shape, meta.dtype.itemsize()))
    }

    fn arrays_may_exceed_file(&self) -> bool {
        // Chunks never written read as the fill value.
        true
    }

    fn own_check(&self, check: Check, ctx: &Ctx<'_>) -> Option<Result<CheckResult, String>> {
        if check == Check::Security {
            return Some(Ok(CheckResult {
                id: check,
                status: Status::NotApplicable,
                cases: 0,
                failures: 0,
                detail: "object storage has no file modes, owners or symbolic links to keep"
                    .to_owned(),
                notes: Vec::new(),
            }));
        }
        if let Server::Missing(why) = server() {
            if server_required() {
                return Some(Err(format!("the local S3 server is required here: {why}")));
            }
            return Some(Ok(CheckResult::skipped(
                check,
                &format!("no local S3 server: {why}"),
            )));
        }
        match check {
            Check::FlushOnDrop => Some(drops::fd(ctx)),
            Check::Concurrency => Some(races::co(ctx)),
            Check::BadInput => Some(untrusted::bi(ctx)),
            Check::InjectedIo => Some(faults::io(ctx)),
            Check::FsyncFailure => Some(faults::fs(ctx)),
            Check::PowerLoss => Some(faults::cp(ctx)),
            Check::Interop => Some(ix()),
            _ => None,
        }
    }
}

/// IX: zarr-python through obstore reads what ndstore-zarr saved to the server and writes
/// arrays ndstore-zarr reads back (tests/s3_interop).
fn ix() -> Result<CheckResult, String> {
    let Server::Started(server) = server() else {
        return Err("IX runs in the process that started the server".to_owned());
    };
    let (cases, failures) = s3_interop::both_ways(server, "conformance-ix")?;
    Ok(CheckResult::counted(
        Check::Interop,
        cases as u64,
        &failures,
        "zarr-python 3 (through obstore's S3 store) reads ndstore-zarr's arrays on the local S3 server and ndstore-zarr reads zarr-python's: five dtypes in both byte orders, plain, transposed, gzip, zstd, crc32c and sharded",
    ))
}

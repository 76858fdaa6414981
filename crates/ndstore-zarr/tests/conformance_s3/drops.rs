//! FD on object storage: a writer dropped without its commit, in a thread or during a panic,
//! publishes nothing new. Over a new array, nothing stays under the prefix (its chunks and its
//! lease are removed) and a reader finds no array; over an existing one, the reader finds the
//! old metadata with each chunk the old or the dropped writer's (the per-chunk promise: its
//! chunks were overwritten in place). An error met while dropping is logged. The writers run
//! against the local S3 server; the logged error against a fault-injecting store.

use std::sync::Arc;

use ndstore_conformance::{Check, CheckResult, Ctx, logcapture};
use ndstore_core::{ArrayWriter, DType, DTypeKind, DynArray, ErrorKind, Order, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::{ObjectTarget, ZarrWriter, save_object};

use crate::common::load;
use crate::judge::judge;
use crate::store::{Counted, Fault, Observed};

const COLUMNS: usize = 32;
const CHUNKS: [usize; 2] = [16, COLUMNS];
const OLD_ROWS: usize = 64;
/// Rows appended before the drop: two chunk rows, so two chunk PUTs landed.
const APPENDED: usize = 32;

fn rows(n: usize, seed: u64) -> DynArray {
    ndstore_conformance::sample::array(DTypeKind::F64, &[n, COLUMNS], Order::C, seed)
}

fn writer(target: &ObjectTarget) -> ndstore_core::Result<ZarrWriter> {
    ZarrWriter::create_object(
        target,
        DType::native(DTypeKind::F64),
        &[COLUMNS],
        &CHUNKS,
        &SaveOptions::default(),
    )
}

/// The objects under `target`'s prefix.
fn objects(target: &ObjectTarget) -> Result<Vec<String>, String> {
    use futures::TryStreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let prefix = ndstore_zarr::object_store::path::Path::from(target.prefix());
    let listed: Vec<_> = runtime
        .block_on(target.store().list(Some(&prefix)).try_collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
}

/// Appends, then drops the writer: here, or on a thread that panics.
fn append_and_drop(target: &ObjectTarget, panic: bool) -> Result<(), String> {
    let mut w = writer(target).map_err(|e| e.to_string())?;
    w.append(&rows(APPENDED, 7)).map_err(|e| e.to_string())?;
    if panic {
        let joined = std::thread::spawn(move || {
            let _writer = w;
            panic!("the writing thread dies");
        })
        .join();
        if joined.is_ok() {
            return Err("the thread did not panic".to_owned());
        }
    } else {
        drop(w);
    }
    Ok(())
}

fn new_array_dropped(target: &ObjectTarget, panic: bool) -> Result<(), String> {
    append_and_drop(target, panic)?;
    match load(target) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "the reader finds an error, not an absent array: {e}"
            ));
        }
        Ok(_) => return Err("the dropped writer published an array".to_owned()),
    }
    let left = objects(target)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("objects stayed under the prefix: {left:?}"))
    }
}

fn replaced_array_dropped(target: &ObjectTarget, panic: bool) -> Result<(), String> {
    let old = rows(OLD_ROWS, 1);
    let meta = ZarrMeta::new(DType::native(DTypeKind::F64), &[OLD_ROWS, COLUMNS], &CHUNKS)
        .map_err(|e| e.to_string())?;
    save_object(target, &old, meta, &SaveOptions::default()).map_err(|e| e.to_string())?;
    append_and_drop(target, panic)?;
    // What the reader may find per chunk: the old rows, or the dropped writer's.
    let mut new = old.clone().into_typed::<f64>().map_err(|e| e.to_string())?;
    let appended = rows(APPENDED, 7)
        .into_typed::<f64>()
        .map_err(|e| e.to_string())?;
    new.slice_axis_mut(ndarray::Axis(0), ndarray::Slice::from(0..APPENDED))
        .assign(&appended);
    // The old metadata (its shape) with every chunk the old or the writer's.
    judge(
        &load(target),
        Some(&old),
        &DynArray::from(new),
        &CHUNKS,
        false,
    )
    .map(drop)
}

/// A writer whose lease cannot be released when it is dropped logs the error.
fn error_on_drop_is_logged() -> Result<(), String> {
    let Some(from) = logcapture::install() else {
        return Err("another logger was installed first".to_owned());
    };
    // A clean drop, to count its requests: the last removes the lease.
    let clean = Observed::new(InMemory::new(), 0, Counted::Any, Fault::Fail);
    let target = |store: &Observed| {
        ObjectTarget::new(Arc::new(store.clone()), "memory://", "a.zarr").unwrap()
    };
    append_and_drop(&target(&clean), false)?;
    let last = clean.requests();
    let failing = Observed::new(InMemory::new(), last, Counted::Any, Fault::Unavailable);
    append_and_drop(&target(&failing), false)?;
    let logged = logcapture::records_since(from).unwrap_or_default();
    if logged.iter().any(|r| r.contains("lease")) {
        Ok(())
    } else {
        Err(format!(
            "the failed release was not logged (logged: {logged:?})"
        ))
    }
}

/// FD: see the module documentation.
pub fn fd(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let _ = ctx;
    let root = crate::s3_at(&format!("conformance-fd/{}", std::process::id()))
        .ok_or("no local S3 server")?;
    let mut cases = 0;
    let mut failures = Vec::new();
    for panic in [false, true] {
        let how = if panic {
            "during a panic"
        } else {
            "uncommitted"
        };
        for (what, case) in [
            (
                "new array",
                new_array_dropped as fn(&ObjectTarget, bool) -> Result<(), String>,
            ),
            ("replaced array", replaced_array_dropped),
        ] {
            cases += 1;
            let target = root
                .at(&format!("{}/{cases}.zarr", root.prefix()))
                .map_err(|e| e.to_string())?;
            if let Err(e) = case(&target, panic) {
                failures.push(format!("{what}, writer dropped {how}: {e}"));
            }
        }
    }
    cases += 1;
    if let Err(e) = error_on_drop_is_logged() {
        failures.push(format!("an error on drop: {e}"));
    }
    Ok(CheckResult::counted(
        Check::FlushOnDrop,
        cases,
        &failures,
        &format!(
            "streaming writers that appended {APPENDED} rows (two chunk PUTs) dropped without their commit, plainly and during a panic, on the local S3 server: a new array stays absent with nothing left under its prefix, a replaced one keeps its metadata with every chunk the old or the dropped writer's; an error on drop is logged"
        ),
    ))
}

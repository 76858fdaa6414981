//! BI on object storage: the `zarr` backend's hostile array trees, and its realistic arrays
//! damaged object by object (cut short, bytes corrupted), uploaded to the local S3 server and
//! read through the S3 path. Each must fail with a clear error naming the array's object (the
//! damaged chunk's own key for a checksummed chunk), or for a damaged `zarr.json` that still
//! parses, load; never panic, and never allocate more than the objects justify: a counting
//! allocator measures each load's peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndstore_conformance::{Check, CheckResult, Ctx, tree};
use ndstore_core::{LoadOptions, SaveOptions};
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{ObjectStoreExt, PutPayload};
use ndstore_zarr::{ObjectTarget, ZarrArray};

/// The system allocator, counting the bytes allocated now and their peak.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most a load of these small arrays (at most 2 MiB of objects, 2 MiB of values) may
/// allocate at its peak beyond what was allocated before it.
const MAX_GROWTH: usize = 64 << 20;

/// The hostile tree that means nothing on object storage: a directory where a chunk should be
/// is, as objects, an unrelated key below the chunk's, and the chunk itself is absent (which
/// Zarr reads as the fill value).
const NO_MEANING: &str = "chunk-is-a-directory.zarr";

/// Uploads the tree packed in `packed` to `target`, replacing `damaged` (a key) with `bytes`
/// when given.
fn upload(
    target: &ObjectTarget,
    packed: &[u8],
    damaged: Option<(&str, &[u8])>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store = target.store().clone();
    for entry in tree::entries(packed) {
        let range = entry.content.start as usize..entry.content.end as usize;
        let bytes = match damaged {
            Some((key, bytes)) if key == entry.path => bytes.to_vec(),
            _ => packed[range].to_vec(),
        };
        let location = Path::from(format!("{}/{}", target.prefix(), entry.path));
        runtime
            .block_on(store.put(&location, PutPayload::from(bytes)))
            .map_err(|e| format!("uploading {}: {e}", entry.path))?;
    }
    Ok(())
}

/// Loads the array at `target`, catching a panic, and measures the allocation peak's growth.
fn load(target: &ObjectTarget) -> Result<(ndstore_core::Result<()>, usize), String> {
    let before = NOW.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        ZarrArray::open_object(target, &SaveOptions::default())?
            .read_all(&LoadOptions::default())
            .map(drop)
    }))
    .map_err(|_| "the load panicked".to_owned())?;
    let growth = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    Ok((loaded, growth))
}

/// Judges one load: refused with an error naming an object of the array (`key` itself when
/// given), or loaded when `may_load`; within [`MAX_GROWTH`].
fn verdict(target: &ObjectTarget, key: Option<&str>, may_load: bool) -> Result<(), String> {
    let (loaded, growth) = load(target)?;
    if growth > MAX_GROWTH {
        return Err(format!(
            "the load allocated {} MiB at its peak",
            growth >> 20
        ));
    }
    let e = match loaded {
        Ok(()) if may_load => return Ok(()),
        Ok(()) => return Err("loaded".to_owned()),
        Err(e) => e,
    };
    let named = e
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let array = target.name().to_string_lossy().into_owned();
    let expected = key.map_or(array.clone(), |k| format!("{array}/{k}"));
    if named == expected || (key.is_none() && named.starts_with(&array)) {
        Ok(())
    } else {
        Err(format!("the error names {named:?}, not {expected:?}: {e}"))
    }
}

/// BI: see the module documentation.
pub fn bi(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let root = crate::s3_at(&format!("conformance-bi/{}", std::process::id()))
        .ok_or("no local S3 server")?;
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut hostile = 0;
    for case in crate::zarr_fixtures::hostile_trees() {
        if case.name == NO_MEANING {
            continue;
        }
        cases += 1;
        hostile += 1;
        let target = root
            .at(&format!("{}/hostile/{}", root.prefix(), case.name))
            .unwrap();
        let result =
            upload(&target, &case.bytes, None).and_then(|()| verdict(&target, None, case.valid));
        if let Err(e) = result {
            failures.push(format!("hostile {}: {e}", case.name));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut damaged = 0;
    for (name, meta, values) in crate::zarr_fixtures::realistic_arrays()? {
        let path = dir.path().join(name);
        ndstore_zarr::save_with(&path, &values, meta, &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        let packed = tree::pack(&path)?;
        let target = root
            .at(&format!("{}/damaged/{name}", root.prefix()))
            .unwrap();
        for entry in tree::entries(&packed) {
            let content = &packed[entry.content.start as usize..entry.content.end as usize];
            let json = entry.path == "zarr.json";
            let len = content.len();
            let mut variants: Vec<(String, Vec<u8>)> = [0, len / 2, len.saturating_sub(1)]
                .into_iter()
                .map(|at| (format!("cut at {at}"), content[..at].to_vec()))
                .collect();
            let flips = if json {
                ctx.mode.count(12, 64)
            } else {
                ctx.mode.count(4, 16)
            };
            for i in 0..flips as usize {
                let at = i * len / flips as usize;
                let mut bytes = content.to_vec();
                bytes[at] ^= 0x5a;
                variants.push((format!("byte {at} corrupted"), bytes));
            }
            for (what, bytes) in variants {
                cases += 1;
                damaged += 1;
                let result = upload(&target, &packed, Some((&entry.path, &bytes))).and_then(|()| {
                    // A checksummed chunk's damage must be named at that chunk; zarr.json may
                    // still parse (a digit or a space changed) and then load.
                    if json {
                        verdict(&target, None, true)
                    } else {
                        verdict(&target, Some(&entry.path), false)
                    }
                });
                if let Err(e) = result {
                    failures.push(format!("{name} {} {what}: {e}", entry.path));
                }
            }
        }
    }
    Ok(CheckResult::counted(
        Check::BadInput,
        cases,
        &failures,
        &format!(
            "{hostile} hostile trees of the zarr backend ({NO_MEANING} has no meaning as objects) and {damaged} damaged objects of its realistic arrays (cut, bytes corrupted), uploaded to the local S3 server and read through the S3 path: a clear error naming the object (the damaged chunk's key), no panic, at most {} MiB allocated at a load's peak",
            MAX_GROWTH >> 20
        ),
    ))
}

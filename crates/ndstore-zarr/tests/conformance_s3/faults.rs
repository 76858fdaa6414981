//! IO, FS and CP on object storage, through the fault-injecting, request-logging store of
//! [`crate::store`] over `InMemory` (what the checks observe is the requests, which are the
//! same on any store):
//!
//! - IO: the n-th request of a save fails, is answered 503, or lands and then times out, for
//!   every n of a small save and a spread of n over a larger one: the save returns an error
//!   (or succeeds when the fault came after its commit landed, and the new version is then
//!   whole), never panics, and a reader finds per chunk the old or the new version under one
//!   version's metadata, exactly the old array when no chunk landed, or (a new array) nothing.
//! - FS: a PUT made by `sync` fails: that sync errs, and every later sync and the commit err
//!   with `Poisoned`, nothing is published, and a fresh save then succeeds.
//! - CP: the log of a save's PUTs and DELETEs (each with its start and its acknowledgement)
//!   replayed as the states a crash can leave: every prefix of acknowledged requests plus
//!   any subset of those in flight, each judged as CK judges.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndstore_conformance::{Check, CheckResult, Ctx};
use ndstore_core::{
    ArrayWriter, ByteOrder, DType, DTypeKind, Durable, DynArray, ErrorKind, Order, SaveOptions,
};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ndstore_zarr::{ObjectTarget, ZarrArray, ZarrWriter, save_object};

use crate::judge::{judge, read};
use crate::store::{Counted, Fault, Observed, Op};

/// The prefix the checks save to.
const PREFIX: &str = "a.zarr";

/// The writers' lease here: short, so a fresh save after a writer that lost track of its
/// lease waits little.
const LEASE: Duration = Duration::from_millis(200);

/// One array configuration: shape, chunk (or shard) shape, sharded or not.
#[derive(Clone, Copy, Debug)]
struct Layout {
    name: &'static str,
    shape: [usize; 2],
    chunks: [usize; 2],
    sharded: bool,
}

const SMALL: [Layout; 2] = [
    Layout {
        name: "48x40 f64 in 16x16 chunks",
        shape: [48, 40],
        chunks: [16, 16],
        sharded: false,
    },
    Layout {
        name: "48x40 f64 in 24x40 shards of 8x8",
        shape: [48, 40],
        chunks: [24, 40],
        sharded: true,
    },
];

const LARGE: Layout = Layout {
    name: "256x256 f64 in 32x32 chunks",
    shape: [256, 256],
    chunks: [32, 32],
    sharded: false,
};

impl Layout {
    fn meta(&self) -> ZarrMeta {
        let mut meta =
            ZarrMeta::new(DType::native(DTypeKind::F64), &self.shape, &self.chunks).unwrap();
        if self.sharded {
            let le = Codec::Bytes(Some(ByteOrder::Little));
            meta.codecs = CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
                chunk_shape: vec![8, 8],
                codecs: CodecChain::new(vec![le.clone()]),
                index_codecs: CodecChain::new(vec![le, Codec::Crc32c]),
                index_at_start: false,
            }))]);
        }
        meta
    }

    fn version(&self, seed: u64) -> DynArray {
        ndstore_conformance::sample::array(DTypeKind::F64, &self.shape, Order::C, seed)
    }
}

/// A target at [`PREFIX`] in `store`.
fn target(store: Arc<dyn ObjectStore>) -> ObjectTarget {
    ObjectTarget::new(store, "memory://", PREFIX)
        .unwrap()
        .with_lease_duration(LEASE)
}

/// The store before the save: empty, or holding the old version.
fn base(layout: &Layout, old: Option<&DynArray>) -> InMemory {
    let base = InMemory::new();
    if let Some(old) = old {
        save_object(
            &target(Arc::new(base.clone())),
            old,
            layout.meta(),
            &SaveOptions::default(),
        )
        .unwrap();
    }
    base
}

/// Whether the log holds a landed PUT of the array's `zarr.json`, and whether that one was
/// acknowledged.
fn commit_in(log: &[Op]) -> (bool, bool) {
    let json = Path::from(format!("{PREFIX}/zarr.json"));
    log.iter()
        .filter(|op| op.key == json && op.put.is_some())
        .fold((false, false), |(_, acked), op| {
            (true, acked || op.ack.is_some())
        })
}

/// Whether the log holds a landed chunk PUT.
fn chunk_landed(log: &[Op]) -> bool {
    log.iter().any(|op| {
        op.put.is_some()
            && op
                .key
                .as_ref()
                .strip_prefix(&format!("{PREFIX}/"))
                .is_some_and(|k| k.starts_with("c/"))
    })
}

/// The request numbers a fault is injected into for a save of `requests` requests: every one
/// for a small save, about 24 spread over a large one (its first and last among them).
fn injection_points(requests: usize, every: bool) -> Vec<usize> {
    if every || requests <= 24 {
        return (1..=requests).collect();
    }
    let mut points: Vec<usize> = (0..24).map(|i| 1 + i * (requests - 1) / 23).collect();
    points.dedup();
    points
}

/// IO: see the module documentation.
pub fn io(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let _ = ctx;
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut what = Vec::new();
    for (layout, every) in [(SMALL[0], true), (SMALL[1], true), (LARGE, false)] {
        for replaced in [false, true] {
            let old = replaced.then(|| layout.version(1));
            let new = layout.version(2);
            let base = base(&layout, old.as_ref());
            let clean = Observed::plain(base.fork());
            save_object(
                &target(Arc::new(clean.clone())),
                &new,
                layout.meta(),
                &SaveOptions::default(),
            )
            .map_err(|e| format!("a save without faults failed: {e}"))?;
            let points = injection_points(clean.requests(), every);
            let (mut erred, mut mixed) = (0, 0);
            for fault in Fault::ALL {
                for &at in &points {
                    cases += 1;
                    let case = format!(
                        "{} ({}), {fault:?} at request {at} of {}",
                        layout.name,
                        if replaced { "replaced" } else { "new" },
                        clean.requests()
                    );
                    match inject(&layout, &base, old.as_ref(), &new, at, fault) {
                        Ok((e, m)) => {
                            erred += usize::from(e);
                            mixed += usize::from(m);
                        }
                        Err(e) => failures.push(format!("{case}: {e}")),
                    }
                }
            }
            what.push(format!(
                "{} {}: {} requests × 3 faults ({erred} saves erred, {mixed} left a per-chunk mix)",
                if replaced { "replacing" } else { "new" },
                layout.name,
                points.len()
            ));
        }
    }
    Ok(CheckResult::counted(
        Check::InjectedIo,
        cases,
        &failures,
        &format!(
            "the n-th request of a save fails, is answered 503, or lands and times out (every n of small saves, 24 spread over a large one): the save errs unless its commit landed, never panics, and a reader finds a new array absent or whole, a replaced one per chunk old or new (the old one whole when no chunk landed): {}",
            what.join("; ")
        ),
    ))
}

/// One IO case; returns whether the save erred and whether it left a mix.
fn inject(
    layout: &Layout,
    base: &InMemory,
    old: Option<&DynArray>,
    new: &DynArray,
    at: usize,
    fault: Fault,
) -> Result<(bool, bool), String> {
    let store = Observed::new(base.fork(), at, Counted::Any, fault);
    let saved = catch_unwind(AssertUnwindSafe(|| {
        save_object(
            &target(Arc::new(store.clone())),
            new,
            layout.meta(),
            &SaveOptions::default(),
        )
    }))
    .map_err(|_| "the save panicked".to_owned())?;
    let log = store.log();
    let (landed, acked) = commit_in(&log);
    if saved.is_err() && acked {
        return Err("the save erred after its commit was acknowledged".to_owned());
    }
    if saved.is_ok() && !acked {
        return Err(format!(
            "the save returned Ok without an acknowledged commit (the commit landed: {landed})"
        ));
    }
    let found = read(Arc::new(store.inner().clone()), PREFIX);
    let mix = judge(&found, old, new, &layout.chunks, saved.is_ok())?;
    if !chunk_landed(&log) && !landed {
        let unchanged = match (&found, old) {
            (Err(e), None) => e.kind() == ErrorKind::NotFound,
            (Ok(found), Some(old)) => crate::common::bits(found) == crate::common::bits(old),
            _ => false,
        };
        if !unchanged {
            return Err("no chunk landed, but the target is not exactly the old one".to_owned());
        }
    }
    Ok((saved.is_err(), mix))
}

/// Saves `array` at the target over `store`, waiting while another writer's lease holds it
/// (it expires after [`LEASE`]).
fn save_waiting(
    store: Arc<dyn ObjectStore>,
    layout: &Layout,
    array: &DynArray,
) -> Result<(), String> {
    let deadline = Instant::now() + LEASE * 4;
    loop {
        match save_object(
            &target(store.clone()),
            array,
            layout.meta(),
            &SaveOptions::default(),
        ) {
            Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result.map_err(|e| e.to_string()),
        }
    }
}

/// FS: see the module documentation.
pub fn fs(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let _ = ctx;
    let layout = SMALL[0];
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    let mut recoveries = 0;
    for handle in ["streaming writer", "region writer"] {
        // The PUTs of a clean run: those before the sync, and those the sync makes.
        let clean = Observed::new(InMemory::new(), 0, Counted::Puts, Fault::Fail);
        let (before, during) = sync_puts(handle, &layout, &clean)?;
        counts.push(format!("{handle}: {during} PUTs in its sync"));
        for fault in Fault::ALL {
            for at in before + 1..=before + during {
                cases += 1;
                match failed_sync(handle, &layout, at, fault) {
                    Ok(()) => {}
                    Err(e) if e == RECOVERED => recoveries += 1,
                    Err(e) => failures.push(format!(
                        "{handle}, {fault:?} at PUT {at} (the sync's {}): {e}",
                        at - before
                    )),
                }
            }
        }
    }
    Ok(CheckResult::counted(
        Check::FsyncFailure,
        cases,
        &failures,
        &format!(
            "every PUT a sync makes fails, is answered 503, or lands and times out ({}): that sync errs, every later sync and the commit err with Poisoned, nothing is published, and a fresh save then succeeds; {recoveries} timeouts of the lease's claim were recovered by reading the claim back, and those writers committed exactly their rows",
            counts.join("; ")
        ),
    ))
}

/// What a handle wrote before its sync: half a chunk row of 16 rows.
const ROWS: usize = 8;

/// A handle of kind `handle` over `store`: written (the first [`ROWS`] rows of version 2),
/// not synced. Returns the sync, later sync and commit as closures over it.
enum Handle {
    Streaming(Box<ZarrWriter>),
    Region(ZarrArray),
}

impl Handle {
    fn open(handle: &str, layout: &Layout, store: &Observed) -> Result<Handle, String> {
        let new = layout.version(2);
        let rows = new
            .clone()
            .into_typed::<f64>()
            .map_err(|e| e.to_string())?
            .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..ROWS))
            .to_owned();
        let target = target(Arc::new(store.clone()));
        if handle == "streaming writer" {
            let mut writer = ZarrWriter::create_object(
                &target,
                DType::native(DTypeKind::F64),
                &layout.shape[1..],
                &layout.chunks,
                &SaveOptions::default(),
            )
            .map_err(|e| e.to_string())?;
            writer
                .append(&DynArray::from(rows))
                .map_err(|e| format!("append: {e}"))?;
            Ok(Handle::Streaming(Box::new(writer)))
        } else {
            let array = ZarrArray::create_object(&target, layout.meta(), &SaveOptions::default())
                .map_err(|e| e.to_string())?;
            Ok(Handle::Region(array))
        }
    }

    /// The sync: the streaming writer's `sync` (which writes its partial chunk), or for the
    /// region writer, writing the rows and then `sync`.
    fn sync(&mut self, layout: &Layout) -> ndstore_core::Result<()> {
        match self {
            Handle::Streaming(w) => w.sync(),
            Handle::Region(a) => {
                let rows = layout
                    .version(2)
                    .into_typed::<f64>()?
                    .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..ROWS))
                    .to_owned();
                a.write_region(&[0, 0], &DynArray::from(rows))?;
                a.sync()
            }
        }
    }

    fn sync_again(&mut self) -> ndstore_core::Result<()> {
        match self {
            Handle::Streaming(w) => w.sync(),
            Handle::Region(a) => a.sync(),
        }
    }

    fn commit(self) -> ndstore_core::Result<()> {
        match self {
            Handle::Streaming(w) => w.commit(),
            Handle::Region(a) => a.write_metadata(),
        }
    }
}

/// The PUTs (as `store` counts them) made before a clean sync, and by it.
fn sync_puts(handle: &str, layout: &Layout, store: &Observed) -> Result<(usize, usize), String> {
    let mut h = Handle::open(handle, layout, store)?;
    let before = store.counted();
    h.sync(layout)
        .map_err(|e| format!("a clean sync failed: {e}"))?;
    let during = store.counted() - before;
    h.commit()
        .map_err(|e| format!("a clean commit failed: {e}"))?;
    if during == 0 {
        return Err(format!("the {handle}'s sync made no PUT"));
    }
    Ok((before, during))
}

/// One FS case.
fn failed_sync(handle: &str, layout: &Layout, at: usize, fault: Fault) -> Result<(), String> {
    let store = Observed::new(InMemory::new(), at, Counted::Puts, fault);
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let mut h = Handle::open(handle, layout, &store)?;
        if h.sync(layout).is_ok() {
            return recovered(h, layout, &store, fault);
        }
        match h.sync_again() {
            Err(e) if e.kind() == ErrorKind::Poisoned => {}
            Err(e) => return Err(format!("the next sync erred, but not Poisoned: {e}")),
            Ok(()) => return Err("the next sync returned Ok".to_owned()),
        }
        match h.commit() {
            Err(e) if e.kind() == ErrorKind::Poisoned => Ok(()),
            Err(e) => Err(format!("the commit erred, but not Poisoned: {e}")),
            Ok(()) => Err("the commit returned Ok".to_owned()),
        }
    }))
    .map_err(|_| "panicked".to_owned())?;
    match outcome {
        Err(e) if e == RECOVERED => return Err(e),
        other => other?,
    }
    match read(Arc::new(store.inner().clone()), PREFIX) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("after the failure the target does not read: {e}")),
        Ok(_) => return Err("a failed writer published an array".to_owned()),
    }
    let fresh = Arc::new(store.inner().clone());
    save_waiting(fresh.clone(), layout, &layout.version(3))
        .map_err(|e| format!("a fresh save failed: {e}"))?;
    let found = read(fresh, PREFIX).map_err(|e| format!("the fresh save does not read: {e}"))?;
    if crate::common::bits(&found) != crate::common::bits(&layout.version(3)) {
        return Err("the fresh save reads other values".to_owned());
    }
    Ok(())
}

/// A sync that returned Ok although one of its PUTs was answered with an error: acceptable
/// only for the writer lease's claim that landed and that the writer read back as its own
/// (the claim's record is unique, so the outcome is known, not guessed); the handle must then
/// commit and the array read back exactly.
fn recovered(h: Handle, layout: &Layout, store: &Observed, fault: Fault) -> Result<(), String> {
    let unanswered: Vec<Op> = store
        .log()
        .into_iter()
        .filter(|op| op.ack.is_none())
        .collect();
    let lease_claim = fault == Fault::TimeoutAfterLanding
        && unanswered.len() == 1
        && unanswered[0].key.as_ref().ends_with("/.ndstore-lease");
    if !lease_claim {
        return Err("the sync whose PUT failed returned Ok".to_owned());
    }
    h.commit()
        .map_err(|e| format!("after a verified lease claim, the commit failed: {e}"))?;
    let found = read(Arc::new(store.inner().clone()), PREFIX)
        .map_err(|e| format!("after a verified lease claim, the array does not read: {e}"))?;
    let rows = layout
        .version(2)
        .into_typed::<f64>()
        .map_err(|e| e.to_string())?
        .mapv(f64::to_bits);
    let found = crate::common::bits(&found);
    let written = rows.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..ROWS));
    let read_back = found.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..ROWS));
    if read_back != written {
        return Err("after a verified lease claim, the array reads other values".to_owned());
    }
    Err(RECOVERED.to_owned())
}

/// What [`recovered`] returns for a case that held by recovering (counted apart, not failed).
const RECOVERED: &str = "recovered";

/// At most this many subsets of the requests in flight at one moment are tried.
const MAX_SUBSETS: u64 = 64;

/// CP: see the module documentation.
pub fn cp(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let _ = ctx;
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut what = Vec::new();
    for layout in SMALL {
        for replaced in [false, true] {
            let old = replaced.then(|| layout.version(1));
            let new = layout.version(2);
            let base = base(&layout, old.as_ref());
            let recorded = Observed::slow(base.fork(), Duration::from_millis(2));
            save_object(
                &target(Arc::new(recorded.clone())),
                &new,
                layout.meta(),
                &SaveOptions::default(),
            )
            .map_err(|e| format!("a save without faults failed: {e}"))?;
            if recorded.unlogged() > 0 {
                return Err("the save made requests the log cannot replay".to_owned());
            }
            let log = recorded.log();
            let (states, mixed, widest) =
                replay(&layout, &base, &log, old.as_ref(), &new, &mut failures)?;
            cases += states;
            what.push(format!(
                "{} {}: {} requests, {states} crash states ({mixed} a per-chunk mix, up to {widest} requests in flight)",
                if replaced { "replacing" } else { "new" },
                layout.name,
                log.len()
            ));
        }
    }
    Ok(CheckResult::counted(
        Check::PowerLoss,
        cases,
        &failures,
        &format!(
            "crash states from the request log of saves (every prefix of acknowledged PUTs and DELETEs plus any subset of those in flight), judged as CK judges: {}",
            what.join("; ")
        ),
    ))
}

/// Every crash state of `log` over `base`, judged; returns the states, the mixes among them
/// and the most requests in flight at once.
fn replay(
    layout: &Layout,
    base: &InMemory,
    log: &[Op],
    old: Option<&DynArray>,
    new: &DynArray,
    failures: &mut Vec<String>,
) -> Result<(u64, u64, usize), String> {
    let end = log
        .iter()
        .filter_map(|op| op.ack)
        .chain(log.iter().map(|op| op.start))
        .max()
        .map_or(0, |t| t + 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let (mut states, mut mixed, mut widest) = (0u64, 0u64, 0usize);
    for moment in 0..=end {
        let acked: Vec<&Op> = log
            .iter()
            .filter(|op| op.ack.is_some_and(|a| a < moment))
            .collect();
        let in_flight: Vec<&Op> = log
            .iter()
            .filter(|op| op.start < moment && op.ack.is_none_or(|a| a >= moment))
            .collect();
        widest = widest.max(in_flight.len());
        let subsets = 1u64 << in_flight.len().min(63);
        let (_, commit_acked) =
            commit_in(&acked.iter().map(|op| (*op).clone()).collect::<Vec<_>>());
        for subset in 0..subsets.min(MAX_SUBSETS) {
            // Beyond MAX_SUBSETS, the subsets tried are spread over all of them.
            let subset = if subsets > MAX_SUBSETS {
                subset * (subsets / MAX_SUBSETS)
            } else {
                subset
            };
            let mut applied: Vec<&Op> = acked.clone();
            applied.extend(
                in_flight
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| subset >> i & 1 == 1)
                    .map(|(_, op)| *op),
            );
            applied.sort_by_key(|op| op.start);
            let state = base.fork();
            runtime
                .block_on(async {
                    for op in &applied {
                        match &op.put {
                            Some(bytes) => {
                                state.put(&op.key, PutPayload::from(bytes.clone())).await?;
                            }
                            None => state.delete(&op.key).await?,
                        }
                    }
                    Ok::<(), ndstore_zarr::object_store::Error>(())
                })
                .map_err(|e| e.to_string())?;
            states += 1;
            let found = read(Arc::new(state), PREFIX);
            match judge(&found, old, new, &layout.chunks, commit_acked) {
                Ok(mix) => mixed += u64::from(mix),
                Err(e) => failures.push(format!(
                    "{} ({}), crash at moment {moment} of {end} with {} acknowledged and {} of {} in flight applied: {e}",
                    layout.name,
                    if old.is_some() { "replaced" } else { "new" },
                    acked.len(),
                    subset.count_ones(),
                    in_flight.len()
                )),
            }
        }
    }
    Ok((states, mixed, widest))
}

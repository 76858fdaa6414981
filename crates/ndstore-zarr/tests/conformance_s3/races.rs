//! CO on object storage: committers race for one array. Threads race on `InMemory`, whose
//! conditional puts are atomic (moto's check-then-act is not under races); the protocol is
//! then checked one request at a time against the local S3 server.
//!
//! Every racer opens the array before any of them writes, so at most one may commit: exactly
//! one wins, every other gets a conflict (`Locked`), and the array is the winner's version,
//! whole. A reader loading during an update race finds per chunk the old or the winner's
//! version, under one version's metadata (the per-chunk promise), never a loser's chunk.

use std::sync::{Arc, Barrier};

use ndstore_conformance::{Check, CheckResult, Ctx};
use ndstore_core::{ArrayWriter, DType, DTypeKind, DynArray, ErrorKind, Order, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::ObjectStore;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::{ObjectTarget, ZarrArray, ZarrWriter, save_object};

use crate::common::bits;
use crate::judge::read;

const SHAPE: [usize; 2] = [64, 32];
const CHUNKS: [usize; 2] = [16, 16];
const RACERS: usize = 6;

fn meta() -> ZarrMeta {
    ZarrMeta::new(DType::native(DTypeKind::F64), &SHAPE, &CHUNKS).unwrap()
}

fn version(seed: u64) -> DynArray {
    ndstore_conformance::sample::array(DTypeKind::F64, &SHAPE, Order::C, seed)
}

/// CO: see the module documentation.
pub fn co(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let rounds = ctx.mode.count(20, 200);
    let mut failures = Vec::new();
    let mut cases = 0;
    for round in 0..rounds {
        for (race, run) in [
            ("new array", new_array_race as fn(u64) -> Result<(), String>),
            ("update", update_race),
        ] {
            cases += 1;
            if let Err(e) = run(round) {
                failures.push(format!("{race} race {round}: {e}"));
            }
        }
    }
    let target = crate::s3_at(&format!("conformance-co/{}", std::process::id()))
        .ok_or("no local S3 server")?;
    for (name, case) in [
        (
            "moto: a writer opened before another's commit of a new array is refused",
            stale_new_writer as fn(&ObjectTarget) -> Result<(), String>,
        ),
        (
            "moto: a writer opened before another's update is refused",
            stale_updater,
        ),
    ] {
        cases += 1;
        if let Err(e) = case(&target.at(&format!("{}/{cases}", target.prefix())).unwrap()) {
            failures.push(format!("{name}: {e}"));
        }
    }
    Ok(CheckResult::counted(
        Check::Concurrency,
        cases,
        &failures,
        &format!(
            "{rounds} races of {RACERS} threads creating one new array and {rounds} updating one (in memory, atomic conditional puts): exactly one commit wins, the others get a conflict, the array is the winner's whole, and a reader during the updates finds per chunk the old or the winner's version; on the local S3 server, one request at a time, a writer opened before another's commit is refused"
        ),
    ))
}

/// Judges a race's outcomes: exactly one Ok, every other a `Locked` error; returns the
/// winner.
fn one_winner(outcomes: &[ndstore_core::Result<()>]) -> Result<usize, String> {
    let winners: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_ok())
        .collect();
    if winners.len() != 1 {
        return Err(format!("{} committers won", winners.len()));
    }
    for outcome in outcomes {
        if let Err(e) = outcome
            && e.kind() != ErrorKind::Locked
        {
            return Err(format!("a loser got an error that is not a conflict: {e}"));
        }
    }
    Ok(winners[0])
}

/// Racers create one new array through streaming writers, all opened before any appends.
fn new_array_race(round: u64) -> Result<(), String> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let target = ObjectTarget::new(store.clone(), "memory://", "race.zarr").unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let outcomes: Vec<ndstore_core::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACERS)
            .map(|w| {
                let (target, barrier) = (target.clone(), barrier.clone());
                s.spawn(move || {
                    let writer = ZarrWriter::create_object(
                        &target,
                        DType::native(DTypeKind::F64),
                        &SHAPE[1..],
                        &CHUNKS,
                        &SaveOptions::default(),
                    );
                    barrier.wait();
                    let mut writer = writer?;
                    writer.append(&version(seed(round, w)))?;
                    Box::new(writer).commit()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a racer panicked")))
            .collect()
    });
    let winner = one_winner(&outcomes)?;
    let found = read(store, "race.zarr").map_err(|e| format!("the array does not read: {e}"))?;
    if bits(&found) != bits(&version(seed(round, winner))) {
        return Err("the array is not the winner's version".to_owned());
    }
    Ok(())
}

fn seed(round: u64, writer: usize) -> u64 {
    1000 * (round + 1) + writer as u64 + 1
}

/// Racers update one existing array through region writes, all opened before any writes,
/// while a reader loads it.
fn update_race(round: u64) -> Result<(), String> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let target = ObjectTarget::new(store.clone(), "memory://", "race.zarr").unwrap();
    let old = version(seed(round, 99));
    save_object(&target, &old, meta(), &SaveOptions::default()).map_err(|e| e.to_string())?;
    let barrier = Arc::new(Barrier::new(RACERS));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (outcomes, reads): (
        Vec<ndstore_core::Result<()>>,
        Vec<ndstore_core::Result<DynArray>>,
    ) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                reads.push(read(store.clone(), "race.zarr"));
            }
            reads
        });
        let handles: Vec<_> = (0..RACERS)
            .map(|w| {
                let (target, barrier) = (target.clone(), barrier.clone());
                s.spawn(move || {
                    let array = ZarrArray::open_object(&target, &SaveOptions::default());
                    barrier.wait();
                    let array = array?;
                    array.write_region(&[0, 0], &version(seed(round, w)))?;
                    array.write_metadata()
                })
            })
            .collect();
        let outcomes = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a racer panicked")))
            .collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (outcomes, reader.join().unwrap_or_default())
    });
    let winner = one_winner(&outcomes)?;
    let new = version(seed(round, winner));
    let found = read(store, "race.zarr").map_err(|e| format!("the array does not read: {e}"))?;
    if bits(&found) != bits(&new) {
        return Err("the array is not the winner's version".to_owned());
    }
    for (i, read) in reads.iter().enumerate() {
        crate::judge::judge(read, Some(&old), &new, &CHUNKS, false)
            .map_err(|e| format!("read {i} during the race: {e}"))?;
    }
    Ok(())
}

/// A writer opens a new array, another saves it, then the first writes and commits: it is
/// refused, and the array is the other's.
fn stale_new_writer(target: &ObjectTarget) -> Result<(), String> {
    let stale = ZarrArray::create_object(target, meta(), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    save_object(target, &version(2), meta(), &SaveOptions::default())
        .map_err(|e| format!("the other save failed: {e}"))?;
    refused_and_kept(stale, target)
}

/// Two writers open an existing array, one updates it, then the other writes and commits: it
/// is refused, and the array is the first one's update.
fn stale_updater(target: &ObjectTarget) -> Result<(), String> {
    save_object(target, &version(1), meta(), &SaveOptions::default()).map_err(|e| e.to_string())?;
    let first =
        ZarrArray::open_object(target, &SaveOptions::default()).map_err(|e| e.to_string())?;
    let stale =
        ZarrArray::open_object(target, &SaveOptions::default()).map_err(|e| e.to_string())?;
    first
        .write_region(&[0, 0], &version(2))
        .and_then(|()| first.write_metadata())
        .map_err(|e| format!("the first update failed: {e}"))?;
    drop(first);
    refused_and_kept(stale, target)
}

/// The stale writer writes version 3 and commits: it must get a conflict, and `target` must
/// still hold version 2, which the other writer committed.
fn refused_and_kept(stale: ZarrArray, target: &ObjectTarget) -> Result<(), String> {
    match stale
        .write_region(&[0, 0], &version(3))
        .and_then(|()| stale.write_metadata())
    {
        Err(e) if e.kind() == ErrorKind::Locked => {}
        Err(e) => return Err(format!("refused, but not with a conflict: {e}")),
        Ok(()) => return Err("the stale writer committed".to_owned()),
    }
    drop(stale);
    let found = crate::common::load(target).map_err(|e| e.to_string())?;
    if bits(&found) == bits(&version(2)) {
        Ok(())
    } else {
        Err("the array is not the committed version".to_owned())
    }
}

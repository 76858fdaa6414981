//! BI: hostile and damaged files give a clear error with a kind and a place — never a panic, an
//! abort, an allocation the file cannot justify, or a hang.
//!
//! The corpus (module `corpus`) has three parts: the backend's hostile inputs (lying sizes, link
//! cycles, ..., from its [`Fixtures`](crate::Fixtures)); cuts and corrupt bytes of a small valid
//! file; and structure-aware damage of realistic files of at least 1 MiB, whose fixtures map
//! their regions (headers, indexes, heaps, data, trailers): every byte of a metadata region is
//! corrupted (a bit flip, 0x00 or 0xff, in turn) and cut, data regions at sampled places (quick
//! mode spreads 128 corruptions and 32 cuts over a large metadata region).
//!
//! Every case runs in a child process under an address-space limit (module `children`), which makes
//! each damaged file just before loading it and reports how much its memory grew; a signal, an
//! abort, a hang, a hit limit, or more memory than the file justifies fails the case, and a
//! fresh child takes the rest. Then the cases a child survived run again in this process, under
//! `catch_unwind` and an address-space cap. A backend's trusted (in-process) loader runs the
//! same corpus in children, and its crashes are reported beside BI's result, never as a pass.

mod children;
mod corpus;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Ctx;
use crate::check::Check;
use crate::child;
use crate::fixtures::Expect;
use crate::report::{CheckResult, Note};

use children::run_children;
pub use children::{child_cases, outcome};
use corpus::{Corpus, Sources, build_corpus, case_len, materialise};

/// The child's address-space limit: far below what the hostile headers claim.
const MEMORY_LIMIT: u64 = 2 << 30;

/// A load may grow the reader's resident memory by this much beyond what the file's size
/// justifies (libraries, buffers, threads)...
const MEMORY_FLOOR: u64 = 64 << 20;

/// ...plus this many times the file's size (the array itself, a copy, a decompressed member).
const MEMORY_PER_FILE_BYTE: u64 = 4;

/// A case whose load grew the child's memory by more than this is not repeated in this
/// process, which has no room to spare.
const IN_PROCESS_MAX_GROWTH: u64 = 256 << 20;

/// How many damaged files of failed cases are kept for reproduction, per check run.
const KEPT_FAILURES: usize = 40;

/// How many failures the test's output lists one by one.
const PRINTED_FAILURES: usize = 100;

/// How long one file may take in the child before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a case's file is loaded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Via {
    /// The backend's own `load_with`.
    Backend,
    /// A loader of the fixtures, by name.
    Loader(String),
    /// The fixtures' trusted (in-process) loader.
    Trusted,
}

/// What is done to a source file to make a case's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Damage {
    /// Nothing: the source as it is (hostile inputs, intact realistic files).
    None,
    /// Cut to this many bytes.
    Truncate(u64),
    /// The byte at `at` replaced by `byte`.
    Set {
        /// The offset.
        at: u64,
        /// The new value.
        byte: u8,
    },
}

/// One case as the child sees it: which file to make and how to load it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCase {
    /// The name of the file made (unique in the run).
    pub name: String,
    /// How it is loaded.
    pub via: Via,
    /// The file it is made from.
    pub source: PathBuf,
    /// What is done to the source.
    pub damage: Damage,
}

/// What a case's outcome must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// A clear error.
    Error,
    /// Data or a clear error.
    Either,
    /// Data (an intact realistic file).
    Data,
}

impl From<Expect> for Want {
    fn from(expect: Expect) -> Want {
        match expect {
            Expect::MustFail => Want::Error,
            Expect::MayLoad => Want::Either,
        }
    }
}

/// A case as the parent judges it.
struct Case {
    child: ChildCase,
    want: Want,
    /// (realistic file, region) for the per-region counts.
    region: Option<(String, String)>,
}

/// Whether `outcome` is acceptable for a case that wants `want`. An out-of-memory error is an
/// honest answer only where a valid file may hold more than itself (`oom_ok`); elsewhere it
/// means the reader tried to allocate what the file could not justify.
fn judge(want: Want, outcome: &str, oom_ok: bool) -> Result<(), String> {
    if outcome == "ok" {
        return match want {
            Want::Error => Err("loaded without an error".to_owned()),
            Want::Either | Want::Data => Ok(()),
        };
    }
    if outcome.starts_with("panic") {
        return Err(outcome.to_owned());
    }
    if want == Want::Data {
        return Err(format!("the intact file does not load: {outcome}"));
    }
    let mut parts = outcome.splitn(4, ' ');
    let (_, kind, placed) = (
        parts.next(),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if placed == "nopath" {
        return Err(format!("the error does not name the file: {outcome}"));
    }
    if kind == "out_of_memory" && !oom_ok {
        return Err(format!(
            "the reader tried to allocate what the file cannot justify: {outcome}"
        ));
    }
    match (placed, kind) {
        ("placed", _) => Ok(()),
        // Errors of the operating system, of the memory limit, and of an isolated reader that
        // died name the file; no byte is to blame.
        ("unplaced", "io" | "out_of_memory" | "reader_crashed") => Ok(()),
        _ => Err(format!("the error does not say where: {outcome}")),
    }
}

/// Whether a load whose resident memory grew by `growth` bytes was justified by a file of `len`
/// bytes. `unbounded` formats (and intact files) may take any amount.
fn judge_memory(growth: u64, len: u64, unbounded: bool) -> Result<(), String> {
    let allowed = MEMORY_FLOOR + MEMORY_PER_FILE_BYTE * len;
    if unbounded || growth <= allowed {
        Ok(())
    } else {
        Err(format!(
            "a file of {len} bytes made the reader touch {} MiB of memory",
            growth >> 20
        ))
    }
}

/// Per-region tallies: cases and failures.
type Tally = BTreeMap<(String, String), (u64, u64)>;

/// The verdicts of a run so far: every case judged, the failures, and the tally per region.
struct Verdicts<'a> {
    /// Whether an out-of-memory error naming the file is an honest answer.
    oom_ok: bool,
    cases: u64,
    failures: Vec<String>,
    failed: Vec<&'a ChildCase>,
    tally: Tally,
}

impl<'a> Verdicts<'a> {
    fn record(&mut self, case: &'a Case, verdict: Result<(), String>, place: &str) {
        self.cases += 1;
        if let Some(key) = &case.region {
            let entry = self.tally.entry(key.clone()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += u64::from(verdict.is_err());
        }
        if let Err(e) = verdict {
            self.failures
                .push(format!("{} ({place}): {e}", case.child.name));
            self.failed.push(&case.child);
        }
    }
}

/// BI: see the module documentation.
pub fn bi(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let dir = ctx.dir.path().join("corpus");
    let corpus = build_corpus(ctx, &dir)?;
    let mut verdicts = Verdicts {
        oom_ok: ctx.fixtures.arrays_may_exceed_file(),
        cases: corpus.problems.len() as u64,
        failures: corpus.problems.clone(),
        failed: Vec::new(),
        tally: Tally::new(),
    };
    let mut sources = Sources::default();
    let (again, heavy) = in_children(&corpus, &dir, &mut verdicts, &mut sources)?;
    in_this_process(ctx, &again, &dir, &mut verdicts, &mut sources)?;
    let what = describe(&corpus, &verdicts, again.len(), heavy);
    let trusted = trusted(ctx, &corpus, &dir)?;
    if let Some((_, failed)) = &trusted {
        verdicts.failed.extend(failed.iter());
    }
    let kept = keep_failures(ctx, &verdicts.failed, &mut sources)?;
    let failures = &verdicts.failures;
    // The failures, for the test's output (the report keeps the first few).
    for failure in failures.iter().take(PRINTED_FAILURES) {
        println!("BI failure: {failure}");
    }
    if failures.len() > PRINTED_FAILURES {
        println!(
            "BI failure: ... and {} more",
            failures.len() - PRINTED_FAILURES
        );
    }
    let mut result = CheckResult::counted(Check::BadInput, verdicts.cases, failures, &what);
    if !failures.is_empty() {
        // The failures first, then what the corpus was.
        result.detail = format!("{}; the corpus: {what}", result.detail);
    }
    if let Some(kept) = &kept {
        result.detail.push_str(&format!(
            "; the damaged files of the first {} failures are kept in {kept}",
            verdicts.failed.len().min(KEPT_FAILURES)
        ));
    }
    if let Some((note, _)) = trusted {
        result = result.with_note(note);
    }
    Ok(result)
}

/// Every case in memory-limited children. Returns the cases to repeat in this process (those a
/// child survived without taking much memory or running out of it), and how many were left out
/// for their memory.
fn in_children<'a>(
    corpus: &'a Corpus,
    dir: &Path,
    verdicts: &mut Verdicts<'a>,
    sources: &mut Sources,
) -> Result<(Vec<&'a Case>, usize), String> {
    let cases: Vec<&ChildCase> = corpus.cases.iter().map(|c| &c.child).collect();
    let outcomes = run_children(&cases, dir, "children")?;
    let mut again = Vec::new();
    let mut heavy = 0;
    for (case, outcome) in corpus.cases.iter().zip(&outcomes) {
        let verdict = match outcome {
            Ok(said) => {
                // Repeated here, a load that took much memory, or ran out of it under the
                // child's limit, could take the machine's.
                let growth = said.growth_kib.unwrap_or(0) << 10;
                if growth > IN_PROCESS_MAX_GROWTH {
                    heavy += 1;
                } else if !said.line.starts_with("err out_of_memory") {
                    again.push(case);
                }
                let len = case_len(&case.child, sources)?;
                let unbounded = verdicts.oom_ok || case.want == Want::Data;
                judge(case.want, &said.line, verdicts.oom_ok)
                    .and_then(|()| judge_memory(growth, len, unbounded))
            }
            Err(e) => Err(e.clone()),
        };
        verdicts.record(case, verdict, "child");
    }
    Ok((again, heavy))
}

/// The cases a child survived, again in this process, under an address-space cap with the
/// child's headroom and with a silent panic hook (a panicking reader is reported once, with its
/// message, not with a backtrace per file).
fn in_this_process<'a>(
    ctx: &Ctx<'_>,
    again: &[&'a Case],
    dir: &Path,
    verdicts: &mut Verdicts<'a>,
    sources: &mut Sources,
) -> Result<(), String> {
    let scratch = dir.join("in-process");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let scratch_prefix = format!("{}/", scratch.display());
    let mut progress =
        crate::progress::Progress::new(ctx.backend.name(), "BI in process", again.len() as u64);
    let cap = child::AddressSpaceCap::new(MEMORY_LIMIT)
        .map_err(|e| format!("cannot cap this process's address space: {e}"))?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut each = || -> Result<(), String> {
        for (n, case) in again.iter().enumerate() {
            progress.tick(n as u64);
            let path = materialise(&case.child, sources.get(&case.child.source)?, &scratch)?;
            let line = outcome(ctx.backend, ctx.fixtures, &case.child.via, &path)
                .replace(&scratch_prefix, "");
            crate::tree::remove(&path);
            verdicts.record(case, judge(case.want, &line, verdicts.oom_ok), "in process");
        }
        Ok(())
    };
    let ran = each();
    std::panic::set_hook(hook);
    drop(cap);
    ran
}

/// What the run did, for the report.
fn describe(corpus: &Corpus, verdicts: &Verdicts<'_>, again: usize, heavy: usize) -> String {
    let mut what = format!(
        "{} files, each made and loaded in a child process limited to {} GiB of address space \
         ({} s per file; the reader's resident memory may not grow by more than {} MiB plus \
         {}× the file's size{}), and the {again} that a child survived again in this process{}: {}",
        corpus.cases.len(),
        MEMORY_LIMIT >> 30,
        CASE_TIMEOUT.as_secs(),
        MEMORY_FLOOR >> 20,
        MEMORY_PER_FILE_BYTE,
        if verdicts.oom_ok {
            ", except where the format lets an array outgrow its file"
        } else {
            ""
        },
        if heavy > 0 {
            format!(
                " (not the {heavy} that took over {} MiB)",
                IN_PROCESS_MAX_GROWTH >> 20
            )
        } else {
            String::new()
        },
        corpus.what.join("; ")
    );
    what.push_str(&region_summary(&verdicts.tally));
    what
}

/// Keeps the damaged files of the first failures for reproduction: in the results directory
/// when `NDSTORE_CONFORMANCE_OUT` is set, otherwise in the system's temporary directory.
/// Returns where, when anything failed.
fn keep_failures(
    ctx: &Ctx<'_>,
    failed: &[&ChildCase],
    sources: &mut Sources,
) -> Result<Option<String>, String> {
    if failed.is_empty() {
        return Ok(None);
    }
    let base = std::env::var_os("NDSTORE_CONFORMANCE_OUT").map_or_else(
        || std::env::temp_dir().join("ndstore-conformance"),
        PathBuf::from,
    );
    let dir = base.join(ctx.backend.name()).join("BI-failures");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut seen = HashSet::new();
    for case in failed
        .iter()
        .filter(|c| seen.insert(c.name.clone()))
        .take(KEPT_FAILURES)
    {
        materialise(case, sources.get(&case.source)?, &dir)?;
    }
    Ok(Some(dir.display().to_string()))
}

/// "; realistic.npy: npy magic 12, npy data 32 (2 failed), ...": cases per region of each
/// realistic file, in the child and in process together.
fn region_summary(tally: &Tally) -> String {
    let mut files: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((file, region), (cases, failed)) in tally {
        let text = if *failed == 0 {
            format!("{region} {cases}")
        } else {
            format!("{region} {cases} ({failed} failed)")
        };
        files.entry(file.as_str()).or_default().push(text);
    }
    files
        .into_iter()
        .map(|(file, regions)| format!("; {file} damaged in every region: {}", regions.join(", ")))
        .collect()
}

/// Runs every case again through the fixtures' trusted (in-process) loader, in children, and
/// counts what crashed the process: the note the report shows beside BI, and the cases that
/// failed.
fn trusted(
    ctx: &Ctx<'_>,
    corpus: &Corpus,
    dir: &Path,
) -> Result<Option<(Note, Vec<ChildCase>)>, String> {
    let Some(loader) = ctx.fixtures.trusted_loader() else {
        return Ok(None);
    };
    let cases: Vec<ChildCase> = corpus
        .cases
        .iter()
        .map(|c| ChildCase {
            name: format!("trusted-{}", c.child.name),
            via: Via::Trusted,
            ..c.child.clone()
        })
        .collect();
    let refs: Vec<&ChildCase> = cases.iter().collect();
    let outcomes = run_children(&refs, dir, "trusted")?;
    let mut crashed = Vec::new();
    let mut panicked = Vec::new();
    let mut unclear = Vec::new();
    let mut failed = Vec::new();
    for (case, outcome) in cases.iter().zip(&outcomes) {
        let list = match outcome {
            Err(e) => {
                crashed.push(format!("{}: {e}", case.name));
                true
            }
            Ok(said) if said.line.starts_with("panic") => {
                panicked.push(format!("{}: {}", case.name, said.line));
                true
            }
            Ok(said) if said.line.contains(" nopath ") => {
                unclear.push(format!("{}: {}", case.name, said.line));
                true
            }
            Ok(_) => false,
        };
        if list {
            failed.push(case.clone());
        }
    }
    for line in crashed.iter().chain(&panicked).chain(&unclear) {
        println!("BI trusted-path failure: {line}");
    }
    let mut detail = format!(
        "in-process (trusted) path (`{}`), over the same {} files in memory-limited children: \
         {} crashed the process (a signal, an abort, a hit limit or a hang), {} panicked, {} \
         gave an error that does not name the file",
        loader.name,
        outcomes.len(),
        crashed.len(),
        panicked.len(),
        unclear.len()
    );
    let first: Vec<&str> = crashed
        .iter()
        .chain(&panicked)
        .chain(&unclear)
        .take(5)
        .map(String::as_str)
        .collect();
    if !first.is_empty() {
        detail.push_str(&format!("; first: {}", first.join("; ")));
    }
    Ok(Some((
        Note {
            name: "trusted".to_owned(),
            cases: outcomes.len() as u64,
            failures: failed.len() as u64,
            detail,
        },
        failed,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::children::said;
    use super::corpus::{check_map, corrupt, positions, sampled};
    use super::*;
    use crate::fixtures::{REALISTIC_MIN_BYTES, Realistic, Region};
    use crate::sample::Rng;

    #[test]
    fn damaged_files_must_fail_with_a_named_place() {
        let placed = "err format placed x.npy: byte 8: bad";
        assert!(judge(Want::Error, placed, false).is_ok());
        assert!(judge(Want::Either, placed, false).is_ok());
        assert!(judge(Want::Data, placed, false).is_err());
        assert!(judge(Want::Error, "ok", false).is_err());
        assert!(judge(Want::Either, "ok", false).is_ok());
        assert!(judge(Want::Either, "panic index out of range", false).is_err());
        // Unplaced errors pass only for what has no byte to blame.
        assert!(judge(Want::Error, "err format unplaced x.npz: bad", false).is_err());
        assert!(judge(Want::Error, "err io unplaced x.npz: denied", false).is_ok());
        assert!(judge(Want::Error, "err reader_crashed unplaced x.h5: died", false).is_ok());
        // An error that does not name the file never passes.
        assert!(judge(Want::Error, "err format nopath bad", false).is_err());
        // Out of memory is honest only where an array may outgrow its file.
        let oom = "err out_of_memory unplaced x.h5: cannot allocate 17179869184 bytes";
        assert!(judge(Want::Error, oom, true).is_ok());
        assert!(judge(Want::Error, oom, false).is_err());
    }

    #[test]
    fn memory_must_be_justified_by_the_file_in_bounded_formats() {
        assert!(judge_memory(MEMORY_FLOOR, 0, false).is_ok());
        assert!(judge_memory(MEMORY_FLOOR + 1, 0, false).is_err());
        assert!(judge_memory(MEMORY_FLOOR + (4 << 20), 1 << 20, false).is_ok());
        assert!(judge_memory(MEMORY_FLOOR + (4 << 20) + 1, 1 << 20, false).is_err());
        assert!(judge_memory(4 << 30, 300, true).is_ok());
        let err = judge_memory(4 << 30, 300, false).unwrap_err();
        assert!(
            err.contains("300 bytes") && err.contains("4096 MiB"),
            "{err}"
        );
    }

    #[test]
    fn dense_regions_get_every_byte_or_an_even_spread() {
        let small = Region::dense("header", 10..20);
        assert_eq!(positions(&small, 64), (10..20).collect::<Vec<_>>());
        let big = Region::dense("heap", 0..1000);
        let spread = positions(&big, 5);
        assert_eq!(spread, vec![0, 249, 499, 749, 999]);
        let mut rng = Rng::new(1);
        let data = Region::sampled("data", 100..200);
        let sampled = sampled(&data, 12, &mut rng);
        assert!(sampled.len() <= 12 && sampled.contains(&100) && sampled.contains(&199));
        assert!(sampled.iter().all(|p| (100..200).contains(p)));
    }

    #[test]
    fn a_corrupt_byte_always_differs() {
        let mut rng = Rng::new(7);
        for old in [0x00, 0xff, 0x5a] {
            for turn in 0..6 {
                assert_ne!(corrupt(old, turn, &mut rng), old);
            }
        }
    }

    #[test]
    fn a_map_must_cover_a_file_of_a_mebibyte() {
        let file = |regions| Realistic {
            name: "r.bin".to_owned(),
            path: PathBuf::from("r.bin"),
            loader: None,
            regions,
        };
        let mib = REALISTIC_MIN_BYTES;
        let whole = file(vec![
            Region::dense("header", 0..100),
            Region::sampled("data", 100..mib),
        ]);
        assert!(check_map(&whole, mib).is_empty());
        let hole = file(vec![
            Region::dense("header", 0..100),
            Region::sampled("data", 200..mib),
        ]);
        assert_eq!(
            check_map(&hole, mib),
            vec!["r.bin: bytes 100..200 are in no region"]
        );
        let small = file(vec![Region::dense("all", 0..10)]);
        assert_eq!(check_map(&small, 10).len(), 1);
        let past = file(vec![Region::dense("all", 0..mib + 1)]);
        assert_eq!(check_map(&past, mib).len(), 1);
    }

    #[test]
    fn the_child_reports_memory_growth() {
        let said = said(Some(1000), Some(5000), "err format placed x: y".to_owned());
        assert_eq!(said.line, "err format placed x: y");
        assert_eq!(said.growth_kib, Some(4000));
        assert_eq!(
            super::children::said(None, None, "ok".to_owned()).growth_kib,
            None
        );
    }
}

//! BI: hostile and damaged files give a clear error with a kind and a place — never a panic, an
//! abort, an allocation the file cannot justify, or a hang.
//!
//! The corpus has three parts: the backend's hostile inputs (lying sizes, link cycles, ...,
//! from its [`Fixtures`]); every cut and some corrupt bytes of a small valid file; and
//! structure-aware damage of realistic files of at least 1 MiB, whose fixtures map their regions
//! (headers, indexes, heaps, data, trailers): every byte of a metadata region is corrupted (a bit
//! flip, 0x00 or 0xff, in turn) and cut, data regions at sampled places.
//!
//! Every case runs in a child process under an address-space limit, which makes each damaged
//! file just before loading it; a signal, an abort, a hang or a hit limit there fails the case,
//! and a fresh child takes the rest. Then the cases a child survived run again in this process
//! under `catch_unwind`. A backend's trusted (in-process) loader runs the same corpus in
//! children, and its crashes are reported beside BI's result, never as a pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use ndstore_core::{Backend, DTypeKind, Error, ErrorKind, LoadOptions, Order, SaveOptions};

use crate::child::{self, PREFIX, Task};
use crate::fixtures::{Density, Expect, Fixtures, REALISTIC_MIN_BYTES, Realistic, Region};
use crate::report::{CheckResult, Note};
use crate::sample::{self, Rng};
use crate::{Ctx, Mode};

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

/// How many cuts of the small valid file quick mode makes (spread evenly; full mode cuts at
/// every byte). Most formats' small files are shorter, and get every cut.
const SMALL_CUTS_QUICK: u64 = 1024;

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

/// Loads `path` as `via` says, with the default options (as a user's `load` would), and
/// describes the result in one line: `ok`, `err KIND placed|unplaced|nopath MESSAGE`, or
/// `panic MESSAGE`.
pub fn outcome(backend: &dyn Backend, fixtures: &dyn Fixtures, via: &Via, path: &Path) -> String {
    let options = LoadOptions::default();
    let result = catch_unwind(AssertUnwindSafe(|| match via {
        Via::Backend => backend.load_with(path, &options).map(|_| ()),
        Via::Loader(name) => match fixtures.loaders().iter().find(|l| l.name == name) {
            Some(loader) => (loader.load)(path, &options),
            None => Err(missing_loader(name)),
        },
        Via::Trusted => match fixtures.trusted_loader() {
            Some(loader) => (loader.load)(path, &options),
            None => Err(missing_loader("trusted")),
        },
    }));
    match result {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            let placed = if e.path().is_none() {
                "nopath"
            } else if e.location().is_some() {
                "placed"
            } else {
                "unplaced"
            };
            format!(
                "err {} {placed} {}",
                e.kind().as_str().replace(' ', "_"),
                e.to_string().replace('\n', " ")
            )
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            format!("panic {message}")
        }
    }
}

fn missing_loader(name: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("the fixtures have no loader named {name:?}"),
    )
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The hostile inputs of the fixtures as files: in the repository's `corpus/<backend>/` when
/// that directory exists (kept there for readers, rewritten when the fixtures change, files no
/// fixture makes any more removed), otherwise in `scratch`. Returns each file with its loader.
fn kept_corpus(
    ctx: &Ctx<'_>,
    scratch: &Path,
) -> Result<Vec<(PathBuf, Option<&'static str>)>, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(ctx.backend.name());
    let dir = if repo.is_dir() {
        repo
    } else {
        scratch.to_path_buf()
    };
    let inputs = ctx.fixtures.hostile_inputs();
    let mut files = Vec::new();
    let mut names = HashSet::new();
    for hostile in &inputs {
        let name = format!("hostile-{}", hostile.name);
        let path = dir.join(&name);
        if std::fs::read(&path).ok().as_deref() != Some(hostile.bytes.as_slice()) {
            std::fs::write(&path, &hostile.bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        names.insert(name);
        files.push((path, hostile.loader));
    }
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = file_name(&path);
        if name.starts_with("hostile-") && !names.contains(&name) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(files)
}

/// The positions of a region that get damage: every byte (dense regions in full mode, and
/// small ones), or `cap` positions spread evenly from the first byte to the last.
fn positions(region: &Region, cap: u64) -> Vec<u64> {
    let (start, end) = (region.range.start, region.range.end);
    let len = end.saturating_sub(start);
    if len == 0 {
        return Vec::new();
    }
    if len <= cap {
        return (start..end).collect();
    }
    let mut out: Vec<u64> = (0..cap)
        .map(|i| start + i * (len - 1) / (cap - 1).max(1))
        .collect();
    out.dedup();
    out
}

/// How many positions of a region get corrupt bytes and cuts, by density and mode.
fn caps(density: Density, mode: Mode) -> (u64, u64) {
    match (density, mode) {
        (Density::Dense, Mode::Full) => (u64::MAX, u64::MAX),
        (Density::Dense, Mode::Quick) => (128, 32),
        (Density::Sampled, Mode::Full) => (96, 32),
        (Density::Sampled, Mode::Quick) => (12, 4),
    }
}

/// A corrupt value for `old`: a flipped bit, 0x00 or 0xff in turn (`turn`), never `old` itself.
fn corrupt(old: u8, turn: u64, rng: &mut Rng) -> u8 {
    let new = match turn % 3 {
        0 => old ^ (1 << rng.below(8)),
        1 => 0x00,
        _ => 0xff,
    };
    if new == old { old ^ 0xff } else { new }
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

/// The length of a case's file.
fn case_len(case: &ChildCase, sources: &mut Sources) -> Result<u64, String> {
    let source = sources.get(&case.source)?.len() as u64;
    Ok(match case.damage {
        Damage::Truncate(len) => len.min(source),
        Damage::None | Damage::Set { .. } => source,
    })
}

/// Checks a realistic file: at least 1 MiB, regions inside it and covering every byte.
fn check_map(file: &Realistic, len: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if len < REALISTIC_MIN_BYTES {
        problems.push(format!(
            "{}: {len} bytes, under the {REALISTIC_MIN_BYTES} a realistic file must have",
            file.name
        ));
    }
    let mut ranges: Vec<_> = file.regions.iter().map(|r| r.range.clone()).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut covered = 0u64;
    for range in &ranges {
        if range.end > len {
            problems.push(format!(
                "{}: a region ends at byte {}, past the end ({len})",
                file.name, range.end
            ));
        }
        if range.start > covered {
            problems.push(format!(
                "{}: bytes {covered}..{} are in no region",
                file.name, range.start
            ));
        }
        covered = covered.max(range.end);
    }
    if covered < len {
        problems.push(format!(
            "{}: bytes {covered}..{len} are in no region",
            file.name
        ));
    }
    problems
}

/// Every case of the run, with the problems found while building it (a missing realistic file,
/// a map with holes) and a description of the corpus.
struct Corpus {
    cases: Vec<Case>,
    problems: Vec<String>,
    what: Vec<String>,
}

fn build_corpus(ctx: &Ctx<'_>, dir: &Path) -> Result<Corpus, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let backend = ctx.backend;
    let ext = backend.extension();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let mut what = Vec::new();
    let loaders: HashSet<&str> = ctx.fixtures.loaders().iter().map(|l| l.name).collect();
    let via = |loader: Option<&'static str>| match loader {
        None => Via::Backend,
        Some(name) => Via::Loader(name.to_owned()),
    };
    let unknown = |loader: Option<&'static str>, problems: &mut Vec<String>| {
        if let Some(name) = loader
            && !loaders.contains(name)
        {
            problems.push(format!(
                "a fixture names the loader {name:?}, which does not exist"
            ));
        }
    };

    let kept = kept_corpus(ctx, dir)?;
    what.push(format!("{} hostile inputs", kept.len()));
    for (path, loader) in kept {
        unknown(loader, &mut problems);
        cases.push(Case {
            child: ChildCase {
                name: file_name(&path),
                via: via(loader),
                source: path,
                damage: Damage::None,
            },
            want: Want::Error,
            region: None,
        });
    }

    // A small valid file: cut at every byte, and corrupt bytes in its first 256.
    let caps_ = backend.capabilities();
    let kind = if caps_.stores(DTypeKind::F64) {
        DTypeKind::F64
    } else {
        caps_.dtypes.first().copied().unwrap_or(DTypeKind::U8)
    };
    let small = ctx.dir.path().join(format!("small.{ext}"));
    backend
        .save(
            &small,
            &sample::array(kind, &[3, 4], Order::C, 5),
            &SaveOptions::default(),
        )
        .map_err(|e| format!("saving the small valid file: {e}"))?;
    let bytes = std::fs::read(&small).map_err(|e| e.to_string())?;
    let whole = Region::dense("small file", 0..bytes.len() as u64);
    let cuts = match ctx.mode {
        Mode::Full => positions(&whole, u64::MAX),
        Mode::Quick => positions(&whole, SMALL_CUTS_QUICK),
    };
    for &len in &cuts {
        cases.push(Case {
            child: ChildCase {
                name: format!("trunc-{len:06}.{ext}"),
                via: Via::Backend,
                source: small.clone(),
                damage: Damage::Truncate(len),
            },
            want: Want::Error,
            region: None,
        });
    }
    let mut rng = Rng::new(0xbad_1257);
    for (at, &old) in bytes.iter().enumerate().take(256) {
        let byte = corrupt(old, rng.below(3), &mut rng);
        cases.push(Case {
            child: ChildCase {
                name: format!("flip-{at:06}-{byte:02x}.{ext}"),
                via: Via::Backend,
                source: small.clone(),
                damage: Damage::Set {
                    at: at as u64,
                    byte,
                },
            },
            want: Want::Either,
            region: None,
        });
    }
    what.push(format!(
        "{} of a 3×4 file ({} bytes) and {} corrupt bytes of it",
        if cuts.len() == bytes.len() {
            "every cut".to_owned()
        } else {
            format!("{} cuts", cuts.len())
        },
        bytes.len(),
        bytes.len().min(256)
    ));

    // Realistic files, damaged in every region.
    let realistic_dir = ctx.dir.path().join("realistic");
    std::fs::create_dir_all(&realistic_dir).map_err(|e| e.to_string())?;
    let files = ctx.fixtures.realistic_files(backend, &realistic_dir)?;
    if files.is_empty() {
        problems.push(
            "the fixtures give no realistic file, so no region of a real file is damaged"
                .to_owned(),
        );
    }
    for (n, file) in files.iter().enumerate() {
        unknown(file.loader, &mut problems);
        let bytes =
            std::fs::read(&file.path).map_err(|e| format!("{}: {e}", file.path.display()))?;
        let len = bytes.len() as u64;
        problems.extend(check_map(file, len));
        let stem = format!("real{n}");
        let fext = file
            .path
            .extension()
            .map_or(ext.to_owned(), |e| e.to_string_lossy().into_owned());
        cases.push(Case {
            child: ChildCase {
                name: format!("{stem}-intact.{fext}"),
                via: via(file.loader),
                source: file.path.clone(),
                damage: Damage::None,
            },
            want: Want::Data,
            region: None,
        });
        let mut rng = Rng::new(0x5eed_0000 + n as u64);
        for (r, region) in file.regions.iter().enumerate() {
            let (flip_cap, cut_cap) = caps(region.density, ctx.mode);
            let label = Some((file.name.clone(), region.name.clone()));
            let flip_at = match region.density {
                Density::Dense => positions(region, flip_cap),
                Density::Sampled => sampled(region, flip_cap, &mut rng),
            };
            let turns: u64 = match (region.density, ctx.mode) {
                (Density::Dense, Mode::Full) => 3,
                _ => 1,
            };
            for at in flip_at.into_iter().filter(|&at| at < len) {
                for t in 0..turns {
                    let byte = corrupt(bytes[at as usize], at + t + r as u64, &mut rng);
                    cases.push(Case {
                        child: ChildCase {
                            name: format!("{stem}-r{r}-set{t}-{at:08}-{byte:02x}.{fext}"),
                            via: via(file.loader),
                            source: file.path.clone(),
                            damage: Damage::Set { at, byte },
                        },
                        want: region.flips.into(),
                        region: label.clone(),
                    });
                }
            }
            let cut_at = match region.density {
                Density::Dense => positions(region, cut_cap),
                Density::Sampled => sampled(region, cut_cap, &mut rng),
            };
            for at in cut_at.into_iter().filter(|&at| at < len) {
                cases.push(Case {
                    child: ChildCase {
                        name: format!("{stem}-r{r}-cut-{at:08}.{fext}"),
                        via: via(file.loader),
                        source: file.path.clone(),
                        damage: Damage::Truncate(at),
                    },
                    want: region.truncation.into(),
                    region: label.clone(),
                });
            }
        }
    }
    Ok(Corpus {
        cases,
        problems,
        what,
    })
}

/// `cap` random positions of a sampled region (the first and the last byte among them).
fn sampled(region: &Region, cap: u64, rng: &mut Rng) -> Vec<u64> {
    let (start, end) = (region.range.start, region.range.end);
    if end <= start {
        return Vec::new();
    }
    let mut out = vec![start, end - 1];
    while (out.len() as u64) < cap.min(end - start) {
        out.push(start + rng.below(end - start));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Makes a case's file in `scratch` from its source bytes.
fn materialise(case: &ChildCase, source: &[u8], scratch: &Path) -> Result<PathBuf, String> {
    let path = scratch.join(&case.name);
    let result = match case.damage {
        Damage::None => std::fs::write(&path, source),
        Damage::Truncate(len) => std::fs::write(&path, &source[..(len as usize).min(source.len())]),
        Damage::Set { at, byte } => {
            let mut bytes = source.to_vec();
            if let Some(b) = bytes.get_mut(at as usize) {
                *b = byte;
            }
            std::fs::write(&path, &bytes)
        }
    };
    result.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The child's side of BI: reads the cases listed in `list`, and for each makes its file in
/// `scratch`, says `START name`, loads it, says `RESULT name BASE PEAK outcome` (this process's
/// resident memory before the load and at its peak during it, in KiB, or `-` when unknown), and
/// removes it.
///
/// # Errors
///
/// A message when the list cannot be read or a file cannot be made.
pub fn child_cases(
    backend: &dyn Backend,
    fixtures: &dyn Fixtures,
    list: &Path,
    scratch: &Path,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let mut sources: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    for line in text.lines() {
        let case: ChildCase =
            serde_json::from_str(line).map_err(|e| format!("a bad case line: {e}"))?;
        if !sources.contains_key(&case.source) {
            let bytes = std::fs::read(&case.source)
                .map_err(|e| format!("{}: {e}", case.source.display()))?;
            sources.insert(case.source.clone(), bytes);
        }
        let source = sources.get(&case.source).map_or(&[][..], Vec::as_slice);
        let path = materialise(&case, source, scratch)?;
        say(&format!("START {}", case.name));
        let base = reset_peak_memory();
        let outcome = outcome(backend, fixtures, &case.via, &path);
        let peak = base.and_then(|_| memory_kib("VmHWM:"));
        let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        say(&format!(
            "RESULT {} {} {} {outcome}",
            case.name,
            kib(base),
            kib(peak)
        ));
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

/// One line of `/proc/self/status` in KiB (`VmHWM:`, `VmRSS:`).
fn memory_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resets this process's peak resident memory to what it holds now, and returns that (KiB);
/// `None` when the kernel does not offer it.
fn reset_peak_memory() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    memory_kib("VmRSS:")
}

/// What a child said about one case: the outcome line, and how much its resident memory grew
/// while loading (KiB), when known.
#[derive(Clone, Debug)]
struct Said {
    line: String,
    growth_kib: Option<u64>,
}

/// Parses `BASE PEAK outcome...` after a case's name.
fn said(rest: &str) -> Said {
    let mut parts = rest.splitn(3, ' ');
    let base = parts.next().and_then(|v| v.parse::<u64>().ok());
    let peak = parts.next().and_then(|v| v.parse::<u64>().ok());
    Said {
        line: parts.next().unwrap_or("").to_owned(),
        growth_kib: base.zip(peak).map(|(b, p)| p.saturating_sub(b)),
    }
}

/// Loads `cases` in memory-limited children; a child that dies or hangs on a case is recorded
/// against it and replaced by a fresh child for the rest. Returns one outcome per case, in
/// order: the outcome line, or why the child died on it.
fn run_children(
    cases: &[&ChildCase],
    dir: &Path,
    tag: &str,
) -> Result<Vec<Result<Said, String>>, String> {
    let list = dir.join(format!("{tag}.list"));
    let scratch = dir.join(format!("{tag}-scratch"));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let mut outcomes: Vec<Result<Said, String>> = Vec::with_capacity(cases.len());
    while outcomes.len() < cases.len() {
        let rest = &cases[outcomes.len()..];
        let mut text = String::new();
        for case in rest {
            text.push_str(&serde_json::to_string(case).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        std::fs::write(&list, text).map_err(|e| format!("writing the case list: {e}"))?;
        let mut process = child::command(&Task::BadInputs {
            list: list.clone(),
            scratch: scratch.clone(),
            memory_limit: MEMORY_LIMIT,
        })?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
        let stdout = process.stdout.take().ok_or("no stdout")?;
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(line) = line.strip_prefix(PREFIX)
                    && send.send(line.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let started = outcomes.len();
        let mut hung = false;
        let mut done = false;
        let mut error = None;
        loop {
            match lines.recv_timeout(CASE_TIMEOUT) {
                Ok(line) => {
                    if let Some(rest_line) = line.strip_prefix("RESULT ") {
                        let name = &cases[outcomes.len()].name;
                        let outcome = rest_line
                            .strip_prefix(name.as_str())
                            .map_or(rest_line, str::trim_start);
                        outcomes.push(Ok(said(outcome)));
                    } else if line == "DONE" {
                        done = true;
                    } else if let Some(e) = line.strip_prefix("ERROR ") {
                        error = Some(e.to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    hung = true;
                    let _ = process.kill();
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = process.wait().map_err(|e| e.to_string())?;
        if done && outcomes.len() == cases.len() {
            break;
        }
        if let Some(e) = error {
            return Err(format!("the BI child could not run: {e}"));
        }
        if outcomes.len() >= cases.len() {
            break;
        }
        let why = if hung {
            format!("hung for over {CASE_TIMEOUT:?}")
        } else {
            format!("died ({status})")
        };
        if outcomes.len() == started && !hung && status.success() {
            return Err(format!(
                "the BI child ended without loading anything ({status})"
            ));
        }
        // The case it was on: the first without a result.
        outcomes.push(Err(format!("the child {why} loading it")));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_file(&list);
    Ok(outcomes)
}

/// Per-region tallies: cases and failures.
type Tally = BTreeMap<(String, String), (u64, u64)>;

/// Reads a case's source once per run.
struct Sources(HashMap<PathBuf, Vec<u8>>);

impl Sources {
    fn get(&mut self, path: &Path) -> Result<&[u8], String> {
        if !self.0.contains_key(path) {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            self.0.insert(path.to_path_buf(), bytes);
        }
        Ok(self.0.get(path).map_or(&[][..], Vec::as_slice))
    }
}

/// BI: see the module documentation.
pub fn bi(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let dir = ctx.dir.path().join("corpus");
    let corpus = build_corpus(ctx, &dir)?;
    let oom_ok = ctx.fixtures.arrays_may_exceed_file();
    let mut failures: Vec<String> = corpus.problems.clone();
    let mut failed_cases: Vec<&ChildCase> = Vec::new();
    let mut cases = failures.len() as u64;
    let mut tally = Tally::new();
    let child_cases: Vec<&ChildCase> = corpus.cases.iter().map(|c| &c.child).collect();
    let mut progress =
        crate::progress::Progress::new(backend.name(), "BI", corpus.cases.len() as u64);
    progress.tick(0);
    let outcomes = run_children(&child_cases, &dir, "children")?;
    let mut sources = Sources(HashMap::new());
    let mut again = Vec::new();
    let mut heavy = 0;
    for (case, outcome) in corpus.cases.iter().zip(&outcomes) {
        cases += 1;
        let verdict = match outcome {
            Ok(said) => {
                // Survived: run it again here, unless it took much memory or ran out of it
                // under the limit (repeated here, it could take the machine's memory).
                let growth = said.growth_kib.unwrap_or(0) << 10;
                if growth > IN_PROCESS_MAX_GROWTH {
                    heavy += 1;
                } else if !said.line.starts_with("err out_of_memory") {
                    again.push(case);
                }
                let len = case_len(&case.child, &mut sources)?;
                judge(case.want, &said.line, oom_ok)
                    .and_then(|()| judge_memory(growth, len, oom_ok || case.want == Want::Data))
            }
            Err(e) => Err(e.clone()),
        };
        count(&mut tally, case, verdict.is_err());
        if let Err(e) = verdict {
            failures.push(format!("{} (child): {e}", case.child.name));
            failed_cases.push(&case.child);
        }
    }
    let scratch = dir.join("in-process");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    // This process gets the child's headroom too: a file a child survived may still have
    // allocated much, and here nothing else would stop it taking the machine's memory.
    let cap = child::AddressSpaceCap::new(MEMORY_LIMIT)
        .map_err(|e| format!("cannot cap this process's address space: {e}"))?;
    // A panicking reader is a finding, reported with its message; the default hook would also
    // print a backtrace per damaged file.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut in_process = || -> Result<(), String> {
        for (n, case) in again.iter().enumerate() {
            progress.tick(n as u64);
            let path = materialise(&case.child, sources.get(&case.child.source)?, &scratch)?;
            cases += 1;
            let line = outcome(backend, ctx.fixtures, &case.child.via, &path);
            let _ = std::fs::remove_file(&path);
            let verdict = judge(case.want, &line, oom_ok);
            count(&mut tally, case, verdict.is_err());
            if let Err(e) = verdict {
                failures.push(format!("{} (in process): {e}", case.child.name));
                failed_cases.push(&case.child);
            }
        }
        Ok(())
    };
    let ran = in_process();
    std::panic::set_hook(hook);
    ran?;
    drop(cap);
    let mut what = format!(
        "{} files, each made and loaded in a child process limited to {} GiB of address space \
         ({} s per file; the reader's resident memory may not grow by more than {} MiB plus \
         {}× the file's size{}), and the {} that a child survived again in this process{}: {}",
        corpus.cases.len(),
        MEMORY_LIMIT >> 30,
        CASE_TIMEOUT.as_secs(),
        MEMORY_FLOOR >> 20,
        MEMORY_PER_FILE_BYTE,
        if oom_ok {
            ", except where the format lets an array outgrow its file"
        } else {
            ""
        },
        again.len(),
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
    what.push_str(&region_summary(&tally));
    let trusted = trusted(ctx, &corpus, &dir)?;
    let trusted_failed: Vec<ChildCase> = trusted.as_ref().map_or(Vec::new(), |t| t.1.clone());
    failed_cases.extend(trusted_failed.iter());
    let kept = keep_failures(ctx, &failed_cases, &mut sources)?;
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
    let mut result = CheckResult::counted("BI", cases, &failures, &what);
    if !failures.is_empty() {
        // The failures first, then what the corpus was.
        result.detail = format!("{}; the corpus: {what}", result.detail);
    }
    if let Some(kept) = &kept {
        result.detail.push_str(&format!(
            "; the damaged files of the first {} failures are kept in {kept}",
            failed_cases.len().min(KEPT_FAILURES)
        ));
    }
    if let Some((note, _)) = trusted {
        result = result.with_note(note);
    }
    Ok(result)
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

fn count(tally: &mut Tally, case: &Case, failed: bool) {
    if let Some(key) = &case.region {
        let entry = tally.entry(key.clone()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += u64::from(failed);
    }
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

    use super::*;

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
        let said = said("1000 5000 err format placed x: y");
        assert_eq!(said.line, "err format placed x: y");
        assert_eq!(said.growth_kib, Some(4000));
        assert_eq!(super::said("- - ok").growth_kib, None);
    }
}

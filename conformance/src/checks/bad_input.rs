//! BI: hostile and damaged files give a clear error with a kind and a place — never a panic, an
//! abort, an allocation the file cannot justify, or a hang. Every case runs twice: in this
//! process under `catch_unwind`, and in a child process under a memory limit and a timeout.

use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndstore_core::{Backend, DTypeKind, Order, SaveOptions};

use crate::Ctx;
use crate::child::{self, PREFIX, Task};
use crate::report::CheckResult;
use crate::sample;

/// The child's address-space limit: far below what the hostile headers claim.
const MEMORY_LIMIT: u64 = 2 << 30;

/// How long the child may take over the whole corpus.
const TIMEOUT: Duration = Duration::from_secs(300);

/// What loading one file gave, as one line of text: `ok`, `err KIND placed|unplaced|nopath`, or
/// `panic MESSAGE`.
pub fn outcome(backend: &dyn Backend, path: &Path) -> String {
    let result = catch_unwind(AssertUnwindSafe(|| backend.load(path).map(|_| ())));
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

/// Whether `outcome` is acceptable for a case named `name`: damaged files (`trunc-`, `hostile-`)
/// must fail; corrupted bytes may load (the damage may sit in the data) or fail; every failure
/// must name the file and the place (`io` errors only the file).
fn judge(name: &str, outcome: &str) -> Result<(), String> {
    let must_fail = name.starts_with("trunc-") || name.starts_with("hostile-");
    if outcome == "ok" {
        return if must_fail {
            Err("loaded without an error".to_owned())
        } else {
            Ok(())
        };
    }
    if outcome.starts_with("panic") {
        return Err(outcome.to_owned());
    }
    let mut parts = outcome.splitn(4, ' ');
    let (_, kind, placed) = (
        parts.next(),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    match placed {
        "placed" => Ok(()),
        "unplaced" if kind == "io" => Ok(()),
        _ => Err(format!("the error does not say where: {outcome}")),
    }
}

/// The corpus kept in the repository for `backend` (its hostile inputs), written when missing.
fn kept_corpus(backend: &dyn Backend) -> Result<Vec<PathBuf>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(backend.name());
    let inputs = backend.hostile_inputs();
    if !inputs.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (name, bytes) in &inputs {
        let path = dir.join(format!("hostile-{name}"));
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    Ok(files)
}

/// Builds the run's corpus in `dir`: the kept files, every truncation of a small valid file,
/// and byte corruptions of its first 256 bytes.
fn build_corpus(ctx: &Ctx<'_>, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let backend = ctx.backend;
    for file in kept_corpus(backend)? {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::copy(&file, dir.join(name)).map_err(|e| e.to_string())?;
    }
    let caps = backend.capabilities();
    let kind = if caps.stores(DTypeKind::F64) {
        DTypeKind::F64
    } else {
        caps.dtypes[0]
    };
    let valid = ctx.path("valid");
    backend
        .save(
            &valid,
            &sample::array(kind, &[3, 4], Order::C, 5),
            &SaveOptions::default(),
        )
        .map_err(|e| format!("saving the valid sample: {e}"))?;
    let bytes = std::fs::read(&valid).map_err(|e| e.to_string())?;
    let ext = backend.extension();
    for len in 0..bytes.len() {
        std::fs::write(dir.join(format!("trunc-{len:06}.{ext}")), &bytes[..len])
            .map_err(|e| e.to_string())?;
    }
    let mut rng = sample::Rng::new(0xbad_1257);
    for pos in 0..bytes.len().min(256) {
        let mut damaged = bytes.clone();
        damaged[pos] = match rng.below(3) {
            0 => 0xff,
            1 => 0x00,
            _ => damaged[pos] ^ (1 << rng.below(8)),
        };
        std::fs::write(dir.join(format!("flip-{pos:06}.{ext}")), &damaged)
            .map_err(|e| e.to_string())?;
    }
    Ok(std::fs::read_dir(dir).map_err(|e| e.to_string())?.count())
}

/// How the child fared with each file: its outcome line, or the reason it died on the file.
struct ChildRun {
    outcomes: Vec<(String, Result<String, String>)>,
}

/// Loads `files` in memory-limited children with a timeout; a child that dies or hangs on a
/// file is recorded against that file and replaced by a fresh child for the rest.
fn run_children(files: &[PathBuf], list: &Path) -> Result<ChildRun, String> {
    let mut outcomes = Vec::new();
    let mut rest: Vec<PathBuf> = files.to_vec();
    while !rest.is_empty() {
        // The list goes in a file beside the corpus: in the environment it would outgrow the
        // size limit of one variable.
        let text: String = rest.iter().map(|p| format!("{}\n", p.display())).collect();
        std::fs::write(list, text).map_err(|e| format!("writing the file list: {e}"))?;
        let mut cmd = child::command(&Task::BadInputs {
            list: list.to_path_buf(),
            memory_limit: MEMORY_LIMIT,
        })?;
        let mut process = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = process.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let started = Instant::now();
        let status = loop {
            match process.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() > TIMEOUT => {
                    let _ = process.kill();
                    let _ = process.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        };
        let lines: Vec<String> = reader
            .join()
            .map_err(|_| "reader thread failed")?
            .into_iter()
            .filter_map(|l| l.strip_prefix(PREFIX).map(str::to_owned))
            .collect();
        let mut finished = 0;
        let mut last_started = None;
        for line in &lines {
            if let Some(name) = line.strip_prefix("START ") {
                last_started = Some(name.to_owned());
            } else if let Some(rest_line) = line.strip_prefix("RESULT ") {
                let (name, outcome) = rest_line.split_once(' ').unwrap_or((rest_line, ""));
                outcomes.push((name.to_owned(), Ok(outcome.to_owned())));
                finished += 1;
                last_started = None;
            }
        }
        if lines.iter().any(|l| l == "DONE") {
            break;
        }
        let why = match status {
            None => format!("hung for over {TIMEOUT:?}"),
            Some(s) => format!("died ({s})"),
        };
        // The file the child was loading when it died; with no START line, the next one.
        let culprit = finished;
        let name = last_started.unwrap_or_else(|| file_name(&rest[culprit.min(rest.len() - 1)]));
        outcomes.push((name, Err(format!("the child {why} loading it"))));
        rest.drain(..(culprit + 1).min(rest.len()));
    }
    Ok(ChildRun { outcomes })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// BI: every corpus file, first in memory-limited children with a timeout, then in this
/// process under `catch_unwind` (only the files a child survived: an abort here would end the
/// whole run, and the child has already reported it).
pub fn bi(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let dir = ctx.dir.path().join("corpus");
    let count = build_corpus(ctx, &dir)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut cases = 0u64;
    let run = run_children(&files, &ctx.dir.path().join("bad-inputs.list"))?;
    let mut survived = std::collections::HashSet::new();
    for (name, outcome) in &run.outcomes {
        cases += 1;
        match outcome {
            Ok(outcome) => {
                survived.insert(name.clone());
                if let Err(e) = judge(name, outcome) {
                    failures.push(format!("{name} (child): {e}"));
                }
            }
            Err(e) => failures.push(format!("{name} (child): {e}")),
        }
    }
    for file in &files {
        let name = file_name(file);
        if !survived.contains(&name) {
            continue;
        }
        cases += 1;
        if let Err(e) = judge(&name, &outcome(backend, file)) {
            failures.push(format!("{name} (in process): {e}"));
        }
    }
    let what = format!(
        "{count} files (truncation at every byte, byte corruption, the backend's hostile inputs), each in a child limited to {} GiB with a {}s timeout and in process under catch_unwind",
        MEMORY_LIMIT >> 30,
        TIMEOUT.as_secs()
    );
    Ok(CheckResult::counted("BI", cases, &failures, &what))
}

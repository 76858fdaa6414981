//! BI's children: the process that makes and loads each damaged file under an address-space
//! limit and reports its outcome and memory, and the parent's side that starts children,
//! charges a dying child with the case it was on, and starts the next.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc::{RecvTimeoutError, channel};

use ndstore_core::{Backend, Error, ErrorKind, LoadOptions};

use super::corpus::materialise;
use super::{CASE_TIMEOUT, ChildCase, MEMORY_LIMIT, Via};
use crate::child::{self, Task};
use crate::fixtures::Fixtures;
use crate::protocol::Reply;

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

pub(super) fn missing_loader(name: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("the fixtures have no loader named {name:?}"),
    )
}

/// The child's side of BI: reads the cases listed in `list`, and for each makes its file in
/// `scratch`, says [`Reply::Started`], loads it, says [`Reply::Result`] (with this process's
/// resident memory before the load and at its peak during it, in KiB, when known), and removes
/// it.
///
/// # Errors
///
/// A message when the list cannot be read or a file cannot be made.
pub fn child_cases(
    backend: &dyn Backend,
    fixtures: &dyn Fixtures,
    list: &Path,
    scratch: &Path,
    say: &dyn Fn(&Reply),
) -> Result<(), String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let mut sources: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    for line in text.lines() {
        let case: ChildCase =
            serde_json::from_str(line).map_err(|e| format!("a bad case line: {e}"))?;
        if !sources.contains_key(&case.source) {
            let bytes = crate::tree::read_source(&case.source)?;
            sources.insert(case.source.clone(), bytes);
        }
        let source = sources.get(&case.source).map_or(&[][..], Vec::as_slice);
        let path = materialise(&case, source, scratch)?;
        say(&Reply::Started(case.name.clone()));
        let base = reset_peak_memory();
        let outcome = outcome(backend, fixtures, &case.via, &path);
        let peak = base.and_then(|_| memory_kib("VmHWM:"));
        say(&Reply::Result {
            name: case.name.clone(),
            base_kib: base,
            peak_kib: peak,
            outcome,
        });
        crate::tree::remove(&path);
    }
    Ok(())
}

/// One line of `/proc/self/status` in KiB (`VmHWM:`, `VmRSS:`).
pub(super) fn memory_kib(field: &str) -> Option<u64> {
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
pub(super) fn reset_peak_memory() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    memory_kib("VmRSS:")
}

/// What a child said about one case: the outcome line, and how much its resident memory grew
/// while loading (KiB), when known.
#[derive(Clone, Debug)]
pub(super) struct Said {
    pub(super) line: String,
    pub(super) growth_kib: Option<u64>,
}

/// What the child said about a case, from its base and peak memory and its outcome.
pub(super) fn said(base_kib: Option<u64>, peak_kib: Option<u64>, outcome: String) -> Said {
    Said {
        line: outcome,
        growth_kib: base_kib.zip(peak_kib).map(|(b, p)| p.saturating_sub(b)),
    }
}

/// Loads `cases` in memory-limited children; a child that dies or hangs on a case is recorded
/// against it and replaced by a fresh child for the rest. Returns one outcome per case, in
/// order: the outcome line, or why the child died on it.
pub(super) fn run_children(
    cases: &[&ChildCase],
    dir: &Path,
    tag: &str,
) -> Result<Vec<Result<Said, String>>, String> {
    let list = dir.join(format!("{tag}.list"));
    let scratch = dir.join(format!("{tag}-scratch"));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let scratch_prefix = format!("{}/", scratch.display());
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
        let (send, replies) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(reply) = Reply::parse(&line)
                    && send.send(reply).is_err()
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
            match replies.recv_timeout(CASE_TIMEOUT) {
                Ok(Ok(Reply::Result {
                    base_kib,
                    peak_kib,
                    outcome,
                    ..
                })) => {
                    // The report names the damaged file, not the scratch directory it was in.
                    let outcome = outcome.replace(&scratch_prefix, "");
                    outcomes.push(Ok(said(base_kib, peak_kib, outcome)));
                }
                Ok(Ok(Reply::Done)) => done = true,
                Ok(Ok(Reply::Error(e))) => error = Some(e),
                // A child that died inside a long line leaves part of it: the case it was on
                // is charged with its death below.
                Ok(Ok(_) | Err(_)) => {}
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

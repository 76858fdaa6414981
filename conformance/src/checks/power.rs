//! CP, IO and FS: power-loss crash states rebuilt from strace recordings, injected I/O errors
//! (strace's fault injection, and a genuinely full tmpfs), and fsync poisoning.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use ndstore_core::{Backend, CrashGuarantee, DynArray, SaveOptions};

use crate::check::Check;
use crate::checks::{same_bits, size_text};
use crate::child::{self, PoisonHandle, Task};
use crate::powerloss::{TargetKey, crash_states};
use crate::protocol::{Reply, ReplySlot, failed_with, replies};
use crate::report::CheckResult;
use crate::scenario::{Scale, Scenario};
use crate::syscalls::{self, Recording};
use crate::{Ctx, Mode};

/// How long a child may take before it counts as hung.
pub(super) const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn strace_missing() -> Option<&'static str> {
    match Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some("strace (install it: apt-get install strace)"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory for one case, with its path resolved (strace names files by real path).
pub(super) fn case_dir(ctx: &Ctx<'_>, name: &str) -> Result<PathBuf, String> {
    let dir = ctx.dir.path().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    dir.canonicalize().map_err(|e| e.to_string())
}

pub(super) fn target_name(backend: &dyn Backend) -> String {
    format!("target.{}", backend.extension())
}

/// Waits for `child`, killing it after `timeout`.
pub(super) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the child hung for {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Forwards the lines of a pipe to a channel.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, recv) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    recv
}

/// Every line still to come, up to the end of the pipe: a child that has exited may have
/// written lines the reading thread has not passed on yet (under load, an FS case once lost its
/// last line, "FINISH err", that way). Gives up after 10 s, in case a process the child
/// started keeps the pipe open.
fn drain(lines: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    got
}

/// Waits for a line containing `word`.
fn expect_line(lines: &Receiver<String>, word: &str) -> Result<(), String> {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(word) => return Ok(()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err(format!("no '{word}' from the child"))
}

/// Runs `task` in a child that waits for a tracer: strace attaches with `strace_args` (fault
/// injection), then the child goes on. Returns its exit status and replies.
pub(super) fn run_attached(
    task: &Task,
    strace_args: &[String],
) -> Result<(ExitStatus, Vec<Reply>), String> {
    run_attached_logged(task, strace_args, Path::new("/dev/null"))
}

/// [`run_attached`], with strace's output in `log`.
pub(super) fn run_attached_logged(
    task: &Task,
    strace_args: &[String],
    log: &Path,
) -> Result<(ExitStatus, Vec<Reply>), String> {
    let mut child = child::command(task)?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    let lines = lines_of(child.stdout.take().ok_or("no child stdout")?);
    let ready = expect_line(&lines, &Reply::Ready.line());
    if let Err(e) = ready {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let mut tracer = Command::new("strace")
        .args(["-f", "-o"])
        .arg(log)
        .args(["-p", &child.id().to_string()])
        .args(strace_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start strace: {e}"))?;
    let traced = lines_of(tracer.stderr.take().ok_or("no strace stderr")?);
    let attached = expect_line(&traced, "attached");
    let go = attached.and_then(|()| {
        child
            .stdin
            .take()
            .ok_or("no child stdin".to_owned())?
            .write_all(b"GO\n")
            .map_err(|e| e.to_string())
    });
    if let Err(e) = go {
        let _ = child.kill();
        let _ = child.wait();
        let _ = tracer.kill();
        let _ = tracer.wait();
        return Err(format!("strace could not attach: {e}"));
    }
    let status = wait_timeout(&mut child, CHILD_TIMEOUT);
    let _ = wait_timeout(&mut tracer, Duration::from_secs(10));
    let status = status?;
    let replies = drain(&lines)
        .iter()
        .filter_map(|l| Reply::parse(l))
        .collect::<Result<_, _>>()?;
    Ok((status, replies))
}

/// Prepares `dir` with the scenario's old version, records the scenario under strace, and
/// parses the recording. Returns it with the bytes of the files that were there before.
fn record(
    backend: &dyn Backend,
    dir: &Path,
    scenario: Scenario,
    scale: Scale,
) -> Result<(Recording, HashMap<usize, Vec<u8>>), String> {
    let file = target_name(backend);
    backend
        .save(
            &dir.join(&file),
            &scenario.old(backend, scale),
            &SaveOptions::default(),
        )
        .map_err(|e| format!("saving the old version: {e}"))?;
    // The files there before, with their bytes as they are now: the durable starting state.
    let (initial, before) = snapshot(dir)?;
    let log = dir.with_extension("strace");
    let slot = ReplySlot::new()?;
    let task = Task::Scenario {
        dir: dir.to_path_buf(),
        file,
        scenario,
        scale,
        attach: false,
        reply: slot.path(),
    };
    let status = run_traced(&task, &log)?;
    let reply = slot.read();
    let succeeded = Ok(Reply::Ran {
        ok: true,
        leaked: false,
    });
    if !status.success() || reply != succeeded {
        return Err(format!(
            "{} did not succeed in the child ({status}: {reply:?})",
            scenario.name()
        ));
    }
    let text = std::fs::read(&log).map_err(|e| format!("reading the strace log: {e}"))?;
    let _ = std::fs::remove_file(&log);
    let text = String::from_utf8_lossy(&text);
    let final_bytes = |path: &Path| std::fs::read(dir.join(path)).ok();
    let rec = syscalls::parse(&text, dir, &initial, &final_bytes)?;
    // `parse` numbers the initial files in the order given.
    let bytes = rec
        .initial
        .iter()
        .filter_map(|(path, inode)| {
            let at = initial.files.iter().position(|p| p == path)?;
            Some((*inode, before[at].clone()))
        })
        .collect();
    Ok((rec, bytes))
}

/// The files and directories below `dir` (relative paths, each directory after its parent),
/// and the files' bytes, in the order of the files.
fn snapshot(dir: &Path) -> Result<(syscalls::Listing, Vec<Vec<u8>>), String> {
    let mut listing = syscalls::Listing::default();
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&at)).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = at.join(entry.file_name());
            if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
                listing.dirs.push(path.clone());
                stack.push(path);
            } else {
                bytes.push(std::fs::read(dir.join(&path)).map_err(|e| e.to_string())?);
                listing.files.push(path);
            }
        }
    }
    Ok((listing, bytes))
}

/// Runs `task` in a child under strace from its start, recording [`syscalls::TRACED`] into
/// `log`; returns the child's exit status.
fn run_traced(task: &Task, log: &Path) -> Result<ExitStatus, String> {
    let limit = syscalls::STRING_LIMIT.to_string();
    let mut cmd = wrapped(
        "strace",
        &[
            "-f",
            "-y",
            "-xx",
            "-s",
            &limit,
            "-e",
            syscalls::TRACED,
            "-o",
        ],
        Some(log.as_os_str()),
        &child::command(task)?,
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc = cmd
        .spawn()
        .map_err(|e| format!("cannot run strace (install it: apt-get install strace): {e}"))?;
    wait_timeout(&mut proc, CHILD_TIMEOUT)
}

/// `program pre_args [extra] inner...`: runs `inner`'s command under a wrapper (strace,
/// unshare), with `inner`'s environment.
pub(super) fn wrapped(
    program: &str,
    pre_args: &[&str],
    extra: Option<&std::ffi::OsStr>,
    inner: &Command,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(pre_args);
    if let Some(extra) = extra {
        cmd.arg(extra);
    }
    cmd.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// What a crash state's target loads as.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Found {
    Old,
    New,
    Other(String),
}

fn load_state(
    backend: &dyn Backend,
    judge_dir: &Path,
    file: &str,
    bytes: Option<&[u8]>,
    old: &DynArray,
    new: &DynArray,
) -> Result<Found, String> {
    let path = judge_dir.join(file);
    crate::tree::remove(&path);
    let Some(bytes) = bytes else {
        return Ok(Found::Other("no file".to_owned()));
    };
    crate::checks::put_target(&path, bytes)?;
    let found = match crate::checks::load(backend, &path) {
        Ok((_, a)) if same_bits(&a, new) => Found::New,
        Ok((_, a)) if same_bits(&a, old) => Found::Old,
        Ok((_, a)) => Found::Other(format!("another array, shape {:?}", a.shape())),
        Err(e) => Found::Other(format!("unreadable: {e}")),
    };
    crate::tree::remove(&path);
    Ok(found)
}

/// Every crash state of `scenario`: (states checked, descriptions of the bad ones).
fn explore(
    ctx: &Ctx<'_>,
    scenario: Scenario,
    scale: Scale,
    n: usize,
) -> Result<(usize, Vec<String>), String> {
    let backend = ctx.backend;
    let dir = case_dir(ctx, &format!("cp-{n}"))?;
    let (rec, initial) = record(backend, &dir, scenario, scale)?;
    let file = target_name(backend);
    let states = crash_states(&rec, std::ffi::OsStr::new(&file));
    let judge_dir = case_dir(ctx, &format!("cp-{n}-judge"))?;
    let (old, new) = (
        scenario.old(backend, scale),
        scenario.new_version(backend, scale),
    );
    let before_commit_is_atomic = scenario != Scenario::InPlace
        || backend.capabilities().in_place == Some(CrashGuarantee::AtomicReplace);
    let mut bad = Vec::new();
    // Many directory states hold the same target: each distinct one is rebuilt and loaded once.
    let mut judged: HashMap<TargetKey, Found> = HashMap::new();
    for state in &states {
        if !state.after_commit && !before_commit_is_atomic {
            continue;
        }
        if !judged.contains_key(&state.target) {
            let found = match state.target_bytes(&rec, &initial) {
                Ok(bytes) => load_state(backend, &judge_dir, &file, bytes.as_deref(), &old, &new)?,
                Err(e) => Found::Other(e),
            };
            judged.insert(state.target.clone(), found);
        }
        let Some(found) = judged.get(&state.target) else {
            continue;
        };
        let fine = matches!(
            (found, state.after_commit),
            (Found::New, _) | (Found::Old, false)
        );
        if !fine {
            bad.push(format!("{}: {:?}", state.label, found));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&judge_dir);
    Ok((states.len(), bad))
}

/// CP: see the module documentation.
pub fn cp(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    if let Some(missing) = strace_missing() {
        return Ok(CheckResult::skipped(
            Check::PowerLoss,
            &format!("no {missing}"),
        ));
    }
    let mut n = 0;
    let real = explore_real(ctx, &mut n);
    let mut failures = real.failures;
    let (bad_cases, caught) = explore_known_bad(ctx, &mut n, &mut failures)?;
    Ok(CheckResult::counted(
        Check::PowerLoss,
        (real.cases + bad_cases) as u64,
        &failures,
        &format!(
            "arrays up to {}: power-loss crash states from strace recordings (prefixes, one lost operation, torn 4 KiB pages; writes over {} rebuilt from the final file): {}; self-test on known-bad protocols: {}",
            size_text(real.largest),
            size_text(syscalls::STRING_LIMIT),
            real.summary.join("; "),
            caught.join(", ")
        ),
    ))
}

/// What CP found in the backend's real protocols.
struct Explored {
    /// Crash states checked, plus one per protocol the model refused.
    cases: usize,
    failures: Vec<String>,
    /// One line per protocol: its states and bad states.
    summary: Vec<String>,
    /// The bytes of the largest array saved.
    largest: usize,
}

/// Explores every real scenario that applies to the backend, small and large; `n` numbers the
/// cases' directories.
fn explore_real(ctx: &Ctx<'_>, n: &mut usize) -> Explored {
    let backend = ctx.backend;
    let mut found = Explored {
        cases: 0,
        failures: Vec::new(),
        summary: Vec::new(),
        largest: 0,
    };
    for scale in [Scale::Small, Scale::Large] {
        for scenario in Scenario::REAL {
            if !scenario.applies(backend) {
                continue;
            }
            *n += 1;
            let name = case_name(backend, scenario, scale);
            found.largest = found.largest.max(case_bytes(backend, scenario, scale));
            let (states, bad) = match explore(ctx, scenario, scale, *n) {
                Ok(explored) => explored,
                Err(e) => {
                    found.cases += 1;
                    found.failures.push(format!("{name}: {e}"));
                    found.summary.push(format!("{name}: not modelled"));
                    continue;
                }
            };
            found.cases += states;
            found
                .summary
                .push(format!("{name}: {states} states, {} bad", bad.len()));
            found
                .failures
                .extend(bad.into_iter().take(5).map(|b| format!("{name}: {b}")));
        }
    }
    found
}

/// The checker proves it can fail: each known-bad protocol must show bad states, and one of
/// them also at 64 MiB, where writes are rebuilt from the final file. Returns the cases run and
/// what each showed.
fn explore_known_bad(
    ctx: &Ctx<'_>,
    n: &mut usize,
    failures: &mut Vec<String>,
) -> Result<(usize, Vec<String>), String> {
    let backend = ctx.backend;
    let mut cases = 0;
    let mut caught = Vec::new();
    let bad_cases = Scenario::BAD
        .into_iter()
        .map(|s| (s, Scale::Small))
        .chain([(Scenario::RenameWithoutFsync, Scale::Large)]);
    for (scenario, scale) in bad_cases {
        if !scenario.applies(backend) {
            continue;
        }
        *n += 1;
        cases += 1;
        let name = case_name(backend, scenario, scale);
        let (states, bad) =
            explore(ctx, scenario, scale, *n).map_err(|e| format!("{name}: {e}"))?;
        if bad.is_empty() {
            failures.push(format!(
                "self-test: the known-bad protocol '{name}' showed no bad state in {states}"
            ));
        }
        caught.push(format!("{name} {}/{states} bad", bad.len()));
    }
    Ok((cases, caught))
}

/// A scenario's name with the size of its new version: `atomic save of 64 MiB`.
fn case_name(backend: &dyn Backend, scenario: Scenario, scale: Scale) -> String {
    format!(
        "{} of {}",
        scenario.name(),
        size_text(case_bytes(backend, scenario, scale))
    )
}

/// The bytes of a scenario's larger version.
fn case_bytes(backend: &dyn Backend, scenario: Scenario, scale: Scale) -> usize {
    crate::checks::array_bytes(&scenario.new_version(backend, scale))
        .max(crate::checks::array_bytes(&scenario.old(backend, scale)))
}

/// The syscalls the IO check fails, when the operation makes them.
const INJECTED: [&str; 11] = [
    "write",
    "pwrite64",
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "close",
    "msync",
    "mkdir",
    "mkdirat",
];

/// Which occurrences of a call to fail: all of them in full mode; in quick mode the first
/// two, the middle and the last.
fn sample(count: usize, mode: Mode) -> Vec<usize> {
    let mut ks: Vec<usize> = match mode {
        Mode::Full => (1..=count).collect(),
        Mode::Quick => vec![1, 2, count.div_ceil(2), count],
    };
    ks.retain(|&k| (1..=count).contains(&k));
    ks.sort_unstable();
    ks.dedup();
    ks
}

struct Injection<'a> {
    call: &'a str,
    k: usize,
    errno: &'a str,
    persistent: bool,
    /// The recorded save made the call on several threads, whose shares of the work vary from
    /// run to run: a run in which no thread reached occurrence k injected nothing, and runs
    /// again (it is not a failure that was swallowed).
    spread: bool,
}

impl Injection<'_> {
    /// `write #3 fails with EIO once`.
    fn describe(&self) -> String {
        format!(
            "{} #{} fails with {}{}",
            self.call,
            self.k,
            self.errno,
            if self.persistent {
                " from then on"
            } else {
                " once"
            }
        )
    }

    /// strace's arguments that trace the call and fail it.
    fn strace_args(&self) -> Vec<String> {
        let (call, k) = (self.call, self.k);
        let when = if self.persistent {
            format!("{k}+")
        } else {
            k.to_string()
        };
        vec![
            "-y".to_owned(),
            "-e".to_owned(),
            format!("trace={call}"),
            "-e".to_owned(),
            format!("inject={call}:error={}:when={when}", self.errno),
        ]
    }
}

/// The injections into an atomic save of `scale`: every traced call the recorded save made,
/// at the occurrences [`sample`] picks; at 64 MiB the first, middle and last occurrence with
/// EIO once, and the first with ENOSPC from then on. Each with whether its failure matters.
///
/// strace counts occurrences per thread, so occurrence k means the k-th call of each thread
/// that makes k of them (a backend that writes chunks on worker threads makes fewer per
/// thread), and a failure matters when it does in one of those threads.
fn save_plan(rec: &Recording, mode: Mode, scale: Scale) -> Vec<(Injection<'static>, bool)> {
    let mut plan = Vec::new();
    for call in INJECTED {
        let mut threads: Vec<(&str, Vec<&syscalls::Call>)> = Vec::new();
        for c in rec.calls.iter().filter(|c| c.name == call) {
            match threads.iter_mut().find(|(t, _)| *t == c.thread) {
                Some((_, calls)) => calls.push(c),
                None => threads.push((&c.thread, vec![c])),
            }
        }
        let count = threads.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
        // At 64 MiB the first, middle and last occurrences (the second too in full mode).
        let ks = match scale {
            Scale::Large => sample(count, Mode::Quick)
                .into_iter()
                .filter(|&k| k != 2 || mode == Mode::Full)
                .collect(),
            Scale::Small => sample(count, mode),
        };
        for k in ks {
            let variants: &[(&str, bool)] = match scale {
                Scale::Small if mode == Mode::Full || k == 1 => &[
                    ("EIO", false),
                    ("EIO", true),
                    ("ENOSPC", false),
                    ("ENOSPC", true),
                    ("EDQUOT", false),
                    ("EDQUOT", true),
                ],
                Scale::Small => &[("EIO", false), ("EIO", true)],
                Scale::Large if k == 1 => &[("EIO", false), ("ENOSPC", true)],
                Scale::Large => &[("EIO", false)],
            };
            for &(errno, persistent) in variants {
                // A failure that matters, at k or (persistent) any later occurrence of a thread.
                let matters = threads.iter().any(|(_, occurrences)| {
                    occurrences
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i + 1 == k || (persistent && *i + 1 > k))
                        .any(|(_, c)| c.matters)
                });
                plan.push((
                    Injection {
                        call,
                        k,
                        errno,
                        persistent,
                        spread: threads.len() > 1,
                    },
                    matters,
                ));
            }
        }
    }
    plan
}

/// IO: see the module documentation.
pub fn io(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    if let Some(missing) = strace_missing() {
        return Ok(CheckResult::skipped(
            Check::InjectedIo,
            &format!("no {missing}"),
        ));
    }
    if !is_root() {
        return Ok(CheckResult::skipped(
            Check::InjectedIo,
            "not root (strace attaches to a child; a tmpfs is mounted)",
        ));
    }
    let backend = ctx.backend;
    if !backend.capabilities().atomic_replace() {
        return Ok(CheckResult::not_applicable(
            Check::InjectedIo,
            "atomic_replace",
        ));
    }
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    let mut largest = 0;
    for scale in [Scale::Small, Scale::Large] {
        let (n, note) = inject_into_saves(ctx, scale, &mut failures)?;
        cases += n;
        notes.push(note);
        largest = largest.max(case_bytes(backend, Scenario::Save, scale));
    }
    if backend.capabilities().streaming_append {
        let (n, note, bytes) = super::writer_faults::run(ctx, &mut failures)?;
        cases += n;
        notes.push(note);
        largest = largest.max(bytes);
    }
    let (n, disk_missing) = full_disk_cases(ctx, &mut failures, &mut notes)?;
    cases += n;
    let result = CheckResult::counted(
        Check::InjectedIo,
        cases as u64,
        &failures,
        &format!("arrays up to {}: {}", size_text(largest), notes.join("; ")),
    );
    Ok(if disk_missing {
        result.with_skipped_part(
            "the full-disk case needs unshare and mount (a tmpfs in a private mount namespace)",
        )
    } else {
        result
    })
}

/// IO's full-disk cases, small and large: returns how many ran, and whether the machine could
/// not run them.
fn full_disk_cases(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(usize, bool), String> {
    let mut cases = 0;
    let mut missing = false;
    for scale in [Scale::Small, Scale::Large] {
        let disk = full_disk(ctx, scale)?;
        let size = size_text(case_bytes(ctx.backend, Scenario::Save, scale));
        match &disk {
            Some(Ok(())) => notes.push(format!(
                "a full tmpfs under a save of {size}: ENOSPC surfaced, old file intact, no temporary left, a later save fits"
            )),
            Some(Err(e)) => {
                failures.push(format!("full disk ({size}): {e}"));
                notes.push(format!("full disk ({size}): {e}"));
            }
            None => {
                missing = true;
                notes.push(format!("full disk ({size}) not run"));
            }
        }
        if disk.is_some() {
            cases += 1;
        }
    }
    Ok((cases, missing))
}

/// Injects failures into atomic saves of `scale`; returns the case count and a description.
fn inject_into_saves(
    ctx: &Ctx<'_>,
    scale: Scale,
    failures: &mut Vec<String>,
) -> Result<(usize, String), String> {
    let backend = ctx.backend;
    let dir = case_dir(ctx, "io")?;
    let (rec, _) = record(backend, &dir, Scenario::Save, scale)?;
    let _ = std::fs::remove_dir_all(&dir);
    let plan = save_plan(&rec, ctx.mode, scale);
    let size = size_text(case_bytes(backend, Scenario::Save, scale));
    // The old file's bytes: a failed save must leave exactly them.
    let old_bytes = saved_bytes(ctx, &Scenario::Save.old(backend, scale))?;
    let new = Scenario::Save.new_version(backend, scale);
    let label = format!("{} {size}", Check::InjectedIo);
    let mut progress = crate::progress::Progress::new(backend.name(), &label, plan.len() as u64);
    for (done, (injection, matters)) in plan.iter().enumerate() {
        progress.tick(done as u64);
        let name = format!("save of {size}: {}", injection.describe());
        // strace counts an injection's occurrences per thread, and a thread's first calls vary
        // from run to run (glibc reads `/proc/sys/vm/overcommit_memory` when it first trims an
        // arena; the release thread closes a replaced file): the occurrence the plan counted on
        // may be another call in this run. A case that matters whose failure hit nothing that
        // matters runs again, up to three times, before it is judged without that failure.
        let mut attempt = 1;
        let problems = loop {
            let (problems, hit) = injected_save(ctx, scale, injection, *matters, &old_bytes, &new)?;
            if hit || !*matters || attempt == 3 || !problems.is_empty() {
                break problems;
            }
            attempt += 1;
        };
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    let _ = std::fs::remove_dir_all(ctx.dir.path().join("io-case"));
    let _ = std::fs::remove_dir_all(ctx.dir.path().join("io-old"));
    Ok((
        plan.len(),
        format!(
            "{} injected failures (strace: write, pwrite64, fsync, fdatasync, rename, close, msync, mkdir × {}, once and from then on) into an atomic save of {size}: Err returned, old file untouched or new, no temporary, no descriptor leaked, no panic",
            plan.len(),
            if scale == Scale::Small {
                "EIO/ENOSPC/EDQUOT"
            } else {
                "EIO/ENOSPC"
            }
        ),
    ))
}

/// The bytes of the backend's file (or tree, packed) for `array`, saved in a scratch directory.
fn saved_bytes(ctx: &Ctx<'_>, array: &DynArray) -> Result<Vec<u8>, String> {
    let dir = case_dir(ctx, "io-old")?;
    let path = dir.join(target_name(ctx.backend));
    ctx.backend
        .save(&path, array, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    crate::checks::target_bytes(&path)
}

/// One IO case: an atomic save of `new` over a file holding `old_bytes`, with `injection`'s
/// failure. Returns what went wrong (nothing when the case held) and whether the failure hit a
/// call that matters (`matters` is the plan's word, checked against strace's log).
fn injected_save(
    ctx: &Ctx<'_>,
    scale: Scale,
    injection: &Injection<'_>,
    matters: bool,
    old_bytes: &[u8],
    new: &DynArray,
) -> Result<(Vec<String>, bool), String> {
    let file = target_name(ctx.backend);
    let dir = case_dir(ctx, "io-case")?;
    let target = dir.join(&file);
    crate::checks::put_target(&target, old_bytes)?;
    let slot = ReplySlot::new()?;
    let task = Task::Scenario {
        dir: dir.clone(),
        file,
        scenario: Scenario::Save,
        scale,
        attach: true,
        reply: slot.path(),
    };
    let log = ctx.dir.path().join("io-strace.log");
    let (status, _) = match run_attached_logged(&task, &injection.strace_args(), &log) {
        Ok(r) => r,
        Err(e) => return Ok((vec![e], true)),
    };
    // The calls strace failed, named in a swallowed failure's report.
    let hit = injected_lines(&log);
    let matters = matters && injected_into(&log, &dir) && !(injection.spread && hit.is_empty());
    let (ok, leaked) = match slot.read() {
        Ok(Reply::Ran { ok, leaked }) if status.success() => (ok, leaked),
        reply => {
            return Ok((
                vec![format!(
                    "the child died ({status}): a panic or an abort ({reply:?})"
                )],
                matters,
            ));
        }
    };
    let mut problems = Vec::new();
    // An injected close leaves the descriptor open (a real one frees it).
    if leaked && injection.call != "close" {
        problems.push("a file descriptor leaked".to_owned());
    }
    problems.extend(judge_failed_save(
        ctx.backend,
        &target,
        old_bytes,
        new,
        ok,
        matters,
    ));
    if ok && matters {
        problems.push(format!("strace failed: {}", hit.join(" | ")));
    }
    Ok((problems, matters))
}

/// What is wrong after a save that returned Ok (`ok`) or Err under an injected failure (which
/// `matters` when it hit a call the save must not ignore): a swallowed failure, a temporary
/// left, a target that is neither the old file nor, after Ok, the new version.
fn judge_failed_save(
    backend: &dyn Backend,
    target: &Path,
    old_bytes: &[u8],
    new: &DynArray,
    ok: bool,
    matters: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if ok && matters {
        problems.push("the failure was swallowed: the save returned Ok".to_owned());
    }
    match ndstore_core::list_temps(target) {
        Ok(t) if t.is_empty() => {}
        Ok(t) => problems.push(format!("{} temporary file(s) left", t.len())),
        Err(e) => problems.push(e.to_string()),
    }
    let untouched = crate::checks::target_bytes(target).is_ok_and(|b| b == old_bytes);
    if !untouched || ok {
        match crate::checks::load(backend, target) {
            Ok((_, a)) if same_bits(&a, new) => {}
            Ok(_) => problems.push(format!(
                "the target holds neither the old file, byte for byte, nor (after Ok) the new version (returned {})",
                if ok { "Ok" } else { "Err" }
            )),
            Err(e) => problems.push(format!("the target is unreadable: {e}")),
        }
    }
    problems
}

/// The lines of `log` on which strace failed a call on purpose, trimmed, at most four.
pub(super) fn injected_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("(INJECTED)"))
        .take(4)
        .map(|l| l.trim().chars().take(300).collect())
        .collect()
}

/// Whether some call strace failed on purpose (its `(INJECTED)` lines in `log`, written with
/// `-y`, which names each descriptor's file) touched `dir`, or named no file at all (then it
/// cannot be told apart, and it counts). True when the log cannot be read.
pub(super) fn injected_into(log: &Path, dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(log) else {
        return true;
    };
    injected_into_text(&text, dir)
}

/// As [`injected_into`], counting only the calls logged between the start and commit marks
/// (the failed opens of [`crate::syscalls::MARK_START`] and
/// [`crate::syscalls::MARK_COMMITTED`]): those of the operation under test. False when no
/// call was failed there.
pub(super) fn injected_between_marks(log: &Path, dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(log) else {
        return true;
    };
    let mut inside = false;
    let mut between = String::new();
    for line in text.lines() {
        if line.contains(crate::syscalls::MARK_START) {
            inside = true;
        } else if line.contains(crate::syscalls::MARK_COMMITTED) {
            inside = false;
        } else if inside {
            between.push_str(line);
            between.push('\n');
        }
    }
    between.contains("(INJECTED)") && injected_into_text(&between, dir)
}

/// [`injected_into`] of a log's text.
fn injected_into_text(text: &str, dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = false;
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("(INJECTED)") {
            continue;
        }
        found = true;
        // A call another thread interrupted ends on a `<... close resumed>` line; its
        // arguments are on the same process's `<unfinished ...>` line before it.
        let call = if line.contains("resumed>") {
            let pid = line.split_whitespace().next().unwrap_or_default();
            lines[..i]
                .iter()
                .rev()
                .find(|l| {
                    l.contains("<unfinished ...>") && l.split_whitespace().next() == Some(pid)
                })
                .copied()
        } else {
            Some(*line)
        };
        match call {
            // A file no longer in the directory (the replaced file, closed on the release
            // thread; a removed temporary) holds nothing the save promised.
            Some(call) if call.contains("(deleted)") => {}
            Some(call) if call.contains(dir.as_ref()) => return true,
            // Arguments naming no file, or not found: it cannot be told apart, so it counts.
            Some(call) if !call.contains('<') || call.contains("resumed>") => return true,
            None => return true,
            Some(_) => {}
        }
    }
    !found
}

/// Saves into a tmpfs mounted in a private mount namespace, too small for a second copy of the
/// file: 256 KiB for small arrays, one and a half times a 64 MiB save's file for large ones.
/// None when the machine cannot make one.
fn full_disk(ctx: &Ctx<'_>, scale: Scale) -> Result<Option<Result<(), String>>, String> {
    let unshare_works = Command::new("unshare")
        .args(["-m", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_works {
        return Ok(None);
    }
    let backend = ctx.backend;
    let size = tmpfs_size(ctx, scale)?;
    let dir = case_dir(ctx, "full")?;
    let task = Task::FullDisk {
        dir: dir.clone(),
        file: target_name(backend),
        scale,
    };
    // The size is digits and a unit, made here: safe inside the script.
    let script = format!("mount -t tmpfs -o size={size} ndstore-full \"$0\" && exec \"$@\"");
    let mut cmd = wrapped(
        "unshare",
        &["-m", "--", "sh", "-c", &script],
        Some(dir.as_os_str()),
        &child::command(&task)?,
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let out = cmd.output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let replies = replies(&out.stdout)?;
    let found = replies.iter().find_map(|r| match r {
        Reply::FullDisk(found) => Some(found),
        _ => None,
    });
    let Some(found) = found.filter(|_| out.status.success()) else {
        return Ok(Some(Err(format!(
            "the child failed ({}): {replies:?}",
            out.status
        ))));
    };
    let wrong = full_disk_wrong(found);
    Ok(Some(if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }))
}

/// What is wrong in a full-disk child's findings: the first save must succeed, the one that
/// does not fit fail with `StorageFull` and leave the old file and no temporary, and a later
/// small save succeed and load.
fn full_disk_wrong(found: &crate::protocol::FullDisk) -> Vec<String> {
    let mut wrong = Vec::new();
    expect(
        &mut wrong,
        "the first save Ok",
        found.old.is_ok(),
        &found.old,
    );
    expect(
        &mut wrong,
        "the save that does not fit Err StorageFull",
        failed_with(&found.big, "StorageFull"),
        &found.big,
    );
    expect(
        &mut wrong,
        "the old file intact",
        found.intact,
        found.intact,
    );
    expect(
        &mut wrong,
        "no temporary left",
        found.temps == 0,
        found.temps,
    );
    expect(
        &mut wrong,
        "the later save Ok",
        found.small.is_ok(),
        &found.small,
    );
    expect(&mut wrong, "the later save loads", found.new, found.new);
    wrong
}

/// The size of the full-disk case's tmpfs, as mount takes it: 256 KiB for small arrays, one
/// and a half times a saved file for large ones.
fn tmpfs_size(ctx: &Ctx<'_>, scale: Scale) -> Result<String, String> {
    let backend = ctx.backend;
    Ok(match scale {
        Scale::Small => "256k".to_owned(),
        Scale::Large => {
            let probe = case_dir(ctx, "full-probe")?.join(target_name(backend));
            backend
                .save(
                    &probe,
                    &Scenario::Save.old(backend, scale),
                    &SaveOptions::new().flushed(),
                )
                .map_err(|e| e.to_string())?;
            // A tree's files packed: a little more than their bytes.
            let bytes = crate::checks::target_bytes(&probe)?.len() as u64;
            let _ = std::fs::remove_dir_all(ctx.dir.path().join("full-probe"));
            format!("{}k", (bytes + bytes / 2) >> 10)
        }
    })
}

/// Adds `expected ..., got ...` to `wrong` unless what the child reported `holds`.
fn expect(wrong: &mut Vec<String>, expected: &str, holds: bool, got: impl std::fmt::Debug) {
    if !holds {
        wrong.push(format!("expected {expected}, got {got:?}"));
    }
}

/// FS: see the module documentation.
pub fn fs(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    if let Some(missing) = strace_missing() {
        return Ok(CheckResult::skipped(
            Check::FsyncFailure,
            &format!("no {missing}"),
        ));
    }
    if !is_root() {
        return Ok(CheckResult::skipped(
            Check::FsyncFailure,
            "not root (strace attaches to a child)",
        ));
    }
    let backend = ctx.backend;
    let handles = syncing_handles(&backend.capabilities());
    if handles.is_empty() {
        return Ok(CheckResult::not_applicable(
            Check::FsyncFailure,
            "streaming_append or in_place_update (no handle that syncs)",
        ));
    }
    let mut failures = Vec::new();
    let args = vec![
        "-e".to_owned(),
        "trace=fsync,fdatasync,msync".to_owned(),
        "-e".to_owned(),
        "inject=fsync,fdatasync,msync:error=EIO:when=1".to_owned(),
    ];
    let mut cases = 0;
    let mut largest = 0;
    for scale in [Scale::Small, Scale::Large] {
        for flushed in [false, true] {
            for handle in &handles {
                cases += 1;
                let data = child::poison_data(backend, *handle, scale);
                largest = largest.max(crate::checks::array_bytes(&data));
                let name = format!(
                    "{handle:?} ({}, {})",
                    if flushed { "flushed" } else { "synced" },
                    size_text(crate::checks::array_bytes(&data))
                );
                if let Err(e) = poison_case(ctx, *handle, flushed, scale, &data, &args) {
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
    }
    Ok(CheckResult::counted(
        Check::FsyncFailure,
        cases,
        &failures,
        &format!(
            "arrays up to {}: the first fsync/msync fails with EIO (strace) on {}, each synced and flushed (Durability::Flushed), small and large: that sync returns Err, every later sync and the commit or close return Err (poisoned), and a fresh atomic save of the same data succeeds",
            size_text(largest),
            handles
                .iter()
                .map(|h| format!("{h:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// The handles of a backend with these capabilities that sync, which FS poisons.
fn syncing_handles(caps: &ndstore_core::Capabilities) -> Vec<PoisonHandle> {
    let mut handles = Vec::new();
    if caps.streaming_append {
        handles.push(PoisonHandle::WriterInPlace);
        handles.push(PoisonHandle::WriterAtomic);
    }
    if caps.in_place_update() {
        handles.push(PoisonHandle::InPlace);
    }
    handles
}

/// One FS case: the handle's first sync fails; it must stay poisoned; a fresh save recovers.
fn poison_case(
    ctx: &Ctx<'_>,
    handle: PoisonHandle,
    flushed: bool,
    scale: Scale,
    data: &DynArray,
    args: &[String],
) -> Result<(), String> {
    let backend = ctx.backend;
    let dir = case_dir(ctx, "fs")?;
    let path = dir.join(target_name(backend));
    if handle == PoisonHandle::InPlace {
        let old = crate::checks::versioned_with_len(backend, 0, 0, data.len());
        backend
            .save(&path, &old, &SaveOptions::default())
            .map_err(|e| e.to_string())?;
    }
    let task = Task::Poison {
        path: path.clone(),
        handle,
        flushed,
        scale,
    };
    let (status, replies) = run_attached(&task, args)?;
    let mut wrong = poison_replies_wrong(&replies);
    // Recovery: a fresh atomic save of the same data.
    let fresh = dir.join(format!("fresh.{}", backend.extension()));
    match backend
        .save(&fresh, data, &SaveOptions::default())
        .and_then(|()| backend.load(&fresh))
    {
        Ok((_, a)) if same_bits(&a, data) => {}
        Ok(_) => wrong.push("the fresh save reads back different data".to_owned()),
        Err(e) => wrong.push(format!("the fresh save failed: {e}")),
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() || !wrong.is_empty() {
        return Err(format!("{status}: {}", wrong.join("; ")));
    }
    Ok(())
}

/// What is wrong in a poisoned handle's replies: its first sync must fail, the second with
/// `Poisoned`, and the commit or close must fail.
fn poison_replies_wrong(replies: &[Reply]) -> Vec<String> {
    let mut wrong = Vec::new();
    match replies.iter().find(|r| matches!(r, Reply::Synced { .. })) {
        Some(Reply::Synced { first, second }) => {
            expect(&mut wrong, "the first sync Err", first.is_err(), first);
            expect(
                &mut wrong,
                "the second sync Err Poisoned",
                failed_with(second, "Poisoned"),
                second,
            );
        }
        _ => wrong.push(format!("expected the syncs' outcomes, got {replies:?}")),
    }
    match replies.iter().find(|r| matches!(r, Reply::Finished(_))) {
        Some(Reply::Finished(finished)) => expect(
            &mut wrong,
            "the commit or close Err",
            finished.is_err(),
            finished,
        ),
        _ => wrong.push(format!(
            "expected the commit's or close's outcome, got {replies:?}"
        )),
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::injected_into;

    fn judged(log: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strace.log");
        std::fs::write(&path, log).unwrap();
        injected_into(&path, std::path::Path::new("/scratch/io-case"))
    }

    #[test]
    fn an_injected_failure_counts_only_where_it_hit_the_case() {
        // The save's own temporary file.
        assert!(judged(
            "10 close(5</scratch/io-case/.t.ndstore-tmp>) = -1 EIO (Input/output error) (INJECTED)\n"
        ));
        // std reading a cgroup file for the number of CPUs.
        assert!(!judged(
            "10 close(6</sys/fs/cgroup/cpu.max>) = -1 EIO (Input/output error) (INJECTED)\n\
             10 close(5</scratch/io-case/.t.ndstore-tmp>) = 0\n"
        ));
        // Interrupted by another thread: the arguments are on the unfinished line.
        assert!(judged(
            "11 close(5</scratch/io-case/t.npy> <unfinished ...>\n\
             10 close(7</proc/self/cgroup>) = 0\n\
             11 <... close resumed>) = -1 EIO (Input/output error) (INJECTED)\n"
        ));
        assert!(!judged(
            "11 close(7</proc/self/mountinfo> <unfinished ...>\n\
             10 close(5</scratch/io-case/t.npy>) = 0\n\
             11 <... close resumed>) = -1 EIO (Input/output error) (INJECTED)\n"
        ));
        // strace counts per thread: the main thread's first close read a /proc file, and the
        // release thread's first closed the replaced file, gone from the directory.
        assert!(!judged(
            "10 close(4</proc/sys/vm/overcommit_memory>) = -1 EIO (Input/output error) (INJECTED)\n\
             12 close(3</scratch/io-case/t.csv>(deleted)) = -1 EIO (Input/output error) (INJECTED)\n"
        ));
        // Nothing injected (the call never came): as planned.
        assert!(judged("10 close(5</scratch/io-case/t.npy>) = 0\n"));
    }
}

//! IO for streaming writers: a write fails inside an append (strace injects EIO, ENOSPC or
//! EFBIG into the k-th write of the append, or a file-size limit stops it part-way), and the
//! writer is used on: another append, flush, sync and commit.
//!
//! Acknowledged means correct, and a failed write poisons (the README's vocabulary): an append
//! that returned Err must be followed by Err from every later call, the commit included, and the
//! target keeps its old content (atomic) or what its last successful flush wrote (in place). An
//! append the fault did not reach may return Ok; then the committed file holds exactly the
//! blocks whose appends returned Ok. A file holding rows that were never acknowledged (a torn
//! block, a block where another belongs) fails the case, whatever the calls returned.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use ndstore_core::{DynArray, SaveOptions, list_temps};

use super::power::{
    CHILD_TIMEOUT, case_dir, injected_between_marks, injected_lines, run_attached_logged,
    target_name, wait_timeout, wrapped,
};
use crate::Ctx;
use crate::checks::{ROW_WIDTH, concat, element_versions, same_bits, size_text, versioned};
use crate::child::{self, FAULT_CALLS, FaultSource, Task, fault_blocks};
use crate::protocol::{Reply, ReplySlot, replies};
use crate::syscalls::writes_between_marks;

/// The bytes of the block whose append fails: more than any writer's buffer (1 MiB), so the
/// append writes through to the file, several times for the text writer.
const FAILING_BYTES: usize = 8 << 20;

/// Runs every writer-fault case; returns the case count, a description, and the largest block's
/// bytes.
pub(super) fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
) -> Result<(usize, String, usize), String> {
    let backend = ctx.backend;
    let rows = FAILING_BYTES / (ROW_WIDTH * super::version_kind(backend).itemsize().max(1));
    let mut cases = 0;
    let mut counted = Vec::new();
    // Spread cases in which strace injected nothing in every run, judged as plain appends.
    let mut missed = 0;
    for in_place in [false, true] {
        let writer = if in_place {
            "in-place writer"
        } else {
            "atomic writer"
        };
        let found = match count_writes(ctx, in_place, rows) {
            Ok(found) => found,
            Err(e) => {
                cases += 1;
                failures.push(format!("{writer}: {e}"));
                continue;
            }
        };
        let (call, count, spread) = (found.call, found.per_thread, found.threads > 1);
        counted.push(if spread {
            format!(
                "{writer}: {call} calls on {} threads, at most {count} on one",
                found.threads
            )
        } else {
            format!("{writer}: {count} {call} calls")
        });
        let mut ks = vec![1, count];
        ks.dedup();
        let mut plan: Vec<(String, FaultSource, Vec<String>)> = Vec::new();
        let which = if spread { " of a thread" } else { "" };
        for errno in ["EIO", "ENOSPC", "EFBIG"] {
            for &k in &ks {
                plan.push((
                    format!("{call} #{k}{which} of the append fails with {errno} once"),
                    FaultSource::Tracer,
                    inject(call, errno, &k.to_string()),
                ));
            }
        }
        plan.push((
            format!("{call} #1{which} of the append fails with EIO from then on"),
            FaultSource::Tracer,
            inject(call, "EIO", "1+"),
        ));
        plan.push(size_limit_case(&found));
        for (name, how, args) in plan {
            cases += 1;
            // A spread call's occurrence k may be reached by no thread in a run (their shares
            // of the work vary): such a run injected nothing and runs again, up to three times,
            // before it is judged as a plain append.
            let mut attempt = 1;
            let ended = loop {
                let runs = Spread {
                    spread: spread && how == FaultSource::Tracer,
                    again: attempt < 3,
                };
                match fault_case(ctx, in_place, rows, how, &args, runs) {
                    Ok(Ended::Missed) => attempt += 1,
                    ended => break ended,
                }
            };
            match ended {
                Err(problem) => failures.push(format!("{writer}, {name}: {problem}")),
                Ok(Ended::Judged { reached: false }) => missed += 1,
                Ok(_) => {}
            }
        }
    }
    let missed = if missed > 0 {
        format!(
            "; {missed} case(s) whose call was spread over threads injected nothing in three runs and were judged as plain appends"
        )
    } else {
        String::new()
    };
    let note = format!(
        "{cases} writer faults inside an append of {} ({}; EIO, ENOSPC, EFBIG at the first and last write, EIO from then on, and a file-size limit), then append, flush, sync and commit: poisoned with the old or last flushed content, or rolled back with exactly the acknowledged rows{missed}",
        size_text(FAILING_BYTES),
        counted.join(", ")
    );
    Ok((cases, note, FAILING_BYTES))
}

/// The file-size-limit case. A file target's limit lies half the append above its size after
/// the first flush. The limit applies to each file on its own, so for a tree target (whose
/// append writes new files, chunks, none of which grows by the whole append) it lies at half
/// the largest file the recorded append wrote: that file, and any as large, is cut short.
fn size_limit_case(found: &Counted) -> (String, FaultSource, Vec<String>) {
    if found.tree {
        let limit = found.largest_file / 2;
        (
            format!(
                "a file-size limit of {} (half the largest file the append writes) stops the append in that file (a short write, then EFBIG)",
                size_text(limit as usize)
            ),
            FaultSource::SizeLimit(limit),
            Vec::new(),
        )
    } else {
        (
            "a file-size limit stops the append half-way (a short write, then EFBIG)".to_owned(),
            FaultSource::SizeLimit((FAILING_BYTES / 2) as u64),
            Vec::new(),
        )
    }
}

fn inject(call: &str, errno: &str, when: &str) -> Vec<String> {
    vec![
        "-y".to_owned(),
        "-e".to_owned(),
        // The marks around the failing append are failed opens.
        format!("trace=openat,{call}"),
        "-e".to_owned(),
        format!("inject={call}:error={errno}:when={when}"),
    ]
}

/// What the recorded failing append wrote into the target's directory.
struct Counted {
    /// The call it wrote with most: `write` or `pwrite64`.
    call: &'static str,
    /// The most of those calls one thread made: strace counts an injection's occurrences per
    /// thread, so occurrence k is the k-th call of each thread that makes k of them.
    per_thread: usize,
    /// How many threads made them (a backend may write chunks on worker threads).
    threads: usize,
    /// The most bytes one file received.
    largest_file: u64,
    /// Whether the target is a directory tree.
    tree: bool,
}

/// Records the failing append (nothing fails) and counts its writes to the file or tree: which
/// call (`write` or `pwrite64`), how often per thread, on how many threads, and the most bytes
/// one file received.
fn count_writes(ctx: &Ctx<'_>, in_place: bool, rows: usize) -> Result<Counted, String> {
    let backend = ctx.backend;
    let dir = case_dir(ctx, "io-writer-count")?;
    let path = dir.join(target_name(backend));
    backend
        .save(&path, &versioned(backend, 9, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let tree = path.is_dir();
    let log = dir.with_extension("strace");
    let slot = ReplySlot::new()?;
    let task = Task::WriterFault {
        path: path.clone(),
        in_place,
        rows,
        how: FaultSource::Marks,
        reply: slot.path(),
    };
    let mut cmd = wrapped(
        "strace",
        &["-f", "-y", "-xx", "-e", "trace=openat,write,pwrite64", "-o"],
        Some(log.as_os_str()),
        &child::command(&task)?,
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc = cmd.spawn().map_err(|e| format!("cannot run strace: {e}"))?;
    let status = wait_timeout(&mut proc, CHILD_TIMEOUT)?;
    let text = std::fs::read_to_string(&log).map_err(|e| format!("reading the strace log: {e}"))?;
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
    let reply = slot.read();
    if !status.success() || reply != Ok(Reply::Returned(vec![true; FAULT_CALLS.len()])) {
        return Err(format!(
            "the recorded writer did not succeed in every call ({status}: {reply:?})"
        ));
    }
    let found = writes_between_marks(&text, &dir);
    let of = |call: &str| found.iter().filter(|w| w.call == call).count();
    let call = match (of("write"), of("pwrite64")) {
        (0, 0) => {
            return Err(format!(
                "an append of {} made no write: nothing to fail inside it",
                size_text(FAILING_BYTES)
            ));
        }
        (w, p) if w >= p => "write",
        _ => "pwrite64",
    };
    let mut threads: Vec<(&str, usize)> = Vec::new();
    let mut files: Vec<(&Path, u64)> = Vec::new();
    for w in found.iter().filter(|w| w.call == call) {
        match threads.iter_mut().find(|(t, _)| *t == w.thread) {
            Some((_, n)) => *n += 1,
            None => threads.push((&w.thread, 1)),
        }
    }
    for w in &found {
        match files.iter_mut().find(|(p, _)| *p == w.path) {
            Some((_, n)) => *n += w.bytes,
            None => files.push((&w.path, w.bytes)),
        }
    }
    Ok(Counted {
        call,
        per_thread: threads.iter().map(|(_, n)| *n).max().unwrap_or(0),
        threads: threads.len(),
        largest_file: files.iter().map(|(_, n)| *n).max().unwrap_or(0),
        tree,
    })
}

/// How a case ended, when the harness could run it.
enum Ended {
    /// Judged; `reached` is false when strace injected nothing (then an Ok append is no
    /// failure).
    Judged { reached: bool },
    /// strace injected nothing into a call spread over threads, and the case is to run again.
    Missed,
}

/// Whether a traced case's call was spread over threads, and whether a run that missed may run
/// again.
#[derive(Clone, Copy)]
struct Spread {
    spread: bool,
    again: bool,
}

/// One case: the child writes, meets the failure, goes on; the file is judged. A traced run of
/// a spread call in which strace failed no call below the case's directory is not judged when
/// it may run again ([`Ended::Missed`]), and judged as a plain append when not; any other case
/// is judged as one whose failure was reached.
fn fault_case(
    ctx: &Ctx<'_>,
    in_place: bool,
    rows: usize,
    how: FaultSource,
    args: &[String],
    spread: Spread,
) -> Result<Ended, String> {
    let backend = ctx.backend;
    let dir = case_dir(ctx, "io-writer")?;
    let path = dir.join(target_name(backend));
    backend
        .save(&path, &versioned(backend, 9, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let old_bytes = crate::checks::target_bytes(&path)?;
    let slot = ReplySlot::new()?;
    let task = Task::WriterFault {
        path: path.clone(),
        in_place,
        rows,
        how,
        reply: slot.path(),
    };
    let (status, words, reached) = match how {
        FaultSource::Tracer => {
            let log = ctx.dir.path().join("io-writer-strace.log");
            let (status, words) = run_attached_logged(&task, args, &log)?;
            // Only a call of the failing append counts: strace counts a call's occurrences
            // per thread and stays attached to the end, so when the append's threads make
            // fewer than k writes, a later thread's k-th write (the commit's, say) is the one
            // failed, and the failing append has met nothing.
            let hit = !injected_lines(&log).is_empty() && injected_between_marks(&log, &dir);
            let _ = std::fs::remove_file(&log);
            (status, words, hit)
        }
        _ => {
            let (status, words) = run_plain(&task)?;
            (status, words, true)
        }
    };
    let reached = reached || !spread.spread;
    if spread.again && !reached {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(Ended::Missed);
    }
    let ok = match slot.read() {
        Ok(Reply::Returned(ok)) if status.success() && ok.len() == FAULT_CALLS.len() => ok,
        reply => {
            return Err(format!(
                "the child died ({status}): a panic or an abort; it said {words:?} and left {reply:?}"
            ));
        }
    };
    let returned: Vec<(&str, bool)> = FAULT_CALLS.iter().copied().zip(ok).collect();
    let result = judge(
        backend,
        &returned,
        (in_place, rows, reached),
        &path,
        &old_bytes,
    );
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| Ended::Judged { reached })
}

fn run_plain(task: &Task) -> Result<(ExitStatus, Vec<Reply>), String> {
    let mut proc = child::command(task)?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    let stdout = proc.stdout.take().ok_or("no child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stdout }, &mut out);
        out
    });
    let status = wait_timeout(&mut proc, CHILD_TIMEOUT)?;
    let out = reader.join().map_err(|_| "the reader thread died")?;
    Ok((status, replies(&out)?))
}

/// Judges the file a writer-fault child left, from what each call returned. `reached` is false
/// when strace injected nothing: then the failing append may return Ok, and the file must hold
/// what was acknowledged all the same.
fn judge(
    backend: &dyn ndstore_core::Backend,
    returned: &[(&str, bool)],
    (in_place, rows, reached): (bool, usize, bool),
    path: &Path,
    old_bytes: &[u8],
) -> Result<(), String> {
    let [first, failing, after] = fault_blocks(backend, rows);
    let said = |word: &str| returned.iter().any(|(w, ok)| *w == word && *ok);
    let calls = returned
        .iter()
        .map(|(w, ok)| format!("{} {}", w.to_lowercase(), if *ok { "ok" } else { "err" }))
        .collect::<Vec<_>>()
        .join(", ");
    if !said("APPEND0") || !said("FLUSH0") {
        return Err(format!("the writer failed before the fault: {calls}"));
    }
    let failed_ok = said("APPEND1");
    let mut problems = Vec::new();
    if failed_ok && reached {
        problems.push("the append whose write failed returned Ok".to_owned());
    } else if !failed_ok {
        // The vocabulary's rule: a failed write poisons the handle, and every later call
        // returns Err.
        let went_on: Vec<String> = ["APPEND2", "FLUSH", "SYNC", "COMMIT"]
            .iter()
            .filter(|w| said(w))
            .map(|w| w.to_lowercase())
            .collect();
        if !went_on.is_empty() {
            problems.push(format!(
                "the writer was not poisoned by the failed append: {} returned Ok after it",
                went_on.join(", ")
            ));
        }
    }
    // Replay what was acknowledged, and what the last successful flush made the file hold.
    let mut acknowledged: Vec<&DynArray> = vec![&first];
    let mut flushed = acknowledged.clone();
    if failed_ok {
        acknowledged.push(&failing);
    }
    if said("APPEND2") {
        acknowledged.push(&after);
    }
    for word in ["FLUSH", "SYNC"] {
        if said(word) {
            flushed = acknowledged.clone();
        }
    }
    let committed = said("COMMIT");
    let poisoned = ["APPEND2", "FLUSH", "SYNC", "COMMIT"]
        .iter()
        .all(|w| !said(w));
    let temps = list_temps(path).map_err(|e| e.to_string())?;
    if !temps.is_empty() {
        problems.push(format!("{} temporary file(s) left", temps.len()));
    }
    let expected = if committed {
        Some(&acknowledged)
    } else if in_place {
        Some(&flushed)
    } else {
        None
    };
    match expected {
        Some(blocks) => {
            let want = concat(blocks).ok_or("cannot join the blocks")?;
            match crate::checks::load(backend, path) {
                Ok((_, got)) if same_bits(&got, &want) => {}
                Ok((_, got)) => problems.push(format!(
                    "{} the file holds {}",
                    if committed {
                        format!(
                            "the commit returned Ok after {} acknowledged rows, but",
                            want.shape()[0]
                        )
                    } else {
                        format!(
                            "the commit failed and the last successful flush wrote {} rows, but",
                            want.shape()[0]
                        )
                    },
                    mismatch(&got, &want)
                )),
                Err(e) => problems.push(format!(
                    "the target does not load ({}): {e}",
                    if committed {
                        "after an Ok commit"
                    } else {
                        "it should hold what the last flush wrote"
                    }
                )),
            }
        }
        None => {
            if crate::checks::target_bytes(path)? != old_bytes {
                problems.push(
                    "the commit failed but the target is not its old file, byte for byte"
                        .to_owned(),
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let how = if poisoned { "poisoned: " } else { "" };
        Err(format!("{} ({how}{calls})", problems.join("; ")))
    }
}

/// Where `got` first differs from `want`, in the blocks' own terms.
fn mismatch(got: &DynArray, want: &DynArray) -> String {
    if got.shape() != want.shape() {
        return format!(
            "an array of shape {:?}, not {:?}",
            got.shape(),
            want.shape()
        );
    }
    let (Some(g), Some(w)) = (element_versions(got), element_versions(want)) else {
        return "other values".to_owned();
    };
    let Some(j) = g.iter().zip(&w).position(|(a, b)| a != b) else {
        return "the same elements in another layout".to_owned();
    };
    let (row, column) = (j / ROW_WIDTH, j % ROW_WIDTH);
    let (got_writer, got_block, got_index) = g[j];
    let (_, want_block, want_index) = w[j];
    let found = if got_writer == 5 {
        format!("element {got_index} of block {got_block}")
    } else {
        "a value no block holds".to_owned()
    };
    format!(
        "at row {row}, column {column}: {found} where element {want_index} of block {want_block} belongs"
    )
}

//! CO: two processes saving the same path leave one complete version, and a reader looping
//! during the replaces never sees a partial file or a mix of two versions.
//!
//! Three races: two writers of small and medium arrays while this process reads; two writers of
//! 64 MiB arrays while it reads (every multi-threaded read path runs: parallel bulk reads,
//! direct HDF5 reads, two-half text loads); and loads of a 64 MiB target that a thread keeps
//! replacing by rename every few microseconds, alternating between two complete versions. A
//! loader that opens the path twice (or reads metadata through one open and data through
//! another) sees a rename between its opens in the third race, and returns a mix. When the
//! fixtures have an editor (HDF5's `add_dataset`), two processes also add arrays to one file at
//! once, and none may be lost.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ndstore_core::{SaveOptions, list_temps};

use crate::Ctx;
use crate::check::Check;
use crate::checks::{
    Sizes, array_bytes, identify_sized, large_len, largest_bytes, size_text, sizes_text, versioned,
    versioned_with_len,
};
use crate::child::{self, Task};
use crate::fixtures::Editor;
use crate::protocol::{Found, Reply, failed_with, replies};
use crate::report::CheckResult;

/// CO for atomic saves (lock conflicts of in-place handles join with those backends).
pub fn co(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    if !caps.atomic_replace() {
        return Ok(CheckResult::not_applicable(
            Check::Concurrency,
            "atomic_replace",
        ));
    }
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut what = Vec::new();
    let large = Sizes::Fixed(large_len(backend));
    for (sizes, saves) in [
        (Sizes::Mixed, ctx.mode.count(100, 1000)),
        (large, ctx.mode.count(3, 12)),
    ] {
        let (n, text) = racing_writers(ctx, sizes, saves, &mut failures)?;
        cases += n;
        what.push(text);
    }
    // A loader that opens the path twice but checks the second file's length against the
    // first's metadata (and falls back to a correct path when they disagree) mixes versions
    // only when the shorter one's metadata meets the longer file: a quarter of the loads. 24
    // loads miss that with a chance of 0.1% (12 missed it in one of a few HDF5 runs).
    let (n, text) = flipping_target(ctx, large, ctx.mode.count(24, 100), &mut failures)?;
    cases += n;
    what.push(text);
    if caps.in_place_update() {
        cases += 1;
        if let Err(e) = lock_conflicts(ctx) {
            failures.push(format!("lock conflicts: {e}"));
        }
        what.push("a second in-place writer gets a clear lock error".to_owned());
    }
    if let Some(editor) = ctx.fixtures.editor() {
        let additions = ctx.mode.count(10, 50);
        let (ran, problems) = concurrent_edits(ctx, &editor, additions)?;
        cases += ran;
        failures.extend(problems);
        what.push(format!(
            "two processes × {additions} additions of an array to one file lose none"
        ));
    }
    let result = CheckResult::counted(
        Check::Concurrency,
        cases,
        &failures,
        &format!(
            "arrays up to {}: {}",
            size_text(largest_bytes(backend, large)),
            what.join("; ")
        ),
    );
    // Without strace the loads ran, but a loader that opens the path twice is caught only when
    // the scheduler happens to let a rename in between: that part did not really run.
    Ok(match super::power::strace_missing() {
        Some(missing) => result.with_skipped_part(&format!(
            "no {missing}, so the loading child's opens were not delayed"
        )),
        None => result,
    })
}

/// Two child processes save `saves` versions of `sizes` to one path while this process loads
/// it in a loop: every load is one complete version, the last is a writer's last, and no
/// temporary is left. Returns the case count and a description.
fn racing_writers(
    ctx: &Ctx<'_>,
    sizes: Sizes,
    saves: u64,
    failures: &mut Vec<String>,
) -> Result<(u64, String), String> {
    let backend = ctx.backend;
    let path = ctx.path(if sizes == Sizes::Mixed {
        "co"
    } else {
        "co-large"
    });
    backend
        .save(
            &path,
            &sizes.version(backend, 2, 0),
            &SaveOptions::default(),
        )
        .map_err(|e| e.to_string())?;
    let mut writers = spawn_two(|writer| Task::SaveLoop {
        path: path.clone(),
        writer,
        count: saves,
        sizes,
    })?;
    let mut reads = 0u64;
    loop {
        let running = writers.iter_mut().any(|w| matches!(w.try_wait(), Ok(None)));
        reads += 1;
        match crate::checks::load(backend, &path) {
            Ok((_, array)) => {
                if identify_sized(backend, &array, 3, saves, sizes).is_none() {
                    failures.push(format!(
                        "read {reads} (versions {}): not a complete version",
                        sizes_text(backend, sizes)
                    ));
                }
            }
            Err(e) => failures.push(format!("read {reads}: {e}")),
        }
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut cases = reads;
    for (n, writer) in writers.into_iter().enumerate() {
        cases += 1;
        let acked = acknowledged(writer)?;
        if !acked.all(saves) {
            failures.push(format!(
                "writer {n} acknowledged {} of {saves} saves ({})",
                acked.acks, acked.status
            ));
        }
    }
    cases += 1;
    match crate::checks::load(backend, &path) {
        Ok((_, array)) => match identify_sized(backend, &array, 2, saves, sizes) {
            Some((_, i)) if i + 1 == saves => {}
            other => failures.push(format!(
                "the final target is {other:?}, not a writer's last version"
            )),
        },
        Err(e) => failures.push(format!("the final target does not load: {e}")),
    }
    cases += 1;
    let temps = list_temps(&path).map_err(|e| e.to_string())?;
    if !temps.is_empty() {
        failures.push(format!("{} temporary files left", temps.len()));
    }
    let _ = std::fs::remove_file(&path);
    Ok((
        cases,
        format!(
            "two processes × {saves} saves {} of one path while this process read it {reads} times, every read a complete version",
            sizes_text(backend, sizes)
        ),
    ))
}

/// Loads a target that a thread keeps replacing by rename, alternating between two complete
/// versions of different lengths (hard links to two saved files): every load must be exactly
/// one of them. The lengths differ, so metadata read through one open and data through another
/// cannot agree by chance.
fn flipping_target(
    ctx: &Ctx<'_>,
    sizes: Sizes,
    loads: u64,
    failures: &mut Vec<String>,
) -> Result<(u64, String), String> {
    let backend = ctx.backend;
    let dir = ctx.dir.path().join("co-flip");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ext = backend.extension();
    let len = sizes.len(0);
    let arrays = [
        versioned_with_len(backend, 0, 0, len),
        versioned_with_len(backend, 1, 0, len - len / 8),
    ];
    let versions = [dir.join(format!("a.{ext}")), dir.join(format!("b.{ext}"))];
    for (array, path) in arrays.iter().zip(&versions) {
        backend
            .save(path, array, &SaveOptions::new().flushed())
            .map_err(|e| e.to_string())?;
    }
    let target = dir.join(format!("target.{ext}"));
    // A backend whose arrays are directory trees: the target's name is exchanged with the
    // other version's (renameat2 RENAME_EXCHANGE, as such a backend's saves replace arrays).
    let trees = versions[0].is_dir();
    if trees {
        std::fs::rename(&versions[0], &target).map_err(|e| e.to_string())?;
    } else {
        std::fs::hard_link(&versions[0], &target).map_err(|e| e.to_string())?;
    }
    let mut notes = String::new();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        let (versions, target, staged) = (versions.clone(), target.clone(), dir.join("staged"));
        std::thread::spawn(move || {
            if trees {
                flip_trees(&target, &versions[1], &stop)
            } else {
                flip(&versions, &target, &staged, &stop)
            }
        })
    };
    let replies = load_in_child(&target, &arrays, loads, &mut notes);
    stop.store(true, Ordering::Relaxed);
    let mut seen = [0u64; 2];
    match &replies {
        Ok(replies) => {
            for reply in replies {
                let Reply::Load { i: read, found } = reply else {
                    continue;
                };
                match found {
                    Found::Version(v @ (0 | 1)) => seen[*v] += 1,
                    Found::Version(_) | Found::Other => failures.push(format!(
                        "load {read} of a target replaced by rename every few microseconds: not one complete version (a loader that opens the path twice mixes two)"
                    )),
                    Found::Error(e) => failures.push(format!(
                        "load {read} of a target replaced by rename every few microseconds: ERROR {e}"
                    )),
                }
            }
            if seen[0] + seen[1] + failures.len() as u64 == 0 {
                failures.push("the loading child reported no load".to_owned());
            }
        }
        Err(e) => failures.push(format!("loads during renames: {e}")),
    }
    stop.store(true, Ordering::Relaxed);
    let flipped = flipper
        .join()
        .map_err(|_| "the renaming thread panicked".to_owned())??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        loads,
        format!(
            "{loads} loads in another process{notes} of a target of {} or {} replaced by rename {flipped} times meanwhile (every few microseconds), each exactly one version ({} and {} of each)",
            size_text(array_bytes(&arrays[0])),
            size_text(array_bytes(&arrays[1])),
            seen[0],
            seen[1]
        ),
    ))
}

/// How long each open of the loading child is held back, in microseconds: a loader that opens
/// the path twice then has a rename between its opens on nearly every load, instead of only
/// when the scheduler happens to let one in.
const OPEN_DELAY_US: u32 = 5000;

/// Loads `target` `loads` times in a child, whose opens strace delays when it can (`notes`
/// then says so); returns the child's replies.
fn load_in_child(
    target: &Path,
    arrays: &[ndstore_core::DynArray; 2],
    loads: u64,
    notes: &mut String,
) -> Result<Vec<Reply>, String> {
    let versions = arrays
        .iter()
        .enumerate()
        .map(|(writer, a)| (writer as u64, a.len()))
        .collect();
    let task = Task::LoadVersions {
        path: target.to_path_buf(),
        versions,
        loads,
    };
    let inner = child::command(&task)?;
    let strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if strace {
        *notes = format!(
            " whose opens strace delays by {} ms each",
            OPEN_DELAY_US / 1000
        );
        let delay = format!("inject=openat,open:delay_exit={OPEN_DELAY_US}");
        super::power::wrapped(
            "strace",
            &[
                "-f",
                "-o",
                "/dev/null",
                "-e",
                "trace=openat,open",
                "-e",
                &delay,
            ],
            None,
            &inner,
        )
    } else {
        *notes = " (strace missing: opens not delayed)".to_owned();
        inner
    };
    let output = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start the loading child: {e}"))?;
    if !output.status.success() {
        return Err(format!("the loading child failed ({})", output.status));
    }
    replies(&output.stdout)
}

/// Until `stop`: link one of `versions` at `staged` and rename it over `target`, alternating.
/// Returns how many renames it made.
fn flip(
    versions: &[std::path::PathBuf; 2],
    target: &Path,
    staged: &Path,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut flips = 0;
    while !stop.load(Ordering::Relaxed) {
        let _ = std::fs::remove_file(staged);
        std::fs::hard_link(&versions[1 - (flips as usize % 2)], staged)
            .map_err(|e| format!("linking: {e}"))?;
        std::fs::rename(staged, target).map_err(|e| format!("renaming: {e}"))?;
        flips += 1;
    }
    Ok(flips)
}

/// Until `stop`: exchange the directories `target` and `other` (two array trees), so the
/// target's name holds each in turn. Returns how many exchanges it made.
fn flip_trees(target: &Path, other: &Path, stop: &AtomicBool) -> Result<u64, String> {
    let mut flips = 0;
    while !stop.load(Ordering::Relaxed) {
        ndstore_core::__private::os::exchange(target, other)
            .map_err(|e| format!("exchanging: {e}"))?;
        flips += 1;
    }
    Ok(flips)
}

/// While this process holds an in-place handle, another process's in-place open and in-place
/// save are refused with `Locked`, and succeed once the handle is closed.
fn lock_conflicts(ctx: &Ctx<'_>) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("co-lock");
    backend
        .save(&path, &versioned(backend, 0, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let handle = backend
        .open_in_place(&path, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let tried = try_in_place(&path)?;
    if !matches!(&tried, Reply::TriedInPlace { open, save }
        if failed_with(open, "Locked") && failed_with(save, "Locked"))
    {
        return Err(format!("while locked, another process got {tried:?}"));
    }
    handle.close().map_err(|e| e.to_string())?;
    let tried = try_in_place(&path)?;
    if !matches!(
        &tried,
        Reply::TriedInPlace {
            open: Ok(()),
            save: Ok(())
        }
    ) {
        return Err(format!("after close, another process got {tried:?}"));
    }
    Ok(())
}

/// What another process's in-place open and in-place save of `path` returned.
fn try_in_place(path: &Path) -> Result<Reply, String> {
    child::run(&Task::TryInPlace {
        path: path.to_path_buf(),
    })?
    .into_iter()
    .find(|r| matches!(r, Reply::TriedInPlace { .. }))
    .ok_or_else(|| "the child said nothing".to_owned())
}

/// Two processes add `additions` arrays each to one file at once: every addition that returned
/// must be in the file afterwards with its values, beside the file's first array.
fn concurrent_edits(
    ctx: &Ctx<'_>,
    editor: &Editor,
    additions: u64,
) -> Result<(u64, Vec<String>), String> {
    let backend = ctx.backend;
    let path = ctx.path("co-edit");
    backend
        .save(&path, &versioned(backend, 2, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let editors = spawn_two(|writer| Task::EditLoop {
        path: path.clone(),
        writer,
        count: additions,
    })?;
    let mut failures = Vec::new();
    let mut acked = Vec::new();
    for (writer, child) in editors.into_iter().enumerate() {
        let editor = acknowledged(child)?;
        if !editor.all(additions) {
            failures.push(format!(
                "editor {writer} acknowledged {} of {additions} additions ({}{})",
                editor.acks,
                editor.status,
                editor
                    .error
                    .map(|e| format!(", ERROR {e}"))
                    .unwrap_or_default()
            ));
        }
        acked.push(editor.acks);
    }
    let names = match (editor.names)(&path) {
        Ok(names) => names,
        Err(e) => return Ok((1, vec![format!("the edited file does not list: {e}")])),
    };
    let mut cases = 0;
    for (writer, &acks) in acked.iter().enumerate() {
        for i in 0..acks {
            cases += 1;
            let name = child::edited_name(writer as u64, i);
            if !names.iter().any(|n| n.trim_start_matches('/') == name) {
                failures.push(format!("the acknowledged addition {name} was lost"));
                continue;
            }
            match (editor.load)(&path, &name) {
                Ok(array) if array.bit_eq(&versioned(backend, writer as u64, i)) => {}
                Ok(_) => failures.push(format!("{name} holds other values")),
                Err(e) => failures.push(format!("{name} does not load: {e}")),
            }
        }
    }
    cases += 1;
    match crate::checks::load(backend, &path) {
        Ok((_, array)) if array.bit_eq(&versioned(backend, 2, 0)) => {}
        Ok(_) => failures.push("the file's first array changed".to_owned()),
        Err(e) => failures.push(format!("the file's first array does not load: {e}")),
    }
    Ok((cases, failures))
}

/// Starts two children at once, writers 0 and 1, each on its `task`.
fn spawn_two(task: impl Fn(u64) -> Task) -> Result<Vec<std::process::Child>, String> {
    (0..2).map(|writer| child::spawn(&task(writer))).collect()
}

/// What a child that acknowledges each step ([`Reply::Ack`]) did, once it ended.
struct Acknowledged {
    /// How it exited.
    status: std::process::ExitStatus,
    /// How many steps it acknowledged.
    acks: u64,
    /// Why it stopped, when it said.
    error: Option<String>,
}

impl Acknowledged {
    /// It ended well, having acknowledged all `steps`.
    fn all(&self, steps: u64) -> bool {
        self.status.success() && self.acks == steps
    }
}

/// Waits for `child` and counts the steps it acknowledged.
fn acknowledged(child: std::process::Child) -> Result<Acknowledged, String> {
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let replies = replies(&output.stdout)?;
    Ok(Acknowledged {
        status: output.status,
        acks: replies
            .iter()
            .filter(|r| matches!(r, Reply::Ack(_)))
            .count() as u64,
        error: replies.into_iter().find_map(|r| match r {
            Reply::Error(e) => Some(e),
            _ => None,
        }),
    })
}

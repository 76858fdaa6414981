//! FC and FD: what another process sees after close/commit, and after a handle is dropped
//! without one — including during a panic, and with an error on the way.

use std::path::Path;

use ndstore_core::{Backend, DType, Replace, SaveOptions, list_temps};

use crate::check::Check;
use crate::checks::{
    IN_PLACE_LEN, Tally, array_bytes, element_versions, large_len, rows_for, same_bits, size_text,
    versioned, versioned_with_len,
};
use crate::child::{self, Task, canonical};
use crate::protocol::Reply;
use crate::report::CheckResult;
use crate::scenario::Scale;
use crate::{Ctx, logcapture};

/// Loads `path` in a child process and compares with `expected`.
fn child_sees(path: &Path, expected: &ndstore_core::DynArray) -> Result<(), String> {
    let replies = child::run(&Task::Load {
        path: path.to_path_buf(),
    })?;
    match replies.iter().find_map(|r| match r {
        Reply::Loaded(loaded) => Some(loaded),
        _ => None,
    }) {
        Some(Ok(found)) if *found == canonical(expected) => Ok(()),
        Some(Err(e)) => Err(format!("the other process could not load it: {e}")),
        Some(Ok(_)) => Err("the other process read different data".to_owned()),
        None => Err("the other process said nothing".to_owned()),
    }
}

fn concat_rows(
    backend: &dyn Backend,
    blocks: usize,
    rows: usize,
) -> (Vec<usize>, ndstore_core::DynArray, ndstore_core::DynArray) {
    let (row_shape, block) = rows_for(backend, rows);
    let whole = ndstore_core::with_dyn_array!(&block, |a| {
        let views: Vec<_> = (0..blocks).map(|_| a.view()).collect();
        ndstore_core::DynArray::from(
            ndstore_core::ndarray::concatenate(ndstore_core::ndarray::Axis(0), &views)
                .unwrap_or_else(|_| a.clone()),
        )
    });
    (row_shape, block, whole)
}

/// FC: after save, or a writer's commit, returned Ok, another process reads exactly the data.
pub fn fc(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let caps = ctx.backend.capabilities();
    let mut tally = Tally::default();
    for (name, options) in [
        ("save synced", SaveOptions::default()),
        ("save flushed", SaveOptions::new().flushed()),
        ("save in place", SaveOptions::new().in_place()),
    ] {
        let n = tally.cases + 1;
        tally.case(name, save_seen(ctx, n, &options));
    }
    if caps.streaming_append {
        for (name, options) in [
            ("atomic writer commit", SaveOptions::default()),
            ("in-place writer commit", SaveOptions::new().in_place()),
        ] {
            let path = ctx.path(&format!("fc-writer-{}", tally.cases + 1));
            tally.case(name, commit_seen(ctx.backend, &path, &options));
        }
    }
    if caps.in_place_update() {
        for (name, options) in [
            ("in-place handle closed (synced)", SaveOptions::default()),
            (
                "in-place handle closed (flushed)",
                SaveOptions::new().flushed(),
            ),
        ] {
            let path = ctx.path(&format!("fc-in-place-{}", tally.cases + 1));
            tally.case(name, close_seen(ctx.backend, &path, &options));
        }
    }
    Ok(tally.result(
        Check::FlushOnClose,
        "saves (synced, flushed, in place), writer commits and in-place closes read back by another process",
    ))
}

/// Save `n` (version `n`) with `options`, then another process loads it.
fn save_seen(ctx: &Ctx<'_>, n: u64, options: &SaveOptions) -> Result<(), String> {
    let path = ctx.path(&format!("fc-{n}"));
    let array = versioned(ctx.backend, 0, n);
    ctx.backend
        .save(&path, &array, options)
        .map_err(|e| e.to_string())?;
    child_sees(&path, &array)
}

/// A writer appends three blocks and commits, then another process loads them.
fn commit_seen(backend: &dyn Backend, path: &Path, options: &SaveOptions) -> Result<(), String> {
    let (row_shape, block, whole) = concat_rows(backend, 3, 5);
    let mut writer = open_writer(backend, path, &block, &row_shape, options)?;
    for _ in 0..3 {
        writer.append(&block).map_err(|e| e.to_string())?;
    }
    writer.commit().map_err(|e| e.to_string())?;
    child_sees(path, &whole)
}

/// An in-place handle overwrites a saved version and is closed, then another process loads
/// it.
fn close_seen(backend: &dyn Backend, path: &Path, options: &SaveOptions) -> Result<(), String> {
    let first = versioned_with_len(backend, 0, 0, IN_PLACE_LEN);
    let second = versioned_with_len(backend, 0, 1, IN_PLACE_LEN);
    backend
        .save(path, &first, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let mut handle = backend
        .open_in_place(path, options)
        .map_err(|e| e.to_string())?;
    handle.write_all(&second).map_err(|e| e.to_string())?;
    handle.close().map_err(|e| e.to_string())?;
    child_sees(path, &second)
}

/// FD: the drop contract for every handle type the backend has, with small arrays and with
/// 64 MiB ones (more than every writer's buffer, libhdf5's caches included).
pub fn fd(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    if !caps.streaming_append && !caps.in_place_update() {
        return Ok(CheckResult::not_applicable(
            Check::FlushOnDrop,
            "streaming_append or in_place_update (the backend has no handle to drop)",
        ));
    }
    let mut tally = Tally::default();
    let mut what = Vec::new();
    for scale in [Scale::Small, Scale::Large] {
        if caps.in_place_update() {
            in_place_handle_cases(ctx, scale, &mut tally);
        }
        if caps.streaming_append {
            writer_drop_cases(ctx, scale, &mut tally);
        }
    }
    if caps.in_place_update() {
        what.push("in-place handles dropped without close in a child (their data seen by another process) and during a panic (one complete version, never a mix)");
    }
    if caps.streaming_append {
        what.push("in-place writers dropped in a child (their rows seen by another process); uncommitted atomic writers roll back; writers dropped during a panic after appending past their last flush publish exactly that flush (in place) or nothing (atomic)");
        // An error met while dropping is reported through the log, not swallowed.
        tally.case("an error on drop is logged", error_on_drop_is_logged(ctx));
        what.push("errors on drop logged");
    }
    let largest = [
        caps.in_place_update()
            .then(|| large_len(backend) * array_bytes(&versioned_with_len(backend, 0, 0, 1))),
        caps.streaming_append
            .then(|| array_bytes(&child::fd_rows(backend, Scale::Large))),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    Ok(tally.result(
        Check::FlushOnDrop,
        &format!("arrays up to {}: {}", size_text(largest), what.join("; ")),
    ))
}

/// FD's cases of an in-place handle at `scale`: dropped in a child, dropped during a panic.
fn in_place_handle_cases(ctx: &Ctx<'_>, scale: Scale, tally: &mut Tally) {
    let backend = ctx.backend;
    let len = match scale {
        Scale::Small => IN_PLACE_LEN,
        Scale::Large => large_len(backend),
    };
    let size = size_text(array_bytes(&versioned_with_len(backend, 0, 0, len)));
    tally.case(
        &format!("in-place handle of {size} dropped in a child"),
        in_place_handle_dropped(ctx, len),
    );
    tally.case(
        &format!("in-place handle of {size} dropped during a panic"),
        in_place_handle_panics(ctx, len),
    );
}

/// FD's cases of streaming writers at `scale`: an in-place one dropped in a child, an atomic
/// one dropped uncommitted, and both kinds dropped during a panic.
fn writer_drop_cases(ctx: &Ctx<'_>, scale: Scale, tally: &mut Tally) {
    let size = size_text(array_bytes(&child::fd_rows(ctx.backend, scale)));
    tally.case(
        &format!("in-place writer of {size} dropped in a child"),
        in_place_writer_dropped(ctx, scale),
    );
    tally.case(
        &format!("uncommitted atomic writer of {size} dropped"),
        atomic_writer_dropped(ctx, scale),
    );
    for options in [SaveOptions::default(), SaveOptions::new().in_place()] {
        let kind = if options.replace == Replace::InPlace {
            "in-place"
        } else {
            "atomic"
        };
        tally.case(
            &format!("{kind} writer dropped during a panic, {size} appended after its flush"),
            writer_panics(ctx, options, scale),
        );
    }
}

/// An in-place handle that wrote version 5 is dropped unclosed in a child: the values are
/// there.
fn in_place_handle_dropped(ctx: &Ctx<'_>, len: usize) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("fd-in-place-handle");
    backend
        .save(
            &path,
            &versioned_with_len(backend, 1, 0, len),
            &SaveOptions::default(),
        )
        .map_err(|e| e.to_string())?;
    let task = Task::DropInPlaceHandle {
        path: path.clone(),
        version: 5,
        len,
    };
    let expected = versioned_with_len(backend, 3, 5, len);
    dropped_in_child(backend, &task, &path, &expected).map_err(|e| {
        e.unwrap_or_else(|| "the values written before the drop are not there".to_owned())
    })
}

/// Runs `task`, a child that drops a handle on `path`, then loads the file here: `Err(None)`
/// when it does not hold `expected`; `Err(Some(..))` for the other failures.
fn dropped_in_child(
    backend: &dyn Backend,
    task: &Task,
    path: &Path,
    expected: &ndstore_core::DynArray,
) -> Result<(), Option<String>> {
    let lines = child::run(task)?;
    if !lines.contains(&Reply::Dropped) {
        return Err(Some(format!("the child did not finish: {lines:?}")));
    }
    let (_, loaded) = crate::checks::load(backend, path)?;
    if same_bits(&loaded, expected) {
        Ok(())
    } else {
        Err(None)
    }
}

/// An in-place handle writes and flushes version 1, writes version 2 and its thread panics:
/// the file holds one of the two whole (a handle's writes reach the file as they are made, a
/// map's stores at once), never a mix, and loads.
fn in_place_handle_panics(ctx: &Ctx<'_>, len: usize) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("fd-in-place-handle-panic");
    backend
        .save(
            &path,
            &versioned_with_len(backend, 1, 0, len),
            &SaveOptions::default(),
        )
        .map_err(|e| e.to_string())?;
    let mut handle = backend
        .open_in_place(&path, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let (first, second) = (
        versioned_with_len(backend, 3, 1, len),
        versioned_with_len(backend, 3, 2, len),
    );
    handle
        .write_all(&first)
        .and_then(|()| handle.flush())
        .map_err(|e| e.to_string())?;
    let joined = std::thread::spawn(move || {
        let mut handle = handle;
        let _ = handle.write_all(&second);
        panic!("the writing thread dies");
    })
    .join();
    if joined.is_ok() {
        return Err("the thread did not panic".to_owned());
    }
    let (_, loaded) =
        crate::checks::load(backend, &path).map_err(|e| format!("the file does not load: {e}"))?;
    let elements = element_versions(&loaded).ok_or("no versioned dtype")?;
    let whole = |version: u64| {
        elements.len() == len
            && elements
                .iter()
                .enumerate()
                .all(|(j, v)| *v == (3, version, j as u64))
    };
    if whole(1) || whole(2) {
        Ok(())
    } else {
        Err(
            "the file is neither the flushed version nor the one written after it, whole"
                .to_owned(),
        )
    }
}

/// An in-place writer dropped without commit in a child: its rows are there.
fn in_place_writer_dropped(ctx: &Ctx<'_>, scale: Scale) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("fd-in-place");
    let task = Task::DropInPlaceWriter {
        path: path.clone(),
        scale,
    };
    dropped_in_child(backend, &task, &path, &child::fd_rows(backend, scale)).map_err(|e| {
        e.unwrap_or_else(|| "the rows written before the drop are not all there".to_owned())
    })
}

/// An uncommitted atomic writer that appended and flushed is dropped: the target keeps its old
/// content and no temporary remains.
fn atomic_writer_dropped(ctx: &Ctx<'_>, scale: Scale) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("fd-atomic");
    let old = versioned(backend, 9, 0);
    backend
        .save(&path, &old, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let block = child::fd_rows(backend, scale);
    let mut writer = open_writer(
        backend,
        &path,
        &block,
        &block.shape()[1..],
        &SaveOptions::default(),
    )?;
    writer.append(&block).map_err(|e| e.to_string())?;
    writer.flush().map_err(|e| e.to_string())?;
    drop(writer);
    target_is(backend, &path, &old)
}

/// A writer appends a first block and flushes, appends more and its thread panics: an in-place
/// target holds exactly the first block, an atomic one its old content. At 64 MiB the second
/// block is far beyond every buffer, so a writer that wrote through and did not cut back is
/// caught.
fn writer_panics(ctx: &Ctx<'_>, options: SaveOptions, scale: Scale) -> Result<(), String> {
    let backend = ctx.backend;
    let in_place = options.replace == Replace::InPlace;
    let path = ctx.path(&format!(
        "fd-panic-{}",
        if in_place { "in-place" } else { "atomic" }
    ));
    let old = versioned(backend, 9, 0);
    backend
        .save(&path, &old, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let (first, second) = match scale {
        Scale::Small => {
            let (_, block) = rows_for(backend, 4);
            (block.clone(), block)
        }
        Scale::Large => (
            crate::checks::versioned_rows(backend, 1, 1000),
            child::fd_rows(backend, scale),
        ),
    };
    let mut writer = open_writer(backend, &path, &first, &first.shape()[1..], &options)?;
    writer
        .append(&first)
        .and_then(|()| writer.flush())
        .map_err(|e| e.to_string())?;
    let flushed_len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let joined = std::thread::spawn(move || {
        let mut writer = writer;
        let _ = writer.append(&second);
        panic!("the writing thread dies");
    })
    .join();
    if joined.is_ok() {
        return Err("the thread did not panic".to_owned());
    }
    if in_place {
        // Only what the last flush published: the first block, complete, and no byte of the
        // rows appended after it (a loader that reads only what the header counts would not
        // notice them).
        target_is(backend, &path, &first)?;
        // The 64 MiB appended after the flush must not stay in the file even where the
        // header does not count them: the file may not have grown by half of them. (A little
        // growth is a format's right: libhdf5 may write metadata when it closes.)
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        let appended = array_bytes(&child::fd_rows(backend, scale)) as u64;
        if scale == Scale::Large && len >= flushed_len + appended / 2 {
            return Err(format!(
                "the file is {len} bytes, not the {flushed_len} its last flush left: the {} appended after the flush stayed in it, unacknowledged",
                size_text(appended as usize)
            ));
        }
        Ok(())
    } else {
        target_is(backend, &path, &old)
    }
}

/// An atomic writer whose temporary file was pulled away fails to roll back on drop, and says
/// so through the log.
fn error_on_drop_is_logged(ctx: &Ctx<'_>) -> Result<(), String> {
    let backend = ctx.backend;
    let path = ctx.path("fd-error");
    let Some(before) = logcapture::install() else {
        return Err("another logger is installed; cannot observe drop errors".to_owned());
    };
    let (row_shape, block) = rows_for(backend, 2);
    let mut writer = open_writer(backend, &path, &block, &row_shape, &SaveOptions::default())?;
    writer.append(&block).map_err(|e| e.to_string())?;
    // Pull the temporary file (a temporary directory, for a backend whose arrays are directory
    // trees) away, so the writer's rollback fails.
    for temp in list_temps(&path).map_err(|e| e.to_string())? {
        if temp.is_dir() {
            std::fs::remove_dir_all(&temp)
        } else {
            std::fs::remove_file(&temp)
        }
        .map_err(|e| e.to_string())?;
    }
    drop(writer);
    match logcapture::records_since(before) {
        Some(records) if !records.is_empty() => Ok(()),
        _ => Err("the failed rollback was not reported".to_owned()),
    }
}

/// The target loads as `expected` and no temporary file is left.
fn target_is(
    backend: &dyn Backend,
    path: &Path,
    expected: &ndstore_core::DynArray,
) -> Result<(), String> {
    let (_, loaded) =
        crate::checks::load(backend, path).map_err(|e| format!("the target does not load: {e}"))?;
    if !same_bits(&loaded, expected) {
        return Err(format!(
            "the target does not hold the expected version: {} rows, not {}",
            loaded.shape().first().copied().unwrap_or(0),
            expected.shape().first().copied().unwrap_or(0)
        ));
    }
    let temps = list_temps(path).map_err(|e| e.to_string())?;
    if !temps.is_empty() {
        return Err(format!("{} temporary file(s) left", temps.len()));
    }
    Ok(())
}

/// Opens a streaming writer for rows like `block` (errors as text, for the checks).
fn open_writer(
    backend: &dyn Backend,
    path: &Path,
    block: &ndstore_core::DynArray,
    row_shape: &[usize],
    options: &SaveOptions,
) -> Result<Box<dyn ndstore_core::ArrayWriter>, String> {
    backend
        .writer(path, DType::native(block.kind()), row_shape, options)
        .map_err(|e| e.to_string())
}

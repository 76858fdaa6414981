//! FC and FD: what another process sees after close/commit, and after a handle is dropped
//! without one — including during a panic, and with an error on the way.

use std::path::Path;

use ndstore_core::{Backend, DType, SaveOptions, list_temps};

use crate::checks::{rows_for, versioned};
use crate::child::{self, Task, canonical};
use crate::report::CheckResult;
use crate::{Ctx, logcapture};

/// Loads `path` in a child process and compares with `expected`.
fn child_sees(path: &Path, expected: &ndstore_core::DynArray) -> Result<(), String> {
    let lines = child::run(&Task::Load {
        path: path.to_path_buf(),
    })?;
    let want = format!("LOADED {}", canonical(expected));
    match lines
        .iter()
        .find(|l| l.starts_with("LOADED") || l.starts_with("ERROR"))
    {
        Some(line) if *line == want => Ok(()),
        Some(line) if line.starts_with("ERROR") => {
            Err(format!("the other process could not load it: {line}"))
        }
        Some(_) => Err("the other process read different data".to_owned()),
        None => Err("the other process said nothing".to_owned()),
    }
}

fn concat_rows(
    backend: &dyn Backend,
    blocks: usize,
    rows: usize,
) -> (Vec<usize>, ndstore_core::DynArray, ndstore_core::DynArray) {
    let (row_shape, block) = rows_for(backend, rows);
    let whole = ndstore_core::with_dyn_array!(&block, a => {
        let views: Vec<_> = (0..blocks).map(|_| a.view()).collect();
        ndstore_core::DynArray::from(ndstore_core::ndarray::concatenate(ndstore_core::ndarray::Axis(0), &views).unwrap_or_else(|_| a.clone()))
    });
    (row_shape, block, whole)
}

/// FC: after save, or a writer's commit, returned Ok, another process reads exactly the data.
pub fn fc(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (name, options) in [
        ("save synced", SaveOptions::default()),
        ("save flushed", SaveOptions::new().flushed()),
        ("save in place", SaveOptions::new().in_place()),
    ] {
        cases += 1;
        let path = ctx.path(&format!("fc-{cases}"));
        let array = versioned(backend, 0, cases);
        let result = backend
            .save(&path, &array, &options)
            .map_err(|e| e.to_string())
            .and_then(|()| child_sees(&path, &array));
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    if caps.streaming_append {
        for (name, options) in [
            ("atomic writer commit", SaveOptions::default()),
            ("in-place writer commit", SaveOptions::new().in_place()),
        ] {
            cases += 1;
            let path = ctx.path(&format!("fc-writer-{cases}"));
            let (row_shape, block, whole) = concat_rows(backend, 3, 5);
            let result = (|| {
                let mut writer = open_writer(backend, &path, &block, &row_shape, &options)?;
                for _ in 0..3 {
                    writer.append(&block).map_err(|e| e.to_string())?;
                }
                writer.commit().map_err(|e| e.to_string())?;
                child_sees(&path, &whole)
            })();
            if let Err(e) = result {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    if caps.in_place_update {
        for (name, options) in [
            ("in-place handle closed (synced)", SaveOptions::default()),
            (
                "in-place handle closed (flushed)",
                SaveOptions::new().flushed(),
            ),
        ] {
            cases += 1;
            let path = ctx.path(&format!("fc-in-place-{cases}"));
            let first =
                crate::checks::versioned_with_len(backend, 0, 0, crate::checks::IN_PLACE_LEN);
            let second =
                crate::checks::versioned_with_len(backend, 0, 1, crate::checks::IN_PLACE_LEN);
            let result = (|| {
                backend
                    .save(&path, &first, &SaveOptions::default())
                    .map_err(|e| e.to_string())?;
                let mut handle = backend
                    .open_in_place(&path, &options)
                    .map_err(|e| e.to_string())?;
                handle.write_all(&second).map_err(|e| e.to_string())?;
                handle.close().map_err(|e| e.to_string())?;
                child_sees(&path, &second)
            })();
            if let Err(e) = result {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    Ok(CheckResult::counted(
        "FC",
        cases,
        &failures,
        "saves (synced, flushed, in place), writer commits and in-place closes read back by another process",
    ))
}

/// FD: the drop contract for every handle type the backend has.
pub fn fd(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    if !caps.streaming_append && !caps.in_place_update {
        return Ok(CheckResult::not_applicable(
            "FD",
            "streaming_append or in_place_update (the backend has no handle to drop)",
        ));
    }
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut case = |name: &str, result: Result<(), String>| {
        cases += 1;
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    };
    if caps.in_place_update {
        let path = ctx.path("fd-in-place-handle");
        case(
            "in-place handle dropped in a child",
            (|| {
                let initial =
                    crate::checks::versioned_with_len(backend, 1, 0, crate::checks::IN_PLACE_LEN);
                backend
                    .save(&path, &initial, &SaveOptions::default())
                    .map_err(|e| e.to_string())?;
                let lines = child::run(&Task::DropInPlaceHandle {
                    path: path.clone(),
                    version: 5,
                })?;
                if !lines.iter().any(|l| l == "DROPPED") {
                    return Err(format!("the child did not finish: {lines:?}"));
                }
                let expected =
                    crate::checks::versioned_with_len(backend, 3, 5, crate::checks::IN_PLACE_LEN);
                let (_, loaded) = crate::checks::load(backend, &path)?;
                if loaded.bit_eq(&expected) {
                    Ok(())
                } else {
                    Err("the values written before the drop are not there".to_owned())
                }
            })(),
        );
    }
    if !caps.streaming_append {
        let what = "in-place handle dropped without close: another process sees its data";
        return Ok(CheckResult::counted("FD", cases, &failures, what));
    }
    let old = versioned(backend, 9, 0);

    // An in-place writer dropped without close, in another process: its rows are there.
    let path = ctx.path("fd-in-place");
    case(
        "in-place writer dropped in a child",
        (|| {
            let lines = child::run(&Task::DropInPlaceWriter {
                path: path.clone(),
                rows: 6,
            })?;
            if !lines.iter().any(|l| l == "DROPPED") {
                return Err(format!("the child did not finish: {lines:?}"));
            }
            let (_, expected) = rows_for(backend, 6);
            let (_, loaded) = crate::checks::load(backend, &path).map_err(|e| e.to_string())?;
            if loaded.bit_eq(&expected) {
                Ok(())
            } else {
                Err("the rows written before the drop are not all there".to_owned())
            }
        })(),
    );

    // An uncommitted atomic writer dropped: the target keeps its old content, no temp remains.
    let path = ctx.path("fd-atomic");
    case(
        "uncommitted atomic writer dropped",
        (|| {
            backend
                .save(&path, &old, &SaveOptions::default())
                .map_err(|e| e.to_string())?;
            let (row_shape, block) = rows_for(backend, 4);
            let mut writer =
                open_writer(backend, &path, &block, &row_shape, &SaveOptions::default())?;
            writer.append(&block).map_err(|e| e.to_string())?;
            writer.flush().map_err(|e| e.to_string())?;
            drop(writer);
            target_is(backend, &path, &old)
        })(),
    );

    // Writers dropped while their thread panics never publish a partial file.
    for (n, (name, options)) in [
        (
            "atomic writer dropped during a panic",
            SaveOptions::default(),
        ),
        (
            "in-place writer dropped during a panic",
            SaveOptions::new().in_place(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let path = ctx.path(&format!("fd-panic-{n}"));
        case(
            name,
            (|| {
                backend
                    .save(&path, &old, &SaveOptions::default())
                    .map_err(|e| e.to_string())?;
                let (row_shape, block) = rows_for(backend, 4);
                let writer = open_writer(backend, &path, &block, &row_shape, &options)?;
                let in_place = options.replace == ndstore_core::Replace::InPlace;
                let joined = std::thread::spawn(move || {
                    let mut writer = writer;
                    let _ = writer.append(&block);
                    if in_place {
                        let _ = writer.flush();
                        let _ = writer.append(&block);
                    }
                    panic!("the writing thread dies");
                })
                .join();
                if joined.is_ok() {
                    return Err("the thread did not panic".to_owned());
                }
                if in_place {
                    // Only what the last flush published: the first block, complete.
                    let (_, block) = rows_for(backend, 4);
                    target_is(backend, &path, &block)
                } else {
                    target_is(backend, &path, &old)
                }
            })(),
        );
    }

    // An error met while dropping is reported through the log, not swallowed.
    let path = ctx.path("fd-error");
    case(
        "an error on drop is logged",
        (|| {
            let Some(before) = logcapture::install() else {
                return Err("another logger is installed; cannot observe drop errors".to_owned());
            };
            let (row_shape, block) = rows_for(backend, 2);
            let mut writer =
                open_writer(backend, &path, &block, &row_shape, &SaveOptions::default())?;
            writer.append(&block).map_err(|e| e.to_string())?;
            // Pull the temporary file away, so the writer's rollback fails.
            for temp in list_temps(&path).map_err(|e| e.to_string())? {
                std::fs::remove_file(&temp).map_err(|e| e.to_string())?;
            }
            drop(writer);
            match logcapture::records_since(before) {
                Some(records) if !records.is_empty() => Ok(()),
                _ => Err("the failed rollback was not reported".to_owned()),
            }
        })(),
    );

    Ok(CheckResult::counted(
        "FD",
        cases,
        &failures,
        "dropped handles: in-place data seen by another process, atomic rollback, drops during panics, errors on drop logged",
    ))
}

/// The target loads as `expected` and no temporary file is left.
fn target_is(
    backend: &dyn Backend,
    path: &Path,
    expected: &ndstore_core::DynArray,
) -> Result<(), String> {
    let (_, loaded) =
        crate::checks::load(backend, path).map_err(|e| format!("the target does not load: {e}"))?;
    if !loaded.bit_eq(expected) {
        return Err("the target does not hold the expected version".to_owned());
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

//! CO: two processes saving the same path leave one complete version, and a reader looping
//! during the replaces never sees a partial file.

use std::time::Duration;

use ndstore_core::{SaveOptions, list_temps};

use crate::Ctx;
use crate::checks::{identify, versioned};
use crate::child::{self, Task};
use crate::fixtures::Editor;
use crate::report::CheckResult;

/// CO for atomic saves (lock conflicts of in-place handles join with those backends).
pub fn co(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    if !caps.atomic_replace {
        return Ok(CheckResult::not_applicable("CO", "atomic_replace"));
    }
    let saves = ctx.mode.count(100, 1000);
    let path = ctx.path("co");
    backend
        .save(&path, &versioned(backend, 2, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let mut writers = Vec::new();
    for writer in 0..2 {
        writers.push(child::spawn(&Task::SaveLoop {
            path: path.clone(),
            writer,
            count: saves,
            sizes: crate::checks::Sizes::Mixed,
        })?);
    }
    let mut failures = Vec::new();
    let mut reads = 0u64;
    loop {
        let running = writers.iter_mut().any(|w| matches!(w.try_wait(), Ok(None)));
        reads += 1;
        match crate::checks::load(backend, &path) {
            Ok((_, array)) => {
                if identify(backend, &array, 3, saves).is_none() {
                    failures.push(format!("read {reads}: not a complete version"));
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
        let output = writer.wait_with_output().map_err(|e| e.to_string())?;
        let acks = child::protocol_lines(&output.stdout)
            .iter()
            .filter(|l| l.starts_with("ACK"))
            .count() as u64;
        if !output.status.success() || acks != saves {
            failures.push(format!(
                "writer {n} acknowledged {acks} of {saves} saves ({})",
                output.status
            ));
        }
    }
    cases += 1;
    match crate::checks::load(backend, &path) {
        Ok((_, array)) => match identify(backend, &array, 2, saves) {
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
    if caps.in_place_update {
        cases += 1;
        if let Err(e) = lock_conflicts(ctx) {
            failures.push(format!("lock conflicts: {e}"));
        }
    }
    let locks = if caps.in_place_update {
        "; a second in-place writer gets a clear lock error"
    } else {
        ""
    };
    let mut what = format!(
        "two processes × {saves} saves of one path while this process read it {reads} times; every read a complete version{locks}"
    );
    if let Some(editor) = ctx.fixtures.editor() {
        let additions = ctx.mode.count(10, 50);
        let (ran, problems) = concurrent_edits(ctx, &editor, additions)?;
        cases += ran;
        failures.extend(problems);
        what.push_str(&format!(
            "; two processes × {additions} additions of an array to one file lose none"
        ));
    }
    Ok(CheckResult::counted("CO", cases, &failures, &what))
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
    let lines = child::run(&Task::TryInPlace { path: path.clone() })?;
    if !lines.iter().any(|l| l.starts_with("OPEN Locked"))
        || !lines.iter().any(|l| l.starts_with("SAVE Locked"))
    {
        return Err(format!("while locked, another process got {lines:?}"));
    }
    handle.close().map_err(|e| e.to_string())?;
    let lines = child::run(&Task::TryInPlace { path: path.clone() })?;
    if !lines.iter().any(|l| l == "OPEN OK") || !lines.iter().any(|l| l == "SAVE OK") {
        return Err(format!("after close, another process got {lines:?}"));
    }
    Ok(())
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
    let mut editors = Vec::new();
    for writer in 0..2 {
        editors.push(child::spawn(&Task::EditLoop {
            path: path.clone(),
            writer,
            count: additions,
        })?);
    }
    let mut failures = Vec::new();
    let mut acked = Vec::new();
    for (writer, child) in editors.into_iter().enumerate() {
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let lines = child::protocol_lines(&output.stdout);
        let acks = lines.iter().filter(|l| l.starts_with("ACK")).count() as u64;
        if !output.status.success() || acks != additions {
            let error = lines.iter().find(|l| l.starts_with("ERROR"));
            failures.push(format!(
                "editor {writer} acknowledged {acks} of {additions} additions ({}{})",
                output.status,
                error.map(|e| format!(", {e}")).unwrap_or_default()
            ));
        }
        acked.push(acks);
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

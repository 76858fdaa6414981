//! CK: a child saves in a loop and is killed with SIGKILL at random moments; after every kill
//! the target must be a complete acknowledged version (the last acknowledged one, or the one
//! in flight), with at most one stale temporary file, which the cleanup call removes.
//!
//! A backend that declares the per-chunk guarantee (object storage: no rename, so a replaced
//! chunked array is swapped chunk by chunk) is judged per chunk instead: after each kill the
//! replaced target's every chunk must be one acceptable version's (its shape one version's),
//! and a new target must be absent or whole. Its versions all have one size, so every version
//! has the same chunks.
//!
//! Most kills land in small and medium saves (up to 768 KiB); a few land in 64 MiB saves, whose
//! replaced file is released on a background thread and whose data is written back eagerly,
//! so the fast paths meet a kill too.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use ndstore_core::{
    ArrayMeta, Backend, CrashGuarantee, DynArray, ErrorKind, SaveOptions, list_temps,
    remove_stale_temps,
};

use crate::Ctx;
use crate::check::Check;
use crate::checks::{Sizes, element_versions, identify_sized, large_len, size_text, version_len};
use crate::child::{self, Task};
use crate::protocol::Reply;
use crate::report::CheckResult;
use crate::sample::Rng;

/// One series of kills: how many, and how large the arrays are.
struct Series {
    kills: u64,
    sizes: Sizes,
}

/// CK: atomic saves (or per-chunk ones), and in-place handles against the guarantee they
/// declare.
pub fn ck(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let caps = ctx.backend.capabilities();
    let per_chunk = caps.per_chunk_replace();
    let atomic = caps.atomic_replace() || per_chunk;
    let in_place = caps.in_place == Some(CrashGuarantee::SyncedIsDurable);
    if !atomic && !in_place {
        return Ok(CheckResult::not_applicable(
            Check::Kill,
            "atomic_replace, per_chunk_replace or in_place_update",
        ));
    }
    let series = [
        Series {
            kills: ctx.mode.count(200, 2000),
            sizes: Sizes::Mixed,
        },
        Series {
            kills: ctx.mode.count(6, 40),
            sizes: Sizes::Fixed(large_len(ctx.backend)),
        },
    ];
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut what = Vec::new();
    for series in &series {
        if atomic {
            cases += series.kills;
            what.push(ck_atomic(ctx, series, &mut failures)?);
        }
        if per_chunk {
            let kills = series.kills.div_ceil(4);
            cases += kills;
            what.push(ck_new_target(ctx, kills, series.sizes, &mut failures)?);
        }
        if in_place {
            cases += series.kills;
            what.push(ck_in_place(ctx, series, &mut failures)?);
        }
    }
    let largest = series
        .iter()
        .map(|s| crate::checks::largest_bytes(ctx.backend, s.sizes))
        .max()
        .unwrap_or(0);
    Ok(CheckResult::counted(
        Check::Kill,
        cases,
        &failures,
        &format!("arrays up to {}: {}", size_text(largest), what.join("; ")),
    ))
}

/// Kills during atomic (or per-chunk) saves; returns the description of what was checked.
fn ck_atomic(ctx: &Ctx<'_>, series: &Series, failures: &mut Vec<String>) -> Result<String, String> {
    let backend = ctx.backend;
    let Series { kills, sizes, .. } = *series;
    let large = sizes != Sizes::Mixed;
    let per_chunk = backend.capabilities().per_chunk_replace();
    // Per chunk, every version has one size (so one chunk grid), the larger of the mixed ones.
    let sizes = per_chunk_sizes(backend, sizes);
    let path = ctx.path(if large { "ck-large" } else { "ck" });
    // The initial content is version 0 of writer 1: "nothing acknowledged yet" must find it.
    let initial = sizes.version(backend, 1, 0);
    backend
        .save(&path, &initial, &SaveOptions::default())
        .map_err(|e| format!("initial save: {e}"))?;

    // Time a few saves, so kill moments spread over whole saves: mixed series time one save of
    // each size and kill within about six; large series kill within about two.
    let timed = if large { 2 } else { 4 };
    let started = Instant::now();
    for i in 0..timed {
        backend
            .save(
                &path,
                &sizes.version(backend, 1, i),
                &SaveOptions::default(),
            )
            .map_err(|e| e.to_string())?;
    }
    backend
        .save(&path, &initial, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let per_save = started.elapsed() / (timed as u32 + 1);
    let window = (per_save * if large { 2 } else { 6 }).max(Duration::from_millis(2));

    let mut rng = Rng::new(if large { 0xb16_5eed } else { 0xdead_5eed });
    let failed_before = failures.len();
    let mut acked_total = 0u64;
    let mut stale_seen = 0u64;
    // Per chunk: the kills that left chunks of two versions.
    let mut mixed = 0u64;
    let mut previous: Option<(u64, u64)> = Some((1, 0));
    let label = if large {
        format!("{} 64 MiB", Check::Kill)
    } else {
        Check::Kill.to_string()
    };
    let mut progress = crate::progress::Progress::new(backend.name(), &label, kills);
    for kill in 0..kills {
        progress.tick(kill);
        let result = (|| -> Result<(), String> {
            let delay = Duration::from_nanos(rng.below(window.as_nanos() as u64));
            let last_ack = kill_during(
                &Task::SaveLoop {
                    path: path.clone(),
                    writer: 0,
                    count: u64::MAX,
                    sizes,
                },
                delay,
            )?;
            acked_total += last_ack.map_or(0, |n| n + 1);
            let (meta, loaded) = crate::checks::load(backend, &path)
                .map_err(|e| format!("the target does not load after the kill: {e}"))?;
            // Acceptable: the last acknowledged version, or the one in flight after it.
            let acceptable = match last_ack {
                Some(n) => vec![(0, n), (0, n + 1)],
                None => vec![previous.unwrap_or((1, 0)), (0, 0)],
            };
            if per_chunk {
                let rows = chunk_rows(ctx, &meta)?;
                if judge_per_chunk(&loaded, sizes.len(0), rows, &acceptable)? {
                    mixed += 1;
                }
            } else {
                let found = identify_sized(backend, &loaded, 2, u64::MAX >> 44, sizes);
                match found {
                    Some(v) if acceptable.contains(&v) => previous = Some(v),
                    Some(v) => {
                        return Err(format!("found version {v:?}, acceptable {acceptable:?}"));
                    }
                    None => return Err("the target is not any complete version".to_owned()),
                }
            }
            let temps = list_temps(&path).map_err(|e| e.to_string())?;
            if temps.len() > 1 {
                return Err(format!("{} temporary files after one kill", temps.len()));
            }
            stale_seen += temps.len() as u64;
            remove_stale_temps(&path).map_err(|e| e.to_string())?;
            if !list_temps(&path).map_err(|e| e.to_string())?.is_empty() {
                return Err("remove_stale_temps left a temporary file".to_owned());
            }
            // Start the next round from a known acknowledged state. A large series goes on
            // from the version found, which is complete and known: a second 64 MiB save per
            // kill would double the series' time. Per chunk, what was found may be a mix.
            if !large || per_chunk {
                backend
                    .save(&path, &initial, &SaveOptions::default())
                    .map_err(|e| e.to_string())?;
                previous = Some((1, 0));
            }
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!(
                "{}kill {kill}: {e}",
                if large { "64 MiB " } else { "" }
            ));
        }
    }
    let consistent = kills - (failures.len() - failed_before) as u64;
    let sizes_text = crate::checks::sizes_text(backend, sizes);
    let left = if per_chunk {
        format!(
            "left every chunk of an acknowledged version or the one in flight ({mixed} of them a mix of two versions' chunks)"
        )
    } else {
        "left a complete acknowledged version".to_owned()
    };
    Ok(format!(
        "{consistent}/{kills} kills during saves {sizes_text} {left} ({acked_total} saves acknowledged, \
         {stale_seen} stale temporaries, all removed by remove_stale_temps; kill window {window:?})"
    ))
}

/// The sizes a per-chunk backend's kills use: one size for every version (the large one of
/// [`Sizes::Mixed`]), so every version has the same chunk grid.
fn per_chunk_sizes(backend: &dyn Backend, sizes: Sizes) -> Sizes {
    match sizes {
        Sizes::Mixed if backend.capabilities().per_chunk_replace() => Sizes::Fixed(version_len(1)),
        other => other,
    }
}

/// The elements per chunk of the 1-d array `meta` describes, from the fixtures' chunk shape.
fn chunk_rows(ctx: &Ctx<'_>, meta: &ArrayMeta) -> Result<usize, String> {
    match ctx.fixtures.chunk_shape(meta).as_deref() {
        Some([rows]) if *rows > 0 => Ok(*rows),
        Some(other) => Err(format!(
            "the fixtures give the chunk shape {other:?} for the 1-d array {:?}",
            meta.shape
        )),
        None => Err(
            "the backend declares the per-chunk crash guarantee, but its fixtures give no chunk shape (Fixtures::chunk_shape)"
                .to_owned(),
        ),
    }
}

/// Per chunk: `array` has `len` elements (so its metadata is a version's), and each chunk of
/// `rows` elements holds exactly one of the `acceptable` versions' elements, in place.
/// Returns whether the chunks are of more than one version.
fn judge_per_chunk(
    array: &DynArray,
    len: usize,
    rows: usize,
    acceptable: &[(u64, u64)],
) -> Result<bool, String> {
    if array.shape() != [len] {
        return Err(format!(
            "the target has shape {:?}, no version's ([{len}])",
            array.shape()
        ));
    }
    let elements = element_versions(array).ok_or("no versioned dtype")?;
    let mut seen = Vec::new();
    for (k, chunk) in elements.chunks(rows).enumerate() {
        let first = k * rows;
        let (writer, version, _) = chunk[0];
        let whole = chunk
            .iter()
            .enumerate()
            .all(|(j, &(w, v, index))| (w, v) == (writer, version) && index == (first + j) as u64);
        if !whole || !acceptable.contains(&(writer, version)) {
            return Err(format!(
                "chunk {k} (elements {first}..{}) is not one acceptable version's {acceptable:?}: it starts with version {:?}{}",
                first + chunk.len(),
                (writer, version),
                if whole {
                    ""
                } else {
                    " and is torn or misplaced"
                }
            ));
        }
        if !seen.contains(&(writer, version)) {
            seen.push((writer, version));
        }
    }
    Ok(seen.len() > 1)
}

/// Kills during saves of a new target (a per-chunk backend): after each, the target is
/// absent, or the whole new version; once acknowledged, the whole new version.
fn ck_new_target(
    ctx: &Ctx<'_>,
    kills: u64,
    sizes: Sizes,
    failures: &mut Vec<String>,
) -> Result<String, String> {
    let backend = ctx.backend;
    let large = sizes != Sizes::Mixed;
    let sizes = per_chunk_sizes(backend, sizes);
    // Time one save, so kill moments spread over about two.
    let timing = ctx.path(if large {
        "ck-new-timing-large"
    } else {
        "ck-new-timing"
    });
    let started = Instant::now();
    backend
        .save(
            &timing,
            &sizes.version(backend, 0, 0),
            &SaveOptions::default(),
        )
        .map_err(|e| format!("timing a save: {e}"))?;
    let window = (started.elapsed() * 2).max(Duration::from_millis(2));
    let mut rng = Rng::new(if large { 0xb16_9e55 } else { 0x9e55_5eed });
    let failed_before = failures.len();
    let (mut absent, mut whole) = (0u64, 0u64);
    for kill in 0..kills {
        let path = ctx.path(&format!(
            "ck-new-{}{kill}",
            if large { "large-" } else { "" }
        ));
        let result = (|| -> Result<(), String> {
            let delay = Duration::from_nanos(rng.below(window.as_nanos() as u64));
            let task = Task::SaveLoop {
                path: path.clone(),
                writer: 0,
                count: 1,
                sizes,
            };
            let acked = kill_during(&task, delay)?.is_some();
            let loaded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.load(&path)))
                    .map_err(|_| "the backend panicked while loading".to_owned())?;
            match loaded {
                Err(e) if e.kind() == ErrorKind::NotFound && !acked => {
                    absent += 1;
                    Ok(())
                }
                Err(e) => Err(format!(
                    "the new target does not load after the kill (acknowledged: {acked}): {e}"
                )),
                Ok((_, array)) => match identify_sized(backend, &array, 1, 0, sizes) {
                    Some((0, 0)) => {
                        whole += 1;
                        Ok(())
                    }
                    _ => Err("the new target is there but not the whole new version".to_owned()),
                },
            }
        })();
        if let Err(e) = result {
            failures.push(format!(
                "new target {}kill {kill}: {e}",
                if large { "64 MiB " } else { "" }
            ));
        }
    }
    let held = kills - (failures.len() - failed_before) as u64;
    Ok(format!(
        "{held}/{kills} kills during saves of a new target {} left it absent ({absent}) or whole ({whole})",
        crate::checks::sizes_text(backend, sizes)
    ))
}

/// CK for in-place handles that declare `SyncedIsDurable`: a child rewrites the array in place
/// and syncs in a loop; after each SIGKILL the file must load, with every element from the last
/// synced version or the one in flight (a torn mix of the two is what the guarantee allows).
fn ck_in_place(
    ctx: &Ctx<'_>,
    series: &Series,
    failures: &mut Vec<String>,
) -> Result<String, String> {
    use crate::checks::{IN_PLACE_LEN, element_versions, versioned_with_len};
    let backend = ctx.backend;
    let kills = series.kills;
    let large = series.sizes != Sizes::Mixed;
    let len = if large {
        large_len(backend)
    } else {
        IN_PLACE_LEN
    };
    let path = ctx.path(if large {
        "ck-in-place-large"
    } else {
        "ck-in-place"
    });
    let initial = versioned_with_len(backend, 1, 0, len);
    let mut rng = Rng::new(if large { 0xb16_1ace } else { 0x1a_91ace });
    let mut acked_total = 0;
    let window = if large {
        // One large rewrite and sync, timed, twice over.
        backend
            .save(&path, &initial, &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut handle = backend
            .open_in_place(&path, &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        handle
            .write_all(&versioned_with_len(backend, 0, 0, len))
            .and_then(|()| handle.sync())
            .and_then(|()| handle.close())
            .map_err(|e| e.to_string())?;
        (started.elapsed() * 2).max(Duration::from_millis(30))
    } else {
        Duration::from_millis(30)
    };
    let label = if large {
        "CK in place 64 MiB"
    } else {
        "CK in place"
    };
    let mut progress = crate::progress::Progress::new(backend.name(), label, kills);
    for kill in 0..kills {
        progress.tick(kill);
        let result = (|| -> Result<(), String> {
            backend
                .save(&path, &initial, &SaveOptions::default())
                .map_err(|e| e.to_string())?;
            let delay = Duration::from_nanos(rng.below(window.as_nanos() as u64));
            let last_ack = kill_during(
                &Task::InPlaceLoop {
                    path: path.clone(),
                    len,
                },
                delay,
            )?;
            acked_total += last_ack.map_or(0, |n| n + 1);
            let (_, loaded) = crate::checks::load(backend, &path)
                .map_err(|e| format!("the file does not load after the kill: {e}"))?;
            let elements = element_versions(&loaded).ok_or("no versioned dtype")?;
            if elements.len() != len {
                return Err(format!(
                    "the array has {} elements, not {len}",
                    elements.len()
                ));
            }
            let allowed: Vec<(u64, u64)> = match last_ack {
                Some(n) => vec![(0, n), (0, n + 1)],
                None => vec![(1, 0), (0, 0)],
            };
            for (j, (writer, version, index)) in elements.into_iter().enumerate() {
                if index != j as u64 || !allowed.contains(&(writer, version)) {
                    return Err(format!(
                        "element {j} is from version {:?}, allowed {allowed:?}",
                        (writer, version)
                    ));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!(
                "in-place {}kill {kill}: {e}",
                if large { "64 MiB " } else { "" }
            ));
        }
    }
    Ok(format!(
        "{kills} kills of an in-place writer of {}: every element from the last synced version or the one in flight ({acked_total} syncs acknowledged)",
        size_text(crate::checks::array_bytes(&initial))
    ))
}

/// Starts a child on `task`, waits until it is ready, kills it with SIGKILL after `delay`, and
/// returns the last version it acknowledged.
fn kill_during(task: &Task, delay: Duration) -> Result<Option<u64>, String> {
    let mut child = child::spawn(task)?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // Wait for Ready so the kill lands in the loop, not in process start-up.
    loop {
        match lines.next() {
            Some(Ok(line)) => match Reply::parse(&line) {
                Some(Ok(Reply::Ready)) => break,
                Some(Ok(Reply::Error(e))) => return Err(e),
                _ => continue,
            },
            _ => return Err("the child ended before it was ready".to_owned()),
        }
    }
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
    let mut last_ack = None;
    for line in lines.map_while(Result::ok) {
        // A line the kill cut short is no reply.
        if let Some(Ok(Reply::Ack(n))) = Reply::parse(&line) {
            last_ack = Some(n);
        }
    }
    Ok(last_ack)
}

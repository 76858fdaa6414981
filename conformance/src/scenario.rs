//! The operations the power-loss and fault-injection checks record, run in a child process
//! between two marks a trace can see, and the known-bad protocols that prove the checker can
//! fail.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ndstore_core::ndarray::{Axis, Slice};
use ndstore_core::{Backend, DynArray, SaveOptions, with_dyn_array};

use crate::checks::{large_len, large_rows, rows_for, versioned_rows, versioned_with_len};
use crate::syscalls::{MARK_COMMITTED, MARK_START};

/// An operation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scenario {
    /// An atomic `save` of the new version over the old.
    Save,
    /// A streaming writer (atomic) appends the new rows in three blocks, syncs and commits.
    Writer,
    /// An in-place handle overwrites the old version with the new and syncs.
    InPlace,
    /// Known bad: truncate the target and rewrite it, as `np.save` does (with an fsync); a
    /// tree is removed and written again in place (files and directories fsynced).
    TruncateRewrite,
    /// Known bad: temporary, fsync, rename, but no fsync of the directory; a tree is built
    /// beside the target with its files fsynced, exchanged with it (`RENAME_EXCHANGE`) and the
    /// old tree removed, without a directory fsync anywhere.
    RenameWithoutDirSync,
    /// Known bad: temporary and rename with a directory fsync, but no fsync of the data; a
    /// tree's directories are all fsynced, before and after the exchange, its files never.
    RenameWithoutFsync,
}

/// How large a scenario's arrays are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scale {
    /// A few KiB: every write is recorded with its bytes, every page can tear.
    Small,
    /// [`LARGE_BYTES`](crate::checks::LARGE_BYTES) (64 MiB) old and new versions, above every
    /// fast-path threshold of the code.
    Large,
}

/// The element count of the small (old) version.
const OLD_LEN: usize = 700;
/// The element count of the new version: several pages, so writes can tear.
const NEW_LEN: usize = 2500;
/// The element count of in-place versions.
const IN_PLACE: usize = 2048;
/// Rows the writer scenario appends.
const WRITER_ROWS: usize = 600;

impl Scenario {
    /// The scenarios that check a backend.
    pub const REAL: [Scenario; 3] = [Scenario::Save, Scenario::Writer, Scenario::InPlace];
    /// The known-bad protocols.
    pub const BAD: [Scenario; 3] = [
        Scenario::TruncateRewrite,
        Scenario::RenameWithoutDirSync,
        Scenario::RenameWithoutFsync,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Save => "atomic save",
            Scenario::Writer => "streaming writer commit",
            Scenario::InPlace => "in-place update + sync",
            Scenario::TruncateRewrite => "truncate and rewrite (np.save)",
            Scenario::RenameWithoutDirSync => "rename without the directory fsync",
            Scenario::RenameWithoutFsync => "rename without fsync of the data",
        }
    }

    /// Whether the backend has what the scenario needs.
    pub fn applies(self, backend: &dyn Backend) -> bool {
        let caps = backend.capabilities();
        match self {
            Scenario::Writer => caps.streaming_append,
            Scenario::InPlace => caps.in_place_update(),
            _ => caps.atomic_replace(),
        }
    }

    /// The version on disk before the operation.
    pub fn old(self, backend: &dyn Backend, scale: Scale) -> DynArray {
        match (self, scale) {
            (_, Scale::Large) => versioned_with_len(backend, 0, 0, large_len(backend)),
            (Scenario::InPlace, Scale::Small) => versioned_with_len(backend, 0, 0, IN_PLACE),
            (_, Scale::Small) => versioned_with_len(backend, 0, 0, OLD_LEN),
        }
    }

    /// The version the operation writes.
    pub fn new_version(self, backend: &dyn Backend, scale: Scale) -> DynArray {
        match (self, scale) {
            (Scenario::Writer, Scale::Large) => versioned_rows(backend, 1, large_rows(backend)),
            (_, Scale::Large) => versioned_with_len(backend, 0, 1, large_len(backend)),
            (Scenario::InPlace, Scale::Small) => versioned_with_len(backend, 0, 1, IN_PLACE),
            (Scenario::Writer, Scale::Small) => rows_for(backend, WRITER_ROWS).1,
            (_, Scale::Small) => versioned_with_len(backend, 0, 1, NEW_LEN),
        }
    }
}

/// Rows `start..end` of a `[n, ...]` array.
pub fn row_slice(array: &DynArray, start: usize, end: usize) -> DynArray {
    with_dyn_array!(array, |a| DynArray::from(
        a.slice_axis(Axis(0), Slice::from(start..end)).to_owned()
    ))
}

/// Touches the mark `name` in `dir`: a failed open a trace records and nothing else does.
pub fn mark(dir: &Path, name: &str) {
    let _ = std::fs::File::open(dir.join(name));
}

/// The number of open descriptors of this process (below 4096). Counted with fcntl, not by
/// listing /proc/self/fd: listing opens and closes a directory, and std panics when that close
/// fails, which is what the fault-injection check makes closes do. Replaced files still being
/// released in the background are waited for first: they are not leaks.
pub fn open_descriptors() -> usize {
    ndstore_core::__private::release::settle();
    (0..4096)
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// A known-bad protocol writing the tree packed in `bytes` at `target` in `dir`.
fn bad_tree(scenario: Scenario, bytes: &[u8], dir: &Path, target: &Path) -> Result<(), String> {
    let (sync_files, sync_dirs) = match scenario {
        Scenario::TruncateRewrite => {
            std::fs::remove_dir_all(target).map_err(io)?;
            return write_tree(bytes, target, true, true);
        }
        Scenario::RenameWithoutDirSync => (true, false),
        _ => (false, true),
    };
    let temp = dir.join(".bad-temp-tree");
    write_tree(bytes, &temp, sync_files, sync_dirs)?;
    exchange(&temp, target)?;
    if sync_dirs {
        sync_dir(dir)?;
    }
    std::fs::remove_dir_all(&temp).map_err(io)
}

/// Writes the tree packed in `bytes` as a new directory `root`, fsyncing its files and its
/// directories (the root's parent too) when told.
fn write_tree(bytes: &[u8], root: &Path, sync_files: bool, sync_dirs: bool) -> Result<(), String> {
    std::fs::create_dir(root).map_err(io)?;
    let mut dirs = vec![root.to_path_buf()];
    for entry in crate::tree::entries(bytes) {
        let path = root.join(&entry.path);
        let mut missing = Vec::new();
        let mut at = path.parent();
        while let Some(parent) = at.filter(|p| *p != root && !p.is_dir()) {
            missing.push(parent.to_path_buf());
            at = parent.parent();
        }
        for new in missing.into_iter().rev() {
            std::fs::create_dir(&new).map_err(io)?;
            dirs.push(new);
        }
        let content = &bytes[entry.content.start as usize..entry.content.end as usize];
        let mut f = std::fs::File::create(&path).map_err(io)?;
        f.write_all(content).map_err(io)?;
        if sync_files {
            f.sync_all().map_err(io)?;
        }
    }
    if sync_dirs {
        for d in dirs.iter().rev() {
            sync_dir(d)?;
        }
        sync_dir(root.parent().unwrap_or(root))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Exchanges the entries `a` and `b` (`renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| "a NUL byte".to_owned())
    };
    let (ca, cb) = (cstr(a)?, cstr(b)?);
    // SAFETY: both pointers are NUL-terminated strings that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io(std::io::Error::last_os_error()))
    }
}

/// Runs `scenario` on `dir/file`: marks the start, runs it, marks the commit if it returned Ok.
pub fn run(
    backend: &dyn Backend,
    dir: &Path,
    file: &str,
    scenario: Scenario,
    scale: Scale,
) -> Result<(), String> {
    let target = dir.join(file);
    let new = scenario.new_version(backend, scale);
    // The bad protocols write the backend's own bytes (a tree packed), prepared outside the
    // directory.
    let bad_bytes = if Scenario::BAD.contains(&scenario) {
        let scratch = dir
            .parent()
            .unwrap_or(dir)
            .join(format!("{file}.bad-protocol-scratch"));
        backend
            .save(&scratch, &new, &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        let bytes = crate::checks::target_bytes(&scratch)?;
        crate::tree::remove(&scratch);
        bytes
    } else {
        Vec::new()
    };
    // The in-place handle is opened before the start: what is measured is the update.
    let mut handle = if scenario == Scenario::InPlace {
        Some(
            backend
                .open_in_place(&target, &SaveOptions::default())
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    mark(dir, MARK_START);
    let result = match scenario {
        _ if crate::tree::is_packed(&bad_bytes) => bad_tree(scenario, &bad_bytes, dir, &target),
        Scenario::Save => backend
            .save(&target, &new, &SaveOptions::default())
            .map_err(|e| e.to_string()),
        Scenario::Writer => (|| {
            let dtype = ndstore_core::DType::native(new.kind());
            let mut writer = backend
                .writer(&target, dtype, &new.shape()[1..], &SaveOptions::default())
                .map_err(|e| e.to_string())?;
            let rows = new.shape()[0];
            let third = rows / 3;
            for part in 0..3 {
                let end = if part == 2 { rows } else { (part + 1) * third };
                writer
                    .append(&row_slice(&new, part * third, end))
                    .map_err(|e| e.to_string())?;
            }
            writer.sync().map_err(|e| e.to_string())?;
            writer.commit().map_err(|e| e.to_string())
        })(),
        Scenario::InPlace => match handle.as_mut() {
            Some(h) => h
                .write_all(&new)
                .and_then(|()| h.sync())
                .map_err(|e| e.to_string()),
            None => Err("no handle".to_owned()),
        },
        Scenario::TruncateRewrite => (|| {
            let mut f = std::fs::File::create(&target).map_err(io)?;
            f.write_all(&bad_bytes).map_err(io)?;
            f.sync_all().map_err(io)
        })(),
        Scenario::RenameWithoutDirSync | Scenario::RenameWithoutFsync => (|| {
            let temp: PathBuf = dir.join(format!("{file}.bad-temp"));
            let mut f = std::fs::File::create(&temp).map_err(io)?;
            f.write_all(&bad_bytes).map_err(io)?;
            if scenario == Scenario::RenameWithoutDirSync {
                f.sync_all().map_err(io)?;
            }
            drop(f);
            std::fs::rename(&temp, &target).map_err(io)?;
            if scenario == Scenario::RenameWithoutFsync {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            Ok(())
        })(),
    };
    if result.is_ok() {
        mark(dir, MARK_COMMITTED);
    }
    if let Some(h) = handle {
        let closed = h.close().map_err(|e| e.to_string());
        return result.and(closed);
    }
    result
}

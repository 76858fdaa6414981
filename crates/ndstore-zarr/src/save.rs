//! Whole-array saves: the new array is built in a sibling temporary directory, made durable,
//! then exchanged with the old one in one `renameat2(RENAME_EXCHANGE)` (or renamed into place
//! when there is none), the parent fsynced, and the old tree removed afterwards.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ndstore_core::{Durability, DynArray, Error, ErrorKind, Replace, Result, SaveOptions};

use crate::array::{ZarrArray, temp_dir_for};
use crate::meta::{METADATA_FILE, ZarrMeta};

/// A new array tree being built beside its target, removed unless published.
pub(crate) struct Staged {
    /// The temporary directory.
    pub(crate) array: Option<ZarrArray>,
    temp: PathBuf,
    target: PathBuf,
    options: SaveOptions,
    /// What the new array keeps of the old one.
    keep: Option<Keep>,
    /// The temporary directory, open and holding its liveness lock (core's
    /// `hold_liveness`) until the tree is published or removed, so a sweep of stale
    /// temporaries never takes it for a dead writer's.
    liveness: Option<fs::File>,
}

/// A new temporary directory beside `target`, open and holding its liveness lock.
fn create_temp_dir(target: &Path) -> Result<(PathBuf, fs::File)> {
    let failed = |what: &str, e: std::io::Error| Error::io(what.to_owned(), e).with_path(target);
    for _ in 0..100 {
        let temp = temp_dir_for(target)?;
        match fs::create_dir(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed("cannot create the temporary array directory", e)),
        }
        let locked = fs::File::open(&temp).and_then(|dir| {
            ndstore_core::__private::atomic::hold_liveness(&dir, &temp).map(|held| (dir, held))
        });
        match locked {
            Ok((dir, true)) => return Ok((temp, dir)),
            // A sweep took it for a dead writer's before the lock was held: another name.
            Ok((_, false)) => {}
            Err(e) => {
                // Ours and empty: removed, whatever went wrong.
                let _ = fs::remove_dir(&temp);
                return Err(failed("cannot lock the temporary array directory", e));
            }
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        "could not find a free temporary directory name",
    )
    .with_path(target))
}

impl Staged {
    /// Starts building an array of `meta` that will replace `target`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when `target` exists and is no Zarr array directory;
    /// [`ErrorKind::PermissionDenied`] when the caller could not write the old array and the
    /// options do not allow replacing it; the errors of creating the temporary tree.
    pub(crate) fn new(target: &Path, meta: ZarrMeta, options: &SaveOptions) -> Result<Staged> {
        // A symbolic link is followed: the array it points to is replaced, the link stays.
        let target = &ndstore_core::__private::atomic::follow_links(target)?;
        let keep = match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => Some(Keep::of(target, &m, options)?),
            Ok(_) => return Err(not_an_array(target)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("inspecting the target", e).with_path(target)),
        };
        let (temp, liveness) = create_temp_dir(target)?;
        let mut staged = Staged {
            array: None,
            temp: temp.clone(),
            target: target.to_path_buf(),
            options: *options,
            keep,
            liveness: Some(liveness),
        };
        staged.array = Some(ZarrArray::create(&temp, meta, options)?);
        Ok(staged)
    }

    /// The array being built.
    pub(crate) fn array(&self) -> Result<&ZarrArray> {
        self.array.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the save is finished").with_path(&self.target)
        })
    }

    /// The array being built, mutably.
    pub(crate) fn array_mut(&mut self) -> Result<&mut ZarrArray> {
        let target = self.target.clone();
        self.array.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the save is finished").with_path(target)
        })
    }

    /// Makes the tree durable and puts it in the target's place; the old tree is removed (a
    /// failure to remove it is logged).
    ///
    /// # Errors
    ///
    /// The errors of syncing the tree, keeping the old array's mode and owner, the exchange or
    /// rename and the parent's fsync; before the exchange the target keeps its old array.
    pub(crate) fn publish(mut self) -> Result<()> {
        let array = self
            .array
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the save is finished"))?;
        array.write_metadata()?;
        if self.options.durability == Durability::Synced {
            array.sync()?;
        }
        drop(array);
        if let Some(keep) = &self.keep {
            keep.apply(&self.temp, &self.options, &self.target)?;
        }
        let parent = ndstore_core::__private::atomic::parent_dir(&self.target).to_path_buf();
        // The old tree takes the temporary's name at the exchange: it holds a liveness lock
        // too, until it is removed, so a sweep cannot remove it while a failed fsync may still
        // need to exchange it back.
        let _old_liveness = if self.keep.is_some() {
            fs::File::open(&self.target)
                .ok()
                .filter(|dir| dir.try_lock_shared().is_ok())
        } else {
            None
        };
        let exchanged = if self.keep.is_some() {
            exchange(&self.temp, &self.target)?;
            true
        } else {
            fs::rename(&self.temp, &self.target).map_err(|e| {
                Error::io("cannot rename the new array into place", e).with_path(&self.target)
            })?;
            false
        };
        let old = std::mem::take(&mut self.temp);
        if self.options.durability == Durability::Synced
            && let Err(e) = ndstore_core::__private::atomic::sync_dir(&parent)
        {
            return Err(undo(
                &old,
                &self.target,
                exchanged,
                e.with_path(&self.target),
            ));
        }
        self.liveness = None;
        if exchanged && let Err(e) = retire(&old) {
            log::warn!(
                "{}: the replaced array's tree could not be removed: {e}",
                old.display()
            );
        }
        Ok(())
    }

    /// Removes the temporary tree.
    ///
    /// # Errors
    ///
    /// The I/O error of removing it.
    pub(crate) fn abort(mut self) -> Result<()> {
        self.array = None;
        let temp = std::mem::take(&mut self.temp);
        crate::sys::remove_tree(&temp).map_err(|e| {
            Error::io("cannot remove the temporary array directory", e).with_path(&temp)
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.temp.as_os_str().is_empty() {
            return;
        }
        self.array = None;
        if let Err(e) = crate::sys::remove_tree(&self.temp) {
            log::error!(
                "{}: could not remove the temporary tree of an abandoned save: {e}",
                self.temp.display()
            );
        }
    }
}

/// After the parent's fsync failed (`error`): the save returns Err, so the old array goes back
/// to its name (exchanged back) and the new tree, now at `temp`, is removed; a new target is
/// removed. A failure to undo is added to the error.
fn undo(temp: &Path, target: &Path, exchanged: bool, error: Error) -> Error {
    let undone = if exchanged {
        exchange(temp, target).and_then(|()| {
            retire(temp).map_err(|e| {
                Error::io("cannot remove the new tree after a failed save", e).with_path(temp)
            })
        })
    } else {
        retire(target).map_err(|e| {
            Error::io("cannot remove the new array after a failed save", e).with_path(target)
        })
    };
    match undone {
        Ok(()) => error,
        Err(e) => Error::new(
            error.kind(),
            format!("{error}; undoing the save failed too: {e}"),
        )
        .with_path(target),
    }
}

/// Removes a replaced array's tree, `zarr.json` first: a reader that finds `zarr.json` still
/// in the tree it read after reading its chunks knows no chunk was removed under it (see
/// `ZarrArray::read_region`). Every name is gone when it returns; the files' blocks are freed
/// on a background thread (`sys::remove_tree_deferred`).
///
/// # Errors
///
/// The I/O error of a removal.
pub(crate) fn retire(tree: &Path) -> std::io::Result<()> {
    remove_file_if_there(&tree.join(METADATA_FILE))?;
    crate::sys::remove_tree_deferred(tree)
}

/// As [`retire`], every block freed before it returns: for an in-place save, which replaces
/// an array in place so as not to need room for two, and must not keep the old one's blocks
/// while it writes the new one.
///
/// # Errors
///
/// The I/O error of a removal.
pub(crate) fn retire_now(tree: &Path) -> std::io::Result<()> {
    remove_file_if_there(&tree.join(METADATA_FILE))?;
    crate::sys::remove_tree(tree)
}

fn remove_file_if_there(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refuses a target whose `zarr.json` says it is a group: replacing it would remove every
/// node it holds (the array being saved may even come from one of them). A `zarr.json` that
/// cannot be read or parsed is left to the caller's other checks.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] for a group.
pub(crate) fn refuse_group(target: &Path) -> Result<()> {
    let Ok(file) = fs::File::open(target.join(METADATA_FILE)) else {
        return Ok(());
    };
    let mut text = Vec::new();
    // A group's metadata is small; a longer document is read no further than 16 MiB.
    if std::io::Read::read_to_end(&mut std::io::Read::take(file, 16 << 20), &mut text).is_err() {
        return Ok(());
    }
    let group = serde_json::from_slice::<serde_json::Value>(&text)
        .is_ok_and(|v| v.get("node_type").and_then(|t| t.as_str()) == Some("group"));
    if group {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the target is a Zarr group; ndstore replaces only arrays, never a group and the nodes it holds",
        )
        .with_path(target));
    }
    Ok(())
}

fn not_an_array(target: &Path) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "the target exists and is not a Zarr array directory; ndstore replaces only arrays",
    )
    .with_path(target)
}

/// What a replaced array's directory keeps, as core's `OutputFile` keeps a replaced file's:
/// mode, owner and extended attributes (POSIX ACLs among them).
struct Keep {
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: Vec<(std::ffi::CString, Vec<u8>)>,
}

impl Keep {
    /// What the array directory `target` (whose metadata is `meta`) must keep, after checking
    /// that the caller may replace it: a directory the caller could not write is refused unless
    /// the options allow it, and so is a directory that holds no `zarr.json` (ndstore replaces
    /// only arrays; one the caller cannot even look into is taken for one when allowed).
    fn of(target: &Path, meta: &fs::Metadata, options: &SaveOptions) -> Result<Keep> {
        let os = |what: &str, e: std::io::Error| Error::io(what.to_owned(), e).with_path(target);
        let writable = ndstore_core::__private::os::may_write(target)
            .map_err(|e| os("checking write permission on the array", e))?;
        if !writable && !options.replace_read_only {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this user may not write the array's directory, so replacing it would override its protection; SaveOptions::replace_read_only() replaces it anyway",
            )
            .with_path(target));
        }
        match fs::symlink_metadata(target.join(METADATA_FILE)) {
            Ok(m) if m.is_file() => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            _ => return Err(not_an_array(target)),
        }
        refuse_group(target)?;
        let xattrs = ndstore_core::__private::atomic::read_xattrs(target)?;
        Ok(Keep {
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            xattrs,
        })
    }

    /// Gives the new tree's root `dir` the old one's owner, mode and extended attributes,
    /// under core's replace policy: an owner that cannot be kept fails the save unless the
    /// options let it change; labels a security module manages are left to it.
    fn apply(&self, dir: &Path, options: &SaveOptions, target: &Path) -> Result<()> {
        let meta = fs::metadata(dir)
            .map_err(|e| Error::io("inspecting the temporary array", e).with_path(dir))?;
        let mut mode = self.mode;
        if (meta.uid() != self.uid || meta.gid() != self.gid)
            && let Err(e) = std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
        {
            if !options.allow_owner_change {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "cannot keep the owner of the array it replaces (uid {}, gid {}): {e}; SaveOptions::allow_owner_change() lets the owner change",
                        self.uid, self.gid
                    ),
                )
                .with_path(target));
            }
            mode &= !0o6000;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| {
            Error::io("cannot give the new array the old one's mode", e).with_path(dir)
        })?;
        let handle = fs::File::open(dir)
            .map_err(|e| Error::io("cannot open the temporary array", e).with_path(dir))?;
        ndstore_core::__private::atomic::keep_xattrs(&handle, &self.xattrs, target)
    }
}

/// Swaps the directory entries `a` and `b` atomically.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    ndstore_core::__private::os::exchange(a, b).map_err(|e| {
        Error::io(
            "cannot exchange the new array with the old one (renameat2)",
            e,
        )
        .with_path(b)
    })
}

/// Saves `array` at `target` as a Zarr array described by `meta` (whose shape and dtype must
/// be the array's), as `options` say: atomically (the default) by exchange, or in place by
/// removing the old tree and writing the new one there.
///
/// # Errors
///
/// The errors of [`Staged::new`], of writing the chunks and of publishing; a failed atomic
/// save leaves the old array.
pub fn save_with(
    target: &Path,
    array: &DynArray,
    meta: ZarrMeta,
    options: &SaveOptions,
) -> Result<()> {
    let start = vec![0; meta.shape.len()];
    if options.replace == Replace::InPlace {
        let target = &ndstore_core::__private::atomic::follow_links(target)?;
        refuse_group(target)?;
        if target.join(METADATA_FILE).is_file() {
            retire_now(target)
                .map_err(|e| Error::io("cannot remove the old array", e).with_path(target))?;
        }
        let created = ZarrArray::create(target, meta, options)?;
        created.write_region(&start, array)?;
        if options.durability == Durability::Synced {
            created.sync()?;
            ndstore_core::__private::atomic::sync_dir(
                ndstore_core::__private::atomic::parent_dir(target),
            )?;
        }
        return Ok(());
    }
    let staged = Staged::new(target, meta, options)?;
    staged.array()?.write_region(&start, array)?;
    staged.publish()
}

/// Saves `array` at `target` in object storage as a Zarr array described by `meta`: every
/// chunk is PUT (and acknowledged) first, then `zarr.json` is committed with a conditional PUT.
/// A new array appears whole or not at all; an existing array is overwritten chunk by chunk
/// (each chunk atomic) and its extra chunks removed after the commit.
///
/// # Errors
///
/// The errors of [`ZarrArray::create_object`] and of writing the chunks;
/// [`ErrorKind::Locked`] when another writer committed the array after this save started.
/// A failed save of a new array publishes nothing and removes the chunks it wrote.
#[cfg(feature = "s3")]
pub fn save_object(
    target: &crate::object::ObjectTarget,
    array: &DynArray,
    meta: ZarrMeta,
    options: &SaveOptions,
) -> Result<()> {
    let start = vec![0; meta.shape.len()];
    let created = ZarrArray::create_object(target, meta, options)?;
    let result = created
        .write_region(&start, array)
        .and_then(|()| created.write_metadata());
    if result.is_err() {
        created.abandon();
    }
    result
}

//! SE's replace-policy cases, the policy of careful tools (editors, `install`): a file the
//! caller could not open for writing is not replaced unless `replace_read_only`; an owner that
//! cannot be kept fails the save unless `allow_owner_change`; extended attributes and POSIX
//! ACLs survive an atomic replace; a link another user planted in a sticky, world-writable
//! directory is not followed (the kernel's `protected_symlinks` rule).
//!
//! The first two need another user: as root, the child that saves drops to `nobody` (uid and
//! gid 65534). Cases that cannot run here are returned as skipped, with the reason.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use ndstore_core::SaveOptions;

use crate::Ctx;
use crate::checks::{same_bits, versioned};
use crate::child::{self, Policy, Task};
use crate::protocol::{Outcome as Answer, failed_with};

/// The unprivileged user (and group) the children drop to: `nobody`.
const NOBODY: u32 = 65534;

/// The outcome of one policy case.
pub(super) enum Outcome {
    /// It ran; Err says what was wrong.
    Ran(Result<(), String>),
    /// It could not run here, for this reason.
    Skipped(String),
}

/// Every replace-policy case: (name, outcome).
pub(super) fn cases(ctx: &Ctx<'_>, root: bool) -> Vec<(String, Outcome)> {
    let as_nobody = |f: fn(&Ctx<'_>) -> Result<(), String>| {
        if root {
            Outcome::Ran(f(ctx))
        } else {
            Outcome::Skipped(
                "needs root, to make another user's files and to drop to nobody".to_owned(),
            )
        }
    };
    vec![
        (
            "a read-only (0444) file the caller owns is refused with PermissionDenied and kept, and replaced with replace_read_only".to_owned(),
            as_nobody(read_only_file),
        ),
        (
            "another user's 0644 file in a directory the caller may write is refused with PermissionDenied and kept, and replaced (owned by the caller) with replace_read_only and allow_owner_change".to_owned(),
            as_nobody(foreign_read_only_file),
        ),
        (
            "another user's file the caller may write is refused with PermissionDenied (the owner cannot be kept) and kept, and replaced (owned by the caller) with allow_owner_change".to_owned(),
            as_nobody(foreign_owner),
        ),
        (
            "a link another user planted in a sticky, world-writable directory is not followed by a privileged save; the directory owner's link is".to_owned(),
            as_nobody(planted_link),
        ),
        (
            "user extended attributes and the POSIX access ACL survive an atomic replace".to_owned(),
            xattrs_and_acl(ctx),
        ),
    ]
}

/// A directory `name` in the check's scratch directory, owned by `owner` and mode `mode`, on a
/// path `nobody` can traverse.
fn dir_for(ctx: &Ctx<'_>, name: &str, owner: u32, mode: u32) -> Result<PathBuf, String> {
    fs::set_permissions(ctx.dir.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let dir = ctx.dir.path().join(name);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(&dir, Some(owner), Some(owner)).map_err(|e| e.to_string())?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A file at `path` holding version 0, owned by `owner`, with `mode`; returns its bytes.
fn file_for(ctx: &Ctx<'_>, path: &Path, owner: u32, mode: u32) -> Result<Vec<u8>, String> {
    let backend = ctx.backend;
    backend
        .save(path, &versioned(backend, 0, 0), &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(path, Some(owner), Some(owner)).map_err(|e| e.to_string())?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    crate::checks::target_bytes(path)
}

/// Saves version 1 at `path` in a child running as `nobody`, with `policy`; returns what the
/// save returned.
fn save_as_nobody(path: &Path, policy: Policy) -> Result<Answer, String> {
    let mut cmd = child::command(&Task::SaveOnce {
        path: path.to_path_buf(),
        version: 1,
        policy,
    })?;
    cmd.uid(NOBODY).gid(NOBODY);
    let (status, saved) = child::save_outcome(cmd)?;
    saved.ok_or_else(|| {
        format!("the child said nothing ({status}); can nobody run the test binary?")
    })
}

/// The refused save left the file as it was: its bytes and its owner.
fn refused_and_kept(answer: &Answer, path: &Path, bytes: &[u8], owner: u32) -> Result<(), String> {
    if !failed_with(answer, "PermissionDenied") {
        return Err(format!(
            "the save answered {answer:?}, not PermissionDenied"
        ));
    }
    if crate::checks::target_bytes(path)? != bytes {
        return Err("the refused save changed the file".to_owned());
    }
    let uid = fs::metadata(path).map_err(|e| e.to_string())?.uid();
    if uid != owner {
        return Err(format!("the refused save changed the owner to {uid}"));
    }
    Ok(())
}

/// The save that opted in replaced the file: version 1, owned by `owner`, with `mode`.
fn replaced(
    ctx: &Ctx<'_>,
    answer: &Answer,
    path: &Path,
    owner: u32,
    mode: u32,
) -> Result<(), String> {
    if answer.is_err() {
        return Err(format!("the save that opted in answered {answer:?}"));
    }
    let backend = ctx.backend;
    let (_, loaded) = crate::checks::load(backend, path)?;
    if !same_bits(&loaded, &versioned(backend, 0, 1)) {
        return Err("the save that opted in did not replace the data".to_owned());
    }
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.uid() != owner {
        return Err(format!(
            "the replaced file is owned by {}, not {owner}",
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o7777 != mode {
        return Err(format!(
            "the replaced file has mode {:o}, not {mode:o}",
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

fn read_only_file(ctx: &Ctx<'_>) -> Result<(), String> {
    let opt_in = Policy {
        replace_read_only: true,
        ..Policy::default()
    };
    refused_unless_opted_in(ctx, "se-read-only", (NOBODY, 0o444), opt_in)
}

fn foreign_read_only_file(ctx: &Ctx<'_>) -> Result<(), String> {
    let opt_in = Policy {
        replace_read_only: true,
        allow_owner_change: true,
    };
    refused_unless_opted_in(ctx, "se-foreign-read-only", (0, 0o644), opt_in)
}

fn foreign_owner(ctx: &Ctx<'_>) -> Result<(), String> {
    let opt_in = Policy {
        allow_owner_change: true,
        ..Policy::default()
    };
    refused_unless_opted_in(ctx, "se-foreign-owner", (0, 0o666), opt_in)
}

/// In a directory `name` that `nobody` may write, a file owned by `owner` with `mode`: a save
/// by `nobody` without opt-ins is refused and leaves the file as it was; a save with `opt_in`
/// replaces it, and the new file belongs to `nobody` with the old mode.
fn refused_unless_opted_in(
    ctx: &Ctx<'_>,
    name: &str,
    (owner, mode): (u32, u32),
    opt_in: Policy,
) -> Result<(), String> {
    let dir = dir_for(ctx, name, NOBODY, 0o755)?;
    let path = dir.join(format!("x.{}", ctx.backend.extension()));
    let bytes = file_for(ctx, &path, owner, mode)?;
    let answer = save_as_nobody(&path, Policy::default())?;
    refused_and_kept(&answer, &path, &bytes, owner)?;
    let answer = save_as_nobody(&path, opt_in)?;
    replaced(ctx, &answer, &path, NOBODY, mode)
}

/// In a sticky, world-writable directory owned by root, a link owned by `nobody` to a file of
/// root's: a save by root through it fails and leaves the file; a link root owns is followed.
fn planted_link(ctx: &Ctx<'_>) -> Result<(), String> {
    let backend = ctx.backend;
    let ext = backend.extension();
    let sticky = dir_for(ctx, "se-sticky", 0, 0o1777)?;
    let victim = ctx.dir.path().join(format!("victim.{ext}"));
    let bytes = file_for(ctx, &victim, 0, 0o644)?;
    let planted = sticky.join(format!("planted.{ext}"));
    std::os::unix::fs::symlink(&victim, &planted).map_err(|e| e.to_string())?;
    std::os::unix::fs::lchown(&planted, Some(NOBODY), Some(NOBODY)).map_err(|e| e.to_string())?;
    match backend.save(&planted, &versioned(backend, 0, 1), &SaveOptions::default()) {
        Ok(()) => return Err("the save followed the planted link".to_owned()),
        Err(e) if e.kind() != ndstore_core::ErrorKind::PermissionDenied => {
            return Err(format!(
                "the save failed, but not with PermissionDenied: {e}"
            ));
        }
        Err(_) => {}
    }
    if crate::checks::target_bytes(&victim)? != bytes {
        return Err("the refused save changed the file the link points to".to_owned());
    }
    if !fs::symlink_metadata(&planted)
        .map_err(|e| e.to_string())?
        .file_type()
        .is_symlink()
    {
        return Err("the refused save replaced the link".to_owned());
    }
    let own = sticky.join(format!("own.{ext}"));
    std::os::unix::fs::symlink(&victim, &own).map_err(|e| e.to_string())?;
    backend
        .save(&own, &versioned(backend, 0, 1), &SaveOptions::default())
        .map_err(|e| format!("a link of the directory's owner was not followed: {e}"))?;
    let (_, loaded) = crate::checks::load(backend, &victim)?;
    if !same_bits(&loaded, &versioned(backend, 0, 1)) {
        return Err("the save through the owner's link did not reach its file".to_owned());
    }
    Ok(())
}

/// A `user.` extended attribute and an access ACL granting `nobody` read access, set on the
/// target, are there with the same values after an atomic replace.
fn xattrs_and_acl(ctx: &Ctx<'_>) -> Outcome {
    let backend = ctx.backend;
    let path = ctx.path("se-xattrs");
    let result = (|| -> Result<Option<String>, String> {
        backend
            .save(&path, &versioned(backend, 0, 0), &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        let user = "user.ndstore.conformance";
        if let Err(e) = set_xattr(&path, user, b"kept across a replace") {
            return Ok(Some(format!(
                "the scratch file system refuses user extended attributes: {e}"
            )));
        }
        if let Err(e) = set_xattr(&path, ACL_ACCESS, &acl_granting_read(NOBODY)) {
            return Ok(Some(format!(
                "the scratch file system refuses POSIX ACLs: {e}"
            )));
        }
        let before = [get_xattr(&path, user)?, get_xattr(&path, ACL_ACCESS)?];
        backend
            .save(&path, &versioned(backend, 0, 1), &SaveOptions::default())
            .map_err(|e| e.to_string())?;
        let after = [get_xattr(&path, user)?, get_xattr(&path, ACL_ACCESS)?];
        for ((name, b), a) in [user, ACL_ACCESS].iter().zip(&before).zip(&after) {
            if a != b {
                return Err(format!(
                    "{name} was {} before the replace and {} after",
                    shown(b.as_deref()),
                    shown(a.as_deref())
                ));
            }
        }
        Ok(None)
    })();
    match result {
        Ok(None) => Outcome::Ran(Ok(())),
        Ok(Some(reason)) => Outcome::Skipped(reason),
        Err(e) => Outcome::Ran(Err(e)),
    }
}

/// An attribute's value for a message: text when it is text, else its length.
fn shown(value: Option<&[u8]>) -> String {
    match value {
        None => "absent".to_owned(),
        Some(v) => match std::str::from_utf8(v) {
            Ok(text) => format!("{text:?}"),
            Err(_) => format!("{} bytes", v.len()),
        },
    }
}

/// The extended attribute that holds a file's access ACL.
const ACL_ACCESS: &str = "system.posix_acl_access";

/// An access ACL in the kernel's extended-attribute form: the owner may read and write, user
/// `uid` may read, the group and others may read.
fn acl_granting_read(uid: u32) -> Vec<u8> {
    const VERSION: u32 = 2;
    const UNDEFINED: u32 = u32::MAX;
    // (tag, permissions, id): USER_OBJ, USER, GROUP_OBJ, MASK, OTHER.
    let entries = [
        (0x01u16, 6u16, UNDEFINED),
        (0x02, 4, uid),
        (0x04, 4, UNDEFINED),
        (0x10, 4, UNDEFINED),
        (0x20, 4, UNDEFINED),
    ];
    let mut acl = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

fn c_string(text: &[u8]) -> Result<CString, String> {
    CString::new(text).map_err(|e| e.to_string())
}

/// Sets extended attribute `name` of `path` to `value`.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), String> {
    let (path, name) = (
        c_string(path.as_os_str().as_bytes())?,
        c_string(name.as_bytes())?,
    );
    // SAFETY: both strings are NUL-terminated and live across the call; the kernel reads
    // `value.len()` bytes from `value`, which is that long.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Extended attribute `name` of `path`; `None` when the file has none by that name.
fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    let (path, name) = (
        c_string(path.as_os_str().as_bytes())?,
        c_string(name.as_bytes())?,
    );
    let mut value = vec![0u8; 64 << 10];
    // SAFETY: both strings are NUL-terminated and live across the call; the kernel writes at
    // most `value.len()` bytes into `value`, which is that long.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if n >= 0 {
        value.truncate(n as usize);
        return Ok(Some(value));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENODATA) {
        Ok(None)
    } else {
        Err(format!("reading {}: {e}", name.to_string_lossy()))
    }
}

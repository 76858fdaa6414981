//! The replace policy of careful tools (editors, `install`), through `npy::save`: a file the
//! caller could not write is not replaced unless asked, an owner that cannot be kept fails the
//! save unless allowed to change, extended attributes and ACLs survive, a link planted in a
//! sticky world-writable directory is not followed, and no old file is held open across the
//! rename on file systems where that is not free (FUSE here; NFS, SMB and 9p alike).
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use ndarray::{Array1, array};
use ndstore_conformance::testing;
use ndstore_core::{ErrorKind, SaveOptions};
use ndstore_file::npy;

const NOBODY: u32 = 65534;
const CHILD_ENV: &str = "NDSTORE_REPLACE_POLICY_CHILD";

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn outcome(result: ndstore_core::Result<()>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err {:?}", e.kind()),
    }
}

/// Run as the unprivileged user: saves `target` twice, first with the default options, then
/// with the opt-in the case names.
#[test]
fn unprivileged_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (case, target) = spec.split_once(':').unwrap();
    let new = array![7.0f64, 8.0];
    println!(
        "CHILD default {}",
        outcome(npy::save_with(target, &new, &SaveOptions::new()))
    );
    let opt_in = match case {
        "read-only" => SaveOptions::new().replace_read_only(),
        _ => SaveOptions::new().allow_owner_change(),
    };
    println!(
        "CHILD opt-in {}",
        outcome(npy::save_with(target, &new, &opt_in))
    );
}

/// A directory the unprivileged user owns (or may write), holding `name`.
fn scratch(dir_owner: u32, dir_mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chown(dir.path(), dir_owner, dir_owner);
    chmod(dir.path(), dir_mode);
    dir
}

fn require_root() -> bool {
    if testing::is_root() {
        return true;
    }
    assert!(
        std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_none(),
        "these tests switch users and must run as root under cargo xtask test"
    );
    eprintln!("not root: the replace-policy tests that switch users were not run");
    false
}

#[test]
fn a_file_the_caller_cannot_write_is_not_replaced_unless_asked() {
    if !require_root() {
        return;
    }
    let dir = scratch(NOBODY, 0o755);
    let target = dir.path().join("frozen.npy");
    npy::save(&target, &array![1.0f64]).unwrap();
    chown(&target, NOBODY, NOBODY);
    chmod(&target, 0o444);
    let spec = format!("read-only:{}", target.display());
    let outcomes =
        testing::run_as_user("unprivileged_child", (CHILD_ENV, &spec), NOBODY, NOBODY).unwrap();
    // Refused, as np.save's open fails with EACCES; then replaced when asked, keeping 0444.
    assert_eq!(outcomes, "default err PermissionDenied; opt-in ok");
    let saved: Array1<f64> = npy::load(&target).unwrap();
    assert_eq!(saved, array![7.0, 8.0]);
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o444);
}

#[test]
fn another_users_file_keeps_its_owner_or_the_save_fails() {
    if !require_root() {
        return;
    }
    // A directory everyone may write (not sticky), and root's file that everyone may write:
    // the unprivileged user may replace it, but cannot give the new file to root.
    let dir = scratch(0, 0o777);
    let target = dir.path().join("shared.npy");
    npy::save(&target, &array![1.0f64]).unwrap();
    chmod(&target, 0o4666);
    let spec = format!("owner:{}", target.display());
    let outcomes =
        testing::run_as_user("unprivileged_child", (CHILD_ENV, &spec), NOBODY, NOBODY).unwrap();
    assert_eq!(outcomes, "default err PermissionDenied; opt-in ok");
    let meta = std::fs::metadata(&target).unwrap();
    // Allowed to change owner: it did, and the set-user-ID bit did not pass to the new owner.
    assert_eq!(meta.uid(), NOBODY);
    assert_eq!(meta.mode() & 0o7777, 0o666);
}

#[test]
fn root_replacing_another_users_file_keeps_owner_mode_and_set_id_bits() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("theirs.npy");
    npy::save(&target, &array![1.0f64]).unwrap();
    chown(&target, NOBODY, NOBODY);
    chmod(&target, 0o2640);
    npy::save(&target, &array![2.0f64]).unwrap();
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_eq!(meta.mode() & 0o7777, 0o2640);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and the kernel writes at most 4096 bytes.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and the kernel reads `value.len()` bytes.
    let rc = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// A POSIX access ACL in the kernel's xattr format: owner rw, user `uid` r, group r, mask r,
/// others nothing.
fn acl_granting_read_to(uid: u32) -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, uid),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

#[test]
fn extended_attributes_and_acls_survive_an_atomic_replace() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("tagged.npy");
    npy::save(&target, &array![1.0f64]).unwrap();
    set_xattr(&target, "user.origin", b"experiment 42");
    let acl = acl_granting_read_to(NOBODY);
    set_xattr(&target, "system.posix_acl_access", &acl);
    let mode_before = std::fs::metadata(&target).unwrap().mode() & 0o7777;
    npy::save(&target, &array![2.0f64]).unwrap();
    assert_eq!(
        xattr(&target, "user.origin").as_deref(),
        Some(&b"experiment 42"[..])
    );
    assert_eq!(
        xattr(&target, "system.posix_acl_access").as_deref(),
        Some(acl.as_slice())
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().mode() & 0o7777,
        mode_before
    );
}

#[test]
fn a_link_planted_by_another_user_in_a_sticky_directory_is_not_followed() {
    if !require_root() {
        return;
    }
    let shared = scratch(0, 0o1777);
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.npy");
    npy::save(&secret, &array![42.0f64]).unwrap();
    let before = std::fs::read(&secret).unwrap();
    // Another user plants a link where a privileged job saves its results.
    let planted = shared.path().join("results.npy");
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    chown(&planted, NOBODY, NOBODY);
    let err = npy::save(&planted, &array![0.0f64]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("protected_symlinks"), "{err}");
    assert_eq!(std::fs::read(&secret).unwrap(), before);
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
    // The caller's own link in the same directory is followed, as the kernel would.
    let own = shared.path().join("own.npy");
    std::os::unix::fs::symlink(&secret, &own).unwrap();
    npy::save(&own, &array![1.0f64]).unwrap();
    let followed: Array1<f64> = npy::load(&secret).unwrap();
    assert_eq!(followed, array![1.0]);
}

const HOLD_CHILD_ENV: &str = "NDSTORE_HOLD_CHILD";

/// Run traced: replaces an 8 MiB file (over the size from which old files are released off the
/// caller's thread).
#[test]
fn hold_child() {
    let Some(target) = std::env::var_os(HOLD_CHILD_ENV) else {
        return;
    };
    npy::save(Path::new(&target), &Array1::<f64>::zeros(1 << 20)).unwrap();
}

/// Counts the `O_PATH` opens of `target` during a large replace.
fn held_opens(target: &Path) -> usize {
    npy::save(target, &Array1::<f64>::ones(1 << 20)).unwrap();
    testing::count_opens(
        "hold_child",
        (HOLD_CHILD_ENV, &target.display().to_string()),
        &["O_PATH", "held.npy"],
    )
    .unwrap()
}

/// A FUSE mount (bindfs) of a scratch directory, unmounted on drop.
struct Fuse {
    mount: tempfile::TempDir,
    _source: tempfile::TempDir,
}

impl Fuse {
    fn mount() -> Option<Fuse> {
        let source = tempfile::tempdir().unwrap();
        let mount = tempfile::tempdir().unwrap();
        let status = Command::new("bindfs")
            .arg(source.path())
            .arg(mount.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(Fuse {
                mount,
                _source: source,
            }),
            other => {
                assert!(
                    std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_none(),
                    "cannot mount a FUSE file system with bindfs ({other:?}); cargo xtask setup installs bindfs"
                );
                eprintln!("no FUSE mount ({other:?}): the FUSE case was not run");
                None
            }
        }
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mount.path()).status();
    }
}

#[test]
fn old_files_are_held_across_the_rename_on_local_file_systems_only() {
    let local = tempfile::tempdir().unwrap();
    assert_eq!(held_opens(&local.path().join("held.npy")), 1);
    if !require_root() {
        return;
    }
    let Some(fuse) = Fuse::mount() else {
        return;
    };
    // On FUSE (as on NFS) an open file that loses its name is renamed aside by the client
    // (`.fuse_hidden*`, `.nfs*`), so the save releases it inline instead.
    assert_eq!(held_opens(&fuse.mount.path().join("held.npy")), 0);
}

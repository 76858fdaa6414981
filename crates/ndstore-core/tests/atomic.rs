//! The atomic-replace primitive's promises: permissions kept, rollback on drop and panic,
//! symbolic links followed, no temporary left behind, fsync failures poisoning the handle.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ndstore_core::__private::atomic::{
    DurableFile, list_temps, remove_stale_temps, remove_stale_temps_in,
};
use ndstore_core::{ErrorKind, OutputFile, SaveOptions, write_file};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn save_bytes(path: &Path, bytes: &[u8]) {
    write_file(path, &SaveOptions::default(), |f| {
        f.write_all(bytes)
            .map_err(|e| ndstore_core::Error::io("write", e))
    })
    .unwrap();
}

fn current_umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

#[test]
fn replace_keeps_the_targets_mode() {
    let dir = tempfile::tempdir().unwrap();
    for old_mode in [0o600, 0o644, 0o640, 0o755] {
        let target = dir.path().join(format!("m{old_mode:o}"));
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(old_mode)).unwrap();
        save_bytes(&target, b"new");
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(
            mode(&target),
            old_mode,
            "mode of a replaced {old_mode:o} file"
        );
    }
}

#[test]
fn new_file_gets_0666_less_umask() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fresh");
    save_bytes(&target, b"x");
    assert_eq!(mode(&target), 0o666 & !current_umask());
}

#[test]
fn dropped_output_rolls_back_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    fs::write(&target, b"old").unwrap();
    {
        let mut out = OutputFile::create(&target, &SaveOptions::default()).unwrap();
        out.file().unwrap().write_all(b"partial new data").unwrap();
        assert_eq!(list_temps(&target).unwrap().len(), 1);
    }
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn a_panicking_writer_never_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("p");
    fs::write(&target, b"old").unwrap();
    let t = target.clone();
    let result = std::thread::spawn(move || {
        let mut out = OutputFile::create(&t, &SaveOptions::default()).unwrap();
        out.file().unwrap().write_all(b"half").unwrap();
        panic!("writer thread dies mid-save");
    })
    .join();
    assert!(result.is_err(), "the thread must have panicked");
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn failed_write_closure_keeps_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("f");
    fs::write(&target, b"old").unwrap();
    let err = write_file(&target, &SaveOptions::default(), |f| {
        f.write_all(b"junk").unwrap();
        Err(ndstore_core::Error::new(
            ErrorKind::InvalidInput,
            "caller gave up",
        ))
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn symlink_target_is_replaced_and_the_link_kept() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.bin");
    let link = dir.path().join("link.bin");
    fs::write(&real, b"old").unwrap();
    std::os::unix::fs::symlink("real.bin", &link).unwrap();
    save_bytes(&link, b"new");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&real).unwrap(), b"new");
    // A dangling link creates the file it names.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink("created-through-link", &dangling).unwrap();
    save_bytes(&dangling, b"made");
    assert_eq!(
        fs::read(dir.path().join("created-through-link")).unwrap(),
        b"made"
    );
}

#[test]
fn directory_target_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = OutputFile::create(dir.path(), &SaveOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("directory"), "{err}");
}

/// A pipe (and so a device or a socket) is never replaced by a regular file: `ndstore cp a.npy
/// /dev/null` run as root replaced the machine's /dev/null before this was refused.
#[test]
fn a_target_that_is_not_a_regular_file_is_refused_and_kept() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.npy");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink("pipe.npy", &link).unwrap();
    for target in [&fifo, &link] {
        for options in [SaveOptions::default(), SaveOptions::new().in_place()] {
            let err = OutputFile::create(target, &options).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("not a regular file"), "{err}");
            assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }
    // Nothing else was made beside them: no temporary.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn path_only_writers_publish_through_finish() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("lib.h5");
    fs::write(&target, b"old").unwrap();
    let out = OutputFile::create(&target, &SaveOptions::default()).unwrap();
    assert_ne!(out.path(), target.as_path());
    assert_eq!(out.path().parent(), target.parent());
    // A library opening by name truncates and rewrites the temporary file.
    fs::write(out.path(), b"written by a library").unwrap();
    out.finish().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"written by a library");
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn in_place_rewrites_the_target_itself() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("i");
    fs::write(&target, b"old old old").unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&target).unwrap());
    write_file(&target, &SaveOptions::new().in_place(), |f| {
        f.write_all(b"new")
            .map_err(|e| ndstore_core::Error::io("write", e))
    })
    .unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(&target).unwrap()),
        ino
    );
}

#[test]
fn stale_temps_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.npy");
    fs::write(&target, b"old").unwrap();
    // A pid above the kernel's maximum is never alive.
    let stale = dir.path().join(".s.npy.4194999-0-0.ndstore-tmp");
    fs::write(&stale, b"left by a killed save").unwrap();
    let live = dir
        .path()
        .join(format!(".s.npy.{}-9-0.ndstore-tmp", std::process::id()));
    fs::write(&live, b"ours").unwrap();
    assert_eq!(remove_stale_temps(&target).unwrap(), 1);
    assert!(!stale.exists());
    assert!(live.exists(), "a live process's temporary must stay");
    assert_eq!(fs::read(&target).unwrap(), b"old");
}

/// Review finding: liveness by `kill(pid, 0)` is wrong across PID namespaces and NFS clients,
/// where the pid in a live writer's temporary names no process here. A writer holds a lock on
/// its temporary; a temporary whose lock is held survives every sweep whatever its name says.
#[test]
fn a_locked_temporary_survives_a_sweep_whatever_pid_its_name_carries() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.npy");
    fs::write(&target, b"old").unwrap();
    let mut out = OutputFile::create(&target, &SaveOptions::default()).unwrap();
    out.file().unwrap().write_all(b"new").unwrap();
    // The writer as another PID namespace sees it: a pid above the kernel's maximum, never
    // alive here.
    let ours = out.path().to_path_buf();
    let foreign = dir.path().join(".s.npy.4194998-0-0.ndstore-tmp");
    fs::rename(&ours, &foreign).unwrap();
    // A really stale one beside it, of another target too.
    let stale = dir.path().join(".s.npy.4194999-0-0.ndstore-tmp");
    fs::write(&stale, b"left by a killed save").unwrap();
    let other = dir.path().join(".o.h5.4194999-3-5f0.ndstore-tmp");
    fs::write(&other, b"left by another killed save").unwrap();
    let other_dir = dir.path().join(".o.zarr.4194999-1.ndstore-tmp");
    fs::create_dir(&other_dir).unwrap();
    fs::write(other_dir.join("zarr.json"), b"{}").unwrap();
    assert_eq!(remove_stale_temps(&target).unwrap(), 1);
    assert!(!stale.exists());
    assert!(foreign.exists(), "a live writer's temporary must stay");
    assert!(
        other.exists(),
        "another target's temporary is not this sweep's"
    );
    assert_eq!(remove_stale_temps_in(dir.path()).unwrap(), 2);
    assert!(!other.exists() && !other_dir.exists());
    assert!(foreign.exists(), "a live writer's temporary must stay");
    fs::rename(&foreign, &ours).unwrap();
    out.finish().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert!(list_temps(&target).unwrap().is_empty());
    // Files that only look like temporaries, and the target, are left alone.
    fs::write(dir.path().join(".hidden"), b"x").unwrap();
    fs::write(dir.path().join("plain.ndstore-tmp"), b"x").unwrap();
    assert_eq!(remove_stale_temps_in(dir.path()).unwrap(), 0);
    assert!(dir.path().join(".hidden").exists() && dir.path().join("plain.ndstore-tmp").exists());
}

#[test]
fn poisoned_handle_refuses_sync_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut file = DurableFile::new(fs::File::create(&path).unwrap(), &path);
    file.sync().unwrap();
    file.poison();
    assert_eq!(file.sync().unwrap_err().kind(), ErrorKind::Poisoned);
    assert_eq!(file.close().unwrap_err().kind(), ErrorKind::Poisoned);
}

#[test]
fn in_place_writes_are_refused_while_another_handle_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("locked");
    fs::write(&target, b"old").unwrap();
    let holder = fs::File::open(&target).unwrap();
    ndstore_core::lock(&holder, ndstore_core::Lock::Shared, &target).unwrap();
    let err = OutputFile::create(&target, &SaveOptions::new().in_place())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("locked"), "{err}");
    assert_eq!(
        fs::read(&target).unwrap(),
        b"old",
        "a refused writer must not truncate"
    );
    // Atomic replace never truncates the old inode, so it may proceed.
    save_bytes(&target, b"new");
    drop(holder);
    assert!(OutputFile::create(&target, &SaveOptions::new().in_place()).is_ok());
}

/// The unlinked `big-old` files this process still holds open, as /proc names them.
fn held_deleted_files() -> Vec<String> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.ends_with("(deleted)") && p.contains("big-old"))
        .collect()
}

#[test]
fn a_large_replaced_file_is_released_in_the_background_and_settle_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big-old");
    let big = ndstore_core::__private::release::DEFER_BYTES as usize + 4096;
    for round in 0..3u8 {
        let old = vec![round; big];
        fs::write(&target, &old).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let new = vec![round + 100; big / 2];
        save_bytes(&target, &new);
        assert_eq!(fs::read(&target).unwrap(), new);
        assert_eq!(mode(&target), 0o640);
        assert!(list_temps(&target).unwrap().is_empty());
        ndstore_core::__private::release::settle();
        assert_eq!(
            held_deleted_files(),
            Vec::<String>::new(),
            "the replaced file is still open after settle"
        );
    }
}

/// A child another thread forks holds the parent's open files, and their `flock`s, until it
/// closes them or execs: a save's temporary, still open at the fork, kept its liveness lock
/// through the rename into the target, and an in-place open right after the save failed as
/// `Locked` (seen once in CI, a test of one thread saving while another thread's HDF5 load
/// forked its reader). Such a lock is waited out for a moment; a lock a live handle holds is
/// still a conflict.
#[test]
fn a_lock_a_forked_child_holds_for_a_moment_is_waited_out_and_a_held_one_refused() {
    use ndstore_core::{Lock, lock};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let temp = fs::File::create(&path).unwrap();
    temp.try_lock_shared().unwrap();
    // SAFETY: the child only sleeps and leaves through _exit, both async-signal-safe, so it
    // touches no lock or state another thread of this test process held at the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: as above: the child sleeps 50 ms holding the inherited files, then ends.
        unsafe {
            libc::usleep(50_000);
            libc::_exit(0);
        }
    }
    drop(temp);
    let handle = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let locked = lock(&handle, Lock::Exclusive, &path);
    let mut status = 0;
    // SAFETY: waits for the child this test forked; `status` is a valid place for its status.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    locked.unwrap();
    // A handle that holds the file: refused once the moment has passed.
    let other = fs::File::open(&path).unwrap();
    let err = lock(&other, Lock::Shared, &path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
}

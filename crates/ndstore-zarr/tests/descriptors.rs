//! A replaced array's tree is removed holding its files open for ndstore-core's release thread
//! (their blocks freed there): these tests, in a process of their own because they change
//! process-wide state (the limit on open files, a fork), check that holding never costs a
//! save its cleanup and that a forked child never waits for a thread it does not have.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Mutex;

use ndstore_core::{Backend, DType, DTypeKind, DynArray, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;

/// The tests change process-wide state: one at a time.
static ALONE: Mutex<()> = Mutex::new(());

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Saves `rows` rows of 4 f64, one row per chunk, at `target`.
fn save_rows(target: &Path, rows: usize, value: f64) -> ndstore_core::Result<()> {
    let values = DynArray::from(ndarray::ArrayD::from_elem(
        ndarray::IxDyn(&[rows, 4]),
        value,
    ));
    let meta = ZarrMeta::new(DType::native(DTypeKind::F64), &[rows, 4], &[1, 4]).unwrap();
    ndstore_zarr::save_with(target, &values, meta, &SaveOptions::default())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_replace_short_of_descriptors_still_removes_the_whole_old_tree() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.zarr");
    save_rows(&target, 400, 1.5).unwrap();
    // The room for held descriptors is fixed under the generous limit; then the limit drops
    // to 150 spare descriptors, so holding runs out of descriptors half-way through the old
    // tree's 400 chunks.
    let room = ndstore_core::__private::release::held_room();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `struct rlimit` for the calls to read and write.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(read, 0);
    let saved = limit;
    limit.rlim_cur = open_descriptors() + 150;
    assert!(
        room > 150,
        "the room ({room}) must exceed the spare descriptors"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let result = save_rows(&target, 400, 2.5);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) }, 0);
    result.unwrap();
    ndstore_core::__private::release::settle();
    assert_eq!(entries(dir.path()), ["a.zarr"]);
    let (_, loaded) = ndstore_zarr::ZarrBackend.load(&target).unwrap();
    let want = DynArray::from(ndarray::ArrayD::from_elem(
        ndarray::IxDyn(&[400, 4]),
        2.5f64,
    ));
    assert!(loaded.bit_eq(&want));
}

#[test]
fn a_forked_child_replaces_arrays_without_the_parents_release_thread() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.zarr");
    // Two saves: the second retires a tree, so the release thread exists, then goes idle.
    save_rows(&target, 8, 1.0).unwrap();
    save_rows(&target, 8, 2.0).unwrap();
    ndstore_core::__private::release::settle();
    // SAFETY: the child only saves (its own threads) and leaves with `_exit`; the parent's
    // other thread, the idle release thread, holds no lock the child needs.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut ok = true;
        for value in [3.0, 4.0, 5.0] {
            ok &= save_rows(&target, 8, value).is_ok();
        }
        ndstore_core::__private::release::settle();
        // SAFETY: leaves the child at once, running no destructor of the parent's state.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    for _ in 0..200 {
        // SAFETY: `pid` is this process's child; `status` is room for its status.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{status}"
            );
            let (_, loaded) = ndstore_zarr::ZarrBackend.load(&target).unwrap();
            let want = DynArray::from(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[8, 4]), 5.0));
            assert!(loaded.bit_eq(&want));
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kills this process's own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    panic!("the forked child hung replacing an array (10 s)");
}

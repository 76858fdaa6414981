//! `abort` on every backend's writers and in-place handles: the target keeps its old content
//! (atomic) or goes back to its last flush (in place), and a rollback that fails is an `Err`,
//! not only a log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndstore::{ArrayWriter, Backend, DType, DTypeKind, DynArray, SaveOptions};

/// Every backend of this build, the mapping one included.
fn all_backends() -> Vec<Box<dyn Backend>> {
    #[allow(unused_mut)]
    let mut backends = ndstore::backends();
    #[cfg(feature = "mmap")]
    // SAFETY: the files mapped here are made by this test in its own temporary directory, and
    // no other process touches them.
    backends.push(Box::new(unsafe { ndstore::mmap::MmapBackend::new() }));
    backends
}

/// `rows` rows of three values, every value `value`.
fn rows(count: usize, value: f64) -> DynArray {
    DynArray::from(ArrayD::from_elem(IxDyn(&[count, 3]), value))
}

fn target(dir: &Path, backend: &dyn Backend, name: &str) -> PathBuf {
    dir.join(format!("{name}.{}", backend.extension()))
}

fn loaded(backend: &dyn Backend, path: &Path) -> DynArray {
    backend.load(path).unwrap().1
}

/// Runs `case` on every backend with a streaming writer, each with its own target named
/// `name`; at least two backends must have one.
fn each_streaming_backend(name: &str, case: impl Fn(&dyn Backend, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let mut tested = 0;
    for backend in all_backends() {
        if !backend.capabilities().streaming_append {
            continue;
        }
        case(
            backend.as_ref(),
            &target(dir.path(), backend.as_ref(), name),
        );
        tested += 1;
    }
    assert!(tested >= 2, "only {tested} backends have streaming writers");
}

/// A writer of rows of three f64 values.
fn writer(backend: &dyn Backend, path: &Path, options: &SaveOptions) -> Box<dyn ArrayWriter> {
    let dtype = DType::native(DTypeKind::F64);
    backend.writer(path, dtype, &[3], options).unwrap()
}

#[test]
fn an_aborted_atomic_writer_leaves_the_old_file_and_no_temporary() {
    each_streaming_backend("atomic", |backend, path| {
        backend
            .save(path, &rows(2, 1.0), &SaveOptions::default())
            .unwrap();
        let mut writer = writer(backend, path, &SaveOptions::default());
        writer.append(&rows(4, 2.0)).unwrap();
        writer.flush().unwrap();
        writer.append(&rows(1, 3.0)).unwrap();
        writer.abort().unwrap();
        assert!(
            loaded(backend, path).bit_eq(&rows(2, 1.0)),
            "{}",
            backend.name()
        );
        assert!(
            ndstore::list_temps(path).unwrap().is_empty(),
            "{}",
            backend.name()
        );
    });
}

#[test]
fn an_aborted_in_place_writer_is_cut_back_to_its_last_flush() {
    each_streaming_backend("in-place", |backend, path| {
        let mut writer = writer(backend, path, &SaveOptions::new().in_place());
        writer.append(&rows(2, 1.0)).unwrap();
        writer.flush().unwrap();
        writer.append(&rows(3, 2.0)).unwrap();
        writer.abort().unwrap();
        assert!(
            loaded(backend, path).bit_eq(&rows(2, 1.0)),
            "{}",
            backend.name()
        );
    });
}

/// Puts a directory where a writer's temporary file is (a file where a backend whose arrays
/// are directory trees has its temporary directory), so removing the temporary fails.
fn block_the_temporary(path: &Path) -> PathBuf {
    let temps = ndstore::list_temps(path).unwrap();
    assert_eq!(temps.len(), 1, "{temps:?}");
    if temps[0].is_dir() {
        std::fs::remove_dir_all(&temps[0]).unwrap();
        std::fs::write(&temps[0], b"").unwrap();
    } else {
        std::fs::remove_file(&temps[0]).unwrap();
        std::fs::create_dir(&temps[0]).unwrap();
    }
    temps[0].clone()
}

#[test]
fn a_writer_whose_rollback_fails_says_so() {
    each_streaming_backend("blocked", |backend, path| {
        backend
            .save(path, &rows(2, 1.0), &SaveOptions::default())
            .unwrap();
        let mut writer = writer(backend, path, &SaveOptions::default());
        writer.append(&rows(4, 2.0)).unwrap();
        let blocker = block_the_temporary(path);
        let err = writer.abort().unwrap_err();
        assert!(
            err.to_string().contains("temporary"),
            "{}: {err}",
            backend.name()
        );
        assert!(
            loaded(backend, path).bit_eq(&rows(2, 1.0)),
            "{}",
            backend.name()
        );
        if blocker.is_dir() {
            std::fs::remove_dir(blocker).unwrap();
        } else {
            std::fs::remove_file(blocker).unwrap();
        }
    });
}

#[test]
fn an_aborted_in_place_handle_keeps_what_it_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut tested = 0;
    for backend in all_backends() {
        if !backend.capabilities().in_place_update() {
            continue;
        }
        let path = target(dir.path(), backend.as_ref(), "handle");
        backend
            .save(&path, &rows(2, 1.0), &SaveOptions::default())
            .unwrap();
        let mut handle = backend
            .open_in_place(&path, &SaveOptions::default())
            .unwrap();
        handle.write_all(&rows(2, 5.0)).unwrap();
        handle.flush().unwrap();
        handle.abort().unwrap();
        assert!(
            loaded(backend.as_ref(), &path).bit_eq(&rows(2, 5.0)),
            "{}",
            backend.name()
        );
        // Released: a new handle gets the lock.
        backend
            .open_in_place(&path, &SaveOptions::default())
            .unwrap()
            .close()
            .unwrap();
        tested += 1;
    }
    assert!(tested >= 1, "no backend has in-place handles");
}

//! Writers that fail half-way or are dropped during a panic: a writer never acknowledges rows
//! that are not in the file, an atomic target keeps its old content, and an in-place target is
//! left exactly as its last flush published it — never as a dependency's `Drop` finished it.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ndarray::{Array2, array};
use ndstore_core::{
    ByteOrder, Commit, DType, DTypeKind, Durable, DynArray, ErrorKind, SaveOptions, list_temps,
};
use ndstore_file::npz::{Compression, NpzReader, NpzWriter};
use ndstore_file::{NpyWriter, npy};

const CHILD_ENV: &str = "NDSTORE_FSIZE_CHILD";

/// The file-size limit of the child: over it, writes fail with EFBIG.
const FSIZE_LIMIT: u64 = 256 << 10;

fn rows(n: usize, value: f64) -> Array2<f64> {
    Array2::from_elem((n, 4), value)
}

fn options(in_place: bool) -> SaveOptions {
    if in_place {
        SaveOptions::new().in_place()
    } else {
        SaveOptions::new()
    }
}

/// Run in a child limited to `FSIZE_LIMIT` bytes per file: append rows that fit, flush, append
/// rows that cross the limit, then keep using the writer, printing each outcome.
#[test]
fn fsize_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (mode, target) = spec.split_once(':').unwrap();
    let mut writer = NpyWriter::create(
        target,
        DType::native(DTypeKind::F64),
        &[4],
        &options(mode == "in-place"),
    )
    .unwrap();
    writer.append(&rows(1000, 1.0)).unwrap();
    writer.flush().unwrap();
    let outcome = |r: ndstore_core::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err {:?}", e.kind()),
    };
    // 1.5 MiB: more than the writer's buffer, so the append itself writes and hits the limit.
    println!(
        "CHILD big {}",
        outcome(writer.append(&rows(48 * 1024, 2.0)))
    );
    println!("CHILD after {}", outcome(writer.append(&rows(10, 3.0))));
    println!("CHILD flush {}", outcome(writer.flush()));
    println!("CHILD commit {}", outcome(writer.commit()));
}

fn run_fsize_child(mode: &str, target: &Path) -> String {
    let spec = format!("{mode}:{}", target.display());
    ndstore_conformance::testing::run_with_file_size_limit(
        "fsize_child",
        (CHILD_ENV, &spec),
        FSIZE_LIMIT,
    )
    .unwrap()
}

#[test]
fn a_failed_append_poisons_an_atomic_writer_and_the_target_keeps_its_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    let old = array![[9.0f64, 9.0, 9.0, 9.0]];
    npy::save(&target, &old).unwrap();
    let outcomes = run_fsize_child("atomic", &target);
    assert_eq!(
        outcomes,
        "big err Io; after err Poisoned; flush err Poisoned; commit err Poisoned"
    );
    let kept: Array2<f64> = npy::load(&target).unwrap();
    assert_eq!(kept, old);
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn a_failed_append_poisons_an_in_place_writer_and_cuts_the_file_back_to_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    let outcomes = run_fsize_child("in-place", &target);
    assert_eq!(
        outcomes,
        "big err Io; after err Poisoned; flush err Poisoned; commit err Poisoned"
    );
    // Exactly the flushed rows: no partial rows of 2.0, no rows of 3.0.
    let flushed: Array2<f64> = npy::load(&target).unwrap();
    assert_eq!(flushed, rows(1000, 1.0));
}

/// Appends `big` rows after a flush of 4 rows, then panics; the writer drops while unwinding.
fn panic_after_a_flush(target: &Path, save: SaveOptions, big: usize) {
    let target = target.to_path_buf();
    let result = std::thread::spawn(move || {
        let mut writer =
            NpyWriter::create(&target, DType::native(DTypeKind::F64), &[4], &save).unwrap();
        writer.append(&rows(4, 1.0)).unwrap();
        writer.flush().unwrap();
        writer.append(&rows(big, 2.0)).unwrap();
        panic!("the caller fails before commit");
    })
    .join();
    assert!(result.is_err(), "the thread was meant to panic");
}

#[test]
fn an_in_place_writer_dropped_in_a_panic_keeps_exactly_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    // 3 MiB after the flush: more than the writer's 1 MiB buffer, so most of it reached the
    // file before the panic.
    panic_after_a_flush(&target, SaveOptions::new().in_place(), 96 * 1024);
    let kept: Array2<f64> = npy::load(&target).unwrap();
    assert_eq!(kept, rows(4, 1.0));
    // Exactly: not even bytes after the flushed rows, which readers would ignore.
    let reference = dir.path().join("reference.npy");
    npy::save(&reference, &rows(4, 1.0)).unwrap();
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

#[test]
fn an_atomic_writer_dropped_in_a_panic_leaves_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    let old = array![[9.0f64, 9.0, 9.0, 9.0]];
    npy::save(&target, &old).unwrap();
    panic_after_a_flush(&target, SaveOptions::new(), 96 * 1024);
    let kept: Array2<f64> = npy::load(&target).unwrap();
    assert_eq!(kept, old);
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn an_in_place_writer_dropped_without_a_panic_publishes_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    {
        let mut writer = NpyWriter::create(
            &target,
            DType::native(DTypeKind::F64),
            &[4],
            &SaveOptions::new().in_place(),
        )
        .unwrap();
        writer.append(&rows(3, 5.0)).unwrap();
    }
    let published: Array2<f64> = npy::load(&target).unwrap();
    assert_eq!(published, rows(3, 5.0));
}

#[test]
fn a_writer_byte_order_given_twice_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npy");
    let big = DType::new(DTypeKind::F64, ByteOrder::Big);
    let err = NpyWriter::create(
        &target,
        big,
        &[4],
        &SaveOptions::new().byte_order(ByteOrder::Little),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("t.npy"), "{err}");
    // Given once, in either place that agrees, the file holds big-endian values.
    let mut writer = NpyWriter::create(
        &target,
        big,
        &[4],
        &SaveOptions::new().byte_order(ByteOrder::Big),
    )
    .unwrap();
    writer.append(&rows(2, 1.5)).unwrap();
    writer.commit().unwrap();
    assert_eq!(
        npy::read_meta(&target).unwrap().dtype.byte_order,
        ByteOrder::Big
    );
}

fn npz_panic(target: &Path, save: SaveOptions) {
    let target = target.to_path_buf();
    let result = std::thread::spawn(move || {
        let mut writer = NpzWriter::create(&target, &save, Compression::Deflated).unwrap();
        writer.add("a", &rows(100, 1.0)).unwrap();
        writer.add("b", &rows(100, 2.0)).unwrap();
        panic!("the caller fails before commit");
    })
    .join();
    assert!(result.is_err(), "the thread was meant to panic");
}

#[test]
fn an_in_place_npz_writer_dropped_in_a_panic_publishes_no_partial_archive() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npz");
    npz_panic(&target, SaveOptions::new().in_place());
    // Not an archive that looks complete: zip's own Drop must not have finalized it.
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 0);
    assert!(NpzReader::open(&target).is_err());
}

#[test]
fn an_atomic_npz_writer_dropped_in_a_panic_leaves_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npz");
    let old = DynArray::from(rows(2, 9.0).into_dyn());
    ndstore_file::npz::save_npz(
        &target,
        &[("old", &old)],
        Compression::Stored,
        &SaveOptions::new(),
    )
    .unwrap();
    npz_panic(&target, SaveOptions::new());
    let mut reader = NpzReader::open(&target).unwrap();
    assert_eq!(reader.names(), ["old"]);
    assert!(reader.load_dyn("old").unwrap().1.bit_eq(&old));
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn an_in_place_npz_writer_dropped_without_a_panic_finishes_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.npz");
    {
        let mut writer =
            NpzWriter::create(&target, &SaveOptions::new().in_place(), Compression::Stored)
                .unwrap();
        writer.add("a", &rows(3, 1.0)).unwrap();
    }
    let mut reader = NpzReader::open(&target).unwrap();
    assert_eq!(reader.names(), ["a"]);
    let (_, a) = reader.load_dyn("a").unwrap();
    assert!(a.bit_eq(&DynArray::from(rows(3, 1.0).into_dyn())));
}

//! A text writer that fails half-way or is dropped during a panic: it never acknowledges rows
//! that are not in the file, and an in-place file is left exactly as its last flush wrote it.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ndarray::Array2;
use ndstore_core::{ByteOrder, Commit, DType, DTypeKind, Durable, ErrorKind, SaveOptions};
use ndstore_text::{TextOptions, TextWriter};

const CHILD_ENV: &str = "NDSTORE_TEXT_FSIZE_CHILD";

fn rows(n: usize, value: f64) -> Array2<f64> {
    Array2::from_elem((n, 4), value)
}

fn writer(path: &Path, save: &SaveOptions) -> TextWriter {
    TextWriter::create(
        path,
        DType::native(DTypeKind::F64),
        &[4],
        &TextOptions::default(),
        save,
    )
    .unwrap()
}

fn load(path: &Path) -> Array2<f64> {
    ndstore_text::load(path, &TextOptions::default()).unwrap()
}

/// Run in a child whose files may not grow past 256 KiB: rows that fit, a flush, rows that
/// cross the limit, then more use of the writer.
#[test]
fn fsize_child() {
    let Some(target) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut writer = writer(Path::new(&target), &SaveOptions::new().in_place());
    writer.append(&rows(1000, 1.5)).unwrap();
    writer.flush().unwrap();
    let outcome = |r: ndstore_core::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err {:?}", e.kind()),
    };
    // About 1.4 MiB of text: more than the writer's buffer.
    println!(
        "CHILD big {}",
        outcome(writer.append(&rows(96 * 1024, 2.5)))
    );
    println!("CHILD after {}", outcome(writer.append(&rows(10, 3.5))));
    println!("CHILD commit {}", outcome(writer.commit()));
}

#[test]
fn a_failed_append_poisons_the_writer_and_the_file_keeps_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.csv");
    let outcomes = ndstore_conformance::testing::run_with_file_size_limit(
        "fsize_child",
        (CHILD_ENV, &target.display().to_string()),
        256 << 10,
    )
    .unwrap();
    assert_eq!(
        outcomes,
        "big err Io; after err Poisoned; commit err Poisoned"
    );
    assert_eq!(load(&target), rows(1000, 1.5));
}

#[test]
fn an_in_place_writer_dropped_in_a_panic_keeps_exactly_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.csv");
    let in_thread = target.clone();
    let result = std::thread::spawn(move || {
        let mut writer = writer(&in_thread, &SaveOptions::new().in_place());
        writer.append(&rows(4, 1.5)).unwrap();
        writer.flush().unwrap();
        // More than the writer's 1 MiB buffer: most of it reached the file before the panic.
        writer.append(&rows(96 * 1024, 2.5)).unwrap();
        panic!("the caller fails before commit");
    })
    .join();
    assert!(result.is_err());
    assert_eq!(load(&target), rows(4, 1.5));
    // Byte for byte what a writer that stopped after the flush leaves.
    let reference = dir.path().join("reference.csv");
    let mut clean = writer(&reference, &SaveOptions::new().in_place());
    clean.append(&rows(4, 1.5)).unwrap();
    clean.flush().unwrap();
    drop(clean);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

#[test]
fn a_writer_byte_order_given_twice_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let err = TextWriter::create(
        dir.path().join("t.csv"),
        DType::new(DTypeKind::F64, ByteOrder::Big),
        &[4],
        &TextOptions::default(),
        &SaveOptions::new().byte_order(ByteOrder::Little),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

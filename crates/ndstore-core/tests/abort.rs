//! `abort` on the output file and the streaming writer's shell: the rollback's outcome is
//! returned, so a failed rollback is an `Err` and not only a log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ndstore_core::__private::stream::{StreamFormat, StreamWriter};
use ndstore_core::{Error, ErrorKind, OutputFile, Result, SaveOptions, list_temps};

#[test]
fn an_aborted_atomic_output_removes_its_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.bin");
    std::fs::write(&target, b"old").unwrap();
    let mut out = OutputFile::create(&target, &SaveOptions::default()).unwrap();
    out.file().unwrap().write_all(b"new bytes").unwrap();
    out.abort().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    assert!(list_temps(&target).unwrap().is_empty());
}

#[test]
fn an_abort_that_cannot_remove_the_temporary_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.bin");
    std::fs::write(&target, b"old").unwrap();
    let out = OutputFile::create(&target, &SaveOptions::default()).unwrap();
    // A directory where the temporary was: removing it as a file fails.
    std::fs::remove_file(out.path()).unwrap();
    std::fs::create_dir(out.path()).unwrap();
    let blocker = out.path().to_path_buf();
    let err = out.abort().unwrap_err();
    assert!(err.message().contains("temporary"), "{err}");
    assert_eq!(err.path(), Some(blocker.as_path()));
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}

/// A format of one byte per row after a 4-byte row count, whose header rewrite fails once
/// `fail` is set.
struct Counted {
    fail: Arc<AtomicBool>,
}

impl StreamFormat for Counted {
    fn complete_header(&mut self, file: &File, rows: usize) -> Result<()> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Io, "the header cannot be rewritten"));
        }
        file.write_all_at(&(rows as u32).to_le_bytes(), 0)
            .map_err(|e| Error::io("rewriting the header", e))
    }
}

fn write_rows(writer: &mut StreamWriter<Counted>, rows: &[u8]) {
    writer
        .append(rows.len(), |out, _| {
            out.write_all(rows).map_err(|e| Error::io("appending", e))
        })
        .unwrap();
}

fn in_place_writer(target: &Path, fail_after_flush: bool) -> StreamWriter<Counted> {
    let fail = Arc::new(AtomicBool::new(false));
    let format = Counted {
        fail: Arc::clone(&fail),
    };
    let mut writer =
        StreamWriter::create(target, &SaveOptions::new().in_place(), &[0; 4], format).unwrap();
    write_rows(&mut writer, b"ab");
    ndstore_core::Durable::flush(&mut writer).unwrap();
    write_rows(&mut writer, b"cde");
    if fail_after_flush {
        // Only the header rewrite of the rollback can fail now: nothing else calls it.
        fail.store(true, Ordering::Relaxed);
    }
    writer
}

#[test]
fn an_aborted_in_place_stream_is_cut_back_to_its_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rows.bin");
    in_place_writer(&target, false).abort().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"\x02\0\0\0ab");
}

#[test]
fn an_in_place_stream_whose_cut_back_fails_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rows.bin");
    let err = in_place_writer(&target, true).abort().unwrap_err();
    assert!(err.message().contains("header"), "{err}");
    assert_eq!(err.path(), Some(target.as_path()));
}

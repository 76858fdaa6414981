//! The shell every streaming writer shares: an `OutputFile`, a buffer in front of it, the
//! durability vocabulary, and the drop policy. A format adds only how its header is completed
//! (`StreamFormat`) and how rows become bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::atomic::OutputFile;
use crate::dtype::DTypeKind;
use crate::durability::{Commit, Durable, Replace, SaveOptions};
use crate::error::{Error, ErrorKind, Result};

/// What a streaming writer's format must do beyond appending bytes.
pub trait StreamFormat: Send {
    /// Rewrites the file's header (its row count, say) so that the first `rows` rows written
    /// are a complete file. Called on flush, sync and commit after the buffer was written, and
    /// with the last flushed count when a failed or panicking in-place writer is cut back.
    ///
    /// # Errors
    ///
    /// The I/O error of rewriting the header; the writer is poisoned by it.
    fn complete_header(&mut self, file: &File, rows: usize) -> Result<()>;

    /// Bytes written once, just before commit (a footer). None by default.
    fn footer(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// Checks rows before a streaming writer appends them: element type `got` must be the writer's
/// `expected`, and `shape` must be `[n, row_shape...]`. The error names `path`.
///
/// # Errors
///
/// `ErrorKind::TypeMismatch` for rows of another element type, `ErrorKind::InvalidInput` for rows
/// of another shape; both name `path`.
pub fn check_rows(
    expected: DTypeKind,
    row_shape: &[usize],
    got: DTypeKind,
    shape: &[usize],
    path: &Path,
) -> Result<()> {
    if got != expected {
        return Err(crate::array::type_mismatch(expected, got).with_path(path));
    }
    if shape.is_empty() || shape[1..] != *row_shape {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("rows of shape {shape:?} do not fit [n, {row_shape:?}]"),
        )
        .with_path(path));
    }
    Ok(())
}

/// A file written row by row and published by `commit`.
///
/// Atomic (the default): nothing appears at the target before `commit`; dropped uncommitted, the
/// temporary file is removed and the target keeps its old content.
///
/// In place: the target is truncated when the writer is created and at once holds a complete
/// file of 0 rows; each `flush` makes the rows so far a complete file. Dropped uncommitted, the
/// writer flushes (errors logged) — unless its thread is panicking, when the file is cut back
/// to exactly its last flushed state, however much was appended since.
///
/// A failed write, flush or sync poisons the writer: that call and every later one, `commit`
/// included, return `Err` ([`ErrorKind::Poisoned`] after the first), so a writer never
/// acknowledges rows that are not in the file. An atomic writer's target keeps its old content;
/// an in-place target is cut back to its last flushed state as soon as the failure is seen.
pub struct StreamWriter<F: StreamFormat> {
    out: Option<OutputFile>,
    data: Option<BufWriter<File>>,
    replace: Replace,
    format: F,
    /// Rows appended, and bytes handed to `data`, so far.
    rows: usize,
    written: u64,
    /// Rows and file length at the last successful flush: what an in-place target is cut back
    /// to when the writer fails or is dropped during a panic.
    flushed_rows: usize,
    flushed_len: u64,
    /// Set by the first failed write, flush or sync.
    failed: bool,
    /// A failure to cut an in-place target back, kept for [`StreamWriter::abort`] to report.
    rollback_error: Option<Error>,
}

fn finished() -> Error {
    Error::new(ErrorKind::InvalidInput, "the writer is finished")
}

/// Counts the bytes that reach the buffer.
struct Counting<'a> {
    inner: &'a mut BufWriter<File>,
    count: &'a mut u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.count += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // BufWriter's write_all copies small writes without a system call; count what it took.
        self.inner.write_all(buf)?;
        *self.count += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<F: StreamFormat> StreamWriter<F> {
    /// Starts a file at `path`, writing `preamble` (the header) first. In place, the preamble
    /// is written out at once, so the truncated target is a complete file of 0 rows.
    ///
    /// # Errors
    ///
    /// The errors of [`OutputFile::create`], and I/O errors writing the preamble.
    pub fn create(
        path: &Path,
        options: &SaveOptions,
        preamble: &[u8],
        format: F,
    ) -> Result<StreamWriter<F>> {
        let mut out = OutputFile::create(path, options)?;
        let file = out
            .file()?
            .try_clone()
            .map_err(|e| Error::io("duplicating a descriptor", e).with_path(path))?;
        let mut data = BufWriter::with_capacity(1 << 20, file);
        data.write_all(preamble)
            .map_err(|e| Error::io("writing the header", e).with_path(path))?;
        let mut writer = StreamWriter {
            out: Some(out),
            data: Some(data),
            replace: options.replace,
            format,
            rows: 0,
            written: preamble.len() as u64,
            flushed_rows: 0,
            flushed_len: 0,
            failed: false,
            rollback_error: None,
        };
        if writer.replace == Replace::InPlace {
            writer.write_out()?;
        }
        Ok(writer)
    }

    /// The file being written (symbolic links resolved).
    pub fn target(&self) -> &Path {
        self.out.as_ref().map_or(Path::new(""), OutputFile::target)
    }

    /// The format's state.
    pub fn format(&self) -> &F {
        &self.format
    }

    /// The rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Refuses to go on after a failure, or once finished.
    fn check(&self) -> Result<()> {
        if self.failed {
            return Err(writer_poisoned_error(self.target()));
        }
        if self.data.is_none() {
            return Err(finished());
        }
        Ok(())
    }

    /// Appends `rows` rows whose bytes `write` writes. When `write` fails, the writer is
    /// poisoned (an in-place target is cut back to its last flushed state) and the error is
    /// returned; the row count advances only on success.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poisoned`] after an earlier failure; otherwise `write`'s error, with the
    /// target's path.
    pub fn append(
        &mut self,
        rows: usize,
        write: impl FnOnce(&mut dyn Write, &F) -> Result<()>,
    ) -> Result<()> {
        self.check()?;
        let target = self.target().to_path_buf();
        let data = self.data.as_mut().ok_or_else(finished)?;
        let mut counting = Counting {
            inner: data,
            count: &mut self.written,
        };
        match write(&mut counting, &self.format) {
            Ok(()) => {
                self.rows += rows;
                Ok(())
            }
            Err(e) => {
                self.fail();
                Err(e.with_path(&target))
            }
        }
    }

    /// Writes the buffer out and completes the header; a failure poisons the writer.
    fn write_out(&mut self) -> Result<()> {
        self.check()?;
        let target = self.target().to_path_buf();
        let data = self.data.as_mut().ok_or_else(finished)?;
        let result = data
            .flush()
            .map_err(|e| Error::io("flush failed", e))
            .and_then(|()| self.format.complete_header(data.get_ref(), self.rows));
        match result {
            Ok(()) => {
                self.flushed_rows = self.rows;
                self.flushed_len = self.written;
                Ok(())
            }
            Err(e) => {
                self.fail();
                Err(e.with_path(&target))
            }
        }
    }

    /// Poisons the writer, discards what is buffered, and cuts an in-place target back to its
    /// last flushed state.
    fn fail(&mut self) {
        self.failed = true;
        self.cut_back_logged();
    }

    /// [`StreamWriter::cut_back`] on a path that already reports (or cannot report) an error:
    /// a failure is logged, and kept for `abort` to return.
    fn cut_back_logged(&mut self) {
        if let Err(e) = self.cut_back() {
            log::error!(
                "{}: could not restore the last flushed state of an abandoned writer: {e}",
                self.target().display()
            );
            self.rollback_error = Some(e);
        }
    }

    /// Discards the buffer without writing it and, in place, truncates the target to its last
    /// flushed length and rewrites the header for the rows it holds.
    fn cut_back(&mut self) -> Result<()> {
        let Some(data) = self.data.take() else {
            return Ok(());
        };
        // `into_parts` hands back the file without writing the buffer (BufWriter's own drop
        // would write it).
        let (file, _discarded) = data.into_parts();
        if self.replace != Replace::InPlace {
            return Ok(());
        }
        file.set_len(self.flushed_len)
            .map_err(|e| Error::io("cutting the file back to its last flush", e))
            .and_then(|()| self.format.complete_header(&file, self.flushed_rows))
            .map_err(|e| e.with_path(self.target()))
    }

    /// Abandons the writer and reports whether the rollback worked, where dropping it can only
    /// log: atomic, the temporary file is removed and the target keeps its old content; in
    /// place, the target is cut back to exactly its last flushed state (the rows appended since
    /// are gone) and closed.
    ///
    /// # Errors
    ///
    /// The error of cutting an in-place target back (now, or earlier when a failed write cut
    /// it), of closing it, or of removing an atomic writer's temporary file.
    pub fn abort(mut self) -> Result<()> {
        let cut = self.cut_back();
        let earlier = self.rollback_error.take().map_or(Ok(()), Err);
        let released = self.out.take().map_or(Ok(()), OutputFile::abort);
        earlier.and(cut).and(released)
    }
}

impl<F: StreamFormat> Durable for StreamWriter<F> {
    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        let result = self.out.as_mut().ok_or_else(finished)?.sync();
        if result.is_err() {
            // The file is poisoned already; the writer refuses to go on too.
            self.failed = true;
        }
        result
    }
}

impl<F: StreamFormat> Commit for StreamWriter<F> {
    fn commit(mut self) -> Result<()> {
        self.check()?;
        let footer = self.format.footer();
        if !footer.is_empty() {
            self.append(0, |out, _| {
                out.write_all(&footer)
                    .map_err(|e| Error::io("writing the footer", e))
            })?;
        }
        self.write_out()?;
        // Finished: drop has nothing left to do.
        self.data = None;
        self.out.take().ok_or_else(finished)?.finish()
    }
}

impl<F: StreamFormat> Drop for StreamWriter<F> {
    fn drop(&mut self) {
        if self.out.is_none() || self.data.is_none() {
            return;
        }
        if self.replace == Replace::InPlace && !std::thread::panicking() {
            // Best effort, as for every in-place handle: what was appended becomes the file.
            // A failure cuts the file back to its last flush (in `write_out`).
            if let Err(e) = self.write_out() {
                log::error!(
                    "{}: flush of an uncommitted writer failed on drop: {e}",
                    self.target().display()
                );
            }
            return;
        }
        // Atomic: the rows die with the temporary file, removed as `out` drops. In place during
        // a panic: the file is cut back to exactly what the last flush published.
        self.cut_back_logged();
    }
}

/// The error every call on a poisoned writer returns: its failure may have been a write, a
/// flush or a sync.
pub fn writer_poisoned_error(path: &Path) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        "an earlier write, flush or sync of this writer failed, so the rows it holds are \
         incomplete; write them again with a new writer",
    )
    .with_path(path)
}

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
    /// Rewrites the file's header (its row count, say) so that everything written so far is a
    /// complete file. Called on flush, sync and commit, after the buffer was written.
    fn complete_header(&mut self, file: &File) -> Result<()>;

    /// Bytes written once, just before commit (a footer). None by default.
    fn footer(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// Checks rows before a streaming writer appends them: element type `got` must be the writer's
/// `expected`, and `shape` must be `[n, row_shape...]`. The error names `path`.
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
/// temporary file is removed and the target keeps its old content. In place: `flush` makes what
/// was written a complete file; dropped uncommitted, the writer flushes (errors logged) unless
/// its thread is panicking, when rows buffered since the last flush are discarded rather than
/// published half written.
pub struct StreamWriter<F: StreamFormat> {
    out: Option<OutputFile>,
    data: Option<BufWriter<File>>,
    replace: Replace,
    format: F,
}

fn finished() -> Error {
    Error::new(ErrorKind::InvalidInput, "the writer is finished")
}

impl<F: StreamFormat> StreamWriter<F> {
    /// Starts a file at `path`, writing `preamble` (the header) first.
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
        Ok(StreamWriter {
            out: Some(out),
            data: Some(data),
            replace: options.replace,
            format,
        })
    }

    /// The file being written (symbolic links resolved).
    pub fn target(&self) -> &Path {
        self.out.as_ref().map_or(Path::new(""), OutputFile::target)
    }

    /// The format's state.
    pub fn format(&self) -> &F {
        &self.format
    }

    /// The buffer to append to and the format's state, together.
    pub fn parts(&mut self) -> Result<(&mut BufWriter<File>, &mut F)> {
        match self.data.as_mut() {
            Some(data) => Ok((data, &mut self.format)),
            None => Err(finished()),
        }
    }

    /// Writes the buffer out and completes the header.
    fn write_out(&mut self) -> Result<()> {
        let target = self.target().to_path_buf();
        let data = self.data.as_mut().ok_or_else(finished)?;
        data.flush()
            .map_err(|e| Error::io("flush failed", e).with_path(&target))?;
        self.format
            .complete_header(data.get_ref())
            .map_err(|e| e.with_path(&target))
    }
}

impl<F: StreamFormat> Durable for StreamWriter<F> {
    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        self.out.as_mut().ok_or_else(finished)?.sync()
    }
}

impl<F: StreamFormat> Commit for StreamWriter<F> {
    fn commit(mut self) -> Result<()> {
        let footer = self.format.footer();
        if !footer.is_empty() {
            let target = self.target().to_path_buf();
            let data = self.data.as_mut().ok_or_else(finished)?;
            data.write_all(&footer)
                .map_err(|e| Error::io("writing the footer", e).with_path(&target))?;
        }
        self.write_out()?;
        self.out.take().ok_or_else(finished)?.finish()
    }
}

impl<F: StreamFormat> Drop for StreamWriter<F> {
    fn drop(&mut self) {
        if self.out.is_none() {
            return;
        }
        if self.replace == Replace::InPlace
            && !std::thread::panicking()
            && let Err(e) = self.write_out()
        {
            log::error!(
                "{}: flush of an uncommitted writer failed on drop: {e}",
                self.target().display()
            );
        }
        // Anything still buffered is discarded, never written: an atomic writer's rows die with
        // its temporary file (removed as `out` drops), and a panicking in-place writer publishes
        // only what its last flush wrote.
        if let Some(data) = self.data.take() {
            let (_file, _discarded) = data.into_parts();
        }
    }
}

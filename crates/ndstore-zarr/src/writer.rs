//! The streaming writer: rows appended along axis 0 are buffered up to one chunk row and
//! written as whole chunks into a sibling temporary tree, which `commit` publishes as a save
//! does. Memory holds one chunk row of input at most.

use std::path::Path;

use ndarray::{Axis, concatenate};
use ndstore_core::{
    ArrayWriter, DType, Durable, DynArray, Error, ErrorKind, Result, SaveOptions, with_dtype_kind,
};

use crate::meta::ZarrMeta;
use crate::save::Staged;

/// A writer that appends rows to a new Zarr array and publishes it on commit.
pub struct ZarrWriter {
    staged: Option<Staged>,
    dtype: DType,
    row_shape: Vec<usize>,
    /// Rows written to chunks so far (a multiple of the chunk's rows, except after a flush).
    written: usize,
    /// Rows waiting for their chunk row to fill, starting at row `written`.
    pending: Option<DynArray>,
    rows_per_chunk: usize,
    poisoned: bool,
}

impl ZarrWriter {
    /// Starts an array of `dtype` with rows of `row_shape` at `target`, in chunks of
    /// `chunk_shape` (whose first length is the rows per chunk).
    ///
    /// # Errors
    ///
    /// As [`crate::save_with`]'s start: a target that is no array, permissions, I/O.
    pub fn create(
        target: &Path,
        dtype: DType,
        row_shape: &[usize],
        chunk_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<ZarrWriter> {
        let dtype = DType::new(dtype.kind, options.byte_order_for(dtype)?);
        let mut shape = vec![0];
        shape.extend_from_slice(row_shape);
        let meta = ZarrMeta::new(dtype, &shape, chunk_shape).map_err(|e| e.with_path(target))?;
        let rows_per_chunk = meta.chunk_shape[0];
        Ok(ZarrWriter {
            staged: Some(Staged::new(target, meta, options)?),
            dtype,
            row_shape: row_shape.to_vec(),
            written: 0,
            pending: None,
            rows_per_chunk,
            poisoned: false,
        })
    }

    fn staged(&mut self) -> Result<&mut Staged> {
        if self.poisoned {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "an earlier write of this writer failed; start a fresh one",
            ));
        }
        self.staged
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))
    }

    /// Writes the pending rows: whole chunk rows, and with `all` the partial one too (it is
    /// written again when more rows fill it).
    fn write_pending(&mut self, all: bool) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let rows = pending.shape()[0];
        let whole = rows - rows % self.rows_per_chunk;
        let cut = if all { rows } else { whole };
        if cut == 0 {
            self.pending = Some(pending);
            return Ok(());
        }
        let (head, _) = split_rows(&pending, cut);
        let start_row = self.written;
        let staged = self.staged()?;
        let array = staged.array_mut()?;
        let rows_now = array.meta().shape[0].max(start_row + rows);
        array.set_rows(rows_now);
        let mut start = vec![0; array.meta().shape.len()];
        start[0] = start_row;
        if let Err(e) = array.write_region(&start, &head) {
            self.poisoned = true;
            return Err(e);
        }
        // A partial chunk row written at a flush is written again whole later: its rows stay.
        self.written += whole;
        self.pending = split_rows(&pending, whole).1;
        Ok(())
    }
}

/// The first `n` rows of `a` and the rest (`None` when nothing is left).
fn split_rows(a: &DynArray, n: usize) -> (DynArray, Option<DynArray>) {
    ndstore_core::with_dyn_array!(a, |t| {
        let head = t.slice_axis(Axis(0), ndarray::Slice::from(..n)).to_owned();
        let rest = (n < t.shape()[0])
            .then(|| DynArray::from(t.slice_axis(Axis(0), ndarray::Slice::from(n..)).to_owned()));
        (DynArray::from(head), rest)
    })
}

impl Durable for ZarrWriter {
    fn flush(&mut self) -> Result<()> {
        self.write_pending(true)
    }

    fn sync(&mut self) -> Result<()> {
        self.write_pending(true)?;
        let staged = self.staged()?;
        let array = staged.array()?;
        array.write_metadata()?;
        let result = array.sync();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }
}

impl ArrayWriter for ZarrWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.staged()?;
        if rows.kind() != self.dtype.kind || rows.shape().get(1..) != Some(&self.row_shape[..]) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "rows of {} {:?} do not fit a writer of {} rows {:?}",
                    rows.kind(),
                    rows.shape(),
                    self.dtype.kind,
                    self.row_shape
                ),
            ));
        }
        let joined = match self.pending.take() {
            None => rows.clone(),
            Some(pending) => with_dtype_kind!(self.dtype.kind, |T| {
                let a = pending.into_typed::<T>()?;
                let b = rows.clone().into_typed::<T>()?;
                DynArray::from(
                    concatenate(Axis(0), &[a.view(), b.view()])
                        .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?,
                )
            }),
        };
        self.pending = Some(joined);
        self.write_pending(false)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.write_pending(true)?;
        let rows = self.written + self.pending.as_ref().map_or(0, |p| p.shape()[0]);
        let mut staged = self
            .staged
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))?;
        if self.poisoned {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "an earlier write of this writer failed; start a fresh one",
            ));
        }
        staged.array_mut()?.set_rows(rows);
        staged.publish()
    }

    fn abort(mut self: Box<Self>) -> Result<()> {
        match self.staged.take() {
            Some(staged) => staged.abort(),
            None => Ok(()),
        }
    }
}

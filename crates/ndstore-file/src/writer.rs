//! A streaming `.npy` writer that appends rows along axis 0 without holding the whole array,
//! with the durability vocabulary: flush, sync, commit, and a drop that never publishes a
//! partial file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ndarray::{ArrayBase, ArrayViewD, Data, Dimension};
use ndstore_core::codec::write_elements;
use ndstore_core::{
    ArrayMeta, ArrayWriter, Commit, DType, Durable, DynArray, Element, Error, ErrorKind, Order,
    OutputFile, Replace, Result, SaveOptions, with_dyn_array,
};

use crate::header;

/// Appends rows to a `.npy` file.
///
/// The header is written first with room for the final row count (numpy's growth padding), and
/// rewritten with the true count on `flush`, `sync` and `commit`; the finished file is
/// byte-identical to what `np.save` writes for the same array.
///
/// Atomic (the default): nothing appears at the target until `commit`; dropped uncommitted, the
/// writer removes its temporary file and the target keeps its old content.
/// In place: `flush` makes the rows so far a complete `.npy` file that other processes can read;
/// dropped uncommitted, the writer flushes (best effort, errors logged) — unless its thread is
/// panicking, when rows buffered since the last flush are discarded rather than published.
pub struct NpyWriter {
    out: Option<OutputFile>,
    data: Option<BufWriter<File>>,
    dtype: DType,
    row_shape: Vec<usize>,
    rows: usize,
    header_len: usize,
    replace: Replace,
}

impl NpyWriter {
    /// Starts a file at `path` for arrays of `dtype` whose axes after the first are `row_shape`.
    pub fn create(
        path: impl AsRef<Path>,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<NpyWriter> {
        let path = path.as_ref();
        let mut out = OutputFile::create(path, options)?;
        let file = out
            .file()?
            .try_clone()
            .map_err(|e| Error::io("duplicating a descriptor", e).with_path(path))?;
        let mut shape = vec![0];
        shape.extend_from_slice(row_shape);
        let header = header::encode(&ArrayMeta::new(dtype, shape, Order::C));
        let mut data = BufWriter::with_capacity(1 << 20, file);
        data.write_all(&header)
            .map_err(|e| Error::io("writing the header", e).with_path(path))?;
        Ok(NpyWriter {
            out: Some(out),
            data: Some(data),
            dtype,
            row_shape: row_shape.to_vec(),
            rows: 0,
            header_len: header.len(),
            replace: options.replace,
        })
    }

    fn target(&self) -> &Path {
        self.out.as_ref().map_or(Path::new(""), OutputFile::target)
    }

    /// The rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends rows: an array shaped `[n, row_shape...]` of the writer's element type.
    pub fn append<A, S, D>(&mut self, rows: &ArrayBase<S, D>) -> Result<()>
    where
        A: Element,
        S: Data<Elem = A>,
        D: Dimension,
    {
        self.append_view(rows.view().into_dyn())
    }

    /// Appends rows of a runtime-typed array.
    pub fn append_dyn(&mut self, rows: &DynArray) -> Result<()> {
        with_dyn_array!(rows, a => self.append_view(a.view()))
    }

    fn append_view<T: Element>(&mut self, view: ArrayViewD<'_, T>) -> Result<()> {
        if T::KIND != self.dtype.kind {
            return Err(ndstore_core::array::type_mismatch(self.dtype.kind, T::KIND)
                .with_path(self.target()));
        }
        if view.ndim() == 0 || view.shape()[1..] != self.row_shape[..] {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "rows of shape {:?} do not fit [n, {:?}]",
                    view.shape(),
                    self.row_shape
                ),
            )
            .with_path(self.target()));
        }
        let target = self.target().to_path_buf();
        let byte_order = self.dtype.byte_order;
        let data = self.data()?;
        write_elements(&view, Order::C, byte_order, &mut |bytes| {
            data.write_all(bytes)
        })
        .map_err(|e| Error::io("appending rows", e).with_path(&target))?;
        self.rows += view.shape()[0];
        Ok(())
    }

    /// Writes buffered rows and rewrites the header with the current row count.
    fn write_out(&mut self) -> Result<()> {
        let target = self.target().to_path_buf();
        self.data()?
            .flush()
            .map_err(|e| Error::io("flush failed", e).with_path(&target))?;
        let mut shape = vec![self.rows];
        shape.extend_from_slice(&self.row_shape);
        let header = header::encode(&ArrayMeta::new(self.dtype, shape, Order::C));
        if header.len() != self.header_len {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "the row count outgrew the header's reserved space",
            )
            .with_path(&target));
        }
        self.data()?
            .get_ref()
            .write_all_at(&header, 0)
            .map_err(|e| Error::io("rewriting the header", e).with_path(&target))
    }

    fn data(&mut self) -> Result<&mut BufWriter<File>> {
        self.data
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))
    }

    fn out(&mut self) -> Result<&mut OutputFile> {
        self.out
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))
    }
}

impl Durable for NpyWriter {
    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        self.out()?.sync()
    }
}

impl Commit for NpyWriter {
    fn commit(mut self) -> Result<()> {
        self.write_out()?;
        let out = self
            .out
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))?;
        out.finish()
    }
}

impl Drop for NpyWriter {
    fn drop(&mut self) {
        if self.out.is_none() {
            return;
        }
        if self.replace == Replace::InPlace
            && !std::thread::panicking()
            && let Err(e) = self.write_out()
        {
            log::error!("flush of an uncommitted .npy writer failed on drop: {e}");
        }
        // Anything still buffered is discarded, never written: an atomic writer's rows die with
        // its temporary file (removed as `out` drops), and a panicking in-place writer publishes
        // only what its last flush wrote.
        if let Some(data) = self.data.take() {
            let (_file, _discarded) = data.into_parts();
        }
    }
}

impl ArrayWriter for NpyWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.append_dyn(rows)
    }

    fn flush(&mut self) -> Result<()> {
        Durable::flush(self)
    }

    fn sync(&mut self) -> Result<()> {
        Durable::sync(self)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Commit::commit(*self)
    }
}

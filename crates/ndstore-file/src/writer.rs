//! A streaming `.npy` writer that appends rows along axis 0 without holding the whole array.
//! The durability vocabulary and the drop policy come from the core's `StreamWriter`; this file
//! holds only what is `.npy`-specific: the header and its in-place rewrite.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ndarray::{ArrayBase, ArrayViewD, Data, Dimension};
use ndstore_core::__private::codec::write_elements;
use ndstore_core::__private::stream::{StreamFormat, StreamWriter};
use ndstore_core::{
    ArrayMeta, ArrayWriter, Commit, DType, Durable, DynArray, Element, Error, ErrorKind, Order,
    Result, SaveOptions, with_dyn_array,
};

use crate::header;

/// The `.npy` header of a growing array: rewritten with the row count in place, which numpy's
/// growth padding makes possible (the header for 0 rows and for N rows has the same length).
struct NpyHeader {
    dtype: DType,
    row_shape: Vec<usize>,
    header_len: usize,
}

impl NpyHeader {
    fn encode(&self, rows: usize) -> Vec<u8> {
        let mut shape = vec![rows];
        shape.extend_from_slice(&self.row_shape);
        header::encode(&ArrayMeta::new(self.dtype, shape, Order::C))
    }
}

impl StreamFormat for NpyHeader {
    fn complete_header(&mut self, file: &File, rows: usize) -> Result<()> {
        let header = self.encode(rows);
        if header.len() != self.header_len {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "the row count outgrew the header's reserved space",
            ));
        }
        file.write_all_at(&header, 0)
            .map_err(|e| Error::io("rewriting the header", e))
    }
}

/// Appends rows to a `.npy` file; the finished file is byte-identical to what `np.save` writes
/// for the same array.
///
/// Atomic (the default): nothing appears at the target until `commit`; dropped uncommitted, the
/// writer removes its temporary file and the target keeps its old content. In place: `flush`
/// makes the rows so far a complete `.npy` file that other processes can read; dropped
/// uncommitted, the writer flushes (errors logged) — unless its thread is panicking, when rows
/// buffered since the last flush are discarded rather than published.
///
/// ```
/// use ndarray::array;
/// use ndstore_core::{Commit, DType, DTypeKind, Durable, SaveOptions};
/// use ndstore_file::{NpyWriter, npy};
///
/// # fn main() -> ndstore_core::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("ndstore-writer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("rows.npy");
/// let dtype = DType::native(DTypeKind::F32);
/// let mut writer = NpyWriter::create(&path, dtype, &[2], &SaveOptions::default())?;
/// writer.append(&array![[1.0f32, 2.0], [3.0, 4.0]])?;
/// writer.sync()?; // durable in the temporary file; the target does not exist yet
/// writer.append(&array![[5.0f32, 6.0]])?;
/// writer.commit()?; // published at the target, atomically
/// let rows: ndarray::Array2<f32> = npy::load(&path)?;
/// assert_eq!(rows, array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub struct NpyWriter {
    stream: StreamWriter<NpyHeader>,
}

impl NpyWriter {
    /// Starts a file at `path` for arrays of `dtype` whose axes after the first are `row_shape`.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` when the options' byte order contradicts the dtype's; the errors
    /// of `OutputFile::create` and of writing the header.
    pub fn create(
        path: impl AsRef<Path>,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<NpyWriter> {
        // The dtype carries the byte order; options may repeat it but not contradict it.
        let byte_order = options
            .byte_order_for(dtype)
            .map_err(|e| e.with_path(path.as_ref()))?;
        let format = NpyHeader {
            dtype: DType::new(dtype.kind, byte_order),
            row_shape: row_shape.to_vec(),
            header_len: 0,
        };
        let header = format.encode(0);
        let format = NpyHeader {
            header_len: header.len(),
            ..format
        };
        Ok(NpyWriter {
            stream: StreamWriter::create(path.as_ref(), options, &header, format)?,
        })
    }

    /// The rows appended so far.
    pub fn rows(&self) -> usize {
        self.stream.rows()
    }

    /// Appends rows: an array shaped `[n, row_shape...]` of the writer's element type.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch` or `ErrorKind::InvalidInput` for rows that do not fit the writer;
    /// the I/O error of a write, which poisons the writer (`ErrorKind::Poisoned` for every later
    /// call).
    pub fn append<A, S, D>(&mut self, rows: &ArrayBase<S, D>) -> Result<()>
    where
        A: Element,
        S: Data<Elem = A>,
        D: Dimension,
    {
        self.append_view(rows.view().into_dyn())
    }

    /// Appends rows of a runtime-typed array.
    ///
    /// # Errors
    ///
    /// As `NpyWriter::append`.
    pub fn append_dyn(&mut self, rows: &DynArray) -> Result<()> {
        with_dyn_array!(rows, |a| self.append_view(a.view()))
    }

    fn append_view<T: Element>(&mut self, view: ArrayViewD<'_, T>) -> Result<()> {
        let format = self.stream.format();
        ndstore_core::__private::stream::check_rows(
            format.dtype.kind,
            &format.row_shape,
            T::KIND,
            view.shape(),
            self.stream.target(),
        )?;
        self.stream.append(view.shape()[0], |data, format| {
            write_elements(&view, Order::C, format.dtype.byte_order, &mut |bytes| {
                data.write_all(bytes)
            })
            .map_err(|e| Error::io("appending rows", e))
        })
    }
}

impl NpyWriter {
    /// Abandons the writer and reports whether the rollback worked, where dropping it can
    /// only log: atomic, the temporary file is removed and the target keeps its old content;
    /// in place, the target is cut back to exactly its last flush (a complete file of the rows
    /// flushed so far).
    ///
    /// # Errors
    ///
    /// The error of the rollback: the temporary file cannot be removed, or the in-place file
    /// cannot be cut back or closed.
    pub fn abort(self) -> Result<()> {
        self.stream.abort()
    }
}

impl Durable for NpyWriter {
    fn flush(&mut self) -> Result<()> {
        self.stream.flush()
    }

    fn sync(&mut self) -> Result<()> {
        self.stream.sync()
    }
}

impl Commit for NpyWriter {
    fn commit(self) -> Result<()> {
        self.stream.commit()
    }
}

impl ArrayWriter for NpyWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.append_dyn(rows)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Commit::commit(*self)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        NpyWriter::abort(*self)
    }
}

//! Loading whole text arrays: typed or runtime-typed, with the metadata line's dtype, shape and
//! order restored.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array, ArrayD, Dimension, IxDyn, ShapeBuilder};
use ndstore_core::{
    ArrayMeta, DynArray, Element, Error, ErrorKind, LoadOptions, Order, Result, with_dtype_kind,
};

use crate::options::TextOptions;
use crate::read::{Collected, TextReader, collect, finish, read_all};
use crate::value::TextValue;

/// Files at least this large are read as two halves side by side, each half read and parsed
/// on its own thread; smaller ones block by block.
const SPLIT_MIN: u64 = 16 << 20;

/// The file of one load, opened once: every reader of the load reads through this one
/// descriptor with positioned reads, so a rename over the path between two reads cannot mix
/// two versions of the file.
pub(crate) struct Source {
    file: Arc<File>,
    len: u64,
    path: PathBuf,
}

/// Bytes `pos..end` of a shared file, read with `pread` (no shared file offset).
struct Span {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Span {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Source {
    /// Opens `path` for one load.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let file = ndstore_core::__private::load::open_for_load(path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
            .len();
        Ok(Source {
            file: Arc::new(file),
            len,
            path: path.to_path_buf(),
        })
    }

    fn span(&self, pos: u64, end: u64) -> Box<dyn Read + Send> {
        Box::new(Span {
            file: Arc::clone(&self.file),
            pos,
            end,
        })
    }

    /// A reader of the whole file, its preamble read.
    pub(crate) fn reader(&self, options: &TextOptions) -> Result<TextReader> {
        Ok(
            TextReader::from_reader(self.span(0, self.len), &self.path, options)?
                .with_size_hint(self.len),
        )
    }

    /// The offset just after the first newline at or after `at`, looking at most 1 MiB ahead.
    fn line_boundary(&self, at: u64) -> Result<Option<u64>> {
        let mut window = vec![0u8; 1 << 20];
        let mut filled = 0;
        while filled < window.len() {
            let n = self
                .file
                .read_at(&mut window[filled..], at + filled as u64)
                .map_err(|e| Error::io("read failed", e).with_path(&self.path))?;
            if n == 0 {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &window[filled..filled + n]) {
                return Ok(Some(at + (filled + i) as u64 + 1));
            }
            filled += n;
        }
        Ok(None)
    }
}

/// Reads the values of the text file `source` as `T`, with the array's metadata.
fn read_values<T: TextValue>(
    source: &Source,
    options: &TextOptions,
    limits: &LoadOptions,
) -> Result<(ArrayMeta, Vec<T>)> {
    let path = source.path.as_path();
    let len = source.len;
    let sequential = || read_all::<T>(source.reader(options)?.with_memory_limit(limits));
    if len < SPLIT_MIN || options.max_rows.is_some() {
        return sequential();
    }
    let Some(boundary) = source.line_boundary(len / 2)? else {
        return sequential();
    };
    let mut head = TextReader::from_reader(source.span(0, boundary), path, options)?
        .single_threaded()
        .with_size_hint(len)
        .with_memory_limit(limits);
    if head.data_start() >= boundary {
        return sequential();
    }
    let dtype = head.dtype();
    if dtype.kind != T::KIND {
        return Err(
            ndstore_core::__private::array::type_mismatch(dtype.kind, T::KIND).with_path(path),
        );
    }
    let mut tail = TextReader::piece(source.span(boundary, len), path, options)
        .with_size_hint(len - boundary)
        .with_memory_limit(limits);
    let expected = head.meta_line().and_then(|m| m.element_count().ok());
    // A panic of the second half's parser is raised again here, not turned into an error.
    let (head_data, tail_data) = ndstore_core::__private::bulk::on_two_threads(
        || collect::<T>(&mut head, None),
        move || collect::<T>(&mut tail, expected),
    );
    // The first half's error comes first: it is on an earlier line.
    let mut data: Collected<T> = head_data?;
    let lines_before = data.end_line - 1;
    let tail_data = tail_data.map_err(|e| e.offset_lines(lines_before))?;
    if let (Some(a), Some(b)) = (data.columns, tail_data.columns)
        && a != b
    {
        return Err(crate::read::column_count_error(
            path,
            lines_before + 1,
            1,
            a,
            b,
        ));
    }
    limits
        .admit(
            std::mem::size_of::<T>() as u64 * (data.values.len() + tail_data.values.len()) as u64,
        )
        .map_err(|e| e.with_path(path))?;
    data.values
        .try_reserve_exact(tail_data.values.len())
        .map_err(|_| {
            Error::new(
                ErrorKind::OutOfMemory,
                "cannot allocate memory to join the two halves of the file",
            )
            .with_path(path)
        })?;
    data.values.extend(tail_data.values);
    data.rows += tail_data.rows;
    data.columns = data.columns.or(tail_data.columns);
    data.end_line = lines_before + tail_data.end_line;
    let meta = finish(head.meta_line(), dtype, &data, path)?;
    Ok((meta, data.values))
}

fn build<T: TextValue>(meta: &ArrayMeta, values: Vec<T>, path: &Path) -> Result<ArrayD<T>> {
    let c = ArrayD::from_shape_vec(IxDyn(&meta.shape), values).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("the values do not fit shape {:?}: {e}", meta.shape),
        )
        .with_path(path)
    })?;
    if meta.order == Order::Fortran && meta.shape.len() > 1 {
        // The text is in C order; the array is laid out as the file records. Reading the
        // reversed axes in logical order visits the elements in Fortran order.
        let fortran: Vec<T> = c.t().iter().copied().collect();
        ArrayD::from_shape_vec(IxDyn(&meta.shape).f(), fortran).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the values do not fit shape {:?}: {e}", meta.shape),
            )
            .with_path(path)
        })
    } else {
        Ok(c)
    }
}

/// Loads the text file at `path` as `T` with dimensionality `D`.
///
/// With a metadata line, its dtype must be `T` and its shape decides the array's; without one,
/// the file is read as rows × columns (squeezed as `np.loadtxt` squeezes).
///
/// # Errors
///
/// An error naming the file and the line and column: `ErrorKind::Format` for a field that is no
/// value of `T` or a ragged row (with a `Detail::ColumnCount`), `ErrorKind::TypeMismatch` when the
/// metadata line names another element type or the rows another number of dimensions;
/// `ErrorKind::OutOfMemory` over the memory limit; I/O errors.
pub fn load<T: TextValue, D: Dimension>(
    path: impl AsRef<Path>,
    options: &TextOptions,
) -> Result<Array<T, D>> {
    let path = path.as_ref();
    let options = options.clone().dtype(
        options
            .dtype
            .unwrap_or(ndstore_core::DType::native(T::KIND)),
    );
    let source = Source::open(path)?;
    let (meta, values) = read_values::<T>(&source, &options, &LoadOptions::default())?;
    let array = build(&meta, values, path)?;
    let ndim = array.ndim();
    array.into_dimensionality::<D>().map_err(|_| {
        Error::new(
            ErrorKind::TypeMismatch,
            format!("the file holds a {ndim}-d array of another dimensionality"),
        )
        .with_path(path)
    })
}

/// Loads the text file at `path` whatever its dtype, with its metadata.
///
/// # Errors
///
/// As [`load_dyn_with`].
pub fn load_dyn(path: impl AsRef<Path>, options: &TextOptions) -> Result<(ArrayMeta, DynArray)> {
    load_dyn_with(path, options, &LoadOptions::default())
}

/// [`load_dyn`] within `limits` (a memory limit, say).
///
/// # Errors
///
/// An error naming the file, the line and the column for malformed text;
/// [`ErrorKind::OutOfMemory`] when the array is over `limits.memory_limit`.
pub fn load_dyn_with(
    path: impl AsRef<Path>,
    options: &TextOptions,
    limits: &LoadOptions,
) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    let source = Source::open(path)?;
    let reader = source.reader(options)?;
    if let Some(meta) = reader.meta_line() {
        limits
            .admit(meta.byte_len().map_err(|e| e.with_path(path))? as u64)
            .map_err(|e| e.with_path(path))?;
    }
    let kind = reader.dtype().kind;
    drop(reader);
    with_dtype_kind!(kind, |T| {
        let (meta, values) = read_values::<T>(&source, options, limits)?;
        let array = build(&meta, values, path)?;
        Ok((meta, <T as Element>::into_dyn_array(array)))
    })
}

/// Reads only the metadata line (or, without one, the dtype the data would be read as).
///
/// # Errors
///
/// An error naming the file and the line for a damaged metadata line or rows it cannot count; I/O
/// errors.
pub fn read_meta(path: impl AsRef<Path>, options: &TextOptions) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let reader = Source::open(path)?.reader(options)?;
    match reader.meta_line() {
        Some(meta) => Ok(meta),
        // Without a metadata line the shape is known only after reading every row.
        None => load_dyn(path, options).map(|(meta, _)| meta),
    }
}

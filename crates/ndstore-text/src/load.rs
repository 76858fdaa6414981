//! Loading whole text arrays: typed or runtime-typed, with the metadata line's dtype, shape and
//! order restored.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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

/// The offset just after the first newline at or after `at`, looking at most 1 MiB ahead.
fn line_boundary(path: &Path, at: u64) -> Result<Option<u64>> {
    let mut file = File::open(path).map_err(|e| Error::io("cannot open", e).with_path(path))?;
    file.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io("cannot seek", e).with_path(path))?;
    let mut window = vec![0u8; 1 << 20];
    let mut filled = 0;
    while filled < window.len() {
        let n = file
            .read(&mut window[filled..])
            .map_err(|e| Error::io("read failed", e).with_path(path))?;
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

/// Reads the values of the text file at `path` as `T`, with the array's metadata.
fn read_values<T: TextValue>(path: &Path, options: &TextOptions) -> Result<(ArrayMeta, Vec<T>)> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
        .len();
    let sequential = || read_all::<T>(TextReader::open(path, options)?);
    if len < SPLIT_MIN || options.max_rows.is_some() {
        return sequential();
    }
    let Some(boundary) = line_boundary(path, len / 2)? else {
        return sequential();
    };
    let head_file = File::open(path).map_err(|e| Error::io("cannot open", e).with_path(path))?;
    let mut head = TextReader::from_reader(Box::new(head_file.take(boundary)), path, options)?
        .single_threaded()
        .with_size_hint(len);
    if head.data_start() >= boundary {
        return sequential();
    }
    let dtype = head.dtype();
    if dtype.kind != T::KIND {
        return Err(ndstore_core::array::type_mismatch(dtype.kind, T::KIND).with_path(path));
    }
    let mut tail_file =
        File::open(path).map_err(|e| Error::io("cannot open", e).with_path(path))?;
    tail_file
        .seek(SeekFrom::Start(boundary))
        .map_err(|e| Error::io("cannot seek", e).with_path(path))?;
    let mut tail = TextReader::piece(Box::new(tail_file.take(len - boundary)), path, options)
        .with_size_hint(len - boundary);
    let expected = head.meta_line().and_then(|m| m.element_count().ok());
    let (head_data, tail_data) = std::thread::scope(|scope| {
        let tail_job = scope.spawn(move || collect::<T>(&mut tail, expected));
        let head_data = collect::<T>(&mut head, None);
        (head_data, tail_job.join())
    });
    // The first half's error comes first: it is on an earlier line.
    let mut data: Collected<T> = head_data?;
    let lines_before = data.end_line - 1;
    let tail_data = tail_data
        .map_err(|_| Error::new(ErrorKind::Format, "a parser thread panicked").with_path(path))?
        .map_err(|e| e.offset_lines(lines_before))?;
    if let (Some(a), Some(b)) = (data.columns, tail_data.columns)
        && a != b
    {
        return Err(Error::new(
            ErrorKind::Format,
            format!("rows after line {lines_before} have {b} fields, earlier rows have {a}"),
        )
        .with_path(path)
        .at(ndstore_core::Location::LineColumn {
            line: lines_before + 1,
            column: 1,
        }));
    }
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
    let (meta, values) = read_values::<T>(path, &options)?;
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
    let reader = TextReader::open(path, options)?;
    if let Some(meta) = reader.meta_line() {
        limits
            .admit(meta.byte_len()? as u64)
            .map_err(|e| e.with_path(path))?;
    }
    let kind = reader.dtype().kind;
    drop(reader);
    with_dtype_kind!(kind, T => {
        let (meta, values) = read_values::<T>(path, options)?;
        limits
            .admit(std::mem::size_of_val(values.as_slice()) as u64)
            .map_err(|e| e.with_path(path))?;
        let array = build(&meta, values, path)?;
        Ok((meta, <T as Element>::into_dyn_array(array)))
    })
}

/// Reads only the metadata line (or, without one, the dtype the data would be read as).
pub fn read_meta(path: impl AsRef<Path>, options: &TextOptions) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let reader = TextReader::open(path, options)?;
    match reader.meta_line() {
        Some(meta) => Ok(meta),
        // Without a metadata line the shape is known only after reading every row.
        None => load_dyn(path, options).map(|(meta, _)| meta),
    }
}

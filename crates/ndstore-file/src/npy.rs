//! `.npy` files: save and load whole arrays through paths (atomic and synced by default) or
//! through any `Read`/`Write` the caller owns.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use ndarray::{Array, ArrayBase, ArrayD, ArrayViewD, Data, Dimension};
use ndstore_core::__private::codec::{alloc_raw, array_from_raw, layout_order, write_elements};
use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DynArray, Element, Error, ErrorKind, Result, SaveOptions,
    with_dtype_kind, with_dyn_array,
};

use crate::header::{self, DEFAULT_MAX_HEADER_LEN, Header};

pub use ndstore_core::LoadOptions;

/// Saves `array` to `path` atomically and durably: the file is complete, fsynced and its
/// directory entry durable when this returns Ok, and a crash leaves the old file intact.
///
/// The array's layout decides the recorded order: C-contiguous arrays are saved in C order,
/// Fortran-contiguous ones in Fortran order, anything else is copied out in C order.
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save<A, S, D>(path: impl AsRef<Path>, array: &ArrayBase<S, D>) -> Result<()>
where
    A: Element,
    S: Data<Elem = A>,
    D: Dimension,
{
    save_with(path, array, &SaveOptions::default())
}

/// Saves `array` to `path` as `options` say (atomic or in place, synced or flushed, byte order).
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save_with<A, S, D>(
    path: impl AsRef<Path>,
    array: &ArrayBase<S, D>,
    options: &SaveOptions,
) -> Result<()>
where
    A: Element,
    S: Data<Elem = A>,
    D: Dimension,
{
    save_view(path.as_ref(), array.view().into_dyn(), options)
}

/// Saves a runtime-typed array.
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save_dyn(path: impl AsRef<Path>, array: &DynArray, options: &SaveOptions) -> Result<()> {
    with_dyn_array!(array, |a| save_view(path.as_ref(), a.view(), options))
}

fn meta_for<T: Element>(view: &ArrayViewD<'_, T>, byte_order: ByteOrder) -> ArrayMeta {
    ArrayMeta::new(
        DType::new(T::KIND, byte_order),
        view.shape().to_vec(),
        layout_order(view),
    )
}

fn save_view<T: Element>(
    path: &Path,
    view: ArrayViewD<'_, T>,
    options: &SaveOptions,
) -> Result<()> {
    let meta = meta_for(&view, options.effective_byte_order());
    let header = header::encode(&meta);
    let total = meta.byte_len()?.checked_add(header.len()).ok_or_else(|| {
        Error::new(ErrorKind::TooLarge, "the array is too large to save").with_path(path)
    })?;
    let synced = options.durability == ndstore_core::Durability::Synced;
    ndstore_core::write_file(path, options, |file| {
        ndstore_core::__private::os::preallocate(file, total as u64);
        let mut out = ndstore_core::__private::writeback::EagerWriteback::new(file, synced);
        write_npy(&mut out, &header, &view, &meta)
    })
}

fn write_npy<T: Element>(
    out: &mut dyn Write,
    header: &[u8],
    view: &ArrayViewD<'_, T>,
    meta: &ArrayMeta,
) -> Result<()> {
    out.write_all(header)
        .map_err(|e| Error::io("writing the .npy header", e))?;
    write_elements(view, meta.order, meta.dtype.byte_order, &mut |bytes| {
        out.write_all(bytes)
    })
    .map_err(|e| Error::io("writing the .npy data", e))
}

/// Writes `array` as `.npy` bytes to a writer the caller owns, in `byte_order`.
///
/// Durability is then the caller's: this writes into `writer` and nothing more. To make the
/// bytes durable, flush the writer and `sync_all` the file it writes to — or save by path.
///
/// # Errors
///
/// The writer's I/O errors.
pub fn write_to<A, S, D>(
    writer: &mut dyn Write,
    array: &ArrayBase<S, D>,
    byte_order: ByteOrder,
) -> Result<()>
where
    A: Element,
    S: Data<Elem = A>,
    D: Dimension,
{
    let view = array.view().into_dyn();
    let meta = meta_for(&view, byte_order);
    write_npy(writer, &header::encode(&meta), &view, &meta)
}

/// Writes a runtime-typed array as `.npy` bytes to a writer the caller owns.
///
/// # Errors
///
/// The writer's I/O errors.
pub fn write_dyn_to(writer: &mut dyn Write, array: &DynArray, byte_order: ByteOrder) -> Result<()> {
    with_dyn_array!(array, |a| write_to(writer, a, byte_order))
}

/// Reads only the header of the `.npy` file at `path`: dtype, shape and order, without reading
/// or allocating for the data.
///
/// # Errors
///
/// An error naming the file and the place for a missing or damaged header (`ErrorKind::Format`,
/// `ErrorKind::Truncated`, `ErrorKind::UnsupportedDType`, `ErrorKind::TooLarge`); I/O errors.
pub fn read_meta(path: impl AsRef<Path>) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let (_, header, _) = open(path, &LoadOptions::default())?;
    Ok(header.meta)
}

/// Loads the `.npy` file at `path` as an array of `T` with dimensionality `D`.
///
/// Fails with [`ErrorKind::TypeMismatch`] before reading any data when the file holds another
/// element type or number of dimensions; the stored byte order is converted to the native one.
///
/// # Errors
///
/// An error naming the file and, for damaged input, the place: `ErrorKind::Format`,
/// `ErrorKind::Truncated`, `ErrorKind::UnsupportedDType`, `ErrorKind::TooLarge` for sizes the file
/// cannot hold; `ErrorKind::OutOfMemory` over the memory limit or when the allocator refuses; I/O
/// errors. `ErrorKind::TypeMismatch` before any data is read when the file holds another element
/// type or number of dimensions.
pub fn load<T: Element, D: Dimension>(path: impl AsRef<Path>) -> Result<Array<T, D>> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with explicit options.
///
/// # Errors
///
/// An error naming the file and, for damaged input, the place: `ErrorKind::Format`,
/// `ErrorKind::Truncated`, `ErrorKind::UnsupportedDType`, `ErrorKind::TooLarge` for sizes the file
/// cannot hold; `ErrorKind::OutOfMemory` over the memory limit or when the allocator refuses; I/O
/// errors. `ErrorKind::TypeMismatch` before any data is read when the file holds another element
/// type or number of dimensions.
pub fn load_with<T: Element, D: Dimension>(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<Array<T, D>> {
    let path = path.as_ref();
    let (file, header, len) = open(path, options)?;
    check_type::<T, D>(&header.meta).map_err(|e| e.with_path(path))?;
    let array = read_data::<T>(Input::File { file: &file, len }, &header, options)
        .map_err(|e| e.with_path(path))?;
    into_dimensionality(array).map_err(|e| e.with_path(path))
}

/// Loads the `.npy` file at `path` whatever its element type, with its stored metadata.
///
/// # Errors
///
/// As [`load_dyn_with`].
pub fn load_dyn(path: impl AsRef<Path>) -> Result<(ArrayMeta, DynArray)> {
    load_dyn_with(path, &LoadOptions::default())
}

/// [`load_dyn`] with explicit options (a memory limit, say).
///
/// # Errors
///
/// An error naming the file and the byte for a damaged or hostile file;
/// [`ErrorKind::OutOfMemory`] when the data is over `options.memory_limit` or cannot be
/// allocated. The data size is checked against the file's length before anything is allocated.
pub fn load_dyn_with(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    let (file, header, len) = open(path, options)?;
    let array = read_dyn(Input::File { file: &file, len }, &header, options)
        .map_err(|e| e.with_path(path))?;
    Ok((header.meta, array))
}

/// Reads a `.npy` array of `T` and dimensionality `D` from a reader the caller owns.
///
/// The length of a stream is unknown, so memory grows only as data actually arrives: a header
/// that claims more than the stream holds fails at the end of the stream, not in the allocator.
///
/// # Errors
///
/// `ErrorKind::Format`, `ErrorKind::Truncated` or `ErrorKind::UnsupportedDType` for bytes that are
/// not a valid `.npy` stream (with the byte offset); `ErrorKind::OutOfMemory` when the allocator
/// refuses; the reader's I/O errors. `ErrorKind::TypeMismatch` before any data is read when the
/// file holds another element type or number of dimensions.
pub fn read_from<T: Element, D: Dimension>(reader: &mut dyn Read) -> Result<Array<T, D>> {
    let header = header::read(reader, DEFAULT_MAX_HEADER_LEN)?;
    check_type::<T, D>(&header.meta)?;
    let input = Input::Stream {
        reader,
        available: None,
        backed: false,
    };
    into_dimensionality(read_data::<T>(input, &header, &LoadOptions::default())?)
}

/// Reads a runtime-typed `.npy` array from a reader the caller owns.
///
/// # Errors
///
/// `ErrorKind::Format`, `ErrorKind::Truncated` or `ErrorKind::UnsupportedDType` for bytes that are
/// not a valid `.npy` stream (with the byte offset); `ErrorKind::OutOfMemory` when the allocator
/// refuses; the reader's I/O errors.
pub fn read_dyn_from(reader: &mut dyn Read) -> Result<(ArrayMeta, DynArray)> {
    read_dyn_from_limited(reader, &LoadOptions::default(), None, false)
}

/// Reads a runtime-typed `.npy` array from `reader`, which holds at most `available` bytes when
/// that is known (an archive member's declared size, say). With `backed`, those bytes are known
/// to exist (a stored member whose data lies inside the file), so the buffer is allocated at
/// once; otherwise (a compressed member) it grows as bytes arrive.
pub(crate) fn read_dyn_from_limited(
    reader: &mut dyn Read,
    options: &LoadOptions,
    available: Option<u64>,
    backed: bool,
) -> Result<(ArrayMeta, DynArray)> {
    let header = header::read(reader, options.max_header_len)?;
    let input = Input::Stream {
        reader,
        available,
        backed,
    };
    let array = read_dyn(input, &header, options)?;
    Ok((header.meta, array))
}

/// Reads a header from a reader the caller owns, leaving the reader at the first data byte.
///
/// # Errors
///
/// `ErrorKind::Format`, `ErrorKind::Truncated`, `ErrorKind::UnsupportedDType` or
/// `ErrorKind::TooLarge` for a header that is not valid, with its byte offset; the reader's I/O
/// errors.
pub fn read_header_from(reader: &mut dyn Read) -> Result<ArrayMeta> {
    Ok(header::read(reader, DEFAULT_MAX_HEADER_LEN)?.meta)
}

fn open(path: &Path, options: &LoadOptions) -> Result<(File, Header, u64)> {
    let mut file = ndstore_core::__private::load::open_for_load(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
        .len();
    let header = header::read(&mut file, options.max_header_len).map_err(|e| e.with_path(path))?;
    Ok((file, header, len))
}

fn read_dyn(input: Input<'_>, header: &Header, options: &LoadOptions) -> Result<DynArray> {
    with_dtype_kind!(header.meta.dtype.kind, |T| read_data::<T>(
        input, header, options
    )
    .map(DynArray::from))
}

fn check_type<T: Element, D: Dimension>(meta: &ArrayMeta) -> Result<()> {
    if meta.dtype.kind != T::KIND {
        return Err(ndstore_core::__private::array::type_mismatch(
            meta.dtype.kind,
            T::KIND,
        ));
    }
    if let Some(ndim) = D::NDIM
        && ndim != meta.shape.len()
    {
        return Err(Error::new(
            ErrorKind::TypeMismatch,
            format!(
                "the file holds a {}-d array, but a {ndim}-d array was requested",
                meta.shape.len()
            ),
        ));
    }
    Ok(())
}

fn into_dimensionality<T, D: Dimension>(array: ArrayD<T>) -> Result<Array<T, D>> {
    let ndim = array.ndim();
    array.into_dimensionality::<D>().map_err(|_| {
        Error::new(
            ErrorKind::TypeMismatch,
            format!("the file holds a {ndim}-d array of another dimensionality"),
        )
    })
}

/// Where the data comes from: a file of known length, read with `pread` (large arrays on
/// several threads, see [`ndstore_core::bulk`]), or a stream, read in order.
enum Input<'a> {
    File {
        file: &'a File,
        len: u64,
    },
    Stream {
        reader: &'a mut dyn Read,
        /// The most bytes the stream can hold, when known (an archive member's size).
        available: Option<u64>,
        /// The `available` bytes are known to exist, so they may be allocated at once.
        backed: bool,
    },
}

/// Reads the data that `header` describes. With a known length the size is checked before the
/// one allocation; without it, the buffer grows as bytes arrive. Either way the size must fit
/// `options.memory_limit`, and a refused allocation is an error.
fn read_data<T: Element>(
    input: Input<'_>,
    header: &Header,
    options: &LoadOptions,
) -> Result<ArrayD<T>> {
    let meta = &header.meta;
    let count = meta.element_count().map_err(|e| e.at_offset(0))?;
    let byte_len = meta.byte_len().map_err(|e| e.at_offset(0))? as u64;
    options.admit(byte_len)?;
    let start = header.data_offset;
    let check_len = |len: u64| -> Result<()> {
        let end = start.checked_add(byte_len);
        if end.is_none_or(|end| end > len) {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!(
                    "the header declares {byte_len} data bytes from byte {start}, but the input holds only {}",
                    len.saturating_sub(start)
                ),
            )
            .at_offset(len));
        }
        Ok(())
    };
    let raw: Vec<T::Raw> = match input {
        Input::File { file, len } => {
            check_len(len)?;
            let mut raw = alloc_raw::<T::Raw>(count)?;
            ndstore_core::__private::bulk::read_exact_at(
                file,
                bytemuck::cast_slice_mut(&mut raw),
                start,
            )?;
            raw
        }
        Input::Stream {
            reader,
            available: Some(len),
            backed: true,
        } => {
            check_len(len)?;
            let mut raw = alloc_raw::<T::Raw>(count)?;
            header::read_fully(
                reader,
                bytemuck::cast_slice_mut(&mut raw),
                start,
                "the data ends early",
            )?;
            raw
        }
        Input::Stream {
            reader,
            available,
            backed: _,
        } => {
            if let Some(len) = available {
                check_len(len)?;
            }
            read_growing::<T::Raw>(reader, count, start)?
        }
    };
    T::validate_raw(&raw).map_err(|index| {
        Error::new(
            ErrorKind::Format,
            format!("element {index} is not a valid {}", T::KIND),
        )
        .at_offset(start + (index * T::KIND.itemsize()) as u64)
    })?;
    array_from_raw::<T>(meta, raw)
}

/// Reads `count` raw values from a stream of unknown length, growing the buffer by at most
/// 16 MiB at a time, so memory never runs ahead of the bytes actually received.
fn read_growing<R: bytemuck::Pod>(
    reader: &mut dyn Read,
    count: usize,
    start: u64,
) -> Result<Vec<R>> {
    let step = ((16usize << 20) / std::mem::size_of::<R>().max(1)).max(1);
    let mut raw: Vec<R> = Vec::new();
    while raw.len() < count {
        let filled = raw.len();
        let next = (count - filled).min(step.max(filled));
        raw.try_reserve_exact(next).map_err(|_| {
            Error::new(
                ErrorKind::OutOfMemory,
                format!(
                    "cannot allocate {} bytes for the array data",
                    (filled + next) * std::mem::size_of::<R>()
                ),
            )
        })?;
        raw.resize(filled + next, R::zeroed());
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut raw[filled..]);
        let offset = start + (filled * std::mem::size_of::<R>()) as u64;
        header::read_fully(
            reader,
            bytes,
            offset,
            "the data ends before the size the header declares",
        )?;
    }
    Ok(raw)
}

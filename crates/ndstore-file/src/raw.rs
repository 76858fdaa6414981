//! Raw binary files, as numpy's `tofile` and `fromfile` write and read them: element bytes
//! only, with dtype, shape and order supplied by the caller.

use std::path::Path;

use ndarray::{Array, ArrayBase, ArrayViewD, Data, Dimension};
use ndstore_core::__private::codec::{alloc_raw, array_from_raw, layout_order, write_elements};
use ndstore_core::{
    ArrayMeta, DType, DynArray, Element, Error, ErrorKind, Result, SaveOptions, with_dtype_kind,
    with_dyn_array,
};

/// Saves the elements of `array` with nothing else, and returns the metadata needed to read
/// them back (a raw file cannot say what it holds).
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save_raw<A, S, D>(
    path: impl AsRef<Path>,
    array: &ArrayBase<S, D>,
    options: &SaveOptions,
) -> Result<ArrayMeta>
where
    A: Element,
    S: Data<Elem = A>,
    D: Dimension,
{
    save_view(path.as_ref(), array.view().into_dyn(), options)
}

/// Saves the elements of a runtime-typed array; see [`save_raw`].
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save_raw_dyn(
    path: impl AsRef<Path>,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<ArrayMeta> {
    with_dyn_array!(array, |a| save_view(path.as_ref(), a.view(), options))
}

fn save_view<T: Element>(
    path: &Path,
    view: ArrayViewD<'_, T>,
    options: &SaveOptions,
) -> Result<ArrayMeta> {
    let meta = ArrayMeta::new(
        DType::new(T::KIND, options.effective_byte_order()),
        view.shape().to_vec(),
        layout_order(&view),
    );
    ndstore_core::write_file(path, options, |file| {
        ndstore_core::__private::os::preallocate(file, meta.byte_len()? as u64);
        write_elements(&view, meta.order, meta.dtype.byte_order, &mut |bytes| {
            std::io::Write::write_all(file, bytes)
        })
        .map_err(|e| Error::io("writing raw data", e))
    })?;
    Ok(meta)
}

/// Loads a raw file holding exactly the elements `meta` describes, as `T` with dimensionality `D`.
///
/// The file's length must equal the shape's byte count: a raw file has no header to check, so
/// its size is the only evidence that the caller's metadata is right.
///
/// # Errors
///
/// `ErrorKind::Truncated` (shorter) or `ErrorKind::InvalidInput` (longer) when the file's length
/// is not the shape's byte count, both named;
/// `ErrorKind::TypeMismatch` when `meta` describes another element type or number of dimensions;
/// `ErrorKind::OutOfMemory` when the allocator refuses; I/O errors.
pub fn load_raw<T: Element, D: Dimension>(
    path: impl AsRef<Path>,
    meta: &ArrayMeta,
) -> Result<Array<T, D>> {
    let path = path.as_ref();
    let array = load_raw_dyn(path, meta)?
        .into_typed::<T>()
        .map_err(|e| e.with_path(path))?;
    let ndim = array.ndim();
    array.into_dimensionality::<D>().map_err(|_| {
        Error::new(
            ErrorKind::TypeMismatch,
            format!("the metadata describes a {ndim}-d array of another dimensionality"),
        )
        .with_path(path)
    })
}

/// Loads a raw file as a runtime-typed array; see [`load_raw`].
///
/// # Errors
///
/// `ErrorKind::Truncated` (shorter) or `ErrorKind::InvalidInput` (longer) when the file's length
/// is not the shape's byte count, both named;
/// `ErrorKind::OutOfMemory` when the allocator refuses; I/O errors.
pub fn load_raw_dyn(path: impl AsRef<Path>, meta: &ArrayMeta) -> Result<DynArray> {
    let path = path.as_ref();
    let mut file = ndstore_core::__private::load::open_for_load(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
        .len();
    let want = meta.byte_len().map_err(|e| e.with_path(path))? as u64;
    if len != want {
        let kind = if len < want {
            ErrorKind::Truncated
        } else {
            ErrorKind::InvalidInput
        };
        return Err(Error::new(
            kind,
            format!(
                "the file holds {len} bytes, but shape {:?} of {} needs {want}",
                meta.shape, meta.dtype
            ),
        )
        .with_path(path)
        .at_offset(len.min(want)));
    }
    with_dtype_kind!(meta.dtype.kind, |T| {
        let mut raw = alloc_raw::<<T as Element>::Raw>(meta.element_count()?)?;
        crate::header::read_fully(
            &mut file,
            bytemuck::cast_slice_mut(&mut raw),
            0,
            "the data ends early",
        )
        .map_err(|e| e.with_path(path))?;
        array_from_raw::<T>(meta, raw)
            .map(DynArray::from)
            .map_err(|e| e.with_path(path))
    })
}

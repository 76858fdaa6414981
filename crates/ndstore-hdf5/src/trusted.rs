//! The in-process path: the same loads, metadata, listings and slices as the crate's default
//! functions, with libhdf5 running in the caller's own process. For files you wrote yourself or
//! otherwise trust.
//!
//! # What it risks
//!
//! libhdf5 is not hardened against damaged or hostile files: its history holds many memory-safety
//! bugs on malformed input, and a single flipped bit in an ndstore file's attribute heap was
//! enough to crash it (SIGSEGV in `H5HG_read`) or make it loop forever. On this path such a
//! file can kill the calling process with a signal, hang it, or corrupt its memory; the error
//! values cover only what libhdf5 itself reports. Sizes are still checked before allocation
//! (as on the default path), but libhdf5's own allocations are not bounded. What it saves is the
//! isolated reader's fork (about a millisecond, more for a process with a large heap) and, for
//! data that is not read straight from the file, one copy.
//!
//! ```
//! use ndarray::array;
//! use ndstore_core::{DynArray, SaveOptions};
//! # fn main() -> ndstore_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("mine.h5");
//! let a = DynArray::from(array![1.0f64, 2.0].into_dyn());
//! ndstore_hdf5::save_dyn(&path, ndstore_hdf5::DEFAULT_DATASET, &a, &SaveOptions::default())?;
//! // A file this program just wrote: no need for a reader process.
//! let (_, b) = ndstore_hdf5::trusted::load_dyn(&path, ndstore_hdf5::DEFAULT_DATASET)?;
//! assert!(a.bit_eq(&b));
//! # Ok(())
//! # }
//! ```

use std::ops::Range;
use std::path::Path;

use hdf5_metno::Dataset;
use ndarray::ArrayD;
use ndstore_core::{
    ArrayMeta, DTypeKind, DynArray, Element, LoadOptions, Order, Result, with_dtype_kind,
};

use crate::h5::At;
use crate::read;
use crate::sys;
use crate::tree::{self, Entry};

/// Opens `path` with libhdf5 in this process; `NotFound` when there is no such file.
fn open(path: &Path) -> Result<hdf5_metno::File> {
    // A missing file, a FIFO (libhdf5 would wait on it forever) or a device is refused here.
    drop(ndstore_core::__private::load::open_for_load(path)?);
    read::open_file(path, path)
}

/// The length of the file libhdf5 has open, from its own descriptor.
fn file_len(file: &hdf5_metno::File, path: &Path) -> Option<u64> {
    sys::vfd_file(file)
        .and_then(|f| f.metadata().ok())
        .map(|m| m.len())
        .or_else(|| std::fs::metadata(path).ok().map(|m| m.len()))
}

/// Reads all of `dataset` as `T`: straight from libhdf5's own descriptor when the plan allows,
/// through libhdf5 otherwise.
fn read_values<T: Element>(
    file: &hdf5_metno::File,
    dataset: &Dataset,
    meta: &ArrayMeta,
    plan: &read::Plan,
    at: At<'_>,
) -> Result<ArrayD<T>> {
    let count = meta.element_count().map_err(|e| e.with_path(at.path))?;
    let mut raw: Vec<T::Raw> =
        ndstore_core::__private::codec::alloc_raw(count).map_err(|e| at.locate(e))?;
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut raw);
    match (plan.direct, sys::vfd_file(file)) {
        (Some(offset), Some(own)) => {
            ndstore_core::__private::bulk::read_exact_at(&own, bytes, offset)
                .map_err(|e| e.with_path(at.path))?
        }
        _ => read::read_all(dataset, meta.dtype.kind, bytes, at)?,
    }
    read::array_from_raw::<T>(raw, &meta.shape, meta.effective_order(), at)
}

/// Loads dataset `name` of the file at `path`, whatever its dtype, in this process.
///
/// # Errors
///
/// As [`crate::load_dyn`], except that a file libhdf5 crashes or hangs on takes this process
/// with it (see the module documentation).
pub fn load_dyn(path: impl AsRef<Path>, name: &str) -> Result<(ArrayMeta, DynArray)> {
    load_with(path, name, &LoadOptions::default())
}

/// [`load_dyn`] with the caller's memory limit.
///
/// # Errors
///
/// As [`load_dyn`].
pub fn load_with(
    path: impl AsRef<Path>,
    name: &str,
    options: &LoadOptions,
) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    let at = At::new(path, name);
    let file = open(path)?;
    let dataset = read::open_dataset(&file, at)?;
    let meta = read::describe(&dataset, at)?;
    let len = file_len(&file, path).unwrap_or(u64::MAX);
    let plan = read::plan(&dataset, &meta, at, len, options, None)?;
    let array = with_dtype_kind!(meta.dtype.kind, |T| read_values::<T>(
        &file, &dataset, &meta, &plan, at
    )
    .map(DynArray::from))?;
    Ok((meta, array))
}

/// Loads dataset `name` as `kind`, failing with a type mismatch before reading other types, in
/// this process.
///
/// # Errors
///
/// As [`load_dyn`], and `TypeMismatch` when the dataset holds another dtype.
pub fn load_as(path: impl AsRef<Path>, name: &str, kind: DTypeKind) -> Result<DynArray> {
    let path = path.as_ref();
    let meta = read_meta(path, name)?;
    if meta.dtype.kind != kind {
        let mismatch = ndstore_core::__private::array::type_mismatch(meta.dtype.kind, kind);
        return Err(At::new(path, name).locate(mismatch));
    }
    load_dyn(path, name).map(|(_, array)| array)
}

/// Reads dataset `name`'s metadata without its data, in this process.
///
/// # Errors
///
/// As [`load_dyn`].
pub fn read_meta(path: impl AsRef<Path>, name: &str) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let at = At::new(path, name);
    let file = open(path)?;
    let dataset = read::open_dataset(&file, at)?;
    read::describe(&dataset, at)
}

/// Every object of the file, as [`crate::list`] lists them, in this process.
///
/// # Errors
///
/// As [`load_dyn`] for the file itself.
pub fn list(path: impl AsRef<Path>) -> Result<Vec<Entry>> {
    let path = path.as_ref();
    let file = open(path)?;
    tree::list(&file, path, tree::DEFAULT_MAX_DEPTH)
}

/// Reads the box `ranges` of dataset `name`, C-ordered, in this process.
///
/// # Errors
///
/// As [`load_dyn`], and `InvalidInput` naming the axis when the box does not fit the dataset.
pub fn read_slice(path: impl AsRef<Path>, name: &str, ranges: &[Range<usize>]) -> Result<DynArray> {
    let path = path.as_ref();
    let at = At::new(path, name);
    let file = open(path)?;
    let dataset = read::open_dataset(&file, at)?;
    let meta = read::describe(&dataset, at)?;
    with_dtype_kind!(meta.dtype.kind, |T| read_box_values::<T>(
        &dataset, &meta, ranges, None, at
    )
    .map(DynArray::from))
}

/// Reads the box `ranges` of an open dataset as `T` through libhdf5, C-ordered, after the size
/// checks of [`read::plan`] (with the file's length when known).
pub(crate) fn read_box_values<T: Element>(
    dataset: &Dataset,
    meta: &ArrayMeta,
    ranges: &[Range<usize>],
    file_len: Option<u64>,
    at: At<'_>,
) -> Result<ArrayD<T>> {
    let shape = read::box_shape(ranges, &meta.shape, at)?;
    let boxed = ArrayMeta::new(meta.dtype, shape, Order::C);
    let count = boxed.element_count().map_err(|e| e.with_path(at.path))?;
    let bytes = boxed.byte_len().map_err(|e| e.with_path(at.path))? as u64;
    read::plan(
        dataset,
        meta,
        at,
        file_len.unwrap_or(u64::MAX),
        &LoadOptions::default(),
        Some(bytes),
    )?;
    let mut raw: Vec<T::Raw> =
        ndstore_core::__private::codec::alloc_raw(count).map_err(|e| at.locate(e))?;
    let out = bytemuck::cast_slice_mut(&mut raw);
    read::read_box(dataset, meta.dtype.kind, ranges, out, at)?;
    read::array_from_raw::<T>(raw, &boxed.shape, Order::C, at)
}

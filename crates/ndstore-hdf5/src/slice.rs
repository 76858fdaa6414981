//! Hyperslabs: reading or writing a box of a dataset (a range per axis) without touching the
//! rest of it.

use std::ops::Range;
use std::path::Path;

use hdf5_metno::{Dataset, Hyperslab, Selection, SliceOrIndex};
use ndarray::IxDyn;
use ndstore_core::{DynArray, Error, ErrorKind, Location, Result, with_dtype_kind};

use crate::h5::{H5Element, dataset_meta, h5_error, open_dataset, open_read};

/// The HDF5 selection of the box `ranges` (one range per axis) in a dataset of `shape`, or an
/// error naming the file, the object and the first axis the box does not fit.
pub(crate) fn selection(
    ranges: &[Range<usize>],
    shape: &[usize],
    path: &Path,
    name: &str,
) -> Result<Selection> {
    let invalid = |why: String| {
        Error::new(ErrorKind::InvalidInput, why)
            .with_path(path)
            .at(Location::Object(name.to_owned()))
    };
    if ranges.len() != shape.len() {
        return Err(invalid(format!(
            "{} ranges given for a dataset with {} axes (shape {shape:?})",
            ranges.len(),
            shape.len()
        )));
    }
    if shape.is_empty() {
        return Ok(Selection::All);
    }
    let mut dims = Vec::with_capacity(shape.len());
    for (axis, (range, &len)) in ranges.iter().zip(shape).enumerate() {
        if range.start > range.end || range.end > len {
            return Err(invalid(format!(
                "range {range:?} on axis {axis} does not fit the dataset's shape {shape:?}"
            )));
        }
        dims.push(SliceOrIndex::SliceCount {
            start: range.start,
            step: 1,
            count: range.end - range.start,
            block: 1,
        });
    }
    Ok(Selection::Hyperslab(Hyperslab::from(dims)))
}

/// Reads the box `ranges` of an open dataset as `T`, in C order.
pub(crate) fn read_box<T: H5Element>(
    dataset: &Dataset,
    ranges: &[Range<usize>],
    path: &Path,
    name: &str,
) -> Result<ndarray::ArrayD<T>> {
    let selection = selection(ranges, &dataset.shape(), path, name)?;
    dataset
        .read_slice::<T, _, IxDyn>(selection)
        .map_err(|e| h5_error(e, path, name))
}

/// Reads the box `ranges` (one range per axis, in the dataset's logical indices) of dataset
/// `name` of the file at `path`, reading only the chunks or bytes the box covers. The result is
/// C-ordered, whatever order the dataset records.
///
/// ```
/// # use ndarray::Array2;
/// # use ndstore_core::{DynArray, SaveOptions};
/// # fn main() -> ndstore_core::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("grid.h5");
/// let grid = Array2::from_shape_fn((100, 50), |(i, j)| (i * 50 + j) as i32);
/// ndstore_hdf5::save_dyn(&path, "grid", &DynArray::from(grid.into_dyn()), &SaveOptions::default())?;
/// let corner = ndstore_hdf5::read_slice(&path, "grid", &[10..12, 0..3])?.into_typed::<i32>()?;
/// assert_eq!(corner.shape(), &[2, 3]);
/// assert_eq!(corner[[1, 2]], 11 * 50 + 2);
/// # Ok(())
/// # }
/// ```
pub fn read_slice(path: impl AsRef<Path>, name: &str, ranges: &[Range<usize>]) -> Result<DynArray> {
    let path = path.as_ref();
    let file = open_read(path)?;
    let dataset = open_dataset(&file, path, name)?;
    let meta = dataset_meta(&dataset, path, name)?;
    with_dtype_kind!(meta.dtype.kind, T => read_box::<T>(&dataset, ranges, path, name).map(DynArray::from))
}

/// Writes `values` into an open dataset at `start` (one index per axis).
pub(crate) fn write_box<T: H5Element>(
    dataset: &Dataset,
    start: &[usize],
    values: ndarray::ArrayViewD<'_, T>,
    path: &Path,
    name: &str,
) -> Result<()> {
    if start.len() != values.ndim() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a start of {} indices for values with {} axes",
                start.len(),
                values.ndim()
            ),
        )
        .with_path(path)
        .at(Location::Object(name.to_owned())));
    }
    let ranges: Vec<Range<usize>> = start
        .iter()
        .zip(values.shape())
        .map(|(&s, &n)| s..s.saturating_add(n))
        .collect();
    let selection = selection(&ranges, &dataset.shape(), path, name)?;
    if values.is_empty() {
        return Ok(());
    }
    let standard = values.as_standard_layout();
    dataset
        .write_slice(&standard, selection)
        .map_err(|e| h5_error(e, path, name))
}

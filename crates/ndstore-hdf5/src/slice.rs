//! Hyperslabs: the selection of a box of a dataset (a range per axis), and writing a box without
//! touching the rest of the dataset. Reading a box is `read::read_box`.

use std::ops::Range;

use hdf5_metno::{Dataset, Hyperslab, Selection, SliceOrIndex};
use ndstore_core::{ErrorKind, Result};

use crate::h5::{At, H5Element};

/// The HDF5 selection of the box `ranges` (one range per axis) in a dataset of `shape`, or an
/// error naming the file, the object and the first axis the box does not fit.
pub(crate) fn selection(ranges: &[Range<usize>], shape: &[usize], at: At<'_>) -> Result<Selection> {
    let invalid = |why: String| at.error(ErrorKind::InvalidInput, why);
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

/// Writes `values` into an open dataset at `start` (one index per axis).
pub(crate) fn write_box<T: H5Element>(
    dataset: &Dataset,
    start: &[usize],
    values: ndarray::ArrayViewD<'_, T>,
    at: At<'_>,
) -> Result<()> {
    if start.len() != values.ndim() {
        return Err(at.error(
            ErrorKind::InvalidInput,
            format!(
                "a start of {} indices for values with {} axes",
                start.len(),
                values.ndim()
            ),
        ));
    }
    let ranges: Vec<Range<usize>> = start
        .iter()
        .zip(values.shape())
        .map(|(&s, &n)| s..s.saturating_add(n))
        .collect();
    let selection = selection(&ranges, &dataset.shape(), at)?;
    if values.is_empty() {
        return Ok(());
    }
    let standard = values.as_standard_layout();
    dataset
        .write_slice(&standard, selection)
        .map_err(|e| at.h5(e))
}

//! Loading whole text arrays: typed or runtime-typed, with the metadata line's dtype, shape and
//! order restored.

use std::path::Path;

use ndarray::{Array, ArrayD, Dimension, IxDyn, ShapeBuilder};
use ndstore_core::{
    ArrayMeta, DynArray, Element, Error, ErrorKind, Order, Result, with_dtype_kind,
};

use crate::options::TextOptions;
use crate::read::{TextReader, read_all};
use crate::value::TextValue;

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
    let reader = TextReader::open(
        path,
        &options.clone().dtype(
            options
                .dtype
                .unwrap_or(ndstore_core::DType::native(T::KIND)),
        ),
    )?;
    let (meta, values) = read_all::<T>(reader)?;
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
pub fn load_dyn(path: impl AsRef<Path>, options: &TextOptions) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    let reader = TextReader::open(path, options)?;
    let kind = reader.dtype().kind;
    with_dtype_kind!(kind, T => {
        let (meta, values) = read_all::<T>(reader)?;
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

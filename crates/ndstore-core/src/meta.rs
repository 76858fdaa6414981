//! Array metadata (dtype, shape, order) and the checked size arithmetic every reader relies on
//! before it allocates.

use serde::{Deserialize, Serialize};

use crate::dtype::{DType, Order};
use crate::error::{Error, ErrorKind, Result};

/// What an array is, without its data: enough to size a buffer and to interpret bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArrayMeta {
    /// The stored element type, byte order included.
    pub dtype: DType,
    /// The length of each axis; empty for a 0-d (scalar) array.
    pub shape: Vec<usize>,
    /// The memory order the elements are stored in.
    pub order: Order,
}

impl ArrayMeta {
    /// Metadata for an array of `dtype` and `shape` stored in `order`.
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>, order: Order) -> ArrayMeta {
        ArrayMeta {
            dtype,
            shape: shape.into(),
            order,
        }
    }

    /// The number of elements, or an error when the product overflows.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TooLarge` when the product of the shape overflows `usize`.
    pub fn element_count(&self) -> Result<usize> {
        element_count(&self.shape)
    }

    /// The number of data bytes, or an error when shape × itemsize overflows. The lengths other
    /// than zero, times the itemsize, must fit `isize` even when an axis of zero leaves no
    /// bytes: no array (ndarray's or numpy's) can have such a shape.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TooLarge` when the byte count overflows `usize`.
    pub fn byte_len(&self) -> Result<usize> {
        let count = self.element_count()?;
        nonzero_product(&self.shape)
            .and_then(|n| n.checked_mul(self.dtype.itemsize()))
            .filter(|&n| n <= isize::MAX as usize)
            .map(|_| count * self.dtype.itemsize())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::TooLarge,
                    format!(
                        "shape {:?} of {} elements overflows the address space",
                        self.shape, self.dtype
                    ),
                )
            })
    }

    /// The memory order that matters: arrays with no elements, or with at most one axis longer
    /// than 1, are the same in C and Fortran order and are reported as C (as numpy does).
    pub fn effective_order(&self) -> Order {
        let empty = self.shape.contains(&0);
        if !empty && self.shape.iter().filter(|&&n| n > 1).count() > 1 {
            self.order
        } else {
            Order::C
        }
    }
}

/// The product of the lengths other than zero, when it fits `isize`.
fn nonzero_product(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .filter(|&&n| n != 0)
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= isize::MAX as usize)
}

/// The product of `shape`, or an error when the lengths other than zero multiply past
/// `isize::MAX` (ndarray's limit, which an axis of zero does not lift).
///
/// # Errors
///
/// `ErrorKind::TooLarge` when the product overflows `usize`.
pub fn element_count(shape: &[usize]) -> Result<usize> {
    nonzero_product(shape)
        .map(|n| if shape.contains(&0) { 0 } else { n })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::TooLarge,
                format!("shape {shape:?} has more elements than fit in memory"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DTypeKind;

    #[test]
    fn an_axis_of_zero_does_not_lift_the_limit_on_the_others() {
        let f64 = DType::native(DTypeKind::F64);
        let past_isize = ArrayMeta::new(f64, vec![2, isize::MAX as usize, 0], Order::C);
        assert_eq!(
            past_isize.byte_len().unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        assert_eq!(
            past_isize.element_count().unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        // The elements fit isize, their bytes do not.
        let bytes_past = ArrayMeta::new(f64, vec![0, 1 << 60], Order::C);
        assert_eq!(bytes_past.element_count().unwrap(), 0);
        assert_eq!(
            bytes_past.byte_len().unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        let empty = ArrayMeta::new(f64, vec![0, 1 << 40], Order::C);
        assert_eq!(empty.byte_len().unwrap(), 0);
    }

    #[test]
    fn byte_len_is_checked() {
        let meta = ArrayMeta::new(
            DType::native(DTypeKind::F64),
            vec![1 << 40, 1 << 30],
            Order::C,
        );
        assert_eq!(meta.byte_len().unwrap_err().kind(), ErrorKind::TooLarge);
        let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![3, 4], Order::C);
        assert_eq!(meta.byte_len().unwrap(), 96);
        let scalar = ArrayMeta::new(DType::native(DTypeKind::U8), vec![], Order::C);
        assert_eq!(scalar.byte_len().unwrap(), 1);
        let empty = ArrayMeta::new(DType::native(DTypeKind::U8), vec![3, 0], Order::C);
        assert_eq!(empty.byte_len().unwrap(), 0);
    }

    #[test]
    fn order_matters_only_with_two_long_axes() {
        let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![1, 7], Order::Fortran);
        assert_eq!(meta.effective_order(), Order::C);
        let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![2, 7], Order::Fortran);
        assert_eq!(meta.effective_order(), Order::Fortran);
        let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![2, 0, 7], Order::Fortran);
        assert_eq!(meta.effective_order(), Order::C);
        let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![2, 0, 7], Order::Fortran);
        assert_eq!(meta.effective_order(), Order::C);
    }
}

//! `DynArray`: an array whose element type is known only at run time, for files read without
//! knowing their dtype in advance.

use half::f16;
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex;

use crate::codec::layout_order;
use crate::dtype::{DTypeKind, Order};
use crate::element::Element;
use crate::error::{Detail, Error, ErrorKind, Result};

/// An n-dimensional array of any supported element type.
///
/// Values are always held in the machine's native byte order; the stored byte order is part of
/// the file's [`ArrayMeta`](crate::ArrayMeta), not of the values.
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use ndstore_core::{DTypeKind, DynArray, ErrorKind};
///
/// let any = DynArray::from(ArrayD::from_elem(IxDyn(&[2, 3]), 1.5f32));
/// assert_eq!((any.kind(), any.shape()), (DTypeKind::F32, &[2, 3][..]));
/// let err = any.clone().into_typed::<f64>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TypeMismatch);
/// let typed: ArrayD<f32> = any.into_typed()?;
/// assert_eq!(typed[[1, 2]], 1.5);
/// # Ok::<(), ndstore_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum DynArray {
    Bool(ArrayD<bool>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    F16(ArrayD<f16>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    Complex64(ArrayD<Complex<f32>>),
    Complex128(ArrayD<Complex<f64>>),
}

/// Runs `body` with `a` bound to the typed array inside a [`DynArray`] (by value, reference or
/// mutable reference, as the value is), so generic code handles every element type in one
/// place: `with_dyn_array!(value, |a| body)`.
///
/// The body is spelled like a closure so that rustfmt formats it, but it is not one: it is
/// expanded once per element type into the caller's function, where `?` and `return` act.
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use ndstore_core::{DynArray, with_dyn_array};
///
/// let any = DynArray::from(ArrayD::from_elem(IxDyn(&[2, 2]), 3u16));
/// let sum: u64 = with_dyn_array!(&any, |a| a.iter().map(|v| format!("{v:?}").len() as u64).sum());
/// assert_eq!(sum, 4);
/// ```
#[macro_export]
macro_rules! with_dyn_array {
    ($value:expr, |$a:ident| $body:expr) => {
        match $value {
            $crate::DynArray::Bool($a) => $body,
            $crate::DynArray::I8($a) => $body,
            $crate::DynArray::I16($a) => $body,
            $crate::DynArray::I32($a) => $body,
            $crate::DynArray::I64($a) => $body,
            $crate::DynArray::U8($a) => $body,
            $crate::DynArray::U16($a) => $body,
            $crate::DynArray::U32($a) => $body,
            $crate::DynArray::U64($a) => $body,
            $crate::DynArray::F16($a) => $body,
            $crate::DynArray::F32($a) => $body,
            $crate::DynArray::F64($a) => $body,
            $crate::DynArray::Complex64($a) => $body,
            $crate::DynArray::Complex128($a) => $body,
        }
    };
}

/// Runs `body` with the type alias `T` naming the Rust element type of a
/// [`DTypeKind`](crate::DTypeKind): `with_dtype_kind!(kind, |T| body)`, a closure's spelling
/// (which rustfmt formats) for code expanded once per type, as in [`with_dyn_array!`].
#[macro_export]
macro_rules! with_dtype_kind {
    ($kind:expr, |$t:ident| $body:expr) => {
        match $kind {
            $crate::DTypeKind::Bool => {
                type $t = bool;
                $body
            }
            $crate::DTypeKind::I8 => {
                type $t = i8;
                $body
            }
            $crate::DTypeKind::I16 => {
                type $t = i16;
                $body
            }
            $crate::DTypeKind::I32 => {
                type $t = i32;
                $body
            }
            $crate::DTypeKind::I64 => {
                type $t = i64;
                $body
            }
            $crate::DTypeKind::U8 => {
                type $t = u8;
                $body
            }
            $crate::DTypeKind::U16 => {
                type $t = u16;
                $body
            }
            $crate::DTypeKind::U32 => {
                type $t = u32;
                $body
            }
            $crate::DTypeKind::U64 => {
                type $t = u64;
                $body
            }
            $crate::DTypeKind::F16 => {
                type $t = $crate::half::f16;
                $body
            }
            $crate::DTypeKind::F32 => {
                type $t = f32;
                $body
            }
            $crate::DTypeKind::F64 => {
                type $t = f64;
                $body
            }
            $crate::DTypeKind::Complex64 => {
                type $t = $crate::num_complex::Complex<f32>;
                $body
            }
            $crate::DTypeKind::Complex128 => {
                type $t = $crate::num_complex::Complex<f64>;
                $body
            }
        }
    };
}

impl DynArray {
    /// The element type.
    pub fn kind(&self) -> DTypeKind {
        with_dyn_array!(self, |a| element_kind_of(a))
    }

    /// The length of each axis.
    pub fn shape(&self) -> &[usize] {
        with_dyn_array!(self, |a| a.shape())
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        with_dyn_array!(self, |a| a.len())
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory order a save would record: C when the array is C-contiguous, Fortran when it is
    /// only Fortran-contiguous, C otherwise (the elements are then copied in C order).
    pub fn layout_order(&self) -> Order {
        with_dyn_array!(self, |a| layout_order(&a.view()))
    }

    /// A zero-filled array of `kind`, `shape` and `order`, or an error when the size overflows.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TooLarge` when the shape's element count overflows; `ErrorKind::OutOfMemory`
    /// when the allocator refuses.
    pub fn zeros(kind: DTypeKind, shape: &[usize], order: Order) -> Result<DynArray> {
        crate::meta::element_count(shape)?;
        let shape = ndarray::ShapeBuilder::set_f(IxDyn(shape), order == Order::Fortran);
        Ok(with_dtype_kind!(kind, |T| T::into_dyn_array(
            ArrayD::<T>::from_shape_simple_fn(shape, <T as bytemuck::Zeroable>::zeroed,)
        )))
    }

    /// Unwraps the typed array, or says which type the data really has.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch`, with a `Detail::TypeMismatch`, when the array holds another
    /// element type.
    pub fn into_typed<T: Element>(self) -> Result<ArrayD<T>> {
        let found = self.kind();
        T::try_from_dyn_array(self).map_err(|_| type_mismatch(found, T::KIND))
    }

    /// True when both arrays have the same element type, shape and bit-identical values
    /// (NaN payloads and the sign of zero included). Memory layout is not compared.
    pub fn bit_eq(&self, other: &DynArray) -> bool {
        fn same<T: Element>(a: &ArrayD<T>, b: &DynArray) -> bool {
            let Some(b) = T::view_dyn_array(b) else {
                return false;
            };
            a.shape() == b.shape()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| bytemuck::bytes_of(x) == bytemuck::bytes_of(y))
        }
        with_dyn_array!(self, |a| same(a, other))
    }
}

fn element_kind_of<T: Element>(_: &ArrayD<T>) -> DTypeKind {
    T::KIND
}

/// The error for a load that asked for `wanted` from data holding `found`, with both as a
/// [`Detail::TypeMismatch`].
pub fn type_mismatch(found: DTypeKind, wanted: DTypeKind) -> Error {
    Error::new(
        ErrorKind::TypeMismatch,
        format!("the data holds {found} elements, but {wanted} was requested"),
    )
    .with_detail(Detail::TypeMismatch { found, wanted })
}

impl<T: Element> From<ArrayD<T>> for DynArray {
    fn from(array: ArrayD<T>) -> DynArray {
        T::into_dyn_array(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    #[test]
    fn bit_eq_sees_nan_payloads_and_signed_zero() {
        let a = DynArray::from(ArrayD::from_elem(
            IxDyn(&[2]),
            f64::from_bits(0x7ff8_0000_0000_0001),
        ));
        let b = DynArray::from(ArrayD::from_elem(
            IxDyn(&[2]),
            f64::from_bits(0x7ff8_0000_0000_0002),
        ));
        assert!(a.bit_eq(&a.clone()));
        assert!(!a.bit_eq(&b));
        let z = DynArray::from(ArrayD::from_elem(IxDyn(&[1]), 0.0f64));
        let nz = DynArray::from(ArrayD::from_elem(IxDyn(&[1]), -0.0f64));
        assert!(!z.bit_eq(&nz));
    }

    #[test]
    fn into_typed_names_both_types() {
        let a = DynArray::from(ArrayD::<i32>::zeros(IxDyn(&[3])));
        let err = a.into_typed::<f64>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TypeMismatch);
        assert!(
            err.to_string().contains("i32") && err.to_string().contains("f64"),
            "{err}"
        );
        assert_eq!(
            err.detail(),
            Some(&Detail::TypeMismatch {
                found: DTypeKind::I32,
                wanted: DTypeKind::F64
            })
        );
    }

    #[test]
    fn layout_order_follows_contiguity() {
        let f = DynArray::from(ArrayD::<u16>::zeros(IxDyn(&[3, 4]).f()));
        assert_eq!(f.layout_order(), Order::Fortran);
        let c = DynArray::zeros(DTypeKind::U16, &[3, 4], Order::C).unwrap();
        assert_eq!(c.layout_order(), Order::C);
        let f2 = DynArray::zeros(DTypeKind::Bool, &[3, 4], Order::Fortran).unwrap();
        assert_eq!(f2.layout_order(), Order::Fortran);
    }
}

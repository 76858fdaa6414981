//! The element trait: which Rust types ndstore stores, and how their bytes are checked on the
//! way in.

use std::fmt::Debug;

use half::f16;
use ndarray::{ArrayD, ArrayViewD};
use num_complex::Complex;

use crate::array::DynArray;
use crate::dtype::DTypeKind;

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that ndstore can store: bool, the fixed-size integers, `half::f16`, `f32`, `f64`,
/// `Complex<f32>` and `Complex<f64>`.
///
/// The trait is sealed: the dtype catalogue is closed, and every backend supports the same list.
pub trait Element:
    Copy + Debug + Send + Sync + bytemuck::NoUninit + bytemuck::Zeroable + sealed::Sealed + 'static
{
    /// The dtype kind this type maps to.
    const KIND: DTypeKind;

    /// A type with the same size whose every bit pattern is valid, so file bytes can be read
    /// straight into it (`u8` for `bool`, the type itself otherwise).
    type Raw: bytemuck::Pod;

    /// Turns raw values into elements, or returns the index of the first invalid one (a `bool`
    /// byte other than 0 or 1).
    ///
    /// # Errors
    ///
    /// The index of the first raw value that is no valid element (a `bool` byte other than 0 or 1).
    fn from_raw_vec(raw: Vec<Self::Raw>) -> Result<Vec<Self>, usize>;

    /// Checks raw values in place, returning the index of the first invalid one.
    ///
    /// # Errors
    ///
    /// The index of the first raw value that is no valid element.
    fn validate_raw(raw: &[Self::Raw]) -> Result<(), usize>;

    /// Views raw values (bytes of a mapped file, say) as elements, after checking them.
    ///
    /// # Errors
    ///
    /// The index of the first raw value that is no valid element.
    fn view_raw(raw: &[Self::Raw]) -> Result<&[Self], usize>;

    /// Views raw values as mutable elements, after checking them. Writes through the view store
    /// only valid values.
    ///
    /// # Errors
    ///
    /// The index of the first raw value that is no valid element.
    fn view_raw_mut(raw: &mut [Self::Raw]) -> Result<&mut [Self], usize>;

    /// Wraps a typed array as a runtime-dtype array.
    fn into_dyn_array(array: ArrayD<Self>) -> DynArray;

    /// Unwraps a runtime-dtype array holding this type, or gives it back.
    ///
    /// # Errors
    ///
    /// The array itself, unchanged, when it holds another element type.
    fn try_from_dyn_array(array: DynArray) -> Result<ArrayD<Self>, DynArray>;

    /// Views a runtime-dtype array holding this type.
    fn view_dyn_array(array: &DynArray) -> Option<ArrayViewD<'_, Self>>;
}

macro_rules! pod_element {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const KIND: DTypeKind = DTypeKind::$kind;
            type Raw = $ty;
            fn from_raw_vec(raw: Vec<$ty>) -> Result<Vec<$ty>, usize> {
                Ok(raw)
            }
            fn validate_raw(_: &[$ty]) -> Result<(), usize> {
                Ok(())
            }
            fn view_raw(raw: &[$ty]) -> Result<&[$ty], usize> {
                Ok(raw)
            }
            fn view_raw_mut(raw: &mut [$ty]) -> Result<&mut [$ty], usize> {
                Ok(raw)
            }
            fn into_dyn_array(array: ArrayD<$ty>) -> DynArray {
                DynArray::$kind(array)
            }
            fn try_from_dyn_array(array: DynArray) -> Result<ArrayD<$ty>, DynArray> {
                match array {
                    DynArray::$kind(a) => Ok(a),
                    other => Err(other),
                }
            }
            fn view_dyn_array(array: &DynArray) -> Option<ArrayViewD<'_, $ty>> {
                match array {
                    DynArray::$kind(a) => Some(a.view()),
                    _ => None,
                }
            }
        }
    )*};
}

pod_element! {
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    f16 => F16, f32 => F32, f64 => F64,
    Complex<f32> => Complex64, Complex<f64> => Complex128,
}

/// The index of the first byte that is not a `bool` (neither 0 nor 1), for a slice known to
/// hold one.
fn first_invalid(raw: &[u8]) -> usize {
    raw.iter().position(|&b| b > 1).unwrap_or(raw.len())
}

impl sealed::Sealed for bool {}
impl Element for bool {
    const KIND: DTypeKind = DTypeKind::Bool;
    type Raw = u8;

    fn from_raw_vec(raw: Vec<u8>) -> Result<Vec<bool>, usize> {
        Self::validate_raw(&raw)?;
        Ok(raw.into_iter().map(|b| b != 0).collect())
    }

    fn validate_raw(raw: &[u8]) -> Result<(), usize> {
        match first_invalid(raw) {
            index if index < raw.len() => Err(index),
            _ => Ok(()),
        }
    }

    fn view_raw(raw: &[u8]) -> Result<&[bool], usize> {
        // bytemuck checks every byte is 0 or 1, the only valid bit patterns of `bool`.
        bytemuck::checked::try_cast_slice(raw).map_err(|_| first_invalid(raw))
    }

    fn view_raw_mut(raw: &mut [u8]) -> Result<&mut [bool], usize> {
        // As in `view_raw`; writes through `&mut bool` store only 0 or 1. The index is found
        // first: the failed cast would still hold the mutable borrow it could have returned.
        // After that check the cast cannot fail; should it, the index past the end says so.
        Self::validate_raw(raw)?;
        let len = raw.len();
        bytemuck::checked::try_cast_slice_mut(raw).map_err(|_| len)
    }

    fn into_dyn_array(array: ArrayD<bool>) -> DynArray {
        DynArray::Bool(array)
    }

    fn try_from_dyn_array(array: DynArray) -> Result<ArrayD<bool>, DynArray> {
        match array {
            DynArray::Bool(a) => Ok(a),
            other => Err(other),
        }
    }

    fn view_dyn_array(array: &DynArray) -> Option<ArrayViewD<'_, bool>> {
        match array {
            DynArray::Bool(a) => Some(a.view()),
            _ => None,
        }
    }
}

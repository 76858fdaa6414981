//! Element types, byte orders and memory orders: the one dtype table every backend shares.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The kind of scalar an array holds, independent of byte order.
///
/// Names follow numpy: `Complex64` is two `f32` (Rust `Complex<f32>`), `Complex128` is two `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DTypeKind {
    /// `bool`, one byte holding 0 or 1 (numpy `b1`).
    Bool,
    /// `i8` (numpy `i1`).
    I8,
    /// `i16` (numpy `i2`).
    I16,
    /// `i32` (numpy `i4`).
    I32,
    /// `i64` (numpy `i8`).
    I64,
    /// `u8` (numpy `u1`).
    U8,
    /// `u16` (numpy `u2`).
    U16,
    /// `u32` (numpy `u4`).
    U32,
    /// `u64` (numpy `u8`).
    U64,
    /// IEEE 754 half precision, `half::f16` (numpy `f2`).
    F16,
    /// `f32` (numpy `f4`).
    F32,
    /// `f64` (numpy `f8`).
    F64,
    /// `Complex<f32>` (numpy `c8`, complex64).
    Complex64,
    /// `Complex<f64>` (numpy `c16`, complex128).
    Complex128,
}

impl DTypeKind {
    /// Every kind, in catalogue order.
    pub const ALL: [DTypeKind; 14] = [
        DTypeKind::Bool,
        DTypeKind::I8,
        DTypeKind::I16,
        DTypeKind::I32,
        DTypeKind::I64,
        DTypeKind::U8,
        DTypeKind::U16,
        DTypeKind::U32,
        DTypeKind::U64,
        DTypeKind::F16,
        DTypeKind::F32,
        DTypeKind::F64,
        DTypeKind::Complex64,
        DTypeKind::Complex128,
    ];

    /// Bytes per element.
    pub const fn itemsize(self) -> usize {
        match self {
            DTypeKind::Bool | DTypeKind::I8 | DTypeKind::U8 => 1,
            DTypeKind::I16 | DTypeKind::U16 | DTypeKind::F16 => 2,
            DTypeKind::I32 | DTypeKind::U32 | DTypeKind::F32 => 4,
            DTypeKind::I64 | DTypeKind::U64 | DTypeKind::F64 | DTypeKind::Complex64 => 8,
            DTypeKind::Complex128 => 16,
        }
    }

    /// The width of the unit whose bytes a byte-order change reverses (a complex number's component).
    pub const fn swap_width(self) -> usize {
        match self {
            DTypeKind::Complex64 => 4,
            DTypeKind::Complex128 => 8,
            other => other.itemsize(),
        }
    }

    /// numpy's type character and size, without the byte-order prefix (`f8`, `b1`, `c16`).
    pub const fn numpy_code(self) -> &'static str {
        match self {
            DTypeKind::Bool => "b1",
            DTypeKind::I8 => "i1",
            DTypeKind::I16 => "i2",
            DTypeKind::I32 => "i4",
            DTypeKind::I64 => "i8",
            DTypeKind::U8 => "u1",
            DTypeKind::U16 => "u2",
            DTypeKind::U32 => "u4",
            DTypeKind::U64 => "u8",
            DTypeKind::F16 => "f2",
            DTypeKind::F32 => "f4",
            DTypeKind::F64 => "f8",
            DTypeKind::Complex64 => "c8",
            DTypeKind::Complex128 => "c16",
        }
    }

    /// The Rust name of the element type, as error messages spell it.
    pub const fn rust_name(self) -> &'static str {
        match self {
            DTypeKind::Bool => "bool",
            DTypeKind::I8 => "i8",
            DTypeKind::I16 => "i16",
            DTypeKind::I32 => "i32",
            DTypeKind::I64 => "i64",
            DTypeKind::U8 => "u8",
            DTypeKind::U16 => "u16",
            DTypeKind::U32 => "u32",
            DTypeKind::U64 => "u64",
            DTypeKind::F16 => "f16",
            DTypeKind::F32 => "f32",
            DTypeKind::F64 => "f64",
            DTypeKind::Complex64 => "Complex<f32>",
            DTypeKind::Complex128 => "Complex<f64>",
        }
    }

    /// True when byte order matters for this kind (more than one byte per swap unit).
    pub const fn has_byte_order(self) -> bool {
        self.swap_width() > 1
    }

    fn from_numpy_code(code: &str) -> Option<DTypeKind> {
        DTypeKind::ALL.into_iter().find(|k| k.numpy_code() == code)
    }
}

impl fmt::Display for DTypeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rust_name())
    }
}

/// The byte order of stored elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// Least significant byte first (numpy `<`).
    Little,
    /// Most significant byte first (numpy `>`).
    Big,
    /// Single-byte elements, where order does not apply (numpy `|`).
    NotApplicable,
}

impl ByteOrder {
    /// The byte order of the machine running this code.
    pub const fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// numpy's prefix character.
    pub const fn numpy_char(self) -> char {
        match self {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
            ByteOrder::NotApplicable => '|',
        }
    }

    /// True when elements stored in this order need their bytes reversed to be used here.
    pub const fn needs_swap(self) -> bool {
        match self {
            ByteOrder::NotApplicable => false,
            ByteOrder::Little => cfg!(target_endian = "big"),
            ByteOrder::Big => cfg!(target_endian = "little"),
        }
    }
}

/// The order in which a multi-dimensional array's elements are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Order {
    /// Row-major: the last index varies fastest.
    #[default]
    C,
    /// Column-major: the first index varies fastest.
    Fortran,
}

/// A stored element type: its kind and its byte order.
///
/// Single-byte kinds always carry [`ByteOrder::NotApplicable`]; [`DType::new`] normalises that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DType {
    /// The scalar kind.
    pub kind: DTypeKind,
    /// The byte order the elements are stored in.
    pub byte_order: ByteOrder,
}

impl DType {
    /// A dtype of `kind` in `byte_order`, normalised so single-byte kinds have no order and
    /// multi-byte kinds asked for `NotApplicable` get the native order.
    pub const fn new(kind: DTypeKind, byte_order: ByteOrder) -> DType {
        let byte_order = if !kind.has_byte_order() {
            ByteOrder::NotApplicable
        } else if matches!(byte_order, ByteOrder::NotApplicable) {
            ByteOrder::native()
        } else {
            byte_order
        };
        DType { kind, byte_order }
    }

    /// A dtype of `kind` in the native byte order.
    pub const fn native(kind: DTypeKind) -> DType {
        DType::new(kind, ByteOrder::native())
    }

    /// Bytes per element.
    pub const fn itemsize(self) -> usize {
        self.kind.itemsize()
    }

    /// numpy's `dtype.str`, e.g. `<f8`, `|b1`, `>c16`.
    pub fn to_numpy_descr(self) -> String {
        format!("{}{}", self.byte_order.numpy_char(), self.kind.numpy_code())
    }

    /// Parses a numpy type string such as `<f8`, `>i4`, `|b1` or `=u2`.
    ///
    /// ```
    /// use ndstore_core::{ByteOrder, DType, DTypeKind, ErrorKind};
    /// assert_eq!(DType::from_numpy_descr(">i4")?, DType::new(DTypeKind::I32, ByteOrder::Big));
    /// let err = DType::from_numpy_descr("|O").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::UnsupportedDType);
    /// # Ok::<(), ndstore_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnsupportedDType`] saying why the string is not a supported dtype;
    /// pickled objects (`O`) and every other numpy kind outside the catalogue are refused by
    /// name.
    pub fn from_numpy_descr(descr: &str) -> Result<DType> {
        let (order, code) = match descr.chars().next() {
            Some('<') => (ByteOrder::Little, &descr[1..]),
            Some('>') => (ByteOrder::Big, &descr[1..]),
            Some('|') => (ByteOrder::NotApplicable, &descr[1..]),
            Some('=') => (ByteOrder::native(), &descr[1..]),
            _ => (ByteOrder::native(), descr),
        };
        if code.starts_with('O') {
            return Err(Error::new(
                ErrorKind::UnsupportedDType,
                format!(
                    "dtype '{descr}' holds pickled Python objects, which ndstore refuses to load"
                ),
            ));
        }
        // numpy accepts a few aliases for the same scalar; '?' is bool.
        let code = match code {
            "?" => "b1",
            other => other,
        };
        match DTypeKind::from_numpy_code(code) {
            Some(kind) => Ok(DType::new(kind, order)),
            None => Err(Error::new(
                ErrorKind::UnsupportedDType,
                format!("dtype '{descr}' is not supported by ndstore"),
            )),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_numpy_descr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_round_trips_for_every_kind_and_order() {
        for kind in DTypeKind::ALL {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let dtype = DType::new(kind, order);
                let parsed = DType::from_numpy_descr(&dtype.to_numpy_descr());
                assert_eq!(parsed.ok(), Some(dtype), "{dtype}");
            }
        }
    }

    #[test]
    fn single_byte_kinds_have_no_byte_order() {
        assert_eq!(
            DType::new(DTypeKind::U8, ByteOrder::Big).to_numpy_descr(),
            "|u1"
        );
        assert_eq!(
            DType::new(DTypeKind::Bool, ByteOrder::Little).to_numpy_descr(),
            "|b1"
        );
        assert_eq!(
            DType::new(DTypeKind::Complex128, ByteOrder::Big).to_numpy_descr(),
            ">c16"
        );
    }

    #[test]
    fn objects_and_strings_are_refused_by_name() {
        let err = DType::from_numpy_descr("|O").unwrap_err();
        assert!(err.message().contains("pickled"), "{err}");
        assert_eq!(err.kind(), ErrorKind::UnsupportedDType);
        let err = DType::from_numpy_descr("<U10").unwrap_err();
        assert!(err.message().contains("<U10"), "{err}");
    }
}

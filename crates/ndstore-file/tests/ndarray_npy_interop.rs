//! ndarray-npy, the Rust ecosystem's `.npy` reader and writer, as a second reference beside
//! numpy: it reads every file ndstore writes in the dtypes it supports (all but f16), in both
//! byte orders and both memory orders, and ndstore reads what it writes, bit for bit.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use ndstore_conformance::sample;
use ndstore_core::num_complex::Complex;
use ndstore_core::{ByteOrder, DTypeKind, DynArray, Order, SaveOptions};
use ndstore_file::npy;

const SHAPES: [&[usize]; 6] = [&[], &[0], &[7], &[3, 4], &[2, 3, 4], &[1, 5, 0]];

/// Every dtype ndarray-npy reads and writes, with its Rust type.
macro_rules! each_supported {
    ($m:ident) => {
        $m!(Bool, bool);
        $m!(I8, i8);
        $m!(I16, i16);
        $m!(I32, i32);
        $m!(I64, i64);
        $m!(U8, u8);
        $m!(U16, u16);
        $m!(U32, u32);
        $m!(U64, u64);
        $m!(F32, f32);
        $m!(F64, f64);
        $m!(Complex64, Complex<f32>);
        $m!(Complex128, Complex<f64>);
    };
}

#[test]
fn ndarray_npy_reads_what_ndstore_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = 0;
    macro_rules! check {
        ($kind:ident, $t:ty) => {
            for shape in SHAPES {
                for order in [Order::C, Order::Fortran] {
                    for byte_order in [ByteOrder::Little, ByteOrder::Big] {
                        let array = sample::array(DTypeKind::$kind, shape, order, cases);
                        let path = dir.path().join(format!("{cases}.npy"));
                        let options = SaveOptions::new().byte_order(byte_order);
                        npy::save_dyn(&path, &array, &options).unwrap();
                        let file = std::fs::File::open(&path).unwrap();
                        let read = ArrayD::<$t>::read_npy(file).unwrap_or_else(|e| {
                            panic!(
                                "{:?} {shape:?} {order:?} {byte_order:?}: {e}",
                                DTypeKind::$kind
                            )
                        });
                        assert!(
                            DynArray::from(read).bit_eq(&array),
                            "{:?} {shape:?} {order:?} {byte_order:?}",
                            DTypeKind::$kind
                        );
                        cases += 1;
                    }
                }
            }
        };
    }
    each_supported!(check);
    assert_eq!(cases, 13 * 6 * 2 * 2);
}

#[test]
fn ndstore_reads_what_ndarray_npy_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = 0;
    macro_rules! check {
        ($kind:ident, $t:ty) => {
            for shape in SHAPES {
                for order in [Order::C, Order::Fortran] {
                    let array = sample::array(DTypeKind::$kind, shape, order, cases);
                    let typed = array.clone().into_typed::<$t>().unwrap();
                    let path = dir.path().join(format!("{cases}.npy"));
                    typed
                        .write_npy(std::fs::File::create(&path).unwrap())
                        .unwrap();
                    let (meta, loaded) = npy::load_dyn(&path).unwrap();
                    assert_eq!(meta.shape, shape, "{:?}", DTypeKind::$kind);
                    assert!(
                        loaded.bit_eq(&array),
                        "{:?} {shape:?} {order:?}",
                        DTypeKind::$kind
                    );
                    cases += 1;
                }
            }
        };
    }
    each_supported!(check);
    assert_eq!(cases, 13 * 6 * 2);
}

//! The `file` backend as the conformance harness sees it: `.npy` through the core traits.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    LoadOptions, PythonInterop, Result, SaveOptions, with_dtype_kind,
};

use crate::npy;
use crate::writer::NpyWriter;

/// `.npy` files through plain file handles; reported as `file`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NpyBackend;

impl Backend for NpyBackend {
    fn name(&self) -> &'static str {
        "file"
    }

    fn extension(&self) -> &'static str {
        "npy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: DTypeKind::ALL.to_vec(),
            both_byte_orders: true,
            fortran_order: true,
            max_ndim: 32,
            bit_exact: true,
            atomic_replace: true,
            in_place_update: false,
            partial_io: false,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place_crash: CrashGuarantee::None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        npy::save_dyn(path, array, options)
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        npy::load_dyn_with(path, options)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        with_dtype_kind!(kind, T => npy::load::<T, ndarray::IxDyn>(path).map(DynArray::from))
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        npy::read_meta(path)
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        Ok(Box::new(NpyWriter::create(
            path, dtype, row_shape, options,
        )?))
    }

    fn hostile_inputs(&self) -> Vec<(String, Vec<u8>)> {
        hostile_npy_files()
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &[],
            load: "arr = np.load(path)",
            save: "np.save(path, arr)",
        })
    }
}

/// A `.npy` file with `dict` as its header text, framed as numpy frames it, followed by `data`.
fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = ndstore_core::npy_header::wrap(dict);
    out.extend_from_slice(data);
    out
}

/// The `.npy` files ndstore must refuse with a clear error, named for what is wrong with them.
pub fn hostile_npy_files() -> Vec<(String, Vec<u8>)> {
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    let mut files = vec![
        // ndarray-npy 0.10 aborts the process on this one: 2^40 f64 claimed by a 128-byte file.
        (
            "claims-2pow40-f64.npy",
            npy_with_header(&dict("<f8", "(1099511627776,)"), &[0; 64]),
        ),
        (
            "shape-product-overflows.npy",
            npy_with_header(
                &dict("<f8", "(4611686018427387904, 4611686018427387904)"),
                &[],
            ),
        ),
        (
            "bytes-overflow.npy",
            npy_with_header(&dict("<c16", "(2305843009213693952,)"), &[]),
        ),
        (
            "shape-exceeds-file.npy",
            npy_with_header(&dict("<f8", "(1000,)"), &[0; 16]),
        ),
        (
            "axis-too-long-for-usize.npy",
            npy_with_header(&dict("<f8", "(99999999999999999999999999,)"), &[]),
        ),
        (
            "negative-axis.npy",
            npy_with_header(&dict("<f8", "(-1,)"), &[]),
        ),
        (
            "object-dtype-pickle.npy",
            npy_with_header(&dict("|O", "(1,)"), b"\x80\x04N."),
        ),
        (
            "unicode-dtype.npy",
            npy_with_header(&dict("<U5", "(1,)"), &[0; 20]),
        ),
        (
            "structured-dtype.npy",
            npy_with_header(
                "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
        ),
        (
            "unknown-key.npy",
            npy_with_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'evil': 1, }",
                &[0; 8],
            ),
        ),
        (
            "missing-shape.npy",
            npy_with_header("{'descr': '<f8', 'fortran_order': False, }", &[0; 8]),
        ),
        (
            "unterminated-string.npy",
            npy_with_header(
                "{'descr': '<f8, 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
        ),
        (
            "not-a-dict.npy",
            npy_with_header("__import__('os').system('echo pwned')", &[0; 8]),
        ),
        (
            "invalid-bool-byte.npy",
            npy_with_header(&dict("|b1", "(4,)"), &[0, 1, 7, 1]),
        ),
        ("wrong-magic.npy", b"\x93NUMPX\x01\x00\x76\x00{}".to_vec()),
        ("empty.npy", Vec::new()),
        ("version-9.npy", b"\x93NUMPY\x09\x00\x76\x00".to_vec()),
        (
            "header-length-beyond-file.npy",
            b"\x93NUMPY\x01\x00\x00\x10{'descr'".to_vec(),
        ),
    ];
    // A version 2.0 header of 1 MiB: over numpy's 10,000-byte limit, refused before it is read.
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&(1u32 << 20).to_le_bytes());
    huge.extend_from_slice(b"{'descr': '<f8'");
    files.push(("header-over-limit.npy", huge));
    // Version 3.0 text that is not UTF-8.
    let mut v3 = b"\x93NUMPY\x03\x00".to_vec();
    let text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), \xff\xfe}     \n";
    v3.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v3.extend_from_slice(text);
    v3.extend_from_slice(&[0; 8]);
    files.push(("v3-not-utf8.npy", v3));
    files
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect()
}

//! The `hdf5` backend as the conformance harness sees it: one dataset, `data`, per file.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    InPlaceArray, LoadOptions, PythonInterop, Result, SaveOptions,
};

use crate::h5::{self, DEFAULT_DATASET};
use crate::inplace::H5InPlace;
use crate::writer::{H5Writer, WriterOptions};

/// HDF5 files through libhdf5; reported as `hdf5`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hdf5Backend;

impl Backend for Hdf5Backend {
    fn name(&self) -> &'static str {
        "hdf5"
    }

    fn extension(&self) -> &'static str {
        "h5"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: DTypeKind::ALL.to_vec(),
            both_byte_orders: true,
            fortran_order: true,
            max_ndim: 32,
            bit_exact: true,
            atomic_replace: true,
            in_place_update: true,
            partial_io: true,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            // Without SWMR, a crash during an in-place HDF5 update can leave the file unopenable.
            in_place_crash: CrashGuarantee::None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        h5::save_dyn(path, DEFAULT_DATASET, array, options)
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        let _ = options;
        h5::load_dyn(path, DEFAULT_DATASET)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        h5::load_as(path, DEFAULT_DATASET, kind)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        h5::read_meta(path, DEFAULT_DATASET)
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        Ok(Box::new(H5Writer::create(
            path,
            dtype,
            row_shape,
            options,
            &WriterOptions::default(),
        )?))
    }

    fn open_in_place(&self, path: &Path, options: &SaveOptions) -> Result<Box<dyn InPlaceArray>> {
        Ok(Box::new(H5InPlace::open(
            path,
            DEFAULT_DATASET,
            options.durability,
        )?))
    }

    fn hostile_inputs(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "not-hdf5.h5".to_owned(),
                b"this is plain text, not an HDF5 file\n".to_vec(),
            ),
            ("empty.h5".to_owned(), Vec::new()),
            (
                "signature-only.h5".to_owned(),
                b"\x89HDF\r\n\x1a\n".to_vec(),
            ),
            ("signature-then-zeros.h5".to_owned(), {
                let mut v = b"\x89HDF\r\n\x1a\n".to_vec();
                v.extend_from_slice(&[0u8; 2040]);
                v
            }),
        ]
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &["h5py", "json"],
            load: "f = h5py.File(path, 'r')\n\
                   d = f['data']\n\
                   meta = json.loads(d.attrs.get('ndstore', '{\"order\": \"C\"}'))\n\
                   arr = np.array(d[...], order='F' if meta['order'] == 'F' else 'C')\n\
                   f.close()",
            save: "with h5py.File(path, 'w') as f:\n\
                   \x20   d = f.create_dataset('data', data=np.ascontiguousarray(arr) if arr.ndim else arr)\n\
                   \x20   d.attrs['ndstore'] = json.dumps({'order': 'F' if arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1 else 'C'})",
        })
    }
}

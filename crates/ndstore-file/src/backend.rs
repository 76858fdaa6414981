//! The `file` backend as the conformance harness sees it: `.npy` through the core traits.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    LoadOptions, Result, SaveOptions, with_dtype_kind,
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
            partial_io: false,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place: None,
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
        with_dtype_kind!(kind, |T| npy::load::<T, ndarray::IxDyn>(path)
            .map(DynArray::from))
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
}

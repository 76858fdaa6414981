//! The `hdf5` backend as the conformance harness sees it: one dataset, `data`, per file.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    InPlaceArray, LoadOptions, Result, SaveOptions,
};

use crate::h5::{self, DEFAULT_DATASET};
use crate::inplace::H5InPlace;
use crate::isolated::{self, ReadOptions};
use crate::writer::{H5Writer, WriterOptions};

/// HDF5 files through libhdf5; reported as `hdf5`. Loads and metadata go through the isolated
/// reader ([`crate::load_dyn`]); writers and in-place handles run libhdf5 in this process.
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
            partial_io: true,
            streaming_append: true,
            memory_map: false,
            // `h5::save_with` and the streaming writer write gzip (and shuffle) as h5py's
            // `compression="gzip"` does; reads decompress gzip and lzf.
            compression: true,
            crash: CrashGuarantee::AtomicReplace,
            // Without SWMR, a crash during an in-place HDF5 update can leave the file unopenable.
            in_place: Some(CrashGuarantee::None),
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        h5::save_dyn(path, DEFAULT_DATASET, array, options)
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        isolated::load_with(path, DEFAULT_DATASET, &ReadOptions::new().load(*options))
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        isolated::load_as(path, DEFAULT_DATASET, kind)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        isolated::read_meta(path, DEFAULT_DATASET)
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
}

//! The `zarr` backend as the conformance harness sees it: a Zarr v3 array directory through
//! the core traits, in chunks of about 1 MiB with the `bytes` codec.

use std::path::Path;

use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray,
    Error, ErrorKind, LoadOptions, Result, SaveOptions,
};

use crate::array::ZarrArray;
use crate::meta::ZarrMeta;
use crate::writer::ZarrWriter;

/// The bytes a default chunk aims at.
const CHUNK_TARGET: usize = 1 << 20;

/// Zarr v3 arrays in local directories; reported as `zarr`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZarrBackend;

/// A chunk shape of about 1 MiB for an array of `shape`: whole trailing axes as far as they
/// fit, then as many slices of the next axis as fit (at least one element per axis).
pub fn default_chunk_shape(shape: &[usize], itemsize: usize) -> Vec<usize> {
    let mut room = (CHUNK_TARGET / itemsize.max(1)).max(1);
    let mut chunk = vec![1; shape.len()];
    for axis in (0..shape.len()).rev() {
        let n = shape[axis].clamp(1, room);
        chunk[axis] = n;
        room = (room / n).max(1);
    }
    chunk
}

/// How often a load starts again when saves keep replacing the array under it.
const LOAD_ATTEMPTS: usize = 16;

/// Loads the array at `path` whole (of element type `kind`, when given), starting again when a
/// save replaced it during the read (the read then fails with `NotFound`: its tree lost its
/// `zarr.json`), so the values always come from one complete version.
fn load(
    path: &Path,
    options: &LoadOptions,
    kind: Option<DTypeKind>,
) -> Result<(ArrayMeta, DynArray)> {
    let mut attempt = 1;
    loop {
        match load_once(path, options, kind) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < LOAD_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

fn load_once(
    path: &Path,
    options: &LoadOptions,
    kind: Option<DTypeKind>,
) -> Result<(ArrayMeta, DynArray)> {
    let array = ZarrArray::open(path, &SaveOptions::default())?;
    if let Some(kind) = kind
        && array.meta().kind != kind
    {
        return Err(
            ndstore_core::__private::array::type_mismatch(array.meta().kind, kind).with_path(path),
        );
    }
    let values = array.read_all(options)?;
    Ok((array.array_meta(), values))
}

impl Backend for ZarrBackend {
    fn name(&self) -> &'static str {
        "zarr"
    }

    fn extension(&self) -> &'static str {
        "zarr"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: DTypeKind::ALL.to_vec(),
            both_byte_orders: true,
            fortran_order: false,
            max_ndim: crate::meta::MAX_NDIM,
            bit_exact: true,
            partial_io: true,
            streaming_append: true,
            memory_map: false,
            compression: true,
            crash: CrashGuarantee::AtomicReplace,
            in_place: None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        let kind = array.kind();
        let dtype = DType::new(kind, options.effective_byte_order());
        let chunks = default_chunk_shape(array.shape(), kind.itemsize());
        let meta = ZarrMeta::new(dtype, array.shape(), &chunks).map_err(|e| e.with_path(path))?;
        crate::save::save_with(path, array, meta, options)
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        load(path, options, None)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        load(path, &LoadOptions::default(), Some(kind)).map(|(_, values)| values)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        Ok(ZarrArray::open(path, &SaveOptions::default())?.array_meta())
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        let mut shape = vec![usize::MAX];
        shape.extend_from_slice(row_shape);
        let chunks = default_chunk_shape(&shape, dtype.itemsize());
        ZarrWriter::create(path, dtype, row_shape, &chunks, options)
            .map(|w| Box::new(w) as Box<dyn ArrayWriter>)
            .map_err(|e: Error| e.with_path(path))
    }
}

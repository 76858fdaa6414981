//! The `zarr` backend as the conformance harness sees it: a Zarr v3 array directory through
//! the core traits, in chunks of about 1 MiB with the `bytes` codec; with the `s3` feature,
//! also `zarr-s3`, the same arrays in object storage.

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
    chunk_shape_of(shape, itemsize, CHUNK_TARGET)
}

/// As [`default_chunk_shape`], aiming at `target` bytes per chunk.
fn chunk_shape_of(shape: &[usize], itemsize: usize, target: usize) -> Vec<usize> {
    let mut room = (target / itemsize.max(1)).max(1);
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

/// Loads the array `open` opens whole (of element type `kind`, when given), starting again
/// when a save replaced it during the read (the read then fails with `NotFound`: a local tree
/// lost its `zarr.json`, an object store's `zarr.json` changed), so the values always come
/// from one version's metadata.
fn load(
    open: impl Fn() -> Result<ZarrArray>,
    options: &LoadOptions,
    kind: Option<DTypeKind>,
) -> Result<(ArrayMeta, DynArray)> {
    let mut attempt = 1;
    loop {
        match load_once(&open, options, kind) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < LOAD_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

fn load_once(
    open: &impl Fn() -> Result<ZarrArray>,
    options: &LoadOptions,
    kind: Option<DTypeKind>,
) -> Result<(ArrayMeta, DynArray)> {
    let array = open()?;
    if let Some(kind) = kind
        && array.meta().kind != kind
    {
        return Err(
            ndstore_core::__private::array::type_mismatch(array.meta().kind, kind)
                .with_path(array.path()),
        );
    }
    let values = array.read_all(options)?;
    Ok((array.array_meta(), values))
}

/// Opens the local array at `path`.
fn open_local(path: &Path) -> impl Fn() -> Result<ZarrArray> + '_ {
    move || ZarrArray::open(path, &SaveOptions::default())
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
        load(open_local(path), options, None)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        load(open_local(path), &LoadOptions::default(), Some(kind)).map(|(_, values)| values)
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

/// How long a save waits between attempts while another writer holds the array's lease.
#[cfg(feature = "s3")]
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Zarr v3 arrays in object storage through the core traits; reported as `zarr-s3`. A path
/// names the array at the prefix of the same name (without its leading `/`) under the
/// backend's target, so `/data/a.zarr` is `s3://bucket/root/data/a.zarr`; nothing is read or
/// written on the local file system.
///
/// A save is [`crate::save_object`]: chunks first, `zarr.json` last with a conditional put, a
/// new array whole or absent, a replaced one per-chunk atomic
/// ([`CrashGuarantee::PerChunk`]). A save that finds the array's lease held by another writer
/// waits until it is released or expires (a killed writer's lease expires after the target's
/// lease duration), then starts again; a conflict at the commit is returned as it is. A load
/// opens the array again when a commit replaced its `zarr.json` by other bytes during the
/// read. On S3 an ETag is the MD5 of the object's bytes, so a commit of identical metadata
/// (an overwrite of the same shape and codecs) is not seen there: a load while such a save
/// runs may return chunks of both arrays, each whole, as any read during an overwrite's
/// chunk PUTs may (the per-chunk guarantee).
#[cfg(feature = "s3")]
#[derive(Clone, Debug)]
pub struct ZarrObjectBackend {
    target: crate::object::ObjectTarget,
    chunk_bytes: usize,
}

#[cfg(feature = "s3")]
impl ZarrObjectBackend {
    /// The backend over the store of `target`, its paths under the target's prefix.
    pub fn new(target: crate::object::ObjectTarget) -> ZarrObjectBackend {
        ZarrObjectBackend {
            target,
            chunk_bytes: CHUNK_TARGET,
        }
    }

    /// The same backend with chunks of about `bytes` (1 MiB by default): smaller chunks make
    /// more requests per save, and more places for a crash between them.
    #[must_use]
    pub fn with_chunk_bytes(mut self, bytes: usize) -> ZarrObjectBackend {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The chunk shape this backend's saves and writers give an array of `shape` with
    /// elements of `itemsize` bytes (for a writer, the first axis is `usize::MAX`).
    pub fn chunk_shape(&self, shape: &[usize], itemsize: usize) -> Vec<usize> {
        chunk_shape_of(shape, itemsize, self.chunk_bytes)
    }

    /// The target whose prefix `path` names.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a path that is not UTF-8 or not a valid object prefix.
    pub fn target_of(&self, path: &Path) -> Result<crate::object::ObjectTarget> {
        let relative = path.to_str().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "an object prefix must be UTF-8").with_path(path)
        })?;
        let root = self.target.prefix();
        let relative = relative.trim_matches('/');
        if root.is_empty() {
            self.target.at(relative)
        } else {
            self.target.at(&format!("{root}/{relative}"))
        }
    }

    fn open(&self, path: &Path) -> Result<ZarrArray> {
        ZarrArray::open_object_read_only(&self.target_of(path)?, &SaveOptions::default())
    }
}

/// True when `e` is a refusal by the writer lease held by another writer (as opposed to a
/// conflict at the commit): its path is the lease object.
#[cfg(feature = "s3")]
fn lease_refusal(e: &Error) -> bool {
    e.kind() == ErrorKind::Locked
        && e.path()
            .and_then(Path::file_name)
            .is_some_and(|name| name == crate::lease::LEASE_KEY)
}

#[cfg(feature = "s3")]
impl Backend for ZarrObjectBackend {
    fn name(&self) -> &'static str {
        "zarr-s3"
    }

    fn extension(&self) -> &'static str {
        "zarr"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            crash: CrashGuarantee::PerChunk,
            ..ZarrBackend.capabilities()
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        let target = self.target_of(path)?;
        let kind = array.kind();
        let dtype = DType::new(kind, options.effective_byte_order());
        let chunks = self.chunk_shape(array.shape(), kind.itemsize());
        let meta = ZarrMeta::new(dtype, array.shape(), &chunks).map_err(|e| e.with_path(path))?;
        let deadline =
            std::time::Instant::now() + target.lease_duration() + std::time::Duration::from_secs(1);
        loop {
            match crate::save::save_object(&target, array, meta.clone(), options) {
                Err(e) if lease_refusal(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(LEASE_POLL);
                }
                result => return result,
            }
        }
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        load(|| self.open(path), options, None)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        load(|| self.open(path), &LoadOptions::default(), Some(kind)).map(|(_, values)| values)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        Ok(self.open(path)?.array_meta())
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        let target = self.target_of(path)?;
        let mut shape = vec![usize::MAX];
        shape.extend_from_slice(row_shape);
        let chunks = self.chunk_shape(&shape, dtype.itemsize());
        ZarrWriter::create_object(&target, dtype, row_shape, &chunks, options)
            .map(|w| Box::new(w) as Box<dyn ArrayWriter>)
    }
}

//! The `mmap` backend as the conformance harness sees it: `.npy` files written through a
//! created map and read through a read-only map, and read-write maps as in-place handles.

use std::path::Path;

use ndstore_core::__private::npy_header;
use ndstore_core::{
    ArrayMeta, Backend, Capabilities, Close, CrashGuarantee, DTypeKind, DynArray, InPlaceArray,
    LoadOptions, Result, SaveOptions,
};

use crate::map::{MappedArray, Mode};

/// Memory-mapped `.npy` files; reported as `mmap`.
///
/// Its `load` and `open_in_place` map files, so a value of this type is a promise about the
/// files it touches: it can only be made with the `unsafe` [`MmapBackend::new`].
///
/// ```compile_fail
/// // There is no safe way to get one:
/// let backend = ndstore_mmap::MmapBackend::default();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MmapBackend {
    _promise: (),
}

impl MmapBackend {
    /// The backend, for generic code that drives backends through [`Backend`].
    ///
    /// # Safety
    ///
    /// While a file is mapped by this backend (during `load`, `load_as` and for the life of a
    /// handle from `open_in_place`), no process that ignores `flock` may truncate the file
    /// (access would then fault with SIGBUS, killing the process) or rewrite it in place
    /// (memory behind shared references would change). Every ndstore handle takes the lock;
    /// other programs may not. Atomic saves by rename never disturb a map.
    pub const unsafe fn new() -> MmapBackend {
        MmapBackend { _promise: () }
    }
}

impl Backend for MmapBackend {
    fn name(&self) -> &'static str {
        "mmap"
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
            partial_io: true,
            streaming_append: false,
            memory_map: true,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place: Some(CrashGuarantee::SyncedIsDurable),
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        let meta = ArrayMeta::new(
            ndstore_core::DType::new(array.kind(), options.effective_byte_order()),
            array.shape().to_vec(),
            array.layout_order(),
        );
        // SAFETY: the created file is a fresh temporary (or, in place, the exclusively locked
        // target) that only this handle writes, and it is unmapped before this returns.
        let mut map = unsafe { MappedArray::create_npy(path, &meta, options)? };
        map.write_from(array)?;
        ndstore_core::Commit::commit(map)
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        // SAFETY: the map holds a shared lock, so no ndstore handle truncates or rewrites the
        // file in place while it is read, and the maker of this backend promised that no other
        // program does (`MmapBackend::new`); it is copied out and unmapped before this returns.
        let map = unsafe { MappedArray::open_npy(path, Mode::Read)? };
        options
            .admit(map.meta().byte_len()? as u64)
            .map_err(|e| e.with_path(path))?;
        let array = map.read()?;
        let meta = map.meta().clone();
        map.close()?;
        Ok((meta, array))
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        let meta = self.read_meta(path)?;
        if meta.dtype.kind != kind {
            return Err(
                ndstore_core::__private::array::type_mismatch(meta.dtype.kind, kind)
                    .with_path(path),
            );
        }
        self.load(path).map(|(_, array)| array)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        let mut file = ndstore_core::__private::load::open_for_load(path)?;
        Ok(
            npy_header::read(&mut file, npy_header::DEFAULT_MAX_HEADER_LEN)
                .map_err(|e| e.with_path(path))?
                .meta,
        )
    }

    fn open_in_place(&self, path: &Path, options: &SaveOptions) -> Result<Box<dyn InPlaceArray>> {
        // SAFETY: the map holds an exclusive lock, which every ndstore handle respects, and the
        // maker of this backend promised that no other program truncates or rewrites the file
        // (`MmapBackend::new`).
        let mut map = unsafe { MappedArray::open_npy(path, Mode::ReadWrite)? };
        map.set_durability(options.durability);
        Ok(Box::new(map))
    }
}

impl InPlaceArray for MappedArray {
    fn meta(&self) -> &ArrayMeta {
        MappedArray::meta(self)
    }

    fn write_all(&mut self, values: &DynArray) -> Result<()> {
        self.write_from(values)
    }

    fn read(&self) -> Result<DynArray> {
        MappedArray::read(self)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Close::close(*self)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        MappedArray::abort(*self)
    }
}

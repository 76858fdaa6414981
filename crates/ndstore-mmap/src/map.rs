//! `MappedArray`: a memory-mapped `.npy` or raw array in numpy's modes, with typed views, the
//! durability vocabulary, and an advisory lock held for as long as the mapping lives.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut, MmapOptions};
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};
use ndstore_core::__private::codec::{alloc_raw, array_from_raw, write_elements};
use ndstore_core::__private::npy_header;
use ndstore_core::{
    ArrayMeta, Close, Commit, Durability, Durable, DurableFile, DynArray, Element, Error,
    ErrorKind, Lock, Order, OutputFile, Result, SaveOptions, with_dtype_kind, with_dyn_array,
};

/// How an existing file is mapped, as numpy's `mmap_mode` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `r`: read-only. Holds a shared lock.
    Read,
    /// `r+`: read and write; changes reach the file. Holds an exclusive lock.
    ReadWrite,
    /// `c`: copy-on-write; changes stay in this process's memory and never reach the file.
    /// Holds a shared lock.
    CopyOnWrite,
}

enum Map {
    /// No bytes to map (a zero-length array).
    Empty,
    ReadOnly(Mmap),
    Writable(MmapMut),
}

/// Where the mapped file's bytes go when the handle is finished.
enum Backing {
    /// An existing file, mapped in `mode`.
    Existing(DurableFile),
    /// A file created by `create_*` (`w+`): a temporary published on commit, or the target
    /// itself when created in place.
    Created { out: OutputFile, file: DurableFile },
}

/// A memory-mapped array.
///
/// Updating a `.npy` file in place through a read-write map, then making the change durable:
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use ndstore_core::{ArrayMeta, Close, Commit, DType, DTypeKind, Durable, DynArray, Order};
/// use ndstore_mmap::{MappedArray, Mode};
///
/// # fn main() -> ndstore_core::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("ndstore-map-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("counts.npy");
/// let meta = ArrayMeta::new(DType::native(DTypeKind::U32), vec![3], Order::C);
/// // SAFETY (all three maps): the file is this example's own; no other process truncates or
/// // rewrites it.
/// let mut created = unsafe { MappedArray::create_npy(&path, &meta, &Default::default())? };
/// created.write_from(&DynArray::from(ArrayD::from_elem(IxDyn(&[3]), 7u32)))?;
/// created.commit()?; // numpy's mode w+, published atomically
/// let mut map = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite)? };
/// map.view_mut::<u32>()?[[1]] = 20;
/// map.sync()?; // msync(MS_SYNC) and fsync: numpy's memmap.flush(), plus the fsync
/// map.close()?;
/// let check = unsafe { MappedArray::open_npy(&path, Mode::Read)? };
/// assert_eq!(check.view::<u32>()?.as_slice(), Some(&[7, 20, 7][..]));
/// # drop(check);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
///
/// numpy users: numpy's `memmap.flush()` is ndstore's [`Durable::sync`] — `msync(MS_SYNC)` and
/// `fsync`. ndstore's [`Durable::flush`] only starts write-back (`MS_ASYNC`); in a shared
/// mapping other processes see stores at once anyway.
///
/// Drop policy: a read-write or created-in-place map is flushed on drop (errors logged), never
/// synced; an atomic `w+` map that was not committed is rolled back (its temporary file
/// removed); copy-on-write and read-only maps have nothing to write.
pub struct MappedArray {
    path: PathBuf,
    meta: ArrayMeta,
    data_offset: usize,
    mode: Mode,
    map: Map,
    backing: Option<Backing>,
    durability: Durability,
    /// True once a sync failed: later syncs and closes fail.
    poisoned: bool,
}

fn data_len(meta: &ArrayMeta) -> Result<usize> {
    meta.byte_len()
}

impl MappedArray {
    /// Maps the `.npy` file at `path` in `mode`, as `np.load(path, mmap_mode=...)` does.
    ///
    /// The header is parsed and the file's length checked before anything is mapped; a file
    /// shorter than its header declares is an error, never a mapping past its end.
    ///
    /// # Errors
    ///
    /// An error naming the file: `ErrorKind::InvalidInput` for something other than a regular file,
    /// `ErrorKind::Locked` when another handle holds a conflicting lock, the header's errors
    /// (`ErrorKind::Format`, `ErrorKind::Truncated`, ...), `ErrorKind::Truncated` for a file
    /// shorter than its header declares, `ErrorKind::TooLarge` for a map that does not fit the
    /// address space; I/O errors of opening and mapping.
    ///
    /// # Safety
    ///
    /// A mapping is memory shared with the file. While it exists, no other process may truncate
    /// the file (accessing the lost pages raises SIGBUS) or, for `Read` and `CopyOnWrite` maps,
    /// change its bytes (the views would change under shared references). ndstore's own handles
    /// respect this through the advisory lock the map holds (shared for `r`/`c`, exclusive for
    /// `r+`); the caller must ensure that programs which ignore `flock` do too. Replacing the
    /// file by rename (every ndstore `save`) is safe: the map keeps the old file.
    pub unsafe fn open_npy(path: impl AsRef<Path>, mode: Mode) -> Result<MappedArray> {
        let path = path.as_ref();
        let mut file = open_existing(path, mode)?;
        let header = npy_header::read(&mut file, npy_header::DEFAULT_MAX_HEADER_LEN)
            .map_err(|e| e.with_path(path))?;
        let offset = usize::try_from(header.data_offset).map_err(|_| too_large(path))?;
        // SAFETY: forwarded to the caller, who accepted this function's contract.
        unsafe { MappedArray::map_existing(path, file, header.meta, offset, mode) }
    }

    /// Maps a raw file holding the elements `meta` describes, starting `offset` bytes in, as
    /// `np.memmap(path, dtype, mode, offset, shape, order)` does.
    ///
    /// # Errors
    ///
    /// As `MappedArray::open_npy`, without the header's.
    ///
    /// # Safety
    ///
    /// As for [`MappedArray::open_npy`].
    pub unsafe fn open_raw(
        path: impl AsRef<Path>,
        meta: &ArrayMeta,
        offset: u64,
        mode: Mode,
    ) -> Result<MappedArray> {
        let path = path.as_ref();
        let file = open_existing(path, mode)?;
        let offset = usize::try_from(offset).map_err(|_| too_large(path))?;
        // SAFETY: forwarded to the caller, who accepted this function's contract.
        unsafe { MappedArray::map_existing(path, file, meta.clone(), offset, mode) }
    }

    /// # Safety
    ///
    /// As for [`MappedArray::open_npy`].
    unsafe fn map_existing(
        path: &Path,
        file: File,
        meta: ArrayMeta,
        offset: usize,
        mode: Mode,
    ) -> Result<MappedArray> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
            .len();
        let bytes = data_len(&meta).map_err(|e| e.with_path(path))?;
        let end = offset.checked_add(bytes).ok_or_else(|| too_large(path))?;
        if end as u64 > len {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!("the array needs bytes {offset}..{end}, but the file holds only {len}"),
            )
            .with_path(path)
            .at_offset(len));
        }
        let map = if bytes == 0 {
            Map::Empty
        } else {
            let mut options = MmapOptions::new();
            options.len(end);
            // SAFETY: the file is at least `end` bytes long (checked above) and locked against
            // cooperating writers; the remaining conditions are the caller's (see `open_npy`).
            let mapped = unsafe {
                match mode {
                    Mode::Read => options.map(&file).map(Map::ReadOnly),
                    Mode::ReadWrite => options.map_mut(&file).map(Map::Writable),
                    Mode::CopyOnWrite => options.map_copy(&file).map(Map::Writable),
                }
            };
            mapped.map_err(|e| Error::io("cannot map the file", e).with_path(path))?
        };
        Ok(MappedArray {
            path: path.to_path_buf(),
            meta,
            data_offset: offset,
            mode,
            map,
            backing: Some(Backing::Existing(DurableFile::new(file, path))),
            durability: Durability::Synced,
            poisoned: false,
        })
    }

    /// Creates a `.npy` file of `meta`'s dtype, shape and order, filled with zeros, and maps it
    /// read-write (numpy's `open_memmap(path, mode="w+")`).
    ///
    /// With the default options the file is built as a temporary beside `path` and appears at
    /// `path` only complete, on [`Commit::commit`] (or `close`); dropped uncommitted, nothing
    /// appears. With `SaveOptions::in_place()` the target itself is created and truncated.
    ///
    /// # Errors
    ///
    /// The errors of `OutputFile::create`, of sizing the file (`ErrorKind::StorageFull`) and of
    /// mapping it; `ErrorKind::TooLarge` for a size that overflows.
    ///
    /// # Safety
    ///
    /// As for [`MappedArray::open_npy`], for the file being created.
    pub unsafe fn create_npy(
        path: impl AsRef<Path>,
        meta: &ArrayMeta,
        options: &SaveOptions,
    ) -> Result<MappedArray> {
        let header = npy_header::encode(meta);
        // SAFETY: forwarded to the caller.
        unsafe { MappedArray::create(path.as_ref(), meta, &header, options) }
    }

    /// Creates a raw file of `meta`'s size, filled with zeros, and maps it read-write
    /// (`np.memmap(path, mode="w+")`). Atomic by default, as [`MappedArray::create_npy`].
    ///
    /// # Errors
    ///
    /// As `MappedArray::create_npy`.
    ///
    /// # Safety
    ///
    /// As for [`MappedArray::open_npy`], for the file being created.
    pub unsafe fn create_raw(
        path: impl AsRef<Path>,
        meta: &ArrayMeta,
        options: &SaveOptions,
    ) -> Result<MappedArray> {
        // SAFETY: forwarded to the caller.
        unsafe { MappedArray::create(path.as_ref(), meta, &[], options) }
    }

    /// # Safety
    ///
    /// As for [`MappedArray::open_npy`].
    unsafe fn create(
        path: &Path,
        meta: &ArrayMeta,
        header: &[u8],
        options: &SaveOptions,
    ) -> Result<MappedArray> {
        let bytes = data_len(meta).map_err(|e| e.with_path(path))?;
        let end = header
            .len()
            .checked_add(bytes)
            .ok_or_else(|| too_large(path))?;
        let mut out = OutputFile::create(path, options)?;
        let target = out.target().to_path_buf();
        let file = out
            .file()?
            .try_clone()
            .map_err(|e| Error::io("duplicating a descriptor", e).with_path(&target))?;
        file.write_all_at(header, 0)
            .map_err(|e| Error::io("writing the header", e).with_path(&target))?;
        file.set_len(end as u64)
            .map_err(|e| Error::io("sizing the file", e).with_path(&target))?;
        ndstore_core::__private::os::preallocate(&file, end as u64);
        let map = if bytes == 0 {
            Map::Empty
        } else {
            let mut mmap_options = MmapOptions::new();
            mmap_options.len(end);
            // SAFETY: the file was just sized to `end` bytes; it is a fresh temporary (or the
            // exclusively locked target), and the caller accepted `open_npy`'s contract for it.
            let map = unsafe { mmap_options.map_mut(&file) };
            Map::Writable(map.map_err(|e| Error::io("cannot map the file", e).with_path(&target))?)
        };
        Ok(MappedArray {
            path: target.clone(),
            meta: meta.clone(),
            data_offset: header.len(),
            mode: Mode::ReadWrite,
            map,
            backing: Some(Backing::Created {
                out,
                file: DurableFile::new(file, target),
            }),
            durability: options.durability,
            poisoned: false,
        })
    }

    /// Chooses whether `close` and `commit` sync (the default) or only flush.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// What the mapped array is.
    pub fn meta(&self) -> &ArrayMeta {
        &self.meta
    }

    /// The mode the array is mapped in (`ReadWrite` for created arrays).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The file the map belongs to (the target, for created arrays).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn data(&self) -> &[u8] {
        let len = self.meta.byte_len().unwrap_or(0);
        match &self.map {
            Map::Empty => &[],
            Map::ReadOnly(m) => &m[self.data_offset..self.data_offset + len],
            Map::Writable(m) => &m[self.data_offset..self.data_offset + len],
        }
    }

    fn data_mut(&mut self) -> Result<&mut [u8]> {
        let len = self.meta.byte_len().unwrap_or(0);
        let offset = self.data_offset;
        match &mut self.map {
            Map::Empty => Ok(&mut []),
            Map::ReadOnly(_) => Err(Error::new(
                ErrorKind::Unsupported,
                "the array is mapped read-only (mode r)",
            )
            .with_path(&self.path)),
            Map::Writable(m) => Ok(&mut m[offset..offset + len]),
        }
    }

    fn check_view<T: Element>(&self) -> Result<()> {
        if self.meta.dtype.kind != T::KIND {
            return Err(ndstore_core::__private::array::type_mismatch(
                self.meta.dtype.kind,
                T::KIND,
            )
            .with_path(&self.path));
        }
        if self.meta.dtype.byte_order.needs_swap() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the file stores {} in the other byte order; a view needs native order (use read() to convert)", self.meta.dtype),
            )
            .with_path(&self.path));
        }
        if !self.data_offset.is_multiple_of(std::mem::align_of::<T>()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the data offset {} is not a multiple of {}'s alignment {}; use read() to copy",
                    self.data_offset,
                    T::KIND,
                    std::mem::align_of::<T>()
                ),
            )
            .with_path(&self.path));
        }
        Ok(())
    }

    fn shape(&self) -> ndarray::Shape<IxDyn> {
        IxDyn(&self.meta.shape).set_f(self.meta.order == Order::Fortran)
    }

    /// A view of the mapped elements, without copying. Needs the native byte order and an
    /// aligned offset (`.npy` data always is); `bool` bytes are checked to be 0 or 1.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch` for another element type; `ErrorKind::Unsupported` for data in
    /// the non-native byte order or misaligned for `T`; `ErrorKind::Format` for a `bool` byte other
    /// than 0 or 1.
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.check_view::<T>()?;
        // An empty slice's dangling pointer is aligned only for u8: use a typed empty slice.
        let data = self.data();
        let raw: &[T::Raw] = if data.is_empty() {
            &[]
        } else {
            bytemuck::try_cast_slice(data).map_err(|e| self.cast_error(e))?
        };
        let values = T::view_raw(raw).map_err(|i| self.invalid(i))?;
        ArrayViewD::from_shape(self.shape(), values).map_err(|e| self.shape_error(e))
    }

    /// A mutable view of the mapped elements (modes `r+`, `c` and created arrays).
    ///
    /// # Errors
    ///
    /// As `MappedArray::view`, and `ErrorKind::Unsupported` for a read-only map.
    pub fn view_mut<T: Element>(&mut self) -> Result<ArrayViewMutD<'_, T>> {
        self.check_view::<T>()?;
        let shape = self.shape();
        let path = self.path.clone();
        let offset = self.data_offset as u64;
        let data = self.data_mut()?;
        let raw: &mut [T::Raw] = if data.is_empty() {
            &mut []
        } else {
            bytemuck::try_cast_slice_mut(data).map_err(|e| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("cannot view the mapped bytes: {e}"),
                )
                .with_path(&path)
            })?
        };
        let values = T::view_raw_mut(raw).map_err(|i| {
            Error::new(
                ErrorKind::Format,
                format!("element {i} is not a valid {}", T::KIND),
            )
            .with_path(&path)
            .at_offset(offset + (i * T::KIND.itemsize()) as u64)
        })?;
        ArrayViewMutD::from_shape(shape, values).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the data does not fit the shape: {e}"),
            )
            .with_path(&path)
        })
    }

    fn cast_error(&self, e: bytemuck::PodCastError) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("cannot view the mapped bytes: {e:?}"),
        )
        .with_path(&self.path)
    }

    fn invalid(&self, index: usize) -> Error {
        Error::new(
            ErrorKind::Format,
            format!("element {index} is not a valid {}", self.meta.dtype.kind),
        )
        .with_path(&self.path)
        .at_offset((self.data_offset + index * self.meta.dtype.itemsize()) as u64)
    }

    fn shape_error(&self, e: ndarray::ShapeError) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            format!("the data does not fit the shape: {e}"),
        )
        .with_path(&self.path)
    }

    /// Copies the elements out into an owned array in native byte order (any byte order, any
    /// offset).
    ///
    /// # Errors
    ///
    /// `ErrorKind::OutOfMemory` when the copy cannot be allocated; `ErrorKind::Format` for a `bool`
    /// byte other than 0 or 1.
    pub fn read(&self) -> Result<DynArray> {
        let data = self.data();
        with_dtype_kind!(self.meta.dtype.kind, |T| {
            let count = self.meta.element_count()?;
            let mut raw = alloc_raw::<<T as Element>::Raw>(count)?;
            bytemuck::cast_slice_mut::<_, u8>(&mut raw).copy_from_slice(data);
            T::validate_raw(&raw).map_err(|i| self.invalid(i))?;
            array_from_raw::<T>(&self.meta, raw)
                .map(DynArray::from)
                .map_err(|e| e.with_path(&self.path))
        })
    }

    /// Overwrites every element with `values` (same kind and shape), converting to the stored
    /// byte order and order. Bulk fills go through `pwrite` into the page cache the map shares,
    /// which avoids the slow misaligned copies a large `memcpy` into a mapping can hit.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch` or `ErrorKind::InvalidInput` when `values` do not have the
    /// array's element type and shape; `ErrorKind::Unsupported` for a read-only map; the I/O
    /// error of writing into the file.
    pub fn write_from(&mut self, values: &DynArray) -> Result<()> {
        if values.kind() != self.meta.dtype.kind {
            return Err(ndstore_core::__private::array::type_mismatch(
                self.meta.dtype.kind,
                values.kind(),
            )
            .with_path(&self.path));
        }
        if values.shape() != self.meta.shape.as_slice() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "values of shape {:?} do not fit the mapped shape {:?}",
                    values.shape(),
                    self.meta.shape
                ),
            )
            .with_path(&self.path));
        }
        let order = self.meta.order;
        let byte_order = self.meta.dtype.byte_order;
        let path = self.path.clone();
        let mut position = self.data_offset as u64;
        match (&self.map, self.file()) {
            // Shared read-write mapping: write through the file, which the map sees at once.
            (Map::Writable(_), Some(file)) if self.mode == Mode::ReadWrite => with_dyn_array!(
                values,
                |a| write_elements(&a.view(), order, byte_order, &mut |bytes| {
                    file.write_all_at(bytes, position)?;
                    position += bytes.len() as u64;
                    Ok(())
                })
            )
            .map_err(|e| Error::io("writing into the mapped file", e).with_path(&path)),
            _ => {
                let data = self.data_mut()?;
                let mut at = 0usize;
                with_dyn_array!(values, |a| write_elements(
                    &a.view(),
                    order,
                    byte_order,
                    &mut |bytes| {
                        data[at..at + bytes.len()].copy_from_slice(bytes);
                        at += bytes.len();
                        Ok(())
                    }
                ))
                .map_err(|e| Error::io("writing into the map", e).with_path(&path))
            }
        }
    }

    fn file(&self) -> Option<&File> {
        match &self.backing {
            Some(Backing::Existing(f)) if self.mode == Mode::ReadWrite => Some(f.file_ref()),
            Some(Backing::Created { file, .. }) => Some(file.file_ref()),
            _ => None,
        }
    }

    fn durable_file(&mut self) -> Option<&mut DurableFile> {
        match &mut self.backing {
            Some(Backing::Existing(f)) => Some(f),
            Some(Backing::Created { file, .. }) => Some(file),
            None => None,
        }
    }

    fn writes_through(&self) -> bool {
        self.mode == Mode::ReadWrite && matches!(self.map, Map::Writable(_))
    }

    /// Starts write-back of the element range `[start, start + len)` (`msync(MS_ASYNC)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the I/O error of `msync`;
    /// [`ErrorKind::Poisoned`] after a failed sync.
    pub fn flush_range(&mut self, start: usize, len: usize) -> Result<()> {
        let range = self.byte_range(start, len)?;
        self.flush_pages(Some(range))
    }

    fn byte_range(&self, start: usize, len: usize) -> Result<(usize, usize)> {
        let itemsize = self.meta.dtype.itemsize();
        let count = self.meta.element_count()?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= count)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("elements {start}..{start}+{len} are outside the array of {count}"),
                )
                .with_path(&self.path)
            })?;
        Ok((
            self.data_offset + start * itemsize,
            (end - start) * itemsize,
        ))
    }

    /// Makes the element range `[start, start + len)` durable (`msync(MS_SYNC)` of the pages
    /// holding it, then `fsync`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a range outside the array; the I/O error of `msync` or
    /// `fsync`, which poisons the map; [`ErrorKind::Poisoned`] after an earlier failed sync.
    pub fn sync_range(&mut self, start: usize, len: usize) -> Result<()> {
        let range = self.byte_range(start, len)?;
        self.sync_pages(Some(range))
    }

    /// Fails on a poisoned map; says whether there is anything to write back.
    fn writable(&self) -> Result<bool> {
        if self.poisoned {
            return Err(ndstore_core::__private::atomic::poisoned_error(&self.path));
        }
        Ok(self.writes_through())
    }

    /// `msync(MS_ASYNC)` of the byte range, or of the whole map.
    fn flush_pages(&mut self, range: Option<(usize, usize)>) -> Result<()> {
        if !self.writable()? {
            return Ok(());
        }
        let result = match (&self.map, range) {
            (Map::Writable(m), Some((offset, len))) => m.flush_async_range(offset, len),
            (Map::Writable(m), None) => m.flush_async(),
            _ => Ok(()),
        };
        result.map_err(|e| Error::io("msync failed", e).with_path(&self.path))
    }

    /// `msync(MS_SYNC)` of the byte range, or of the whole map, then `fsync`; a failure
    /// poisons the map.
    fn sync_pages(&mut self, range: Option<(usize, usize)>) -> Result<()> {
        if !self.writable()? {
            return Ok(());
        }
        let result = match (&self.map, range) {
            (Map::Writable(m), Some((offset, len))) => m.flush_range(offset, len),
            (Map::Writable(m), None) => m.flush(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.poisoned = true;
            return Err(Error::io("msync failed; the map is poisoned", e).with_path(&self.path));
        }
        // Data written with pwrite, and the file's size, are made durable by fsync.
        let result = self.durable_file().map_or(Ok(()), DurableFile::sync);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Writes back as the durability says (sync, or only flush), unmaps, and publishes a
    /// created file.
    fn finish(&mut self) -> Result<()> {
        match self.durability {
            Durability::Synced => self.sync_pages(None)?,
            Durability::Flushed => self.flush_pages(None)?,
        }
        self.map = Map::Empty;
        match self.backing.take() {
            Some(Backing::Existing(file)) => file.close(),
            Some(Backing::Created { out, file }) => {
                file.close()?;
                out.finish()
            }
            None => Ok(()),
        }
    }

    /// Unmaps and releases the file without writing back or publishing: an uncommitted
    /// created file is rolled back (an atomic one's temporary removed).
    fn release(&mut self) -> Result<()> {
        self.map = Map::Empty;
        match self.backing.take() {
            Some(Backing::Existing(file)) => file.close(),
            Some(Backing::Created { out, file }) => file.close().and(out.abort()),
            None => Ok(()),
        }
    }

    /// Unmaps and releases the array without the write-back `close` does, and reports what
    /// dropping it would only log. A created (`w+`) array is not published: an atomic one's
    /// temporary file is removed and the target keeps its old content. Stores into a
    /// read-write map are in the file's pages as soon as they are made, so they stay.
    ///
    /// # Errors
    ///
    /// The error of closing the file or removing the temporary; [`ErrorKind::Poisoned`] after
    /// a failed sync.
    pub fn abort(mut self) -> Result<()> {
        self.release()
    }
}

impl Durable for MappedArray {
    /// Starts write-back of the dirty pages (`MS_ASYNC`); other processes already see them.
    fn flush(&mut self) -> Result<()> {
        self.flush_pages(None)
    }

    /// `msync(MS_SYNC)` then `fsync`: what numpy's `memmap.flush()` does, plus the fsync. For a
    /// created (`w+`) array this makes the temporary durable; `commit` publishes it.
    fn sync(&mut self) -> Result<()> {
        self.sync_pages(None)
    }
}

impl Close for MappedArray {
    /// Flushes (syncs, unless created with `SaveOptions::flushed()`), unmaps and releases the
    /// lock. A created (`w+`) array is published, as by `commit`.
    fn close(mut self) -> Result<()> {
        self.finish()
    }
}

impl Commit for MappedArray {
    /// Syncs the created file and publishes it at the target (rename and directory fsync for
    /// the default atomic creation).
    fn commit(mut self) -> Result<()> {
        self.finish()
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        if self.backing.is_none() {
            return;
        }
        let atomic_creation = matches!(&self.backing, Some(Backing::Created { out, .. }) if out.path() != out.target());
        // Not published: an uncommitted w+ rolls back; during a panic nothing is written back.
        let result = if atomic_creation || std::thread::panicking() {
            self.release()
        } else {
            self.flush_pages(None).and_then(|()| self.release())
        };
        if let Err(e) = result {
            log::error!(
                "{}: releasing a mapped array on drop failed: {e}",
                self.path.display()
            );
        }
    }
}

fn open_existing(path: &Path, mode: Mode) -> Result<File> {
    // Opened without blocking, so a FIFO cannot hang the open; only a regular file is mapped.
    let file = ndstore_core::__private::os::open_nonblocking(path, mode == Mode::ReadWrite)
        .map_err(|e| Error::io("cannot open", e).with_path(path))?;
    let metadata = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?;
    if !metadata.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file: only regular files can be mapped",
        )
        .with_path(path));
    }
    let lock = if mode == Mode::ReadWrite {
        Lock::Exclusive
    } else {
        Lock::Shared
    };
    ndstore_core::lock(&file, lock, path)?;
    Ok(file)
}

fn too_large(path: &Path) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        "the array does not fit in the address space",
    )
    .with_path(path)
}

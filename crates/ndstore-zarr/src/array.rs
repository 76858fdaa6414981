//! A Zarr array on a store (a local directory, or object storage with the `s3` feature), with
//! region I/O: any hyperslab read or written, chunk by chunk on a bounded number of threads
//! (each a request in flight on object storage), so memory holds the region and a few chunks
//! at most.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use ndarray::{ArrayViewD, Slice};
use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DynArray, Element, Error, ErrorKind, LoadOptions, Location, Order,
    Result, SaveOptions, with_dtype_kind, with_dyn_array,
};

use crate::codec::{self, CodecChain};
use crate::grid::{self, Place};
use crate::meta::{self, METADATA_FILE, Node, ZarrMeta, chunk_bytes};
use crate::store::{KeyStore, LocalStore};

/// The longest `zarr.json` read (a document holding more attributes is refused).
const MAX_METADATA_LEN: usize = 16 << 20;

/// The most chunks in flight at once (per region call).
const MAX_WORKERS: usize = 4;

/// A Zarr v3 array in a local directory or, with the `s3` feature, in object storage.
#[derive(Debug)]
pub struct ZarrArray {
    meta: ZarrMeta,
    store: Box<dyn KeyStore>,
}

/// Reads and parses the `zarr.json` of the node at `path`.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when `path` holds no `zarr.json`; the errors of [`meta::parse`].
pub fn read_node(path: &Path) -> Result<Node> {
    read_node_in(&LocalStore::open(path, &SaveOptions::default())?)
}

/// Reads and parses the `zarr.json` of the node at `target` in object storage (one GET, no
/// lease read: for listings).
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when the prefix holds no `zarr.json`; the store's errors; the
/// errors of [`meta::parse`].
#[cfg(feature = "s3")]
pub fn read_object_node(target: &crate::object::ObjectTarget) -> Result<Node> {
    let file_path = target.name().join(METADATA_FILE);
    let bytes = target
        .read_object(METADATA_FILE, MAX_METADATA_LEN)?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "no zarr.json: not a Zarr v3 array or group",
            )
            .with_path(&file_path)
            .at(Location::Object(METADATA_FILE.to_owned()))
        })?;
    meta::parse(&bytes, &file_path)
}

/// Reads and parses the `zarr.json` of the node `store` holds.
fn read_node_in(store: &dyn KeyStore) -> Result<Node> {
    let file_path = store.path_of(METADATA_FILE);
    let bytes = store.get(METADATA_FILE, MAX_METADATA_LEN)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "no zarr.json: not a Zarr v3 array or group",
        )
        .with_path(&file_path)
        .at(Location::Object(METADATA_FILE.to_owned()))
    })?;
    meta::parse(&bytes, &file_path)
}

impl ZarrArray {
    /// Opens the array at `path`; later writes follow `options` (durability, replace policy).
    ///
    /// # Errors
    ///
    /// The errors of [`read_node`]; [`ErrorKind::InvalidInput`] when `path` is a group.
    pub fn open(path: &Path, options: &SaveOptions) -> Result<ZarrArray> {
        ZarrArray::open_in(Box::new(LocalStore::open(path, options)?))
    }

    fn open_in(store: Box<dyn KeyStore>) -> Result<ZarrArray> {
        match read_node_in(store.as_ref())? {
            Node::Array(meta) => Ok(ZarrArray { meta: *meta, store }),
            Node::Group(_) => Err(not_an_array(store.as_ref())),
        }
    }

    /// Opens the array at `target` in object storage; a later commit of it replaces exactly
    /// the version of `zarr.json` read now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when the prefix holds no `zarr.json`; the store's errors
    /// ([`ErrorKind::Io`] for a failed request); the errors of [`meta::parse`];
    /// [`ErrorKind::InvalidInput`] for a group.
    #[cfg(feature = "s3")]
    pub fn open_object(
        target: &crate::object::ObjectTarget,
        options: &SaveOptions,
    ) -> Result<ZarrArray> {
        ZarrArray::open_in(Box::new(crate::object::ObjectArrayStore::open(
            target, options,
        )?))
    }

    /// Starts a new array described by `meta` at `target` in object storage, replacing the
    /// array there (if any) when committed. Nothing is visible before
    /// [`ZarrArray::write_metadata`] commits it: chunks are written under the prefix, and
    /// `zarr.json` is written last with a conditional PUT (create-if-absent for a new array,
    /// if-the-ETag-matches for the version present now), so two committers conflict.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the prefix holds a group; the store's errors.
    #[cfg(feature = "s3")]
    pub fn create_object(
        target: &crate::object::ObjectTarget,
        meta: ZarrMeta,
        options: &SaveOptions,
    ) -> Result<ZarrArray> {
        let store = crate::object::ObjectArrayStore::create(target, options)?;
        if store.replaces()
            && let Some(Node::Group(_)) = store
                .get(METADATA_FILE, MAX_METADATA_LEN)?
                .map(|bytes| meta::parse(&bytes, &store.path_of(METADATA_FILE)))
                .transpose()?
        {
            return Err(not_an_array(&store));
        }
        Ok(ZarrArray {
            meta,
            store: Box::new(store),
        })
    }

    /// Forgets an array that will not be committed: on object storage, the chunks a new
    /// array wrote are removed (best effort, failures logged); a replaced array's overwritten
    /// chunks stay as written (each one whole), and the writer lease is released.
    #[cfg(feature = "s3")]
    pub(crate) fn abandon(&self) {
        self.store.abandon();
    }

    /// Creates an array described by `meta` in the directory `path` (created when missing) and
    /// writes its `zarr.json`; its chunks all read as the fill value until written.
    ///
    /// # Errors
    ///
    /// The I/O errors of creating the directory and of writing `zarr.json`.
    pub fn create(path: &Path, meta: ZarrMeta, options: &SaveOptions) -> Result<ZarrArray> {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::io("cannot create the array's directory", e).with_path(path));
            }
        }
        let array = ZarrArray {
            meta,
            store: Box::new(LocalStore::new(path, options)),
        };
        array.write_metadata()?;
        Ok(array)
    }

    /// The array's Zarr metadata.
    pub fn meta(&self) -> &ZarrMeta {
        &self.meta
    }

    /// The array's metadata as ndstore reports it (always C order: Zarr arrays have no memory
    /// order of their own).
    pub fn array_meta(&self) -> ArrayMeta {
        ArrayMeta::new(self.meta.dtype(), self.meta.shape.clone(), Order::C)
    }

    /// The durability the array's writes were opened with.
    pub fn durability(&self) -> ndstore_core::Durability {
        self.store.durability()
    }

    /// The array's directory.
    pub fn path(&self) -> &Path {
        self.store.root()
    }

    /// Rewrites `zarr.json` (after the shape grew, say), atomically; on object storage, this
    /// is the commit: a conditional PUT that fails when another writer committed the array
    /// since this one opened or started it.
    ///
    /// # Errors
    ///
    /// The errors of [`LocalStore::put`]; on object storage, [`ErrorKind::Locked`] when
    /// another writer committed first, [`ErrorKind::Poisoned`] after a failed chunk request,
    /// and the store's errors.
    pub fn write_metadata(&self) -> Result<()> {
        self.store.commit_metadata(&self.meta.to_bytes()?)
    }

    /// Sets the length of axis 0 (for a streaming writer); `write_metadata` records it.
    pub(crate) fn set_rows(&mut self, rows: usize) {
        if let Some(first) = self.meta.shape.first_mut() {
            *first = rows;
        }
    }

    /// Makes every chunk and metadata write so far durable (the directories' fsyncs).
    ///
    /// # Errors
    ///
    /// The I/O error of an fsync, which poisons the array's store.
    pub fn sync(&self) -> Result<()> {
        self.store.sync()
    }

    /// Reads the whole array, refusing one over `options.memory_limit` before allocating.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfMemory`] over the limit; the errors of [`ZarrArray::read_region`].
    pub fn read_all(&self, options: &LoadOptions) -> Result<DynArray> {
        let bytes = self
            .array_meta()
            .byte_len()
            .map_err(|e| e.with_path(self.path()))?;
        options
            .admit(bytes as u64)
            .map_err(|e| e.with_path(self.path()))?;
        let start = vec![0; self.meta.shape.len()];
        self.read_region(&start, &self.meta.shape.clone())
    }

    /// Reads the box of `shape` at `start`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a box outside the array; for a damaged chunk, its error
    /// naming the chunk's file and key; [`ErrorKind::OutOfMemory`] when the box cannot be
    /// allocated.
    pub fn read_region(&self, start: &[usize], shape: &[usize]) -> Result<DynArray> {
        self.check_box(start, shape)?;
        let kind = self.meta.kind;
        with_dtype_kind!(kind, |T| {
            let count = ndstore_core::__private::meta::element_count(shape)?;
            let mut raw = ndstore_core::__private::load::try_zeroed_vec::<<T as Element>::Raw>(
                count,
                Some(self.path()),
            )?;
            self.read_into(start, shape, bytemuck::cast_slice_mut(raw.as_mut_slice()))?;
            let meta = ArrayMeta::new(DType::native(kind), shape.to_vec(), Order::C);
            let array = ndstore_core::__private::codec::array_from_raw::<T>(&meta, raw)
                .map_err(|e| e.with_path(self.path()))?;
            Ok(DynArray::from(array))
        })
    }

    /// Reads the box at `start` of `shape` into `out` (its native bytes, C order), then checks
    /// that the array was not replaced and removed meanwhile: a save removes the old tree's
    /// `zarr.json` before its chunks, so while `zarr.json` is there, a missing chunk was never
    /// written (it reads as the fill value) rather than removed under the reader.
    fn read_into(&self, start: &[usize], shape: &[usize], out: &mut [u8]) -> Result<()> {
        self.read_chunks_into(start, shape, out)?;
        if !self.store.still_current()? {
            return Err(Error::new(
                ErrorKind::NotFound,
                "the array was replaced while it was read (its zarr.json is gone or changed); open it again",
            )
            .with_path(self.path()));
        }
        Ok(())
    }

    fn read_chunks_into(&self, start: &[usize], shape: &[usize], out: &mut [u8]) -> Result<()> {
        let itemsize = self.meta.kind.itemsize();
        let chunks = self.chunks_of(start, shape);
        let fill = self.meta.fill.clone();
        parallel(
            chunks.len(),
            |i| self.read_chunk(&chunks[i]),
            |i, data| {
                let (_, in_chunk, in_region, extent) = self.overlap(&chunks[i], start, shape);
                let dst = Place {
                    shape,
                    start: &in_region,
                };
                match data {
                    Some(data) => grid::copy_box(
                        &data,
                        Place {
                            shape: &self.meta.chunk_shape,
                            start: &in_chunk,
                        },
                        out,
                        dst,
                        &extent,
                        itemsize,
                    ),
                    None => grid::fill_box(out, dst, &extent, &fill),
                }
                Ok(())
            },
        )
    }

    /// Writes `values` as the box at `start` (its shape is the values'), chunk by chunk: a
    /// chunk the box covers whole is encoded from the values alone, others are read, updated
    /// and written back; a chunk left all fill value is removed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TypeMismatch`] for values of another element type, [`ErrorKind::InvalidInput`]
    /// for a box outside the array; the errors of reading and of [`LocalStore::put`].
    pub fn write_region(&self, start: &[usize], values: &DynArray) -> Result<()> {
        if values.kind() != self.meta.kind {
            return Err(ndstore_core::__private::array::type_mismatch(
                self.meta.kind,
                values.kind(),
            )
            .with_path(self.path()));
        }
        let shape = values.shape().to_vec();
        self.check_box(start, &shape)?;
        with_dyn_array!(values, |a| self.write_view(start, &a.view()))
    }

    fn write_view<T: Element>(&self, start: &[usize], view: &ArrayViewD<'_, T>) -> Result<()> {
        let shape = view.shape().to_vec();
        let chunks = self.chunks_of(start, &shape);
        let itemsize = self.meta.kind.itemsize();
        let chunk_len = chunk_bytes(&self.meta.chunk_shape, itemsize)?;
        let element = codec::Element {
            kind: self.meta.kind,
            fill: &self.meta.fill,
        };
        parallel(
            chunks.len(),
            |i| {
                let coords = &chunks[i];
                let (chunk_start, in_chunk, in_region, extent) =
                    self.overlap(coords, start, &shape);
                // Covered whole (the padding past the array's end aside): nothing to read.
                let whole = (0..shape.len()).all(|a| {
                    in_chunk[a] == 0
                        && (extent[a] == self.meta.chunk_shape[a]
                            || chunk_start[a] + extent[a] == self.meta.shape[a])
                });
                let part = box_bytes(view, &in_region, &extent);
                // A chunk the box covers exactly is the box's bytes as they are (C order,
                // native): no second buffer, no fill, no copy.
                let data = if extent == self.meta.chunk_shape {
                    part
                } else {
                    // The old chunk is read only when the box leaves part of it as it was.
                    let old = if whole {
                        None
                    } else {
                        self.read_chunk(coords)?
                    };
                    let mut data = match old {
                        Some(data) => data,
                        None => {
                            let mut data = ndstore_core::__private::load::try_zeroed_vec::<u8>(
                                chunk_len,
                                Some(self.path()),
                            )?;
                            grid::fill_box(
                                &mut data,
                                Place {
                                    shape: &self.meta.chunk_shape,
                                    start: &vec![0; shape.len()],
                                },
                                &self.meta.chunk_shape,
                                &self.meta.fill,
                            );
                            data
                        }
                    };
                    grid::copy_box(
                        &part,
                        Place {
                            shape: &extent,
                            start: &vec![0; shape.len()],
                        },
                        &mut data,
                        Place {
                            shape: &self.meta.chunk_shape,
                            start: &in_chunk,
                        },
                        &extent,
                        itemsize,
                    );
                    data
                };
                let key = self.key(coords);
                if grid::all_equal(&data, &self.meta.fill) {
                    return self.store.erase(&key);
                }
                let encoded = self
                    .meta
                    .codecs
                    .encode(data, &self.meta.chunk_shape, element)?;
                if encoded.is_empty() {
                    return self.store.erase(&key);
                }
                self.store.put(&key, &encoded)
            },
            |_, ()| Ok(()),
        )
    }

    /// The chunk at `coords`, decoded, or `None` when the store has no such chunk.
    fn read_chunk(&self, coords: &[u64]) -> Result<Option<Vec<u8>>> {
        let key = self.key(coords);
        let at_chunk = |e: Error| {
            Error::new(e.kind(), e.message().to_owned())
                .with_path(self.store.path_of(&key))
                .at(Location::Object(format!("chunk {key}")))
        };
        let itemsize = self.meta.kind.itemsize();
        self.check_overhang().map_err(at_chunk)?;
        let limit = max_encoded_len(&self.meta.codecs, &self.meta.chunk_shape, itemsize)?;
        let Some(bytes) = self.store.get(&key, limit).map_err(|e| match e.kind() {
            // The operating system's errors name the file; no byte is to blame.
            ErrorKind::Io | ErrorKind::OutOfMemory => e,
            _ => at_chunk(e),
        })?
        else {
            return Ok(None);
        };
        let element = codec::Element {
            kind: self.meta.kind,
            fill: &self.meta.fill,
        };
        let data = self
            .meta
            .codecs
            .decode(bytes, &self.meta.chunk_shape, element)
            .map_err(at_chunk)?;
        // A bool is stored as one byte that must be 0 or 1.
        if self.meta.kind == ndstore_core::DTypeKind::Bool
            && let Some(i) = data.iter().position(|&b| b > 1)
        {
            return Err(at_chunk(Error::new(
                ErrorKind::Format,
                format!("element {i} of the decoded chunk is not a valid bool"),
            )));
        }
        Ok(Some(data))
    }

    /// Refuses, before anything is read or allocated, a chunk that decodes to more than
    /// [`OVERHANG_BYTES`] and more than twice the whole array's bytes: every stored chunk
    /// decodes to its whole shape, so a `zarr.json` declaring huge chunks over a small array
    /// would otherwise cost their whole size to read one element. A chunk no larger than
    /// either bound (an edge chunk of an honest array is never larger than the array plus a
    /// chunk) is read as usual.
    fn check_overhang(&self) -> Result<()> {
        let itemsize = self.meta.kind.itemsize();
        let whole = chunk_bytes(&self.meta.chunk_shape, itemsize)? as u128;
        let array = self
            .meta
            .shape
            .iter()
            .fold(itemsize as u128, |acc, &n| acc.saturating_mul(n as u128));
        if whole <= OVERHANG_BYTES as u128 || whole <= array.saturating_mul(2) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Format,
            format!(
                "the chunk shape {:?} decodes to {whole} bytes for an array of shape {:?} that holds {array}; a chunk over {OVERHANG_BYTES} bytes and twice its array's size is refused",
                self.meta.chunk_shape, self.meta.shape
            ),
        ))
    }

    fn key(&self, coords: &[u64]) -> String {
        self.meta.key_encoding.key(coords)
    }

    fn check_box(&self, start: &[usize], shape: &[usize]) -> Result<()> {
        let inside = start.len() == self.meta.shape.len()
            && shape.len() == self.meta.shape.len()
            && (0..shape.len()).all(|a| {
                start[a]
                    .checked_add(shape[a])
                    .is_some_and(|end| end <= self.meta.shape[a])
            });
        if inside {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the box of shape {shape:?} at {start:?} is not inside the array's shape {:?}",
                    self.meta.shape
                ),
            )
            .with_path(self.path()))
        }
    }

    /// The grid coordinates of every chunk the box touches, in C order.
    fn chunks_of(&self, start: &[usize], shape: &[usize]) -> Vec<Vec<u64>> {
        if shape.contains(&0) {
            return Vec::new();
        }
        let first: Vec<usize> = start
            .iter()
            .zip(&self.meta.chunk_shape)
            .map(|(&s, &c)| s / c)
            .collect();
        let counts: Vec<usize> = (0..shape.len())
            .map(|a| (start[a] + shape[a] - 1) / self.meta.chunk_shape[a] - first[a] + 1)
            .collect();
        codec::coords_of(&counts)
            .map(|c| {
                c.iter()
                    .zip(&first)
                    .map(|(&i, &f)| (i + f) as u64)
                    .collect()
            })
            .collect()
    }

    /// Where chunk `coords` and the box meet: the chunk's first element in the array, the
    /// overlap's start in the chunk and in the box, and its extent.
    fn overlap(
        &self,
        coords: &[u64],
        start: &[usize],
        shape: &[usize],
    ) -> (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) {
        let ndim = shape.len();
        let mut chunk_start = vec![0; ndim];
        let mut in_chunk = vec![0; ndim];
        let mut in_region = vec![0; ndim];
        let mut extent = vec![0; ndim];
        for a in 0..ndim {
            let c = self.meta.chunk_shape[a];
            // The coordinates came from `chunks_of`, so they fit usize.
            #[allow(clippy::cast_possible_truncation)]
            let origin = coords[a] as usize * c;
            let lo = origin.max(start[a]);
            let hi = (origin + c).min(start[a] + shape[a]);
            chunk_start[a] = origin;
            in_chunk[a] = lo - origin;
            in_region[a] = lo - start[a];
            extent[a] = hi - lo;
        }
        (chunk_start, in_chunk, in_region, extent)
    }
}

/// The error of a node that is a group where an array was expected.
fn not_an_array(store: &dyn KeyStore) -> Error {
    Error::new(ErrorKind::InvalidInput, "the node is a group, not an array")
        .with_path(store.path_of(METADATA_FILE))
        .at(Location::Object("node_type".to_owned()))
}

/// The most bytes a stored chunk of `shape` can take: its elements, and for compressors their
/// worst-case overhead (a shard: see the sharding codec).
/// The most bytes a chunk may decode to when it is more than twice its array's size (see
/// `ZarrArray::check_overhang`).
pub(crate) const OVERHANG_BYTES: usize = 64 << 20;

fn max_encoded_len(codecs: &CodecChain, shape: &[usize], itemsize: usize) -> Result<usize> {
    let raw = chunk_bytes(shape, itemsize)?;
    let inner = codecs
        .sharding()
        .map_or(Ok(raw), |s| s.max_encoded_len(shape, itemsize))?;
    // Deflate and zstd grow incompressible data by well under 1/64, plus headers.
    Ok(inner.saturating_add(inner / 64).saturating_add(1 << 16))
}

/// The native C-order bytes of the box of `extent` at `start` of `view`.
fn box_bytes<T: Element>(view: &ArrayViewD<'_, T>, start: &[usize], extent: &[usize]) -> Vec<u8> {
    let part = view.slice_each_axis(|ax| {
        let a = ax.axis.index();
        Slice::from(start[a]..start[a] + extent[a])
    });
    let mut bytes = Vec::with_capacity(part.len() * std::mem::size_of::<T>());
    // Writing into a vector cannot fail.
    let _ = ndstore_core::__private::codec::write_elements(
        &part,
        Order::C,
        ByteOrder::native(),
        &mut |b| {
            bytes.extend_from_slice(b);
            Ok(())
        },
    );
    bytes
}

/// Runs `work(i)` for `i` in `0..count` on up to [`MAX_WORKERS`] threads and hands each result
/// to `consume` on the caller's thread, at most a few results held at once. The first error
/// stops the work and is returned.
fn parallel<R: Send>(
    count: usize,
    work: impl Fn(usize) -> Result<R> + Sync,
    mut consume: impl FnMut(usize, R) -> Result<()>,
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_WORKERS)
        .min(count);
    if workers <= 1 {
        for i in 0..count {
            consume(i, work(i)?)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<(usize, Result<R>)>(workers);
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    if sender.send((i, work(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut first_error = None;
        for (i, result) in receiver {
            if first_error.is_some() {
                continue;
            }
            if let Err(e) = result.and_then(|r| consume(i, r)) {
                stop.store(true, Ordering::Relaxed);
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// The path of a sibling temporary directory for `target`.
pub(crate) fn temp_dir_for(target: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = target.file_name().ok_or_else(|| {
        Error::new(ErrorKind::InvalidInput, "the target has no file name").with_path(target)
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(
        ".{}-{n}{}",
        std::process::id(),
        ndstore_core::__private::atomic::TEMP_SUFFIX
    ));
    Ok(ndstore_core::__private::atomic::parent_dir(target).join(temp))
}

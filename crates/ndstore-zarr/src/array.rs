//! A Zarr array on a store (a local directory, or object storage with the `s3` feature), with
//! region I/O: any hyperslab read or written, chunk by chunk on a bounded number of threads
//! (each a request in flight on object storage), so memory holds the region and a few chunks
//! at most.

use std::borrow::Cow;
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
use crate::store::{KeyStore, LocalStore, MemoryRanges, RangeReader, Span};

/// The longest `zarr.json` read (a document holding more attributes is refused).
const MAX_METADATA_LEN: usize = 16 << 20;

/// The most chunks in flight at once (per region call).
const MAX_WORKERS: usize = 4;

/// The most chunks a synced local write keeps in flight, each on its own thread, most of
/// them waiting in their fsync.
const MAX_SYNCED_WRITERS: usize = 8;

/// The chunk bytes a synced local write keeps in flight at most (beyond one chunk per core).
const SYNCED_WRITE_BYTES: usize = 32 << 20;

/// How often a partial read of a shard starts again when the shard is replaced under it.
const SHARD_READ_ATTEMPTS: usize = 3;

/// What a region read takes from one chunk.
enum Piece {
    /// The whole chunk decoded, `None` when the store does not hold it.
    Whole(Option<Vec<u8>>),
    /// The inner chunks of a shard that the region touches (see
    /// `ZarrArray::read_inner_chunks`), `None` when the store does not hold the shard.
    Inner(Option<InnerChunks>),
}

/// Inner chunks of a shard: each one's first element in the shard, and its decoded bytes
/// (`None` for one the shard does not hold, which reads as the fill value).
type InnerChunks = Vec<(Vec<usize>, Option<Vec<u8>>)>;

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

    /// Opens the array at `target` in object storage for reading only: no writer lease is
    /// read (one request fewer than [`ZarrArray::open_object`]), and every write is refused.
    ///
    /// # Errors
    ///
    /// As [`ZarrArray::open_object`].
    #[cfg(feature = "s3")]
    pub fn open_object_read_only(
        target: &crate::object::ObjectTarget,
        options: &SaveOptions,
    ) -> Result<ZarrArray> {
        ZarrArray::open_in(Box::new(crate::object::ObjectArrayStore::open_read_only(
            target, options,
        )))
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
        // Reading the old zarr.json also records its version, which the commit replaces.
        {
            let old = store
                .get(METADATA_FILE, MAX_METADATA_LEN)?
                .map(|bytes| meta::parse(&bytes, &store.path_of(METADATA_FILE)))
                .transpose()?;
            match old {
                Some(Node::Group(_)) => return Err(not_an_array(&store)),
                Some(Node::Array(old)) if !same_chunk_layout(&old, &meta) => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "an array of another chunk layout (data type, chunk shape, key encoding, codecs or fill value) is here: object storage has no rename, so replacing it chunk by chunk could leave chunks of the new layout under the old zarr.json, which would read them as wrong values; remove it first",
                    )
                    .with_path(store.path_of(METADATA_FILE)));
                }
                _ => {}
            }
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
        self.store.check_writable()?;
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
        if let Some(row_bytes) = self.row_bytes(shape) {
            return self.read_rows_into(start, shape, out, row_bytes);
        }
        let itemsize = self.meta.kind.itemsize();
        let chunks = self.chunks_of(start, shape);
        let fill = self.meta.fill.clone();
        let sharding = self.meta.codecs.sharding_alone();
        parallel(
            chunks.len(),
            |i| {
                let (_, in_chunk, _, extent) = self.overlap(&chunks[i], start, shape);
                match sharding {
                    // A shard's inner chunks go straight into the region: the whole shard in
                    // one read when the box covers it, else its index and then the inner
                    // chunks the box touches.
                    Some(s) => {
                        let whole = extent == self.meta.chunk_shape;
                        self.read_inner_chunks(s, &chunks[i], &in_chunk, &extent, whole)
                            .map(Piece::Inner)
                    }
                    None => self.read_chunk(&chunks[i]).map(Piece::Whole),
                }
            },
            |i, piece| {
                let (_, in_chunk, in_region, extent) = self.overlap(&chunks[i], start, shape);
                let dst = Place {
                    shape,
                    start: &in_region,
                };
                match piece {
                    Piece::Whole(Some(data)) => grid::copy_box(
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
                    Piece::Whole(None) | Piece::Inner(None) => {
                        grid::fill_box(out, dst, &extent, &fill);
                    }
                    Piece::Inner(Some(parts)) => {
                        let inner = sharding.map_or(&[][..], codec::Sharding::inner_shape);
                        for (origin, data) in parts {
                            // Where the inner chunk and the box meet, in the inner chunk and in
                            // the region.
                            let lo: Vec<usize> = (0..shape.len())
                                .map(|a| origin[a].max(in_chunk[a]))
                                .collect();
                            let meet: Vec<usize> = (0..shape.len())
                                .map(|a| {
                                    (origin[a] + inner[a]).min(in_chunk[a] + extent[a]) - lo[a]
                                })
                                .collect();
                            let at: Vec<usize> = (0..shape.len())
                                .map(|a| in_region[a] + lo[a] - in_chunk[a])
                                .collect();
                            let here = Place { shape, start: &at };
                            match data {
                                Some(data) => {
                                    let from: Vec<usize> =
                                        (0..shape.len()).map(|a| lo[a] - origin[a]).collect();
                                    grid::copy_box(
                                        &data,
                                        Place {
                                            shape: inner,
                                            start: &from,
                                        },
                                        out,
                                        here,
                                        &meet,
                                        itemsize,
                                    );
                                }
                                None => grid::fill_box(out, here, &meet, &fill),
                            }
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// The bytes of one row of a box of `shape` (every axis but the first) when each chunk the
    /// box touches meets it in whole rows: the box and the chunks (and a shard's inner chunks)
    /// span the array's every axis but the first. Each chunk's part of the box is then one
    /// contiguous run of the box's bytes, and so is its part of the chunk.
    fn row_bytes(&self, shape: &[usize]) -> Option<usize> {
        let (array, chunk) = (&self.meta.shape, &self.meta.chunk_shape);
        if shape.is_empty() || shape.contains(&0) {
            return None;
        }
        let whole = (1..shape.len()).all(|a| chunk[a] == shape[a] && shape[a] == array[a]);
        let inner = match (
            self.meta.codecs.sharding(),
            self.meta.codecs.sharding_alone(),
        ) {
            (None, _) => true,
            (Some(_), Some(s)) => (1..shape.len()).all(|a| s.inner_shape()[a] == chunk[a]),
            // A shard with other codecs around it is decoded whole, as any chunk.
            (Some(_), None) => true,
        };
        (whole && inner).then(|| shape[1..].iter().product::<usize>() * self.meta.kind.itemsize())
    }

    /// Reads a box whose chunks meet it in whole rows (see `ZarrArray::row_bytes`): the box's
    /// bytes are cut into each chunk's run, and each worker decodes its chunk straight into
    /// its run, where the chunk (or a shard's inner chunk) lies wholly inside the box, or
    /// copies the rows it needs there; nothing comes back to the caller's thread to copy.
    fn read_rows_into(
        &self,
        start: &[usize],
        shape: &[usize],
        out: &mut [u8],
        row_bytes: usize,
    ) -> Result<()> {
        let chunks = self.chunks_of(start, shape);
        // The chunks follow each other along the first axis, each meeting the box in rows
        // that follow the previous chunk's.
        let mut runs = Vec::with_capacity(chunks.len());
        let mut rest = out;
        for coords in &chunks {
            let (_, _, _, extent) = self.overlap(coords, start, shape);
            let (run, tail) = std::mem::take(&mut rest).split_at_mut(extent[0] * row_bytes);
            runs.push(std::sync::Mutex::new(Some(run)));
            rest = tail;
        }
        let sharding = self.meta.codecs.sharding_alone();
        parallel(
            chunks.len(),
            |i| {
                let run = runs[i]
                    .lock()
                    .ok()
                    .and_then(|mut run| run.take())
                    .ok_or_else(|| {
                        Error::new(ErrorKind::Poisoned, "a chunk's run was taken twice")
                            .with_path(self.path())
                    })?;
                let (_, in_chunk, _, extent) = self.overlap(&chunks[i], start, shape);
                let rows = in_chunk[0]..in_chunk[0] + extent[0];
                match sharding {
                    Some(s) => self.read_shard_rows(s, &chunks[i], rows, run, row_bytes),
                    None => self.read_chunk_rows(&chunks[i], rows, run, row_bytes),
                }
            },
            |_, ()| Ok(()),
        )
    }

    /// Reads `rows` of the chunk at `coords` into `run`: a chunk wholly inside them is decoded
    /// straight into `run` when its codecs allow it; otherwise it is decoded and its rows
    /// copied.
    fn read_chunk_rows(
        &self,
        coords: &[u64],
        rows: std::ops::Range<usize>,
        run: &mut [u8],
        row_bytes: usize,
    ) -> Result<()> {
        if rows.start == 0
            && rows.end == self.meta.chunk_shape[0]
            && self.meta.codecs.decodes_into()
        {
            return self.read_chunk_into(coords, run);
        }
        match self.read_chunk(coords)? {
            Some(data) => run.copy_from_slice(&data[rows.start * row_bytes..rows.end * row_bytes]),
            None => self.fill(run),
        }
        Ok(())
    }

    /// Reads the whole chunk at `coords` into `out` (its size), whose codecs
    /// [`CodecChain::decodes_into`]: the `bytes` codec alone reads the file straight into
    /// `out`, a compressor decodes into it; a chunk not stored fills it with the fill value.
    fn read_chunk_into(&self, coords: &[u64], out: &mut [u8]) -> Result<()> {
        let key = self.key(coords);
        let at_chunk = |e: Error| self.at_key(&key, e);
        let store_error = |e: Error| match e.kind() {
            // The operating system's errors name the file; no byte is to blame.
            ErrorKind::Io | ErrorKind::OutOfMemory => e,
            _ => at_chunk(e),
        };
        let chunk = &self.meta.chunk_shape;
        let codecs = &self.meta.codecs;
        let limit = max_encoded_len(codecs, chunk, self.meta.kind.itemsize())?;
        if codecs.is_bytes_alone() {
            match self.store.get_into(&key, limit, out).map_err(store_error)? {
                None => self.fill(out),
                Some(len) if len == out.len() => codecs.to_native(out, self.meta.kind),
                Some(len) => {
                    self.check_overhang(chunk, len).map_err(at_chunk)?;
                    return Err(at_chunk(codec::size_mismatch(len, out.len(), chunk)));
                }
            }
        } else {
            let Some(bytes) = self.store.get(&key, limit).map_err(store_error)? else {
                self.fill(out);
                return Ok(());
            };
            self.check_overhang(chunk, bytes.len()).map_err(at_chunk)?;
            let element = codec::Element {
                kind: self.meta.kind,
                fill: &self.meta.fill,
            };
            codecs
                .decode_into(bytes, chunk, element, out)
                .map_err(at_chunk)?;
        }
        self.check_bools(out).map_err(at_chunk)
    }

    /// Reads `rows` of the shard at `coords` into `run`, each inner chunk the rows hold whole
    /// straight into its place (a `pread` for `bytes` alone, a decompressor's output for
    /// others), the inner chunks cut by the rows' ends decoded and their rows copied, those
    /// not stored filled.
    fn read_shard_rows(
        &self,
        sharding: &codec::Sharding,
        coords: &[u64],
        rows: std::ops::Range<usize>,
        run: &mut [u8],
        row_bytes: usize,
    ) -> Result<()> {
        let key = self.key(coords);
        let at_chunk = |e: Error| self.at_key(&key, e);
        let shard = &self.meta.chunk_shape;
        let inner_rows = sharding.inner_shape()[0];
        let inner_len = inner_rows * row_bytes;
        let mut in_chunk = vec![0; shard.len()];
        in_chunk[0] = rows.start;
        let mut extent = shard.clone();
        extent[0] = rows.len();
        let touched = touched_inner(sharding, &in_chunk, &extent);
        // A shard of local files is read by the ranges of its inner chunks, each straight
        // into its place, rather than whole into a buffer of its own first.
        let whole = rows.len() == shard[0] && !self.store.ranges_are_cheap();
        let element = codec::Element {
            kind: self.meta.kind,
            fill: &self.meta.fill,
        };
        let inner_codecs = &sharding.codecs;
        let read = self.with_shard(sharding, &key, whole, |index, reader| {
            let wanted = self.wanted_inner(sharding, index, reader.len(), &touched, &key)?;
            // Each touched inner chunk's part of the run, in order.
            let mut parts: Vec<Option<&mut [u8]>> = Vec::with_capacity(touched.len());
            let mut rest: &mut [u8] = &mut *run;
            for c in &touched {
                let first = c[0] * inner_rows;
                let lo = first.max(rows.start);
                let hi = (first + inner_rows).min(rows.end);
                let (part, tail) = std::mem::take(&mut rest).split_at_mut((hi - lo) * row_bytes);
                parts.push(Some(part));
                rest = tail;
            }
            let mut stored = vec![false; touched.len()];
            // Inner chunks inside the rows whole, read or decoded into place.
            let mut direct = Vec::new();
            let mut decode = Vec::new();
            let mut copy = Vec::new();
            for (t, n, range) in wanted {
                stored[t] = true;
                let first = touched[t][0] * inner_rows;
                let inside = first >= rows.start && first + inner_rows <= rows.end;
                let raw =
                    inner_codecs.is_bytes_alone() && range.end - range.start == inner_len as u64;
                if inside && raw {
                    direct.push((t, n, range));
                } else if inside && inner_codecs.decodes_into() {
                    decode.push((t, n, range));
                } else {
                    copy.push((t, n, range));
                }
            }
            if !direct.is_empty() {
                let mut into: Vec<(std::ops::Range<u64>, &mut [u8])> = Vec::new();
                for (t, _, range) in &direct {
                    if let Some(part) = parts[*t].take() {
                        into.push((range.clone(), part));
                    }
                }
                if reader.read_into(&mut into)?.is_none() {
                    return Ok(None);
                }
                for (_, part) in into {
                    inner_codecs.to_native(part, self.meta.kind);
                    self.check_bools(part).map_err(at_chunk)?;
                }
            }
            let others: Vec<std::ops::Range<u64>> = decode
                .iter()
                .chain(&copy)
                .map(|(_, _, r)| r.clone())
                .collect();
            let Some(bytes) = reader.read(&others)? else {
                return Ok(None);
            };
            let mut bytes = bytes.into_iter();
            for (t, n, _) in &decode {
                let (Some(encoded), Some(part)) = (bytes.next(), parts[*t].take()) else {
                    continue;
                };
                sharding
                    .decode_inner_into(encoded, *n, index.at(*n), element, part)
                    .map_err(at_chunk)?;
                self.check_bools(part).map_err(at_chunk)?;
            }
            for (t, n, _) in &copy {
                let (Some(encoded), Some(part)) = (bytes.next(), parts[*t].take()) else {
                    continue;
                };
                let data = sharding
                    .decode_inner(encoded, *n, index.at(*n), element)
                    .map_err(at_chunk)?;
                self.check_bools(&data).map_err(at_chunk)?;
                let first = touched[*t][0] * inner_rows;
                let from = rows.start.max(first) - first;
                part.copy_from_slice(&data[from * row_bytes..from * row_bytes + part.len()]);
            }
            // Those the shard does not hold read as the fill value.
            for (t, part) in parts.iter_mut().enumerate() {
                if !stored[t]
                    && let Some(part) = part.take()
                {
                    self.fill(part);
                }
            }
            Ok(Some(()))
        })?;
        if read.is_none() {
            self.fill(run);
        }
        Ok(())
    }

    /// The inner chunks of the shard at `coords` that the box at `in_chunk` of `extent` (in the
    /// shard's coordinates) touches, each with its first element in the shard and its decoded
    /// bytes (`None` when the shard does not hold it: the fill value); `None` when there is no
    /// such shard. With `whole`, the shard is read in one request; otherwise its index is read
    /// first (one ranged read), then the inner chunks' byte ranges (coalesced by the store),
    /// all of one version of the shard (see `ZarrArray::with_shard`).
    fn read_inner_chunks(
        &self,
        sharding: &codec::Sharding,
        coords: &[u64],
        in_chunk: &[usize],
        extent: &[usize],
        whole: bool,
    ) -> Result<Option<InnerChunks>> {
        let key = self.key(coords);
        let at_chunk = |e: Error| self.at_key(&key, e);
        let inner = sharding.inner_shape();
        let element = codec::Element {
            kind: self.meta.kind,
            fill: &self.meta.fill,
        };
        let touched = touched_inner(sharding, in_chunk, extent);
        self.with_shard(sharding, &key, whole, |index, reader| {
            let wanted = self.wanted_inner(sharding, index, reader.len(), &touched, &key)?;
            let ranges: Vec<std::ops::Range<u64>> =
                wanted.iter().map(|(_, _, r)| r.clone()).collect();
            let Some(parts) = reader.read(&ranges)? else {
                // The shard was replaced or removed since its index was read.
                return Ok(None);
            };
            let mut out: InnerChunks = touched
                .iter()
                .map(|c| (c.iter().zip(inner).map(|(&i, &n)| i * n).collect(), None))
                .collect();
            for ((t, n, _), bytes) in wanted.iter().zip(parts) {
                let data = sharding
                    .decode_inner(bytes, *n, index.at(*n), element)
                    .map_err(at_chunk)?;
                self.check_bools(&data).map_err(at_chunk)?;
                out[*t].1 = Some(data);
            }
            Ok(Some(out))
        })
    }

    /// Reads the index of the shard under `key` (the whole shard in one request with
    /// `whole`, else its index alone) and hands it, with a reader of the shard's byte ranges,
    /// to `read`; `None` when there is no such shard. When `read` finds the shard replaced
    /// since its index was read (it returns `None`), everything starts again, so what `read`
    /// returns comes from one version of the shard. The store's errors come back as they are
    /// (an I/O error names the file) or naming the shard.
    fn with_shard<T>(
        &self,
        sharding: &codec::Sharding,
        key: &str,
        whole: bool,
        mut read: impl FnMut(&codec::ShardIndex, &dyn RangeReader) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let at_chunk = |e: Error| self.at_key(key, e);
        let store_error = |e: Error| match e.kind() {
            // The operating system's errors name the file; no byte is to blame.
            ErrorKind::Io | ErrorKind::OutOfMemory => e,
            _ => at_chunk(e),
        };
        let itemsize = self.meta.kind.itemsize();
        let shard = &self.meta.chunk_shape;
        let limit = max_encoded_len(&self.meta.codecs, shard, itemsize)?;
        let (at_start, index_len) = sharding.index_span(shard).map_err(at_chunk)?;
        let span = if at_start {
            Span::Head(index_len as u64)
        } else {
            Span::Tail(index_len as u64)
        };
        for _ in 0..SHARD_READ_ATTEMPTS {
            let fetched = if whole {
                self.store
                    .get(key, limit)
                    .map_err(store_error)?
                    .map(|bytes| {
                        let index = span.within(bytes.len() as u64);
                        // The span lies inside the bytes, whose length fits usize.
                        #[allow(clippy::cast_possible_truncation)]
                        let index = bytes[index.start as usize..index.end as usize].to_vec();
                        let reader: Box<dyn RangeReader> = Box::new(MemoryRanges(bytes));
                        (index, reader)
                    })
            } else {
                self.store.get_span(key, span, limit).map_err(store_error)?
            };
            let Some((index_bytes, reader)) = fetched else {
                return Ok(None);
            };
            let len = reader.len();
            if index_bytes.len() < index_len {
                return Err(at_chunk(codec::truncated_shard(len, index_len)));
            }
            let index_at = if at_start {
                0
            } else {
                len.checked_sub(index_len as u64)
                    .ok_or_else(|| at_chunk(codec::truncated_shard(len, index_len)))?
            };
            let index = sharding
                .decode_index(&index_bytes, shard, index_at)
                .map_err(at_chunk)?;
            if let Some(value) = read(&index, reader.as_ref()).map_err(store_error)? {
                return Ok(Some(value));
            }
        }
        Err(at_chunk(Error::new(
            ErrorKind::Locked,
            format!(
                "the shard was replaced {SHARD_READ_ATTEMPTS} times while it was read; read it again"
            ),
        )))
    }

    /// The stored inner chunks among `touched` (in a shard of `len` bytes under `key`, whose
    /// index is `index`): each one's place in `touched`, number in the shard and byte range,
    /// after checking that the range fits the shard and that the inner chunk may be decoded.
    fn wanted_inner(
        &self,
        sharding: &codec::Sharding,
        index: &codec::ShardIndex,
        len: u64,
        touched: &[Vec<usize>],
        key: &str,
    ) -> Result<Vec<(usize, usize, std::ops::Range<u64>)>> {
        let at_chunk = |e: Error| self.at_key(key, e);
        let inner = sharding.inner_shape();
        let inner_limit =
            max_encoded_len(&sharding.codecs, inner, self.meta.kind.itemsize())? as u64;
        let mut wanted = Vec::new();
        for (t, c) in touched.iter().enumerate() {
            let n = sharding.inner_number(c, &self.meta.chunk_shape);
            let Some(range) = index.inner_range(n, len).map_err(at_chunk)? else {
                continue;
            };
            if range.end - range.start > inner_limit {
                let (offset, stored) = index.at(n);
                return Err(at_chunk(Error::new(
                    ErrorKind::Format,
                    format!(
                        "inner chunk {n} of the shard (bytes {offset}+{stored}) is longer than the {inner_limit} bytes it can need"
                    ),
                )));
            }
            // Each inner chunk decodes to its whole shape: judged as a chunk is.
            #[allow(clippy::cast_possible_truncation)]
            let stored = (range.end - range.start) as usize;
            self.check_overhang(inner, stored).map_err(at_chunk)?;
            wanted.push((t, n, range));
        }
        Ok(wanted)
    }

    /// `e`, naming the file and the key of the chunk `key`.
    fn at_key(&self, key: &str, e: Error) -> Error {
        Error::new(e.kind(), e.message().to_owned())
            .with_path(self.store.path_of(key))
            .at(Location::Object(format!("chunk {key}")))
    }

    /// Fills `out` (whole elements) with the fill value.
    fn fill(&self, out: &mut [u8]) {
        let n = out.len() / self.meta.kind.itemsize().max(1);
        grid::fill_box(
            out,
            Place {
                shape: &[n],
                start: &[0],
            },
            &[n],
            &self.meta.fill,
        );
    }

    /// Reads and decodes the whole stored chunk at grid coordinates `coords` (a shard with
    /// every inner chunk, those past the array's end included), so that every check its codecs
    /// have runs: crc32c of the chunk, of a shard's index and of each inner chunk, the index's
    /// bounds, each decoded size against its shape. Returns whether the store holds the chunk.
    /// A region read checks only what it reads (the inner chunks of a shard it touches).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for coordinates outside the chunk grid; for a damaged chunk,
    /// its error naming the chunk's file and key and, in a shard, the inner chunk.
    pub fn check_chunk(&self, coords: &[u64]) -> Result<bool> {
        let inside = coords.len() == self.meta.shape.len()
            && coords
                .iter()
                .zip(self.meta.shape.iter().zip(&self.meta.chunk_shape))
                .all(|(&c, (&len, &chunk))| c < len.div_ceil(chunk) as u64);
        if !inside {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "chunk {coords:?} is outside the chunk grid of the array of shape {:?} in chunks of {:?}",
                    self.meta.shape, self.meta.chunk_shape
                ),
            )
            .with_path(self.path()));
        }
        Ok(self.read_chunk(coords)?.is_some())
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
        // Before anything is read: a box covering part of a chunk reads it first.
        self.store.check_writable()?;
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
        parallel_on(
            self.write_workers(chunk_len),
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
                // A chunk the box covers exactly is the box's bytes as they are (C order,
                // native): borrowed from the values where they lie in one run there, else
                // copied out once; no fill.
                let data: Cow<'_, [u8]> = if extent == self.meta.chunk_shape {
                    run_of(view, &in_region, &extent).map_or_else(
                        || Cow::Owned(box_bytes(view, &in_region, &extent)),
                        Cow::Borrowed,
                    )
                } else {
                    let part = box_bytes(view, &in_region, &extent);
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
                    Cow::Owned(data)
                };
                let key = self.key(coords);
                if grid::all_equal(&data, &self.meta.fill) {
                    return self.store.erase(&key);
                }
                let parts = self
                    .meta
                    .codecs
                    .encode_parts(data, &self.meta.chunk_shape, element)?;
                let parts: Vec<&[u8]> = parts.iter().map(AsRef::as_ref).collect();
                if parts.iter().all(|part| part.is_empty()) {
                    return self.store.erase(&key);
                }
                self.store.put_parts(&key, &parts)
            },
            |_, ()| Ok(()),
        )
    }

    /// The threads a write spreads chunks of `chunk_len` bytes over: one per core, or, where
    /// each chunk waits on its own fsync (a synced local store), as many as keep
    /// [`SYNCED_WRITE_BYTES`] of chunks in flight, up to [`MAX_SYNCED_WRITERS`]: a thread
    /// waiting for the disk needs no core, and the disk takes several files' flushes at once.
    /// Under a limit of the address space, one per core: each writer more reserves a thread's
    /// stack and its chunk's buffers, which a process streaming below its array's size under
    /// `ulimit -v` was refused (`ndstore convert`, in the command line's tests).
    fn write_workers(&self, chunk_len: usize) -> usize {
        let cores = core_workers();
        if !self.store.waits_on_each_put() || crate::sys::address_space_limited() {
            return cores;
        }
        (SYNCED_WRITE_BYTES / chunk_len.max(1)).clamp(cores, MAX_SYNCED_WRITERS.max(cores))
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
        let limit = max_encoded_len(&self.meta.codecs, &self.meta.chunk_shape, itemsize)?;
        let Some(bytes) = self.store.get(&key, limit).map_err(|e| match e.kind() {
            // The operating system's errors name the file; no byte is to blame.
            ErrorKind::Io | ErrorKind::OutOfMemory => e,
            _ => at_chunk(e),
        })?
        else {
            // A chunk not stored is fill, whatever its declared size.
            return Ok(None);
        };
        self.check_overhang(&self.meta.chunk_shape, bytes.len())
            .map_err(at_chunk)?;
        let element = codec::Element {
            kind: self.meta.kind,
            fill: &self.meta.fill,
        };
        let data = self
            .meta
            .codecs
            .decode(bytes, &self.meta.chunk_shape, element)
            .map_err(at_chunk)?;
        self.check_bools(&data).map_err(at_chunk)?;
        Ok(Some(data))
    }

    /// Refuses decoded bools other than 0 and 1 (a bool is stored as one byte).
    fn check_bools(&self, data: &[u8]) -> Result<()> {
        if self.meta.kind == ndstore_core::DTypeKind::Bool
            && let Some(i) = data.iter().position(|&b| b > 1)
        {
            return Err(Error::new(
                ErrorKind::Format,
                format!("element {i} of the decoded chunk is not a valid bool"),
            ));
        }
        Ok(())
    }

    /// Refuses, before a stored chunk (or inner chunk) of `shape` and `stored` bytes is decoded, one that decodes to more
    /// than [`OVERHANG_BYTES`], more than twice the whole array's bytes and more than
    /// [`STORED_RATIO`] times its stored bytes: every stored chunk decodes to its whole shape,
    /// so a `zarr.json` declaring huge compressed chunks over a small array would otherwise
    /// cost their whole size to read one element. A chunk within any bound (an edge chunk of an
    /// honest array is never larger than the array plus a chunk; an uncompressed chunk is as
    /// large as it decodes) is read as usual. A chunk grid larger than the array is legal
    /// Zarr, so the refusal is a limit (`OutOfMemory`), not damage.
    fn check_overhang(&self, shape: &[usize], stored: usize) -> Result<()> {
        let itemsize = self.meta.kind.itemsize();
        let whole = chunk_bytes(shape, itemsize)? as u128;
        let array = self
            .meta
            .shape
            .iter()
            .fold(itemsize as u128, |acc, &n| acc.saturating_mul(n as u128));
        // What the stored bytes justify: a chunk stored at about its decoded size (no
        // compression, as zarr-python writes a partial chunk whole) costs no more to decode
        // than it cost to read.
        let justified = (stored as u128).saturating_mul(STORED_RATIO);
        if whole <= OVERHANG_BYTES as u128 || whole <= array.saturating_mul(2) || whole <= justified
        {
            return Ok(());
        }
        // A chunk grid larger than the array is legal Zarr: this is a limit, not damage.
        Err(Error::new(
            ErrorKind::OutOfMemory,
            format!(
                "the chunk shape {:?} decodes to {whole} bytes for an array of shape {:?} that holds {array}, from {stored} stored bytes; ndstore decodes such a chunk only up to {OVERHANG_BYTES} bytes, twice the array or {STORED_RATIO} times its stored bytes (rewrite the array in smaller chunks, e.g. with ndstore convert --chunks)",
                shape, self.meta.shape
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

/// Whether a chunk stored for array `a` decodes to the same values under array `b`'s metadata:
/// the same data type, chunk shape, key encoding, codecs and fill value (a chunk left all fill
/// is not stored). Shape, attributes and dimension names may differ.
#[cfg(feature = "s3")]
fn same_chunk_layout(a: &ZarrMeta, b: &ZarrMeta) -> bool {
    a.kind == b.kind
        && a.chunk_shape == b.chunk_shape
        && a.key_encoding == b.key_encoding
        && a.codecs == b.codecs
        && a.fill == b.fill
}

/// The grid coordinates in the shard of the inner chunks that the box at `in_chunk` of `extent`
/// (in the shard's coordinates) touches, in C order.
fn touched_inner(
    sharding: &codec::Sharding,
    in_chunk: &[usize],
    extent: &[usize],
) -> Vec<Vec<usize>> {
    let inner = sharding.inner_shape();
    let first: Vec<usize> = in_chunk.iter().zip(inner).map(|(&s, &c)| s / c).collect();
    let counts: Vec<usize> = (0..in_chunk.len())
        .map(|a| (in_chunk[a] + extent[a] - 1) / inner[a] - first[a] + 1)
        .collect();
    codec::coords_of(&counts)
        .map(|c| c.iter().zip(&first).map(|(&i, &f)| i + f).collect())
        .collect()
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

/// How many times its stored bytes a chunk larger than [`OVERHANG_BYTES`] and twice its array
/// may decode to and still be read (see `ZarrArray::check_overhang`).
pub(crate) const STORED_RATIO: u128 = 4;

fn max_encoded_len(codecs: &CodecChain, shape: &[usize], itemsize: usize) -> Result<usize> {
    let raw = chunk_bytes(shape, itemsize)?;
    let inner = codecs
        .sharding()
        .map_or(Ok(raw), |s| s.max_encoded_len(shape, itemsize))?;
    // Deflate and zstd grow incompressible data by well under 1/64, plus headers.
    Ok(inner.saturating_add(inner / 64).saturating_add(1 << 16))
}

/// The bytes of the box of `extent` at `start` of `view` where they lie in one run of its
/// memory (a view in C order, the box whole along every axis but the first), else `None`.
fn run_of<'a, T: Element>(
    view: &'a ArrayViewD<'_, T>,
    start: &[usize],
    extent: &[usize],
) -> Option<&'a [u8]> {
    let all = view.as_slice()?;
    let shape = view.shape();
    if (1..shape.len()).any(|a| start[a] != 0 || extent[a] != shape[a]) {
        return None;
    }
    let row: usize = shape.iter().skip(1).product();
    let first = start.first().map_or(0, |&s| s * row);
    let len: usize = extent.iter().product();
    all.get(first..first + len).map(bytemuck::cast_slice)
}

/// The native C-order bytes of the box of `extent` at `start` of `view`, copied out.
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

/// Runs `work(i)` for `i` in `0..count` on up to [`MAX_WORKERS`] threads (one per core) and
/// hands each result to `consume` on the caller's thread, at most a few results held at once.
/// The first error stops the work and is returned.
fn parallel<R: Send>(
    count: usize,
    work: impl Fn(usize) -> Result<R> + Sync,
    consume: impl FnMut(usize, R) -> Result<()>,
) -> Result<()> {
    parallel_on(core_workers(), count, work, consume)
}

/// The threads a region call's chunks are spread over when they need a core each: one per
/// core, at most [`MAX_WORKERS`].
fn core_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_WORKERS)
}

/// As [`parallel`], on up to `workers` threads.
fn parallel_on<R: Send>(
    workers: usize,
    count: usize,
    work: impl Fn(usize) -> Result<R> + Sync,
    mut consume: impl FnMut(usize, R) -> Result<()>,
) -> Result<()> {
    let workers = workers.max(1).min(count);
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
        let mut spawned = 0;
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, stop, work) = (&next, &stop, &work);
            let worker = std::thread::Builder::new().spawn_scoped(scope, move || {
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
            // A thread the system refuses (a limit on processes) is one worker fewer.
            if worker.is_err() {
                break;
            }
            spawned += 1;
        }
        drop(sender);
        if spawned == 0 {
            for i in 0..count {
                consume(i, work(i)?)?;
            }
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An array of f64 in chunks of `chunk_rows` rows of 1024 values, in a store of
    /// `options`.
    fn array(dir: &Path, chunk_rows: usize, options: &SaveOptions) -> ZarrArray {
        let meta = ZarrMeta::new(
            DType::native(ndstore_core::DTypeKind::F64),
            &[4096, 1024],
            &[chunk_rows, 1024],
        )
        .unwrap();
        ZarrArray::create(&dir.join(format!("{chunk_rows}.zarr")), meta, options).unwrap()
    }

    #[test]
    fn synced_local_writes_keep_more_chunks_in_flight_than_cores() {
        let dir = tempfile::tempdir().unwrap();
        let cores = core_workers();
        // 1 MiB chunks, each waiting on its own fsync: up to 8 at once, never fewer than cores.
        let synced = array(dir.path(), 128, &SaveOptions::default());
        assert_eq!(synced.write_workers(1 << 20), MAX_SYNCED_WRITERS.max(cores));
        // 16 MiB shards: 32 MiB in flight, or one per core.
        assert_eq!(synced.write_workers(16 << 20), 2usize.max(cores));
        // A flushed store's puts wait on no disk: one per core.
        let flushed = array(dir.path(), 256, &SaveOptions::new().flushed());
        assert_eq!(flushed.write_workers(1 << 20), cores);
    }
}

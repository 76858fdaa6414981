//! Partial reads of sharded arrays: a region that covers part of a shard reads the shard's
//! index and then only the inner chunks it touches, by byte ranges that the object store
//! coalesces, never the whole shard; a shard replaced between its index and its inner chunks
//! is read again, never as a mix of two versions. The requests are recorded by a wrapper of
//! object_store's `InMemory`; every box of a set over arrays with edge shards, missing inner
//! chunks and both index places is checked against the values saved, on the local store and
//! in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{bits, f64_meta, sample};
use futures::stream::BoxStream;
use ndarray::{ArrayD, Slice};
use ndstore_core::{ByteOrder, DynArray, ErrorKind, SaveOptions};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::object_store::memory::InMemory;
use ndstore_zarr::object_store::path::Path;
use ndstore_zarr::object_store::{
    self, CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use ndstore_zarr::{ObjectTarget, ZarrArray, save_object, save_with};

/// One GET the wrapper saw: the object, the range asked for, and the bytes answered.
#[derive(Clone, Debug)]
struct Get {
    location: String,
    range: Option<GetRange>,
    bytes: u64,
}

/// `InMemory`, recording every GET; once, after its `n`-th GET of `location`, it replaces that
/// object with other bytes (a writer replacing a shard under a reader).
#[derive(Debug, Default)]
struct Recording {
    inner: InMemory,
    gets: Mutex<Vec<Get>>,
    replace: Mutex<Option<(usize, Path, bytes::Bytes)>>,
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording")
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let range = options.range.clone();
        let got = self.inner.get_opts(location, options).await;
        let seen = {
            let mut gets = self.gets.lock().unwrap();
            gets.push(Get {
                location: location.to_string(),
                range,
                bytes: got.as_ref().map_or(0, |g| g.range.end - g.range.start),
            });
            gets.iter()
                .filter(|g| g.location == location.as_ref())
                .count()
        };
        let due = {
            let mut replace = self.replace.lock().unwrap();
            match &*replace {
                Some((n, at, _)) if *n == seen && at == location => replace.take(),
                _ => None,
            }
        };
        if let Some((_, at, bytes)) = due {
            self.inner.put(&at, PutPayload::from(bytes)).await?;
        }
        got
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

impl Recording {
    /// The GETs of objects whose name ends with `suffix`, forgetting every GET seen so far.
    fn take_gets(&self, suffix: &str) -> Vec<Get> {
        let gets = std::mem::take(&mut *self.gets.lock().unwrap());
        gets.into_iter()
            .filter(|g| g.location.ends_with(suffix))
            .collect()
    }
}

/// Shards of `shard` holding inner chunks of `inner`, stored raw with a crc32c each, the index
/// at the end or (`index_at_start`) at the start.
fn sharded_meta(
    shape: &[usize],
    shard: &[usize],
    inner: &[usize],
    index_at_start: bool,
) -> ZarrMeta {
    let mut meta = f64_meta(shape, shard);
    meta.codecs = CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
        chunk_shape: inner.to_vec(),
        codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
        index_codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
        index_at_start,
    }))]);
    meta
}

/// The box of `shape` at `start` of `values`.
fn boxed(values: &DynArray, start: &[usize], shape: &[usize]) -> ArrayD<u64> {
    bits(values)
        .slice_each_axis(|ax| {
            let a = ax.axis.index();
            Slice::from(start[a]..start[a] + shape[a])
        })
        .to_owned()
}

/// A 256 × 256 f64 array in four shards of 128 × 128 (128 KiB each), inner chunks of
/// 16 × 16 (2 KiB), saved through a recording store; returns the store and the array.
fn recorded_array(prefix: &str) -> (Arc<Recording>, ObjectTarget, DynArray) {
    let store = Arc::new(Recording::default());
    let target = ObjectTarget::new(store.clone(), "memory://", prefix).unwrap();
    let values = sample(&[256, 256], 7);
    let meta = sharded_meta(&[256, 256], &[128, 128], &[16, 16], false);
    save_object(&target, &values, meta, &SaveOptions::default()).unwrap();
    (store, target, values)
}

/// The index of a 128 × 128 shard of 16 × 16 inner chunks: 64 entries of 16 bytes and a crc32c.
const INDEX_LEN: u64 = 64 * 16 + 4;

/// One stored inner chunk of 16 × 16 f64 and its crc32c.
const INNER_LEN: u64 = 16 * 16 * 8 + 4;

#[test]
fn a_small_box_reads_the_index_and_one_inner_chunk_not_the_shard() {
    let (store, target, values) = recorded_array("small.zarr");
    let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
    store.take_gets("");
    let got = array.read_region(&[3, 130], &[2, 4]).unwrap();
    assert_eq!(bits(&got), boxed(&values, &[3, 130], &[2, 4]));
    let gets = store.take_gets("c/0/1");
    let fetched: u64 = gets.iter().map(|g| g.bytes).sum();
    assert_eq!(gets.len(), 2, "the index, then the inner chunk: {gets:?}");
    assert_eq!(fetched, INDEX_LEN + INNER_LEN, "{gets:?}");
    assert!(matches!(gets[0].range, Some(GetRange::Suffix(n)) if n == INDEX_LEN));
}

#[test]
fn a_row_of_inner_chunks_is_fetched_in_one_coalesced_request() {
    let (store, target, values) = recorded_array("row.zarr");
    let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
    store.take_gets("");
    // Rows 16..32 of the first shard: its second row of eight inner chunks, stored one after
    // another.
    let got = array.read_region(&[16, 0], &[16, 128]).unwrap();
    assert_eq!(bits(&got), boxed(&values, &[16, 0], &[16, 128]));
    let gets = store.take_gets("c/0/0");
    assert_eq!(gets.len(), 2, "the index, then one request: {gets:?}");
    assert_eq!(gets[1].bytes, 8 * INNER_LEN, "{gets:?}");
}

#[test]
fn a_shard_replaced_between_its_index_and_its_chunks_is_read_again() {
    let (store, target, _) = recorded_array("swap.zarr");
    // The same array with other values, at another prefix: its first shard replaces the
    // first array's after a reader has read that shard's index.
    let other = target.at("other.zarr").unwrap();
    let new_values = sample(&[256, 256], 8);
    let meta = sharded_meta(&[256, 256], &[128, 128], &[16, 16], false);
    save_object(&other, &new_values, meta, &SaveOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let new_shard = runtime
        .block_on(async {
            store
                .inner
                .get(&Path::from("other.zarr/c/0/0"))
                .await?
                .bytes()
                .await
        })
        .unwrap();
    let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
    store.take_gets("");
    *store.replace.lock().unwrap() = Some((1, Path::from("swap.zarr/c/0/0"), new_shard));
    // Inner chunks far apart in the shard, so each is read by its own range.
    let got = array.read_region(&[0, 0], &[128, 16]).unwrap();
    assert_eq!(bits(&got), boxed(&new_values, &[0, 0], &[128, 16]));
    let gets = store.take_gets("swap.zarr/c/0/0");
    assert!(
        gets.len() >= 4,
        "the first read is refused and made again: {gets:?}"
    );
}

/// Every box of a set (starts and lengths on and off the shard and inner chunk borders) reads
/// as the values saved, from `array`.
fn every_box_reads_as_saved(array: &ZarrArray, values: &DynArray, what: &str) {
    let shape = values.shape().to_vec();
    let starts = [0usize, 3, 4, 15, 16, 21, 33];
    let lengths = [1usize, 4, 7, 17, 40];
    let mut checked = 0;
    for &s0 in &starts {
        for &s1 in &starts {
            for &l0 in &lengths {
                for &l1 in &lengths {
                    let start = [s0.min(shape[0] - 1), s1.min(shape[1] - 1)];
                    let len = [l0.min(shape[0] - start[0]), l1.min(shape[1] - start[1])];
                    let got = array.read_region(&start, &len).unwrap();
                    assert_eq!(
                        bits(&got),
                        boxed(values, &start, &len),
                        "{what}: the box of {len:?} at {start:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, starts.len().pow(2) * lengths.len().pow(2));
}

/// A 37 × 45 array (edge shards), its values zero (the fill value) over rows 0..8 and columns
/// 20..45, so whole inner chunks are missing from the shards.
fn holey_values() -> DynArray {
    let mut values = sample(&[37, 45], 11).into_typed::<f64>().unwrap();
    values.slice_mut(ndarray::s![0..8, 20..45]).fill(0.0);
    DynArray::from(values)
}

#[test]
fn every_box_of_a_sharded_array_reads_as_saved_on_the_local_store() {
    let values = holey_values();
    let dir = tempfile::tempdir().unwrap();
    for index_at_start in [false, true] {
        let path = dir.path().join(format!("a{index_at_start}.zarr"));
        let meta = sharded_meta(&[37, 45], &[16, 20], &[4, 5], index_at_start);
        save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
        let array = ZarrArray::open(&path, &SaveOptions::default()).unwrap();
        every_box_reads_as_saved(
            &array,
            &values,
            &format!("index at start: {index_at_start}"),
        );
    }
}

#[test]
fn every_box_of_a_sharded_array_reads_as_saved_in_memory() {
    let values = holey_values();
    for index_at_start in [false, true] {
        let target = ObjectTarget::in_memory(&format!("a{index_at_start}.zarr")).unwrap();
        let meta = sharded_meta(&[37, 45], &[16, 20], &[4, 5], index_at_start);
        save_object(&target, &values, meta, &SaveOptions::default()).unwrap();
        let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
        every_box_reads_as_saved(
            &array,
            &values,
            &format!("index at start: {index_at_start}"),
        );
    }
}

#[test]
fn a_damaged_shard_read_in_part_names_the_chunk_and_the_place() {
    let values = sample(&[32, 32], 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.zarr");
    let meta = sharded_meta(&[32, 32], &[16, 16], &[4, 4], false);
    save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
    let shard = path.join("c/0/0");
    let good = std::fs::read(&shard).unwrap();
    let read = |bytes: &[u8]| {
        std::fs::write(&shard, bytes).unwrap();
        let array = ZarrArray::open(&path, &SaveOptions::default()).unwrap();
        array.read_region(&[1, 1], &[2, 2]).unwrap_err()
    };

    // Shorter than its index.
    let err = read(&good[..100]);
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(err.to_string().contains("chunk c/0/0"), "{err}");

    // A flipped byte in the inner chunk read: its crc32c.
    let mut flipped = good.clone();
    flipped[10] ^= 0x40;
    let err = read(&flipped);
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string()
            .contains("inner chunk 0 of the shard (bytes 0+132)"),
        "{err}"
    );

    // A flipped byte in the index: its crc32c.
    let mut flipped = good.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x01;
    let err = read(&flipped);
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("shard index"), "{err}");
}

#[test]
fn an_inner_chunk_declared_far_larger_than_its_array_is_refused_as_a_limit() {
    // Ten values in a shard of 20 in inner chunks of 10 through zstd; then zarr.json declares
    // the shard 20,000,000 long in inner chunks of 10,000,000: the same two index entries, and
    // an inner chunk that would decode to 80 MB from its few stored bytes to read one value.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.zarr");
    let mut meta = f64_meta(&[10], &[20]);
    meta.codecs = CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![10],
        codecs: CodecChain::new(vec![
            Codec::Bytes(Some(ByteOrder::Little)),
            Codec::Zstd {
                level: 3,
                checksum: false,
            },
        ]),
        index_codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
        index_at_start: false,
    }))]);
    save_with(&path, &sample(&[10], 3), meta, &SaveOptions::default()).unwrap();
    let json = path.join("zarr.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    doc["chunk_grid"]["configuration"]["chunk_shape"] = serde_json::json!([20_000_000]);
    doc["codecs"][0]["configuration"]["chunk_shape"] = serde_json::json!([10_000_000]);
    std::fs::write(&json, serde_json::to_vec(&doc).unwrap()).unwrap();
    let array = ZarrArray::open(&path, &SaveOptions::default()).unwrap();
    let err = array.read_region(&[0], &[2]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("chunk c/0"), "{err}");
}

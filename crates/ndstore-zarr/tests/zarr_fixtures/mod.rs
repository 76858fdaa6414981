//! The zarr backend's hostile array trees, shared by the local suite (tests/conformance.rs)
//! and the object-storage one (tests/conformance_s3), which uploads them as objects.

#![allow(dead_code)]

use ndstore_conformance::fixtures::Hostile;
use ndstore_conformance::tree;
use ndstore_core::{ByteOrder, DType, DTypeKind, DynArray, Order};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;

/// The realistic arrays BI damages: f64 of 1.25 and 2 MiB, every chunk checksummed, one
/// plain (big-endian, crc32c) and one sharded (zstd inner chunks, a checksummed index), each
/// with its name as a tree.
///
/// # Errors
///
/// A message when the metadata cannot be built.
pub fn realistic_arrays() -> Result<Vec<(&'static str, ZarrMeta, DynArray)>, String> {
    let le = Codec::Bytes(Some(ByteOrder::Little));
    let be = Codec::Bytes(Some(ByteOrder::Big));
    let sharded = Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![64, 128],
        codecs: CodecChain::new(vec![
            le.clone(),
            Codec::Zstd {
                level: 3,
                checksum: true,
            },
        ]),
        index_codecs: CodecChain::new(vec![le, Codec::Crc32c]),
        index_at_start: false,
    }));
    [
        (
            "plain-crc32c.zarr",
            [640, 256],
            [128, 256],
            vec![be, Codec::Crc32c],
        ),
        (
            "sharded-zstd.zarr",
            [1024, 256],
            [512, 256],
            vec![sharded, Codec::Crc32c],
        ),
    ]
    .into_iter()
    .map(|(name, shape, chunks, codecs)| {
        let values = ndstore_conformance::sample::array(DTypeKind::F64, &shape, Order::C, 0x2a77);
        let mut meta = ZarrMeta::new(DType::native(DTypeKind::F64), &shape, &chunks)
            .map_err(|e| e.to_string())?;
        meta.codecs = CodecChain::new(codecs);
        Ok((name, meta, values))
    })
    .collect()
}

/// An array's `zarr.json` with the given fields changed.
pub fn doc(changes: serde_json::Value) -> Vec<u8> {
    let mut doc = serde_json::json!({
        "zarr_format": 3, "node_type": "array", "shape": [8, 6], "data_type": "float64",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    });
    if let (Some(doc), serde_json::Value::Object(changes)) = (doc.as_object_mut(), changes) {
        doc.extend(changes);
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A packed tree of `files`.
pub fn packed(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = tree::MAGIC.to_vec();
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.0.cmp(b.0));
    for (name, data) in files {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// Array trees built to be refused: lying sizes, a shard index pointing outside its shard,
/// codecs and extensions that must be understood, a chunk that is a
/// directory.
pub fn hostile_trees() -> Vec<Hostile> {
    let chunk = vec![0x11u8; 4 * 3 * 8];
    let shard_chain = serde_json::json!([{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 3],
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "index_location": "end"}}]);
    // A 4x3 shard of two 2x3 inner chunks whose index sends the second 2^50 bytes away.
    let mut shard = vec![0x22u8; 2 * 3 * 8];
    for (offset, len) in [(0u64, 48u64), (1 << 50, 48)] {
        shard.extend_from_slice(&offset.to_le_bytes());
        shard.extend_from_slice(&len.to_le_bytes());
    }
    vec![
        Hostile::new(
            "shape-2pow62-squared.zarr",
            packed(&[(
                "zarr.json",
                doc(serde_json::json!({"shape": [1u64 << 62, 1u64 << 62]})),
            )]),
        ),
        Hostile::new(
            "chunk-of-8-tib-with-a-short-file.zarr",
            packed(&[
                (
                    "zarr.json",
                    doc(
                        serde_json::json!({"shape": [1], "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1u64 << 40]}}}),
                    ),
                ),
                ("c/0", vec![0u8; 64]),
            ]),
        ),
        Hostile::new(
            "shard-index-points-outside.zarr",
            packed(&[
                (
                    "zarr.json",
                    doc(
                        serde_json::json!({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}}, "codecs": shard_chain}),
                    ),
                ),
                ("c/0/0", shard),
            ]),
        ),
        Hostile::new(
            "truncated-chunk.zarr",
            packed(&[
                ("zarr.json", doc(serde_json::json!({}))),
                ("c/1/1", chunk[..50].to_vec()),
            ]),
        ),
        Hostile::new(
            "unknown-codec.zarr",
            packed(&[(
                "zarr.json",
                doc(
                    serde_json::json!({"codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "blosc", "configuration": {}}]}),
                ),
            )]),
        ),
        Hostile::new(
            "extension-must-understand.zarr",
            packed(&[(
                "zarr.json",
                doc(serde_json::json!({"an_extension": {"must_understand": true}})),
            )]),
        ),
        Hostile::new(
            "transpose-not-a-permutation.zarr",
            packed(&[(
                "zarr.json",
                doc(
                    serde_json::json!({"codecs": [{"name": "transpose", "configuration": {"order": [0, 0]}}, {"name": "bytes", "configuration": {"endian": "little"}}]}),
                ),
            )]),
        ),
        Hostile::new(
            "zarr-json-not-json.zarr",
            packed(&[("zarr.json", b"{\"zarr_format\": 3,".to_vec())]),
        ),
        Hostile::new(
            "a-group.zarr",
            packed(&[(
                "zarr.json",
                br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#.to_vec(),
            )]),
        ),
        Hostile::new(
            "chunk-is-a-directory.zarr",
            packed(&[
                ("zarr.json", doc(serde_json::json!({}))),
                ("c/0/0/x", chunk),
            ]),
        ),
    ]
}

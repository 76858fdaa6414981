//! The `zarr` backend's conformance suite: the shared checks, driven through its capabilities,
//! on Zarr v3 array directories.

use std::path::Path;

use ndstore_conformance::fixtures::{Hostile, Realistic, Region};
use ndstore_conformance::{Fixtures, PythonInterop, tree};
use ndstore_core::{ByteOrder, DType, DTypeKind, Order, SaveOptions};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;

ndstore_conformance::suite!(ndstore_zarr::ZarrBackend, ZarrFixtures);

/// What the `zarr` backend's array directories know.
struct ZarrFixtures;

impl Fixtures for ZarrFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        hostile_trees()
    }

    fn realistic_files(
        &self,
        _backend: &dyn ndstore_core::Backend,
        dir: &Path,
    ) -> Result<Vec<Realistic>, String> {
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
        Ok(vec![
            realistic(
                dir,
                "plain-crc32c.zarr",
                &[640, 256],
                &[128, 256],
                vec![be, Codec::Crc32c],
            )?,
            realistic(
                dir,
                "sharded-zstd.zarr",
                &[1024, 256],
                &[512, 256],
                vec![sharded, Codec::Crc32c],
            )?,
        ])
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &["zarr"],
            load: LOAD,
            save: SAVE,
        })
    }

    fn arrays_may_exceed_file(&self) -> bool {
        // Chunks never written read as the fill value.
        true
    }
}

/// zarr-python reads the array; numpy's dtype is given the byte order of the `bytes` codec (a
/// sharded array's inner one), which zarr-python itself reports as native.
const LOAD: &str = "\
def endian(codecs):
    for c in codecs:
        if getattr(c, 'endian', None) is not None:
            return c.endian.value
        if getattr(c, 'codecs', None):
            return endian(c.codecs)
    return None
z = zarr.open_array(path, mode='r')
arr = np.asarray(z[...])
if arr.dtype.itemsize > 1 and endian(z.metadata.codecs) == 'big':
    arr = arr.astype(arr.dtype.newbyteorder('>'))
";

/// zarr-python writes the array in chunks of half each axis, in the array's byte order, with
/// zero as the fill value (so all-zero chunks are not stored).
const SAVE: &str = "\
order = 'big' if arr.dtype.byteorder == '>' else 'little'
z = zarr.create_array(path, shape=arr.shape, dtype=arr.dtype.newbyteorder('='), chunks=tuple(max(1, (n + 1) // 2) for n in arr.shape), fill_value=0, serializer=zarr.codecs.BytesCodec(endian=order), overwrite=True)
z[...] = arr
";

/// A realistic array tree of f64 at `dir/name`, with `codecs` (each chunk checksummed), and
/// the map of its packed bytes: the packing's magic and entry headers, `zarr.json` (dense)
/// and the chunks (sampled; every byte under a checksum).
fn realistic(
    dir: &Path,
    name: &str,
    shape: &[usize],
    chunks: &[usize],
    codecs: Vec<Codec>,
) -> Result<Realistic, String> {
    let path = dir.join(name);
    let values = ndstore_conformance::sample::array(DTypeKind::F64, shape, Order::C, 0x2a77);
    let mut meta =
        ZarrMeta::new(DType::native(DTypeKind::F64), shape, chunks).map_err(|e| e.to_string())?;
    meta.codecs = CodecChain::new(codecs);
    ndstore_zarr::save_with(&path, &values, meta, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let packed = tree::pack(&path)?;
    let mut regions = vec![Region::dense("tree magic", 0..tree::MAGIC.len() as u64)];
    for entry in tree::entries(&packed) {
        regions.push(Region::dense("tree entry header", entry.header.clone()));
        if entry.content.is_empty() {
            continue;
        }
        regions.push(if entry.path == "zarr.json" {
            Region::dense("zarr.json", entry.content.clone())
        } else {
            Region::sampled("chunk", entry.content.clone()).checksummed()
        });
    }
    Ok(Realistic {
        name: name.to_owned(),
        path,
        loader: None,
        regions,
    })
}

/// An array's `zarr.json` with the given fields changed.
fn doc(changes: serde_json::Value) -> Vec<u8> {
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
fn packed(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
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
fn hostile_trees() -> Vec<Hostile> {
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

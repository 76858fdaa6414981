//! The codec chains both interop tests (local and through S3) run, as ndstore-zarr spells
//! them and as zarr-python does, and the hex form values travel to Python in.

#![allow(dead_code)]

use ndstore_core::{ArrayMeta, ByteOrder, DType, DynArray};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use serde_json::{Value, json};

/// One codec chain, as ndstore-zarr spells it and as zarr-python does (`E` is the endian).
pub struct Case {
    pub name: &'static str,
    pub chain: fn(Codec) -> CodecChain,
    pub python: &'static str,
    pub chunks: [usize; 2],
}

fn shard(bytes: Codec, extra: Vec<Codec>, at_start: bool) -> CodecChain {
    let mut codecs = vec![bytes];
    codecs.extend(extra);
    CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![2, 3],
        codecs: CodecChain::new(codecs),
        index_codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
        index_at_start: at_start,
    }))])
}

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "bytes",
            chain: |b| CodecChain::new(vec![b]),
            python: "[BytesCodec(endian=E)]",
            chunks: [4, 3],
        },
        Case {
            name: "transpose-gzip",
            chain: |b| CodecChain::new(vec![Codec::Transpose(vec![1, 0]), b, Codec::Gzip(5)]),
            python: "[TransposeCodec(order=(1, 0)), BytesCodec(endian=E), GzipCodec(level=5)]",
            chunks: [4, 3],
        },
        Case {
            name: "zstd-crc32c",
            chain: |b| {
                CodecChain::new(vec![
                    b,
                    Codec::Zstd {
                        level: 3,
                        checksum: true,
                    },
                    Codec::Crc32c,
                ])
            },
            python: "[BytesCodec(endian=E), ZstdCodec(level=3, checksum=True), Crc32cCodec()]",
            chunks: [4, 3],
        },
        Case {
            name: "sharded-end",
            chain: |b| {
                shard(
                    b,
                    vec![Codec::Zstd {
                        level: 1,
                        checksum: false,
                    }],
                    false,
                )
            },
            python: "[ShardingCodec(chunk_shape=(2, 3), codecs=[BytesCodec(endian=E), ZstdCodec(level=1)], index_codecs=[BytesCodec(endian='little'), Crc32cCodec()], index_location='end')]",
            chunks: [4, 6],
        },
        Case {
            name: "sharded-start",
            chain: |b| shard(b, vec![Codec::Gzip(1), Codec::Crc32c], true),
            python: "[ShardingCodec(chunk_shape=(2, 3), codecs=[BytesCodec(endian=E), GzipCodec(level=1), Crc32cCodec()], index_codecs=[BytesCodec(endian='little'), Crc32cCodec()], index_location='start')]",
            chunks: [4, 6],
        },
    ]
}

/// The values' native bytes, in hex.
pub fn native_hex(array: &DynArray) -> String {
    ndstore_core::with_dyn_array!(array, |a| {
        a.iter()
            .flat_map(|v| bytemuck::bytes_of(v).to_vec())
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// Notes in `failures` where case `name` went wrong: zarr-python's `answer` (its error, or the
/// hex of what it read of ndstore's array, which holds `array`), and what ndstore `loaded`
/// from zarr-python's array, which must be `array` as `dtype`.
pub fn judge(
    name: &str,
    answer: &Value,
    array: &DynArray,
    dtype: DType,
    loaded: ndstore_core::Result<(ArrayMeta, DynArray)>,
    failures: &mut Vec<String>,
) {
    if answer["hex"] != json!(native_hex(array)) {
        failures.push(format!("{name}: zarr-python read other values"));
    }
    match loaded {
        Ok((meta, loaded)) => {
            if !loaded.bit_eq(array) {
                failures.push(format!(
                    "{name}: ndstore read other values from zarr-python's array"
                ));
            }
            if meta.dtype != dtype {
                failures.push(format!(
                    "{name}: ndstore read {} from zarr-python's array",
                    meta.dtype
                ));
            }
        }
        Err(e) => failures.push(format!(
            "{name}: ndstore cannot read zarr-python's array: {e}"
        )),
    }
}

//! zarr-python against ndstore-zarr, both ways, for every codec: zarr-python reads what
//! ndstore-zarr writes and ndstore-zarr reads what zarr-python writes, sharded and not, in both
//! byte orders, with all-fill chunks left out of both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codec_cases;

use std::path::Path;

use codec_cases::{cases, judge, native_hex};
use ndarray::{ArrayD, IxDyn};
use ndstore_core::{Backend, ByteOrder, DType, DTypeKind, DynArray, SaveOptions, with_dtype_kind};
use ndstore_zarr::codec::Codec;
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::{ZarrBackend, save_with};
use serde_json::{Value, json};

const SHAPE: [usize; 2] = [7, 10];

/// Values of `kind` whose first 4x6 box is all zero (the fill value), so its chunks, inner
/// chunks and (for the shards) the whole first shard are never stored.
fn values(kind: DTypeKind) -> DynArray {
    let count = SHAPE[0] * SHAPE[1];
    with_dtype_kind!(kind, |T| {
        let itemsize = std::mem::size_of::<T>();
        let mut bytes = vec![0u8; count * itemsize];
        for (i, chunk) in bytes.chunks_exact_mut(itemsize).enumerate() {
            let (row, col) = (i / SHAPE[1], i % SHAPE[1]);
            if row < 4 && col < 6 {
                continue;
            }
            if kind == DTypeKind::Bool {
                chunk[0] = u8::from(i % 3 != 0);
            } else {
                // Small values in every byte, never a NaN.
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = ((i * 7 + j * 13) % 61) as u8 + 1;
                }
            }
        }
        let raw: Vec<T> = bytes
            .chunks_exact(itemsize)
            .map(|c| *bytemuck::checked::from_bytes::<T>(c))
            .collect();
        DynArray::from(ArrayD::from_shape_vec(IxDyn(&SHAPE), raw).unwrap())
    })
}

/// The keys stored below `root`, in order.
fn stored_keys(root: &Path) -> Vec<String> {
    let packed = ndstore_conformance::tree::pack(root).unwrap();
    ndstore_conformance::tree::entries(&packed)
        .into_iter()
        .map(|e| e.path)
        .collect()
}

const SCRIPT: &str = r#"
import json, sys
import numpy as np
import zarr
from zarr.codecs import *
spec = json.loads(SPEC)
out = []
for c in spec["cases"]:
    res = {}
    try:
        a = np.asarray(zarr.open_array(c["path"], mode="r")[...])
        res["hex"] = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("=")).tobytes().hex()
        res["descr"] = a.dtype.str
        values = np.frombuffer(bytes.fromhex(c["hex"]), dtype=np.dtype(c["dtype"])).reshape(c["shape"])
        E = c["endian"]
        codecs = eval(c["codecs"])
        z = zarr.create(shape=values.shape, chunks=tuple(c["chunks"]), dtype=values.dtype, codecs=codecs, fill_value=0, store=c["out"], zarr_format=3, overwrite=True)
        z[...] = values
    except Exception as e:
        res["error"] = repr(e)
    out.append(res)
print(json.dumps(out))
"#;

#[test]
fn zarr_python_and_ndstore_read_each_other_for_every_codec() {
    if !ndstore_conformance::python::available_or_skip("the zarr-python interop test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kinds = [
        DTypeKind::Bool,
        DTypeKind::U8,
        DTypeKind::I16,
        DTypeKind::U32,
        DTypeKind::I64,
        DTypeKind::F16,
        DTypeKind::F32,
        DTypeKind::F64,
        DTypeKind::Complex64,
        DTypeKind::Complex128,
    ];
    let mut specs = Vec::new();
    let mut expected = Vec::new();
    for kind in kinds {
        let array = values(kind);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let dtype = DType::new(kind, order);
            if !kind.has_byte_order() && order == ByteOrder::Big {
                continue;
            }
            for case in cases() {
                let name = format!("{kind:?}-{order:?}-{}", case.name);
                let path = dir.path().join(format!("{name}.zarr"));
                let out = dir.path().join(format!("{name}-py.zarr"));
                let mut meta = ZarrMeta::new(dtype, &SHAPE, &case.chunks).unwrap();
                meta.codecs = (case.chain)(Codec::bytes_for(dtype));
                save_with(&path, &array, meta, &SaveOptions::default()).unwrap();
                let endian = if !kind.has_byte_order() {
                    "None".to_owned()
                } else if order == ByteOrder::Big {
                    "'big'".to_owned()
                } else {
                    "'little'".to_owned()
                };
                specs.push(json!({
                    "path": path, "out": out, "chunks": case.chunks, "shape": SHAPE,
                    "dtype": DType::native(kind).to_numpy_descr(), "hex": native_hex(&array),
                    "codecs": "", "endian": Value::Null,
                }));
                let last = specs.len() - 1;
                specs[last]["codecs"] = json!(case.python.replace("=E", &format!("={endian}")));
                expected.push((name, path, out, array.clone(), dtype));
            }
        }
    }
    let script = SCRIPT.replace(
        "SPEC",
        &serde_json::to_string(&serde_json::to_string(&json!({"cases": specs})).unwrap()).unwrap(),
    );
    let answer = ndstore_conformance::python::run_script(&script).unwrap();
    let answers: Vec<Value> = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answers.len(), expected.len());
    let mut failures = Vec::new();
    for ((name, path, out, array, dtype), answer) in expected.iter().zip(&answers) {
        if let Some(error) = answer.get("error") {
            failures.push(format!("{name}: python: {error}"));
            continue;
        }
        judge(
            name,
            answer,
            array,
            *dtype,
            ZarrBackend.load(out),
            &mut failures,
        );
        // Neither store holds the all-fill first chunk (or, sharded, the first shard).
        for root in [path, out] {
            let keys = stored_keys(root);
            if keys.iter().any(|k| k == "c/0/0") {
                failures.push(format!(
                    "{name}: {} stores the all-fill chunk c/0/0",
                    root.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

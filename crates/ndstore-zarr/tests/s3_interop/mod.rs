//! zarr-python against ndstore-zarr through S3 (the local moto server), both ways, shared by
//! tests/interop_s3.rs and the `zarr-s3` conformance row's IX: zarr-python (through obstore's
//! S3 store) reads the arrays ndstore-zarr saved, and ndstore-zarr reads the arrays
//! zarr-python wrote, plain and sharded, compressed and not, in both byte orders.

use super::codec_cases::{cases, judge, native_hex as hex};
use super::common::s3_target as target;
use ndstore_conformance::python::{S3_BUCKET, S3Server};
use ndstore_core::{ByteOrder, DType, DTypeKind, LoadOptions, Order, SaveOptions};
use ndstore_zarr::codec::Codec;
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::{ZarrArray, save_object};
use serde_json::{Value, json};

const SHAPE: [usize; 2] = [9, 10];

const SCRIPT: &str = r#"
import json
import numpy as np
import zarr
from zarr.codecs import *
from zarr.storage import ObjectStore
from obstore.store import S3Store
spec = json.loads(SPEC)
def store(prefix, read_only):
    s3 = S3Store(spec["bucket"], prefix=prefix, endpoint=spec["endpoint"], access_key_id="testing",
                 secret_access_key="testing", region="us-east-1", client_options={"allow_http": True})
    return ObjectStore(s3, read_only=read_only)
out = []
for c in spec["cases"]:
    res = {}
    try:
        a = np.asarray(zarr.open_array(store(c["prefix"], True), mode="r")[...])
        res["hex"] = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("=")).tobytes().hex()
        values = np.frombuffer(bytes.fromhex(c["hex"]), dtype=np.dtype(c["dtype"])).reshape(c["shape"])
        E = c["endian"]
        z = zarr.create(shape=values.shape, chunks=tuple(c["chunks"]), dtype=values.dtype,
                        codecs=eval(c["codecs"]), fill_value=0, store=store(c["out"], False),
                        zarr_format=3, overwrite=True)
        z[...] = values
    except Exception as e:
        res["error"] = repr(e)
    out.append(res)
print(json.dumps(out))
"#;

/// Runs every case both ways through `server`, under `root` in its bucket, and returns the
/// number of cases and the failures, each naming its case.
///
/// # Errors
///
/// A message when an array cannot be saved or Python cannot run.
pub fn both_ways(server: &S3Server, root: &str) -> Result<(usize, Vec<String>), String> {
    let kinds = [
        DTypeKind::Bool,
        DTypeKind::I32,
        DTypeKind::U64,
        DTypeKind::F64,
        DTypeKind::Complex64,
    ];
    let mut specs = Vec::new();
    let mut expected = Vec::new();
    for (seed, kind) in (1u64..).zip(kinds) {
        let array = ndstore_conformance::sample::array(kind, &SHAPE, Order::C, seed);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            if !kind.has_byte_order() && order == ByteOrder::Big {
                continue;
            }
            let dtype = DType::new(kind, order);
            for case in cases() {
                let name = format!("{kind:?}-{order:?}-{}", case.name);
                let prefix = format!("{root}/{name}.zarr");
                let out = format!("{root}/{name}-py.zarr");
                let mut meta =
                    ZarrMeta::new(dtype, &SHAPE, &case.chunks).map_err(|e| e.to_string())?;
                meta.codecs = (case.chain)(Codec::bytes_for(dtype));
                save_object(
                    &target(server, &prefix),
                    &array,
                    meta,
                    &SaveOptions::default(),
                )
                .map_err(|e| format!("{name}: {e}"))?;
                let endian = match (kind.has_byte_order(), order) {
                    (false, _) => "None",
                    (true, ByteOrder::Big) => "'big'",
                    (true, _) => "'little'",
                };
                specs.push(json!({
                    "prefix": prefix, "out": out, "chunks": case.chunks, "shape": SHAPE,
                    "dtype": DType::native(kind).to_numpy_descr(), "hex": hex(&array),
                    "codecs": case.python.replace("=E", &format!("={endian}")), "endian": Value::Null,
                }));
                expected.push((name, out, array.clone(), dtype));
            }
        }
    }
    let spec = json!({"bucket": S3_BUCKET, "endpoint": server.endpoint(), "cases": specs});
    let script = SCRIPT.replace(
        "SPEC",
        &serde_json::to_string(&spec.to_string()).map_err(|e| e.to_string())?,
    );
    let answer = ndstore_conformance::python::run_script(&script)?;
    let answers: Vec<Value> =
        serde_json::from_str(answer.trim()).map_err(|e| format!("python said {answer}: {e}"))?;
    if answers.len() != expected.len() {
        return Err(format!(
            "python answered {} cases of {}",
            answers.len(),
            expected.len()
        ));
    }
    let mut failures = Vec::new();
    for ((name, out, array, dtype), answer) in expected.iter().zip(&answers) {
        if let Some(error) = answer.get("error") {
            failures.push(format!("{name}: python: {error}"));
            continue;
        }
        let opened = ZarrArray::open_object(&target(server, out), &SaveOptions::default());
        let loaded =
            opened.and_then(|a| Ok((a.array_meta(), a.read_all(&LoadOptions::default())?)));
        judge(name, answer, array, *dtype, loaded, &mut failures);
    }
    Ok((expected.len(), failures))
}

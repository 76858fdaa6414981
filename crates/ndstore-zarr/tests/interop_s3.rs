//! zarr-python against ndstore-zarr through S3 (the local moto server), both ways: zarr-python
//! (through obstore's S3 store) reads the arrays ndstore-zarr saved, and ndstore-zarr reads
//! the arrays zarr-python wrote, plain and sharded, compressed and not, in both byte orders.
//! Without the server (or Python) the test SKIPs with the reason, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codec_cases;
mod common;

use codec_cases::{cases, judge, native_hex as hex};
use common::s3_target as target;
use ndstore_conformance::python::{S3_BUCKET, s3_server_or_skip};
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

#[test]
fn zarr_python_and_ndstore_read_each_other_through_s3() {
    let Some(server) = s3_server_or_skip("the zarr-python interop through S3") else {
        return;
    };
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
                let prefix = format!("ix/{name}.zarr");
                let out = format!("ix/{name}-py.zarr");
                let mut meta = ZarrMeta::new(dtype, &SHAPE, &case.chunks).unwrap();
                meta.codecs = (case.chain)(Codec::bytes_for(dtype));
                save_object(
                    &target(&server, &prefix),
                    &array,
                    meta,
                    &SaveOptions::default(),
                )
                .unwrap();
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
        &serde_json::to_string(&serde_json::to_string(&spec).unwrap()).unwrap(),
    );
    let answer = ndstore_conformance::python::run_script(&script).unwrap();
    let answers: Vec<Value> = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answers.len(), expected.len());
    let mut failures = Vec::new();
    for ((name, out, array, dtype), answer) in expected.iter().zip(&answers) {
        if let Some(error) = answer.get("error") {
            failures.push(format!("{name}: python: {error}"));
            continue;
        }
        let opened = ZarrArray::open_object(&target(&server, out), &SaveOptions::default());
        let loaded =
            opened.and_then(|a| Ok((a.array_meta(), a.read_all(&LoadOptions::default())?)));
        judge(name, answer, array, *dtype, loaded, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! IX: the reference library (numpy, h5py) reads what the backend writes, and the backend reads
//! what the reference library writes, over the round-trip matrix.

use ndstore_core::codec::write_elements;
use ndstore_core::{Order, with_dyn_array};
use serde::{Deserialize, Serialize};

use crate::Ctx;
use crate::checks::roundtrip::fixed_matrix;
use crate::python;
use crate::report::CheckResult;

#[derive(Serialize)]
struct PyCase {
    n: usize,
    path: String,
    out: String,
}

#[derive(Deserialize)]
struct PyResult {
    n: usize,
    descr: Option<String>,
    shape: Option<Vec<usize>>,
    fortran: Option<bool>,
    hex: Option<String>,
    error: Option<String>,
}

const SCRIPT: &str = r#"
import json, sys
import numpy as np
spec = json.loads(SPEC)
for module in spec["modules"]:
    __import__(module)
out = []
for c in spec["cases"]:
    ns = {"np": np, "path": c["path"]}
    for module in spec["modules"]:
        ns[module] = sys.modules[module]
    try:
        exec(spec["load"], ns)
        a = np.asarray(ns["arr"])
        res = {"n": c["n"], "descr": a.dtype.str, "shape": list(a.shape),
               "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1),
               "hex": np.ascontiguousarray(a).tobytes().hex()}
        ns2 = {"np": np, "path": c["out"], "arr": ns["arr"]}
        for module in spec["modules"]:
            ns2[module] = sys.modules[module]
        exec(spec["save"], ns2)
    except Exception as e:
        res = {"n": c["n"], "error": repr(e)}
    out.append(res)
print(json.dumps(out))
"#;

/// IX over the fixed round-trip matrix, both directions.
pub fn ix(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    let Some(interop) = backend.python_interop().filter(|_| caps.interop) else {
        return Ok(CheckResult::not_applicable("IX", "interop"));
    };
    let cases = fixed_matrix(ctx);
    let mut py_cases = Vec::new();
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let path = ctx.path(&format!("ix{n}"));
        let out = ctx.path(&format!("ix{n}-py"));
        let options = ndstore_core::SaveOptions::new().byte_order(case.byte_order);
        if let Err(e) = backend.save(&path, &case.array(caps.bit_exact), &options) {
            failures.push(format!("{}: save: {e}", case.label()));
        }
        py_cases.push(PyCase {
            n,
            path: path.display().to_string(),
            out: out.display().to_string(),
        });
    }
    let spec = serde_json::json!({
        "modules": interop.modules,
        "load": interop.load,
        "save": interop.save,
        "cases": py_cases,
    });
    let script = SCRIPT.replace(
        "SPEC",
        &serde_json::to_string(&serde_json::to_string(&spec).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
    );
    let output = python::run_script(&script)?;
    let results: Vec<PyResult> = serde_json::from_str(output.trim())
        .map_err(|e| format!("cannot read python's answer: {e}"))?;
    for result in results {
        let Some(case) = cases.get(result.n) else {
            continue;
        };
        let label = case.label();
        if let Some(error) = result.error {
            failures.push(format!("{label}: python: {error}"));
            continue;
        }
        let want = case.expected_meta();
        let array = case.array(caps.bit_exact);
        let mut bytes = Vec::new();
        with_dyn_array!(&array, a => {
            let _ = write_elements(&a.view(), Order::C, want.dtype.byte_order, &mut |b| {
                bytes.extend_from_slice(b);
                Ok(())
            });
        });
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if result.descr.as_deref() != Some(want.dtype.to_numpy_descr().as_str()) {
            failures.push(format!("{label}: numpy sees dtype {:?}", result.descr));
        } else if result.shape.as_deref() != Some(want.shape.as_slice()) {
            failures.push(format!("{label}: numpy sees shape {:?}", result.shape));
        } else if caps.fortran_order
            && result.fortran != Some(want.effective_order() == Order::Fortran)
        {
            failures.push(format!("{label}: numpy sees fortran={:?}", result.fortran));
        } else if result.hex.as_deref() != Some(hex.as_str()) {
            failures.push(format!("{label}: numpy sees other values"));
        }
        // The other direction: what the reference library wrote, read by the backend.
        let out = ctx.path(&format!("ix{}-py", result.n));
        match crate::checks::load(backend, &out) {
            Ok((meta, loaded)) => {
                if meta.dtype != want.dtype
                    || meta.shape != want.shape
                    || meta.effective_order() != want.effective_order()
                {
                    failures.push(format!("{label}: reading the reference file gave {meta:?}"));
                } else if !loaded.bit_eq(&array) {
                    failures.push(format!(
                        "{label}: reading the reference file gave other values"
                    ));
                }
            }
            Err(e) => failures.push(format!("{label}: reading the reference file: {e}")),
        }
    }
    let what = format!(
        "{} cases: the reference library reads the backend's files, and the backend reads the reference library's",
        cases.len()
    );
    Ok(CheckResult::counted(
        "IX",
        (cases.len() * 2) as u64,
        &failures,
        &what,
    ))
}

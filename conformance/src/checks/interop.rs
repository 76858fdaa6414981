//! IX: the reference library (numpy, h5py) reads what the backend writes, and the backend reads
//! what the reference library writes, over the round-trip matrix.

use ndstore_core::__private::codec::write_elements;
use ndstore_core::{Order, with_dyn_array};
use serde::{Deserialize, Serialize};

use crate::Ctx;
use crate::check::Check;
use crate::checks::roundtrip::{Case, fixed_matrix};
use crate::fixtures::RustInterop;
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
    /// Reading the backend's file failed.
    error: Option<String>,
    /// Writing the reference file failed.
    save_error: Option<String>,
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
    res = {"n": c["n"]}
    arr = None
    try:
        exec(spec["load"], ns)
        arr = ns["arr"]
        a = np.asarray(arr)
        res.update({"descr": a.dtype.str, "shape": list(a.shape),
                    "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1),
                    "hex": np.ascontiguousarray(a).tobytes().hex()})
    except Exception as e:
        res["error"] = repr(e)
    try:
        if arr is None:
            raise ValueError("nothing was read to write back")
        ns2 = {"np": np, "path": c["out"], "arr": arr}
        for module in spec["modules"]:
            ns2[module] = sys.modules[module]
        exec(spec["save"], ns2)
    except Exception as e:
        res["save_error"] = repr(e)
    out.append(res)
print(json.dumps(out))
"#;

/// The two directions of a case.
const TO_REFERENCE: usize = 0;
const FROM_REFERENCE: usize = 1;

/// IX over the fixed round-trip matrix, both directions. Each case counts once per direction,
/// and a direction holds only when it ran and agreed: a save that failed, a case Python gave no
/// answer for, or an answer that differs fails that direction.
pub fn ix(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    let Some(interop) = ctx.fixtures.python_interop().filter(|_| caps.interop) else {
        return Ok(CheckResult::not_applicable(Check::Interop, "interop"));
    };
    let cases = fixed_matrix(ctx);
    let mut py_cases = Vec::new();
    // Per case and direction: None until it ran, then Ok or what went wrong.
    let mut verdicts: Vec<[Option<Result<(), String>>; 2]> = vec![[None, None]; cases.len()];
    for (n, case) in cases.iter().enumerate() {
        let path = ctx.path(&format!("ix{n}"));
        let out = ctx.path(&format!("ix{n}-py"));
        let options = ndstore_core::SaveOptions::new().byte_order(case.byte_order);
        if let Err(e) = backend.save(&path, &case.array(caps.bit_exact), &options) {
            verdicts[n][TO_REFERENCE] = Some(Err(format!("save: {e}")));
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
    let mut answered = vec![false; cases.len()];
    for result in results {
        let Some(case) = cases.get(result.n) else {
            continue;
        };
        if std::mem::replace(&mut answered[result.n], true) {
            // A second answer for one case counts for nothing.
            continue;
        }
        let verdict = &mut verdicts[result.n];
        if let Some(error) = &result.save_error {
            verdict[FROM_REFERENCE] = Some(Err(format!("python could not write: {error}")));
        }
        if let Some(error) = &result.error {
            verdict[TO_REFERENCE].get_or_insert(Err(format!("python could not read: {error}")));
        }
        let want = case.expected_meta();
        let array = case.array(caps.bit_exact);
        let mut bytes = Vec::new();
        with_dyn_array!(&array, |a| {
            let _ = write_elements(&a.view(), Order::C, want.dtype.byte_order, &mut |b| {
                bytes.extend_from_slice(b);
                Ok(())
            });
        });
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // The reference library read the backend's file (unless the save already failed).
        let seen = if result.descr.as_deref() != Some(want.dtype.to_numpy_descr().as_str()) {
            Err(format!("numpy sees dtype {:?}", result.descr))
        } else if result.shape.as_deref() != Some(want.shape.as_slice()) {
            Err(format!("numpy sees shape {:?}", result.shape))
        } else if caps.fortran_order
            && result.fortran != Some(want.effective_order() == Order::Fortran)
        {
            Err(format!("numpy sees fortran={:?}", result.fortran))
        } else if result.hex.as_deref() != Some(hex.as_str()) {
            Err("numpy sees other values".to_owned())
        } else {
            Ok(())
        };
        if result.error.is_none() {
            verdict[TO_REFERENCE].get_or_insert(seen);
        }
        if verdict[FROM_REFERENCE].is_some() {
            continue;
        }
        // The backend reads what the reference library wrote.
        let out = ctx.path(&format!("ix{}-py", result.n));
        verdict[FROM_REFERENCE] = Some(match crate::checks::load(backend, &out) {
            Ok((meta, loaded)) => {
                if meta.dtype != want.dtype
                    || meta.shape != want.shape
                    || meta.effective_order() != want.effective_order()
                {
                    Err(format!("reading the reference file gave {meta:?}"))
                } else if !loaded.bit_eq(&array) {
                    Err("reading the reference file gave other values".to_owned())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(format!("reading the reference file: {e}")),
        });
    }
    let mut failures = Vec::new();
    let mut agreed = [0usize; 2];
    for (case, verdict) in cases.iter().zip(&verdicts) {
        for (direction, result) in verdict.iter().enumerate() {
            match result {
                Some(Ok(())) => agreed[direction] += 1,
                Some(Err(e)) => failures.push(format!("{}: {e}", case.label())),
                None => failures.push(format!("{}: python gave no answer", case.label())),
            }
        }
    }
    let mut what = format!(
        "{} cases: the reference library read {} of the backend's files as written, and the backend read {} of the reference library's",
        cases.len(),
        agreed[TO_REFERENCE],
        agreed[FROM_REFERENCE]
    );
    let mut counted = (cases.len() * 2) as u64;
    if let Some(rust) = ctx.fixtures.rust_interop() {
        let (ran, agreed) = rust_cases(ctx, &rust, &cases, &verdicts, &mut failures);
        counted += (ran[TO_REFERENCE] + ran[FROM_REFERENCE]) as u64;
        what.push_str(&format!(
            "; {} read {} of {} of the backend's files in the dtypes it supports, and the backend read {} of its {}",
            rust.name,
            agreed[TO_REFERENCE],
            ran[TO_REFERENCE],
            agreed[FROM_REFERENCE],
            ran[FROM_REFERENCE]
        ));
    }
    Ok(CheckResult::counted(
        Check::Interop,
        counted,
        &failures,
        &what,
    ))
}

/// The same cases through the Rust reference library, both directions: it reads the backend's
/// files (those the backend saved), and the backend reads what it writes. Returns the cases run
/// and agreed per direction; a dtype the library does not support is not run.
fn rust_cases(
    ctx: &Ctx<'_>,
    rust: &RustInterop,
    cases: &[Case],
    verdicts: &[[Option<Result<(), String>>; 2]],
    failures: &mut Vec<String>,
) -> ([usize; 2], [usize; 2]) {
    let backend = ctx.backend;
    let caps = backend.capabilities();
    let mut ran = [0usize; 2];
    let mut agreed = [0usize; 2];
    let mut judge = |direction: usize, label: String, verdict: Result<(), String>| {
        ran[direction] += 1;
        match verdict {
            Ok(()) => agreed[direction] += 1,
            Err(e) => failures.push(format!("{label}: {}: {e}", rust.name)),
        }
    };
    for (n, case) in cases.iter().enumerate() {
        let want = case.expected_meta();
        let array = case.array(caps.bit_exact);
        // The backend's file, unless its save already failed (a failure counted above).
        if !matches!(verdicts[n][TO_REFERENCE], Some(Err(_))) {
            let path = ctx.path(&format!("ix{n}"));
            if let Some(read) = (rust.load)(&path, want.dtype.kind) {
                let verdict = read.and_then(|read| {
                    if read.shape() != want.shape.as_slice() {
                        Err(format!("reads shape {:?}", read.shape()))
                    } else if !read.bit_eq(&array) {
                        Err("reads other values".to_owned())
                    } else {
                        Ok(())
                    }
                });
                judge(
                    TO_REFERENCE,
                    case.label(),
                    verdict.map_err(|e| format!("reading the backend's file: {e}")),
                );
            }
        }
        let out = ctx.path(&format!("ix{n}-rs"));
        if let Some(written) = (rust.save)(&out, &array) {
            let verdict = written
                .map_err(|e| format!("could not write: {e}"))
                .and_then(|()| {
                    let (meta, loaded) = crate::checks::load(backend, &out)
                        .map_err(|e| format!("reading its file: {e}"))?;
                    // It writes its own byte order and memory order; the values must agree.
                    if meta.dtype.kind != want.dtype.kind || meta.shape != want.shape {
                        Err(format!("reading its file gave {meta:?}"))
                    } else if !loaded.bit_eq(&array) {
                        Err("reading its file gave other values".to_owned())
                    } else {
                        Ok(())
                    }
                });
            judge(FROM_REFERENCE, case.label(), verdict);
        }
    }
    (ran, agreed)
}

//! Merges the per-check results and the self-tests of a conformance run into the matrix:
//! prints it, writes `report.md` and `report.json`, and fails on any FAIL, on a self-test whose
//! check did not fail on its broken backend, and on any SKIP unless `--allow-skip` (refused
//! under `CI=true`). Run by `cargo xtask conformance`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ndstore_conformance::Check;
use ndstore_conformance::report::{BackendReport, CheckResult, Report, SelfTest};
use ndstore_conformance::selftest::VARIANTS;

const BACKENDS: [&str; 6] = ["file", "mmap", "hdf5", "text", "zarr", "zarr-s3"];

fn read_backend(dir: &Path, name: &str) -> Result<BackendReport, String> {
    let dir = dir.join(name);
    let capabilities = std::fs::read_to_string(dir.join("capabilities.json"))
        .ok()
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| format!("{name}/capabilities.json: {e}"))
        })
        .transpose()?;
    let mut checks = Vec::new();
    for check in Check::ALL {
        let path = dir.join(format!("{}.json", check.id()));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let check: CheckResult =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            checks.push(check);
        }
    }
    Ok(BackendReport {
        name: name.to_owned(),
        capabilities,
        checks,
    })
}

/// Every variant's self-test, in catalogue order; one that left no result is recorded as not
/// run, which fails the report like a check that passed its broken backend.
fn read_self_tests(dir: &Path) -> Result<Vec<SelfTest>, String> {
    let dir = dir.join("self-test");
    let mut tests = Vec::new();
    for variant in &VARIANTS {
        let Some(check) = variant.check else {
            continue;
        };
        let path = dir.join(format!("{}.json", variant.name));
        let test = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(_) => SelfTest {
                variant: variant.name.to_owned(),
                defect: variant.defect.to_owned(),
                check,
                status: ndstore_conformance::Status::Fail,
                caught: false,
                detail: "the self-test did not run, so the check is not known to catch anything"
                    .to_owned(),
            },
        };
        tests.push(test);
    }
    Ok(tests)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let allow_skip = match args.iter().position(|a| a == "--allow-skip") {
        Some(at) => {
            args.remove(at);
            true
        }
        None => false,
    };
    let [results, out, mode] = args.as_slice() else {
        eprintln!("usage: conformance-report RESULTS_DIR OUT_DIR MODE [--allow-skip]");
        return ExitCode::FAILURE;
    };
    if allow_skip && std::env::var("CI").is_ok_and(|v| v == "true") {
        eprintln!(
            "conformance-report: --allow-skip is refused under CI=true: in CI every check must run"
        );
        return ExitCode::FAILURE;
    }
    let (results, out) = (PathBuf::from(results), PathBuf::from(out));
    let mut backends = Vec::new();
    for name in BACKENDS {
        match read_backend(&results, name) {
            Ok(report) => backends.push(report),
            Err(e) => {
                eprintln!("conformance-report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let self_tests = match read_self_tests(&results) {
        Ok(tests) => tests,
        Err(e) => {
            eprintln!("conformance-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = Report {
        mode: mode.clone(),
        backends,
        self_tests,
    };
    let markdown = report.to_markdown();
    let json = match serde_json::to_string_pretty(&report) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("conformance-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, text) in [("report.md", &markdown), ("report.json", &json)] {
        if let Err(e) = std::fs::write(out.join(name), text) {
            eprintln!(
                "conformance-report: cannot write {}: {e}",
                out.join(name).display()
            );
            return ExitCode::FAILURE;
        }
    }
    println!("\n{markdown}");
    println!(
        "written: {} and {}",
        out.join("report.md").display(),
        out.join("report.json").display()
    );
    let skips = report.skips();
    if !skips.is_empty() {
        let verdict = if allow_skip {
            "allowed by --allow-skip"
        } else {
            "a skip fails the run; `--allow-skip` accepts them outside CI"
        };
        eprintln!(
            "conformance-report: {} check(s) could not run here ({verdict}):\n  {}",
            skips.len(),
            skips.join("\n  ")
        );
    }
    if report.has_failures() || (!skips.is_empty() && !allow_skip) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

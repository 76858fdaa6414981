//! Merges the per-check results of a conformance run into the matrix: prints it, and writes
//! `report.md` and `report.json`. Run by `cargo xtask conformance`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ndstore_conformance::report::{BackendReport, CATALOGUE, CheckResult, Report};

const BACKENDS: [&str; 4] = ["file", "mmap", "hdf5", "text"];

fn read_backend(dir: &Path, name: &str) -> Result<BackendReport, String> {
    let dir = dir.join(name);
    let capabilities = std::fs::read_to_string(dir.join("capabilities.json"))
        .ok()
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| format!("{name}/capabilities.json: {e}"))
        })
        .transpose()?;
    let mut checks = Vec::new();
    for (id, _) in CATALOGUE {
        let path = dir.join(format!("{id}.json"));
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

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [results, out, mode] = args.as_slice() else {
        eprintln!("usage: conformance-report RESULTS_DIR OUT_DIR MODE");
        return ExitCode::FAILURE;
    };
    let mut backends = Vec::new();
    for name in BACKENDS {
        match read_backend(results, name) {
            Ok(report) => backends.push(report),
            Err(e) => {
                eprintln!("conformance-report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let report = Report {
        mode: mode.display().to_string(),
        backends,
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
    if report.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

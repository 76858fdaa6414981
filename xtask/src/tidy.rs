//! Repository lints that plain `cargo test` cannot express: every source file says why it
//! exists, and every backend crate plugs into the conformance suite.

use std::fs;
use std::path::{Path, PathBuf};

/// Runs every lint and reports all problems at once.
pub fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in [
        "crates",
        "conformance",
        "benches",
        "xtask",
        "examples",
        "fuzz",
    ] {
        collect_rs(&root.join(dir), &mut files);
    }
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_default();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            problems.push(format!(
                "{}: the file must open with a `//!` line saying why it exists",
                rel(root, file)
            ));
        }
    }
    for backend in backend_crates(root) {
        let suite = backend.join("tests").join("conformance.rs");
        let text = fs::read_to_string(&suite).unwrap_or_default();
        if !text.contains("ndstore_conformance::suite!") {
            problems.push(format!(
                "{}: a backend crate must plug into the harness with `ndstore_conformance::suite!(...)`",
                rel(root, &suite)
            ));
        }
    }
    if let Err(problem) = readme_mirrors_example(root) {
        problems.push(problem);
    }
    if problems.is_empty() {
        println!("xtask: tidy: {} files checked, no problems", files.len());
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// Crates under `crates/` that implement a backend (all but the core and the facade).
fn backend_crates(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ndstore-") && name != "ndstore-core" && p.join("Cargo.toml").is_file()
        })
        .collect();
    found.sort();
    found
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "corpus")
            {
                continue;
            }
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The README's first example must be the code between `README-BEGIN` and `README-END` in
/// `examples/quickstart.rs`, which CI compiles and runs.
fn readme_mirrors_example(root: &Path) -> Result<(), String> {
    let example = fs::read_to_string(root.join("examples/quickstart.rs"))
        .map_err(|e| format!("examples/quickstart.rs: {e}"))?;
    let readme =
        fs::read_to_string(root.join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let body: Vec<&str> = example
        .lines()
        .skip_while(|l| !l.contains("README-BEGIN"))
        .skip(1)
        .take_while(|l| !l.contains("README-END"))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    if body.is_empty() {
        return Err("examples/quickstart.rs: no README-BEGIN/README-END section".to_owned());
    }
    if readme.contains(&body.join("\n")) {
        Ok(())
    } else {
        Err("README.md: the first example differs from examples/quickstart.rs (README-BEGIN..README-END)".to_owned())
    }
}

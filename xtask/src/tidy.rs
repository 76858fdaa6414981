//! Repository lints that plain `cargo test` cannot express: every source file says why it
//! exists, every backend crate plugs into the conformance suite, and every path
//! ARCHITECTURE.md names exists.

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
    problems.extend(architecture_paths_exist(root));
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

/// Crates under `crates/` that implement a backend (all but the core, the facade and the
/// command line).
fn backend_crates(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ndstore-")
                && !matches!(name, "ndstore-core" | "ndstore-cli")
                && p.join("Cargo.toml").is_file()
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

/// The folders whose paths ARCHITECTURE.md may name from the workspace root.
const MAPPED_ROOTS: [&str; 6] = [
    "crates/",
    "conformance/",
    "xtask/",
    "benches/",
    "fuzz/",
    "examples/",
];

/// Every path ARCHITECTURE.md names exists: paths from the workspace root (`crates/...`,
/// `conformance/...`, `xtask/...`, `benches/...`, `fuzz/...`), and file names in a section
/// headed by a folder (`dtype.rs` under `### \`crates/ndstore-core\``), which must be a file
/// somewhere below that folder.
fn architecture_paths_exist(root: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(root.join("ARCHITECTURE.md")) else {
        return vec!["ARCHITECTURE.md: cannot be read".to_owned()];
    };
    let mut problems = Vec::new();
    let mut section: Option<PathBuf> = None;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            section = named_paths(line.trim_start_matches('#'))
                .into_iter()
                .next()
                .map(|p| root.join(p));
        }
        for path in named_paths(line) {
            if !root.join(path).exists() {
                problems.push(format!(
                    "ARCHITECTURE.md:{}: names {path}, which does not exist",
                    n + 1
                ));
            }
        }
        let Some(dir) = &section else {
            continue;
        };
        for name in named_files(line) {
            if !has_file(dir, name) {
                problems.push(format!(
                    "ARCHITECTURE.md:{}: names {name}, which is no file under {}",
                    n + 1,
                    rel(root, dir)
                ));
            }
        }
    }
    problems
}

/// The workspace paths a line names: words that start with one of [`MAPPED_ROOTS`] (after a
/// backtick, a parenthesis or a space), without placeholders (`<backend>`).
fn named_paths(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for (at, _) in line.char_indices() {
        let before = line[..at].chars().next_back();
        if !matches!(before, None | Some('`' | '(' | ' ')) {
            continue;
        }
        let rest = &line[at..];
        if !MAPPED_ROOTS.iter().any(|r| rest.starts_with(r)) {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_./-<>".contains(c)))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(['.', ',']);
        if !path.contains('<') {
            found.push(path);
        }
    }
    found
}

/// The file names in backticks on a line that are relative to its section's folder:
/// `lib.rs`, `checks/power.rs`, `peers.py`.
fn named_files(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            !w.contains([' ', '<', ':'])
                && !MAPPED_ROOTS.iter().any(|r| w.starts_with(r))
                && [".rs", ".py", ".txt"].iter().any(|e| w.ends_with(e))
        })
        .collect()
}

/// Whether a file whose path ends with `name` lies below `dir` (build output left out).
fn has_file(dir: &Path, name: &str) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            path.file_name().is_none_or(|n| n != "target") && has_file(&path, name)
        } else {
            path.ends_with(name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_paths_are_found_in_code_and_prose() {
        let line = "see `crates/ndstore-core/src/os.rs`, (conformance/src/lib.rs) and \
                    `corpus/<backend>/`, `fuzz/`. Not xcrates/a.rs nor `conformance/<x>/y`.";
        assert_eq!(
            named_paths(line),
            [
                "crates/ndstore-core/src/os.rs",
                "conformance/src/lib.rs",
                "fuzz/"
            ]
        );
        let line = "- `lib.rs`: `suite!(Backend, Fixtures)`, `checks/power.rs` and `a b.rs`";
        assert_eq!(named_files(line), ["lib.rs", "checks/power.rs"]);
    }

    #[test]
    fn this_workspace_names_no_missing_path_and_a_bogus_one_is_caught() {
        let root = crate::workspace_root();
        assert_eq!(architecture_paths_exist(&root), Vec::<String>::new());
        assert!(!has_file(
            &root.join("conformance"),
            "checks/no_such_check.rs"
        ));
        assert!(has_file(&root.join("conformance"), "checks/power.rs"));
    }
}

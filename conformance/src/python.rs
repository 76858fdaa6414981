//! The Python oracles (numpy, h5py): where the interpreter is, and running a script with it.

use std::path::PathBuf;
use std::process::Command;

/// The Python interpreter of the environment `cargo xtask setup` made, if there is one.
///
/// `NDSTORE_PYTHON` names it; otherwise the default location under the target directory is
/// tried. `Err` says what to run to get it.
pub fn interpreter() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("NDSTORE_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let python = target.join("py-venv").join("bin").join("python");
    if python.is_file() {
        Ok(python)
    } else {
        Err("numpy is not set up: run `cargo xtask setup` (or `cargo xtask test`) once".to_owned())
    }
}

/// Whether the oracles can run: true when they are set up; false (with a note naming `what`
/// was skipped) when they are not and not required; a panic when they are required
/// (`NDSTORE_REQUIRE_ORACLES`, which `cargo xtask test` sets), so a missing oracle fails tests.
pub fn available_or_skip(what: &str) -> bool {
    match interpreter() {
        Ok(_) => true,
        Err(e) if std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_some() => panic!("{e}"),
        Err(e) => {
            eprintln!("{what} not run: {e}");
            false
        }
    }
}

/// Runs a Python script and returns its standard output, or its error output when it fails.
pub fn run_script(script: &str) -> Result<String, String> {
    let python = interpreter()?;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

//! The ndstore conformance harness: one suite of checks, written once, that every backend runs
//! with a single line in its own tests, and the report users read to choose a backend.
//!
//! A backend crate plugs in with `tests/conformance.rs`:
//!
//! ```text
//! ndstore_conformance::suite!(ndstore_file::NpyBackend);
//! ```
//!
//! which expands to one `#[test]` per check, named `conformance::rt`, `conformance::fc`, ...,
//! so `cargo test -p ndstore-file --test conformance conformance::ck` reruns one check.
//!
//! The backend's declared [`Capabilities`](ndstore_core::Capabilities) decide which checks
//! apply: a check whose capability is missing is N/A and says which; a declared capability
//! that fails is FAIL, never a skip. Checks that need another process re-run the test binary
//! as a child (see [`child`]), so "another process sees the data" is tested with one.
//!
//! `cargo xtask conformance` runs every backend's suite with `NDSTORE_CONFORMANCE_OUT` set; each
//! check then writes its [`CheckResult`] there, and the `conformance-report` binary renders the
//! matrix as Markdown and JSON.
//!
//! # Example
//!
//! The report model renders without any backend:
//!
//! ```
//! use ndstore_conformance::report::{BackendReport, CheckResult, Report};
//! let report = Report {
//!     mode: "quick".into(),
//!     backends: vec![BackendReport {
//!         name: "file".into(),
//!         capabilities: None,
//!         checks: vec![CheckResult::counted("RT", 10, &[], "ten cases")],
//!     }],
//! };
//! assert!(report.to_markdown().contains("PASS 10/10"));
//! assert!(!report.has_failures());
//! ```

pub mod checks;
pub mod child;
pub mod logcapture;
pub mod powerloss;
pub mod progress;
pub mod python;
pub mod report;
pub mod sample;
pub mod scenario;
pub mod syscalls;
pub mod testing;

use std::path::PathBuf;

use ndstore_core::Backend;

pub use report::{CheckResult, Status};

/// How much work a run does: quick for CI, full for `cargo xtask conformance --full`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The counts CI can afford (200 kills, 256 property cases, ...).
    Quick,
    /// The exhaustive counts (2000 kills, 2048 property cases, ...).
    Full,
}

impl Mode {
    /// The mode `cargo xtask conformance` asked for (quick unless `--full`).
    pub fn from_env() -> Mode {
        match std::env::var("NDSTORE_CONFORMANCE_MODE").as_deref() {
            Ok("full") => Mode::Full,
            _ => Mode::Quick,
        }
    }

    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Picks the quick or the full count.
    pub fn count(self, quick: u64, full: u64) -> u64 {
        match self {
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }
}

/// What every check gets: the backend, the mode, and a scratch directory removed afterwards.
pub struct Ctx<'a> {
    /// The backend under test.
    pub backend: &'a dyn Backend,
    /// Quick or full.
    pub mode: Mode,
    /// A fresh directory for this check's files.
    pub dir: tempfile::TempDir,
}

impl Ctx<'_> {
    /// A path in the scratch directory with the backend's extension.
    pub fn path(&self, stem: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{stem}.{}", self.backend.extension()))
    }
}

/// Runs check `id` against `backend`, records the result for the report when
/// `NDSTORE_CONFORMANCE_OUT` is set, and panics (failing the test) when the check failed.
pub fn run(id: &str, backend: &dyn Backend) {
    let result = check(id, backend);
    if let Some(dir) = std::env::var_os("NDSTORE_CONFORMANCE_OUT")
        && let Err(e) = record(&PathBuf::from(dir), backend, &result)
    {
        panic!("cannot record the {id} result: {e}");
    }
    println!(
        "{} {}: {:?} {}/{} — {}",
        backend.name(),
        id,
        result.status,
        result.cases - result.failures,
        result.cases,
        result.detail
    );
    assert_ne!(
        result.status,
        Status::Fail,
        "{} {} failed: {}",
        backend.name(),
        id,
        result.detail
    );
}

/// Runs check `id` against `backend` and returns its result without failing the test: for the
/// harness's own tests, which prove that checks fail on broken backends.
pub fn check(id: &str, backend: &dyn Backend) -> CheckResult {
    // One check at a time per process: checks fork children, and a child forked while another
    // check holds a file open would inherit its descriptors (some libraries, libhdf5 among
    // them, open files without O_CLOEXEC) and with them its locks.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    run_check(id, backend).unwrap_or_else(|message| CheckResult {
        id: id.to_owned(),
        status: Status::Fail,
        cases: 1,
        failures: 1,
        detail: format!("the check could not run: {message}"),
    })
}

fn run_check(id: &str, backend: &dyn Backend) -> Result<CheckResult, String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "ndstore-{}-{}-",
            backend.name(),
            id.to_lowercase()
        ))
        .tempdir()
        .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
    let ctx = Ctx {
        backend,
        mode: Mode::from_env(),
        dir,
    };
    checks::run(id, &ctx)
}

fn record(
    dir: &std::path::Path,
    backend: &dyn Backend,
    result: &CheckResult,
) -> std::io::Result<()> {
    let dir = dir.join(backend.name());
    std::fs::create_dir_all(&dir)?;
    let caps =
        serde_json::to_string_pretty(&backend.capabilities()).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("capabilities.json"), caps)?;
    let json = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(format!("{}.json", result.id)), json)
}

/// Expands to the conformance suite for one backend: one `#[test]` per check, plus the entry
/// point child processes run. Use it once, in the backend crate's `tests/conformance.rs`.
#[macro_export]
macro_rules! suite {
    ($backend:expr) => {
        mod conformance {
            use super::*;

            #[test]
            fn rt() {
                $crate::run("RT", &$backend);
            }
            #[test]
            fn fc() {
                $crate::run("FC", &$backend);
            }
            #[test]
            fn fd() {
                $crate::run("FD", &$backend);
            }
            #[test]
            fn ck() {
                $crate::run("CK", &$backend);
            }
            #[test]
            fn cp() {
                $crate::run("CP", &$backend);
            }
            #[test]
            fn io() {
                $crate::run("IO", &$backend);
            }
            #[test]
            fn fs() {
                $crate::run("FS", &$backend);
            }
            #[test]
            fn bi() {
                $crate::run("BI", &$backend);
            }
            #[test]
            fn co() {
                $crate::run("CO", &$backend);
            }
            #[test]
            fn se() {
                $crate::run("SE", &$backend);
            }
            #[test]
            fn ix() {
                $crate::run("IX", &$backend);
            }
            /// Not a check: the entry point of the child processes the checks start. It does
            /// nothing unless the harness set the task variable.
            #[test]
            fn child_entry() {
                $crate::child::entry(&$backend);
            }
        }
    };
}

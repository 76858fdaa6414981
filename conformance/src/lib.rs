//! The ndstore conformance harness: one suite of checks, written once, that every backend runs
//! with a single line in its own tests, and the report users read to choose a backend.
//!
//! A backend crate plugs in with `tests/conformance.rs`:
//!
//! ```text
//! ndstore_conformance::suite!(ndstore_file::NpyBackend, FileFixtures);
//! ```
//!
//! which expands to one `#[test]` per check, named `conformance::rt`, `conformance::fc`, ...,
//! so `cargo test -p ndstore-file --test conformance conformance::ck` reruns one check.
//! `FileFixtures` implements [`Fixtures`], defined in the same test file: what only the format
//! knows (hostile inputs, realistic files and their regions, other loaders, the Python snippets),
//! kept out of the production [`Backend`] trait.
//!
//! The backend's declared [`Capabilities`](ndstore_core::Capabilities) decide which checks
//! apply: a check whose capability is missing is N/A and says which; a declared capability
//! that fails is FAIL. A check that cannot run on this machine (no strace, not root) is SKIP
//! with its reason, and fails the test unless skips are allowed ([`skips_allowed`]). Checks that
//! need another process re-run the test binary as a child (see [`child`]), so "another process
//! sees the data" is tested with one.
//!
//! Every check proves on each run that it can fail: [`selftest`] holds a backend broken on
//! purpose for each, on which the check must FAIL.
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
//! use ndstore_conformance::Check;
//! use ndstore_conformance::report::{BackendReport, CheckResult, Report};
//! let report = Report {
//!     mode: "quick".into(),
//!     backends: vec![BackendReport {
//!         name: "file".into(),
//!         capabilities: None,
//!         checks: vec![CheckResult::counted(Check::RoundTrip, 10, &[], "ten cases")],
//!     }],
//!     self_tests: vec![],
//! };
//! assert!(report.to_markdown().contains("PASS 10/10"));
//! assert!(!report.has_failures());
//! ```

pub mod check;
pub mod checks;
pub mod child;
pub mod fixtures;
pub mod logcapture;
pub mod powerloss;
pub mod progress;
pub mod protocol;
pub mod python;
pub mod report;
pub mod sample;
pub mod scenario;
pub mod selftest;
pub mod syscalls;
pub mod testing;
pub mod tree;

use std::path::PathBuf;

use ndstore_core::Backend;

pub use check::Check;
pub use fixtures::{Fixtures, NoFixtures, PythonInterop};
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

/// What every check gets: the backend, its fixtures, the mode, and a scratch directory removed
/// afterwards.
pub struct Ctx<'a> {
    /// The backend under test.
    pub backend: &'a dyn Backend,
    /// What only its format knows (hostile and realistic files, loaders, Python snippets).
    pub fixtures: &'a dyn Fixtures,
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

/// The variable that allows skipped checks (set by `cargo xtask conformance --allow-skip`).
pub const ALLOW_SKIP_ENV: &str = "NDSTORE_CONFORMANCE_ALLOW_SKIP";

/// Whether a skipped check may pass its test: only when `NDSTORE_CONFORMANCE_ALLOW_SKIP=1` and
/// never under `CI=true`, where everything must run.
pub fn skips_allowed() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    !ci && std::env::var(ALLOW_SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Runs check `id` against `backend` with its `fixtures`, records the result for the report
/// when `NDSTORE_CONFORMANCE_OUT` is set, and panics (failing the test) when the check failed,
/// or was skipped without [`skips_allowed`].
pub fn run(id: Check, backend: &dyn Backend, fixtures: &dyn Fixtures) {
    let result = check(id, backend, fixtures);
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
    for note in &result.notes {
        println!("  {}: {}", note.name, note.detail);
    }
    assert_ne!(
        result.status,
        Status::Fail,
        "{} {} failed: {}",
        backend.name(),
        id,
        result.detail
    );
    assert!(
        result.status != Status::Skip || skips_allowed(),
        "{} {} was skipped: {} (`cargo xtask conformance --allow-skip` accepts this outside CI)",
        backend.name(),
        id,
        result.detail
    );
}

/// Runs check `id` against `backend` and returns its result without failing the test: for the
/// harness's own tests, which prove that checks fail on broken backends.
pub fn check(id: Check, backend: &dyn Backend, fixtures: &dyn Fixtures) -> CheckResult {
    // One check at a time per process: checks fork children, and a child forked while another
    // check holds a file open would inherit its descriptors (some libraries, libhdf5 among
    // them, open files without O_CLOEXEC) and with them its locks.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    child::set_current_backend(backend.name());
    run_check(id, backend, fixtures).unwrap_or_else(|message| CheckResult {
        id,
        status: Status::Fail,
        cases: 1,
        failures: 1,
        detail: format!("the check could not run: {message}"),
        notes: Vec::new(),
    })
}

fn run_check(
    id: Check,
    backend: &dyn Backend,
    fixtures: &dyn Fixtures,
) -> Result<CheckResult, String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "ndstore-{}-{}-",
            backend.name(),
            id.id().to_lowercase()
        ))
        .tempdir()
        .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
    let ctx = Ctx {
        backend,
        fixtures,
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
    std::fs::write(dir.join(format!("{}.json", result.id.id())), json)
}

/// Expands to the conformance suite for one backend and its [`Fixtures`]: one `#[test]` per
/// check, plus the entry point child processes run. Use it once, in the backend crate's
/// `tests/conformance.rs`.
#[macro_export]
macro_rules! suite {
    ($backend:expr, $fixtures:expr) => {
        mod conformance {
            use super::*;

            #[test]
            fn rt() {
                $crate::run($crate::Check::RoundTrip, &$backend, &$fixtures);
            }
            #[test]
            fn fc() {
                $crate::run($crate::Check::FlushOnClose, &$backend, &$fixtures);
            }
            #[test]
            fn fd() {
                $crate::run($crate::Check::FlushOnDrop, &$backend, &$fixtures);
            }
            #[test]
            fn ck() {
                $crate::run($crate::Check::Kill, &$backend, &$fixtures);
            }
            #[test]
            fn cp() {
                $crate::run($crate::Check::PowerLoss, &$backend, &$fixtures);
            }
            #[test]
            fn io() {
                $crate::run($crate::Check::InjectedIo, &$backend, &$fixtures);
            }
            #[test]
            fn fs() {
                $crate::run($crate::Check::FsyncFailure, &$backend, &$fixtures);
            }
            #[test]
            fn bi() {
                $crate::run($crate::Check::BadInput, &$backend, &$fixtures);
            }
            #[test]
            fn co() {
                $crate::run($crate::Check::Concurrency, &$backend, &$fixtures);
            }
            #[test]
            fn se() {
                $crate::run($crate::Check::Security, &$backend, &$fixtures);
            }
            #[test]
            fn ix() {
                $crate::run($crate::Check::Interop, &$backend, &$fixtures);
            }
            /// Not a check: the entry point of the child processes the checks start. It does
            /// nothing unless the harness set the task variable.
            #[test]
            fn child_entry() {
                $crate::child::entry(&$backend, &$fixtures);
            }
        }
    };
}

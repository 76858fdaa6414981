//! The report a user reads to choose a backend: per-check results, the backend's declared
//! capabilities, and their rendering as Markdown and JSON.

use serde::{Deserialize, Serialize};

use ndstore_core::Capabilities;

/// The outcome of one check for one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Every case held.
    #[serde(rename = "pass")]
    Pass,
    /// At least one case failed; `detail` says which.
    #[serde(rename = "fail")]
    Fail,
    /// The backend does not declare the capability the check needs; `detail` names it.
    #[serde(rename = "n/a")]
    NotApplicable,
}

/// One check's result for one backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's ID from the catalogue (RT, FC, ...).
    pub id: String,
    /// Pass, fail, or not applicable.
    pub status: Status,
    /// How many cases ran.
    pub cases: u64,
    /// How many of them failed.
    pub failures: u64,
    /// What was checked, or what failed first, or the missing capability.
    pub detail: String,
}

impl CheckResult {
    /// A result counted from cases; failing when any case failed.
    pub fn counted(id: &str, cases: u64, failures: &[String], what: &str) -> CheckResult {
        let failed = failures.len() as u64;
        let detail = if failures.is_empty() {
            what.to_owned()
        } else {
            let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
            format!("{failed} of {cases} failed: {}", shown.join("; "))
        };
        CheckResult {
            id: id.to_owned(),
            status: if failed == 0 {
                Status::Pass
            } else {
                Status::Fail
            },
            cases,
            failures: failed,
            detail,
        }
    }

    /// Not applicable because the backend lacks `capability`.
    pub fn not_applicable(id: &str, capability: &str) -> CheckResult {
        CheckResult {
            id: id.to_owned(),
            status: Status::NotApplicable,
            cases: 0,
            failures: 0,
            detail: format!("not declared: {capability}"),
        }
    }
}

/// One backend's row of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    /// The backend's name.
    pub name: String,
    /// What it declared.
    pub capabilities: Option<Capabilities>,
    /// One result per check, in catalogue order.
    pub checks: Vec<CheckResult>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// One entry per backend.
    pub backends: Vec<BackendReport>,
}

/// The catalogue, in the order the matrix shows it.
pub const CATALOGUE: [(&str, &str); 11] = [
    (
        "RT",
        "round trip of shape, dtype, order and bit-identical values",
    ),
    (
        "FC",
        "flush-on-close: another process reads exactly the data",
    ),
    (
        "FD",
        "flush-on-drop, rollback of uncommitted writers, drop during panic",
    ),
    (
        "CK",
        "kill -9 during saves: always a complete acknowledged version",
    ),
    ("CP", "power loss: old or new, new once sync returned"),
    (
        "IO",
        "injected I/O errors: surfaced, old file intact, nothing leaked",
    ),
    ("FS", "fsync failure poisons the handle"),
    (
        "BI",
        "bad input: clear error with a place; no panic, abort, OOM or hang",
    ),
    ("CO", "concurrency: writers, readers during replace, locks"),
    (
        "SE",
        "permissions kept, exclusive temporaries, symlinks, read-only dirs",
    ),
    ("IX", "interoperability with numpy / h5py, both directions"),
];

impl Report {
    /// True when any check failed.
    pub fn has_failures(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.checks.iter().any(|c| c.status == Status::Fail))
    }

    /// The matrix as Markdown: one row per backend, one column per check, then the details.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("# ndstore conformance ({} mode)\n\n", self.mode));
        out.push_str("| backend |");
        for (id, _) in CATALOGUE {
            out.push_str(&format!(" {id} |"));
        }
        out.push_str("\n|---|");
        for _ in CATALOGUE {
            out.push_str("---|");
        }
        out.push('\n');
        for backend in &self.backends {
            out.push_str(&format!("| {} |", backend.name));
            for (id, _) in CATALOGUE {
                out.push_str(&format!(
                    " {} |",
                    cell(backend.checks.iter().find(|c| c.id == id))
                ));
            }
            out.push('\n');
        }
        out.push_str("\nPASS n/m: n of m cases held. N/A: the backend does not declare the capability the check needs. ");
        out.push_str("`-`: the check has not run for this backend.\n\n## Checks\n\n");
        for (id, what) in CATALOGUE {
            out.push_str(&format!("- **{id}**: {what}\n"));
        }
        out.push_str("\n## Details\n");
        for backend in &self.backends {
            out.push_str(&format!("\n### {}\n\n", backend.name));
            if backend.checks.is_empty() {
                out.push_str(
                    "- no results: the backend's crate is not built yet, or was not selected\n",
                );
            }
            for check in &backend.checks {
                out.push_str(&format!(
                    "- {} {}: {}\n",
                    check.id,
                    status_word(check.status),
                    check.detail
                ));
            }
        }
        out
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::NotApplicable => "N/A",
    }
}

fn cell(check: Option<&CheckResult>) -> String {
    match check {
        None => "-".to_owned(),
        Some(c) if c.status == Status::NotApplicable => "N/A".to_owned(),
        Some(c) => format!(
            "{} {}/{}",
            status_word(c.status),
            c.cases - c.failures,
            c.cases
        ),
    }
}

//! The report a user reads to choose a backend: per-check results, the backend's declared
//! capabilities, the harness's self-tests, and their rendering as Markdown and JSON.
//!
//! The report never shows more green than the truth: a check that could not run here is SKIP
//! with its reason (never N/A, which means the backend does not declare the capability), a
//! check that ran no case is FAIL, and every check must fail on a deliberately broken backend
//! (its self-test) on every run.

use serde::{Deserialize, Serialize};

use ndstore_core::Capabilities;

pub use crate::check::Check;

/// The outcome of one check for one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Every case held.
    #[serde(rename = "pass")]
    Pass,
    /// At least one case failed, or no case ran; `detail` says which.
    #[serde(rename = "fail")]
    Fail,
    /// The backend does not declare the capability the check needs; `detail` names it.
    #[serde(rename = "n/a")]
    NotApplicable,
    /// The check (or a part of it) could not run on this machine: a tool is missing, the
    /// process is not root, ...; `detail` gives the reason. Not a pass: `cargo xtask
    /// conformance` fails on it unless told `--allow-skip`, and always in CI.
    #[serde(rename = "skip")]
    Skip,
}

/// A second result a check reports beside its own, counted apart: the in-process (trusted)
/// HDF5 path that BI runs through the same corpus, say. A note never turns a FAIL into a
/// PASS, and the matrix shows its count next to the check's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// What was run, in a few words ("in-process (trusted) path").
    pub name: String,
    /// How many cases ran.
    pub cases: u64,
    /// How many of them failed (for the trusted path: crashed the process or erred badly).
    pub failures: u64,
    /// The sentence the report prints.
    pub detail: String,
}

/// One check's result for one backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check (serialised as its catalogue ID: RT, FC, ...).
    pub id: Check,
    /// Pass, fail, not applicable, or skipped.
    pub status: Status,
    /// How many cases ran.
    pub cases: u64,
    /// How many of them failed.
    pub failures: u64,
    /// What was checked, or what failed first, or the missing capability, or why it was skipped.
    pub detail: String,
    /// Results counted apart from the check's own (see [`Note`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

impl CheckResult {
    /// A result counted from cases: failing when any case failed, and when no case ran (a check
    /// that checked nothing has proven nothing).
    pub fn counted(id: Check, cases: u64, failures: &[String], what: &str) -> CheckResult {
        let failed = failures.len() as u64;
        let (status, failed, detail) = if cases == 0 {
            (
                Status::Fail,
                0,
                format!("no case ran, so nothing was checked ({what})"),
            )
        } else if failures.is_empty() {
            (Status::Pass, 0, what.to_owned())
        } else {
            let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
            (
                Status::Fail,
                failed.min(cases),
                format!("{failed} of {cases} failed: {}", shown.join("; ")),
            )
        };
        CheckResult {
            id,
            status,
            cases,
            failures: failed,
            detail,
            notes: Vec::new(),
        }
    }

    /// Not applicable because the backend lacks `capability`.
    pub fn not_applicable(id: Check, capability: &str) -> CheckResult {
        CheckResult {
            id,
            status: Status::NotApplicable,
            cases: 0,
            failures: 0,
            detail: format!("not declared: {capability}"),
            notes: Vec::new(),
        }
    }

    /// Skipped: the check could not run here, for `reason` (a missing tool, a missing
    /// privilege). Nothing was checked.
    pub fn skipped(id: Check, reason: &str) -> CheckResult {
        CheckResult {
            id,
            status: Status::Skip,
            cases: 0,
            failures: 0,
            detail: format!("could not run here: {reason}"),
            notes: Vec::new(),
        }
    }

    /// The same result with a part that could not run here, for `reason`: a PASS becomes a
    /// SKIP (what ran held, but not everything ran); a FAIL stays a FAIL.
    #[must_use]
    pub fn with_skipped_part(mut self, reason: &str) -> CheckResult {
        if self.status == Status::Pass {
            self.status = Status::Skip;
        }
        self.detail = format!("{}; could not run here: {reason}", self.detail);
        self
    }

    /// The same result with `note` beside it.
    #[must_use]
    pub fn with_note(mut self, note: Note) -> CheckResult {
        self.notes.push(note);
        self
    }
}

/// One self-test: a deliberately broken backend on which a check must FAIL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTest {
    /// The broken variant's name (`broken-...`).
    pub variant: String,
    /// What is broken in it, in a sentence.
    pub defect: String,
    /// The check that must fail on it.
    pub check: Check,
    /// What the check said: FAIL is what is required.
    pub status: Status,
    /// True when the check failed, as required.
    pub caught: bool,
    /// The check's detail: what it found wrong (or why it did not).
    pub detail: String,
}

impl SelfTest {
    /// The self-test of `check` on `variant` from the check's `result`.
    pub fn from_result(variant: &str, defect: &str, result: &CheckResult) -> SelfTest {
        SelfTest {
            variant: variant.to_owned(),
            defect: defect.to_owned(),
            check: result.id,
            status: result.status,
            caught: result.status == Status::Fail,
            detail: result.detail.clone(),
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
    /// The harness's self-tests: each check against a backend broken for it.
    #[serde(default)]
    pub self_tests: Vec<SelfTest>,
}

/// The matrix's legend, as the report prints it under the table.
pub const LEGEND: &str = "PASS n/m: n of m cases held. FAIL n/m: only n of m held, or no case ran \
(the details say which). N/A: the backend does not declare the capability the check needs \
(the details name it). SKIP: the check, or a part of it, could not run here (a missing tool, \
not root); the details give the reason, and a SKIP fails `cargo xtask conformance` unless \
`--allow-skip` is given, which CI never is. A note after `;` counts a second path apart from \
the check's own (the in-process HDF5 reader). CK judges a backend that declares the per-chunk \
crash guarantee (object storage, which has no rename) chunk by chunk: a replaced array must hold \
each chunk of one acknowledged version or the one in flight, and a new array must be absent or \
whole; every other backend is judged whole-array. `-`: the check has not run for this backend.";

impl Report {
    /// True when any check failed, or any self-test's check did not fail on its broken backend
    /// (a skipped self-test counts as a skip, not a failure).
    pub fn has_failures(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.checks.iter().any(|c| c.status == Status::Fail))
            || self
                .self_tests
                .iter()
                .any(|t| !t.caught && t.status != Status::Skip)
    }

    /// What was skipped, one line per check or self-test, for the message that refuses a run
    /// with skips.
    pub fn skips(&self) -> Vec<String> {
        let checks = self.backends.iter().flat_map(|b| {
            b.checks
                .iter()
                .filter(|c| c.status == Status::Skip)
                .map(move |c| format!("{} {}: {}", b.name, c.id, c.detail))
        });
        let self_tests = self
            .self_tests
            .iter()
            .filter(|t| t.status == Status::Skip)
            .map(|t| format!("self-test {} on {}: {}", t.check, t.variant, t.detail));
        checks.chain(self_tests).collect()
    }

    /// The matrix as Markdown: one row per backend, one column per check, the legend, the
    /// self-tests, then the details.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("# ndstore conformance ({} mode)\n\n", self.mode));
        out.push_str("| backend |");
        for check in Check::ALL {
            out.push_str(&format!(" {check} |"));
        }
        out.push_str("\n|---|");
        for _ in Check::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        for backend in &self.backends {
            out.push_str(&format!("| {} |", backend.name));
            for check in Check::ALL {
                out.push_str(&format!(
                    " {} |",
                    cell(backend.checks.iter().find(|c| c.id == check))
                ));
            }
            out.push('\n');
        }
        out.push('\n');
        out.push_str(LEGEND);
        out.push_str("\n\n## Checks\n\n");
        for check in Check::ALL {
            out.push_str(&format!("- **{check}**: {}\n", check.description()));
        }
        out.push_str(&self.self_tests_markdown());
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
                for note in &check.notes {
                    out.push_str(&format!("  - {}: {}\n", note.name, note.detail));
                }
            }
        }
        out
    }

    fn self_tests_markdown(&self) -> String {
        let mut out = String::from("\n## Self-tests\n\n");
        if self.self_tests.is_empty() {
            out.push_str("- no self-test results: they were not run\n");
            return out;
        }
        out.push_str(
            "Each check must FAIL on a backend broken on purpose for it; one that passes cannot \
             see what it exists to catch, and fails the run.\n\n\
             | check | broken variant | defect | result |\n|---|---|---|---|\n",
        );
        for test in &self.self_tests {
            let result = match (test.caught, test.status) {
                (true, _) => "FAIL, as required".to_owned(),
                (false, Status::Skip) => format!("SKIP: {}", test.detail),
                (false, status) => format!("{}: NOT CAUGHT", status_word(status)),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                test.check,
                test.variant,
                test.defect,
                result.replace('|', "/")
            ));
        }
        out
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::NotApplicable => "N/A",
        Status::Skip => "SKIP",
    }
}

fn cell(check: Option<&CheckResult>) -> String {
    let Some(c) = check else {
        return "-".to_owned();
    };
    let mut text = match c.status {
        Status::NotApplicable => "N/A".to_owned(),
        Status::Skip if c.cases == 0 => "SKIP".to_owned(),
        status => format!(
            "{} {}/{}",
            status_word(status),
            c.cases.saturating_sub(c.failures),
            c.cases
        ),
    };
    for note in &c.notes {
        let word = if note.failures == 0 { "PASS" } else { "FAIL" };
        text.push_str(&format!(
            "; {} {word} {}/{}",
            note.name,
            note.cases.saturating_sub(note.failures),
            note.cases
        ));
    }
    text
}

//! The report binary decides whether a conformance run passes: a FAIL, a self-test whose check
//! did not fail, or a missing self-test fails it; a SKIP fails it unless `--allow-skip`, which
//! `CI=true` refuses.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndstore_conformance::Check;
use std::path::Path;
use std::process::Command;

use ndstore_conformance::report::{CheckResult, SelfTest};
use ndstore_conformance::selftest::VARIANTS;

/// Writes one backend's results and every self-test (caught unless `uncaught` names it).
fn results(dir: &Path, checks: &[CheckResult], uncaught: Option<&str>) {
    let file = dir.join("file");
    std::fs::create_dir_all(&file).unwrap();
    for check in checks {
        let json = serde_json::to_string(check).unwrap();
        std::fs::write(file.join(format!("{}.json", check.id)), json).unwrap();
    }
    let tests = dir.join("self-test");
    std::fs::create_dir_all(&tests).unwrap();
    for variant in &VARIANTS {
        let check = variant.check.unwrap();
        let result = if uncaught == Some(variant.name) {
            CheckResult::counted(check, 10, &[], "held")
        } else {
            CheckResult::counted(check, 10, &["caught".to_owned()], "held")
        };
        let test = SelfTest::from_result(variant.name, variant.defect, &result);
        std::fs::write(
            tests.join(format!("{}.json", variant.name)),
            serde_json::to_string(&test).unwrap(),
        )
        .unwrap();
    }
}

/// Runs the report binary on `dir`; true when it passed.
fn passes(dir: &Path, allow_skip: bool, ci: bool) -> bool {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conformance-report"));
    cmd.arg(dir).arg(dir).arg("quick");
    if allow_skip {
        cmd.arg("--allow-skip");
    }
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    let output = cmd.output().unwrap();
    assert!(dir.join("report.json").is_file() || !output.status.success());
    output.status.success()
}

#[test]
fn a_clean_run_passes() {
    let dir = tempfile::tempdir().unwrap();
    results(
        dir.path(),
        &[CheckResult::counted(Check::RoundTrip, 5, &[], "ok")],
        None,
    );
    assert!(passes(dir.path(), false, false));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["self_tests"].as_array().unwrap().len(),
        VARIANTS.len()
    );
    assert_eq!(report["self_tests"][0]["caught"], true);
}

#[test]
fn a_skip_fails_the_run_unless_allowed_and_never_in_ci() {
    let dir = tempfile::tempdir().unwrap();
    let checks = [
        CheckResult::counted(Check::RoundTrip, 5, &[], "ok"),
        CheckResult::skipped(Check::FsyncFailure, "not root"),
    ];
    results(dir.path(), &checks, None);
    assert!(!passes(dir.path(), false, false));
    assert!(passes(dir.path(), true, false));
    assert!(!passes(dir.path(), true, true));
}

#[test]
fn a_self_test_that_does_not_fail_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let checks = [CheckResult::counted(Check::RoundTrip, 5, &[], "ok")];
    results(dir.path(), &checks, Some("broken-opens-twice"));
    assert!(!passes(dir.path(), true, false));
}

#[test]
fn a_missing_self_test_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    results(
        dir.path(),
        &[CheckResult::counted(Check::RoundTrip, 5, &[], "ok")],
        None,
    );
    std::fs::remove_file(
        dir.path()
            .join("self-test")
            .join("broken-drops-byte-order.json"),
    )
    .unwrap();
    assert!(!passes(dir.path(), true, false));
}

#[test]
fn a_failed_check_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let checks = [CheckResult::counted(
        Check::RoundTrip,
        5,
        &["torn".to_owned()],
        "ok",
    )];
    results(dir.path(), &checks, None);
    assert!(!passes(dir.path(), true, false));
}

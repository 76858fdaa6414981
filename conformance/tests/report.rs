//! The report's Markdown rendering, snapshotted, and its JSON shape as the issue specifies it.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndstore_conformance::Check;
use ndstore_conformance::report::{BackendReport, CheckResult, Note, Report, SelfTest, Status};
use ndstore_core::{Capabilities, CrashGuarantee, DTypeKind};

fn sample_report() -> Report {
    let caps = Capabilities {
        dtypes: vec![DTypeKind::F64, DTypeKind::Bool],
        both_byte_orders: true,
        fortran_order: true,
        max_ndim: 32,
        bit_exact: true,
        partial_io: false,
        streaming_append: true,
        memory_map: false,
        compression: false,
        crash: CrashGuarantee::AtomicReplace,
        in_place: None,
        interop: true,
    };
    Report {
        mode: "quick".to_owned(),
        backends: vec![
            BackendReport {
                name: "file".to_owned(),
                capabilities: Some(caps),
                checks: vec![
                    CheckResult::counted(Check::RoundTrip, 508, &[], "fixed and property cases"),
                    CheckResult::counted(Check::Kill, 200, &["kill 7: torn".to_owned()], "kills"),
                    CheckResult::not_applicable(Check::Concurrency, "in_place_update"),
                    CheckResult::skipped(
                        Check::FsyncFailure,
                        "not root (strace attaches to a child)",
                    ),
                    CheckResult::counted(Check::InjectedIo, 30, &[], "injected failures")
                        .with_skipped_part("the full-disk case needs unshare"),
                    CheckResult::counted(Check::BadInput, 900, &[], "900 files").with_note(Note {
                        name: "trusted".to_owned(),
                        cases: 450,
                        failures: 5,
                        detail: "in-process (trusted) path: 5 of 450 crashed the process"
                            .to_owned(),
                    }),
                    CheckResult::counted(Check::Security, 0, &[], "nothing ran"),
                ],
            },
            BackendReport {
                name: "mmap".to_owned(),
                capabilities: None,
                checks: vec![],
            },
        ],
        self_tests: vec![
            SelfTest::from_result(
                "broken-overwrites-in-place",
                "a save truncates the target and rewrites it",
                &CheckResult::counted(Check::Kill, 200, &["kill 3: torn".to_owned()], "kills"),
            ),
            SelfTest::from_result(
                "broken-opens-twice",
                "a load opens the path twice",
                &CheckResult::counted(Check::Concurrency, 300, &[], "reads"),
            ),
        ],
    }
}

#[test]
fn markdown_matrix() {
    insta::assert_snapshot!(sample_report().to_markdown());
}

#[test]
fn json_has_the_documented_shape() {
    let report = sample_report();
    assert!(report.has_failures());
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["mode"], "quick");
    let file = &json["backends"][0];
    assert_eq!(file["name"], "file");
    assert_eq!(file["capabilities"]["atomic_replace"], true);
    let ck = &file["checks"][1];
    assert_eq!(ck["id"], "CK");
    assert_eq!(ck["status"], "fail");
    assert_eq!(ck["cases"], 200);
    assert_eq!(ck["failures"], 1);
    assert_eq!(file["checks"][2]["status"], "n/a");
    assert!(
        file["checks"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("in_place_update")
    );
    assert_eq!(report.backends[0].checks[0].status, Status::Pass);
    // SKIP is its own status with its reason, never N/A.
    assert_eq!(file["checks"][3]["status"], "skip");
    assert!(
        file["checks"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("not root")
    );
    // A part that could not run turns a pass into a skip.
    assert_eq!(file["checks"][4]["status"], "skip");
    assert_eq!(file["checks"][4]["cases"], 30);
    // The trusted path is a note beside BI, with its own counts.
    assert_eq!(file["checks"][5]["status"], "pass");
    assert_eq!(file["checks"][5]["notes"][0]["name"], "trusted");
    assert_eq!(file["checks"][5]["notes"][0]["failures"], 5);
    // No case ran: FAIL, not PASS 0/0.
    assert_eq!(file["checks"][6]["status"], "fail");
    // The self-tests: which variant, which check, and whether it failed as required.
    let tests = &json["self_tests"];
    assert_eq!(tests[0]["variant"], "broken-overwrites-in-place");
    assert_eq!(tests[0]["check"], "CK");
    assert_eq!(tests[0]["status"], "fail");
    assert_eq!(tests[0]["caught"], true);
    assert_eq!(tests[1]["caught"], false);
    assert_eq!(report.skips().len(), 2, "{:?}", report.skips());
}

#[test]
fn a_self_test_that_does_not_fail_fails_the_report() {
    let mut report = sample_report();
    report.backends.truncate(1);
    report.backends[0]
        .checks
        .retain(|c| c.status == Status::Pass || c.status == Status::Skip);
    assert!(
        report.has_failures(),
        "the uncaught CO self-test must fail it"
    );
    report.self_tests.retain(|t| t.caught);
    assert!(!report.has_failures());
}

//! The report's Markdown rendering, snapshotted, and its JSON shape as the issue specifies it.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndstore_conformance::report::{BackendReport, CheckResult, Report, Status};
use ndstore_core::{Capabilities, CrashGuarantee, DTypeKind};

fn sample_report() -> Report {
    let caps = Capabilities {
        dtypes: vec![DTypeKind::F64, DTypeKind::Bool],
        both_byte_orders: true,
        fortran_order: true,
        max_ndim: 32,
        bit_exact: true,
        atomic_replace: true,
        in_place_update: false,
        partial_io: false,
        streaming_append: true,
        memory_map: false,
        compression: false,
        crash: CrashGuarantee::AtomicReplace,
        in_place_crash: CrashGuarantee::None,
        interop: true,
    };
    Report {
        mode: "quick".to_owned(),
        backends: vec![
            BackendReport {
                name: "file".to_owned(),
                capabilities: Some(caps),
                checks: vec![
                    CheckResult::counted("RT", 508, &[], "fixed and property cases"),
                    CheckResult::counted("CK", 200, &["kill 7: torn".to_owned()], "kills"),
                    CheckResult::not_applicable("CO", "in_place_update"),
                ],
            },
            BackendReport {
                name: "mmap".to_owned(),
                capabilities: None,
                checks: vec![],
            },
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
}

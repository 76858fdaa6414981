//! zarr-python against ndstore-zarr through S3 (the local moto server), both ways (the cases
//! are in tests/s3_interop). Without the server (or Python) the test SKIPs with the reason,
//! except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codec_cases;
mod common;
mod s3_interop;

use ndstore_conformance::python::s3_server_or_skip;

#[test]
fn zarr_python_and_ndstore_read_each_other_through_s3() {
    let Some(server) = s3_server_or_skip("the zarr-python interop through S3") else {
        return;
    };
    let (cases, failures) = s3_interop::both_ways(&server, "ix").unwrap();
    assert!(cases > 0);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

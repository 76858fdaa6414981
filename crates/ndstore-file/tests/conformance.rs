//! The `file` backend's conformance suite: the shared checks, driven through its capabilities.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

ndstore_conformance::suite!(ndstore_file::NpyBackend);

//! The harness proves it can fail: each check of the catalogue must FAIL on a backend broken on
//! purpose for it (see `ndstore_conformance::selftest`), and the same backend without its flaw
//! (the control) must pass the checks, so every FAIL comes from the flaw.
//!
//! `cargo xtask conformance` runs this file with `NDSTORE_CONFORMANCE_OUT` set, so each
//! self-test lands in the report; here it is also the unit-test form.

use ndstore_conformance::Status;
use ndstore_conformance::selftest::{self, VARIANTS};

mod conformance {
    /// The entry point of the harness's child processes for the broken backends: the variant
    /// is named in the child's environment.
    #[test]
    fn child_entry() {
        ndstore_conformance::selftest::child_entry();
    }
}

#[test]
fn every_check_of_the_catalogue_has_a_broken_variant() {
    for (id, _) in ndstore_conformance::report::CATALOGUE {
        assert!(
            VARIANTS.iter().any(|v| v.check == id),
            "no broken variant proves that {id} can fail"
        );
    }
}

#[test]
fn rt_catches_a_dropped_byte_order() {
    selftest::must_fail("broken-drops-byte-order");
}

#[test]
fn fc_catches_a_commit_that_loses_the_last_rows() {
    selftest::must_fail("broken-commit-loses-tail");
}

#[test]
fn fd_catches_a_drop_that_publishes_partial_data() {
    selftest::must_fail("broken-drop-publishes");
}

#[test]
fn ck_catches_a_save_that_overwrites_in_place() {
    selftest::must_fail("broken-overwrites-in-place");
}

#[test]
fn cp_catches_a_rename_without_fsync() {
    selftest::must_fail("broken-rename-without-fsync");
}

#[test]
fn io_catches_ignored_write_errors() {
    selftest::must_fail("broken-ignores-write-errors");
}

#[test]
fn fs_catches_a_sync_that_swallows_eio() {
    selftest::must_fail("broken-sync-swallows-eio");
}

#[test]
fn bi_catches_a_reader_that_allocates_the_declared_size() {
    selftest::must_fail("broken-allocates-declared-size");
}

#[test]
fn bi_catches_a_reader_that_panics_on_short_files() {
    selftest::must_fail("broken-panics-on-short-files");
}

#[test]
fn co_catches_a_loader_that_opens_the_path_twice() {
    selftest::must_fail("broken-opens-twice");
}

#[test]
fn se_catches_a_temporary_that_is_not_private() {
    selftest::must_fail("broken-temporary-not-private");
}

#[test]
fn ix_catches_files_that_only_round_trip_with_themselves() {
    selftest::must_fail("broken-swaps-stored-bytes");
}

/// The control: the flaws' common backend, without a flaw, passes the checks the cheaper
/// variants target, so their failures come from their flaws.
#[test]
fn control_passes_rt_fc_fd_bi_se_ix() {
    for id in ["RT", "FC", "FD", "BI", "SE", "IX"] {
        let result = selftest::control(id);
        assert_eq!(result.status, Status::Pass, "{id}: {}", result.detail);
    }
}

/// The control passes the checks that kill, race and trace processes too.
#[test]
fn control_passes_ck_cp_io_fs_co() {
    for id in ["CK", "CP", "IO", "FS", "CO"] {
        let result = selftest::control(id);
        if result.status == Status::Skip && ndstore_conformance::skips_allowed() {
            continue;
        }
        assert_eq!(result.status, Status::Pass, "{id}: {}", result.detail);
    }
}

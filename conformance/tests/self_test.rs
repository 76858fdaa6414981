//! The harness proves it can fail: each check of the catalogue must FAIL on a backend broken on
//! purpose for it (see `ndstore_conformance::selftest`), and the same backend without its flaw
//! (the control) must pass the checks, so every FAIL comes from the flaw.
//!
//! `cargo xtask conformance` runs this file with `NDSTORE_CONFORMANCE_OUT` set, so each
//! self-test lands in the report; here it is also the unit-test form.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndstore_conformance::selftest::{self, VARIANTS};
use ndstore_conformance::{Check, Status};

mod conformance {
    /// The entry point of the harness's child processes for the broken backends: the variant
    /// is named in the child's environment.
    #[test]
    fn child_entry() {
        ndstore_conformance::selftest::child_entry();
    }
}

/// Like `selftest::must_fail`, and the failures shown name the cases the flaw exists for
/// (`case` is part of their name), so a check whose older cases happen to fail too does not
/// hide that its newer ones cannot.
fn must_fail_in(name: &str, case: &str) {
    let test = selftest::run(name);
    if test.status == Status::Skip && ndstore_conformance::skips_allowed() {
        return;
    }
    assert!(
        test.caught,
        "{} did not fail on {} ({}): {:?} {}",
        test.check, test.variant, test.defect, test.status, test.detail
    );
    assert!(
        test.detail.contains(case),
        "{} failed on {}, but not in the cases named '{case}': {}",
        test.check,
        test.variant,
        test.detail
    );
}

#[test]
fn every_check_of_the_catalogue_has_a_broken_variant() {
    for id in Check::ALL {
        assert!(
            VARIANTS.iter().any(|v| v.check == Some(id)),
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
fn fd_catches_a_panic_drop_that_keeps_rows_appended_after_the_flush() {
    must_fail_in(
        "broken-panic-keeps-appended",
        "in-place writer dropped during a panic, 64 MiB",
    );
}

#[test]
fn ck_catches_a_save_that_overwrites_in_place() {
    selftest::must_fail("broken-overwrites-in-place");
}

#[test]
fn ck_catches_a_per_chunk_store_that_publishes_metadata_before_chunks() {
    must_fail_in("broken-chunked-metadata-first", "new target");
}

#[test]
fn ck_judges_a_store_that_declares_atomic_replace_whole_array() {
    must_fail_in("broken-chunked-claims-atomic", "not any complete version");
}

/// The chunked store done right passes CK's per-chunk judgement, so the two variants above
/// fail for their flaws, not for being chunked.
#[test]
fn the_chunked_control_passes_ck_per_chunk() {
    let result = selftest::chunked_control(Check::Kill);
    assert_eq!(result.status, Status::Pass, "{}", result.detail);
    assert!(result.detail.contains("new target"), "{}", result.detail);
    println!("{}", result.detail);
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
fn io_catches_a_writer_that_goes_on_after_a_failed_append() {
    must_fail_in("broken-append-not-poisoned", "of the append fails with");
}

#[test]
fn fs_catches_a_sync_that_swallows_eio() {
    selftest::must_fail("broken-sync-swallows-eio");
}

#[test]
fn fs_catches_a_flushed_commit_that_forgets_a_failed_sync() {
    must_fail_in("broken-flushed-commit-forgets-poison", "(flushed, ");
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
fn se_catches_a_save_that_replaces_protected_files() {
    must_fail_in(
        "broken-replaces-protected-files",
        "refused with PermissionDenied",
    );
}

#[test]
fn ix_catches_files_that_only_round_trip_with_themselves() {
    selftest::must_fail("broken-swaps-stored-bytes");
}

/// The control: the flaws' common backend, without a flaw, passes the checks the cheaper
/// variants target, so their failures come from their flaws.
#[test]
fn control_passes_rt_fc_fd_bi_se_ix() {
    for id in [
        Check::RoundTrip,
        Check::FlushOnClose,
        Check::FlushOnDrop,
        Check::BadInput,
        Check::Security,
        Check::Interop,
    ] {
        let result = selftest::control(id);
        assert_eq!(result.status, Status::Pass, "{id}: {}", result.detail);
    }
}

/// The control passes the checks that kill, race and trace processes too.
#[test]
fn control_passes_ck_cp_io_fs_co() {
    for id in [
        Check::Kill,
        Check::PowerLoss,
        Check::InjectedIo,
        Check::FsyncFailure,
        Check::Concurrency,
    ] {
        let result = selftest::control(id);
        if result.status == Status::Skip && ndstore_conformance::skips_allowed() {
            continue;
        }
        assert_eq!(result.status, Status::Pass, "{id}: {}", result.detail);
    }
}

/// Python snippets that fail on purpose, for counting IX per direction.
struct FailingPython {
    load: &'static str,
    save: &'static str,
}

impl ndstore_conformance::Fixtures for FailingPython {
    fn python_interop(&self) -> Option<ndstore_conformance::PythonInterop> {
        Some(ndstore_conformance::PythonInterop {
            modules: &[],
            load: self.load,
            save: self.save,
        })
    }
}

/// IX counts a direction as held only when it ran and agreed: when numpy cannot write its own
/// files, exactly half the directions hold; when it reads nothing, none do.
#[test]
fn ix_counts_each_direction_that_ran_and_agreed() {
    if !ndstore_conformance::python::available_or_skip("IX counting") {
        return;
    }
    let reads_only = FailingPython {
        load: "arr = np.load(path)",
        save: "raise ValueError('this numpy writes nothing')",
    };
    let result = ndstore_conformance::check(Check::Interop, selftest::reference(), &reads_only);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
    assert_eq!(result.failures * 2, result.cases, "{}", result.detail);
    let nothing = FailingPython {
        load: "raise ValueError('this numpy reads nothing')",
        save: "np.save(path, arr)",
    };
    let result = ndstore_conformance::check(Check::Interop, selftest::reference(), &nothing);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
    assert_eq!(result.failures, result.cases, "{}", result.detail);
}

/// A BI child that cannot set its address-space limit refuses to run (it would otherwise load
/// hostile files with the machine's whole memory at their disposal): strace makes the
/// `prlimit64` call fail.
#[test]
fn the_bi_child_refuses_to_run_without_its_memory_limit() {
    use ndstore_conformance::child::{self, Task};
    use ndstore_conformance::protocol::{Reply, replies};
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("cases.list");
    std::fs::write(&list, "").unwrap();
    child::set_current_backend(selftest::reference().name);
    let inner = child::command(&Task::BadInputs {
        list,
        scratch: dir.path().to_path_buf(),
        memory_limit: 2 << 30,
    })
    .unwrap();
    let mut cmd = std::process::Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=prlimit64,setrlimit",
        "-e",
        "inject=prlimit64,setrlimit:error=EPERM",
        "--",
    ])
    .arg(inner.get_program())
    .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let output = cmd
        .output()
        .expect("strace runs (cargo xtask setup installs it)");
    let lines = replies(&output.stdout).unwrap();
    assert!(
        lines.iter().any(
            |l| matches!(l, Reply::Error(e) if e.starts_with("cannot limit the address space"))
        ),
        "{lines:?}"
    );
    assert!(!lines.contains(&Reply::Done), "{lines:?}");
    assert_eq!(output.status.code(), Some(3), "{lines:?}");
}

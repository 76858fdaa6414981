//! Fuzzes HDF5 reads through the entry points a user calls on a file they did not write:
//! `ndstore_hdf5::list`, and `read_meta` and `load_dyn` of the default dataset and of one more
//! of the datasets the seed files hold.
//! Once those parse the file in an isolated reader process (libhdf5 is not hardened against
//! hostile files), a crash inside libhdf5 must come back as an error naming the file, never as
//! a signal in this process. libFuzzer sees only this process's coverage, so the reader's
//! paths are explored blind; the target runs for time rather than a count.
//!
//! Only the names `list`, `read_meta` and `load_dyn` are relied on (and `list` only for
//! success or failure), so the target builds against the in-process API and the isolated one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_core::ErrorKind;
use ndstore_fuzz::{check_err, check_loaded, scratch_file};

/// The datasets of the seed files (`fuzz/seeds/h5`), so mutated seeds reach their data.
const NAMES: &[&str] = &[
    ndstore_hdf5::DEFAULT_DATASET,
    "/g/x",
    "half",
    "bool",
    "scalar",
    "unallocated",
    "/g/loop/data",
    "ext",
];

/// How libhdf5 reports an allocation it could not make. A damaged file can make libhdf5 ask for
/// an absurd size (2**64 bytes was seen): in the isolated reader that request fails, and the
/// error comes back as `OutOfMemory` naming the file and the object. That is a clean refusal,
/// not an allocation the caller made, so it is let through here (it would better be `Corrupt`).
const LIBHDF5_ALLOCATION_FAILED: &str = "memory allocation failed";

/// How the memory limit refuses a dataset whose values the file does not hold (fill values of
/// an unallocated dataset, which HDF5 lets outgrow its file): a refusal before any allocation.
const OVER_THE_LIMIT: &str = "over the memory limit";

/// [`check_err`], letting libhdf5's own refused allocations and the memory limit's refusals
/// through (see above), when they name the file and the object.
fn check_hdf5_err(what: &str, err: &ndstore_core::Error, path: &std::path::Path) {
    if err.kind() == ErrorKind::OutOfMemory
        && (err.message().contains(LIBHDF5_ALLOCATION_FAILED)
            || err.message().contains(OVER_THE_LIMIT))
    {
        assert_eq!(
            err.path(),
            Some(path),
            "{what}: the error does not name the file: {err}"
        );
        assert!(
            err.location().is_some(),
            "{what}: the error does not say where: {err}"
        );
        return;
    }
    check_err(what, err, Some(path));
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("input.h5", data);
    if let Err(e) = ndstore_hdf5::list(&path) {
        check_hdf5_err("hdf5 list", &e, &path);
    }
    // Each call may start a reader process, so each input tries the default dataset and one
    // other name (picked by the input's length, which mutations change often).
    let other = NAMES[1 + data.len() % (NAMES.len() - 1)];
    for name in [NAMES[0], other] {
        let meta = ndstore_hdf5::read_meta(&path, name);
        if let Err(e) = &meta
            && e.kind() != ErrorKind::NotFound
        {
            check_hdf5_err("hdf5 read_meta", e, &path);
        }
        match ndstore_hdf5::load_dyn(&path, name) {
            Ok((loaded, array)) => {
                check_loaded("hdf5 load_dyn", &loaded, &array);
                if let Ok(meta) = meta {
                    assert_eq!(meta, loaded, "read_meta disagrees with load_dyn for {name}");
                }
            }
            // A dataset that is not there is the caller's question, not the file's fault.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                assert!(e.path().is_some(), "NotFound does not name the file: {e}");
            }
            Err(e) => check_hdf5_err("hdf5 load_dyn", &e, &path),
        }
    }
});

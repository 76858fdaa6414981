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

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("input.h5", data);
    if let Err(e) = ndstore_hdf5::list(&path) {
        check_err("hdf5 list", &e, Some(&path));
    }
    // Each call may start a reader process, so each input tries the default dataset and one
    // other name (picked by the input's length, which mutations change often).
    let other = NAMES[1 + data.len() % (NAMES.len() - 1)];
    for name in [NAMES[0], other] {
        let meta = ndstore_hdf5::read_meta(&path, name);
        if let Err(e) = &meta
            && e.kind() != ErrorKind::NotFound
        {
            check_err("hdf5 read_meta", e, Some(&path));
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
            Err(e) => check_err("hdf5 load_dyn", &e, Some(&path)),
        }
    }
});

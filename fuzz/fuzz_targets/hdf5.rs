//! Fuzzes HDF5 loads through the entry points a user calls on a file they did not write:
//! `ndstore_hdf5::list`, then `ndstore_hdf5::load_dyn` of the default dataset and of every
//! dataset listed. Those parse the file in an isolated reader process (libhdf5 is not hardened
//! against hostile files), so a crash inside libhdf5 must come back as an error naming the
//! file, never as a signal in this process. libFuzzer sees only this process's coverage: the
//! reader's own paths are explored blind, which is why the target runs for time, not count.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_fuzz::{check_err, check_loaded, scratch_file};

/// Datasets past this many are not loaded one by one.
const MAX_DATASETS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("input.h5", data);
    let mut names = vec![ndstore_hdf5::DEFAULT_DATASET.to_owned()];
    match ndstore_hdf5::list(&path) {
        Ok(listed) => {
            for (name, meta) in listed.into_iter().take(MAX_DATASETS) {
                if let Ok(read) = ndstore_hdf5::read_meta(&path, &name) {
                    assert_eq!(read, meta, "read_meta disagrees with list for {name}");
                }
                names.push(name);
            }
        }
        Err(e) => check_err("hdf5 list", &e, Some(&path)),
    }
    for name in &names {
        match ndstore_hdf5::load_dyn(&path, name) {
            Ok((meta, array)) => check_loaded("hdf5 load_dyn", &meta, &array),
            // A dataset that is not there is the caller's question, not the file's fault.
            Err(e) if e.kind() == ndstore_core::ErrorKind::NotFound => {
                assert!(e.path().is_some(), "NotFound does not name the file: {e}");
            }
            Err(e) => check_err("hdf5 load_dyn", &e, Some(&path)),
        }
    }
});

//! Fuzzes `.npz` archives: `NpzReader::open`, then the metadata and the data of every member
//! (and `load_npz`, which loads them all). Errors name the file and the member or byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_file::npz::{self, NpzReader};
use ndstore_fuzz::{check_err, check_err_unplaced, check_loaded, scratch_file};

/// How `NpzReader::open` words what the zip crate refuses while reading the archive as a whole
/// (no end record, a broken directory entry, a directory past the end of the file): zip reports
/// no offset for those, so the error can give only the file.
const ZIP_REFUSED: [&str; 2] = [
    "not a readable zip archive",
    "reading the archive directory",
];

/// Members past this many are not loaded one by one (`load_npz` still loads them all).
const MAX_MEMBERS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("input.npz", data);
    let mut reader = match NpzReader::open(&path) {
        Ok(reader) => reader,
        Err(e) if ZIP_REFUSED.iter().any(|p| e.message().starts_with(p)) => {
            check_err_unplaced("NpzReader::open", &e, Some(&path));
            return;
        }
        Err(e) => {
            check_err("NpzReader::open", &e, Some(&path));
            return;
        }
    };
    let names = reader.names().to_vec();
    let mut all_loaded = true;
    for name in names.iter().take(MAX_MEMBERS) {
        let meta = reader.read_meta(name);
        if let Err(e) = &meta {
            check_err("NpzReader::read_meta", e, Some(&path));
        }
        match reader.load_dyn(name) {
            Ok((loaded, array)) => {
                check_loaded("NpzReader::load_dyn", &loaded, &array);
                match meta {
                    Ok(meta) => assert_eq!(meta, loaded, "read_meta disagrees with load_dyn"),
                    Err(e) => panic!("read_meta fails on a member load_dyn loads: {e}"),
                }
            }
            Err(e) => {
                all_loaded = false;
                check_err("NpzReader::load_dyn", &e, Some(&path));
            }
        }
    }
    match npz::load_npz(&path) {
        Ok(arrays) => {
            assert_eq!(arrays.len(), names.len(), "load_npz lost members");
            for (_, meta, array) in &arrays {
                check_loaded("load_npz", meta, array);
            }
        }
        Err(e) => {
            check_err("load_npz", &e, Some(&path));
            assert!(
                !all_loaded || names.len() > MAX_MEMBERS,
                "load_npz fails on an archive whose every member loads: {e}"
            );
        }
    }
});

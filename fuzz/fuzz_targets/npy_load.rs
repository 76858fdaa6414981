//! Fuzzes `.npy` loads: from bytes (`ndstore_file::npy::read_dyn_from`) and from a file
//! (`load_dyn`, `read_meta`). Errors keep the contract (the file, the place); loads that
//! succeed give the array their metadata describes, and the two ways agree bit for bit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_file::npy;
use ndstore_fuzz::{check_err, check_loaded, scratch_file};

fuzz_target!(|data: &[u8]| {
    let from_bytes = npy::read_dyn_from(&mut &data[..]);
    match &from_bytes {
        Ok((meta, array)) => check_loaded("read_dyn_from", meta, array),
        Err(e) => check_err("read_dyn_from", e, None),
    }

    let path = scratch_file("input.npy", data);
    let from_file = npy::load_dyn(&path);
    match &from_file {
        Ok((meta, array)) => {
            check_loaded("load_dyn", meta, array);
            match npy::read_meta(&path) {
                Ok(read) => assert_eq!(&read, meta, "read_meta disagrees with load_dyn"),
                Err(e) => panic!("read_meta fails on a file load_dyn loads: {e}"),
            }
        }
        Err(e) => check_err("load_dyn", e, Some(&path)),
    }
    if let (Ok((ma, a)), Ok((mb, b))) = (&from_bytes, &from_file) {
        assert_eq!(ma, mb, "bytes and file give different metadata");
        assert!(a.bit_eq(b), "bytes and file give different values");
    }
});

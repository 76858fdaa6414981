//! Fuzzes maps and raw files on hostile bytes: `MappedArray::open_npy` in mode `r` (then every
//! element read through the map, which must agree with `ndstore_file::npy::load_dyn`), and raw
//! files (`MappedArray::open_raw`, `ndstore_file::raw::load_raw_dyn`) whose metadata the first
//! bytes choose, so lengths, offsets and shapes that do not fit the file are tried.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_core::{ArrayMeta, ByteOrder, DType, Order};
use ndstore_fuzz::{check_err, check_err_unplaced, check_loaded, kind_from_byte, scratch_file};
use ndstore_mmap::{MappedArray, Mode};

fuzz_target!(|data: &[u8]| {
    // The whole input as an .npy file, mapped read-only.
    let path = scratch_file("input.npy", data);
    // SAFETY: the scratch file belongs to this process, and nothing truncates or rewrites it
    // while the map exists (the map is dropped before the next input is written).
    match unsafe { MappedArray::open_npy(&path, Mode::Read) } {
        Ok(map) => match map.read() {
            Ok(array) => {
                check_loaded("open_npy read", map.meta(), &array);
                if let Ok((meta, loaded)) = ndstore_file::npy::load_dyn(&path) {
                    assert_eq!(&meta, map.meta(), "map and load disagree on the metadata");
                    assert!(array.bit_eq(&loaded), "map and load disagree on the values");
                }
            }
            Err(e) => check_err("open_npy read", &e, Some(&path)),
        },
        Err(e) => check_err("open_npy", &e, Some(&path)),
    }

    // A raw file: four bytes of metadata (dtype, shape, offset), the rest is the file.
    let Some((head, body)) = data.split_at_checked(4) else {
        return;
    };
    let order = if head[0] & 0x80 != 0 {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let dtype = DType::new(kind_from_byte(head[0] & 0x7f), order);
    let memory_order = if head[1] & 0x80 != 0 {
        Order::Fortran
    } else {
        Order::C
    };
    let ndim = usize::from(head[1] & 3);
    // Small axes mostly; an axis of 0xff.. now and then tries the overflow checks.
    let dims: Vec<usize> = (0..ndim)
        .map(|axis| match (head[2] >> (2 * axis)) & 3 {
            3 => usize::MAX >> (head[1] >> 4 & 7),
            small => usize::from(head[1] >> 2 & 3) + usize::from(small),
        })
        .collect();
    let meta = ArrayMeta::new(dtype, dims, memory_order);
    let offset = u64::from(head[3]);
    let raw = scratch_file("input.raw", body);
    let loaded = ndstore_file::raw::load_raw_dyn(&raw, &meta);
    match &loaded {
        Ok(array) => check_loaded("load_raw_dyn", &meta, array),
        // The caller's metadata against the file's length: no place inside the file to name.
        Err(e) => check_err_unplaced("load_raw_dyn", e, Some(&raw)),
    }
    // SAFETY: as above.
    match unsafe { MappedArray::open_raw(&raw, &meta, offset, Mode::Read) } {
        Ok(map) => match map.read() {
            Ok(array) => {
                check_loaded("open_raw read", &meta, &array);
                if offset == 0
                    && let Ok(loaded) = &loaded
                {
                    assert!(
                        array.bit_eq(loaded),
                        "map and raw load disagree on the values"
                    );
                }
            }
            Err(e) => check_err("open_raw read", &e, Some(&raw)),
        },
        Err(e) => check_err_unplaced("open_raw", &e, Some(&raw)),
    }
});

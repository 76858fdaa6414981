//! Fuzzes the text reader on files as they come (a metadata line only where the fuzzer writes
//! one): the first byte picks the delimiter and the dtype, the rest is the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_fuzz::{fuzz_text, text_options};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    fuzz_text(&text_options(selector), text);
});

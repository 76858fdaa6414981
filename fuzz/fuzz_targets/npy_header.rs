//! Fuzzes the `.npy` header parser (`ndstore_core::__private::npy_header::read`): any bytes give a header
//! or an error with a place; a header that parses says where the data starts (exactly where
//! the parser stopped reading) and survives being written and parsed again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_core::__private::npy_header::{self, DEFAULT_MAX_HEADER_LEN};
use ndstore_fuzz::check_err;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    match npy_header::read(&mut rest, DEFAULT_MAX_HEADER_LEN) {
        Ok(header) => {
            let consumed = (data.len() - rest.len()) as u64;
            assert_eq!(
                header.data_offset, consumed,
                "the header's data offset is not where the parser stopped"
            );
            let again = npy_header::encode(&header.meta);
            let reparsed = match npy_header::read(&mut again.as_slice(), usize::MAX) {
                Ok(h) => h,
                Err(e) => panic!("a header written from a parsed header does not parse: {e}"),
            };
            assert_eq!(reparsed.meta.dtype, header.meta.dtype);
            assert_eq!(reparsed.meta.shape, header.meta.shape);
            assert_eq!(
                reparsed.meta.effective_order(),
                header.meta.effective_order()
            );
        }
        Err(e) => check_err("npy header", &e, None),
    }
});

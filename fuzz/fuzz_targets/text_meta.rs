//! Fuzzes the text reader on files that start with a valid `# ndstore:` metadata line, so the
//! fuzzer spends its time on the data the line describes: the first bytes choose the line's
//! dtype, byte order, memory order and shape (up to three axes of up to 7), the rest is the
//! data lines.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ndstore_core::{ArrayMeta, ByteOrder, DType, Order};
use ndstore_fuzz::{fuzz_text, kind_from_byte, text_options};

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_at_checked(3) else {
        return;
    };
    let [options, kind, shape] = [head[0], head[1], head[2]];
    let order = if kind & 0x80 != 0 {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let dtype = DType::new(kind_from_byte(kind & 0x7f), order);
    let ndim = usize::from(shape & 3);
    let dims: Vec<usize> = (0..ndim)
        .map(|axis| usize::from((shape >> (2 + 2 * axis)) & 3) + usize::from(axis == 0) * 4)
        .collect();
    let memory_order = if options & 0x80 != 0 {
        Order::Fortran
    } else {
        Order::C
    };
    let meta = ArrayMeta::new(dtype, dims.clone(), memory_order);
    let shape_json: Vec<String> = meta.shape.iter().map(usize::to_string).collect();
    let mut text = format!(
        "# ndstore: {{\"dtype\":\"{}\",\"shape\":[{}],\"order\":\"{}\"}}\n",
        dtype.to_numpy_descr(),
        shape_json.join(","),
        if memory_order == Order::Fortran {
            "F"
        } else {
            "C"
        }
    )
    .into_bytes();
    text.extend_from_slice(body);
    fuzz_text(&text_options(options & 0x7f), &text);
});

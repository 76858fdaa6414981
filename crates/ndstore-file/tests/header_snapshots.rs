//! The `.npy` header bytes, snapshotted: any change to what ndstore writes shows up in review.
//! The numpy interop tests prove these bytes equal numpy's.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndstore_core::__private::npy_header as header;
use ndstore_core::{ArrayMeta, DType, Order};

fn render(descr: &str, shape: &[usize], order: Order) -> String {
    let meta = ArrayMeta::new(
        DType::from_numpy_descr(descr).unwrap(),
        shape.to_vec(),
        order,
    );
    let bytes = header::encode(&meta);
    format!("{} bytes: {}", bytes.len(), bytes.escape_ascii())
}

#[test]
fn header_bytes() {
    let cases = [
        ("<f8", &[3usize, 4][..], Order::C),
        (">i2", &[2, 3, 4], Order::Fortran),
        ("|b1", &[], Order::C),
        ("<c16", &[0], Order::C),
        ("<f2", &[7], Order::C),
        ("|u1", &[123_456_789_012, 2], Order::C),
    ];
    let rendered: Vec<String> = cases.iter().map(|(d, s, o)| render(d, s, *o)).collect();
    insta::assert_snapshot!(rendered.join("\n"));
}

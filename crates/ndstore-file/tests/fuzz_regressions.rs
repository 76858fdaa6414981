//! Inputs the fuzz targets (`fuzz/`, `cargo xtask fuzz`) found breaking the file backend's
//! contract, kept as files under `tests/fuzz/`: each now fails with a clear error naming the
//! file and the place, through every reader that took it.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use ndstore_core::{ErrorKind, Location};
use ndstore_file::npy;

fn input(name: &str) -> (PathBuf, Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// Found by `npy_load` and `mmap_raw`: shape (2, 2**63 - 1, 0) holds no elements, so its byte
/// count was 0 and the header passed, but the other axes multiply past `isize::MAX`, which no
/// array can have (ndarray refuses it, numpy too): the load failed late, as `InvalidInput`
/// (the caller's fault) with no place. The header must refuse it, pointing at the shape.
#[test]
fn a_zero_length_axis_beside_axes_past_isize_is_refused_at_the_shape() {
    let (path, bytes) = input("zero-axis-beside-axes-past-isize.npy");
    // The shape's text starts at byte 60 of this file.
    let shape_at = 10
        + bytes[10..]
            .windows(8)
            .position(|w| w == b"'shape':")
            .unwrap() as u64;

    let err = npy::read_dyn_from(&mut bytes.as_slice()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(
        matches!(err.location(), Some(Location::Offset(o)) if *o >= shape_at),
        "{err}"
    );

    let err = npy::load_dyn(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(
        matches!(err.location(), Some(Location::Offset(o)) if *o >= shape_at),
        "{err}"
    );
}

/// Found by `npz`: a member flagged as encrypted makes the zip crate refuse to open it
/// ("password required"); the error named the file but not the member, although the archive's
/// directory had already given its name. The place is the member's local header.
#[test]
fn a_member_zip_refuses_to_open_is_named() {
    let (path, _) = input("npz-encrypted-member.npz");
    let mut reader = ndstore_file::npz::NpzReader::open(&path).unwrap();
    assert_eq!(reader.names(), ["a", "b"]);
    let expect_member = |err: ndstore_core::Error| {
        assert_eq!(err.path(), Some(path.as_path()), "{err}");
        assert!(err.to_string().contains("member 'a.npy'"), "{err}");
        assert!(matches!(err.location(), Some(Location::Offset(_))), "{err}");
    };
    expect_member(reader.read_meta("a").unwrap_err());
    expect_member(reader.load_dyn("a").unwrap_err());
}

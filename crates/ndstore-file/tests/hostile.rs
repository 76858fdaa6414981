//! Hostile input through every reader of the file backend: each gives an error with a kind and
//! a place, never a panic, an abort or an allocation the input cannot justify.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Write};

use ndstore_core::{ErrorKind, Location};
use ndstore_file::npy;
use ndstore_file::npz::NpzReader;
use zip::write::SimpleFileOptions;

/// A hostile `.npy` file of the conformance corpus, by name.
fn hostile(name: &str) -> Vec<u8> {
    ndstore_conformance::fixtures::hostile_npy()
        .into_iter()
        .find(|h| h.name == name)
        .map(|h| h.bytes)
        .unwrap_or_else(|| panic!("no hostile input named {name}"))
}

#[test]
fn a_header_claiming_2_pow_40_elements_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.npy");
    std::fs::write(&path, hostile("claims-2pow40-f64.npy")).unwrap();
    let err = npy::load::<f64, ndarray::Ix1>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    assert!(
        err.to_string().contains("bomb.npy") && err.to_string().contains("8796093022208"),
        "{err}"
    );
    // Through a stream the length is unknown: memory grows only with the bytes that arrive.
    let err = npy::read_dyn_from(&mut Cursor::new(hostile("claims-2pow40-f64.npy"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    assert!(matches!(err.location(), Some(Location::Offset(_))), "{err}");
}

#[test]
fn each_hostile_file_fails_with_its_own_kind_and_a_byte_offset() {
    let expectations = [
        ("shape-product-overflows.npy", ErrorKind::TooLarge),
        ("bytes-overflow.npy", ErrorKind::TooLarge),
        ("shape-exceeds-file.npy", ErrorKind::Truncated),
        ("axis-too-long-for-usize.npy", ErrorKind::Format),
        ("negative-axis.npy", ErrorKind::Format),
        ("object-dtype-pickle.npy", ErrorKind::UnsupportedDType),
        ("unicode-dtype.npy", ErrorKind::UnsupportedDType),
        ("structured-dtype.npy", ErrorKind::UnsupportedDType),
        ("unknown-key.npy", ErrorKind::Format),
        ("not-a-dict.npy", ErrorKind::Format),
        ("invalid-bool-byte.npy", ErrorKind::Format),
        ("wrong-magic.npy", ErrorKind::Format),
        ("empty.npy", ErrorKind::Truncated),
        ("version-9.npy", ErrorKind::Format),
        ("header-length-beyond-file.npy", ErrorKind::Truncated),
        ("header-over-limit.npy", ErrorKind::TooLarge),
        ("v3-not-utf8.npy", ErrorKind::Format),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, kind) in expectations {
        let path = dir.path().join(name);
        std::fs::write(&path, hostile(name)).unwrap();
        let err = npy::load_dyn(&path).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(
            matches!(err.location(), Some(Location::Offset(_))),
            "{name}: no offset in {err}"
        );
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{name}: {err}"
        );
    }
    // The pickle refusal says why, and the bool error points at the bad byte.
    let err = npy::load_dyn(dir.path().join("object-dtype-pickle.npy")).unwrap_err();
    assert!(err.to_string().contains("pickled"), "{err}");
    let err = npy::load_dyn(dir.path().join("invalid-bool-byte.npy")).unwrap_err();
    assert_eq!(err.location(), Some(&Location::Offset(130)), "{err}");
}

fn zip_with(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        zip.start_file(
            *name,
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn a_lenient_open_sets_unsafe_names_aside_and_reads_the_other_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = Vec::new();
    npy::write_to(
        &mut one,
        &ndarray::array![1.0f64],
        ndstore_core::ByteOrder::Little,
    )
    .unwrap();
    let mut two = Vec::new();
    npy::write_to(
        &mut two,
        &ndarray::array![2i32, 3],
        ndstore_core::ByteOrder::Little,
    )
    .unwrap();
    let path = dir.path().join("mixed.npz");
    std::fs::write(
        &path,
        zip_with(&[("../escape.npy", &one), ("x:y.npy", &one), ("ok.npy", &two)]),
    )
    .unwrap();
    assert_eq!(
        NpzReader::open(&path).err().map(|e| e.kind()),
        Some(ErrorKind::InvalidName)
    );
    let mut reader = NpzReader::open_lenient(&path).unwrap();
    assert_eq!(reader.names(), ["ok"]);
    let unsupported: Vec<&str> = reader
        .unsupported()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(unsupported, ["../escape.npy", "x:y.npy"]);
    assert!(
        reader.unsupported()[1]
            .1
            .ends_with("the name starts with a drive letter, as 'C:'")
    );
    // The member read is the third of the archive, not the first.
    let (_, array) = reader.load_dyn("ok").unwrap();
    assert_eq!(array.shape(), [2]);
    assert_eq!(array.kind(), ndstore_core::DTypeKind::I32);
}

#[test]
fn npz_member_names_that_escape_or_repeat_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut valid = Vec::new();
    npy::write_to(
        &mut valid,
        &ndarray::array![1.0f64],
        ndstore_core::ByteOrder::Little,
    )
    .unwrap();
    for name in [
        "../escape.npy",
        "/absolute.npy",
        "a/../../b.npy",
        "back\\slash.npy",
        "nul\0.npy",
    ] {
        let path = dir.path().join("evil.npz");
        std::fs::write(&path, zip_with(&[(name, &valid)])).unwrap();
        let err = NpzReader::open(&path)
            .err()
            .unwrap_or_else(|| panic!("{name:?} was accepted"));
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}: {err}");
        assert!(
            matches!(err.location(), Some(Location::Member { .. })),
            "{name:?}: {err}"
        );
    }
}

#[test]
fn npz_member_claiming_more_than_it_holds_fails_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.npz");
    // A member whose .npy header claims 2^40 f64 elements but which holds 64 bytes.
    std::fs::write(
        &path,
        zip_with(&[("x.npy", &hostile("claims-2pow40-f64.npy"))]),
    )
    .unwrap();
    let mut reader = NpzReader::open(&path).unwrap();
    let err = reader.load_dyn("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(
        matches!(err.location(), Some(Location::Member { name, .. }) if name == "x.npy"),
        "{err}"
    );
    // A highly compressible member loads fine: the ratio guard only stops impossible claims.
    let zeros = ndarray::Array1::<f64>::zeros(1 << 20);
    let big = dir.path().join("zeros.npz");
    let array = ndstore_core::DynArray::from(zeros.into_dyn());
    ndstore_file::npz::save_npz(
        &big,
        &[("z", &array)],
        ndstore_file::npz::Compression::Deflated,
        &Default::default(),
    )
    .unwrap();
    let (_, loaded) = NpzReader::open(&big).unwrap().load_dyn("z").unwrap();
    assert!(loaded.bit_eq(&array));
}

#[test]
fn not_a_zip_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.npz");
    std::fs::write(&path, b"this is not a zip archive at all").unwrap();
    let err = NpzReader::open(&path).err().unwrap();
    assert!(err.to_string().contains("plain.npz"), "{err}");
    // No end record anywhere: the place is the end of the file, where it should have been.
    assert_eq!(err.location(), Some(&Location::Offset(32)), "{err}");
}

#[test]
fn a_damaged_archive_names_the_directory_or_the_member_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.npz");
    let zip = small_npz();
    // Cut inside the central directory: the end record is gone.
    std::fs::write(&path, &zip[..zip.len() - 30]).unwrap();
    let err = NpzReader::open(&path).err().unwrap();
    assert!(matches!(err.location(), Some(Location::Offset(_))), "{err}");
    // The member's own header damaged (its signature): the error names that header's offset.
    let mut damaged = zip.clone();
    damaged[0] ^= 0xff;
    std::fs::write(&path, &damaged).unwrap();
    let err = NpzReader::open(&path)
        .and_then(|mut reader| reader.load_dyn("x"))
        .unwrap_err();
    assert_eq!(err.location(), Some(&Location::Offset(0)), "{err}");
    assert!(err.to_string().contains("x.npy"), "{err}");
}

/// An archive holding one stored member `x.npy` of 1-element f64 data.
fn small_npz() -> Vec<u8> {
    let mut valid = Vec::new();
    npy::write_to(
        &mut valid,
        &ndarray::array![1.0f64],
        ndstore_core::ByteOrder::Little,
    )
    .unwrap();
    zip_with(&[("x.npy", &valid)])
}

/// Sets both size fields of the first member's local header and central directory entry.
fn lie_about_sizes(zip: &mut [u8], size: u32) {
    let bytes = size.to_le_bytes();
    // Local file header: compressed size at 18, uncompressed size at 22.
    zip[18..22].copy_from_slice(&bytes);
    zip[22..26].copy_from_slice(&bytes);
    // Central directory entry: signature PK\x01\x02, sizes at 20 and 24.
    let cd = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    zip[cd + 20..cd + 24].copy_from_slice(&bytes);
    zip[cd + 24..cd + 28].copy_from_slice(&bytes);
}

#[test]
fn a_stored_member_claiming_4_gib_in_a_tiny_file_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liar.npz");
    let mut zip = small_npz();
    lie_about_sizes(&mut zip, 0xFFFF_FF00);
    assert!(zip.len() < 400, "{}", zip.len());
    std::fs::write(&path, &zip).unwrap();
    let err = NpzReader::open(&path).unwrap().load_dyn("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("liar.npz") && message.contains("4294967040 stored bytes"),
        "{message}"
    );
    assert!(matches!(err.location(), Some(Location::Offset(_))), "{err}");
}

#[test]
fn a_damaged_stored_member_fails_its_crc_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.npz");
    let mut zip = small_npz();
    // The last data byte of the member: the f64's sign byte.
    let cd = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    zip[cd - 1] ^= 0x80;
    std::fs::write(&path, &zip).unwrap();
    let err = NpzReader::open(&path).unwrap().load_dyn("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        matches!(err.location(), Some(Location::Member { name, .. }) if name == "x.npy"),
        "{err}"
    );
}

#[test]
fn a_memory_limit_refuses_larger_arrays_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    npy::save(&path, &ndarray::Array1::<f64>::zeros(1000)).unwrap();
    let limited = ndstore_core::LoadOptions::new().memory_limit(7999);
    let err = npy::load_dyn_with(&path, &limited).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("a.npy"), "{err}");
    let enough = ndstore_core::LoadOptions::new().memory_limit(8000);
    assert_eq!(npy::load_dyn_with(&path, &enough).unwrap().0.shape, [1000]);
    // The same limit holds inside archives.
    let npz = dir.path().join("a.npz");
    let array = ndstore_core::DynArray::from(ndarray::Array1::<f64>::zeros(1000).into_dyn());
    ndstore_file::npz::save_npz(
        &npz,
        &[("a", &array)],
        ndstore_file::npz::Compression::Deflated,
        &Default::default(),
    )
    .unwrap();
    let err = NpzReader::open(&npz)
        .unwrap()
        .load_dyn_with("a", &limited)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
}

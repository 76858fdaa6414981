//! The facade opens files by extension and refuses unknown ones by name.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{ArrayD, IxDyn};
use ndstore::{DynArray, ErrorKind};

#[test]
fn npy_and_npz_round_trip_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let array = DynArray::from(ArrayD::from_shape_fn(IxDyn(&[3, 2]), |d| {
        (d[0] * 2 + d[1]) as i16
    }));
    for name in ["a.npy", "b.NPZ", "c.csv", "d.txt"] {
        let path = dir.path().join(name);
        ndstore::save(&path, &array).unwrap();
        let (meta, loaded) = ndstore::load(&path).unwrap();
        assert_eq!(meta.shape, vec![3, 2]);
        assert!(loaded.bit_eq(&array), "{name}");
    }
}

#[test]
fn unknown_extensions_are_named_in_the_error() {
    let err = ndstore::load("data.parquet").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string().contains("data.parquet") && err.to_string().contains(".npy"),
        "{err}"
    );
    // The mapping backend is not handed to safe code.
    let mut expected = vec!["file", "text"];
    if cfg!(feature = "hdf5") {
        expected.push("hdf5");
    }
    let names: Vec<&str> = ndstore::backends().iter().map(|b| b.name()).collect();
    assert_eq!(names, expected);
}

/// Run by `cargo xtask test` with `--all-features`: HDF5 files open by extension too.
#[cfg(feature = "hdf5")]
#[test]
fn hdf5_round_trips_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let array = DynArray::from(ArrayD::from_shape_fn(IxDyn(&[2, 5]), |d| {
        (d[0] * 5 + d[1]) as u32
    }));
    for name in ["a.h5", "b.hdf5"] {
        let path = dir.path().join(name);
        ndstore::save(&path, &array).unwrap();
        let (meta, loaded) = ndstore::load(&path).unwrap();
        assert_eq!(meta.shape, vec![2, 5]);
        assert!(loaded.bit_eq(&array), "{name}");
    }
}

#[test]
fn safe_code_gets_no_backend_that_maps_files() {
    let names: Vec<&str> = ndstore::backends().iter().map(|b| b.name()).collect();
    assert!(
        names.contains(&"file") && names.contains(&"text"),
        "{names:?}"
    );
    assert!(!names.contains(&"mmap"), "{names:?}");
}

#[test]
fn a_memory_limit_applies_to_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let array = DynArray::from(ArrayD::<f64>::zeros(IxDyn(&[100, 10])));
    let limited = ndstore::LoadOptions::new().memory_limit(7999);
    for name in ["a.npy", "b.npz", "c.csv"] {
        let path = dir.path().join(name);
        ndstore::save(&path, &array).unwrap();
        let err = ndstore::load_with(&path, &limited).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

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
    if cfg!(feature = "zarr") {
        expected.push("zarr");
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

/// An HDF5 file without a dataset `data` loads its only dataset; with several, the error lists
/// them.
#[cfg(feature = "hdf5")]
#[test]
fn an_hdf5_file_loads_its_only_dataset_or_names_the_datasets() {
    use ndstore::SaveOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.h5");
    let x = DynArray::from(ArrayD::from_shape_fn(IxDyn(&[3]), |d| d[0] as i16));
    ndstore::hdf5::save_dyn(&path, "/results/x", &x, &SaveOptions::default()).unwrap();
    let (meta, loaded) = ndstore::load(&path).unwrap();
    assert_eq!(meta.shape, vec![3]);
    assert!(loaded.bit_eq(&x));

    let y = DynArray::from(ArrayD::from_elem(IxDyn(&[2]), 1.5f32));
    ndstore::hdf5::add_dataset(&path, "/y", &y, &SaveOptions::default()).unwrap();
    let err = ndstore::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("/results/x") && message.contains("/y"),
        "{message}"
    );

    // With a dataset `data`, that one is loaded, however many others there are.
    ndstore::hdf5::add_dataset(&path, "data", &y, &SaveOptions::default()).unwrap();
    assert!(ndstore::load(&path).unwrap().1.bit_eq(&y));
    // The memory limit applies here too.
    let limited = ndstore::LoadOptions::new().memory_limit(7);
    let err = ndstore::load_with(&path, &limited).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
}

#[test]
fn a_fifo_is_refused_by_its_type_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = vec!["f.npy", "f.npz", "f.csv", "f.txt"];
    if cfg!(feature = "hdf5") {
        names.push("f.h5");
    }
    for name in names {
        let path = dir.path().join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {name}");
        // A load that waits for a writer never returns: it runs on a thread the test gives up on.
        let (tx, rx) = std::sync::mpsc::channel();
        let loading = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(ndstore::load(&loading).map(|_| ()));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("loading the FIFO {name} hangs"));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
        assert!(err.to_string().contains("FIFO"), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

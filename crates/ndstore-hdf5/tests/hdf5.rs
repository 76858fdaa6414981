//! The HDF5 backend's own promises: h5py's files (chunked, gzip) read back, groups and
//! listings, clear errors, and a refused in-place save that leaves the locked file intact.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, ArrayD, IxDyn};
use ndstore_core::{
    Backend, ByteOrder, DType, DTypeKind, DynArray, ErrorKind, Location, SaveOptions,
};
use std::time::Duration;

use ndstore_hdf5::{Hdf5Backend, ReadOptions};

mod common;

// These tests take turns: one of them spawns a process (see `serial`).
use common::serial;

#[test]
fn h5py_chunked_gzip_and_big_endian_datasets_read_back() {
    let _turn = serial();
    if !ndstore_conformance::python::available_or_skip("h5py interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h5py.h5");
    ndstore_conformance::python::run_script(&format!(
        "import h5py, numpy as np\nwith h5py.File({:?}, 'w') as f:\n    f.create_dataset('grp/sub/gz', data=np.arange(1000, dtype='<f8').reshape(100, 10), chunks=(10, 10), compression='gzip', shuffle=True, fletcher32=True)\n    f.create_dataset('be', data=np.arange(6, dtype='>i4').reshape(2, 3))\n    f.create_dataset('flags', data=np.array([True, False, True]))\n    f.create_dataset('z', data=np.array([1+2j, -3j], dtype='c8'))",
        path.display().to_string()
    ))
    .unwrap();
    let (meta, gz) = ndstore_hdf5::load_dyn(&path, "/grp/sub/gz").unwrap();
    assert_eq!(meta.shape, vec![100, 10]);
    let gz = gz.into_typed::<f64>().unwrap();
    assert_eq!(gz.sum(), (0..1000).sum::<i32>() as f64);
    let (meta, be) = ndstore_hdf5::load_dyn(&path, "be").unwrap();
    assert_eq!(meta.dtype, DType::new(DTypeKind::I32, ByteOrder::Big));
    assert_eq!(
        be.into_typed::<i32>().unwrap().into_raw_vec_and_offset().0,
        vec![0, 1, 2, 3, 4, 5]
    );
    let (_, flags) = ndstore_hdf5::load_dyn(&path, "flags").unwrap();
    assert_eq!(
        flags
            .into_typed::<bool>()
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        vec![true, false, true]
    );
    let (meta, z) = ndstore_hdf5::load_dyn(&path, "z").unwrap();
    assert_eq!(meta.dtype.kind, DTypeKind::Complex64);
    assert_eq!(z.len(), 2);
    let names = common::dataset_names(&path);
    assert_eq!(names, ["/be", "/flags", "/grp/sub/gz", "/z"]);
}

#[test]
fn missing_datasets_and_foreign_files_are_clear_errors() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.h5");
    let a = DynArray::from(ArrayD::<u8>::zeros(IxDyn(&[3])));
    ndstore_hdf5::save_dyn(&path, "/deep/group/x", &a, &SaveOptions::default()).unwrap();
    let err = ndstore_hdf5::load_dyn(&path, "/deep/group/y").unwrap_err();
    assert_eq!(
        err.location(),
        Some(&Location::Object("/deep/group/y".to_owned())),
        "{err}"
    );
    assert!(err.to_string().contains("a.h5"), "{err}");
    let text = dir.path().join("text.h5");
    std::fs::write(&text, "not hdf5").unwrap();
    let err = ndstore_hdf5::load_dyn(&text, "data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(err.to_string().contains("text.h5"), "{err}");
    let err = ndstore_hdf5::load_dyn(dir.path().join("missing.h5"), "data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_refused_in_place_save_leaves_the_locked_file_intact() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.h5");
    let a = DynArray::from(Array2::<f64>::from_elem((4, 4), 2.5).into_dyn());
    Hdf5Backend
        .save(&path, &a, &SaveOptions::default())
        .unwrap();
    let holder = Hdf5Backend
        .open_in_place(&path, &SaveOptions::default())
        .unwrap();
    // libhdf5 truncates at open(2) before locking; ndstore must lock first and refuse.
    let other = DynArray::from(ArrayD::<f64>::zeros(IxDyn(&[1])));
    let err = Hdf5Backend
        .save(&path, &other, &SaveOptions::new().in_place())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    holder.close().unwrap();
    let (_, loaded) = Hdf5Backend.load(&path).unwrap();
    assert!(
        loaded.bit_eq(&a),
        "the held file was damaged by the refused save"
    );
}

#[test]
fn a_process_spawned_while_a_file_is_open_does_not_keep_its_lock() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spawn.h5");
    let a = DynArray::from(ArrayD::<i64>::zeros(IxDyn(&[8])));
    Hdf5Backend
        .save(&path, &a, &SaveOptions::default())
        .unwrap();
    let handle = Hdf5Backend
        .open_in_place(&path, &SaveOptions::default())
        .unwrap();
    // Spawned while libhdf5 holds the file open (and locked).
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    handle.close().unwrap();
    let reopened = Hdf5Backend.open_in_place(&path, &SaveOptions::default());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        reopened.is_ok(),
        "the child inherited libhdf5's descriptor and lock: {:?}",
        reopened.err()
    );
}

#[test]
fn many_arrays_per_file_each_added_atomically() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.h5");
    let a = DynArray::from(ArrayD::<i32>::from_elem(IxDyn(&[3]), 7));
    let b = DynArray::from(ArrayD::<f32>::from_elem(IxDyn(&[2, 2]), 0.5));
    let c = DynArray::from(ArrayD::<u8>::from_elem(IxDyn(&[1]), 9));
    ndstore_hdf5::add_dataset(&path, "/a", &a, &SaveOptions::default()).unwrap();
    ndstore_hdf5::add_dataset(&path, "/nested/b", &b, &SaveOptions::default()).unwrap();
    ndstore_hdf5::add_dataset(&path, "/a", &c, &SaveOptions::default()).unwrap();
    let names = common::dataset_names(&path);
    assert_eq!(names, ["/a", "/nested/b"]);
    assert!(
        ndstore_hdf5::load_dyn(&path, "/a").unwrap().1.bit_eq(&c),
        "the replaced dataset"
    );
    assert!(
        ndstore_hdf5::load_dyn(&path, "/nested/b")
            .unwrap()
            .1
            .bit_eq(&b),
        "the kept dataset"
    );
    assert!(ndstore_core::list_temps(&path).unwrap().is_empty());
}

#[test]
fn chunked_gzip_shuffle_fletcher32_datasets_round_trip_and_h5py_sees_the_filters() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gz.h5");
    let a = DynArray::from(ArrayD::from_shape_fn(IxDyn(&[1000, 100]), |d| {
        (d[0] % 7) as f64
    }));
    let layout = ndstore_hdf5::H5Options::new()
        .chunk(&[100, 100])
        .compressed(6);
    ndstore_hdf5::save_with(&path, "/gz", &a, &SaveOptions::default(), &layout).unwrap();
    assert!(
        std::fs::metadata(&path).unwrap().len() < 100_000,
        "the data should compress well below 800 kB"
    );
    assert!(ndstore_hdf5::load_dyn(&path, "/gz").unwrap().1.bit_eq(&a));
    // Filters need chunks; a 0-d array cannot be chunked, and says so.
    let scalar = DynArray::from(ArrayD::from_elem(IxDyn(&[]), 1.0f32));
    let err = ndstore_hdf5::save_with(
        &path,
        "/s",
        &scalar,
        &SaveOptions::default(),
        &ndstore_hdf5::H5Options::new().compressed(1),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        ndstore_hdf5::load_dyn(&path, "/gz").unwrap().1.bit_eq(&a),
        "a refused save leaves the file as it was"
    );
    if ndstore_conformance::python::available_or_skip("h5py interop") {
        let out = ndstore_conformance::python::run_script(&format!(
            "import h5py\nd = h5py.File({:?}, 'r')['gz']\nprint(d.compression, d.chunks, d.shuffle, d.fletcher32)",
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(out.trim(), "gzip (100, 100) True True");
    }
}

#[test]
fn the_backend_load_honours_the_memory_limit() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limited.h5");
    let a = DynArray::from(ArrayD::<f64>::zeros(IxDyn(&[100, 10])));
    Hdf5Backend
        .save(&path, &a, &SaveOptions::default())
        .unwrap();
    let err = Hdf5Backend
        .load_with(&path, &ndstore_core::LoadOptions::new().memory_limit(7999))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("limited.h5"), "{err}");
    let (_, loaded) = Hdf5Backend
        .load_with(&path, &ndstore_core::LoadOptions::new().memory_limit(8000))
        .unwrap();
    assert!(loaded.bit_eq(&a));
}

/// A target that another thread replaces by rename as fast as it can, between two versions:
/// every load reads one version whole. The file a load opens is often replaced before the
/// isolated reader's libhdf5 opens it (by `/proc/self/fd`, which fails once the file has no
/// name); before the reader opened such a file from its bytes, it started again on the new file,
/// which was replaced again, and loads failed after their timeout.
#[test]
fn loads_of_a_target_replaced_continuously_read_one_version_each() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.h5");
    let versions: Vec<_> = [1.0f64, 2.0]
        .iter()
        .map(|&v| {
            let a = DynArray::from(ArrayD::from_elem(IxDyn(&[1 << 16]), v));
            let file = dir.path().join(format!("v{v}.h5"));
            ndstore_hdf5::save_dyn(&file, "data", &a, &SaveOptions::default()).unwrap();
            (file, a)
        })
        .collect();
    std::fs::copy(&versions[0].0, &path).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let options = ReadOptions::default().timeout(Duration::from_secs(5));
    std::thread::scope(|scope| {
        let flipper = scope.spawn(|| {
            let next = dir.path().join("next.h5");
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&next);
                std::fs::hard_link(&versions[(flips % 2) as usize].0, &next).unwrap();
                std::fs::rename(&next, &path).unwrap();
                flips += 1;
            }
            flips
        });
        let loads: Vec<_> = (0..20)
            .map(|_| ndstore_hdf5::load_with(&path, "data", &options))
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            flipper.join().unwrap() > 20,
            "the target was hardly replaced"
        );
        for (load, got) in loads.into_iter().enumerate() {
            let (_, array) = got.unwrap_or_else(|e| panic!("load {load} failed: {e}"));
            assert!(
                versions.iter().any(|(_, a)| array.bit_eq(a)),
                "load {load} read neither version"
            );
        }
    });
}

#[test]
fn a_listing_from_a_group_describes_what_its_links_lead_to_outside_it() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.h5");
    {
        let file = hdf5_metno::File::create(&path).unwrap();
        file.new_dataset_builder()
            .with_data(&ndarray::arr1(&[1.0f64, 2.0, 3.0]))
            .create("top")
            .unwrap();
        file.create_group("g").unwrap();
        file.link_hard("/top", "/g/alias").unwrap();
        file.link_hard("/g", "/g/back").unwrap();
    }
    // The whole file lists /top first and the second name as an alias of it.
    let whole = ndstore_hdf5::list(&path).unwrap();
    let alias = whole.iter().find(|e| e.path == "/g/alias").unwrap();
    assert!(
        matches!(alias.object, ndstore_hdf5::Object::Alias { .. }),
        "{whole:?}"
    );
    // From /g, /top is not listed: the link describes the dataset it leads to.
    let below = ndstore_hdf5::list_from(&path, "g").unwrap();
    let paths: Vec<&str> = below.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/g", "/g/alias", "/g/back"]);
    assert!(below[1].meta().is_some_and(|m| m.shape == [3]), "{below:?}");
    assert_eq!(
        below[2].object,
        ndstore_hdf5::Object::Alias {
            of: "/g".to_owned()
        }
    );
    let err = ndstore_hdf5::list_from(&path, "/g/nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

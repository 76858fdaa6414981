//! Files as h5py users write them (h5py from the project's Python environment): lzf datasets
//! read back bit for bit, null dataspaces (`h5py.Empty`) are refused by name, listings mark the
//! types ndstore cannot load instead of failing, a filter libhdf5 lacks is named, and a file's
//! only dataset loads whatever its name.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use ndstore_core::ErrorKind;
use ndstore_hdf5::{Object, ReadOptions};

/// Runs `body` (Python, with `h5py`, `np` and `path` defined) to write the file at `path`; false
/// when the oracles are not set up (and not required).
fn h5py_writes(path: &Path, body: &str) -> bool {
    if !ndstore_conformance::python::available_or_skip("h5py files") {
        return false;
    }
    let script = format!(
        "import h5py, numpy as np\npath = {:?}\n{body}",
        path.display().to_string()
    );
    ndstore_conformance::python::run_script(&script).unwrap();
    true
}

#[test]
fn lzf_datasets_h5py_writes_read_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lzf.h5");
    // Each dataset twice: lzf-compressed, and plain as the reference. Edge chunks are partial;
    // random bytes do not compress (h5py then stores the chunk unfiltered), zeros compress a lot.
    let written = h5py_writes(
        &path,
        "rng = np.random.default_rng(7)\n\
         arrays = {\n\
         \x20   'f8': np.arange(10007, dtype='<f8').reshape(10007, 1) * 0.5,\n\
         \x20   'i4': rng.integers(-1000, 1000, size=(333, 17), dtype='<i4'),\n\
         \x20   'u1-random': rng.integers(0, 256, size=(5000,), dtype='u1'),\n\
         \x20   'zeros': np.zeros((300, 300), dtype='<f4'),\n\
         \x20   'be': np.linspace(-1, 1, 4096, dtype='>f8').reshape(64, 64),\n\
         \x20   'f2': np.arange(2048, dtype='<f2'),\n\
         \x20   'c16': (np.arange(999) + 1j * np.arange(999)[::-1]).astype('<c16'),\n\
         \x20   'bool': rng.integers(0, 2, size=(77, 3)).astype(bool),\n\
         }\n\
         with h5py.File(path, 'w') as f:\n\
         \x20   for name, a in arrays.items():\n\
         \x20       f.create_dataset('lzf/' + name, data=a, compression='lzf', chunks=tuple(max(1, n // 3) for n in a.shape))\n\
         \x20       f.create_dataset('plain/' + name, data=a)\n\
         \x20   assert f['lzf/f8'].compression == 'lzf'",
    );
    if !written {
        return;
    }
    for name in ["f8", "i4", "u1-random", "zeros", "be", "f2", "c16", "bool"] {
        let (plain_meta, plain) = ndstore_hdf5::load_dyn(&path, &format!("plain/{name}")).unwrap();
        let (meta, lzf) = ndstore_hdf5::load_dyn(&path, &format!("lzf/{name}")).unwrap();
        assert_eq!(meta, plain_meta, "{name}");
        assert!(lzf.bit_eq(&plain), "{name}: lzf values differ");
        let (_, trusted) = ndstore_hdf5::trusted::load_dyn(&path, &format!("lzf/{name}")).unwrap();
        assert!(trusted.bit_eq(&plain), "{name}: trusted lzf values differ");
    }
    // A box of an lzf dataset reads only its chunks, with the same values.
    let part = ndstore_hdf5::read_slice(&path, "lzf/i4", &[100..200, 3..9]).unwrap();
    let whole = ndstore_hdf5::load_dyn(&path, "plain/i4").unwrap().1;
    let whole = whole.into_typed::<i32>().unwrap();
    assert_eq!(
        part.into_typed::<i32>().unwrap(),
        whole.slice(ndarray::s![100..200, 3..9]).into_dyn()
    );
}

#[test]
fn a_null_dataspace_is_refused_by_name_not_loaded_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.h5");
    if !h5py_writes(
        &path,
        "with h5py.File(path, 'w') as f:\n    f.create_dataset('data', data=h5py.Empty('f8'))",
    ) {
        return;
    }
    let [isolated, trusted] = common::load_errors(&path, "data");
    let meta = ndstore_hdf5::read_meta(&path, "data").unwrap_err();
    for err in [isolated, trusted, meta] {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("null dataspace"), "{err}");
        assert!(err.to_string().contains("empty.h5"), "{err}");
    }
    let entries = ndstore_hdf5::list(&path).unwrap();
    assert!(
        matches!(&entries[0].object, Object::Unsupported { reason, .. } if reason.contains("null dataspace")),
        "{entries:?}"
    );
}

#[test]
fn listings_mark_datasets_of_unsupported_types_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.h5");
    if !h5py_writes(
        &path,
        "with h5py.File(path, 'w') as f:\n\
         \x20   f.create_dataset('values', data=np.arange(6.0).reshape(2, 3))\n\
         \x20   f.create_dataset('types/enum', data=np.array([1, 2], dtype=h5py.enum_dtype({'A': 1, 'B': 2}, basetype='i1')))\n\
         \x20   f.create_dataset('types/fixed', data=np.array([b'ab', b'cd']))\n\
         \x20   f.create_dataset('types/string', data=['a', 'bc'], dtype=h5py.string_dtype())\n\
         \x20   f.create_dataset('types/compound', data=np.zeros(2, dtype=[('a', 'i4'), ('b', 'f8')]))\n\
         \x20   f.create_dataset('types/opaque', data=np.void(b'abc'))\n\
         \x20   f.create_dataset('types/reference', data=[f['values'].ref], dtype=h5py.ref_dtype)\n\
         \x20   f.create_dataset('types/vlen', data=np.array([np.arange(3), np.arange(2)], dtype=object), dtype=h5py.vlen_dtype('i4'))",
    ) {
        return;
    }
    let entries = ndstore_hdf5::list(&path).unwrap();
    let reason = |path: &str| match &entries.iter().find(|e| e.path == path).unwrap().object {
        Object::Unsupported { reason, .. } => reason.clone(),
        other => panic!("{path}: {other:?}"),
    };
    for (path, class) in [
        ("/types/enum", "enum"),
        ("/types/fixed", "fixed-length string"),
        ("/types/string", "variable-length string"),
        ("/types/compound", "compound"),
        ("/types/opaque", "opaque"),
        ("/types/reference", "reference"),
        ("/types/vlen", "variable-length sequence"),
    ] {
        assert!(
            reason(path).contains(&format!("HDF5 {class} type")),
            "{path}: {}",
            reason(path)
        );
    }
    let values = entries.iter().find(|e| e.path == "/values").unwrap();
    assert_eq!(values.meta().unwrap().shape, vec![2, 3]);
    let err = ndstore_hdf5::load_dyn(&path, "types/compound")
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedDType, "{err}");
}

#[test]
fn a_filter_libhdf5_lacks_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bzip2.h5");
    // Filter 307 (bzip2) is not in libhdf5; h5py stores a chunk as if it had it.
    if !h5py_writes(
        &path,
        "with h5py.File(path, 'w') as f:\n\
         \x20   d = f.create_dataset('data', shape=(10,), dtype='f8', chunks=(10,), compression=307, allow_unknown_filter=True)\n\
         \x20   d.id.write_direct_chunk((0,), b'not bzip2 data')",
    ) {
        return;
    }
    for err in common::load_errors(&path, "data") {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let message = err.to_string();
        assert!(message.contains("filter 307"), "{message}");
        assert!(message.contains("HDF5_PLUGIN_PATH"), "{message}");
    }
}

#[test]
fn a_files_only_dataset_loads_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.h5");
    if !h5py_writes(
        &path,
        "with h5py.File(path, 'w') as f:\n    f.create_dataset('results/temperature', data=np.arange(5, dtype='<i2'))",
    ) {
        return;
    }
    let (name, meta, values) = ndstore_hdf5::load_default(&path, &ReadOptions::default()).unwrap();
    assert_eq!(name, "/results/temperature");
    assert_eq!(meta.shape, vec![5]);
    assert_eq!(
        values
            .into_typed::<i16>()
            .unwrap()
            .into_raw_vec_and_offset()
            .0,
        vec![0, 1, 2, 3, 4]
    );
}

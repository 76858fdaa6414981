//! numpy and ndstore editing the same mapped file: an `r+` edit made by numpy and flushed is
//! visible to an ndstore map, and the other way round.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{ArrayD, IxDyn};
use ndstore_conformance::python;
use ndstore_core::{Close, Durable, SaveOptions};
use ndstore_mmap::{MappedArray, Mode};

// SAFETY: these tests map only files in their own temporary directories, which no other program
// truncates or rewrites.
const MMAP: ndstore_mmap::MmapBackend = unsafe { ndstore_mmap::MmapBackend::new() };

#[test]
fn numpy_edits_are_seen_by_a_live_map_and_ndstore_edits_by_numpy() {
    if !python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.npy");
    let zeros: ndstore_core::DynArray = ArrayD::<f64>::zeros(IxDyn(&[4, 5])).into();
    ndstore_core::Backend::save(&MMAP, &path, &zeros, &SaveOptions::default()).unwrap();

    // A read-only ndstore map stays open while numpy edits the file through its own r+ map.
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let reader = unsafe {
        MappedArray::open_raw(
            &path,
            &ndstore_core::Backend::read_meta(&MMAP, &path).unwrap(),
            128,
            Mode::Read,
        )
        .unwrap()
    };
    python::run_script(&format!(
        "import numpy as np\nm = np.load({:?}, mmap_mode='r+')\nm[1, 2] = 7.5\nm.flush()\ndel m",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(
        reader.view::<f64>().unwrap()[[1, 2]],
        7.5,
        "numpy's flushed edit is visible in the live map"
    );
    drop(reader);

    // ndstore edits through r+ and syncs; numpy reads it back.
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite).unwrap() };
    map.view_mut::<f64>().unwrap()[[3, 4]] = -2.25;
    map.sync().unwrap();
    map.close().unwrap();
    let out = python::run_script(&format!(
        "import numpy as np\nm = np.load({:?}, mmap_mode='r')\nprint(float(m[1, 2]), float(m[3, 4]), float(m.sum()))",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(out.trim(), "7.5 -2.25 5.25");
}

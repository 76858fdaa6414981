//! The `zarr` backend's conformance suite: the shared checks, driven through its capabilities,
//! on Zarr v3 array directories.

use ndstore_conformance::{Fixtures, PythonInterop};

ndstore_conformance::suite!(ndstore_zarr::ZarrBackend, ZarrFixtures);

/// What the `zarr` backend's array directories know.
struct ZarrFixtures;

impl Fixtures for ZarrFixtures {
    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &["zarr"],
            load: "arr = zarr.open_array(path, mode='r')[...]",
            save: "z = zarr.create_array(path, shape=arr.shape, dtype=arr.dtype, chunks=tuple(max(1, n // 2) for n in arr.shape) or None, fill_value=0, overwrite=True)\nz[...] = arr",
        })
    }

    fn arrays_may_exceed_file(&self) -> bool {
        // Chunks never written read as the fill value.
        true
    }
}

//! The `mmap` backend's conformance suite: the shared checks, driven through its capabilities,
//! with the `.npy` fixtures (hostile headers, a realistic file and its regions) plus a file whose
//! mapping would reach past its end, and numpy's memmap snippets for interop.

use std::path::Path;

use ndstore_conformance::fixtures::{self, Hostile, Realistic};
use ndstore_conformance::{Fixtures, PythonInterop};
use ndstore_core::Backend;

// SAFETY: the harness maps only files in its own scratch directories, which no other program
// truncates or rewrites.
const MMAP: ndstore_mmap::MmapBackend = unsafe { ndstore_mmap::MmapBackend::new() };

ndstore_conformance::suite!(MMAP, MmapFixtures);

/// What the `mmap` backend's `.npy` files know.
struct MmapFixtures;

impl Fixtures for MmapFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        let header = |shape: &str| {
            ndstore_core::__private::npy_header::wrap(&format!(
                "{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"
            ))
        };
        let mut short = header("(1000,)");
        short.extend_from_slice(&[0; 16]);
        let mut files = fixtures::hostile_npy();
        files.extend([
            // Mapping past the end of a file faults with SIGBUS on access: refused at open.
            Hostile::new("map-past-end.npy", short),
            // The header alone, claiming 8 TiB: nothing to map.
            Hostile::new(
                "header-only-claims-2pow40-f64.npy",
                header("(1099511627776,)"),
            ),
        ]);
        files
    }

    fn realistic_files(&self, backend: &dyn Backend, dir: &Path) -> Result<Vec<Realistic>, String> {
        Ok(vec![fixtures::realistic_npy(backend, dir)?])
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &[],
            load: "arr = np.load(path, mmap_mode='r')",
            save: "m = np.lib.format.open_memmap(path, mode='w+', dtype=arr.dtype, shape=arr.shape, fortran_order=bool(arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1))\nif arr.size:\n    m[...] = arr\nm.flush()\ndel m",
        })
    }
}

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
            load: LOAD,
            save: SAVE,
        })
    }

    fn arrays_may_exceed_file(&self) -> bool {
        // Chunks never written read as the fill value.
        true
    }
}

/// zarr-python reads the array; numpy's dtype is given the byte order of the `bytes` codec (a
/// sharded array's inner one), which zarr-python itself reports as native.
const LOAD: &str = "\
def endian(codecs):
    for c in codecs:
        if getattr(c, 'endian', None) is not None:
            return c.endian.value
        if getattr(c, 'codecs', None):
            return endian(c.codecs)
    return None
z = zarr.open_array(path, mode='r')
arr = np.asarray(z[...])
if arr.dtype.itemsize > 1 and endian(z.metadata.codecs) == 'big':
    arr = arr.astype(arr.dtype.newbyteorder('>'))
";

/// zarr-python writes the array in chunks of half each axis, in the array's byte order, with
/// zero as the fill value (so all-zero chunks are not stored).
const SAVE: &str = "\
order = 'big' if arr.dtype.byteorder == '>' else 'little'
z = zarr.create_array(path, shape=arr.shape, dtype=arr.dtype.newbyteorder('='), chunks=tuple(max(1, (n + 1) // 2) for n in arr.shape), fill_value=0, serializer=zarr.codecs.BytesCodec(endian=order), overwrite=True)
z[...] = arr
";

//! The `zarr` backend's conformance suite: the shared checks, driven through its capabilities,
//! on Zarr v3 array directories.

use std::path::Path;

use ndstore_conformance::fixtures::{Hostile, Realistic, Region};
use ndstore_conformance::{Fixtures, PythonInterop, tree};
use ndstore_core::SaveOptions;
use ndstore_zarr::meta::ZarrMeta;

mod zarr_fixtures;

use zarr_fixtures::hostile_trees;

ndstore_conformance::suite!(ndstore_zarr::ZarrBackend, ZarrFixtures);

/// What the `zarr` backend's array directories know.
struct ZarrFixtures;

impl Fixtures for ZarrFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        hostile_trees()
    }

    fn realistic_files(
        &self,
        _backend: &dyn ndstore_core::Backend,
        dir: &Path,
    ) -> Result<Vec<Realistic>, String> {
        zarr_fixtures::realistic_arrays()?
            .into_iter()
            .map(|(name, meta, values)| realistic(dir, name, meta, &values))
            .collect()
    }

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

/// The realistic array `values` of `meta` saved as a tree at `dir/name`, and the map of its
/// packed bytes: the packing's magic and entry headers, `zarr.json` (dense) and the chunks
/// (sampled; every byte under a checksum).
fn realistic(
    dir: &Path,
    name: &str,
    meta: ZarrMeta,
    values: &ndstore_core::DynArray,
) -> Result<Realistic, String> {
    let path = dir.join(name);
    ndstore_zarr::save_with(&path, values, meta, &SaveOptions::default())
        .map_err(|e| e.to_string())?;
    let packed = tree::pack(&path)?;
    let mut regions = vec![Region::dense("tree magic", 0..tree::MAGIC.len() as u64)];
    for entry in tree::entries(&packed) {
        regions.push(Region::dense("tree entry header", entry.header.clone()));
        if entry.content.is_empty() {
            continue;
        }
        regions.push(if entry.path == "zarr.json" {
            Region::dense("zarr.json", entry.content.clone())
        } else {
            Region::sampled("chunk", entry.content.clone()).checksummed()
        });
    }
    Ok(Realistic {
        name: name.to_owned(),
        path,
        loader: None,
        regions,
    })
}

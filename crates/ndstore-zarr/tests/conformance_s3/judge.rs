//! How the object-storage checks judge what a reader finds after a failure or a crash, as CK
//! judges a per-chunk backend: a new array absent or whole, a replaced one with every chunk of
//! the old or the new version under one version's metadata.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Slice};
use ndstore_core::{DynArray, ErrorKind, LoadOptions, SaveOptions};
use ndstore_zarr::object_store::ObjectStore;
use ndstore_zarr::{ObjectTarget, ZarrArray};

use crate::common::bits;

/// The array a fault-free reader finds at `prefix` of `store`, opened again (as the
/// backend's loads do) when a commit replaced its `zarr.json` during the read.
pub fn read(store: Arc<dyn ObjectStore>, prefix: &str) -> ndstore_core::Result<DynArray> {
    let target = ObjectTarget::new(store, "memory://", prefix)?;
    let mut attempt = 1;
    loop {
        let array = ZarrArray::open_object(&target, &SaveOptions::default())?;
        match array.read_all(&LoadOptions::default()) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 16 => attempt += 1,
            result => return result,
        }
    }
}

/// The blocks of `a` in chunks of `chunk`, in C order of the chunk grid.
fn blocks(a: &ArrayD<u64>, chunk: &[usize]) -> Vec<ArrayD<u64>> {
    let grid: Vec<usize> = a
        .shape()
        .iter()
        .zip(chunk)
        .map(|(n, c)| n.div_ceil(*c))
        .collect();
    ndarray::indices(IxDyn(&grid))
        .into_iter()
        .map(|at| {
            a.slice_each_axis(|ax| {
                let i = at[ax.axis.index()] * chunk[ax.axis.index()];
                Slice::from(i..(i + chunk[ax.axis.index()]).min(ax.len))
            })
            .to_owned()
        })
        .collect()
}

/// What a reader found, judged: `Ok(true)` when it is a mix of both versions' chunks.
///
/// `old` is the array the target held before (`None`: there was none), `new` the one being
/// saved, `chunk` their chunk shape; `committed` says whether the new version's commit was
/// acknowledged (it must then be found whole).
pub fn judge(
    found: &ndstore_core::Result<DynArray>,
    old: Option<&DynArray>,
    new: &DynArray,
    chunk: &[usize],
    committed: bool,
) -> Result<bool, String> {
    let new_bits = bits(new);
    let found = match (found, old) {
        (Err(e), None) if e.kind() == ErrorKind::NotFound && !committed => return Ok(false),
        (Err(e), _) => return Err(format!("a reader finds no array: {e}")),
        (Ok(found), _) => bits(found),
    };
    if found.shape() != new_bits.shape() {
        return Err(format!(
            "the array has shape {:?}, not the versions' {:?}",
            found.shape(),
            new_bits.shape()
        ));
    }
    if found == new_bits {
        return Ok(false);
    }
    if committed {
        return Err("the commit was acknowledged, but the array is not the new version".to_owned());
    }
    let Some(old) = old else {
        return Err("a new array is there but not whole".to_owned());
    };
    let old_bits = bits(old);
    if found == old_bits {
        return Ok(false);
    }
    let (mut olds, mut news) = (0, 0);
    for (k, ((f, o), n)) in blocks(&found, chunk)
        .iter()
        .zip(blocks(&old_bits, chunk))
        .zip(blocks(&new_bits, chunk))
        .enumerate()
    {
        if *f == o {
            olds += 1;
        } else if *f == n {
            news += 1;
        } else {
            return Err(format!(
                "chunk {k} is neither the old nor the new version's"
            ));
        }
    }
    Ok(olds > 0 && news > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndstore_core::{DTypeKind, Order};

    #[test]
    fn a_torn_chunk_fails_and_a_mix_of_whole_chunks_is_per_chunk() {
        let shape = [6, 4];
        let old = ndstore_conformance::sample::array(DTypeKind::F64, &shape, Order::C, 1);
        let new = ndstore_conformance::sample::array(DTypeKind::F64, &shape, Order::C, 2);
        let mut mixed = old.clone().into_typed::<f64>().unwrap();
        let new_typed = new.clone().into_typed::<f64>().unwrap();
        // Rows 0..3 are chunk row 0 of chunks [3, 4]: take it whole from the new version.
        for i in 0..3 {
            for j in 0..4 {
                mixed[[i, j]] = new_typed[[i, j]];
            }
        }
        let whole_mix = Ok(DynArray::from(mixed.clone()));
        assert_eq!(
            judge(&whole_mix, Some(&old), &new, &[3, 4], false),
            Ok(true)
        );
        assert!(judge(&whole_mix, Some(&old), &new, &[3, 4], true).is_err());
        assert!(judge(&whole_mix, None, &new, &[3, 4], false).is_err());
        // A chunk with an element of neither version (the samples may agree at a place).
        mixed[[3, 0]] = f64::from_bits(mixed[[3, 0]].to_bits() ^ 1);
        let torn = Ok(DynArray::from(mixed));
        assert!(judge(&torn, Some(&old), &new, &[3, 4], false).is_err());
    }
}

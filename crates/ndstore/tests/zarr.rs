//! The facade opens `.zarr` directories with the `zarr` backend (feature `zarr`).

#![cfg(feature = "zarr")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{ArrayD, IxDyn};

#[test]
fn a_zarr_directory_saves_and_loads_by_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let values = ArrayD::from_shape_fn(IxDyn(&[30, 20]), |i| (i[0] * 20 + i[1]) as f32);
    ndstore::save(&path, &values.clone().into()).unwrap();
    assert!(path.join("zarr.json").is_file());
    let (meta, loaded) = ndstore::load(&path).unwrap();
    assert_eq!(meta.shape, [30, 20]);
    assert!(loaded.bit_eq(&values.into()));
    assert_eq!(ndstore::format_of(&path).unwrap(), ndstore::Format::Zarr);
}

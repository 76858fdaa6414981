//! What the object storage tests share: f64 sample arrays salted with NaN payloads, their
//! bits for comparison, Zarr metadata, loading an array from a target, and targets in the
//! local S3 server's bucket.

#![allow(clippy::unwrap_used, dead_code)]

use ndstore_conformance::python::{S3_BUCKET, S3Server};
use ndstore_core::{DType, DTypeKind, DynArray, LoadOptions, Order, SaveOptions};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::{ObjectTarget, ZarrArray};

/// The metadata of an f64 array of `shape` in chunks of `chunks`.
pub fn f64_meta(shape: &[usize], chunks: &[usize]) -> ZarrMeta {
    ZarrMeta::new(DType::native(DTypeKind::F64), shape, chunks).unwrap()
}

/// A seeded f64 sample array of `shape`.
pub fn sample(shape: &[usize], seed: u64) -> DynArray {
    ndstore_conformance::sample::array(DTypeKind::F64, shape, Order::C, seed)
}

/// The values' bits (NaN payloads compare equal to themselves).
pub fn bits(a: &DynArray) -> ndarray::ArrayD<u64> {
    a.clone().into_typed::<f64>().unwrap().mapv(f64::to_bits)
}

/// The whole array at `target`.
pub fn load(target: &ObjectTarget) -> ndstore_core::Result<DynArray> {
    ZarrArray::open_object(target, &SaveOptions::default())?.read_all(&LoadOptions::default())
}

/// The array at `prefix` in the local S3 server's bucket.
pub fn s3_target(server: &S3Server, prefix: &str) -> ObjectTarget {
    let settings = server.settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ObjectTarget::from_url_with(&format!("s3://{S3_BUCKET}/{prefix}"), &settings).unwrap()
}

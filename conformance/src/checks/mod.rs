//! The checks of the catalogue, and the helpers they share (versioned arrays whose content
//! says which writer and which save made them).

pub mod bad_input;
mod concurrency;
mod crash;
mod durability;
mod interop;
mod power;
mod roundtrip;
mod security;

use ndstore_core::ndarray::{ArrayD, IxDyn};
use ndstore_core::{Backend, DTypeKind, DynArray, Order};

use crate::report::CheckResult;
use crate::{Ctx, sample};

/// Runs the check with catalogue ID `id`.
pub fn run(id: &str, ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    match id {
        "RT" => roundtrip::rt(ctx),
        "FC" => durability::fc(ctx),
        "FD" => durability::fd(ctx),
        "CK" => crash::ck(ctx),
        "CP" => power::cp(ctx),
        "IO" => power::io(ctx),
        "FS" => power::fs(ctx),
        "BI" => bad_input::bi(ctx),
        "CO" => concurrency::co(ctx),
        "SE" => security::se(ctx),
        "IX" => interop::ix(ctx),
        other => Err(format!("unknown check '{other}'")),
    }
}

/// The element type versioned arrays use: the first of f64, i64, i32 the backend stores.
fn version_kind(backend: &dyn Backend) -> DTypeKind {
    let caps = backend.capabilities();
    [DTypeKind::F64, DTypeKind::I64, DTypeKind::I32]
        .into_iter()
        .find(|k| caps.stores(*k))
        .unwrap_or(caps.dtypes.first().copied().unwrap_or(DTypeKind::U8))
}

/// The element count of version `i`: versions alternate between a small and a large array so
/// kills land both in small and in long writes.
pub fn version_len(i: u64) -> usize {
    if i.is_multiple_of(2) { 96 } else { 96 * 1024 }
}

fn version_value(writer: u64, i: u64, j: usize) -> u64 {
    (writer << 44) | ((i & 0xf_ffff) << 24) | (j as u64 & 0xff_ffff)
}

/// Version `i` of writer `writer`: a 1-d array whose every element encodes (writer, i, index).
pub fn versioned(backend: &dyn Backend, writer: u64, i: u64) -> DynArray {
    versioned_with_len(backend, writer, i, version_len(i))
}

/// The element count of in-place versions, which all have one size.
pub const IN_PLACE_LEN: usize = 96 * 1024;

/// Version `i` of writer `writer` with `n` elements.
pub fn versioned_with_len(backend: &dyn Backend, writer: u64, i: u64, n: usize) -> DynArray {
    let values = (0..n).map(|j| version_value(writer, i, j));
    match version_kind(backend) {
        DTypeKind::F64 => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(&[n]), values.map(|v| v as f64).collect())
                .unwrap_or_default(),
        ),
        DTypeKind::I64 => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(&[n]), values.map(|v| v as i64).collect())
                .unwrap_or_default(),
        ),
        _ => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(&[n]), values.map(|v| v as i32).collect())
                .unwrap_or_default(),
        ),
    }
}

/// The encoded (writer, version, index) of every element, for element-wise crash checks.
pub fn element_versions(array: &DynArray) -> Option<Vec<(u64, u64, u64)>> {
    let decode = |v: u64| (v >> 44, (v >> 24) & 0xf_ffff, v & 0xff_ffff);
    match array {
        DynArray::F64(a) => Some(a.iter().map(|v| decode(*v as u64)).collect()),
        DynArray::I64(a) => Some(a.iter().map(|v| decode(*v as u64)).collect()),
        DynArray::I32(a) => Some(a.iter().map(|v| decode(*v as u64)).collect()),
        _ => None,
    }
}

/// Which version an array is, when it is exactly one: (writer, i).
pub fn identify(
    backend: &dyn Backend,
    array: &DynArray,
    writers: u64,
    max_i: u64,
) -> Option<(u64, u64)> {
    let first = match array {
        DynArray::F64(a) => a.iter().next().map(|v| *v as u64),
        DynArray::I64(a) => a.iter().next().map(|v| *v as u64),
        DynArray::I32(a) => a.iter().next().map(|v| *v as u64),
        _ => None,
    }?;
    let (writer, i) = (first >> 44, (first >> 24) & 0xf_ffff);
    if writer >= writers || i > max_i {
        return None;
    }
    array
        .bit_eq(&versioned(backend, writer, i))
        .then_some((writer, i))
}

/// Rows for streaming-writer checks: the row shape and a block of `rows` rows.
pub fn rows_for(backend: &dyn Backend, rows: usize) -> (Vec<usize>, DynArray) {
    let kind = version_kind(backend);
    let rows = if backend.capabilities().bit_exact {
        sample::array(kind, &[rows, 4], Order::C, 0x5eed)
    } else {
        sample::array_without_nan_payloads(kind, &[rows, 4], Order::C, 0x5eed)
    };
    (vec![4], rows)
}

/// Loads through the backend, turning a panic into an error: a check reports a panicking
/// backend as a failure instead of dying with it.
pub fn load(
    backend: &dyn Backend,
    path: &std::path::Path,
) -> Result<(ndstore_core::ArrayMeta, DynArray), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.load(path))) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the backend panicked while loading".to_owned()),
    }
}

//! The checks of the catalogue, and the helpers they share (versioned arrays whose content
//! says which writer and which save made them).

pub mod bad_input;
mod concurrency;
mod crash;
mod durability;
mod interop;
mod power;
mod replace_policy;
mod roundtrip;
mod security;
mod writer_faults;

use ndstore_core::ndarray::{ArrayD, IxDyn};
use ndstore_core::{Backend, DTypeKind, DynArray, Element, Order};

use crate::check::Check;
use crate::report::CheckResult;
use crate::{Ctx, sample};

/// Runs `check`.
pub fn run(check: Check, ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    if let Some(result) = ctx.fixtures.own_check(check, ctx) {
        return result;
    }
    match check {
        Check::RoundTrip => roundtrip::rt(ctx),
        Check::FlushOnClose => durability::fc(ctx),
        Check::FlushOnDrop => durability::fd(ctx),
        Check::Kill => crash::ck(ctx),
        Check::PowerLoss => power::cp(ctx),
        Check::InjectedIo => power::io(ctx),
        Check::FsyncFailure => power::fs(ctx),
        Check::BadInput => bad_input::bi(ctx),
        Check::Concurrency => concurrency::co(ctx),
        Check::Security => security::se(ctx),
        Check::Interop => interop::ix(ctx),
    }
}

/// The cases a check ran and the failures among them, each named.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// How many cases ran.
    pub cases: u64,
    /// `name: what went wrong`, one per failed case.
    pub failures: Vec<String>,
}

impl Tally {
    /// Counts case `name`, and its failure when `result` is one.
    pub fn case(&mut self, name: &str, result: Result<(), String>) {
        self.cases += 1;
        if let Err(e) = result {
            self.failures.push(format!("{name}: {e}"));
        }
    }

    /// The check's result, counted from its cases (see [`CheckResult::counted`]).
    pub fn result(&self, id: Check, what: &str) -> CheckResult {
        CheckResult::counted(id, self.cases, &self.failures, what)
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
    versioned_with_shape(backend, writer, i, &[n])
}

/// Version `i` of writer `writer` in `shape`, its elements numbered in C order.
pub fn versioned_with_shape(
    backend: &dyn Backend,
    writer: u64,
    i: u64,
    shape: &[usize],
) -> DynArray {
    let n = shape.iter().product();
    let values = (0..n).map(|j| version_value(writer, i, j));
    match version_kind(backend) {
        DTypeKind::F64 => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(shape), values.map(|v| v as f64).collect())
                .unwrap_or_default(),
        ),
        DTypeKind::I64 => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(shape), values.map(|v| v as i64).collect())
                .unwrap_or_default(),
        ),
        _ => DynArray::from(
            ArrayD::from_shape_vec(IxDyn(shape), values.map(|v| v as i32).collect())
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

/// Which version an array is, when it is exactly one: (writer, i), for versions sized as
/// [`Sizes::Mixed`].
pub fn identify(
    backend: &dyn Backend,
    array: &DynArray,
    writers: u64,
    max_i: u64,
) -> Option<(u64, u64)> {
    identify_sized(backend, array, writers, max_i, Sizes::Mixed)
}

/// Which version an array is, when it is exactly one: (writer, i). Every element is checked
/// against its encoding, so a torn mix of two versions, a short file or a shuffled block is
/// none.
pub fn identify_sized(
    backend: &dyn Backend,
    array: &DynArray,
    writers: u64,
    max_i: u64,
    sizes: Sizes,
) -> Option<(u64, u64)> {
    let first = match array {
        DynArray::F64(a) => a.iter().next().map(|v| *v as u64),
        DynArray::I64(a) => a.iter().next().map(|v| *v as u64),
        DynArray::I32(a) => a.iter().next().map(|v| *v as u64),
        _ => None,
    }?;
    let (writer, i) = (first >> 44, (first >> 24) & 0xf_ffff);
    if writer >= writers || i > max_i || array.kind() != version_kind(backend) {
        return None;
    }
    let n = sizes.len(i);
    if array.shape() != [n] {
        return None;
    }
    let expected = |j: usize| version_value(writer, i, j);
    let exact = match array {
        DynArray::F64(a) => a
            .iter()
            .enumerate()
            .all(|(j, v)| v.to_bits() == (expected(j) as f64).to_bits()),
        DynArray::I64(a) => a.iter().enumerate().all(|(j, v)| *v == expected(j) as i64),
        DynArray::I32(a) => a.iter().enumerate().all(|(j, v)| *v == expected(j) as i32),
        _ => false,
    };
    exact.then_some((writer, i))
}

/// The bytes of the large cases of the crash, fault and concurrency checks: above every
/// fast-path threshold in the code (the deferred release of replaced files from 4 MiB, eager
/// write-back in 8 MiB slices, two-half text loads from 16 MiB, parallel bulk reads and direct
/// HDF5 reads from 32 MiB).
pub const LARGE_BYTES: usize = 64 << 20;

/// The element count of a large versioned array: [`LARGE_BYTES`] of the versioned element type.
pub fn large_len(backend: &dyn Backend) -> usize {
    LARGE_BYTES / version_kind(backend).itemsize().max(1)
}

/// How many elements each version of a sequence has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sizes {
    /// [`version_len`]: alternately small and large, so kills land in short and in long writes.
    Mixed,
    /// Every version has this many elements.
    Fixed(usize),
}

impl Sizes {
    /// The element count of version `i`.
    pub fn len(self, i: u64) -> usize {
        match self {
            Sizes::Mixed => version_len(i),
            Sizes::Fixed(n) => n,
        }
    }

    /// Version `i` of writer `writer` in this sizing.
    pub fn version(self, backend: &dyn Backend, writer: u64, i: u64) -> DynArray {
        versioned_with_len(backend, writer, i, self.len(i))
    }
}

/// The bytes of the largest version in `sizes`.
pub fn largest_bytes(backend: &dyn Backend, sizes: Sizes) -> usize {
    let itemsize = version_kind(backend).itemsize();
    match sizes {
        Sizes::Mixed => version_len(0).max(version_len(1)) * itemsize,
        Sizes::Fixed(n) => n * itemsize,
    }
}

/// The sizes of a sequence of versions, for a check's detail: `of 768 B and 768 KiB`.
pub fn sizes_text(backend: &dyn Backend, sizes: Sizes) -> String {
    let itemsize = version_kind(backend).itemsize();
    match sizes {
        Sizes::Mixed => format!(
            "of {} and {}",
            size_text(version_len(0) * itemsize),
            size_text(version_len(1) * itemsize)
        ),
        Sizes::Fixed(n) => format!("of {}", size_text(n * itemsize)),
    }
}

/// A size in bytes as a report says it: `64 MiB`, `768 KiB`, `700 B`.
pub fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    } else {
        format!("{bytes} B")
    }
}

/// The size of an array's elements in memory, in bytes.
pub fn array_bytes(array: &DynArray) -> usize {
    array.len() * array.kind().itemsize()
}

/// The bytes a target holds: a file's bytes, or for a backend whose arrays are directory trees
/// the directory packed (every file's path and bytes, see [`crate::tree`]), so "the target was
/// kept" means the same for both.
///
/// # Errors
///
/// The I/O error of reading, as text.
pub fn target_bytes(path: &std::path::Path) -> Result<Vec<u8>, String> {
    crate::tree::read_source(path)
}

/// Puts `bytes` (as [`target_bytes`] gives them: a file's, or a tree packed) at `path`, after
/// removing what was there.
///
/// # Errors
///
/// The I/O error of writing, as text.
pub fn put_target(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    crate::tree::remove(path);
    if crate::tree::is_packed(bytes) {
        crate::tree::unpack(bytes, crate::tree::Damage::None, path)
    } else {
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Equality of kind, shape and every element's bits, as [`DynArray::bit_eq`], but through one
/// comparison of memory when both arrays are contiguous: the large cases compare 64 MiB arrays
/// many times.
pub fn same_bits(a: &DynArray, b: &DynArray) -> bool {
    fn same<T: Element>(a: &ArrayD<T>, b: &DynArray) -> bool {
        let Some(b) = T::view_dyn_array(b) else {
            return false;
        };
        if a.shape() != b.shape() {
            return false;
        }
        match (a.as_slice(), b.as_slice()) {
            (Some(x), Some(y)) => {
                bytemuck::cast_slice::<T, u8>(x) == bytemuck::cast_slice::<T, u8>(y)
            }
            _ => a
                .iter()
                .zip(b.iter())
                .all(|(x, y)| bytemuck::bytes_of(x) == bytemuck::bytes_of(y)),
        }
    }
    ndstore_core::with_dyn_array!(a, |x| same(x, b))
}

/// Rows whose every element encodes (block, its index in the block), for checks that must tell
/// which appended block ended up where: `rows` rows of [`ROW_WIDTH`] elements.
pub fn versioned_rows(backend: &dyn Backend, block: u64, rows: usize) -> DynArray {
    versioned_with_shape(backend, 5, block, &[rows, ROW_WIDTH])
}

/// The row length of streaming-writer checks.
pub const ROW_WIDTH: usize = 4;

/// The rows of [`versioned_rows`] that make [`LARGE_BYTES`].
pub fn large_rows(backend: &dyn Backend) -> usize {
    large_len(backend) / ROW_WIDTH
}

/// Blocks of rows joined along axis 0, as a writer that appended them in order wrote them.
pub fn concat(blocks: &[&DynArray]) -> Option<DynArray> {
    let first = blocks.first()?;
    ndstore_core::with_dtype_kind!(first.kind(), |T| {
        let views: Option<Vec<_>> = blocks.iter().map(|b| T::view_dyn_array(b)).collect();
        ndstore_core::ndarray::concatenate(ndstore_core::ndarray::Axis(0), &views?)
            .ok()
            .map(DynArray::from)
    })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ndstore_core::{ArrayMeta, Capabilities, CrashGuarantee, Error, ErrorKind, SaveOptions};
    use std::path::Path;

    /// Just enough of a backend to choose the versioned element type.
    struct F64Only;

    impl Backend for F64Only {
        fn name(&self) -> &'static str {
            "f64-only"
        }
        fn extension(&self) -> &'static str {
            "x"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                dtypes: vec![DTypeKind::F64],
                both_byte_orders: false,
                fortran_order: false,
                max_ndim: 1,
                bit_exact: true,
                partial_io: false,
                streaming_append: false,
                memory_map: false,
                compression: false,
                crash: CrashGuarantee::None,
                in_place: None,
                interop: false,
            }
        }
        fn save(&self, _: &Path, _: &DynArray, _: &SaveOptions) -> ndstore_core::Result<()> {
            Err(Error::new(ErrorKind::Unsupported, "no saves"))
        }
        fn load_with(
            &self,
            _: &Path,
            _: &ndstore_core::LoadOptions,
        ) -> ndstore_core::Result<(ArrayMeta, DynArray)> {
            Err(Error::new(ErrorKind::Unsupported, "no loads"))
        }
        fn load_as(&self, _: &Path, _: DTypeKind) -> ndstore_core::Result<DynArray> {
            Err(Error::new(ErrorKind::Unsupported, "no loads"))
        }
        fn read_meta(&self, _: &Path) -> ndstore_core::Result<ArrayMeta> {
            Err(Error::new(ErrorKind::Unsupported, "no loads"))
        }
    }

    #[test]
    fn a_large_version_is_identified_and_every_damage_to_it_is_not() {
        let b = F64Only;
        let n = large_len(&b);
        assert_eq!(n * 8, LARGE_BYTES);
        let sizes = Sizes::Fixed(n);
        let v = sizes.version(&b, 1, 7);
        assert_eq!(identify_sized(&b, &v, 2, 10, sizes), Some((1, 7)));
        // Its last element from another version: a torn mix.
        let mut torn = v.clone().into_typed::<f64>().unwrap();
        torn[[n - 1]] = version_value(1, 6, n - 1) as f64;
        let torn = DynArray::from(torn);
        assert_eq!(identify_sized(&b, &torn, 2, 10, sizes), None);
        assert!(!same_bits(&torn, &v));
        // Short by one element.
        let short = versioned_with_len(&b, 1, 7, n - 1);
        assert_eq!(identify_sized(&b, &short, 2, 10, sizes), None);
        // A writer or version out of range.
        assert_eq!(identify_sized(&b, &v, 1, 10, sizes), None);
        assert_eq!(identify_sized(&b, &v, 2, 6, sizes), None);
        assert!(same_bits(&v, &sizes.version(&b, 1, 7)));
    }

    #[test]
    fn versioned_rows_number_their_elements_in_c_order_and_concatenate() {
        let b = F64Only;
        let one = versioned_rows(&b, 1, 3);
        let two = versioned_rows(&b, 2, 2);
        assert_eq!(one.shape(), [3, ROW_WIDTH]);
        let both = concat(&[&one, &two]).unwrap();
        assert_eq!(both.shape(), [5, ROW_WIDTH]);
        let elements = element_versions(&both).unwrap();
        assert_eq!(elements[0], (5, 1, 0));
        assert_eq!(elements[11], (5, 1, 11));
        assert_eq!(elements[12], (5, 2, 0));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(LARGE_BYTES), "64 MiB");
        assert_eq!(size_text(96 * 1024 * 8), "768 KiB");
        assert_eq!(size_text(700), "700 B");
        assert_eq!(size_text(3 << 19), "1.5 MiB");
    }
}

//! The harness proves it can fail: a deliberately broken backend — in-place overwrites that
//! claim to be atomic, a reader that panics on short files, byte order dropped on save — must
//! get FAIL from RT, CK, CO and BI.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use ndstore_conformance::{Status, check};
use ndstore_core::ndarray::{ArrayD, IxDyn};
use ndstore_core::{
    ArrayMeta, Backend, Capabilities, CrashGuarantee, DType, DTypeKind, DynArray, Error, ErrorKind,
    LoadOptions, Order, Result, SaveOptions,
};

/// Stores f64 arrays as a count followed by the values, rewriting the file in place (as
/// `np.save` does) while declaring atomic replace.
struct Broken;

impl Backend for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn extension(&self) -> &'static str {
        "brk"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: vec![DTypeKind::F64],
            both_byte_orders: true,
            fortran_order: false,
            max_ndim: 1,
            bit_exact: true,
            atomic_replace: true,
            in_place_update: false,
            partial_io: false,
            streaming_append: false,
            memory_map: false,
            compression: false,
            crash: CrashGuarantee::AtomicReplace,
            in_place_crash: CrashGuarantee::None,
            interop: false,
        }
    }
    fn save(&self, path: &Path, array: &DynArray, _: &SaveOptions) -> Result<()> {
        let values: Vec<f64> = match array {
            DynArray::F64(a) => a.iter().copied().collect(),
            _ => return Err(Error::new(ErrorKind::Unsupported, "f64 only")),
        };
        // Truncate, then write piece by piece: a crash or a reader in between sees a torn file.
        let mut file = std::fs::File::create(path).map_err(|e| Error::io("create", e))?;
        file.write_all(&(values.len() as u64).to_le_bytes())
            .map_err(|e| Error::io("write", e))?;
        for chunk in values.chunks(512) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&bytes).map_err(|e| Error::io("write", e))?;
        }
        Ok(())
    }
    fn load_with(&self, path: &Path, _: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", e))?;
        // Broken on purpose: trusts the count and slices without checking.
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let values: Vec<f64> = (0..n)
            .map(|i| f64::from_le_bytes(bytes[8 + i * 8..16 + i * 8].try_into().unwrap()))
            .collect();
        let meta = ArrayMeta::new(
            DType::new(DTypeKind::F64, ndstore_core::ByteOrder::Little),
            vec![n],
            Order::C,
        );
        Ok((
            meta,
            DynArray::from(ArrayD::from_shape_vec(IxDyn(&[n]), values).unwrap()),
        ))
    }
    fn load_as(&self, path: &Path, _: DTypeKind) -> Result<DynArray> {
        self.load(path).map(|(_, a)| a)
    }
    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        self.load(path).map(|(m, _)| m)
    }
}

mod conformance {
    /// The entry point of the harness's child processes for the broken backend.
    #[test]
    fn child_entry() {
        ndstore_conformance::child::entry(&super::Broken);
    }
}

#[test]
fn round_trip_catches_a_dropped_byte_order_and_shape() {
    let result = check("RT", &Broken);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
    assert!(result.failures > 0);
}

#[test]
fn kill_check_catches_in_place_overwrites() {
    let result = check("CK", &Broken);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
}

#[test]
fn concurrency_check_catches_torn_reads() {
    let result = check("CO", &Broken);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
}

#[test]
fn bad_input_check_catches_a_panicking_reader() {
    let result = check("BI", &Broken);
    assert_eq!(result.status, Status::Fail, "{}", result.detail);
    assert!(result.detail.contains("panic"), "{}", result.detail);
}

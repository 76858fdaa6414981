//! What a backend promises, as plain data. The conformance harness reads it to decide which
//! checks run; a backend never picks its own list.

use serde::{Deserialize, Serialize};

use crate::dtype::DTypeKind;

/// What happens to a file when the process or the machine dies during a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashGuarantee {
    /// Saves replace the target atomically: after a crash it holds the old or the new version,
    /// and once a synced save returned, the new one.
    AtomicReplace,
    /// In-place updates: what was synced is durable; unsynced changes may be lost or torn.
    SyncedIsDurable,
    /// No guarantee: a crash mid-write may leave the file unreadable.
    None,
}

/// A backend's declared abilities, filled in by the backend and read by the harness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The element types the backend stores.
    pub dtypes: Vec<DTypeKind>,
    /// Elements can be stored in the non-native byte order, and the order is recorded.
    pub both_byte_orders: bool,
    /// Fortran (column-major) order is recorded and restored.
    pub fortran_order: bool,
    /// The most dimensions an array may have.
    pub max_ndim: usize,
    /// Values come back bit for bit, NaN payloads included.
    pub bit_exact: bool,
    /// Whole-array saves replace the target atomically.
    pub atomic_replace: bool,
    /// Existing data can be updated in place through an open handle.
    pub in_place_update: bool,
    /// Parts of an array can be read or written without the rest.
    pub partial_io: bool,
    /// A writer can append along axis 0 without holding the whole array.
    pub streaming_append: bool,
    /// Arrays can be memory-mapped.
    pub memory_map: bool,
    /// Data can be stored compressed.
    pub compression: bool,
    /// What survives a crash during a whole-array save.
    pub crash: CrashGuarantee,
    /// What survives a crash during in-place updates (`None` when there are none).
    pub in_place_crash: CrashGuarantee,
    /// A reference implementation (numpy, h5py) reads and writes the same files.
    pub interop: bool,
}

impl Capabilities {
    /// True when the backend stores `kind`.
    pub fn stores(&self, kind: DTypeKind) -> bool {
        self.dtypes.contains(&kind)
    }
}

//! What a backend promises, as plain data. The conformance harness reads it to decide which
//! checks run; a backend never picks its own list.
//!
//! The shape leaves no room for contradictions: whether saves replace atomically is read off
//! the crash guarantee of a save ([`Capabilities::atomic_replace`]), and whether there are
//! in-place handles off the guarantee those handles give ([`Capabilities::in_place`]), so no
//! flag can say one thing while a guarantee says another.

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
    /// Saves of a chunked array where there is no atomic rename (object storage): a new array
    /// appears whole or not at all; replacing an existing one is atomic per chunk: after a
    /// crash every chunk holds its old or its new version, never a torn one, and the metadata
    /// is one version's.
    PerChunk,
    /// No guarantee: a crash mid-write may leave the file unreadable.
    None,
}

/// A backend's declared abilities, filled in by the backend and read by the harness.
///
/// ```
/// use ndstore_core::{Capabilities, CrashGuarantee, DTypeKind};
///
/// let caps = Capabilities {
///     dtypes: DTypeKind::ALL.to_vec(),
///     both_byte_orders: true,
///     fortran_order: true,
///     max_ndim: 32,
///     bit_exact: true,
///     partial_io: false,
///     streaming_append: true,
///     memory_map: false,
///     compression: false,
///     crash: CrashGuarantee::AtomicReplace,
///     in_place: None,
///     interop: true,
/// };
/// assert!(caps.atomic_replace());
/// assert!(!caps.in_place_update());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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
    /// Parts of an array can be read or written without the rest.
    pub partial_io: bool,
    /// A writer can append along axis 0 without holding the whole array.
    pub streaming_append: bool,
    /// Arrays can be memory-mapped.
    pub memory_map: bool,
    /// The backend's format can hold compressed data and the backend's crate writes it (through
    /// its own options: the trait's `save` writes uncompressed), and reads it back.
    pub compression: bool,
    /// What survives a crash during a whole-array save ([`CrashGuarantee::AtomicReplace`],
    /// [`CrashGuarantee::PerChunk`] or [`CrashGuarantee::None`]).
    pub crash: CrashGuarantee,
    /// `Some` when existing data can be updated in place through an open handle
    /// ([`Backend::open_in_place`](crate::Backend::open_in_place)), with what survives a crash
    /// during such updates; `None` when the backend has no in-place handle.
    pub in_place: Option<CrashGuarantee>,
    /// A reference implementation (numpy, h5py) reads and writes the same files.
    pub interop: bool,
}

impl Capabilities {
    /// True when the backend stores `kind`.
    pub fn stores(&self, kind: DTypeKind) -> bool {
        self.dtypes.contains(&kind)
    }

    /// Whole-array saves replace the target atomically: the save's crash guarantee says so.
    /// False for [`CrashGuarantee::PerChunk`], whose replacements may mix chunks.
    pub fn atomic_replace(&self) -> bool {
        self.crash == CrashGuarantee::AtomicReplace
    }

    /// Whole-array saves replace the target atomically per chunk only
    /// ([`CrashGuarantee::PerChunk`]): a new target appears whole or not at all, a replaced
    /// one holds each chunk of the old or the new version.
    pub fn per_chunk_replace(&self) -> bool {
        self.crash == CrashGuarantee::PerChunk
    }

    /// Existing data can be updated in place through an open handle.
    pub fn in_place_update(&self) -> bool {
        self.in_place.is_some()
    }
}

// The derives generate inherent `Capabilities::serialize` and `Capabilities::deserialize`
// (`remote = "Self"`); the trait impls below add the derived flags to what is written.
impl Serialize for Capabilities {
    /// The fields, plus the derived `atomic_replace`, `per_chunk_replace` and
    /// `in_place_update`, so a reader of the harness's JSON report sees them without deriving
    /// them.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Declared {
            fields: Fields(self),
            atomic_replace: self.atomic_replace(),
            per_chunk_replace: self.per_chunk_replace(),
            in_place_update: self.in_place_update(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    /// The fields; the derived flags of a written report are ignored.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Capabilities, D::Error> {
        Capabilities::deserialize(deserializer)
    }
}

/// The declared fields, as the derive writes them.
struct Fields<'a>(&'a Capabilities);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Capabilities::serialize(self.0, serializer)
    }
}

/// What is written: the fields and the derived flags.
#[derive(Serialize)]
struct Declared<'a> {
    #[serde(flatten)]
    fields: Fields<'a>,
    atomic_replace: bool,
    per_chunk_replace: bool,
    in_place_update: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn caps(crash: CrashGuarantee, in_place: Option<CrashGuarantee>) -> Capabilities {
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
            crash,
            in_place,
            interop: false,
        }
    }

    #[test]
    fn derived_capabilities_follow_the_guarantees() {
        let atomic = caps(CrashGuarantee::AtomicReplace, None);
        assert!(atomic.atomic_replace());
        assert!(!atomic.in_place_update());
        let unsafe_saves = caps(CrashGuarantee::None, Some(CrashGuarantee::None));
        assert!(!unsafe_saves.atomic_replace());
        // A handle without a crash guarantee is still a handle.
        assert!(unsafe_saves.in_place_update());
        let per_chunk = caps(CrashGuarantee::PerChunk, None);
        assert!(!per_chunk.atomic_replace());
        assert!(per_chunk.per_chunk_replace());
        assert!(!atomic.per_chunk_replace());
    }

    #[test]
    fn the_json_carries_the_derived_flags_and_reads_back() {
        let declared = caps(
            CrashGuarantee::AtomicReplace,
            Some(CrashGuarantee::SyncedIsDurable),
        );
        let json = serde_json::to_value(&declared).unwrap();
        assert_eq!(json["atomic_replace"], true);
        assert_eq!(json["in_place_update"], true);
        assert_eq!(json["in_place"], "synced_is_durable");
        assert_eq!(json["per_chunk_replace"], false);
        let back: Capabilities = serde_json::from_value(json).unwrap();
        assert_eq!(back, declared);
        let per_chunk = caps(CrashGuarantee::PerChunk, None);
        let json = serde_json::to_value(&per_chunk).unwrap();
        assert_eq!(json["crash"], "per_chunk");
        assert_eq!(json["per_chunk_replace"], true);
        assert_eq!(json["atomic_replace"], false);
        let back: Capabilities = serde_json::from_value(json).unwrap();
        assert_eq!(back, per_chunk);
    }
}

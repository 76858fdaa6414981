//! The durability vocabulary (flush, sync, close, commit) as traits of the objects that own
//! buffers, and the options that choose how a save reaches the disk.
//!
//! A plain ndarray has no flush: it owns no file. Only handles implement these traits.

use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, ErrorKind, Result};

/// A handle that owns buffers on the way to a file.
///
/// - `flush` hands user-space buffers to the operating system: another process reading the
///   file now sees the data, but a power loss may still lose it.
/// - `sync` flushes and then asks the OS to put the data on the medium (fsync, or msync with
///   `MS_SYNC` for a mapping), plus the parent directory when a directory entry changed.
///
/// After a failed sync the handle is poisoned: every later `sync` and `close`/`commit` fails
/// with [`ErrorKind::Poisoned`](crate::ErrorKind::Poisoned). Retrying fsync cannot bring lost
/// pages back; recovery is a fresh atomic save.
pub trait Durable {
    /// Hands buffered data to the operating system.
    ///
    /// # Errors
    ///
    /// The I/O error of handing the buffers over; `ErrorKind::Poisoned` after an earlier failure of
    /// a handle that poisons.
    fn flush(&mut self) -> Result<()>;
    /// Flushes, then makes the data durable on the medium.
    ///
    /// # Errors
    ///
    /// The I/O error of fsync (or msync), which poisons the handle; `ErrorKind::Poisoned` after an
    /// earlier failed sync.
    fn sync(&mut self) -> Result<()>;
}

/// A handle that writes in place and is finished by closing it.
pub trait Close {
    /// Flushes (and syncs, when the handle's [`Durability`] says so), releases the handle and
    /// returns the first error seen. Dropping instead of closing flushes on a best-effort basis
    /// and can only log its errors.
    ///
    /// # Errors
    ///
    /// The first error of the flush, the sync or the release; `ErrorKind::Poisoned` after a failed
    /// sync.
    fn close(self) -> Result<()>;
}

/// A writer whose result appears at the target only when committed.
pub trait Commit {
    /// Writes everything out, syncs the temporary file, renames it over the target and syncs the
    /// directory. Dropping instead of committing rolls back: the target keeps its old content.
    ///
    /// # Errors
    ///
    /// The first error of writing out, syncing, renaming or syncing the directory; the target keeps
    /// its old content when the commit fails before the rename.
    fn commit(self) -> Result<()>;
}

/// How a save replaces an existing file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replace {
    /// Write a temporary file beside the target and rename it over the target: readers and
    /// crashes see the old or the new version, never a mixture.
    #[default]
    Atomic,
    /// Truncate and rewrite the target itself, as `np.save` does: faster on some file systems,
    /// but a crash mid-write leaves a damaged file.
    InPlace,
}

/// How far a save goes before it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync the data (and the directory, for a new or renamed entry) before returning: the save
    /// survives power loss once it returns.
    #[default]
    Synced,
    /// Hand the data to the operating system only: it survives the process crashing, not the
    /// machine losing power.
    Flushed,
}

/// Options for a save. The default is atomic replace with sync, in the native byte order.
///
/// ```
/// use ndstore_core::{ByteOrder, SaveOptions};
/// let fast = SaveOptions::new().flushed();
/// let numpy_like = SaveOptions::new().in_place().flushed();
/// let big = SaveOptions::new().byte_order(ByteOrder::Big);
/// # let _ = (fast, numpy_like, big);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveOptions {
    /// Atomic replace or in-place rewrite.
    pub replace: Replace,
    /// Synced or only flushed.
    pub durability: Durability,
    /// The byte order to store elements in; `None` is the native order.
    pub byte_order: Option<ByteOrder>,
    /// Replace a file the caller could not open for writing (mode 0444, say), as `rm -f` and
    /// editors' forced saves do. Off by default: such a save fails with
    /// [`ErrorKind::PermissionDenied`] and the file stays, as `np.save` fails with EACCES.
    pub replace_read_only: bool,
    /// Let a replaced file change owner when its owner cannot be kept (a caller that is not
    /// root replacing another user's file in a directory it may write). Off by default: such a
    /// save fails with [`ErrorKind::PermissionDenied`] and the file stays.
    pub allow_owner_change: bool,
}

impl SaveOptions {
    /// The defaults: atomic, synced, native byte order.
    pub fn new() -> SaveOptions {
        SaveOptions::default()
    }

    /// Rewrites the target in place instead of replacing it atomically.
    #[must_use]
    pub fn in_place(mut self) -> SaveOptions {
        self.replace = Replace::InPlace;
        self
    }

    /// Returns after handing the data to the OS, without fsync.
    #[must_use]
    pub fn flushed(mut self) -> SaveOptions {
        self.durability = Durability::Flushed;
        self
    }

    /// Chooses the replace mode.
    #[must_use]
    pub fn replace(mut self, replace: Replace) -> SaveOptions {
        self.replace = replace;
        self
    }

    /// Chooses the durability.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> SaveOptions {
        self.durability = durability;
        self
    }

    /// Replaces files the caller could not open for writing (see the field).
    #[must_use]
    pub fn replace_read_only(mut self) -> SaveOptions {
        self.replace_read_only = true;
        self
    }

    /// Lets a replaced file change owner when its owner cannot be kept (see the field).
    #[must_use]
    pub fn allow_owner_change(mut self) -> SaveOptions {
        self.allow_owner_change = true;
        self
    }

    /// Stores elements in `byte_order` (ignored for single-byte types).
    #[must_use]
    pub fn byte_order(mut self, byte_order: ByteOrder) -> SaveOptions {
        self.byte_order = Some(byte_order);
        self
    }

    /// The byte order a streaming writer of `dtype` stores elements in: the dtype's own, which
    /// [`SaveOptions::byte_order`] may repeat but not contradict. One source of truth for every
    /// writer: whole-array saves take the options' order (an in-memory array has only the
    /// native one), writers the dtype's.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the options ask for
    /// another byte order than the dtype's.
    pub fn byte_order_for(&self, dtype: DType) -> Result<ByteOrder> {
        let dtype = DType::new(dtype.kind, dtype.byte_order);
        match self.byte_order {
            Some(asked) if dtype.kind.has_byte_order() => {
                let asked = DType::new(dtype.kind, asked).byte_order;
                if asked != dtype.byte_order {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the dtype {dtype} says {:?} byte order but the save options say {asked:?}; give the order in one place",
                            dtype.byte_order
                        ),
                    ));
                }
                Ok(asked)
            }
            _ => Ok(dtype.byte_order),
        }
    }

    /// The byte order elements will be stored in.
    pub fn effective_byte_order(&self) -> ByteOrder {
        match self.byte_order {
            None | Some(ByteOrder::NotApplicable) => ByteOrder::native(),
            Some(order) => order,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::dtype::DTypeKind;

    #[test]
    fn a_writer_byte_order_has_one_source() {
        let big = DType::new(DTypeKind::F64, ByteOrder::Big);
        assert_eq!(
            SaveOptions::new().byte_order_for(big).unwrap(),
            ByteOrder::Big
        );
        assert_eq!(
            SaveOptions::new()
                .byte_order(ByteOrder::Big)
                .byte_order_for(big)
                .unwrap(),
            ByteOrder::Big
        );
        let err = SaveOptions::new()
            .byte_order(ByteOrder::Little)
            .byte_order_for(big)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // Single-byte kinds have no order to contradict.
        let byte = DType::native(DTypeKind::U8);
        assert_eq!(
            SaveOptions::new()
                .byte_order(ByteOrder::Big)
                .byte_order_for(byte)
                .unwrap(),
            ByteOrder::NotApplicable
        );
    }
}

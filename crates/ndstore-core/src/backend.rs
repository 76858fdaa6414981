//! The traits through which the conformance harness (and any generic caller) drives a backend:
//! whole-array save and load, metadata, and streaming writers.

use std::path::Path;

use crate::array::DynArray;
use crate::capabilities::Capabilities;
use crate::dtype::DTypeKind;
use crate::durability::{Durable, SaveOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::load::LoadOptions;
use crate::meta::ArrayMeta;

/// A storage backend for one file format.
///
/// Implementations are stateless values (`struct NpyBackend;`); handles carry the state.
pub trait Backend: Send + Sync + 'static {
    /// The name the conformance report uses: `file`, `mmap`, `hdf5` or `text`.
    fn name(&self) -> &'static str;

    /// The file extension the backend's files carry, without the dot.
    fn extension(&self) -> &'static str;

    /// What the backend promises.
    fn capabilities(&self) -> Capabilities;

    /// Saves `array` at `path`, replacing any file there as `options` say.
    ///
    /// # Errors
    ///
    /// The backend's I/O errors (`ErrorKind::StorageFull`, `ErrorKind::PermissionDenied`, ...),
    /// `ErrorKind::Locked` in place, and `ErrorKind::UnsupportedDType` for an array the format
    /// cannot hold; a failed atomic save leaves the target's old content.
    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()>;

    /// Loads the whole array with its stored metadata, with the default [`LoadOptions`].
    ///
    /// # Errors
    ///
    /// As [`Backend::load_with`].
    fn load(&self, path: &Path) -> Result<(ArrayMeta, DynArray)> {
        self.load_with(path, &LoadOptions::default())
    }

    /// Loads the whole array with its stored metadata, never allocating more than the file can
    /// justify or `options.memory_limit` allows.
    ///
    /// # Errors
    ///
    /// An error naming the file and, for damaged input, the place; [`ErrorKind::OutOfMemory`]
    /// when the array is over the memory limit or the allocator refuses.
    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)>;

    /// Loads the array as element type `kind`, failing with
    /// [`ErrorKind::TypeMismatch`] before reading the data when the file holds another type.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch` when the file holds another element type; the errors of
    /// `Backend::load_with`.
    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray>;

    /// Reads only the metadata; never touches (or allocates for) the data.
    ///
    /// # Errors
    ///
    /// An error naming the file and, for damaged input, the place.
    fn read_meta(&self, path: &Path) -> Result<ArrayMeta>;

    /// Opens a streaming writer for arrays of `dtype` whose axes after the first are
    /// `row_shape`; rows are appended along axis 0.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Unsupported` when the backend has no streaming writer (the default);
    /// `ErrorKind::InvalidInput` when the options contradict the dtype's byte order; the errors of
    /// creating the file, as `OutputFile::create`.
    fn writer(
        &self,
        path: &Path,
        dtype: crate::DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        let _ = (dtype, row_shape, options);
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("the {} backend has no streaming writer", self.name()),
        )
        .with_path(path))
    }

    /// Opens an existing array for in-place updates (declared by [`Capabilities::in_place`]). The handle
    /// syncs on close when `options.durability` is `Synced`.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Unsupported` when the backend has no in-place handles (the default);
    /// `ErrorKind::Locked` when another handle holds the file; the errors of opening it and reading
    /// its metadata.
    fn open_in_place(&self, path: &Path, options: &SaveOptions) -> Result<Box<dyn InPlaceArray>> {
        let _ = options;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("the {} backend cannot update files in place", self.name()),
        )
        .with_path(path))
    }
}

/// An open handle that updates an existing array in place (a read-write memory map, an HDF5
/// dataset), with the durability vocabulary ([`Durable`]: `flush` hands the changes to the
/// operating system, `sync` makes them durable). It holds an exclusive lock while open.
pub trait InPlaceArray: Durable + Send {
    /// What the array is.
    fn meta(&self) -> &ArrayMeta;
    /// Overwrites every element with `values`, which must have the array's kind and shape.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] or [`ErrorKind::TypeMismatch`] when `values` do not fit;
    /// the backend's I/O errors.
    fn write_all(&mut self, values: &DynArray) -> Result<()>;
    /// Reads every element.
    ///
    /// # Errors
    ///
    /// The backend's I/O errors, and [`ErrorKind::OutOfMemory`] when the copy cannot be
    /// allocated.
    fn read(&self) -> Result<DynArray>;
    /// Flushes (and syncs, when the handle's durability says so) and releases the handle.
    ///
    /// # Errors
    ///
    /// The first error of the flush, the sync or the release; [`ErrorKind::Poisoned`] after
    /// an earlier failed sync.
    fn close(self: Box<Self>) -> Result<()>;
    /// Releases the handle without the flush and sync `close` would do, and reports what
    /// dropping it would only log. Changes already handed to the operating system stay (a
    /// memory map's stores are in the file's pages as soon as they are made).
    ///
    /// # Errors
    ///
    /// The error of releasing the handle (closing the file).
    fn abort(self: Box<Self>) -> Result<()>;
}

/// A writer that appends rows along axis 0 and publishes the array on commit.
///
/// The durability vocabulary applies: `flush` and `sync` ([`Durable`]), `commit`, `abort`;
/// dropping an uncommitted writer rolls back (atomic) or leaves what was flushed (in place),
/// and never panics.
pub trait ArrayWriter: Durable + Send {
    /// Appends rows: an array whose shape is `[n, row_shape...]` and whose element type is the
    /// writer's.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TypeMismatch`] or [`ErrorKind::InvalidInput`] for rows that do not fit;
    /// I/O errors, which poison the writer.
    fn append(&mut self, rows: &DynArray) -> Result<()>;
    /// Completes the file (header, index) and publishes it.
    ///
    /// # Errors
    ///
    /// The first error of completing, syncing or publishing the file; the target keeps its
    /// old content when an atomic commit fails.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Abandons the writer and reports whether the rollback worked, where dropping it can only
    /// log: atomic, the target keeps its old content and no temporary file is left; in place,
    /// the target is cut back to its last flush.
    ///
    /// # Errors
    ///
    /// The error of the rollback: a temporary file that cannot be removed, an in-place file
    /// that cannot be cut back or closed.
    fn abort(self: Box<Self>) -> Result<()>;
}

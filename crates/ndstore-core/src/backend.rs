//! The traits through which the conformance harness (and any generic caller) drives a backend:
//! whole-array save and load, metadata, and streaming writers.

use std::path::Path;

use crate::array::DynArray;
use crate::capabilities::Capabilities;
use crate::dtype::DTypeKind;
use crate::durability::SaveOptions;
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
    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray>;

    /// Reads only the metadata; never touches (or allocates for) the data.
    fn read_meta(&self, path: &Path) -> Result<ArrayMeta>;

    /// Opens a streaming writer for arrays of `dtype` whose axes after the first are
    /// `row_shape`; rows are appended along axis 0.
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
/// dataset), with the durability vocabulary. It holds an exclusive lock while open.
pub trait InPlaceArray: Send {
    /// What the array is.
    fn meta(&self) -> &ArrayMeta;
    /// Overwrites every element with `values`, which must have the array's kind and shape.
    fn write_all(&mut self, values: &DynArray) -> Result<()>;
    /// Reads every element.
    fn read(&self) -> Result<DynArray>;
    /// Hands the changes to the operating system: other processes see them.
    fn flush(&mut self) -> Result<()>;
    /// Makes the changes durable.
    fn sync(&mut self) -> Result<()>;
    /// Flushes (and syncs, when the handle's durability says so) and releases the handle.
    fn close(self: Box<Self>) -> Result<()>;
}

/// A writer that appends rows along axis 0 and publishes the array on commit.
///
/// The durability vocabulary applies: `flush`, `sync`, `commit`; dropping an uncommitted
/// writer rolls back (atomic) or leaves what was flushed (in place), and never panics.
pub trait ArrayWriter: Send {
    /// Appends rows: an array whose shape is `[n, row_shape...]` and whose element type is the
    /// writer's.
    fn append(&mut self, rows: &DynArray) -> Result<()>;
    /// Hands buffered rows to the operating system.
    fn flush(&mut self) -> Result<()>;
    /// Flushes and fsyncs what was written so far.
    fn sync(&mut self) -> Result<()>;
    /// Completes the file (header, index) and publishes it.
    fn commit(self: Box<Self>) -> Result<()>;
}

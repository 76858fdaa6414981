//! An HDF5 dataset open for in-place updates, with flush (H5Fflush) and sync (H5Fflush, then
//! fsync of libhdf5's own descriptor — libhdf5 never fsyncs on its own).

use std::path::{Path, PathBuf};

use hdf5_metno::{Dataset, File};
use ndstore_core::{
    ArrayMeta, Durability, Durable, DynArray, Error, ErrorKind, InPlaceArray, Result,
    with_dtype_kind, with_dyn_array,
};

use crate::h5::{At, H5Element, init};
use crate::read::{self, describe};

/// A dataset open read-write, in this process: for files you trust (libhdf5 parses and edits
/// the file here; see [`crate::trusted`] for what that risks). Before libhdf5 opens the file
/// here, the isolated reader opens it and reads the dataset's metadata, so a file that crashes
/// libhdf5 on opening is refused instead.
///
/// libhdf5 locks the file while it is open, so a second writer gets [`ErrorKind::Locked`].
/// After a failed sync the handle is poisoned: every later sync and `close` fail, whatever the
/// durability. Dropped without `close`, it flushes (errors logged) and closes.
pub struct H5InPlace {
    file: Option<File>,
    dataset: Option<Dataset>,
    meta: ArrayMeta,
    path: PathBuf,
    name: String,
    durability: Durability,
    poisoned: bool,
}

impl H5InPlace {
    /// Opens dataset `name` of the file at `path` for in-place updates.
    ///
    /// # Errors
    ///
    /// `Locked` when another handle holds the file; the errors of [`crate::load_dyn`] when the
    /// file or the dataset cannot be read.
    pub fn open(path: impl AsRef<Path>, name: &str, durability: Durability) -> Result<H5InPlace> {
        init();
        let path = path.as_ref();
        let source = crate::isolated::Source::open(path)?;
        crate::isolated::check_before_editing(path, &source, name)?;
        let checked = identity(&source.file.metadata());
        // The source's shared lock would refuse libhdf5's exclusive one: it goes first, and the
        // file libhdf5 opens is then compared with the one the reader checked.
        drop(source);
        let file = File::open_rw(path).map_err(|e| At::file(path).h5(e))?;
        crate::h5::close_on_exec(&file);
        let opened = crate::sys::vfd_descriptor(&file)
            .map(|fd| identity(&std::fs::metadata(format!("/proc/self/fd/{fd}"))));
        if let (Some(checked), Some(Some(opened))) = (checked, opened)
            && checked != opened
        {
            return Err(Error::new(
                ErrorKind::Io,
                "the file was replaced between its check in the isolated reader and its opening; \
                 nothing was changed, open it again",
            )
            .with_path(path));
        }
        let at = At::new(path, name);
        let dataset = read::open_dataset(&file, at)?;
        let meta = describe(&dataset, at)?;
        Ok(H5InPlace {
            file: Some(file),
            dataset: Some(dataset),
            meta,
            path: path.to_path_buf(),
            name: name.to_owned(),
            durability,
            poisoned: false,
        })
    }

    /// The dataset, for errors.
    fn at(&self) -> At<'_> {
        At::new(&self.path, &self.name)
    }

    fn dataset(&self) -> Result<&Dataset> {
        self.dataset.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the handle is closed").with_path(&self.path)
        })
    }

    fn write_typed<T: H5Element>(&self, view: ndarray::ArrayViewD<'_, T>) -> Result<()> {
        let dataset = self.dataset()?;
        let standard = view.as_standard_layout();
        dataset.write(&standard).map_err(|e| self.at().h5(e))
    }

    /// Reads the box `ranges` (one range per axis) of the dataset, C-ordered.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the axis when the box does not fit; libhdf5's errors.
    pub fn read_slice(&self, ranges: &[std::ops::Range<usize>]) -> Result<DynArray> {
        let dataset = self.dataset()?;
        with_dtype_kind!(self.meta.dtype.kind, |T| {
            crate::trusted::read_box_values::<T>(dataset, &self.meta, ranges, None, self.at())
                .map(DynArray::from)
        })
    }

    /// Writes `values` into the dataset with their first element at `start` (one index per
    /// axis), leaving the rest of the dataset as it is. The values must have the dataset's
    /// element type.
    ///
    /// # Errors
    ///
    /// `TypeMismatch` for values of another element type, `InvalidInput` when they do not fit,
    /// libhdf5's errors.
    pub fn write_slice(&mut self, start: &[usize], values: &DynArray) -> Result<()> {
        if values.kind() != self.meta.dtype.kind {
            let mismatch =
                ndstore_core::__private::array::type_mismatch(self.meta.dtype.kind, values.kind());
            return Err(self.at().locate(mismatch));
        }
        let dataset = self.dataset()?;
        with_dyn_array!(values, |a| crate::slice::write_box(
            dataset,
            start,
            a.view(),
            self.at()
        ))
    }

    fn flush_file(&self) -> Result<()> {
        match &self.file {
            Some(file) => file.flush().map_err(|e| At::file(&self.path).h5(e)),
            None => Ok(()),
        }
    }

    /// fsync through libhdf5's own descriptor of the file: a write-back error the kernel
    /// reported through it is seen there, and after a rename of the path it is still this
    /// handle's file that is made durable, not whatever the path names now.
    fn fsync_own(&self) -> Result<()> {
        let file = self.file.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the handle is closed").with_path(&self.path)
        })?;
        let fd = crate::sys::vfd_descriptor(file).ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                "libhdf5 did not give its file descriptor, so the file cannot be fsynced",
            )
            .with_path(&self.path)
        })?;
        crate::sys::fsync_descriptor(fd)
            .map_err(|e| Error::io("fsync failed", e).with_path(&self.path))
    }

    fn read_all<T: ndstore_core::Element>(&self) -> Result<ndarray::ArrayD<T>> {
        let dataset = self.dataset()?;
        let count = self
            .meta
            .element_count()
            .map_err(|e| e.with_path(&self.path))?;
        let mut raw: Vec<T::Raw> = ndstore_core::__private::codec::alloc_raw(count)
            .map_err(|e| e.with_path(&self.path))?;
        // Through libhdf5, never straight from the file: its caches may hold writes the file
        // does not have yet.
        read::read_all(
            dataset,
            self.meta.dtype.kind,
            bytemuck::cast_slice_mut(&mut raw),
            self.at(),
        )?;
        read::array_from_raw::<T>(
            raw,
            &self.meta.shape,
            self.meta.effective_order(),
            self.at(),
        )
    }
}

impl InPlaceArray for H5InPlace {
    fn meta(&self) -> &ArrayMeta {
        &self.meta
    }

    fn write_all(&mut self, values: &DynArray) -> Result<()> {
        if values.kind() != self.meta.dtype.kind || values.shape() != self.meta.shape.as_slice() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "values {} {:?} do not fit the dataset's {} {:?}",
                    values.kind(),
                    values.shape(),
                    self.meta.dtype,
                    self.meta.shape
                ),
            )
            .with_path(&self.path));
        }
        with_dyn_array!(values, |a| self.write_typed(a.view()))
    }

    fn read(&self) -> Result<DynArray> {
        with_dtype_kind!(self.meta.dtype.kind, |T| self
            .read_all::<T>()
            .map(DynArray::from))
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        let finished = if self.durability == Durability::Synced {
            self.sync()
        } else if self.poisoned {
            // Flushed handles do not sync on close, but one that failed to sync has lost data:
            // its close says so.
            Err(ndstore_core::__private::atomic::poisoned_error(&self.path))
        } else {
            self.flush_file()
        };
        self.dataset = None;
        let closed = match self.file.take() {
            Some(file) => crate::h5::close_checked(file, &self.path),
            None => Ok(()),
        };
        finished.and(closed)
    }

    /// As the drop, without its explicit flush and with the error returned: libhdf5 writes
    /// its cache as it closes the file.
    fn abort(mut self: Box<Self>) -> Result<()> {
        self.dataset = None;
        match self.file.take().map(File::close) {
            Some(Err(e)) => Err(At::file(&self.path).h5(e)),
            _ => Ok(()),
        }
    }
}

impl Durable for H5InPlace {
    fn flush(&mut self) -> Result<()> {
        self.flush_file()
    }

    fn sync(&mut self) -> Result<()> {
        if self.poisoned {
            return Err(ndstore_core::__private::atomic::poisoned_error(&self.path));
        }
        self.flush_file()?;
        self.fsync_own().inspect_err(|_| self.poisoned = true)
    }
}

impl Drop for H5InPlace {
    fn drop(&mut self) {
        if self.file.is_none() {
            return;
        }
        if let Err(e) = self.flush_file() {
            log::error!(
                "{}: flushing an HDF5 file on drop failed: {e}",
                self.path.display()
            );
        }
        self.dataset = None;
        if let Some(Err(e)) = self.file.take().map(File::close) {
            log::error!(
                "{}: closing an HDF5 file on drop failed: {e}",
                self.path.display()
            );
        }
    }
}

/// A file's device and inode, when its metadata could be read.
fn identity(metadata: &std::io::Result<std::fs::Metadata>) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    metadata.as_ref().ok().map(|m| (m.dev(), m.ino()))
}

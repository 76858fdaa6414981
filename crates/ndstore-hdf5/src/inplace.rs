//! An HDF5 dataset open for in-place updates, with flush (H5Fflush) and sync (H5Fflush, then
//! fsync — libhdf5 never fsyncs on its own).

use std::path::{Path, PathBuf};

use hdf5_metno::{Dataset, File};
use ndstore_core::{
    ArrayMeta, Durability, DynArray, Error, ErrorKind, InPlaceArray, Result, with_dtype_kind,
    with_dyn_array,
};

use crate::h5::{H5Element, dataset_meta, fsync, h5_error, init, read_typed};

/// A dataset open read-write. libhdf5 locks the file while it is open, so a second writer gets
/// [`ErrorKind::Locked`]. Dropped without `close`, it flushes (errors logged) and closes.
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
    pub fn open(path: impl AsRef<Path>, name: &str, durability: Durability) -> Result<H5InPlace> {
        init();
        let path = path.as_ref();
        let file = File::open_rw(path).map_err(|e| h5_error(e, path, "/"))?;
        crate::h5::close_on_exec(&file);
        let dataset = file.dataset(name).map_err(|e| h5_error(e, path, name))?;
        let meta = dataset_meta(&dataset, path, name)?;
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

    fn dataset(&self) -> Result<&Dataset> {
        self.dataset.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the handle is closed").with_path(&self.path)
        })
    }

    fn write_typed<T: H5Element>(&self, view: ndarray::ArrayViewD<'_, T>) -> Result<()> {
        let dataset = self.dataset()?;
        let standard = view.as_standard_layout();
        dataset
            .write(&standard)
            .map_err(|e| h5_error(e, &self.path, &self.name))
    }

    /// Reads the box `ranges` (one range per axis) of the dataset, C-ordered.
    pub fn read_slice(&self, ranges: &[std::ops::Range<usize>]) -> Result<DynArray> {
        let dataset = self.dataset()?;
        with_dtype_kind!(self.meta.dtype.kind, T => crate::slice::read_box::<T>(dataset, ranges, &self.path, &self.name).map(DynArray::from))
    }

    /// Writes `values` into the dataset with their first element at `start` (one index per
    /// axis), leaving the rest of the dataset as it is. The values must have the dataset's
    /// element type.
    pub fn write_slice(&mut self, start: &[usize], values: &DynArray) -> Result<()> {
        if values.kind() != self.meta.dtype.kind {
            return Err(
                ndstore_core::array::type_mismatch(self.meta.dtype.kind, values.kind())
                    .with_path(&self.path)
                    .at(ndstore_core::Location::Object(self.name.clone())),
            );
        }
        let dataset = self.dataset()?;
        with_dyn_array!(values, a => crate::slice::write_box(dataset, start, a.view(), &self.path, &self.name))
    }

    fn flush_file(&self) -> Result<()> {
        match &self.file {
            Some(file) => file.flush().map_err(|e| h5_error(e, &self.path, "/")),
            None => Ok(()),
        }
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
        with_dyn_array!(values, a => self.write_typed(a.view()))
    }

    fn read(&self) -> Result<DynArray> {
        let dataset = self.dataset()?;
        with_dtype_kind!(self.meta.dtype.kind, T => read_typed::<T>(dataset, &self.meta, &self.path, &self.name).map(DynArray::from))
    }

    fn flush(&mut self) -> Result<()> {
        self.flush_file()
    }

    fn sync(&mut self) -> Result<()> {
        if self.poisoned {
            return Err(ndstore_core::atomic::poisoned_error(&self.path));
        }
        self.flush_file()?;
        fsync(&self.path).inspect_err(|_| self.poisoned = true)
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        if self.durability == Durability::Synced {
            self.sync()?;
        } else {
            self.flush_file()?;
        }
        self.dataset = None;
        match self.file.take() {
            Some(file) => crate::h5::close_checked(file, &self.path),
            None => Ok(()),
        }
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

//! The reading side of SWMR (single writer, multiple readers): a dataset followed while another
//! process appends to it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5_metno::{Dataset, File};
use ndstore_core::{ArrayMeta, DynArray, Error, ErrorKind, Result, with_dtype_kind};

use crate::h5::{At, close_on_exec, init};
use crate::read::{describe, open_dataset};
use crate::trusted::read_box_values;

/// A dataset open for SWMR reading, in this process: for files you trust (a SWMR reader follows
/// a writer of your own; libhdf5 parses the file here, see [`crate::trusted`] for what that
/// risks). [`SwmrReader::refresh`] picks up the rows a SWMR writer
/// ([`crate::H5Writer`] with [`crate::WriterOptions::swmr`], or h5py) has flushed since; every
/// refresh sees a consistent prefix of the rows appended.
pub struct SwmrReader {
    dataset: Dataset,
    // Declared after the dataset: the dataset is closed before its file.
    _file: File,
    meta: ArrayMeta,
    path: PathBuf,
    name: String,
}

impl SwmrReader {
    /// Opens dataset `name` of the file at `path`, which a SWMR writer has open (or had).
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing file or dataset; `Format` (or the kind libhdf5's error stack
    /// gives) when libhdf5 cannot open the file for SWMR reading, as for a file not written in
    /// the 1.10 format; the errors of describing the dataset (`UnsupportedDType` and the like).
    pub fn open(path: impl AsRef<Path>, name: &str) -> Result<SwmrReader> {
        init();
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::new(ErrorKind::NotFound, "no such file").with_path(path));
        }
        let file = hdf5_metno::FileBuilder::new()
            .open_as(path, hdf5_metno::file::OpenMode::ReadSWMR)
            .map_err(|e| At::file(path).h5(e))?;
        close_on_exec(&file);
        let at = At::new(path, name);
        let dataset = open_dataset(&file, at)?;
        let meta = describe(&dataset, at)?;
        Ok(SwmrReader {
            dataset,
            _file: file,
            meta,
            path: path.to_path_buf(),
            name: name.to_owned(),
        })
    }

    /// Reloads the dataset's metadata from the file and returns its row count.
    ///
    /// # Errors
    ///
    /// The kind libhdf5's error stack gives when it cannot reload the metadata (`Io` for a
    /// failed read, `Format` for a damaged file).
    pub fn refresh(&mut self) -> Result<usize> {
        self.dataset.refresh().map_err(|e| self.at().h5(e))?;
        self.meta.shape = self.dataset.shape();
        Ok(self.rows())
    }

    /// The dataset, for errors.
    fn at(&self) -> At<'_> {
        At::new(&self.path, &self.name)
    }

    /// The dataset's metadata as of the last refresh.
    pub fn meta(&self) -> &ArrayMeta {
        &self.meta
    }

    /// The row count as of the last refresh.
    pub fn rows(&self) -> usize {
        self.meta.shape.first().copied().unwrap_or(1)
    }

    /// Reads rows `rows` (all of their other axes).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a 0-d dataset or rows past the last refresh's row count; the kind
    /// libhdf5's error stack gives when the read fails.
    pub fn read_rows(&self, rows: Range<usize>) -> Result<DynArray> {
        if self.meta.shape.is_empty() {
            return Err(self
                .at()
                .error(ErrorKind::InvalidInput, "a 0-d dataset has no rows"));
        }
        let mut ranges = vec![rows];
        ranges.extend(self.meta.shape[1..].iter().map(|&n| 0..n));
        with_dtype_kind!(self.meta.dtype.kind, |T| read_box_values::<T>(
            &self.dataset,
            &self.meta,
            &ranges,
            None,
            self.at()
        )
        .map(DynArray::from))
    }
}

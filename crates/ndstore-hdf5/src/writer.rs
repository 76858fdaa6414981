//! A streaming HDF5 writer: a chunked dataset, resizable along axis 0, that grows with every
//! append, with flush (H5Fflush, or H5Dflush in SWMR mode), sync (then fsync) and commit.

use std::path::{Path, PathBuf};

use hdf5_metno::{Dataset, Extent, File, SimpleExtents};
use ndstore_core::{
    ArrayWriter, ByteOrder, DType, DTypeKind, Durable, DynArray, Error, ErrorKind, Lock, Order,
    OutputFile, Replace, Result, SaveOptions, with_dtype_kind, with_dyn_array,
};

use crate::h5::{
    At, DEFAULT_DATASET, H5Element, H5Options, close_on_exec, datatype_for, init, write_meta_attr,
};
use crate::slice::write_box;

/// How a streaming writer lays out its dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterOptions {
    /// The dataset's path in the file (groups are created as needed).
    pub dataset: String,
    /// Rows per chunk; by default as many as fit in 1 MiB.
    pub chunk_rows: Option<usize>,
    /// Filters (gzip, shuffle, Fletcher-32), and the chunk shape when its `chunk` is set: one
    /// length per axis, the first the rows per chunk (overriding `chunk_rows`), the others at
    /// most the rows' lengths. Unset, the writer chunks by whole rows.
    pub filters: H5Options,
    /// Single-writer/multiple-reader mode: readers in other processes ([`crate::SwmrReader`],
    /// h5py with `swmr=True`) follow the dataset while it grows. The file is written in place
    /// (readers must see it) in the HDF5 1.10 format, and `flush` publishes the appended rows to
    /// them with H5Dflush.
    pub swmr: bool,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            dataset: DEFAULT_DATASET.to_owned(),
            chunk_rows: None,
            filters: H5Options::default(),
            swmr: false,
        }
    }
}

impl WriterOptions {
    /// The default layout for a dataset at `dataset`.
    pub fn new(dataset: &str) -> WriterOptions {
        WriterOptions {
            dataset: dataset.to_owned(),
            ..WriterOptions::default()
        }
    }

    /// Chunks of `rows` rows.
    #[must_use]
    pub fn chunk_rows(mut self, rows: usize) -> WriterOptions {
        self.chunk_rows = Some(rows);
        self
    }

    /// SWMR mode, as on the field.
    #[must_use]
    pub fn swmr(mut self) -> WriterOptions {
        self.swmr = true;
        self
    }
}

/// Appends rows to a dataset along axis 0.
///
/// Atomic (the default): libhdf5 writes a temporary file beside the target, published by
/// `commit` (closed, fsynced, renamed, directory fsynced); dropped uncommitted, the temporary is
/// removed and the target keeps its old content. In place (and in SWMR mode): the target is
/// written directly under an exclusive lock; `flush` makes the rows so far visible to readers,
/// `sync` makes them durable. Dropped uncommitted in place, the writer flushes (errors logged);
/// dropped during a panic, it keeps only the rows of its last flush, and the file gives back the
/// space of the rows appended after it. An in-place writer's dataset is in the HDF5 1.10 format
/// (readable by libhdf5 1.10 and later, h5py 2.7 and later), in a file whose superblock is in the
/// earliest format; an atomic writer uses the earliest format that holds its dataset.
pub struct H5Writer {
    dataset: Option<Dataset>,
    file: Option<File>,
    out: Option<OutputFile>,
    kind: DTypeKind,
    row_shape: Vec<usize>,
    rows: usize,
    /// The rows as of the last flush: what a drop during a panic leaves in place.
    flushed_rows: usize,
    target: PathBuf,
    name: String,
    replace: Replace,
    swmr: bool,
    poisoned: bool,
}

fn chunk_rows(options: &WriterOptions, row_shape: &[usize], size: usize) -> usize {
    let row_bytes = row_shape.iter().product::<usize>().max(1) * size;
    options.chunk_rows.unwrap_or((1 << 20) / row_bytes).max(1)
}

/// The dataset's chunk shape: the one asked for in `options.filters.chunk`, checked against
/// the rows, or whole rows, as many as `chunk_rows` says.
fn chunk_shape(
    options: &WriterOptions,
    row_shape: &[usize],
    size: usize,
    at: At<'_>,
) -> Result<Vec<usize>> {
    let Some(chunk) = &options.filters.chunk else {
        let mut chunk = vec![chunk_rows(options, row_shape, size)];
        chunk.extend(row_shape.iter().map(|&n| n.max(1)));
        return Ok(chunk);
    };
    let fits = chunk.len() == row_shape.len() + 1
        && chunk.iter().all(|&n| n > 0)
        && chunk[1..]
            .iter()
            .zip(row_shape)
            .all(|(&c, &n)| c <= n.max(1));
    if fits {
        Ok(chunk.clone())
    } else {
        Err(at.error(
            ErrorKind::InvalidInput,
            format!(
            "chunks {chunk:?} do not fit rows of shape {row_shape:?} (one positive length per axis, none longer than the row's)"
        )))
    }
}

fn create_dataset<T: H5Element>(
    file: &File,
    options: &WriterOptions,
    byte_order: ByteOrder,
    row_shape: &[usize],
    path: &Path,
) -> Result<Dataset> {
    let at = At::new(path, &options.dataset);
    let datatype = datatype_for::<T>(byte_order, at)?;
    let mut extents = vec![Extent::resizable(0)];
    extents.extend(row_shape.iter().map(|&n| Extent::fixed(n)));
    let chunk = chunk_shape(options, row_shape, std::mem::size_of::<T>(), at)?;
    let mut builder = file
        .new_dataset_builder()
        .empty_as(&datatype)
        .shape(SimpleExtents::from_vec(extents))
        .chunk(chunk);
    let filters = &options.filters;
    if filters.shuffle {
        builder = builder.shuffle();
    }
    if let Some(level) = filters.deflate {
        builder = builder.deflate(level);
    }
    if filters.fletcher32 {
        builder = builder.fletcher32();
    }
    let dataset = builder.create(at.object).map_err(|e| at.h5(e))?;
    write_meta_attr(&dataset, Order::C, at)?;
    Ok(dataset)
}

impl H5Writer {
    /// Starts a dataset of `dtype` whose rows have shape `row_shape`, in a new file at `path`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a SWMR writer that is not in place, a byte order that contradicts
    /// the dtype's, or a dataset path libhdf5 refuses; `UnsupportedDType` for a dtype HDF5
    /// cannot store; `Locked` when an in-place writer finds the file held by another handle;
    /// `StorageFull`, `PermissionDenied` or `Io` when the file cannot be created.
    pub fn create(
        path: impl AsRef<Path>,
        dtype: DType,
        row_shape: &[usize],
        save: &SaveOptions,
        options: &WriterOptions,
    ) -> Result<H5Writer> {
        init();
        let path = path.as_ref();
        if options.swmr && save.replace == Replace::Atomic {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "SWMR readers must see the file as it grows: a SWMR writer writes in place \
                 (SaveOptions::in_place), not through a temporary file",
            )
            .with_path(path));
        }
        // One source for the byte order, the dtype's; checked before anything is created.
        let byte_order = save.byte_order_for(dtype).map_err(|e| e.with_path(path))?;
        let mut out = OutputFile::create(path, save)?;
        let target = out.target().to_path_buf();
        let name = options.dataset.clone();
        let in_place = save.replace == Replace::InPlace;
        let file = hdf5_metno::FileBuilder::new()
            .with_fapl(|fapl| {
                // libhdf5's locking is off either way. In place, our own exclusive lock (taken
                // before the truncation) stands in for it, and it would conflict with ours; a
                // temporary has no other user to exclude (see `h5::temporary_file`).
                fapl.file_locking(false);
                if options.swmr {
                    fapl.libver_v110();
                }
                fapl
            })
            .create(out.path())
            .map_err(|e| At::file(&target).h5(e))?;
        close_on_exec(&file);
        // In place, the dataset is made in the 1.10 format, which indexes the chunks of one
        // growing dimension in an extensible array that gives the space of pruned chunks back
        // at close: a writer dropped in a panic shrinks its dataset to the last flush, and with
        // the earlier format's B-tree the appended chunks stayed in the file (64 MiB appended
        // after a flush left a file 64 MiB larger). The superblock stays in the earliest
        // format: the 1.10 one marks the file open for write until it is closed, and a writer
        // killed after a flush left a file nothing would open without h5clear.
        if in_place && !options.swmr {
            crate::sys::chunk_index_of_1_10(&file).map_err(|e| At::file(&target).h5(e))?;
        }
        let dataset = with_dtype_kind!(dtype.kind, |T| create_dataset::<T>(
            &file, options, byte_order, row_shape, &target
        ))?;
        if options.swmr {
            file.start_swmr().map_err(|e| At::file(&target).h5(e))?;
            // Readers take shared locks: keep excluding writers, admit them.
            ndstore_core::lock(out.file()?, Lock::Shared, &target)?;
        }
        Ok(H5Writer {
            dataset: Some(dataset),
            file: Some(file),
            out: Some(out),
            kind: dtype.kind,
            row_shape: row_shape.to_vec(),
            rows: 0,
            flushed_rows: 0,
            target,
            name,
            replace: save.replace,
            swmr: options.swmr,
            poisoned: false,
        })
    }

    /// The rows the dataset holds: those appended so far, or, once a failure has cut an
    /// in-place writer back, those of its last flush.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The dataset being written, for errors.
    fn at(&self) -> At<'_> {
        At::new(&self.target, &self.name)
    }

    fn closed(&self) -> Error {
        Error::new(ErrorKind::InvalidInput, "the writer is finished").with_path(&self.target)
    }

    fn append_typed<T: H5Element>(
        &self,
        dataset: &Dataset,
        rows: ndarray::ArrayViewD<'_, T>,
    ) -> Result<usize> {
        let added = rows.shape()[0];
        let total = self.rows.checked_add(added).ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the row count overflows").with_path(&self.target)
        })?;
        let mut shape = vec![total];
        shape.extend_from_slice(&self.row_shape);
        dataset.resize(shape).map_err(|e| self.at().h5(e))?;
        let mut start = vec![0; self.row_shape.len() + 1];
        start[0] = self.rows;
        write_box(dataset, &start, rows, self.at())?;
        Ok(total)
    }

    fn flush_hdf5(&mut self) -> Result<()> {
        self.flush_hdf5_inner()?;
        self.flushed_rows = self.rows;
        Ok(())
    }

    /// Shrinks the dataset back to the rows of the last flush.
    fn discard_unflushed(&self) -> Result<()> {
        let Some(dataset) = &self.dataset else {
            return Ok(());
        };
        let mut shape = vec![self.flushed_rows];
        shape.extend_from_slice(&self.row_shape);
        dataset.resize(shape).map_err(|e| self.at().h5(e))
    }

    fn flush_hdf5_inner(&self) -> Result<()> {
        if self.swmr
            && let Some(dataset) = &self.dataset
        {
            return dataset.flush().map_err(|e| self.at().h5(e));
        }
        match &self.file {
            Some(file) => file.flush().map_err(|e| At::file(&self.target).h5(e)),
            None => Err(self.closed()),
        }
    }
}

impl H5Writer {
    fn check_poison(&self) -> Result<()> {
        if self.poisoned {
            return Err(ndstore_core::__private::stream::writer_poisoned_error(
                &self.target,
            ));
        }
        Ok(())
    }

    /// Poisons the writer after a failed write or flush; in place, the dataset is cut back to
    /// the rows of the last flush at once (and so it stays when the writer is dropped), and
    /// [`H5Writer::rows`] says so.
    fn poison(&mut self, e: Error) -> Error {
        self.poisoned = true;
        if self.replace == Replace::InPlace {
            match self.discard_unflushed() {
                Ok(()) => self.rows = self.flushed_rows,
                Err(cut) => log::error!(
                    "{}: cutting a failed HDF5 writer back to its last flush failed: {cut}",
                    self.target.display()
                ),
            }
        }
        e
    }
}

impl ArrayWriter for H5Writer {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.check_poison()?;
        ndstore_core::__private::stream::check_rows(
            self.kind,
            &self.row_shape,
            rows.kind(),
            rows.shape(),
            &self.target,
        )?;
        let Some(dataset) = self.dataset.clone() else {
            return Err(self.closed());
        };
        match with_dyn_array!(rows, |a| self.append_typed(&dataset, a.view())) {
            Ok(total) => {
                self.rows = total;
                Ok(())
            }
            Err(e) => Err(self.poison(e)),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.check_poison()?;
        // Flushed while the dataset is open: closing a dataset writes its cached chunks
        // without reporting a failure.
        // A failed flush here poisons as any other: in place, the dataset is cut back to the
        // last flush, and the drop that follows does not flush the rows the commit did not
        // publish.
        if let Some(file) = &self.file
            && let Err(e) = file.flush()
        {
            let e = At::file(&self.target).h5(e);
            return Err(self.poison(e));
        }
        self.dataset = None;
        let file = self.file.take().ok_or_else(|| self.closed())?;
        crate::h5::close_checked(file, &self.target)?;
        let out = self.out.take().ok_or_else(|| self.closed())?;
        out.finish()
    }

    /// As the drop of a writer whose thread panics, with the errors returned: in place, the
    /// dataset is cut back to the rows of the last flush before libhdf5 closes the file;
    /// atomic, the temporary file is removed.
    fn abort(mut self: Box<Self>) -> Result<()> {
        let cut = if self.replace == Replace::InPlace && self.file.is_some() {
            self.discard_unflushed()
        } else {
            Ok(())
        };
        self.dataset = None;
        let closed = match self.file.take().map(File::close) {
            Some(Err(e)) if self.replace == Replace::InPlace => Err(At::file(&self.target).h5(e)),
            // An atomic writer's temporary is removed next: its close does not matter.
            _ => Ok(()),
        };
        let removed = self.out.take().map_or(Ok(()), OutputFile::abort);
        cut.and(closed).and(removed)
    }
}

impl Durable for H5Writer {
    fn flush(&mut self) -> Result<()> {
        self.check_poison()?;
        self.flush_hdf5().map_err(|e| self.poison(e))
    }

    fn sync(&mut self) -> Result<()> {
        self.check_poison()?;
        self.flush_hdf5().map_err(|e| self.poison(e))?;
        let out = self.out.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "the writer is finished").with_path(&self.target)
        })?;
        out.sync().inspect_err(|_| self.poisoned = true)
    }
}

impl Drop for H5Writer {
    fn drop(&mut self) {
        if self.file.is_none() {
            return;
        }
        if self.replace == Replace::InPlace {
            // libhdf5 writes everything on close: during a panic (or after a failure), rows
            // appended since the last flush are cut off first, so only what was published
            // stays.
            let done = if std::thread::panicking() || self.poisoned {
                self.discard_unflushed()
            } else {
                self.flush_hdf5()
            };
            if let Err(e) = done {
                log::error!(
                    "{}: finishing an HDF5 writer on drop failed: {e}",
                    self.target.display()
                );
            }
        }
        self.dataset = None;
        if let Some(Err(e)) = self.file.take().map(File::close) {
            log::error!(
                "{}: closing an HDF5 writer on drop failed: {e}",
                self.target.display()
            );
        }
        // Atomic: dropping the output removes the temporary file.
        self.out = None;
    }
}

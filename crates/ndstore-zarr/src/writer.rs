//! The streaming writer: rows appended along axis 0 are buffered up to one chunk row and
//! written as whole chunks into a sibling temporary tree, which `commit` publishes as a save
//! does (on object storage: chunks PUT under the prefix, `zarr.json` committed last with a
//! conditional PUT). Memory holds one chunk row of input at most.

use std::path::Path;

use ndarray::{Axis, concatenate};
use ndstore_core::{
    ArrayWriter, DType, Durability, Durable, DynArray, Error, ErrorKind, Replace, Result,
    SaveOptions, with_dtype_kind,
};

use crate::array::ZarrArray;
use crate::meta::{METADATA_FILE, ZarrMeta};
use crate::save::Staged;

/// Where the rows go: a sibling tree published on commit, or the target itself.
enum Target {
    /// Atomic: nothing reaches the target before commit.
    Staged(Staged),
    /// In place: `flush` rewrites `zarr.json` for the rows so far, which readers then see.
    InPlace(ZarrArray),
    /// Object storage: chunks go under the prefix as they fill, `zarr.json` only at commit.
    #[cfg(feature = "s3")]
    Object(ZarrArray),
}

impl Target {
    fn array(&self) -> Result<&ZarrArray> {
        match self {
            Target::Staged(staged) => staged.array(),
            Target::InPlace(array) => Ok(array),
            #[cfg(feature = "s3")]
            Target::Object(array) => Ok(array),
        }
    }

    fn array_mut(&mut self) -> Result<&mut ZarrArray> {
        match self {
            Target::Staged(staged) => staged.array_mut(),
            Target::InPlace(array) => Ok(array),
            #[cfg(feature = "s3")]
            Target::Object(array) => Ok(array),
        }
    }
}

/// A writer that appends rows to a new Zarr array: atomic (the default), it publishes the
/// array on commit and a dropped writer leaves the target as it was; in place, each `flush`
/// makes the rows so far the array's, and a writer dropped during a panic leaves the last
/// flush's rows (`zarr.json` still counts those; chunk rows written since lie past its shape).
pub struct ZarrWriter {
    target: Option<Target>,
    dtype: DType,
    row_shape: Vec<usize>,
    /// Rows written to chunks so far (a multiple of the chunk's rows, except after a flush).
    written: usize,
    /// Rows waiting for their chunk row to fill, starting at row `written`.
    pending: Option<DynArray>,
    rows_per_chunk: usize,
    poisoned: bool,
}

impl ZarrWriter {
    /// Starts an array of `dtype` with rows of `row_shape` at `target`, in chunks of
    /// `chunk_shape` (whose first length is the rows per chunk).
    ///
    /// # Errors
    ///
    /// As [`crate::save_with`]'s start: a target that is no array, permissions, I/O.
    pub fn create(
        target: &Path,
        dtype: DType,
        row_shape: &[usize],
        chunk_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<ZarrWriter> {
        let (_, meta) =
            writer_meta(dtype, row_shape, chunk_shape, options).map_err(|e| e.with_path(target))?;
        ZarrWriter::create_with(target, meta, options)
    }

    /// Starts an array described by `meta` at `target`: its dtype, chunks, codecs, fill value,
    /// attributes and dimension names; rows of `meta.shape[1..]` are appended along axis 0
    /// (`meta.shape[0]` is ignored).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a 0-d `meta`; the errors of checking `meta` and of
    /// [`ZarrWriter::create`].
    pub fn create_with(
        target: &Path,
        mut meta: ZarrMeta,
        options: &SaveOptions,
    ) -> Result<ZarrWriter> {
        let Some(first) = meta.shape.first_mut() else {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a 0-d array has no rows to append")
                    .with_path(target),
            );
        };
        *first = 0;
        meta.validate().map_err(|e| e.with_path(target))?;
        let dtype = meta.dtype();
        let row_shape = meta.shape[1..].to_vec();
        let target = match options.replace {
            Replace::Atomic => Target::Staged(Staged::new(target, meta, options)?),
            Replace::InPlace => Target::InPlace(create_in_place(target, meta, options)?),
        };
        Ok(ZarrWriter::over(target, dtype, &row_shape))
    }

    /// Starts an array of `dtype` with rows of `row_shape` at `target` in object storage, in
    /// chunks of `chunk_shape`. Whatever `options.replace` says, nothing is published before
    /// commit: chunks are PUT as their rows fill, `zarr.json` is committed last with a
    /// conditional PUT. A writer dropped or aborted before its commit removes the chunks of a
    /// new array; over an existing array, the chunks it overwrote stay as written (each whole)
    /// under the old `zarr.json`.
    ///
    /// # Errors
    ///
    /// As [`crate::save_object`]'s start: a prefix holding a group, the store's errors.
    #[cfg(feature = "s3")]
    pub fn create_object(
        target: &crate::ObjectTarget,
        dtype: DType,
        row_shape: &[usize],
        chunk_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<ZarrWriter> {
        let (dtype, meta) = writer_meta(dtype, row_shape, chunk_shape, options)
            .map_err(|e| e.with_path(target.name()))?;
        let array = ZarrArray::create_object(target, meta, options)?;
        Ok(ZarrWriter::over(Target::Object(array), dtype, row_shape))
    }

    /// Starts an array described by `meta` at `target` in object storage, as
    /// [`ZarrWriter::create_with`] does locally (its dtype, chunks, shards, codecs, fill value,
    /// attributes and dimension names kept; `meta.shape[0]` ignored), published as
    /// [`ZarrWriter::create_object`] publishes: chunks PUT as their rows fill, `zarr.json`
    /// committed last with a conditional PUT.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a 0-d `meta`; the errors of checking `meta`; as
    /// [`crate::save_object`]'s start: a prefix holding a group, the store's errors.
    #[cfg(feature = "s3")]
    pub fn create_object_with(
        target: &crate::ObjectTarget,
        mut meta: ZarrMeta,
        options: &SaveOptions,
    ) -> Result<ZarrWriter> {
        let Some(first) = meta.shape.first_mut() else {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a 0-d array has no rows to append")
                    .with_path(target.name()),
            );
        };
        *first = 0;
        meta.validate().map_err(|e| e.with_path(target.name()))?;
        let dtype = meta.dtype();
        let row_shape = meta.shape[1..].to_vec();
        let array = ZarrArray::create_object(target, meta, options)?;
        Ok(ZarrWriter::over(Target::Object(array), dtype, &row_shape))
    }

    fn over(target: Target, dtype: DType, row_shape: &[usize]) -> ZarrWriter {
        let rows_per_chunk = target.array().map_or(1, |a| a.meta().chunk_shape[0]);
        ZarrWriter {
            target: Some(target),
            dtype,
            row_shape: row_shape.to_vec(),
            written: 0,
            pending: None,
            rows_per_chunk,
            poisoned: false,
        }
    }

    fn target(&mut self) -> Result<&mut Target> {
        if self.poisoned {
            return Err(poisoned());
        }
        self.target
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the writer is finished"))
    }

    /// Writes every pending row and, in place, `zarr.json` for them.
    fn flush_rows(&mut self) -> Result<()> {
        self.write_pending(true)?;
        if let Target::InPlace(array) = self.target()? {
            array.write_metadata()?;
        }
        Ok(())
    }

    /// Writes the pending rows: whole chunk rows, and with `all` the partial one too (it is
    /// written again when more rows fill it).
    fn write_pending(&mut self, all: bool) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let rows = pending.shape()[0];
        let whole = rows - rows % self.rows_per_chunk;
        let cut = if all { rows } else { whole };
        if cut == 0 {
            self.pending = Some(pending);
            return Ok(());
        }
        let (head, _) = split_rows(&pending, cut);
        let start_row = self.written;
        let array = self.target()?.array_mut()?;
        let rows_now = array.meta().shape[0].max(start_row + rows);
        array.set_rows(rows_now);
        let mut start = vec![0; array.meta().shape.len()];
        start[0] = start_row;
        array.write_region(&start, &head)?;
        // A partial chunk row written at a flush is written again whole later: its rows stay.
        self.written += whole;
        self.pending = split_rows(&pending, whole).1;
        Ok(())
    }
}

/// The dtype (in the byte order `options` ask for) and metadata of a writer's array, with no
/// rows yet.
fn writer_meta(
    dtype: DType,
    row_shape: &[usize],
    chunk_shape: &[usize],
    options: &SaveOptions,
) -> Result<(DType, ZarrMeta)> {
    let dtype = DType::new(dtype.kind, options.byte_order_for(dtype)?);
    let mut shape = vec![0];
    shape.extend_from_slice(row_shape);
    Ok((dtype, ZarrMeta::new(dtype, &shape, chunk_shape)?))
}

/// The first `n` rows of `a` and the rest (`None` when nothing is left).
fn split_rows(a: &DynArray, n: usize) -> (DynArray, Option<DynArray>) {
    ndstore_core::with_dyn_array!(a, |t| {
        let head = t.slice_axis(Axis(0), ndarray::Slice::from(..n)).to_owned();
        let rest = (n < t.shape()[0])
            .then(|| DynArray::from(t.slice_axis(Axis(0), ndarray::Slice::from(n..)).to_owned()));
        (DynArray::from(head), rest)
    })
}

fn poisoned() -> Error {
    Error::new(
        ErrorKind::Poisoned,
        "an earlier write of this writer failed; start a fresh one",
    )
}

/// Creates the array at `target` for an in-place writer, removing an array that was there (as
/// `np.save` truncates the file it rewrites).
fn create_in_place(target: &Path, meta: ZarrMeta, options: &SaveOptions) -> Result<ZarrArray> {
    crate::save::refuse_group(target)?;
    if target.join(METADATA_FILE).is_file() {
        crate::save::retire_now(target)
            .map_err(|e| Error::io("cannot remove the old array", e).with_path(target))?;
    }
    ZarrArray::create(target, meta, options)
}

impl ZarrWriter {
    /// Runs `step` unless the writer is poisoned, and poisons it when `step` fails: a failed
    /// write or fsync leaves the caller no way to know what reached the disk.
    fn guarded<R>(&mut self, step: impl FnOnce(&mut ZarrWriter) -> Result<R>) -> Result<R> {
        self.target()?;
        let result = step(self);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Makes every row written so far durable: the chunks, `zarr.json` and, in place, the
    /// target's entry in its parent.
    fn sync_all(&mut self) -> Result<()> {
        self.flush_rows()?;
        let target = self.target()?;
        let in_place = matches!(target, Target::InPlace(_));
        let array = target.array()?;
        array.sync()?;
        if in_place {
            ndstore_core::__private::atomic::sync_dir(
                ndstore_core::__private::atomic::parent_dir(array.path()),
            )?;
        }
        Ok(())
    }
}

impl Durable for ZarrWriter {
    fn flush(&mut self) -> Result<()> {
        self.guarded(ZarrWriter::flush_rows)
    }

    fn sync(&mut self) -> Result<()> {
        self.guarded(ZarrWriter::sync_all)
    }
}

impl ArrayWriter for ZarrWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.target()?;
        if rows.kind() != self.dtype.kind || rows.shape().get(1..) != Some(&self.row_shape[..]) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "rows of {} {:?} do not fit a writer of {} rows {:?}",
                    rows.kind(),
                    rows.shape(),
                    self.dtype.kind,
                    self.row_shape
                ),
            ));
        }
        self.guarded(|w| {
            let joined = match w.pending.take() {
                None => rows.clone(),
                Some(pending) => with_dtype_kind!(w.dtype.kind, |T| {
                    let a = pending.into_typed::<T>()?;
                    let b = rows.clone().into_typed::<T>()?;
                    DynArray::from(
                        concatenate(Axis(0), &[a.view(), b.view()])
                            .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?,
                    )
                }),
            };
            w.pending = Some(joined);
            w.write_pending(false)
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let synced = self.target()?.array()?.durability() == Durability::Synced;
        self.guarded(|w| {
            if synced {
                w.sync_all()?;
            } else {
                w.flush_rows()?;
            }
            let rows = w.written + w.pending.as_ref().map_or(0, |p| p.shape()[0]);
            w.target()?.array_mut()?.set_rows(rows);
            match w.target.take() {
                Some(Target::Staged(staged)) => staged.publish(),
                Some(Target::InPlace(_)) => Ok(()),
                #[cfg(feature = "s3")]
                Some(Target::Object(array)) => {
                    let committed = array.write_metadata();
                    if committed.is_err() {
                        array.abandon();
                    }
                    committed
                }
                None => Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the writer is finished",
                )),
            }
        })
    }

    fn abort(mut self: Box<Self>) -> Result<()> {
        match self.target.take() {
            Some(Target::Staged(staged)) => staged.abort(),
            #[cfg(feature = "s3")]
            Some(Target::Object(array)) => {
                array.abandon();
                Ok(())
            }
            // What the last flush published stays, as `zarr.json` says.
            Some(Target::InPlace(_)) | None => Ok(()),
        }
    }
}

impl Drop for ZarrWriter {
    fn drop(&mut self) {
        // An in-place writer flushes on drop, unless its thread panics: then the target keeps
        // exactly its last flush. An atomic writer's staged tree is removed by its own drop.
        #[cfg(feature = "s3")]
        if let Some(Target::Object(array)) = &self.target {
            array.abandon();
            return;
        }
        let in_place = matches!(self.target, Some(Target::InPlace(_)));
        if in_place
            && !self.poisoned
            && !std::thread::panicking()
            && let Err(e) = self.flush_rows()
        {
            log::error!("zarr writer: flush on drop failed: {e}");
        }
    }
}

//! Writing delimited text: whole arrays (formatted on two threads, published atomically by
//! default) and a streaming writer that appends rows with flush, sync and commit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ndarray::{ArrayBase, ArrayViewD, Data, Dimension};
use ndstore_core::__private::bulk::on_two_threads;
use ndstore_core::__private::stream::{StreamFormat, StreamWriter};
use ndstore_core::{
    ArrayMeta, ArrayWriter, Commit, DType, Durable, DynArray, Error, ErrorKind, Result,
    SaveOptions, with_dyn_array,
};

use crate::meta::MetaLine;
use crate::options::{Delimiter, Newline, TextOptions};
use crate::value::{Style, TextValue};

/// Rows formatted per task; two tasks run at once.
const ROWS_PER_TASK: usize = 8 * 1024;

fn newline(options: &TextOptions) -> &'static [u8] {
    match options.newline {
        Newline::Lf => b"\n",
        Newline::CrLf => b"\r\n",
    }
}

fn delimiter_byte(options: &TextOptions) -> u8 {
    match options.delimiter {
        Delimiter::Byte(b) => b,
        Delimiter::Whitespace => b' ',
    }
}

/// The row length of an array's text table: the product of all axes but the first (1 for
/// 0-d and 1-d arrays), so `np.loadtxt(f).reshape(shape)` restores any array.
pub fn row_len(shape: &[usize]) -> usize {
    shape.iter().skip(1).product()
}

fn comment_lines(text: &str, options: &TextOptions, out: &mut Vec<u8>) {
    for line in text.lines() {
        out.extend_from_slice(options.comments.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(newline(options));
    }
}

/// The bytes before the data of a whole-array save: BOM, metadata line, header lines.
fn preamble(meta: &ArrayMeta, options: &TextOptions) -> Vec<u8> {
    preamble_with(&MetaLine::render(meta), options).0
}

/// The bytes before a streaming writer's rows, with the metadata line's first axis padded, and
/// the offset of that axis (for its rewrites in place).
fn streaming_preamble(meta: &ArrayMeta, options: &TextOptions) -> (Vec<u8>, Option<usize>) {
    preamble_with(&MetaLine::render_padded(meta), options)
}

/// BOM, the metadata `line` (when the options write one), header lines; and the offset of the
/// line's first axis.
fn preamble_with(line: &str, options: &TextOptions) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::new();
    if options.bom {
        out.extend_from_slice(b"\xef\xbb\xbf");
    }
    let mut first_axis_at = None;
    if options.metadata {
        out.extend_from_slice(options.comments.as_bytes());
        out.push(b' ');
        first_axis_at = line
            .find("\"shape\":[")
            .map(|i| out.len() + i + "\"shape\":[".len());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(newline(options));
    }
    if let Some(header) = &options.header {
        comment_lines(header, options, &mut out);
    }
    (out, first_axis_at)
}

/// Formats `values` (whole rows of `row_len`) into `out`.
fn format_rows<T: TextValue>(
    values: &[T],
    row_len: usize,
    options: &TextOptions,
    out: &mut Vec<u8>,
) {
    let style = Style {
        float: options.float_format,
        bool: options.bool_format,
    };
    let delimiter = delimiter_byte(options);
    let nl = newline(options);
    for row in values.chunks(row_len.max(1)) {
        T::write_row(row, delimiter, nl, out, &style);
    }
}

/// Formats `chunks` on this thread and one worker (two threads for two cores), while this
/// thread also writes the finished chunks in order between its own: formatting and writing
/// overlap without a third thread competing for the cores. Buffers are reused.
fn write_pipelined<T: TextValue>(
    chunks: &[&[T]],
    row: usize,
    options: &TextOptions,
    out: &mut dyn Write,
) -> Result<()> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, mpsc};
    let next = AtomicUsize::new(0);
    let pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let take_buffer = |pool: &Mutex<Vec<Vec<u8>>>| {
        pool.lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    };
    let (done, finished) = mpsc::sync_channel::<(usize, Vec<u8>)>(4);
    let (next_ref, pool_ref) = (&next, &pool);
    let format_there = move || {
        loop {
            let index = next_ref.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(index) else {
                break;
            };
            let mut text = take_buffer(pool_ref);
            text.clear();
            format_rows(chunk, row, options, &mut text);
            // The writer hung up after an error: stop.
            if done.send((index, text)).is_err() {
                break;
            }
        }
    };
    // Owns the receiving end, so the worker stops sending once this returns (or unwinds).
    let format_and_write_here = move || -> Result<()> {
        let mut pending = BTreeMap::new();
        let mut wanted = 0;
        while wanted < chunks.len() {
            let index = next_ref.fetch_add(1, Ordering::Relaxed);
            if let Some(chunk) = chunks.get(index) {
                let mut text = take_buffer(pool_ref);
                text.clear();
                format_rows(chunk, row, options, &mut text);
                pending.insert(index, text);
            }
            while let Ok((i, text)) = finished.try_recv() {
                pending.insert(i, text);
            }
            if index >= chunks.len() && !pending.contains_key(&wanted) {
                // Nothing left to format here: wait for the worker's chunk. The worker hangs up
                // early only by panicking, and its panic is raised again below.
                match finished.recv() {
                    Ok((i, text)) => {
                        pending.insert(i, text);
                    }
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            "a formatting thread stopped early",
                        ));
                    }
                }
            }
            while let Some(text) = pending.remove(&wanted) {
                out.write_all(&text)
                    .map_err(|e| Error::io("writing text", e))?;
                if let Ok(mut pool) = pool_ref.lock() {
                    pool.push(text);
                }
                wanted += 1;
            }
        }
        Ok(())
    };
    // A panic of the formatting worker is raised again here, not turned into an error.
    on_two_threads(format_and_write_here, format_there).0
}

/// Writes the whole array as text to `out`: preamble, rows, footer.
fn write_view<T: TextValue>(
    view: &ArrayViewD<'_, T>,
    meta: &ArrayMeta,
    options: &TextOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let io = |e| Error::io("writing text", e);
    let head = preamble(meta, options);
    out.write_all(&head).map_err(io)?;
    let standard = view.as_standard_layout();
    let values = standard.as_slice().unwrap_or(&[]);
    let row = row_len(&meta.shape).max(1);
    let chunks: Vec<&[T]> = values.chunks(ROWS_PER_TASK * row).collect();
    if chunks.len() <= 1 {
        let mut text = Vec::new();
        format_rows(values, row, options, &mut text);
        out.write_all(&text).map_err(io)?;
    } else {
        write_pipelined(&chunks, row, options, out)?;
    }
    if let Some(footer) = &options.footer {
        let mut tail = Vec::new();
        comment_lines(footer, options, &mut tail);
        out.write_all(&tail).map_err(io)?;
    }
    Ok(())
}

fn meta_of<T: TextValue>(view: &ArrayViewD<'_, T>, save: &SaveOptions) -> ArrayMeta {
    ArrayMeta::new(
        DType::new(T::KIND, save.effective_byte_order()),
        view.shape().to_vec(),
        ndstore_core::__private::codec::layout_order(view),
    )
}

/// Saves `array` as text at `path`: atomically and durably unless `save` says otherwise.
///
/// The text holds the values in C order, in rows of all axes but the first; the metadata line
/// records dtype (byte order included), shape and memory order, so `load` restores them all.
///
/// # Errors
///
/// The errors of opening the output (`OutputFile::create`: `ErrorKind::PermissionDenied`,
/// `ErrorKind::Locked` in place, ...), and I/O errors of writing, syncing, renaming and syncing the
/// directory (`ErrorKind::StorageFull` for a full disk); a failed atomic save leaves the target's
/// old content.
pub fn save<A, S, D>(
    path: impl AsRef<Path>,
    array: &ArrayBase<S, D>,
    options: &TextOptions,
    save: &SaveOptions,
) -> Result<()>
where
    A: TextValue,
    S: Data<Elem = A>,
    D: Dimension,
{
    save_view(path.as_ref(), array.view().into_dyn(), options, save)
}

pub(crate) fn save_view<T: TextValue>(
    path: &Path,
    view: ArrayViewD<'_, T>,
    options: &TextOptions,
    save: &SaveOptions,
) -> Result<()> {
    let meta = meta_of(&view, save);
    ndstore_core::write_file(path, save, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        write_view(&view, &meta, options, &mut out)?;
        out.flush().map_err(|e| Error::io("writing text", e))
    })
}

/// Writes `array` as text to a writer the caller owns (durability is then the caller's).
///
/// # Errors
///
/// The writer's I/O errors.
pub fn write_to<A, S, D>(
    writer: &mut dyn Write,
    array: &ArrayBase<S, D>,
    options: &TextOptions,
) -> Result<()>
where
    A: TextValue,
    S: Data<Elem = A>,
    D: Dimension,
{
    let view = array.view().into_dyn();
    let meta = meta_of(&view, &SaveOptions::default());
    write_view(&view, &meta, options, writer)
}

/// The text format's part of a stream: the metadata line's row count, rewritten in place, and
/// the footer.
struct TextStream {
    meta: ArrayMeta,
    first_axis_at: Option<usize>,
    footer: Vec<u8>,
}

impl StreamFormat for TextStream {
    fn complete_header(&mut self, file: &File, rows: usize) -> Result<()> {
        let Some(at) = self.first_axis_at else {
            return Ok(());
        };
        let digits = rows.to_string();
        if digits.len() > crate::meta::FIRST_AXIS_WIDTH {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "the row count outgrew its reserved space",
            ));
        }
        let mut field = digits.into_bytes();
        field.resize(crate::meta::FIRST_AXIS_WIDTH, b' ');
        file.write_all_at(&field, at as u64)
            .map_err(|e| Error::io("rewriting the metadata line", e))
    }

    fn footer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.footer)
    }
}

/// Appends rows to a text file, with the durability vocabulary (from the core's
/// `StreamWriter`).
///
/// The metadata line is written first with room for the row count, and rewritten in place on
/// `flush`, `sync` and `commit`. Atomic (the default): nothing appears at the target before
/// `commit`, and an uncommitted writer rolls back on drop. In place: `flush` makes the rows so
/// far a complete file; a dropped writer flushes (errors logged) unless its thread panics.
pub struct TextWriter {
    stream: StreamWriter<TextStream>,
    options: TextOptions,
}

impl TextWriter {
    /// Starts a file at `path` for rows of `row_shape` (the axes after the first) of `dtype`.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` when the options' byte order contradicts the dtype's; the errors
    /// of `OutputFile::create` and of writing the preamble.
    pub fn create(
        path: impl AsRef<Path>,
        dtype: DType,
        row_shape: &[usize],
        options: &TextOptions,
        save: &SaveOptions,
    ) -> Result<TextWriter> {
        let mut shape = vec![0];
        shape.extend_from_slice(row_shape);
        // The dtype carries the byte order; the save options may repeat it but not contradict it.
        let byte_order = save
            .byte_order_for(dtype)
            .map_err(|e| e.with_path(path.as_ref()))?;
        let meta = ArrayMeta::new(
            DType::new(dtype.kind, byte_order),
            shape,
            ndstore_core::Order::C,
        );
        let (head, first_axis_at) = streaming_preamble(&meta, options);
        let mut footer = Vec::new();
        if let Some(text) = &options.footer {
            comment_lines(text, options, &mut footer);
        }
        let format = TextStream {
            meta,
            first_axis_at,
            footer,
        };
        Ok(TextWriter {
            stream: StreamWriter::create(path.as_ref(), save, &head, format)?,
            options: options.clone(),
        })
    }

    /// Appends rows: an array shaped `[n, row_shape...]` of the writer's element type.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TypeMismatch` or `ErrorKind::InvalidInput` for rows that do not fit the writer;
    /// the I/O error of a write, which poisons the writer (`ErrorKind::Poisoned` for every later
    /// call).
    pub fn append<A, S, D>(&mut self, rows: &ArrayBase<S, D>) -> Result<()>
    where
        A: TextValue,
        S: Data<Elem = A>,
        D: Dimension,
    {
        self.append_view(rows.view().into_dyn())
    }

    fn append_view<T: TextValue>(&mut self, view: ArrayViewD<'_, T>) -> Result<()> {
        let format = self.stream.format();
        ndstore_core::__private::stream::check_rows(
            format.meta.dtype.kind,
            &format.meta.shape[1..],
            T::KIND,
            view.shape(),
            self.stream.target(),
        )?;
        let standard = view.as_standard_layout();
        let mut text = Vec::new();
        format_rows(
            standard.as_slice().unwrap_or(&[]),
            row_len(&format.meta.shape).max(1),
            &self.options,
            &mut text,
        );
        self.stream.append(view.shape()[0], |data, _| {
            data.write_all(&text)
                .map_err(|e| Error::io("appending rows", e))
        })
    }
}

impl TextWriter {
    /// Abandons the writer and reports whether the rollback worked, where dropping it can
    /// only log: atomic, the temporary file is removed and the target keeps its old content;
    /// in place, the target is cut back to exactly its last flush (a complete file of the rows
    /// flushed so far).
    ///
    /// # Errors
    ///
    /// The error of the rollback: the temporary file cannot be removed, or the in-place file
    /// cannot be cut back or closed.
    pub fn abort(self) -> Result<()> {
        self.stream.abort()
    }
}

impl Durable for TextWriter {
    fn flush(&mut self) -> Result<()> {
        self.stream.flush()
    }

    fn sync(&mut self) -> Result<()> {
        self.stream.sync()
    }
}

impl Commit for TextWriter {
    fn commit(self) -> Result<()> {
        self.stream.commit()
    }
}

impl ArrayWriter for TextWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        with_dyn_array!(rows, |a| self.append_view(a.view()))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Commit::commit(*self)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        TextWriter::abort(*self)
    }
}

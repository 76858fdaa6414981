//! Reading delimited text in bounded memory: blocks of whole lines, each block's lines parsed
//! on two threads, every error placed at its line and column.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndstore_core::__private::bulk::on_two_threads;
use ndstore_core::{
    ArrayMeta, DType, DTypeKind, Detail, Error, ErrorKind, Location, Order, Result,
};

use crate::meta::MetaLine;
use crate::options::{Delimiter, TextOptions};
use crate::value::TextValue;

/// Text read per block. Blocks end at a newline, so memory stays near this plus one line.
const BLOCK: usize = 8 << 20;

/// Blocks smaller than this are parsed on one thread.
const PARALLEL_MIN: usize = 256 << 10;

/// A reader of delimited text, yielding rows in blocks.
pub struct TextReader {
    source: Box<dyn Read + Send>,
    path: PathBuf,
    options: TextOptions,
    buf: Vec<u8>,
    eof: bool,
    /// The line number of the first byte in `buf`, from 1.
    line: u64,
    meta: Option<MetaLine>,
    columns: Option<usize>,
    rows: usize,
    /// Bytes of the input consumed before `buf` (BOM and preamble lines).
    consumed: u64,
    /// Whether blocks are parsed on two threads (off when the caller splits the file itself).
    parallel: bool,
    /// The input's length when known (a file), else 0: reservations never exceed it.
    size_hint: usize,
    /// The most bytes of values the reader may hold (`LoadOptions::memory_limit`).
    memory_limit: Option<u64>,
}

fn text_error(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Format, message)
        .with_path(path)
        .at(Location::LineColumn { line, column })
}

/// A row with `found` fields after rows with `expected`, at `line` and `column`, with the
/// counts as a [`Detail::ColumnCount`].
pub(crate) fn column_count_error(
    path: &Path,
    line: u64,
    column: u64,
    expected: usize,
    found: usize,
) -> Error {
    text_error(
        path,
        line,
        column,
        format!("the row has {found} fields, earlier rows have {expected}"),
    )
    .with_detail(Detail::ColumnCount {
        line,
        expected,
        found,
    })
}

impl TextReader {
    /// Opens the file at `path` and reads its leading comment lines (and metadata line).
    ///
    /// # Errors
    ///
    /// I/O errors opening the file; the errors of a damaged metadata line, with the file and the
    /// line.
    pub fn open(path: impl AsRef<Path>, options: &TextOptions) -> Result<TextReader> {
        let path = path.as_ref();
        let file = ndstore_core::__private::load::open_for_load(path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
            .len();
        Ok(TextReader::from_reader(Box::new(file), path, options)?.with_size_hint(len))
    }

    /// Tells the reader how large its input is, so it can reserve memory for the values once.
    pub(crate) fn with_size_hint(mut self, len: u64) -> TextReader {
        self.size_hint = usize::try_from(len).unwrap_or(usize::MAX);
        self
    }

    /// Refuses to hold more values than `limits.memory_limit` allows (checked block by block:
    /// a reader may pass the limit by at most one block of about 8 MiB of text).
    pub(crate) fn with_memory_limit(mut self, limits: &ndstore_core::LoadOptions) -> TextReader {
        self.memory_limit = limits.memory_limit;
        self
    }

    /// Reads text from any reader; `name` is used in error messages.
    ///
    /// # Errors
    ///
    /// The reader's I/O errors; the errors of a damaged metadata line, with the line.
    pub fn from_reader(
        source: Box<dyn Read + Send>,
        name: &Path,
        options: &TextOptions,
    ) -> Result<TextReader> {
        let mut reader = TextReader::bare(source, name, options);
        reader.read_preamble()?;
        Ok(reader)
    }

    /// A reader of a later piece of a file: no preamble, no `skip_rows`, one thread per block.
    pub(crate) fn piece(
        source: Box<dyn Read + Send>,
        name: &Path,
        options: &TextOptions,
    ) -> TextReader {
        let mut reader = TextReader::bare(source, name, options);
        reader.options.skip_rows = 0;
        reader.parallel = false;
        reader
    }

    /// Parses blocks on one thread (the caller runs readers side by side).
    pub(crate) fn single_threaded(mut self) -> TextReader {
        self.parallel = false;
        self
    }

    /// Bytes of input before the first data line.
    pub(crate) fn data_start(&self) -> u64 {
        self.consumed
    }

    fn bare(source: Box<dyn Read + Send>, name: &Path, options: &TextOptions) -> TextReader {
        TextReader {
            source,
            path: name.to_path_buf(),
            options: options.clone(),
            buf: Vec::new(),
            eof: false,
            line: 1,
            meta: None,
            columns: None,
            rows: 0,
            consumed: 0,
            parallel: true,
            size_hint: 0,
            memory_limit: None,
        }
    }

    /// Fills the buffer until it holds a newline after `from`, or the input ends; refuses lines
    /// longer than the limit before holding them.
    fn fill_line(&mut self, from: usize) -> Result<Option<usize>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..]) {
                return Ok(Some(from + i));
            }
            if self.eof {
                return Ok(None);
            }
            if self.buf.len() - from > self.options.max_line_len {
                return Err(text_error(
                    &self.path,
                    self.line,
                    self.options.max_line_len as u64 + 1,
                    format!(
                        "the line is longer than the limit of {} bytes",
                        self.options.max_line_len
                    ),
                )
                .with_path(&self.path));
            }
            // Grow geometrically from 4 KiB, so reading a few header lines reads little.
            let amount = (self.buf.len() - from).clamp(4096, BLOCK);
            self.read_more(amount)?;
        }
    }

    fn read_more(&mut self, amount: usize) -> Result<()> {
        // `read_to_end` reads into spare capacity without zero-filling it first.
        let start = self.buf.len();
        let wanted = amount as u64;
        let got = (&mut self.source)
            .take(wanted)
            .read_to_end(&mut self.buf)
            .map_err(|e| {
                Error::io("read failed", e)
                    .with_path(&self.path)
                    .at(Location::LineColumn {
                        line: self.line,
                        column: 1,
                    })
            })?;
        if (got as u64) < wanted {
            self.eof = true;
        }
        debug_assert_eq!(self.buf.len(), start + got);
        Ok(())
    }

    /// Skips the BOM, `skip_rows` lines, and the comment and blank lines before the data,
    /// reading the metadata line among them.
    fn read_preamble(&mut self) -> Result<()> {
        self.read_more(4096.min(self.options.max_line_len.max(4)))?;
        if self.buf.starts_with(b"\xef\xbb\xbf") {
            self.buf.drain(..3);
            self.consumed += 3;
        }
        let mut skip = self.options.skip_rows;
        loop {
            let end = self.fill_line(0)?;
            let line_end = end.unwrap_or(self.buf.len());
            let raw = &self.buf[..line_end];
            let text = trim_line(raw);
            let is_comment = !self.options.comments.is_empty()
                && trim_start(text).starts_with(self.options.comments.as_bytes());
            if skip > 0 {
                skip -= 1;
            } else if is_comment {
                let body = trim_start(&trim_start(text)[self.options.comments.len()..]);
                if let Some(json) = body.strip_prefix(b"ndstore:") {
                    if self.meta.is_some() {
                        return Err(text_error(
                            &self.path,
                            self.line,
                            1,
                            "the file has two ndstore metadata lines",
                        ));
                    }
                    let meta = MetaLine::parse(json).map_err(|e| {
                        text_error(
                            &self.path,
                            self.line,
                            1,
                            format!("bad ndstore metadata line: {}", e.message()),
                        )
                    })?;
                    self.meta = Some(meta);
                }
            } else if !trim_start(text).is_empty() {
                return Ok(());
            }
            match end {
                Some(e) => {
                    self.buf.drain(..=e);
                    self.consumed += e as u64 + 1;
                    self.line += 1;
                }
                None => {
                    // The input ends on a comment line with no line ending: accepted, as numpy
                    // and pandas accept it, unless it is the metadata line, which a writer
                    // always ends (and follows with the data it announces).
                    if self.meta.is_some() && is_comment && !trim(text).is_empty() {
                        return Err(unterminated(&self.path, self.line, text.len()));
                    }
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// The array's metadata: from the metadata line, or the dtype option (f64 by default) with
    /// a shape known only after reading.
    pub fn meta_line(&self) -> Option<ArrayMeta> {
        self.meta.as_ref().map(MetaLine::to_meta)
    }

    /// The dtype the data will be read as.
    pub fn dtype(&self) -> DType {
        match (&self.meta, self.options.dtype) {
            (Some(meta), _) => meta.dtype,
            (None, Some(dtype)) => dtype,
            (None, None) => DType::native(DTypeKind::F64),
        }
    }

    /// The path or name used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next block of rows (about 8 MiB of text): the values in row order and the row
    /// count. `None` at the end of the data.
    ///
    /// # Errors
    ///
    /// As `TextReader::next_block_into`.
    pub fn next_block<T: TextValue>(&mut self) -> Result<Option<(Vec<T>, usize)>> {
        let mut values = Vec::new();
        Ok(self
            .next_block_into(&mut values)?
            .map(|rows| (values, rows)))
    }

    /// Appends the next block's values to `values` and returns its row count; `None` at the end
    /// of the data.
    ///
    /// # Errors
    ///
    /// An error naming the file and the line and column: `ErrorKind::Format` for a field that is no
    /// value of `T`, a ragged row (with a `Detail::ColumnCount`) or a line over the length limit;
    /// `ErrorKind::OutOfMemory` over the memory limit; I/O errors.
    pub fn next_block_into<T: TextValue>(&mut self, values: &mut Vec<T>) -> Result<Option<usize>> {
        if self.options.max_rows.is_some_and(|m| self.rows >= m) {
            return Ok(None);
        }
        if self.buf.len() < BLOCK && !self.eof {
            self.read_more(BLOCK)?;
        }
        if self.buf.is_empty() && self.eof {
            return Ok(None);
        }
        // The block ends after the last newline; a final line without one ends the input.
        let end = match memchr::memrchr(b'\n', &self.buf) {
            Some(i) => i + 1,
            None if self.eof => self.buf.len(),
            None => {
                let nl = self.fill_line(0)?;
                nl.map_or(self.buf.len(), |i| i + 1)
            }
        };
        let chunk = &self.buf[..end];
        // A last line without a line ending is accepted (hand-edited files and spreadsheet
        // exports end this way, and numpy and pandas read them), except in a file with a
        // metadata line: its writer ends every line, so a missing ending there is evidence
        // that the file was cut short, perhaps inside the last value.
        if self.meta.is_some() && !chunk.ends_with(b"\n") {
            let last_start = memchr::memrchr(b'\n', chunk).map_or(0, |i| i + 1);
            let last = trim_line(&chunk[last_start..]);
            if !trim(last).is_empty() {
                let line = self.line + memchr::memchr_iter(b'\n', chunk).count() as u64;
                return Err(unterminated(&self.path, line, last.len()));
            }
        }
        // Every value takes at least one byte of text and one of delimiter or line ending, so
        // this block holds at most half its length in values: reserve that, fallibly.
        let most = chunk.len() / 2 + 1;
        let item = std::mem::size_of::<T>() as u64;
        if let Some(limit) = self.memory_limit
            && (values.len() as u64).saturating_mul(item) > limit
        {
            return Err(over_limit(
                &self.path,
                self.line,
                values.len() as u64 * item,
                limit,
            ));
        }
        if values.capacity() - values.len() < most {
            values.try_reserve(most).map_err(|_| {
                Error::new(
                    ErrorKind::OutOfMemory,
                    format!(
                        "cannot allocate {} bytes for the values",
                        (values.len() + most) as u64 * item
                    ),
                )
                .with_path(&self.path)
                .at(Location::LineColumn {
                    line: self.line,
                    column: 1,
                })
            })?;
        }
        let remaining_rows = self.options.max_rows.map(|m| m - self.rows);
        let parsed = if self.parallel && chunk.len() >= PARALLEL_MIN && remaining_rows.is_none() {
            parse_parallel::<T>(chunk, self.line, &self.options, &self.path, values)?
        } else {
            parse_lines::<T>(
                chunk,
                self.line,
                &self.options,
                &self.path,
                remaining_rows,
                values,
            )?
        };
        let Parsed {
            rows,
            columns,
            lines,
            first_row_line,
        } = parsed;
        if let (Some(want), Some(got)) = (self.columns, columns)
            && want != got
        {
            return Err(column_count_error(&self.path, first_row_line, 1, want, got));
        }
        if self.columns.is_none() {
            self.columns = columns;
        }
        self.line += lines;
        self.rows += rows;
        self.buf.drain(..end);
        if let Some(limit) = self.memory_limit
            && (values.len() as u64).saturating_mul(item) > limit
        {
            return Err(over_limit(
                &self.path,
                self.line,
                values.len() as u64 * item,
                limit,
            ));
        }
        Ok(Some(rows))
    }

    /// An upper bound on the input's size, for reservations (the file's length when known).
    pub(crate) fn source_hint(&self) -> usize {
        self.size_hint
    }

    /// The number of fields per row, once a row has been read.
    pub fn columns(&self) -> Option<usize> {
        self.columns
    }

    /// The current line number (for errors after the data).
    pub fn line(&self) -> u64 {
        self.line
    }
}

/// The error for values over the load's memory limit.
fn over_limit(path: &Path, line: u64, bytes: u64, limit: u64) -> Error {
    Error::new(
        ErrorKind::OutOfMemory,
        format!("the values read so far take {bytes} bytes, over the load's memory limit of {limit} bytes"),
    )
    .with_path(path)
    .at(Location::LineColumn { line, column: 1 })
}

/// The error for a last line without a line ending in a file with a metadata line: its writer
/// ends every line, so a missing one means the file was cut short.
fn unterminated(path: &Path, line: u64, len: usize) -> Error {
    Error::new(
        ErrorKind::Truncated,
        "the last line has no line ending; the file may be truncated",
    )
    .with_path(path)
    .at(Location::LineColumn {
        line,
        column: len as u64 + 1,
    })
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let n = s
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &s[..s.len() - n]
}

/// What one run of the parser produced (its values went to the caller's vector).
struct Parsed {
    rows: usize,
    columns: Option<usize>,
    /// Lines consumed (data, blank and comment).
    lines: u64,
    /// The line of the first data row, for column-count errors between blocks.
    first_row_line: u64,
}

/// Parses the whole lines of `chunk`, the first of which is line `first_line`.
fn parse_lines<T: TextValue>(
    chunk: &[u8],
    first_line: u64,
    options: &TextOptions,
    path: &Path,
    max_rows: Option<usize>,
    values: &mut Vec<T>,
) -> Result<Parsed> {
    let mut rows = 0usize;
    let mut columns: Option<usize> = None;
    let mut line = first_line;
    let mut first_row_line = first_line;
    let mut fields: Vec<(usize, &[u8])> = Vec::new();
    let mut start = 0;
    let comments = options.comments.as_bytes();
    // One search per block: most blocks hold no comment, and then no line needs searching.
    let has_comments = !comments.is_empty() && memchr::memmem::find(chunk, comments).is_some();
    // Floats split by one byte parse in a single pass: number, then delimiter, no field split.
    let fast_delimiter = match options.delimiter {
        Delimiter::Byte(d) if options.use_cols.is_none() && T::parse_prefix(b"0").is_some() => {
            Some(d)
        }
        _ => None,
    };
    while start < chunk.len() {
        if max_rows.is_some_and(|m| rows >= m) {
            break;
        }
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |i| start + i);
        let mut text = trim_line(&chunk[start..end]);
        if has_comments && let Some(at) = memchr::memmem::find(text, comments) {
            text = &text[..at];
        }
        if let Some(d) = fast_delimiter
            && !trim(text).is_empty()
        {
            let n = parse_row_fast::<T>(text, d, columns, values, line, path)?;
            if columns.is_none() {
                columns = Some(n);
                first_row_line = line;
            }
            rows += 1;
        } else if !trim(text).is_empty() {
            fields.clear();
            split_fields(text, options.delimiter, &mut fields);
            let count = match options.use_cols.as_deref() {
                None => fields.len(),
                Some(cols) => cols.len(),
            };
            match columns {
                None => {
                    columns = Some(count);
                    first_row_line = line;
                }
                Some(n) if n != count => {
                    let column = fields.get(n).map_or(text.len() + 1, |f| f.0 + 1);
                    return Err(column_count_error(path, line, column as u64, n, count));
                }
                Some(_) => {}
            }
            let mut push = |offset: usize, field: &[u8]| -> Result<()> {
                let value = T::parse_text(trim(field)).map_err(|e| {
                    e.with_path(path).at(Location::LineColumn {
                        line,
                        column: offset as u64 + 1,
                    })
                })?;
                values.push(value);
                Ok(())
            };
            match options.use_cols.as_deref() {
                None => {
                    for &(offset, field) in &fields {
                        push(offset, field)?;
                    }
                }
                Some(cols) => {
                    for &c in cols {
                        let &(offset, field) = fields.get(c).ok_or_else(|| {
                            text_error(
                                path,
                                line,
                                text.len() as u64 + 1,
                                format!("the row has no column {c} (it has {})", fields.len()),
                            )
                        })?;
                        push(offset, field)?;
                    }
                }
            }
            rows += 1;
        }
        line += 1;
        start = end + 1;
    }
    let lines = line - first_line;
    Ok(Parsed {
        rows,
        columns,
        lines,
        first_row_line,
    })
}

/// Parses one row of floats in a single pass and returns its field count, checking it against
/// `expected`. Errors name the field's column, with the same messages as the split path.
fn parse_row_fast<T: TextValue>(
    text: &[u8],
    delimiter: u8,
    expected: Option<usize>,
    values: &mut Vec<T>,
    line: u64,
    path: &Path,
) -> Result<usize> {
    let len = text.len();
    let mut pos = 0;
    let mut n = 0;
    let field_error = |start: usize| -> Error {
        let end = memchr::memchr(delimiter, &text[start..]).map_or(len, |i| start + i);
        let place = Location::LineColumn {
            line,
            column: start as u64 + 1,
        };
        match T::parse_text(trim(&text[start..end])) {
            Err(e) => e.with_path(path).at(place),
            Ok(_) => text_error(
                path,
                line,
                start as u64 + 1,
                format!("unexpected text in the field at column {}", start + 1),
            ),
        }
    };
    loop {
        while pos < len && text[pos] != delimiter && matches!(text[pos], b' ' | b'\t') {
            pos += 1;
        }
        let start = pos;
        if let Some(expected) = expected
            && n == expected
        {
            // As the split path counts them: one more than the delimiters.
            let found = memchr::memchr_iter(delimiter, text).count() + 1;
            return Err(column_count_error(
                path,
                line,
                start as u64 + 1,
                expected,
                found,
            ));
        }
        let Some((value, used)) = T::parse_prefix(&text[pos..]) else {
            return Err(field_error(start));
        };
        pos += used;
        while pos < len && text[pos] != delimiter && matches!(text[pos], b' ' | b'\t') {
            pos += 1;
        }
        if pos < len && text[pos] != delimiter {
            return Err(field_error(start));
        }
        values.push(value);
        n += 1;
        if pos == len {
            break;
        }
        pos += 1;
    }
    if let Some(expected) = expected
        && n != expected
    {
        return Err(column_count_error(path, line, len as u64 + 1, expected, n));
    }
    Ok(n)
}

/// Splits a line into (byte offset, field) pairs.
fn split_fields<'a>(text: &'a [u8], delimiter: Delimiter, out: &mut Vec<(usize, &'a [u8])>) {
    match delimiter {
        Delimiter::Byte(d) => {
            let mut start = 0;
            for i in memchr::memchr_iter(d, text) {
                out.push((start, &text[start..i]));
                start = i + 1;
            }
            out.push((start, &text[start..]));
        }
        Delimiter::Whitespace => {
            let mut i = 0;
            while i < text.len() {
                while i < text.len() && matches!(text[i], b' ' | b'\t') {
                    i += 1;
                }
                let start = i;
                while i < text.len() && !matches!(text[i], b' ' | b'\t') {
                    i += 1;
                }
                if i > start {
                    out.push((start, &text[start..i]));
                }
            }
        }
    }
}

/// Parses a chunk on two threads, split at a newline near its middle.
fn parse_parallel<T: TextValue>(
    chunk: &[u8],
    first_line: u64,
    options: &TextOptions,
    path: &Path,
    values: &mut Vec<T>,
) -> Result<Parsed> {
    let middle = chunk.len() / 2;
    let Some(split) = memchr::memchr(b'\n', &chunk[middle..]).map(|i| middle + i + 1) else {
        return parse_lines(chunk, first_line, options, path, None, values);
    };
    let (head, tail) = chunk.split_at(split);
    let tail_line = first_line + memchr::memchr_iter(b'\n', head).count() as u64;
    let mut tail_values = Vec::new();
    tail_values.try_reserve(tail.len() / 2 + 1).map_err(|_| {
        Error::new(
            ErrorKind::OutOfMemory,
            "cannot allocate memory for the values",
        )
        .with_path(path)
    })?;
    // A panic of the second parser is raised again here, not turned into an error.
    let (a, b) = on_two_threads(
        || parse_lines::<T>(head, first_line, options, path, None, values),
        || parse_lines::<T>(tail, tail_line, options, path, None, &mut tail_values),
    );
    let mut a = a?;
    let b = b?;
    match (a.columns, b.columns) {
        (Some(x), Some(y)) if x != y => {
            return Err(column_count_error(path, b.first_row_line, 1, x, y));
        }
        (None, Some(_)) => {
            a.columns = b.columns;
            a.first_row_line = b.first_row_line;
        }
        _ => {}
    }
    values.extend(tail_values);
    a.rows += b.rows;
    a.lines += b.lines;
    Ok(a)
}

/// The values of a reader's data, in row order, with what the checks after it need.
pub(crate) struct Collected<T> {
    pub values: Vec<T>,
    pub rows: usize,
    pub columns: Option<usize>,
    /// The line after the last one read.
    pub end_line: u64,
}

/// Reads every block of `reader`. `expected` is the number of values the file's metadata line
/// announces, when the caller knows it and `reader` has not read that line itself (the second
/// half of a file read in two).
pub(crate) fn collect<T: TextValue>(
    reader: &mut TextReader,
    expected: Option<usize>,
) -> Result<Collected<T>> {
    let mut values: Vec<T> = Vec::new();
    // The metadata line says how many values come; reserve them once, bounded by what this
    // input could hold (a value takes at least two bytes of text). Reserved memory that is
    // never written costs address space, not pages, so a half-file reader reserves the lot.
    let expected = expected.or_else(|| reader.meta_line().and_then(|m| m.element_count().ok()));
    if let Some(count) = expected {
        let count = count.min(reader.source_hint() / 2);
        values.try_reserve_exact(count).map_err(|_| {
            Error::new(
                ErrorKind::OutOfMemory,
                format!(
                    "cannot allocate {} bytes for the values",
                    count as u64 * std::mem::size_of::<T>() as u64
                ),
            )
            .with_path(reader.path())
        })?;
    }
    let mut rows = 0;
    while let Some(n) = reader.next_block_into(&mut values)? {
        rows += n;
    }
    Ok(Collected {
        values,
        rows,
        columns: reader.columns(),
        end_line: reader.line(),
    })
}

/// The array's metadata once all values are read: the metadata line's (checked against the
/// value count), or rows × columns squeezed as `np.loadtxt` squeezes.
pub(crate) fn finish<T>(
    meta_line: Option<ArrayMeta>,
    dtype: DType,
    data: &Collected<T>,
    path: &Path,
) -> Result<ArrayMeta> {
    match meta_line {
        Some(meta) => {
            let want = meta.element_count().map_err(|e| e.with_path(path))?;
            if want != data.values.len() {
                return Err(Error::new(
                    ErrorKind::Truncated,
                    format!("the data holds {} values, but the metadata line says shape {:?} ({want} values)", data.values.len(), meta.shape),
                )
                .with_path(path)
                .at(Location::LineColumn { line: data.end_line, column: 1 }));
            }
            Ok(meta)
        }
        None => {
            if data.rows == 0 {
                return Err(text_error(
                    path,
                    data.end_line,
                    1,
                    "the file holds no data and no ndstore metadata line",
                ));
            }
            let shape = match (data.rows, data.columns.unwrap_or(0)) {
                (1, 1) => vec![],
                (1, c) => vec![c],
                (r, 1) => vec![r],
                (r, c) => vec![r, c],
            };
            Ok(ArrayMeta::new(dtype, shape, Order::C))
        }
    }
}

/// Reads a whole text array: its metadata and its values in C order.
pub fn read_all<T: TextValue>(mut reader: TextReader) -> Result<(ArrayMeta, Vec<T>)> {
    let dtype = reader.dtype();
    if dtype.kind != T::KIND {
        return Err(
            ndstore_core::__private::array::type_mismatch(dtype.kind, T::KIND)
                .with_path(reader.path()),
        );
    }
    let data = collect::<T>(&mut reader, None)?;
    let meta = finish(reader.meta_line(), dtype, &data, reader.path())?;
    Ok((meta, data.values))
}

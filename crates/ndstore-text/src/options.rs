//! The options of text files, after numpy's `savetxt` and `loadtxt`.

use ndstore_core::DType;

pub use crate::value::{BoolFormat, FloatFormat};

/// What separates the fields of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    /// One byte, such as `,` (the default) or `\t`.
    Byte(u8),
    /// Any run of spaces and tabs, as `np.loadtxt`'s default.
    Whitespace,
}

/// The line ending written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Newline {
    /// `\n` (the default).
    #[default]
    Lf,
    /// `\r\n`.
    CrLf,
}

/// How text files are written and read. Both directions share the delimiter and the comment
/// prefix; the other fields say which direction uses them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TextOptions {
    /// The field separator (default `,`).
    pub delimiter: Delimiter,
    /// The prefix that starts a comment, to the end of the line (default `#`).
    pub comments: String,
    /// Writing: text written after the metadata line, each line prefixed with `comments`.
    pub header: Option<String>,
    /// Writing: text written after the data, each line prefixed with `comments`.
    pub footer: Option<String>,
    /// Writing: the line ending.
    pub newline: Newline,
    /// Writing: how floats are spelled (default: the shortest text that round-trips exactly).
    pub float_format: FloatFormat,
    /// Writing: how bools are spelled (default `0`/`1`).
    pub bool_format: BoolFormat,
    /// Writing: start the file with a UTF-8 byte-order mark.
    pub bom: bool,
    /// Writing: start with the `# ndstore: {...}` line that restores dtype, shape and order
    /// (default on; `np.loadtxt` skips it as a comment).
    pub metadata: bool,
    /// Reading: lines to skip at the start, comments included (numpy's `skiprows`).
    pub skip_rows: usize,
    /// Reading: only these columns, in this order (numpy's `usecols`).
    pub use_cols: Option<Vec<usize>>,
    /// Reading: at most this many data rows (numpy's `max_rows`).
    pub max_rows: Option<usize>,
    /// Reading: the dtype of files without a metadata line (default native f64, as `loadtxt`).
    pub dtype: Option<DType>,
    /// Reading: a longer line is an error, found without holding more than this in memory.
    pub max_line_len: usize,
}

impl Default for TextOptions {
    fn default() -> TextOptions {
        TextOptions {
            delimiter: Delimiter::Byte(b','),
            comments: "#".to_owned(),
            header: None,
            footer: None,
            newline: Newline::Lf,
            float_format: FloatFormat::Shortest,
            bool_format: BoolFormat::ZeroOne,
            bom: false,
            metadata: true,
            skip_rows: 0,
            use_cols: None,
            max_rows: None,
            dtype: None,
            max_line_len: 64 << 20,
        }
    }
}

impl TextOptions {
    /// The defaults: comma-separated, `#` comments, shortest exact numbers, a metadata line.
    pub fn new() -> TextOptions {
        TextOptions::default()
    }

    /// Separates fields with `delimiter`.
    #[must_use]
    pub fn delimiter(mut self, delimiter: Delimiter) -> TextOptions {
        self.delimiter = delimiter;
        self
    }

    /// Reads files without a metadata line as `dtype`.
    #[must_use]
    pub fn dtype(mut self, dtype: DType) -> TextOptions {
        self.dtype = Some(dtype);
        self
    }
}

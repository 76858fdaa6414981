//! The one error type of ndstore: a kind a program can match on, plus the file and the place a
//! person needs to fix the input.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::dtype::DTypeKind;

/// What went wrong, for programs to match on.
///
/// The list grows as backends do, so matches need a wildcard arm. A new kind is added to
/// [`ErrorKind::ALL`] too (a test fails until it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system reported an error (open, read, write, fsync, rename, ...).
    Io,
    /// The input ended before the format said it would.
    Truncated,
    /// The bytes do not follow the format (wrong magic, a malformed header, bad element values).
    Format,
    /// The stored dtype is not one ndstore supports (strings, objects, structured types).
    UnsupportedDType,
    /// The caller asked for a different element type or dimensionality than the file holds.
    TypeMismatch,
    /// A size computation overflowed, or a size exceeds what the input or a limit allows.
    TooLarge,
    /// An archive member name is unsafe or repeated, or a dataset path is invalid.
    InvalidName,
    /// A member or dataset that was asked for does not exist.
    NotFound,
    /// An earlier fsync, write or flush failed on this handle: its data may be lost or
    /// incomplete, so it refuses to go on. Recovery is a fresh atomic save, never a retry.
    Poisoned,
    /// Another handle holds a conflicting lock on the file.
    Locked,
    /// The call's own arguments are inconsistent (a shape that does not match the data, say).
    InvalidInput,
    /// The backend does not offer this operation; its capabilities say so.
    Unsupported,
    /// The file system is full, or the user's quota is spent (ENOSPC, EDQUOT). The target keeps
    /// its old content; free space and save again.
    StorageFull,
    /// The data needs more memory than the allocator gave or the caller's memory limit
    /// ([`LoadOptions::memory_limit`](crate::LoadOptions)) allows. The message names the size.
    OutOfMemory,
    /// The file's bytes are damaged: a checksum does not match (zip CRC-32, Fletcher-32), or a
    /// library found its own structures inconsistent.
    Corrupt,
    /// The isolated process that parses a file with a library not hardened against hostile
    /// input (libhdf5) died on it (a signal, an abort, its memory or time limit): the file is
    /// damaged or hostile. The caller is unharmed.
    ReaderCrashed,
    /// The operating system refused access (EACCES, EPERM), or ndstore refused to replace a
    /// file the caller could not have written, or to give up its owner, unless told to.
    PermissionDenied,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::Io,
        ErrorKind::Truncated,
        ErrorKind::Format,
        ErrorKind::UnsupportedDType,
        ErrorKind::TypeMismatch,
        ErrorKind::TooLarge,
        ErrorKind::InvalidName,
        ErrorKind::NotFound,
        ErrorKind::Poisoned,
        ErrorKind::Locked,
        ErrorKind::InvalidInput,
        ErrorKind::Unsupported,
        ErrorKind::StorageFull,
        ErrorKind::OutOfMemory,
        ErrorKind::Corrupt,
        ErrorKind::ReaderCrashed,
        ErrorKind::PermissionDenied,
    ];

    /// The kind whose [`ErrorKind::as_str`] is `name`, for errors that crossed a process
    /// boundary as text; `None` for a name no kind has.
    ///
    /// ```
    /// use ndstore_core::ErrorKind;
    /// assert_eq!(ErrorKind::from_name("storage full"), Some(ErrorKind::StorageFull));
    /// assert_eq!(ErrorKind::from_name("no such kind"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// A short lowercase name, as the conformance report prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Format => "format",
            ErrorKind::UnsupportedDType => "unsupported dtype",
            ErrorKind::TypeMismatch => "type mismatch",
            ErrorKind::TooLarge => "too large",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::NotFound => "not found",
            ErrorKind::Poisoned => "poisoned",
            ErrorKind::Locked => "locked",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::StorageFull => "storage full",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::ReaderCrashed => "reader crashed",
            ErrorKind::PermissionDenied => "permission denied",
        }
    }
}

/// Where in the input the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A byte offset from the start of the file (or stream).
    Offset(u64),
    /// A member of an archive, and a byte offset inside the member.
    Member {
        /// The member's name as the archive spells it.
        name: String,
        /// The offset inside the member's uncompressed bytes.
        offset: u64,
    },
    /// A line and column of a text file, both counted from 1.
    LineColumn {
        /// The line, from 1.
        line: u64,
        /// The column, from 1.
        column: u64,
    },
    /// An object path inside a container file (an HDF5 dataset, say).
    Object(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Offset(o) => write!(f, "byte {o}"),
            Location::Member { name, offset } => write!(f, "member '{name}', byte {offset}"),
            Location::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Location::Object(path) => write!(f, "object '{path}'"),
        }
    }
}

/// Typed facts about an error, for a program that branches on more than its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detail {
    /// A row of a text file has another number of fields than the rows before it
    /// ([`ErrorKind::Format`]).
    ColumnCount {
        /// The row's line, counted from 1.
        line: u64,
        /// The number of fields of the rows before it.
        expected: usize,
        /// The number of fields it has.
        found: usize,
    },
    /// The data holds another element type than was asked for ([`ErrorKind::TypeMismatch`]).
    TypeMismatch {
        /// The element type the file or array holds.
        found: DTypeKind,
        /// The element type the caller asked for.
        wanted: DTypeKind,
    },
}

/// An ndstore error: a kind, a message, and where known the file, the place, typed
/// [`Detail`]s and the cause.
///
/// Displayed as `path: place: message` so a person can go straight to the problem. The error is
/// one pointer wide (its parts are boxed), so `Result<(), Error>` costs a register, not a
/// struct.
///
/// ```
/// use ndstore_core::{Detail, ErrorKind, Location};
///
/// # fn main() -> ndstore_core::Result<()> {
/// let dir = std::env::temp_dir().join(format!("ndstore-error-doc-{}", std::process::id()));
/// let target = dir.join("no").join("such").join("a.npy");
/// let Err(err) = ndstore_core::OutputFile::create(&target, &Default::default()) else {
///     panic!("the directory does not exist");
/// };
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert!(err.io_error().is_some()); // the operating system's own error
///
/// // An error made by a reader: kind, place and typed detail, each for a program to branch on.
/// let err = ndstore_core::Error::new(ErrorKind::Format, "the row has 2 fields, earlier rows have 3")
///     .at(Location::LineColumn { line: 7, column: 4 })
///     .with_detail(Detail::ColumnCount { line: 7, expected: 3, found: 2 });
/// match err.detail() {
///     Some(Detail::ColumnCount { expected, found, .. }) => assert_eq!((*expected, *found), (3, 2)),
///     _ => unreachable!(),
/// }
/// assert_eq!(err.to_string(), "line 7, column 4: the row has 2 fields, earlier rows have 3");
/// # Ok(())
/// # }
/// ```
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    location: Option<Location>,
    detail: Option<Detail>,
    source: Option<io::Error>,
}

/// The result type of every fallible ndstore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message (lowercase, no trailing period).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            path: None,
            location: None,
            detail: None,
            source: None,
        }))
    }

    /// An I/O error, with a message saying what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        let kind = if source.kind() == io::ErrorKind::UnexpectedEof {
            ErrorKind::Truncated
        } else if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            ErrorKind::StorageFull
        } else if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
            ErrorKind::PermissionDenied
        } else if source.kind() == io::ErrorKind::OutOfMemory {
            ErrorKind::OutOfMemory
        } else {
            ErrorKind::Io
        };
        Error(Box::new(Inner {
            kind,
            message: context.into(),
            path: None,
            location: None,
            detail: None,
            source: Some(source),
        }))
    }

    /// Attaches the file the error concerns, unless one is already attached.
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Error {
        if self.0.path.is_none() {
            self.0.path = Some(path.as_ref().to_path_buf());
        }
        self
    }

    /// Attaches the place in the input, unless one is already attached.
    #[must_use]
    pub fn at(mut self, location: Location) -> Error {
        if self.0.location.is_none() {
            self.0.location = Some(location);
        }
        self
    }

    /// Attaches a byte offset, unless a place is already attached.
    #[must_use]
    pub fn at_offset(self, offset: u64) -> Error {
        self.at(Location::Offset(offset))
    }

    /// Turns a byte offset into a place inside the named archive member.
    #[must_use]
    pub fn in_member(mut self, name: &str) -> Error {
        self.0.location = Some(match self.0.location.take() {
            Some(Location::Offset(offset)) => Location::Member {
                name: name.to_owned(),
                offset,
            },
            Some(other) => other,
            None => Location::Member {
                name: name.to_owned(),
                offset: 0,
            },
        });
        self
    }

    /// Attaches typed facts about the error, replacing any attached before.
    #[must_use]
    pub fn with_detail(mut self, detail: Detail) -> Error {
        self.0.detail = Some(detail);
        self
    }

    /// Moves a line-and-column place (and a detail's line) down by `lines`: for text parsed in
    /// pieces, whose errors were placed relative to the piece.
    #[must_use]
    pub fn offset_lines(mut self, lines: u64) -> Error {
        if let Some(Location::LineColumn { line, .. }) = &mut self.0.location {
            *line += lines;
        }
        if let Some(Detail::ColumnCount { line, .. }) = &mut self.0.detail {
            *line += lines;
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without path or place.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The file the error concerns, when known.
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// The place in the input, when known.
    pub fn location(&self) -> Option<&Location> {
        self.0.location.as_ref()
    }

    /// Typed facts about the error, when the code that made it had some.
    pub fn detail(&self) -> Option<&Detail> {
        self.0.detail.as_ref()
    }

    /// The operating system's error, for I/O errors.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.0.source.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.0.path {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(location) = &self.0.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.0.message)?;
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {self})", self.0.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.0.kind {
            ErrorKind::Truncated => io::ErrorKind::UnexpectedEof,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::OutOfMemory => io::ErrorKind::OutOfMemory,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::Io | ErrorKind::StorageFull => err
                .0
                .source
                .as_ref()
                .map_or(io::ErrorKind::Other, io::Error::kind),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_file_and_the_place() {
        let err = Error::new(ErrorKind::Format, "bad magic")
            .with_path("a/b.npy")
            .at_offset(3);
        assert_eq!(err.to_string(), "a/b.npy: byte 3: bad magic");
        let err = Error::new(ErrorKind::Truncated, "data ends early")
            .at_offset(70)
            .in_member("x.npy");
        assert_eq!(err.to_string(), "member 'x.npy', byte 70: data ends early");
    }

    /// Each kind's position in declaration order. A match without a wildcard: a new kind does
    /// not compile here until it is given the next position, and the test then fails until
    /// [`ErrorKind::ALL`] lists it there.
    fn position(kind: ErrorKind) -> usize {
        match kind {
            ErrorKind::Io => 0,
            ErrorKind::Truncated => 1,
            ErrorKind::Format => 2,
            ErrorKind::UnsupportedDType => 3,
            ErrorKind::TypeMismatch => 4,
            ErrorKind::TooLarge => 5,
            ErrorKind::InvalidName => 6,
            ErrorKind::NotFound => 7,
            ErrorKind::Poisoned => 8,
            ErrorKind::Locked => 9,
            ErrorKind::InvalidInput => 10,
            ErrorKind::Unsupported => 11,
            ErrorKind::StorageFull => 12,
            ErrorKind::OutOfMemory => 13,
            ErrorKind::Corrupt => 14,
            ErrorKind::ReaderCrashed => 15,
            ErrorKind::PermissionDenied => 16,
        }
    }

    #[test]
    fn every_kind_is_listed_and_round_trips_through_its_name() {
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(position(kind), i, "{kind:?}");
            // The declaration order, so a kind added in the middle is noticed as well.
            assert_eq!(kind as usize, i, "{kind:?}");
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        // The kind declared last is the last listed.
        assert_eq!(
            position(ErrorKind::PermissionDenied) + 1,
            ErrorKind::ALL.len()
        );
        assert_eq!(ErrorKind::from_name("lock"), None);
    }

    #[test]
    fn details_move_with_the_lines() {
        let err = Error::new(ErrorKind::Format, "ragged")
            .at(Location::LineColumn { line: 2, column: 5 })
            .with_detail(Detail::ColumnCount {
                line: 2,
                expected: 3,
                found: 4,
            })
            .offset_lines(10);
        assert_eq!(
            err.detail(),
            Some(&Detail::ColumnCount {
                line: 12,
                expected: 3,
                found: 4
            })
        );
        assert_eq!(
            err.location(),
            Some(&Location::LineColumn {
                line: 12,
                column: 5
            })
        );
    }

    #[test]
    fn unexpected_eof_is_truncation() {
        let err = Error::io("reading", io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(err.kind(), ErrorKind::Truncated);
    }
}

#[cfg(test)]
mod size {
    /// Measured: 8 bytes on 64-bit targets (the boxed error's pointer, whose niche holds `Ok`).
    #[test]
    fn a_result_with_the_error_is_one_pointer_wide() {
        assert!(std::mem::size_of::<super::Result<()>>() <= 16);
        assert_eq!(
            std::mem::size_of::<super::Error>(),
            std::mem::size_of::<usize>()
        );
    }
}

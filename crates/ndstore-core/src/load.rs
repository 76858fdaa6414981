//! Options for loading, and the one rule every reader follows before it allocates: a size read
//! from a file is checked against what the file can hold and against the caller's memory limit,
//! and the allocation itself is fallible.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::npy_header::DEFAULT_MAX_HEADER_LEN;

/// Options for a load.
///
/// ```
/// use ndstore_core::LoadOptions;
/// // Refuse any array that would need more than 1 GiB of memory.
/// let options = LoadOptions::new().memory_limit(1 << 30);
/// assert_eq!(options.memory_limit, Some(1 << 30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The most bytes of array data a load may allocate; `None` for no limit beyond what the
    /// file can justify and what the allocator gives. A larger array is refused with
    /// [`ErrorKind::OutOfMemory`] before anything is allocated.
    pub memory_limit: Option<u64>,
    /// `.npy` headers (also inside `.npz` members) longer than this are refused before they are
    /// read (numpy's default: 10,000 bytes).
    pub max_header_len: usize,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            memory_limit: None,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
        }
    }
}

impl LoadOptions {
    /// The defaults: no memory limit beyond what the file justifies, numpy's header limit.
    pub fn new() -> LoadOptions {
        LoadOptions::default()
    }

    /// Refuses arrays whose data would need more than `bytes` bytes of memory.
    #[must_use]
    pub fn memory_limit(mut self, bytes: u64) -> LoadOptions {
        self.memory_limit = Some(bytes);
        self
    }

    /// Refuses `.npy` headers longer than `bytes`.
    #[must_use]
    pub fn max_header_len(mut self, bytes: usize) -> LoadOptions {
        self.max_header_len = bytes;
        self
    }

    /// Checks that `bytes` of array data fit the memory limit.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfMemory`] naming both sizes when `bytes` is over the limit.
    pub fn admit(&self, bytes: u64) -> Result<()> {
        match self.memory_limit {
            Some(limit) if bytes > limit => Err(Error::new(
                ErrorKind::OutOfMemory,
                format!(
                    "the array needs {bytes} bytes of memory, over the load's memory limit of {limit} bytes"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Allocates `count` zeroed values, or fails with [`ErrorKind::OutOfMemory`] naming the size
/// and `path` when the allocator refuses (an address-space limit, say), instead of aborting.
///
/// The memory comes zeroed from the allocator (`calloc`), so large buffers are fresh pages that
/// cost nothing until touched.
///
/// # Errors
///
/// [`ErrorKind::OutOfMemory`] when the byte count overflows or the allocator refuses.
pub fn try_zeroed_vec<T: bytemuck::Zeroable>(count: usize, path: Option<&Path>) -> Result<Vec<T>> {
    crate::os::try_zeroed_vec(count).ok_or_else(|| {
        let bytes = (count as u128) * (std::mem::size_of::<T>() as u128);
        let err = Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot allocate {bytes} bytes for the array data"),
        );
        match path {
            Some(path) => err.with_path(path),
            None => err,
        }
    })
}

/// Opens the file at `path` for a load: only a regular file (or a directory, which the caller
/// refuses in its own words) is accepted, and the open never blocks — a FIFO, a socket or a
/// device (archives can unpack FIFOs) is refused by its type instead of hanging the load.
///
/// # Errors
///
/// `NotFound`, `PermissionDenied` or `Io` from the open; `InvalidInput` naming the file's type
/// when it is not a regular file.
pub fn open_for_load(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let file = crate::os::open_nonblocking(path, false).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::NotFound, "no such file").with_path(path)
        } else {
            Error::io("cannot open", e).with_path(path)
        }
    })?;
    let kind = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
        .file_type();
    let what = if kind.is_file() || kind.is_dir() {
        return Ok(file);
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{what}, not a regular file: ndstore loads arrays from regular files"),
    )
    .with_path(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_limit_refuses_larger_arrays_only() {
        let options = LoadOptions::new().memory_limit(100);
        assert!(options.admit(100).is_ok());
        let err = options.admit(101).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfMemory);
        assert!(err.to_string().contains("101 bytes"), "{err}");
        assert!(LoadOptions::new().admit(u64::MAX).is_ok());
    }

    #[test]
    fn a_refused_allocation_is_an_error_not_an_abort() {
        // More than any address space holds: the allocator must refuse, and we must report it.
        let err = try_zeroed_vec::<u64>(usize::MAX / 16, Some(Path::new("x.npy"))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfMemory);
        assert!(err.to_string().starts_with("x.npy: "), "{err}");
        let v = try_zeroed_vec::<u32>(1000, None).unwrap();
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|&x| x == 0));
        assert!(try_zeroed_vec::<u8>(0, None).unwrap().is_empty());
    }
}

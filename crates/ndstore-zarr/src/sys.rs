//! The one system call the standard library does not wrap here: `openat`, so a store reads
//! every key through one handle of its directory.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// Opens `relative` (a key: `zarr.json`, `c/0/1`) below the directory `dir` for reading,
/// close-on-exec and non-blocking (a FIFO planted in the tree cannot hang the read).
///
/// # Errors
///
/// The operating system's error (`NotFound` for a missing key); `InvalidInput` for a key
/// holding a NUL byte.
pub fn open_at(dir: &File, relative: &str) -> io::Result<File> {
    let name = CString::new(relative).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `dir` is an open descriptor for the call's duration, `name` a NUL-terminated
    // string that outlives it; openat takes no other pointers.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

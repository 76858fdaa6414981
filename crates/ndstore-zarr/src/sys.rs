//! The system calls the standard library does not wrap here: `openat` and `fstatat`, so a
//! store reads every key through one handle of its directory, and never through a symbolic
//! link.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// Opens `relative` (a key: `zarr.json`, `c/0/1`) below the directory `dir` for reading,
/// close-on-exec and non-blocking (a FIFO planted in the tree cannot hang the read), one
/// component at a time and never following a symbolic link: a key is read only from the
/// store's own files and directories, so a link planted in a store (to `/etc/shadow`, to
/// `/dev/zero`, to another store) is refused rather than read as a chunk.
///
/// # Errors
///
/// The operating system's error (`NotFound` for a missing key); `ELOOP` (see [`is_link`])
/// when a component of the key is a symbolic link; `InvalidInput` for a key holding a NUL
/// byte.
pub fn open_at(dir: &File, relative: &str) -> io::Result<File> {
    let mut parts = relative
        .split('/')
        .filter(|part| !part.is_empty())
        .peekable();
    let mut here: Option<File> = None;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let flags = if last {
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW
        } else {
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY | libc::O_NOFOLLOW
        };
        let parent = here.as_ref().unwrap_or(dir);
        let opened = open_one(parent, part, flags).map_err(|e| {
            // A link met with O_NOFOLLOW fails with ELOOP, or ENOTDIR with O_DIRECTORY.
            if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink_at(parent, part) {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                e
            }
        })?;
        here = Some(opened);
    }
    here.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Whether an error of [`open_at`] says a component of the key is a symbolic link.
pub fn is_link(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

fn open_one(dir: &File, name: &str, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `dir` is an open descriptor for the call's duration, `name` a NUL-terminated
    // string that outlives it; openat takes no other pointers.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn is_symlink_at(dir: &File, name: &str) -> bool {
    let Ok(name) = CString::new(name) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is an open descriptor, `name` a NUL-terminated string and `stat` room for
    // one `struct stat`, all outliving the call.
    let done = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if done != 0 {
        return false;
    }
    // SAFETY: fstatat succeeded, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    stat.st_mode & libc::S_IFMT == libc::S_IFLNK
}

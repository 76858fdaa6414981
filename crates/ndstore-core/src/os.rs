//! The few operating-system calls std does not offer, each behind a small safe function.
//! This module is the only place in ndstore-core with `unsafe`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};

/// Buffers at least this large are advised for transparent huge pages.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// Advises the kernel to back the pages of `buffer` with transparent huge pages.
///
/// A bulk read into a fresh multi-megabyte buffer spends most of its time in page faults; with
/// 2 MiB pages it takes 512 times fewer. The advice is best effort: failure changes only speed.
pub fn advise_huge_pages(buffer: &mut [u8]) {
    advise_huge_pages_of(buffer.as_mut_ptr(), buffer.len());
}

/// [`advise_huge_pages`] for `len` bytes at `start`, which the caller owns (a buffer of any
/// element type). Only whole pages inside the range are advised.
pub(crate) fn advise_huge_pages_of(start: *mut u8, len: usize) {
    if len < HUGE_PAGE_THRESHOLD {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let page = 4096usize;
        let start = start as usize;
        let aligned = start.next_multiple_of(page);
        let end = start + len;
        if aligned >= end {
            return;
        }
        let len = (end - aligned) / page * page;
        // SAFETY: [aligned, aligned + len) lies inside the caller's buffer; MADV_HUGEPAGE only
        // changes how the kernel backs the pages, never their contents, so no Rust-visible
        // memory changes.
        let rc = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        if rc != 0 {
            log::debug!(
                "madvise(MADV_HUGEPAGE) failed: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Allocates `count` zeroed values of `T` through the global allocator, or `None` when the size
/// overflows or the allocator refuses. `bytemuck::zeroed_vec` does the same but aborts the
/// process on refusal.
pub(crate) fn try_zeroed_vec<T: bytemuck::Zeroable>(count: usize) -> Option<Vec<T>> {
    if count == 0 || std::mem::size_of::<T>() == 0 {
        let mut empty = Vec::new();
        empty.resize_with(count, T::zeroed);
        return Some(empty);
    }
    let layout = std::alloc::Layout::array::<T>(count).ok()?;
    // SAFETY: the layout has a non-zero size (count > 0 and T is not zero-sized).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of `[T; count]`, so
    // capacity `count` matches it; every byte is zero, which `Zeroable` says is a valid `T`, so
    // all `count` values are initialised.
    Some(unsafe { Vec::from_raw_parts(ptr.cast::<T>(), count, count) })
}

/// Closes `file` and reports the error that `close(2)` returns, which `drop` would discard.
///
/// Some file systems (NFS, FUSE, quota-enforcing ones) report a failed write-back only here.
///
/// # Errors
///
/// The error `close(2)` returns: EIO when write-back of the file's data failed.
pub fn close_file(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just taken out of an owned `File`, so this is its only owner and it is
    // closed exactly once, here.
    let rc = unsafe { libc::close(fd) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // EINTR on close: Linux has released the descriptor already; retrying would close another.
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(())
    } else {
        Err(err)
    }
}

/// Swaps the directory entries `a` and `b` atomically (`renameat2` with `RENAME_EXCHANGE`):
/// each name then holds what the other held, and no moment exists where either is missing.
/// Relative paths are relative to the working directory, as std's calls take them.
///
/// # Errors
///
/// `InvalidInput` for a path holding a NUL byte; the operating system's error otherwise
/// (`ENOENT` when either is missing, `EINVAL` where the file system cannot exchange).
pub fn exchange(a: &std::path::Path, b: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (ca, cb) = (cstr(a)?, cstr(b)?);
    // SAFETY: both pointers are NUL-terminated strings that live across the call; renameat2
    // takes no other pointers.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when a process with this id exists (it may belong to another user).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reserves `len` bytes of disk for `file`, so a large write neither fragments the file nor
/// runs out of space half way. Best effort: file systems without fallocate are left alone, and
/// a genuinely full disk is reported by the writes that follow.
pub fn preallocate(file: &File, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Ok(len) = libc::off_t::try_from(len) else {
            return;
        };
        if len == 0 {
            return;
        }
        // SAFETY: the descriptor is borrowed from a live `File`; fallocate only changes the
        // file's allocation, never memory.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if rc != 0 {
            log::debug!("fallocate failed: {}", io::Error::last_os_error());
        }
    }
}

/// Starts write-back of `len` bytes of `file` from `offset` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Durability still needs an fsync; this only lets
/// the disk work while the caller writes the rest. Best effort: an error is logged, and a real
/// I/O failure is reported again by the fsync that follows.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: the descriptor is borrowed from a live `File`; sync_file_range only queues
        // the file's dirty pages for write-back, never touching memory.
        let rc = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc != 0 {
            log::debug!("sync_file_range failed: {}", io::Error::last_os_error());
        }
    }
}

/// Whether this process may open `path` for writing, by the kernel's full permission check
/// with the effective user and group (`faccessat(AT_EACCESS)`: mode bits, ACLs, capabilities).
///
/// # Errors
///
/// The error of `faccessat` other than a refused permission (a missing file, say).
pub fn may_write(path: &std::path::Path) -> io::Result<bool> {
    let c_path = c_path(path)?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; faccessat only
    // reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::W_OK,
            libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => Ok(false),
        // Some kernels and file systems refuse the flag combination; ask without the no-follow
        // flag (the path is already a resolved target, not a link).
        Some(libc::EINVAL) => {
            // SAFETY: as above.
            let rc = unsafe {
                libc::faccessat(
                    libc::AT_FDCWD,
                    c_path.as_ptr(),
                    libc::W_OK,
                    libc::AT_EACCESS,
                )
            };
            if rc == 0 {
                Ok(true)
            } else {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EACCES | libc::EPERM | libc::EROFS) => Ok(false),
                    _ => Err(err),
                }
            }
        }
        _ => Err(err),
    }
}

fn c_path(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The names of the extended attributes of `path` (not following a link at it). A file system
/// without extended attributes has none.
///
/// # Errors
///
/// The error of `llistxattr`, other than a file system without extended attributes.
pub fn xattr_names(path: &std::path::Path) -> io::Result<Vec<std::ffi::CString>> {
    let c_path = c_path(path)?;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        // SAFETY: `c_path` is NUL-terminated; with size 0 the kernel only returns the size
        // needed, otherwise it writes at most `buffer.len()` bytes into `buffer`.
        let rc = unsafe {
            libc::llistxattr(
                c_path.as_ptr(),
                buffer.as_mut_ptr().cast::<libc::c_char>(),
                buffer.len(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                // The list grew between the two calls: ask for the size again.
                Some(libc::ERANGE) => {
                    buffer.clear();
                    continue;
                }
                _ => Err(err),
            };
        }
        let len = rc as usize;
        if buffer.is_empty() && len > 0 {
            buffer.resize(len, 0);
            continue;
        }
        buffer.truncate(len);
        return Ok(buffer
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .filter_map(|name| std::ffi::CString::new(name).ok())
            .collect());
    }
}

/// The value of extended attribute `name` of `path` (not following a link at it).
///
/// # Errors
///
/// The error of `lgetxattr` (ENODATA when the attribute does not exist).
pub fn xattr_value(path: &std::path::Path, name: &std::ffi::CStr) -> io::Result<Vec<u8>> {
    let c_path = c_path(path)?;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        // SAFETY: both strings are NUL-terminated; the kernel writes at most `buffer.len()`
        // bytes into `buffer` (none when it is empty, returning the size needed).
        let rc = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                name.as_ptr(),
                buffer.as_mut_ptr().cast::<libc::c_void>(),
                buffer.len(),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ERANGE) {
                buffer.clear();
                continue;
            }
            return Err(err);
        }
        let len = rc as usize;
        if buffer.is_empty() && len > 0 {
            buffer.resize(len, 0);
            continue;
        }
        buffer.truncate(len);
        return Ok(buffer);
    }
}

/// Sets extended attribute `name` of the open `file` to `value`.
///
/// # Errors
///
/// The error of `fsetxattr`.
pub fn set_xattr(file: &File, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is borrowed from a live `File`; `name` is NUL-terminated and the
    // kernel reads `value.len()` bytes of `value`.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast::<libc::c_void>(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The file system type (`statfs`'s `f_type` magic number) of the file system holding `path`.
///
/// # Errors
///
/// The error of `statfs`.
pub fn fs_type(path: &std::path::Path) -> io::Result<i64> {
    let c_path = c_path(path)?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and `stat` is large enough for the kernel to fill.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // f_type is a `long` on 64-bit Linux and an `int` elsewhere; both fit in i64.
    #[allow(clippy::useless_conversion)]
    Ok(i64::from(stat.f_type))
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `path` for reading (and writing, with `write`) without blocking in the open itself (`O_NONBLOCK`: opening a FIFO
/// with no writer would wait forever), then makes reads block again, as they do for regular
/// files.
///
/// # Errors
///
/// The errors of open(2) and fcntl(2).
pub fn open_nonblocking(path: &std::path::Path, write: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // SAFETY: F_GETFL and F_SETFL on a descriptor this function owns; no memory is passed.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

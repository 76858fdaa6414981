//! The few operating-system calls std does not offer, each behind a small safe function.
//! This module is the only place in ndstore-core with `unsafe`.

use std::fs::File;
use std::io;
use std::os::fd::IntoRawFd;

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

//! The calls neither std nor hdf5-metno's safe API offers, each behind a small function that
//! says why it is sound: processes (fork, pipes, memfd, limits, waiting) for the isolated reader,
//! and the few libhdf5 calls ndstore makes itself (its file driver's descriptor, reads into a
//! caller's bytes, link values, filter pipelines, dataspace and allocation state).
//!
//! This module and `lzf` (a filter libhdf5 calls) are the only places in the crate with
//! `unsafe`.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use hdf5_metno::{Dataset, Datatype, Group};
use hdf5_metno_sys::h5i::hid_t;

// ---------------------------------------------------------------------------------------------
// Processes.

/// A pipe whose ends are closed on exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// An anonymous file in memory (memfd), closed on exec.
pub(crate) fn memfd(name: &CStr) -> io::Result<File> {
    // SAFETY: `name` is a valid NUL-terminated string; the flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create succeeded, so `fd` is open and owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The exit code of a forked child whose work panicked out of its own `catch_unwind`.
pub(crate) const PANICKED: i32 = 101;

/// Forks this process; the child runs `work` and exits with its code through `_exit`, never
/// returning into the caller's code and never running `atexit` handlers or destructors.
/// Returns the child's pid in the parent.
///
/// # Safety
///
/// The child is a copy of this process with only the calling thread. Every lock another thread
/// held at the fork stays held forever in the child, so `work` must not take one: no
/// logging through a logger, no printing through std's locked streams, no lock of a library that
/// another thread may have been inside. Memory allocation is safe (glibc resets its allocator's
/// locks at fork). The caller makes that true, for instance by forking while it holds the lock
/// that serialises every call into the library the child uses.
pub(crate) unsafe fn fork_into(work: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    // SAFETY: fork has no memory-safety preconditions of its own; what the child may do is the
    // caller's contract above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(PANICKED);
    // SAFETY: _exit ends the child at once, without unwinding into the caller's frames, running
    // atexit handlers (libhdf5's would flush the parent's files from here) or flushing stdio.
    unsafe { libc::_exit(code) }
}

/// In a forked reader: its standard error goes to `/dev/null`, so what a dying libhdf5 or Rust's
/// allocation-failure handler prints does not land on the caller's terminal (the parent reports
/// the crash itself). Left as it was when `/dev/null` cannot be opened.
pub(crate) fn silence_stderr() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // SAFETY: dup2 onto descriptor 2 of this (child) process, from a descriptor it owns; nothing
    // in the child holds a reference to the old standard error.
    unsafe { libc::dup2(null.as_raw_fd(), libc::STDERR_FILENO) };
}

/// The anonymous and shared-memory resident bytes of process `pid`, from `/proc/PID/status`;
/// `None` when they cannot be read (the process is gone, or there is no `/proc`).
pub(crate) fn resident_bytes(pid: libc::pid_t) -> Option<u64> {
    // Anonymous and shared-memory pages only: the pages of mapped files (the program's and
    // libraries' code, which a forked child maps again as it runs) can be dropped by the kernel
    // at any time and are not what a hostile file makes a reader allocate.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut total = 0u64;
    let mut found = 0;
    for line in status.lines() {
        if let Some(rest) = line
            .strip_prefix("RssAnon:")
            .or_else(|| line.strip_prefix("RssShmem:"))
        {
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            total = total.saturating_add(kib.saturating_mul(1024));
            found += 1;
        }
    }
    (found == 2).then_some(total)
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It ended, but its status went elsewhere: the caller ignores SIGCHLD (children are then
    /// reaped by the kernel) or a handler of its own reaped every child (`waitpid(-1)`).
    Unknown,
}

/// Reaps `pid` if it has ended, without waiting.
pub(crate) fn try_reap(pid: libc::pid_t) -> io::Result<Option<Ended>> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid int to write to; waitpid has no other preconditions.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == 0 {
            return Ok(None);
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Ok(Some(Ended::Unknown));
            }
            return Err(err);
        }
        return Ok(Some(ended(status)));
    }
}

/// Kills `pid` with SIGKILL and reaps it.
pub(crate) fn kill_and_reap(pid: libc::pid_t) -> io::Result<Ended> {
    // SAFETY: kill has no memory-safety preconditions. `pid` is our child, killed only while
    // its pipe is open or just after (a caller that reaps children elsewhere could have reaped
    // it in that instant; its id is not reused that fast in practice).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid)
}

/// Waits for `pid` to end and reaps it.
pub(crate) fn reap(pid: libc::pid_t) -> io::Result<Ended> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: as in `try_reap`.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 {
            return Ok(ended(status));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(Ended::Unknown);
        }
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn ended(status: c_int) -> Ended {
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// The size of a memory page.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Waits up to `timeout` for `fd` to be readable (or at its end); true when it is.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    // SAFETY: one valid pollfd structure, as the count says.
    let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

/// Makes reads of `fd` return at once when nothing is there.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on an open descriptor we own only reads and sets its status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes an exclusive open-file-description lock (`F_OFD_SETLKW`) on all of `file`, waiting
/// for it. These locks belong to the open file, not the process, and are independent of
/// `flock`, which libhdf5 and ndstore's handles use: holding one excludes only other holders of
/// the same kind of lock.
pub(crate) fn ofd_lock_wait(file: &File) -> io::Result<()> {
    // SAFETY: an all-zero flock structure is valid; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    loop {
        // SAFETY: fcntl with F_OFD_SETLKW reads the valid flock structure passed.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &lock) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether `file` is the file `path` names now (same device and inode).
pub(crate) fn is_same_file(file: &File, path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The name of a signal, for error messages.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}

/// In a forked child: no core dumps, an address-space limit of `bytes` (or the hard limit
/// already set, when that is lower), and the default action for the signals a crash raises, so
/// a handler the caller installed (a runtime's, a crash reporter's) does not run in the copy.
/// With `last`, the hard limit comes down to the same value, so nothing can raise it again;
/// otherwise only the soft limit is set, and a later call may raise it. Returns the limit in
/// force.
pub(crate) fn confine(bytes: u64, last: bool) -> u64 {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit structure; lowering a limit cannot fail for lack of permission.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let mut current = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `current` is a valid rlimit structure to write to.
    unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut current) };
    let limit = bytes.min(current.rlim_max);
    let wanted = libc::rlimit {
        rlim_cur: limit,
        rlim_max: if last { limit } else { current.rlim_max },
    };
    // SAFETY: a valid rlimit structure, at most the hard limit already in force.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &wanted) };
    for signal in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGABRT,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGPIPE,
    ] {
        // SAFETY: restoring a signal's default action has no preconditions.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    limit
}

/// In a forked child: closes every descriptor from 3 up except those in `keep`. The child is a
/// copy of the caller, descriptors included, and a copy of a descriptor keeps its file's
/// `flock` and a pipe's write end alive: another thread's file, closed by its owner while the
/// child runs, would stay locked until the child ended.
pub(crate) fn close_descriptors_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 3;
    let mut ranges = Vec::new();
    for &fd in &keep {
        let fd = fd.unsigned_abs();
        if fd > from {
            ranges.push((from, fd - 1));
        }
        from = fd + 1;
    }
    ranges.push((from, u32::MAX));
    for (first, last) in ranges {
        // SAFETY: close_range closes descriptors of this (child) process only; nothing in the
        // child uses the ones closed.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if rc != 0 {
            close_listed_except(&keep);
            return;
        }
    }
}

/// [`close_descriptors_except`] for kernels without close_range (before 5.9): closes the
/// descriptors `/proc/self/fd` lists.
fn close_listed_except(keep: &[RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd >= 3 && !keep.contains(&fd) {
            // SAFETY: as in `close_descriptors_except`; the listing's own descriptor is closed
            // already (EBADF, ignored).
            unsafe { libc::close(fd) };
        }
    }
}

/// The descriptors libhdf5 holds for files it has open in this process that are `file` (same
/// device and inode). libhdf5 opening a file it has open already uses the open one, so a
/// forked child must keep those. Call while holding libhdf5's lock.
pub(crate) fn hdf5_descriptors_of(file: &File) -> Vec<RawFd> {
    use hdf5_metno_sys::h5f::{H5F_OBJ_ALL, H5F_OBJ_FILE, H5Fget_obj_count, H5Fget_obj_ids};
    use std::os::unix::fs::MetadataExt;
    let Ok(wanted) = file.metadata() else {
        return Vec::new();
    };
    let ids = hdf5_metno::sync::sync(|| {
        // SAFETY: H5F_OBJ_ALL asks about every open file; no pointer is passed.
        let count = unsafe { H5Fget_obj_count(H5F_OBJ_ALL as hid_t, H5F_OBJ_FILE) };
        let Ok(count) = usize::try_from(count) else {
            return Vec::new();
        };
        let mut ids: Vec<hid_t> = vec![0; count];
        // SAFETY: `ids` has room for `count` ids, the most libhdf5 writes.
        let got =
            unsafe { H5Fget_obj_ids(H5F_OBJ_ALL as hid_t, H5F_OBJ_FILE, count, ids.as_mut_ptr()) };
        ids.truncate(usize::try_from(got).unwrap_or(0));
        ids
    });
    let mut fds = Vec::new();
    for id in ids {
        let mut handle: *mut c_void = std::ptr::null_mut();
        let rc = hdf5_metno::sync::sync(|| {
            // SAFETY: `id` is an open file id libhdf5 just listed; it writes a pointer to the
            // sec2 driver's descriptor into `handle`.
            unsafe {
                hdf5_metno_sys::h5f::H5Fget_vfd_handle(
                    id,
                    hdf5_metno_sys::h5p::H5P_DEFAULT,
                    &mut handle,
                )
            }
        });
        if rc < 0 || handle.is_null() {
            continue;
        }
        // SAFETY: as above, `handle` points at the open descriptor.
        let fd = unsafe { *(handle as *const c_int) };
        // SAFETY: the descriptor is open (libhdf5 holds it); ManuallyDrop never closes it.
        let open = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        if open
            .metadata()
            .is_ok_and(|m| m.dev() == wanted.dev() && m.ino() == wanted.ino())
        {
            fds.push(fd);
        }
    }
    fds
}

/// A shared, writable mapping of a memfd (the isolated reader's output), unmapped on drop.
pub(crate) struct SharedMap {
    ptr: *mut c_void,
    len: usize,
}

impl SharedMap {
    /// Maps the first `len` bytes of `file`, which must be at least that long.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<SharedMap> {
        if len == 0 {
            return Ok(SharedMap {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh mapping chosen by the kernel, of a descriptor we hold open; nothing
        // else in this process aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap { ptr, len })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `ptr` maps `len` readable and writable bytes for as long as `self` lives. The
        // only other process with the memfd (the parent) reads it only after this one ended.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping made in `new`, which no slice outlives.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// libhdf5.

/// Lets the objects created from now on in `file` use the 1.10 format (its dataset layouts
/// index the chunks of one growing dimension in an extensible array) while the superblock
/// keeps the version the file was created with.
pub(crate) fn chunk_index_of_1_10(file: &hdf5_metno::File) -> hdf5_metno::Result<()> {
    use hdf5_metno_sys::h5f::{H5F_LIBVER_LATEST, H5F_libver_t};
    // libhdf5 1.10.2 and later have it; hdf5-metno-sys does not declare it.
    unsafe extern "C" {
        fn H5Fset_libver_bounds(file: hid_t, low: H5F_libver_t, high: H5F_libver_t) -> c_int;
    }
    let rc = hdf5_metno::sync::sync(|| {
        // SAFETY: a live file id; no pointer is passed.
        unsafe { H5Fset_libver_bounds(file.id(), H5F_libver_t::H5F_LIBVER_V110, H5F_LIBVER_LATEST) }
    });
    if rc < 0 {
        return Err(hdf5_metno::Error::query().unwrap_or_else(|e| e));
    }
    Ok(())
}

/// The name a file opened from memory has inside libhdf5. The core driver refuses an image
/// whose name opens an existing file, and no file can be opened by this one (`/dev/null` is not
/// a directory).
const IMAGE_NAME: &str = "/dev/null/ndstore-file-image";

/// Opens an HDF5 file from its bytes, read only: libhdf5's core driver with a file image and no
/// backing file. `image` is freed as soon as the access property list holds its copy, before
/// the driver makes its own, so the bytes are never held more than twice.
pub(crate) fn open_image(image: Vec<u8>) -> hdf5_metno::Result<hdf5_metno::File> {
    use hdf5_metno_sys::h5f::{H5F_ACC_RDONLY, H5Fopen};
    use hdf5_metno_sys::h5p::H5Pset_file_image;
    let access = hdf5_metno::plist::FileAccess::build()
        .core_filebacked(false)
        .finish()?;
    let cname = CString::new(IMAGE_NAME).map_err(|e| hdf5_metno::Error::from(e.to_string()))?;
    let id = hdf5_metno::sync::sync(|| {
        // SAFETY: a live property list; libhdf5 copies `image.len()` bytes from the pointer,
        // which is valid for that many, and never writes through it.
        let rc = unsafe {
            H5Pset_file_image(access.id(), image.as_ptr().cast_mut().cast(), image.len())
        };
        drop(image);
        if rc < 0 {
            return -1;
        }
        // SAFETY: a NUL-terminated name and a live access property list.
        unsafe { H5Fopen(cname.as_ptr(), H5F_ACC_RDONLY, access.id()) }
    });
    if id < 0 {
        return Err(hdf5_metno::Error::query().unwrap_or_else(|e| e));
    }
    // SAFETY: `id` is a file id H5Fopen just returned; `from_id` takes ownership of it.
    unsafe { hdf5_metno::from_id::<hdf5_metno::File>(id) }
}

/// The descriptor of libhdf5's own (sec2) file driver for `file`, or `None` when libhdf5 does
/// not say or the file has another driver (a file opened from memory has no descriptor). It
/// stays open as long as the file is.
pub(crate) fn vfd_descriptor(file: &hdf5_metno::File) -> Option<RawFd> {
    use hdf5_metno_sys::h5p::H5P_DEFAULT;
    let driver = file.access_plist().ok()?.get_driver().ok()?;
    if !matches!(driver, hdf5_metno::plist::file_access::FileDriver::Sec2) {
        return None;
    }
    let mut handle: *mut c_void = std::ptr::null_mut();
    let rc = hdf5_metno::sync::sync(|| {
        // SAFETY: `file.id()` is a live file id; libhdf5 writes a pointer to its driver's file
        // handle into `handle`, which for the default (sec2) driver points at an `int`
        // descriptor that lives as long as the file is open.
        unsafe { hdf5_metno_sys::h5f::H5Fget_vfd_handle(file.id(), H5P_DEFAULT, &mut handle) }
    });
    if rc < 0 || handle.is_null() {
        return None;
    }
    // SAFETY: as above, `handle` points at the sec2 driver's open descriptor.
    let fd = unsafe { *(handle as *const c_int) };
    (fd >= 0).then_some(fd)
}

/// libhdf5's own descriptor of `file`, borrowed as a `File` for as long as `file` is: for reads
/// (`pread`), fsync and fstat, never for closing.
pub(crate) struct VfdFile<'a> {
    file: std::mem::ManuallyDrop<File>,
    _open: std::marker::PhantomData<&'a hdf5_metno::File>,
}

impl std::ops::Deref for VfdFile<'_> {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

/// Borrows libhdf5's descriptor of `file` (see [`VfdFile`]).
pub(crate) fn vfd_file(file: &hdf5_metno::File) -> Option<VfdFile<'_>> {
    let fd = vfd_descriptor(file)?;
    // SAFETY: `fd` is libhdf5's open descriptor for `file`, which stays open while `file` is
    // borrowed; ManuallyDrop keeps this `File` from ever closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    Some(VfdFile {
        file,
        _open: std::marker::PhantomData,
    })
}

/// Sets the close-on-exec flag of a descriptor libhdf5 holds.
pub(crate) fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor libhdf5 holds open only reads and sets its descriptor flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags >= 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    }
}

/// fsync through a descriptor libhdf5 holds (its file driver's own).
pub(crate) fn fsync_descriptor(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: fsync on an open descriptor has no memory-safety preconditions.
        if unsafe { libc::fsync(fd) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Runs an HDF5 call returning a status, under libhdf5's lock, turning failure into the
/// library's error stack.
fn checked(call: impl FnOnce() -> i64) -> hdf5_metno::Result<i64> {
    hdf5_metno::sync::sync(|| {
        let rc = call();
        if rc < 0 {
            Err(hdf5_metno::Error::query().unwrap_or_else(|e| e))
        } else {
            Ok(rc)
        }
    })
}

/// The number of elements `space` selects, and the size of one element of `mem_type`.
fn selected_bytes(space: hid_t, mem_type: &Datatype) -> hdf5_metno::Result<Option<usize>> {
    let points = checked(|| {
        // SAFETY: `space` is a live dataspace id.
        unsafe { hdf5_metno_sys::h5s::H5Sget_select_npoints(space) }
    })?;
    let size = mem_type.size();
    Ok(usize::try_from(points)
        .ok()
        .and_then(|n| n.checked_mul(size)))
}

/// Reads the elements of `dataset` that `file_space` selects (all of them for `None`), as
/// `mem_type`, into `out`, which must hold exactly that many elements of that type.
pub(crate) fn read_into(
    dataset: &Dataset,
    mem_type: &Datatype,
    file_space: Option<&hdf5_metno::Dataspace>,
    out: &mut [u8],
) -> hdf5_metno::Result<()> {
    use hdf5_metno_sys::h5p::H5P_DEFAULT;
    use hdf5_metno_sys::h5s::H5S_ALL;
    let whole;
    let space = match file_space {
        Some(space) => space,
        None => {
            whole = dataset.space()?;
            &whole
        }
    };
    let Some(bytes) = selected_bytes(space.id(), mem_type)? else {
        return Err("the selection's size overflows".into());
    };
    if bytes != out.len() {
        return Err(format!(
            "the selection needs {bytes} bytes, the buffer holds {}",
            out.len()
        )
        .into());
    }
    if bytes == 0 {
        return Ok(());
    }
    let (mem_space, file_space_id) = match file_space {
        None => (None, H5S_ALL),
        Some(space) => {
            // A flat memory space of as many elements as the file selection holds.
            let count = out.len() / mem_type.size().max(1);
            (Some(hdf5_metno::Dataspace::try_new(count)?), space.id())
        }
    };
    let mem_space_id = mem_space.as_ref().map_or(H5S_ALL, |s| s.id());
    checked(|| {
        // SAFETY: every id is live; `out` holds exactly the bytes the selection needs in the
        // memory type (checked above), and libhdf5 writes only inside it.
        i64::from(unsafe {
            hdf5_metno_sys::h5d::H5Dread(
                dataset.id(),
                mem_type.id(),
                mem_space_id,
                file_space_id,
                H5P_DEFAULT,
                out.as_mut_ptr().cast(),
            )
        })
    })?;
    Ok(())
}

/// The external-link callback of [`open_dataset_in_file`]: notes the attempt in `op_data` and
/// refuses it, so libhdf5 never opens the file the link names.
extern "C" fn refuse_external_link(
    _parent_file: *const c_char,
    _parent_group: *const c_char,
    _child_file: *const c_char,
    _child_object: *const c_char,
    _flags: *mut c_uint,
    _fapl: hid_t,
    op_data: *mut c_void,
) -> hdf5_metno_sys::h5::herr_t {
    if !op_data.is_null() {
        // SAFETY: `op_data` is the `AtomicBool` that `open_dataset_in_file` passes, alive for
        // the whole call that may invoke this callback.
        unsafe { &*(op_data as *const std::sync::atomic::AtomicBool) }
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    -1
}

/// Why [`open_dataset_in_file`] failed.
pub(crate) enum OpenFailed {
    /// The path passes through an external link, which libhdf5 was not allowed to follow.
    ExternalLink,
    /// libhdf5's error.
    Hdf5(hdf5_metno::Error),
}

/// Opens dataset `name` of `file`, with libhdf5 refusing to follow any external link on the way
/// (soft links inside the file are followed, at most libhdf5's 16 deep).
pub(crate) fn open_dataset_in_file(
    file: &hdf5_metno::File,
    name: &str,
) -> std::result::Result<Dataset, OpenFailed> {
    use hdf5_metno_sys::h5d::H5Dopen2;
    use hdf5_metno_sys::h5p::H5Pset_elink_cb;
    let cname = CString::new(name).map_err(|e| OpenFailed::Hdf5(e.to_string().into()))?;
    let access = hdf5_metno::plist::DatasetAccess::try_new().map_err(OpenFailed::Hdf5)?;
    let external = std::sync::atomic::AtomicBool::new(false);
    let id = hdf5_metno::sync::sync(|| {
        // SAFETY: a live property list; the callback and its data (`external`, which outlives
        // the H5Dopen2 below, the only call that can run it) are valid.
        let rc = unsafe {
            H5Pset_elink_cb(
                access.id(),
                Some(refuse_external_link),
                (&external as *const std::sync::atomic::AtomicBool)
                    .cast_mut()
                    .cast(),
            )
        };
        if rc < 0 {
            return -1;
        }
        // SAFETY: a live file id, a NUL-terminated name, a live access property list.
        unsafe { H5Dopen2(file.id(), cname.as_ptr(), access.id()) }
    });
    if external.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(OpenFailed::ExternalLink);
    }
    if id < 0 {
        return Err(OpenFailed::Hdf5(
            hdf5_metno::Error::query().unwrap_or_else(|e| e),
        ));
    }
    // SAFETY: `id` is a dataset id H5Dopen2 just returned; `from_id` takes ownership of it.
    unsafe { hdf5_metno::from_id::<Dataset>(id) }.map_err(OpenFailed::Hdf5)
}

/// Whether libhdf5 has allocated storage for a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allocation {
    None,
    Partial,
    Full,
}

/// How much of `dataset`'s storage is allocated in the file.
pub(crate) fn allocation(dataset: &Dataset) -> hdf5_metno::Result<Allocation> {
    use hdf5_metno_sys::h5d::H5D_space_status_t;
    let mut status = H5D_space_status_t::H5D_SPACE_STATUS_ERROR;
    checked(|| {
        // SAFETY: a live dataset id and a valid place for the status.
        i64::from(unsafe { hdf5_metno_sys::h5d::H5Dget_space_status(dataset.id(), &mut status) })
    })?;
    Ok(match status {
        H5D_space_status_t::H5D_SPACE_STATUS_ALLOCATED => Allocation::Full,
        H5D_space_status_t::H5D_SPACE_STATUS_PART_ALLOCATED => Allocation::Partial,
        _ => Allocation::None,
    })
}

/// Whether a dataset's dataspace is null (h5py's `Empty`: no elements, not even one).
pub(crate) fn is_null_space(dataset: &Dataset) -> hdf5_metno::Result<bool> {
    use hdf5_metno_sys::h5s::{H5S_class_t, H5Sget_simple_extent_type};
    let space = dataset.space()?;
    let class = hdf5_metno::sync::sync(|| {
        // SAFETY: a live dataspace id.
        unsafe { H5Sget_simple_extent_type(space.id()) }
    });
    if class == H5S_class_t::H5S_NO_CLASS {
        return Err(hdf5_metno::Error::query().unwrap_or_else(|e| e));
    }
    Ok(class == H5S_class_t::H5S_NULL)
}

/// One filter of a dataset's pipeline.
#[derive(Clone, Debug)]
pub(crate) struct FilterInfo {
    pub id: i32,
    pub name: String,
    pub available: bool,
}

/// The filters of a dataset's pipeline, in order, and whether this libhdf5 can run each.
pub(crate) fn filters(dataset: &Dataset) -> hdf5_metno::Result<Vec<FilterInfo>> {
    use hdf5_metno_sys::h5p::{H5Pget_filter2, H5Pget_nfilters};
    use hdf5_metno_sys::h5z::H5Zfilter_avail;
    let dcpl = dataset.dcpl()?;
    let n = checked(|| {
        // SAFETY: a live property list id.
        i64::from(unsafe { H5Pget_nfilters(dcpl.id()) })
    })?;
    let mut out = Vec::new();
    for index in 0..c_uint::try_from(n).unwrap_or(0) {
        let mut flags: c_uint = 0;
        let mut nelmts: libc::size_t = 0;
        let mut name = [0 as c_char; 256];
        let mut config: c_uint = 0;
        let id = checked(|| {
            // SAFETY: a live property list id; `nelmts` is 0, so no client data is written;
            // `name` has the room its length says.
            i64::from(unsafe {
                H5Pget_filter2(
                    dcpl.id(),
                    index,
                    &mut flags,
                    &mut nelmts,
                    std::ptr::null_mut(),
                    name.len(),
                    name.as_mut_ptr(),
                    &mut config,
                )
            })
        })?;
        let id = i32::try_from(id).unwrap_or(-1);
        let available = hdf5_metno::sync::sync(|| {
            // SAFETY: H5Zfilter_avail takes a plain filter id.
            unsafe { H5Zfilter_avail(id) }
        }) > 0;
        // libhdf5 NUL-terminates the name within the buffer's length; the last byte is set again
        // in case it did not.
        name[name.len() - 1] = 0;
        // SAFETY: `name` is NUL-terminated within its length (the line above).
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        out.push(FilterInfo {
            id,
            name,
            available,
        });
    }
    // libhdf5 may have tried to load a plugin for a missing filter and left the failure on its
    // error stack; the caller reports the filter by name instead.
    Ok(out)
}

/// Where a soft or external link points, as libhdf5 stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkValue {
    Soft(String),
    External { file: String, object: String },
    Other,
}

/// The value of the link `name` in `group` (not followed).
pub(crate) fn link_value(group: &Group, name: &str, soft: bool) -> hdf5_metno::Result<LinkValue> {
    use hdf5_metno_sys::h5l::{H5Lget_val, H5Lunpack_elink_val};
    use hdf5_metno_sys::h5p::H5P_DEFAULT;
    let cname = CString::new(name).map_err(|e| hdf5_metno::Error::from(e.to_string()))?;
    let mut buffer = vec![0u8; 64 * 1024];
    checked(|| {
        // SAFETY: a live group id, a NUL-terminated name, and a buffer of the size given;
        // libhdf5 writes at most that many bytes.
        i64::from(unsafe {
            H5Lget_val(
                group.id(),
                cname.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                H5P_DEFAULT,
            )
        })
    })?;
    let last = buffer.len() - 1;
    buffer[last] = 0;
    if soft {
        let text = CStr::from_bytes_until_nul(&buffer)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(LinkValue::Soft(text));
    }
    let mut flags: c_uint = 0;
    let mut file: *const c_char = std::ptr::null();
    let mut object: *const c_char = std::ptr::null();
    let rc = hdf5_metno::sync::sync(|| {
        // SAFETY: the buffer holds the link value libhdf5 wrote, NUL-terminated at its end;
        // the two pointers it sets point into that buffer.
        unsafe {
            H5Lunpack_elink_val(
                buffer.as_ptr().cast(),
                buffer.len(),
                &mut flags,
                &mut file,
                &mut object,
            )
        }
    });
    if rc < 0 || file.is_null() || object.is_null() {
        return Ok(LinkValue::Other);
    }
    // SAFETY: both point at NUL-terminated strings inside `buffer`, which is still alive and
    // ends with a NUL.
    let (file, object) = unsafe {
        (
            CStr::from_ptr(file).to_string_lossy().into_owned(),
            CStr::from_ptr(object).to_string_lossy().into_owned(),
        )
    };
    Ok(LinkValue::External { file, object })
}

/// The raw bytes of a scalar attribute in its own stored type (no conversion), at most `max`.
pub(crate) fn attribute_bytes(
    attr: &hdf5_metno::Attribute,
    max: usize,
) -> hdf5_metno::Result<Vec<u8>> {
    use hdf5_metno_sys::h5a::H5Aread;
    let datatype = attr.dtype()?;
    let space = attr.space()?;
    if space.size() != 1 {
        return Err(format!("the attribute holds {} values, not one", space.size()).into());
    }
    let size = datatype.size();
    if size == 0 || size > max {
        return Err(format!("the attribute's value is {size} bytes (at most {max})").into());
    }
    let mut buffer = vec![0u8; size];
    checked(|| {
        // SAFETY: a live attribute of one element whose type is `size` bytes, read in that same
        // type into a buffer of exactly `size` bytes.
        i64::from(unsafe { H5Aread(attr.id(), datatype.id(), buffer.as_mut_ptr().cast()) })
    })?;
    Ok(buffer)
}

/// A copy of `datatype` in big-endian byte order (the one thing hdf5-metno's safe API cannot
/// make).
pub(crate) fn big_endian_copy(datatype: &Datatype) -> ndstore_core::Result<Datatype> {
    use hdf5_metno_sys::h5t::{H5T_ORDER_BE, H5Tclose, H5Tcopy, H5Tset_order};
    use ndstore_core::{Error, ErrorKind};
    hdf5_metno::sync::sync(|| {
        // SAFETY: `datatype.id()` is a live datatype id owned by `datatype`; the copy is a new id
        // that is either handed to `from_id` (which takes ownership) or closed here.
        unsafe {
            let id: hid_t = H5Tcopy(datatype.id());
            if id < 0 {
                return Err(Error::new(
                    ErrorKind::Format,
                    "libhdf5 could not copy a datatype",
                ));
            }
            if H5Tset_order(id, H5T_ORDER_BE) < 0 {
                H5Tclose(id);
                return Err(Error::new(
                    ErrorKind::Format,
                    "libhdf5 could not set big-endian order",
                ));
            }
            hdf5_metno::from_id::<Datatype>(id)
                .map_err(|e| Error::new(ErrorKind::Format, e.to_string()))
        }
    })
}

/// The byte order a stored datatype uses (a compound's first member's, for complex numbers).
pub(crate) fn stored_order(datatype: &Datatype) -> ndstore_core::ByteOrder {
    use hdf5_metno_sys::h5t::{
        H5T_COMPOUND, H5T_ORDER_BE, H5T_ORDER_LE, H5Tclose, H5Tget_class, H5Tget_member_type,
        H5Tget_order,
    };
    use ndstore_core::ByteOrder;
    hdf5_metno::sync::sync(|| {
        // SAFETY: `datatype.id()` is live for this call; the member type id is closed here.
        unsafe {
            let id = datatype.id();
            let order = if H5Tget_class(id) == H5T_COMPOUND {
                let member = H5Tget_member_type(id, 0);
                let order = H5Tget_order(member);
                H5Tclose(member);
                order
            } else {
                H5Tget_order(id)
            };
            match order {
                H5T_ORDER_BE => ByteOrder::Big,
                H5T_ORDER_LE => ByteOrder::Little,
                _ => ByteOrder::NotApplicable,
            }
        }
    })
}

/// Whether a string datatype is variable-length.
pub(crate) fn is_variable_string(datatype: &Datatype) -> bool {
    hdf5_metno::sync::sync(|| {
        // SAFETY: a live datatype id.
        unsafe { hdf5_metno_sys::h5t::H5Tis_variable_str(datatype.id()) }
    }) > 0
}

/// The class of a datatype, named as a person reads it.
pub(crate) fn type_class(datatype: &Datatype) -> &'static str {
    use hdf5_metno_sys::h5t::{H5T_class_t, H5Tget_class};
    let class = hdf5_metno::sync::sync(|| {
        // SAFETY: a live datatype id.
        unsafe { H5Tget_class(datatype.id()) }
    });
    match class {
        H5T_class_t::H5T_INTEGER => "integer",
        H5T_class_t::H5T_FLOAT => "float",
        H5T_class_t::H5T_TIME => "time",
        H5T_class_t::H5T_STRING => {
            if is_variable_string(datatype) {
                "variable-length string"
            } else {
                "fixed-length string"
            }
        }
        H5T_class_t::H5T_BITFIELD => "bitfield",
        H5T_class_t::H5T_OPAQUE => "opaque",
        H5T_class_t::H5T_COMPOUND => "compound",
        H5T_class_t::H5T_REFERENCE => "reference",
        H5T_class_t::H5T_ENUM => "enum",
        H5T_class_t::H5T_VLEN => "variable-length sequence",
        H5T_class_t::H5T_ARRAY => "array",
        _ => "unknown",
    }
}

/// Registers a filter with libhdf5.
///
/// # Safety
///
/// `class` must describe a filter whose functions are sound to call with any input libhdf5
/// passes them, and its name must live as long as the process.
pub(crate) unsafe fn register_filter(
    class: &'static hdf5_metno_sys::h5z::H5Z_class2_t,
) -> hdf5_metno::Result<()> {
    checked(|| {
        // SAFETY: `class` is a valid, 'static class structure (the caller's contract).
        i64::from(unsafe {
            hdf5_metno_sys::h5z::H5Zregister(
                (class as *const hdf5_metno_sys::h5z::H5Z_class2_t).cast(),
            )
        })
    })
    .map(|_| ())
}

//! The system calls the standard library does not wrap here: `openat` and `fstatat`, so a
//! store reads every key through one handle of its directory and never through a symbolic
//! link, and a tree's removal that does not panic when closing a directory stream fails (std's
//! does).

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

/// True when the process runs under a limit of its address space (`ulimit -v`,
/// `RLIMIT_AS`), where every thread's stack and buffers count against the limit whether
/// touched or not; false when there is none or it cannot be read.
pub fn address_space_limited() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `struct rlimit` for getrlimit to fill.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    known && limit.rlim_cur != libc::RLIM_INFINITY
}

/// Removes the directory `path` and everything below it, as `std::fs::remove_dir_all` does,
/// without std's directory streams: std panics when closing one fails (it asserts that
/// `closedir` succeeds), and a failed close of a directory read only for its names is no
/// reason to abort a process that was saving or rolling back. Symbolic links are removed, never
/// followed.
///
/// # Errors
///
/// The operating system's error of opening, listing or removing an entry: `NotFound` for a
/// missing `path`, and `ENOTDIR` for a symbolic link at `path` itself, which is not followed
/// either (the caller names the tree by its own path). `InvalidInput` for a path holding a NUL
/// byte.
pub fn remove_tree(path: &std::path::Path) -> io::Result<()> {
    remove_tree_holding(path, &mut Held::none())
}

/// As [`remove_tree`], but the files' blocks are freed on ndstore-core's background thread
/// (`release_all`): each file is opened (`O_PATH`) before its name is removed, while the
/// process-wide room for held descriptors lasts (`held_room`: 256, less under a low limit on
/// open files), so removing a name frees nothing and the closes free them later. The names
/// are all gone when this returns; a process that exits first frees the blocks as it closes
/// its descriptors. On network and user-space file systems, where a file open as its last name
/// goes is kept by the client, every file is freed here.
///
/// # Errors
///
/// As [`remove_tree`].
pub fn remove_tree_deferred(path: &std::path::Path) -> io::Result<()> {
    let mut held = Held {
        files: Vec::new(),
        holding: ndstore_core::__private::release::local_unlink_semantics(path),
    };
    let result = remove_tree_holding(path, &mut held);
    ndstore_core::__private::release::release_all(std::mem::take(&mut held.files));
    result
}

/// Files of a tree being removed, held open for the background thread, each with its room
/// taken (`take_room`).
struct Held {
    files: Vec<File>,
    /// False when files are freed as their names go.
    holding: bool,
}

impl Held {
    fn none() -> Held {
        Held {
            files: Vec::new(),
            holding: false,
        }
    }

    /// Holds the entry `name` of `dir` open (`O_PATH`, not following a link) while there is
    /// room; a file that cannot be opened is freed as its name goes.
    fn hold(&mut self, dir: &File, name: &CString) {
        use ndstore_core::__private::release::{give_room, take_room};
        if !self.holding || !take_room() {
            return;
        }
        // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both
        // outliving the call.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: openat returned a new descriptor that nothing else owns.
            self.files.push(unsafe { File::from_raw_fd(fd) });
        } else {
            give_room(1);
        }
    }

    /// When `error` says the process ran out of descriptors and files are held: closes them
    /// here (their blocks freed now) and holds no more, so the removal can go on. True when
    /// it closed any.
    fn give_back_for(&mut self, error: &io::Error) -> bool {
        let out_of_descriptors = matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if !out_of_descriptors || self.files.is_empty() {
            return false;
        }
        let n = self.files.len();
        self.files.clear();
        ndstore_core::__private::release::give_room(n);
        self.holding = false;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let n = self.files.len();
        self.files.clear();
        ndstore_core::__private::release::give_room(n);
    }
}

fn remove_tree_holding(path: &std::path::Path, held: &mut Held) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dir = open_dir(libc::AT_FDCWD, &name)?;
    remove_entries(&dir, held)?;
    drop(dir);
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    if unsafe { libc::unlinkat(libc::AT_FDCWD, name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the directory `name` (relative to `at`) without following a symbolic link.
fn open_dir(at: libc::c_int, name: &CString) -> io::Result<File> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The names in the directory `dir`, `.` and `..` left out.
fn names(dir: &File) -> io::Result<Vec<CString>> {
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one or -1.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a descriptor this function owns; fdopendir takes it over on success.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut out = Vec::new();
    let result = loop {
        // readdir returns null both at the end and on an error, which only errno tells apart.
        // SAFETY: errno is this thread's; `stream` is an open directory stream.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: as above.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: readdir returned a valid entry whose name is NUL-terminated, alive until the
        // next readdir on this stream; it is copied at once.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    };
    // A failed close of a stream only read is ignored: nothing was written through it.
    // SAFETY: `stream` is open and closed exactly once here.
    unsafe { libc::closedir(stream) };
    result.map(|()| out)
}

/// Removes every entry of the directory `dir`, directories depth first.
fn remove_entries(dir: &File, held: &mut Held) -> io::Result<()> {
    let names = match names(dir) {
        Err(e) if held.give_back_for(&e) => names(dir)?,
        listed => listed?,
    };
    for name in names {
        let opened = match open_dir(dir.as_raw_fd(), &name) {
            Err(e) if held.give_back_for(&e) => open_dir(dir.as_raw_fd(), &name),
            opened => opened,
        };
        match opened {
            Ok(sub) => {
                remove_entries(&sub, held)?;
                drop(sub);
                // SAFETY: `dir` is open and `name` NUL-terminated for the call.
                let rc =
                    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Not a directory (a file, a symbolic link): unlinked.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                held.hold(dir, &name);
                // SAFETY: as above.
                if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn remove_tree_removes_nested_directories_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("a.zarr");
        fs::create_dir_all(tree.join("c/0/1")).unwrap();
        fs::create_dir_all(tree.join("empty")).unwrap();
        fs::write(tree.join("zarr.json"), b"{}").unwrap();
        fs::write(tree.join("c/0/0"), b"chunk").unwrap();
        fs::write(tree.join("c/0/1/2"), b"inner").unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        // The tree's parent and its other entries stay.
        assert!(dir.path().is_dir());
    }

    /// The paths this process's descriptors name that contain `part`.
    fn open_paths_with(part: &str) -> Vec<String> {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
            .map(|path| path.display().to_string())
            .filter(|path| path.contains(part))
            .collect()
    }

    #[test]
    fn a_tree_removed_holding_its_files_loses_every_name_and_keeps_at_most_its_room_open() {
        let room = ndstore_core::__private::release::held_room();
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("held.zarr");
        fs::create_dir_all(tree.join("c/0")).unwrap();
        for i in 0..room + 44 {
            fs::write(tree.join(format!("c/0/{i}")), vec![7u8; 4096]).unwrap();
        }
        let mut held = Held {
            files: Vec::new(),
            holding: true,
        };
        remove_tree_holding(&tree, &mut held).unwrap();
        assert!(fs::symlink_metadata(&tree).is_err());
        // At most the room is held (other tests may hold some of it), the names gone; the
        // rest were freed.
        assert!(
            !held.files.is_empty() && held.files.len() <= room,
            "{}",
            held.files.len()
        );
        let open = open_paths_with("held.zarr");
        assert_eq!(open.len(), held.files.len(), "{open:?}");
        assert!(open.iter().all(|p| p.ends_with("(deleted)")), "{open:?}");
        drop(held);
        assert!(open_paths_with("held.zarr").is_empty());
    }

    #[test]
    fn a_tree_removed_deferred_is_gone_at_once_and_its_files_closed_once_settled() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("deferred.zarr");
        fs::create_dir_all(tree.join("c/1")).unwrap();
        fs::write(tree.join("zarr.json"), b"{}").unwrap();
        for i in 0..8 {
            fs::write(tree.join(format!("c/1/{i}")), vec![1u8; 1 << 20]).unwrap();
        }
        remove_tree_deferred(&tree).unwrap();
        assert!(fs::symlink_metadata(&tree).is_err());
        ndstore_core::__private::release::settle();
        assert!(open_paths_with("deferred.zarr").is_empty());
        let err = remove_tree_deferred(&tree).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_tree_of_a_missing_tree_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = remove_tree(&dir.path().join("missing.zarr")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_tree_removes_symbolic_links_inside_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        let tree = dir.path().join("a.zarr");
        fs::create_dir_all(tree.join("c")).unwrap();
        symlink(&outside, tree.join("c/to-dir")).unwrap();
        symlink(outside.join("keep"), tree.join("to-file")).unwrap();
        symlink(dir.path().join("nowhere"), tree.join("dangling")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(fs::symlink_metadata(&tree).is_err());
        // What the links named is untouched.
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
    }

    #[test]
    fn remove_tree_does_not_follow_a_symbolic_link_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.zarr");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("zarr.json"), b"{}").unwrap();
        let link = dir.path().join("link.zarr");
        symlink(&real, &link).unwrap();
        let err = remove_tree(&link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(fs::read(real.join("zarr.json")).unwrap(), b"{}");
        assert!(fs::symlink_metadata(&link).is_ok());
    }
}

//! The one way ndstore writes a file: [`OutputFile`] replaces a target atomically (temporary
//! file, fsync, rename, directory fsync) or rewrites it in place, and [`DurableFile`] makes a
//! failed fsync poison its handle. Every backend writes through here; none has its own.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::durability::{Durability, Replace, SaveOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::os;

/// The suffix of every temporary file ndstore creates.
pub const TEMP_SUFFIX: &str = ".ndstore-tmp";

/// How many symbolic links a target path may pass through before ndstore gives up (as Linux).
const MAX_SYMLINKS: usize = 40;

/// A file handle whose fsync failure is remembered: once `sync` fails, every later `sync` and
/// `close` fails with [`ErrorKind::Poisoned`].
///
/// The kernel may drop dirty pages after a failed write-back and report the failure only once,
/// so a retried fsync can succeed while the data is gone (PostgreSQL's "fsyncgate").
#[derive(Debug)]
pub struct DurableFile {
    file: File,
    path: PathBuf,
    poisoned: bool,
}

impl DurableFile {
    /// Wraps an open file; `path` is used in error messages.
    pub fn new(file: File, path: impl Into<PathBuf>) -> DurableFile {
        DurableFile {
            file,
            path: path.into(),
            poisoned: false,
        }
    }

    /// The open file, to write to or read from.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The open file, shared (for positioned writes and reads).
    pub fn file_ref(&self) -> &File {
        &self.file
    }

    /// The path given when the handle was made.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True after a failed sync.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Marks the handle poisoned (used by owners that sync by other means, such as msync).
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    fn check(&self) -> Result<()> {
        if self.poisoned {
            return Err(poisoned_error(&self.path));
        }
        Ok(())
    }

    /// fsync: data and metadata on the medium. A failure poisons the handle.
    ///
    /// # Errors
    ///
    /// The I/O error of fsync, which poisons the handle; `ErrorKind::Poisoned` after an earlier
    /// failed sync.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        self.file.sync_all().map_err(|e| {
            self.poisoned = true;
            Error::io("fsync failed; the handle is poisoned", e).with_path(&self.path)
        })
    }

    /// Closes the file, reporting close's own error; fails when the handle is poisoned.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Poisoned` after a failed sync; the error `close(2)` returns.
    pub fn close(self) -> Result<()> {
        self.check()?;
        os::close_file(self.file).map_err(|e| Error::io("close failed", e).with_path(&self.path))
    }
}

/// The error every call on a poisoned handle returns.
pub fn poisoned_error(path: &Path) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        "an earlier fsync failed, so written data may be lost; save again atomically to recover",
    )
    .with_path(path)
}

/// How a handle locks its file, so cooperating handles refuse to conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Shared: readers and copy-on-write maps; excludes exclusive holders.
    Shared,
    /// Exclusive: writers in place; excludes every other lock.
    Exclusive,
}

/// How long [`lock`] waits out a conflicting lock before it reports it.
const LOCK_GRACE: Duration = Duration::from_millis(200);

/// Takes an advisory lock (`flock`) on `file`, waiting at most a moment ([`LOCK_GRACE`]) for
/// a conflicting one to go; a conflict that stays is [`ErrorKind::Locked`] naming `path`. The
/// lock lasts as long as the file handle.
///
/// Advisory locks bind only processes that take them: every ndstore handle does; other programs
/// may not.
///
/// # Errors
///
/// `ErrorKind::Locked` when another handle holds a conflicting lock; the I/O error of `flock`
/// otherwise.
pub fn lock(file: &File, lock: Lock, path: &Path) -> Result<()> {
    let attempt = || match lock {
        Lock::Shared => file.try_lock_shared(),
        Lock::Exclusive => file.try_lock(),
    };
    // A conflict is waited out for a moment before it is reported: a child another thread of
    // this process has just forked holds every open file of the parent, and so every `flock`
    // on them (a save's temporary keeps its liveness lock through the rename), until it
    // closes them or execs: the isolated HDF5 reader closes them first thing, `Command` at its
    // exec. A handle that really holds the file holds it for longer than this wait.
    let mut result = attempt();
    let (mut waited, mut pause) = (Duration::ZERO, Duration::from_millis(1));
    while matches!(result, Err(fs::TryLockError::WouldBlock)) && waited < LOCK_GRACE {
        std::thread::sleep(pause);
        waited += pause;
        pause = (pause * 2).min(Duration::from_millis(32));
        result = attempt();
    }
    match result {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Locked,
            match lock {
                Lock::Shared => "another handle is writing this file in place",
                Lock::Exclusive => {
                    "another handle has this file open (mapped or being written in place)"
                }
            },
        )
        .with_path(path)),
        Err(fs::TryLockError::Error(e)) => {
            Err(Error::io("cannot lock the file", e).with_path(path))
        }
    }
}

/// fsyncs the directory `dir`, so a created, renamed or removed entry in it is durable.
///
/// # Errors
///
/// The I/O error of opening or fsyncing the directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| Error::io("opening directory to fsync it", e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io("fsync of directory failed", e))?;
    os::close_file(handle).map_err(|e| Error::io("close of directory failed", e))
}

/// The directory that holds `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Follows symbolic links at `path` (not in its directories) to the file a write should
/// replace. A dangling link resolves to the missing file it names, which the save then creates.
///
/// Each link is followed under the rule of Linux's `fs.protected_symlinks`, whatever the
/// sysctl says: a link in a sticky, world-writable directory (`/tmp`) is followed only when
/// its owner is this process's effective user or the directory's owner. Otherwise another user
/// could plant a link there and redirect a privileged save onto any file.
///
/// # Errors
///
/// [`ErrorKind::PermissionDenied`] for a link the rule refuses; [`ErrorKind::InvalidInput`]
/// for a directory, a file that is not a regular one (a device, pipe or socket) or too many
/// links; I/O errors inspecting the path.
pub fn resolve_target(path: &Path) -> Result<PathBuf> {
    let target = follow_links(path)?;
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            Err(Error::new(ErrorKind::InvalidInput, "the target is a directory").with_path(&target))
        }
        // A device, pipe or socket would be replaced by a regular file (run as root,
        // `/dev/null` was), or block an in-place open: neither is an array file.
        Ok(meta) if !meta.is_file() => Err(Error::new(
            ErrorKind::InvalidInput,
            "the target is not a regular file (a device, pipe or socket)",
        )
        .with_path(&target)),
        Ok(_) => Ok(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(target),
        Err(e) => Err(Error::io("inspecting the target", e).with_path(&target)),
    }
}

/// Follows symbolic links at `path` as [`resolve_target`] does, but accepts a directory: the
/// target of a backend whose arrays are directory trees (Zarr).
///
/// # Errors
///
/// [`ErrorKind::PermissionDenied`] for a link the protected-symlinks rule refuses;
/// [`ErrorKind::InvalidInput`] for too many links; I/O errors inspecting the path.
pub fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                check_protected_symlink(&current, &meta)?;
                let link = fs::read_link(&current)
                    .map_err(|e| Error::io("reading symbolic link", e).with_path(&current))?;
                current = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&current).join(link)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(Error::io("inspecting the target", e).with_path(&current)),
        }
    }
    Err(Error::new(ErrorKind::InvalidInput, "too many levels of symbolic links").with_path(path))
}

/// Refuses to follow the link at `link` (whose own metadata is `meta`) when the kernel's
/// protected-symlinks rule would: the link sits in a sticky, world-writable directory, and
/// neither this process's effective user nor the directory's owner owns it.
fn check_protected_symlink(link: &Path, meta: &fs::Metadata) -> Result<()> {
    let dir = parent_dir(link);
    let dir_meta = fs::metadata(dir)
        .map_err(|e| Error::io("inspecting the link's directory", e).with_path(link))?;
    let dir_mode = dir_meta.permissions().mode();
    let sticky_and_open = dir_mode & 0o1000 != 0 && dir_mode & 0o002 != 0;
    if !sticky_and_open || meta.uid() == os::effective_uid() || meta.uid() == dir_meta.uid() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "refusing to follow a symbolic link owned by uid {} in a sticky, world-writable directory owned by uid {} (the fs.protected_symlinks rule): another user may have planted it",
            meta.uid(),
            dir_meta.uid()
        ),
    )
    .with_path(link))
}

/// The file name stem of temporaries for `target`: `.NAME.` (truncated so the whole temporary
/// name stays within the 255-byte limit of common file systems).
fn temp_prefix(target: &Path) -> Result<OsString> {
    let name = target.file_name().ok_or_else(|| {
        Error::new(ErrorKind::InvalidInput, "the target has no file name").with_path(target)
    })?;
    let mut bytes = vec![b'.'];
    bytes.extend_from_slice(&name.as_bytes()[..name.len().min(200)]);
    bytes.push(b'.');
    Ok(OsString::from_vec(bytes))
}

fn temp_name(prefix: &OsStr, attempt: u64) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = prefix.to_os_string();
    name.push(format!(
        "{}-{n}-{nanos:x}{attempt}{TEMP_SUFFIX}",
        std::process::id()
    ));
    name
}

/// Takes the liveness lock of a temporary that `handle` (a file or a directory) has just
/// created at `path`: a shared `flock` held as long as the handle, which tells every process,
/// in any PID namespace and on any NFS client, that the temporary's writer is alive (see
/// [`remove_stale_temps`]). Returns false when the temporary was taken for a stale one
/// before the lock was held (a sweep holds its exclusive lock, or has removed the name): the
/// caller then makes another.
///
/// # Errors
///
/// The I/O error of `flock`, or of inspecting `path`.
pub fn hold_liveness(handle: &File, path: &Path) -> io::Result<bool> {
    match handle.try_lock_shared() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(false),
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    // Locked: no sweep can remove it from now on. One may have removed it just before.
    let held = handle.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A temporary file beside `target`, created exclusively (`O_EXCL`), never following a link,
/// and holding its liveness lock (see [`hold_liveness`]).
fn create_temp(target: &Path, mode: u32) -> Result<(PathBuf, File)> {
    let dir = parent_dir(target);
    let prefix = temp_prefix(target)?;
    for attempt in 0..100 {
        let path = dir.join(temp_name(&prefix, attempt));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => match hold_liveness(&file, &path) {
                Ok(true) => return Ok((path, file)),
                // A sweep took it for a dead writer's before the lock was held: another name.
                Ok(false) => continue,
                Err(e) => {
                    // Ours and never published: removed, whatever went wrong.
                    let _ = fs::remove_file(&path);
                    return Err(Error::io("cannot lock the temporary file", e).with_path(target));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(
                    Error::io("cannot create a temporary file beside the target", e)
                        .with_path(target),
                );
            }
        }
    }
    Err(Error::new(ErrorKind::Io, "could not find a free temporary file name").with_path(target))
}

/// What a replaced file keeps: its permission bits, its owner and its extended attributes
/// (POSIX ACLs among them).
#[derive(Clone, Debug)]
struct Keep {
    mode: u32,
    uid: u32,
    gid: u32,
    /// The old file's size: big ones are released off the caller's thread (see `release`).
    size: u64,
    /// The old file's extended attributes, names and values.
    xattrs: Vec<(std::ffi::CString, Vec<u8>)>,
    /// The owner may change when it cannot be kept (`SaveOptions::allow_owner_change`).
    owner_may_change: bool,
}

impl Keep {
    /// What `target` (an existing file) must keep, after checking that the caller may replace
    /// it: a file the caller could not open for writing is refused unless `options` allow it.
    fn of(target: &Path, meta: &fs::Metadata, options: &SaveOptions) -> Result<Keep> {
        if !options.replace_read_only {
            let writable = os::may_write(target).map_err(|e| {
                Error::io("checking write permission on the target", e).with_path(target)
            })?;
            if !writable {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "this user may not write the file (mode {:o}), so replacing it would override its protection, as np.save refuses to; SaveOptions::replace_read_only() replaces it anyway",
                        meta.permissions().mode() & 0o7777
                    ),
                )
                .with_path(target));
            }
        }
        let xattrs = read_xattrs(target)?;
        Ok(Keep {
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len(),
            xattrs,
            owner_may_change: options.allow_owner_change,
        })
    }
}

/// The extended attributes (names and values) of the file or directory at `target`, which a
/// replacement keeps through [`keep_xattrs`].
///
/// # Errors
///
/// The I/O error of listing or reading them, naming `target`.
pub fn read_xattrs(target: &Path) -> Result<Vec<(std::ffi::CString, Vec<u8>)>> {
    let mut xattrs = Vec::new();
    let names = os::xattr_names(target).map_err(|e| {
        Error::io("listing the extended attributes of the file it replaces", e).with_path(target)
    })?;
    for name in names {
        match os::xattr_value(target, &name) {
            Ok(value) => xattrs.push((name, value)),
            // Removed since it was listed: nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "reading extended attribute {} of the file it replaces",
                        name.to_string_lossy()
                    ),
                    e,
                )
                .with_path(target));
            }
        }
    }
    Ok(xattrs)
}

enum State {
    /// A temporary file that becomes the target on `finish`.
    Atomic { temp: PathBuf, keep: Option<Keep> },
    /// The target itself; `created` says whether its directory entry is new.
    InPlace { created: bool },
    /// The temporary file was renamed over the target: nothing is left to clean up.
    Published,
    /// Rolled back by [`OutputFile::abort`]: nothing is left to clean up.
    Aborted,
}

/// A file being written for a save: a temporary beside the target (atomic replace, the default)
/// or the target itself (in place), finished by [`OutputFile::finish`].
///
/// Atomic: on `finish`, the temporary gets the target's permissions and owner (a new file gets
/// `0666 & !umask`), is fsynced, closed (close errors reported), renamed over the target, and
/// the directory is fsynced. Dropped without `finish` — an error, an early return, a panic — the
/// temporary is removed and the target keeps its old content. Symbolic links at the target are
/// followed: the file they point to is replaced and the link stays.
///
/// In place: the target is truncated and rewritten; `finish` fsyncs it (and its directory when
/// the file is new). Dropped without `finish`, the data written so far stays.
///
/// Libraries that can only write to a path (libhdf5) write to [`OutputFile::path`], and the
/// same `finish` publishes it.
///
/// An abandoned save reports its rollback through [`OutputFile::abort`]:
///
/// ```
/// use std::io::Write;
/// use ndstore_core::{OutputFile, SaveOptions};
///
/// # fn main() -> ndstore_core::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("ndstore-output-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let target = dir.join("config.bin");
/// std::fs::write(&target, b"old").unwrap();
/// let mut out = OutputFile::create(&target, &SaveOptions::default())?;
/// out.file()?.write_all(b"half a new vers").unwrap();
/// out.abort()?; // the temporary is gone, or the error says why not
/// assert_eq!(std::fs::read(&target).unwrap(), b"old");
/// assert!(ndstore_core::list_temps(&target)?.is_empty());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub struct OutputFile {
    target: PathBuf,
    durability: Durability,
    file: Option<DurableFile>,
    state: State,
}

impl OutputFile {
    /// Starts a save of `target` as `options` say.
    ///
    /// # Errors
    ///
    /// I/O errors (with their kinds: `ErrorKind::PermissionDenied`, `ErrorKind::StorageFull`, ...)
    /// resolving the target, inspecting the file it replaces and creating the temporary;
    /// `ErrorKind::PermissionDenied` when the options forbid replacing a file the caller could not
    /// write or whose owner cannot be kept; in place, `ErrorKind::Locked` when another handle holds
    /// the target, and the errors of opening and truncating it.
    pub fn create(target: &Path, options: &SaveOptions) -> Result<OutputFile> {
        let target = resolve_target(target)?;
        match options.replace {
            Replace::Atomic => {
                let keep = match fs::metadata(&target) {
                    Ok(meta) => Some(Keep::of(&target, &meta, options)?),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(Error::io("inspecting the target", e).with_path(&target)),
                };
                // A replacement is private until it gets the old file's mode; a new file is
                // created with 0666 so the kernel applies the umask, as for any new file.
                let mode = if keep.is_some() { 0o600 } else { 0o666 };
                let (temp, file) = create_temp(&target, mode)?;
                Ok(OutputFile {
                    file: Some(DurableFile::new(file, temp.clone())),
                    state: State::Atomic { temp, keep },
                    durability: options.durability,
                    target,
                })
            }
            Replace::InPlace => {
                let created = !target.exists();
                // Lock before truncating: cutting a file that another handle has mapped would
                // make that process fault.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o666)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&target)
                    .map_err(|e| Error::io("cannot open the target for writing", e))
                    .map_err(|e| e.with_path(&target))?;
                lock(&file, Lock::Exclusive, &target)?;
                file.set_len(0)
                    .map_err(|e| Error::io("cannot truncate the target", e).with_path(&target))?;
                Ok(OutputFile {
                    file: Some(DurableFile::new(file, target.clone())),
                    state: State::InPlace { created },
                    durability: options.durability,
                    target,
                })
            }
        }
    }

    /// The file to write to.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` once the output is finished.
    pub fn file(&mut self) -> Result<&mut File> {
        match self.file.as_mut() {
            Some(f) => Ok(f.file()),
            None => Err(
                Error::new(ErrorKind::InvalidInput, "the output is already finished")
                    .with_path(&self.target),
            ),
        }
    }

    /// The path being written: the temporary file for an atomic save, the target otherwise.
    /// Give it to libraries that open files by name; call `finish` after they closed it.
    pub fn path(&self) -> &Path {
        match &self.state {
            State::Atomic { temp, .. } => temp,
            State::InPlace { .. } | State::Published | State::Aborted => &self.target,
        }
    }

    /// The file the save replaces (symbolic links resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The durability this save was asked for.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// fsyncs what was written so far (for an atomic save this does not publish it).
    ///
    /// # Errors
    ///
    /// The I/O error of fsync, which poisons the output; `ErrorKind::Poisoned` after an earlier
    /// failed sync.
    pub fn sync(&mut self) -> Result<()> {
        match self.file.as_mut() {
            Some(f) => f.sync(),
            None => Ok(()),
        }
    }

    /// Publishes the result as described on the type, and returns the first error.
    ///
    /// # Errors
    ///
    /// The first error of keeping the replaced file's owner, mode and extended attributes, of
    /// fsync, close, the rename or the directory's fsync; when a step before the rename fails, the
    /// target keeps its old content and the temporary is removed.
    pub fn finish(mut self) -> Result<()> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let synced = self.durability == Durability::Synced;
        match &self.state {
            State::Atomic { temp, keep } => {
                if let Some(keep) = keep {
                    keep_attributes(file.file(), keep, temp, &self.target)?;
                }
                if synced {
                    file.sync()?;
                }
                // The liveness lock goes with the close. Between the close and the rename, a
                // sweep in another PID namespace (to which this process is not alive) may take
                // the temporary for a dead writer's and remove it: the rename then fails and
                // the save returns the error, the target untouched. Holding the lock across
                // the rename would need a second descriptor, whose close after the rename
                // could fail with nothing left to undo.
                file.close()?;
                let old = keep
                    .as_ref()
                    .and_then(|k| crate::release::hold(&self.target, k.size));
                fs::rename(temp, &self.target).map_err(|e| {
                    Error::io("cannot rename the temporary file over the target", e)
                        .with_path(&self.target)
                })?;
                // Renamed: from here on the temporary no longer exists, so drop has nothing to do.
                self.state = State::Published;
                // The replaced file is freed after the directory's fsync: freed alongside it,
                // its blocks' release joined the journal commit that fsync waits for (15 ms
                // of a 64 MiB save's directory fsync, in strace).
                let synced_dir = if synced {
                    sync_dir(parent_dir(&self.target)).map_err(|e| e.with_path(&self.target))
                } else {
                    Ok(())
                };
                if let Some(old) = old {
                    crate::release::release(old);
                }
                synced_dir?;
            }
            State::InPlace { created } => {
                let created = *created;
                file.file()
                    .flush()
                    .map_err(|e| Error::io("flush failed", e).with_path(&self.target))?;
                if synced {
                    file.sync()?;
                }
                file.close()?;
                if synced && created {
                    sync_dir(parent_dir(&self.target)).map_err(|e| e.with_path(&self.target))?;
                }
            }
            State::Published | State::Aborted => {}
        }
        Ok(())
    }

    /// Abandons the save and reports whether the rollback worked, where dropping the output
    /// can only log it.
    ///
    /// Atomic: the temporary file is closed and removed; the target keeps its old content. In
    /// place: the file is closed; what was written stays (cut it back first, as streaming
    /// writers do).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] (or the kind of the OS error) when the temporary cannot be removed
    /// (it is left behind, and [`remove_stale_temps`] removes it once this process is gone),
    /// or when closing the in-place file fails.
    pub fn abort(mut self) -> Result<()> {
        let file = self.file.take();
        let state = std::mem::replace(&mut self.state, State::Aborted);
        match state {
            State::Atomic { temp, .. } => {
                // The temporary's data is discarded, so its close error does not matter.
                drop(file);
                fs::remove_file(&temp).map_err(|e| {
                    Error::io("cannot remove the temporary file of an aborted save", e)
                        .with_path(&temp)
                })
            }
            State::InPlace { .. } => match file {
                Some(file) => os::close_file(file.file)
                    .map_err(|e| Error::io("close failed", e).with_path(&self.target)),
                None => Ok(()),
            },
            State::Published | State::Aborted => Ok(()),
        }
    }
}

/// Gives the temporary `file` what the replaced file had: owner, mode and extended attributes.
///
/// The owner first (chown clears set-user-ID and set-group-ID bits), then the mode, then the
/// extended attributes (a POSIX ACL sets the group bits to its mask, as on the old file). A
/// caller that is not root cannot give a file away: then the save fails, unless the options
/// let the owner change, when the set-ID bits are dropped (they would otherwise become the
/// caller's).
fn keep_attributes(file: &File, keep: &Keep, temp: &Path, target: &Path) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io("inspecting the temporary file", e).with_path(temp))?;
    let mut mode = keep.mode;
    let owner_differs = meta.uid() != keep.uid || meta.gid() != keep.gid;
    if owner_differs && let Err(e) = std::os::unix::fs::fchown(file, Some(keep.uid), Some(keep.gid))
    {
        if !keep.owner_may_change {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot keep the owner of the file it replaces (uid {}, gid {}): {e}; SaveOptions::allow_owner_change() lets the owner change",
                    keep.uid, keep.gid
                ),
            )
            .with_path(target));
        }
        log::info!(
            "{}: the replaced file's owner (uid {}, gid {}) could not be kept: {e}",
            target.display(),
            keep.uid,
            keep.gid
        );
        mode &= !0o6000;
    }
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| {
            Error::io("cannot give the new file the old file's mode", e).with_path(temp)
        })?;
    keep_xattrs(file, &keep.xattrs, target)
}

/// Gives `file` (the replacement, a file or a directory) the extended attributes `xattrs` that
/// [`read_xattrs`] read from the file at `target` it replaces. Labels a security module or the
/// kernel manages (SELinux, capabilities, trusted attributes) are its to assign, and a failure
/// to set one is logged; everything else, ACLs above all, is kept or the save fails.
///
/// # Errors
///
/// The I/O error of setting an attribute other than those labels, naming `target`.
pub fn keep_xattrs(
    file: &File,
    xattrs: &[(std::ffi::CString, Vec<u8>)],
    target: &Path,
) -> Result<()> {
    for (name, value) in xattrs {
        if let Err(e) = os::set_xattr(file, name, value) {
            let label = name.to_string_lossy();
            if label.starts_with("security.") || label.starts_with("trusted.") {
                log::warn!(
                    "{}: extended attribute {label} of the replaced file not kept: {e}",
                    target.display()
                );
                continue;
            }
            return Err(Error::io(
                format!("cannot keep extended attribute {label} of the file it replaces"),
                e,
            )
            .with_path(target));
        }
    }
    Ok(())
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        let file = self.file.take();
        match &self.state {
            State::Atomic { temp, .. } => {
                // Not published (never finished, or finish failed): roll back.
                drop(file);
                if let Err(e) = fs::remove_file(temp) {
                    log::error!(
                        "{}: could not remove the temporary file of an abandoned save: {e}",
                        temp.display()
                    );
                }
            }
            State::InPlace { .. } => {
                // Dropped without finish: what was written stays, as it was handed to the OS.
                if let Some(Err(e)) = file.map(|f| os::close_file(f.file)) {
                    log::error!("{}: close failed on drop: {e}", self.target.display());
                }
            }
            State::Published | State::Aborted => {}
        }
    }
}

/// Saves through `write` as `options` say: `write` gets the file to fill, and the result is
/// published (atomically by default) only when `write` returns Ok.
///
/// # Errors
///
/// The errors of `OutputFile::create`, the error `write` returns, and those of
/// `OutputFile::finish`.
pub fn write_file(
    path: &Path,
    options: &SaveOptions,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let mut out = OutputFile::create(path, options)?;
    write(out.file()?).map_err(|e| e.with_path(path))?;
    out.finish()
}

/// Removes temporary files (and the temporary directories of backends whose arrays are
/// directory trees) that crashed saves of `target` left behind, and returns how many it
/// removed. `target` may be a file or a directory.
///
/// A save killed between creating its temporary file and renaming it leaves one such file;
/// the target itself is always intact. A temporary is stale only when its liveness lock can be
/// taken: every writer holds a shared `flock` on its temporary (file or directory) from its
/// creation until it is renamed, so a writer that is alive in another PID namespace (a
/// container sharing the directory) or on another NFS client keeps its temporary. The process
/// id in the name is a hint that can only keep a temporary: one whose process is alive here is
/// left alone even when unlocked (a writer of an older ndstore, which held no lock). The
/// temporary is removed while its exclusive lock is held, so no writer can take it up meanwhile.
///
/// # Errors
///
/// I/O errors reading the target's directory or removing a temporary.
pub fn remove_stale_temps(target: &Path) -> Result<usize> {
    let target = follow_links(target)?;
    let prefix = temp_prefix(&target)?;
    sweep(parent_dir(&target), |name| {
        name.starts_with(prefix.as_bytes())
    })
}

/// Removes the stale temporaries of every target in the directory `dir`, as
/// [`remove_stale_temps`] removes those of one target: what crashed saves of any file or array
/// there left behind.
///
/// # Errors
///
/// I/O errors reading the directory or removing a temporary.
pub fn remove_stale_temps_in(dir: &Path) -> Result<usize> {
    sweep(dir, |name| name.starts_with(b"."))
}

/// The process id a temporary's name carries (`.NAME.PID-N-....ndstore-tmp`), when `name` is
/// the name of one.
fn temp_pid(name: &[u8]) -> Option<u32> {
    let rest = name.strip_suffix(TEMP_SUFFIX.as_bytes())?;
    let at = rest.iter().rposition(|&b| b == b'.')?;
    let id = rest[at + 1..].split(|&b| b == b'-').next()?;
    std::str::from_utf8(id).ok()?.parse().ok()
}

/// Removes the stale temporaries in `dir` whose names `chosen` accepts (see
/// [`remove_stale_temps`]).
fn sweep(dir: &Path, chosen: impl Fn(&[u8]) -> bool) -> Result<usize> {
    let mut removed = 0;
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io("listing directory", e).with_path(dir))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing directory", e).with_path(dir))?;
        let name = entry.file_name();
        let Some(pid) = temp_pid(name.as_bytes()).filter(|_| chosen(name.as_bytes())) else {
            continue;
        };
        if pid == std::process::id() || os::process_alive(pid) {
            continue;
        }
        if remove_if_stale(&entry.path())? {
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Removes the temporary at `path` when its liveness lock can be taken, holding that lock
/// while it removes it; returns whether it did. A temporary that cannot be opened or locked
/// (another user's, a file system without `flock`) is kept: only a temporary known dead goes.
fn remove_if_stale(path: &Path) -> Result<bool> {
    let Ok(handle) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return Ok(false);
    };
    if handle.try_lock().is_err() {
        return Ok(false);
    }
    // The name must still be the file locked (names are never reused, but be sure).
    let (Ok(held), Ok(named)) = (handle.metadata(), fs::symlink_metadata(path)) else {
        return Ok(false);
    };
    if held.dev() != named.dev() || held.ino() != named.ino() {
        return Ok(false);
    }
    // A backend whose arrays are directory trees stages them in temporary directories.
    let removal = if named.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match removal {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("removing a stale temporary file", e).with_path(path)),
    }
}

/// The temporary files (or directories) of `target`, a file or a directory, present now, of
/// any process (for tests and diagnostics).
///
/// # Errors
///
/// I/O errors reading the target's directory.
pub fn list_temps(target: &Path) -> Result<Vec<PathBuf>> {
    let target = follow_links(target)?;
    let dir = parent_dir(&target);
    let prefix = temp_prefix(&target)?;
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io("listing directory", e).with_path(dir))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing directory", e).with_path(dir))?;
        let name = entry.file_name();
        if name.as_bytes().starts_with(prefix.as_bytes())
            && name.as_bytes().ends_with(TEMP_SUFFIX.as_bytes())
        {
            found.push(entry.path());
        }
    }
    Ok(found)
}

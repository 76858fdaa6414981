//! The local store: keys are files under an array's directory, each written through core's
//! `OutputFile` (a temporary beside it, fsynced when the durability says so, renamed), with
//! the directories whose entries changed remembered and fsynced together at `sync`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndstore_core::{Durability, Error, ErrorKind, OutputFile, Result, SaveOptions};

/// An array's directory as a key-value store with honest durability.
///
/// Reads go through one handle of the directory, opened with the store (`openat`), so a reader
/// sees one array even when the directory's name is given to another array meanwhile (a save
/// replaces an array by exchanging directories): `zarr.json` and every chunk come from the same
/// tree.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    /// The directory, opened once; `None` for a store opened only to write a new tree.
    handle: Option<File>,
    options: SaveOptions,
    /// Directories with new or renamed entries, fsynced by the next `sync`.
    dirty: Mutex<BTreeSet<PathBuf>>,
    /// Files renamed into place without an fsync (a flushed store), fsynced by the next `sync`.
    unsynced: Mutex<Vec<PathBuf>>,
    /// A failed fsync: the data may be lost, so every later sync fails.
    poisoned: Mutex<bool>,
}

impl LocalStore {
    /// The store rooted at `root` (an existing directory); writes follow `options`'
    /// durability and replace policy.
    pub fn new(root: &Path, options: &SaveOptions) -> LocalStore {
        LocalStore {
            root: root.to_path_buf(),
            handle: None,
            options: *options,
            dirty: Mutex::new(BTreeSet::new()),
            unsynced: Mutex::new(Vec::new()),
            poisoned: Mutex::new(false),
        }
    }

    /// The store rooted at the directory `root`, which every read goes through from now on,
    /// whatever is renamed at its path later.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when there is no such directory; the I/O error of opening it.
    pub fn open(root: &Path, options: &SaveOptions) -> Result<LocalStore> {
        let handle = File::open(root).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::new(ErrorKind::NotFound, "no such array").with_path(root)
            } else {
                Error::io("cannot open the array's directory", e).with_path(root)
            }
        })?;
        let mut store = LocalStore::new(root, options);
        store.handle = Some(handle);
        Ok(store)
    }

    /// Opens `key` for reading: through the directory's handle when the store has one, never
    /// blocking on a FIFO, never through a symbolic link (see [`crate::sys::open_at`]), and
    /// only a regular file.
    fn open_key(&self, key: &str) -> Result<Option<File>> {
        let path = self.path_of(key);
        let file = match &self.handle {
            Some(dir) => match crate::sys::open_at(dir, key) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if crate::sys::is_link(&e) => {
                    return Err(Error::new(
                        ErrorKind::Format,
                        "a symbolic link, not a regular file (a store's entries are never followed)",
                    )
                    .with_path(&path));
                }
                Err(e) => return Err(Error::io("cannot open", e).with_path(&path)),
            },
            None => match ndstore_core::__private::load::open_for_load(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        if !file_is_regular(&file) {
            return Err(Error::new(ErrorKind::Format, "not a regular file").with_path(&path));
        }
        Ok(Some(file))
    }

    /// True while `key` is in the directory the store opened (or, without a handle, at its
    /// path).
    ///
    /// # Errors
    ///
    /// The I/O error of looking, other than the key's absence.
    pub fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.open_key(key)?.is_some())
    }

    /// The durability the store's writes follow.
    pub fn durability(&self) -> Durability {
        self.options.durability
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The open file of `key`, its path and its length, `None` when there is no such key;
    /// a file longer than `limit` is refused before anything is read.
    fn open_within(&self, key: &str, limit: usize) -> Result<Option<(File, PathBuf, usize)>> {
        let path = self.path_of(key);
        let Some(file) = self.open_key(key)? else {
            return Ok(None);
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect the chunk", e).with_path(&path))?
            .len();
        match usize::try_from(len) {
            Ok(l) if l <= limit => Ok(Some((file, path, l))),
            _ => Err(too_long(len, limit).with_path(&path)),
        }
    }

    /// The bytes stored under `key`, `None` when there is no such key, refusing a file longer
    /// than `limit` before reading it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for a file over `limit`, naming it; the I/O errors of reading it;
    /// [`ErrorKind::OutOfMemory`] when its bytes cannot be allocated.
    pub fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let Some((mut file, path, len)) = self.open_within(key, limit)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| {
            Error::new(
                ErrorKind::OutOfMemory,
                format!("cannot allocate {len} bytes for a chunk"),
            )
            .with_path(&path)
        })?;
        // One byte past the length notices a file that grew since it was measured.
        (&mut file)
            .take(len as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read the chunk", e).with_path(&path))?;
        if bytes.len() > len {
            return Err(
                Error::new(ErrorKind::Format, "the chunk grew while it was read").with_path(&path),
            );
        }
        Ok(Some(bytes))
    }

    /// Reads the file of `key` straight into `out` when it holds exactly `out.len()` bytes,
    /// returning its length (`None` when there is no such key); a file of another length is
    /// measured, not read, and `out` left as it was.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for a file over `limit` or one that grew while it was read,
    /// [`ErrorKind::Truncated`] for one that shrank; the I/O errors of reading it.
    pub fn get_into(&self, key: &str, limit: usize, out: &mut [u8]) -> Result<Option<usize>> {
        let Some((mut file, path, len)) = self.open_within(key, limit)? else {
            return Ok(None);
        };
        if len != out.len() {
            return Ok(Some(len));
        }
        file.read_exact(out).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::new(
                    ErrorKind::Truncated,
                    "the chunk file shrank while it was read",
                )
            } else {
                Error::io("cannot read the chunk", e)
            }
            .with_path(&path)
        })?;
        // One byte past the length notices a file that grew since it was measured.
        let mut past = [0u8; 1];
        let more = file
            .read(&mut past)
            .map_err(|e| Error::io("cannot read the chunk", e).with_path(&path))?;
        if more > 0 {
            return Err(
                Error::new(ErrorKind::Format, "the chunk grew while it was read").with_path(&path),
            );
        }
        Ok(Some(len))
    }

    /// The bytes of `span` of `key` (fewer when the file is shorter) and a reader of more of
    /// its ranges, through the same open file; `None` when there is no such key.
    ///
    /// # Errors
    ///
    /// As [`LocalStore::get`].
    pub(crate) fn get_span(
        &self,
        key: &str,
        span: Span,
        limit: usize,
    ) -> Result<Option<Spanned<'_>>> {
        let Some((file, path, len)) = self.open_within(key, limit)? else {
            return Ok(None);
        };
        let len = len as u64;
        let reader = LocalRanges { file, len, path };
        let first = span.within(len);
        let Some(mut bytes) = reader.read(&[first])? else {
            return Ok(None);
        };
        Ok(Some((bytes.pop().unwrap_or_default(), Box::new(reader))))
    }

    /// Stores `bytes` under `key` atomically: a reader sees the old bytes or the new ones.
    /// With [`Durability::Synced`] the file is fsynced before the rename; the directory entry
    /// is made durable by the next [`LocalStore::sync`].
    ///
    /// # Errors
    ///
    /// The errors of creating the key's directories and of `OutputFile` (create, write, sync,
    /// rename).
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put_parts(key, &[bytes])
    }

    /// As [`LocalStore::put`], the file's bytes given as `parts` written one after another
    /// (one `write` each, no buffer joining them).
    ///
    /// # Errors
    ///
    /// As [`LocalStore::put`].
    pub fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        let path = self.path_of(key);
        self.create_parents(&path)?;
        // The file is synced here; the directory fsync is batched into `sync`. A chunk is
        // replaced atomically even for an in-place array: a write that fails half-way must
        // leave the chunk the last flush wrote, not a cut one.
        let mut out = OutputFile::create(
            &path,
            &self
                .options
                .durability(Durability::Flushed)
                .replace(ndstore_core::Replace::Atomic),
        )?;
        let file = out.file()?;
        for part in parts {
            file.write_all(part)
                .map_err(|e| Error::io("cannot write the chunk", e).with_path(&path))?;
        }
        let synced = self.options.durability == Durability::Synced;
        if synced && let Err(e) = out.sync() {
            self.poison();
            return Err(e);
        }
        out.finish()?;
        if !synced && let Ok(mut unsynced) = self.unsynced.lock() {
            unsynced.push(path.clone());
        }
        self.mark_dirty(parent(&path));
        Ok(())
    }

    /// Removes `key` (an all-fill chunk); a missing key is no error.
    ///
    /// # Errors
    ///
    /// The I/O error of removing the file.
    pub fn erase(&self, key: &str) -> Result<()> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.mark_dirty(parent(&path));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove an all-fill chunk", e).with_path(&path)),
        }
    }

    /// Makes every key put so far durable, whatever the store's durability: fsyncs the files
    /// a flushed store renamed into place without one (reopened; an error the kernel reported
    /// before the reopen may go unseen, so a flushed store's sync is weaker than a synced
    /// store's fsync-before-rename), then every directory whose entries changed.
    ///
    /// # Errors
    ///
    /// The I/O error of an fsync, which poisons the store; [`ErrorKind::Poisoned`] after one.
    pub fn sync(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(ndstore_core::__private::atomic::poisoned_error(&self.root));
        }
        let files = std::mem::take(&mut *self.unsynced.lock().map_err(|_| lock_error(&self.root))?);
        for file in &files {
            let result = File::open(file)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("fsync of a chunk failed", e).with_path(file));
            if let Err(e) = result {
                self.poison();
                return Err(e);
            }
        }
        let dirs = std::mem::take(&mut *self.dirty.lock().map_err(|_| lock_error(&self.root))?);
        for dir in dirs.iter().rev() {
            if let Err(e) = ndstore_core::__private::atomic::sync_dir(dir) {
                self.poison();
                return Err(e.with_path(dir));
            }
        }
        Ok(())
    }

    /// True after a failed fsync.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.lock().map_or(true, |p| *p)
    }

    fn poison(&self) {
        if let Ok(mut p) = self.poisoned.lock() {
            *p = true;
        }
    }

    /// Creates the directories above `path` under the root, remembering each new one and its
    /// parent for the next sync.
    fn create_parents(&self, path: &Path) -> Result<()> {
        let dir = parent(path);
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut at = dir;
        while at != self.root && !at.is_dir() {
            missing.push(at.to_path_buf());
            at = parent(at);
        }
        for dir in missing.iter().rev() {
            match fs::create_dir(dir) {
                Ok(()) => {
                    self.mark_dirty(parent(dir));
                    self.mark_dirty(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(Error::io("cannot create a chunk directory", e).with_path(dir));
                }
            }
        }
        Ok(())
    }

    fn mark_dirty(&self, dir: &Path) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.insert(dir.to_path_buf());
        }
    }
}

fn file_is_regular(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.is_file())
}

fn parent(path: &Path) -> &Path {
    ndstore_core::__private::atomic::parent_dir(path)
}

fn lock_error(root: &Path) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        "a thread panicked while it held the store",
    )
    .with_path(root)
}

/// An array's keys, wherever they are stored: the operations region I/O and the commit of
/// `zarr.json` need, with each store's own durability behind them.
pub(crate) trait KeyStore: std::fmt::Debug + Send + Sync {
    /// The bytes stored under `key`, `None` when there is no such key, refusing more than
    /// `limit` bytes before reading them.
    fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>>;

    /// The bytes of `span` of `key` (fewer when the object is shorter), and a reader of more
    /// of its ranges that reads the same version; `None` when there is no such key. An
    /// object longer than `limit` is refused before anything is read.
    fn get_span(&self, key: &str, span: Span, limit: usize) -> Result<Option<Spanned<'_>>>;

    /// Reads `key` straight into `out` when it holds exactly `out.len()` bytes, returning its
    /// length (`None` when there is no such key); one of another length leaves `out` as it
    /// was. The default reads it with [`KeyStore::get`] and copies.
    fn get_into(&self, key: &str, limit: usize, out: &mut [u8]) -> Result<Option<usize>> {
        Ok(self.get(key, limit)?.map(|bytes| {
            if bytes.len() == out.len() {
                out.copy_from_slice(&bytes);
            }
            bytes.len()
        }))
    }

    /// True when reading a few byte ranges of a key costs no more than reading it whole (a
    /// local file: one `pread` each), so a shard read whole is better read by its inner
    /// chunks' ranges, each straight into its place; false where each range is a request.
    fn ranges_are_cheap(&self) -> bool {
        false
    }

    /// True when each [`KeyStore::put`] waits for the disk (an fsync) before it returns, so
    /// more puts in flight than cores keep the disk busier.
    fn waits_on_each_put(&self) -> bool {
        false
    }

    /// Refuses, before any request, every write to a store opened for reading only.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for such a store.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    /// Stores `bytes` under `key` atomically: a reader sees the old bytes or the new ones.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// As [`KeyStore::put`], the bytes given as `parts` in order. The default joins them.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        match parts {
            [bytes] => self.put(key, bytes),
            _ => self.put(key, &parts.concat()),
        }
    }

    /// Removes `key` (an all-fill chunk); a missing key is no error.
    fn erase(&self, key: &str) -> Result<()>;

    /// True while `key` is stored.
    fn contains(&self, key: &str) -> Result<bool>;

    /// Makes every key put so far durable.
    fn sync(&self) -> Result<()>;

    /// The durability the store's writes follow.
    fn durability(&self) -> Durability;

    /// The array's location, as errors name it.
    fn root(&self) -> &Path;

    /// The location of `key`, as errors name it.
    fn path_of(&self, key: &str) -> PathBuf;

    /// Publishes the array's `zarr.json`, `bytes`.
    fn commit_metadata(&self, bytes: &[u8]) -> Result<()> {
        self.put(crate::meta::METADATA_FILE, bytes)
    }

    /// True while the array read is the one the store opened: its `zarr.json` is still there
    /// (a replaced local tree loses it before its chunks).
    fn still_current(&self) -> Result<bool> {
        self.contains(crate::meta::METADATA_FILE)
    }

    /// Forgets an array that will not be committed (see `ZarrArray::abandon`).
    #[cfg(feature = "s3")]
    fn abandon(&self) {}
}

impl KeyStore for LocalStore {
    fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        LocalStore::get(self, key, limit)
    }

    fn get_into(&self, key: &str, limit: usize, out: &mut [u8]) -> Result<Option<usize>> {
        LocalStore::get_into(self, key, limit, out)
    }

    fn get_span(&self, key: &str, span: Span, limit: usize) -> Result<Option<Spanned<'_>>> {
        LocalStore::get_span(self, key, span, limit)
    }

    fn ranges_are_cheap(&self) -> bool {
        true
    }

    fn waits_on_each_put(&self) -> bool {
        self.options.durability == Durability::Synced
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        LocalStore::put(self, key, bytes)
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        LocalStore::put_parts(self, key, parts)
    }

    fn erase(&self, key: &str) -> Result<()> {
        LocalStore::erase(self, key)
    }

    fn contains(&self, key: &str) -> Result<bool> {
        LocalStore::contains(self, key)
    }

    fn sync(&self) -> Result<()> {
        LocalStore::sync(self)
    }

    fn durability(&self) -> Durability {
        LocalStore::durability(self)
    }

    fn root(&self) -> &Path {
        LocalStore::root(self)
    }

    fn path_of(&self, key: &str) -> PathBuf {
        LocalStore::path_of(self, key)
    }
}

/// The bytes of a span of an object, and a reader of more of its ranges.
pub(crate) type Spanned<'a> = (Vec<u8>, Box<dyn RangeReader + 'a>);

/// The first or the last bytes of a stored object (a shard's index).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Span {
    /// The first this many bytes.
    Head(u64),
    /// The last this many bytes.
    Tail(u64),
}

impl Span {
    /// The span's range in an object of `len` bytes (all of it when the object is shorter).
    pub(crate) fn within(self, len: u64) -> Range<u64> {
        match self {
            Span::Head(n) => 0..n.min(len),
            Span::Tail(n) => len.saturating_sub(n)..len,
        }
    }
}

/// Reads of byte ranges of one stored object, every read of the version the first bytes came
/// from (a shard read by ranges must not mix two versions of it).
pub(crate) trait RangeReader {
    /// The object's length in bytes.
    fn len(&self) -> u64;

    /// The bytes of each of `ranges` (each inside the object), or `None` when the object was
    /// replaced or removed since it was first read.
    ///
    /// # Errors
    ///
    /// The store's errors of reading.
    fn read(&self, ranges: &[Range<u64>]) -> Result<Option<Vec<Vec<u8>>>>;

    /// Reads each range straight into its buffer (of the range's length), or returns `None`
    /// when the object was replaced or removed since it was first read. The default reads the
    /// ranges with [`RangeReader::read`] (coalesced as the store does) and copies.
    ///
    /// # Errors
    ///
    /// The store's errors of reading.
    fn read_into(&self, parts: &mut [(Range<u64>, &mut [u8])]) -> Result<Option<()>> {
        let ranges: Vec<Range<u64>> = parts.iter().map(|(r, _)| r.clone()).collect();
        let Some(bytes) = self.read(&ranges)? else {
            return Ok(None);
        };
        for ((range, out), bytes) in parts.iter_mut().zip(bytes) {
            if bytes.len() != out.len() {
                return Err(Error::new(
                    ErrorKind::Format,
                    format!(
                        "bytes {}..{} read as {} bytes, not {}",
                        range.start,
                        range.end,
                        bytes.len(),
                        out.len()
                    ),
                ));
            }
            out.copy_from_slice(&bytes);
        }
        Ok(Some(()))
    }
}

/// A local chunk file's ranges, read with `pread` from one descriptor: a chunk is replaced by
/// renaming a new file over it, so an open file is one version for as long as it is open.
struct LocalRanges {
    file: File,
    len: u64,
    path: PathBuf,
}

impl RangeReader for LocalRanges {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, ranges: &[Range<u64>]) -> Result<Option<Vec<Vec<u8>>>> {
        ranges
            .iter()
            .map(|range| {
                let len = usize::try_from(range.end - range.start).map_err(|_| {
                    Error::new(ErrorKind::TooLarge, "a byte range does not fit in memory")
                        .with_path(&self.path)
                })?;
                let mut bytes = Vec::new();
                bytes.try_reserve_exact(len).map_err(|_| {
                    Error::new(
                        ErrorKind::OutOfMemory,
                        format!("cannot allocate {len} bytes for part of a chunk"),
                    )
                    .with_path(&self.path)
                })?;
                bytes.resize(len, 0);
                self.pread(range, &mut bytes)?;
                Ok(bytes)
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Each range with one `pread` straight into its buffer: no buffer of its own, no copy.
    fn read_into(&self, parts: &mut [(Range<u64>, &mut [u8])]) -> Result<Option<()>> {
        for (range, out) in parts.iter_mut() {
            if range.end - range.start != out.len() as u64 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "bytes {}..{} do not fit a buffer of {}",
                        range.start,
                        range.end,
                        out.len()
                    ),
                )
                .with_path(&self.path));
            }
            self.pread(range, out)?;
        }
        Ok(Some(()))
    }
}

impl LocalRanges {
    /// Fills `out` with the bytes of the file at `range` (as long as `out`).
    fn pread(&self, range: &Range<u64>, out: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(out, range.start).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::new(
                    ErrorKind::Truncated,
                    format!(
                        "the chunk file ends before byte {} (it shrank while it was read)",
                        range.end
                    ),
                )
            } else {
                Error::io("cannot read the chunk", e)
            }
            .with_path(&self.path)
        })
    }
}

/// The ranges of an object read whole.
pub(crate) struct MemoryRanges(pub(crate) Vec<u8>);

impl RangeReader for MemoryRanges {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, ranges: &[Range<u64>]) -> Result<Option<Vec<Vec<u8>>>> {
        ranges
            .iter()
            .map(|r| {
                usize::try_from(r.start)
                    .ok()
                    .zip(usize::try_from(r.end).ok())
                    .and_then(|(start, end)| self.0.get(start..end))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Format,
                            format!(
                                "bytes {}..{} lie outside the object's {}",
                                r.start,
                                r.end,
                                self.0.len()
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// The error of a stored chunk longer than any its chunk can need.
fn too_long(len: u64, limit: usize) -> Error {
    Error::new(
        ErrorKind::Format,
        format!("the chunk file holds {len} bytes, more than the {limit} its chunk can need"),
    )
}

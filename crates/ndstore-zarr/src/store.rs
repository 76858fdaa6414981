//! The local store: keys are files under an array's directory, each written through core's
//! `OutputFile` (a temporary beside it, fsynced when the durability says so, renamed), with
//! the directories whose entries changed remembered and fsynced together at `sync`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
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

    /// The bytes stored under `key`, `None` when there is no such key, refusing a file longer
    /// than `limit` before reading it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for a file over `limit`, naming it; the I/O errors of reading it;
    /// [`ErrorKind::OutOfMemory`] when its bytes cannot be allocated.
    pub fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(key);
        let Some(mut file) = self.open_key(key)? else {
            return Ok(None);
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect the chunk", e).with_path(&path))?
            .len();
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= limit)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Format,
                    format!(
                        "the chunk file holds {len} bytes, more than the {limit} its chunk can need"
                    ),
                )
                .with_path(&path)
            })?;
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

    /// Stores `bytes` under `key` atomically: a reader sees the old bytes or the new ones.
    /// With [`Durability::Synced`] the file is fsynced before the rename; the directory entry
    /// is made durable by the next [`LocalStore::sync`].
    ///
    /// # Errors
    ///
    /// The errors of creating the key's directories and of `OutputFile` (create, write, sync,
    /// rename).
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
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
        out.file()?
            .write_all(bytes)
            .map_err(|e| Error::io("cannot write the chunk", e).with_path(&path))?;
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

    /// Stores `bytes` under `key` atomically: a reader sees the old bytes or the new ones.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

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

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        LocalStore::put(self, key, bytes)
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

//! Reading strace's record of a process into the file-system operations it performed below one
//! directory (the root), which may be a tree: creates, directories made, writes (with their
//! bytes and offsets), truncations, renames and exchanges, unlinks and directory removals,
//! fsyncs and msyncs, in order. The power-loss model ([`crate::powerloss`]) replays them.
//!
//! Every file and directory below the root is an inode of the model, and every entry a name in
//! its parent directory's inode, so paths are resolved the way the kernel resolves them: a call
//! relative to a directory descriptor (`openat`, `mkdirat`, `unlinkat`, `renameat2`) names the
//! directory by the path strace's `-y` gives its descriptor, which is the directory's path at
//! the time of the call, and the model's names follow every rename and exchange. An fsync of a
//! directory's descriptor makes that directory's entries durable, an fsync of a file its data.
//!
//! The trace must come from `strace -f -y -xx -s STRING_LIMIT` with the calls of [`TRACED`]:
//! `-y` names each descriptor's file, `-xx` escapes every string as hex, so a line parses
//! without guessing at quoting.
//!
//! Writes up to [`STRING_LIMIT`] bytes are recorded with their bytes. A longer write (a 64 MiB
//! save writes 8 MiB at a time) is recorded with only its first [`STRING_LIMIT`] bytes; the
//! rest is taken from the file's final content, which is exact only when nothing later in the
//! recording writes that range again or cuts the file below it. The parser checks both, and
//! that the recorded first bytes match the final file where they were not overwritten, and
//! refuses a recording it cannot rebuild (a large range written twice) instead of guessing. A
//! long write into a file that is gone at the end (an earlier version of a chunk, replaced by a
//! rename) has no final content to complete it: it is marked incomplete, and only a crash state
//! whose target would hold it is refused.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// The system calls a recording traces.
pub const TRACED: &str = "trace=openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,\
fsync,fdatasync,sync_file_range,close,rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,\
mkdirat,ftruncate,fallocate,fcntl,dup,dup2,dup3,lseek,mmap,msync,copy_file_range,sendfile";

/// The inode number of the root directory of a recording (the other inodes count from 0).
pub const ROOT: usize = usize::MAX;

/// strace's `-s`: how many bytes of each written buffer a recording holds. Header rewrites
/// (the first bytes of a file) stay within it, so they never conflict with a large write's
/// bytes taken from the final file.
pub const STRING_LIMIT: usize = 65536;

/// The file whose failed open marks, in a trace, the moment an operation returned Ok.
pub const MARK_COMMITTED: &str = ".ndstore-mark-committed";
/// The file whose failed open marks the start of the operation under test.
pub const MARK_START: &str = ".ndstore-mark-start";

/// One operation below the root, in the order the process performed it. Directories are
/// named by their inode ([`ROOT`] for the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new, empty file appeared under `name` in directory `dir`.
    Create {
        /// The directory holding the entry.
        dir: usize,
        /// Its name in the directory.
        name: OsString,
        /// The file.
        inode: usize,
    },
    /// A new, empty directory appeared under `name` in directory `dir`.
    Mkdir {
        /// The directory holding the entry.
        dir: usize,
        /// Its name in the directory.
        name: OsString,
        /// The new directory.
        inode: usize,
    },
    /// `len` bytes... written at `offset` of a file.
    Write {
        /// The file.
        inode: usize,
        /// Where.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The file's length set to `len`.
    Truncate {
        /// The file.
        inode: usize,
        /// The new length.
        len: u64,
    },
    /// fsync, fdatasync or msync(MS_SYNC): the file's data is on the medium.
    Sync {
        /// The file.
        inode: usize,
    },
    /// An entry renamed (replacing `to`), within one directory or from one to another.
    Rename {
        /// The directory the entry leaves.
        from_dir: usize,
        /// The old name.
        from: OsString,
        /// The directory the entry enters.
        to_dir: usize,
        /// The new name.
        to: OsString,
    },
    /// Two entries exchanged (`renameat2` with `RENAME_EXCHANGE`).
    Exchange {
        /// The first entry's directory.
        a_dir: usize,
        /// The first entry's name.
        a: OsString,
        /// The second entry's directory.
        b_dir: usize,
        /// The second entry's name.
        b: OsString,
    },
    /// An entry removed: a file unlinked or an (empty) directory removed.
    Unlink {
        /// The directory holding the entry.
        dir: usize,
        /// The name.
        name: OsString,
    },
    /// fsync of a directory: its entries are on the medium.
    SyncDir {
        /// The directory.
        dir: usize,
    },
    /// The operation under test returned Ok here.
    Committed,
    /// The operation under test started here.
    Started,
}

/// What a recording found: the operations, and the calls of each name after the start mark
/// (for choosing which call to fail in the fault-injection check).
#[derive(Debug, Default)]
pub struct Recording {
    /// The operations below the root.
    pub ops: Vec<Op>,
    /// The files that existed before the recording, by path relative to the root, with their
    /// inode numbers.
    pub initial: Vec<(PathBuf, usize)>,
    /// The directories that existed below the root before the recording, by relative path
    /// (parents before their entries), with their inode numbers.
    pub initial_dirs: Vec<(PathBuf, usize)>,
    /// Every call of the traced names after the start mark, in order: (name, path it acted on,
    /// whether that path is below the root and the call changes data).
    pub calls: Vec<Call>,
    /// Each file's final path relative to the root, if it has one.
    pub final_names: HashMap<usize, PathBuf>,
    /// The writes strace cut short into a file gone at the end (replaced or removed), whose
    /// missing bytes no final content holds: they are recorded as zeros, and a crash state in
    /// which the target holds one of them cannot be judged.
    pub incomplete: HashSet<usize>,
}

/// What was below the root before a recording: files and directories, by path relative to it.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The files.
    pub files: Vec<PathBuf>,
    /// The directories, each after its parent.
    pub dirs: Vec<PathBuf>,
}

/// A traced call after the start mark.
#[derive(Clone, Debug)]
pub struct Call {
    /// The system call.
    pub name: String,
    /// The file it acted on, when it named one.
    pub path: Option<PathBuf>,
    /// True when a failure of this call must fail the operation: it writes, syncs, creates or
    /// renames something below the root, or closes a file written there.
    pub matters: bool,
    /// The thread that made it (strace's process id column): strace counts the occurrences an
    /// injection fails per thread.
    pub thread: String,
}

#[derive(Clone, Debug)]
struct OpenFile {
    /// Which open made it (numbered in the order the opens returned), so that a close that
    /// started before another thread reused its number frees only its own.
    opened: u64,
    inode: Option<usize>,
    pos: std::rc::Rc<std::cell::Cell<u64>>,
    append: bool,
    written: std::rc::Rc<std::cell::Cell<bool>>,
}

/// A write whose buffer strace recorded only in part.
struct CutWrite {
    /// Its index in the operations.
    at: usize,
    /// Its length.
    len: u64,
}

struct Mapping {
    addr: u64,
    len: u64,
    inode: usize,
    offset: u64,
}

struct Replay<'a> {
    root: &'a Path,
    /// Each directory's entries: name to inode.
    dirs: HashMap<usize, HashMap<OsString, usize>>,
    sizes: HashMap<usize, u64>,
    fds: HashMap<i64, OpenFile>,
    maps: Vec<Mapping>,
    next_inode: usize,
    rec: Recording,
    started: bool,
    /// The thread of the call being replayed.
    thread: String,
    /// msync writes whose bytes are read at the end: (operation index, length).
    msyncs: Vec<(usize, u64)>,
    /// Writes strace cut short, completed from the final file at the end.
    cut: Vec<CutWrite>,
    /// For msync: the bytes each file holds at the end (read by the caller).
    final_bytes: &'a dyn Fn(&Path) -> Option<Vec<u8>>,
    /// The opens made so far.
    opens: u64,
    /// Per thread, a close that strace logged as `<unfinished ...>`: what its descriptor
    /// number named when it started (the open that made it, or none). The kernel frees the
    /// number as the close starts, so another thread's open may return it before this close's
    /// `<... resumed>` line, where the close is replayed.
    closing: HashMap<String, Option<u64>>,
}

/// Splits `a, b, c` at the top-level commas.
fn split_args(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            b'<' | b'{' | b'[' | b'(' if !quoted => depth += 1,
            b'>' | b'}' | b']' | b')' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        out.push(text[start..].trim());
    }
    out
}

/// Decodes strace's `\xNN` escapes.
fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4);
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("{hex}: {e}"))?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A quoted string argument's bytes; a string strace cut short is an error.
fn string_arg(arg: &str) -> Result<Vec<u8>, String> {
    match buffer_arg(arg)? {
        (bytes, false) => Ok(bytes),
        (_, true) => Err("strace cut a string short: raise -s".to_owned()),
    }
}

/// A written buffer's recorded bytes, and whether strace cut it short.
fn buffer_arg(arg: &str) -> Result<(Vec<u8>, bool), String> {
    let inner = arg
        .strip_prefix('"')
        .ok_or_else(|| format!("not a string: {arg}"))?;
    if let Some(head) = inner.strip_suffix("\"...") {
        return Ok((unhex(head)?, true));
    }
    Ok((unhex(inner.strip_suffix('"').unwrap_or(inner))?, false))
}

/// A descriptor argument decorated by -y: its number and path.
fn fd_arg(arg: &str) -> Option<(i64, PathBuf)> {
    let (num, rest) = arg.split_once('<')?;
    let fd = if num == "AT_FDCWD" {
        -100
    } else {
        num.parse().ok()?
    };
    // A file removed since it was opened is decorated `<path>(deleted)`.
    let rest = rest.strip_suffix("(deleted)").unwrap_or(rest);
    let path = unhex(rest.strip_suffix('>')?).ok()?;
    Some((fd, PathBuf::from(OsString::from_vec(path))))
}

fn number(arg: &str) -> Option<u64> {
    let arg = arg.trim();
    if let Some(hex) = arg.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else {
        arg.parse().ok()
    }
}

/// The path a (dirfd, path) pair names.
fn resolve(dirfd: Option<&str>, path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(OsString::from_vec(string_arg(path)?));
    if path.is_absolute() {
        return Ok(path);
    }
    let base = dirfd
        .and_then(fd_arg)
        .map(|(_, p)| p)
        .or_else(|| std::env::current_dir().ok())
        .ok_or("cannot resolve a relative path")?;
    Ok(base.join(path))
}

impl Replay<'_> {
    /// The directory at `path`, when it is the root or a directory below it.
    fn dir_inode(&self, path: &Path) -> Option<usize> {
        let mut at = ROOT;
        for part in path.strip_prefix(self.root).ok()?.components() {
            let Component::Normal(name) = part else {
                return None;
            };
            at = self.dirs.get(&at)?.get(name).copied()?;
            self.dirs.get(&at)?;
        }
        Some(at)
    }

    /// The entry `path` names below the root: its directory's inode and its name.
    fn entry_of(&self, path: &Path) -> Option<(usize, OsString)> {
        let dir = self.dir_inode(path.parent()?)?;
        Some((dir, path.file_name()?.to_owned()))
    }

    /// The entries of directory `dir`.
    fn entries(&mut self, dir: usize) -> &mut HashMap<OsString, usize> {
        self.dirs.entry(dir).or_default()
    }

    fn new_inode(&mut self) -> usize {
        let id = self.next_inode;
        self.next_inode += 1;
        id
    }

    /// Every file below the root with its path relative to the root.
    fn files(&self) -> Vec<(PathBuf, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::new(), ROOT)];
        while let Some((at, dir)) = stack.pop() {
            for (name, &id) in self.dirs.get(&dir).into_iter().flatten() {
                if self.dirs.contains_key(&id) {
                    stack.push((at.join(name), id));
                } else {
                    out.push((at.join(name), id));
                }
            }
        }
        out
    }

    fn push(&mut self, op: Op) {
        self.rec.ops.push(op);
    }

    fn file(&self, fd: i64) -> Option<&OpenFile> {
        self.fds.get(&fd)
    }

    fn call(&mut self, name: &str, path: Option<PathBuf>, matters: bool) {
        if self.started {
            self.rec.calls.push(Call {
                name: name.to_owned(),
                path,
                matters,
                thread: self.thread.clone(),
            });
        }
    }

    /// Records a write of `len` bytes, of which `data` holds the first (all, unless strace cut
    /// the buffer short).
    fn write(&mut self, inode: usize, offset: u64, data: Vec<u8>, len: u64) {
        let end = offset + len;
        let size = self.sizes.entry(inode).or_insert(0);
        *size = (*size).max(end);
        self.push(Op::Write {
            inode,
            offset,
            data,
        });
    }

    /// Replays one traced call: parsed into its family first, then handled by that family.
    fn line(&mut self, name: &str, args: &[&str], ret: &str) -> Result<(), String> {
        let call = Syscall {
            name,
            args,
            ret,
            ok: !ret.starts_with('-'),
        };
        match Family::of(name, args) {
            Family::Open { dirfd, path, flags } => self.open(&call, dirfd, path, flags),
            Family::Write { positional } => self.write_call(&call, positional),
            Family::Unmodelled { target } => self.unmodelled(&call, target),
            Family::Sync { range } => self.sync(&call, range),
            Family::Close => {
                self.close(&call);
                Ok(())
            }
            Family::Rename { from, to, flags } => self.rename(&call, from, to, flags),
            Family::Unlink { dirfd, path } => self.unlink(&call, dirfd, path),
            Family::Mkdir { dirfd, path } => self.mkdir(&call, dirfd, path),
            Family::Resize { allocate } => self.resize(&call, allocate),
            Family::Dup => self.dup(&call),
            Family::Seek => self.seek(&call),
            Family::Map => {
                self.map(&call);
                Ok(())
            }
            Family::Msync => {
                self.msync(&call);
                Ok(())
            }
            Family::Ignored => Ok(()),
        }
    }

    /// openat, open, creat: the marks, then a file below the root created, truncated or
    /// opened, or a directory opened.
    fn open(
        &mut self,
        call: &Syscall<'_>,
        dirfd: Option<&str>,
        path: Option<&str>,
        flags: &str,
    ) -> Result<(), String> {
        let path = resolve(dirfd, path.ok_or("open without a path")?)?;
        if path.file_name() == Some(std::ffi::OsStr::new(MARK_COMMITTED)) {
            self.push(Op::Committed);
            return Ok(());
        }
        if path.file_name() == Some(std::ffi::OsStr::new(MARK_START)) {
            self.started = true;
            self.push(Op::Started);
            return Ok(());
        }
        self.call(call.name, Some(path.clone()), false);
        if !call.ok {
            return Ok(());
        }
        let fd = call.returned_fd("open")?;
        let mut inode = None;
        if path == self.root {
            inode = Some(ROOT);
        } else if let Some((dir, entry)) = self.entry_of(&path) {
            let Some(id) = self.open_entry(dir, entry, flags) else {
                return Ok(());
            };
            inode = Some(id);
        }
        self.opens += 1;
        self.fds.insert(
            fd,
            OpenFile {
                opened: self.opens,
                inode,
                pos: Default::default(),
                append: flags.contains("O_APPEND"),
                written: Default::default(),
            },
        );
        Ok(())
    }

    /// The inode an open of `entry` of directory `dir` with `flags` reaches: the existing
    /// file or directory (a file cut to nothing by `O_TRUNC`) or a new file (`O_CREAT`); none
    /// when the entry does not exist.
    fn open_entry(&mut self, dir: usize, entry: OsString, flags: &str) -> Option<usize> {
        match self.entries(dir).get(&entry).copied() {
            Some(id) => {
                if flags.contains("O_TRUNC") {
                    self.sizes.insert(id, 0);
                    self.push(Op::Truncate { inode: id, len: 0 });
                }
                Some(id)
            }
            None if flags.contains("O_CREAT") => {
                let id = self.new_inode();
                self.entries(dir).insert(entry.clone(), id);
                self.sizes.insert(id, 0);
                self.push(Op::Create {
                    dir,
                    name: entry,
                    inode: id,
                });
                Some(id)
            }
            None => None,
        }
    }

    /// write, pwrite64: the bytes written to a file of the directory, at its position (or
    /// pwrite's offset).
    fn write_call(&mut self, call: &Syscall<'_>, positional: bool) -> Result<(), String> {
        let (fd, path) = call.fd(0).ok_or("write without a descriptor")?;
        let file = self.file(fd).cloned();
        let in_dir = file.as_ref().and_then(|f| f.inode).is_some();
        self.call(call.name, Some(path), in_dir);
        let (Some(file), true) = (file, call.ok) else {
            return Ok(());
        };
        let Some(inode) = file.inode else {
            return Ok(());
        };
        let n = number(call.ret).ok_or_else(|| format!("write returned {}", call.ret))? as usize;
        let (mut data, cut) = buffer_arg(call.args.get(1).ok_or("write without data")?)?;
        data.truncate(n);
        if cut && data.len() < n {
            self.cut.push(CutWrite {
                at: self.rec.ops.len(),
                len: n as u64,
            });
        }
        file.written.set(true);
        let offset = if positional {
            number(call.args.get(3).ok_or("pwrite without an offset")?)
                .ok_or("bad pwrite offset")?
        } else {
            let at = if file.append {
                self.sizes.get(&inode).copied().unwrap_or(0)
            } else {
                file.pos.get()
            };
            file.pos.set(at + n as u64);
            at
        };
        self.write(inode, offset, data, n as u64);
        Ok(())
    }

    /// writev, pwritev, pwritev2, copy_file_range, sendfile: refused when they write into the
    /// directory, which the model does not replay.
    fn unmodelled(&mut self, call: &Syscall<'_>, target: usize) -> Result<(), String> {
        if let Some((fd, _)) = call.fd(target)
            && self.file(fd).and_then(|f| f.inode).is_some()
        {
            return Err(format!(
                "{} into the directory: the model does not replay it",
                call.name
            ));
        }
        Ok(())
    }

    /// fsync, fdatasync, sync_file_range: a file's or a directory's sync (a ranged sync
    /// only counts as a call).
    fn sync(&mut self, call: &Syscall<'_>, range: bool) -> Result<(), String> {
        let (fd, path) = call.fd(0).ok_or("fsync without a descriptor")?;
        let inode = self
            .file(fd)
            .and_then(|f| f.inode)
            .or_else(|| self.dir_inode(&path));
        self.call(call.name, Some(path), inode.is_some());
        let (Some(inode), true, false) = (inode, call.ok, range) else {
            return Ok(());
        };
        if self.dirs.contains_key(&inode) {
            self.push(Op::SyncDir { dir: inode });
        } else {
            self.push(Op::Sync { inode });
        }
        Ok(())
    }

    /// close: the descriptor is freed, unless the failure was injected.
    fn close(&mut self, call: &Syscall<'_>) {
        let (fd, path) = call.fd(0).unwrap_or((-1, PathBuf::new()));
        let written = self
            .file(fd)
            .is_some_and(|f| f.inode.is_some() && f.written.get());
        self.call(call.name, Some(path), written);
        // An injected failure leaves the descriptor open; a real close frees it, unless the
        // number names another open now (made by another thread after this close started).
        let started_on = self.closing.remove(&self.thread);
        let own = match started_on {
            None => true,
            Some(opened) => self.fds.get(&fd).map(|f| f.opened) == opened,
        };
        if !call.ret.contains("INJECTED") && own {
            self.fds.remove(&fd);
        }
    }

    /// rename, renameat, renameat2: an entry renamed below the root, or two exchanged
    /// (`RENAME_EXCHANGE`).
    fn rename(
        &mut self,
        call: &Syscall<'_>,
        from: PathArg<'_>,
        to: PathArg<'_>,
        flags: &str,
    ) -> Result<(), String> {
        let from = resolve(from.0, from.1.ok_or("rename args")?)?;
        let to = resolve(to.0, to.1.ok_or("rename args")?)?;
        let from_entry = self.entry_of(&from);
        let to_entry = self.entry_of(&to);
        self.call(
            call.name,
            Some(to.clone()),
            from_entry.is_some() || to_entry.is_some(),
        );
        if !call.ok {
            return Ok(());
        }
        match (from_entry, to_entry) {
            (Some((a_dir, a)), Some((b_dir, b))) if flags.contains("RENAME_EXCHANGE") => {
                let first = self.entries(a_dir).get(&a).copied();
                let second = self.entries(b_dir).get(&b).copied();
                let (Some(first), Some(second)) = (first, second) else {
                    return Err("an exchange of an entry the model does not know".to_owned());
                };
                self.entries(a_dir).insert(a.clone(), second);
                self.entries(b_dir).insert(b.clone(), first);
                self.push(Op::Exchange { a_dir, a, b_dir, b });
                Ok(())
            }
            (Some((from_dir, from)), Some((to_dir, to))) => {
                if let Some(id) = self.entries(from_dir).remove(&from) {
                    self.entries(to_dir).insert(to.clone(), id);
                }
                self.push(Op::Rename {
                    from_dir,
                    from,
                    to_dir,
                    to,
                });
                Ok(())
            }
            (None, None) => Ok(()),
            _ => Err("a rename into or out of the recorded directory: not modelled".to_owned()),
        }
    }

    /// unlink, unlinkat (with `AT_REMOVEDIR` too), rmdir: an entry below the root removed.
    fn unlink(
        &mut self,
        call: &Syscall<'_>,
        dirfd: Option<&str>,
        path: Option<&str>,
    ) -> Result<(), String> {
        let path = resolve(dirfd, path.ok_or("unlink args")?)?;
        if let Some((dir, name)) = self.entry_of(&path) {
            self.call(call.name, Some(path), true);
            if call.ok {
                self.entries(dir).remove(&name);
                self.push(Op::Unlink { dir, name });
            }
        }
        Ok(())
    }

    /// mkdir, mkdirat: a directory made below the root.
    fn mkdir(
        &mut self,
        call: &Syscall<'_>,
        dirfd: Option<&str>,
        path: Option<&str>,
    ) -> Result<(), String> {
        let path = resolve(dirfd, path.ok_or("mkdir args")?)?;
        let Some((dir, name)) = self.entry_of(&path) else {
            return Ok(());
        };
        self.call(call.name, Some(path), true);
        if call.ok {
            let id = self.new_inode();
            self.dirs.insert(id, HashMap::new());
            self.entries(dir).insert(name.clone(), id);
            self.push(Op::Mkdir {
                dir,
                name,
                inode: id,
            });
        }
        Ok(())
    }

    /// ftruncate, fallocate: a file's length set (fallocate only in mode 0, which may extend
    /// it).
    fn resize(&mut self, call: &Syscall<'_>, allocate: bool) -> Result<(), String> {
        let (fd, path) = call.fd(0).ok_or("ftruncate without a descriptor")?;
        let inode = self.file(fd).and_then(|f| f.inode);
        self.call(call.name, Some(path), inode.is_some());
        let (Some(inode), true) = (inode, call.ok) else {
            return Ok(());
        };
        let len = if allocate {
            // fallocate(fd, mode, offset, len): mode 0 may extend the file.
            let mode = call.args.get(1).copied().unwrap_or("0");
            if mode != "0" {
                return Ok(());
            }
            let end = number(call.args.get(2).ok_or("fallocate offset")?).unwrap_or(0)
                + number(call.args.get(3).ok_or("fallocate length")?).unwrap_or(0);
            end.max(self.sizes.get(&inode).copied().unwrap_or(0))
        } else {
            number(call.args.get(1).ok_or("ftruncate length")?).ok_or("bad length")?
        };
        self.sizes.insert(inode, len);
        self.push(Op::Truncate { inode, len });
        Ok(())
    }

    /// dup, dup2, dup3, fcntl(F_DUPFD...): the new descriptor shares the old one's file and
    /// position.
    fn dup(&mut self, call: &Syscall<'_>) -> Result<(), String> {
        if !call.ok {
            return Ok(());
        }
        let (fd, _) = call.fd(0).ok_or("dup without a descriptor")?;
        let new = call.returned_fd("dup")?;
        if let Some(mut file) = self.file(fd).cloned() {
            // The same open file under a number of its own: a close of the old number that
            // started earlier must not free this one.
            self.opens += 1;
            file.opened = self.opens;
            self.fds.insert(new, file);
        }
        Ok(())
    }

    /// lseek: the descriptor's new position.
    fn seek(&mut self, call: &Syscall<'_>) -> Result<(), String> {
        let (fd, _) = call.fd(0).ok_or("lseek without a descriptor")?;
        if let (Some(file), Some(at)) = (self.file(fd), number(call.ret)) {
            file.pos.set(at);
        }
        Ok(())
    }

    /// mmap of a file of the directory: remembered, so a later msync can be placed.
    fn map(&mut self, call: &Syscall<'_>) {
        if !call.ok {
            return;
        }
        let Some((fd, _)) = call.fd(4) else {
            return;
        };
        if let (Some(inode), Some(addr), Some(len), Some(offset)) = (
            self.file(fd).and_then(|f| f.inode),
            number(call.ret),
            call.args.get(1).and_then(|a| number(a)),
            call.args.get(5).and_then(|a| number(a)),
        ) {
            self.maps.push(Mapping {
                addr,
                len,
                inode,
                offset,
            });
        }
    }

    /// msync of a mapped file of the directory: a write of the range (its bytes taken from
    /// the final file at the end), and a sync with `MS_SYNC`.
    fn msync(&mut self, call: &Syscall<'_>) {
        let addr = call.args.first().and_then(|a| number(a)).unwrap_or(0);
        let len = call.args.get(1).and_then(|a| number(a)).unwrap_or(0);
        let map = self
            .maps
            .iter()
            .rev()
            .find(|m| addr >= m.addr && addr < m.addr + m.len.max(1))
            .map(|m| (m.inode, m.offset + (addr - m.addr)));
        self.call(call.name, None, map.is_some());
        let (Some((inode, offset)), true) = (map, call.ok) else {
            return;
        };
        // Stores through a map are invisible to strace: the pages msync writes back are taken
        // as the file's final bytes in that range, filled in at the end, when the file's final
        // name is known.
        self.msyncs.push((self.rec.ops.len(), len));
        self.write(inode, offset, Vec::new(), 0);
        if call.args.get(2).is_some_and(|f| f.contains("MS_SYNC")) {
            self.push(Op::Sync { inode });
        }
    }
}

/// One line of the log split into its call's name, arguments and return value.
struct Syscall<'a> {
    name: &'a str,
    args: &'a [&'a str],
    ret: &'a str,
    /// The call succeeded (its return value is not negative).
    ok: bool,
}

impl Syscall<'_> {
    /// Argument `i` as a descriptor decorated by -y.
    fn fd(&self, i: usize) -> Option<(i64, PathBuf)> {
        self.args.get(i).and_then(|a| fd_arg(a))
    }

    /// The descriptor the call returned (`3</path>`).
    fn returned_fd(&self, what: &str) -> Result<i64, String> {
        number(self.ret.split('<').next().unwrap_or(""))
            .map(|fd| fd as i64)
            .ok_or_else(|| format!("{what} returned {}", self.ret))
    }
}

/// A (directory descriptor, path) pair of arguments, either possibly missing.
type PathArg<'a> = (Option<&'a str>, Option<&'a str>);

/// The families of traced calls the replay tells apart, with the arguments that tell the
/// members of a family apart.
enum Family<'a> {
    /// openat, open, creat.
    Open {
        dirfd: Option<&'a str>,
        path: Option<&'a str>,
        flags: &'a str,
    },
    /// write, or pwrite64 (`positional`).
    Write { positional: bool },
    /// Writes the model does not replay; `target` is the argument naming the written file.
    Unmodelled { target: usize },
    /// fsync, fdatasync, or sync_file_range (`range`).
    Sync { range: bool },
    /// close.
    Close,
    /// rename, renameat, renameat2 (with its flags).
    Rename {
        from: PathArg<'a>,
        to: PathArg<'a>,
        flags: &'a str,
    },
    /// unlink, unlinkat, rmdir.
    Unlink {
        dirfd: Option<&'a str>,
        path: Option<&'a str>,
    },
    /// mkdir, mkdirat.
    Mkdir {
        dirfd: Option<&'a str>,
        path: Option<&'a str>,
    },
    /// ftruncate, or fallocate (`allocate`).
    Resize { allocate: bool },
    /// dup, dup2, dup3, and fcntl duplicating a descriptor.
    Dup,
    /// lseek.
    Seek,
    /// mmap.
    Map,
    /// msync.
    Msync,
    /// Anything else (an fcntl that does not duplicate, say).
    Ignored,
}

impl<'a> Family<'a> {
    /// The family of call `name` with `args`.
    fn of(name: &str, args: &[&'a str]) -> Family<'a> {
        let arg = |i: usize| args.get(i).copied();
        match name {
            "openat" => Family::Open {
                dirfd: arg(0),
                path: arg(1),
                flags: arg(2).unwrap_or(""),
            },
            "creat" => Family::Open {
                dirfd: None,
                path: arg(0),
                flags: "O_CREAT|O_WRONLY|O_TRUNC",
            },
            "open" => Family::Open {
                dirfd: None,
                path: arg(0),
                flags: arg(1).unwrap_or(""),
            },
            "write" | "pwrite64" => Family::Write {
                positional: name == "pwrite64",
            },
            "writev" | "pwritev" | "pwritev2" | "sendfile" => Family::Unmodelled { target: 0 },
            "copy_file_range" => Family::Unmodelled { target: 2 },
            "fsync" | "fdatasync" | "sync_file_range" => Family::Sync {
                range: name == "sync_file_range",
            },
            "close" => Family::Close,
            "rename" => Family::Rename {
                from: (None, arg(0)),
                to: (None, arg(1)),
                flags: "",
            },
            "renameat" | "renameat2" => Family::Rename {
                from: (arg(0), arg(1)),
                to: (arg(2), arg(3)),
                flags: arg(4).unwrap_or(""),
            },
            "mkdir" => Family::Mkdir {
                dirfd: None,
                path: arg(0),
            },
            "mkdirat" => Family::Mkdir {
                dirfd: arg(0),
                path: arg(1),
            },
            "unlink" | "rmdir" => Family::Unlink {
                dirfd: None,
                path: arg(0),
            },
            "unlinkat" => Family::Unlink {
                dirfd: arg(0),
                path: arg(1),
            },
            "ftruncate" | "fallocate" => Family::Resize {
                allocate: name == "fallocate",
            },
            "dup" | "dup2" | "dup3" => Family::Dup,
            "fcntl" if arg(1).is_some_and(|a| a.contains("DUPFD")) => Family::Dup,
            "lseek" => Family::Seek,
            "mmap" => Family::Map,
            "msync" => Family::Msync,
            _ => Family::Ignored,
        }
    }
}

/// Parses strace's log of a process that worked below `root`. `initial` lists what was below
/// it before the process started; `final_bytes` gives a file's content at the end (by its final
/// path relative to the root), for modelling stores through memory maps and writes strace cut
/// short.
///
/// # Errors
///
/// What the model cannot replay, as text: a call it does not model writing below the root, a
/// rename across the root's boundary, a cut write it cannot rebuild.
pub fn parse(
    log: &str,
    root: &Path,
    initial: &Listing,
    final_bytes: &dyn Fn(&Path) -> Option<Vec<u8>>,
) -> Result<Recording, String> {
    let mut replay = Replay {
        root,
        dirs: HashMap::from([(ROOT, HashMap::new())]),
        sizes: HashMap::new(),
        fds: HashMap::new(),
        maps: Vec::new(),
        next_inode: 0,
        rec: Recording::default(),
        started: false,
        thread: String::new(),
        msyncs: Vec::new(),
        cut: Vec::new(),
        final_bytes,
        opens: 0,
        closing: HashMap::new(),
    };
    for path in &initial.dirs {
        let (dir, name) = replay
            .entry_of(&root.join(path))
            .ok_or_else(|| format!("{}: listed before its parent", path.display()))?;
        let id = replay.new_inode();
        replay.dirs.insert(id, HashMap::new());
        replay.entries(dir).insert(name, id);
        replay.rec.initial_dirs.push((path.clone(), id));
    }
    for path in &initial.files {
        let (dir, name) = replay
            .entry_of(&root.join(path))
            .ok_or_else(|| format!("{}: its directory is not listed", path.display()))?;
        let id = replay.new_inode();
        replay.entries(dir).insert(name, id);
        let size = std::fs::metadata(root.join(path)).map_or(0, |m| m.len());
        replay.sizes.insert(id, size);
        replay.rec.initial.push((path.clone(), id));
    }
    let mut pending: HashMap<String, String> = HashMap::new();
    for raw in log.lines() {
        if let Some((thread, fd)) = close_started(raw) {
            let opened = replay.fds.get(&fd).map(|f| f.opened);
            replay.closing.insert(thread, opened);
        }
        let Some((thread, line)) = whole_call(raw, &mut pending) else {
            continue;
        };
        replay.thread = thread;
        let Some((name, inner, ret)) = split_call(&line)? else {
            continue;
        };
        let args = split_args(inner);
        replay
            .line(name, &args, ret)
            .map_err(|e| format!("{e} (in: {})", truncate(&line)))?;
    }
    for (path, id) in replay.files() {
        replay.rec.final_names.insert(id, path);
    }
    let mut rec = replay.rec;
    complete_cut_writes(&mut rec, &replay.cut, &replay.msyncs, replay.final_bytes)?;
    fill_msync_writes(&mut rec, &replay.msyncs, replay.final_bytes)?;
    Ok(rec)
}

/// A write to a file below a directory, as [`writes_between_marks`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileWrite {
    /// The thread that made it (strace's process id column).
    pub thread: String,
    /// `write` or `pwrite64`.
    pub call: String,
    /// The file written, as `-y` names its descriptor.
    pub path: PathBuf,
    /// The bytes the call wrote (its return value).
    pub bytes: u64,
}

/// The `write` and `pwrite64` calls into files below `dir` that returned, made between the
/// start and commit marks of a log written with `strace -f -y -xx`, in the order they returned.
pub fn writes_between_marks(log: &str, dir: &Path) -> Vec<FileWrite> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut inside = false;
    let mut found = Vec::new();
    for raw in log.lines() {
        let Some((thread, line)) = whole_call(raw, &mut pending) else {
            continue;
        };
        // Under -xx the marks' names are hex like every string.
        let plain = unhex(&line).unwrap_or_default();
        let names = |mark: &str| plain.windows(mark.len()).any(|w| w == mark.as_bytes());
        if names(MARK_START) {
            inside = true;
            continue;
        }
        if names(MARK_COMMITTED) {
            inside = false;
            continue;
        }
        let Ok(Some((name, inner, ret))) = split_call(&line) else {
            continue;
        };
        if !inside || !matches!(name, "write" | "pwrite64") {
            continue;
        }
        let (Some((_, path)), Ok(bytes)) = (
            split_args(inner).first().and_then(|a| fd_arg(a)),
            ret.parse::<u64>(),
        ) else {
            continue;
        };
        if path.starts_with(dir) {
            found.push(FileWrite {
                thread,
                call: name.to_owned(),
                path,
                bytes,
            });
        }
    }
    found
}

/// The thread and descriptor of a `close` that strace logged as started but not finished
/// (`PID close(7</path> <unfinished ...>`).
fn close_started(raw: &str) -> Option<(String, i64)> {
    let (pid, rest) = raw.split_once(' ')?;
    let head = rest.trim_start().strip_suffix(" <unfinished ...>")?;
    let (fd, _) = fd_arg(head.strip_prefix("close(")?)?;
    Some((pid.to_owned(), fd))
}

/// A log line as one whole call, with the thread that made it: signal and exit lines are none,
/// an `<unfinished ...>` head waits in `pending` for its process's `<... resumed>` tail, which
/// completes it.
fn whole_call(raw: &str, pending: &mut HashMap<String, String>) -> Option<(String, String)> {
    let (pid, rest) = raw.split_once(' ').unwrap_or(("", raw));
    let rest = rest.trim_start();
    if rest.starts_with("+++") || rest.starts_with("---") {
        return None;
    }
    if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
        pending.insert(pid.to_owned(), head.to_owned());
        None
    } else if let Some(tail) = rest.strip_prefix("<... ") {
        let (_, after) = tail.split_once(" resumed>")?;
        let head = pending.remove(pid).unwrap_or_default();
        Some((pid.to_owned(), format!("{head}{after}")))
    } else {
        Some((pid.to_owned(), rest.to_owned()))
    }
}

/// A whole call's name, the text inside its parentheses and its return value; none for a line
/// that is no call, and an error for a traced call without a return value.
fn split_call(line: &str) -> Result<Option<(&str, &str, &str)>, String> {
    let Some(open) = line.find('(') else {
        return Ok(None);
    };
    let name = &line[..open];
    // strace pads a resumed call's return value (`<... fsync resumed>)      = 0`); strings
    // are hex under -xx, so " = " occurs only before the return value.
    let parsed = line.rsplit_once(" = ").and_then(|(call, ret)| {
        let call = call.trim_end();
        (call.len() > open && call.ends_with(')'))
            .then(|| (&call[open + 1..call.len() - 1], ret.trim()))
    });
    match parsed {
        Some((inner, ret)) => Ok(Some((name, inner, ret))),
        None if traced(name) => Err(format!(
            "a traced call without a return value: the model cannot replay it (in: {})",
            truncate(line)
        )),
        None => Ok(None),
    }
}

/// Gives each msync's write the final file's bytes in its range.
fn fill_msync_writes(
    rec: &mut Recording,
    msyncs: &[(usize, u64)],
    final_bytes: &dyn Fn(&Path) -> Option<Vec<u8>>,
) -> Result<(), String> {
    for &(at, len) in msyncs {
        if let Some(Op::Write {
            inode,
            offset,
            data,
        }) = rec.ops.get_mut(at)
        {
            let bytes = rec
                .final_names
                .get(inode)
                .and_then(|path| final_bytes(path))
                .ok_or("a mapped file has no final content to model its stores")?;
            let start = (*offset as usize).min(bytes.len());
            let end = (*offset as usize)
                .saturating_add(len as usize)
                .min(bytes.len());
            *data = bytes[start..end].to_vec();
        }
    }
    Ok(())
}

/// Fills in the bytes strace did not record of each cut write, from the file's final content,
/// after checking that the final content still holds them: no later write of the same file
/// overlaps the missing range and no later truncation cuts below it (stores through a map,
/// modelled from the final content themselves, are not counted), and the recorded first bytes
/// match the final content where nothing overwrote them.
fn complete_cut_writes(
    rec: &mut Recording,
    cut: &[CutWrite],
    msyncs: &[(usize, u64)],
    final_bytes: &dyn Fn(&Path) -> Option<Vec<u8>>,
) -> Result<(), String> {
    let mut finals: HashMap<usize, Vec<u8>> = HashMap::new();
    for c in cut {
        let Some(Op::Write {
            inode,
            offset,
            data,
        }) = rec.ops.get(c.at)
        else {
            return Err("a cut write is not a write".to_owned());
        };
        let (inode, offset, head) = (*inode, *offset, data.len() as u64);
        let end = offset + c.len;
        let head_overwritten = later_overwrites(rec, c, cut, msyncs, inode, offset, head)?;
        if !rec.final_names.contains_key(&inode) {
            // The file was replaced or removed before the end, so no final content holds the
            // missing bytes. They are zeros here and the write is marked: a crash state whose
            // target holds it cannot be judged (see `Recording::incomplete`).
            if let Some(Op::Write { data, .. }) = rec.ops.get_mut(c.at) {
                data.resize(c.len as usize, 0);
            }
            rec.incomplete.insert(c.at);
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = finals.entry(inode) {
            let bytes = rec
                .final_names
                .get(&inode)
                .and_then(|path| final_bytes(path))
                .ok_or_else(|| {
                    format!(
                        "a write of {} bytes at offset {offset} was recorded without all its bytes, and its file is gone at the end: the model cannot rebuild it",
                        c.len
                    )
                })?;
            slot.insert(bytes);
        }
        let whole = &finals[&inode];
        if (whole.len() as u64) < end {
            return Err(format!(
                "a write of {} bytes at offset {offset} was recorded without all its bytes, and the final file ({} bytes) does not hold them",
                c.len,
                whole.len()
            ));
        }
        let (missing, end, start) = ((offset + head) as usize, end as usize, offset as usize);
        if let Some(Op::Write { data, .. }) = rec.ops.get_mut(c.at) {
            if !head_overwritten && data[..] != whole[start..missing] {
                return Err(format!(
                    "the first {} recorded bytes of a write at offset {offset} differ from the final file there: the final file is not what the recording wrote",
                    missing - start
                ));
            }
            data.extend_from_slice(&whole[missing..end]);
        }
    }
    Ok(())
}

/// Checks the operations after cut write `c` (of `inode`, at `offset`, `head` bytes recorded):
/// an error when a later write overlaps its missing bytes or a later truncation cuts into
/// them; otherwise whether a later write overlaps its recorded head.
fn later_overwrites(
    rec: &Recording,
    c: &CutWrite,
    cut: &[CutWrite],
    msyncs: &[(usize, u64)],
    inode: usize,
    offset: u64,
    head: u64,
) -> Result<bool, String> {
    let (missing, end) = (offset + head, offset + c.len);
    let overlaps = |from: u64, to: u64, o: u64, l: u64| o < to && o + l > from;
    let mut head_overwritten = false;
    for (j, op) in rec.ops.iter().enumerate().skip(c.at + 1) {
        match op {
            Op::Write {
                inode: i,
                offset: o,
                data: d,
            } if *i == inode => {
                if msyncs.iter().any(|(at, _)| *at == j) {
                    continue;
                }
                let l = cut
                    .iter()
                    .find(|later| later.at == j)
                    .map_or(d.len() as u64, |later| later.len);
                if overlaps(missing, end, *o, l) {
                    return Err(format!(
                        "a write of {} bytes at offset {offset} was recorded without its last {} bytes, and a later write (operation {j}, {l} bytes at {o}) overwrote them: the model cannot rebuild it",
                        c.len,
                        end - missing
                    ));
                }
                head_overwritten |= overlaps(offset, missing, *o, l);
            }
            Op::Truncate { inode: i, len } if *i == inode && *len < end => {
                return Err(format!(
                    "a write of {} bytes at offset {offset} was recorded without its last {} bytes, and a later truncation to {len} bytes cut into them: the model cannot rebuild it",
                    c.len,
                    end - missing
                ));
            }
            _ => {}
        }
    }
    Ok(head_overwritten)
}

/// Whether `name` is one of the calls of [`TRACED`].
fn traced(name: &str) -> bool {
    TRACED
        .trim_start_matches("trace=")
        .split(',')
        .any(|call| call == name)
}

fn truncate(line: &str) -> String {
    line.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("\\x{b:02x}")).collect()
    }

    #[test]
    fn writes_between_marks_are_counted_per_thread_and_file() {
        let dir = Path::new("/d");
        let (a, b, out) = (hex("/d/t/c/0"), hex("/d/t/c/1"), hex("/elsewhere"));
        let mark = |m: &str| {
            format!(
                "1 openat(AT_FDCWD<{root}>, \"{path}\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n",
                root = hex("/"),
                path = hex(&format!("/d/{m}")),
            )
        };
        let log = format!(
            "1 write(3<{a}>, \"{x}\", 1) = 1\n{start}\
             2 write(4<{a}>, \"{x}\", 4 <unfinished ...>\n\
             3 pwrite64(5<{b}>, \"{x}\", 2, 0) = 2\n\
             2 <... write resumed>)              = 4\n\
             2 write(4<{a}>, \"{x}\", 3) = 3\n\
             3 write(6<{out}>, \"{x}\", 9) = 9\n\
             3 write(5<{b}>, \"{x}\", 9) = -1 EIO (Input/output error)\n{end}\
             2 write(4<{a}>, \"{x}\", 7) = 7\n",
            x = hex("x"),
            start = mark(MARK_START),
            end = mark(MARK_COMMITTED),
        );
        let found = writes_between_marks(&log, dir);
        let seen: Vec<(&str, &str, &str, u64)> = found
            .iter()
            .map(|w| {
                let path = w.path.to_str().unwrap_or_default();
                (w.thread.as_str(), w.call.as_str(), path, w.bytes)
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("3", "pwrite64", "/d/t/c/1", 2),
                ("2", "write", "/d/t/c/0", 4),
                ("2", "write", "/d/t/c/0", 3),
            ]
        );
    }

    #[test]
    fn a_save_parses_into_create_write_sync_rename_and_directory_sync() {
        let dir = Path::new("/d");
        let tmp = hex("/d/a.tmp");
        let target = hex("/d/a");
        let log = format!(
            "1 openat(AT_FDCWD<{root}>, \"{tmp}\", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3<{tmp}>\n\
             1 write(3<{tmp}>, \"{data}\", 5 <unfinished ...>\n\
             2 close(9<{other}>) = 0\n\
             1 <... write resumed>)              = 3\n\
             1 fcntl(3<{tmp}>, F_DUPFD_CLOEXEC, 0) = 4<{tmp}>\n\
             1 write(4<{tmp}>, \"{more}\", 2) = 2\n\
             1 pwrite64(3<{tmp}>, \"{h}\", 1, 0) = 1\n\
             1 fsync(3<{tmp}> <unfinished ...>\n\
             2 close(8<{other}>) = 0\n\
             1 <... fsync resumed>)              = 0\n\
             1 close(3<{tmp}>) = 0\n\
             1 rename(\"{tmp}\", \"{target}\") = 0\n\
             1 openat(AT_FDCWD<{root}>, \"{dirx}\", O_RDONLY|O_CLOEXEC) = 3<{dirx}>\n\
             1 fsync(3<{dirx}>) = 0\n\
             1 openat(AT_FDCWD<{root}>, \"{mark}\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n",
            root = hex("/"),
            data = hex("hello"),
            more = hex("lo"),
            h = hex("H"),
            other = hex("/elsewhere"),
            dirx = hex("/d"),
            mark = hex(&format!("/d/{MARK_COMMITTED}")),
        );
        let initial = Listing {
            files: vec!["a".into()],
            dirs: Vec::new(),
        };
        let rec = parse(&log, dir, &initial, &|_| None).unwrap();
        let ops = rec.ops;
        assert_eq!(
            ops,
            vec![
                Op::Create {
                    dir: ROOT,
                    name: "a.tmp".into(),
                    inode: 1
                },
                Op::Write {
                    inode: 1,
                    offset: 0,
                    data: b"hel".to_vec()
                },
                Op::Write {
                    inode: 1,
                    offset: 3,
                    data: b"lo".to_vec()
                },
                Op::Write {
                    inode: 1,
                    offset: 0,
                    data: b"H".to_vec()
                },
                Op::Sync { inode: 1 },
                Op::Rename {
                    from_dir: ROOT,
                    from: "a.tmp".into(),
                    to_dir: ROOT,
                    to: "a".into()
                },
                Op::SyncDir { dir: ROOT },
                Op::Committed,
            ]
        );
    }

    /// The kernel frees a descriptor's number as its close starts: another thread's open may
    /// return it before strace logs the close as finished. The close then frees only its own
    /// file: the other thread's writes and fsync through that number are replayed (they were
    /// dropped, and a chunk renamed after them read as empty in every later crash state, a
    /// CP failure of the model's, not of the library's, with eight writer threads).
    #[test]
    fn a_close_finishing_after_another_thread_reused_its_number_frees_only_its_own_file() {
        let dir = Path::new("/d");
        let (old, tmp, target) = (hex("/d/c/11/t"), hex("/d/c/12/t"), hex("/d/c/12/0"));
        let log = format!(
            "101 openat(AT_FDCWD<{root}>, \"{old}\", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 7<{old}>\n\
             101 close(7<{old}> <unfinished ...>\n\
             102 openat(AT_FDCWD<{root}>, \"{tmp}\", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 7<{tmp}>\n\
             101 <... close resumed>)              = 0\n\
             102 write(7<{tmp}>, \"{data}\", 5) = 5\n\
             102 fsync(7<{tmp}>) = 0\n\
             102 close(7<{tmp}>) = 0\n\
             102 rename(\"{tmp}\", \"{target}\") = 0\n",
            root = hex("/"),
            data = hex("chunk"),
        );
        let initial = Listing {
            files: Vec::new(),
            dirs: vec!["c".into(), "c/11".into(), "c/12".into()],
        };
        let rec = parse(&log, dir, &initial, &|_| None).unwrap();
        // The second thread's file is the last one created.
        let new = rec
            .ops
            .iter()
            .rev()
            .find_map(|op| match op {
                Op::Create { inode, .. } => Some(*inode),
                _ => None,
            })
            .unwrap();
        assert!(
            rec.ops.contains(&Op::Write {
                inode: new,
                offset: 0,
                data: b"chunk".to_vec()
            }),
            "{:?}",
            rec.ops
        );
        assert!(rec.ops.contains(&Op::Sync { inode: new }), "{:?}", rec.ops);
    }

    #[test]
    fn a_cut_write_without_a_final_file_is_refused_not_a_shorter_write() {
        let dir = Path::new("/d");
        let f = hex("/d/a");
        let log = format!(
            "1 openat(AT_FDCWD<{r}>, \"{f}\", O_WRONLY|O_CREAT, 0666) = 3<{f}>\n1 write(3<{f}>, \"{d}\"..., 100) = 100\n",
            r = hex("/"),
            d = hex("abc")
        );
        let err = parse(&log, dir, &Listing::default(), &|_| None).unwrap_err();
        assert!(err.contains("cannot rebuild"), "{err}");
    }

    /// A file `a` created, then the given writes (descriptor 3), as strace logs them.
    fn log_of(writes: &[String]) -> String {
        let f = hex("/d/a");
        let mut log = format!(
            "1 openat(AT_FDCWD<{r}>, \"{f}\", O_WRONLY|O_CREAT, 0666) = 3<{f}>\n",
            r = hex("/"),
        );
        for w in writes {
            log.push_str(&w.replace("FD", &format!("3<{f}>")));
            log.push('\n');
        }
        log
    }

    fn final_file(bytes: &'static [u8]) -> impl Fn(&Path) -> Option<Vec<u8>> {
        move |name| (name == Path::new("a")).then(|| bytes.to_vec())
    }

    fn written(rec: &Recording) -> Vec<(u64, Vec<u8>)> {
        rec.ops
            .iter()
            .filter_map(|op| match op {
                Op::Write { offset, data, .. } => Some((*offset, data.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_cut_write_is_completed_from_the_final_file() {
        let log = log_of(&[format!("1 write(FD, \"{}\"..., 10) = 10", hex("01"))]);
        let rec = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"0123456789"),
        )
        .unwrap();
        assert_eq!(written(&rec), vec![(0, b"0123456789".to_vec())]);
    }

    #[test]
    fn a_header_rewritten_within_the_recorded_bytes_is_kept_apart() {
        // The streaming writer's pattern: header and data in one large write, then the header
        // rewritten in place; the first write's header is its recorded bytes.
        let log = log_of(&[
            format!("1 write(FD, \"{}\"..., 10) = 10", hex("h0")),
            format!("1 pwrite64(FD, \"{}\", 2, 0) = 2", hex("H1")),
        ]);
        let rec = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"H123456789"),
        )
        .unwrap();
        assert_eq!(
            written(&rec),
            vec![(0, b"h0234567890"[..10].to_vec()), (0, b"H1".to_vec())]
        );
    }

    #[test]
    fn a_large_range_written_twice_is_refused() {
        let log = log_of(&[
            format!("1 write(FD, \"{}\"..., 10) = 10", hex("01")),
            format!("1 pwrite64(FD, \"{}\", 2, 5) = 2", hex("xx")),
        ]);
        let err = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"01234xx789"),
        )
        .unwrap_err();
        assert!(err.contains("cannot rebuild"), "{err}");
        let log = log_of(&[
            format!("1 write(FD, \"{}\"..., 10) = 10", hex("01")),
            "1 ftruncate(FD, 4) = 0".to_owned(),
        ]);
        let err = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"0123"),
        )
        .unwrap_err();
        assert!(err.contains("cannot rebuild"), "{err}");
    }

    #[test]
    fn a_final_file_that_does_not_match_the_recorded_bytes_is_refused() {
        let log = log_of(&[format!("1 write(FD, \"{}\"..., 10) = 10", hex("01"))]);
        let err = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"ab23456789"),
        )
        .unwrap_err();
        assert!(err.contains("differ from the final file"), "{err}");
        let err = parse(
            &log,
            Path::new("/d"),
            &Listing::default(),
            &final_file(b"01"),
        )
        .unwrap_err();
        assert!(err.contains("does not hold them"), "{err}");
    }

    #[test]
    fn a_tree_save_parses_into_directories_an_exchange_and_removals() {
        let dir = Path::new("/d");
        let d = |s: &str| hex(s);
        let lines = [
            format!("1 mkdir(\"{}\", 0777) = 0", d("/d/n")),
            format!(
                "1 openat(AT_FDCWD<{}>, \"{}\", O_RDONLY|O_DIRECTORY|O_CLOEXEC) = 3<{}>",
                d("/"),
                d("/d/n"),
                d("/d/n")
            ),
            format!("1 mkdirat(3<{}>, \"{}\", 0777) = 0", d("/d/n"), d("c")),
            format!(
                "1 openat(3<{}>, \"{}\", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 4<{}>",
                d("/d/n"),
                d("c/f"),
                d("/d/n/c/f")
            ),
            format!("1 write(4<{}>, \"{}\", 3) = 3", d("/d/n/c/f"), d("new")),
            format!("1 fsync(4<{}>) = 0", d("/d/n/c/f")),
            format!("1 close(4<{}>) = 0", d("/d/n/c/f")),
            format!(
                "1 openat(AT_FDCWD<{}>, \"{}\", O_RDONLY|O_DIRECTORY) = 5<{}>",
                d("/"),
                d("/d/n/c"),
                d("/d/n/c")
            ),
            format!("1 fsync(5<{}>) = 0", d("/d/n/c")),
            format!("1 fsync(3<{}>) = 0", d("/d/n")),
            format!(
                "1 renameat2(AT_FDCWD<{r}>, \"{}\", AT_FDCWD<{r}>, \"{}\", RENAME_EXCHANGE) = 0",
                d("/d/n"),
                d("/d/t"),
                r = d("/")
            ),
            format!(
                "1 openat(AT_FDCWD<{}>, \"{}\", O_RDONLY|O_DIRECTORY) = 6<{}>",
                d("/"),
                d("/d"),
                d("/d")
            ),
            format!("1 fsync(6<{}>) = 0", d("/d")),
            format!(
                "1 openat(AT_FDCWD<{}>, \"{}\", O_RDONLY) = -1 ENOENT (No such file or directory)",
                d("/"),
                d(&format!("/d/{MARK_COMMITTED}"))
            ),
            // After the exchange `n` is the old tree: its file is removed, then it.
            format!(
                "1 openat(AT_FDCWD<{}>, \"{}\", O_RDONLY|O_DIRECTORY) = 7<{}>",
                d("/"),
                d("/d/n"),
                d("/d/n")
            ),
            format!("1 unlinkat(7<{}>, \"{}\", 0) = 0", d("/d/n"), d("f")),
            format!(
                "1 unlinkat(AT_FDCWD<{}>, \"{}\", AT_REMOVEDIR) = 0",
                d("/"),
                d("/d/n")
            ),
        ];
        let log = lines.join("\n");
        let initial = Listing {
            files: vec!["t/f".into()],
            dirs: vec!["t".into()],
        };
        let rec = parse(&log, dir, &initial, &|_| None).unwrap();
        assert_eq!(rec.initial_dirs, vec![(PathBuf::from("t"), 0)]);
        assert_eq!(rec.initial, vec![(PathBuf::from("t/f"), 1)]);
        assert_eq!(
            rec.ops,
            vec![
                Op::Mkdir {
                    dir: ROOT,
                    name: "n".into(),
                    inode: 2
                },
                Op::Mkdir {
                    dir: 2,
                    name: "c".into(),
                    inode: 3
                },
                Op::Create {
                    dir: 3,
                    name: "f".into(),
                    inode: 4
                },
                Op::Write {
                    inode: 4,
                    offset: 0,
                    data: b"new".to_vec()
                },
                Op::Sync { inode: 4 },
                Op::SyncDir { dir: 3 },
                Op::SyncDir { dir: 2 },
                Op::Exchange {
                    a_dir: ROOT,
                    a: "n".into(),
                    b_dir: ROOT,
                    b: "t".into()
                },
                Op::SyncDir { dir: ROOT },
                Op::Committed,
                Op::Unlink {
                    dir: 0,
                    name: "f".into()
                },
                Op::Unlink {
                    dir: ROOT,
                    name: "n".into()
                },
            ]
        );
        assert_eq!(
            rec.final_names,
            HashMap::from([(4, PathBuf::from("t/c/f"))])
        );
    }

    #[test]
    fn a_rename_out_of_the_root_is_refused() {
        let log = format!(
            "1 rename(\"{}\", \"{}\") = 0\n",
            hex("/d/a"),
            hex("/elsewhere/a")
        );
        let initial = Listing {
            files: vec!["a".into()],
            dirs: Vec::new(),
        };
        let err = parse(&log, Path::new("/d"), &initial, &|_| None).unwrap_err();
        assert!(err.contains("not modelled"), "{err}");
    }
}

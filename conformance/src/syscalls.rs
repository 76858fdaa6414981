//! Reading strace's record of a process into the file-system operations it performed in one
//! directory: creates, writes (with their bytes and offsets), truncations, renames, unlinks,
//! fsyncs and msyncs, in order. The power-loss model ([`crate::powerloss`]) replays them.
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
//! refuses a recording it cannot rebuild (a large range written twice) instead of guessing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The system calls a recording traces.
pub const TRACED: &str = "trace=openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,\
fsync,fdatasync,sync_file_range,close,rename,renameat,renameat2,unlink,unlinkat,ftruncate,\
fallocate,fcntl,dup,dup2,dup3,lseek,mmap,msync,copy_file_range,sendfile";

/// strace's `-s`: how many bytes of each written buffer a recording holds. Header rewrites
/// (the first bytes of a file) stay within it, so they never conflict with a large write's
/// bytes taken from the final file.
pub const STRING_LIMIT: usize = 65536;

/// The file whose failed open marks, in a trace, the moment an operation returned Ok.
pub const MARK_COMMITTED: &str = ".ndstore-mark-committed";
/// The file whose failed open marks the start of the operation under test.
pub const MARK_START: &str = ".ndstore-mark-start";

/// One operation on the directory, in the order the process performed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new, empty file appeared under `name`.
    Create {
        /// Its name in the directory.
        name: OsString,
        /// The file.
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
    /// An entry renamed within the directory (replacing `to`).
    Rename {
        /// The old name.
        from: OsString,
        /// The new name.
        to: OsString,
    },
    /// An entry removed.
    Unlink {
        /// The name.
        name: OsString,
    },
    /// fsync of the directory: its entries are on the medium.
    SyncDir,
    /// The operation under test returned Ok here.
    Committed,
    /// The operation under test started here.
    Started,
}

/// What a recording found: the operations, and the calls of each name after the start mark
/// (for choosing which call to fail in the fault-injection check).
#[derive(Debug, Default)]
pub struct Recording {
    /// The operations on the directory.
    pub ops: Vec<Op>,
    /// The files that existed before the recording, by name, with their inode numbers.
    pub initial: Vec<(OsString, usize)>,
    /// Every call of the traced names after the start mark, in order: (name, path it acted on,
    /// whether that path is in the directory and the call changes data).
    pub calls: Vec<Call>,
    /// Each inode's final name in the directory, if it has one.
    pub final_names: HashMap<usize, OsString>,
}

/// A traced call after the start mark.
#[derive(Clone, Debug)]
pub struct Call {
    /// The system call.
    pub name: String,
    /// The file it acted on, when it named one.
    pub path: Option<PathBuf>,
    /// True when a failure of this call must fail the operation: it writes, syncs or renames
    /// something in the directory, or closes a file written there.
    pub matters: bool,
}

#[derive(Clone, Debug)]
struct OpenFile {
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
    dir: &'a Path,
    names: HashMap<OsString, usize>,
    sizes: HashMap<usize, u64>,
    fds: HashMap<i64, OpenFile>,
    maps: Vec<Mapping>,
    next_inode: usize,
    rec: Recording,
    started: bool,
    /// msync writes whose bytes are read at the end: (operation index, length).
    msyncs: Vec<(usize, u64)>,
    /// Writes strace cut short, completed from the final file at the end.
    cut: Vec<CutWrite>,
    /// For msync: the bytes each file holds at the end (read by the caller).
    final_bytes: &'a dyn Fn(&OsString) -> Option<Vec<u8>>,
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
    fn name_in_dir(&self, path: &Path) -> Option<OsString> {
        (path.parent() == Some(self.dir)).then(|| path.file_name().map(OsString::from))?
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
            Family::Rename { from, to } => self.rename(&call, from, to),
            Family::Unlink { dirfd, path } => self.unlink(&call, dirfd, path),
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

    /// openat, open, creat: the marks, then a file of the directory created, truncated or
    /// opened.
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
        if let Some(entry) = self.name_in_dir(&path) {
            let Some(id) = self.open_entry(entry, flags) else {
                return Ok(());
            };
            inode = Some(id);
        }
        self.fds.insert(
            fd,
            OpenFile {
                inode,
                pos: Default::default(),
                append: flags.contains("O_APPEND"),
                written: Default::default(),
            },
        );
        Ok(())
    }

    /// The inode an open of `entry` with `flags` reaches: the existing file (cut to nothing
    /// by `O_TRUNC`) or a new one (`O_CREAT`); none when the entry does not exist.
    fn open_entry(&mut self, entry: OsString, flags: &str) -> Option<usize> {
        match self.names.get(&entry).copied() {
            Some(id) => {
                if flags.contains("O_TRUNC") {
                    self.sizes.insert(id, 0);
                    self.push(Op::Truncate { inode: id, len: 0 });
                }
                Some(id)
            }
            None if flags.contains("O_CREAT") => {
                let id = self.next_inode;
                self.next_inode += 1;
                self.names.insert(entry.clone(), id);
                self.sizes.insert(id, 0);
                self.push(Op::Create {
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

    /// fsync, fdatasync, sync_file_range: a file's or the directory's sync (a ranged sync
    /// only counts as a call).
    fn sync(&mut self, call: &Syscall<'_>, range: bool) -> Result<(), String> {
        let (fd, path) = call.fd(0).ok_or("fsync without a descriptor")?;
        let is_dir = path == self.dir;
        let inode = self.file(fd).and_then(|f| f.inode);
        self.call(call.name, Some(path), inode.is_some() || is_dir);
        if !call.ok || range {
            return Ok(());
        }
        if is_dir {
            self.push(Op::SyncDir);
        } else if let Some(inode) = inode {
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
        // An injected failure leaves the descriptor open; a real close frees it.
        if !call.ret.contains("INJECTED") {
            self.fds.remove(&fd);
        }
    }

    /// rename, renameat, renameat2: an entry renamed within the directory.
    fn rename(
        &mut self,
        call: &Syscall<'_>,
        from: PathArg<'_>,
        to: PathArg<'_>,
    ) -> Result<(), String> {
        let from = resolve(from.0, from.1.ok_or("rename args")?)?;
        let to = resolve(to.0, to.1.ok_or("rename args")?)?;
        let from_name = self.name_in_dir(&from);
        let to_name = self.name_in_dir(&to);
        self.call(
            call.name,
            Some(to.clone()),
            from_name.is_some() || to_name.is_some(),
        );
        if !call.ok {
            return Ok(());
        }
        match (from_name, to_name) {
            (Some(from), Some(to)) => {
                if let Some(id) = self.names.remove(&from) {
                    self.names.insert(to.clone(), id);
                }
                self.push(Op::Rename { from, to });
                Ok(())
            }
            (None, None) => Ok(()),
            _ => Err("a rename across directories: not modelled".to_owned()),
        }
    }

    /// unlink, unlinkat: an entry of the directory removed.
    fn unlink(
        &mut self,
        call: &Syscall<'_>,
        dirfd: Option<&str>,
        path: Option<&str>,
    ) -> Result<(), String> {
        let path = resolve(dirfd, path.ok_or("unlink args")?)?;
        if let Some(entry) = self.name_in_dir(&path) {
            self.call(call.name, Some(path), true);
            if call.ok {
                self.names.remove(&entry);
                self.push(Op::Unlink { name: entry });
            }
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
        if let Some(file) = self.file(fd).cloned() {
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
    /// rename, renameat, renameat2.
    Rename { from: PathArg<'a>, to: PathArg<'a> },
    /// unlink, unlinkat.
    Unlink {
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
            },
            "renameat" | "renameat2" => Family::Rename {
                from: (arg(0), arg(1)),
                to: (arg(2), arg(3)),
            },
            "unlink" => Family::Unlink {
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

/// Parses strace's log of a process that worked in `dir`. `initial` names the files in `dir`
/// before the process started; `final_bytes` gives a file's content at the end (by its final
/// name), for modelling stores through memory maps.
pub fn parse(
    log: &str,
    dir: &Path,
    initial: &[OsString],
    final_bytes: &dyn Fn(&OsString) -> Option<Vec<u8>>,
) -> Result<Recording, String> {
    let mut replay = Replay {
        dir,
        names: HashMap::new(),
        sizes: HashMap::new(),
        fds: HashMap::new(),
        maps: Vec::new(),
        next_inode: 0,
        rec: Recording::default(),
        started: false,
        msyncs: Vec::new(),
        cut: Vec::new(),
        final_bytes,
    };
    for name in initial {
        let id = replay.next_inode;
        replay.next_inode += 1;
        replay.names.insert(name.clone(), id);
        let size = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        replay.sizes.insert(id, size);
        replay.rec.initial.push((name.clone(), id));
    }
    let mut pending: HashMap<String, String> = HashMap::new();
    for raw in log.lines() {
        let Some(line) = whole_call(raw, &mut pending) else {
            continue;
        };
        let Some((name, inner, ret)) = split_call(&line)? else {
            continue;
        };
        let args = split_args(inner);
        replay
            .line(name, &args, ret)
            .map_err(|e| format!("{e} (in: {})", truncate(&line)))?;
    }
    for (name, id) in &replay.names {
        replay.rec.final_names.insert(*id, name.clone());
    }
    let mut rec = replay.rec;
    complete_cut_writes(&mut rec, &replay.cut, &replay.msyncs, replay.final_bytes)?;
    fill_msync_writes(&mut rec, &replay.msyncs, replay.final_bytes)?;
    Ok(rec)
}

/// A log line as one whole call: signal and exit lines are none, an `<unfinished ...>` head
/// waits in `pending` for its process's `<... resumed>` tail, which completes it.
fn whole_call(raw: &str, pending: &mut HashMap<String, String>) -> Option<String> {
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
        Some(format!("{head}{after}"))
    } else {
        Some(rest.to_owned())
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
    final_bytes: &dyn Fn(&OsString) -> Option<Vec<u8>>,
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
                .and_then(final_bytes)
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
    final_bytes: &dyn Fn(&OsString) -> Option<Vec<u8>>,
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
        if let std::collections::hash_map::Entry::Vacant(slot) = finals.entry(inode) {
            let bytes = rec
                .final_names
                .get(&inode)
                .and_then(final_bytes)
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
        let rec = parse(&log, dir, &[OsString::from("a")], &|_| None).unwrap();
        let ops = rec.ops;
        assert_eq!(
            ops,
            vec![
                Op::Create {
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
                    from: "a.tmp".into(),
                    to: "a".into()
                },
                Op::SyncDir,
                Op::Committed,
            ]
        );
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
        let err = parse(&log, dir, &[], &|_| None).unwrap_err();
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

    fn final_file(bytes: &'static [u8]) -> impl Fn(&OsString) -> Option<Vec<u8>> {
        move |name| (name == "a").then(|| bytes.to_vec())
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
        let rec = parse(&log, Path::new("/d"), &[], &final_file(b"0123456789")).unwrap();
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
        let rec = parse(&log, Path::new("/d"), &[], &final_file(b"H123456789")).unwrap();
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
        let err = parse(&log, Path::new("/d"), &[], &final_file(b"01234xx789")).unwrap_err();
        assert!(err.contains("cannot rebuild"), "{err}");
        let log = log_of(&[
            format!("1 write(FD, \"{}\"..., 10) = 10", hex("01")),
            "1 ftruncate(FD, 4) = 0".to_owned(),
        ]);
        let err = parse(&log, Path::new("/d"), &[], &final_file(b"0123")).unwrap_err();
        assert!(err.contains("cannot rebuild"), "{err}");
    }

    #[test]
    fn a_final_file_that_does_not_match_the_recorded_bytes_is_refused() {
        let log = log_of(&[format!("1 write(FD, \"{}\"..., 10) = 10", hex("01"))]);
        let err = parse(&log, Path::new("/d"), &[], &final_file(b"ab23456789")).unwrap_err();
        assert!(err.contains("differ from the final file"), "{err}");
        let err = parse(&log, Path::new("/d"), &[], &final_file(b"01")).unwrap_err();
        assert!(err.contains("does not hold them"), "{err}");
    }
}

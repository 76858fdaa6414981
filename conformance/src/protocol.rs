//! What a child process tells the harness: typed [`Reply`] values, one JSON line each after
//! [`PREFIX`] on the child's standard output, and, for children whose every later system call
//! may be failed on purpose, one reply left in a [`ReplySlot`] without a system call.
//!
//! A child under fault injection (IO's injected `write` failures, "from then on") cannot
//! report on a pipe: the injected failure would hit the report's `write` too. Such a child
//! maps a file the parent made before the tracer attaches, and stores its reply into the
//! mapping after the operation: a store into memory is no system call, so nothing can fail it,
//! and the parent reads the file once the child has exited.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The prefix of every line a child writes for the parent.
pub const PREFIX: &str = "NDSTORE:";

/// An operation's error as a child reports it: the error's kind (`Poisoned`, `Locked`, ...)
/// and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The `ErrorKind`'s name, as `Debug` spells it.
    pub kind: String,
    /// The error's message (it names the path).
    pub message: String,
}

impl From<&ndstore_core::Error> for Failure {
    fn from(e: &ndstore_core::Error) -> Failure {
        Failure {
            kind: format!("{:?}", e.kind()),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.message)
    }
}

/// What one operation in a child returned.
pub type Outcome = Result<(), Failure>;

/// The outcome of `result`, as a child reports it.
pub fn outcome<T>(result: &ndstore_core::Result<T>) -> Outcome {
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::from(e)),
    }
}

/// Whether `outcome` is an error of kind `kind`.
pub fn failed_with(outcome: &Outcome, kind: &str) -> bool {
    matches!(outcome, Err(f) if f.kind == kind)
}

/// Which of the versions a [`Reply::Load`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Found {
    /// The version at this index of the task's list.
    Version(usize),
    /// An array that is none of them.
    Other,
    /// The load failed, with this message.
    Error(String),
}

/// What a full-disk child's three saves returned and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullDisk {
    /// The first, small save.
    pub old: Outcome,
    /// The save that does not fit.
    pub big: Outcome,
    /// The target still loads as the first save after the one that did not fit.
    pub intact: bool,
    /// The temporary files left beside the target then.
    pub temps: usize,
    /// The small save after it.
    pub small: Outcome,
    /// The target then loads as that save.
    pub new: bool,
}

/// One message of a child to the harness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The child is prepared: a tracer may attach, a kill may come.
    Ready,
    /// The task could not go on (the child then exits with a non-zero code).
    Error(String),
    /// Save, addition or in-place write `i` returned Ok.
    Ack(u64),
    /// A load's array in canonical form (see [`crate::child::canonical`]), or its error.
    Loaded(Result<String, Failure>),
    /// Load `i` of a sequence found this.
    Load {
        /// Which load.
        i: u64,
        /// What it held.
        found: Found,
    },
    /// The handle was dropped without being closed or committed.
    Dropped,
    /// What an in-place open and an in-place save returned.
    TriedInPlace {
        /// The in-place open.
        open: Outcome,
        /// The in-place save.
        save: Outcome,
    },
    /// What a save returned.
    Saved(Outcome),
    /// What a poisoned handle's two syncs returned.
    Synced {
        /// The sync that met the injected failure.
        first: Outcome,
        /// The sync after it.
        second: Outcome,
    },
    /// What the handle's commit or close returned.
    Finished(Outcome),
    /// A full-disk child's findings.
    FullDisk(FullDisk),
    /// A scenario's operation returned (Ok when `ok`), and whether a descriptor was open after
    /// it that was not before.
    Ran {
        /// The operation returned Ok.
        ok: bool,
        /// A descriptor leaked.
        leaked: bool,
    },
    /// Which calls of a writer-fault child returned Ok, in the order of
    /// [`crate::child::FAULT_CALLS`].
    Returned(Vec<bool>),
    /// A bad-input case is about to be loaded.
    Started(String),
    /// A bad-input case's outcome (see `checks::bad_input`), with the resident memory before
    /// the load and at its peak, in KiB, when known.
    Result {
        /// The case.
        name: String,
        /// Resident memory before the load.
        base_kib: Option<u64>,
        /// Resident memory at the load's peak.
        peak_kib: Option<u64>,
        /// `ok`, `err KIND placed|unplaced|nopath MESSAGE` or `panic MESSAGE`.
        outcome: String,
    },
    /// Every case of the list was loaded.
    Done,
}

impl Reply {
    /// The reply as its line on standard output.
    pub fn line(&self) -> String {
        // A reply of strings, numbers and booleans always serialises.
        let json = serde_json::to_string(self).unwrap_or_else(|e| format!("{e}"));
        format!("{PREFIX}{json}")
    }

    /// Prints the reply's line on standard output.
    pub fn say(&self) {
        println!("{}", self.line());
    }

    /// The reply on `line`: none for a line that is not the protocol's, an error for a
    /// protocol line that does not parse.
    ///
    /// # Errors
    ///
    /// A protocol line that is no reply.
    pub fn parse(line: &str) -> Option<Result<Reply, String>> {
        let json = line.strip_prefix(PREFIX)?;
        Some(serde_json::from_str(json).map_err(|e| format!("a garbled reply {json:?}: {e}")))
    }
}

/// The replies in a child's standard output, in order.
///
/// # Errors
///
/// A protocol line that does not parse.
pub fn replies(stdout: &[u8]) -> Result<Vec<Reply>, String> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| Reply::parse(&l))
        .collect()
}

/// The bytes of a reply slot: far more than any reply written there.
const SLOT_BYTES: usize = 64 << 10;

/// The parent's side of a reply left without a system call: a file of [`SLOT_BYTES`] zero
/// bytes, outside every directory a check records, that the child maps ([`ReplyPage`]) and
/// stores its reply into. Removed on drop.
pub struct ReplySlot {
    file: tempfile::NamedTempFile,
}

impl ReplySlot {
    /// A fresh, zeroed slot.
    ///
    /// # Errors
    ///
    /// When the file cannot be made.
    pub fn new() -> Result<ReplySlot, String> {
        let file = tempfile::Builder::new()
            .prefix("ndstore-reply-")
            .tempfile()
            .map_err(|e| format!("cannot make a reply slot: {e}"))?;
        file.as_file()
            .set_len(SLOT_BYTES as u64)
            .map_err(|e| format!("cannot size the reply slot: {e}"))?;
        Ok(ReplySlot { file })
    }

    /// The slot's path, for the child's task.
    pub fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }

    /// The reply the child stored, once it has exited.
    ///
    /// # Errors
    ///
    /// When the slot cannot be read, is empty (the child died before replying) or does not
    /// hold a reply.
    pub fn read(&self) -> Result<Reply, String> {
        let bytes = std::fs::read(self.file.path()).map_err(|e| e.to_string())?;
        let end = bytes
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .unwrap_or(bytes.len());
        if end == 0 {
            return Err("the child left no reply".to_owned());
        }
        serde_json::from_slice(&bytes[..end]).map_err(|e| format!("a garbled reply: {e}"))
    }
}

/// The child's side of a [`ReplySlot`]: the slot mapped shared, so a reply stored into it
/// reaches the file with no system call. Map it before the operation (before a tracer
/// attaches); its descriptor is closed at once, so it counts as no open file.
pub struct ReplyPage {
    addr: std::ptr::NonNull<u8>,
}

impl ReplyPage {
    /// Maps the slot at `path`.
    ///
    /// # Errors
    ///
    /// When the slot cannot be opened or mapped, or is shorter than a slot.
    pub fn map(path: &Path) -> Result<ReplyPage, String> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open the reply slot: {e}"))?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < SLOT_BYTES as u64 {
            return Err(format!(
                "the reply slot holds {len} bytes, not {SLOT_BYTES}"
            ));
        }
        // SAFETY: a new shared mapping of SLOT_BYTES of a file at least that long, at an
        // address the kernel chooses; it aliases no memory of this process.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SLOT_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!(
                "cannot map the reply slot: {}",
                std::io::Error::last_os_error()
            ));
        }
        let addr = std::ptr::NonNull::new(addr.cast::<u8>()).ok_or("mmap returned null")?;
        Ok(ReplyPage { addr })
    }

    /// Stores `reply` and a newline at the start of the slot. The mapping is never unmapped:
    /// the child exits after replying, and an `munmap` would be one more system call.
    pub fn store(self, reply: &Reply) {
        let mut bytes = serde_json::to_vec(reply).unwrap_or_default();
        bytes.truncate(SLOT_BYTES - 1);
        bytes.push(b'\n');
        // SAFETY: the mapping is SLOT_BYTES long, readable and writable, and owned by this
        // value alone; `bytes` holds at most SLOT_BYTES and lives elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr.as_ptr(), bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_round_trips_through_its_line_and_through_a_slot() {
        let reply = Reply::Synced {
            first: Err(Failure {
                kind: "Io".to_owned(),
                message: "a message\nover two lines".to_owned(),
            }),
            second: Ok(()),
        };
        let stdout = format!("noise\n{}\n{}\n", reply.line(), Reply::Done.line());
        assert_eq!(
            replies(stdout.as_bytes()).unwrap(),
            vec![reply.clone(), Reply::Done]
        );
        assert!(replies(format!("{PREFIX}{{\"Ack\":").as_bytes()).is_err());
        let slot = ReplySlot::new().unwrap();
        assert_eq!(
            slot.read().unwrap_err(),
            "the child left no reply".to_owned()
        );
        ReplyPage::map(&slot.path()).unwrap().store(&reply);
        assert_eq!(slot.read().unwrap(), reply);
    }
}

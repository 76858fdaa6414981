//! The isolated reader: libhdf5 parses a file someone else wrote in a forked child, so a crash,
//! an abort, a stack overflow, a hang or a runaway allocation inside libhdf5 ends that child,
//! never the caller.
//!
//! The parent forks while it holds hdf5-metno's global lock (so no other thread of the caller
//! is inside libhdf5, and the child inherits an idle library), after libhdf5 was initialised in
//! the parent. The child turns logging off (a logger's lock held by another thread at the fork
//! would never be released), limits its address space and core dumps, restores the default
//! action of crash signals, runs the work under `catch_unwind`, and always ends with `_exit`:
//! it never returns into the caller's code and never runs `atexit` handlers.
//!
//! The child answers in JSON lines on a pipe: `Reading` when it knows how many bytes it will
//! read (the parent then extends the deadline), and one final `Done` or `Failed`. Bulk data
//! never goes through the pipe: the child returns the offset of a contiguous dataset's bytes,
//! which the parent reads from its own descriptor, or writes the values into a memfd the parent
//! created before the fork.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ndstore_core::{Error, ErrorKind, Location, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::sys::{self, Ended};

/// The limits of one isolated read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Wall-clock time before any data is read.
    pub timeout: Duration,
    /// Once the child says how many bytes it reads, it gets one more second per this many.
    pub bytes_per_second: u64,
    /// Address space the child may use beyond its size at the fork and the data it reads.
    pub work_memory: u64,
}

/// The most bytes of answer the parent accepts (listings of huge files included).
const MAX_REPLY: usize = 256 << 20;

/// An error as it crosses the pipe.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WireError {
    kind: String,
    message: String,
    object: Option<String>,
    offset: Option<u64>,
}

impl WireError {
    fn from_error(e: &Error) -> WireError {
        let mut message = e.message().to_owned();
        if let Some(source) = e.io_error() {
            message = format!("{message}: {source}");
        }
        let (object, offset) = match e.location() {
            Some(Location::Object(o)) => (Some(o.clone()), None),
            Some(Location::Offset(o)) => (None, Some(*o)),
            Some(other) => {
                message = format!("{other}: {message}");
                (None, None)
            }
            None => (None, None),
        };
        WireError {
            kind: e.kind().as_str().to_owned(),
            message,
            object,
            offset,
        }
    }

    fn into_error(self, path: &Path, proc_path: &str) -> Error {
        // libhdf5 names the file by the name the reader opened it with.
        let message = if proc_path.is_empty() {
            self.message
        } else {
            self.message.replace(proc_path, &path.display().to_string())
        };
        // A kind this build does not know is `Format`.
        let kind = ErrorKind::from_name(&self.kind).unwrap_or(ErrorKind::Format);
        let mut error = Error::new(kind, message).with_path(path);
        if let Some(object) = self.object {
            error = error.at(Location::Object(object));
        }
        if let Some(offset) = self.offset {
            error = error.at_offset(offset);
        }
        error
    }
}

/// One line from the child.
#[derive(Debug, Serialize, Deserialize)]
enum Message<T> {
    /// The child is about to read this many bytes of data.
    Reading(u64),
    /// The answer.
    Done(T),
    /// The work failed with an error.
    Failed(WireError),
}

/// The child's side: its channel to the parent and its memory budget.
pub(crate) struct Child {
    pipe: File,
    /// The address space the child had when it started, plus its work budget.
    base: u64,
    /// The bytes announced so far.
    announced: u64,
}

impl Child {
    /// Announces that the work will read `bytes` more of data, the last announcement: the
    /// address-space limit grows by that much (the data goes into a mapped memfd) and is then
    /// fixed (its hard limit too), and the parent's deadline and memory budget move on with the
    /// total announced.
    pub(crate) fn reading(&mut self, bytes: u64) {
        self.announce(bytes, true);
    }

    /// Announces that the work will hold `bytes` more before it reads its data (a file's image
    /// in memory): as [`Child::reading`], but the limit stays open to the data's announcement.
    pub(crate) fn holding(&mut self, bytes: u64) {
        self.announce(bytes, false);
    }

    fn announce(&mut self, bytes: u64, last: bool) {
        self.announced = self.announced.saturating_add(bytes);
        sys::confine(self.base.saturating_add(self.announced), last);
        self.send(&Message::<()>::Reading(self.announced));
    }

    fn send<T: Serialize>(&mut self, message: &Message<T>) {
        if let Ok(mut line) = serde_json::to_vec(message) {
            line.push(b'\n');
            // A parent that stopped listening (it timed out) kills this child anyway.
            let _ = self.pipe.write_all(&line);
        }
    }
}

/// The address space this process uses now, from `/proc/self/statm`.
fn address_space() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages.saturating_mul(sys::page_size())
}

/// Runs `work` in a forked child and returns its answer. `path` is the file the caller named
/// (errors name it); `proc_path` the name the child opens it by, replaced by `path` in messages;
/// `object` the object errors are placed at when the child dies.
///
/// The child closes every descriptor but its standard streams, its pipe, and `keep` (with
/// libhdf5's own descriptors of the first of `keep`'s files, which libhdf5 reuses when this
/// process has that file open already).
pub(crate) fn run<T, F>(
    path: &Path,
    proc_path: &str,
    object: &str,
    limits: &Limits,
    keep: &[&File],
    work: F,
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(&mut Child) -> Result<T>,
{
    crate::h5::init();
    let io = |what: &str, e: std::io::Error| Error::io(what, e).with_path(path);
    let (pid, read_end) = hdf5_metno::sync::sync(|| -> Result<(libc::pid_t, OwnedFd)> {
        // Inside libhdf5's lock: no other thread of this process is in libhdf5 now, and none
        // can fork one of our children while this pipe's write end is open here, so no other
        // child inherits it.
        let (read_end, write_end) = sys::pipe().map_err(|e| io("cannot create a pipe", e))?;
        let mut kept: Vec<std::os::fd::RawFd> = keep.iter().map(|f| f.as_raw_fd()).collect();
        if let Some(first) = keep.first() {
            kept.extend(sys::hdf5_descriptors_of(first));
        }
        kept.push(write_end.as_raw_fd());
        let before = address_space();
        let placed = object.to_owned();
        let work_memory = limits.work_memory;
        // SAFETY: the child takes no lock another thread may hold: it runs under the libhdf5
        // lock this thread holds (hdf5-metno's lock is reentrant, and its owner is this very
        // thread, the only one in the child), logging is switched off before anything else,
        // nothing prints, and memory allocation is safe after fork in glibc.
        let pid = unsafe {
            sys::fork_into(move || {
                log::set_max_level(log::LevelFilter::Off);
                sys::close_descriptors_except(&kept);
                sys::silence_stderr();
                // Tell the parent the inherited descriptors are closed: it holds libhdf5's lock
                // until then, so no file this process closes meanwhile keeps its lock (flock)
                // alive in this child.
                let mut pipe = File::from(write_end);
                let _ = pipe.write_all(b"\n");
                let base = before.saturating_add(work_memory);
                sys::confine(base, false);
                let mut child = Child {
                    pipe,
                    base,
                    announced: 0,
                };
                let message = answer_of(work, &mut child, placed);
                child.send(&message);
                0
            })
        }
        .map_err(|e| io("cannot fork the isolated HDF5 reader", e))?;
        // Wait, still under the lock, until the child has closed what it inherited. A child that
        // dies first gives the end of the pipe here, and `listen` reports how it died.
        let mut ready = File::from(read_end);
        let _ = ready.read_exact(&mut [0u8; 1]);
        Ok((pid, OwnedFd::from(ready)))
    })?;
    let answer = listen::<T>(pid, read_end, limits);
    outcome(answer, path, proc_path, object, limits)
}

/// The child's answer: what `work` gave, or a `ReaderCrashed` error placed at `object` when it
/// panicked.
fn answer_of<T, F>(work: F, child: &mut Child, object: String) -> Message<T>
where
    F: FnOnce(&mut Child) -> Result<T>,
{
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(child))) {
        Ok(Ok(answer)) => Message::Done(answer),
        Ok(Err(e)) => Message::Failed(WireError::from_error(&e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Message::Failed(WireError {
                kind: ErrorKind::ReaderCrashed.as_str().to_owned(),
                message: format!("the isolated HDF5 reader panicked: {what}"),
                object: Some(object),
                offset: None,
            })
        }
    }
}

/// What the parent makes of what it heard from the child: the child's answer or error, or a
/// `ReaderCrashed` error (placed at `object`) saying how the child ended without one.
fn outcome<T>(
    answer: Heard<T>,
    path: &Path,
    proc_path: &str,
    object: &str,
    limits: &Limits,
) -> Result<T> {
    let crashed = |why: String| {
        Error::new(
            ErrorKind::ReaderCrashed,
            format!(
                "the isolated HDF5 reader {why}; the file is damaged or hostile (or needs more \
                 than the reader's limits: {} s, {} MiB of working memory)",
                limits.timeout.as_secs(),
                limits.work_memory >> 20
            ),
        )
        .with_path(path)
        .at(Location::Object(object.to_owned()))
    };
    match answer {
        Heard::Answer(message, ended) => match (message, ended) {
            // A complete answer stands even when the exit status went to another waiter.
            (Message::Done(answer), Ended::Exited(0) | Ended::Unknown) => Ok(answer),
            (Message::Failed(e), _) => Err(e.into_error(path, proc_path)),
            (_, Ended::Signaled(signal)) => {
                Err(crashed(format!("died with {}", sys::signal_name(signal))))
            }
            (_, Ended::Exited(code)) => Err(crashed(format!("exited with status {code}"))),
            (Message::Reading(_), Ended::Unknown) => Err(crashed(UNREAPED.to_owned())),
        },
        Heard::Nothing(Ended::Signaled(signal)) => {
            Err(crashed(format!("died with {}", sys::signal_name(signal))))
        }
        Heard::Nothing(Ended::Unknown) => Err(crashed(UNREAPED.to_owned())),
        Heard::Nothing(Ended::Exited(code)) => Err(crashed(format!(
            "exited with status {code} without an answer"
        ))),
        Heard::TimedOut(after) => Err(crashed(format!(
            "did not finish within {:.1} s and was killed",
            after.as_secs_f64()
        ))),
        Heard::TooBig(resident) => Err(crashed(format!(
            "grew to {} MiB of resident memory and was killed",
            resident >> 20
        ))),
        Heard::TooLong => Err(crashed(format!(
            "answered with more than {} MiB and was killed",
            MAX_REPLY >> 20
        ))),
        Heard::Garbled(why) => Err(crashed(format!(
            "sent an answer that does not parse: {why}"
        ))),
        Heard::Lost(e) => {
            Err(Error::io("waiting for the isolated HDF5 reader failed", e).with_path(path))
        }
    }
}

/// Why a reader that ended without an answer cannot say how, when the caller reaps children
/// itself.
const UNREAPED: &str = "ended without an answer, and its exit status went to another waiter \
     (this process ignores SIGCHLD or reaps every child itself)";

/// What the parent heard from its child.
enum Heard<T> {
    Answer(Message<T>, Ended),
    Nothing(Ended),
    TimedOut(Duration),
    TooLong,
    /// Its resident memory passed its budget (bytes).
    TooBig(u64),
    Garbled(String),
    Lost(std::io::Error),
}

/// Reads the child's lines until it ends, moving the deadline when it announces a read, and
/// reaps it (killing it on the deadline or an oversized answer).
fn listen<T: DeserializeOwned>(pid: libc::pid_t, pipe: OwnedFd, limits: &Limits) -> Heard<T> {
    let start = Instant::now();
    let mut deadline = start + limits.timeout;
    let mut lines = Lines {
        pipe: File::from(pipe),
        buffer: Vec::new(),
        last: None,
    };
    let give_up = |heard: Heard<T>| {
        let _ = sys::kill_and_reap(pid);
        heard
    };
    if let Err(e) = sys::set_nonblocking(lines.pipe.as_fd()) {
        return give_up(Heard::Lost(e));
    }
    // The address-space limit the child sets on itself is the first fence; its resident memory,
    // watched from here at every poll, is the second, for where that limit cannot hold (under
    // AddressSanitizer, whose shadow memory needs terabytes of address space).
    // The budget is counted from what the child holds at the fork, plus its work memory and
    // the total it announced.
    let base_budget = sys::resident_bytes(pid)
        .unwrap_or(0)
        .saturating_add(limits.work_memory);
    let mut budget = base_budget;
    loop {
        if let Some(resident) = sys::resident_bytes(pid)
            && resident > budget
        {
            return give_up(Heard::TooBig(resident));
        }
        let now = Instant::now();
        if now >= deadline {
            return give_up(Heard::TimedOut(now - start));
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        let readable = match sys::wait_readable(lines.pipe.as_fd(), wait) {
            Ok(readable) => readable,
            Err(e) => return give_up(Heard::Lost(e)),
        };
        let mut at_end = false;
        if readable {
            match lines.take(limits) {
                Ok(Taken {
                    at_end: end,
                    reading,
                }) => {
                    at_end = end;
                    if let Some((extended, announced)) = reading {
                        deadline = Instant::now() + extended;
                        budget = base_budget.saturating_add(announced);
                    }
                }
                Err(heard) => return give_up(heard),
            }
        }
        if at_end || !readable {
            match sys::try_reap(pid) {
                Ok(Some(ended)) => {
                    // What the child wrote before it ended is all in the pipe now.
                    if let Err(heard) = lines.take(limits) {
                        return heard;
                    }
                    return match lines.last {
                        Some(message) => Heard::Answer(message, ended),
                        None => Heard::Nothing(ended),
                    };
                }
                // The pipe is closed and the child is exiting: it is reaped in a moment.
                Ok(None) if at_end => std::thread::sleep(Duration::from_millis(1)),
                Ok(None) => {}
                Err(e) => return give_up(Heard::Lost(e)),
            }
        }
    }
}

/// The parent's end of the pipe, the bytes of a line not yet complete, and the last answer.
struct Lines<T> {
    pipe: File,
    buffer: Vec<u8>,
    last: Option<Message<T>>,
}

/// What one drain of the pipe found.
struct Taken {
    at_end: bool,
    /// The time the child has from now on and the total bytes it announced, when it announced
    /// a read.
    reading: Option<(Duration, u64)>,
}

impl<T: DeserializeOwned> Lines<T> {
    /// Reads what the pipe holds now and parses the complete lines.
    fn take(&mut self, limits: &Limits) -> Result<Taken, Heard<T>> {
        let mut chunk = [0u8; 64 << 10];
        let mut taken = Taken {
            at_end: false,
            reading: None,
        };
        loop {
            match self.pipe.read(&mut chunk) {
                Ok(0) => {
                    taken.at_end = true;
                    break;
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Heard::Lost(e)),
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(Heard::TooLong);
            }
        }
        while let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=newline).collect();
            match serde_json::from_slice::<Message<T>>(&line) {
                Ok(Message::Reading(bytes)) => {
                    let extra = bytes / limits.bytes_per_second.max(1);
                    taken.reading = Some((limits.timeout + Duration::from_secs(extra), bytes));
                }
                Ok(message) => self.last = Some(message),
                Err(e) => return Err(Heard::Garbled(e.to_string())),
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn limits(timeout: u64) -> Limits {
        Limits {
            timeout: Duration::from_secs(timeout),
            bytes_per_second: 1 << 20,
            work_memory: 256 << 20,
        }
    }

    fn run_in_reader<T: Serialize + DeserializeOwned>(
        limits: &Limits,
        work: impl FnOnce(&mut Child) -> Result<T>,
    ) -> Result<T> {
        run(Path::new("some.h5"), "", "/obj", limits, &[], work)
    }

    #[test]
    fn answers_and_errors_come_back_from_the_reader() {
        assert_eq!(
            run_in_reader(&limits(60), |_| Ok(vec![1u32, 2, 3])).unwrap(),
            [1, 2, 3]
        );
        let err = run_in_reader::<()>(&limits(60), |_| {
            Err(Error::new(ErrorKind::Corrupt, "bad bytes").at_offset(17))
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert_eq!(err.to_string(), "some.h5: byte 17: bad bytes");
    }

    #[test]
    fn a_reader_killed_by_a_signal_is_reader_crashed_naming_the_signal() {
        let err = run_in_reader::<()>(&limits(60), |_| std::process::abort()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReaderCrashed);
        assert!(err.to_string().contains("SIGABRT"), "{err}");
        assert_eq!(err.location(), Some(&Location::Object("/obj".to_owned())));
    }

    #[test]
    fn a_panicking_reader_is_an_error_not_a_panic() {
        let err = run_in_reader::<()>(&limits(60), |_| panic!("boom")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReaderCrashed);
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn a_hung_reader_is_killed_at_its_deadline() {
        let err = run_in_reader::<()>(&limits(1), |_| {
            loop {
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReaderCrashed);
        assert!(err.to_string().contains("did not finish within"), "{err}");
    }

    #[test]
    fn a_reader_whose_resident_memory_outgrows_its_budget_is_killed() {
        // The address-space limit gone, as under AddressSanitizer: only the parent's watch on the
        // child's resident memory stops it.
        let err = run_in_reader::<()>(&limits(60), |_| {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: a valid rlimit structure; the hard limit was left unlimited.
            unsafe { libc::setrlimit(libc::RLIMIT_AS, &unlimited) };
            let mut held = Vec::new();
            for _ in 0..32 {
                held.push(vec![1u8; 64 << 20]);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReaderCrashed);
        assert!(err.to_string().contains("resident memory"), "{err}");
    }

    #[test]
    fn pages_of_mapped_files_do_not_count_against_the_readers_memory() {
        // A reader maps the pages of files (its own code, which a forked child maps again as it
        // runs; a file libhdf5 maps): the kernel can drop them at any time, and they are not
        // memory a hostile file makes it allocate. 64 MiB of a mapped file, read through, under
        // 16 MiB of work memory.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mapped");
        std::fs::write(&path, vec![7u8; 64 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        let small = Limits {
            work_memory: 16 << 20,
            ..limits(60)
        };
        let sum = run(Path::new("some.h5"), "", "/obj", &small, &[&file], |_| {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: a valid rlimit structure; the hard limit was left unlimited.
            unsafe { libc::setrlimit(libc::RLIMIT_AS, &unlimited) };
            let len = 64usize << 20;
            // SAFETY: a fresh read-only shared mapping of a file this process holds open, of
            // its length; it is read only as bytes and unmapped before it goes.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            let mut sum = 0u64;
            for page in (0..len).step_by(4096) {
                // SAFETY: `page` is inside the mapping made above.
                sum += u64::from(unsafe { std::ptr::read_volatile(base.cast::<u8>().add(page)) });
                if page % (4 << 20) == 0 {
                    // Slow enough for the parent's watch to look more than once.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // SAFETY: the mapping made above, no longer read.
            unsafe { libc::munmap(base, len) };
            Ok(sum)
        })
        .unwrap();
        assert_eq!(sum, 7 * (64 << 20) / 4096);
    }

    #[test]
    fn the_reader_cannot_allocate_past_its_limit() {
        let refused = run_in_reader(&limits(60), |_| {
            let mut v: Vec<u8> = Vec::new();
            Ok(v.try_reserve_exact(1 << 30).is_err())
        })
        .unwrap();
        assert!(refused, "1 GiB was allocated under a 256 MiB budget");
        // Announcing a read raises the limit by that much.
        let granted = run_in_reader(&limits(60), |child| {
            child.reading(1 << 30);
            let mut v: Vec<u8> = Vec::new();
            Ok(v.try_reserve_exact(1 << 30).is_ok())
        })
        .unwrap();
        assert!(granted, "an announced read of 1 GiB was refused");
    }

    #[test]
    fn announcing_a_read_moves_the_deadline_on() {
        // 3 s before data; the announced 64 MiB at 1 MiB/s give 64 s more, far more than the
        // 6 s the work takes.
        let done = run_in_reader(&limits(3), |child| {
            child.reading(64 << 20);
            std::thread::sleep(Duration::from_secs(6));
            Ok(true)
        })
        .unwrap();
        assert!(done);
    }
}

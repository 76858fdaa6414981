//! What the HDF5 backend's test binaries share: the lock under which tests that spawn processes
//! take turns, and the way a test binary runs itself as a child doing one task (its `child_entry`
//! test reads the task back with [`child_task`]) and follows the lines the child prints.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The environment variable that turns a test binary into a child doing one task.
const TASK: &str = "NDSTORE_HDF5_TEST_TASK";

/// The environment variable holding the child's arguments, one a line.
const ARGS: &str = "NDSTORE_HDF5_TEST_ARGS";

/// Serialises the tests of one binary that spawn processes or depend on who holds a file's lock.
///
/// libhdf5 opens files without `O_CLOEXEC`; the crate sets it right after each open, but a
/// process another test spawns in that instant keeps the descriptor, and with it the file's lock,
/// for its whole life: a lock test would then see a lock nobody it knows holds. Temporaries are
/// written with libhdf5's locking off (`spawn_race.rs`), so this is left only for the files
/// libhdf5 opens with its lock: a read's shared lock, an in-place writer's target.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A command running this test binary as a child doing `task` with `args` (which must not hold
/// line breaks): it runs only the binary's `child_entry` test, which gets them from
/// [`child_task`]. Standard streams are the caller's to set.
pub fn child_command(task: &str, args: &[&str]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(TASK, task)
        .env(ARGS, args.join("\n"));
    command
}

/// The task and arguments this binary was started with by [`child_command`], or `None` when it
/// runs as a test binary (the `child_entry` test then does nothing).
pub fn child_task() -> Option<(String, Vec<String>)> {
    let task = std::env::var(TASK).ok()?;
    let args = std::env::var(ARGS)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    Some((task, args))
}

/// The lines of `stream`, read by a thread of their own.
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The next line holding one of `words`, from the first of them on: the test harness's own words
/// are not the child's, and may begin its first line. Fails after `timeout` without one, saying
/// it was `waiting` for it.
pub fn next_line_with(
    lines: &Receiver<String>,
    words: &[&str],
    timeout: Duration,
    waiting: &str,
) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no word from the child in {timeout:?}, waiting for {waiting}")
        });
        if let Some(at) = words.iter().filter_map(|word| line.find(word)).min() {
            return line[at..].to_owned();
        }
    }
}

/// The sorted paths of the datasets ndstore loads in the file at `path`, listed by the isolated
/// reader.
pub fn dataset_names(path: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = ndstore_hdf5::list(path)
        .unwrap()
        .into_iter()
        .filter(|e| e.meta().is_some())
        .map(|e| e.path)
        .collect();
    names.sort();
    names
}

/// The errors of loading dataset `name` of the file at `path` through the isolated reader and
/// in process (both loads must fail).
pub fn load_errors(path: &std::path::Path, name: &str) -> [ndstore_core::Error; 2] {
    [
        ndstore_hdf5::load_dyn(path, name).map(|_| ()).unwrap_err(),
        ndstore_hdf5::trusted::load_dyn(path, name)
            .map(|_| ())
            .unwrap_err(),
    ]
}

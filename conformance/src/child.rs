//! Child processes for checks that need another process: the harness re-runs the current test
//! binary, filtered to `conformance::child_entry`, with a task in an environment variable.
//! The child answers with [`Reply`] values (see [`crate::protocol`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use ndstore_core::{Backend, DynArray, Order, SaveOptions};

use crate::checks::{Sizes, versioned};
use crate::fixtures::Fixtures;
pub use crate::protocol::PREFIX;
use crate::protocol::{Failure, Found, Reply, ReplyPage, outcome, replies};

/// The variable that carries a child's task.
pub const TASK_ENV: &str = "NDSTORE_CONFORMANCE_CHILD";

/// The variable that names the backend under test, for test binaries that hold several (the
/// self-tests' broken backends): their child entry picks the backend by it.
pub const BACKEND_ENV: &str = "NDSTORE_CONFORMANCE_BACKEND";

/// The backend whose check runs now (checks run one at a time per process).
static CURRENT_BACKEND: std::sync::Mutex<&'static str> = std::sync::Mutex::new("");

/// Records which backend the check about to run is for; children started from now on are told.
pub fn set_current_backend(name: &'static str) {
    *CURRENT_BACKEND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
}

/// Environment variables every child started from now on gets, beside the task.
static CHILD_ENV: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Gives every child started from now on the variable `key` with `value`: for a backend whose
/// children must find what the parent set up (the address of the local S3 server the parent
/// started), without changing the parent's own environment. A later value of `key` replaces
/// an earlier one.
pub fn pass_to_children(key: &str, value: &str) {
    let mut env = CHILD_ENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

fn current_backend() -> &'static str {
    *CURRENT_BACKEND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a child process does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Task {
    /// Load `path` and reply [`Reply::Loaded`]: its canonical form, or the error.
    Load {
        /// The file to load.
        path: PathBuf,
    },
    /// Load `path` `loads` times, replying [`Reply::Load`] after each: the index in
    /// `versions` of the version it held (version 0 of writer `w` with `n` elements), another
    /// array that is none of them, or the error.
    LoadVersions {
        /// The file, replaced meanwhile by another process.
        path: PathBuf,
        /// The (writer, element count) of each version it may hold.
        versions: Vec<(u64, usize)>,
        /// How many loads.
        loads: u64,
    },
    /// Save versioned arrays forever (until killed), replying [`Reply::Ack`] `i` after save
    /// `i` returned.
    SaveLoop {
        /// The target.
        path: PathBuf,
        /// Which writer this is (selects the versions' values).
        writer: u64,
        /// Stop after this many saves (`u64::MAX` for until killed).
        count: u64,
        /// How many elements each version has.
        sizes: Sizes,
    },
    /// Save one array (version `version` of writer 0); reply [`Reply::Saved`] with what the
    /// save returned.
    SaveOnce {
        /// The target.
        path: PathBuf,
        /// Which version.
        version: u64,
        /// The opt-ins of the replace policy.
        policy: Policy,
    },
    /// Open an in-place streaming writer, append `rows` rows, optionally flush, then drop it
    /// without committing.
    DropInPlaceWriter {
        /// The target.
        path: PathBuf,
        /// Rows to append before dropping: sample rows when small, versioned rows (the
        /// [`fd_rows`]) when large.
        scale: crate::scenario::Scale,
    },
    /// Open `path` in place, then forever: write in-place version `i` (`len` elements), sync,
    /// reply [`Reply::Ack`] `i`.
    InPlaceLoop {
        /// The target.
        path: PathBuf,
        /// The array's element count.
        len: usize,
    },
    /// Open `path` in place, write version `version` of writer 3, and drop the handle unclosed.
    DropInPlaceHandle {
        /// The target.
        path: PathBuf,
        /// The version to write.
        version: u64,
        /// The array's element count.
        len: usize,
    },
    /// Try to open `path` in place and to save it in place; reply [`Reply::TriedInPlace`] with
    /// the outcome of each.
    TryInPlace {
        /// The target.
        path: PathBuf,
    },
    /// Run `scenario` on `dir/file`. With `attach`, say [`Reply::Ready`] and wait for a line
    /// on stdin first (a tracer attaches meanwhile). Replies [`Reply::Ran`] in the slot at
    /// `reply` (see [`crate::protocol::ReplySlot`]): a failure injected into every later
    /// write would also fail a reply on a pipe.
    Scenario {
        /// The directory the operation works in.
        dir: PathBuf,
        /// The target's name in it.
        file: String,
        /// What to run.
        scenario: crate::scenario::Scenario,
        /// How large its arrays are.
        scale: crate::scenario::Scale,
        /// Wait for a tracer.
        attach: bool,
        /// The reply slot.
        reply: PathBuf,
    },
    /// Open a handle on `path`, write to it, reply [`Reply::Ready`] and wait for a line on stdin (a
    /// tracer that fails the next fsync attaches); then sync twice, finish the handle, save the
    /// same data afresh and reload it, replying [`Reply::Synced`] and [`Reply::Finished`].
    Poison {
        /// The target (holding the in-place version for `InPlace`).
        path: PathBuf,
        /// Which handle.
        handle: PoisonHandle,
        /// The handle's durability: only flushed (its close or commit does not sync), or
        /// synced.
        flushed: bool,
        /// How much it writes.
        scale: crate::scenario::Scale,
    },
    /// Add `count` arrays to the file at `path` through the fixtures' editor, named
    /// `w{writer}_{i}`, replying [`Reply::Ack`] `i` after each addition returned.
    EditLoop {
        /// The file edited.
        path: PathBuf,
        /// Which writer this is (selects the names and values).
        writer: u64,
        /// How many additions.
        count: u64,
    },
    /// A streaming writer that meets a failed write inside an append, and is used on: see
    /// [`writer_fault`]. It replies [`Reply::Returned`] in the slot at `reply`, since the
    /// failure may be injected into every later write, a reply's on a pipe too.
    WriterFault {
        /// The target.
        path: PathBuf,
        /// In place (or atomic).
        in_place: bool,
        /// The failing block's row count.
        rows: usize,
        /// How the failure comes.
        how: FaultSource,
        /// The reply slot.
        reply: PathBuf,
    },
    /// In `dir`, a tiny file system: save a small version, then one too large for it, then a
    /// small one again; reply [`Reply::FullDisk`] with each outcome.
    FullDisk {
        /// The mount point.
        dir: PathBuf,
        /// The target's name.
        file: String,
        /// Small versions (768 B, then 768 KiB that does not fit), or 64 MiB ones (the second
        /// does not fit beside the first).
        scale: crate::scenario::Scale,
    },
    /// Under an address-space limit, make and load each damaged file of a BI list, replying
    /// [`Reply::Started`] before each and [`Reply::Result`] after, then [`Reply::Done`]; fail
    /// at once when the limit cannot be set.
    BadInputs {
        /// A file listing the cases, one JSON object per line (a list in the environment would
        /// outgrow its size limit).
        list: PathBuf,
        /// Where the damaged files are made, one at a time.
        scratch: PathBuf,
        /// The address-space limit, in bytes.
        memory_limit: u64,
    },
}

/// The opt-ins of the replace policy a [`Task::SaveOnce`] gives its save.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `SaveOptions::replace_read_only`.
    pub replace_read_only: bool,
    /// `SaveOptions::allow_owner_change`.
    pub allow_owner_change: bool,
}

/// Where a [`Task::WriterFault`]'s failure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultSource {
    /// A tracer that attaches after the first flush (the child replies `Ready` and waits) and
    /// fails a write inside the next append.
    Tracer,
    /// Marks around the failing append (failed opens of the start and commit marks), for a
    /// recording that counts its writes; nothing fails.
    Marks,
    /// A file-size limit (`RLIMIT_FSIZE`, SIGXFSZ ignored) this many bytes above the file's size
    /// after the first flush, lifted after the failing append: the append's writes stop short,
    /// then fail with EFBIG, as on a file system that ran out of room mid-write. The limit holds
    /// for each file on its own, so for a tree target (whose appends write new files) it is
    /// this many bytes, not above anything.
    SizeLimit(u64),
}

/// The handles whose poisoning the FS check tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoisonHandle {
    /// A streaming writer writing in place.
    WriterInPlace,
    /// A streaming writer writing a temporary file.
    WriterAtomic,
    /// An in-place handle (a map, a dataset).
    InPlace,
}

/// Starts a child running `task`, with stdout piped.
pub fn spawn(task: &Task) -> Result<Child, String> {
    command(task)?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child process: {e}"))
}

/// The command that runs `task` in a child (the caller may adjust it before spawning).
pub fn command(task: &Task) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let json = serde_json::to_string(task).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "conformance::child_entry",
        "--nocapture",
        "--test-threads",
        "1",
        "--quiet",
    ])
    .env(TASK_ENV, json)
    .env(BACKEND_ENV, current_backend())
    .env_remove("NDSTORE_CONFORMANCE_OUT")
    .stdin(Stdio::null());
    let env = CHILD_ENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    Ok(cmd)
}

/// Runs `cmd`, a [`Task::SaveOnce`] child (adjusted, say, to run as another user), and
/// returns its exit status and what its save returned, when it said.
///
/// # Errors
///
/// When the child cannot run, or its replies do not parse.
pub fn save_outcome(
    mut cmd: Command,
) -> Result<(std::process::ExitStatus, Option<crate::protocol::Outcome>), String> {
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let saved = replies(&output.stdout)?.into_iter().find_map(|r| match r {
        Reply::Saved(outcome) => Some(outcome),
        _ => None,
    });
    Ok((output.status, saved))
}

/// Runs `task` to completion and returns its replies.
pub fn run(task: &Task) -> Result<Vec<Reply>, String> {
    let child = spawn(task)?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    let replies = replies(&output.stdout)?;
    if !output.status.success() {
        return Err(format!(
            "the child failed ({}); its last words: {:?}",
            output.status,
            replies.last()
        ));
    }
    Ok(replies)
}

/// Canonical text for an array, equal in parent and child exactly when the arrays are the
/// same: kind, shape, and the element bytes in C order.
pub fn canonical(array: &DynArray) -> String {
    let mut bytes = Vec::new();
    ndstore_core::with_dyn_array!(array, |a| {
        let _ = ndstore_core::__private::codec::write_elements(
            &a.view(),
            Order::C,
            ndstore_core::ByteOrder::native(),
            &mut |b| {
                bytes.extend_from_slice(b);
                Ok(())
            },
        );
    });
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} {:?} {hex}", array.kind(), array.shape())
}

/// The entry point of child processes: runs the task in the environment, if any, against
/// `backend` with its `fixtures`.
pub fn entry(backend: &dyn Backend, fixtures: &dyn Fixtures) {
    let Ok(json) = std::env::var(TASK_ENV) else {
        return;
    };
    let task: Task = match serde_json::from_str(&json) {
        Ok(task) => task,
        Err(e) => {
            Reply::Error(format!("bad task: {e}")).say();
            std::process::exit(2);
        }
    };
    let code = run_task(backend, fixtures, task);
    std::process::exit(code);
}

/// Says that the task could not go on, with `message`.
fn say_error(message: impl std::fmt::Display) {
    Reply::Error(message.to_string()).say();
}

fn run_task(backend: &dyn Backend, fixtures: &dyn Fixtures, task: Task) -> i32 {
    match task {
        Task::Load { path } => load(backend, &path),
        Task::LoadVersions {
            path,
            versions,
            loads,
        } => load_versions(backend, &path, &versions, loads),
        Task::SaveLoop {
            path,
            writer,
            count,
            sizes,
        } => save_loop(backend, &path, writer, count, sizes),
        Task::InPlaceLoop { path, len } => in_place_loop(backend, &path, len),
        Task::DropInPlaceHandle { path, version, len } => {
            drop_in_place_handle(backend, &path, version, len)
        }
        Task::TryInPlace { path } => try_in_place(backend, &path),
        Task::SaveOnce {
            path,
            version,
            policy,
        } => save_once(backend, &path, version, policy),
        Task::DropInPlaceWriter { path, scale } => drop_in_place_writer(backend, &path, scale),
        Task::Scenario {
            dir,
            file,
            scenario,
            scale,
            attach,
            reply,
        } => run_scenario(backend, &dir, &file, (scenario, scale), attach, &reply),
        Task::Poison {
            path,
            handle,
            flushed,
            scale,
        } => poison(backend, &path, handle, flushed, scale),
        Task::WriterFault {
            path,
            in_place,
            rows,
            how,
            reply,
        } => match ReplyPage::map(&reply) {
            Ok(page) => writer_fault(backend, &path, (in_place, rows), how, page),
            Err(e) => {
                say_error(e);
                1
            }
        },
        Task::FullDisk { dir, file, scale } => full_disk(backend, &dir, &file, scale),
        Task::EditLoop {
            path,
            writer,
            count,
        } => edit_loop(backend, fixtures, &path, writer, count),
        Task::BadInputs {
            list,
            scratch,
            memory_limit,
        } => bad_inputs(backend, fixtures, &list, &scratch, memory_limit),
    }
}

/// [`Task::Load`].
fn load(backend: &dyn Backend, path: &Path) -> i32 {
    match backend.load(path) {
        Ok((_, array)) => {
            Reply::Loaded(Ok(canonical(&array))).say();
            0
        }
        Err(e) => {
            Reply::Loaded(Err(Failure::from(&e))).say();
            1
        }
    }
}

/// [`Task::LoadVersions`].
fn load_versions(backend: &dyn Backend, path: &Path, versions: &[(u64, usize)], loads: u64) -> i32 {
    let arrays: Vec<DynArray> = versions
        .iter()
        .map(|&(writer, n)| crate::checks::versioned_with_len(backend, writer, 0, n))
        .collect();
    for i in 0..loads {
        match crate::checks::load(backend, path) {
            Ok((_, array)) => {
                let found = arrays
                    .iter()
                    .position(|a| crate::checks::same_bits(a, &array))
                    .map_or(Found::Other, Found::Version);
                Reply::Load { i, found }.say();
            }
            Err(e) => Reply::Load {
                i,
                found: Found::Error(e),
            }
            .say(),
        }
    }
    0
}

/// [`Task::SaveLoop`].
fn save_loop(backend: &dyn Backend, path: &Path, writer: u64, count: u64, sizes: Sizes) -> i32 {
    Reply::Ready.say();
    for i in 0..count {
        let array = sizes.version(backend, writer, i);
        if let Err(e) = backend.save(path, &array, &SaveOptions::default()) {
            say_error(e);
            return 1;
        }
        Reply::Ack(i).say();
    }
    0
}

/// [`Task::InPlaceLoop`].
fn in_place_loop(backend: &dyn Backend, path: &Path, len: usize) -> i32 {
    let mut handle = match backend.open_in_place(path, &SaveOptions::default()) {
        Ok(h) => h,
        Err(e) => {
            say_error(e);
            return 1;
        }
    };
    Reply::Ready.say();
    for i in 0.. {
        let array = crate::checks::versioned_with_len(backend, 0, i, len);
        if let Err(e) = handle.write_all(&array).and_then(|()| handle.sync()) {
            say_error(e);
            return 1;
        }
        Reply::Ack(i).say();
    }
    0
}

/// [`Task::DropInPlaceHandle`].
fn drop_in_place_handle(backend: &dyn Backend, path: &Path, version: u64, len: usize) -> i32 {
    let array = crate::checks::versioned_with_len(backend, 3, version, len);
    match backend
        .open_in_place(path, &SaveOptions::default())
        .and_then(|mut h| h.write_all(&array).map(|()| h))
    {
        Ok(handle) => {
            drop(handle);
            Reply::Dropped.say();
            0
        }
        Err(e) => {
            say_error(e);
            1
        }
    }
}

/// [`Task::TryInPlace`].
fn try_in_place(backend: &dyn Backend, path: &Path) -> i32 {
    let open = outcome(&backend.open_in_place(path, &SaveOptions::default()));
    let array = versioned(backend, 0, 0);
    let save = outcome(&backend.save(path, &array, &SaveOptions::new().in_place()));
    Reply::TriedInPlace { open, save }.say();
    0
}

/// [`Task::SaveOnce`].
fn save_once(backend: &dyn Backend, path: &Path, version: u64, policy: Policy) -> i32 {
    let array = versioned(backend, 0, version);
    let mut options = SaveOptions::default();
    if policy.replace_read_only {
        options = options.replace_read_only();
    }
    if policy.allow_owner_change {
        options = options.allow_owner_change();
    }
    Reply::Saved(outcome(&backend.save(path, &array, &options))).say();
    0
}

/// [`Task::DropInPlaceWriter`].
fn drop_in_place_writer(backend: &dyn Backend, path: &Path, scale: crate::scenario::Scale) -> i32 {
    let chunk = fd_rows(backend, scale);
    let row_shape = chunk.shape()[1..].to_vec();
    let dtype = ndstore_core::DType::native(chunk.kind());
    match backend.writer(path, dtype, &row_shape, &SaveOptions::new().in_place()) {
        Ok(mut writer) => {
            if let Err(e) = writer.append(&chunk) {
                say_error(e);
                return 1;
            }
            drop(writer);
            Reply::Dropped.say();
            0
        }
        Err(e) => {
            say_error(e);
            1
        }
    }
}

/// [`Task::Scenario`]: replies in the slot at `reply`, since every later write may fail.
fn run_scenario(
    backend: &dyn Backend,
    dir: &Path,
    file: &str,
    (scenario, scale): (crate::scenario::Scenario, crate::scenario::Scale),
    attach: bool,
    reply: &Path,
) -> i32 {
    let page = match ReplyPage::map(reply) {
        Ok(page) => page,
        Err(e) => {
            say_error(e);
            return 1;
        }
    };
    if attach && !wait_for_go() {
        return 2;
    }
    let before = crate::scenario::open_descriptors();
    let result = crate::scenario::run(backend, dir, file, scenario, scale);
    let leaked = crate::scenario::open_descriptors() > before;
    page.store(&Reply::Ran {
        ok: result.is_ok(),
        leaked,
    });
    0
}

/// [`Task::EditLoop`].
fn edit_loop(
    backend: &dyn Backend,
    fixtures: &dyn Fixtures,
    path: &Path,
    writer: u64,
    count: u64,
) -> i32 {
    let Some(editor) = fixtures.editor() else {
        say_error("the backend's fixtures have no editor");
        return 1;
    };
    Reply::Ready.say();
    for i in 0..count {
        let array = versioned(backend, writer, i);
        if let Err(e) = (editor.add)(path, &edited_name(writer, i), &array) {
            say_error(e);
            return 1;
        }
        Reply::Ack(i).say();
    }
    0
}

/// [`Task::BadInputs`].
fn bad_inputs(
    backend: &dyn Backend,
    fixtures: &dyn Fixtures,
    list: &Path,
    scratch: &Path,
    memory_limit: u64,
) -> i32 {
    // Without the limit, a reader that allocates what a file claims would take the machine's
    // memory instead of failing here: refuse to run rather than warn.
    if let Err(e) = limit_memory(memory_limit) {
        say_error(format!("cannot limit the address space: {e}"));
        return 3;
    }
    match crate::checks::bad_input::child_cases(backend, fixtures, list, scratch, &Reply::say) {
        Ok(()) => {
            Reply::Done.say();
            0
        }
        Err(e) => {
            say_error(e);
            1
        }
    }
}

/// Caps this process's address space, so an allocation the input cannot justify fails here
/// instead of exhausting the machine; and its core dumps, so a crash costs no disk.
///
/// # Errors
///
/// The operating system's refusal.
pub fn limit_memory(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// This process's address space is capped while it lives: for running damaged files in this
/// process after a child survived them, with the same headroom the child had. The old limit
/// comes back on drop.
pub struct AddressSpaceCap {
    old: libc::rlimit,
}

impl AddressSpaceCap {
    /// Caps this process's address space at what it uses now plus `headroom` bytes (or the
    /// current limit, when that is lower).
    ///
    /// # Errors
    ///
    /// When the current size or limit cannot be read, or the limit cannot be set.
    pub fn new(headroom: u64) -> std::io::Result<AddressSpaceCap> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let used_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))?;
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the current limits into the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let wanted = (used_kib * 1024).saturating_add(headroom) as libc::rlim_t;
        let capped = libc::rlimit {
            rlim_cur: wanted.min(old.rlim_cur),
            rlim_max: old.rlim_max,
        };
        // SAFETY: setrlimit reads the struct and lowers only this process's soft limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &capped) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(AddressSpaceCap { old })
    }
}

impl Drop for AddressSpaceCap {
    fn drop(&mut self) {
        // SAFETY: restores the soft limit read in `new`, which the unchanged hard limit allows.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &self.old) } != 0 {
            log::error!(
                "cannot restore the address-space limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Limits the size of files this process writes to `bytes` (`None`: no limit), with SIGXFSZ
/// ignored so a write past the limit fails with EFBIG instead of killing the process.
fn limit_file_size(bytes: Option<u64>) -> Result<(), String> {
    let value = bytes.map_or(libc::RLIM_INFINITY, |b| b as libc::rlim_t);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: ignoring SIGXFSZ installs no handler of ours; the kernel then fails the write
    // with EFBIG instead of delivering the signal.
    let ignored = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    if ignored == libc::SIG_ERR || rc != 0 {
        return Err(format!(
            "cannot limit the file size: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The blocks of a [`Task::WriterFault`]: a first block flushed before the failure, the block
/// whose append fails (`rows` rows), and a block appended after it. Every element encodes its
/// block and place, so a committed file that holds a block's rows where another's should be is
/// caught.
pub fn fault_blocks(backend: &dyn Backend, rows: usize) -> [DynArray; 3] {
    [
        crate::checks::versioned_rows(backend, 1, 1000),
        crate::checks::versioned_rows(backend, 2, rows),
        crate::checks::versioned_rows(backend, 3, 1000),
    ]
}

/// The calls of a [`Task::WriterFault`] child, in order: its [`Reply::Returned`] says of each
/// whether it returned Ok.
pub const FAULT_CALLS: [&str; 7] = [
    "APPEND0", "FLUSH0", "APPEND1", "APPEND2", "FLUSH", "SYNC", "COMMIT",
];

/// A streaming writer appends and flushes a first block; then one append fails inside (a
/// tracer injects the error, or a file-size limit stops it); then the writer is used on:
/// another append, flush, sync and commit. Replies in its slot page (see [`FAULT_CALLS`]);
/// the parent judges the file.
fn writer_fault(
    backend: &dyn Backend,
    path: &Path,
    (in_place, rows): (bool, usize),
    how: FaultSource,
    page: ReplyPage,
) -> i32 {
    let [first, failing, after] = fault_blocks(backend, rows);
    let options = if in_place {
        SaveOptions::new().in_place()
    } else {
        SaveOptions::default()
    };
    let dtype = ndstore_core::DType::native(first.kind());
    let mut writer = match backend.writer(path, dtype, &first.shape()[1..], &options) {
        Ok(w) => w,
        Err(e) => {
            say_error(e);
            return 1;
        }
    };
    let mut ok = Vec::new();
    ok.push(writer.append(&first).is_ok());
    ok.push(writer.flush().is_ok());
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Err(code) = before_failing_append(path, dir, how) {
        return code;
    }
    ok.push(writer.append(&failing).is_ok());
    if let Err(code) = after_failing_append(dir, how) {
        return code;
    }
    ok.push(writer.append(&after).is_ok());
    ok.push(writer.flush().is_ok());
    ok.push(writer.sync().is_ok());
    ok.push(writer.commit().is_ok());
    page.store(&Reply::Returned(ok));
    0
}

/// Sets up the failure of a [`Task::WriterFault`]'s failing append, as `how` says; `Err`
/// holds the exit code when that failed.
fn before_failing_append(path: &Path, dir: &Path, how: FaultSource) -> Result<(), i32> {
    match how {
        FaultSource::Tracer => {
            if !wait_for_go() {
                return Err(2);
            }
            // The tracer stays attached to the end: the marks tell its log's calls of the
            // failing append from those after it.
            crate::scenario::mark(dir, crate::syscalls::MARK_START);
        }
        FaultSource::Marks => crate::scenario::mark(dir, crate::syscalls::MARK_START),
        FaultSource::SizeLimit(extra) => {
            let written = ndstore_core::list_temps(path)
                .ok()
                .and_then(|t| t.into_iter().next())
                .unwrap_or_else(|| path.to_path_buf());
            // A tree's size is no file's: its files start empty.
            let size = match written.metadata() {
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            };
            if let Err(e) = limit_file_size(Some(size + extra)) {
                say_error(e);
                return Err(1);
            }
        }
    }
    Ok(())
}

/// Ends what [`before_failing_append`] set up: the commit mark, or the lifted size limit.
fn after_failing_append(dir: &Path, how: FaultSource) -> Result<(), i32> {
    match how {
        FaultSource::Marks => crate::scenario::mark(dir, crate::syscalls::MARK_COMMITTED),
        FaultSource::SizeLimit(_) => {
            if let Err(e) = limit_file_size(None) {
                say_error(e);
                return Err(1);
            }
        }
        FaultSource::Tracer => crate::scenario::mark(dir, crate::syscalls::MARK_COMMITTED),
    }
    Ok(())
}

/// Replies [`Reply::Ready`] and waits for a line on stdin; false when stdin closed first.
fn wait_for_go() -> bool {
    Reply::Ready.say();
    let mut line = String::new();
    matches!(std::io::stdin().read_line(&mut line), Ok(n) if n > 0)
}

/// A handle that syncs: a streaming writer or an in-place handle.
enum SyncHandle {
    Writer(Box<dyn ndstore_core::ArrayWriter>),
    InPlace(Box<dyn ndstore_core::InPlaceArray>),
}

fn poison(
    backend: &dyn Backend,
    path: &Path,
    handle: PoisonHandle,
    flushed: bool,
    scale: crate::scenario::Scale,
) -> i32 {
    let data = poison_data(backend, handle, scale);
    let mut handle = match open_poisoned(backend, path, handle, flushed, &data) {
        Ok(h) => h,
        Err(e) => {
            say_error(e);
            return 1;
        }
    };
    if !wait_for_go() {
        return 2;
    }
    let (first, second) = match &mut handle {
        SyncHandle::Writer(w) => (w.sync(), w.sync()),
        SyncHandle::InPlace(h) => (h.sync(), h.sync()),
    };
    Reply::Synced {
        first: outcome(&first),
        second: outcome(&second),
    }
    .say();
    let finished = match handle {
        SyncHandle::Writer(w) => w.commit(),
        SyncHandle::InPlace(h) => h.close(),
    };
    Reply::Finished(outcome(&finished)).say();
    drop(data);
    0
}

/// Opens the handle a [`Task::Poison`] child poisons and writes `data` through it.
fn open_poisoned(
    backend: &dyn Backend,
    path: &Path,
    handle: PoisonHandle,
    flushed: bool,
    data: &DynArray,
) -> ndstore_core::Result<SyncHandle> {
    let durability = if flushed {
        ndstore_core::Durability::Flushed
    } else {
        ndstore_core::Durability::Synced
    };
    match handle {
        PoisonHandle::InPlace => backend
            .open_in_place(path, &SaveOptions::new().durability(durability))
            .and_then(|mut h| h.write_all(data).map(|()| SyncHandle::InPlace(h))),
        PoisonHandle::WriterInPlace | PoisonHandle::WriterAtomic => {
            let row_shape = data.shape()[1..].to_vec();
            let options = if handle == PoisonHandle::WriterInPlace {
                SaveOptions::new().in_place()
            } else {
                SaveOptions::default()
            }
            .durability(durability);
            backend
                .writer(
                    path,
                    ndstore_core::DType::native(data.kind()),
                    &row_shape,
                    &options,
                )
                .and_then(|mut w| w.append(data).map(|()| SyncHandle::Writer(w)))
        }
    }
}

/// The rows a [`Task::DropInPlaceWriter`] child appends: six sample rows, or 64 MiB of
/// versioned rows.
pub fn fd_rows(backend: &dyn Backend, scale: crate::scenario::Scale) -> DynArray {
    match scale {
        crate::scenario::Scale::Small => crate::checks::rows_for(backend, 6).1,
        crate::scenario::Scale::Large => {
            crate::checks::versioned_rows(backend, 1, crate::checks::large_rows(backend))
        }
    }
}

/// The data a [`Task::Poison`] child writes through `handle`.
pub fn poison_data(
    backend: &dyn Backend,
    handle: PoisonHandle,
    scale: crate::scenario::Scale,
) -> DynArray {
    use crate::scenario::Scale;
    match (handle, scale) {
        (PoisonHandle::InPlace, Scale::Small) => {
            crate::checks::versioned_with_len(backend, 0, 1, crate::checks::IN_PLACE_LEN)
        }
        (PoisonHandle::InPlace, Scale::Large) => {
            crate::checks::versioned_with_len(backend, 0, 1, crate::checks::large_len(backend))
        }
        (_, Scale::Small) => crate::checks::rows_for(backend, 64).1,
        (_, Scale::Large) => {
            crate::checks::versioned_rows(backend, 1, crate::checks::large_rows(backend))
        }
    }
}

fn full_disk(backend: &dyn Backend, dir: &Path, file: &str, scale: crate::scenario::Scale) -> i32 {
    let path = dir.join(file);
    let (small, big, again) = match scale {
        crate::scenario::Scale::Small => (
            versioned(backend, 0, 0),
            crate::checks::versioned_with_len(backend, 0, 1, 96 * 1024),
            versioned(backend, 0, 2),
        ),
        crate::scenario::Scale::Large => {
            let n = crate::checks::large_len(backend);
            (
                crate::checks::versioned_with_len(backend, 0, 0, n),
                crate::checks::versioned_with_len(backend, 0, 1, n),
                versioned(backend, 0, 2),
            )
        }
    };
    let old = outcome(&backend.save(&path, &small, &SaveOptions::default()));
    let big = outcome(&backend.save(&path, &big, &SaveOptions::default()));
    let intact = backend
        .load(&path)
        .is_ok_and(|(_, a)| crate::checks::same_bits(&a, &small));
    let temps = ndstore_core::list_temps(&path).map_or(usize::MAX, |t| t.len());
    let small = outcome(&backend.save(&path, &again, &SaveOptions::default()));
    let new = backend.load(&path).is_ok_and(|(_, a)| a.bit_eq(&again));
    Reply::FullDisk(crate::protocol::FullDisk {
        old,
        big,
        intact,
        temps,
        small,
        new,
    })
    .say();
    0
}

/// The name under which editor `writer` adds its `i`-th array.
pub fn edited_name(writer: u64, i: u64) -> String {
    format!("w{writer}_{i}")
}

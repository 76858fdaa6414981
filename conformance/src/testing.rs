//! Helpers for the backends' own tests, which run a test of the current binary again in a child
//! process: under a file-size limit, so writes past it fail with EFBIG (a write that fails
//! half-way without a full disk), or under strace, to count what the child opened.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Runs test `test` of the current test binary in a child whose files may not grow past
/// `limit` bytes (writes beyond fail with EFBIG instead of raising SIGXFSZ), with `env` set so
/// the test knows it is the child. Returns the text after each `CHILD ` marker the child
/// printed, joined with `"; "`.
///
/// # Errors
///
/// A message when the child cannot start or fails.
pub fn run_with_file_size_limit(
    test: &str,
    env: (&str, &str),
    limit: u64,
) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env.0, env.1);
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (setrlimit, signal) on the child's own process state.
    unsafe {
        cmd.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // EFBIG instead of the default SIGXFSZ, which would kill the child.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("the child failed ({}): {stdout}", output.status));
    }
    Ok(stdout
        .lines()
        .filter_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("; "))
}

/// Runs test `test` of the current test binary in a child traced by strace, with `env` set, and
/// returns how many of its successful opens mention every one of `words` (a file name, a flag
/// such as `O_PATH`).
///
/// # Errors
///
/// A message when strace is missing, the child cannot start, or it fails.
pub fn count_opens(test: &str, env: (&str, &str), words: &[&str]) -> Result<usize, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("no log file: {e}"))?;
    let output = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(log.path())
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env.0, env.1)
        .output()
        .map_err(|e| format!("cannot run strace (cargo xtask setup installs it): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the traced child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    let text = std::fs::read_to_string(log.path()).map_err(|e| format!("reading the log: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)) && !l.contains("= -1"))
        .count())
}

/// Runs test `test` of the current test binary in a child with `env` set, as user `uid` and
/// group `gid` (set before exec; the parent must be root), and returns the text after each
/// `CHILD ` marker the child printed, joined with `"; "`.
///
/// # Errors
///
/// A message when the child cannot start or fails.
pub fn run_as_user(test: &str, env: (&str, &str), uid: u32, gid: u32) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env.0, env.1);
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (setgroups, setgid, setuid) on the child's own credentials.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot start the child as uid {uid}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "the child failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout
        .lines()
        .filter_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("; "))
}

/// True when this process runs as root (tests that switch users need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

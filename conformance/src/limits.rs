//! Running a test of the current binary again in a child process under a file-size limit, so
//! writes past the limit fail with EFBIG: how backend tests make a write fail half-way without
//! a full disk.

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

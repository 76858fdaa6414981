//! Ctrl-C (SIGINT), SIGTERM and SIGHUP while `convert` or `cp` writes: the signal is noted,
//! the copy stops at its next block, the destination's writer is dropped uncommitted (so the
//! old file stays and no temporary is left), one error line is printed, and the process then
//! dies of the same signal, as the shell that sent it expects.

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use ndstore::{Error, ErrorKind, Result};

/// The signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The handler: notes the signal (an atomic store is async-signal-safe) and nothing else.
extern "C" fn note(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Notes the signals from now on instead of dying of them at once.
pub fn catch() {
    let handler = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in SIGNALS {
        // SAFETY: `note` only stores into an atomic, which is async-signal-safe, and matches
        // the `void (*)(int)` type `signal(2)` requires.
        unsafe { libc::signal(signal, handler) };
    }
}

/// The signal received since [`catch`], if any.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Stops a copy into `dst` once a signal has arrived.
///
/// # Errors
///
/// `Io` naming `dst` and saying that nothing was written.
pub fn check(dst: &Path) -> Result<()> {
    match received() {
        None => Ok(()),
        Some(signal) => Err(Error::new(
            ErrorKind::Io,
            format!("interrupted by signal {signal}; the destination was left as it was"),
        )
        .with_path(dst)),
    }
}

/// Dies of `signal`, its default action restored: the parent sees the signal, not an exit
/// status.
pub fn die_of(signal: libc::c_int) -> std::process::ExitCode {
    // SAFETY: restoring the default action and raising a signal at this process are plain
    // system calls with no memory effects; the default action of every caught signal ends it.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::process::ExitCode::from(2)
}

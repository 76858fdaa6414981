//! Progress of long checks: a bar redrawn in place when stderr is a terminal, nothing
//! otherwise (then the one result line per check is the progress).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress bar for one check.
pub struct Progress {
    label: String,
    total: u64,
    enabled: bool,
    drawn: Option<Instant>,
}

impl Progress {
    /// A bar for `total` steps of check `id` on `backend`.
    pub fn new(backend: &str, id: &str, total: u64) -> Progress {
        Progress {
            label: format!("{backend} {id}"),
            total,
            enabled: std::io::stderr().is_terminal(),
            drawn: None,
        }
    }

    /// Shows that `done` steps are finished (redrawn at most ten times a second).
    pub fn tick(&mut self, done: u64) {
        if !self.enabled
            || self
                .drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(Instant::now());
        let width = 30;
        let filled = (done.min(self.total) * width / self.total.max(1)) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            ".".repeat(width as usize - filled)
        );
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{} [{bar}] {done}/{}", self.label, self.total);
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(
                std::io::stderr(),
                "\r{}\r",
                " ".repeat(self.label.len() + 50)
            );
        }
    }
}

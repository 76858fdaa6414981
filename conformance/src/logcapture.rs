//! A logger that keeps records in memory, so checks can prove that errors seen on drop are
//! reported rather than swallowed.

use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Capture {
    records: Mutex<Vec<(Level, String)>>,
}

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata())
            && let Ok(mut records) = self.records.lock()
        {
            records.push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the capturing logger (once per process) and returns how many warnings and errors
/// it has seen so far, or `None` when another logger was installed first.
pub fn install() -> Option<usize> {
    let capture = CAPTURE.get_or_init(|| Capture {
        records: Mutex::new(Vec::new()),
    });
    if log::set_logger(capture).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
    records_since(0).map(|r| r.len())
}

/// The warnings and errors logged after the first `from` ones.
pub fn records_since(from: usize) -> Option<Vec<String>> {
    let capture = CAPTURE.get()?;
    let records = capture.records.lock().ok()?;
    Some(
        records
            .iter()
            .skip(from)
            .map(|(level, msg)| format!("{level}: {msg}"))
            .collect(),
    )
}

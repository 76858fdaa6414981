//! Overlapping a durable save's writing with the disk's.
//!
//! A synced save of 256 MiB writes into the page cache (≈65 ms) and then waits in fsync while
//! the disk takes it all (≈300 ms); the two never overlap. [`EagerWriteback`] passes writes
//! through in slices of [`SLICE`] bytes and starts write-back of each slice as soon as it is
//! written (`sync_file_range`, see [`crate::os::start_writeback`]), so by the final fsync most
//! of the data is already on its way. RocksDB's `bytes_per_sync` does the same. The fsync is
//! still what makes the data durable; nothing here changes what a crash can leave.
//!
//! Only saves that will fsync use it: starting write-back for a flushed save would spend disk
//! bandwidth the caller did not ask for.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two write-back starts.
pub const SLICE: usize = 8 << 20;

/// A writer over a file that starts write-back of each [`SLICE`] once it is written.
pub struct EagerWriteback<'a> {
    file: &'a mut File,
    /// The file offset of the next byte (the writer starts at the file's current position,
    /// which callers leave at 0 for a fresh file).
    written: u64,
    /// The offset up to which write-back has been started.
    started: u64,
    enabled: bool,
}

impl<'a> EagerWriteback<'a> {
    /// Wraps `file`, which is written from offset 0; `enabled` false passes writes straight
    /// through (a save that will not fsync).
    pub fn new(file: &'a mut File, enabled: bool) -> EagerWriteback<'a> {
        EagerWriteback {
            file,
            written: 0,
            started: 0,
            enabled,
        }
    }
}

impl Write for EagerWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.enabled {
            return self.file.write(buf);
        }
        let n = self.file.write(&buf[..buf.len().min(SLICE)])?;
        self.written += n as u64;
        if self.written - self.started >= SLICE as u64 {
            crate::os::start_writeback(self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn writes_pass_through_unchanged_in_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let bytes: Vec<u8> = (0..SLICE * 2 + 12345).map(|i| (i % 253) as u8).collect();
        for enabled in [true, false] {
            let mut file = File::create(&path).unwrap();
            let mut out = EagerWriteback::new(&mut file, enabled);
            out.write_all(&bytes[..100]).unwrap();
            out.write_all(&bytes[100..]).unwrap();
            out.flush().unwrap();
            assert_eq!(out.written, if enabled { bytes.len() as u64 } else { 0 });
            if enabled {
                // Write-back was started for every whole slice, and only a tail is left.
                assert!(out.started >= (SLICE * 2) as u64, "{}", out.started);
                assert!(out.written - out.started < SLICE as u64);
            }
            drop(file);
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
    }
}

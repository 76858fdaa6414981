//! Bulk memory work split over the machine's cores.
//!
//! Loading a large array into fresh memory is dominated by the kernel, not by ndstore: a
//! 256 MiB `.npy` load spends two thirds of its time in page faults zeroing the new buffer and
//! most of the rest copying from the page cache (measured with perf). Both are per page, so they
//! split cleanly: [`touch_zeroed`] takes a fresh buffer's page faults on up to four threads at
//! once, and [`read_exact_at`] reads a file region into a buffer in pieces, side by side.
//! Buffers under [`PARALLEL_MIN`], and machines with one core, stay on the calling thread.
//!
//! A thread that panics does not become an error: its panic is raised again on the calling
//! thread, with its own payload ([`on_two_threads`] does the same for the text backend).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::{Error, ErrorKind, Result};

/// Buffers at least this large are split over threads.
pub const PARALLEL_MIN: usize = 32 << 20;

/// Pieces start on 2 MiB boundaries, so no huge page is shared between threads.
const PIECE_ALIGN: usize = 2 << 20;

/// The number of threads for a buffer of `len` bytes.
fn workers(len: usize) -> usize {
    if len < PARALLEL_MIN {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Splits `buffer` into at most `n` pieces starting on [`PIECE_ALIGN`] byte boundaries, each
/// with its offset in elements.
fn pieces<T>(buffer: &mut [T], n: usize) -> Vec<(usize, &mut [T])> {
    let size = std::mem::size_of::<T>().max(1);
    let step = buffer
        .len()
        .div_ceil(n)
        .next_multiple_of((PIECE_ALIGN / size).max(1));
    let mut offset = 0;
    buffer
        .chunks_mut(step)
        .map(|piece| {
            let at = offset;
            offset += piece.len();
            (at, piece)
        })
        .collect()
}

/// Waits for a scoped thread; its panic is raised again here, with its own payload.
fn join<R>(job: std::thread::ScopedJoinHandle<'_, R>) -> R {
    job.join()
        .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// Runs `job` on each of at most `n` pieces of `buffer`, one thread per piece, with the
/// piece's offset; the results in piece order. A job's panic is raised again on this thread.
fn on_threads<T: Send, R: Send>(
    buffer: &mut [T],
    n: usize,
    job: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let job = &job;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = pieces(buffer, n)
            .into_iter()
            .map(|(at, piece)| scope.spawn(move || job(at, piece)))
            .collect();
        jobs.into_iter().map(join).collect()
    })
}

/// Runs `there` on a second thread while `here` runs on this one, and returns both results. A
/// panic of either is raised again on this thread with its own payload, after both finished.
pub fn on_two_threads<A, B: Send>(
    here: impl FnOnce() -> A,
    there: impl FnOnce() -> B + Send,
) -> (A, B) {
    std::thread::scope(|scope| {
        let job = scope.spawn(there);
        let a = here();
        (a, join(job))
    })
}

/// Takes the page faults of a freshly zeroed buffer on several threads at once, by writing a
/// zero value into each page: the contents do not change, only who pays for the faults.
pub(crate) fn touch_zeroed<T: bytemuck::Zeroable + Send>(buffer: &mut [T]) {
    let n = workers(std::mem::size_of_val(buffer));
    if n < 2 {
        return;
    }
    let per_page = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    on_threads(buffer, n, |_, piece| {
        // The optimiser may know the allocation is zeroed and drop the stores; hiding the slice
        // keeps them.
        let piece = std::hint::black_box(piece);
        for page in piece.chunks_mut(per_page) {
            page[0] = T::zeroed();
        }
    });
}

/// Reads exactly `buffer.len()` bytes of `file` from `offset`, large buffers in pieces on
/// several threads. The error is the first failure by file position, at the offset where the
/// read failed: [`ErrorKind::Truncated`] when the file ends early, an I/O error otherwise.
///
/// # Errors
///
/// `ErrorKind::Truncated` when the file ends early, at the offset where it ends; the I/O error of
/// `pread` otherwise, at its offset.
pub fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> Result<()> {
    let n = workers(buffer.len());
    if n < 2 {
        return read_piece(file, buffer, offset);
    }
    on_threads(buffer, n, |at, piece| {
        read_piece(file, piece, offset + at as u64)
    })
    .into_iter()
    .collect()
}

/// `pread` until `buffer` is full, retrying interrupted calls.
fn read_piece(file: &File, buffer: &mut [u8], offset: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let at = offset + filled as u64;
        match file.read_at(&mut buffer[filled..], at) {
            Ok(0) => {
                return Err(Error::new(ErrorKind::Truncated, "the data ends early").at_offset(at));
            }
            Ok(got) => filled += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read failed", e).at_offset(at)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn pieces_cover_the_buffer_on_huge_page_boundaries() {
        let mut buffer = vec![0u8; PARALLEL_MIN + 12345];
        let len = buffer.len();
        let parts = pieces(&mut buffer, 3);
        assert_eq!(parts.len(), 3);
        let mut next = 0;
        for (at, piece) in &parts {
            assert_eq!(*at, next);
            assert_eq!(at % PIECE_ALIGN, 0);
            next += piece.len();
        }
        assert_eq!(next, len);
    }

    #[test]
    fn a_parallel_read_matches_a_plain_one_and_names_where_the_file_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let bytes: Vec<u8> = (0..PARALLEL_MIN + 3 * 4096 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut whole = vec![0u8; bytes.len() - 5];
        read_exact_at(&file, &mut whole, 5).unwrap();
        assert_eq!(whole, bytes[5..]);
        let mut too_long = vec![0u8; bytes.len()];
        let e = read_exact_at(&file, &mut too_long, 5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated);
        assert_eq!(
            e.location(),
            Some(&crate::Location::Offset(bytes.len() as u64))
        );
    }

    /// The payload a caught panic carries, as text.
    fn message(payload: &(dyn std::any::Any + Send)) -> &str {
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("")
    }

    #[test]
    fn a_panicking_piece_raises_its_panic_again() {
        let mut buffer = vec![0u8; 3 * PIECE_ALIGN];
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_threads(&mut buffer, 3, |at, _| {
                if at == PIECE_ALIGN {
                    panic!("piece at {at} failed");
                }
            })
        }));
        let payload = caught.unwrap_err();
        assert_eq!(
            message(payload.as_ref()),
            format!("piece at {PIECE_ALIGN} failed")
        );
    }

    #[test]
    fn a_panic_on_the_second_thread_is_raised_again() {
        let caught = std::panic::catch_unwind(|| on_two_threads(|| 1, || -> u8 { panic!("tail") }));
        assert_eq!(message(caught.unwrap_err().as_ref()), "tail");
        // And one on this thread, after the other finished.
        let caught = std::panic::catch_unwind(|| on_two_threads(|| -> u8 { panic!("head") }, || 2));
        assert_eq!(message(caught.unwrap_err().as_ref()), "head");
        assert_eq!(on_two_threads(|| 1, || 2), (1, 2));
    }

    #[test]
    fn touching_keeps_a_zeroed_buffer_zero() {
        let mut buffer: Vec<u8> = bytemuck::zeroed_vec(PARALLEL_MIN + 4096 * 3 + 1);
        touch_zeroed(&mut buffer);
        assert!(buffer.iter().all(|&b| b == 0));
        let mut wide: Vec<[f64; 3]> = bytemuck::zeroed_vec((PARALLEL_MIN >> 4) + 7);
        touch_zeroed(&mut wide);
        assert!(wide.iter().all(|&v| v == [0.0; 3]));
    }
}

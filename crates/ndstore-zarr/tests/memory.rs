//! Arrays larger than memory: a streaming write and region reads in a child process whose
//! peak resident memory is measured, so the writer's and reader's buffers are shown bounded
//! by chunks, not by the array.
//!
//! `NDSTORE_ZARR_MEMORY_ROWS` sets the rows of 8 KiB (the default 32768 is 256 MiB; 262144 is
//! the 2 GiB of issue 17, measured by hand).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use ndarray::{Array2, s};
use ndstore_core::{Backend, DType, DTypeKind, DynArray, SaveOptions};
use ndstore_zarr::{ZarrArray, ZarrBackend};

const COLS: usize = 1024;
const BLOCK: usize = 1000;
const CHILD: &str = "NDSTORE_ZARR_MEMORY_CHILD";

fn block(start: usize, rows: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, COLS), |(r, c)| ((start + r) * COLS + c) as f64)
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child's work: stream `rows` rows into a new array, then read it back in blocks.
fn write_and_read(path: &Path, rows: usize) {
    let mut writer = ZarrBackend
        .writer(
            path,
            DType::native(DTypeKind::F64),
            &[COLS],
            &SaveOptions::default(),
        )
        .unwrap();
    for start in (0..rows).step_by(BLOCK) {
        let n = BLOCK.min(rows - start);
        writer
            .append(&DynArray::from(block(start, n).into_dyn()))
            .unwrap();
    }
    writer.commit().unwrap();
    let array = ZarrArray::open(path, &SaveOptions::default()).unwrap();
    assert_eq!(array.meta().shape, [rows, COLS]);
    for start in (0..rows).step_by(BLOCK) {
        let n = BLOCK.min(rows - start);
        let got = array.read_region(&[start, 0], &[n, COLS]).unwrap();
        let want = block(start, n);
        let got = got.into_typed::<f64>().unwrap();
        assert_eq!(
            got.slice(s![.., ..]),
            want.into_dyn().slice(s![.., ..]),
            "rows {start}.."
        );
    }
}

#[test]
fn an_array_larger_than_the_buffers_streams_in_bounded_memory() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let rows = std::env::var("NDSTORE_ZARR_MEMORY_ROWS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(32768);
        let started = std::time::Instant::now();
        write_and_read(&Path::new(&dir).join("big.zarr"), rows);
        println!(
            "NDSTORE-MEMORY peak_kib={} rows={rows} seconds={:.1}",
            peak_kib(),
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_array_larger_than_the_buffers_streams_in_bounded_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("NDSTORE-MEMORY ").nth(1))
        .expect("the child reports its peak");
    let peak: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("peak_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("{line}");
    // 256 MiB of array; the writer holds one chunk row (128 rows, 1 MiB) and an appended
    // block (8 MiB), the reader a block and four chunks in flight.
    assert!(peak < 96 * 1024, "peak resident memory {peak} KiB: {line}");
}

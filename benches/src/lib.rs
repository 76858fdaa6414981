//! Shared set-up for ndstore's benchmarks: the array sizes every backend is measured at, the
//! arrays themselves and the Zarr layouts they are stored in.

use ndarray::{Array1, Array2};

/// The sizes benchmarks run at, in bytes: 4 KiB, 1 MiB and 64 MiB, plus 256 MiB when
/// `NDSTORE_BENCH_FULL` is set (`cargo xtask bench --full`).
pub fn sizes() -> Vec<usize> {
    let mut sizes = vec![4 << 10, 1 << 20, 64 << 20];
    if std::env::var_os("NDSTORE_BENCH_FULL").is_some() {
        sizes.push(256 << 20);
    }
    sizes
}

/// A 2-d f64 array of `bytes` bytes (rows of 1024 values, or one row when smaller).
pub fn f64_array(bytes: usize) -> Array2<f64> {
    let [rows, cols] = f64_array_shape(bytes);
    let flat = Array1::from_iter((0..rows * cols).map(|i| i as f64 * 0.25));
    flat.into_shape_with_order((rows, cols))
        .unwrap_or_else(|_| Array2::zeros((0, 0)))
}

/// A human label for a size: `4KiB`, `1MiB`, `64MiB`.
pub fn label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

/// A `rows` × 10 table of values like real measurements: uniform in [0, 1), 16–17 significant
/// digits (the CSV benchmarks' data).
pub fn table(rows: usize) -> Array2<f64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    Array2::from_shape_simple_fn((rows, 10), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The Zarr layouts the benchmark compares: each a 1 MiB chunk (or the whole array when
/// smaller), plain or in shards of 16 chunks, uncompressed or zstd.
pub const ZARR_LAYOUTS: [&str; 4] = ["plain", "zstd", "sharded", "sharded_zstd"];

/// The chunks a shard holds along the first axis in the sharded layouts.
pub const CHUNKS_PER_SHARD: usize = 16;

/// The chunk and shard shapes of `f64_array(bytes)` in Zarr: chunks of `min(1 MiB, array)`
/// (whole rows), and shards of up to [`CHUNKS_PER_SHARD`] chunks along the first axis (fewer
/// when the array has fewer chunks, so a small array is one shard of one chunk).
pub fn zarr_grid(bytes: usize) -> (Vec<usize>, Vec<usize>) {
    let shape = f64_array_shape(bytes);
    let (rows, cols) = (shape[0].max(1), shape[1].max(1));
    let chunk_rows = ((1 << 20) / (cols * 8)).clamp(1, rows);
    let shard_rows = rows.div_ceil(chunk_rows).min(CHUNKS_PER_SHARD) * chunk_rows;
    (vec![chunk_rows, cols], vec![shard_rows, cols])
}

/// The shape of `f64_array(bytes)`.
pub fn f64_array_shape(bytes: usize) -> [usize; 2] {
    let n = bytes / 8;
    let cols = n.min(1024);
    [n.checked_div(cols).unwrap_or(0), cols]
}

//! Shared set-up for ndstore's benchmarks: the array sizes every backend is measured at.

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
    let n = bytes / 8;
    let cols = n.min(1024);
    let rows = n / cols;
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

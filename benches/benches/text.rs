//! CSV read and write of 1,000,000 × 10 f64 (the size the peers are compared at), and smaller.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use ndstore_core::SaveOptions;
use ndstore_text::TextOptions;

/// Values like real measurements: uniform in [0, 1), 16–17 significant digits.
fn table(rows: usize) -> Array2<f64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    Array2::from_shape_simple_fn((rows, 10), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn text_backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
    let path = dir.path().join("bench.csv");
    let mut group = c.benchmark_group("csv");
    group.sample_size(10);
    for rows in [1_000usize, 100_000, 1_000_000] {
        let array = table(rows);
        let label = format!("{rows}x10");
        group.throughput(Throughput::Elements((rows * 10) as u64));
        group.bench_with_input(BenchmarkId::new("format_only", &label), &array, |b, a| {
            b.iter(|| {
                ndstore_text::write_to(&mut std::io::sink(), a, &TextOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
        group.bench_with_input(BenchmarkId::new("write_flushed", &label), &array, |b, a| {
            b.iter(|| {
                ndstore_text::save(
                    &path,
                    a,
                    &TextOptions::default(),
                    &SaveOptions::new().flushed(),
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
        });
        ndstore_text::save(
            &path,
            &array,
            &TextOptions::default(),
            &SaveOptions::new().flushed(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        group.bench_with_input(BenchmarkId::new("read", &label), &path, |b, p| {
            b.iter(|| {
                ndstore_text::load::<f64, ndarray::Ix2>(p, &TextOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, text_backend);
criterion_main!(benches);

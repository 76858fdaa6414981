//! CSV read and write of 1,000,000 × 10 f64 (the size the peers are compared at), and smaller.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndstore_core::SaveOptions;
use ndstore_text::TextOptions;

fn text_backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
    let path = dir.path().join("bench.csv");
    let mut group = c.benchmark_group("csv");
    group.sample_size(10);
    for rows in [1_000usize, 100_000, 1_000_000] {
        let array = ndstore_benches::table(rows);
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

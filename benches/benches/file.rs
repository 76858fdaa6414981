//! `.npy` save (page cache, and atomic with fsync) and load, at every benchmark size.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndstore_core::SaveOptions;
use ndstore_file::npy;

fn file_backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
    let path = dir.path().join("bench.npy");
    let mut group = c.benchmark_group("npy");
    group.sample_size(10);
    for bytes in ndstore_benches::sizes() {
        let array = ndstore_benches::f64_array(bytes);
        let label = ndstore_benches::label(bytes);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("save_atomic_flushed", &label),
            &array,
            |b, a| {
                b.iter(|| {
                    npy::save_with(&path, a, &SaveOptions::new().flushed())
                        .unwrap_or_else(|e| panic!("{e}"))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("save_atomic_synced", &label),
            &array,
            |b, a| b.iter(|| npy::save(&path, a).unwrap_or_else(|e| panic!("{e}"))),
        );
        npy::save(&path, &array).unwrap_or_else(|e| panic!("{e}"));
        group.bench_with_input(BenchmarkId::new("load", &label), &path, |b, p| {
            b.iter(|| npy::load::<f64, ndarray::Ix2>(p).unwrap_or_else(|e| panic!("{e}")))
        });
    }
    group.finish();
}

criterion_group!(benches, file_backend);
criterion_main!(benches);

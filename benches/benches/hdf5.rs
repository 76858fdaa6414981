//! HDF5: contiguous read of a whole dataset, a partial (hyperslab) read of a sixteenth of its
//! rows, and atomic writes flushed and synced, at every size.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndstore_core::{DynArray, SaveOptions};

fn hdf5_backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
    let path = dir.path().join("bench.h5");
    let mut group = c.benchmark_group("hdf5");
    group.sample_size(10);
    for bytes in ndstore_benches::sizes() {
        let array = DynArray::from(ndstore_benches::f64_array(bytes).into_dyn());
        let label = ndstore_benches::label(bytes);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("write_synced", &label), &array, |b, a| {
            b.iter(|| {
                ndstore_hdf5::save_dyn(&path, "data", a, &SaveOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
        ndstore_hdf5::save_dyn(&path, "data", &array, &SaveOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_with_input(BenchmarkId::new("read", &label), &path, |b, p| {
            b.iter(|| ndstore_hdf5::load_dyn(p, "data").unwrap_or_else(|e| panic!("{e}")))
        });
        let shape = array.shape().to_vec();
        let part = [0..shape[0].div_ceil(16), 0..shape[1]];
        group.bench_with_input(
            BenchmarkId::new("read_slice_16th", &label),
            &path,
            |b, p| {
                b.iter(|| {
                    ndstore_hdf5::read_slice(p, "data", &part).unwrap_or_else(|e| panic!("{e}"))
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("write_flushed", &label), &array, |b, a| {
            b.iter(|| {
                ndstore_hdf5::save_dyn(&path, "data", a, &SaveOptions::new().flushed())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hdf5_backend);
criterion_main!(benches);

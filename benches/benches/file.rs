//! `.npy` save (page cache, and atomic with fsync), load, metadata open and streaming append
//! (rows of 1024 f64 in blocks of 1 MiB, committed with fsync), at every benchmark size.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndstore_core::{ArrayWriter, DType, DTypeKind, DynArray, SaveOptions};
use ndstore_file::{NpyWriter, npy};

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
        group.bench_with_input(BenchmarkId::new("read_meta", &label), &path, |b, p| {
            b.iter(|| npy::read_meta(p).unwrap_or_else(|e| panic!("{e}")))
        });
        let rows = DynArray::from(array.clone().into_dyn());
        group.bench_with_input(
            BenchmarkId::new("streaming_append_commit", &label),
            &rows,
            |b, rows| {
                b.iter(|| {
                    let dtype = DType::native(DTypeKind::F64);
                    let mut writer: Box<dyn ArrayWriter> = Box::new(
                        NpyWriter::create(
                            &path,
                            dtype,
                            &rows.shape()[1..],
                            &SaveOptions::default(),
                        )
                        .unwrap_or_else(|e| panic!("{e}")),
                    );
                    for start in (0..rows.shape()[0]).step_by(128) {
                        let end = (start + 128).min(rows.shape()[0]);
                        let block = ndstore_core::with_dyn_array!(rows, |a| DynArray::from(
                            a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end))
                                .to_owned()
                        ));
                        writer.append(&block).unwrap_or_else(|e| panic!("{e}"));
                    }
                    writer.commit().unwrap_or_else(|e| panic!("{e}"))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, file_backend);
criterion_main!(benches);

//! Memory maps: open, open + full sum, and `w+` fill + sync, at every benchmark size.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndstore_core::{ArrayMeta, Commit, DType, DTypeKind, DynArray, Order, SaveOptions};
use ndstore_mmap::{MappedArray, Mode};

fn mmap_backend(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
    let path = dir.path().join("bench.npy");
    let mut group = c.benchmark_group("mmap");
    group.sample_size(10);
    for bytes in ndstore_benches::sizes() {
        let array = ndstore_benches::f64_array(bytes);
        let label = ndstore_benches::label(bytes);
        ndstore_file::npy::save(&path, &array).unwrap_or_else(|e| panic!("{e}"));
        group.bench_with_input(BenchmarkId::new("open", &label), &path, |b, p| {
            b.iter(|| {
                // SAFETY: the benchmark's own file; nothing else touches it.
                unsafe { MappedArray::open_npy(p, Mode::Read) }.unwrap_or_else(|e| panic!("{e}"))
            })
        });
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("open_sum", &label), &path, |b, p| {
            b.iter(|| {
                // SAFETY: as above.
                let map = unsafe { MappedArray::open_npy(p, Mode::Read) }
                    .unwrap_or_else(|e| panic!("{e}"));
                map.view::<f64>().unwrap_or_else(|e| panic!("{e}")).sum()
            })
        });
        group.bench_with_input(BenchmarkId::new("in_memory_sum", &label), &array, |b, a| {
            b.iter(|| a.sum())
        });
        let meta = ArrayMeta::new(
            DType::native(DTypeKind::F64),
            array.shape().to_vec(),
            Order::C,
        );
        let values = DynArray::from(array.clone().into_dyn());
        let target = dir.path().join("fill.npy");
        group.bench_with_input(
            BenchmarkId::new("create_fill_sync", &label),
            &values,
            |b, v| {
                b.iter(|| {
                    // SAFETY: a fresh file of the benchmark's own.
                    let mut map =
                        unsafe { MappedArray::create_npy(&target, &meta, &SaveOptions::default()) }
                            .unwrap_or_else(|e| panic!("{e}"));
                    map.write_from(v).unwrap_or_else(|e| panic!("{e}"));
                    map.commit().unwrap_or_else(|e| panic!("{e}"))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, mmap_backend);
criterion_main!(benches);

//! One benchmark operation of ndstore, run `reps` times in a fresh process, for
//! `cargo xtask bench`: prints `ms <milliseconds>` per run, then `rss <bytes>`, the process's
//! peak resident set. `prepare` writes the shared input files the peers read too (the CSV only
//! when ROWS is not 0, the Zarr arrays `data-<layout>.zarr` only when asked with `zarr`, and
//! the plain Zarr array `data-plain.zarr` on the local S3 server only when asked with `s3`).
//!
//! The `s3_` operations and `prepare ... s3` reach the S3 server through the AWS environment
//! variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...) and find their bucket and prefix
//! in `NDSTORE_BENCH_S3` (`s3://bucket/prefix`), all set by `cargo xtask bench`.
//!
//! Usage: `bench-op prepare DIR BYTES ROWS [zarr] [s3]` or `bench-op OP DIR REPS BYTES ROWS`.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Ix2};
use ndstore_core::{
    ArrayMeta, Backend, ByteOrder, Commit, DType, DTypeKind, Durable, DynArray, Error, ErrorKind,
    LoadOptions, Order, SaveOptions,
};
use ndstore_mmap::{MappedArray, Mode};
use ndstore_text::TextOptions;
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::{ObjectTarget, ZarrArray};

type Run = Box<dyn FnMut() -> ndstore_core::Result<f64>>;

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The Zarr metadata of `f64_array(bytes)` in `layout` (one of `ZARR_LAYOUTS`): little-endian
/// `bytes`, then zstd at level 3 (zstd's own default) for the `zstd` layouts; the sharded
/// layouts keep the chunks as inner chunks of shards with a `bytes` + `crc32c` index at the
/// end (zarr-python's default).
fn zarr_meta(bytes: usize, layout: &str) -> ndstore_core::Result<ZarrMeta> {
    let (chunk, shard) = ndstore_benches::zarr_grid(bytes);
    let shape = ndstore_benches::f64_array_shape(bytes);
    let sharded = layout.starts_with("sharded");
    let dtype = DType::new(DTypeKind::F64, ByteOrder::Little);
    let mut meta = ZarrMeta::new(dtype, &shape, if sharded { &shard } else { &chunk })?;
    let mut codecs = vec![Codec::bytes_for(dtype)];
    if layout.ends_with("zstd") {
        codecs.push(Codec::Zstd {
            level: 3,
            checksum: false,
        });
    }
    if sharded {
        codecs = vec![Codec::Sharding(Box::new(Sharding {
            chunk_shape: chunk,
            codecs: CodecChain::new(codecs),
            index_codecs: CodecChain::new(vec![Codec::bytes_for(dtype), Codec::Crc32c]),
            index_at_start: false,
        }))];
    }
    meta.codecs = CodecChain::new(codecs);
    Ok(meta)
}

/// The environment variable naming where the `s3_` operations keep their arrays.
const S3_BASE: &str = "NDSTORE_BENCH_S3";

/// The array `name` under the S3 location `NDSTORE_BENCH_S3` names, with the endpoint and
/// credentials of the AWS environment variables.
fn s3_target(name: &str) -> ndstore_core::Result<ObjectTarget> {
    let base = std::env::var(S3_BASE).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{S3_BASE} is not set: the s3 operations need the bucket of a local S3 server (cargo xtask bench starts one)"),
        )
    })?;
    ObjectTarget::from_url(&format!("{}/{name}", base.trim_end_matches('/')))
}

/// The input array of the `s3_read_` operations on the S3 server (the plain layout: 1 MiB
/// chunks, little-endian `bytes`).
const S3_INPUT: &str = "data-plain.zarr";

/// The Zarr layout an operation named `zarr_<what>_<layout>` works on.
fn zarr_layout(op: &str) -> Option<&'static str> {
    // The longest name first: `sharded_zstd` also ends with `zstd`.
    let mut layouts = ndstore_benches::ZARR_LAYOUTS;
    layouts.sort_by_key(|l| std::cmp::Reverse(l.len()));
    layouts
        .into_iter()
        .find(|l| op.starts_with("zarr_") && op.ends_with(&format!("_{l}")))
}

/// What `prepare` writes besides the `.npy` and HDF5 inputs.
struct Inputs {
    /// The CSV's rows (none when 0).
    rows: usize,
    /// The Zarr arrays of every layout in the directory.
    zarr: bool,
    /// The plain Zarr array on the S3 server.
    s3: bool,
}

fn prepare(dir: &Path, bytes: usize, inputs: &Inputs) -> ndstore_core::Result<()> {
    let values = ndstore_benches::f64_array(bytes);
    ndstore_file::npy::save(dir.join("data.npy"), &values)?;
    let array = DynArray::from(values.into_dyn());
    ndstore_hdf5::save_dyn(dir.join("data.h5"), "data", &array, &SaveOptions::default())?;
    if inputs.s3 {
        ndstore_zarr::save_object(
            &s3_target(S3_INPUT)?,
            &array,
            zarr_meta(bytes, "plain")?,
            &SaveOptions::default(),
        )?;
    }
    if inputs.zarr {
        for layout in ndstore_benches::ZARR_LAYOUTS {
            let target = dir.join(format!("data-{layout}.zarr"));
            ndstore_zarr::save_with(
                &target,
                &array,
                zarr_meta(bytes, layout)?,
                &SaveOptions::default(),
            )?;
        }
    }
    if inputs.rows == 0 {
        return Ok(());
    }
    ndstore_text::save(
        dir.join("data.csv"),
        &ndstore_benches::table(inputs.rows),
        &TextOptions::default(),
        &SaveOptions::default(),
    )
}

/// The run of operation `op`, `None` for an operation bench-op does not know.
fn operation(op: &str, dir: &Path, bytes: usize, rows: usize) -> ndstore_core::Result<Option<Run>> {
    let dir = dir.to_path_buf();
    let out = dir.join(format!("out-{op}"));
    let npy = dir.join("data.npy");
    Ok(Some(match op {
        "npy_save_flushed" | "npy_save_synced" => {
            let array = ndstore_benches::f64_array(bytes);
            let options = if op == "npy_save_flushed" {
                SaveOptions::new().flushed()
            } else {
                SaveOptions::default()
            };
            let out = out.with_extension("npy");
            Box::new(move || ndstore_file::npy::save_with(&out, &array, &options).map(|()| 0.0))
        }
        "npy_load" => {
            Box::new(move || ndstore_file::npy::load::<f64, Ix2>(&npy).map(|a| a[[0, 1]]))
        }
        // The yardstick of a load: one plain read of the whole file into a fresh buffer, on
        // one thread, as `std::fs::read` does it.
        "plain_read" => Box::new(move || {
            std::fs::read(&npy)
                .map(|bytes| bytes.len() as f64)
                .map_err(|e| ndstore_core::Error::io("plain read failed", e).with_path(&npy))
        }),
        "mmap_open" => Box::new(move || {
            // SAFETY: the benchmark's own input file; nothing truncates it.
            unsafe { MappedArray::open_npy(&npy, Mode::Read) }.map(|m| m.meta().shape[0] as f64)
        }),
        "mmap_open_sum" => Box::new(move || {
            // SAFETY: as above.
            let map = unsafe { MappedArray::open_npy(&npy, Mode::Read) }?;
            Ok(map.view::<f64>()?.sum())
        }),
        "mmap_fill_sync" => {
            let array = ndstore_benches::f64_array(bytes);
            let meta = ArrayMeta::new(
                DType::native(DTypeKind::F64),
                array.shape().to_vec(),
                Order::C,
            );
            let out = out.with_extension("npy");
            Box::new(move || {
                // SAFETY: a fresh file of the benchmark's own.
                let mut map =
                    unsafe { MappedArray::create_npy(&out, &meta, &SaveOptions::default()) }?;
                let mut view = map.view_mut::<f64>()?;
                view.assign(&array.view().into_dyn());
                map.sync()?;
                map.commit()?;
                Ok(0.0)
            })
        }
        // The default, isolated load: libhdf5 parses the file in a forked reader process.
        "hdf5_read" => {
            let h5 = dir.join("data.h5");
            Box::new(move || ndstore_hdf5::load_dyn(&h5, "data").map(|(m, _)| m.shape[0] as f64))
        }
        // The trusted load: libhdf5 in this process.
        "hdf5_read_in_process" => {
            let h5 = dir.join("data.h5");
            Box::new(move || {
                ndstore_hdf5::trusted::load_dyn(&h5, "data").map(|(m, _)| m.shape[0] as f64)
            })
        }
        "hdf5_write_sync" => {
            let array = DynArray::from(ndstore_benches::f64_array(bytes).into_dyn());
            let out = out.with_extension("h5");
            Box::new(move || {
                ndstore_hdf5::save_dyn(&out, "data", &array, &SaveOptions::default()).map(|()| 0.0)
            })
        }
        // A whole-array save, atomic and synced (the default options): the new tree built
        // beside the old one, every chunk fsynced, exchanged, the parent fsynced.
        _ if op.starts_with("zarr_write_synced_") => {
            let Some(layout) = zarr_layout(op) else {
                return Ok(None);
            };
            let array = DynArray::from(ndstore_benches::f64_array(bytes).into_dyn());
            let out = out.with_extension("zarr");
            Box::new(move || {
                let meta = zarr_meta(bytes, layout)?;
                ndstore_zarr::save_with(&out, &array, meta, &SaveOptions::default()).map(|()| 0.0)
            })
        }
        // The backend's load: open, read every chunk into one fresh array.
        _ if op.starts_with("zarr_read_") => {
            let Some(layout) = zarr_layout(op) else {
                return Ok(None);
            };
            let input = dir.join(format!("data-{layout}.zarr"));
            Box::new(move || {
                ndstore_zarr::ZarrBackend
                    .load(&input)
                    .map(|(m, _)| m.shape[0] as f64)
            })
        }
        // A whole-array save into object storage with the default protocol: the writer lease
        // claimed, every 1 MiB chunk PUT (up to four at once), `zarr.json` committed with a
        // conditional PUT, the chunks of no version removed, the lease released. From the
        // second run on it replaces the array of the run before.
        "s3_write_chunks" => {
            let array = DynArray::from(ndstore_benches::f64_array(bytes).into_dyn());
            let target = s3_target(&format!("out-{op}.zarr"))?;
            Box::new(move || {
                let meta = zarr_meta(bytes, "plain")?;
                ndstore_zarr::save_object(&target, &array, meta, &SaveOptions::default())
                    .map(|()| 0.0)
            })
        }
        // The input array read whole from object storage: `zarr.json`, then every chunk GET
        // (up to four at once) decoded into one fresh array.
        "s3_read_chunks" => {
            let target = s3_target(S3_INPUT)?;
            Box::new(move || {
                let array = ZarrArray::open_object_read_only(&target, &SaveOptions::default())?;
                array
                    .read_all(&LoadOptions::default())
                    .map(|a| a.shape()[0] as f64)
            })
        }
        "csv_read" => {
            let csv = dir.join("data.csv");
            Box::new(move || {
                ndstore_text::load::<f64, Ix2>(&csv, &TextOptions::default()).map(|a| a[[0, 0]])
            })
        }
        "csv_write" => {
            let table: Array2<f64> = ndstore_benches::table(rows);
            let out = out.with_extension("csv");
            Box::new(move || {
                ndstore_text::save(
                    &out,
                    &table,
                    &TextOptions::default(),
                    &SaveOptions::new().flushed(),
                )
                .map(|()| 0.0)
            })
        }
        _ => return Ok(None),
    }))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let number = |i: usize| arg(i).parse::<usize>().unwrap_or(0);
    let result = if arg(0) == "prepare" {
        let asked = |what: &str| args.iter().skip(4).any(|a| a == what);
        let inputs = Inputs {
            rows: number(3),
            zarr: asked("zarr"),
            s3: asked("s3"),
        };
        prepare(Path::new(&arg(1)), number(2), &inputs)
    } else {
        let dir = std::path::PathBuf::from(arg(1));
        match operation(&arg(0), &dir, number(3), number(4)) {
            Ok(None) => {
                eprintln!("bench-op: unknown operation '{}'", arg(0));
                return std::process::ExitCode::FAILURE;
            }
            Err(e) => Err(e),
            Ok(Some(mut run)) => (|| {
                let mut keep = 0.0;
                for _ in 0..number(2).max(1) {
                    let start = Instant::now();
                    keep += run()?;
                    println!("ms {}", start.elapsed().as_secs_f64() * 1e3);
                }
                std::hint::black_box(keep);
                println!("rss {}", peak_rss());
                Ok(())
            })(),
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-op: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The Zarr backend's own tests: round trips of every dtype through every codec chain, region
//! I/O at the edges, hostile stores refused by name, and whole-array replacement.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndstore_core::{
    Backend, ByteOrder, DType, DTypeKind, DynArray, ErrorKind, LoadOptions, SaveOptions,
    with_dtype_kind, with_dyn_array,
};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::meta::ZarrMeta;
use ndstore_zarr::{ZarrArray, ZarrBackend, save_with};

/// A deterministic array of `kind` and `shape` with no element equal to zero (the fill value),
/// except where `i % 7 == 0`.
fn sample(kind: DTypeKind, shape: &[usize]) -> DynArray {
    let count: usize = shape.iter().product();
    let bytes: Vec<u8> = (0..count * kind.itemsize())
        .map(|i| {
            let element = i / kind.itemsize();
            if element.is_multiple_of(7) {
                0
            } else if kind == DTypeKind::Bool {
                1
            } else {
                // Mixed bytes, but no NaN in f16 (its exponent bits stay below all ones).
                ((i * 37 + 11) % 251) as u8 & 0x3f
            }
        })
        .collect();
    with_dtype_kind!(kind, |T| {
        let raw: Vec<T> = bytemuck::allocation::pod_collect_to_vec::<u8, u8>(&bytes)
            .chunks_exact(kind.itemsize())
            .map(|c| *bytemuck::checked::from_bytes::<T>(c))
            .collect();
        DynArray::from(ArrayD::from_shape_vec(IxDyn(shape), raw).unwrap())
    })
}

fn chains(dtype: DType) -> Vec<(&'static str, CodecChain, Vec<usize>)> {
    let bytes = Codec::bytes_for(dtype);
    let shard = |codecs: Vec<Codec>, at_start| {
        Codec::Sharding(Box::new(Sharding {
            chunk_shape: vec![2, 3],
            codecs: CodecChain::new(codecs),
            index_codecs: CodecChain::new(vec![
                Codec::Bytes(Some(ByteOrder::Little)),
                Codec::Crc32c,
            ]),
            index_at_start: at_start,
        }))
    };
    vec![
        ("bytes", CodecChain::new(vec![bytes.clone()]), vec![3, 4]),
        (
            "transpose+bytes",
            CodecChain::new(vec![Codec::Transpose(vec![1, 0]), bytes.clone()]),
            vec![3, 4],
        ),
        (
            "gzip",
            CodecChain::new(vec![bytes.clone(), Codec::Gzip(6)]),
            vec![3, 4],
        ),
        (
            "zstd+crc32c",
            CodecChain::new(vec![
                bytes.clone(),
                Codec::Zstd {
                    level: 3,
                    checksum: true,
                },
                Codec::Crc32c,
            ]),
            vec![3, 4],
        ),
        (
            "sharded",
            CodecChain::new(vec![shard(vec![bytes.clone()], false)]),
            vec![4, 6],
        ),
        (
            "sharded zstd, index first",
            CodecChain::new(vec![shard(
                vec![
                    bytes.clone(),
                    Codec::Zstd {
                        level: 1,
                        checksum: false,
                    },
                ],
                true,
            )]),
            vec![4, 6],
        ),
    ]
}

fn meta_with(dtype: DType, shape: &[usize], chunks: &[usize], codecs: CodecChain) -> ZarrMeta {
    let mut meta = ZarrMeta::new(dtype, shape, chunks).unwrap();
    meta.codecs = codecs;
    meta
}

#[test]
fn every_dtype_round_trips_through_every_chain_in_both_byte_orders() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [7usize, 10];
    for kind in DTypeKind::ALL {
        let values = sample(kind, &shape);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let dtype = DType::new(kind, order);
            for (name, chain, chunks) in chains(dtype) {
                let path = dir.path().join(format!(
                    "{kind:?}-{order:?}-{}.zarr",
                    name.replace(' ', "_")
                ));
                let meta = meta_with(dtype, &shape, &chunks, chain);
                save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
                let (got_meta, got) = ZarrBackend
                    .load_with(&path, &LoadOptions::default())
                    .unwrap();
                assert!(got.bit_eq(&values), "{kind:?} {order:?} {name}");
                assert_eq!(got_meta.dtype, dtype, "{name}");
            }
        }
    }
}

#[test]
fn all_fill_chunks_are_not_stored_and_read_as_fill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let mut values = ArrayD::<f64>::zeros(IxDyn(&[8, 8]));
    values[[5, 5]] = 1.0;
    let meta = ZarrMeta::new(DType::native(DTypeKind::F64), &[8, 8], &[4, 4]).unwrap();
    save_with(&path, &values.clone().into(), meta, &SaveOptions::default()).unwrap();
    let mut stored: Vec<String> = walk(&path);
    stored.sort();
    assert_eq!(stored, ["c/1/1", "zarr.json"]);
    let (_, got) = ZarrBackend.load(&path).unwrap();
    assert!(got.bit_eq(&values.into()));
}

/// The files below `root`, as paths relative to it, in order.
fn walk(root: &Path) -> Vec<String> {
    let packed = ndstore_conformance::tree::pack(root).unwrap();
    ndstore_conformance::tree::entries(&packed)
        .into_iter()
        .map(|e| e.path)
        .collect()
}

#[test]
fn regions_read_and_write_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.zarr");
    let meta = ZarrMeta::new(DType::native(DTypeKind::I32), &[10, 7], &[4, 3]).unwrap();
    let array = ZarrArray::create(&path, meta, &SaveOptions::default()).unwrap();
    let mut expected = ArrayD::<i32>::zeros(IxDyn(&[10, 7]));
    // A box over partial edge chunks, then one inside a single chunk.
    let a = ArrayD::from_shape_fn(IxDyn(&[5, 4]), |i| (i[0] * 10 + i[1] + 1) as i32);
    array.write_region(&[5, 3], &a.clone().into()).unwrap();
    expected.slice_mut(ndarray::s![5..10, 3..7]).assign(&a);
    let b = ArrayD::from_elem(IxDyn(&[1, 2]), -3i32);
    array.write_region(&[1, 1], &b.clone().into()).unwrap();
    expected.slice_mut(ndarray::s![1..2, 1..3]).assign(&b);
    array.sync().unwrap();
    let whole = array.read_region(&[0, 0], &[10, 7]).unwrap();
    assert!(whole.bit_eq(&expected.clone().into()));
    let part = array.read_region(&[3, 2], &[4, 5]).unwrap();
    assert!(
        part.bit_eq(
            &expected
                .slice(ndarray::s![3..7, 2..7])
                .to_owned()
                .into_dyn()
                .into()
        )
    );
    // Empty boxes read and write nothing.
    let empty = array.read_region(&[10, 0], &[0, 7]).unwrap();
    assert_eq!(empty.shape(), [0, 7]);
    array
        .write_region(&[0, 7], &ArrayD::<i32>::zeros(IxDyn(&[3, 0])).into())
        .unwrap();
    // Outside the array, or of another type: refused by name.
    let err = array.read_region(&[9, 0], &[2, 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = array
        .write_region(&[0, 0], &ArrayD::<f32>::zeros(IxDyn(&[1, 1])).into())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    // Writing the fill value over a chunk removes it.
    array
        .write_region(&[1, 1], &ArrayD::<i32>::zeros(IxDyn(&[1, 2])).into())
        .unwrap();
    assert!(!path.join("c/0/0").exists());
}

/// Saves a small f64 array with `codecs` and returns its directory.
fn saved(dir: &Path, name: &str, codecs: CodecChain, chunks: &[usize]) -> std::path::PathBuf {
    let path = dir.join(name);
    let values = sample(DTypeKind::F64, &[8, 6]);
    let meta = meta_with(DType::native(DTypeKind::F64), &[8, 6], chunks, codecs);
    save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
    path
}

/// Damages the file of `key` in the array at `path` and returns the error of loading it.
fn damaged(path: &Path, key: &str, damage: impl FnOnce(&mut Vec<u8>)) -> ndstore_core::Error {
    let file = path.join(key);
    let mut bytes = std::fs::read(&file).unwrap();
    damage(&mut bytes);
    std::fs::write(&file, &bytes).unwrap();
    ZarrBackend.load(path).unwrap_err()
}

#[test]
fn hostile_stores_are_refused_naming_the_file_and_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let le = Codec::Bytes(Some(ByteOrder::Little));
    // A truncated chunk.
    let path = saved(
        dir.path(),
        "t.zarr",
        CodecChain::new(vec![le.clone()]),
        &[4, 3],
    );
    let err = damaged(&path, "c/0/1", |b| b.truncate(b.len() - 3));
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(err.to_string().contains("c/0/1"), "{err}");

    // A flipped byte under crc32c.
    let path = saved(
        dir.path(),
        "c.zarr",
        CodecChain::new(vec![le.clone(), Codec::Crc32c]),
        &[4, 3],
    );
    let err = damaged(&path, "c/1/0", |b| b[3] ^= 0x10);
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("c/1/0"), "{err}");

    // A shard index pointing outside the shard.
    let shard = Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![2, 3],
        codecs: CodecChain::new(vec![le.clone()]),
        index_codecs: CodecChain::new(vec![le.clone()]),
        index_at_start: false,
    }));
    let path = saved(dir.path(), "s.zarr", CodecChain::new(vec![shard]), &[4, 6]);
    let err = damaged(&path, "c/1/0", |b| {
        let at = b.len() - 4 * 16 + 16; // The second inner chunk's offset.
        b[at..at + 8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    });
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(
        err.to_string().contains("c/1/0") && err.to_string().contains("inner chunk 1"),
        "{err}"
    );

    // A huge declared shape: refused before anything is allocated.
    let path = saved(
        dir.path(),
        "h.zarr",
        CodecChain::new(vec![le.clone()]),
        &[4, 3],
    );
    let doc = std::fs::read_to_string(path.join("zarr.json")).unwrap();
    let doc = doc.replacen(
        "\"shape\": [\n    8,\n    6\n  ]",
        "\"shape\": [\n    4611686018427387904,\n    4611686018427387904\n  ]",
        1,
    );
    std::fs::write(path.join("zarr.json"), doc).unwrap();
    let err = ZarrBackend.load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("zarr.json"), "{err}");

    // A chunk file far larger than its chunk can need is refused before it is read.
    let path = saved(
        dir.path(),
        "l.zarr",
        CodecChain::new(vec![le, Codec::Gzip(1)]),
        &[4, 3],
    );
    std::fs::write(path.join("c/0/0"), vec![0u8; 1 << 20]).unwrap();
    let err = ZarrBackend.load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(err.to_string().contains("more than the"), "{err}");
}

#[test]
fn a_save_replaces_the_whole_array_and_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let big = sample(DTypeKind::U16, &[3000, 400]);
    ZarrBackend
        .save(&path, &big, &SaveOptions::default())
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).unwrap();
    let small = sample(DTypeKind::F32, &[5]);
    ZarrBackend
        .save(&path, &small, &SaveOptions::default())
        .unwrap();
    let (meta, got) = ZarrBackend.load(&path).unwrap();
    assert!(got.bit_eq(&small));
    assert_eq!(meta.shape, [5]);
    // No chunk of the old array is left, and no temporary beside it.
    assert_eq!(walk(&path).len(), 2, "{:?}", walk(&path));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    // A target that is no array is never replaced.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = ZarrBackend
        .save(&file, &small, &SaveOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn a_group_is_never_replaced_by_a_save_or_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("g.zarr");
    let small = sample(DTypeKind::F32, &[5]);
    std::fs::create_dir(&group).unwrap();
    ZarrBackend
        .save(&group.join("a"), &small, &SaveOptions::default())
        .unwrap();
    let group_json = br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#;
    std::fs::write(group.join("zarr.json"), group_json).unwrap();
    let in_place = SaveOptions::default().in_place();
    for options in [SaveOptions::default(), in_place] {
        let err = ZarrBackend.save(&group, &small, &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.message().contains("group"), "{err}");
        let err = ZarrBackend
            .writer(&group, DType::native(DTypeKind::F32), &[], &options)
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    // The group and its array are untouched.
    assert_eq!(std::fs::read(group.join("zarr.json")).unwrap(), group_json);
    let (_, got) = ZarrBackend.load(&group.join("a")).unwrap();
    assert!(got.bit_eq(&small));
}

#[test]
fn the_streaming_writer_appends_whole_chunks_and_publishes_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.zarr");
    let rows = sample(DTypeKind::F64, &[1000, 300]);
    let mut writer = ZarrBackend
        .writer(
            &path,
            DType::native(DTypeKind::F64),
            &[300],
            &SaveOptions::default(),
        )
        .unwrap();
    for start in (0..1000).step_by(130) {
        let end = (start + 130).min(1000);
        let part = with_dyn_array_rows(&rows, start, end);
        writer.append(&part).unwrap();
        if start == 390 {
            writer.flush().unwrap();
            writer.sync().unwrap();
        }
    }
    assert!(!path.exists(), "nothing is published before commit");
    writer.commit().unwrap();
    let (meta, got) = ZarrBackend.load(&path).unwrap();
    assert_eq!(meta.shape, [1000, 300]);
    assert!(got.bit_eq(&rows));

    // Dropped without commit: the old array stays and no temporary is left.
    let mut writer = ZarrBackend
        .writer(
            &path,
            DType::native(DTypeKind::F64),
            &[300],
            &SaveOptions::default(),
        )
        .unwrap();
    writer.append(&with_dyn_array_rows(&rows, 0, 10)).unwrap();
    drop(writer);
    assert!(ZarrBackend.load(&path).unwrap().1.bit_eq(&rows));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

fn with_dyn_array_rows(a: &DynArray, start: usize, end: usize) -> DynArray {
    let a = a.clone().into_typed::<f64>().unwrap();
    DynArray::from(
        a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end))
            .to_owned(),
    )
}

/// Review finding: a sweep of stale temporaries judged a staged tree's writer alive by the pid
/// in its name, wrong across PID namespaces. The writer holds a lock on its temporary
/// directory, and a sweep keeps a locked tree whatever pid its name carries.
#[test]
fn a_writers_staged_tree_survives_a_sweep_while_its_writer_lives() {
    use ndstore_core::ArrayWriter;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("w.zarr");
    let meta = ZarrMeta::new(DType::native(DTypeKind::F64), &[0, 3], &[2, 3]).unwrap();
    let mut writer: Box<dyn ArrayWriter> = Box::new(
        ndstore_zarr::ZarrWriter::create_with(&target, meta, &SaveOptions::default()).unwrap(),
    );
    let rows = sample(DTypeKind::F64, &[4, 3]);
    writer.append(&rows).unwrap();
    let temps = ndstore_core::list_temps(&target).unwrap();
    assert_eq!(temps.len(), 1, "{temps:?}");
    // The writer as another PID namespace sees it: a pid never alive here.
    let foreign = dir.path().join(".w.zarr.4194998-0.ndstore-tmp");
    std::fs::rename(&temps[0], &foreign).unwrap();
    let stale = dir.path().join(".w.zarr.4194999-0.ndstore-tmp");
    std::fs::create_dir(&stale).unwrap();
    assert_eq!(ndstore_core::remove_stale_temps_in(dir.path()).unwrap(), 1);
    assert!(!stale.exists());
    assert!(foreign.exists(), "a live writer's tree must stay");
    std::fs::rename(&foreign, &temps[0]).unwrap();
    writer.commit().unwrap();
    let (_, back) = ZarrBackend.load(&target).unwrap();
    assert!(back.bit_eq(&rows));
}

/// Chains whose chunks (and a shard's inner chunks) span whole rows of an array of 6 columns:
/// the read path that decodes chunks straight into their run of the region.
fn row_chains(dtype: DType) -> Vec<(&'static str, CodecChain, Vec<usize>)> {
    let bytes = Codec::bytes_for(dtype);
    let zstd = Codec::Zstd {
        level: 1,
        checksum: true,
    };
    let shard = |codecs: Vec<Codec>, at_start| {
        Codec::Sharding(Box::new(Sharding {
            chunk_shape: vec![2, 6],
            codecs: CodecChain::new(codecs),
            index_codecs: CodecChain::new(vec![
                Codec::Bytes(Some(ByteOrder::Little)),
                Codec::Crc32c,
            ]),
            index_at_start: at_start,
        }))
    };
    vec![
        ("bytes", CodecChain::new(vec![bytes.clone()]), vec![4, 6]),
        (
            "zstd",
            CodecChain::new(vec![bytes.clone(), zstd.clone()]),
            vec![4, 6],
        ),
        (
            "zstd+crc32c",
            CodecChain::new(vec![bytes.clone(), zstd.clone(), Codec::Crc32c]),
            vec![4, 6],
        ),
        (
            "gzip",
            CodecChain::new(vec![bytes.clone(), Codec::Gzip(1)]),
            vec![4, 6],
        ),
        (
            "transpose",
            CodecChain::new(vec![Codec::Transpose(vec![1, 0]), bytes.clone()]),
            vec![4, 6],
        ),
        (
            "sharded",
            CodecChain::new(vec![shard(vec![bytes.clone()], false)]),
            vec![6, 6],
        ),
        (
            "sharded zstd, index first",
            CodecChain::new(vec![shard(vec![bytes.clone(), zstd], true)]),
            vec![6, 6],
        ),
        (
            "sharded, crc32c inside",
            CodecChain::new(vec![shard(vec![bytes.clone(), Codec::Crc32c], false)]),
            vec![6, 6],
        ),
        (
            "sharded, crc32c around",
            CodecChain::new(vec![shard(vec![bytes], false), Codec::Crc32c]),
            vec![6, 6],
        ),
    ]
}

/// Every file under `root`, by its path below it, with its bytes.
fn tree_files(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn chunks_written_from_runs_of_the_values_match_chunks_copied_out_of_them() {
    // Values in C order hold each chunk of whole rows in one run, written from there without a
    // copy; the same values in Fortran order are copied out chunk by chunk. Both must store
    // the same bytes, for every dtype, byte order and chain, partial last chunks and all-fill
    // chunks and inner chunks included.
    let dir = tempfile::tempdir().unwrap();
    let shape = [10usize, 6];
    for kind in DTypeKind::ALL {
        let mut values = sample(kind, &shape);
        with_dyn_array!(&mut values, |a| a
            .slice_mut(ndarray::s![4..6, ..])
            .fill(bytemuck::Zeroable::zeroed()));
        let fortran = with_dyn_array!(&values, |a| DynArray::from(
            a.t().as_standard_layout().into_owned().reversed_axes()
        ));
        with_dyn_array!(&fortran, |a| assert!(!a.is_standard_layout()));
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let dtype = DType::new(kind, order);
            for (name, chain, chunks) in row_chains(dtype) {
                let label = format!("{kind:?}-{order:?}-{}", name.replace([' ', ','], "_"));
                let runs = dir.path().join(format!("runs-{label}.zarr"));
                let copied = dir.path().join(format!("copied-{label}.zarr"));
                let meta = meta_with(dtype, &shape, &chunks, chain);
                save_with(&runs, &values, meta.clone(), &SaveOptions::default()).unwrap();
                save_with(&copied, &fortran, meta, &SaveOptions::default()).unwrap();
                let (runs, copied) = (tree_files(&runs), tree_files(&copied));
                assert!(runs.len() > 1, "{label}: {:?}", runs.keys());
                assert_eq!(
                    runs.keys().collect::<Vec<_>>(),
                    copied.keys().collect::<Vec<_>>(),
                    "{label}"
                );
                for (key, bytes) in &runs {
                    assert!(copied[key] == *bytes, "{label}: {key} differs");
                }
            }
        }
    }
}

#[test]
fn chunks_of_whole_rows_decode_into_place_at_every_edge() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [10usize, 6];
    // Boxes of whole rows: all, cut inside the first and last chunks (and inner chunks), one
    // row, the last partial chunk alone; then boxes that are not whole rows.
    let boxes: [([usize; 2], [usize; 2]); 7] = [
        ([0, 0], [10, 6]),
        ([1, 0], [8, 6]),
        ([5, 0], [1, 6]),
        ([8, 0], [2, 6]),
        ([3, 0], [4, 6]),
        ([2, 1], [5, 3]),
        ([0, 5], [10, 1]),
    ];
    for kind in DTypeKind::ALL {
        let mut values = sample(kind, &shape);
        // Rows 4 to 6 hold the fill value, so some chunks and inner chunks are not stored.
        with_dyn_array!(&mut values, |a| a
            .slice_mut(ndarray::s![4..6, ..])
            .fill(bytemuck::Zeroable::zeroed()));
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let dtype = DType::new(kind, order);
            for (name, chain, chunks) in row_chains(dtype) {
                let path = dir.path().join(format!(
                    "rows-{kind:?}-{order:?}-{}.zarr",
                    name.replace([' ', ','], "_")
                ));
                let meta = meta_with(dtype, &shape, &chunks, chain);
                save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
                let array = ZarrArray::open(&path, &SaveOptions::default()).unwrap();
                for (start, extent) in boxes {
                    let got = array.read_region(&start, &extent).unwrap();
                    let want = with_dyn_array!(&values, |a| DynArray::from(
                        a.slice(ndarray::s![
                            start[0]..start[0] + extent[0],
                            start[1]..start[1] + extent[1]
                        ])
                        .to_owned()
                        .into_dyn()
                    ));
                    assert!(
                        got.bit_eq(&want),
                        "{kind:?} {order:?} {name}: box {extent:?} at {start:?}"
                    );
                }
            }
        }
    }
    // A one-dimensional array: every row is one element.
    let values = sample(DTypeKind::U16, &[23]);
    for chain in [
        CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Big))]),
        CodecChain::new(vec![
            Codec::Bytes(Some(ByteOrder::Little)),
            Codec::Zstd {
                level: 1,
                checksum: false,
            },
        ]),
    ] {
        let path = dir.path().join("line.zarr");
        let meta = meta_with(DType::native(DTypeKind::U16), &[23], &[5], chain);
        save_with(&path, &values, meta, &SaveOptions::default()).unwrap();
        let array = ZarrArray::open(&path, &SaveOptions::default()).unwrap();
        for (start, len) in [(0, 23), (3, 9), (20, 3), (7, 1)] {
            let got = array.read_region(&[start], &[len]).unwrap();
            let want = with_dyn_array!(&values, |a| DynArray::from(
                a.slice(ndarray::s![start..start + len])
                    .to_owned()
                    .into_dyn()
            ));
            assert!(got.bit_eq(&want), "{start}+{len}");
        }
    }
}

#[test]
fn damaged_chunks_of_whole_rows_are_refused_naming_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let le = Codec::Bytes(Some(ByteOrder::Little));
    let zstd = Codec::Zstd {
        level: 1,
        checksum: false,
    };
    let rows = |name: &str, codecs: Vec<Codec>, chunks: &[usize]| {
        saved(dir.path(), name, CodecChain::new(codecs), chunks)
    };
    // A raw chunk cut short, or grown, read straight into the region.
    let path = rows("cut.zarr", vec![le.clone()], &[4, 6]);
    let err = damaged(&path, "c/1/0", |b| b.truncate(b.len() - 8));
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(err.to_string().contains("c/1/0"), "{err}");
    let path = rows("grown.zarr", vec![le.clone()], &[4, 6]);
    let err = damaged(&path, "c/0/0", |b| b.extend_from_slice(&[0; 8]));
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(err.to_string().contains("c/0/0"), "{err}");
    // A zstd chunk that decodes to less, or more, than its place in the region.
    let short = CodecChain::new(vec![le.clone(), zstd.clone()])
        .encode(vec![1; 8], &[1], f64_element())
        .unwrap();
    let path = rows("zshort.zarr", vec![le.clone(), zstd.clone()], &[4, 6]);
    let err = damaged(&path, "c/0/0", |b| *b = short.clone());
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(err.to_string().contains("c/0/0"), "{err}");
    let long = CodecChain::new(vec![le.clone(), zstd.clone()])
        .encode(vec![1; 8 * 25], &[25], f64_element())
        .unwrap();
    let path = rows("zlong.zarr", vec![le.clone(), zstd.clone()], &[4, 6]);
    let err = damaged(&path, "c/0/0", |b| *b = long.clone());
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    // A raw inner chunk whose index gives it a byte too few.
    let shard = Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![2, 6],
        codecs: CodecChain::new(vec![le.clone()]),
        index_codecs: CodecChain::new(vec![le.clone()]),
        index_at_start: false,
    }));
    let path = rows("inner.zarr", vec![shard], &[4, 6]);
    let err = damaged(&path, "c/1/0", |b| {
        let at = b.len() - 2 * 16 + 8; // The first inner chunk's length.
        b[at..at + 8].copy_from_slice(&95u64.to_le_bytes());
    });
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    assert!(
        err.to_string().contains("c/1/0") && err.to_string().contains("inner chunk 0"),
        "{err}"
    );
    // A bool that is neither 0 nor 1, read straight into the region.
    let path = dir.path().join("bool.zarr");
    let meta = meta_with(
        DType::native(DTypeKind::Bool),
        &[8, 6],
        &[4, 6],
        CodecChain::new(vec![Codec::Bytes(None)]),
    );
    save_with(
        &path,
        &sample(DTypeKind::Bool, &[8, 6]),
        meta,
        &SaveOptions::default(),
    )
    .unwrap();
    let err = damaged(&path, "c/1/0", |b| b[3] = 2);
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(
        err.to_string().contains("c/1/0") && err.to_string().contains("bool"),
        "{err}"
    );
}

fn f64_element() -> ndstore_zarr::codec::Element<'static> {
    ndstore_zarr::codec::Element {
        kind: DTypeKind::F64,
        fill: &[0; 8],
    }
}

//! Round trips through every entry point of the file backend: paths, streams, `.npz` archives
//! (stored and deflated), raw files and the streaming writer, over every dtype × shapes
//! {0-d, [0], [7], [3,4], [2,3,4]} × {C, F} × {little, big}.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use ndarray::{Array2, Array3, ArrayD, IxDyn, ShapeBuilder, array};
use ndstore_conformance::sample;
use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DTypeKind, DynArray, ErrorKind, Order, SaveOptions,
};
use ndstore_file::npz::{self, Compression, NpzReader, NpzWriter};
use ndstore_file::{NpyWriter, npy, raw};

const SHAPES: [&[usize]; 5] = [&[], &[0], &[7], &[3, 4], &[2, 3, 4]];

/// Every case of the matrix: (kind, shape, order, byte order, array).
fn matrix() -> Vec<(DTypeKind, Vec<usize>, Order, ByteOrder, DynArray)> {
    let mut cases = Vec::new();
    for kind in DTypeKind::ALL {
        for shape in SHAPES {
            for order in [Order::C, Order::Fortran] {
                for byte_order in [ByteOrder::Little, ByteOrder::Big] {
                    let array = sample::array(kind, shape, order, cases.len() as u64);
                    cases.push((kind, shape.to_vec(), order, byte_order, array));
                }
            }
        }
    }
    cases
}

fn expected_meta(
    kind: DTypeKind,
    shape: &[usize],
    order: Order,
    byte_order: ByteOrder,
) -> ArrayMeta {
    let meta = ArrayMeta::new(DType::new(kind, byte_order), shape.to_vec(), order);
    ArrayMeta {
        order: meta.effective_order(),
        ..meta
    }
}

#[test]
fn npy_matrix_round_trips_through_paths_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let cases = matrix();
    assert_eq!(cases.len(), 14 * 5 * 2 * 2);
    for (n, (kind, shape, order, byte_order, array)) in cases.iter().enumerate() {
        let want = expected_meta(*kind, shape, *order, *byte_order);
        let path = dir.path().join(format!("{n}.npy"));
        npy::save_dyn(&path, array, &SaveOptions::new().byte_order(*byte_order)).unwrap();
        let (meta, loaded) = npy::load_dyn(&path).unwrap();
        assert_eq!(meta, want, "case {n}");
        assert!(loaded.bit_eq(array), "case {n}: values");
        assert_eq!(npy::read_meta(&path).unwrap(), want);

        let mut buffer = Vec::new();
        npy::write_dyn_to(&mut buffer, array, *byte_order).unwrap();
        assert_eq!(
            buffer,
            std::fs::read(&path).unwrap(),
            "case {n}: stream and file bytes differ"
        );
        let (meta, loaded) = npy::read_dyn_from(&mut Cursor::new(&buffer)).unwrap();
        assert_eq!(meta, want);
        assert!(loaded.bit_eq(array));
    }
}

#[test]
fn npz_matrix_round_trips_stored_and_deflated() {
    let dir = tempfile::tempdir().unwrap();
    let cases = matrix();
    for compression in [Compression::Stored, Compression::Deflated] {
        for byte_order in [ByteOrder::Little, ByteOrder::Big] {
            let path = dir
                .path()
                .join(format!("{compression:?}-{byte_order:?}.npz"));
            let mut writer = NpzWriter::create(
                &path,
                &SaveOptions::new().byte_order(byte_order),
                compression,
            )
            .unwrap();
            let chosen: Vec<_> = cases
                .iter()
                .enumerate()
                .filter(|(_, c)| c.3 == byte_order)
                .collect();
            for (n, (_, _, _, _, array)) in &chosen {
                writer.add_dyn(&format!("a{n}"), array).unwrap();
            }
            ndstore_core::Commit::commit(writer).unwrap();
            let mut reader = NpzReader::open(&path).unwrap();
            assert_eq!(reader.names().len(), chosen.len());
            for (n, (kind, shape, order, _, array)) in &chosen {
                let name = format!("a{n}");
                let want = expected_meta(*kind, shape, *order, byte_order);
                assert_eq!(reader.read_meta(&name).unwrap(), want);
                let (meta, loaded) = reader.load_dyn(&name).unwrap();
                assert_eq!(meta, want, "{name}");
                assert!(loaded.bit_eq(array), "{name}");
            }
        }
    }
}

#[test]
fn typed_api_loads_with_the_right_dimensionality_and_rejects_the_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    let a = Array3::<f32>::from_shape_fn((2, 3, 4).f(), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    npy::save(&path, &a).unwrap();
    let b: Array3<f32> = npy::load(&path).unwrap();
    assert_eq!(a, b);
    assert!(
        b.t().is_standard_layout(),
        "a Fortran file loads as a Fortran array"
    );
    let err = npy::load::<f32, ndarray::Ix2>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    assert!(err.to_string().contains("3-d"), "{err}");
    let err = npy::load::<f64, ndarray::Ix3>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    assert!(err.to_string().contains("t.npy"), "{err}");
}

#[test]
fn non_contiguous_views_are_saved_in_c_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.npy");
    let a = Array2::<i64>::from_shape_fn((6, 5), |(i, j)| (i * 5 + j) as i64);
    let view = a.slice(ndarray::s![..;2, 1..4]);
    npy::save(&path, &view).unwrap();
    let b: Array2<i64> = npy::load(&path).unwrap();
    assert_eq!(b, view);
    assert_eq!(npy::read_meta(&path).unwrap().order, Order::C);
}

#[test]
fn raw_files_round_trip_with_caller_metadata() {
    let dir = tempfile::tempdir().unwrap();
    for (n, (_, shape, _, byte_order, array)) in matrix().iter().enumerate().step_by(3) {
        let path = dir.path().join(format!("{n}.bin"));
        let meta =
            raw::save_raw_dyn(&path, array, &SaveOptions::new().byte_order(*byte_order)).unwrap();
        assert_eq!(meta.shape, *shape);
        assert!(
            raw::load_raw_dyn(&path, &meta).unwrap().bit_eq(array),
            "case {n}"
        );
    }
    let path = dir.path().join("short.bin");
    std::fs::write(&path, [0u8; 12]).unwrap();
    let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![2], Order::C);
    let err = raw::load_raw_dyn(&path, &meta).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    assert!(
        err.to_string().contains("short.bin") && err.to_string().contains("16"),
        "{err}"
    );
}

#[test]
fn streaming_writer_output_equals_a_whole_save() {
    let dir = tempfile::tempdir().unwrap();
    for byte_order in [ByteOrder::Little, ByteOrder::Big] {
        let whole =
            ArrayD::<f64>::from_shape_fn(IxDyn(&[1000, 3]), |d| (d[0] * 3 + d[1]) as f64 * 0.5);
        let streamed = dir.path().join(format!("s-{byte_order:?}.npy"));
        let saved = dir.path().join(format!("w-{byte_order:?}.npy"));
        let options = SaveOptions::new().byte_order(byte_order);
        let mut writer = NpyWriter::create(
            &streamed,
            DType::new(DTypeKind::F64, byte_order),
            &[3],
            &options,
        )
        .unwrap();
        for chunk in whole.axis_chunks_iter(ndarray::Axis(0), 77) {
            writer.append(&chunk).unwrap();
        }
        assert!(!streamed.exists(), "nothing is published before commit");
        ndstore_core::Commit::commit(writer).unwrap();
        npy::save_with(&saved, &whole, &options).unwrap();
        assert_eq!(
            std::fs::read(&streamed).unwrap(),
            std::fs::read(&saved).unwrap()
        );
    }
}

#[test]
fn streaming_writer_refuses_rows_of_the_wrong_shape_or_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    let mut writer = NpyWriter::create(
        &path,
        DType::native(DTypeKind::I32),
        &[2],
        &SaveOptions::default(),
    )
    .unwrap();
    let err = writer.append(&array![[1i32, 2, 3]]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = writer.append(&array![[1.0f64, 2.0]]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    writer.append(&array![[1i32, 2]]).unwrap();
    ndstore_core::Commit::commit(writer).unwrap();
    let loaded: Array2<i32> = npy::load(&path).unwrap();
    assert_eq!(loaded, array![[1, 2]]);
}

#[test]
fn npz_refuses_unsafe_and_duplicate_names_when_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.npz");
    std::fs::write(&path, b"old").unwrap();
    let mut writer =
        NpzWriter::create(&path, &SaveOptions::default(), Compression::Stored).unwrap();
    for bad in [
        "",
        "../evil",
        "/abs",
        "a/../b",
        "nul\0byte",
        "back\\slash",
        "C:evil",
        "a//b",
    ] {
        let err = writer.add(bad, &array![1u8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
    }
    writer.add("x", &array![1u8]).unwrap();
    assert_eq!(
        writer.add("x", &array![2u8]).unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    drop(writer);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"old",
        "an uncommitted archive never replaces the target"
    );
    let array = DynArray::from(ArrayD::<u8>::zeros(IxDyn(&[2])));
    npz::save_npz(
        &path,
        &[("ok", &array), ("nested/name", &array)],
        Compression::Deflated,
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        NpzReader::open(&path).unwrap().names(),
        ["ok", "nested/name"]
    );
}

#[test]
fn a_stored_member_is_the_npy_file_at_its_range_and_a_deflated_one_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let a = DynArray::from(array![[1.5f64, 2.0], [3.0, 4.0]].into_dyn());
    npy::save_dyn(dir.path().join("a.npy"), &a, &SaveOptions::default()).unwrap();
    let npy_bytes = std::fs::read(dir.path().join("a.npy")).unwrap();
    for (compression, stored) in [(Compression::Stored, true), (Compression::Deflated, false)] {
        let path = dir.path().join(format!("{compression:?}.npz"));
        npz::save_npz(&path, &[("x", &a)], compression, &SaveOptions::default()).unwrap();
        let found = NpzReader::open(&path).unwrap().stored_member("x").unwrap();
        assert_eq!(found.is_some(), stored, "{compression:?}");
        if let Some(member) = found {
            assert_eq!(member.name, "x.npy");
            let bytes = std::fs::read(&path).unwrap();
            let range = usize::try_from(member.data.start).unwrap()
                ..usize::try_from(member.data.end).unwrap();
            assert_eq!(bytes[range], npy_bytes[..]);
        }
        let err = NpzReader::open(&path)
            .unwrap()
            .stored_member("y")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}

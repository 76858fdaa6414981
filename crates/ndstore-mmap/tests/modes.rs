//! numpy's mapping modes, views, locks and flush/sync, against the files they leave behind.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, ArrayD, IxDyn, ShapeBuilder, array};
use ndstore_core::{
    ArrayMeta, ByteOrder, Close, Commit, DType, DTypeKind, Durable, DynArray, ErrorKind, Order,
    SaveOptions,
};
use ndstore_mmap::{MappedArray, Mode};

// SAFETY: these tests map only files in their own temporary directories, which no other program
// truncates or rewrites.
const MMAP: ndstore_mmap::MmapBackend = unsafe { ndstore_mmap::MmapBackend::new() };

fn meta(kind: DTypeKind, shape: &[usize], order: Order) -> ArrayMeta {
    ArrayMeta::new(DType::native(kind), shape.to_vec(), order)
}

/// Saves `a` as .npy through a created map.
fn save(path: &std::path::Path, a: &DynArray) {
    ndstore_core::Backend::save(&MMAP, path, a, &SaveOptions::default()).unwrap();
}

fn load(path: &std::path::Path) -> DynArray {
    ndstore_core::Backend::load(&MMAP, path).unwrap().1
}

#[test]
fn read_only_maps_view_without_copying_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.npy");
    let a = Array2::<f64>::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
    save(&path, &a.clone().into_dyn().into());
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::open_npy(&path, Mode::Read).unwrap() };
    assert_eq!(map.view::<f64>().unwrap(), a.clone().into_dyn());
    assert_eq!(
        map.view_mut::<f64>().unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        map.view::<f32>().unwrap_err().kind(),
        ErrorKind::TypeMismatch
    );
}

#[test]
fn read_write_changes_reach_the_file_and_copy_on_write_changes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rw.npy");
    save(&path, &ArrayD::<i32>::zeros(IxDyn(&[5])).into());
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite).unwrap() };
    map.view_mut::<i32>().unwrap()[[2]] = 42;
    map.sync().unwrap();
    map.close().unwrap();
    let want: DynArray = ArrayD::from_shape_vec(IxDyn(&[5]), vec![0, 0, 42, 0, 0])
        .unwrap()
        .into();
    assert!(load(&path).bit_eq(&want));

    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut cow = unsafe { MappedArray::open_npy(&path, Mode::CopyOnWrite).unwrap() };
    cow.view_mut::<i32>().unwrap().fill(-1);
    assert_eq!(cow.view::<i32>().unwrap().sum(), -5);
    cow.sync().unwrap();
    cow.close().unwrap();
    assert!(
        load(&path).bit_eq(&want),
        "copy-on-write changes must never reach the file"
    );
}

#[test]
fn created_maps_appear_only_complete_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    std::fs::write(&path, b"old").unwrap();
    let m = meta(DTypeKind::F32, &[100, 10], Order::Fortran);
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::create_npy(&path, &m, &SaveOptions::default()).unwrap() };
    map.view_mut::<f32>().unwrap().fill(2.5);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"old",
        "nothing is published before commit"
    );
    map.commit().unwrap();
    let (meta, loaded) = ndstore_core::Backend::load(&MMAP, &path).unwrap();
    assert_eq!(meta.order, Order::Fortran);
    assert_eq!(loaded.into_typed::<f32>().unwrap().sum(), 2500.0);

    // Dropped uncommitted: rolled back, no temporary left.
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::create_npy(&path, &m, &SaveOptions::default()).unwrap() };
    map.view_mut::<f32>().unwrap().fill(9.0);
    drop(map);
    assert_eq!(load(&path).into_typed::<f32>().unwrap().sum(), 2500.0);
    assert!(ndstore_core::list_temps(&path).unwrap().is_empty());
}

#[test]
fn raw_maps_honour_offset_order_and_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.bin");
    // 16 bytes of preamble, then a 2×3 big-endian u16 array in Fortran order.
    let values: [u16; 6] = [1, 2, 3, 4, 5, 6];
    let mut bytes = vec![0xAA; 16];
    bytes.extend(values.iter().flat_map(|v| v.to_be_bytes()));
    std::fs::write(&path, &bytes).unwrap();
    let m = ArrayMeta::new(
        DType::new(DTypeKind::U16, ByteOrder::Big),
        vec![2, 3],
        Order::Fortran,
    );
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let map = unsafe { MappedArray::open_raw(&path, &m, 16, Mode::Read).unwrap() };
    let read = map.read().unwrap().into_typed::<u16>().unwrap();
    assert_eq!(
        read,
        ArrayD::from_shape_vec(IxDyn(&[2, 3]).f(), values.to_vec()).unwrap()
    );
    // A zero-copy view needs the native byte order: a clear error, not wrong values.
    let err = map.view::<u16>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("byte order"), "{err}");
    // A misaligned offset cannot be viewed either, but can be read.
    let m8 = ArrayMeta::new(DType::native(DTypeKind::U64), vec![1], Order::C);
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let map = unsafe { MappedArray::open_raw(&path, &m8, 3, Mode::Read).unwrap() };
    assert!(
        map.view::<u64>()
            .unwrap_err()
            .to_string()
            .contains("alignment")
    );
    assert_eq!(map.read().unwrap().len(), 1);
}

#[test]
fn invalid_bools_are_refused_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.bin");
    std::fs::write(&path, [0u8, 1, 2, 1]).unwrap();
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let map = unsafe {
        MappedArray::open_raw(&path, &meta(DTypeKind::Bool, &[4], Order::C), 0, Mode::Read).unwrap()
    };
    let err = map.view::<bool>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format);
    assert_eq!(err.location(), Some(&ndstore_core::Location::Offset(2)));
}

#[test]
fn zero_length_arrays_map_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.npy");
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe {
        MappedArray::create_npy(
            &path,
            &meta(DTypeKind::Complex128, &[0, 5], Order::C),
            &SaveOptions::default(),
        )
        .unwrap()
    };
    assert_eq!(
        map.view_mut::<ndstore_core::num_complex::Complex<f64>>()
            .unwrap()
            .len(),
        0
    );
    map.commit().unwrap();
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let map = unsafe { MappedArray::open_npy(&path, Mode::Read).unwrap() };
    assert_eq!(
        map.view::<ndstore_core::num_complex::Complex<f64>>()
            .unwrap()
            .shape(),
        &[0, 5]
    );
}

#[test]
fn cooperating_handles_are_refused_while_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.npy");
    save(&path, &ArrayD::<u8>::zeros(IxDyn(&[8])).into());
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let writer = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite).unwrap() };
    for mode in [Mode::Read, Mode::ReadWrite, Mode::CopyOnWrite] {
        // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
        let err = unsafe { MappedArray::open_npy(&path, mode) }.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Locked, "{mode:?}: {err}");
        assert!(err.to_string().contains("l.npy"), "{err}");
    }
    // An in-place rewrite would truncate the mapped file: refused too.
    let err = ndstore_core::Backend::save(
        &MMAP,
        &path,
        &ArrayD::<u8>::zeros(IxDyn(&[1])).into(),
        &SaveOptions::new().in_place(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    drop(writer);
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let reader = unsafe { MappedArray::open_npy(&path, Mode::Read).unwrap() };
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let second = unsafe { MappedArray::open_npy(&path, Mode::Read).unwrap() };
    assert_eq!(
        // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
        unsafe { MappedArray::open_npy(&path, Mode::ReadWrite) }
            .err()
            .unwrap()
            .kind(),
        ErrorKind::Locked
    );
    drop((reader, second));
}

#[test]
fn truncated_files_are_refused_before_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    save(&path, &ArrayD::<f64>::zeros(IxDyn(&[100])).into());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 8)
        .unwrap();
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let err = unsafe { MappedArray::open_npy(&path, Mode::Read) }
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    assert!(err.location().is_some(), "{err}");
}

#[test]
fn range_sync_checks_its_bounds_and_writes_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npy");
    save(&path, &ArrayD::<f64>::zeros(IxDyn(&[10_000])).into());
    // SAFETY: the test's own temporary file; only this test (and the numpy it starts) uses it.
    let mut map = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite).unwrap() };
    map.view_mut::<f64>().unwrap()[[9_000]] = 1.0;
    map.sync_range(8_999, 2).unwrap();
    assert_eq!(
        map.sync_range(9_999, 2).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    map.write_from(
        &array![5.0f64]
            .into_dyn()
            .broadcast(IxDyn(&[10_000]))
            .unwrap()
            .to_owned()
            .into(),
    )
    .unwrap();
    Durable::flush(&mut map).unwrap();
    drop(map);
    assert_eq!(load(&path).into_typed::<f64>().unwrap().sum(), 50_000.0);
}

#[test]
fn an_aborted_created_map_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let meta = ArrayMeta::new(DType::native(DTypeKind::F64), vec![4], Order::C);
    // SAFETY: the files are this test's own, in its own directory.
    let mut old =
        unsafe { MappedArray::create_npy(&path, &meta, &SaveOptions::default()) }.unwrap();
    old.write_from(&DynArray::from(ndarray::ArrayD::from_elem(
        ndarray::IxDyn(&[4]),
        1.0,
    )))
    .unwrap();
    ndstore_core::Commit::commit(old).unwrap();
    let before = std::fs::read(&path).unwrap();
    // SAFETY: as above.
    let mut new =
        unsafe { MappedArray::create_npy(&path, &meta, &SaveOptions::default()) }.unwrap();
    new.write_from(&DynArray::from(ndarray::ArrayD::from_elem(
        ndarray::IxDyn(&[4]),
        2.0,
    )))
    .unwrap();
    new.abort().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(ndstore_core::list_temps(&path).unwrap().is_empty());

    // A rollback that cannot remove the temporary (a directory stands in its place) says so.
    // SAFETY: as above.
    let blocked =
        unsafe { MappedArray::create_npy(&path, &meta, &SaveOptions::default()) }.unwrap();
    let temps = ndstore_core::list_temps(&path).unwrap();
    assert_eq!(temps.len(), 1);
    std::fs::remove_file(&temps[0]).unwrap();
    std::fs::create_dir(&temps[0]).unwrap();
    let err = blocked.abort().unwrap_err();
    assert!(err.message().contains("temporary"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

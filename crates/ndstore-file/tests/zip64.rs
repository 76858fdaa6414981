//! `.npz` archives over 4 GiB: the member is written with zip64 sizes and reads back whole.
//! Costs about 4 GiB of temporary disk and memory, and some seconds.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array1, s};
use ndstore_core::{DynArray, SaveOptions};
use ndstore_file::npz::{self, Compression, NpzReader};

#[test]
fn an_npz_member_over_4_gib_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.npz");
    let len = (4usize << 30) + (1 << 20);
    let mut big = Array1::<u8>::zeros(len);
    big[0] = 1;
    big[len / 2] = 2;
    big[len - 1] = 3;
    let array = DynArray::from(big.into_dyn());
    npz::save_npz(
        &path,
        &[("big", &array)],
        Compression::Stored,
        &SaveOptions::new().flushed(),
    )
    .unwrap();
    drop(array);
    assert!(std::fs::metadata(&path).unwrap().len() > 4 << 30);
    let mut reader = NpzReader::open(&path).unwrap();
    let loaded: Array1<u8> = reader.load("big").unwrap();
    assert_eq!(loaded.len(), len);
    assert_eq!((loaded[0], loaded[len / 2], loaded[len - 1]), (1, 2, 3));
    assert!(loaded.slice(s![1..len / 2]).iter().all(|&b| b == 0));
}

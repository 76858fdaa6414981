//! Zarr arrays through a real local S3-compatible server (moto, started by the test through
//! the conformance crate's helper): round trips, multipart chunks, and the conditional
//! create/update protocol one request at a time (moto's check-then-act is not atomic under
//! races, so the race tests run against `InMemory` in tests/object.rs). Without the server the
//! tests SKIP with the reason, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bits, f64_meta, load, s3_target as target, sample};
use ndstore_conformance::python::s3_server_or_skip;
use ndstore_core::{ByteOrder, ErrorKind, SaveOptions};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::{ZarrArray, save_object};

#[test]
fn arrays_round_trip_through_s3_and_large_chunks_go_multipart() {
    let Some(server) = s3_server_or_skip("the moto round trips") else {
        return;
    };
    let small = target(&server, "round/small.zarr");
    let values = sample(&[50, 40], 1);
    save_object(
        &small,
        &values,
        f64_meta(&[50, 40], &[16, 16]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(bits(&load(&small).unwrap()), bits(&values));

    // One 24 MiB chunk, sent as a multipart upload of three parts.
    let big = target(&server, "round/big.zarr");
    let values = sample(&[3 << 20], 2);
    save_object(
        &big,
        &values,
        f64_meta(&[3 << 20], &[3 << 20]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(bits(&load(&big).unwrap()), bits(&values));
}

#[test]
fn conditional_create_and_update_conflict_one_request_at_a_time() {
    let Some(server) = s3_server_or_skip("the moto commit protocol") else {
        return;
    };
    let options = SaveOptions::default();
    let target = target(&server, "protocol/a.zarr");
    assert_eq!(load(&target).unwrap_err().kind(), ErrorKind::NotFound);

    // Two writers start a new array; the first commit creates it, the second is refused.
    let first = ZarrArray::create_object(&target, f64_meta(&[4, 4], &[4, 4]), &options).unwrap();
    let second = ZarrArray::create_object(&target, f64_meta(&[4, 4], &[4, 4]), &options).unwrap();
    let v1 = sample(&[4, 4], 3);
    first.write_region(&[0, 0], &v1).unwrap();
    first.write_metadata().unwrap();
    let err = second.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert_eq!(bits(&load(&target).unwrap()), bits(&v1));

    // A writer opens it; a save commits a new version (another shape in the same chunk
    // layout, so another zarr.json: S3's ETag is the content's MD5, and identical bytes keep
    // it; another chunk layout is refused on object storage), then the writer's commit from
    // the stale ETag is refused.
    let stale = ZarrArray::open_object(&target, &options).unwrap();
    let v2 = sample(&[4, 8], 4);
    save_object(&target, &v2, f64_meta(&[4, 8], &[4, 4]), &options).unwrap();
    assert_eq!(
        stale.write_metadata().unwrap_err().kind(),
        ErrorKind::Locked
    );
    assert_eq!(bits(&load(&target).unwrap()), bits(&v2));
}

#[test]
fn a_commit_of_identical_metadata_in_between_still_conflicts() {
    // S3's ETag is the MD5 of the content, so `If-Match` on zarr.json alone cannot see a
    // commit of the same zarr.json bytes; the writer lease can: the stale writer's claim
    // expects the lease object as it was at its opening.
    let Some(server) = s3_server_or_skip("the moto identical-commit conflict") else {
        return;
    };
    let options = SaveOptions::default();
    let target = target(&server, "identical/a.zarr");
    save_object(
        &target,
        &sample(&[4, 4], 1),
        f64_meta(&[4, 4], &[2, 2]),
        &options,
    )
    .unwrap();
    let stale = ZarrArray::open_object(&target, &options).unwrap();
    let winner = sample(&[4, 4], 2);
    save_object(&target, &winner, f64_meta(&[4, 4], &[2, 2]), &options).unwrap();
    let err = stale.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    let err = stale
        .write_region(&[0, 0], &sample(&[2, 2], 3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert_eq!(bits(&load(&target).unwrap()), bits(&winner));
}

#[test]
fn the_writer_lease_protocol_through_s3() {
    let Some(server) = s3_server_or_skip("the moto writer lease") else {
        return;
    };
    let options = SaveOptions::default();
    let base = target(&server, "lease/a.zarr");
    let old = sample(&[4, 4], 1);
    save_object(&base, &old, f64_meta(&[4, 4], &[2, 2]), &options).unwrap();

    // A live lease refuses a second writer before it writes a chunk.
    let first = ZarrArray::open_object(&base, &options).unwrap();
    first.write_region(&[0, 0], &sample(&[2, 2], 2)).unwrap();
    let second = ZarrArray::open_object(&base, &options).unwrap();
    let err = second
        .write_region(&[2, 2], &sample(&[2, 2], 3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    first.write_metadata().unwrap();
    let committed = load(&base).unwrap();
    assert_eq!(
        bits(&committed).slice(ndarray::s![2.., 2..]),
        bits(&old).slice(ndarray::s![2.., 2..])
    );

    // A killed writer's lease (never released) is taken over once it expired.
    let short = base.clone().with_lease_duration(std::time::Duration::ZERO);
    let killed = ZarrArray::open_object(&short, &options).unwrap();
    killed.write_region(&[0, 0], &sample(&[2, 2], 4)).unwrap();
    std::mem::forget(killed);
    let next = sample(&[4, 4], 5);
    save_object(&short, &next, f64_meta(&[4, 4], &[2, 2]), &options).unwrap();
    assert_eq!(bits(&load(&base).unwrap()), bits(&next));
}

#[test]
fn parts_of_shards_are_read_by_ranged_gets_through_s3() {
    let Some(server) = s3_server_or_skip("the moto ranged reads") else {
        return;
    };
    let values = sample(&[64, 48], 9);
    for index_at_start in [false, true] {
        let target = target(&server, &format!("ranges/{index_at_start}.zarr"));
        let mut meta = f64_meta(&[64, 48], &[32, 24]);
        meta.codecs = CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
            chunk_shape: vec![8, 6],
            codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
            index_codecs: CodecChain::new(vec![
                Codec::Bytes(Some(ByteOrder::Little)),
                Codec::Crc32c,
            ]),
            index_at_start,
        }))]);
        save_object(&target, &values, meta, &SaveOptions::default()).unwrap();
        let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
        // Boxes inside one inner chunk, across inner chunks, and across shards: the index by
        // a suffix (or prefix) GET, the inner chunks by ranged GETs with If-Match.
        for (start, shape) in [([1, 1], [2, 2]), ([5, 4], [12, 9]), ([30, 20], [10, 10])] {
            let got = array.read_region(&start, &shape).unwrap();
            let want = bits(&values)
                .slice(ndarray::s![
                    start[0]..start[0] + shape[0],
                    start[1]..start[1] + shape[1]
                ])
                .to_owned()
                .into_dyn();
            assert_eq!(bits(&got), want, "the box of {shape:?} at {start:?}");
        }
    }
}

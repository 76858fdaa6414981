//! Zarr arrays on object storage, against object_store's `InMemory` (fast, and its conditional
//! puts are atomic, so the race tests run here): round trips, the commit protocol (a new array
//! appears whole or not at all, two committers conflict), multipart chunks, and writers that
//! are dropped before their commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};

use common::{bits, f64_meta, load, sample};
use futures::TryStreamExt;
use ndstore_core::{ArrayWriter, ByteOrder, DType, DTypeKind, ErrorKind, SaveOptions};
use ndstore_zarr::codec::{Codec, CodecChain, Sharding};
use ndstore_zarr::object_store::ObjectStoreExt;
use ndstore_zarr::{ObjectTarget, ZarrArray, ZarrWriter, save_object};

/// The writer lease's object under an array's prefix.
const LEASE: &str = ".ndstore-lease";

/// Every key stored in `target`'s store, sorted, writer leases included.
fn all_keys(target: &ObjectTarget) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut keys: Vec<String> = runtime
        .block_on(target.store().list(None).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    keys.sort();
    keys
}

/// Every key of the arrays in `target`'s store (what a Zarr reader sees), sorted: the writer
/// leases left out.
fn keys(target: &ObjectTarget) -> Vec<String> {
    let mut keys = all_keys(target);
    keys.retain(|k| !k.ends_with(LEASE));
    keys
}

#[test]
fn arrays_round_trip_plain_and_sharded() {
    let target = ObjectTarget::in_memory("data/plain.zarr").unwrap();
    let values = sample(&[40, 30], 1);
    save_object(
        &target,
        &values,
        f64_meta(&[40, 30], &[16, 16]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));

    let sharded = target.at("data/sharded.zarr").unwrap();
    let mut meta = f64_meta(&[40, 30], &[20, 30]);
    meta.codecs = CodecChain::new(vec![Codec::Sharding(Box::new(Sharding {
        chunk_shape: vec![10, 15],
        codecs: CodecChain::new(vec![
            Codec::Bytes(Some(ByteOrder::Little)),
            Codec::Zstd {
                level: 3,
                checksum: true,
            },
        ]),
        index_codecs: CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]),
        index_at_start: false,
    }))]);
    save_object(&sharded, &values, meta, &SaveOptions::default()).unwrap();
    assert_eq!(bits(&load(&sharded).unwrap()), bits(&values));
    assert!(keys(&target).contains(&"data/sharded.zarr/c/1/0".to_owned()));
}

#[test]
fn a_chunk_above_the_multipart_threshold_round_trips() {
    // One 24 MiB chunk: sent as a multipart upload of three parts.
    let target = ObjectTarget::in_memory("big.zarr").unwrap();
    let values = sample(&[3 << 20], 2);
    save_object(
        &target,
        &values,
        f64_meta(&[3 << 20], &[3 << 20]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
}

#[test]
fn a_replacing_save_removes_the_old_arrays_extra_chunks() {
    let target = ObjectTarget::in_memory("a.zarr").unwrap();
    save_object(
        &target,
        &sample(&[8, 8], 3),
        f64_meta(&[8, 8], &[4, 4]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(keys(&target).len(), 5);
    let smaller = sample(&[4, 4], 4);
    save_object(
        &target,
        &smaller,
        f64_meta(&[4, 4], &[4, 4]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(keys(&target), ["a.zarr/c/0/0", "a.zarr/zarr.json"]);
    // The released lease stays: its new ETag tells writers that opened before that claim.
    assert!(all_keys(&target).contains(&format!("a.zarr/{LEASE}")));
    assert_eq!(bits(&load(&target).unwrap()), bits(&smaller));
}

#[test]
fn a_new_array_is_invisible_until_its_commit() {
    let target = ObjectTarget::in_memory("stream.zarr").unwrap();
    let mut writer = ZarrWriter::create_object(
        &target,
        DType::native(DTypeKind::F64),
        &[5],
        &[4, 5],
        &SaveOptions::default(),
    )
    .unwrap();
    let rows = sample(&[10, 5], 5);
    writer.append(&rows).unwrap();
    ndstore_core::Durable::sync(&mut writer).unwrap();
    // Chunks are stored, but no zarr.json: there is no array yet.
    assert!(keys(&target).iter().any(|k| k.contains("/c/")));
    assert_eq!(load(&target).unwrap_err().kind(), ErrorKind::NotFound);
    Box::new(writer).commit().unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&rows));
}

#[test]
fn a_dropped_or_aborted_writer_publishes_nothing_and_removes_its_chunks() {
    let target = ObjectTarget::in_memory("dropped.zarr").unwrap();
    for abort in [false, true] {
        let mut writer = ZarrWriter::create_object(
            &target,
            DType::native(DTypeKind::F64),
            &[5],
            &[2, 5],
            &SaveOptions::default(),
        )
        .unwrap();
        writer.append(&sample(&[9, 5], 6)).unwrap();
        assert!(!keys(&target).is_empty());
        if abort {
            Box::new(writer).abort().unwrap();
        } else {
            drop(writer);
        }
        assert_eq!(all_keys(&target), Vec::<String>::new(), "abort: {abort}");
    }
}

#[test]
fn the_second_committer_of_a_new_array_gets_a_conflict() {
    let target = ObjectTarget::in_memory("new.zarr").unwrap();
    let options = SaveOptions::default();
    let first = ZarrArray::create_object(&target, f64_meta(&[4, 4], &[4, 4]), &options).unwrap();
    let second = ZarrArray::create_object(&target, f64_meta(&[4, 4], &[2, 2]), &options).unwrap();
    let values = sample(&[4, 4], 7);
    first.write_region(&[0, 0], &values).unwrap();
    first.write_metadata().unwrap();
    let err = second.write_metadata().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(
        err.to_string().contains("another writer committed"),
        "{err}"
    );
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
}

#[test]
fn the_second_committer_of_an_update_gets_a_conflict() {
    let target = ObjectTarget::in_memory("update.zarr").unwrap();
    let options = SaveOptions::default();
    save_object(
        &target,
        &sample(&[4, 4], 8),
        f64_meta(&[4, 4], &[4, 4]),
        &options,
    )
    .unwrap();
    let a = ZarrArray::open_object(&target, &options).unwrap();
    let b = ZarrArray::open_object(&target, &options).unwrap();
    a.write_metadata().unwrap();
    assert_eq!(b.write_metadata().unwrap_err().kind(), ErrorKind::Locked);
    // A commit that read the winner's version goes through.
    let c = ZarrArray::open_object(&target, &options).unwrap();
    c.write_metadata().unwrap();
}

#[test]
fn of_racing_committers_of_one_new_array_exactly_one_wins() {
    // InMemory's conditional put is atomic, so this race is meaningful here (moto's is not).
    let target = ObjectTarget::in_memory("race.zarr").unwrap();
    let racers = 8;
    let barrier = Arc::new(Barrier::new(racers));
    let results: Vec<ndstore_core::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..racers)
            .map(|i| {
                let (target, barrier) = (target.clone(), barrier.clone());
                scope.spawn(move || {
                    let array = ZarrArray::create_object(
                        &target,
                        f64_meta(&[2, 2], &[2, 2]),
                        &SaveOptions::default(),
                    )?;
                    barrier.wait();
                    let _ = i;
                    array.write_metadata()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
}

/// Opens the array at `s3://bucket/a` with its endpoint at a local listener that records the
/// first bytes the client sends and hangs up, and returns the open's result and those bytes.
fn open_over_https_to_a_listener() -> (ndstore_core::Result<ZarrArray>, Vec<u8>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let heard = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut first = [0u8; 3];
        stream.read_exact(&mut first).unwrap();
        first.to_vec()
    });
    let target = ObjectTarget::from_url_with(
        "s3://bucket/a",
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_MAX_ATTEMPTS", "1"),
        ],
    )
    .unwrap();
    let opened = ZarrArray::open_object(&target, &SaveOptions::default());
    (opened, heard.join().unwrap())
}

/// object_store's HTTPS client is built with reqwest's `rustls-no-provider` (ring instead of
/// aws-lc, see the workspace Cargo.toml): without the provider ndstore-zarr installs, building
/// the client panicked. The client must open a TLS connection (its first record a handshake,
/// 0x16, of TLS 1.x) and report the hang-up as an error naming the array, also when a provider
/// was installed before ndstore-zarr's (a second installation must not panic).
#[test]
fn https_endpoints_speak_tls_through_the_ring_provider() {
    for _ in 0..2 {
        let (opened, first) = open_over_https_to_a_listener();
        assert_eq!(first[..2], [0x16, 0x03], "not a TLS handshake: {first:?}");
        let e = opened.expect_err("a hung-up server cannot hold an array");
        assert!(
            e.to_string().contains("s3://bucket/a"),
            "the error names the array: {e}"
        );
        // The second round starts with a provider already installed (by the first).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[test]
fn a_writer_from_whole_metadata_keeps_it_and_listings_find_nodes_and_chunks() {
    let root = ObjectTarget::in_memory("").unwrap();
    let target = root.at("store.zarr/a").unwrap();
    let values = sample(&[40, 30], 3);
    let mut meta = f64_meta(&[40, 30], &[16, 16]);
    meta.codecs = CodecChain::new(vec![
        Codec::Bytes(Some(ByteOrder::Big)),
        Codec::Gzip(2),
        Codec::Crc32c,
    ]);
    meta.dimension_names = Some(vec![Some("y".to_owned()), None]);
    let mut writer = Box::new(
        ZarrWriter::create_object_with(&target, meta.clone(), &SaveOptions::default()).unwrap(),
    );
    writer.append(&values).unwrap();
    writer.commit().unwrap();
    let array = ZarrArray::open_object(&target, &SaveOptions::default()).unwrap();
    assert_eq!(array.meta().codecs, meta.codecs);
    assert_eq!(array.meta().dimension_names, meta.dimension_names);
    assert_eq!(array.meta().shape, vec![40, 30]);
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
    assert!(matches!(
        ndstore_zarr::read_object_node(&target).unwrap(),
        ndstore_zarr::meta::Node::Array(_)
    ));
    // One level of the hierarchy, and every key of the array: no chunk read to find them.
    let level = root.at("store.zarr").unwrap().list_level().unwrap();
    assert_eq!(level.dirs, vec!["a".to_owned()]);
    assert!(level.objects.is_empty(), "{level:?}");
    let array_keys = target.keys().unwrap();
    assert_eq!(array_keys.len(), 3 * 2 + 2, "{array_keys:?}");
    assert_eq!(
        array_keys.first().map(String::as_str),
        Some(".ndstore-lease")
    );
    assert!(array_keys.contains(&"c/2/1".to_owned()), "{array_keys:?}");
    let err = target.read_object("zarr.json", 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert_eq!(target.read_object("c/9/9", 1 << 20).unwrap(), None);
    // A 0-d metadata has no rows to append.
    let scalar = f64_meta(&[], &[]);
    let err =
        ZarrWriter::create_object_with(&root.at("s").unwrap(), scalar, &SaveOptions::default())
            .err()
            .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn an_array_of_another_chunk_layout_is_not_replaced_chunk_by_chunk() {
    let target = ObjectTarget::in_memory("layout/a.zarr").unwrap();
    let options = SaveOptions::default();
    save_object(
        &target,
        &sample(&[8, 8], 1),
        f64_meta(&[8, 8], &[4, 4]),
        &options,
    )
    .unwrap();
    // Another chunk shape: a copy killed half-way would leave chunks of 2 x 2 under the
    // zarr.json of 4 x 4, read as wrong values. Refused before anything is written.
    let before = keys(&target);
    let err = save_object(
        &target,
        &sample(&[8, 8], 2),
        f64_meta(&[8, 8], &[2, 2]),
        &options,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("another chunk layout"), "{err}");
    assert_eq!(keys(&target), before);
    // The same layout with another shape replaces it.
    let values = sample(&[12, 8], 3);
    save_object(&target, &values, f64_meta(&[12, 8], &[4, 4]), &options).unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
}

#[test]
fn a_new_arrays_commit_removes_the_chunks_a_killed_writer_left() {
    let target = ObjectTarget::in_memory("left/a.zarr").unwrap();
    // What a writer killed before its commit leaves: chunks, one outside the new grid.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for key in ["left/a.zarr/c/0/0", "left/a.zarr/c/9/9"] {
        runtime
            .block_on(target.store().put(
                &ndstore_zarr::object_store::path::Path::from(key),
                vec![0u8; 8].into(),
            ))
            .unwrap();
    }
    let values = sample(&[8, 8], 4);
    save_object(
        &target,
        &values,
        f64_meta(&[8, 8], &[4, 4]),
        &SaveOptions::default(),
    )
    .unwrap();
    assert_eq!(bits(&load(&target).unwrap()), bits(&values));
    let left = keys(&target);
    assert!(!left.contains(&"left/a.zarr/c/9/9".to_owned()), "{left:?}");
}

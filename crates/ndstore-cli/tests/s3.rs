//! End-to-end tests of the `ndstore` binary on `s3://` URLs, against the local S3 server
//! (moto) the object storage tests share: copies up, down and across with their bytes and
//! codecs kept, listings and prints of a hierarchy in object storage against snapshots, damage
//! found by `verify` and named by its object key, destinations refused, failed copies that
//! publish nothing, a conversion larger than the process's address space, and the errors of a
//! missing configuration. The endpoint and credentials reach each `ndstore` process through
//! its environment, as a user's would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use assert_cmd::Command;
use ndstore::ndarray::{ArrayD, IxDyn};
use ndstore::{DTypeKind, DynArray, Order};
use ndstore_conformance::python::{S3_BUCKET, S3Server, s3_server_or_skip};

/// The local S3 server, started once for every test of this file (its launcher ends when this
/// process does, as its standard input closes).
fn server() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| s3_server_or_skip("the ndstore command line on s3://"))
        .as_ref()
}

/// `s3://BUCKET/prefix` in the local server's bucket.
fn url(prefix: &str) -> String {
    format!("s3://{S3_BUCKET}/{prefix}")
}

/// `ndstore ARGS` in `dir` with `env` as its only AWS settings (the test's own AWS variables
/// removed).
fn run_with(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::cargo_bin("ndstore").unwrap();
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.current_dir(dir).args(args).output().unwrap()
}

/// `ndstore ARGS` in `dir`, talking to the local server.
fn run(server: &S3Server, dir: &Path, args: &[&str]) -> Output {
    run_with(dir, &server.settings(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `ndstore ARGS`, which must succeed; its standard output.
fn ok(server: &S3Server, dir: &Path, args: &[&str]) -> String {
    let output = run(server, dir, args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    stdout(&output)
}

/// Asserts the command failed with `code` in exactly one line, and returns it with the
/// server's endpoint redacted.
fn one_error_line(server: Option<&S3Server>, output: &Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ndstore: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    match server {
        Some(server) => err.replace(&server.endpoint(), "[endpoint]"),
        None => err,
    }
}

/// The Python interpreter of the project's environment (numpy, zarr, boto3 with moto).
fn python() -> PathBuf {
    ndstore_conformance::python::interpreter().unwrap()
}

/// Runs `script` in `dir` with `s3`, a boto3 client of the local server, and `bucket` set;
/// it must succeed. Returns its standard output.
fn with_boto(server: &S3Server, dir: &Path, script: &str) -> String {
    let preamble = format!(
        "import boto3, json, os, sys\n\
         s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
         bucket = '{S3_BUCKET}'\n",
        server.endpoint()
    );
    let output = std::process::Command::new(python())
        .current_dir(dir)
        .args(["-c", &format!("{preamble}{script}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{script}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Uploads the local tree `tree` (relative to `dir`) under `prefix`, file by file.
fn upload(server: &S3Server, dir: &Path, tree: &str, prefix: &str) {
    with_boto(
        server,
        dir,
        &format!(
            "for root, _, files in os.walk('{tree}'):\n    for f in files:\n        p = os.path.join(root, f)\n        s3.upload_file(p, bucket, '{prefix}/' + os.path.relpath(p, '{tree}'))\n"
        ),
    );
}

/// The keys under `prefix`, in order.
fn keys(server: &S3Server, prefix: &str) -> Vec<String> {
    let listed = with_boto(
        server,
        Path::new("."),
        &format!(
            "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix='{prefix}/'):\n    for o in page.get('Contents', []):\n        print(o['Key'])\n"
        ),
    );
    let mut keys: Vec<String> = listed.lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

/// A seeded f64 array of `shape` whose values include NaNs with payloads, −0.0 and
/// subnormals.
fn sample(shape: &[usize], seed: u64) -> DynArray {
    ndstore_conformance::sample::array(DTypeKind::F64, shape, Order::C, seed)
}

#[test]
fn npy_round_trips_through_s3_bit_for_bit_and_across_buckets_prefixes() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ndstore::save(d.join("a.npy"), &sample(&[300, 70], 1)).unwrap();
    let up = url("rt/a.zarr");
    ok(server, d, &["cp", "--chunks", "64,32", "a.npy", &up]);
    // Chunks of the grid asked for, zarr.json last; no lease or temporary left behind but
    // the released lease object.
    let stored = keys(server, "rt/a.zarr");
    assert!(
        stored.contains(&"rt/a.zarr/zarr.json".to_owned()),
        "{stored:?}"
    );
    assert!(stored.contains(&"rt/a.zarr/c/4/2".to_owned()), "{stored:?}");
    // s3 -> s3 keeps the array's layout, then s3 -> local gives the same .npy file.
    let across = url("rt/copy/b.zarr");
    ok(server, d, &["cp", &up, &across]);
    ok(server, d, &["cp", &across, "b.npy"]);
    assert!(std::fs::read(d.join("a.npy")).unwrap() == std::fs::read(d.join("b.npy")).unwrap());
    // convert down into another format, and back up from it.
    ok(server, d, &["convert", &up, "c.h5"]);
    ok(server, d, &["convert", "c.h5", &url("rt/from-h5")]);
    ok(server, d, &["convert", &url("rt/from-h5"), "d.npy"]);
    assert!(std::fs::read(d.join("a.npy")).unwrap() == std::fs::read(d.join("d.npy")).unwrap());
    // Into an s3:// "directory" (a URL ending in /) under the source's stem, and into a
    // group's node named with ::.
    ok(server, d, &["cp", "c.h5", &url("rt/dir/")]);
    ok(server, d, &["convert", "a.npy", &url("rt/node.zarr::x/y")]);
    for prefix in ["rt/dir/c.zarr", "rt/node.zarr/x/y"] {
        assert!(
            keys(server, prefix).contains(&format!("{prefix}/zarr.json")),
            "{prefix}"
        );
    }
    // Into a local directory, under the prefix's last name.
    std::fs::create_dir(d.join("down")).unwrap();
    ok(server, d, &["cp", &across, "down/"]);
    assert!(d.join("down/b.zarr/zarr.json").is_file());
    // The source itself is refused as its destination.
    let err = one_error_line(Some(server), &run(server, d, &["cp", &up, &up]), 2);
    assert!(err.contains("is the source array"), "{err}");
}

/// A sharded zstd array zarr-python writes into a local store, with a crc32c index.
const ZARR_PYTHON_SHARDED: &str = r#"
import numpy as np, zarr
from zarr.codecs import ZstdCodec
a = np.arange(64 * 48, dtype="<f4").reshape(64, 48) / 7
z = zarr.create_array("py.zarr", shape=a.shape, dtype=a.dtype, chunks=(8, 16), shards=(32, 48), compressors=[ZstdCodec(level=5)], fill_value=-1.5, dimension_names=["y", "x"], attributes={"units": "K"})
z[:] = a
np.save("py.npy", a)
"#;

#[test]
fn cp_of_a_zarr_python_sharded_zstd_array_keeps_its_codecs() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = std::process::Command::new(python())
        .current_dir(d)
        .args(["-c", ZARR_PYTHON_SHARDED])
        .status()
        .unwrap();
    assert!(made.success());
    let up = url("codecs/py.zarr");
    ok(server, d, &["cp", "py.zarr", &up]);
    // The metadata on S3 is the local array's: chunks, shards, codecs, fill value,
    // attributes, dimension names.
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("py.zarr/zarr.json")).unwrap()).unwrap();
    let fetched = with_boto(
        server,
        d,
        "sys.stdout.write(s3.get_object(Bucket=bucket, Key='codecs/py.zarr/zarr.json')['Body'].read().decode())",
    );
    let remote: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    for field in [
        "shape",
        "data_type",
        "chunk_grid",
        "chunk_key_encoding",
        "codecs",
        "fill_value",
        "attributes",
        "dimension_names",
    ] {
        assert_eq!(local[field], remote[field], "{field}");
    }
    // Shards, not inner chunks, are the objects; zarr-python reads the copy.
    assert!(keys(server, "codecs/py.zarr").contains(&"codecs/py.zarr/c/1/0".to_owned()));
    with_boto(
        server,
        d,
        &format!(
            "import numpy as np, zarr\n\
             from zarr.storage import ObjectStore\n\
             from obstore.store import S3Store\n\
             store = S3Store(bucket, endpoint='{}', access_key_id='testing', secret_access_key='testing', region='us-east-1', client_options={{'allow_http': True}})\n\
             z = zarr.open_array(ObjectStore(store, read_only=True), path='codecs/py.zarr', mode='r')\n\
             assert (z[:] == np.load('py.npy')).all()\n",
            server.endpoint()
        ),
    );
    // verify reads every shard whole through its index and inner chunks.
    assert_eq!(
        ok(server, d, &["verify", &up]),
        format!("{up}: ok (1 array, 12288 bytes)\n")
    );
    // Down again, the array is zarr-python's values.
    ok(server, d, &["cp", &up, "back.npy"]);
    assert!(std::fs::read(d.join("back.npy")).unwrap() == std::fs::read(d.join("py.npy")).unwrap());
}

/// A group with two arrays and a subgroup, written locally by ndstore itself and uploaded.
fn upload_hierarchy(server: &S3Server, d: &Path, prefix: &str) {
    let group = r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#;
    std::fs::create_dir_all(d.join("store.zarr/g")).unwrap();
    std::fs::write(d.join("store.zarr/zarr.json"), group).unwrap();
    std::fs::write(d.join("store.zarr/g/zarr.json"), group).unwrap();
    let ints = DynArray::from(
        ArrayD::from_shape_vec(IxDyn(&[40, 30]), (0..1200i32).collect::<Vec<_>>()).unwrap(),
    );
    ndstore::save(d.join("ints.npy"), &ints).unwrap();
    let small = DynArray::from(
        ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.5f64, -2.0, 3.25, 4.0, 5.0, 6.0]).unwrap(),
    );
    ndstore::save(d.join("small.npy"), &small).unwrap();
    let convert = |args: &[&str]| {
        let output = Command::cargo_bin("ndstore")
            .unwrap()
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
    };
    convert(&[
        "convert",
        "--to",
        "zarr",
        "--chunks",
        "16,16",
        "--compression",
        "zstd:3",
        "ints.npy",
        "store.zarr/ints",
    ]);
    convert(&["convert", "--to", "zarr", "small.npy", "store.zarr/g/small"]);
    // A directory of the hierarchy without zarr.json, and ndstore's lease beside the root.
    std::fs::create_dir_all(d.join("store.zarr/loose")).unwrap();
    std::fs::write(d.join("store.zarr/loose/data.bin"), b"x").unwrap();
    std::fs::write(d.join("store.zarr/.ndstore-lease"), b"null").unwrap();
    upload(server, d, "store.zarr", prefix);
}

#[test]
fn info_ls_and_cat_of_a_hierarchy_on_s3() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    upload_hierarchy(server, d, "snap/store.zarr");
    let store = url("snap/store.zarr");
    let listed = ok(server, d, &["ls", &store]);
    // The listing is the local tree's, read by listing keys.
    let local = Command::cargo_bin("ndstore")
        .unwrap()
        .current_dir(d)
        .args(["ls", "store.zarr"])
        .output()
        .unwrap();
    assert_eq!(listed, stdout(&local));
    insta::assert_snapshot!("s3_ls", listed);
    insta::assert_snapshot!("s3_ls_json", ok(server, d, &["ls", "--json", &store]));
    insta::assert_snapshot!("s3_ls_node", ok(server, d, &["ls", &format!("{store}::g")]));
    insta::assert_snapshot!("s3_info", ok(server, d, &["info", &store]));
    insta::assert_snapshot!(
        "s3_info_array_json",
        ok(server, d, &["info", "--json", &format!("{store}::ints")])
    );
    insta::assert_snapshot!(
        "s3_cat_json",
        ok(
            server,
            d,
            &["cat", "--format", "json", &format!("{store}::g/small")]
        )
    );
    // A slice reads the chunks it touches; without one, a large array prints its edges.
    let sliced = ok(
        server,
        d,
        &["cat", "--slice", "15:17,14:18", &format!("{store}::ints")],
    );
    assert_eq!(sliced, "[[464 465 466 467]\n [494 495 496 497]]\n");
    let summary = ok(server, d, &["cat", &format!("{store}::ints")]);
    let local = Command::cargo_bin("ndstore")
        .unwrap()
        .current_dir(d)
        .args(["cat", "ints.npy"])
        .output()
        .unwrap();
    assert_eq!(summary, stdout(&local));
    // A node that is not there, and a prefix that holds nothing.
    let err = one_error_line(
        Some(server),
        &run(server, d, &["info", &format!("{store}::nope")]),
        2,
    );
    assert!(
        err.starts_with(&format!(
            "ndstore: {store}/nope/zarr.json: object 'zarr.json': no zarr.json"
        )),
        "{err}"
    );
    let err = one_error_line(
        Some(server),
        &run(server, d, &["verify", &url("snap/empty")]),
        2,
    );
    assert!(err.contains("no objects under the prefix"), "{err}");
}

#[test]
fn verify_names_the_object_key_of_a_flipped_byte() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    upload_hierarchy(server, d, "dmg/store.zarr");
    // The hierarchy's loose directory is damage (a node lost its zarr.json); each array alone
    // is clean.
    let ints = url("dmg/store.zarr/ints");
    let clean = ok(server, d, &["verify", &ints, &url("dmg/store.zarr/g")]);
    assert_eq!(
        clean,
        format!(
            "{ints}: ok (1 array, 4800 bytes)\n{}: ok (1 array, 48 bytes)\n",
            url("dmg/store.zarr/g")
        )
    );
    // The first byte of a zstd chunk flipped on the server (zstd without its checksum finds
    // a flipped byte of the data only when it breaks the frame).
    with_boto(
        server,
        d,
        "key = 'dmg/store.zarr/ints/c/1/1'\n\
         body = bytearray(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n\
         body[0] ^= 0x40\n\
         s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))\n",
    );
    let output = run(server, d, &["verify", &ints]);
    let err = one_error_line(Some(server), &output, 1);
    assert!(
        err.starts_with(&format!("ndstore: {ints}/c/1/1: object 'chunk c/1/1': ")),
        "{err}"
    );
    let json = run(server, d, &["verify", "--json", &ints]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report[0]["status"], "damaged", "{report}");
    assert_eq!(report[0]["place"], "object 'chunk c/1/1'", "{report}");
}

#[test]
fn groups_and_foreign_prefixes_are_never_replaced() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    upload_hierarchy(server, d, "keep/store.zarr");
    // A Zarr v2 array, and another tool's objects named like chunk keys (no ndstore lease).
    with_boto(
        server,
        d,
        "for key in ['keep/v2.zarr/.zarray', 'keep/v2.zarr/0.0', 'keep/logs/2024.01']:\n    s3.put_object(Bucket=bucket, Key=key, Body=b'{}')\n",
    );
    let before = keys(server, "keep/store.zarr");
    for (dst, says) in [
        (url("keep/store.zarr"), "is a group"),
        (url("keep/store.zarr/g"), "is a group"),
        (
            url("keep/store.zarr/loose"),
            "holds 'data.bin' but no zarr.json",
        ),
        (url("keep/v2.zarr"), "holds '.zarray' but no zarr.json"),
        (url("keep/logs"), "holds '2024.01' but no zarr.json"),
    ] {
        for args in [
            vec!["cp", "small.npy", dst.as_str()],
            vec!["convert", "--to", "zarr", "small.npy", dst.as_str()],
        ] {
            let err = one_error_line(Some(server), &run(server, d, &args), 2);
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
    // An array of another chunk layout (i32 over f64) is not replaced: object storage has no
    // rename, and a copy killed half-way would leave i32 chunks under the f64 zarr.json. Nor
    // is an array written inside another array, whose chunks share its prefix.
    for (dst, says) in [
        (url("keep/store.zarr/g/small"), "another chunk layout"),
        (url("keep/store.zarr/ints/c"), "lies inside the array"),
        (url("keep/store.zarr/ints/c/0"), "lies inside the array"),
    ] {
        let err = one_error_line(Some(server), &run(server, d, &["cp", "ints.npy", &dst]), 2);
        assert!(err.contains(says), "{dst}: {err}");
    }
    assert_eq!(keys(server, "keep/store.zarr"), before);
    // An array inside the group is replaced by one of its layout, as a local copy replaces
    // one.
    let twice = DynArray::from(
        ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![3.0f64, -4.0, 6.5, 8.0, 10.0, 12.0]).unwrap(),
    );
    ndstore::save(d.join("twice.npy"), &twice).unwrap();
    ok(
        server,
        d,
        &["cp", "twice.npy", &url("keep/store.zarr/g/small")],
    );
    ok(
        server,
        d,
        &["cp", &url("keep/store.zarr/g/small"), "replaced.npy"],
    );
    assert!(
        std::fs::read(d.join("replaced.npy")).unwrap()
            == std::fs::read(d.join("twice.npy")).unwrap()
    );
    // Another format on s3:// is refused before anything is written.
    let err = one_error_line(
        Some(server),
        &run(server, d, &["cp", "small.npy", &url("keep/x.npy")]),
        2,
    );
    assert!(
        err.contains("s3:// holds Zarr arrays only, not a .npy file"),
        "{err}"
    );
    let err = one_error_line(
        Some(server),
        &run(
            server,
            d,
            &["convert", "--to", "npy", "small.npy", &url("keep/y")],
        ),
        2,
    );
    assert!(
        err.contains("s3:// holds Zarr arrays only, not a .npy file"),
        "{err}"
    );
    assert!(keys(server, "keep/x.npy").is_empty() && keys(server, "keep/y").is_empty());
}

#[test]
fn a_failed_copy_publishes_nothing_and_leaves_no_chunk() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A local source of 10 MiB with crc32c, two blocks of a copy, whose chunk in the second
    // block is damaged: the copy fails there, after the first block's chunks were PUT.
    ndstore::save(d.join("a.npy"), &sample(&[640, 2048], 2)).unwrap();
    let made = std::process::Command::new(python())
        .current_dir(d)
        .args([
            "-c",
            "import numpy as np, zarr\n\
             from zarr.codecs import Crc32cCodec\n\
             a = np.load('a.npy')\n\
             z = zarr.create_array('src.zarr', shape=a.shape, dtype=a.dtype, chunks=(32, 2048), compressors=[Crc32cCodec()], fill_value=0.0)\n\
             z[:] = a\n",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let chunk = d.join("src.zarr/c/18/0");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    for dst in [url("fail/new.zarr"), url("fail/new-too")] {
        let output = run(server, d, &["cp", "src.zarr", &dst]);
        let err = one_error_line(Some(server), &output, 2);
        assert!(err.contains("c/18/0") && err.contains("crc32c"), "{err}");
        let prefix = dst.trim_start_matches(&format!("s3://{S3_BUCKET}/"));
        assert_eq!(keys(server, prefix), Vec::<String>::new(), "{err}");
    }
}

/// Runs `ndstore ARGS` under `ulimit -v KIB` in `dir`, talking to the local server.
fn limited(server: &S3Server, dir: &Path, kib: u64, args: &str) -> Output {
    let mut command = std::process::Command::new("sh");
    for (name, value) in server.settings() {
        command.env(name, value);
    }
    command
        // glibc reserves 64 MiB of address space per malloc arena (one per thread at most):
        // two arenas keep the reservation, not the use, from deciding the test.
        .env("MALLOC_ARENA_MAX", "2")
        .env("NDSTORE", PathBuf::from(env!("CARGO_BIN_EXE_ndstore")))
        .current_dir(dir)
        .args([
            "-c",
            &format!("ulimit -v {kib} && exec \"$NDSTORE\" {args}"),
        ])
        .output()
        .unwrap()
}

#[test]
fn convert_to_and_from_s3_streams_under_an_address_space_limit_below_the_array() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 160 MiB of f64 in 1 MiB chunks, and a limit of 110 MB of address space for the whole
    // process (its runtime's and HTTP client's threads included): a copy holds a few blocks of
    // 8 MiB and a few chunks, never the array.
    let a = DynArray::zeros(DTypeKind::F64, &[160 * 1024, 128], Order::C).unwrap();
    ndstore::save(d.join("big.npy"), &a).unwrap();
    drop(a);
    let kib = 110_000;
    let up = url("limit/big.zarr");
    let output = limited(server, d, kib, &format!("convert -q big.npy {up}"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let output = limited(server, d, kib, &format!("convert -q {up} back.npy"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        std::fs::read(d.join("back.npy")).unwrap() == std::fs::read(d.join("big.npy")).unwrap()
    );
    // The limit is below the array: what loads it whole is refused, in one line.
    let output = limited(server, d, kib, &format!("cat --format json {up}"));
    let err = one_error_line(Some(server), &output, 2);
    assert!(err.contains("cannot allocate"), "{err}");
}

#[test]
fn missing_credentials_dead_endpoints_and_missing_buckets_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No credentials: refused before any request, naming the variables.
    let err = one_error_line(None, &run_with(d, &[], &["info", "s3://bucket/a.zarr"]), 2);
    assert!(
        err.starts_with("ndstore: s3://bucket/a.zarr: no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    // An endpoint where nothing listens: an error after 3 attempts (AWS_MAX_ATTEMPTS unset;
    // object_store's own default is 11), in seconds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let settings = ndstore_conformance::python::s3_settings(&dead);
    let started = std::time::Instant::now();
    let output = run_with(d, &settings, &["ls", "s3://bucket/a.zarr"]);
    let err = one_error_line(None, &output, 2);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{err}"
    );
    assert!(
        err.starts_with("ndstore: s3://bucket/a.zarr/zarr.json: cannot read the object: "),
        "{err}"
    );
    assert!(err.contains("after 2 retries"), "{err}");
    // Settings that cannot work are named before any request: a plain-HTTP endpoint without
    // AWS_ALLOW_HTTP (the HTTP client said only "builder error" at the first request), and an
    // attempt count that is no count.
    let no_http: Vec<_> = settings
        .iter()
        .filter(|(name, _)| *name != "AWS_ALLOW_HTTP")
        .cloned()
        .collect();
    let err = one_error_line(
        None,
        &run_with(d, &no_http, &["ls", "s3://bucket/a.zarr"]),
        2,
    );
    assert_eq!(
        err.replace(&dead, "[endpoint]"),
        "ndstore: s3://bucket/a.zarr: the S3 settings are refused: the endpoint [endpoint] is plain HTTP: set AWS_ALLOW_HTTP=true to allow it (for a local test server), or use https://\n"
    );
    let mut bad_attempts = settings.clone();
    bad_attempts.push(("AWS_MAX_ATTEMPTS", "three".to_owned()));
    let err = one_error_line(
        None,
        &run_with(d, &bad_attempts, &["ls", "s3://bucket/a.zarr"]),
        2,
    );
    assert_eq!(
        err,
        "ndstore: s3://bucket/a.zarr: the S3 settings are refused: AWS_MAX_ATTEMPTS is 'three', not a count of attempts from 1 to 100\n"
    );
    // A bucket that does not exist.
    let Some(server) = server() else { return };
    let err = one_error_line(
        Some(server),
        &run(server, d, &["info", "s3://no-such-bucket/a.zarr"]),
        2,
    );
    assert_eq!(
        err,
        "ndstore: s3://no-such-bucket/a.zarr: the bucket does not exist (S3 answered NoSuchBucket)\n"
    );
}

#[test]
fn every_command_shows_an_s3_example() {
    for command in ["info", "ls", "cat", "verify", "convert", "cp"] {
        let output = run_with(Path::new("."), &[], &[command, "--help"]);
        let help = stdout(&output);
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with("ndstore ") && line.contains("s3://")),
            "{command}: {help}"
        );
    }
}

/// Whether the server holds an object at `key`, asked with an unsigned HEAD (moto answers a
/// missing key 404, an existing one 403 or 200).
fn exists(server: &S3Server, key: &str) -> bool {
    use std::io::{Read, Write};
    let address = server.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "HEAD /{S3_BUCKET}/{key} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    !answer.starts_with("HTTP/1.1 404")
}

#[test]
fn an_interrupted_copy_to_s3_publishes_nothing_and_dies_of_its_signal() {
    use std::os::unix::process::ExitStatusExt;
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ndstore::save(d.join("big.npy"), &sample(&[96 * 1024, 128], 4)).unwrap();
    let dst = url("int/big.zarr");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ndstore"));
    for (name, value) in server.settings() {
        command.env(name, value);
    }
    let child = command
        .current_dir(d)
        .args(["convert", "-q", "big.npy", &dst])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first chunk is stored, the copy is under way.
    let started = std::time::Instant::now();
    while !exists(server, "int/big.zarr/c/0/0") {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.signal(), Some(2), "{output:?}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("ndstore: {dst}: interrupted by signal 2")),
        "{err}"
    );
    assert_eq!(keys(server, "int/big.zarr"), Vec::<String>::new());
}

#[test]
fn verify_on_s3_calls_chunk_objects_at_no_key_of_the_metadata_damage() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    upload_hierarchy(server, d, "stray/store.zarr");
    let ints = url("stray/store.zarr/ints");
    ok(server, d, &["verify", &ints]);
    // zarr.json edited from separator "/" to ".": every chunk object is at no key of the
    // metadata, and a read would be all fill.
    with_boto(
        server,
        d,
        "key = 'stray/store.zarr/ints/zarr.json'\n\
         doc = json.loads(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n\
         doc['chunk_key_encoding'] = {'name': 'default', 'configuration': {'separator': '.'}}\n\
         s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())\n",
    );
    let err = one_error_line(Some(server), &run(server, d, &["verify", &ints]), 1);
    assert!(
        err.starts_with(&format!("ndstore: {ints}/c/0/0: ")),
        "{err}"
    );
    assert!(
        err.contains("at no key the array's metadata names"),
        "{err}"
    );
}

/// What an ndstore writer's lease says is reported (hostile review: after a killed copy,
/// `verify` said ok over a mix of two versions, and called the chunks a killed new array left
/// damage although the array is promised absent): an expired, never released lease over an
/// array is damage (1), a held one means "not now" (2); a prefix holding only a killed new
/// array's leftovers, the root of a bucket and a prefix above other prefixes are no Zarr node
/// to check (2).
#[test]
fn verify_reports_a_writers_lease_and_what_is_no_array() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ndstore::save(d.join("m.npy"), &sample(&[6, 5], 1)).unwrap();
    for name in ["lease/old.zarr", "lease/live.zarr", "lease/done.zarr"] {
        ok(server, d, &["cp", "m.npy", &url(name)]);
    }
    ok(server, d, &["verify", &url("lease/done.zarr")]);
    with_boto(
        server,
        d,
        "import time\n\
         now = int(time.time() * 1000)\n\
         def lease(prefix, at):\n    s3.put_object(Bucket=bucket, Key=prefix + '/.ndstore-lease', Body=json.dumps({'owner': 'x', 'expires_ms': at}))\n\
         lease('lease/old.zarr', now - 5000)\n\
         lease('lease/live.zarr', now + 600000)\n\
         lease('lease/new.zarr', now - 5000)\n\
         s3.put_object(Bucket=bucket, Key='lease/new.zarr/c/0/0', Body=b'x')\n\
         lease('lease/newlive.zarr', now + 600000)\n\
         s3.put_object(Bucket=bucket, Key='lease/newlive.zarr/c/0/0', Body=b'x')\n",
    );
    let err = one_error_line(
        Some(server),
        &run(server, d, &["verify", &url("lease/old.zarr")]),
        1,
    );
    assert!(
        err.starts_with(&format!(
            "ndstore: {}/.ndstore-lease: a writer was killed before its commit ended",
            url("lease/old.zarr")
        )),
        "{err}"
    );
    let err = one_error_line(
        Some(server),
        &run(server, d, &["verify", &url("lease/live.zarr")]),
        2,
    );
    assert!(err.contains("a writer holds the array's lease"), "{err}");
    // `info` says it too, in a line of its own.
    let info = ok(server, d, &["info", &url("lease/old.zarr")]);
    assert!(
        info.contains("\nwriter: a writer was killed before its commit ended (lease expired "),
        "{info}"
    );
    let info = ok(server, d, &["info", &url("lease/live.zarr")]);
    assert!(
        info.contains("\nwriter: a writer holds the lease"),
        "{info}"
    );
    assert!(!ok(server, d, &["info", &url("lease/done.zarr")]).contains("writer:"));
    for (prefix, says) in [
        (
            "lease/new.zarr",
            "no array: a writer was killed before it committed a new array here",
        ),
        (
            "lease/newlive.zarr",
            "no array yet: a writer holds the lease of a new array",
        ),
        (
            "lease",
            "a prefix above other prefixes, not a Zarr array or group",
        ),
        ("", "the root of a bucket is no Zarr node"),
    ] {
        let err = one_error_line(Some(server), &run(server, d, &["verify", &url(prefix)]), 2);
        assert!(err.contains(says), "{prefix}: {err}");
    }
    // A released lease (a finished writer's) is no finding.
    assert_eq!(
        ok(server, d, &["verify", &url("lease/done.zarr")]),
        format!("{}: ok (1 array, 240 bytes)\n", url("lease/done.zarr"))
    );
}

/// Endpoints and bucket names the HTTP library cannot parse are refused in one line (they made
/// object_store panic while signing the first request: exit 101 and a backtrace).
#[test]
fn malformed_endpoints_and_bucket_names_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let settings = ndstore_conformance::python::s3_settings("http://127.0.0.1:9");
    for endpoint in ["127.0.0.1:9", "localhost", "http://127.0.0.1:9 ", "http://"] {
        let mut env = settings.clone();
        env.retain(|(name, _)| *name != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL", endpoint.to_owned()));
        let err = one_error_line(None, &run_with(d, &env, &["info", "s3://bucket/a.zarr"]), 2);
        assert_eq!(
            err,
            format!(
                "ndstore: s3://bucket/a.zarr: the S3 settings are refused: the endpoint '{endpoint}' (AWS_ENDPOINT_URL) is not an http:// or https:// URL\n"
            ),
        );
    }
    let err = one_error_line(
        None,
        &run_with(d, &settings, &["ls", "s3://bk t/a.zarr"]),
        2,
    );
    assert!(
        err.contains("the bucket name 'bk t' cannot be part of a URL"),
        "{err}"
    );
}

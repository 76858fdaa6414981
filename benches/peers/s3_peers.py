"""The object-storage peer of `cargo xtask bench`, run through peers.py (which times it): boto3
issuing the data requests ndstore-zarr issues for the same array on the same local S3 server
(moto), on a thread pool as wide as ndstore's.

The server, its credentials and the bucket come from the environment `cargo xtask bench` sets:
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and NDSTORE_BENCH_S3
(`s3://bucket/prefix`). The layout is that of the input array bench-op saved there,
`data-plain.zarr` (1 MiB chunks of whole rows, little-endian `bytes`):
  s3_write_chunks  every chunk of DIR/data.npy PUT under `peer-s3_write_chunks.zarr/`, with the
                   chunk keys and bytes ndstore-zarr writes, then its `zarr.json` (one PUT)
  s3_read_chunks   `zarr.json` of the input GET, then every chunk GET and copied into its place
                   in a fresh numpy array

What ndstore's protocol adds around the same chunk requests (the lease object, the conditional
`zarr.json`, the listing of stale chunks) is not mirrored: that is the cost the rows show.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# ndstore-zarr runs a save's or a read's chunks on min(available cores, MAX_WORKERS = 4,
# chunks) threads (`parallel` in crates/ndstore-zarr/src/array.rs); each blocks on one request
# at a time. The pool has the same width on the cores this process may run on.
WIDTH = max(1, min(len(os.sched_getaffinity(0)), 4))

INPUT = "data-plain.zarr"


def client():
    """A boto3 S3 client of the local server, sending what object_store sends: SigV4 with the
    payload's SHA-256 (plain HTTP), and no extra CRC32 checksum of the body, which botocore
    otherwise adds to every PUT and asks for on every GET."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(
            max_pool_connections=2 * WIDTH,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def location():
    """The bucket and key prefix NDSTORE_BENCH_S3 names."""
    base = os.environ.get("NDSTORE_BENCH_S3", "")
    if not base.startswith("s3://"):
        raise SystemExit("s3_peers.py: NDSTORE_BENCH_S3 is not an s3://bucket/prefix URL")
    bucket, _, prefix = base[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def key(prefix, *parts):
    return "/".join(p for p in (prefix, *parts) if p)


class Layout:
    """The chunk grid of a 2-d array in `zarr.json` whose chunks hold whole rows."""

    def __init__(self, meta):
        self.shape = meta["shape"]
        self.rows = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
        if len(self.shape) != 2 or meta["chunk_grid"]["configuration"]["chunk_shape"][1] != self.shape[1]:
            raise SystemExit("s3_peers.py: the input's chunks do not hold whole rows of a 2-d array")
        if [c["name"] for c in meta["codecs"]] != ["bytes"]:
            raise SystemExit("s3_peers.py: the input is not in the plain layout (bytes only)")
        encoding = meta["chunk_key_encoding"]
        separator = encoding.get("configuration", {}).get("separator", "/")
        prefix = "c" + separator if encoding["name"] == "default" else ""
        self.fill = meta["fill_value"]
        self.count = -(-self.shape[0] // self.rows) if self.shape[0] else 0
        self.keys = [f"{prefix}{i}{separator}0" for i in range(self.count)]

    def chunk(self, a, i):
        """Chunk `i`'s bytes: its rows of `a`, little-endian, the last one padded with the fill
        value to the whole chunk."""
        part = a[i * self.rows:(i + 1) * self.rows]
        if part.shape[0] < self.rows:
            padded = np.full((self.rows, self.shape[1]), self.fill, dtype="<f8")
            padded[:part.shape[0]] = part
            part = padded
        return part.astype("<f8", copy=False).tobytes()


def operation(op, peer, d):
    if peer != "boto3":
        raise SystemExit(f"s3_peers.py: no peer {peer} for {op}")
    s3 = client()
    bucket, prefix = location()
    pool = ThreadPoolExecutor(max_workers=WIDTH)
    metadata = s3.get_object(Bucket=bucket, Key=key(prefix, INPUT, "zarr.json"))["Body"].read()
    layout = Layout(json.loads(metadata))
    if op == "s3_write_chunks":
        a = np.load(os.path.join(d, "data.npy"))
        out = key(prefix, f"peer-{op}.zarr")

        def put(i):
            s3.put_object(Bucket=bucket, Key=key(out, layout.keys[i]), Body=layout.chunk(a, i))

        def run():
            list(pool.map(put, range(layout.count)))
            s3.put_object(Bucket=bucket, Key=key(out, "zarr.json"), Body=metadata)
        return run
    if op == "s3_read_chunks":
        source = key(prefix, INPUT)

        def run():
            meta = json.loads(
                s3.get_object(Bucket=bucket, Key=key(source, "zarr.json"))["Body"].read()
            )
            grid = Layout(meta)
            out = np.empty(grid.shape, dtype="<f8")

            def get(i):
                body = s3.get_object(Bucket=bucket, Key=key(source, grid.keys[i]))["Body"].read()
                rows = out[i * grid.rows:(i + 1) * grid.rows]
                rows[...] = np.frombuffer(body, dtype="<f8", count=rows.size).reshape(rows.shape)

            list(pool.map(get, range(grid.count)))
            return out
        return run
    raise SystemExit(f"s3_peers.py: no peer {peer} for {op}")

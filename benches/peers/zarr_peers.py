"""The Zarr peers of `cargo xtask bench`, run through peers.py (which times them): zarr-python
and tensorstore writing and reading the same arrays as ndstore-zarr, in the same layouts.

The layout of an operation `zarr_<what>_<layout>` is read from the input array bench-op
prepared, DIR/data-<layout>.zarr/zarr.json, so every side writes the same chunk grid, shards
and codecs:
  zarr_write_synced_<layout>  a whole-array save replacing DIR/peer-<op>.zarr:
                              tensorstore with `file_io_sync: true` (each chunk written to a
                              temporary, fsynced and renamed: its durable mode), zarr-python with
                              its defaults (no fsync at all; information beside the row)
  zarr_read_<layout>          the whole input array read into a fresh numpy array
"""

import json
import os

import numpy as np


def layout_of(d, op):
    """The input array of `op`: its path and its zarr.json."""
    layout = next(
        name for name in ("sharded_zstd", "sharded", "zstd", "plain") if op.endswith("_" + name)
    )
    path = os.path.join(d, f"data-{layout}.zarr")
    with open(os.path.join(path, "zarr.json")) as f:
        return path, json.load(f)


def zarr_python_create(out, meta):
    """Creates (replacing) an empty zarr-python array at `out` with `meta`'s layout."""
    import zarr
    from zarr.codecs import ZstdCodec

    outer = meta["codecs"]
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    shards = None
    if outer[0]["name"] == "sharding_indexed":
        shards = chunks
        chunks = outer[0]["configuration"]["chunk_shape"]
        outer = outer[0]["configuration"]["codecs"]
    compressors = [
        ZstdCodec(level=c["configuration"]["level"], checksum=c["configuration"]["checksum"])
        for c in outer
        if c["name"] == "zstd"
    ]
    return zarr.create_array(
        store=out,
        shape=meta["shape"],
        dtype=meta["data_type"],
        chunks=chunks,
        shards=shards,
        compressors=compressors,
        fill_value=meta["fill_value"],
        zarr_format=3,
        overwrite=True,
    )


def tensorstore_spec(path, meta=None):
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    if meta is not None:
        spec["metadata"] = {k: v for k, v in meta.items() if k not in ("zarr_format", "node_type")}
    return spec


def operation(op, peer, d):
    source, meta = layout_of(d, op)
    if op.startswith("zarr_write_synced_"):
        out = os.path.join(d, f"peer-{op}.zarr")
        a = np.load(os.path.join(d, "data.npy"))
        if peer == "zarr-python":
            def run():
                zarr_python_create(out, meta)[...] = a
            return run
        if peer == "tensorstore":
            import tensorstore as ts

            context = ts.Context({"file_io_sync": True})

            def run():
                t = ts.open(
                    tensorstore_spec(out, meta), create=True, delete_existing=True, context=context
                ).result()
                t.write(a).result()
            return run
    if op.startswith("zarr_read_"):
        if peer == "zarr-python":
            import zarr

            return lambda: zarr.open_array(source, mode="r")[...]
        if peer == "tensorstore":
            import tensorstore as ts

            return lambda: ts.open(tensorstore_spec(source), open=True).result().read().result()
    raise SystemExit(f"zarr_peers.py: no peer {peer} for {op}")

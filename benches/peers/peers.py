"""The peers of `cargo xtask bench`: one operation with numpy, h5py, pandas, polars, zarr-python,
tensorstore or boto3 (the Zarr operations live in zarr_peers.py, the object-storage ones in
s3_peers.py), run `reps` times in this process; prints `ms <milliseconds>` per run.

Usage: peers.py OP PEER DIR REPS
"""

import os
import sys
import time

import numpy as np


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    fsync_path_dir(path)


def fsync_path_dir(path):
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def operation(op, peer, d):
    if op.startswith("zarr_"):
        import zarr_peers

        return zarr_peers.operation(op, peer, d)
    if op.startswith("s3_"):
        import s3_peers

        return s3_peers.operation(op, peer, d)
    npy = os.path.join(d, "data.npy")
    out = os.path.join(d, "peer-" + op)
    if op in ("npy_save_flushed", "npy_save_synced", "mmap_fill_sync", "hdf5_write_sync"):
        a = np.load(npy)
    if op == "npy_save_flushed":
        return lambda: np.save(out + ".npy", a)
    if op == "npy_save_synced":
        def run():
            np.save(out + ".npy", a)
            fsync_path(out + ".npy")
        return run
    if op == "npy_load":
        return lambda: np.load(npy)
    if op == "mmap_open":
        return lambda: np.load(npy, mmap_mode="r")
    if op == "mmap_open_sum":
        return lambda: np.load(npy, mmap_mode="r").sum()
    if op == "mmap_fill_sync":
        def run():
            m = np.lib.format.open_memmap(out + ".npy", mode="w+", dtype=a.dtype, shape=a.shape)
            m[:] = a
            m.flush()
            del m
        return run
    if op in ("hdf5_read", "hdf5_read_in_process"):
        import h5py

        def run():
            with h5py.File(os.path.join(d, "data.h5"), "r") as f:
                return f["data"][...]
        return run
    if op == "hdf5_write_sync":
        import h5py

        def run():
            with h5py.File(out + ".h5", "w") as f:
                f.create_dataset("data", data=a)
            fsync_path(out + ".h5")
        return run
    csv = os.path.join(d, "data.csv")
    if op == "csv_read" and peer == "pandas":
        import pandas as pd
        return lambda: pd.read_csv(csv, header=None, skiprows=1, engine="c").to_numpy()
    if op == "csv_read" and peer == "polars":
        import polars as pl
        return lambda: pl.read_csv(csv, has_header=False, skip_rows=1).to_numpy()
    if op == "csv_write" and peer == "polars":
        import polars as pl
        table = pl.read_csv(csv, has_header=False, skip_rows=1)
        return lambda: table.write_csv(out + ".csv", include_header=False)
    raise SystemExit(f"peers.py: no peer {peer} for {op}")


def main():
    op, peer, d, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run = operation(op, peer, d)
    for _ in range(max(reps, 1)):
        start = time.perf_counter()
        run()
        print(f"ms {(time.perf_counter() - start) * 1e3}", flush=True)


main()

#!/usr/bin/env python3
"""How fast can any reader decompress a zstd Zarr array on this machine?

Usage: zstd_bound.py DIR SIZE_MIB [ROUNDS]

Writes the benchmark's array (f64 values i * 0.25 in rows of 1024, chunks of 128 rows,
`bytes` then `zstd` level 3) with zarr-python into DIR, then alternates, ROUNDS times:
zarr-python's full read, and libzstd alone (numcodecs' `Zstd.decode`) over the same chunk
files already in memory, on one thread and on two, and one thread's time divided by the
cores (decoding split perfectly). It prints a Markdown table of medians
and IQRs, and the ratio of each to zarr-python's read: the bound that decompression alone
puts under every reader of the array on these cores (page faults of the output and the reads
of the files come on top).
"""

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zarr
from numcodecs import Zstd


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[0], q[2]


def fmt(values):
    med, lo, hi = quartiles(values)
    return f"{med * 1e3:.1f} ms ({lo * 1e3:.1f}–{hi * 1e3:.1f})"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    directory, mib = sys.argv[1], int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    cols = 1024
    rows = mib * 1024 * 1024 // 8 // cols
    path = os.path.join(directory, f"zstd-bound-{mib}M.zarr")
    values = (np.arange(rows * cols, dtype=np.float64) * 0.25).reshape(rows, cols)
    array = zarr.create_array(
        path,
        shape=values.shape,
        chunks=(128, cols),
        dtype="<f8",
        compressors=[zarr.codecs.ZstdCodec(level=3)],
        overwrite=True,
    )
    array[...] = values
    chunk_dir = os.path.join(path, "c")
    blobs = []
    for root, _, files in os.walk(chunk_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blobs.append(f.read())
    codec = Zstd()
    stored = sum(len(b) for b in blobs)

    def decode_all(blobs_part):
        for blob in blobs_part:
            codec.decode(blob)

    def one_thread():
        decode_all(blobs)

    pool = ThreadPoolExecutor(2)

    def two_threads():
        list(pool.map(decode_all, [blobs[0::2], blobs[1::2]]))

    def zarr_read():
        out = zarr.open_array(path, mode="r")[...]
        assert out.shape == values.shape

    assert np.array_equal(zarr.open_array(path, mode="r")[...], values)
    times = {"zarr-python read": [], "libzstd, 1 thread": [], "libzstd, 2 threads": []}
    steps = [("zarr-python read", zarr_read), ("libzstd, 1 thread", one_thread),
             ("libzstd, 2 threads", two_threads)]
    for step in steps:
        step[1]()
    for r in range(rounds):
        order = steps if r % 2 == 0 else steps[::-1]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["zarr-python read"])
    print(f"{mib} MiB array, {len(blobs)} chunks, {stored / 1e6:.1f} MB stored, "
          f"{rounds} alternating rounds, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| step | median (IQR) | / zarr-python read |")
    print("|---|---|---|")
    for name, _ in steps:
        print(f"| {name} | {fmt(times[name])} | {statistics.median(times[name]) / base:.2f} |")
    # numcodecs may keep the interpreter lock while it decodes, so two threads need not halve
    # the time: the last row is one thread's time split perfectly over the cores.
    cores = os.cpu_count() or 1
    ideal = [t / cores for t in times["libzstd, 1 thread"]]
    print(f"| libzstd, 1 thread / {cores} cores | {fmt(ideal)} | "
          f"{statistics.median(ideal) / base:.2f} |")


if __name__ == "__main__":
    main()

"""The steps of a synced atomic save, varied one at a time and timed alternating in one process:
what fdatasync instead of fsync, and leaving out fallocate, would save at each size, before the
library is changed. The array is the same bytes every variant writes over an existing file.

Usage: save_variants.py DIR SIZE [SIZE...] [--rounds N]

Variants (each replaces DIR/variant-NAME.npy, as `cargo xtask bench` replaces its output):
  atomic      ndstore today: create a temporary, fallocate, write, fchmod, fsync, close,
              rename, fsync the directory
  fdatasync   the same with fdatasync for the file
  nofallocate the same without fallocate
  numpy       np.save + os.fsync: open the target with O_TRUNC, write, fsync, close, fsync the
              directory
  one_fsync   the physical minimum: overwrite the existing file's bytes in place and fsync it
              (no truncation, no new blocks, no directory change)
Prints, per size and variant, the median and interquartile range in milliseconds.
"""

import argparse
import os
import statistics
import time


def atomic(path, data, sync=os.fsync, allocate=True):
    temp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    if allocate:
        os.posix_fallocate(fd, 0, len(data))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fchmod(fd, 0o644)
    sync(fd)
    os.close(fd)
    os.rename(temp, path)
    sync_dir(path)


def numpy_like(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
    os.close(fd)
    sync_dir(path)


def one_fsync(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    view, offset = memoryview(data), 0
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    os.fsync(fd)
    os.close(fd)


def sync_dir(path):
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_CLOEXEC)
    os.fsync(fd)
    os.close(fd)


VARIANTS = {
    "atomic": atomic,
    "fdatasync": lambda p, d: atomic(p, d, sync=os.fdatasync),
    "nofallocate": lambda p, d: atomic(p, d, allocate=False),
    "numpy": numpy_like,
    "one_fsync": one_fsync,
}


def quartiles(samples):
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return f"{q[1]:.3f} ms ({q[0]:.3f}-{q[2]:.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--rounds", type=int, default=15)
    a = parser.parse_args()
    d, sizes, rounds = a.dir, a.sizes, a.rounds
    os.makedirs(d, exist_ok=True)
    print("| size | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for size in sizes:
        data = bytes(range(256)) * (size // 256)
        names = list(VARIANTS)
        times = {name: [] for name in names}
        for name in names:  # warm-up: every target exists before the first timed round
            VARIANTS[name](os.path.join(d, f"variant-{name}.npy"), data)
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                start = time.perf_counter()
                VARIANTS[name](os.path.join(d, f"variant-{name}.npy"), data)
                times[name].append((time.perf_counter() - start) * 1e3)
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | " + " | ".join(quartiles(times[n]) for n in names) + " |", flush=True)
        for name in names:
            os.remove(os.path.join(d, f"variant-{name}.npy"))


main()

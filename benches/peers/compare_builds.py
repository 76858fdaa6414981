"""Before and after a change: runs one operation with two builds of bench-op, alternating, and
prints the median and interquartile range of each and the ratio of the medians.

Usage: compare_builds.py BEFORE AFTER OP DIR SIZE [SIZE...] [--rounds N] [--reps R]

BEFORE and AFTER are two bench-op binaries (copy target/release/bench-op aside before the
change); each round runs one process of each, R runs per process, the order flipping every
round.
"""

import argparse
import os
import statistics
import subprocess


def run(binary, op, d, reps, size):
    out = subprocess.run([binary, op, d, str(reps), str(size), "0"], check=True,
                         capture_output=True, text=True).stdout
    return [float(line[3:]) for line in out.splitlines() if line.startswith("ms ")]


def quartiles(samples):
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[1], f"{q[1]:.3f} ms ({q[0]:.3f}-{q[2]:.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("before", "after", "op", "dir"):
        parser.add_argument(name)
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=1)
    a = parser.parse_args()
    before, after, op, d = a.before, a.after, a.op, a.dir
    os.makedirs(d, exist_ok=True)
    print(f"| {op} | before | after | after / before |")
    print("|---|---|---|---|")
    for size in a.sizes:
        subprocess.run([before, "prepare", d, str(size), "0"], check=True)
        times = {before: [], after: []}
        for binary in times:  # warm-up
            run(binary, op, d, 1, size)
        for r in range(a.rounds):
            for binary in ([before, after] if r % 2 == 0 else [after, before]):
                times[binary] += run(binary, op, d, a.reps, size)
        (b_median, b_text) = quartiles(times[before])
        (a_median, a_text) = quartiles(times[after])
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | {b_text} | {a_text} | {a_median / b_median:.2f} |", flush=True)


main()

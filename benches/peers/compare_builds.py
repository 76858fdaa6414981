"""Before and after a change: runs one operation with two builds of bench-op, alternating, and
prints the median and interquartile range of each and the ratio of the medians.

Usage: compare_builds.py BEFORE AFTER OP DIR SIZE [SIZE...] [--rounds N] [--reps R]

BEFORE and AFTER are two bench-op binaries (copy target/release/bench-op aside before the
change); each round runs one process of each, R runs per process, the order flipping every
round.
"""

import os
import statistics
import subprocess
import sys


def run(binary, op, d, reps, size):
    out = subprocess.run([binary, op, d, str(reps), str(size), "0"], check=True,
                         capture_output=True, text=True).stdout
    return [float(line[3:]) for line in out.splitlines() if line.startswith("ms ")]


def quartiles(samples):
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[1], f"{q[1]:.3f} ms ({q[0]:.3f}-{q[2]:.3f})"


def main():
    args = sys.argv[1:]
    options = {"--rounds": 15, "--reps": 1}
    for name in options:
        if name in args:
            i = args.index(name)
            options[name] = int(args[i + 1])
            del args[i:i + 2]
    before, after, op, d, *sizes = args
    os.makedirs(d, exist_ok=True)
    print(f"| {op} | before | after | after / before |")
    print("|---|---|---|---|")
    for size in (int(s) for s in sizes):
        subprocess.run([before, "prepare", d, str(size), "0"], check=True)
        times = {before: [], after: []}
        for binary in times:  # warm-up
            run(binary, op, d, 1, size)
        for r in range(options["--rounds"]):
            for binary in ([before, after] if r % 2 == 0 else [after, before]):
                times[binary] += run(binary, op, d, options["--reps"], size)
        (b, b_text), (a, a_text) = quartiles(times[before]), quartiles(times[after])
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | {b_text} | {a_text} | {a / b:.2f} |", flush=True)


main()

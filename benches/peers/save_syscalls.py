"""Where the time of a synced atomic save goes: runs ndstore's `.npy` save (bench-op
npy_save_synced) and np.save + os.fsync (peers.py) under `strace -f -T`, and sums the time spent
in each kind of system call per save, as a Markdown table (medians over the saves).

Usage: save_syscalls.py BENCH_OP PYTHON DIR SIZE [SIZE...] [--saves N]

Each process saves N + 1 times over the same file; the first save (which may create the file)
is left out, so every save counted replaces an existing file, as in `cargo xtask bench`. strace
slows every call down, the cheap ones most: read the table for where the time goes, and the
benchmark for how long a save takes.
"""

import argparse
import os
import re
import statistics
import subprocess

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")

# The kinds of calls a save makes, in the order of a save, and how to recognise each.
KINDS = [
    "create file",
    "fallocate",
    "write",
    "sync_file_range",
    "fsync file",
    "fdatasync file",
    "close file",
    "close replaced (background)",
    "rename",
    "open dir",
    "fsync dir",
    "other",
]

LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)<(\d+\.\d+)>\s*$")
# A call another thread interrupted in strace's log: its start, and its end with the time.
UNFINISHED = re.compile(r"^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>\s*$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>.*<(\d+\.\d+)>\s*$")


def kind(name, args, out_name):
    """The kind of one call, or None for a call that is not part of the save."""
    fd = re.match(r"\d+<([^>]*)>", args)
    on_dir = bool(fd) and os.path.isdir(fd.group(1))
    if name == "openat":
        path = args.split('"')[1] if args.count('"') >= 2 else ""
        if path and os.path.isdir(path):
            return "open dir"
        if out_name in path:
            return "create file" if "O_CREAT" in args else "other"
        return None
    if on_dir and name in ("fsync", "fdatasync"):
        return "fsync dir"
    if on_dir and name == "close":
        return "open dir"
    if out_name not in args and name not in ("rename", "renameat", "renameat2"):
        return None
    if name in ("write", "pwrite64", "writev", "pwritev"):
        return "write"
    if name in ("fsync", "fdatasync"):
        return f"{name} file"
    if name == "close":
        # The replaced file, closed by ndstore's release thread while the save goes on.
        return "close replaced (background)" if "(deleted)" in args else "close file"
    if name in ("rename", "renameat", "renameat2"):
        return "rename"
    if name in ("fallocate", "sync_file_range"):
        return name
    return "other"


def costs(command, out_name):
    """Per save (after the first), the seconds spent in each kind of call."""
    log = "/dev/shm/save_syscalls.strace" if os.path.isdir("/dev/shm") else "save_syscalls.strace"
    subprocess.run(
        ["strace", "-f", "-T", "-y", "-qq", "-o", log] + command,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    saves, current = [], dict.fromkeys(KINDS, 0.0)
    pending = {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = UNFINISHED.match(line)
            if m:
                pending[m.group(1)] = (m.group(2), m.group(3))
                continue
            m = RESUMED.match(line)
            if m and m.group(1) in pending:
                name, args = pending.pop(m.group(1))
                seconds = m.group(3)
            else:
                m = LINE.match(line)
                if not m:
                    continue
                _, name, args, _, _, seconds = m.groups()
            if name == "write" and args.startswith("1<") and '"ms ' in args:
                saves.append(current)
                current = dict.fromkeys(KINDS, 0.0)
                continue
            k = kind(name, args, out_name)
            if k:
                current[k] += float(seconds)
    os.remove(log)
    return saves[1:]


def total(save):
    """The time a save spent in system calls on its own thread."""
    return sum(v for k, v in save.items() if not k.endswith("(background)"))


def table(bench_op, python, d, sizes, saves):
    rows = []
    for size in sizes:
        ours = costs([bench_op, "npy_save_synced", d, str(saves + 1), str(size), "0"],
                     "out-npy_save_synced")
        # peers.py saves the array of DIR/data.npy, so that file is made at this size first.
        subprocess.run([bench_op, "prepare", d, str(size), "0"], check=True,
                       stdout=subprocess.DEVNULL)
        theirs = costs([python, PEERS, "npy_save_synced", "numpy", d, str(saves + 1)],
                       "peer-npy_save_synced")
        rows.append((size, ours, theirs))
    label = lambda s: f"{s >> 20} MiB" if s >= 1 << 20 else f"{s >> 10} KiB"
    out = ["| call | " + " | ".join(f"ndstore {label(s)} | numpy {label(s)}" for s, _, _ in rows) + " |",
           "|---|" + "---|---|" * len(rows)]
    for k in KINDS + ["total"]:
        cells = []
        for _, ours, theirs in rows:
            for side in (ours, theirs):
                values = [total(s) if k == "total" else s[k] for s in side]
                median = statistics.median(values) if values else float("nan")
                cells.append("-" if median == 0 else f"{median * 1e3:.3f}")
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_op")
    parser.add_argument("python")
    parser.add_argument("dir")
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--saves", type=int, default=5)
    a = parser.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    print(table(a.bench_op, a.python, a.dir, a.sizes, a.saves))


main()

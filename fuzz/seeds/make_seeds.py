"""Writes the fuzz targets' seed files: small, real files as numpy and h5py write them.

Run by `cargo xtask fuzz --seeds` with the project's Python environment; the output is
committed (every file is a few KiB at most), so fuzzing needs no Python.

Files named `found-*` are not written here: they are inputs the fuzz targets found (kept as
seeds, and as reproducers for whoever owns the code they broke).

usage: make_seeds.py OUT_DIR
"""

import os
import sys

import h5py
import numpy as np


def arrays():
    """A few small arrays of every dtype, byte order and memory order numpy can save."""
    rng = np.random.default_rng(13)
    kinds = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
    for kind in kinds:
        single = kind in ("?", "i1", "u1")
        for order in "<" if single else "<>":
            dtype = np.dtype(kind if single else order + kind)
            values = rng.integers(0, 2, size=(2, 3)) if kind == "?" else rng.integers(-3, 100, size=(2, 3))
            name = "b1" if kind == "?" else kind
            yield name if single else f"{name}{'be' if order == '>' else 'le'}", values.astype(dtype)
    yield "f8-fortran", np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4))
    yield "f4-3d", np.arange(24, dtype="<f4").reshape(2, 3, 4)
    yield "f8-scalar", np.array(2.5)
    yield "i4-empty", np.zeros((0, 3), dtype="<i4")
    yield "f8-special", np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324], dtype="<f8")


def npy(out):
    for name, a in arrays():
        np.save(os.path.join(out, f"{name}.npy"), a)
    a = np.arange(6, dtype="<f8").reshape(2, 3)
    for version in [(2, 0), (3, 0)]:
        with open(os.path.join(out, f"f8-v{version[0]}.npy"), "wb") as f:
            np.lib.format.write_array(f, a, version=version)


def npz(out):
    a = np.arange(12, dtype="<f8").reshape(3, 4)
    b = np.array([True, False, True])
    c = np.arange(5, dtype=">i2")
    np.savez(os.path.join(out, "stored.npz"), a=a, b=b)
    np.savez_compressed(os.path.join(out, "deflated.npz"), a=a, b=b, c=c)
    np.savez_compressed(os.path.join(out, "one.npz"), np.asfortranarray(a))
    np.savez(os.path.join(out, "empty.npz"))


def text(out):
    a = np.arange(12, dtype="<f8").reshape(3, 4) / 3
    np.savetxt(os.path.join(out, "comma.csv"), a, delimiter=",")
    np.savetxt(os.path.join(out, "space.txt"), a)
    np.savetxt(os.path.join(out, "ints.csv"), np.arange(6).reshape(2, 3), fmt="%d", delimiter=",",
               header="a,b,c")
    np.savetxt(os.path.join(out, "complex.csv"), np.array([[1 + 2j, -0.5j]]), delimiter=",")
    with open(os.path.join(out, "meta.csv"), "w") as f:
        f.write('# ndstore: {"dtype":"<f4","shape":[2,3],"order":"C"}\n')
        f.write("1,2.5,-3\nnan,inf,-0\n")
    with open(os.path.join(out, "meta-bool.csv"), "w") as f:
        f.write('# ndstore: {"dtype":"|b1","shape":[4],"order":"C"}\n')
        f.write("1\n0\n1\n1\n")


def h5(out):
    a = np.arange(24, dtype="<f8").reshape(4, 6)
    with h5py.File(os.path.join(out, "contiguous.h5"), "w") as f:
        f["data"] = a
    with h5py.File(os.path.join(out, "chunked.h5"), "w") as f:
        d = f.create_dataset("data", data=a, chunks=(2, 3), compression="gzip", shuffle=True,
                             fletcher32=True)
        d.attrs["ndstore"] = '{"order": "F"}'
        d.attrs.create("fixed", np.bytes_(b'{"order": "C"}'))
        g = f.create_group("g")
        g["x"] = np.arange(5, dtype=">i2")
        g["loop"] = h5py.SoftLink("/")
        f["ext"] = h5py.ExternalLink("other.h5", "/data")
    with h5py.File(os.path.join(out, "types.h5"), "w") as f:
        f["data"] = np.array([1 + 2j, 3 - 4j], dtype="<c16")
        f["half"] = np.arange(4, dtype="<f2")
        f["bool"] = np.array([True, False])
        f["scalar"] = 7
        f.create_dataset("unallocated", shape=(1 << 20,), dtype="<f8")
    with h5py.File(os.path.join(out, "compact.h5"), "w", libver="latest") as f:
        space = h5py.h5s.create_simple((3,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_INT32, space, plist)


def main():
    root = sys.argv[1]
    for name, make in [("npy", npy), ("npz", npz), ("text", text), ("h5", h5)]:
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        make(out)
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.getsize(path) > 16384:
                raise SystemExit(f"{path} is over 16 KiB: keep seeds small")


if __name__ == "__main__":
    main()

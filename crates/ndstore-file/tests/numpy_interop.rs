//! Real numpy against ndstore: numpy loads every file ndstore writes and re-saves it
//! byte-identically (so the header bytes are numpy's own), and ndstore loads what numpy writes
//! with `np.save`, `np.savez`, `np.savez_compressed` and `tofile`.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ndstore_conformance::{python, sample};
use ndstore_core::{ArrayMeta, ByteOrder, DType, DTypeKind, Order, SaveOptions};
use ndstore_file::npz::NpzReader;
use ndstore_file::{npy, raw};

const SHAPES: [&[usize]; 5] = [&[], &[0], &[7], &[3, 4], &[2, 3, 4]];

fn py(script: &str, dir: &Path) -> String {
    let script = format!(
        "import numpy as np, os, json\nos.chdir({:?})\n{script}",
        dir.display().to_string()
    );
    python::run_script(&script).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn numpy_reads_ndstore_files_and_resaves_them_byte_identically() {
    if !python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for kind in DTypeKind::ALL {
        for shape in SHAPES {
            for order in [Order::C, Order::Fortran] {
                for byte_order in [ByteOrder::Little, ByteOrder::Big] {
                    let n = names.len();
                    let array = sample::array(kind, shape, order, n as u64);
                    npy::save_dyn(
                        dir.path().join(format!("{n}.npy")),
                        &array,
                        &SaveOptions::new().byte_order(byte_order),
                    )
                    .unwrap();
                    names.push(n);
                }
            }
        }
    }
    let out = py(
        &format!(
            "bad = []\nfor n in range({}):\n    a = np.load(f'{{n}}.npy')\n    np.save(f'{{n}}-numpy.npy', a)\n    if open(f'{{n}}.npy','rb').read() != open(f'{{n}}-numpy.npy','rb').read():\n        bad.append(n)\nprint(json.dumps(bad))",
            names.len()
        ),
        dir.path(),
    );
    assert_eq!(out.trim(), "[]", "files numpy re-saved differently");
}

#[test]
fn ndstore_reads_np_save_savez_savez_compressed_and_tofile() {
    if !python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Arrays ndstore wrote, then rewritten by numpy in each of its formats.
    let mut cases = Vec::new();
    for kind in DTypeKind::ALL {
        for shape in SHAPES {
            for order in [Order::C, Order::Fortran] {
                for byte_order in [ByteOrder::Little, ByteOrder::Big] {
                    let n = cases.len();
                    let array = sample::array(kind, shape, order, 7 + n as u64);
                    npy::save_dyn(
                        dir.path().join(format!("{n}.npy")),
                        &array,
                        &SaveOptions::new().byte_order(byte_order),
                    )
                    .unwrap();
                    let meta = ArrayMeta::new(DType::new(kind, byte_order), shape.to_vec(), order);
                    cases.push((
                        array,
                        ArrayMeta {
                            order: meta.effective_order(),
                            ..meta
                        },
                    ));
                }
            }
        }
    }
    py(
        &format!(
            "arrs = {{f'a{{n}}': np.load(f'{{n}}.npy') for n in range({})}}\nfor k, a in arrs.items():\n    np.save(f'{{k}}-saved.npy', a)\n    np.ascontiguousarray(a).tofile(f'{{k}}.bin')\nnp.savez('all.npz', **arrs)\nnp.savez_compressed('all-compressed.npz', **arrs)",
            cases.len()
        ),
        dir.path(),
    );
    let mut stored = NpzReader::open(dir.path().join("all.npz")).unwrap();
    let mut compressed = NpzReader::open(dir.path().join("all-compressed.npz")).unwrap();
    for (n, (array, meta)) in cases.iter().enumerate() {
        let name = format!("a{n}");
        let (m, a) = npy::load_dyn(dir.path().join(format!("{name}-saved.npy"))).unwrap();
        assert_eq!(&m, meta, "np.save {name}");
        assert!(a.bit_eq(array), "np.save {name}");
        for reader in [&mut stored, &mut compressed] {
            let (m, a) = reader.load_dyn(&name).unwrap();
            assert_eq!(&m, meta, "savez {name}");
            assert!(a.bit_eq(array), "savez {name}");
        }
        // tofile writes C order in the array's own byte order.
        let raw_meta = ArrayMeta {
            order: Order::C,
            ..meta.clone()
        };
        let a = raw::load_raw_dyn(dir.path().join(format!("{name}.bin")), &raw_meta).unwrap();
        assert!(a.bit_eq(array), "tofile {name}");
    }
}

#[test]
fn ndstore_reads_format_versions_2_and_3_as_numpy_writes_them() {
    if !python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    py(
        "a = np.arange(12, dtype='>i4').reshape(3, 4)\nfor v in [(1, 0), (2, 0), (3, 0)]:\n    with open(f'v{v[0]}.npy', 'wb') as f:\n        np.lib.format.write_array(f, a, version=v)",
        dir.path(),
    );
    for version in 1..=3 {
        let path = dir.path().join(format!("v{version}.npy"));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[6], version, "numpy wrote another version");
        let (meta, array) = npy::load_dyn(&path).unwrap();
        assert_eq!(meta.dtype, DType::new(DTypeKind::I32, ByteOrder::Big));
        let typed = array.into_typed::<i32>().unwrap();
        assert_eq!(typed.shape(), &[3, 4]);
        assert_eq!(
            typed.iter().copied().collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>()
        );
    }
}

#[test]
fn numpy_structured_and_string_arrays_are_refused_as_unsupported_dtypes() {
    if !python::available_or_skip("numpy interop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    py(
        "np.save('structured.npy', np.zeros(3, dtype=[('x', '<f8'), ('y', '<i4', (2,))]))\nnp.save('strings.npy', np.array(['a', 'bc']))\nnp.savez('mixed.npz', s=np.zeros(2, dtype=[('x', '<f4')]))",
        dir.path(),
    );
    for name in ["structured.npy", "strings.npy"] {
        let err = npy::load_dyn(dir.path().join(name)).unwrap_err();
        assert_eq!(
            err.kind(),
            ndstore_core::ErrorKind::UnsupportedDType,
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains(name) && err.location().is_some(),
            "{name}: {err}"
        );
    }
    let err = NpzReader::open(dir.path().join("mixed.npz"))
        .unwrap()
        .load_dyn("s")
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ndstore_core::ErrorKind::UnsupportedDType,
        "{err}"
    );
}

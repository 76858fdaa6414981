//! The `file` backend's conformance suite: the shared checks, driven through its capabilities,
//! and what only its formats know — `.npy` and `.npz` hostile inputs, a realistic `.npy` and a
//! realistic `.npz` of several deflated members with the maps of their regions, the `.npz`
//! loader, and numpy's snippets for interop.
// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Write};
use std::path::Path;

use ndstore_conformance::fixtures::RustInterop;
use ndstore_conformance::fixtures::{self, Hostile, Loader, Realistic, Region};
use ndstore_conformance::{Fixtures, PythonInterop};
use ndstore_core::{Backend, DTypeKind, DynArray, LoadOptions, Order, SaveOptions};
use ndstore_file::npz::{self, Compression};

ndstore_conformance::suite!(ndstore_file::NpyBackend, FileFixtures);

/// What the `file` backend's formats know.
struct FileFixtures;

impl Fixtures for FileFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        let mut files = fixtures::hostile_npy();
        files.extend(hostile_npz());
        files
    }

    fn realistic_files(&self, backend: &dyn Backend, dir: &Path) -> Result<Vec<Realistic>, String> {
        Ok(vec![
            fixtures::realistic_npy(backend, dir)?,
            realistic_npz(dir)?,
        ])
    }

    fn loaders(&self) -> Vec<Loader> {
        vec![Loader {
            name: "npz",
            load: load_npz,
        }]
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &[],
            load: "arr = np.load(path)",
            save: "np.save(path, arr)",
        })
    }

    fn rust_interop(&self) -> Option<RustInterop> {
        Some(RustInterop {
            name: "ndarray-npy",
            load: ndarray_npy_load,
            save: ndarray_npy_save,
        })
    }
}

/// Every dtype ndarray-npy reads and writes (all but f16), as the element type `$t`.
macro_rules! with_ndarray_npy_type {
    ($kind:expr, $t:ident => $body:expr) => {{
        use ndstore_core::num_complex::Complex;
        match $kind {
            DTypeKind::Bool => {
                type $t = bool;
                Some($body)
            }
            DTypeKind::I8 => {
                type $t = i8;
                Some($body)
            }
            DTypeKind::I16 => {
                type $t = i16;
                Some($body)
            }
            DTypeKind::I32 => {
                type $t = i32;
                Some($body)
            }
            DTypeKind::I64 => {
                type $t = i64;
                Some($body)
            }
            DTypeKind::U8 => {
                type $t = u8;
                Some($body)
            }
            DTypeKind::U16 => {
                type $t = u16;
                Some($body)
            }
            DTypeKind::U32 => {
                type $t = u32;
                Some($body)
            }
            DTypeKind::U64 => {
                type $t = u64;
                Some($body)
            }
            DTypeKind::F32 => {
                type $t = f32;
                Some($body)
            }
            DTypeKind::F64 => {
                type $t = f64;
                Some($body)
            }
            DTypeKind::Complex64 => {
                type $t = Complex<f32>;
                Some($body)
            }
            DTypeKind::Complex128 => {
                type $t = Complex<f64>;
                Some($body)
            }
            _ => None,
        }
    }};
}

/// ndarray-npy reads a `.npy` file as `kind`.
fn ndarray_npy_load(path: &Path, kind: DTypeKind) -> Option<Result<DynArray, String>> {
    use ndarray_npy::ReadNpyExt;
    with_ndarray_npy_type!(kind, T => std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|file| ndarray::ArrayD::<T>::read_npy(file).map_err(|e| e.to_string()))
        .map(DynArray::from))
}

/// ndarray-npy writes `array` as a `.npy` file.
fn ndarray_npy_save(path: &Path, array: &DynArray) -> Option<Result<(), String>> {
    use ndarray_npy::WriteNpyExt;
    with_ndarray_npy_type!(array.kind(), T => array
    .clone()
    .into_typed::<T>()
    .map_err(|e| e.to_string())
    .and_then(|typed| {
        let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        typed.write_npy(file).map_err(|e| e.to_string())
    }))
}

/// Every member of an `.npz` archive, as a user who opened an archive they were sent would.
fn load_npz(path: &Path, _: &LoadOptions) -> ndstore_core::Result<()> {
    npz::load_npz(path).map(|_| ())
}

/// An archive with one stored member holding `bytes`.
fn stored_zip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(name, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A `.npy` header dictionary for `n` u8 elements.
fn u8_dict(n: u64) -> String {
    format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n},), }}")
}

/// Offsets of the first local header's and the first central header's size fields.
fn size_fields(archive: &[u8]) -> [usize; 2] {
    let central = archive
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central directory header");
    // Local header: compressed size at 18, uncompressed at 22; central header: 20 and 24.
    [18, central + 20]
}

/// `.npz` archives whose sizes lie, refused by the `npz` loader.
fn hostile_npz() -> Vec<Hostile> {
    let mut member = Vec::new();
    ndstore_file::npy::write_to(
        &mut member,
        &ndarray::array![1.0f64, 2.0],
        ndstore_core::ByteOrder::Little,
    )
    .unwrap();
    // A stored member whose local header and central directory both claim 0xFFFFFF00 bytes,
    // in a file of about 300 bytes; its .npy header agrees with them (u8 elements that fill the
    // claimed size), so only the file's length gives the lie away.
    let claimed = 0xFFFF_FF00u32;
    let probe = ndstore_core::__private::npy_header::wrap(&u8_dict(1));
    let mut agreeing = ndstore_core::__private::npy_header::wrap(&u8_dict(
        u64::from(claimed) - probe.len() as u64,
    ));
    assert_eq!(
        agreeing.len(),
        probe.len(),
        "the header length must not change"
    );
    agreeing.extend_from_slice(&[7u8; 64]);
    let mut lying = stored_zip("x.npy", &agreeing);
    for at in size_fields(&lying) {
        for field in [at, at + 4] {
            lying[field..field + 4].copy_from_slice(&claimed.to_le_bytes());
        }
    }
    // The same sizes over a small array: the member's .npy is complete, but the archive says
    // it goes on for 4 GiB.
    let mut overlong = stored_zip("x.npy", &member);
    for at in size_fields(&overlong) {
        for field in [at, at + 4] {
            overlong[field..field + 4].copy_from_slice(&claimed.to_le_bytes());
        }
    }
    // A member whose .npy header claims 2^40 f64 elements, holding 64 bytes.
    let claims = fixtures::hostile_npy()
        .into_iter()
        .find(|h| h.name == "claims-2pow40-f64.npy")
        .unwrap();
    // A deflated member that claims to inflate to 0xFFFFFF00 bytes from a few dozen.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("d.npy", deflated).unwrap();
    zip.write_all(&member).unwrap();
    let mut bomb = zip.finish().unwrap().into_inner();
    let [local, central] = size_fields(&bomb);
    for at in [local + 4, central + 4] {
        bomb[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    }
    vec![
        Hostile::new("stored-member-claims-4gib.npz", lying).loaded_by("npz"),
        Hostile::new("stored-member-size-overlong.npz", overlong).loaded_by("npz"),
        Hostile::new("deflated-member-claims-4gib.npz", bomb).loaded_by("npz"),
        Hostile::new(
            "member-claims-2pow40-f64.npz",
            stored_zip("x.npy", &claims.bytes),
        )
        .loaded_by("npz"),
        Hostile::new(
            "not-a-zip.npz",
            b"PK\x03\x04 this is not a zip archive".to_vec(),
        )
        .loaded_by("npz"),
    ]
}

/// A realistic `.npz` (about 1.3 MiB, as `np.savez_compressed` writes: several deflated members
/// of several dtypes) and its map: each member's local header (dense), deflated data (sampled,
/// covered by its CRC-32), each central directory header and the end records (dense).
fn realistic_npz(dir: &Path) -> Result<Realistic, String> {
    let path = dir.join("realistic.npz");
    let arrays = [
        (
            "temperature",
            ndstore_conformance::sample::array(DTypeKind::F64, &[400, 300], Order::C, 1),
        ),
        (
            "pressure",
            ndstore_conformance::sample::array(DTypeKind::F32, &[300, 250], Order::Fortran, 2),
        ),
        (
            "counts",
            ndstore_conformance::sample::array(DTypeKind::I64, &[60_000], Order::C, 3),
        ),
        (
            "mask",
            ndstore_conformance::sample::array(DTypeKind::Bool, &[64, 64], Order::C, 4),
        ),
    ];
    let members: Vec<(&str, &ndstore_core::DynArray)> =
        arrays.iter().map(|(n, a)| (*n, a)).collect();
    npz::save_npz(
        &path,
        &members,
        Compression::Deflated,
        &SaveOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut regions = Vec::new();
    let mut central = Vec::new();
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| e.to_string())?;
        let data = member.data_start().ok_or("no data offset")?;
        regions.push(Region::dense("local header", member.header_start()..data));
        regions.push(
            Region::sampled(
                "deflated member data",
                data..data + member.compressed_size(),
            )
            .checksummed(),
        );
        central.push(member.central_header_start());
    }
    central.sort_unstable();
    let end = {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        bytes
            .windows(4)
            .rposition(|w| w == b"PK\x06\x06" || w == b"PK\x05\x06")
            .map(|at| {
                // The zip64 end record, when there is one, starts the trailer.
                bytes
                    .windows(4)
                    .position(|w| w == b"PK\x06\x06")
                    .unwrap_or(at) as u64
            })
            .ok_or("no end of central directory record")?
    };
    for (k, start) in central.iter().enumerate() {
        let stop = central.get(k + 1).copied().unwrap_or(end);
        regions.push(Region::dense("central directory header", *start..stop));
    }
    regions.push(Region::dense("end of central directory", end..len));
    Ok(Realistic {
        name: "realistic.npz".to_owned(),
        path,
        loader: Some("npz"),
        regions,
    })
}

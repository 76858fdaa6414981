//! What only a format knows, handed to the harness by each backend's own tests rather than kept
//! in the production [`Backend`] trait: hostile inputs, realistic valid files with a map of their
//! regions, the other loaders of the same backend (the `file` backend's `.npz`), the in-process
//! loader that must be reported apart (HDF5's trusted path), and the Python snippets for interop.
//!
//! A backend's `tests/conformance.rs` implements [`Fixtures`] and passes it to
//! [`suite!`](crate::suite) beside the backend.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndstore_core::{
    ArrayMeta, Backend, ByteOrder, DTypeKind, DynArray, LoadOptions, Order, SaveOptions,
};

use crate::report::CheckResult;
use crate::{Check, Ctx, sample};

/// What a backend's tests give the harness beyond the backend itself. Every method has a
/// default, so a backend starts with `impl Fixtures for MyFixtures {}` and adds what its format
/// needs; BI fails when there is no realistic file to damage.
pub trait Fixtures: Sync {
    /// Files the format must refuse with a clear error (corrupt headers, lying sizes, link
    /// cycles, ...). The harness adds generic damage (truncation, corrupt bytes) on its own.
    fn hostile_inputs(&self) -> Vec<Hostile> {
        Vec::new()
    }

    /// Realistic valid files of at least 1 MiB, written into `dir`, each with the map of its
    /// regions (header, index, heap, data, trailer, ...): BI damages every region of each.
    ///
    /// # Errors
    ///
    /// A message when a file cannot be made; BI then fails.
    fn realistic_files(&self, backend: &dyn Backend, dir: &Path) -> Result<Vec<Realistic>, String> {
        let _ = (backend, dir);
        Ok(Vec::new())
    }

    /// Other ways the harness must load this backend's files: other formats of the same
    /// backend (`.npz` beside `.npy`), or entry points that reach more of a file (an HDF5
    /// listing that opens every object). Hostile and realistic files name the loader they
    /// need; the backend's own `load` is the default.
    fn loaders(&self) -> Vec<Loader> {
        Vec::new()
    }

    /// A loader that runs a library not hardened against hostile files inside the caller's
    /// process, explicitly (HDF5's trusted path). BI runs the whole corpus through it too and
    /// reports its crashes beside its own result, never as a pass.
    fn trusted_loader(&self) -> Option<Loader> {
        None
    }

    /// How numpy or h5py read and write this backend's files, for IX; `None` when no reference
    /// implementation exists (IX is then N/A).
    fn python_interop(&self) -> Option<PythonInterop> {
        None
    }

    /// How to add an array to an existing file beside the others (HDF5's `add_dataset`), for
    /// CO's concurrent editors; `None` when files hold one array.
    fn editor(&self) -> Option<Editor> {
        None
    }

    /// A second reference implementation in Rust (ndarray-npy for `.npy`), run in this process
    /// over the same IX cases; `None` when there is none.
    fn rust_interop(&self) -> Option<RustInterop> {
        None
    }

    /// True when a valid file may hold an array larger than itself (HDF5: chunks never written
    /// read as the fill value), so a load may need more memory than the file's size and an
    /// out-of-memory error naming the file is an honest answer. False (the default) when every
    /// size is bounded by the file, where such an error means the reader allocated what the
    /// file could not justify.
    fn arrays_may_exceed_file(&self) -> bool {
        false
    }

    /// The chunk shape the backend's saves give an array of `meta`, for a backend that
    /// declares the per-chunk crash guarantee ([`CrashGuarantee::PerChunk`]): CK then judges
    /// each chunk of a replaced array on its own. `None` (the default) for a backend without
    /// chunks; a per-chunk backend without it fails CK.
    ///
    /// [`CrashGuarantee::PerChunk`]: ndstore_core::CrashGuarantee::PerChunk
    fn chunk_shape(&self, meta: &ArrayMeta) -> Option<Vec<usize>> {
        let _ = meta;
        None
    }

    /// The backend's own implementation of `check`, for a medium the shared one cannot
    /// observe: object storage has no file to damage in place, no strace to record and no
    /// rename to race, so its tests judge BI, IO, FS, CP, CO and IX through requests to the
    /// store (a fault-injecting one among them). `None` (the default) runs the shared check.
    /// The result is reported as the shared check's would be, and a self-test must show it
    /// can fail.
    ///
    /// # Errors
    ///
    /// A message when the check could not run; it is then FAIL.
    fn own_check(&self, check: Check, ctx: &Ctx<'_>) -> Option<Result<CheckResult, String>> {
        let _ = (check, ctx);
        None
    }
}

/// Fixtures for a backend that has none yet: BI then fails for want of a realistic file, and IX
/// is N/A.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFixtures;

impl Fixtures for NoFixtures {}

/// Python snippets for interoperability checks.
///
/// Each runs with `np` (numpy) imported and `path` set; `load` must bind `arr`, and `save`
/// must write the array `arr` to `path`.
#[derive(Clone, Copy, Debug)]
pub struct PythonInterop {
    /// Python modules besides numpy that the snippets import.
    pub modules: &'static [&'static str],
    /// Reads `path` into `arr`.
    pub load: &'static str,
    /// Writes `arr` to `path`.
    pub save: &'static str,
}

/// Adds arrays to a file that holds several (read, modify, replace), for CO: two processes
/// adding at once must lose none.
#[derive(Clone, Copy, Debug)]
pub struct Editor {
    /// Adds the array under the name to the file at the path.
    pub add: fn(&Path, &str, &DynArray) -> ndstore_core::Result<()>,
    /// The names of the arrays the file holds, as `add` spells them.
    pub names: fn(&Path) -> ndstore_core::Result<Vec<String>>,
    /// Loads the array of that name.
    pub load: fn(&Path, &str) -> ndstore_core::Result<DynArray>,
}

/// A reference library in Rust: plain functions reading and writing the backend's files. Each
/// returns `None` for a dtype the library does not support (those cases are not counted).
#[derive(Clone, Copy, Debug)]
pub struct RustInterop {
    /// The library's name, for the report: `ndarray-npy`.
    pub name: &'static str,
    /// Reads the file at the path as an array of the given dtype.
    pub load: fn(&Path, DTypeKind) -> Option<Result<DynArray, String>>,
    /// Writes the array to the path.
    pub save: fn(&Path, &DynArray) -> Option<Result<(), String>>,
}

/// A way to load a file other than the backend's own `load`: its name (which hostile and
/// realistic files refer to) and a plain function, so child processes can call it too.
#[derive(Clone, Copy, Debug)]
pub struct Loader {
    /// A short name: `npz`, `walk`, `trusted`.
    pub name: &'static str,
    /// Loads everything the file holds, returning the first error.
    pub load: fn(&Path, &LoadOptions) -> ndstore_core::Result<()>,
}

/// A hostile file: bytes the format must refuse with a clear error or, for a valid file built
/// to break naive readers (a link cycle), survive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostile {
    /// The file's name, with its extension; the kept corpus stores it as `hostile-NAME`.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The loader that must refuse it; `None` for the backend's own `load`.
    pub loader: Option<&'static str>,
    /// Whether the file is valid, so loading it may succeed: it must then load or fail with a
    /// clear error, and never crash, hang or exhaust memory. False: it must be refused.
    pub valid: bool,
}

impl Hostile {
    /// A hostile file the backend's own `load` must refuse.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Hostile {
        Hostile {
            name: name.into(),
            bytes,
            loader: None,
            valid: false,
        }
    }

    /// The file is valid (built to break naive readers, not damaged): loading it may succeed.
    #[must_use]
    pub fn valid(mut self) -> Hostile {
        self.valid = true;
        self
    }

    /// The same file, refused by the loader named `loader` instead.
    #[must_use]
    pub fn loaded_by(mut self, loader: &'static str) -> Hostile {
        self.loader = Some(loader);
        self
    }
}

/// A realistic valid file and the map of its regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realistic {
    /// A short name for reports (`chunked.h5`).
    pub name: String,
    /// Where the file is.
    pub path: PathBuf,
    /// The loader that reads all of it; `None` for the backend's own `load`.
    pub loader: Option<&'static str>,
    /// Byte ranges that together cover the whole file.
    pub regions: Vec<Region>,
}

/// How densely BI damages a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Density {
    /// Every byte (metadata: headers, indexes, heaps, trailers).
    Dense,
    /// A sample of positions (bulk data, where one byte is like the next).
    Sampled,
}

/// What damage in a region may lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The load must fail with a clear error (checksummed data; a truncated file).
    MustFail,
    /// The load may succeed (the damage may sit where nothing checks it) or fail with a clear
    /// error.
    MayLoad,
}

/// One region of a realistic file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// What the region is (`superblock`, `object header /g`, `chunk`, `central directory`);
    /// regions of one name are counted together in the report.
    pub name: String,
    /// Its bytes.
    pub range: Range<u64>,
    /// Every byte or a sample.
    pub density: Density,
    /// What a corrupt byte here may lead to.
    pub flips: Expect,
    /// What cutting the file here may lead to.
    pub truncation: Expect,
}

impl Region {
    /// Metadata, damaged at every byte; a corrupt byte may go unnoticed, a cut may not.
    pub fn dense(name: impl Into<String>, range: Range<u64>) -> Region {
        Region {
            name: name.into(),
            range,
            density: Density::Dense,
            flips: Expect::MayLoad,
            truncation: Expect::MustFail,
        }
    }

    /// Bulk data, damaged at sampled positions; a corrupt byte may go unnoticed, a cut may not.
    pub fn sampled(name: impl Into<String>, range: Range<u64>) -> Region {
        Region {
            density: Density::Sampled,
            ..Region::dense(name, range)
        }
    }

    /// The same region where a corrupt byte must be noticed (a checksum covers it).
    #[must_use]
    pub fn checksummed(mut self) -> Region {
        self.flips = Expect::MustFail;
        self
    }

    /// The same region where a cut may load (the last line of a text file, whose loss of a
    /// final digit no format can see).
    #[must_use]
    pub fn cut_may_load(mut self) -> Region {
        self.truncation = Expect::MayLoad;
        self
    }
}

/// The regions of a `.npy` file: magic, version, header length, header dictionary, padding and
/// newline (all dense), and the data (sampled).
///
/// # Errors
///
/// A message when `bytes` is not a `.npy` file.
pub fn npy_regions(bytes: &[u8]) -> Result<Vec<Region>, String> {
    let mut reader = bytes;
    let header = ndstore_core::__private::npy_header::read(&mut reader, usize::MAX)
        .map_err(|e| format!("not a .npy file: {e}"))?;
    let len_end: u64 = if header.version == ndstore_core::__private::npy_header::Version::V1 {
        10
    } else {
        12
    };
    let data = header.data_offset;
    let text = bytes
        .get(len_end as usize..data as usize)
        .ok_or("the header is longer than the file")?;
    // The dictionary ends at its closing brace; spaces and the newline pad it after.
    let dict_end = len_end
        + text
            .iter()
            .rposition(|&b| b == b'}')
            .map_or(text.len(), |i| i + 1) as u64;
    let mut regions = vec![
        Region::dense("npy magic", 0..6),
        Region::dense("npy version", 6..8),
        Region::dense("npy header length", 8..len_end),
        Region::dense("npy header dictionary", len_end..dict_end),
        Region::dense("npy header padding", dict_end..data),
    ];
    if (bytes.len() as u64) > data {
        regions.push(Region::sampled("npy data", data..bytes.len() as u64));
    }
    Ok(regions)
}

/// The size every realistic file reaches at least.
pub const REALISTIC_MIN_BYTES: u64 = 1 << 20;

/// A realistic `.npy`-format file written by `backend` (an array of about 1.2 MiB, big-endian
/// and Fortran-ordered when the backend stores those), mapped with [`npy_regions`]: for the
/// backends whose files are `.npy`.
///
/// # Errors
///
/// A message when the save fails or the file is not `.npy`.
pub fn realistic_npy(backend: &dyn Backend, dir: &Path) -> Result<Realistic, String> {
    let caps = backend.capabilities();
    let kind = if caps.stores(DTypeKind::F64) {
        DTypeKind::F64
    } else {
        caps.dtypes.first().copied().ok_or("no dtype declared")?
    };
    let order = if caps.fortran_order {
        Order::Fortran
    } else {
        Order::C
    };
    let byte_order = if caps.both_byte_orders {
        ByteOrder::Big
    } else {
        ByteOrder::native()
    };
    let side = 400 * 8 / kind.itemsize().max(1);
    let array = sample::array(kind, &[side, 400], order, 0x0b16_f11e);
    let path = dir.join(format!("realistic.{}", backend.extension()));
    backend
        .save(&path, &array, &SaveOptions::new().byte_order(byte_order))
        .map_err(|e| format!("saving the realistic file: {e}"))?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Realistic {
        name: format!("realistic.{}", backend.extension()),
        regions: npy_regions(&bytes)?,
        path,
        loader: None,
    })
}

/// A `.npy` file with `dict` as its header text, framed as numpy frames it, followed by `data`.
pub fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = ndstore_core::__private::npy_header::wrap(dict);
    out.extend_from_slice(data);
    out
}

/// `.npy` files every `.npy` reader must refuse with a clear error, named for what is wrong
/// with them: the format's hostile inputs, for the backends whose files are `.npy`.
pub fn hostile_npy() -> Vec<Hostile> {
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    let mut files = vec![
        // ndarray-npy 0.10 aborts the process on this one: 2^40 f64 claimed by a 128-byte file.
        (
            "claims-2pow40-f64.npy",
            npy_with_header(&dict("<f8", "(1099511627776,)"), &[0; 64]),
        ),
        (
            "shape-product-overflows.npy",
            npy_with_header(
                &dict("<f8", "(4611686018427387904, 4611686018427387904)"),
                &[],
            ),
        ),
        (
            "bytes-overflow.npy",
            npy_with_header(&dict("<c16", "(2305843009213693952,)"), &[]),
        ),
        (
            "shape-exceeds-file.npy",
            npy_with_header(&dict("<f8", "(1000,)"), &[0; 16]),
        ),
        (
            "axis-too-long-for-usize.npy",
            npy_with_header(&dict("<f8", "(99999999999999999999999999,)"), &[]),
        ),
        (
            "negative-axis.npy",
            npy_with_header(&dict("<f8", "(-1,)"), &[]),
        ),
        (
            "object-dtype-pickle.npy",
            npy_with_header(&dict("|O", "(1,)"), b"\x80\x04N."),
        ),
        (
            "unicode-dtype.npy",
            npy_with_header(&dict("<U5", "(1,)"), &[0; 20]),
        ),
        (
            "structured-dtype.npy",
            npy_with_header(
                "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
        ),
        (
            "unknown-key.npy",
            npy_with_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'evil': 1, }",
                &[0; 8],
            ),
        ),
        (
            "missing-shape.npy",
            npy_with_header("{'descr': '<f8', 'fortran_order': False, }", &[0; 8]),
        ),
        (
            "unterminated-string.npy",
            npy_with_header(
                "{'descr': '<f8, 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
        ),
        (
            "not-a-dict.npy",
            npy_with_header("__import__('os').system('echo pwned')", &[0; 8]),
        ),
        (
            "invalid-bool-byte.npy",
            npy_with_header(&dict("|b1", "(4,)"), &[0, 1, 7, 1]),
        ),
        ("wrong-magic.npy", b"\x93NUMPX\x01\x00\x76\x00{}".to_vec()),
        ("empty.npy", Vec::new()),
        ("version-9.npy", b"\x93NUMPY\x09\x00\x76\x00".to_vec()),
        (
            "header-length-beyond-file.npy",
            b"\x93NUMPY\x01\x00\x00\x10{'descr'".to_vec(),
        ),
    ];
    // A version 2.0 header of 1 MiB: over numpy's 10,000-byte limit, refused before it is read.
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&(1u32 << 20).to_le_bytes());
    huge.extend_from_slice(b"{'descr': '<f8'");
    files.push(("header-over-limit.npy", huge));
    // Version 3.0 text that is not UTF-8.
    let mut v3 = b"\x93NUMPY\x03\x00".to_vec();
    let text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), \xff\xfe}     \n";
    v3.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v3.extend_from_slice(text);
    v3.extend_from_slice(&[0; 8]);
    files.push(("v3-not-utf8.npy", v3));
    files
        .into_iter()
        .map(|(name, bytes)| Hostile::new(name, bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn npy_regions_cover_the_file_in_order() {
        let meta = ndstore_core::ArrayMeta::new(
            ndstore_core::DType::new(DTypeKind::F64, ByteOrder::Little),
            vec![4],
            Order::C,
        );
        let mut bytes = ndstore_core::__private::npy_header::encode(&meta);
        let data = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 32]);
        let regions = npy_regions(&bytes).unwrap();
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "npy magic",
                "npy version",
                "npy header length",
                "npy header dictionary",
                "npy header padding",
                "npy data"
            ]
        );
        let mut at = 0;
        for region in &regions {
            assert_eq!(region.range.start, at, "{region:?}");
            at = region.range.end;
        }
        assert_eq!(at, bytes.len() as u64);
        assert_eq!(regions[5].range.start, data);
        assert_eq!(bytes[regions[3].range.end as usize - 1], b'}');
        assert!(npy_regions(b"not npy").is_err());
    }

    #[test]
    fn every_hostile_npy_file_has_a_unique_name() {
        let files = hostile_npy();
        let mut names: Vec<&str> = files.iter().map(|h| h.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), files.len());
        assert!(
            files
                .iter()
                .all(|h| h.name.ends_with(".npy") && h.loader.is_none())
        );
    }
}

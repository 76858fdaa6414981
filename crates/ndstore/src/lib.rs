//! Durable n-dimensional array storage: save and load arrays through pluggable backends with
//! one durability vocabulary — flush, sync, close, commit, drop — and atomic, synced saves by
//! default.
//!
//! This facade re-exports the user-facing types of [`ndstore_core`] (by name: the core's
//! helpers for backends stay out of the API) and each backend behind a cargo feature of the
//! backend's name (`file` is on by default), and opens files by extension for callers who do
//! not pick a backend by hand:
//!
//! | extension | backend | feature |
//! |---|---|---|
//! | `.npy` | [`file::npy`] | `file` |
//! | `.npz` | [`file::npz`] (first array, or by name) | `file` |
//! | `.csv`, `.txt` | [`text`] (comma-separated; `.txt` whitespace-separated) | `text` |
//! | `.h5`, `.hdf5` | `hdf5` (dataset `data`, else the file's only dataset; parsed in an isolated reader process) | `hdf5`, off by default: it links libhdf5 |
//! | `.zarr` (a directory) | `zarr` (a Zarr v3 array; saves replace the whole directory atomically) | `zarr`, off by default |
//!
//! Memory maps are opened explicitly, through [`mmap::MappedArray`] (feature `mmap`): mapping is
//! an `unsafe` choice the caller makes, never a side effect of a file's extension.
//!
//! # Example
//!
//! ```
//! use ndarray::array;
//!
//! # fn main() -> ndstore::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ndstore-facade-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("weights.npy");
//! let a = array![[1.5f32, -0.0], [f32::INFINITY, 4.0]];
//! ndstore::save(&path, &a.clone().into_dyn().into())?; // atomic + fsync + directory fsync
//! let (meta, loaded) = ndstore::load(&path)?;
//! assert_eq!(meta.shape, vec![2, 2]);
//! assert!(loaded.bit_eq(&a.into_dyn().into()));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

#![warn(clippy::missing_errors_doc)]

use std::path::Path;

pub use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, ByteOrder, Capabilities, Close, Commit, CrashGuarantee, DType,
    DTypeKind, Detail, Durability, Durable, DurableFile, DynArray, Element, Error, ErrorKind,
    InPlaceArray, LoadOptions, Location, Lock, Order, OutputFile, Replace, Result, SaveOptions,
    half, list_temps, lock, ndarray, num_complex, remove_stale_temps, remove_stale_temps_in,
    with_dtype_kind, with_dyn_array, write_file,
};

/// The `file` backend: `.npy`, `.npz` and raw binary.
#[cfg(feature = "file")]
pub use ndstore_file as file;

/// The `mmap` backend: memory-mapped `.npy` and raw arrays.
#[cfg(feature = "mmap")]
pub use ndstore_mmap as mmap;

/// The `text` backend: CSV and delimited text.
#[cfg(feature = "text")]
pub use ndstore_text as text;

/// The `hdf5` backend: HDF5 datasets through libhdf5 (feature `hdf5`, off by default).
#[cfg(feature = "hdf5")]
pub use ndstore_hdf5 as hdf5;

/// The `zarr` backend: Zarr v3 arrays in local directories (feature `zarr`, off by default).
#[cfg(feature = "zarr")]
pub use ndstore_zarr as zarr;

/// The backends this build includes that safe code may drive, as the conformance report names
/// them.
///
/// The `mmap` backend is not among them: it maps files, and a file truncated behind a map's
/// back kills the process with SIGBUS, so only the caller can promise it is safe. Make it with
/// `unsafe { ndstore::mmap::MmapBackend::new() }` (see its `# Safety` section).
// Each push depends on a feature, so the vector cannot be one `vec![]` literal.
#[allow(clippy::vec_init_then_push, unused_mut)]
pub fn backends() -> Vec<Box<dyn Backend>> {
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    #[cfg(feature = "file")]
    backends.push(Box::new(ndstore_file::NpyBackend));
    #[cfg(feature = "text")]
    backends.push(Box::new(ndstore_text::TextBackend));
    #[cfg(feature = "hdf5")]
    backends.push(Box::new(ndstore_hdf5::Hdf5Backend));
    #[cfg(feature = "zarr")]
    backends.push(Box::new(ndstore_zarr::ZarrBackend));
    backends
}

/// What a file's extension says about its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `.npy`
    Npy,
    /// `.npz`
    Npz,
    /// `.csv` (comma-separated text)
    Csv,
    /// `.txt` (whitespace-separated text, as `np.savetxt` writes by default)
    Txt,
    /// `.h5` or `.hdf5`
    Hdf5,
    /// `.zarr` (a Zarr v3 array directory)
    Zarr,
}

/// The format a path's extension names, or an error saying which extensions are known.
///
/// # Errors
///
/// `ErrorKind::Unsupported` for an extension no backend uses, naming the known ones.
pub fn format_of(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("npz") => Ok(Format::Npz),
        Some("csv") => Ok(Format::Csv),
        Some("txt") => Ok(Format::Txt),
        Some("h5" | "hdf5") => Ok(Format::Hdf5),
        Some("zarr") => Ok(Format::Zarr),
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            "unknown extension (known: .npy, .npz, .csv, .txt, .h5, .hdf5, .zarr)",
        )
        .with_path(path)),
    }
}

/// Saves `array` at `path` with the backend its extension names, atomically and durably.
/// An `.npz` gets one array named `arr_0`, as `np.savez` names a positional array.
///
/// # Errors
///
/// `ErrorKind::Unsupported` for an unknown extension or a backend not built in; the backend's
/// errors of saving (I/O, `ErrorKind::StorageFull`, `ErrorKind::PermissionDenied`, ...); a failed
/// save leaves the target's old content.
pub fn save(path: impl AsRef<Path>, array: &DynArray) -> Result<()> {
    save_with(path, array, &SaveOptions::default())
}

/// [`save`] with explicit options.
///
/// # Errors
///
/// As `save`.
pub fn save_with(path: impl AsRef<Path>, array: &DynArray, options: &SaveOptions) -> Result<()> {
    let path = path.as_ref();
    match format_of(path)? {
        #[cfg(feature = "file")]
        Format::Npy => ndstore_file::npy::save_dyn(path, array, options),
        #[cfg(feature = "file")]
        Format::Npz => ndstore_file::npz::save_npz(
            path,
            &[("arr_0", array)],
            ndstore_file::npz::Compression::Stored,
            options,
        ),
        #[cfg(feature = "text")]
        Format::Csv | Format::Txt => ndstore_core::with_dyn_array!(array, |a| {
            ndstore_text::save(path, a, &text_options(path), options)
        }),
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => ndstore_hdf5::save_dyn(path, ndstore_hdf5::DEFAULT_DATASET, array, options),
        #[cfg(feature = "zarr")]
        Format::Zarr => ndstore_zarr::ZarrBackend.save(path, array, options),
        #[allow(unreachable_patterns)]
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            "the backend for this extension is not enabled",
        )
        .with_path(path)),
    }
}

/// Comma-separated for `.csv`, whitespace-separated for `.txt`.
#[cfg(feature = "text")]
fn text_options(path: &Path) -> ndstore_text::TextOptions {
    match format_of(path) {
        Ok(Format::Txt) => {
            ndstore_text::TextOptions::new().delimiter(ndstore_text::Delimiter::Whitespace)
        }
        _ => ndstore_text::TextOptions::new(),
    }
}

/// Loads the array at `path` with the backend its extension names (the first array of an
/// `.npz`; an HDF5 file's dataset `data` or, when it has none, its only dataset, else `NotFound`
/// naming the datasets), with its stored metadata.
///
/// # Errors
///
/// As [`load_with`].
pub fn load(path: impl AsRef<Path>) -> Result<(ArrayMeta, DynArray)> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] within `options`: a memory limit, say, for files you did not write.
///
/// Whatever the file's bytes, the result is the array or an error naming the file and the
/// place; sizes are checked against the file and the limit before anything is allocated.
///
/// # Errors
///
/// [`ErrorKind::Unsupported`] for an unknown extension or a backend not built in; the
/// backend's error for a missing, damaged or hostile file; [`ErrorKind::OutOfMemory`] over
/// `options.memory_limit`.
///
/// # Example
///
/// A file from elsewhere, loaded within a memory limit; a refusal is an error to inspect:
///
/// ```
/// use ndstore::{DynArray, ErrorKind, LoadOptions};
///
/// # fn main() -> ndstore::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("ndstore-limit-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("big.npy");
/// let big = DynArray::zeros(ndstore::DTypeKind::F64, &[1000, 1000], ndstore::Order::C)?;
/// ndstore::save(&path, &big)?; // 8 MB of data
/// let small = LoadOptions::new().memory_limit(1 << 20);
/// let err = ndstore::load_with(&path, &small).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::OutOfMemory);
/// assert_eq!(err.path(), Some(path.as_path())); // the file is named
/// let (meta, _) = ndstore::load_with(&path, &LoadOptions::new().memory_limit(1 << 24))?;
/// assert_eq!(meta.shape, vec![1000, 1000]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    match format_of(path)? {
        #[cfg(feature = "file")]
        Format::Npy => ndstore_file::npy::load_dyn_with(path, options),
        #[cfg(feature = "file")]
        Format::Npz => {
            let mut reader = ndstore_file::npz::NpzReader::open(path)?;
            let first = reader.names().first().cloned().ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "the archive holds no arrays").with_path(path)
            })?;
            reader.load_dyn_with(&first, options)
        }
        #[cfg(feature = "text")]
        Format::Csv | Format::Txt => {
            ndstore_text::load_dyn_with(path, &text_options(path), options)
        }
        #[cfg(feature = "hdf5")]
        // Dataset `data`, or the only one; libhdf5 parses the file in an isolated process.
        Format::Hdf5 => {
            ndstore_hdf5::load_default(path, &ndstore_hdf5::ReadOptions::new().load(*options))
                .map(|(_, meta, array)| (meta, array))
        }
        #[cfg(feature = "zarr")]
        Format::Zarr => ndstore_zarr::ZarrBackend.load_with(path, options),
        #[allow(unreachable_patterns)]
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            "the backend for this extension is not enabled",
        )
        .with_path(path)),
    }
}

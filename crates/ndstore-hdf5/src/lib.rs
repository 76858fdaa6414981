//! ndstore's `hdf5` backend: arrays as HDF5 datasets through the system libhdf5, with durable
//! sync (libhdf5 never fsyncs: `sync` is H5Fflush plus fsync) and atomic whole-file saves.
//!
//! - [`load_dyn`], [`load_with`], [`load_as`], [`read_meta`], [`read_layout`], [`list`],
//!   [`read_slice`]: files someone else may have written, parsed by libhdf5 in an **isolated
//!   reader process** (see below); [`load_default`] loads `data` or a file's only dataset.
//! - [`trusted`]: the same functions with libhdf5 in this process, for files you trust.
//! - [`save_dyn`], [`save_with`] and [`H5Options`]: whole-file atomic saves, contiguous or
//!   chunked with gzip, shuffle and Fletcher-32; datasets by path (`/group/name`, groups
//!   created as needed).
//! - [`add_dataset`]: many arrays per file, each added (or replaced) atomically.
//! - [`H5InPlace`]: a dataset open for in-place updates, with flush, sync and close, and
//!   hyperslab reads and writes.
//! - [`H5Writer`]: a resizable, chunked dataset that grows along axis 0 as rows are appended;
//!   in SWMR mode ([`WriterOptions::swmr`]), [`SwmrReader`]s and h5py in other processes follow
//!   it while it grows.
//! - [`Hdf5Backend`]: the backend the conformance harness drives, reported as `hdf5`.
//!
//! # Files you did not write
//!
//! libhdf5 is not hardened against damaged or hostile files: one flipped bit in a file's heap
//! made it crash with SIGSEGV, another made it loop forever, a 1.4 KB file can declare 16 GiB of
//! data. So every reading function at the crate's root parses the file in a child process forked
//! for that call, under an address-space limit and a timeout, and a crash, a hang or a runaway
//! allocation there is an [`ErrorKind::ReaderCrashed`](ndstore_core::ErrorKind::ReaderCrashed)
//! naming the file and the object, never a signal in the caller. Errors libhdf5 reports come
//! back as `Format`, `Corrupt`, `Truncated` and the like. The data does not come back through
//! the pipe: a contiguous dataset stored as the array's bytes is read by the caller from its own
//! descriptor, anything else through shared memory (a memfd). [`ReadOptions`] sets the limits:
//!
//! | limit | default |
//! |---|---|
//! | the array's bytes ([`LoadOptions::memory_limit`](ndstore_core::LoadOptions)) | none beyond what the file holds |
//! | data the file does not hold (fill values of unallocated datasets) | [`DEFAULT_UNBACKED_LIMIT`], 1 GiB, unless a memory limit is set |
//! | how far chunked data may expand over its stored bytes | [`MAX_FILTER_RATIO`], 1040 |
//! | the reader's time | 60 s before data, then 1 s per 16 MiB |
//! | the reader's address space | its size at the fork + 1 GiB + the data it reads |
//! | listing depth | [`DEFAULT_MAX_DEPTH`], 64 groups |
//!
//! A load opens the file once; the reader opens that same file through `/proc/self/fd` (or,
//! when its name was replaced meanwhile, from its bytes read through that descriptor), so a
//! rename of the path during the load cannot mix two versions. Links are never followed out of
//! the file (external links, external storage and virtual datasets are refused by name), and
//! listings visit each object once, however its links loop. lzf (h5py's `compression="lzf"`) is
//! read by a decoder of ndstore's own.
//!
//! Writers, in-place handles, [`add_dataset`]'s edit of its copy and SWMR readers run libhdf5 in
//! this process: they are for files you trust. [`H5InPlace::open`] and [`add_dataset`] first
//! have the isolated reader open the file, so one that crashes libhdf5 there is refused.
//!
//! dtypes are stored as h5py stores them: bool as the enum {FALSE, TRUE}, complex numbers as
//! the compound {r, i}, f16 as IEEE half, in little- or big-endian order. HDF5 stores C order; a
//! Fortran-ordered array is stored by its logical values with `{"order": "F"}` in the dataset's
//! `ndstore` attribute, and loads back Fortran-ordered.
//!
//! # Example
//!
//! ```
//! use ndarray::array;
//! use ndstore_core::{DynArray, SaveOptions};
//!
//! # fn main() -> ndstore_core::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ndstore-hdf5-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("a.h5");
//! let a = DynArray::from(array![[1.0f64, 2.0], [3.0, 4.0]].into_dyn());
//! ndstore_hdf5::save_dyn(&path, "/results/a", &a, &SaveOptions::default())?; // atomic + fsync
//! let (meta, b) = ndstore_hdf5::load_dyn(&path, "/results/a")?;
//! assert_eq!(meta.shape, vec![2, 2]);
//! assert!(a.bit_eq(&b));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

// Every fallible public function says how it fails (issue 16).
#![warn(clippy::missing_errors_doc)]

mod backend;
mod h5;
mod inplace;
mod isolated;
mod lzf;
mod read;
mod slice;
mod swmr;
mod sys;
mod tree;
pub mod trusted;
mod worker;
mod writer;

pub use backend::Hdf5Backend;
pub use h5::{DEFAULT_DATASET, H5Options, META_ATTR, add_dataset, save_dyn, save_with};
pub use inplace::H5InPlace;
pub use isolated::{
    Layout, ReadOptions, list, list_from, list_with, load_as, load_default, load_dyn, load_with,
    read_layout, read_meta, read_slice, read_slice_with,
};
pub use read::{DEFAULT_UNBACKED_LIMIT, MAX_FILTER_RATIO};
pub use swmr::SwmrReader;
pub use tree::{DEFAULT_MAX_DEPTH, Entry, Object};
pub use writer::{H5Writer, WriterOptions};

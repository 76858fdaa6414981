//! ndstore's `hdf5` backend: arrays as HDF5 datasets through the system libhdf5, with durable
//! sync (libhdf5 never fsyncs: `sync` is H5Fflush plus fsync) and atomic whole-file saves.
//!
//! - [`save_dyn`], [`load_dyn`], [`load_as`], [`read_meta`], [`list`]: files and datasets by
//!   path (`data.h5` + `/group/name`, groups created as needed).
//! - [`add_dataset`]: many arrays per file, each added (or replaced) atomically.
//! - [`save_with`] and [`H5Options`]: chunked datasets with gzip, shuffle and Fletcher-32.
//! - [`H5InPlace`]: a dataset open for in-place updates, with flush, sync and close, and
//!   hyperslab reads and writes; [`read_slice`] reads a box of a dataset without the rest.
//! - [`H5Writer`]: a resizable, chunked dataset that grows along axis 0 as rows are appended;
//!   in SWMR mode ([`WriterOptions::swmr`]), [`SwmrReader`]s and h5py in other processes follow
//!   it while it grows.
//! - [`Hdf5Backend`]: the backend the conformance harness drives, reported as `hdf5`.
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
    ReadOptions, list, list_with, load_as, load_default, load_dyn, load_with, read_meta,
    read_slice, read_slice_with,
};
pub use read::{DEFAULT_UNBACKED_LIMIT, MAX_FILTER_RATIO};
pub use swmr::SwmrReader;
pub use tree::{DEFAULT_MAX_DEPTH, Entry, Object};
pub use writer::{H5Writer, WriterOptions};

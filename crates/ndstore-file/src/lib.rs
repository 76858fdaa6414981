//! ndstore's `file` backend: `.npy`, `.npz` and raw binary arrays through plain file handles,
//! saved atomically and durably by default.
//!
//! - [`npy`]: whole `.npy` files by path (atomic, synced) or through any `Read`/`Write`.
//! - [`NpyWriter`]: appends rows along axis 0, with flush, sync and commit.
//! - [`npz`]: archives of named arrays, stored or deflated.
//! - [`raw`]: element bytes only, like numpy's `tofile` and `fromfile`.
//! - [`NpyBackend`]: the backend the conformance harness drives, reported as `file`.
//!
//! # Example
//!
//! ```
//! use ndarray::array;
//! use ndstore_file::npy;
//!
//! # fn main() -> ndstore_core::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ndstore-file-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("a.npy");
//! let a = array![[1.0f64, 2.0], [3.0, 4.0]];
//! npy::save(&path, &a)?; // atomic and durable: complete on disk when it returns
//! let b: ndarray::Array2<f64> = npy::load(&path)?;
//! assert_eq!(a, b);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! Saving to a `Write` you own ([`npy::write_to`]) leaves durability to you: flush the writer and
//! `sync_all` the file yourself.

#![warn(clippy::missing_errors_doc)]

mod backend;
use ndstore_core::__private::npy_header as header;
pub mod npy;
pub mod npz;
pub mod raw;
mod writer;

pub use backend::NpyBackend;
pub use writer::NpyWriter;

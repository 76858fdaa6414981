//! ndstore's `text` backend: CSV and delimited text that round-trips exactly, stays readable by
//! `np.loadtxt`, and restores dtype, shape and order from a metadata comment line.
//!
//! - [`save`] and [`load`]/[`load_dyn`]: whole arrays, atomic and synced by default.
//! - [`TextWriter`]: appends rows with flush, sync and commit.
//! - [`TextReader`]: reads rows in blocks, in bounded memory.
//! - [`TextOptions`]: numpy's `savetxt`/`loadtxt` options (delimiter, comments, header, footer,
//!   number format, `skiprows`, `usecols`, `max_rows`, BOM, CRLF).
//!
//! Numbers are written as the shortest text that reads back as the same value, so every value
//! round-trips bit for bit — except a NaN's payload and sign, which text cannot carry: every
//! NaN reads back as the quiet NaN. The backend's capabilities declare this (`bit_exact: false`).
//!
//! # Example
//!
//! ```
//! use ndarray::array;
//! use ndstore_core::SaveOptions;
//! use ndstore_text::TextOptions;
//!
//! # fn main() -> ndstore_core::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ndstore-text-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("a.csv");
//! let a = array![[0.1f32, -0.0, f32::INFINITY], [1e-40, 2.5, 3.0]];
//! ndstore_text::save(&path, &a, &TextOptions::default(), &SaveOptions::default())?;
//! // # ndstore: {"dtype":"<f4","shape":[2,3],"order":"C"}
//! // 0.1,-0.0,inf
//! // 1e-40,2.5,3.0
//! let b: ndarray::Array2<f32> = ndstore_text::load(&path, &TextOptions::default())?;
//! assert_eq!(a.map(|v| v.to_bits()), b.map(|v| v.to_bits()));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

#![warn(clippy::missing_errors_doc)]

mod backend;
mod load;
pub mod meta;
mod options;
mod read;
mod value;
mod write;

pub use backend::TextBackend;
pub use load::{load, load_dyn, load_dyn_with, read_meta};
pub use options::{BoolFormat, Delimiter, FloatFormat, Newline, TextOptions};
pub use read::TextReader;
pub use value::TextValue;
pub use write::{TextWriter, save, write_to};

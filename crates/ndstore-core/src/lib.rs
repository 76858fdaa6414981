//! The core of ndstore: dtypes, array metadata, errors, the durability vocabulary, the
//! atomic-replace primitive and the traits every storage backend implements.
//!
//! Backends (`ndstore-file`, `ndstore-mmap`, ...) build on this crate; most users depend on the
//! `ndstore` facade instead.
//!
//! - [`DType`], [`Order`], [`ArrayMeta`]: what an array is, without its data.
//! - [`Element`] and [`DynArray`]: typed and runtime-typed arrays.
//! - [`Error`] and [`ErrorKind`]: every failure, with the file and the place.
//! - [`Durable`], [`Close`], [`Commit`], [`SaveOptions`]: flush, sync, close, commit.
//! - [`OutputFile`]: the one way ndstore writes a file — atomic replace by default.
//! - [`Backend`], [`ArrayWriter`], [`Capabilities`]: what the conformance harness drives.
//!
//! # Example
//!
//! Saving bytes through the atomic-replace primitive: the target appears complete, with its
//! old permissions, or not at all.
//!
//! ```
//! use std::io::Write;
//! use ndstore_core::{OutputFile, SaveOptions};
//!
//! # fn main() -> ndstore_core::Result<()> {
//! let dir = std::env::temp_dir().join(format!("ndstore-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let target = dir.join("hello.bin");
//! let mut out = OutputFile::create(&target, &SaveOptions::default())?;
//! out.file()?.write_all(b"hello").unwrap();
//! out.finish()?; // fsync, rename over the target, fsync the directory
//! assert_eq!(std::fs::read(&target).unwrap(), b"hello");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

pub mod array;
pub mod atomic;
pub mod backend;
pub mod bulk;
pub mod capabilities;
pub mod codec;
pub mod dtype;
pub mod durability;
pub mod element;
pub mod error;
pub mod load;
pub mod meta;
pub mod npy_header;
pub mod os;
pub mod release;
pub mod stream;
pub mod writeback;

pub use array::DynArray;
pub use atomic::{DurableFile, Lock, OutputFile, list_temps, lock, remove_stale_temps, write_file};
pub use backend::{ArrayWriter, Backend, InPlaceArray};
pub use capabilities::{Capabilities, CrashGuarantee};
pub use dtype::{ByteOrder, DType, DTypeKind, Order};
pub use durability::{Close, Commit, Durability, Durable, Replace, SaveOptions};
pub use element::Element;
pub use error::{Error, ErrorKind, Location, Result};
pub use load::LoadOptions;
pub use meta::ArrayMeta;
pub use stream::{StreamFormat, StreamWriter, check_rows};

pub use half;
pub use ndarray;
pub use num_complex;

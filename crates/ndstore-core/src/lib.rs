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

#![warn(clippy::missing_errors_doc)]

mod array;
mod atomic;
mod backend;
mod bulk;
mod capabilities;
mod codec;
mod dtype;
mod durability;
mod element;
mod error;
mod load;
mod meta;
mod npy_header;
mod os;
mod release;
mod stream;
mod writeback;

pub use array::DynArray;
pub use atomic::{
    DurableFile, Lock, OutputFile, list_temps, lock, remove_stale_temps, remove_stale_temps_in,
    write_file,
};
pub use backend::{ArrayWriter, Backend, InPlaceArray};
pub use capabilities::{Capabilities, CrashGuarantee};
pub use dtype::{ByteOrder, DType, DTypeKind, Order};
pub use durability::{Close, Commit, Durability, Durable, Replace, SaveOptions};
pub use element::Element;
pub use error::{Detail, Error, ErrorKind, Location, Result};
pub use load::LoadOptions;
pub use meta::ArrayMeta;

/// What ndstore's own crates (the backends, the conformance harness, the benchmarks and the
/// fuzz targets) share and users do not need: the data path, the system calls, the `.npy`
/// header, the streaming writer's shell. Not public API: anything here may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    /// Runtime-typed array helpers.
    pub mod array {
        pub use crate::array::*;
    }
    /// The atomic-replace primitive's pieces.
    pub mod atomic {
        pub use crate::atomic::*;
    }
    /// Page faults and reads spread over threads.
    pub mod bulk {
        pub use crate::bulk::*;
    }
    /// Element bytes in and out of arrays.
    pub mod codec {
        pub use crate::codec::*;
    }
    /// Fallible allocation and opening for loads.
    pub mod load {
        pub use crate::load::*;
    }
    /// Checked size arithmetic.
    pub mod meta {
        pub use crate::meta::*;
    }
    /// The `.npy` header, shared by the `file` and `mmap` backends.
    pub mod npy_header {
        pub use crate::npy_header::*;
    }
    /// The system calls the standard library does not wrap.
    pub mod os {
        pub use crate::os::*;
    }
    /// Replaced files closed on a background thread.
    pub mod release {
        pub use crate::release::*;
    }
    /// The shell every streaming writer shares.
    pub mod stream {
        pub use crate::stream::*;
    }
    /// Eager write-back of synced saves.
    pub mod writeback {
        pub use crate::writeback::*;
    }
}

pub use half;
pub use ndarray;
pub use num_complex;

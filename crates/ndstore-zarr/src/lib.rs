//! Zarr v3 arrays on a local directory, written through ndstore's durable path: every chunk
//! and shard file is written atomically (a temporary beside it, fsynced, renamed), the
//! directories that changed are fsynced at `sync` and `commit`, and a whole-array save
//! replaces the old array in one `renameat2(RENAME_EXCHANGE)`.
//!
//! With the `s3` feature, arrays also live in object storage ([`ObjectTarget`]: S3 from
//! `s3://bucket/prefix`, or object_store's `InMemory`). There, *sync* means every chunk PUT so
//! far was acknowledged (a PUT is atomic per object and durable once acknowledged), and
//! *commit* means `zarr.json` written last with a conditional PUT: create-if-absent for a new
//! array, if-the-ETag-matches (the one read at open) for an existing one, so of two committers
//! one wins and the other gets [`ErrorKind::Locked`](ndstore_core::ErrorKind::Locked); before
//! that, a writer claims the array's lease (an object under the prefix, claimed with a
//! conditional PUT before the first chunk), so a second writer is refused before it writes. A
//! new
//! array appears whole or not at all; overwriting an existing array is atomic per chunk only
//! (the layout stays the one zarr-python reads, with no manifest to swap). [`ZarrObjectBackend`]
//! is this through the core traits (the conformance matrix's `zarr-s3` row).
//!
//! - [`meta`]: `zarr.json` for arrays and groups.
//! - [`codec`]: ndstore's own codec pipeline (`transpose`, `bytes`, `sharding_indexed`,
//!   `gzip`, `zstd`, `crc32c`).

#![warn(clippy::missing_errors_doc)]

mod array;
mod backend;
pub mod codec;
mod grid;
#[cfg(feature = "s3")]
mod lease;
pub mod meta;
#[cfg(feature = "s3")]
mod object;
mod save;
mod store;
mod sys;
mod writer;

pub use array::{ZarrArray, read_node};
pub use backend::{ZarrBackend, default_chunk_shape};
pub use save::save_with;
pub use store::LocalStore;
pub use writer::ZarrWriter;
#[cfg(feature = "s3")]
pub use {
    array::read_object_node,
    backend::ZarrObjectBackend,
    lease::LeaseState,
    object::{Listing, ObjectTarget},
    object_store,
    save::save_object,
};

//! Zarr v3 arrays on a local directory, written through ndstore's durable path: every chunk
//! and shard file is written atomically (a temporary beside it, fsynced, renamed), the
//! directories that changed are fsynced at `sync` and `commit`, and a whole-array save
//! replaces the old array in one `renameat2(RENAME_EXCHANGE)`.
//!
//! - [`meta`]: `zarr.json` for arrays and groups.
//! - [`codec`]: ndstore's own codec pipeline (`transpose`, `bytes`, `sharding_indexed`,
//!   `gzip`, `zstd`, `crc32c`).

#![warn(clippy::missing_errors_doc)]

mod array;
mod backend;
pub mod codec;
mod grid;
pub mod meta;
mod save;
mod store;
mod sys;
mod writer;

pub use array::{ZarrArray, read_node};
pub use backend::{ZarrBackend, default_chunk_shape};
pub use save::save_with;
pub use store::LocalStore;
pub use writer::ZarrWriter;

//! ndstore's `mmap` backend: `.npy` and raw arrays mapped into memory in numpy's modes — `r`,
//! `r+`, `w+` and `c` — with typed ndarray views and honest flush/sync.
//!
//! - [`MappedArray::open_npy`] is `np.load(path, mmap_mode=...)`; [`MappedArray::open_raw`] is
//!   `np.memmap(path, dtype, mode, offset, shape, order)`.
//! - [`MappedArray::create_npy`] is `np.lib.format.open_memmap(path, mode="w+")`, except that
//!   the file appears at the target only complete, on commit (atomic by default).
//! - [`MappedArray::view`] and [`MappedArray::view_mut`] are zero-copy `ArrayView`s.
//! - numpy's `memmap.flush()` is ndstore's [`Durable::sync`](ndstore_core::Durable::sync):
//!   `msync(MS_SYNC)` plus `fsync`. ndstore's `flush` only starts write-back.
//!
//! Mapping is `unsafe`: another process that truncates a mapped file makes access fault with
//! SIGBUS, and one that rewrites it changes memory under shared references. The constructors
//! are the named unsafe entry points; each map holds an advisory lock (shared for `r`/`c`,
//! exclusive for `r+` and created maps), so cooperating ndstore handles are refused with
//! [`ErrorKind::Locked`](ndstore_core::ErrorKind::Locked) instead.
//!
//! A program that ignores the locks and truncates a mapped file kills the mapping process: the
//! next access to a lost page raises SIGBUS, and ndstore installs no handler for it (no safe
//! recovery exists once a view points at a page that is gone). `tests/sigbus.rs` shows it in a
//! child process. Map only files that cooperating programs share.
//!
//! # Example
//!
//! ```
//! use ndstore_core::{ArrayMeta, Commit, DType, DTypeKind, Durable, Order, SaveOptions};
//! use ndstore_mmap::{MappedArray, Mode};
//!
//! # fn main() -> ndstore_core::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ndstore-mmap-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("m.npy");
//! let meta = ArrayMeta::new(DType::native(DTypeKind::F32), vec![4, 3], Order::C);
//! // SAFETY: no other program touches this file while it is mapped.
//! let mut map = unsafe { MappedArray::create_npy(&path, &meta, &SaveOptions::default())? };
//! map.view_mut::<f32>()?.fill(1.5);
//! map.commit()?; // msync + fsync, rename into place, directory fsync
//!
//! // SAFETY: as above.
//! let mut map = unsafe { MappedArray::open_npy(&path, Mode::ReadWrite)? };
//! map.view_mut::<f32>()?[[0, 0]] = 7.0;
//! map.sync()?; // numpy's memmap.flush()
//! assert_eq!(map.view::<f32>()?.sum(), 7.0 + 11.0 * 1.5);
//! # drop(map);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

#![warn(clippy::missing_errors_doc)]

mod backend;
mod map;

pub use backend::MmapBackend;
pub use map::{MappedArray, Mode};

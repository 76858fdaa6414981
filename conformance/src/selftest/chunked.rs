//! The self-tests' chunked store, for CK's per-chunk judgement: an array saved as a directory
//! of fixed-size chunk files and a metadata file, the way an object store holds a Zarr array
//! (no rename of the whole, each chunk replaced atomically on its own). Done right, chunks
//! go first and the metadata last, so a new array appears whole or not at all and a replaced
//! one holds each chunk of one version: the per-chunk guarantee. Its flaws put the metadata
//! first, or claim whole-array atomicity that the chunk-by-chunk replacement cannot give.
//!
//! CK kills processes, it does not cut power, so chunks are renamed into place without an
//! fsync (a 64 MiB save is 512 chunks); the metadata is written synced.

use std::path::{Path, PathBuf};

use ndstore_core::__private::npy_header;
use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DynArray, Error, ErrorKind, OutputFile, Result, SaveOptions,
    with_dyn_array,
};

/// Elements per chunk (1-d arrays; an n-d array is chunked by its C-order elements).
pub const CHUNK_ELEMENTS: usize = 16 << 10;

/// The metadata file in the array's directory: an `.npy` header.
const META: &str = "meta";

fn chunk_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("c{k}"))
}

/// Saves `array` at the directory `dir`: each chunk atomically, the metadata last, or first
/// when `metadata_first` (broken on purpose).
pub fn save(dir: &Path, array: &DynArray, metadata_first: bool) -> Result<()> {
    let meta = ArrayMeta::new(
        DType::native(array.kind()),
        array.shape().to_vec(),
        ndstore_core::Order::C,
    );
    let mut data = Vec::new();
    with_dyn_array!(array, |a| ndstore_core::__private::codec::write_elements(
        &a.view(),
        ndstore_core::Order::C,
        ByteOrder::native(),
        &mut |b| {
            data.extend_from_slice(b);
            Ok(())
        }
    ))
    .map_err(|e| Error::io("encoding the data", e).with_path(dir))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the array's directory", e).with_path(dir))?;
    let write_meta = || put(&dir.join(META), &npy_header::encode(&meta), true);
    if metadata_first {
        write_meta()?;
    }
    let chunk_len = CHUNK_ELEMENTS * array.kind().itemsize();
    for (k, chunk) in data.chunks(chunk_len.max(1)).enumerate() {
        let mut padded = chunk.to_vec();
        padded.resize(chunk_len, 0);
        put(&chunk_path(dir, k), &padded, false)?;
    }
    if !metadata_first {
        write_meta()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (synced or only flushed).
fn put(path: &Path, bytes: &[u8], synced: bool) -> Result<()> {
    let options = if synced {
        SaveOptions::default()
    } else {
        SaveOptions::default().flushed()
    };
    let mut out = OutputFile::create(path, &options)?;
    std::io::Write::write_all(out.file()?, bytes)
        .map_err(|e| Error::io("write failed", e).with_path(path))?;
    out.finish()
}

/// The metadata of the array at `dir`.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] without a metadata file; its parse errors.
pub fn read_meta(dir: &Path) -> Result<(ArrayMeta, u64)> {
    let path = dir.join(META);
    let mut file = std::fs::File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::NotFound, "no array here").with_path(dir)
        } else {
            Error::io("cannot open", e).with_path(&path)
        }
    })?;
    let header = npy_header::read(&mut file, npy_header::DEFAULT_MAX_HEADER_LEN)
        .map_err(|e| e.with_path(&path))?;
    Ok((header.meta, header.data_offset))
}

/// The C-order native bytes of the array at `dir`: every chunk the metadata's shape needs, a
/// missing one read as zeros (the fill value).
///
/// # Errors
///
/// The errors of [`read_meta`]; a chunk file of the wrong length; I/O errors.
pub fn load_bytes(dir: &Path) -> Result<(ArrayMeta, Vec<u8>)> {
    let (meta, _) = read_meta(dir)?;
    let len = meta.byte_len().map_err(|e| e.with_path(dir))?;
    let itemsize = meta.dtype.kind.itemsize();
    let chunk_len = CHUNK_ELEMENTS * itemsize;
    let mut data = Vec::with_capacity(len);
    let mut k = 0;
    while data.len() < len {
        let path = chunk_path(dir, k);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == chunk_len => {
                let take = chunk_len.min(len - data.len());
                data.extend_from_slice(&bytes[..take]);
            }
            Ok(bytes) => {
                return Err(Error::new(
                    ErrorKind::Format,
                    format!("the chunk holds {} bytes, not {chunk_len}", bytes.len()),
                )
                .with_path(&path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                data.resize((data.len() + chunk_len).min(len), 0);
            }
            Err(e) => return Err(Error::io("cannot read the chunk", e).with_path(&path)),
        }
        k += 1;
    }
    Ok((meta, data))
}

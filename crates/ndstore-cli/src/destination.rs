//! The destination policy of `convert` and `cp`: an existing destination is replaced only when
//! it is an array of the format being written (its header or metadata readable as such, judged
//! at a symbolic link's target), or an empty file; anything else is refused in one line that
//! names it and says how to proceed, so a mistyped destination never replaces a document
//! through a link, as `cp(1)` would.
//!
//! `--force` lets a file destination replace a regular file that is not such an array. A Zarr
//! destination is a directory tree: one that is not a Zarr array (a file, a plain directory, a
//! group) is never replaced, forced or not.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use ndstore::file::npy;
use ndstore::file::npz::NpzReader;
use ndstore::text::TextReader;
use ndstore::{Error, ErrorKind, Result};

use crate::convert::ToFormat;
use crate::source::{Kind, text_options};

/// The HDF5 format signature, at the start of the superblock.
const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Refuses to replace `dst` (as spelled) unless what lies there, links followed, is missing,
/// empty, an array of format `to`, or `force` allows replacing a regular file.
///
/// # Errors
///
/// `InvalidInput` naming `dst` (and a link's target) for a destination it may not replace;
/// `PermissionDenied` for a link the protected-symlinks rule refuses to follow.
pub fn check_replaceable(dst: &Path, to: ToFormat, force: bool) -> Result<()> {
    let target = ndstore_core::__private::atomic::follow_links(dst)?;
    // What cannot be inspected is left to the writer, which reports it in its own words.
    let Ok(meta) = fs::metadata(&target) else {
        return Ok(());
    };
    if to == ToFormat::Zarr {
        let what = match zarr_node_type(&target).as_deref() {
            _ if !meta.is_dir() => "not a Zarr array",
            Some("array") => return Ok(()),
            Some("group") => "a Zarr group (write an array into it as GROUP/NAME.zarr)",
            _ => "a directory that is not a Zarr array",
        };
        return Err(refusal(dst, &target, what, "remove it first"));
    }
    // A directory, device or pipe is refused by the writers themselves.
    if !meta.is_file() || meta.len() == 0 || force || is_array_of(to, &target) {
        return Ok(());
    }
    let what = format!("not {}", article(to));
    Err(refusal(
        dst,
        &target,
        &what,
        "remove it, or pass --force to replace it",
    ))
}

/// The refusal of `dst` (reaching `target` through links) because it is `what`.
fn refusal(dst: &Path, target: &Path, what: &str, how: &str) -> Error {
    let through = if target == dst {
        String::new()
    } else {
        // A link beside a bare name resolves to `./NAME`: shown as the user would spell it.
        let shown = target.strip_prefix(".").unwrap_or(target);
        format!(" (a link to {})", shown.display())
    };
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "the destination exists{through} and is {what}; ndstore replaces only an array of the format it writes: {how}"
        ),
    )
    .with_path(dst)
}

/// The format `to` with its article, as the refusal names it.
fn article(to: ToFormat) -> &'static str {
    match to {
        ToFormat::Npy => "a .npy file",
        ToFormat::Npz => "an .npz archive",
        ToFormat::Csv => "a CSV array",
        ToFormat::Txt => "a text array",
        ToFormat::Tsv => "a TSV array",
        ToFormat::Hdf5 => "an HDF5 file",
        ToFormat::Zarr => "a Zarr array",
    }
}

/// Whether the regular file at `path` is an array of format `to`: a `.npy` header, a zip
/// archive's directory, text whose `# ndstore:` line or first block of rows parses, the HDF5
/// signature where a superblock may start.
fn is_array_of(to: ToFormat, path: &Path) -> bool {
    match to {
        ToFormat::Npy => npy::read_meta(path).is_ok(),
        ToFormat::Npz => NpzReader::open_lenient(path).is_ok(),
        ToFormat::Csv => is_text_array(path, Kind::Csv),
        ToFormat::Txt => is_text_array(path, Kind::Txt),
        ToFormat::Tsv => is_text_array(path, Kind::Tsv),
        ToFormat::Hdf5 => has_hdf5_signature(path),
        ToFormat::Zarr => false,
    }
}

/// Whether the text file at `path` holds numbers in rows: its `# ndstore:` line, or its first
/// block of lines (at most about 8 MiB) read as real or complex numbers.
fn is_text_array(path: &Path, kind: Kind) -> bool {
    let options = text_options(kind);
    let open = || TextReader::open(path, &options);
    let Ok(mut reader) = open() else {
        return false;
    };
    if reader.meta_line().is_some() {
        return true;
    }
    if reader.next_block::<f64>().is_ok() {
        return true;
    }
    open().is_ok_and(|mut reader| {
        reader
            .next_block::<ndstore::num_complex::Complex<f64>>()
            .is_ok()
    })
}

/// Whether the HDF5 signature is at the start of the file or at one of the places a user
/// block may move the superblock to (512 bytes, then each power of two).
fn has_hdf5_signature(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = File::open(path) else {
        return false;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut at = 0u64;
    while at.saturating_add(8) <= len {
        let mut signature = [0u8; 8];
        if file.read_exact_at(&mut signature, at).is_ok() && &signature == HDF5_SIGNATURE {
            return true;
        }
        at = if at == 0 { 512 } else { at.saturating_mul(2) };
    }
    false
}

/// The `node_type` (`array`, `group`) of the `zarr.json` in the directory `dir`, at most
/// 16 MiB of it read; none when it has no readable one.
fn zarr_node_type(dir: &Path) -> Option<String> {
    let file = File::open(dir.join(ndstore::zarr::meta::METADATA_FILE)).ok()?;
    let mut text = Vec::new();
    file.take(16 << 20).read_to_end(&mut text).ok()?;
    let doc = serde_json::from_slice::<serde_json::Value>(&text).ok()?;
    doc.get("node_type")?.as_str().map(str::to_owned)
}

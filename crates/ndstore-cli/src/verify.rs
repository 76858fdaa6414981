//! `ndstore verify`: reads every array of each file, which checks what the format can check
//! (an `.npz` member's zip CRC-32, an HDF5 dataset's Fletcher-32 when it has the filter, the
//! counts of a text file's `# ndstore:` line, every size against the file, a Zarr chunk's and
//! shard index's crc32c), and reports the first damage of each file with its place.

use std::path::Path;

use ndstore::file::npz::NpzReader;
use ndstore::hdf5::{self, Object};
use ndstore::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::source::{Kind, emit, text_options, with_path};
use crate::{Failure, Outcome};

/// What one file's check found.
enum Verdict {
    /// Every array read back: how many, and their bytes.
    Clean { arrays: usize, bytes: u64 },
    /// The first damage found.
    Damaged(Error),
    /// The file could not be checked (missing, unreadable, an unknown format).
    Failed(Error),
}

/// Whether an error says the file is damaged rather than that it could not be read at all. An
/// I/O error is damage when it points into the file or says the bytes are invalid (a corrupt
/// deflate stream inside an `.npz` member comes back from the zip reader as an I/O error). So is
/// something unsupported at a place inside the file (an HDF5 filter this libhdf5 lacks, which
/// one flipped byte of a filter id also gives): what cannot be read cannot be called intact.
/// An unknown extension is a usage error.
fn is_damage(e: &Error) -> bool {
    match e.kind() {
        ErrorKind::Unsupported => e.location().is_some(),
        ErrorKind::Io => {
            e.location().is_some()
                || e.io_error().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                    )
                })
        }
        ErrorKind::NotFound => e.location().is_some(),
        ErrorKind::PermissionDenied
        | ErrorKind::InvalidInput
        | ErrorKind::Locked
        | ErrorKind::OutOfMemory => false,
        _ => true,
    }
}

fn bytes(meta: &ndstore::ArrayMeta) -> u64 {
    meta.byte_len().map_or(0, |b| b as u64)
}

/// Reads everything in the file, returning the count of arrays and their bytes.
fn read_all(path: &Path) -> Result<(usize, u64)> {
    let kind = Kind::of(path)?;
    match kind {
        Kind::Npy => {
            let (meta, _) = ndstore::file::npy::load_dyn(path)?;
            Ok((1, bytes(&meta)))
        }
        Kind::Csv | Kind::Txt => {
            let (meta, _) = ndstore::text::load_dyn(path, &text_options(kind))?;
            Ok((1, bytes(&meta)))
        }
        Kind::Npz => {
            let mut reader = NpzReader::open(path)?;
            let mut total = 0;
            let names = reader.names().to_vec();
            for name in &names {
                // Loading decompresses the member and checks its CRC-32.
                let (meta, _) = reader.load_dyn(name)?;
                total += bytes(&meta);
            }
            Ok((names.len(), total))
        }
        Kind::Hdf5 => {
            let mut count = 0;
            let mut total = 0;
            for entry in hdf5::list(path)? {
                match &entry.object {
                    // libhdf5 checks a dataset's Fletcher-32 as it reads it.
                    Object::Dataset(_) => {
                        let (meta, _) = hdf5::load_dyn(path, &entry.path)?;
                        count += 1;
                        total += bytes(&meta);
                    }
                    Object::Unreadable { error } => {
                        return Err(Error::new(
                            ErrorKind::Corrupt,
                            format!("the object's header cannot be read: {error}"),
                        )
                        .at(ndstore::Location::Object(entry.path.clone()))
                        .with_path(path));
                    }
                    _ => {}
                }
            }
            Ok((count, total))
        }
        // Every stored chunk through its codec chain: crc32c, shard indexes, sizes.
        Kind::Zarr => crate::zarr::verify(path),
    }
}

fn check(path: &Path) -> Verdict {
    match read_all(path) {
        Ok((arrays, bytes)) => Verdict::Clean { arrays, bytes },
        Err(e) if is_damage(&e) => Verdict::Damaged(with_path(e, path)),
        Err(e) => Verdict::Failed(with_path(e, path)),
    }
}

/// `ndstore verify PATH... [--json]`: exit 0 when every file is clean, 1 when one is damaged,
/// 2 when one could not be checked.
pub fn verify(paths: &[std::path::PathBuf], json: bool) -> Outcome {
    let mut worst = 0;
    let mut reports = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let (status, line, value) = match check(path) {
            Verdict::Clean { arrays, bytes } => (
                0,
                format!(
                    "{shown}: ok ({arrays} array{}, {bytes} bytes)",
                    if arrays == 1 { "" } else { "s" }
                ),
                json!({ "path": shown, "status": "ok", "arrays": arrays, "bytes": bytes }),
            ),
            Verdict::Damaged(e) => (
                1,
                format!("ndstore: {e}"),
                error_json(&shown, "damaged", &e),
            ),
            Verdict::Failed(e) => (2, format!("ndstore: {e}"), error_json(&shown, "error", &e)),
        };
        worst = worst.max(status);
        if json {
            reports.push(value);
        } else if status == 0 {
            emit(&format!("{line}\n"))?;
        } else {
            eprintln!("{line}");
        }
    }
    if json {
        emit(&format!("{:#}\n", Value::Array(reports)))?;
    }
    match worst {
        0 => Ok(()),
        1 => Err(Failure::Damaged),
        _ => Err(Failure::Failed),
    }
}

fn error_json(path: &str, status: &str, e: &Error) -> Value {
    json!({
        "path": path,
        "status": status,
        "kind": format!("{:?}", e.kind()),
        "place": e.location().map(ToString::to_string),
        "message": e.to_string(),
    })
}

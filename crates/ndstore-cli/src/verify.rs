//! `ndstore verify`: reads every array of each file in bounded blocks, which checks what the format can check
//! (an `.npz` member's zip CRC-32, an HDF5 dataset's Fletcher-32 when it has the filter, the
//! counts of a text file's `# ndstore:` line, every size against the file, a Zarr chunk's and
//! shard index's crc32c), and reports the first damage of each file with its place.

use std::path::Path;

use ndstore::file::npz::NpzReader;
use ndstore::hdf5::{self, Object};
use ndstore::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::convert;
use crate::source::{Kind, Target, emit, text_options, with_path};
use crate::{Failure, Outcome};

/// What one file's check found.
enum Verdict {
    /// Every array read back: how many, and their bytes; and how many objects ndstore cannot
    /// read were left unchecked (an `.npz` member of an unsupported dtype or name).
    Clean {
        arrays: usize,
        bytes: u64,
        unchecked: usize,
    },
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

/// Reads everything in the file, returning the count of arrays and their bytes, and of the
/// objects left unchecked because ndstore cannot read them.
fn read_all(target: &Target) -> Result<(usize, u64, usize)> {
    let path = target.path.as_path();
    let only = target.object.as_deref();
    let kind = Kind::of(path)?;
    if kind == Kind::Npz {
        return read_npz(path, only);
    }
    crate::source::no_object(target, kind)?;
    read_arrays(path, only).map(|(arrays, bytes)| (arrays, bytes, 0))
}

/// The error for an object `only` that names nothing in the file at `path`: a usage error
/// (exit status 2), not damage.
fn no_such_object(path: &Path, only: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "no such object in the file (`ndstore ls` lists them)",
    )
    .at(ndstore::Location::Object(only.to_owned()))
    .with_path(path)
}

/// Every member of an `.npz` ndstore reads (or only the member `only`), through its CRC-32;
/// members of an unsupported dtype or with a name ndstore refuses are counted, as `ls` lists
/// them, not called damage.
fn read_npz(path: &Path, only: Option<&str>) -> Result<(usize, u64, usize)> {
    let mut reader = NpzReader::open_lenient(path)?;
    let mut total = 0;
    let mut arrays = 0;
    let mut unchecked = reader.unsupported().len();
    let mut names = reader.names().to_vec();
    if let Some(only) = only {
        let member = only.strip_suffix(".npy").unwrap_or(only);
        names.retain(|name| name == member);
        unchecked = 0;
        if names.is_empty() {
            // A member `ls` lists as one ndstore cannot read: said so, not "no such object"
            // (exit status 2: it could not be checked).
            let unsupported = reader.unsupported().iter().find(|(name, _)| {
                name == only || name.strip_suffix(".npy").unwrap_or(name) == member
            });
            return Err(match unsupported {
                Some((name, why)) => Error::new(
                    ErrorKind::Unsupported,
                    format!("the member '{name}' is one ndstore cannot read ({why}), so it was not checked"),
                )
                .with_path(path),
                None => no_such_object(path, only),
            });
        }
    }
    for name in names {
        // Reading decompresses the member and checks its CRC-32 at its end.
        let read = match convert::read_member_through(&mut reader, path, &name) {
            Ok(Some(meta)) => Ok(meta),
            Ok(None) => reader.load_dyn(&name).map(|(meta, _)| meta),
            Err(e) => Err(e),
        };
        match read {
            Ok(meta) => {
                arrays += 1;
                total += bytes(&meta);
            }
            Err(e) if e.kind() == ErrorKind::UnsupportedDType && only.is_some() => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("the member '{name}' is one ndstore cannot read ({}), so it was not checked", e.message()),
                )
                .with_path(path));
            }
            Err(e) if e.kind() == ErrorKind::UnsupportedDType => unchecked += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((arrays, total, unchecked))
}

/// Reads everything in a file of any other format (in an HDF5 file, only the dataset `only`
/// or the datasets under the group `only`; in a Zarr hierarchy, the node `only` and the nodes
/// under it): the count of arrays and their bytes.
fn read_arrays(path: &Path, only: Option<&str>) -> Result<(usize, u64)> {
    let kind = Kind::of(path)?;
    match kind {
        // Read through in blocks, as a conversion reads them; loaded whole only when they
        // cannot stream (0-d arrays, text without its `# ndstore:` line).
        Kind::Npy => {
            let meta = match convert::read_through(&whole(path))? {
                Some(meta) => meta,
                None => ndstore::file::npy::load_dyn(path)?.0,
            };
            Ok((1, bytes(&meta)))
        }
        Kind::Csv | Kind::Txt | Kind::Tsv => {
            let meta = match convert::read_through(&whole(path))? {
                Some(meta) => meta,
                None => ndstore::text::load_dyn(path, &text_options(kind))?.0,
            };
            Ok((1, bytes(&meta)))
        }
        Kind::Npz => read_npz(path, only).map(|(arrays, bytes, _)| (arrays, bytes)),
        Kind::Hdf5 => {
            let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
            let mut count = 0;
            let mut total = 0;
            let within = |name: &str| match only.map(|o| o.trim_end_matches('/')) {
                None | Some("") => true,
                Some(only) => {
                    let only = format!("/{}", only.trim_start_matches('/'));
                    name == only
                        || name
                            .strip_prefix(only.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                }
            };
            let mut named = only.is_none();
            let entries = hdf5::list(path)?;
            let names: std::collections::HashSet<&str> =
                entries.iter().map(|entry| entry.path.as_str()).collect();
            for entry in entries.iter().filter(|entry| within(&entry.path)) {
                named = true;
                match &entry.object {
                    // libhdf5 checks a dataset's Fletcher-32 as it reads it.
                    Object::Dataset(meta) => {
                        let target = Target {
                            path: path.to_path_buf(),
                            object: Some(entry.path.clone()),
                        };
                        let streamed = if streams(path, &entry.path, bytes(meta), file_len)? {
                            convert::read_through(&target)?
                        } else {
                            None
                        };
                        let meta = match streamed {
                            Some(meta) => meta,
                            None => hdf5::load_dyn(path, &entry.path)?.0,
                        };
                        count += 1;
                        total += bytes(&meta);
                    }
                    // The object named is a link (soft, external, or a second name of an
                    // object listed elsewhere): read through it as `cat` does, so damage
                    // behind it is damage and a link to nothing is an error, never "ok".
                    // And a second name, inside the group named, of a dataset listed outside
                    // it first: it is one of the group's datasets.
                    Object::SoftLink { .. }
                    | Object::ExternalLink { .. }
                    | Object::Alias { .. }
                    | Object::UserLink
                        if only.is_some_and(|o| {
                            o.trim_end_matches('/').trim_start_matches('/')
                                == entry.path.trim_start_matches('/')
                        }) || matches!(&entry.object, Object::Alias { of } if only.is_some() && !within(of)) =>
                    {
                        // Links that lead nowhere ndstore reads are usage errors (exit 2), as
                        // `cat` gives them, not damage.
                        let unreadable = match &entry.object {
                            Object::ExternalLink { file, .. } => Some(format!(
                                "an external link into {file}: ndstore does not follow links out of the file it was given (verify the file the link names)"
                            )),
                            Object::UserLink => Some(
                                "a link of a user-defined class, which ndstore does not follow"
                                    .to_owned(),
                            ),
                            Object::SoftLink { target } if !names.contains(target.as_str()) => {
                                Some(format!(
                                    "a soft link to {target}, which is no object of the file"
                                ))
                            }
                            _ => None,
                        };
                        if let Some(why) = unreadable {
                            return Err(Error::new(ErrorKind::InvalidInput, why)
                                .at(ndstore::Location::Object(entry.path.clone()))
                                .with_path(path));
                        }
                        let target = Target {
                            path: path.to_path_buf(),
                            object: Some(entry.path.clone()),
                        };
                        let meta = match convert::read_through(&target)? {
                            Some(meta) => meta,
                            None => hdf5::load_dyn(path, &entry.path)?.0,
                        };
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
            match (named, only) {
                (false, Some(only)) => Err(no_such_object(path, only)),
                _ => Ok((count, total)),
            }
        }
        // Every stored chunk through its codec chain: crc32c, shard indexes, sizes.
        Kind::Zarr => crate::zarr::verify(&Target {
            path: path.to_path_buf(),
            object: only.map(str::to_owned),
        }),
    }
}

/// Whether dataset `name` of the HDF5 file at `path` (`file_len` bytes) is read through in
/// blocks, in bounded memory, rather than loaded whole. A dataset far larger than the file is
/// mostly unallocated chunks (h5py's 2^40 elements in a few KiB): reading its fill value block
/// by block would take days, so it goes to the whole load, which refuses it at once. One whose
/// stored chunks can expand to its size (a compressible array, gzip's 2 GiB of zeros in 9.5
/// MB) is data the file holds, and streams however large it is.
fn streams(path: &Path, name: &str, bytes: u64, file_len: u64) -> Result<bool> {
    if bytes <= file_len.saturating_mul(64).saturating_add(1 << 30) {
        return Ok(true);
    }
    Ok(hdf5::read_layout(path, name)?.holds_data)
}

/// The whole file at `path`, named without an object.
fn whole(path: &Path) -> Target {
    Target {
        path: path.to_path_buf(),
        object: None,
    }
}

fn check(target: &Target) -> Verdict {
    let path = target.path.as_path();
    match read_all(target) {
        Ok((arrays, bytes, unchecked)) => Verdict::Clean {
            arrays,
            bytes,
            unchecked,
        },
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
        let (status, line, value) = match check(&Target::parse(&shown)) {
            Verdict::Clean {
                arrays,
                bytes,
                unchecked,
            } => (
                0,
                format!(
                    "{shown}: ok ({arrays} array{}, {bytes} bytes{})",
                    if arrays == 1 { "" } else { "s" },
                    match unchecked {
                        0 => String::new(),
                        1 => "; 1 member ndstore cannot read was not checked".to_owned(),
                        n => format!("; {n} members ndstore cannot read were not checked"),
                    }
                ),
                json!({ "path": shown, "status": "ok", "arrays": arrays, "bytes": bytes, "unchecked": unchecked }),
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
            eprintln!("{}", crate::printable(&crate::in_cli_words(&line)));
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

/// A report of an error as JSON: the path, `status` (`damaged` or `error`), the error's kind,
/// its place in the file and the whole message.
pub fn error_json(path: &str, status: &str, e: &Error) -> Value {
    json!({
        "path": path,
        "status": status,
        "kind": format!("{:?}", e.kind()),
        "place": e.location().map(ToString::to_string),
        "message": crate::in_cli_words(&e.to_string()),
    })
}

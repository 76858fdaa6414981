//! What a command line names: `PATH` or `PATH::OBJECT`, the file's format, and the arrays in it.
//!
//! The object is split off at the last `::`, so a later `s3://bucket/x.zarr::group/a` keeps
//! its scheme's `://` in the path; a format is chosen by the path's extension (a directory
//! holding `zarr.json` is Zarr whatever its name), and a URL will become one more [`Kind`].

use std::io::Write;
use std::path::{Path, PathBuf};

use ndstore::{ArrayMeta, DynArray, Error, ErrorKind, Result};
use ndstore::{file::npz::NpzReader, hdf5, text};

/// A file and, optionally, an object inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The file.
    pub path: PathBuf,
    /// The `.npz` member, HDF5 dataset path or Zarr node after `::`.
    pub object: Option<String>,
}

impl Target {
    /// Splits `PATH::OBJECT` at its last `::`; an empty object is no object.
    pub fn parse(spelled: &str) -> Target {
        match spelled.rsplit_once("::") {
            Some((path, object)) if !path.is_empty() => Target {
                path: PathBuf::from(path),
                object: (!object.is_empty()).then(|| object.to_owned()),
            },
            _ => Target {
                path: PathBuf::from(spelled),
                object: None,
            },
        }
    }
}

/// The formats the command line reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `.npy`
    Npy,
    /// `.npz`
    Npz,
    /// `.csv`
    Csv,
    /// `.txt`, whitespace-separated
    Txt,
    /// `.h5`, `.hdf5`
    Hdf5,
    /// A Zarr v3 array or group: a `.zarr` directory, or any directory holding `zarr.json`
    Zarr,
}

impl Kind {
    /// The format a path's extension names; a directory holding `zarr.json` is Zarr whatever
    /// its name.
    ///
    /// # Errors
    ///
    /// `Unsupported` for an unknown extension, or one the command line has no reader for.
    pub fn of(path: &Path) -> Result<Kind> {
        let format = match ndstore::format_of(path) {
            Ok(format) => format,
            Err(_) if path.join(ndstore::zarr::meta::METADATA_FILE).is_file() => {
                return Ok(Kind::Zarr);
            }
            Err(e) => return Err(e),
        };
        Ok(match format {
            ndstore::Format::Npy => Kind::Npy,
            ndstore::Format::Npz => Kind::Npz,
            ndstore::Format::Csv => Kind::Csv,
            ndstore::Format::Txt => Kind::Txt,
            ndstore::Format::Hdf5 => Kind::Hdf5,
            ndstore::Format::Zarr => Kind::Zarr,
            _ => {
                return Err(
                    Error::new(ErrorKind::Unsupported, "no reader for this format").with_path(path),
                );
            }
        })
    }

    /// The name printed by `info`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Npy => "npy",
            Kind::Npz => "npz",
            Kind::Csv => "csv",
            Kind::Txt => "txt",
            Kind::Hdf5 => "hdf5",
            Kind::Zarr => "zarr",
        }
    }

    /// Whether the format holds several named arrays.
    pub fn is_container(self) -> bool {
        matches!(self, Kind::Npz | Kind::Hdf5 | Kind::Zarr)
    }
}

/// The text options of a path: comma-separated `.csv`, whitespace-separated `.txt`.
pub fn text_options(kind: Kind) -> text::TextOptions {
    match kind {
        Kind::Txt => text::TextOptions::new().delimiter(text::Delimiter::Whitespace),
        _ => text::TextOptions::new(),
    }
}

fn no_object(target: &Target, kind: Kind) -> Result<()> {
    match &target.object {
        Some(object) if !kind.is_container() => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a .{} file holds one array; it has no object '{object}'",
                kind.name()
            ),
        )
        .with_path(&target.path)),
        _ => Ok(()),
    }
}

/// Arrays by name (none for a single-array file) with their metadata.
pub type Metas = Vec<(Option<String>, ArrayMeta)>;

/// The arrays a target names, with their metadata: the one array of a single-array file, the
/// named object, or every array of a container (an HDF5 file's unsupported objects are left
/// out).
pub fn metas(target: &Target) -> Result<(Kind, Metas)> {
    let path = &target.path;
    let kind = Kind::of(path)?;
    no_object(target, kind)?;
    let metas = match kind {
        Kind::Npy => vec![(None, ndstore::file::npy::read_meta(path)?)],
        Kind::Csv | Kind::Txt => vec![(None, text::read_meta(path, &text_options(kind))?)],
        Kind::Npz => {
            let mut reader = NpzReader::open(path)?;
            let names = match &target.object {
                Some(object) => vec![object.clone()],
                None => reader.names().to_vec(),
            };
            let mut metas = Vec::with_capacity(names.len());
            for name in names {
                let meta = reader.read_meta(&name)?;
                metas.push((Some(name), meta));
            }
            metas
        }
        Kind::Hdf5 => match &target.object {
            Some(object) => vec![(Some(object.clone()), hdf5::read_meta(path, object)?)],
            None => hdf5::list(path)?
                .into_iter()
                .filter_map(|entry| {
                    let meta = entry.meta()?.clone();
                    Some((Some(entry.path), meta))
                })
                .collect(),
        },
        Kind::Zarr => crate::zarr::walk(target)?
            .into_iter()
            .filter_map(|entry| match entry.found {
                crate::zarr::Found::Array(meta) => {
                    Some((Some(entry.name), crate::zarr::array_meta(&meta)))
                }
                _ => None,
            })
            .collect(),
    };
    Ok((kind, metas))
}

/// Loads the array a target names: the file's array, the named object, or the first array of
/// an `.npz` and an HDF5 file's `data` (or only) dataset.
pub fn load(target: &Target) -> Result<(ArrayMeta, DynArray)> {
    let path = &target.path;
    let kind = Kind::of(path)?;
    no_object(target, kind)?;
    match (kind, &target.object) {
        (Kind::Npz, Some(object)) => NpzReader::open(path)?.load_dyn(object),
        (Kind::Hdf5, Some(object)) => hdf5::load_dyn(path, object),
        (Kind::Csv | Kind::Txt, _) => text::load_dyn(path, &text_options(kind)),
        (Kind::Zarr, _) => {
            let array = crate::zarr::open(target)?;
            let values = array.read_all(&ndstore::LoadOptions::default())?;
            Ok((array.array_meta(), values))
        }
        _ => ndstore::load(path),
    }
}

/// Writes `text` to standard output, an error (a closed pipe, say) becoming ndstore's `Io`.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}

/// The error with `path` attached when it names no file yet.
pub fn with_path(e: Error, path: &Path) -> Error {
    if e.path().is_some() {
        e
    } else {
        e.with_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::Target;
    use std::path::PathBuf;

    fn target(path: &str, object: Option<&str>) -> Target {
        Target {
            path: PathBuf::from(path),
            object: object.map(str::to_owned),
        }
    }

    #[test]
    fn objects_split_at_the_last_double_colon() {
        assert_eq!(Target::parse("a.npy"), target("a.npy", None));
        assert_eq!(Target::parse("a.npz::w"), target("a.npz", Some("w")));
        assert_eq!(Target::parse("a.npz::"), target("a.npz", None));
        assert_eq!(
            Target::parse("run.h5::/g/x"),
            target("run.h5", Some("/g/x"))
        );
        assert_eq!(
            Target::parse("a::b/c.h5::/d"),
            target("a::b/c.h5", Some("/d"))
        );
        // A URL keeps its scheme, for the Zarr and s3:// backends to come.
        assert_eq!(
            Target::parse("s3://bucket/x.zarr::group/a"),
            target("s3://bucket/x.zarr", Some("group/a"))
        );
        assert_eq!(Target::parse("::x"), target("::x", None));
    }
}

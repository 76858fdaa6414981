//! What a command line names: `PATH` or `PATH::OBJECT`, the file's format, and the arrays in it.
//!
//! The object is split off where the file's name ends (see [`Target::parse`]), so
//! `s3://bucket/x.zarr::group/a` keeps its scheme's `://` in the path; a format is chosen by
//! the path's extension (a directory holding `zarr.json` is Zarr whatever its name, and so is
//! every `s3://` URL: object storage holds Zarr arrays and groups only).

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
    /// Splits `PATH::OBJECT` where the file ends: a name that exists on disk as spelled is a
    /// file (so `a::b.npy` needs no trailing `::`); otherwise the object starts after the
    /// first `::` whose left side exists (so an HDF5 object may hold `::` itself, as
    /// `run.h5::weird::name`); for a file that does not exist yet, after the first `::` whose
    /// left side has a known extension; and otherwise the whole spelling is a file's name (a
    /// destination `out/x::y.npy`). An empty object is no object, and `::` never starts the
    /// path.
    pub fn parse(spelled: &str) -> Target {
        // An `s3://` URL names its node after its first `::` (nothing exists locally to ask).
        if spelled.starts_with(crate::s3::SCHEME) {
            let (path, object) = spelled.split_once("::").unwrap_or((spelled, ""));
            let object = object.strip_suffix("::").unwrap_or(object);
            return Target {
                path: PathBuf::from(path),
                object: (!object.is_empty()).then(|| object.to_owned()),
            };
        }
        Self::parse_with(spelled, |path| std::fs::symlink_metadata(path).is_ok())
    }

    /// [`Target::parse`] with `exists` in place of a look at the file system, for tests.
    fn parse_with(spelled: &str, exists: impl Fn(&Path) -> bool) -> Target {
        let whole = || Target {
            path: PathBuf::from(spelled),
            object: None,
        };
        if exists(Path::new(spelled)) {
            return whole();
        }
        let splits: Vec<(&str, &str)> = spelled
            .match_indices("::")
            .map(|(at, _)| (&spelled[..at], &spelled[at + 2..]))
            .filter(|(path, _)| !path.is_empty())
            .collect();
        let chosen = splits
            .iter()
            .find(|(path, _)| exists(Path::new(path)))
            .or_else(|| {
                splits
                    .iter()
                    .find(|(path, _)| ndstore::format_of(Path::new(path)).is_ok())
            });
        match chosen {
            // A trailing `::` ends the object too (`run.h5::/g/weird::name::`).
            Some((path, object)) => {
                let object = object.strip_suffix("::").unwrap_or(object);
                Target {
                    path: PathBuf::from(path),
                    object: (!object.is_empty()).then(|| object.to_owned()),
                }
            }
            None => whole(),
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
    /// `.tsv`, tab-separated
    Tsv,
    /// `.h5`, `.hdf5`
    Hdf5,
    /// A Zarr v3 array or group: a `.zarr` directory, or any directory holding `zarr.json`
    Zarr,
}

impl Kind {
    /// The format a path's extension names; a directory holding `zarr.json` is Zarr whatever
    /// its name, and so is an `s3://` URL.
    ///
    /// # Errors
    ///
    /// `Unsupported` for an unknown extension, or one the command line has no reader for;
    /// for an `s3://` URL whose extension names another format (`s3://b/a.npy`).
    pub fn of(path: &Path) -> Result<Kind> {
        if crate::s3::is_s3(path) {
            return match ndstore::format_of(path) {
                Ok(ndstore::Format::Zarr) | Err(_) => Ok(Kind::Zarr),
                Ok(_) => Err(Error::new(
                    ErrorKind::Unsupported,
                    "s3:// holds Zarr v3 arrays and groups only; name the array's prefix (as s3://bucket/a.zarr)",
                )
                .with_path(path)),
            };
        }
        // Tab-separated text is the command line's own spelling: the library's extensions do
        // not name it, and its text backend reads any one-byte delimiter.
        let ext = path.extension().and_then(|e| e.to_str());
        if ext.is_some_and(|e| e.eq_ignore_ascii_case("tsv")) {
            return Ok(Kind::Tsv);
        }
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
            Kind::Tsv => "tsv",
            Kind::Hdf5 => "hdf5",
            Kind::Zarr => "zarr",
        }
    }

    /// Whether the format holds several named arrays.
    pub fn is_container(self) -> bool {
        matches!(self, Kind::Npz | Kind::Hdf5 | Kind::Zarr)
    }
}

/// The text options of a path: comma-separated `.csv`, whitespace-separated `.txt`,
/// tab-separated `.tsv`.
pub fn text_options(kind: Kind) -> text::TextOptions {
    match kind {
        Kind::Txt => text::TextOptions::new().delimiter(text::Delimiter::Whitespace),
        Kind::Tsv => text::TextOptions::new().delimiter(text::Delimiter::Byte(b'\t')),
        _ => text::TextOptions::new(),
    }
}

/// Refuses an object named in a file of a single-array format.
///
/// # Errors
///
/// `InvalidInput` naming the file and the object.
pub fn no_object(target: &Target, kind: Kind) -> Result<()> {
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
        Kind::Csv | Kind::Txt | Kind::Tsv => {
            vec![(None, text::read_meta(path, &text_options(kind))?)]
        }
        Kind::Npz => {
            let mut reader = NpzReader::open_lenient(path)?;
            match &target.object {
                Some(object) => vec![(Some(object.clone()), reader.read_meta(object)?)],
                // Unsupported members are left out, as an HDF5 file's are; `ls` lists them.
                None => npz_members(&mut reader)?
                    .into_iter()
                    .filter_map(|(name, meta)| Some((Some(name), meta.ok()?)))
                    .collect(),
            }
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

/// Every member of an archive opened with [`NpzReader::open_lenient`], in archive order: its
/// array's metadata, or why it is not supported (an unsafe name, a dtype ndstore does not
/// read).
///
/// # Errors
///
/// A member whose header is damaged.
pub fn npz_members(
    reader: &mut NpzReader,
) -> Result<Vec<(String, std::result::Result<ArrayMeta, String>)>> {
    let mut members = Vec::new();
    for name in reader.names().to_vec() {
        match reader.read_meta(&name) {
            Ok(meta) => members.push((name, Ok(meta))),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::UnsupportedDType
                ) =>
            {
                members.push((name, Err(e.message().to_owned())));
            }
            Err(e) => return Err(e),
        }
    }
    for (raw, why) in reader.unsupported() {
        members.push((raw.clone(), Err(why.clone())));
    }
    Ok(members)
}

/// Loads the array a target names: the file's array, the named object, the only array of an
/// `.npz`, or an HDF5 file's `data` (or only) dataset.
///
/// # Errors
///
/// `InvalidInput` naming the members for an `.npz` of several arrays named without one; the
/// errors of the format's load.
pub fn load(target: &Target) -> Result<(ArrayMeta, DynArray)> {
    let path = &target.path;
    let kind = Kind::of(path)?;
    no_object(target, kind)?;
    match (kind, &target.object) {
        (Kind::Npz, Some(object)) => NpzReader::open_lenient(path)?.load_dyn(object),
        // An archive of several arrays names the one to read (the first would be a guess).
        (Kind::Npz, None) => {
            let mut reader = NpzReader::open_lenient(path)?;
            match reader.names() {
                [one] => {
                    let one = one.clone();
                    reader.load_dyn(&one)
                }
                names => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the archive holds {} arrays ({}); name one as PATH::MEMBER",
                        names.len(),
                        names.join(", ")
                    ),
                )
                .with_path(path)),
            }
        }
        (Kind::Hdf5, Some(object)) => hdf5::load_dyn(path, object),
        (Kind::Csv | Kind::Txt | Kind::Tsv, _) => text::load_dyn(path, &text_options(kind)),
        (Kind::Zarr, _) => {
            let array = crate::zarr::open(target)?;
            let values = array.read_all(&ndstore::LoadOptions::default())?;
            Ok((array.array_meta(), values))
        }
        _ => ndstore::load(path),
    }
}

/// The path of an HDF5 file's one dataset, `None` when it has none or several (or cannot be
/// listed: the caller's load then reports why).
pub fn sole_h5_dataset(path: &Path) -> Option<String> {
    let datasets: Vec<String> = hdf5::list(path)
        .ok()?
        .into_iter()
        .filter(|entry| entry.meta().is_some())
        .map(|entry| entry.path)
        .collect();
    match &datasets[..] {
        [one] => Some(one.clone()),
        _ => None,
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
    fn objects_split_where_the_file_ends() {
        // Nothing exists: the first `::` after a known extension splits.
        let none = |_: &std::path::Path| false;
        let parse = |s: &str| Target::parse_with(s, none);
        assert_eq!(parse("a.npy"), target("a.npy", None));
        assert_eq!(parse("a.npz::w"), target("a.npz", Some("w")));
        assert_eq!(parse("a.npz::"), target("a.npz", None));
        assert_eq!(parse("run.h5::/g/x"), target("run.h5", Some("/g/x")));
        assert_eq!(
            parse("run.h5::weird::name"),
            target("run.h5", Some("weird::name"))
        );
        assert_eq!(parse("a::b/c.h5::/d"), target("a::b/c.h5", Some("/d")));
        // A destination whose name holds `::` is a file's name.
        assert_eq!(parse("out/x::y.npy"), target("out/x::y.npy", None));
        // A URL keeps its scheme.
        assert_eq!(
            parse("s3://bucket/x.zarr::group/a"),
            target("s3://bucket/x.zarr", Some("group/a"))
        );
        // An s3:// URL names its node after its first `::`, whatever its extension.
        assert_eq!(
            Target::parse("s3://bucket/run::g/a::"),
            target("s3://bucket/run", Some("g/a"))
        );
        assert_eq!(
            Target::parse("s3://bucket/run"),
            target("s3://bucket/run", None)
        );
        assert_eq!(parse("::x"), target("::x", None));
    }

    #[test]
    fn an_existing_file_wins_over_extensions() {
        let only = |name: &'static str| move |p: &std::path::Path| p == std::path::Path::new(name);
        // `a::b.npy` exists: no trailing `::` needed.
        assert_eq!(
            Target::parse_with("a::b.npy", only("a::b.npy")),
            target("a::b.npy", None)
        );
        assert_eq!(
            Target::parse_with("a::b.npy::", only("a::b.npy")),
            target("a::b.npy", None)
        );
        // An HDF5 file without the usual extension, and an object holding `::`.
        assert_eq!(
            Target::parse_with("data::g::x", only("data")),
            target("data", Some("g::x"))
        );
        assert_eq!(
            Target::parse_with("d.zarr::grp", only("d.zarr")),
            target("d.zarr", Some("grp"))
        );
    }
}

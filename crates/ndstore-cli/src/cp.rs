//! `ndstore cp SRC DST`: copies an array, or every member of an `.npz`, in the source's format
//! (unless the destination's extension names another), atomically and durably through the
//! library's writers, with every checksum of the source checked on the way.
//!
//! Sources and destinations are spelled as [`Endpoint`]s: local paths (Zarr arrays among them:
//! a copy of a Zarr array keeps its chunks, codecs, fill value, attributes and dimension
//! names) and `s3://bucket/prefix` URLs, Zarr arrays in object storage (a new array appears
//! whole at its commit or not at all). Other URL schemes are refused.

use std::path::{Path, PathBuf};

use ndstore::hdf5;
use ndstore::{Error, ErrorKind, Result};

use crate::Outcome;
use crate::convert::{self, Flags, Layout, ToFormat};
use crate::source::{Kind, Target};

/// Where a command reads or writes: a local file (and object), a Zarr node in object storage,
/// or a URL of a scheme the command line does not speak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A local path, with an optional `::OBJECT`.
    Local(Target),
    /// `s3://bucket/prefix`, with an optional `::NODE`.
    S3(Target),
    /// A URL of another scheme (`gs://`, `http://`).
    Unsupported {
        /// As the user spelled it.
        spelled: String,
        /// Why it is refused, in words.
        what: String,
    },
}

/// The scheme of a URL spelled `SCHEME://...`, if `spelled` is one.
fn scheme(spelled: &str) -> Option<&str> {
    let (scheme, _) = spelled.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(scheme)
}

/// Whether `spelled` is a URL (`s3://bucket/x.zarr`) rather than a local path.
pub fn is_url(spelled: &str) -> bool {
    scheme(spelled).is_some()
}

impl Endpoint {
    /// Recognises a URL by its `SCHEME://`; anything else is a local path.
    pub fn parse(spelled: &str) -> Endpoint {
        match scheme(spelled) {
            Some("s3") => Endpoint::S3(Target::parse(spelled)),
            Some(scheme) => Endpoint::Unsupported {
                spelled: spelled.to_owned(),
                what: format!(
                    "{scheme}:// URLs are not supported (ndstore reads and writes local paths and s3://bucket/prefix)"
                ),
            },
            None => Endpoint::Local(Target::parse(spelled)),
        }
    }

    /// The target: a local path, or an `s3://` URL.
    ///
    /// # Errors
    ///
    /// `Unsupported` naming a URL of another scheme.
    pub fn target(self) -> Result<Target> {
        match self {
            Endpoint::Local(target) | Endpoint::S3(target) => Ok(target),
            Endpoint::Unsupported { spelled, what } => {
                Err(Error::new(ErrorKind::Unsupported, what).with_path(spelled))
            }
        }
    }
}

/// `ndstore cp SRC DST`.
pub fn cp(src: &str, dst: &str, layout: &Layout, flags: Flags) -> Outcome {
    let src = Endpoint::parse(src).target()?;
    let dst = Endpoint::parse(dst).target()?;
    // A node below an s3:// prefix is one more level of the prefix.
    let dst = match (&dst.object, crate::s3::is_s3(&dst.path)) {
        (Some(_), true) => Target {
            path: crate::s3::node_url(&dst.path, dst.object.as_deref()),
            object: None,
        },
        _ => dst,
    };
    if let Some(object) = &dst.object {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("a destination names a file; '::{object}' is not supported yet"),
        )
        .with_path(&dst.path)
        .into());
    }
    let src_kind = Kind::of(&src.path)?;
    let dst_path = destination(&src, src_kind, dst.path);
    // The destination's extension decides when it names a format; otherwise the source's does.
    let to = ToFormat::from_kind(Kind::of(&dst_path).unwrap_or(src_kind));
    layout.check(to, &dst_path)?;
    convert::check_destination(&src, &dst_path, to, flags.force)?;
    if src.object.is_none() && src_kind == Kind::Npz && to == ToFormat::Npz {
        return Ok(convert::copy_members(&src.path, &dst_path, layout)
            .map_err(|e| convert::user_path(e, &dst_path))?);
    }
    if src.object.is_none() && src_kind == Kind::Hdf5 {
        refuse_several_datasets(&src.path)?;
    }
    if src_kind == Kind::Zarr {
        refuse_a_group(&src)?;
    }
    convert::write(&src, &dst_path, to, layout, flags.quiet)
}

/// The file a copy writes: `dst`, or inside `dst` when it is a directory (but no Zarr node,
/// which the copy replaces), named as the source file (or, for an object, as the object's last
/// component with the source file's extension).
fn destination(src: &Target, kind: Kind, dst: PathBuf) -> PathBuf {
    if crate::s3::is_s3(&dst) {
        return s3_destination(src, dst);
    }
    if !dst.is_dir() || matches!(Kind::of(&dst), Ok(Kind::Zarr)) {
        return dst;
    }
    let name = match &src.object {
        Some(object) => {
            let last = object.rsplit('/').find(|s| !s.is_empty()).unwrap_or("data");
            let extension = src.path.extension().map_or_else(
                || kind.name().to_owned(),
                |e| e.to_string_lossy().into_owned(),
            );
            PathBuf::from(format!("{last}.{extension}"))
        }
        None => src
            .path
            .file_name()
            .map_or_else(|| PathBuf::from("copy"), PathBuf::from),
    };
    dst.join(name)
}

/// The array an `s3://` copy writes: `dst`, or, when `dst` ends with `/` (a "directory" of
/// object storage), an array below it named as the source file's stem (or the object's last
/// component) with `.zarr`: `cp run.h5::/loss s3://b/runs/` writes `s3://b/runs/loss.zarr`.
fn s3_destination(src: &Target, dst: PathBuf) -> PathBuf {
    let spelled = dst.display().to_string();
    if !spelled.ends_with('/') || spelled.trim_end_matches('/').ends_with(':') {
        return dst;
    }
    let stem = match &src.object {
        Some(object) => object
            .rsplit('/')
            .find(|s| !s.is_empty())
            .map(str::to_owned),
        None => src
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned()),
    }
    .unwrap_or_else(|| "copy".to_owned());
    PathBuf::from(format!("{spelled}{stem}.zarr"))
}

/// A whole HDF5 file is copied only when it holds one dataset: its groups, attributes and
/// links would not survive a copy of its arrays.
fn refuse_several_datasets(path: &Path) -> Result<()> {
    let datasets = hdf5::list(path)?
        .iter()
        .filter(|entry| entry.meta().is_some())
        .count();
    if datasets > 1 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the file holds {datasets} datasets; copying a whole HDF5 file is not supported yet, name one as PATH::OBJECT"
            ),
        )
        .with_path(path));
    }
    Ok(())
}

/// A Zarr copy is of one array: a group's hierarchy (its groups, attributes and arrays) is not
/// copied yet.
fn refuse_a_group(src: &Target) -> Result<()> {
    if matches!(
        crate::zarr::node_place(src)?.read_node()?,
        ndstore::zarr::meta::Node::Group(_)
    ) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the node is a group; copying a whole Zarr hierarchy is not supported yet, name an array as PATH::OBJECT",
        )
        .with_path(&src.path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn other_schemes_are_refused() {
        for spelled in ["gs://b/x.npy", "http://host/a.zarr", "file:///tmp/a.npy"] {
            let err = Endpoint::parse(spelled).target().unwrap_err();
            assert!(err.to_string().contains("are not supported"), "{err}");
            assert!(err.to_string().starts_with(spelled), "{err}");
        }
        for spelled in ["s3://bucket/prefix", "s3://b/x.zarr::g/a"] {
            assert!(
                matches!(Endpoint::parse(spelled), Endpoint::S3(_)),
                "{spelled}"
            );
        }
        for spelled in [
            "a.npy",
            "x.npz::a",
            "dir/b.h5::/g/x",
            "odd:/name.csv",
            "data/a.zarr",
            "A.ZARR::g",
        ] {
            assert!(
                matches!(Endpoint::parse(spelled), Endpoint::Local(_)),
                "{spelled}"
            );
        }
    }
}

//! `ndstore convert`: an array from one format into another, atomically and durably (the
//! destination appears complete or not at all, synced with its directory).
//!
//! A source streams in blocks of at most [`BUFFER_BYTES`] of rows (a `.npy` file in either
//! order, an `.npz` member, an HDF5 dataset through the isolated reader's hyperslab reads, text
//! with a `# ndstore:` line, a Zarr array a box of whole chunk rows at a time) into the
//! destination's streaming writer (`.npy`, text, HDF5, Zarr) or an `.npz` member, so memory
//! stays bounded whatever the array's size when its rows are at most [`MAX_ROW_BYTES`]. Other
//! sources (rows wider than that, text without the line, other Fortran-ordered arrays, 0-d
//! arrays) load whole, fallibly and within their format's own size checks.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use ndstore::file::npz::{MemberStream, NpzReader, NpzWriter};
use ndstore::file::{NpyWriter, npy, npz};
use ndstore::hdf5;
use ndstore::ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndstore::text::{TextReader, TextWriter};
use ndstore::zarr::codec::{Codec, CodecChain};
use ndstore::zarr::meta::ZarrMeta;
use ndstore::zarr::{ZarrArray, ZarrWriter};
use ndstore::{
    ArrayMeta, ArrayWriter, Commit, DType, DTypeKind, DynArray, Error, ErrorKind, Location, Order,
    Result, SaveOptions, half, num_complex::Complex,
};

use crate::source::{self, Kind, Target, text_options, with_path};
use crate::{Outcome, interrupt};

/// The most bytes of rows a streaming conversion holds at once.
pub const BUFFER_BYTES: usize = 8 << 20;

/// The largest row (one index of the first axis) a streaming conversion holds: a block is at
/// least one row, and the writers take whole rows, so an array with a wider row is loaded
/// whole instead (fallibly, within the load's memory limits) rather than streamed a row, its
/// decoded copy and the writer's at a time.
pub const MAX_ROW_BYTES: usize = 8 * BUFFER_BYTES;

/// The formats `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ToFormat {
    /// `.npy`
    Npy,
    /// `.npz` (one array, named as the source's object, an HDF5 file's only dataset, or `arr_0`)
    Npz,
    /// comma-separated text with a `# ndstore:` line
    Csv,
    /// whitespace-separated text with a `# ndstore:` line
    Txt,
    /// tab-separated text with a `# ndstore:` line
    Tsv,
    /// HDF5, dataset `data` (or the source's object path)
    Hdf5,
    /// a Zarr v3 array (a directory), in chunks of about 1 MiB unless `--chunks` says
    Zarr,
}

impl ToFormat {
    /// The format of a file of `kind`.
    pub fn from_kind(kind: Kind) -> ToFormat {
        match kind {
            Kind::Npy => ToFormat::Npy,
            Kind::Npz => ToFormat::Npz,
            Kind::Csv => ToFormat::Csv,
            Kind::Txt => ToFormat::Txt,
            Kind::Tsv => ToFormat::Tsv,
            Kind::Hdf5 => ToFormat::Hdf5,
            Kind::Zarr => ToFormat::Zarr,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ToFormat::Npy => ".npy file",
            ToFormat::Npz => ".npz archive",
            ToFormat::Csv => "CSV file",
            ToFormat::Txt => "text file",
            ToFormat::Tsv => "TSV file",
            ToFormat::Hdf5 => "HDF5 file",
            ToFormat::Zarr => "Zarr array",
        }
    }
}

/// A compression the destination is asked for (`--compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression filter.
    None,
    /// gzip (deflate), at a level from 0 to 9 when one is given.
    Gzip(Option<u8>),
    /// zstd, at a level from 1 to 22 when one is given (Zarr destinations only).
    Zstd(Option<u8>),
}

/// Parses `--compression`: `none`, `gzip`, `gzip:LEVEL` (0–9), `zstd` or `zstd:LEVEL` (1–22).
///
/// # Errors
///
/// A message clap prints as a usage error.
pub fn parse_compression(spelled: &str) -> std::result::Result<Compression, String> {
    match spelled.split_once(':') {
        None if spelled == "none" => Ok(Compression::None),
        None if spelled == "gzip" => Ok(Compression::Gzip(None)),
        None if spelled == "zstd" => Ok(Compression::Zstd(None)),
        Some(("gzip", level)) => match level.parse::<u8>() {
            Ok(level) if level <= 9 => Ok(Compression::Gzip(Some(level))),
            _ => Err(format!("gzip's level is 0 to 9, not '{level}'")),
        },
        Some(("zstd", level)) => match level.parse::<u8>() {
            Ok(level) if (1..=22).contains(&level) => Ok(Compression::Zstd(Some(level))),
            _ => Err(format!("zstd's level is 1 to 22, not '{level}'")),
        },
        _ => Err("expected none, gzip, gzip:LEVEL, zstd or zstd:LEVEL".to_owned()),
    }
}

/// A chunk shape as `--chunks` spells it (one value, so clap does not take it for a list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunks(pub Vec<usize>);

/// Parses `--chunks`: a positive length per axis, separated by commas.
///
/// # Errors
///
/// A message clap prints as a usage error.
pub fn parse_chunks(spelled: &str) -> std::result::Result<Chunks, String> {
    spelled
        .split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("a chunk's length is a positive integer, not '{n}'")),
        })
        .collect::<std::result::Result<Vec<usize>, String>>()
        .map(Chunks)
}

/// How the destination is laid out: HDF5 and Zarr chunks and compression, an `.npz` member's
/// deflate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `--chunks`: the chunk shape of an HDF5 dataset or a Zarr array.
    pub chunks: Option<Vec<usize>>,
    /// `--compression`.
    pub compression: Option<Compression>,
}

impl Layout {
    /// Refuses what a destination of format `to` cannot honour, instead of ignoring it: chunks
    /// anywhere but HDF5 and Zarr, compression in text and `.npy`, a gzip level in an `.npz`,
    /// zstd anywhere but Zarr.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the destination and the option (a usage error, exit 2).
    pub fn check(&self, to: ToFormat, dst: &Path) -> Result<()> {
        let refuse = |option: &str, why: String| {
            Err(Error::new(ErrorKind::InvalidInput, format!("{option}: {why}")).with_path(dst))
        };
        if self.chunks.is_some() && !matches!(to, ToFormat::Hdf5 | ToFormat::Zarr) {
            return refuse(
                "--chunks",
                format!(
                    "a {} has no chunks (HDF5 and Zarr destinations only)",
                    to.name()
                ),
            );
        }
        match (self.compression, to) {
            (None | Some(Compression::None), _)
            | (Some(Compression::Gzip(_)), ToFormat::Hdf5)
            | (Some(_), ToFormat::Zarr) => Ok(()),
            (Some(Compression::Zstd(_)), _) => refuse(
                "--compression",
                "zstd is for Zarr destinations only".to_owned(),
            ),
            (Some(Compression::Gzip(None)), ToFormat::Npz) => Ok(()),
            (Some(Compression::Gzip(Some(_))), ToFormat::Npz) => refuse(
                "--compression",
                "an .npz member is deflated at one level; give gzip without a level".to_owned(),
            ),
            (Some(Compression::Gzip(_)), _) => refuse(
                "--compression",
                format!(
                    "a {} cannot be compressed (HDF5, Zarr and .npz only)",
                    to.name()
                ),
            ),
        }
    }

    /// How an `.npz` destination's members are stored: deflated when gzip is asked for.
    pub fn npz(&self) -> npz::Compression {
        if matches!(self.compression, Some(Compression::Gzip(_))) {
            npz::Compression::Deflated
        } else {
            npz::Compression::Stored
        }
    }

    /// The HDF5 dataset's layout for an array of `shape`: the chunks asked for (none longer
    /// than the array, see [`check_chunks`]), gzip (level 4 unless given, as h5py's default)
    /// with the shuffle filter and Fletcher-32 checksums.
    fn h5(&self, shape: &[usize], dst: &Path) -> Result<hdf5::H5Options> {
        let mut options = hdf5::H5Options::new();
        if let Some(Compression::Gzip(level)) = self.compression {
            options = options.compressed(level.unwrap_or(4));
        }
        if let Some(chunks) = &self.chunks {
            check_chunks(chunks, shape, dst)?;
            options = options.chunk(chunks);
        }
        Ok(options)
    }
}

impl Layout {
    /// The metadata of a Zarr destination for an array of `dtype` and `shape`. Without
    /// `--chunks` or `--compression`, a Zarr source's metadata is kept whole (chunks, shards,
    /// codecs, fill value, attributes, dimension names); otherwise the chunks asked for (else
    /// the source's, else about 1 MiB) go through `bytes` and the compressor asked for (gzip
    /// at level 5 and zstd at level 3 unless given), keeping a Zarr source's fill value,
    /// attributes and dimension names.
    ///
    /// # Errors
    ///
    /// `Format` naming `dst` for chunks of another rank than the array's, `InvalidInput` for
    /// chunks longer than the array ([`check_chunks`]).
    pub fn zarr(
        &self,
        dtype: DType,
        shape: &[usize],
        like: Option<&ZarrMeta>,
        dst: &Path,
    ) -> Result<ZarrMeta> {
        let asked = self.chunks.is_some() || self.compression.is_some();
        if let (Some(like), false) = (like, asked) {
            let mut meta = like.clone();
            meta.shape = shape.to_vec();
            return Ok(meta);
        }
        let chunks = match (&self.chunks, like) {
            (Some(chunks), _) => {
                check_chunks(chunks, shape, dst)?;
                chunks.clone()
            }
            (None, Some(like)) => crate::zarr::chunk_shape(like).to_vec(),
            (None, None) => ndstore::zarr::default_chunk_shape(shape, dtype.itemsize()),
        };
        let mut codecs = vec![Codec::bytes_for(dtype)];
        match self.compression {
            Some(Compression::Gzip(level)) => codecs.push(Codec::Gzip(level.map_or(5, u32::from))),
            Some(Compression::Zstd(level)) => codecs.push(Codec::Zstd {
                level: level.map_or(3, i32::from),
                checksum: false,
            }),
            Some(Compression::None) | None => {}
        }
        let named = |e: Error| with_path(e, dst);
        let mut meta = ZarrMeta::new(dtype, shape, &chunks)
            .and_then(|meta| meta.with_codecs(CodecChain::new(codecs)))
            .map_err(named)?;
        if let Some(like) = like {
            meta.fill.clone_from(&like.fill);
            meta.attributes.clone_from(&like.attributes);
            meta.dimension_names.clone_from(&like.dimension_names);
        }
        Ok(meta)
    }
}

/// Refuses a chunk shape longer than the array along an axis (a length of 0 takes chunks of
/// 1), for HDF5 and Zarr destinations alike: libhdf5 refuses a chunk longer than a fixed-size
/// axis, and a Zarr chunk is stored and read whole, so a chunk of `2000,2000,100` over a
/// `(2, 3, 4)` array would cost 3.2 GB for 192 bytes. A rank that is not the array's is left
/// for the writer to refuse in its words.
///
/// # Errors
///
/// `InvalidInput` naming `dst` and both shapes.
pub fn check_chunks(chunks: &[usize], shape: &[usize], dst: &Path) -> Result<()> {
    let longer = chunks.len() == shape.len()
        && chunks
            .iter()
            .zip(shape)
            .any(|(&chunk, &len)| chunk > len.max(1));
    if longer {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--chunks: chunks {chunks:?} do not fit the array's shape {shape:?} (none longer than the array along its axis)"
            ),
        )
        .with_path(dst));
    }
    Ok(())
}

/// The Zarr metadata of a source that is a Zarr array, for a Zarr destination to keep.
/// The HDF5 destination's layout: what `--chunks` and `--compression` ask for, else an HDF5
/// source's own chunks and filters, else contiguous.
fn h5_layout(
    src: &Target,
    layout: &Layout,
    shape: &[usize],
    dst: &Path,
) -> Result<hdf5::H5Options> {
    if layout.chunks.is_none()
        && layout.compression.is_none()
        && let Some(like) = h5_source_layout(src)
    {
        return Ok(like);
    }
    layout.h5(shape, dst)
}

/// An HDF5 source dataset's chunks and filters (gzip at h5py's level 4, as libhdf5 does not
/// report the level; shuffle; Fletcher-32), for a destination laid out like it when neither
/// `--chunks` nor `--compression` is given; `None` for other sources or a contiguous one.
fn h5_source_layout(src: &Target) -> Option<hdf5::H5Options> {
    if Kind::of(&src.path).ok()? != Kind::Hdf5 {
        return None;
    }
    let name = match &src.object {
        Some(object) => object.clone(),
        None => only_h5_dataset(src)?,
    };
    let layout = hdf5::read_layout(&src.path, &name).ok()?;
    let mut options = hdf5::H5Options::new();
    options.chunk = Some(layout.chunks?);
    let has = |filter: &str| layout.filters.iter().any(|f| f == filter);
    options.deflate = has("deflate").then_some(4);
    options.shuffle = has("shuffle");
    options.fletcher32 = has("fletcher32");
    Some(options)
}

fn zarr_source(src: &Target) -> Option<ZarrMeta> {
    match Kind::of(&src.path) {
        Ok(Kind::Zarr) => crate::zarr::open(src).ok().map(|a| a.meta().clone()),
        _ => None,
    }
}

/// Refuses a destination that is the source file itself (the same file, through a link or
/// another spelling): the new file would replace what it is read from.
///
/// # Errors
///
/// `InvalidInput` naming the destination.
pub fn refuse_same_file(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(a), Ok(b)) = (std::fs::metadata(src), std::fs::metadata(dst))
        && a.dev() == b.dev()
        && a.ino() == b.ino()
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("is the source file {} itself", src.display()),
        )
        .with_path(dst));
    }
    Ok(())
}

/// Refuses a destination reached through `/dev` or `/proc` (`/dev/stdout`, `/proc/self/fd/1`,
/// or a link to them), as a device, pipe or socket is refused: such a name stands for a
/// descriptor of this process, and a rename onto what it resolves to would replace the file
/// the shell redirected the output to (a log, say) instead of writing into it.
///
/// # Errors
///
/// `InvalidInput` naming the destination, in the words of a non-regular target.
pub fn refuse_special_destination(dst: &Path) -> Result<()> {
    let refused = || {
        Err(Error::new(
            ErrorKind::InvalidInput,
            "the target is not a regular file (a device, pipe or socket)",
        )
        .with_path(dst))
    };
    let mut current = dst.to_path_buf();
    // As many links as the kernel follows.
    for _ in 0..40 {
        let parent = match current.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        // /dev/shm is shared memory, a place for files like any tmpfs.
        if let Ok(dir) = std::fs::canonicalize(&parent)
            && ((dir.starts_with("/dev") && !dir.starts_with("/dev/shm"))
                || dir.starts_with("/proc"))
        {
            return refused();
        }
        match std::fs::read_link(&current) {
            Ok(link) => current = parent.join(link),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Removes the temporaries that killed saves left in the directory `dst` is written in
/// (`.NAME.PID-….ndstore-tmp` files and directories of any target there whose writer is gone),
/// before a new one is made beside them. A writer holds a lock on its temporary for its whole
/// life, so those of live writers stay, in another PID namespace or on another NFS client too.
/// Best effort: a directory that cannot be listed is reported by the write that follows, in
/// its own words.
pub fn remove_stale_temps(dst: &Path) {
    // Ignored: what stops the cleanup stops the write after it with a clearer error.
    if let Ok(target) = ndstore_core::__private::atomic::follow_links(dst) {
        let _ = ndstore_core::remove_stale_temps_in(ndstore_core::__private::atomic::parent_dir(
            &target,
        ));
    }
}

/// The switches `convert` and `cp` share.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// `--force`: replace a destination file that is not an array of the format written.
    pub force: bool,
    /// `--quiet`: no progress bar.
    pub quiet: bool,
}

/// `ndstore convert SRC DST [--to FORMAT] [--chunks ...] [--compression ...] [--force]
/// [--quiet]`.
pub fn convert(
    src: &Target,
    dst: &Path,
    to: Option<ToFormat>,
    layout: &Layout,
    flags: Flags,
) -> Outcome {
    let to = match to {
        Some(to) => to,
        None => ToFormat::from_kind(Kind::of(dst)?),
    };
    layout.check(to, dst)?;
    check_destination(src, dst, to, flags.force)?;
    write(src, dst, to, layout, flags.quiet)
}

/// The destination `convert` writes: `dst` as given, an `s3://` URL's `::NODE` made one more
/// level of its prefix.
pub fn destination_path(dst: std::path::PathBuf) -> std::path::PathBuf {
    if !crate::s3::is_s3(&dst) {
        return dst;
    }
    let target = Target::parse(&dst.display().to_string());
    crate::s3::node_url(&target.path, target.object.as_deref())
}

/// The checks before anything is written to `dst` from `src` in format `to`. A local
/// destination: no device or pipe, not the source file itself, replaceable under
/// [`crate::destination::check_replaceable`]'s policy (`force` for `--force`), and the stale
/// temporaries beside it removed. An `s3://` destination: a Zarr array (object storage holds
/// nothing else), not the source array itself, and a prefix that is empty or holds an array
/// (see [`crate::s3::check_destination`]; `--force` does not change it, as a local Zarr
/// destination that is not an array is never replaced either).
///
/// # Errors
///
/// `InvalidInput` naming `dst`; the errors of looking at the destination.
pub fn check_destination(src: &Target, dst: &Path, to: ToFormat, force: bool) -> Result<()> {
    if !crate::s3::is_s3(dst) {
        refuse_special_destination(dst)?;
        refuse_same_file(&src.path, dst)?;
        crate::destination::check_replaceable(dst, to, force)?;
        remove_stale_temps(dst);
        return Ok(());
    }
    if to != ToFormat::Zarr {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "s3:// holds Zarr arrays only, not a {} (name the array's prefix, as s3://bucket/a.zarr)",
                to.name()
            ),
        )
        .with_path(dst));
    }
    let target = crate::s3::target(dst, None)?;
    if crate::s3::is_s3(&src.path)
        && let Ok(crate::zarr::Place::Object(source)) = crate::zarr::node_place(src)
        && source.name() == target.name()
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("is the source array {} itself", source.name().display()),
        )
        .with_path(dst));
    }
    crate::s3::check_destination(&target)
}

/// Writes the array `src` names to `dst` in format `to`, streamed when the source allows it,
/// atomically and durably; a progress bar on a terminal unless `quiet`. An error names `dst`
/// where the writer named its temporary.
pub fn write(src: &Target, dst: &Path, to: ToFormat, layout: &Layout, quiet: bool) -> Outcome {
    write_to(src, dst, to, layout, quiet).map_err(|failure| match failure {
        crate::Failure::Error(e) => crate::Failure::Error(user_path(e, dst)),
        other => other,
    })
}

/// `e` naming `dst` when it names a temporary of the write (a path with a component ending in
/// `.ndstore-tmp`, the writer's staging file or directory): the user never named that file.
pub fn user_path(e: Error, dst: &Path) -> Error {
    let temporary = e.path().is_some_and(|path| {
        path.components().any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|c| c.ends_with(ndstore_core::__private::atomic::TEMP_SUFFIX))
        })
    });
    if temporary { named(e, dst) } else { e }
}

fn write_to(src: &Target, dst: &Path, to: ToFormat, layout: &Layout, quiet: bool) -> Outcome {
    let show = !quiet && std::io::stderr().is_terminal();
    let array = if Kind::of(&src.path)? == Kind::Npz {
        let mut reader = NpzReader::open_lenient(&src.path)?;
        let name = match &src.object {
            Some(object) => object.clone(),
            None => only_member(&reader, &src.path)?,
        };
        if let Some(blocks) = Blocks::member(&src.path, reader.stream(&name)?)? {
            let sink = sink(to, dst, &blocks.meta, src, layout)?;
            return Ok(stream(blocks, sink, dst, show)?);
        }
        reader.load_dyn(&name)?.1
    } else if let Some(blocks) = Blocks::open(src)? {
        let sink = sink(to, dst, &blocks.meta, src, layout)?;
        return Ok(stream(blocks, sink, dst, show)?);
    } else {
        source::load(src)?.1
    };
    // A whole save cannot stop half-way (it is atomic either way): a signal is honoured before.
    interrupt::check(dst)?;
    let options = SaveOptions::default();
    match to {
        ToFormat::Npy => npy::save_dyn(dst, &array, &options)?,
        ToFormat::Npz => {
            npz::save_npz(dst, &[(&member_name(src), &array)], layout.npz(), &options)?;
        }
        ToFormat::Csv | ToFormat::Txt | ToFormat::Tsv => {
            ndstore::with_dyn_array!(&array, |a| ndstore::text::save(
                dst,
                a,
                &text_options(text_kind(to)),
                &options
            ))?;
        }
        ToFormat::Hdf5 => {
            hdf5::save_with(
                dst,
                &dataset_name(src),
                &array,
                &options,
                &h5_layout(src, layout, array.shape(), dst)?,
            )?;
        }
        ToFormat::Zarr => {
            let like = zarr_source(src);
            let dtype = like
                .as_ref()
                .map_or_else(|| DType::native(array.kind()), ZarrMeta::dtype);
            let meta = layout.zarr(dtype, array.shape(), like.as_ref(), dst)?;
            if crate::s3::is_s3(dst) {
                ndstore::zarr::save_object(&crate::s3::target(dst, None)?, &array, meta, &options)?;
            } else {
                ndstore::zarr::save_with(dst, &array, meta, &options)?;
            }
        }
    }
    Ok(())
}

/// The name of the one array of an `.npz` named without `::MEMBER`: an archive of several is
/// refused, as a whole HDF5 file of several datasets is, rather than copied in part.
///
/// # Errors
///
/// `Unsupported` naming the archive when it holds no array or more than one.
pub fn only_member(reader: &NpzReader, path: &Path) -> Result<String> {
    match (reader.names(), reader.unsupported()) {
        ([one], []) => Ok(one.clone()),
        (names, unsupported) => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the archive holds {} arrays; a copy into a single-array format takes one, name it as PATH::OBJECT",
                names.len() + unsupported.len()
            ),
        )
        .with_path(path)),
    }
}

/// Copies every member of the `.npz` at `src` into a new archive at `dst` published at commit,
/// each streamed in blocks of rows as a `::MEMBER` conversion streams it (a 0-d or
/// Fortran-ordered member is read whole), its CRC-32 checked at its end.
///
/// # Errors
///
/// The first error of reading a member or of writing the archive; the target is kept then.
pub fn copy_members(src: &Path, dst: &Path, layout: &Layout) -> Result<()> {
    let mut reader = NpzReader::open(src)?;
    // Without --compression, a copy keeps the source's compression.
    let compression = if layout.compression.is_none() && reader.any_deflated() {
        npz::Compression::Deflated
    } else {
        layout.npz()
    };
    let mut writer = NpzWriter::create(dst, &SaveOptions::default(), compression)?;
    for name in reader.names().to_vec() {
        interrupt::check(dst)?;
        let streamed = match Blocks::member(src, reader.stream(&name)?)? {
            Some(mut blocks) => {
                let meta = blocks.meta.clone();
                let mut buffer = Vec::new();
                writer.add_streamed(&name, &meta, &mut || {
                    interrupt::check(dst)?;
                    blocks.next(&mut buffer)
                })?;
                true
            }
            None => false,
        };
        if !streamed {
            let (_, array) = reader.load_dyn(&name)?;
            writer.add_dyn(&name, &array)?;
        }
    }
    interrupt::check(dst)?;
    writer.commit().map_err(|e| user_path(e, dst))
}

/// The text format `to` writes, whose delimiter [`text_options`] gives.
fn text_kind(to: ToFormat) -> Kind {
    match to {
        ToFormat::Csv => Kind::Csv,
        ToFormat::Tsv => Kind::Tsv,
        _ => Kind::Txt,
    }
}

/// The destination dataset of an HDF5 conversion: the source's object path, else the name of
/// an HDF5 source's only dataset (a copy of `run.h5` keeps `/x`), else `data`.
fn dataset_name(src: &Target) -> String {
    if let Some(object) = &src.object {
        return object.clone();
    }
    only_h5_dataset(src).unwrap_or_else(|| hdf5::DEFAULT_DATASET.to_owned())
}

/// The path of the one dataset of an HDF5 source named without an object.
fn only_h5_dataset(src: &Target) -> Option<String> {
    if src.object.is_some() || Kind::of(&src.path).ok()? != Kind::Hdf5 {
        return None;
    }
    source::sole_h5_dataset(&src.path)
}

/// The name of the one member of an `.npz` destination: the source's object (an `.npz`
/// member's name, an HDF5 dataset's or a Zarr array's path without its leading `/`), else an
/// HDF5 source's only dataset's, as an HDF5 destination keeps it, else `arr_0`, as `np.savez`
/// names an array given without a name.
fn member_name(src: &Target) -> String {
    src.object
        .clone()
        .or_else(|| only_h5_dataset(src))
        .map_or_else(
            || "arr_0".to_owned(),
            |o| o.trim_start_matches('/').to_owned(),
        )
}

/// Where streamed rows go.
enum Sink {
    /// A streaming writer (`.npy`, text, HDF5).
    Writer(Box<dyn ArrayWriter>),
    /// An `.npz` archive and the name of the member the rows fill.
    Npz(Box<NpzWriter>, String),
}

/// The destination's streaming writer, for rows shaped as `meta`'s after its first axis;
/// atomic and durable: the target appears complete at commit or not at all.
fn sink(to: ToFormat, dst: &Path, meta: &ArrayMeta, src: &Target, layout: &Layout) -> Result<Sink> {
    if to == ToFormat::Npz {
        let writer = NpzWriter::create(dst, &SaveOptions::default(), layout.npz())?;
        return Ok(Sink::Npz(Box::new(writer), member_name(src)));
    }
    writer(to, dst, meta, src, layout).map(Sink::Writer)
}

fn writer(
    to: ToFormat,
    dst: &Path,
    meta: &ArrayMeta,
    src: &Target,
    layout: &Layout,
) -> Result<Box<dyn ArrayWriter>> {
    let row_shape = &meta.shape[1..];
    let save = SaveOptions::default();
    Ok(match to {
        ToFormat::Npy => Box::new(NpyWriter::create(dst, meta.dtype, row_shape, &save)?),
        ToFormat::Csv | ToFormat::Txt | ToFormat::Tsv => Box::new(TextWriter::create(
            dst,
            meta.dtype,
            row_shape,
            &text_options(text_kind(to)),
            &save,
        )?),
        ToFormat::Hdf5 => Box::new(hdf5::H5Writer::create(
            dst,
            meta.dtype,
            row_shape,
            &save,
            &h5_writer_options(src, layout, meta, dst)?,
        )?),
        ToFormat::Zarr => {
            let like = zarr_source(src);
            let meta = layout.zarr(meta.dtype, &meta.shape, like.as_ref(), dst)?;
            if crate::s3::is_s3(dst) {
                let target = crate::s3::target(dst, None)?;
                Box::new(ZarrWriter::create_object_with(&target, meta, &save)?)
            } else {
                Box::new(ZarrWriter::create_with(dst, meta, &save)?)
            }
        }
        ToFormat::Npz => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "an .npz member is written whole, not streamed",
            )
            .with_path(dst));
        }
    })
}

/// The streaming HDF5 writer's options: the dataset named as the source's object (else
/// `data`), laid out as `layout` says. Without `--chunks`, a chunk holds about 1 MiB of rows
/// but never more rows than the array has: a chunk is stored whole, so a 192-byte array in a
/// chunk of 6553 rows made a 1 MiB file.
fn h5_writer_options(
    src: &Target,
    layout: &Layout,
    meta: &ArrayMeta,
    dst: &Path,
) -> Result<hdf5::WriterOptions> {
    let mut options = hdf5::WriterOptions::new(&dataset_name(src));
    options.filters = h5_layout(src, layout, &meta.shape, dst)?;
    let rows = meta.shape.first().copied().unwrap_or(1);
    let row_bytes = row_bytes(meta).max(1);
    options.chunk_rows = Some(((1 << 20) / row_bytes).clamp(1, rows.max(1)));
    Ok(options)
}

/// Where a streamed source's rows come from.
enum Rows<'a> {
    /// A `.npy` file and where its data starts. A C-ordered file is read in order; a
    /// Fortran-ordered one a run of each column at a time (see [`Blocks::next`]).
    Npy { file: File, data_start: u64 },
    /// A C-ordered `.npz` member, decompressed as it is read, its CRC-32 checked at the end.
    Member(Box<MemberStream<'a>>),
    /// An HDF5 dataset, read a box of rows at a time by the isolated reader, through the file
    /// held open here (see [`held_path`]).
    Hdf5 { file: File, name: String },
    /// A text file with a `# ndstore:` line, read a block of lines (about 8 MiB) at a time.
    Text(Box<TextReader>),
    /// A Zarr array, a box of rows at a time: only the chunks the box touches are read.
    Zarr(Box<ZarrArray>),
    /// Every row read (an `.npz` member once its end was checked).
    Done,
}

/// A source with at least one axis, read a bounded block of rows at a time.
struct Blocks<'a> {
    path: std::path::PathBuf,
    meta: ArrayMeta,
    rows: Rows<'a>,
    done: usize,
    per_block: usize,
}

impl<'a> Blocks<'a> {
    /// The source's blocks, or `None` when it cannot stream (an `.npz` member, which
    /// [`Blocks::member`] streams, text without its `# ndstore:` line, a 0-d array, a
    /// Fortran-ordered array other than a `.npy` file's, an HDF5 file without a named or
    /// `data` dataset).
    fn open(src: &Target) -> Result<Option<Blocks<'a>>> {
        let path = &src.path;
        let (meta, rows) = match (Kind::of(path)?, &src.object) {
            (Kind::Npy, None) => {
                // Never blocks: a FIFO or a device is refused by its type.
                let mut file = ndstore_core::__private::load::open_for_load(path)?;
                let meta = npy::read_header_from(&mut file).map_err(|e| with_path(e, path))?;
                let data_start = file_offset(&mut file);
                holds_its_data(&file, data_start, &meta).map_err(|e| e.with_path(path))?;
                (meta, Rows::Npy { file, data_start })
            }
            (Kind::Hdf5, object) => {
                let name = object.as_deref().unwrap_or(hdf5::DEFAULT_DATASET);
                let file = ndstore_core::__private::load::open_for_load(path)?;
                let held = held_path(&file);
                match hdf5::read_meta(&held, name) {
                    Ok(meta) => (
                        meta,
                        Rows::Hdf5 {
                            file,
                            name: name.to_owned(),
                        },
                    ),
                    // Without a name, the facade's choice (the only dataset) loads it whole.
                    Err(_) if object.is_none() => return Ok(None),
                    Err(e) => return Err(named(e, path)),
                }
            }
            (Kind::Zarr, _) => {
                let array = crate::zarr::open(src)?;
                let chunk_rows = array.meta().chunk_shape.first().copied().unwrap_or(1);
                let Some(mut blocks) =
                    Blocks::of(path, array.array_meta(), Rows::Zarr(Box::new(array)))?
                else {
                    return Ok(None);
                };
                // Blocks of whole chunk rows, so no chunk is decoded twice.
                if blocks.per_block >= chunk_rows {
                    blocks.per_block -= blocks.per_block % chunk_rows;
                }
                return Ok(Some(blocks));
            }
            (kind @ (Kind::Csv | Kind::Txt | Kind::Tsv), None) => {
                let reader = TextReader::open(path, &text_options(kind))?;
                match reader.meta_line() {
                    // Rows of no element (shape (5, 0)) are empty lines the block reader
                    // does not count: such an array holds no data and loads whole for free.
                    Some(meta) if meta.shape.get(1..).is_some_and(|r| r.contains(&0)) => {
                        return Ok(None);
                    }
                    Some(meta) => (meta, Rows::Text(Box::new(reader))),
                    // Without the line, the shape is known only at the end: loaded whole.
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Blocks::of(path, meta, rows)
    }

    /// The blocks of an `.npz` member, or `None` for a Fortran-ordered or 0-d one (a
    /// compressed member cannot be read out of order).
    ///
    /// # Errors
    ///
    /// None yet, as [`Blocks::of`].
    fn member(path: &Path, member: MemberStream<'a>) -> Result<Option<Blocks<'a>>> {
        let meta = member.meta().clone();
        Blocks::of(path, meta, Rows::Member(Box::new(member)))
    }

    /// The blocks of `rows`, or `None` for a source that cannot stream (0-d, Fortran-ordered
    /// other than a `.npy` file's, or with a row wider than [`MAX_ROW_BYTES`]).
    ///
    /// # Errors
    ///
    /// None yet; the signature leaves room for sources that check more when they open.
    fn of(path: &Path, meta: ArrayMeta, rows: Rows<'a>) -> Result<Option<Blocks<'a>>> {
        let fortran_file = matches!(rows, Rows::Npy { .. });
        if meta.shape.is_empty() || (meta.order != Order::C && !fortran_file) {
            return Ok(None);
        }
        let row_bytes = row_bytes(&meta);
        // A row wider than a streaming read holds is not streamed: the array is loaded whole,
        // which allocates fallibly and refuses sizes its file cannot justify.
        if row_bytes > MAX_ROW_BYTES {
            return Ok(None);
        }
        let per_block = BUFFER_BYTES
            .checked_div(row_bytes)
            .map_or(meta.shape[0], |n| n);
        Ok(Some(Blocks {
            path: path.to_path_buf(),
            meta,
            rows,
            done: 0,
            per_block: per_block.max(1),
        }))
    }

    /// The next block of rows, `None` after the last (once the source is checked to end
    /// there: an `.npz` member's CRC-32).
    fn next(&mut self, buffer: &mut Vec<u8>) -> Result<Option<DynArray>> {
        if let Rows::Text(reader) = &mut self.rows {
            return next_text_block(reader, &self.meta, &mut self.done);
        }
        let rows = self.meta.shape[0];
        if self.done >= rows {
            if let Rows::Member(member) = std::mem::replace(&mut self.rows, Rows::Done) {
                member.finish()?;
            }
            return Ok(None);
        }
        let n = self.per_block.min(rows - self.done);
        let start = self.done;
        self.done += n;
        let mut shape = self.meta.shape.clone();
        shape[0] = n;
        let fortran = self.meta.order == Order::Fortran;
        match &mut self.rows {
            Rows::Npy { file, data_start } => {
                buffer.resize(n * row_bytes(&self.meta), 0);
                let ends_early = |e: std::io::Error, offset: u64| {
                    let kind = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        ErrorKind::Truncated
                    } else {
                        ErrorKind::Io
                    };
                    Error::new(
                        kind,
                        format!("the data ends before row {} of {rows}", start + n),
                    )
                    .at_offset(offset)
                    .with_path(&self.path)
                };
                let offset = file_offset(file);
                if fortran {
                    read_columns(file, *data_start, &self.meta, start..start + n, buffer)
                        .map_err(|(e, at)| ends_early(e, at))?;
                } else {
                    file.read_exact(buffer).map_err(|e| ends_early(e, offset))?;
                }
                // A bad element's byte in the file: in order from where the rows start, or,
                // for a Fortran-ordered file read a run of each column at a time, at its row
                // within its column.
                let (rows_total, item) = (rows as u64, self.meta.dtype.itemsize() as u64);
                let data_start = *data_start;
                let place = |at: usize| {
                    let at = at as u64;
                    if fortran {
                        let (index, n) = (at / item, n as u64);
                        let (row, column) = (index % n, index / n);
                        data_start + ((start as u64 + row) + rows_total * column) * item + at % item
                    } else {
                        offset + at
                    }
                };
                decode(&self.meta, buffer, &shape)
                    .map(Some)
                    .map_err(|(e, at)| {
                        let e = match at {
                            Some(at) => e.at_offset(place(at)),
                            None => e,
                        };
                        with_path(e, &self.path)
                    })
            }
            Rows::Member(member) => {
                buffer.resize(n * row_bytes(&self.meta), 0);
                let offset = member.position();
                member.read_exact(buffer)?;
                decode(&self.meta, buffer, &shape)
                    .map(Some)
                    .map_err(|(e, at)| {
                        let e = match at {
                            Some(at) => e.at_offset(offset + at as u64).in_member(member.name()),
                            None => e,
                        };
                        with_path(e, &self.path)
                    })
            }
            Rows::Text(_) | Rows::Done => Ok(None),
            Rows::Zarr(array) => {
                let mut first = vec![0; shape.len()];
                first[0] = start;
                array.read_region(&first, &shape).map(Some)
            }
            Rows::Hdf5 { file, name } => {
                let ranges: Vec<std::ops::Range<usize>> = std::iter::once(start..start + n)
                    .chain(self.meta.shape[1..].iter().map(|&len| 0..len))
                    .collect();
                hdf5::read_slice(held_path(file), name, &ranges)
                    .map(Some)
                    .map_err(|e| named(e, &self.path))
            }
        }
    }
}

/// Reads the array `src` names through, block by block as a conversion would, so every check
/// of its format runs (sizes, an `.npz` member's CRC-32, HDF5 filters, a text file's row
/// counts) in bounded memory; returns its metadata, or `None` when it cannot stream (see
/// [`Blocks::open`]) and the caller is to load it whole.
///
/// # Errors
///
/// The first error of reading it.
pub fn read_through(src: &Target) -> Result<Option<ArrayMeta>> {
    match Blocks::open(src)? {
        Some(blocks) => drain(blocks).map(Some),
        None => Ok(None),
    }
}

/// Reads member `name` of an `.npz` through as [`read_through`] does. A Fortran-ordered
/// member is read in its stored order, as the C-ordered array of its reversed shape: what is
/// checked (its sizes, its elements, its CRC-32) does not depend on the order.
///
/// # Errors
///
/// The first error of reading it, its CRC-32 checked at its end.
pub fn read_member_through(
    reader: &mut NpzReader,
    path: &Path,
    name: &str,
) -> Result<Option<ArrayMeta>> {
    let member = reader.stream(name)?;
    let meta = member.meta().clone();
    let stored = match meta.order {
        Order::Fortran => {
            let reversed: Vec<usize> = meta.shape.iter().rev().copied().collect();
            ArrayMeta::new(meta.dtype, reversed, Order::C)
        }
        _ => meta.clone(),
    };
    match Blocks::of(path, stored, Rows::Member(Box::new(member)))? {
        Some(blocks) => drain(blocks).map(|_| Some(meta)),
        None => Ok(None),
    }
}

fn drain(mut blocks: Blocks<'_>) -> Result<ArrayMeta> {
    let mut buffer = Vec::new();
    while blocks.next(&mut buffer)?.is_some() {}
    Ok(blocks.meta)
}

/// Rows `rows` of the `.npy` file at `path` (either order), read alone with their file's
/// checks; `None` for a 0-d array or an empty range, which the caller loads whole.
///
/// # Errors
///
/// The errors of reading the header and the rows.
pub fn read_npy_rows(
    path: &Path,
    rows: std::ops::Range<usize>,
) -> Result<Option<(ArrayMeta, DynArray)>> {
    let src = Target {
        path: path.to_path_buf(),
        object: None,
    };
    match Blocks::open(&src)? {
        Some(blocks) => rows_of(blocks, rows),
        None => Ok(None),
    }
}

/// Rows `rows` of array `name` of the `.npz` at `path` when its member is stored: a plain
/// `.npy` at an offset in the archive, read as [`read_npy_rows`] reads a file (only those
/// rows, either order), so a slice of a large member takes the memory of the slice. A deflated
/// C-ordered member is decompressed up to the rows, in bounded memory. `None` for a deflated
/// Fortran-ordered member, a 0-d one or an empty range, which the caller loads whole. The
/// member's CRC-32 is not checked: only a read of all of it can.
///
/// # Errors
///
/// The errors of reading the header and the rows, each placed in the member; `Truncated`
/// or `Format` when the header's array does not fill the member exactly.
pub fn read_member_rows(
    path: &Path,
    name: &str,
    rows: std::ops::Range<usize>,
) -> Result<Option<(ArrayMeta, DynArray)>> {
    use std::io::{Seek, SeekFrom};
    let mut reader = NpzReader::open_lenient(path)?;
    let Some(stored) = reader.stored_member(name)? else {
        return deflated_member_rows(&mut reader, path, name, rows);
    };
    let (member, data) = (stored.name, stored.data);
    // Offsets in the file become offsets in the member, as a whole load places them.
    let in_member = |e: Error| match e.location() {
        Some(Location::Offset(at)) => Error::new(e.kind(), e.message())
            .at(Location::Member {
                name: member.clone(),
                offset: at.saturating_sub(data.start),
            })
            .with_path(path),
        _ => e.in_member(&member).with_path(path),
    };
    let mut file = ndstore_core::__private::load::open_for_load(path)?;
    file.seek(SeekFrom::Start(data.start))
        .map_err(|e| Error::io("cannot seek", e).with_path(path))?;
    let meta = npy::read_header_from(&mut (&mut file).take(data.end - data.start))
        .map_err(|e| e.in_member(&member).with_path(path))?;
    let data_start = file_offset(&mut file);
    let ends = meta
        .byte_len()
        .ok()
        .and_then(|len| data_start.checked_add(len as u64));
    if ends != Some(data.end) {
        let kind = if ends.is_none_or(|end| end > data.end) {
            ErrorKind::Truncated
        } else {
            ErrorKind::Format
        };
        let header = data_start - data.start;
        return Err(in_member(
            Error::new(
                kind,
                format!(
                    "the header declares {} data bytes, but the member holds {} after its header",
                    meta.byte_len().unwrap_or(usize::MAX),
                    data.end.saturating_sub(data_start)
                ),
            )
            .at_offset(data.start + header),
        ));
    }
    match Blocks::of(path, meta, Rows::Npy { file, data_start })? {
        Some(blocks) => rows_of(blocks, rows).map_err(in_member),
        None => Ok(None),
    }
}

/// Rows `rows` of a deflated C-ordered member, decompressed in order: the rows before them
/// are read in blocks and dropped, so memory stays that of the rows asked for. `None` for a
/// Fortran-ordered member (its rows are not contiguous in the stream), which the caller loads.
fn deflated_member_rows(
    reader: &mut NpzReader,
    path: &Path,
    name: &str,
    rows: std::ops::Range<usize>,
) -> Result<Option<(ArrayMeta, DynArray)>> {
    let mut member = reader.stream(name)?;
    let meta = member.meta().clone();
    if meta.order != Order::C || rows.is_empty() || meta.shape.first().is_none_or(|&n| rows.end > n)
    {
        return Ok(None);
    }
    let mut skip = (rows.start as u64).saturating_mul(row_bytes(&meta) as u64);
    let mut scratch = vec![0u8; BUFFER_BYTES.min(usize::try_from(skip).unwrap_or(usize::MAX))];
    while skip > 0 {
        let n = scratch
            .len()
            .min(usize::try_from(skip).unwrap_or(usize::MAX));
        member.read_exact(&mut scratch[..n])?;
        skip -= n as u64;
    }
    drop(scratch);
    let Some(mut blocks) = Blocks::of(path, meta, Rows::Member(Box::new(member)))? else {
        return Ok(None);
    };
    blocks.done = rows.start;
    blocks.per_block = rows.len();
    let mut buffer = Vec::new();
    let meta = blocks.meta.clone();
    Ok(blocks.next(&mut buffer)?.map(|rows| (meta, rows)))
}

/// Rows `rows` of a `.npy` source's blocks, read as one block; `None` for an empty range or
/// one past the array's end.
fn rows_of(
    mut blocks: Blocks<'_>,
    rows: std::ops::Range<usize>,
) -> Result<Option<(ArrayMeta, DynArray)>> {
    use std::io::{Seek, SeekFrom};
    if rows.is_empty() || rows.end > blocks.meta.shape[0] {
        return Ok(None);
    }
    if let Rows::Npy { file, data_start } = &mut blocks.rows {
        let skip = (rows.start as u64).saturating_mul(row_bytes(&blocks.meta) as u64);
        file.seek(SeekFrom::Start(data_start.saturating_add(skip)))
            .map_err(|e| Error::io("cannot seek", e).with_path(&blocks.path))?;
    }
    blocks.done = rows.start;
    blocks.per_block = rows.len();
    let mut buffer = Vec::new();
    let meta = blocks.meta.clone();
    Ok(blocks.next(&mut buffer)?.map(|rows| (meta, rows)))
}

/// The name under which this process reaches `file` itself: each block of an HDF5 source is
/// read by a fresh isolated reader, which opens a path, and the source's own path may name
/// another file by then (a program that replaces it by rename), so a copy would mix versions.
fn held_path(file: &File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// `e` naming `path` instead of the name it was met under (the held file's `/proc/self/fd`
/// name, a temporary's), with its place and the operating system's reason (a full disk's "No
/// space left on device") kept.
fn named(e: Error, path: &Path) -> Error {
    let mut named = match e.io_error() {
        // The same error again: io::Error cannot be cloned, but its code or text can.
        Some(io) => Error::io(
            e.message(),
            io.raw_os_error().map_or_else(
                || std::io::Error::new(io.kind(), io.to_string()),
                std::io::Error::from_raw_os_error,
            ),
        ),
        None => Error::new(e.kind(), e.message()),
    };
    if let Some(place) = e.location() {
        named = named.at(place.clone());
    }
    named.with_path(path)
}

/// Checks, before a destination is made, that a `.npy` file holds the data its header
/// declares (the loader's own check): a header that claims 2^40 rows is refused at once, in
/// the loader's words, instead of at its first missing block.
fn holds_its_data(file: &File, data_start: u64, meta: &ArrayMeta) -> Result<()> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e))?
        .len();
    let byte_len = meta.byte_len()? as u64;
    if data_start.checked_add(byte_len).is_none_or(|end| end > len) {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "the header declares {byte_len} data bytes from byte {data_start}, but the input holds only {}",
                len.saturating_sub(data_start)
            ),
        )
        .at_offset(len));
    }
    Ok(())
}

/// Reads rows `rows` of a Fortran-ordered array whose data starts at `data_start`: in the
/// file each column (one index of every axis but the first) holds its rows side by side, so
/// the block is one run per column, read with `pread`. The buffer then holds the block in
/// Fortran order (the rows of a column side by side, columns in the file's order), as
/// [`decode`] reads it for a Fortran `meta`. On failure, the error and the offset it met.
fn read_columns(
    file: &File,
    data_start: u64,
    meta: &ArrayMeta,
    rows: std::ops::Range<usize>,
    buffer: &mut [u8],
) -> std::result::Result<(), (std::io::Error, u64)> {
    use std::os::unix::fs::FileExt;
    let item = meta.dtype.itemsize() as u64;
    let all_rows = meta.shape[0] as u64;
    let run = rows.len() * meta.dtype.itemsize();
    if run == 0 {
        return Ok(());
    }
    for (column, piece) in buffer.chunks_exact_mut(run).enumerate() {
        let element = (column as u64) * all_rows + rows.start as u64;
        let offset = data_start + element * item;
        file.read_exact_at(piece, offset).map_err(|e| (e, offset))?;
    }
    Ok(())
}

/// The next block of a text file's rows, shaped by its `# ndstore:` line, whose row count
/// is checked: a file with more or fewer rows than the line says is refused with its line.
fn next_text_block(
    reader: &mut TextReader,
    meta: &ArrayMeta,
    done: &mut usize,
) -> Result<Option<DynArray>> {
    let rows = meta.shape[0];
    let miscounted = |reader: &TextReader, found: &str| {
        Error::new(
            ErrorKind::Truncated,
            format!(
                "the data holds {found} rows, but the metadata line says shape {:?}",
                meta.shape
            ),
        )
        .at(Location::LineColumn {
            line: reader.line(),
            column: 1,
        })
        .with_path(reader.path())
    };
    ndstore::with_dtype_kind!(meta.dtype.kind, |T| {
        match reader.next_block::<T>()? {
            None if *done == rows => Ok(None),
            None => Err(miscounted(reader, &done.to_string())),
            Some((_, n)) if *done + n > rows => {
                Err(miscounted(reader, &format!("more than {rows}")))
            }
            Some((values, n)) => {
                *done += n;
                let mut shape = meta.shape.clone();
                shape[0] = n;
                let block = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| {
                    Error::new(
                        ErrorKind::Format,
                        format!("a row has the wrong length: {e}"),
                    )
                    .with_path(reader.path())
                })?;
                Ok(Some(DynArray::from(block)))
            }
        }
    })
}

fn row_bytes(meta: &ArrayMeta) -> usize {
    meta.dtype.itemsize() * meta.shape[1..].iter().product::<usize>()
}

/// Copies the blocks into the writer and commits it; the progress bar counts the source's bytes.
fn stream(mut blocks: Blocks<'_>, sink: Sink, dst: &Path, show: bool) -> Result<()> {
    let row_bytes = row_bytes(&blocks.meta) as u64;
    let total = (blocks.meta.shape[0] as u64).saturating_mul(row_bytes);
    let bar = show.then(|| progress(total));
    let meta = blocks.meta.clone();
    let mut buffer = Vec::new();
    let mut next = || {
        // A signal stops the copy here: the writer is dropped uncommitted, the target kept.
        interrupt::check(dst)?;
        let block = blocks.next(&mut buffer)?;
        if let Some(bar) = &bar {
            bar.set_position((blocks.done as u64).saturating_mul(row_bytes));
        }
        Ok(block)
    };
    match sink {
        Sink::Writer(mut writer) => {
            while let Some(block) = next()? {
                writer.append(&block)?;
            }
            interrupt::check(dst)?;
            writer.commit()?;
        }
        Sink::Npz(mut writer, name) => {
            writer.add_streamed(&name, &meta, &mut next)?;
            interrupt::check(dst)?;
            writer.commit()?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

fn file_offset(file: &mut File) -> u64 {
    use std::io::Seek;
    file.stream_position().unwrap_or(0)
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Elements of `N` bytes in `order`, turned into values by `from`.
fn elements<T, const N: usize>(bytes: &[u8], swap: bool, from: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut b = [0u8; N];
            b.copy_from_slice(chunk);
            if swap {
                b.reverse();
            }
            from(b)
        })
        .collect()
}

/// A complex number from its stored bytes: two parts, each swapped apart when the file's byte
/// order is not this machine's (`elements` must not swap the pair as a whole).
fn complex<F, const H: usize, const N: usize>(
    part: fn([u8; H]) -> F,
    swap: bool,
) -> impl Fn([u8; N]) -> Complex<F> {
    move |bytes: [u8; N]| {
        let mut halves = [[0u8; H]; 2];
        for (i, half) in halves.iter_mut().enumerate() {
            half.copy_from_slice(&bytes[i * H..(i + 1) * H]);
            if swap {
                half.reverse();
            }
        }
        Complex::new(part(halves[0]), part(halves[1]))
    }
}

/// The rows in `bytes` as an array shaped `shape` of the file's dtype.
///
/// # Errors
///
/// `Format` for a bool byte other than 0 or 1, with the byte's index in `bytes` for the caller
/// to place in the file; `InvalidInput` when the bytes do not fit the shape.
fn decode(
    meta: &ArrayMeta,
    bytes: &[u8],
    shape: &[usize],
) -> std::result::Result<DynArray, (Error, Option<usize>)> {
    let order = meta.dtype.byte_order;
    let shaped = |e: ndstore::ndarray::ShapeError| {
        (
            Error::new(
                ErrorKind::InvalidInput,
                format!("rows do not fit their shape: {e}"),
            ),
            None,
        )
    };
    let swap = order.needs_swap();
    let fortran = meta.order == Order::Fortran;
    macro_rules! array {
        ($t:ty, $n:literal, $from:expr) => {
            array!($t, $n, $from, swap)
        };
        ($t:ty, $n:literal, $from:expr, $swap:expr) => {
            DynArray::from(
                ArrayD::from_shape_vec(
                    IxDyn(shape).set_f(fortran),
                    elements::<$t, $n>(bytes, $swap, $from),
                )
                .map_err(shaped)?,
            )
        };
    }
    Ok(match meta.dtype.kind {
        DTypeKind::Bool => {
            if let Some(at) = bytes.iter().position(|&b| b > 1) {
                return Err((
                    Error::new(
                        ErrorKind::Format,
                        format!("a bool element holds {}, not 0 or 1", bytes[at]),
                    ),
                    Some(at),
                ));
            }
            array!(bool, 1, |b: [u8; 1]| b[0] == 1)
        }
        DTypeKind::I8 => array!(i8, 1, i8::from_ne_bytes),
        DTypeKind::U8 => array!(u8, 1, u8::from_ne_bytes),
        DTypeKind::I16 => array!(i16, 2, i16::from_ne_bytes),
        DTypeKind::U16 => array!(u16, 2, u16::from_ne_bytes),
        DTypeKind::I32 => array!(i32, 4, i32::from_ne_bytes),
        DTypeKind::U32 => array!(u32, 4, u32::from_ne_bytes),
        DTypeKind::I64 => array!(i64, 8, i64::from_ne_bytes),
        DTypeKind::U64 => array!(u64, 8, u64::from_ne_bytes),
        DTypeKind::F16 => array!(half::f16, 2, half::f16::from_ne_bytes),
        DTypeKind::F32 => array!(f32, 4, f32::from_ne_bytes),
        DTypeKind::F64 => array!(f64, 8, f64::from_ne_bytes),
        DTypeKind::Complex64 => array!(Complex<f32>, 8, complex(f32::from_ne_bytes, swap), false),
        DTypeKind::Complex128 => {
            array!(Complex<f64>, 16, complex(f64::from_ne_bytes, swap), false)
        }
        #[allow(unreachable_patterns)]
        other => {
            return Err((
                Error::new(
                    ErrorKind::UnsupportedDType,
                    format!("cannot stream {other:?}"),
                ),
                None,
            ));
        }
    })
}

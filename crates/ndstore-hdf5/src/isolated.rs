//! The default entry points for files someone else wrote: loads, metadata, listings and slices
//! parsed by libhdf5 in an isolated child process (`worker`), with data handed back through
//! the caller's own descriptor or a memfd, never copied through the pipe.

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use hdf5_metno::Dataset;
use ndarray::ArrayD;
use ndstore_core::{
    ArrayMeta, DTypeKind, DynArray, Element, Error, ErrorKind, LoadOptions, Order, Result,
    with_dtype_kind,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::h5::{At, DEFAULT_DATASET};
use crate::read;
use crate::sys;
use crate::tree::{self, Entry, Object};
use crate::worker::{self, Child, Limits};

/// Options of a load through the isolated reader: the caller's limits on the array, and the
/// reader process's own.
///
/// ```
/// use std::time::Duration;
/// use ndstore_hdf5::ReadOptions;
/// // Refuse arrays over 4 GiB; give the reader 10 s before it reads data.
/// let options = ReadOptions::new().memory_limit(4 << 30).timeout(Duration::from_secs(10));
/// assert_eq!(options.load.memory_limit, Some(4 << 30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The limits every backend applies ([`LoadOptions::memory_limit`] for the array). When
    /// no memory limit is set, data the file does not hold (fill values) is limited to
    /// [`DEFAULT_UNBACKED_LIMIT`](crate::DEFAULT_UNBACKED_LIMIT).
    pub load: LoadOptions,
    /// How long the reader may take before it reads data (opening the file, its metadata, a
    /// listing); it is then killed and the load fails with [`ErrorKind::ReaderCrashed`].
    /// Default: 60 s.
    pub timeout: Duration,
    /// The reader gets one more second per this many bytes of data it reads. Default: 16 MiB,
    /// so a 1 GiB dataset may take 60 s + 64 s.
    pub bytes_per_second: u64,
    /// The address space the reader may use beyond its size at the start and the data it reads
    /// (libhdf5's caches, chunk and decompression buffers). Default: 1 GiB.
    pub work_memory: u64,
    /// How deep a listing (and the facade's search for a file's only dataset) descends into
    /// groups. Default: [`DEFAULT_MAX_DEPTH`](crate::DEFAULT_MAX_DEPTH).
    pub max_depth: usize,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            load: LoadOptions::default(),
            timeout: Duration::from_secs(60),
            bytes_per_second: 16 << 20,
            work_memory: 1 << 30,
            max_depth: tree::DEFAULT_MAX_DEPTH,
        }
    }
}

impl ReadOptions {
    /// The defaults.
    pub fn new() -> ReadOptions {
        ReadOptions::default()
    }

    /// Loads with `load`'s limits.
    #[must_use]
    pub fn load(mut self, load: LoadOptions) -> ReadOptions {
        self.load = load;
        self
    }

    /// Refuses arrays whose data would need more than `bytes` bytes of memory.
    #[must_use]
    pub fn memory_limit(mut self, bytes: u64) -> ReadOptions {
        self.load.memory_limit = Some(bytes);
        self
    }

    /// The reader's time before it reads data.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> ReadOptions {
        self.timeout = timeout;
        self
    }

    /// The reader's working memory beyond the data.
    #[must_use]
    pub fn work_memory(mut self, bytes: u64) -> ReadOptions {
        self.work_memory = bytes;
        self
    }

    /// How deep listings descend into groups.
    #[must_use]
    pub fn max_depth(mut self, depth: usize) -> ReadOptions {
        self.max_depth = depth;
        self
    }

    fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            bytes_per_second: self.bytes_per_second,
            work_memory: self.work_memory,
        }
    }
}

/// The file a load reads, opened once: every later read, the isolated reader's included
/// (through `/proc/self/fd`), goes through this descriptor, so a rename of the path during the
/// load cannot mix two versions of the file.
pub(crate) struct Source {
    pub file: File,
    pub len: u64,
    /// Whether this process holds a shared `flock` on the file: writers that lock (ndstore's
    /// in-place handles, libhdf5's read-write opens) are then kept out until the load ends, so
    /// the data may be read from the file after the reader ended.
    pub locked: bool,
    /// The name the reader opens the file by.
    pub proc_path: String,
}

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source> {
        Source::of(ndstore_core::__private::load::open_for_load(path)?, path)
    }

    /// A source for a file the caller opened already.
    pub(crate) fn of(file: File, path: &Path) -> Result<Source> {
        let metadata = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(path))?;
        if metadata.is_dir() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a directory, not an HDF5 file")
                    .with_path(path),
            );
        }
        let locking = !matches!(
            std::env::var("HDF5_USE_FILE_LOCKING").as_deref(),
            Ok("FALSE" | "0")
        );
        let locked = locking && file.try_lock_shared().is_ok();
        let proc_path = if Path::new("/proc/self/fd").is_dir() {
            use std::os::fd::AsRawFd;
            format!("/proc/self/fd/{}", file.as_raw_fd())
        } else {
            path.display().to_string()
        };
        Ok(Source {
            len: metadata.len(),
            file,
            locked,
            proc_path,
        })
    }

    /// Whether the name this file was opened by was removed or replaced since, so that libhdf5
    /// cannot open it through `/proc/self/fd`: libhdf5 resolves that link to the path it names,
    /// which then names a deleted file (" (deleted)" appended), even when the file has other
    /// names (hard links) or has been linked back to the same name since. The path the link
    /// names is looked up, not its spelling: a file whose own name ends in " (deleted)" is not
    /// taken for replaced.
    pub(crate) fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(mine) = self.file.metadata() else {
            return false;
        };
        if mine.nlink() == 0 {
            return true;
        }
        if !self.proc_path.starts_with("/proc/self/fd/") {
            return false;
        }
        std::fs::read_link(&self.proc_path).is_ok_and(|name| {
            !std::fs::metadata(name)
                .is_ok_and(|there| there.dev() == mine.dev() && there.ino() == mine.ino())
        })
    }
}

/// Which dataset a load reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Choice<'a> {
    /// The one named.
    Named(&'a str),
    /// `data` when there is one, else the file's only dataset.
    Default,
}

impl Choice<'_> {
    fn object(&self) -> &str {
        match self {
            Choice::Named(name) => name,
            Choice::Default => "/",
        }
    }
}

/// Opens the dataset `choice` names.
pub(crate) fn choose(
    file: &hdf5_metno::File,
    path: &Path,
    choice: Choice<'_>,
    max_depth: usize,
) -> Result<(String, Dataset)> {
    let name = match choice {
        Choice::Named(name) => name.to_owned(),
        Choice::Default => default_dataset(file, path, max_depth)?,
    };
    let dataset = read::open_dataset(file, At::new(path, &name))?;
    Ok((name, dataset))
}

/// `data` when the file has a dataset of that name; otherwise the file's only dataset, or
/// `NotFound` naming the datasets there are.
fn default_dataset(file: &hdf5_metno::File, path: &Path, max_depth: usize) -> Result<String> {
    match sys::open_dataset_in_file(file, DEFAULT_DATASET) {
        Ok(_) => return Ok(DEFAULT_DATASET.to_owned()),
        Err(sys::OpenFailed::ExternalLink) => {
            // The error names the link.
            read::open_dataset(file, At::new(path, DEFAULT_DATASET))?;
        }
        Err(sys::OpenFailed::Hdf5(_)) => {}
    }
    let datasets: Vec<String> = tree::list(file, path, max_depth)?
        .into_iter()
        .filter(|e| matches!(e.object, Object::Dataset(_) | Object::Unsupported { .. }))
        .map(|e| e.path)
        .collect();
    match datasets.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(At::file(path).error(ErrorKind::NotFound, "the file holds no dataset")),
        many => {
            let shown: Vec<&str> = many.iter().take(20).map(String::as_str).collect();
            let more = many.len().saturating_sub(shown.len());
            Err(At::file(path).error(
                ErrorKind::NotFound,
                format!(
                    "the file has no dataset '{DEFAULT_DATASET}' and {} others, so none is the one \
                     to load: {}{}; load one by name",
                    many.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            ))
        }
    }
}

/// Where the reader left the values.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Data {
    /// In the file, at this offset, exactly as the array's bytes.
    InFile(u64),
    /// In the memfd, converted to the native memory type.
    InMemfd,
}

/// The reader's answer to a load.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Loaded {
    name: String,
    /// The dataset's metadata (for a box, the box's shape in C order).
    meta: ArrayMeta,
    data: Data,
}

/// What a load asks for.
struct Request<'a> {
    choice: Choice<'a>,
    want: Option<DTypeKind>,
    ranges: Option<&'a [Range<usize>]>,
    options: &'a ReadOptions,
}

/// What the reader made of one attempt: the answer, or the news that the file the caller opened
/// was replaced before the reader could open it.
#[derive(Debug, Serialize, Deserialize)]
enum Attempt<T> {
    Done(T),
    Replaced,
}

/// Opens the file at `path` once, and runs `work` in the isolated reader on that same file
/// (libhdf5 opens it through `/proc/self/fd`, so a rename of the path cannot make it read
/// another file). libhdf5 cannot open a file whose last name was removed (it resolves the
/// descriptor's link, which then names a deleted file): the file was replaced between the two
/// opens, and the load starts again on the new one, so it always reads one version. A writer
/// that replaces the file faster than a reader can start (under load, a fork takes
/// milliseconds) only delays the load: it tries again until the reader's timeout has passed.
///
/// `memfd`, when given, stays open in the reader for the data.
fn in_reader<T, F>(
    path: &Path,
    object: &str,
    options: &ReadOptions,
    memfd: Option<&File>,
    work: F,
) -> Result<(Source, T)>
where
    T: Serialize + DeserializeOwned,
    F: Fn(&mut Child, &Source, hdf5_metno::File) -> Result<T>,
{
    let start = std::time::Instant::now();
    let mut attempts = 0u64;
    while attempts == 0 || start.elapsed() < options.timeout {
        attempts += 1;
        let source = Source::open(path)?;
        let mut keep = vec![&source.file];
        keep.extend(memfd);
        let attempt: Attempt<T> = worker::run(
            path,
            &source.proc_path,
            object,
            &options.limits(),
            &keep,
            |child| match open_in_reader(child, &source, path, options)? {
                Some(file) => work(child, &source, file).map(Attempt::Done),
                None => Ok(Attempt::Replaced),
            },
        )?;
        if let Attempt::Done(answer) = attempt {
            return Ok((source, answer));
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        format!(
            "the file was replaced {attempts} times in {:.1} s while it was being opened",
            start.elapsed().as_secs_f64()
        ),
    )
    .with_path(path))
}

/// Opens, in the reader, the file `source` holds. libhdf5 opens it through `/proc/self/fd`,
/// which it cannot do once the file has no name (it resolves the link, which names a deleted
/// file): then the reader reads the file's bytes through the descriptor and libhdf5 opens them
/// from memory (its core driver, with no backing file), when the file fits in the reader's work
/// memory. `None` when the file was replaced and is too large for that: the caller starts again
/// on the file the name holds now.
fn open_in_reader(
    child: &mut Child,
    source: &Source,
    path: &Path,
    options: &ReadOptions,
) -> Result<Option<hdf5_metno::File>> {
    match read::open_file(Path::new(&source.proc_path), path) {
        Ok(file) => Ok(Some(file)),
        Err(_) if source.replaced() && source.len <= options.work_memory => {
            // The image is held twice at most: the buffer it is read into (freed once libhdf5
            // has its copy) or libhdf5's copy, and the copy libhdf5's driver reads.
            child.holding(source.len.saturating_mul(2));
            read::open_image(&source.file, source.len, path).map(Some)
        }
        Err(_) if source.replaced() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Loads through the isolated reader.
fn load(path: &Path, request: &Request<'_>) -> Result<(String, ArrayMeta, DynArray)> {
    let memfd = sys::memfd(c"ndstore-hdf5-data")
        .map_err(|e| Error::io("cannot create a memfd", e).with_path(path))?;
    let (source, loaded) = in_reader(
        path,
        request.choice.object(),
        request.options,
        Some(&memfd),
        |child, source, file| read_in_child(child, path, source, file, &memfd, request),
    )?;
    let Loaded { name, meta, data } = loaded;
    let at = At::new(path, &name);
    let bytes = meta.byte_len().map_err(|e| e.with_path(path))?;
    request
        .options
        .load
        .admit(bytes as u64)
        .map_err(|e| at.locate(e))?;
    let array = with_dtype_kind!(meta.dtype.kind, |T| collect::<T>(
        &meta, &data, &source, &memfd, at
    )
    .map(DynArray::from))?;
    Ok((name, meta, array))
}

/// The reader's side of a load: everything libhdf5 does, in the child.
fn read_in_child(
    child: &mut Child,
    path: &Path,
    source: &Source,
    file: hdf5_metno::File,
    memfd: &File,
    request: &Request<'_>,
) -> Result<Loaded> {
    let (name, dataset) = choose(&file, path, request.choice, request.options.max_depth)?;
    let at = At::new(path, &name);
    let meta = read::describe(&dataset, at)?;
    if let Some(kind) = request.want
        && meta.dtype.kind != kind
    {
        return Err(at.locate(ndstore_core::__private::array::type_mismatch(
            meta.dtype.kind,
            kind,
        )));
    }
    let options = &request.options.load;
    let Some(ranges) = request.ranges else {
        let plan = read::plan(&dataset, &meta, at, source.len, options, None)?;
        if let (Some(offset), true) = (plan.direct, source.locked) {
            return Ok(Loaded {
                name,
                meta,
                data: Data::InFile(offset),
            });
        }
        child.reading(plan.bytes);
        fill(memfd, plan.bytes, path, |out| {
            read::read_all(&dataset, meta.dtype.kind, out, at)
        })?;
        return Ok(Loaded {
            name,
            meta,
            data: Data::InMemfd,
        });
    };
    let shape = read::box_shape(ranges, &meta.shape, at)?;
    let boxed = ArrayMeta::new(meta.dtype, shape, Order::C);
    let bytes = boxed
        .byte_len()
        .map_err(|e| e.with_path(path))
        .map(|n| n as u64)?;
    read::plan(&dataset, &meta, at, source.len, options, Some(bytes))?;
    child.reading(bytes);
    fill(memfd, bytes, path, |out| {
        read::read_box(&dataset, meta.dtype.kind, ranges, out, at)
    })?;
    Ok(Loaded {
        name,
        meta: boxed,
        data: Data::InMemfd,
    })
}

/// Sizes the memfd to `bytes`, maps it and lets `read` fill it.
fn fill(
    memfd: &File,
    bytes: u64,
    path: &Path,
    read: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<()> {
    let len = usize::try_from(bytes).map_err(|_| {
        Error::new(
            ErrorKind::TooLarge,
            format!("{bytes} bytes do not fit in memory"),
        )
        .with_path(path)
    })?;
    memfd
        .set_len(bytes)
        .map_err(|e| Error::io("cannot size the reader's memfd", e).with_path(path))?;
    let mut map = sys::SharedMap::new(memfd, len).map_err(|e| {
        Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot map {bytes} bytes for the data: {e}"),
        )
        .with_path(path)
    })?;
    read(map.bytes())
}

/// The parent's side: the values from where the reader left them into a fresh buffer,
/// validated and shaped.
fn collect<T: Element>(
    meta: &ArrayMeta,
    data: &Data,
    source: &Source,
    memfd: &File,
    at: At<'_>,
) -> Result<ArrayD<T>> {
    let path = at.path;
    let count = meta.element_count().map_err(|e| e.with_path(path))?;
    let bytes = (count as u64).saturating_mul(std::mem::size_of::<T::Raw>() as u64);
    let (file, offset) = match data {
        Data::InFile(offset) => {
            if offset.checked_add(bytes).is_none_or(|end| end > source.len) {
                return Err(at.error(
                    ErrorKind::Truncated,
                    format!(
                        "the dataset's {bytes} bytes at offset {offset} run past the end of the \
                         file ({} bytes)",
                        source.len
                    ),
                ));
            }
            (&source.file, *offset)
        }
        Data::InMemfd => {
            let len = memfd
                .metadata()
                .map_err(|e| Error::io("cannot inspect the reader's memfd", e).with_path(path))?
                .len();
            if len != bytes {
                return Err(at.error(
                    ErrorKind::ReaderCrashed,
                    format!("the isolated reader left {len} bytes of data, not {bytes}"),
                ));
            }
            (memfd, 0)
        }
    };
    let mut raw: Vec<T::Raw> =
        ndstore_core::__private::codec::alloc_raw(count).map_err(|e| at.locate(e))?;
    ndstore_core::__private::bulk::read_exact_at(file, bytemuck::cast_slice_mut(&mut raw), offset)
        .map_err(|e| e.with_path(path))?;
    read::array_from_raw::<T>(raw, &meta.shape, meta.effective_order(), at)
}

/// Loads dataset `name` of the file at `path`, whatever its dtype, parsing the file in an
/// isolated reader process: a damaged or hostile file gives an error, never a crash, a hang or
/// an unbounded allocation in the caller.
///
/// # Errors
///
/// `NotFound` for a missing file or dataset; `UnsupportedDType` or `Unsupported` for a dataset
/// ndstore cannot load (its type, a null dataspace, a filter libhdf5 lacks, data outside the
/// file); `OutOfMemory` for data over the memory limits; `Format`, `Corrupt` or `Truncated`
/// when libhdf5 reports the file damaged; `ReaderCrashed` when libhdf5 died on it or ran out
/// of time or memory. Every error names the file and, where known, the object.
pub fn load_dyn(path: impl AsRef<Path>, name: &str) -> Result<(ArrayMeta, DynArray)> {
    load_with(path, name, &ReadOptions::default())
}

/// [`load_dyn`] with explicit limits.
///
/// # Errors
///
/// As [`load_dyn`].
pub fn load_with(
    path: impl AsRef<Path>,
    name: &str,
    options: &ReadOptions,
) -> Result<(ArrayMeta, DynArray)> {
    let request = Request {
        choice: Choice::Named(name),
        want: None,
        ranges: None,
        options,
    };
    load(path.as_ref(), &request).map(|(_, meta, array)| (meta, array))
}

/// Loads dataset [`DEFAULT_DATASET`] (`data`) of the file at `path` or, when it has none, the
/// file's only dataset, returning its path too (isolated, as [`load_dyn`]).
///
/// # Errors
///
/// As [`load_dyn`]; `NotFound` listing the datasets when the file has no `data` and more than
/// one dataset, or none.
pub fn load_default(
    path: impl AsRef<Path>,
    options: &ReadOptions,
) -> Result<(String, ArrayMeta, DynArray)> {
    let request = Request {
        choice: Choice::Default,
        want: None,
        ranges: None,
        options,
    };
    load(path.as_ref(), &request)
}

/// Loads dataset `name` as `kind`, failing with a type mismatch before reading other types
/// (isolated, as [`load_dyn`]).
///
/// # Errors
///
/// As [`load_dyn`], and `TypeMismatch` when the dataset holds another dtype.
pub fn load_as(path: impl AsRef<Path>, name: &str, kind: DTypeKind) -> Result<DynArray> {
    let request = Request {
        choice: Choice::Named(name),
        want: Some(kind),
        ranges: None,
        options: &ReadOptions::default(),
    };
    load(path.as_ref(), &request).map(|(_, _, array)| array)
}

/// Reads the box `ranges` (one range per axis, in the dataset's logical indices) of dataset
/// `name`, reading only the chunks or bytes the box covers (isolated, as [`load_dyn`]). The
/// result is C-ordered, whatever order the dataset records.
///
/// ```
/// # use ndarray::Array2;
/// # use ndstore_core::{DynArray, SaveOptions};
/// # fn main() -> ndstore_core::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("grid.h5");
/// let grid = Array2::from_shape_fn((100, 50), |(i, j)| (i * 50 + j) as i32);
/// ndstore_hdf5::save_dyn(&path, "grid", &DynArray::from(grid.into_dyn()), &SaveOptions::default())?;
/// let corner = ndstore_hdf5::read_slice(&path, "grid", &[10..12, 0..3])?.into_typed::<i32>()?;
/// assert_eq!(corner.shape(), &[2, 3]);
/// assert_eq!(corner[[1, 2]], 11 * 50 + 2);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// As [`load_dyn`], and `InvalidInput` naming the axis when the box does not fit the dataset.
pub fn read_slice(path: impl AsRef<Path>, name: &str, ranges: &[Range<usize>]) -> Result<DynArray> {
    read_slice_with(path, name, ranges, &ReadOptions::default())
}

/// [`read_slice`] with explicit limits.
///
/// # Errors
///
/// As [`read_slice`].
pub fn read_slice_with(
    path: impl AsRef<Path>,
    name: &str,
    ranges: &[Range<usize>],
    options: &ReadOptions,
) -> Result<DynArray> {
    let request = Request {
        choice: Choice::Named(name),
        want: None,
        ranges: Some(ranges),
        options,
    };
    load(path.as_ref(), &request).map(|(_, _, array)| array)
}

/// Reads dataset `name`'s metadata without its data (isolated, as [`load_dyn`]).
///
/// # Errors
///
/// As [`load_dyn`].
pub fn read_meta(path: impl AsRef<Path>, name: &str) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let (_, meta) = in_reader(path, name, &ReadOptions::default(), None, |_, _, file| {
        let at = At::new(path, name);
        let dataset = read::open_dataset(&file, at)?;
        read::describe(&dataset, at)
    })?;
    Ok(meta)
}

/// How a dataset is stored, besides its array metadata: what `h5ls -v` and h5py's
/// `chunks`, `compression` and `maxshape` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Layout {
    /// The dataset's array metadata.
    pub meta: ArrayMeta,
    /// The chunk shape of a chunked dataset, `None` for contiguous or compact storage.
    pub chunks: Option<Vec<usize>>,
    /// The filter pipeline, in order, by libhdf5's names (`deflate`, `shuffle`, `fletcher32`,
    /// ...).
    pub filters: Vec<String>,
    /// Each axis's maximum size, `None` for an unlimited axis.
    pub maxshape: Vec<Option<usize>>,
    /// Whether the file holds all of the dataset's data: stored, or expandable from its
    /// stored chunks under [`MAX_FILTER_RATIO`](crate::MAX_FILTER_RATIO), rather than fill
    /// value (unallocated, or more than its chunks can hold). A dataset that is not is read
    /// whole only under the limit for data the file does not hold
    /// ([`DEFAULT_UNBACKED_LIMIT`](crate::DEFAULT_UNBACKED_LIMIT) by default), though each box
    /// of it passes; false too when its storage cannot be judged, which a load reports.
    pub holds_data: bool,
}

/// Reads dataset `name`'s metadata and storage layout without its data (isolated, as
/// [`load_dyn`]).
///
/// # Errors
///
/// As [`load_dyn`].
pub fn read_layout(path: impl AsRef<Path>, name: &str) -> Result<Layout> {
    let path = path.as_ref();
    let (_, layout) = in_reader(
        path,
        name,
        &ReadOptions::default(),
        None,
        |_, source, file| {
            let at = At::new(path, name);
            let dataset = read::open_dataset(&file, at)?;
            let meta = read::describe(&dataset, at)?;
            let filters = sys::filters(&dataset).map_err(|e| at.h5(e))?;
            let space = dataset.space().map_err(|e| at.h5(e))?;
            let holds_data = read::holds_data(&dataset, &meta, at, source.len);
            Ok(Layout {
                meta,
                chunks: dataset.chunk(),
                filters: filters.into_iter().map(|f| f.name).collect(),
                maxshape: space.maxdims(),
                holds_data,
            })
        },
    )?;
    Ok(layout)
}

/// Every object of the file (isolated, as [`load_dyn`]): datasets with their metadata, those
/// ndstore cannot load marked with their HDF5 type, groups, and soft and external links
/// reported without being followed. Each object is listed once, however many hard links lead
/// to it (the others are [`Object::Alias`]), and groups at most
/// [`DEFAULT_MAX_DEPTH`](crate::DEFAULT_MAX_DEPTH) deep.
///
/// # Errors
///
/// As [`load_dyn`] for the file itself; objects that cannot be read are entries
/// ([`Object::Unreadable`]), not errors.
pub fn list(path: impl AsRef<Path>) -> Result<Vec<Entry>> {
    list_with(path, &ReadOptions::default())
}

/// [`list`] with explicit limits and depth.
///
/// # Errors
///
/// As [`list`].
pub fn list_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Vec<Entry>> {
    let path = path.as_ref();
    let (_, entries) = in_reader(path, "/", options, None, |_, _, file| {
        tree::list(&file, path, options.max_depth)
    })?;
    Ok(entries)
}

/// The object `object` and every object below it (isolated, as [`list`]), as `h5ls -r
/// FILE/object` lists them: the object first, then its group's links breadth-first. Each
/// object is described at the first path this listing meets it; another hard link to it
/// within the listing is an [`Object::Alias`] of that path, so a link to an object outside
/// the subtree describes it instead of naming a path the listing does not show.
///
/// # Errors
///
/// `NotFound` naming the file for an object the file does not hold; as [`list`] otherwise.
pub fn list_from(path: impl AsRef<Path>, object: &str) -> Result<Vec<Entry>> {
    let path = path.as_ref();
    let options = ReadOptions::default();
    let (_, entries) = in_reader(path, object, &options, None, |_, _, file| {
        tree::list_from(&file, path, object, options.max_depth)
    })?;
    Ok(entries)
}

/// Checks, in the isolated reader, that libhdf5 survives opening the file `source` and doing what
/// the in-process edit does first: reading dataset `name`'s metadata as [`read::describe`] does
/// (ndstore's attribute included), its storage and its type (when it exists). A file the reader
/// crashes on is refused with the reader's error.
pub(crate) fn check_before_editing(path: &Path, source: &Source, name: &str) -> Result<()> {
    let options = ReadOptions::default();
    worker::run(
        path,
        &source.proc_path,
        name,
        &options.limits(),
        &[&source.file],
        |_| {
            let file = read::open_file(Path::new(&source.proc_path), path)?;
            if file.link_exists(name) {
                let at = At::new(path, name);
                let dataset = file.dataset(name).map_err(|e| at.h5(e))?;
                let _ = dataset.storage_size();
                let _ = read::unsupported(&dataset);
                let _ = read::describe(&dataset, at);
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ndstore_core::{Durable, SaveOptions};

    use super::*;

    fn save(path: &Path, value: f64) {
        let a = DynArray::from(ArrayD::from_elem(ndarray::IxDyn(&[5]), value));
        crate::save_dyn(path, "data", &a, &SaveOptions::default()).unwrap();
    }

    /// Reads `data` in the reader from the file `source` holds.
    fn read_through(path: &Path, source: &Source) -> Result<Vec<f64>> {
        let limits = ReadOptions::default().limits();
        worker::run(
            path,
            &source.proc_path,
            "data",
            &limits,
            &[&source.file],
            |child| {
                let file = open_in_reader(child, source, path, &ReadOptions::default())?
                    .ok_or_else(|| Error::new(ErrorKind::Io, "replaced"))?;
                let at = At::new(path, "data");
                let dataset = read::open_dataset(&file, at)?;
                dataset.read_raw::<f64>().map_err(|e| at.h5(e))
            },
        )
    }

    #[test]
    fn the_reader_reads_the_file_the_caller_opened_even_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5");
        save(&path, 1.0);
        let source = Source::open(&path).unwrap();
        // The opened file moves away, and another takes its name.
        std::fs::rename(&path, dir.path().join("moved.h5")).unwrap();
        save(&path, 2.0);
        assert_eq!(read_through(&path, &source).unwrap(), vec![1.0; 5]);
        assert!(!source.replaced());
        // A fresh load sees the file the name holds now.
        let (_, now) = crate::load_dyn(&path, "data").unwrap();
        assert_eq!(now.into_typed::<f64>().unwrap().sum(), 10.0);
    }

    #[test]
    fn a_file_replaced_before_the_reader_opens_it_is_read_from_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5");
        save(&path, 1.0);
        let source = Source::open(&path).unwrap();
        // An atomic save over the name: the opened file has no name any more, and libhdf5
        // cannot open it through /proc (it resolves the link to a deleted path); the reader
        // opens its bytes instead, so the load reads the file it opened, not the new one.
        save(&path, 2.0);
        assert!(source.replaced());
        assert_eq!(read_through(&path, &source).unwrap(), vec![1.0; 5]);
    }

    #[test]
    fn a_replaced_file_larger_than_the_work_memory_is_tried_again_on_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5");
        // 8 MiB of data, twice the work memory.
        let big = DynArray::from(ArrayD::from_elem(ndarray::IxDyn(&[1 << 20]), 1.0));
        crate::save_dyn(&path, "data", &big, &SaveOptions::default()).unwrap();
        let source = Source::open(&path).unwrap();
        save(&path, 2.0);
        let options = ReadOptions::default().work_memory(4 << 20);
        assert!(
            !opens(&path, &source, &options).unwrap(),
            "a file over the work memory was read into memory"
        );
    }

    /// Opens the file `source` holds in the reader as a load does, answering whether libhdf5
    /// opened it (`false`: replaced and too large to read from its bytes).
    fn opens(path: &Path, source: &Source, options: &ReadOptions) -> Result<bool> {
        worker::run(
            path,
            &source.proc_path,
            "data",
            &options.limits(),
            &[&source.file],
            |child| Ok(open_in_reader(child, source, path, options)?.is_some()),
        )
    }

    #[test]
    fn a_file_whose_own_name_ends_in_deleted_is_not_taken_for_replaced() {
        // Its link in /proc ends in " (deleted)" as a replaced file's does, but the file has
        // that name: a file libhdf5 refuses is an error, not a replacement to wait out (the
        // load started again until its timeout, then blamed a writer that never was).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5 (deleted)");
        std::fs::write(&path, vec![7u8; 2 << 20]).unwrap();
        let source = Source::open(&path).unwrap();
        assert!(!source.replaced());
        let options = ReadOptions::default().work_memory(1 << 20);
        let err = opens(&path, &source, &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    }

    #[test]
    fn an_empty_file_replaced_before_the_reader_opens_it_is_not_hdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5");
        std::fs::write(&path, b"").unwrap();
        let source = Source::open(&path).unwrap();
        save(&path, 2.0);
        assert!(source.replaced());
        let err = opens(&path, &source, &ReadOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Format, "{err}");
        // libhdf5 refuses an empty image with a message about its arguments, not the file.
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn a_replaced_file_read_from_its_bytes_may_still_read_its_data() {
        // 64 MiB of zeros in gzip chunks, a file of some hundred KiB, replaced before the reader
        // opens it: the reader holds the file's bytes, then reads 64 MiB of data, eight times
        // its work memory. Holding the image fixed the reader's address-space limit for good,
        // and the data's announced read could no longer raise it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.h5");
        let zeros = DynArray::from(ArrayD::<f64>::zeros(ndarray::IxDyn(&[8 << 20])));
        let layout = crate::H5Options::new().chunk(&[1 << 17]).compressed(9);
        crate::save_with(&path, "data", &zeros, &SaveOptions::default(), &layout).unwrap();
        let source = Source::open(&path).unwrap();
        save(&path, 2.0);
        let options = ReadOptions::default().work_memory(8 << 20);
        let request = Request {
            choice: Choice::Named("data"),
            want: None,
            ranges: None,
            options: &options,
        };
        let memfd = sys::memfd(c"test-data").unwrap();
        let loaded = worker::run(
            &path,
            &source.proc_path,
            "data",
            &options.limits(),
            &[&source.file, &memfd],
            |child| {
                let file = open_in_reader(child, &source, &path, &options)?
                    .ok_or_else(|| Error::new(ErrorKind::Io, "replaced"))?;
                read_in_child(child, &path, &source, file, &memfd, &request)
            },
        );
        assert_eq!(loaded.unwrap().meta.shape, vec![8 << 20]);
        assert_eq!(memfd.metadata().unwrap().len(), 64 << 20);
    }

    #[test]
    fn a_reader_does_not_keep_the_callers_other_files_locked() {
        use ndstore_core::{Durability, InPlaceArray};
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join("held.h5");
        save(&held, 1.0);
        let started = dir.path().join("started");
        let finish = dir.path().join("finish");
        let handle = crate::H5InPlace::open(&held, "data", Durability::Synced).unwrap();
        std::thread::scope(|scope| {
            // A reader that runs until told to stop, forked while `held` is open and locked.
            let reader = scope.spawn(|| {
                let limits = ReadOptions::default().limits();
                worker::run(Path::new("other.h5"), "", "/", &limits, &[], |_| {
                    std::fs::write(&started, b"").unwrap();
                    while !finish.exists() {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Ok(())
                })
            });
            while !started.exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // Closed while the reader runs: the lock must go with it.
            Box::new(handle).close().unwrap();
            let reopened = crate::H5InPlace::open(&held, "data", Durability::Synced);
            std::fs::write(&finish, b"").unwrap();
            reader.join().unwrap().unwrap();
            assert!(
                reopened.is_ok(),
                "the reader kept the closed file locked: {:?}",
                reopened.err()
            );
        });
    }

    #[test]
    fn a_file_this_process_has_open_in_place_loads_through_the_reader() {
        use ndstore_core::{Durability, InPlaceArray};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.h5");
        save(&path, 1.0);
        let mut handle = crate::H5InPlace::open(&path, "data", Durability::Synced).unwrap();
        let new = DynArray::from(ArrayD::from_elem(ndarray::IxDyn(&[5]), 3.0));
        handle.write_all(&new).unwrap();
        handle.flush().unwrap();
        // libhdf5 in the reader uses this process's open file (and its descriptor).
        let (_, loaded) = crate::load_dyn(&path, "data").unwrap();
        assert!(loaded.bit_eq(&new));
        Box::new(handle).close().unwrap();
    }
}

//! HDF5 datasets, the writing side and what both sides share: whole-file atomic saves through
//! the core's `OutputFile`, datasets added to a file under its lock, dtypes mapped as h5py maps
//! them, ndstore's `ndstore` attribute, and libhdf5's errors turned into ndstore errors.

use std::path::Path;
use std::sync::Once;

use hdf5_metno::types::{FixedAscii, FloatSize, IntSize, TypeDescriptor};
use hdf5_metno::{Dataset, Datatype, Group, H5Type};
use ndarray::ArrayViewD;
use ndstore_core::{
    ByteOrder, DTypeKind, DynArray, Element, Error, ErrorKind, Location, Order, OutputFile,
    Replace, Result, SaveOptions, with_dyn_array,
};

/// The attribute holding what HDF5 cannot say itself (the memory order), as JSON.
pub const META_ATTR: &str = "ndstore";

/// The dataset a plain `save` writes and a plain `load` reads.
pub const DEFAULT_DATASET: &str = "data";

/// Initialises libhdf5 once per process: silences its own printing of error stacks (its errors
/// become ndstore errors) and registers the lzf decoder. The isolated reader's child inherits
/// an initialised library, so it does no first-time set-up of its own.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        hdf5_metno::silence_errors(true);
        crate::lzf::register();
    });
}

/// Where an operation works: the file its errors name and the object inside the file (`/` for
/// the file itself). Every error made through it names both.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At<'a> {
    /// The path errors name: the caller's, even where libhdf5 opens another name for the file
    /// (the isolated reader opens `/proc/self/fd/N`, a writer its temporary file).
    pub path: &'a Path,
    /// The object's path inside the file.
    pub object: &'a str,
}

impl<'a> At<'a> {
    /// Object `object` of the file at `path`.
    pub(crate) fn new(path: &'a Path, object: &'a str) -> At<'a> {
        At { path, object }
    }

    /// The file at `path` itself (its root group, `/`).
    pub(crate) fn file(path: &'a Path) -> At<'a> {
        At::new(path, "/")
    }

    /// An error of `kind` saying `message`, naming the file and the object.
    pub(crate) fn error(self, kind: ErrorKind, message: impl Into<String>) -> Error {
        self.locate(Error::new(kind, message))
    }

    /// `err`, naming the file and the object unless it names a file or a place already.
    pub(crate) fn locate(self, err: Error) -> Error {
        err.with_path(self.path)
            .at(Location::Object(self.object.to_owned()))
    }

    /// A libhdf5 error as an ndstore error naming the file and the object, of the kind its
    /// error stack gives.
    pub(crate) fn h5(self, err: hdf5_metno::Error) -> Error {
        let stack = err.stack();
        let kind = stack.as_ref().map_or(ErrorKind::Format, kind_of_stack);
        self.error(kind, format!("libhdf5: {}", one_line(&err, stack.as_ref())))
    }
}

/// libhdf5's message on one line. A failed system call is told by the outermost frame (what
/// libhdf5 was doing) and the operating system's words for its `errno`: the innermost frame's
/// own text spans two lines (its `time = ` field ends in a newline) and holds the name libhdf5
/// opened (a temporary, `/proc/self/fd/N`), buffer addresses and internal byte counts. Other
/// messages have their runs of white space made single spaces.
fn one_line(err: &hdf5_metno::Error, stack: Option<&hdf5_metno::ExpandedErrorStack>) -> String {
    if let Some(stack) = stack
        && let Some(errno) = stack.iter().rev().find_map(|f| errno_of(f.desc()))
        && let Some(top) = stack.top()
    {
        let what = top.desc();
        let what = what.split_once(": name = ").map_or(what, |(what, _)| what);
        return format!(
            "{}(): {what}: {}",
            top.func(),
            std::io::Error::from_raw_os_error(errno)
        );
    }
    err.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The kind of a libhdf5 error, from its error stack: the minor codes of its frames, the
/// `errno` of a failed system call, and, where libhdf5 has no code for it, the fixed text a
/// frame starts with. Never from a substring anywhere in the message, which holds the file's
/// name (a file named `unable to lock.h5` must not make a missing file `Locked`).
fn kind_of_stack(stack: &hdf5_metno::ExpandedErrorStack) -> ErrorKind {
    use hdf5_metno::{MajorErrorCode as Major, MinorErrorCode as Minor};
    // A lock conflict anywhere in the stack (libhdf5 1.10.7 and later name it CANTLOCKFILE;
    // earlier ones CANTLOCK in their file layers).
    if stack.iter().any(|f| {
        f.minor_code() == Minor::CantLockFile
            || (f.minor_code() == Minor::CantLock
                && matches!(f.major_code(), Major::File | Major::VirtualFileLayer))
    }) {
        return ErrorKind::Locked;
    }
    // The innermost failed system call says what the operating system refused.
    if let Some(errno) = stack.iter().rev().find_map(|f| errno_of(f.desc())) {
        let kind = Error::io("", std::io::Error::from_raw_os_error(errno)).kind();
        return if errno == libc::ENOENT {
            ErrorKind::NotFound
        } else {
            kind
        };
    }
    // Otherwise the innermost frame, where libhdf5 found the cause.
    let Some(cause) = stack.iter().next_back() else {
        return ErrorKind::Format;
    };
    let text = cause.desc().to_ascii_lowercase();
    match cause.minor_code() {
        Minor::Truncated => ErrorKind::Truncated,
        Minor::NotHdf5 => ErrorKind::Format,
        Minor::CantAlloc => ErrorKind::OutOfMemory,
        Minor::NotFound => ErrorKind::NotFound,
        _ if text.starts_with("memory allocation failed") => ErrorKind::OutOfMemory,
        _ if text.starts_with("data error detected by fletcher32 checksum")
            || text.starts_with("incorrect metadata checksum") =>
        {
            ErrorKind::Corrupt
        }
        _ => ErrorKind::Format,
    }
}

/// The `errno` a frame's text reports, from libhdf5's `..., errno = N, error message = '...'`:
/// the last such field, since a file name libhdf5 quotes comes before it.
fn errno_of(desc: &str) -> Option<i32> {
    const FIELD: &str = "errno = ";
    let at = desc.rfind(FIELD)? + FIELD.len();
    let digits: String = desc[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|&n| n > 0)
}

/// Marks libhdf5's descriptor of `file` close-on-exec.
///
/// libhdf5 opens files without `O_CLOEXEC`. A process spawned while a file is open would inherit
/// the descriptor and, with it, libhdf5's `flock` on the file, which would then outlive our own
/// close until that process exits: other readers and writers would be refused in the meantime.
/// A process forked in the instant between libhdf5's open(2) and this call can still inherit it;
/// libhdf5 offers no way to open with `O_CLOEXEC`. That is why temporaries are written without
/// libhdf5's lock ([`temporary_file`]); what is left is a read's shared lock.
pub(crate) fn close_on_exec(file: &hdf5_metno::File) {
    if let Some(fd) = crate::sys::vfd_descriptor(file) {
        crate::sys::set_cloexec(fd);
    }
}

/// A builder for a temporary file ndstore writes and then renames over its target, with
/// libhdf5's file locking off.
///
/// Nobody else knows a temporary's name, so libhdf5's `flock` on it protects nothing, and it did
/// harm: a process another thread spawned in the instant before [`close_on_exec`] inherited the
/// descriptor and with it the exclusive lock, which then moved with the file to its target name
/// and refused every reader until that process exited (280 of about 300 loads in a test that
/// spawns children while saving).
pub(crate) fn temporary_file() -> hdf5_metno::FileBuilder {
    let mut builder = hdf5_metno::FileBuilder::new();
    builder.with_fapl(|fapl| fapl.file_locking(false));
    builder
}

/// How a dataset is laid out on disk: contiguous (the default), or chunked and filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct H5Options {
    /// Chunk shape; filters need chunks, so with a filter and no shape the whole array is one
    /// chunk.
    pub chunk: Option<Vec<usize>>,
    /// gzip (deflate) level, 0–9, as h5py's `compression="gzip"`.
    pub deflate: Option<u8>,
    /// The byte-shuffle filter before compression.
    pub shuffle: bool,
    /// A Fletcher-32 checksum per chunk: corrupt chunks fail to read instead of reading wrong.
    pub fletcher32: bool,
}

impl H5Options {
    /// Contiguous, unfiltered storage.
    pub fn new() -> H5Options {
        H5Options::default()
    }

    /// Chunks of `shape`.
    #[must_use]
    pub fn chunk(mut self, shape: &[usize]) -> H5Options {
        self.chunk = Some(shape.to_vec());
        self
    }

    /// gzip at `level`, with the shuffle filter and per-chunk checksums.
    #[must_use]
    pub fn compressed(mut self, level: u8) -> H5Options {
        self.deflate = Some(level.min(9));
        self.shuffle = true;
        self.fletcher32 = true;
        self
    }

    fn filtered(&self) -> bool {
        self.deflate.is_some() || self.shuffle || self.fletcher32
    }
}

/// Rust element types that libhdf5 reads and writes (every ndstore element type).
pub trait H5Element: Element + H5Type {}
impl<T: Element + H5Type> H5Element for T {}

/// The ndstore kind of a stored datatype, or an error naming it.
pub(crate) fn kind_of(datatype: &Datatype) -> std::result::Result<DTypeKind, String> {
    let descriptor = datatype.to_descriptor().map_err(|e| e.to_string())?;
    Ok(match &descriptor {
        TypeDescriptor::Boolean => DTypeKind::Bool,
        TypeDescriptor::Integer(IntSize::U1) => DTypeKind::I8,
        TypeDescriptor::Integer(IntSize::U2) => DTypeKind::I16,
        TypeDescriptor::Integer(IntSize::U4) => DTypeKind::I32,
        TypeDescriptor::Integer(IntSize::U8) => DTypeKind::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => DTypeKind::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => DTypeKind::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => DTypeKind::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => DTypeKind::U64,
        TypeDescriptor::Float(FloatSize::U2) => DTypeKind::F16,
        TypeDescriptor::Float(FloatSize::U4) => DTypeKind::F32,
        TypeDescriptor::Float(FloatSize::U8) => DTypeKind::F64,
        TypeDescriptor::Compound(c)
            if c.fields.len() == 2 && c.fields[0].name == "r" && c.fields[1].name == "i" =>
        {
            match (&c.fields[0].ty, &c.fields[1].ty) {
                (TypeDescriptor::Float(FloatSize::U4), TypeDescriptor::Float(FloatSize::U4)) => {
                    DTypeKind::Complex64
                }
                (TypeDescriptor::Float(FloatSize::U8), TypeDescriptor::Float(FloatSize::U8)) => {
                    DTypeKind::Complex128
                }
                _ => {
                    return Err(format!(
                        "the compound type {descriptor} is not a supported complex number"
                    ));
                }
            }
        }
        other => return Err(format!("the HDF5 type {other} is not supported by ndstore")),
    })
}

/// The HDF5 datatype h5py would use for `T`, in `byte_order`.
pub(crate) fn datatype_for<T: H5Element>(byte_order: ByteOrder, at: At<'_>) -> Result<Datatype> {
    let datatype = Datatype::from_descriptor(&T::type_descriptor()).map_err(|e| at.h5(e))?;
    if byte_order == ByteOrder::Big && T::KIND.has_byte_order() {
        return crate::sys::big_endian_copy(&datatype).map_err(|e| e.with_path(at.path));
    }
    Ok(datatype)
}

/// The size of the `ndstore` attribute's fixed-length string.
const META_ATTR_LEN: usize = 32;

/// Writes the `{"order": ...}` attribute that records what HDF5 cannot say itself, as a
/// fixed-length ASCII string: reading it never needs libhdf5's global heap, the structure a
/// damaged file's variable-length strings crashed libhdf5 in. (Earlier ndstore versions wrote a
/// variable-length string; loads read both.)
pub(crate) fn write_meta_attr(dataset: &Dataset, order: Order, at: At<'_>) -> Result<()> {
    let meta =
        serde_json::json!({ "order": if order == Order::Fortran { "F" } else { "C" } }).to_string();
    let value = FixedAscii::<META_ATTR_LEN>::from_ascii(meta.as_bytes())
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()).with_path(at.path))?;
    dataset
        .new_attr::<FixedAscii<META_ATTR_LEN>>()
        .shape(())
        .create(META_ATTR)
        .and_then(|a| a.write_scalar(&value))
        .map_err(|e| at.h5(e))
}

/// Writes `array`, whatever its element type, as the dataset `at` names, in `group`.
fn write_array(
    group: &hdf5_metno::Group,
    array: &DynArray,
    byte_order: ByteOrder,
    layout: &H5Options,
    at: At<'_>,
) -> Result<()> {
    with_dyn_array!(array, |a| write_dataset(
        group,
        a.view(),
        byte_order,
        layout,
        at
    ))
}

/// Writes `view` as the dataset `at` names, in `group`.
fn write_dataset<T: H5Element>(
    group: &Group,
    view: ArrayViewD<'_, T>,
    byte_order: ByteOrder,
    layout: &H5Options,
    at: At<'_>,
) -> Result<()> {
    let order = ndstore_core::__private::codec::layout_order(&view);
    let datatype = datatype_for::<T>(byte_order, at)?;
    // HDF5 stores C order; a Fortran array is stored by its logical values and flagged.
    let standard = view.as_standard_layout();
    let mut builder = group
        .new_dataset_builder()
        .with_data_as(&standard, &datatype);
    let chunk = match (&layout.chunk, layout.filtered()) {
        (Some(chunk), _) => Some(chunk.clone()),
        // Filters need chunks: the whole array as one chunk (axes of length 0 as 1).
        (None, true) => Some(view.shape().iter().map(|&n| n.max(1)).collect()),
        (None, false) => None,
    };
    if let Some(chunk) = chunk {
        if chunk.len() != view.ndim() || chunk.contains(&0) || view.ndim() == 0 {
            return Err(at.error(
                ErrorKind::InvalidInput,
                format!("chunk shape {chunk:?} does not fit an array of shape {:?} (0-d arrays cannot be chunked)", view.shape()),
            ));
        }
        builder = builder.chunk(chunk);
    }
    // The order h5py uses and libhdf5 requires: shuffle, then compression, then checksums.
    if layout.shuffle {
        builder = builder.shuffle();
    }
    if let Some(level) = layout.deflate {
        builder = builder.deflate(level);
    }
    if layout.fletcher32 {
        builder = builder.fletcher32();
    }
    let dataset = builder.create(at.object).map_err(|e| at.h5(e))?;
    write_meta_attr(&dataset, order, at)?;
    // The data may still sit in libhdf5's sieve buffer, which closing the dataset writes out
    // without reporting a failure: flush it while errors can still be seen.
    dataset.flush().map_err(|e| at.h5(e))
}

/// Writes `array` as the dataset `at` names into a new file at `file_path` (which libhdf5
/// creates or truncates).
fn write_file(
    file_path: &Path,
    array: &DynArray,
    byte_order: ByteOrder,
    layout: &H5Options,
    at: At<'_>,
) -> Result<()> {
    let file = temporary_file()
        .create(file_path)
        .map_err(|e| At::file(at.path).h5(e))?;
    close_on_exec(&file);
    write_array(&file, array, byte_order, layout, at)?;
    close_checked(file, at.path)
}

/// Flushes, then closes `file`, returning the first error.
///
/// libhdf5 reports a failed write from its final flush only to an explicit flush: the writes a
/// dataset's or file's close makes on its own go unreported (a full disk would pass silently).
pub(crate) fn close_checked(file: hdf5_metno::File, target: &Path) -> Result<()> {
    let at = At::file(target);
    file.flush().map_err(|e| at.h5(e))?;
    file.close().map_err(|e| at.h5(e))
}

/// Saves `array` as dataset `dataset` of a new HDF5 file at `path`.
///
/// Atomic (the default): libhdf5 writes a temporary file beside the target, which is closed,
/// fsynced, renamed over the target and its directory fsynced. In place: libhdf5 truncates and
/// rewrites the target (its own file lock excludes other writers), then it is fsynced.
///
/// # Errors
///
/// `InvalidInput` for a dataset path libhdf5 refuses or a byte order that contradicts the
/// dtype's; `UnsupportedDType` for a dtype HDF5 cannot store as h5py does; `Locked` when an
/// in-place save finds the file held by another handle; `StorageFull`, `PermissionDenied` or
/// `Io` when the file or its directory cannot be written, synced or renamed. An atomic save
/// that fails leaves the target as it was.
pub fn save_dyn(
    path: impl AsRef<Path>,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<()> {
    save_with(path, dataset, array, options, &H5Options::default())
}

/// [`save_dyn`] with the dataset laid out as `layout` says (chunks, gzip, shuffle, checksums).
///
/// # Errors
///
/// As [`save_dyn`], and `InvalidInput` for a chunk shape that does not fit the array.
pub fn save_with(
    path: impl AsRef<Path>,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
    layout: &H5Options,
) -> Result<()> {
    init();
    let path = path.as_ref();
    let byte_order = options.effective_byte_order();
    match options.replace {
        Replace::Atomic => {
            let out = OutputFile::create(path, options)?;
            let at = At::new(out.target(), dataset);
            write_file(out.path(), array, byte_order, layout, at)?;
            out.finish()
        }
        Replace::InPlace => {
            // Our exclusive lock comes before any truncation: libhdf5 truncates at open(2),
            // before it takes its own lock, so letting it open the target first would destroy a
            // file another process holds. With our lock held (it excludes every ndstore handle
            // and libhdf5's own flock in other processes), libhdf5's locking is off for this
            // handle, since it would conflict with ours.
            let out = OutputFile::create(path, options)?;
            let target = out.target().to_path_buf();
            let file = hdf5_metno::FileBuilder::new()
                .with_fapl(|fapl| fapl.file_locking(false))
                .create(&target)
                .map_err(|e| At::file(&target).h5(e))?;
            close_on_exec(&file);
            let at = At::new(&target, dataset);
            write_array(&file, array, byte_order, layout, at)?;
            close_checked(file, &target)?;
            out.finish()
        }
    }
}

/// Adds `array` as dataset `dataset` to the HDF5 file at `path` (replacing a dataset of that
/// name), keeping the file's other datasets; creates the file when it does not exist.
///
/// Atomic: the file is copied to a temporary beside it, libhdf5 edits the copy, and the copy is
/// fsynced and renamed over the original — a crash leaves the old file or the new one, never a
/// half-edited one. The price is one copy of the file.
///
/// Concurrent calls on one file take turns: each holds a lock on the file from before the copy
/// until after the rename, so none copies a version another is about to replace (which would
/// lose that one's dataset). While an in-place writer ([`crate::H5InPlace`], an in-place save
/// or writer) holds the file, the call fails with [`ErrorKind::Locked`] instead of copying
/// what that writer has not flushed. Readers are not kept out.
///
/// libhdf5 edits the copy in this process. Before it does, the isolated reader opens the file
/// and reads the replaced dataset's metadata, so a file that crashes libhdf5 there is refused;
/// editing a file you did not write is still at [`crate::trusted`]'s risk.
///
/// # Errors
///
/// `Locked` (see above), the errors of [`save_dyn`] and of the isolated reader.
pub fn add_dataset(
    path: impl AsRef<Path>,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<()> {
    init();
    let path = path.as_ref();
    let target = ndstore_core::__private::atomic::resolve_target(path)?;
    let Some(source) = lock_for_adding(&target)? else {
        return create_for_adding(&target, dataset, array, options);
    };
    let source = crate::isolated::Source::of(source, &target)?;
    crate::isolated::check_before_editing(&target, &source, dataset)?;
    let layout = &H5Options::default();
    let atomic = options.replace(Replace::Atomic);
    let mut out = OutputFile::create(&target, &atomic)?;
    {
        // From the locked descriptor, not the path: this is the version the lock covers.
        let mut from = &source.file;
        std::io::Seek::rewind(&mut from)
            .map_err(|e| Error::io("cannot read the file", e).with_path(&target))?;
        std::io::copy(&mut from, out.file()?)
            .map_err(|e| Error::io("copying the file", e).with_path(&target))?;
    }
    let file = temporary_file()
        .open_rw(out.path())
        .map_err(|e| At::file(&target).h5(e))?;
    close_on_exec(&file);
    let at = At::new(&target, dataset);
    if file.link_exists(dataset) {
        file.unlink(dataset).map_err(|e| at.h5(e))?;
    }
    let byte_order = options.effective_byte_order();
    write_array(&file, array, byte_order, layout, at)?;
    close_checked(file, &target)?;
    // The locks on the old file are held until the new one is in its place.
    let published = out.finish();
    drop(source);
    published
}

/// Opens the file at `target` (read-write: the caller replaces it) and locks it for
/// [`add_dataset`]: an exclusive OFD lock (other additions wait for it) and a shared `flock` (in-place writers, whose `flock` is exclusive,
/// refuse it: `Locked`). When the path was replaced while waiting, the new file is locked
/// instead. `None` when there is no file.
fn lock_for_adding(target: &Path) -> Result<Option<std::fs::File>> {
    loop {
        // Read-write, though nothing is written through it: the OFD lock is a write lock.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(target);
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot open", e).with_path(target)),
        };
        crate::sys::ofd_lock_wait(&file)
            .map_err(|e| Error::io("cannot lock the file", e).with_path(target))?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::new(
                    ErrorKind::Locked,
                    "an in-place writer has the file open; adding a dataset now would copy what it \
                     has not flushed and lose what it writes later",
                )
                .with_path(target));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock the file", e).with_path(target));
            }
        }
        if crate::sys::is_same_file(&file, target)
            .map_err(|e| Error::io("cannot inspect", e).with_path(target))?
        {
            return Ok(Some(file));
        }
    }
}

/// [`add_dataset`] when there is no file yet: creates it under a lock on the directory, so two
/// calls creating the same file take turns (the second then adds to the first's file).
fn create_for_adding(
    target: &Path,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<()> {
    let dir_path = ndstore_core::__private::atomic::parent_dir(target);
    let dir = std::fs::File::open(dir_path)
        .map_err(|e| Error::io("cannot open the directory", e).with_path(dir_path))?;
    dir.lock()
        .map_err(|e| Error::io("cannot lock the directory", e).with_path(dir_path))?;
    if target.exists() {
        drop(dir);
        return add_dataset(target, dataset, array, options);
    }
    save_dyn(target, dataset, array, options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_file_name_does_not_decide_the_kind_of_an_error() {
        // libhdf5 quotes the name in its message: a missing file whose path holds the words of
        // other failures is NotFound, whatever they say.
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "unable to lock",
            "no space left",
            "quota",
            "truncated",
            "checksum",
        ] {
            let path = dir.path().join(name).join("block.h5");
            let err = crate::read::open_file(&path, &path).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        }
    }

    #[test]
    fn a_lock_conflict_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block.h5");
        let a = DynArray::from(ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[3])));
        save_dyn(&path, "data", &a, &SaveOptions::default()).unwrap();
        // Another holder's exclusive lock: libhdf5's shared one is refused.
        let holder = std::fs::File::open(&path).unwrap();
        holder.lock().unwrap();
        let err = crate::read::open_file(&path, &path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
        holder.unlock().unwrap();
        assert!(crate::read::open_file(&path, &path).is_ok());
    }

    #[test]
    fn the_errno_of_a_frame_is_its_last_field() {
        assert_eq!(
            errno_of(
                "unable to open file: name = 'x, errno = 28', errno = 2, error message = 'No such file or directory', flags = 0"
            ),
            Some(2)
        );
        assert_eq!(errno_of("file signature not found"), None);
    }
}

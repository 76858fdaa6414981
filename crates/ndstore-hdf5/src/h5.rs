//! HDF5 datasets: whole-file atomic saves through the core's `OutputFile`, loads and listings,
//! dtypes mapped as h5py maps them, and libhdf5's errors turned into ndstore errors.

use std::path::Path;
use std::sync::Once;

use hdf5_metno::types::{FloatSize, IntSize, TypeDescriptor, VarLenUnicode};
use hdf5_metno::{Dataset, Datatype, Group, H5Type};
use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};
use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DTypeKind, DynArray, Element, Error, ErrorKind, Location, Order,
    OutputFile, Replace, Result, SaveOptions, with_dtype_kind, with_dyn_array,
};

/// The attribute holding what HDF5 cannot say itself (the memory order), as JSON.
pub const META_ATTR: &str = "ndstore";

/// The dataset a plain `save` writes and a plain `load` reads.
pub const DEFAULT_DATASET: &str = "data";

/// Silences libhdf5's own printing of error stacks (its errors become ndstore errors).
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| hdf5_metno::silence_errors(true));
}

/// Turns a libhdf5 error into an ndstore error naming the file and the object.
pub(crate) fn h5_error(err: hdf5_metno::Error, path: &Path, object: &str) -> Error {
    let message = err.to_string();
    let lower = message.to_lowercase();
    let kind = if lower.contains("no space left") || lower.contains("quota") {
        ErrorKind::StorageFull
    } else if lower.contains("lock") {
        ErrorKind::Locked
    } else if lower.contains("signature") || lower.contains("truncated") {
        ErrorKind::Format
    } else if lower.contains("doesn't exist")
        || lower.contains("not found")
        || lower.contains("does not exist")
    {
        ErrorKind::NotFound
    } else {
        ErrorKind::Format
    };
    Error::new(kind, format!("libhdf5: {message}"))
        .with_path(path)
        .at(Location::Object(object.to_owned()))
}

/// Marks libhdf5's descriptor of `file` close-on-exec.
///
/// libhdf5 opens files without `O_CLOEXEC`. A process spawned while a file is open would inherit
/// the descriptor and, with it, libhdf5's `flock` on the file, which would then outlive our own
/// close until that process exits: other readers and writers would be refused in the meantime.
/// A process forked in the instant between libhdf5's open(2) and this call can still inherit it;
/// libhdf5 offers no way to open with `O_CLOEXEC`.
pub(crate) fn close_on_exec(file: &hdf5_metno::File) {
    use hdf5_metno_sys::h5p::H5P_DEFAULT;
    let mut handle: *mut std::ffi::c_void = std::ptr::null_mut();
    let rc = hdf5_metno::sync::sync(|| {
        // SAFETY: `file.id()` is a live file id; libhdf5 writes a pointer to its driver's file
        // handle into `handle`, which for the default (sec2) driver points at an `int` descriptor
        // that lives as long as the file is open.
        unsafe { hdf5_metno_sys::h5f::H5Fget_vfd_handle(file.id(), H5P_DEFAULT, &mut handle) }
    });
    if rc < 0 || handle.is_null() {
        return;
    }
    // SAFETY: as above, `handle` points at the open descriptor of the sec2 driver.
    let fd = unsafe { *(handle as *const libc::c_int) };
    // SAFETY: fcntl on a descriptor libhdf5 holds open only sets its close-on-exec flag.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags >= 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    }
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

fn big_endian(datatype: &Datatype) -> Result<Datatype> {
    use hdf5_metno_sys::h5i::hid_t;
    use hdf5_metno_sys::h5t::{H5T_ORDER_BE, H5Tclose, H5Tcopy, H5Tset_order};
    hdf5_metno::sync::sync(|| {
        // SAFETY: `datatype.id()` is a live datatype id owned by `datatype`; the copy is a new id
        // that is either handed to `from_id` (which takes ownership) or closed here.
        unsafe {
            let id: hid_t = H5Tcopy(datatype.id());
            if id < 0 {
                return Err(Error::new(
                    ErrorKind::Format,
                    "libhdf5 could not copy a datatype",
                ));
            }
            if H5Tset_order(id, H5T_ORDER_BE) < 0 {
                H5Tclose(id);
                return Err(Error::new(
                    ErrorKind::Format,
                    "libhdf5 could not set big-endian order",
                ));
            }
            hdf5_metno::from_id::<Datatype>(id)
                .map_err(|e| Error::new(ErrorKind::Format, e.to_string()))
        }
    })
}

/// The byte order a stored datatype uses (a compound's first member's, for complex numbers).
fn stored_order(datatype: &Datatype) -> ByteOrder {
    use hdf5_metno_sys::h5t::{
        H5T_COMPOUND, H5T_ORDER_BE, H5T_ORDER_LE, H5Tclose, H5Tget_class, H5Tget_member_type,
        H5Tget_order,
    };
    hdf5_metno::sync::sync(|| {
        // SAFETY: `datatype.id()` is live for this call; the member type id is closed here.
        unsafe {
            let id = datatype.id();
            let order = if H5Tget_class(id) == H5T_COMPOUND {
                let member = H5Tget_member_type(id, 0);
                let order = H5Tget_order(member);
                H5Tclose(member);
                order
            } else {
                H5Tget_order(id)
            };
            match order {
                H5T_ORDER_BE => ByteOrder::Big,
                H5T_ORDER_LE => ByteOrder::Little,
                _ => ByteOrder::NotApplicable,
            }
        }
    })
}

/// The ndstore kind of a stored datatype, or an error naming it.
fn kind_of(datatype: &Datatype) -> std::result::Result<DTypeKind, String> {
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

/// Reads a dataset's metadata: dtype (byte order included), shape, and the recorded order.
pub(crate) fn dataset_meta(dataset: &Dataset, path: &Path, name: &str) -> Result<ArrayMeta> {
    let datatype = dataset.dtype().map_err(|e| h5_error(e, path, name))?;
    let kind = kind_of(&datatype).map_err(|why| {
        Error::new(ErrorKind::UnsupportedDType, why)
            .with_path(path)
            .at(Location::Object(name.to_owned()))
    })?;
    let order = match dataset
        .attr(META_ATTR)
        .and_then(|a| a.read_scalar::<VarLenUnicode>())
    {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(text.as_str()) {
            Ok(value) if value["order"] == "F" => Order::Fortran,
            _ => Order::C,
        },
        Err(_) => Order::C,
    };
    Ok(ArrayMeta::new(
        DType::new(kind, stored_order(&datatype)),
        dataset.shape(),
        order,
    ))
}

/// The HDF5 datatype h5py would use for `T`, in `byte_order`.
pub(crate) fn datatype_for<T: H5Element>(
    byte_order: ByteOrder,
    path: &Path,
    name: &str,
) -> Result<Datatype> {
    let datatype =
        Datatype::from_descriptor(&T::type_descriptor()).map_err(|e| h5_error(e, path, name))?;
    if byte_order == ByteOrder::Big && T::KIND.has_byte_order() {
        return big_endian(&datatype).map_err(|e| e.with_path(path));
    }
    Ok(datatype)
}

/// Writes the `{"order": ...}` attribute that records what HDF5 cannot say itself.
pub(crate) fn write_meta_attr(
    dataset: &Dataset,
    order: Order,
    path: &Path,
    name: &str,
) -> Result<()> {
    let meta =
        serde_json::json!({ "order": if order == Order::Fortran { "F" } else { "C" } }).to_string();
    let value: VarLenUnicode = meta.parse().map_err(|e: hdf5_metno::types::StringError| {
        Error::new(ErrorKind::InvalidInput, e.to_string()).with_path(path)
    })?;
    dataset
        .new_attr::<VarLenUnicode>()
        .shape(())
        .create(META_ATTR)
        .and_then(|a| a.write_scalar(&value))
        .map_err(|e| h5_error(e, path, name))
}

fn write_dataset<T: H5Element>(
    group: &Group,
    name: &str,
    view: ArrayViewD<'_, T>,
    byte_order: ByteOrder,
    layout: &H5Options,
    path: &Path,
) -> Result<()> {
    let order = ndstore_core::codec::layout_order(&view);
    let datatype = datatype_for::<T>(byte_order, path, name)?;
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
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("chunk shape {chunk:?} does not fit an array of shape {:?} (0-d arrays cannot be chunked)", view.shape()),
            )
            .with_path(path)
            .at(Location::Object(name.to_owned())));
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
    let dataset = builder.create(name).map_err(|e| h5_error(e, path, name))?;
    write_meta_attr(&dataset, order, path, name)?;
    // The data may still sit in libhdf5's sieve buffer, which closing the dataset writes out
    // without reporting a failure: flush it while errors can still be seen.
    dataset.flush().map_err(|e| h5_error(e, path, name))
}

/// Writes `array` into a new file at `file_path` (which libhdf5 creates or truncates).
fn write_file(
    file_path: &Path,
    dataset: &str,
    array: &DynArray,
    byte_order: ByteOrder,
    layout: &H5Options,
    target: &Path,
) -> Result<()> {
    let file = hdf5_metno::File::create(file_path).map_err(|e| h5_error(e, target, "/"))?;
    close_on_exec(&file);
    with_dyn_array!(array, a => write_dataset(&file, dataset, a.view(), byte_order, layout, target))?;
    close_checked(file, target)
}

/// Flushes, then closes `file`, returning the first error.
///
/// libhdf5 reports a failed write from its final flush only to an explicit flush: the writes a
/// dataset's or file's close makes on its own go unreported (a full disk would pass silently).
pub(crate) fn close_checked(file: hdf5_metno::File, target: &Path) -> Result<()> {
    file.flush().map_err(|e| h5_error(e, target, "/"))?;
    file.close().map_err(|e| h5_error(e, target, "/"))
}

/// Saves `array` as dataset `dataset` of a new HDF5 file at `path`.
///
/// Atomic (the default): libhdf5 writes a temporary file beside the target, which is closed,
/// fsynced, renamed over the target and its directory fsynced. In place: libhdf5 truncates and
/// rewrites the target (its own file lock excludes other writers), then it is fsynced.
pub fn save_dyn(
    path: impl AsRef<Path>,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<()> {
    save_with(path, dataset, array, options, &H5Options::default())
}

/// [`save_dyn`] with the dataset laid out as `layout` says (chunks, gzip, shuffle, checksums).
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
            write_file(out.path(), dataset, array, byte_order, layout, out.target())?;
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
                .map_err(|e| h5_error(e, &target, "/"))?;
            close_on_exec(&file);
            with_dyn_array!(array, a => write_dataset(&file, dataset, a.view(), byte_order, layout, &target))?;
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
pub fn add_dataset(
    path: impl AsRef<Path>,
    dataset: &str,
    array: &DynArray,
    options: &SaveOptions,
) -> Result<()> {
    init();
    let path = path.as_ref();
    let target = ndstore_core::atomic::resolve_target(path)?;
    if !target.exists() {
        return save_dyn(&target, dataset, array, options);
    }
    let layout = &H5Options::default();
    let atomic = options.replace(Replace::Atomic);
    let mut out = OutputFile::create(&target, &atomic)?;
    {
        let mut source = std::fs::File::open(&target)
            .map_err(|e| Error::io("cannot open", e).with_path(&target))?;
        std::io::copy(&mut source, out.file()?)
            .map_err(|e| Error::io("copying the file", e).with_path(&target))?;
    }
    let file = hdf5_metno::File::open_rw(out.path()).map_err(|e| h5_error(e, &target, "/"))?;
    close_on_exec(&file);
    if file.link_exists(dataset) {
        file.unlink(dataset)
            .map_err(|e| h5_error(e, &target, dataset))?;
    }
    with_dyn_array!(array, a => write_dataset(&file, dataset, a.view(), options.effective_byte_order(), layout, &target))?;
    close_checked(file, &target)?;
    out.finish()
}

/// fsyncs the file at `path` through a descriptor of our own: libhdf5 never fsyncs, and an
/// fsync through any descriptor of the file makes its data durable.
pub(crate) fn fsync(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io("cannot open to fsync", e).with_path(path))?;
    file.sync_all()
        .map_err(|e| Error::io("fsync failed", e).with_path(path))?;
    ndstore_core::os::close_file(file).map_err(|e| Error::io("close failed", e).with_path(path))
}

pub(crate) fn open_read(path: &Path) -> Result<hdf5_metno::File> {
    init();
    if !path.exists() {
        return Err(Error::new(ErrorKind::NotFound, "no such file").with_path(path));
    }
    let file = hdf5_metno::File::open(path).map_err(|e| h5_error(e, path, "/"))?;
    close_on_exec(&file);
    Ok(file)
}

pub(crate) fn open_dataset(file: &hdf5_metno::File, path: &Path, name: &str) -> Result<Dataset> {
    file.dataset(name).map_err(|e| h5_error(e, path, name))
}

/// Reads a dataset's values as `T`, laid out in the recorded order, through libhdf5.
pub(crate) fn read_typed<T: H5Element>(
    dataset: &Dataset,
    meta: &ArrayMeta,
    path: &Path,
    name: &str,
) -> Result<ArrayD<T>> {
    // Into a buffer advised for huge pages: a bulk read into a fresh buffer is page faults.
    let mut values: Vec<T> = ndstore_core::codec::alloc_elements(meta.element_count()?)?;
    dataset
        .read_into_raw(&mut values)
        .map_err(|e| h5_error(e, path, name))?;
    shape_values(values, meta, path, name)
}

/// [`read_typed`] for a dataset of a file this process opened read-only just now: a large
/// contiguous one is read straight from the file when libhdf5 would only copy its bytes.
fn read_typed_from_file<T: H5Element>(
    dataset: &Dataset,
    meta: &ArrayMeta,
    path: &Path,
    name: &str,
) -> Result<ArrayD<T>> {
    match read_contiguous::<T>(dataset, meta, path, name)? {
        Some(values) => shape_values(values, meta, path, name),
        None => read_typed(dataset, meta, path, name),
    }
}

/// Reads a contiguous dataset's bytes with `pread`, in pieces on several threads
/// ([`ndstore_core::bulk`]), when that is exactly what libhdf5 would do, only on one thread:
/// the dataset is at least [`bulk::PARALLEL_MIN`](ndstore_core::bulk::PARALLEL_MIN) bytes,
/// contiguous, in this file (no external storage), without filters, allocated, its stored
/// size is its shape's, and its file type equals `T`'s memory type (H5Tequal), so libhdf5
/// would convert nothing. The offset is H5Dget_offset's, which counts from the start of the
/// file, user block included. Anything else — or a range past the end of the file, which
/// libhdf5 then reports in its own words — returns `None` and libhdf5 reads.
///
/// Only for files opened read-only for this one load: an open read-write handle may hold
/// writes that libhdf5 has not yet put in the file.
fn read_contiguous<T: H5Element>(
    dataset: &Dataset,
    meta: &ArrayMeta,
    path: &Path,
    name: &str,
) -> Result<Option<Vec<T>>> {
    use hdf5_metno::dataset::Layout;
    let count = meta.element_count()?;
    let Some(bytes) = count.checked_mul(std::mem::size_of::<T>()) else {
        return Ok(None);
    };
    if bytes < ndstore_core::bulk::PARALLEL_MIN || dataset.layout() != Layout::Contiguous {
        return Ok(None);
    }
    let Ok(dcpl) = dataset.dcpl() else {
        return Ok(None);
    };
    if !dcpl.external().is_empty() || !dcpl.filters().is_empty() {
        return Ok(None);
    }
    let Some(offset) = dataset.offset() else {
        return Ok(None);
    };
    if dataset.storage_size() != bytes as u64 {
        return Ok(None);
    }
    match (dataset.dtype(), Datatype::from_type::<T>()) {
        (Ok(stored), Ok(memory)) if stored == memory => {}
        _ => return Ok(None),
    }
    let file =
        std::fs::File::open(path).map_err(|e| Error::io("cannot open", e).with_path(path))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot inspect", e).with_path(path))?
        .len();
    if offset.checked_add(bytes as u64).is_none_or(|end| end > len) {
        return Ok(None);
    }
    let mut raw: Vec<T::Raw> = ndstore_core::codec::alloc_raw(count)?;
    ndstore_core::bulk::read_exact_at(&file, bytemuck::cast_slice_mut(&mut raw), offset)
        .map_err(|e| e.with_path(path))?;
    T::from_raw_vec(raw).map(Some).map_err(|index| {
        Error::new(
            ErrorKind::Format,
            format!("element {index} is not a valid {}", T::KIND),
        )
        .with_path(path)
        .at(Location::Object(name.to_owned()))
    })
}

/// Gives `values`, stored in C order, `meta`'s shape and layout.
fn shape_values<T: Copy>(
    values: Vec<T>,
    meta: &ArrayMeta,
    path: &Path,
    name: &str,
) -> Result<ArrayD<T>> {
    let c = ArrayD::from_shape_vec(IxDyn(&meta.shape), values).map_err(|e| {
        Error::new(
            ErrorKind::Format,
            format!("the data does not fit shape {:?}: {e}", meta.shape),
        )
        .with_path(path)
        .at(Location::Object(name.to_owned()))
    })?;
    if meta.effective_order() == Order::Fortran {
        let fortran: Vec<T> = c.t().iter().copied().collect();
        ArrayD::from_shape_vec(IxDyn(&meta.shape).f(), fortran)
            .map_err(|e| Error::new(ErrorKind::Format, e.to_string()).with_path(path))
    } else {
        Ok(c)
    }
}

/// Loads dataset `name` of the file at `path`, whatever its dtype.
pub fn load_dyn(path: impl AsRef<Path>, name: &str) -> Result<(ArrayMeta, DynArray)> {
    let path = path.as_ref();
    let file = open_read(path)?;
    let dataset = open_dataset(&file, path, name)?;
    let meta = dataset_meta(&dataset, path, name)?;
    let array = with_dtype_kind!(meta.dtype.kind, T => read_typed_from_file::<T>(&dataset, &meta, path, name).map(DynArray::from))?;
    Ok((meta, array))
}

/// Loads dataset `name` as `T`, failing with a type mismatch before reading other types.
pub fn load_as(path: impl AsRef<Path>, name: &str, kind: DTypeKind) -> Result<DynArray> {
    let path = path.as_ref();
    let file = open_read(path)?;
    let dataset = open_dataset(&file, path, name)?;
    let meta = dataset_meta(&dataset, path, name)?;
    if meta.dtype.kind != kind {
        return Err(ndstore_core::array::type_mismatch(meta.dtype.kind, kind)
            .with_path(path)
            .at(Location::Object(name.to_owned())));
    }
    with_dtype_kind!(kind, T => read_typed_from_file::<T>(&dataset, &meta, path, name).map(DynArray::from))
}

/// Reads dataset `name`'s metadata without its data.
pub fn read_meta(path: impl AsRef<Path>, name: &str) -> Result<ArrayMeta> {
    let path = path.as_ref();
    let file = open_read(path)?;
    let dataset = open_dataset(&file, path, name)?;
    dataset_meta(&dataset, path, name)
}

/// Every dataset in the file (groups walked recursively), with its metadata, without reading data.
pub fn list(path: impl AsRef<Path>) -> Result<Vec<(String, ArrayMeta)>> {
    let path = path.as_ref();
    let file = open_read(path)?;
    let mut found = Vec::new();
    walk(&file, "", path, &mut found)?;
    Ok(found)
}

fn walk(
    group: &Group,
    prefix: &str,
    path: &Path,
    found: &mut Vec<(String, ArrayMeta)>,
) -> Result<()> {
    let here = if prefix.is_empty() { "/" } else { prefix };
    for dataset in group.datasets().map_err(|e| h5_error(e, path, here))? {
        let name = dataset.name();
        let meta = dataset_meta(&dataset, path, &name)?;
        found.push((name, meta));
    }
    for child in group.groups().map_err(|e| h5_error(e, path, here))? {
        let name = child.name();
        walk(&child, &name, path, found)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Just over the size at which contiguous datasets are read straight from the file.
    fn big() -> ArrayD<f64> {
        let n = ndstore_core::bulk::PARALLEL_MIN / 8 + 4099;
        ArrayD::from_shape_fn(IxDyn(&[n / 7, 7]), |i| (i[0] * 7 + i[1]) as f64 * 0.5)
    }

    fn direct(path: &Path) -> Option<Vec<f64>> {
        let file = open_read(path).unwrap();
        let dataset = open_dataset(&file, path, "data").unwrap();
        let meta = dataset_meta(&dataset, path, "data").unwrap();
        read_contiguous::<f64>(&dataset, &meta, path, "data").unwrap()
    }

    fn load(path: &Path) -> ArrayD<f64> {
        let (_, array) = load_dyn(path, "data").unwrap();
        array.into_typed::<f64>().unwrap()
    }

    #[test]
    fn a_large_contiguous_dataset_is_read_straight_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.h5");
        let array = big();
        save_dyn(
            &path,
            "data",
            &DynArray::from(array.clone()),
            &SaveOptions::default(),
        )
        .unwrap();
        let values = direct(&path).expect("the direct path applies");
        assert_eq!(values, array.iter().copied().collect::<Vec<_>>());
        assert_eq!(load(&path), array);
    }

    #[test]
    fn the_offset_counts_the_user_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.h5");
        let array = big();
        {
            let file = hdf5_metno::File::with_options()
                .with_fcpl(|p| p.userblock(4096))
                .create(&path)
                .unwrap();
            file.new_dataset_builder()
                .with_data(&array)
                .create("data")
                .unwrap();
        }
        let values = direct(&path).expect("the direct path applies");
        assert_eq!(values, array.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn other_byte_orders_small_and_chunked_datasets_go_through_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        let array = big();
        let swapped = dir.path().join("be.h5");
        let options = SaveOptions::default().byte_order(ByteOrder::Big);
        save_dyn(&swapped, "data", &DynArray::from(array.clone()), &options).unwrap();
        assert!(direct(&swapped).is_none());
        assert_eq!(load(&swapped), array);

        let small = dir.path().join("small.h5");
        let little = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| i[0] as f64 + i[1] as f64);
        save_dyn(
            &small,
            "data",
            &DynArray::from(little.clone()),
            &SaveOptions::default(),
        )
        .unwrap();
        assert!(direct(&small).is_none());
        assert_eq!(load(&small), little);

        let chunked = dir.path().join("chunked.h5");
        {
            let file = hdf5_metno::File::create(&chunked).unwrap();
            file.new_dataset_builder()
                .chunk((1024, 7))
                .with_data(&array)
                .create("data")
                .unwrap();
        }
        assert!(direct(&chunked).is_none());
        assert_eq!(load(&chunked), array);
    }

    #[test]
    fn a_file_cut_inside_the_data_is_an_error_not_a_short_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.h5");
        save_dyn(
            &path,
            "data",
            &DynArray::from(big()),
            &SaveOptions::default(),
        )
        .unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let err = load_dyn(&path, "data").map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("cut.h5"), "{err}");
    }
}

//! Reading a dataset with libhdf5, in whichever process does it (the isolated reader's child,
//! or the caller's own for the trusted path): what a dataset is (`describe`), whether its size is
//! one the file can justify (`plan`), and its values into a caller's bytes (`read_all`,
//! `read_box`).

use std::ops::Range;
use std::path::Path;

use hdf5_metno::dataset::Layout;
use hdf5_metno::{Dataset, Datatype, File, H5Type};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndstore_core::{
    ArrayMeta, DType, DTypeKind, Element, Error, ErrorKind, LoadOptions, Order, Result,
    with_dtype_kind,
};
use serde::{Deserialize, Serialize};

use crate::h5::{At, META_ATTR, kind_of};
use crate::sys::{self, Allocation};

/// The most a chunked, filtered dataset may expand over its stored bytes before the excess
/// counts as data the file does not hold: deflate's maximum ratio (1032:1) rounded up. lzf's is
/// 88:1 and the shuffle and Fletcher-32 filters do not expand, so no filter ndstore reads beats it.
pub const MAX_FILTER_RATIO: u64 = 1040;

/// The memory limit for data a file does not hold (an unallocated dataset's fill values, or
/// more than its stored chunks can expand to) when the caller set none: 1 GiB. A 1.4 KB file can
/// declare 16 GiB of fill values; loading them needs [`LoadOptions::memory_limit`].
pub const DEFAULT_UNBACKED_LIMIT: u64 = 1 << 30;

/// Opens the file at `open_as` read-only with libhdf5; errors name `shown`, the path the
/// caller gave (the isolated reader opens `/proc/self/fd/N`).
pub(crate) fn open_file(open_as: &Path, shown: &Path) -> Result<File> {
    crate::h5::init();
    let file = File::open(open_as).map_err(|e| At::file(shown).h5(e))?;
    crate::h5::close_on_exec(&file);
    Ok(file)
}

/// Opens the `len` bytes of `file` from memory (libhdf5's core driver, no backing file), read
/// only: for a file whose name is gone, which libhdf5 cannot open by `/proc/self/fd`. `shown`
/// is the name errors give.
pub(crate) fn open_image(file: &std::fs::File, len: u64, shown: &Path) -> Result<File> {
    use std::os::unix::fs::FileExt;
    crate::h5::init();
    let too_large = || {
        Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot hold the file's {len} bytes in memory to open it"),
        )
        .with_path(shown)
    };
    if len == 0 {
        // libhdf5 would refuse an empty image for its arguments, not for what the file is.
        return Err(At::file(shown).error(
            ErrorKind::Format,
            "the file is empty, so it is not an HDF5 file",
        ));
    }
    let len = usize::try_from(len).map_err(|_| too_large())?;
    let mut image = Vec::new();
    image.try_reserve_exact(len).map_err(|_| too_large())?;
    image.resize(len, 0);
    file.read_exact_at(&mut image, 0)
        .map_err(|e| Error::io("cannot read the file", e).with_path(shown))?;
    sys::open_image(image).map_err(|e| At::file(shown).h5(e))
}

/// Opens the dataset `at` names, refusing a path that passes through an external link: libhdf5
/// would open the file the link names, and a file someone else wrote must not make ndstore open
/// others.
pub(crate) fn open_dataset(file: &File, at: At<'_>) -> Result<Dataset> {
    sys::open_dataset_in_file(file, at.object).map_err(|failed| match failed {
        sys::OpenFailed::ExternalLink => at.error(
            ErrorKind::Unsupported,
            format!(
                "the path '{}' passes through an external link into another file; ndstore \
                 does not follow links out of the file it was given (open the file the link \
                 names instead)",
                at.object
            ),
        ),
        sys::OpenFailed::Hdf5(e) => at.h5(e),
    })
}

/// Why a dataset cannot be loaded, before any of its data is read: its dataspace or its type.
pub(crate) fn unsupported(dataset: &Dataset) -> Option<(ErrorKind, String)> {
    match sys::is_null_space(dataset) {
        Ok(true) => {
            return Some((
                ErrorKind::Unsupported,
                "the dataset has a null dataspace (h5py.Empty): it holds no value at all, not \
                 even a 0-d one, and ndstore has no array for that"
                    .to_owned(),
            ));
        }
        Ok(false) => {}
        Err(e) => return Some((ErrorKind::Format, format!("libhdf5: {e}"))),
    }
    let datatype = match dataset.dtype() {
        Ok(datatype) => datatype,
        Err(e) => return Some((ErrorKind::Format, format!("libhdf5: {e}"))),
    };
    kind_of(&datatype).err().map(|_| {
        let detail = match datatype.to_descriptor() {
            Ok(descriptor) => format!(" ({descriptor})"),
            Err(_) => String::new(),
        };
        (
            ErrorKind::UnsupportedDType,
            format!(
                "the dataset holds an HDF5 {} type{detail}; ndstore loads booleans, integers, \
                 floats and complex numbers",
                sys::type_class(&datatype)
            ),
        )
    })
}

/// A dataset's metadata: dtype (byte order included), shape, and the order its `ndstore`
/// attribute records (C when it has none).
pub(crate) fn describe(dataset: &Dataset, at: At<'_>) -> Result<ArrayMeta> {
    if let Some((kind, why)) = unsupported(dataset) {
        return Err(at.error(kind, why));
    }
    let datatype = dataset.dtype().map_err(|e| at.h5(e))?;
    let kind = kind_of(&datatype).map_err(|why| at.error(ErrorKind::UnsupportedDType, why))?;
    let order = recorded_order(dataset, at)?;
    let shape = dataset.space().map_err(|e| at.h5(e))?.shape();
    Ok(ArrayMeta::new(
        DType::new(kind, sys::stored_order(&datatype)),
        shape,
        order,
    ))
}

/// The order the `ndstore` attribute records: a fixed-length string (what ndstore writes), or
/// the variable-length string older ndstore versions and h5py write. A damaged attribute is an
/// error, not C order: guessing would transpose a Fortran array silently.
fn recorded_order(dataset: &Dataset, at: At<'_>) -> Result<Order> {
    let at_attr = |why: String| {
        at.error(
            ErrorKind::Format,
            format!("its '{META_ATTR}' attribute {why}"),
        )
    };
    let names = dataset.attr_names().map_err(|e| at.h5(e))?;
    if !names.iter().any(|n| n == META_ATTR) {
        return Ok(Order::C);
    }
    let attr = dataset.attr(META_ATTR).map_err(|e| at.h5(e))?;
    let datatype = attr.dtype().map_err(|e| at.h5(e))?;
    let text = if sys::is_variable_string(&datatype) {
        match attr.read_scalar::<hdf5_metno::types::VarLenUnicode>() {
            Ok(text) => text.as_str().to_owned(),
            Err(_) => attr
                .read_scalar::<hdf5_metno::types::VarLenAscii>()
                .map_err(|e| at_attr(format!("cannot be read: {e}")))?
                .as_str()
                .to_owned(),
        }
    } else if sys::type_class(&datatype) == "fixed-length string" {
        let bytes = sys::attribute_bytes(&attr, 4096)
            .map_err(|e| at_attr(format!("cannot be read: {e}")))?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned()
    } else {
        return Err(at_attr(format!(
            "is an HDF5 {} value, not a string",
            sys::type_class(&datatype)
        )));
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| at_attr(format!("is not JSON ({e}): {text:?}")))?;
    match value.get("order").and_then(serde_json::Value::as_str) {
        None | Some("C") => Ok(Order::C),
        Some("F") => Ok(Order::Fortran),
        Some(other) => Err(at_attr(format!("records an unknown order {other:?}"))),
    }
}

/// How a dataset's data will be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The bytes of the array in memory (elements × element size).
    pub bytes: u64,
    /// For a contiguous, allocated, unfiltered dataset in this file whose stored type equals
    /// the memory type: the offset of its bytes, which are exactly the array's (libhdf5 would
    /// only copy them).
    pub direct: Option<u64>,
}

/// Checks that `dataset`'s data, `meta.shape` of it, is a size the file can justify (or that
/// the caller's memory limits allow), before anything is allocated, and says how to read it.
///
/// - Contiguous and allocated: the stored bytes must be exactly the shape's and lie inside the
///   file (`file_len` bytes).
/// - Chunked: the array may be at most [`MAX_FILTER_RATIO`] times its stored chunks (the
///   stored bytes themselves when unfiltered); anything more is fill value.
/// - Unallocated (all fill value), or more than the chunks justify: the caller's
///   [`LoadOptions::memory_limit`], or [`DEFAULT_UNBACKED_LIMIT`] when it set none.
///
/// The memory limits apply to the `wanted` bytes, a box of the dataset, when given, and to the
/// whole array otherwise; the caller's limit applies to every array. Data stored outside the
/// file (external storage, virtual datasets) and filters libhdf5 does not have are refused by
/// name.
pub(crate) fn plan(
    dataset: &Dataset,
    meta: &ArrayMeta,
    at: At<'_>,
    file_len: u64,
    options: &LoadOptions,
    wanted: Option<u64>,
) -> Result<Plan> {
    let whole = meta
        .byte_len()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            at.error(
                ErrorKind::TooLarge,
                format!("the shape {:?} of {} overflows", meta.shape, meta.dtype),
            )
        })?;
    let bytes = wanted.unwrap_or(whole);
    options.admit(bytes).map_err(|e| at.locate(e))?;
    let storage = storage(dataset, at)?;
    let layout = storage.layout;
    if !backed(dataset, meta, &storage, whole, file_len, at)? {
        let limit = options.memory_limit.unwrap_or(DEFAULT_UNBACKED_LIMIT);
        if bytes > limit {
            let stored = storage.stored;
            return Err(at.error(
                ErrorKind::OutOfMemory,
                format!(
                    "the dataset's {whole} bytes are not in the file (it stores {stored} bytes; \
                     the rest would be its fill value), and {bytes} bytes of such data are over \
                     the memory limit of {limit} bytes; set LoadOptions::memory_limit to load it"
                ),
            ));
        }
    }
    let direct = if wanted.is_none()
        && layout == Layout::Contiguous
        && storage.allocation == Allocation::Full
        && bytes > 0
    {
        let same_type = with_dtype_kind!(meta.dtype.kind, |T| stored_equals::<T>(dataset));
        if same_type { dataset.offset() } else { None }
    } else {
        None
    };
    Ok(Plan { bytes, direct })
}

/// How `dataset`'s data are stored, after checking they are all in this file and readable
/// ([`filters_in_file`]).
fn storage(dataset: &Dataset, at: At<'_>) -> Result<Storage> {
    let layout = dataset.layout();
    let filters = filters_in_file(dataset, layout, at)?;
    Ok(Storage {
        layout,
        allocation: sys::allocation(dataset).map_err(|e| at.h5(e))?,
        stored: dataset.storage_size(),
        filtered: !filters.is_empty(),
    })
}

/// Whether the file holds all of `dataset`'s data, `meta.shape` of it, as [`plan`] judges
/// it: stored, or expandable from its stored chunks under [`MAX_FILTER_RATIO`], rather than
/// fill value. False too when its storage cannot be judged (virtual or external data, a
/// missing filter, a stored size that contradicts the shape or the file's `file_len` bytes),
/// which a load reports.
pub(crate) fn holds_data(dataset: &Dataset, meta: &ArrayMeta, at: At<'_>, file_len: u64) -> bool {
    let Some(whole) = meta.byte_len().ok().and_then(|n| u64::try_from(n).ok()) else {
        return false;
    };
    storage(dataset, at)
        .and_then(|storage| backed(dataset, meta, &storage, whole, file_len, at))
        .unwrap_or(false)
}

/// The filters of a dataset whose data are all in this file and readable by this libhdf5; a
/// virtual dataset, external storage and a filter libhdf5 lacks are refused by name.
fn filters_in_file(dataset: &Dataset, layout: Layout, at: At<'_>) -> Result<Vec<sys::FilterInfo>> {
    if layout == Layout::Virtual {
        return Err(at.error(
            ErrorKind::Unsupported,
            "the dataset is virtual: its data lives in other files, and ndstore does not read \
             outside the file it was given",
        ));
    }
    let dcpl = dataset.dcpl().map_err(|e| at.h5(e))?;
    if let Some(external) = dcpl.external().first() {
        return Err(at.error(
            ErrorKind::Unsupported,
            format!(
                "the dataset's data is stored in other files (external storage, first '{}'), \
                 and ndstore does not read outside the file it was given",
                external.name
            ),
        ));
    }
    let filters = sys::filters(dataset).map_err(|e| at.h5(e))?;
    if let Some(missing) = filters.iter().find(|f| !f.available) {
        return Err(at.error(
            ErrorKind::Unsupported,
            format!(
                "the dataset needs HDF5 filter {} ('{}'), which this libhdf5 does not have; \
                 install the filter's plugin (HDF5_PLUGIN_PATH; h5py users get many from the \
                 hdf5plugin package) or rewrite the dataset with gzip",
                missing.id, missing.name
            ),
        ));
    }
    Ok(filters)
}

/// How a dataset's data are stored, as [`backed`] needs it.
struct Storage {
    layout: Layout,
    allocation: Allocation,
    /// The bytes the file stores for the dataset.
    stored: u64,
    /// Whether its chunks pass through filters (which may expand them).
    filtered: bool,
}

/// Whether the file holds the dataset's `whole` bytes of data (stored, or expanded from stored
/// chunks), rather than its fill value; a stored size that contradicts the shape or the file's
/// `file_len` bytes is an error.
fn backed(
    dataset: &Dataset,
    meta: &ArrayMeta,
    storage: &Storage,
    whole: u64,
    file_len: u64,
    at: At<'_>,
) -> Result<bool> {
    let fail = |kind: ErrorKind, why: String| at.error(kind, why);
    let stored = storage.stored;
    let file_type_size = dataset.dtype().map_err(|e| at.h5(e))?.size() as u64;
    let stored_len = u64::try_from(meta.element_count().unwrap_or(usize::MAX))
        .ok()
        .and_then(|n| n.checked_mul(file_type_size));
    Ok(match (storage.layout, storage.allocation) {
        _ if whole == 0 => true,
        (Layout::Contiguous | Layout::Compact, Allocation::Full) => {
            if stored_len != Some(stored) {
                return Err(fail(
                    ErrorKind::Corrupt,
                    format!(
                        "the dataset stores {stored} bytes but its shape {:?} of {}-byte values \
                         needs {}",
                        meta.shape,
                        file_type_size,
                        stored_len.map_or("more than 2^64".to_owned(), |n| n.to_string())
                    ),
                ));
            }
            if storage.layout == Layout::Contiguous {
                let offset = dataset.offset().ok_or_else(|| {
                    fail(
                        ErrorKind::Corrupt,
                        "the dataset is allocated but has no address".to_owned(),
                    )
                })?;
                if offset.checked_add(stored).is_none_or(|end| end > file_len) {
                    return Err(fail(
                        ErrorKind::Truncated,
                        format!(
                            "the dataset's {stored} bytes at offset {offset} run past the end \
                             of the file ({file_len} bytes)"
                        ),
                    ));
                }
            }
            true
        }
        (Layout::Chunked, Allocation::Full | Allocation::Partial) => {
            // Chunks do not overlap, so together they fit in the file: an index claiming more
            // lies, and would let fill values pass for stored data.
            if stored > file_len {
                return Err(fail(
                    ErrorKind::Corrupt,
                    format!(
                        "the dataset's chunk index claims {stored} stored bytes, more than the \
                         whole file holds ({file_len} bytes)"
                    ),
                ));
            }
            let ratio = if storage.filtered {
                MAX_FILTER_RATIO
            } else {
                1
            };
            stored.saturating_mul(ratio) >= whole
        }
        _ => false,
    })
}

/// Whether `dataset`'s stored type is exactly `T`'s memory type (H5Tequal): then libhdf5 would
/// convert nothing, and the stored bytes are the array's.
fn stored_equals<T: H5Type>(dataset: &Dataset) -> bool {
    matches!(
        (dataset.dtype(), Datatype::from_type::<T>()),
        (Ok(stored), Ok(memory)) if stored == memory
    )
}

/// Reads all of `dataset` through libhdf5 as `kind`'s memory type (native byte order) into
/// `out`, which holds exactly the array's bytes.
pub(crate) fn read_all(
    dataset: &Dataset,
    kind: DTypeKind,
    out: &mut [u8],
    at: At<'_>,
) -> Result<()> {
    let memory = with_dtype_kind!(kind, |T| Datatype::from_type::<T>()).map_err(|e| at.h5(e))?;
    sys::read_into(dataset, &memory, None, out).map_err(|e| at.h5(e))
}

/// The number of elements of the box `ranges`, checked against `shape` first.
pub(crate) fn box_shape(
    ranges: &[Range<usize>],
    shape: &[usize],
    at: At<'_>,
) -> Result<Vec<usize>> {
    crate::slice::selection(ranges, shape, at)?;
    Ok(ranges.iter().map(|r| r.end - r.start).collect())
}

/// Reads the box `ranges` of `dataset` as `kind`'s memory type into `out`, which holds exactly
/// the box's bytes, in C order.
pub(crate) fn read_box(
    dataset: &Dataset,
    kind: DTypeKind,
    ranges: &[Range<usize>],
    out: &mut [u8],
    at: At<'_>,
) -> Result<()> {
    let shape = dataset.shape();
    let selection = crate::slice::selection(ranges, &shape, at)?;
    if out.is_empty() {
        return Ok(());
    }
    let memory = with_dtype_kind!(kind, |T| Datatype::from_type::<T>()).map_err(|e| at.h5(e))?;
    let space = dataset
        .space()
        .and_then(|s| s.select(selection))
        .map_err(|e| at.h5(e))?;
    let whole = shape.is_empty();
    sys::read_into(dataset, &memory, (!whole).then_some(&space), out).map_err(|e| at.h5(e))
}

/// Turns raw element bytes, in C order, into an array of `shape` laid out in `order`,
/// validating every element (a `bool` must be 0 or 1).
pub(crate) fn array_from_raw<T: Element>(
    raw: Vec<T::Raw>,
    shape: &[usize],
    order: Order,
    at: At<'_>,
) -> Result<ArrayD<T>> {
    let values = T::from_raw_vec(raw).map_err(|index| {
        at.error(
            ErrorKind::Format,
            format!("element {index} is not a valid {}", T::KIND),
        )
    })?;
    let c = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| {
        at.error(
            ErrorKind::Format,
            format!("the data does not fit shape {shape:?}: {e}"),
        )
    })?;
    let fortran = order == Order::Fortran && shape.iter().filter(|&&n| n > 1).count() > 1;
    if fortran {
        let values: Vec<T> = c.t().iter().copied().collect();
        ArrayD::from_shape_vec(IxDyn(shape).f(), values)
            .map_err(|e| at.error(ErrorKind::Format, e.to_string()))
    } else {
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ndstore_core::{ByteOrder, DynArray, SaveOptions};

    use super::*;

    /// Large enough that the bulk reads split over threads.
    fn big() -> ArrayD<f64> {
        let n = ndstore_core::__private::bulk::PARALLEL_MIN / 8 + 4099;
        ArrayD::from_shape_fn(IxDyn(&[n / 7, 7]), |i| (i[0] * 7 + i[1]) as f64 * 0.5)
    }

    /// The plan a load of `data` makes.
    fn plan_of(path: &Path) -> Plan {
        let at = At::new(path, "data");
        let file = open_file(path, path).unwrap();
        let dataset = open_dataset(&file, at).unwrap();
        let meta = describe(&dataset, at).unwrap();
        let len = std::fs::metadata(path).unwrap().len();
        plan(&dataset, &meta, at, len, &LoadOptions::default(), None).unwrap()
    }

    /// Loads `data` both ways, checking they agree.
    fn load(path: &Path) -> ArrayD<f64> {
        let (_, isolated) = crate::load_dyn(path, "data").unwrap();
        let (_, trusted) = crate::trusted::load_dyn(path, "data").unwrap();
        assert!(isolated.bit_eq(&trusted));
        isolated.into_typed::<f64>().unwrap()
    }

    #[test]
    fn a_contiguous_native_dataset_is_read_straight_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.h5");
        let array = big();
        crate::save_dyn(
            &path,
            "data",
            &DynArray::from(array.clone()),
            &SaveOptions::default(),
        )
        .unwrap();
        assert!(plan_of(&path).direct.is_some());
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
        let offset = plan_of(&path).direct.expect("the direct path applies");
        assert!(offset >= 4096, "{offset}");
        assert_eq!(load(&path), array);
    }

    #[test]
    fn other_byte_orders_and_chunked_datasets_go_through_libhdf5() {
        let dir = tempfile::tempdir().unwrap();
        let array = big();
        let swapped = dir.path().join("be.h5");
        let options = SaveOptions::default().byte_order(ByteOrder::Big);
        crate::save_dyn(&swapped, "data", &DynArray::from(array.clone()), &options).unwrap();
        assert!(plan_of(&swapped).direct.is_none());
        assert_eq!(load(&swapped), array);

        let chunked = dir.path().join("chunked.h5");
        {
            let file = hdf5_metno::File::create(&chunked).unwrap();
            file.new_dataset_builder()
                .chunk((1024, 7))
                .with_data(&array)
                .create("data")
                .unwrap();
        }
        assert!(plan_of(&chunked).direct.is_none());
        assert_eq!(load(&chunked), array);
    }

    #[test]
    fn a_file_cut_inside_the_data_is_an_error_not_a_short_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.h5");
        crate::save_dyn(
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
        for err in [
            crate::load_dyn(&path, "data").map(|_| ()).unwrap_err(),
            crate::trusted::load_dyn(&path, "data")
                .map(|_| ())
                .unwrap_err(),
        ] {
            assert!(err.to_string().contains("cut.h5"), "{err}");
            assert!(
                matches!(err.kind(), ErrorKind::Truncated | ErrorKind::Format),
                "{err}"
            );
        }
    }
}

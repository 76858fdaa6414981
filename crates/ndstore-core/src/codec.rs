//! The data path shared by every backend: element bytes out of an array view in a chosen order
//! and byte order, and element bytes into a freshly allocated array, with bounded scratch memory.

use std::io;

use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};

use crate::dtype::{ByteOrder, DTypeKind, Order};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::ArrayMeta;

/// Elements per scratch chunk when values must be copied or byte-swapped on the way out.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// The memory order of a view: C when it is C-contiguous, Fortran when only Fortran-contiguous,
/// C otherwise (a save then copies the elements in C order).
pub fn layout_order<T>(view: &ArrayViewD<'_, T>) -> Order {
    if view.is_standard_layout() || !view.t().is_standard_layout() {
        Order::C
    } else {
        Order::Fortran
    }
}

/// Reverses the bytes of every `width`-byte unit of `bytes`, turning little-endian values into
/// big-endian ones and back.
pub fn swap_bytes_in_place(bytes: &mut [u8], width: usize) {
    fn swap<T: bytemuck::Pod>(bytes: &mut [u8], f: impl Fn(T) -> T) -> bool {
        match bytemuck::try_cast_slice_mut::<u8, T>(bytes) {
            Ok(values) => {
                values.iter_mut().for_each(|v| *v = f(*v));
                true
            }
            Err(_) => false,
        }
    }
    let done = match width {
        0 | 1 => true,
        2 => swap(bytes, u16::swap_bytes),
        4 => swap(bytes, u32::swap_bytes),
        8 => swap(bytes, u64::swap_bytes),
        _ => false,
    };
    if !done {
        bytes
            .chunks_exact_mut(width.max(1))
            .for_each(<[u8]>::reverse);
    }
}

/// Hands the element bytes of `view`, laid out in `order` and `byte_order`, to `sink`.
///
/// A contiguous view in native byte order goes out as one slice, without a copy; anything else
/// goes through a bounded scratch buffer, so memory use does not grow with the array.
///
/// # Errors
///
/// The first error `sink` returns; nothing is handed to it after that.
pub fn write_elements<T: Element>(
    view: &ArrayViewD<'_, T>,
    order: Order,
    byte_order: ByteOrder,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let swap = byte_order.needs_swap();
    let in_order = match order {
        Order::C => view.to_slice(),
        // A Fortran-contiguous view is a C-contiguous view of the reversed axes.
        Order::Fortran => view.clone().reversed_axes().to_slice(),
    };
    if let (Some(slice), false) = (in_order, swap) {
        return sink(bytemuck::cast_slice(slice));
    }
    let itemsize = std::mem::size_of::<T>();
    let mut scratch: Vec<u8> = Vec::with_capacity(CHUNK_ELEMENTS.min(view.len()) * itemsize);
    let mut emit = |scratch: &mut Vec<u8>| -> io::Result<()> {
        if swap {
            swap_bytes_in_place(scratch, T::KIND.swap_width());
        }
        let result = sink(scratch);
        scratch.clear();
        result
    };
    if let Some(slice) = in_order {
        for chunk in slice.chunks(CHUNK_ELEMENTS) {
            scratch.extend_from_slice(bytemuck::cast_slice(chunk));
            emit(&mut scratch)?;
        }
        return Ok(());
    }
    let mut push_all = |iter: &mut dyn Iterator<Item = &T>| -> io::Result<()> {
        for value in iter {
            scratch.extend_from_slice(bytemuck::bytes_of(value));
            if scratch.len() >= CHUNK_ELEMENTS * itemsize {
                emit(&mut scratch)?;
            }
        }
        if scratch.is_empty() {
            Ok(())
        } else {
            emit(&mut scratch)
        }
    };
    match order {
        Order::C => push_all(&mut view.iter()),
        Order::Fortran => push_all(&mut view.t().iter()),
    }
}

/// Allocates a zeroed buffer of `count` raw elements, advised for transparent huge pages when it
/// is large, so a bulk read into it takes few page faults.
///
/// # Errors
///
/// [`ErrorKind::OutOfMemory`] naming the size when the allocator refuses; the caller adds the
/// file. Callers check the size against the file and [`LoadOptions`](crate::LoadOptions) first.
pub fn alloc_raw<R: bytemuck::Pod>(count: usize) -> Result<Vec<R>> {
    let mut buffer: Vec<R> = crate::load::try_zeroed_vec(count, None)?;
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(buffer.as_mut_slice());
    crate::os::advise_huge_pages(bytes);
    crate::bulk::touch_zeroed(bytes);
    Ok(buffer)
}

/// Allocates `count` zeroed elements, advised for transparent huge pages when large: for
/// libraries that read into a buffer the caller provides (libhdf5's `read_into_raw`).
///
/// # Errors
///
/// [`ErrorKind::OutOfMemory`] naming the size when the allocator refuses.
pub fn alloc_elements<T: Element>(count: usize) -> Result<Vec<T>> {
    let mut buffer: Vec<T> = crate::load::try_zeroed_vec(count, None)?;
    let bytes = std::mem::size_of_val(buffer.as_slice());
    crate::os::advise_huge_pages_of(buffer.as_mut_ptr().cast::<u8>(), bytes);
    crate::bulk::touch_zeroed(buffer.as_mut_slice());
    Ok(buffer)
}

/// Builds an array of `meta`'s shape and order from raw values stored in `meta`'s byte order.
///
/// The buffer must hold exactly the element count; bytes are swapped in place when the stored
/// order is not the native one, and `bool` bytes other than 0 and 1 are refused with the element
/// index, so the caller can name the byte offset.
///
/// # Errors
///
/// `ErrorKind::TypeMismatch` when `T` is not the metadata's element type; `ErrorKind::Format` for a
/// `bool` byte other than 0 or 1, with the element index; `ErrorKind::InvalidInput` when the buffer
/// does not hold the shape's element count.
pub fn array_from_raw<T: Element>(meta: &ArrayMeta, mut raw: Vec<T::Raw>) -> Result<ArrayD<T>> {
    if meta.dtype.kind != T::KIND {
        return Err(crate::array::type_mismatch(meta.dtype.kind, T::KIND));
    }
    if meta.dtype.byte_order.needs_swap() {
        swap_bytes_in_place(
            bytemuck::cast_slice_mut(raw.as_mut_slice()),
            T::KIND.swap_width(),
        );
    }
    let values = T::from_raw_vec(raw).map_err(|index| invalid_element(T::KIND, index))?;
    let shape = IxDyn(&meta.shape).set_f(meta.order == Order::Fortran);
    ArrayD::from_shape_vec(shape, values).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("data does not fit shape {:?}: {e}", meta.shape),
        )
    })
}

/// The error for an invalid element value at `index`, placed at its byte offset in the data.
pub fn invalid_element(kind: DTypeKind, index: usize) -> Error {
    let offset = (index as u64).saturating_mul(kind.itemsize() as u64);
    Error::new(
        ErrorKind::Format,
        format!("element {index} is not a valid {kind}"),
    )
    .at_offset(offset)
}

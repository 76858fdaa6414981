//! Boxes of elements moved between C-ordered byte buffers: the one copy loop that chunks,
//! shards and regions share (contiguous runs along the last axis are copied at once).

/// A box inside a C-ordered buffer of `shape`: where it starts and how far it reaches.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    /// The buffer's shape.
    pub shape: &'a [usize],
    /// The box's first index in the buffer.
    pub start: &'a [usize],
}

/// The C-order strides (in elements) of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// Calls `run(src_offset, dst_offset, len)` (in elements) for every contiguous run of a box of
/// `extent` at `src` and `dst`. Callers keep the boxes inside their buffers.
fn for_each_run(
    src: Place<'_>,
    dst: Place<'_>,
    extent: &[usize],
    mut run: impl FnMut(usize, usize, usize),
) {
    if extent.contains(&0) {
        return;
    }
    let ndim = extent.len();
    if ndim == 0 {
        run(0, 0, 1);
        return;
    }
    let (ss, ds) = (strides(src.shape), strides(dst.shape));
    let last = ndim - 1;
    let mut index = vec![0usize; last];
    loop {
        let offset = |start: &[usize], strides: &[usize]| {
            (0..last)
                .map(|a| (start[a] + index[a]) * strides[a])
                .sum::<usize>()
                + start[last]
        };
        run(offset(src.start, &ss), offset(dst.start, &ds), extent[last]);
        // The odometer over every axis but the last.
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < extent[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// Copies a box of `extent` elements of `itemsize` bytes from `src_bytes` at `src` to
/// `dst_bytes` at `dst`.
pub fn copy_box(
    src_bytes: &[u8],
    src: Place<'_>,
    dst_bytes: &mut [u8],
    dst: Place<'_>,
    extent: &[usize],
    itemsize: usize,
) {
    for_each_run(src, dst, extent, |s, d, n| {
        dst_bytes[d * itemsize..(d + n) * itemsize]
            .copy_from_slice(&src_bytes[s * itemsize..(s + n) * itemsize]);
    });
}

/// Fills a box of `extent` at `dst` with copies of the element `value`.
pub fn fill_box(dst_bytes: &mut [u8], dst: Place<'_>, extent: &[usize], value: &[u8]) {
    let itemsize = value.len();
    let whole = vec![0usize; dst.shape.len()];
    let src = Place {
        shape: dst.shape,
        start: &whole,
    };
    for_each_run(src, dst, extent, |_, d, n| {
        for element in dst_bytes[d * itemsize..(d + n) * itemsize].chunks_exact_mut(itemsize) {
            element.copy_from_slice(value);
        }
    });
}

/// True when every element of `bytes` equals `value`.
pub fn all_equal(bytes: &[u8], value: &[u8]) -> bool {
    if value.iter().all(|&b| b == 0) {
        return bytes.iter().all(|&b| b == 0);
    }
    bytes.chunks_exact(value.len().max(1)).all(|e| e == value)
}

/// The elements of `data` (C order, `shape`) permuted so that axis `i` of the result is axis
/// `perm[i]` of the input (numpy's `transpose(perm)`).
pub fn permute(data: &[u8], shape: &[usize], perm: &[usize], itemsize: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    let ndim = shape.len();
    if ndim == 0 || data.is_empty() {
        out.copy_from_slice(data);
        return out;
    }
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let moved: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut index = vec![0usize; ndim];
    for chunk in out.chunks_exact_mut(itemsize) {
        let src: usize = index.iter().zip(&moved).map(|(i, s)| i * s).sum();
        chunk.copy_from_slice(&data[src * itemsize..(src + 1) * itemsize]);
        for axis in (0..ndim).rev() {
            index[axis] += 1;
            if index[axis] < out_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// The inverse of the permutation `perm`.
pub fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0usize; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_lands_where_it_belongs() {
        // A 2x2 box from (1, 1) of a 3x3 buffer to (0, 1) of a 2x4 buffer.
        let src: Vec<u8> = (0..9).collect();
        let mut dst = vec![0u8; 8];
        copy_box(
            &src,
            Place {
                shape: &[3, 3],
                start: &[1, 1],
            },
            &mut dst,
            Place {
                shape: &[2, 4],
                start: &[0, 1],
            },
            &[2, 2],
            1,
        );
        assert_eq!(dst, [0, 4, 5, 0, 0, 7, 8, 0]);
        fill_box(
            &mut dst,
            Place {
                shape: &[2, 4],
                start: &[1, 0],
            },
            &[1, 2],
            &[9],
        );
        assert_eq!(dst, [0, 4, 5, 0, 9, 9, 8, 0]);
    }

    #[test]
    fn permute_is_numpy_transpose() {
        // np.arange(6).reshape(2, 3).transpose(1, 0) is [[0, 3], [1, 4], [2, 5]].
        let data: Vec<u8> = (0..6).collect();
        let t = permute(&data, &[2, 3], &[1, 0], 1);
        assert_eq!(t, [0, 3, 1, 4, 2, 5]);
        assert_eq!(permute(&t, &[3, 2], &inverse(&[1, 0]), 1), data);
        // Three axes, two-byte elements.
        let data: Vec<u8> = (0..48).collect();
        let t = permute(&data, &[2, 3, 4], &[2, 0, 1], 2);
        let back = permute(&t, &[4, 2, 3], &inverse(&[2, 0, 1]), 2);
        assert_eq!(back, data);
    }
}

//! lzf (HDF5 filter 32000, h5py's `compression="lzf"`), read-only: a decoder of our own in safe
//! Rust, registered with libhdf5 so lzf datasets read like gzip ones. ndstore does not write lzf.
//!
//! The format is liblzf's: a control byte below 32 starts a run of `ctrl + 1` literal bytes;
//! any other is a back reference of `(ctrl >> 5) + 2` bytes (a length of 7 takes one more length
//! byte) at a distance of `((ctrl & 31) << 8) + next + 1` bytes back in the output. The decoder
//! first measures the output without writing (refusing runs past the input and references before
//! the start), so the buffer it hands libhdf5 is exactly as large as the chunk's data.

use std::ffi::{c_uint, c_void};

use hdf5_metno_sys::h5z::{H5Z_CLASS_T_VERS, H5Z_FLAG_REVERSE, H5Z_class2_t};

/// lzf's filter id, registered with The HDF Group for h5py.
pub(crate) const LZF_ID: i32 = 32000;

/// Why an lzf stream cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LzfError {
    /// A literal run or a back reference's bytes go past the end of the input.
    Truncated,
    /// A back reference points before the start of the output.
    BadReference,
    /// The output buffer is too small.
    OutputFull,
}

/// One step of the stream: a literal run of `len` bytes from input offset `from`, or a copy of
/// `len` bytes from `distance` bytes back in the output.
enum Token {
    Literal { from: usize, len: usize },
    Copy { distance: usize, len: usize },
}

/// The token at `at`, and the input offset after it.
fn token(input: &[u8], at: usize) -> Result<(Token, usize), LzfError> {
    let ctrl = usize::from(input[at]);
    let mut next = at + 1;
    if ctrl < 32 {
        let len = ctrl + 1;
        if input.len() - next < len {
            return Err(LzfError::Truncated);
        }
        return Ok((Token::Literal { from: next, len }, next + len));
    }
    let mut len = ctrl >> 5;
    if len == 7 {
        len += usize::from(*input.get(next).ok_or(LzfError::Truncated)?);
        next += 1;
    }
    let low = usize::from(*input.get(next).ok_or(LzfError::Truncated)?);
    next += 1;
    let distance = ((ctrl & 0x1f) << 8) + low + 1;
    Ok((
        Token::Copy {
            distance,
            len: len + 2,
        },
        next,
    ))
}

/// The size `input` decompresses to, checking every token.
pub(crate) fn decompressed_len(input: &[u8]) -> Result<usize, LzfError> {
    let mut at = 0;
    let mut out = 0usize;
    while at < input.len() {
        let (token, next) = token(input, at)?;
        out = match token {
            Token::Literal { len, .. } => out + len,
            Token::Copy { distance, len } => {
                if distance > out {
                    return Err(LzfError::BadReference);
                }
                out + len
            }
        };
        at = next;
    }
    Ok(out)
}

/// Decompresses `input` into the start of `output`; returns the bytes written.
pub(crate) fn decompress(input: &[u8], output: &mut [u8]) -> Result<usize, LzfError> {
    let mut at = 0;
    let mut out = 0usize;
    while at < input.len() {
        let (token, next) = token(input, at)?;
        match token {
            Token::Literal { from, len } => {
                let dest = output.get_mut(out..out + len).ok_or(LzfError::OutputFull)?;
                dest.copy_from_slice(&input[from..from + len]);
            }
            Token::Copy { distance, len } => {
                if distance > out {
                    return Err(LzfError::BadReference);
                }
                if output.len() - out < len {
                    return Err(LzfError::OutputFull);
                }
                // Byte by byte: the source may overlap what this copy writes (a run).
                for i in out..out + len {
                    output[i] = output[i - distance];
                }
            }
        }
        out += match token {
            Token::Literal { len, .. } | Token::Copy { len, .. } => len,
        };
        at = next;
    }
    Ok(out)
}

/// Decodes one chunk for libhdf5: a fresh `malloc`ed buffer of exactly the decompressed size,
/// or `None` (libhdf5 then reports the filter's failure). `chunk_bytes` is the chunk's size as
/// h5py records it in the filter's third parameter, when present: the data may not exceed it.
fn decode_chunk(input: &[u8], chunk_bytes: Option<usize>) -> Option<(*mut c_void, usize)> {
    let len = decompressed_len(input).ok()?;
    if len == 0 || chunk_bytes.is_some_and(|max| max > 0 && len > max) {
        return None;
    }
    // libhdf5 frees the buffer a filter returns with free(), so it comes from malloc.
    // SAFETY: malloc has no preconditions; a null result is handled.
    let buffer = unsafe { libc::malloc(len) };
    if buffer.is_null() {
        return None;
    }
    // SAFETY: `buffer` is a fresh allocation of `len` bytes that nothing else refers to; the
    // slice does not outlive this statement.
    let written = decompress(input, unsafe {
        std::slice::from_raw_parts_mut(buffer.cast::<u8>(), len)
    });
    if written != Ok(len) {
        // SAFETY: `buffer` came from malloc above and is freed once, here.
        unsafe { libc::free(buffer) };
        return None;
    }
    Some((buffer, len))
}

/// The filter function libhdf5 calls for each chunk (decoding only).
///
/// # Safety
///
/// libhdf5's filter contract: `*buf` points at `nbytes` readable bytes allocated with malloc,
/// `buf_size` and `buf` are writable, and `cd_values` points at `cd_nelmts` values.
unsafe extern "C" fn filter(
    flags: c_uint,
    cd_nelmts: libc::size_t,
    cd_values: *const c_uint,
    nbytes: libc::size_t,
    buf_size: *mut libc::size_t,
    buf: *mut *mut c_void,
) -> libc::size_t {
    if flags & H5Z_FLAG_REVERSE == 0 || buf.is_null() || buf_size.is_null() {
        // No encoder: ndstore never writes lzf.
        return 0;
    }
    let result = std::panic::catch_unwind(|| {
        // SAFETY: the filter contract above: `*buf` holds `nbytes` bytes.
        let input = unsafe { std::slice::from_raw_parts((*buf).cast::<u8>(), nbytes) };
        let chunk_bytes = if cd_nelmts >= 3 && !cd_values.is_null() {
            // SAFETY: `cd_values` holds `cd_nelmts` values, so the third exists.
            usize::try_from(unsafe { *cd_values.add(2) }).ok()
        } else {
            None
        };
        decode_chunk(input, chunk_bytes)
    });
    match result {
        Ok(Some((buffer, len))) => {
            // SAFETY: the filter contract: `*buf` came from malloc and is ours to replace.
            unsafe {
                libc::free(*buf);
                *buf = buffer;
                *buf_size = len;
            }
            len
        }
        _ => 0,
    }
}

/// The filter's name, as h5py registers it.
const NAME: &[u8] = b"lzf\0";

/// The filter's class; a constant reference, so it is promoted to a value that lives as long as
/// the process (a `static` would need raw pointers to be `Sync`).
const CLASS: &H5Z_class2_t = &H5Z_class2_t {
    version: H5Z_CLASS_T_VERS as _,
    id: LZF_ID,
    encoder_present: 0,
    decoder_present: 1,
    name: NAME.as_ptr().cast(),
    can_apply: None,
    set_local: None,
    filter: Some(filter),
};

/// Registers the decoder with libhdf5 (once per process, from `init`).
pub(crate) fn register() {
    // SAFETY: `filter` decodes any input safely (it validates the whole stream before it
    // writes) and follows libhdf5's buffer contract; the class and its name are 'static.
    if let Err(e) = unsafe { crate::sys::register_filter(CLASS) } {
        log::warn!("could not register the lzf decoder with libhdf5: {e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn literals_and_overlapping_references_decode() {
        // "abc" as a literal run, then a reference 3 back of length 6: "abcabc".
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(decompressed_len(&input), Ok(9));
        let mut out = [0u8; 9];
        assert_eq!(decompress(&input, &mut out), Ok(9));
        assert_eq!(&out, b"abcabcabc");
        // A run of one byte: a reference at distance 1, long form (7 + 10 + 2 = 19 bytes).
        let input = [0, b'x', (7 << 5), 10, 0];
        let mut out = vec![0u8; decompressed_len(&input).unwrap()];
        decompress(&input, &mut out).unwrap();
        assert_eq!(out, vec![b'x'; 20]);
    }

    #[test]
    fn damaged_streams_are_refused_not_read_past() {
        assert_eq!(decompressed_len(&[5, b'a']), Err(LzfError::Truncated));
        assert_eq!(
            decompressed_len(&[0, b'a', 1 << 5]),
            Err(LzfError::Truncated)
        );
        assert_eq!(decompressed_len(&[7 << 5]), Err(LzfError::Truncated));
        assert_eq!(
            decompressed_len(&[0, b'a', 1 << 5, 1]),
            Err(LzfError::BadReference)
        );
        let mut small = [0u8; 2];
        assert_eq!(
            decompress(&[2, 1, 2, 3], &mut small),
            Err(LzfError::OutputFull)
        );
        assert!(decode_chunk(&[2, 1, 2, 3], Some(2)).is_none());
    }
}

//! Zarr v3 codecs, ndstore's own pipeline: `transpose`, `bytes` (both byte orders),
//! `sharding_indexed`, `gzip`, `zstd` and `crc32c`.
//!
//! A decoded chunk is a C-ordered byte buffer of native-endian elements. Decoding hostile bytes
//! never panics and never allocates more than the chunk's declared size: lengths are checked
//! before allocation, decompressors stop one byte past the size the next codec needs, and every
//! allocation is fallible.

use std::borrow::Cow;
use std::io::{Read, Write};

use ndstore_core::{ByteOrder, DType, DTypeKind, Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::grid::{self, Place};
use crate::meta::{chunk_bytes, format_error, named_config, usize_list};

/// Bytes of the `crc32c` codec's checksum.
const CRC_LEN: usize = 4;

/// The marker of an inner chunk a shard does not hold: offset and length both `2^64 - 1`.
const EMPTY: u64 = u64::MAX;

/// One codec of a chain.
#[derive(Clone, Debug, PartialEq)]
pub enum Codec {
    /// array → array: axis `i` of the encoded chunk is axis `order[i]` of the decoded one.
    Transpose(Vec<usize>),
    /// array → bytes: the elements in this byte order (`None` for single-byte types).
    Bytes(Option<ByteOrder>),
    /// array → bytes: a shard of inner chunks with an index.
    Sharding(Box<Sharding>),
    /// bytes → bytes: a gzip stream at this level.
    Gzip(u32),
    /// bytes → bytes: a zstd frame at this level, with or without its content checksum.
    Zstd {
        /// The compression level.
        level: i32,
        /// The frame carries a checksum of its content.
        checksum: bool,
    },
    /// bytes → bytes: a CRC-32C of the bytes appended, little-endian.
    Crc32c,
}

/// The `sharding_indexed` codec's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharding {
    /// The inner chunks' shape, which divides the shard's.
    pub chunk_shape: Vec<usize>,
    /// The inner chunks' codecs.
    pub codecs: CodecChain,
    /// The index's codecs: `bytes` and optionally `crc32c`, so its length is fixed.
    pub index_codecs: CodecChain,
    /// The index comes first in the shard (`start`) instead of last (`end`).
    pub index_at_start: bool,
}

impl Codec {
    /// The `bytes` codec for `dtype`'s byte order.
    pub fn bytes_for(dtype: DType) -> Codec {
        Codec::Bytes(dtype.kind.has_byte_order().then_some(dtype.byte_order))
    }

    fn from_json(value: &Value) -> Result<Codec> {
        let (name, config) = named_config(value, "a codec")?;
        let field = |key: &str| config.and_then(|c| c.get(key));
        let bad = |what: &str| format_error(format!("codec '{name}': {what}"));
        Ok(match name {
            "transpose" => {
                let order = field("order").ok_or_else(|| bad("no order"))?;
                Codec::Transpose(usize_list(order, "transpose order")?)
            }
            "bytes" => Codec::Bytes(match field("endian").and_then(Value::as_str) {
                None => None,
                Some("little") => Some(ByteOrder::Little),
                Some("big") => Some(ByteOrder::Big),
                Some(other) => return Err(bad(&format!("endian '{other}'"))),
            }),
            "gzip" => {
                let level = field("level").and_then(Value::as_u64).unwrap_or(6);
                Codec::Gzip(
                    u32::try_from(level)
                        .ok()
                        .filter(|&l| l <= 9)
                        .ok_or_else(|| bad("level"))?,
                )
            }
            "zstd" => {
                let level = field("level").and_then(Value::as_i64).unwrap_or(0);
                Codec::Zstd {
                    level: i32::try_from(level).map_err(|_| bad("level"))?,
                    checksum: field("checksum").and_then(Value::as_bool).unwrap_or(false),
                }
            }
            "crc32c" => Codec::Crc32c,
            "sharding_indexed" => {
                let chunk_shape = usize_list(
                    field("chunk_shape").ok_or_else(|| bad("no chunk_shape"))?,
                    "inner chunk_shape",
                )?;
                let codecs =
                    CodecChain::from_json(field("codecs").ok_or_else(|| bad("no codecs"))?)?;
                let index_codecs = match field("index_codecs") {
                    Some(v) => CodecChain::from_json(v)?,
                    None => {
                        CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c])
                    }
                };
                let index_at_start = match field("index_location").and_then(Value::as_str) {
                    None | Some("end") => false,
                    Some("start") => true,
                    Some(other) => return Err(bad(&format!("index_location '{other}'"))),
                };
                Codec::Sharding(Box::new(Sharding {
                    chunk_shape,
                    codecs,
                    index_codecs,
                    index_at_start,
                }))
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "codec '{other}' is not supported (ndstore reads transpose, bytes, sharding_indexed, gzip, zstd and crc32c)"
                    ),
                ));
            }
        })
    }

    fn to_json(&self) -> Value {
        match self {
            Codec::Transpose(order) => {
                json!({"name": "transpose", "configuration": {"order": order}})
            }
            Codec::Bytes(None) => json!({"name": "bytes", "configuration": {}}),
            Codec::Bytes(Some(order)) => {
                let endian = if *order == ByteOrder::Big {
                    "big"
                } else {
                    "little"
                };
                json!({"name": "bytes", "configuration": {"endian": endian}})
            }
            Codec::Gzip(level) => json!({"name": "gzip", "configuration": {"level": level}}),
            Codec::Zstd { level, checksum } => {
                json!({"name": "zstd", "configuration": {"level": level, "checksum": checksum}})
            }
            Codec::Crc32c => json!({"name": "crc32c"}),
            Codec::Sharding(s) => json!({"name": "sharding_indexed", "configuration": {
                "chunk_shape": s.chunk_shape,
                "codecs": s.codecs.to_json(),
                "index_codecs": s.index_codecs.to_json(),
                "index_location": if s.index_at_start { "start" } else { "end" },
            }}),
        }
    }

    fn is_array_to_bytes(&self) -> bool {
        matches!(self, Codec::Bytes(_) | Codec::Sharding(_))
    }
}

/// A chain of codecs: array → array codecs, one array → bytes codec, bytes → bytes codecs.
#[derive(Clone, Debug, PartialEq)]
pub struct CodecChain {
    codecs: Vec<Codec>,
}

/// What decoding one chunk needs besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    /// The element type.
    pub kind: DTypeKind,
    /// The fill value's native bytes.
    pub fill: &'a [u8],
}

impl CodecChain {
    /// A chain of `codecs` (checked by `validate`).
    pub fn new(codecs: Vec<Codec>) -> CodecChain {
        CodecChain { codecs }
    }

    /// The codecs, in encoding order.
    pub fn codecs(&self) -> &[Codec] {
        &self.codecs
    }

    /// Parses the `codecs` list of `zarr.json`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for malformed entries, [`ErrorKind::Unsupported`] naming an
    /// unknown codec.
    pub fn from_json(value: &Value) -> Result<CodecChain> {
        let Value::Array(items) = value else {
            return Err(format_error("codecs is not a list"));
        };
        if items.len() > 16 {
            return Err(format_error("codecs has more than 16 entries"));
        }
        Ok(CodecChain {
            codecs: items.iter().map(Codec::from_json).collect::<Result<_>>()?,
        })
    }

    /// The `codecs` list of `zarr.json`.
    pub fn to_json(&self) -> Value {
        Value::Array(self.codecs.iter().map(Codec::to_json).collect())
    }

    /// The byte order elements are stored in: the `bytes` codec's (a sharded chain's inner one).
    pub fn byte_order(&self) -> ByteOrder {
        for codec in &self.codecs {
            match codec {
                Codec::Bytes(order) => return order.unwrap_or(ByteOrder::NotApplicable),
                Codec::Sharding(s) => return s.codecs.byte_order(),
                _ => {}
            }
        }
        ByteOrder::NotApplicable
    }

    /// The sharding codec, when the chain's array → bytes codec is one.
    pub fn sharding(&self) -> Option<&Sharding> {
        self.codecs.iter().find_map(|c| match c {
            Codec::Sharding(s) => Some(&**s),
            _ => None,
        })
    }

    /// The sharding codec when it is the chain's only codec: a shard whose inner chunks can
    /// then be read by byte ranges, without the rest of the shard.
    pub(crate) fn sharding_alone(&self) -> Option<&Sharding> {
        match self.codecs.as_slice() {
            [Codec::Sharding(s)] => Some(s),
            _ => None,
        }
    }

    /// Checks the chain's order and every codec against chunks of `kind` and `shape`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] saying which codec does not fit.
    pub fn validate(&self, kind: DTypeKind, shape: &[usize]) -> Result<()> {
        let split = self
            .codecs
            .iter()
            .position(Codec::is_array_to_bytes)
            .ok_or_else(|| {
                format_error("the codecs have no array-to-bytes codec (bytes or sharding_indexed)")
            })?;
        let mut shape = shape.to_vec();
        for codec in &self.codecs[..split] {
            let Codec::Transpose(order) = codec else {
                return Err(format_error(
                    "a bytes-to-bytes codec comes before the array-to-bytes codec",
                ));
            };
            let mut seen = vec![false; shape.len()];
            if order.len() != shape.len()
                || !order
                    .iter()
                    .all(|&a| a < seen.len() && !std::mem::replace(&mut seen[a], true))
            {
                return Err(format_error(format!(
                    "transpose order {order:?} is no permutation of {} axes",
                    shape.len()
                )));
            }
            shape = order.iter().map(|&a| shape[a]).collect();
        }
        for codec in &self.codecs[split + 1..] {
            if !matches!(codec, Codec::Gzip(_) | Codec::Zstd { .. } | Codec::Crc32c) {
                return Err(format_error(
                    "an array codec comes after the array-to-bytes codec",
                ));
            }
        }
        match &self.codecs[split] {
            Codec::Bytes(None) if kind.has_byte_order() => Err(format_error(format!(
                "the bytes codec needs an endian for {kind}"
            ))),
            Codec::Sharding(s) => s.validate(kind, &shape),
            _ => Ok(()),
        }
    }

    /// Encodes a chunk: `data` holds the elements of `shape` in C order, native byte order.
    ///
    /// # Errors
    ///
    /// The compressors' errors (none in practice).
    pub fn encode(&self, data: Vec<u8>, shape: &[usize], element: Element<'_>) -> Result<Vec<u8>> {
        Ok(concat(self.encode_parts(
            Cow::Owned(data),
            shape,
            element,
        )?))
    }

    /// Encodes a chunk into the parts it is stored as, in order: borrowed runs of `data`
    /// where the chain stores elements as they are (`bytes` in native order, alone or inside a
    /// shard whose inner chunks are runs of it), owned bytes for what the codecs made. A chunk
    /// written from the caller's array is then never copied into a buffer of its own.
    ///
    /// # Errors
    ///
    /// The compressors' errors (none in practice).
    pub(crate) fn encode_parts<'a>(
        &self,
        data: Cow<'a, [u8]>,
        shape: &[usize],
        element: Element<'_>,
    ) -> Result<Parts<'a>> {
        let itemsize = element.kind.itemsize();
        let mut shape = shape.to_vec();
        let mut data = data;
        let mut bytes: Option<Parts<'a>> = None;
        for codec in &self.codecs {
            match codec {
                Codec::Transpose(order) => {
                    data = Cow::Owned(grid::permute(&data, &shape, order, itemsize));
                    shape = order.iter().map(|&a| shape[a]).collect();
                }
                Codec::Bytes(order) => {
                    if order.is_some_and(ByteOrder::needs_swap) {
                        ndstore_core::__private::codec::swap_bytes_in_place(
                            data.to_mut(),
                            element.kind.swap_width(),
                        );
                    }
                    bytes = Some(vec![std::mem::take(&mut data)]);
                }
                Codec::Sharding(s) => {
                    let parts = match std::mem::take(&mut data) {
                        Cow::Borrowed(data) => s.encode_parts(data, &shape, element)?,
                        // Nothing outlives an owned buffer: the shard is made whole.
                        Cow::Owned(data) => {
                            vec![Cow::Owned(concat(s.encode_parts(&data, &shape, element)?))]
                        }
                    };
                    bytes = Some(parts);
                }
                Codec::Gzip(level) => {
                    let input = concat(bytes.take().unwrap_or_default());
                    bytes = Some(vec![Cow::Owned(gzip(input, *level)?)]);
                }
                Codec::Zstd { level, checksum } => {
                    let input = joined(bytes.take().unwrap_or_default());
                    bytes = Some(vec![Cow::Owned(zstd_encode(&input, *level, *checksum)?)]);
                }
                Codec::Crc32c => {
                    let mut parts = bytes.take().unwrap_or_default();
                    let crc = parts
                        .iter()
                        .fold(0, |crc, part| crc32c::crc32c_append(crc, part));
                    parts.push(Cow::Owned(crc.to_le_bytes().to_vec()));
                    bytes = Some(parts);
                }
            }
        }
        Ok(bytes.unwrap_or_default())
    }

    /// Decodes a chunk of `shape` into its elements (C order, native byte order).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] for a checksum that does not match, [`ErrorKind::Truncated`] or
    /// [`ErrorKind::Format`] for bytes that do not decode to the chunk's size (the caller names
    /// the file and the chunk); [`ErrorKind::OutOfMemory`] when the allocator refuses.
    pub fn decode(
        &self,
        encoded: Vec<u8>,
        shape: &[usize],
        element: Element<'_>,
    ) -> Result<Vec<u8>> {
        let itemsize = element.kind.itemsize();
        // The shapes each array codec sees, outermost first.
        let mut shapes = vec![shape.to_vec()];
        let split = self
            .codecs
            .iter()
            .position(Codec::is_array_to_bytes)
            .unwrap_or(0);
        for codec in &self.codecs[..split] {
            if let Codec::Transpose(order) = codec {
                let last = &shapes[shapes.len() - 1];
                let next = order.iter().map(|&a| last[a]).collect();
                shapes.push(next);
            }
        }
        let inner_shape = shapes[shapes.len() - 1].clone();
        let decoded_len = chunk_bytes(&inner_shape, itemsize)?;
        // What the array-to-bytes codec may be handed: a chunk's bytes for `bytes`; for a
        // shard, every inner chunk stored raw, each with up to 1 KiB of codec overhead, and the
        // index.
        let limit = match &self.codecs[split] {
            Codec::Sharding(s) => s.max_encoded_len(&inner_shape, itemsize)?,
            _ => decoded_len,
        };
        let mut bytes = encoded;
        for codec in self.codecs[split + 1..].iter().rev() {
            bytes = match codec {
                Codec::Crc32c => strip_crc(bytes)?,
                Codec::Gzip(_) => {
                    bounded_read(flate2::read::GzDecoder::new(&bytes[..]), limit, "gzip")?
                }
                Codec::Zstd { .. } => zstd_decode(&bytes, limit)?,
                _ => bytes,
            };
        }
        let mut data = match &self.codecs[split] {
            Codec::Sharding(s) => s.decode(&bytes, &inner_shape, element)?,
            Codec::Bytes(order) => {
                if bytes.len() != decoded_len {
                    return Err(size_mismatch(bytes.len(), decoded_len, &inner_shape));
                }
                if order.is_some_and(ByteOrder::needs_swap) {
                    ndstore_core::__private::codec::swap_bytes_in_place(
                        &mut bytes,
                        element.kind.swap_width(),
                    );
                }
                bytes
            }
            _ => return Err(format_error("the codecs have no array-to-bytes codec")),
        };
        for (codec, encoded_shape) in self.codecs[..split].iter().zip(shapes[1..].iter()).rev() {
            if let Codec::Transpose(order) = codec {
                data = grid::permute(&data, encoded_shape, &grid::inverse(order), itemsize);
            }
        }
        Ok(data)
    }

    /// True when the chain is `bytes` alone: a stored chunk is its elements as they are (byte
    /// swapped for the other byte order), so it can be read straight into its destination.
    pub(crate) fn is_bytes_alone(&self) -> bool {
        matches!(self.codecs.as_slice(), [Codec::Bytes(_)])
    }

    /// Turns the elements of a chunk read as they are stored under a chain that
    /// [`CodecChain::is_bytes_alone`] into native byte order, in place.
    pub(crate) fn to_native(&self, data: &mut [u8], kind: DTypeKind) {
        if let [Codec::Bytes(order)] = self.codecs.as_slice()
            && order.is_some_and(ByteOrder::needs_swap)
        {
            ndstore_core::__private::codec::swap_bytes_in_place(data, kind.swap_width());
        }
    }

    /// True when [`CodecChain::decode_into`] decodes a chunk of this chain: `bytes` first (no
    /// transpose, no sharding), then bytes-to-bytes codecs only.
    pub(crate) fn decodes_into(&self) -> bool {
        match self.codecs.split_first() {
            Some((Codec::Bytes(_), rest)) => rest
                .iter()
                .all(|c| matches!(c, Codec::Gzip(_) | Codec::Zstd { .. } | Codec::Crc32c)),
            _ => false,
        }
    }

    /// Decodes a chunk of `shape` straight into `out`, which holds exactly the chunk's bytes
    /// (C order, native byte order): the last decompressor writes into `out` itself, so the
    /// decoded chunk needs neither a buffer of its own nor a copy. Only for a chain that
    /// [`CodecChain::decodes_into`]; on an error, `out` holds no meaningful values.
    ///
    /// # Errors
    ///
    /// As [`CodecChain::decode`]; [`ErrorKind::InvalidInput`] for a chain that does not decode
    /// this way or an `out` of another length than the chunk's.
    pub(crate) fn decode_into(
        &self,
        encoded: Vec<u8>,
        shape: &[usize],
        element: Element<'_>,
        out: &mut [u8],
    ) -> Result<()> {
        let Some((Codec::Bytes(order), rest)) = self.codecs.split_first() else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the codecs do not decode in place (they do not start with bytes)",
            ));
        };
        let decoded_len = chunk_bytes(shape, element.kind.itemsize())?;
        if out.len() != decoded_len {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a chunk of {decoded_len} bytes cannot be decoded into {} bytes",
                    out.len()
                ),
            ));
        }
        // Every bytes-to-bytes codec but the innermost decodes into a buffer, as in `decode`;
        // the innermost writes into `out` when it is zstd, the codec chunks mostly carry.
        let mut bytes = encoded;
        let mut filled = None;
        for (i, codec) in rest.iter().enumerate().rev() {
            bytes = match codec {
                Codec::Crc32c => strip_crc(bytes)?,
                Codec::Gzip(_) => bounded_read(
                    flate2::read::GzDecoder::new(&bytes[..]),
                    decoded_len,
                    "gzip",
                )?,
                Codec::Zstd { .. } if i == 0 => {
                    filled = Some(zstd_decode_into(&bytes, out)?);
                    Vec::new()
                }
                Codec::Zstd { .. } => zstd_decode(&bytes, decoded_len)?,
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "the codecs do not decode in place (an array codec follows bytes)",
                    ));
                }
            };
        }
        let len = match filled {
            Some(len) => len,
            None => {
                if bytes.len() == decoded_len {
                    out.copy_from_slice(&bytes);
                }
                bytes.len()
            }
        };
        if len != decoded_len {
            return Err(size_mismatch(len, decoded_len, shape));
        }
        if order.is_some_and(ByteOrder::needs_swap) {
            ndstore_core::__private::codec::swap_bytes_in_place(out, element.kind.swap_width());
        }
        Ok(())
    }
}

/// The error of a chunk of `shape` that holds `len` bytes once decoded, not its `want`.
pub(crate) fn size_mismatch(len: usize, want: usize, shape: &[usize]) -> Error {
    Error::new(
        if len < want {
            ErrorKind::Truncated
        } else {
            ErrorKind::Format
        },
        format!(
            "the chunk holds {len} bytes after decoding, not the {want} of its shape {shape:?}"
        ),
    )
}

impl Sharding {
    fn validate(&self, kind: DTypeKind, shard: &[usize]) -> Result<()> {
        if self.chunk_shape.len() != shard.len()
            || self
                .chunk_shape
                .iter()
                .zip(shard)
                .any(|(&c, &s)| c == 0 || s % c != 0)
        {
            return Err(format_error(format!(
                "the inner chunk shape {:?} does not divide the shard shape {shard:?}",
                self.chunk_shape
            )));
        }
        chunk_bytes(&self.chunk_shape, kind.itemsize())?;
        self.codecs.validate(kind, &self.chunk_shape)?;
        let fixed = matches!(
            self.index_codecs.codecs.as_slice(),
            [Codec::Bytes(_)] | [Codec::Bytes(_), Codec::Crc32c]
        );
        if !fixed {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "shard index codecs other than bytes and crc32c are not supported",
            ));
        }
        Ok(())
    }

    /// The first element in the shard of the inner chunk at `coords`.
    fn inner_start(&self, coords: &[usize]) -> Vec<usize> {
        coords
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&c, &s)| c * s)
            .collect()
    }

    /// The inner chunks per shard along each axis.
    fn grid(&self, shard: &[usize]) -> Vec<usize> {
        shard
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&s, &c)| s / c)
            .collect()
    }

    /// The index's encoded length for `count` inner chunks.
    fn index_len(&self, count: usize) -> Result<usize> {
        let crc = if self.index_codecs.codecs.len() == 2 {
            CRC_LEN
        } else {
            0
        };
        count
            .checked_mul(16)
            .and_then(|n| n.checked_add(crc))
            .ok_or_else(|| Error::new(ErrorKind::TooLarge, "the shard index overflows"))
    }

    pub(crate) fn max_encoded_len(&self, shard: &[usize], itemsize: usize) -> Result<usize> {
        let count: usize = self.grid(shard).iter().product();
        chunk_bytes(shard, itemsize)?
            .checked_add(count.saturating_mul(1024))
            .and_then(|n| n.checked_add(self.index_len(count).ok()?))
            .ok_or_else(|| Error::new(ErrorKind::TooLarge, "the shard's size overflows"))
    }

    fn index_element(&self) -> Element<'static> {
        Element {
            kind: DTypeKind::U64,
            fill: &[0xff; 8],
        }
    }

    /// The shard's parts: its inner chunks (none for one all fill value) and its index, where
    /// it belongs. Inner chunks that span the shard's every axis but the first are runs of
    /// its bytes, encoded from the runs (stored as they are, borrowed, when the inner codecs
    /// are `bytes` alone in native order); others are copied out of the shard first.
    fn encode_parts<'a>(
        &self,
        data: &'a [u8],
        shard: &[usize],
        element: Element<'_>,
    ) -> Result<Parts<'a>> {
        let itemsize = element.kind.itemsize();
        let grid = self.grid(shard);
        let count: usize = grid.iter().product();
        let index_len = self.index_len(count)?;
        let mut index = vec![EMPTY; count * 2];
        let inner_len = chunk_bytes(&self.chunk_shape, itemsize)?;
        let runs = (1..shard.len()).all(|a| self.chunk_shape[a] == shard[a]);
        let row_len = inner_len / self.chunk_shape.first().map_or(1, |&rows| rows.max(1));
        let zero = vec![0usize; shard.len()];
        let mut parts: Parts<'a> = Vec::with_capacity(count + 1);
        let mut offset = if self.index_at_start { index_len } else { 0 };
        for (n, coords) in coords_of(&grid).enumerate() {
            let start = self.inner_start(&coords);
            let inner: Cow<'a, [u8]> = if runs {
                let at = start.first().map_or(0, |&row| row * row_len);
                Cow::Borrowed(&data[at..at + inner_len])
            } else {
                let mut inner = vec![0u8; inner_len];
                grid::copy_box(
                    data,
                    Place {
                        shape: shard,
                        start: &start,
                    },
                    &mut inner,
                    Place {
                        shape: &self.chunk_shape,
                        start: &zero,
                    },
                    &self.chunk_shape,
                    itemsize,
                );
                Cow::Owned(inner)
            };
            if grid::all_equal(&inner, element.fill) {
                continue;
            }
            let encoded = self
                .codecs
                .encode_parts(inner, &self.chunk_shape, element)?;
            let encoded_len: usize = encoded.iter().map(|part| part.len()).sum();
            index[2 * n] = offset as u64;
            index[2 * n + 1] = encoded_len as u64;
            offset += encoded_len;
            parts.extend(encoded);
        }
        if index.iter().all(|&v| v == EMPTY) {
            // zarr-python writes nothing for a shard whose every inner chunk is fill.
            return Ok(Vec::new());
        }
        let index_bytes: Vec<u8> = index.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut index_shape = grid.clone();
        index_shape.push(2);
        let encoded_index =
            self.index_codecs
                .encode(index_bytes, &index_shape, self.index_element())?;
        if self.index_at_start {
            parts.insert(0, Cow::Owned(encoded_index));
        } else {
            parts.push(Cow::Owned(encoded_index));
        }
        Ok(parts)
    }

    fn decode(&self, bytes: &[u8], shard: &[usize], element: Element<'_>) -> Result<Vec<u8>> {
        let itemsize = element.kind.itemsize();
        let grid = self.grid(shard);
        let (index_at_start, index_len) = self.index_span(shard)?;
        if bytes.len() < index_len {
            return Err(truncated_shard(bytes.len() as u64, index_len));
        }
        let index_start = if index_at_start {
            0
        } else {
            bytes.len() - index_len
        };
        let index = self.decode_index(
            &bytes[index_start..index_start + index_len],
            shard,
            index_start as u64,
        )?;
        let shard_len = chunk_bytes(shard, itemsize)?;
        let mut data = ndstore_core::__private::load::try_zeroed_vec::<u8>(shard_len, None)?;
        let zero = vec![0usize; shard.len()];
        for (n, coords) in coords_of(&grid).enumerate() {
            let start = self.inner_start(&coords);
            let here = Place {
                shape: shard,
                start: &start,
            };
            let Some(range) = index.inner_range(n, bytes.len() as u64)? else {
                grid::fill_box(&mut data, here, &self.chunk_shape, element.fill);
                continue;
            };
            // The range lies inside `bytes`, whose length fits usize.
            #[allow(clippy::cast_possible_truncation)]
            let range = range.start as usize..range.end as usize;
            let inner = self.decode_inner(bytes[range].to_vec(), n, index.at(n), element)?;
            grid::copy_box(
                &inner,
                Place {
                    shape: &self.chunk_shape,
                    start: &zero,
                },
                &mut data,
                here,
                &self.chunk_shape,
                itemsize,
            );
        }
        Ok(data)
    }

    /// Where the index of a shard of shape `shard` lies: at the start (true) or the end, and
    /// its encoded length.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooLarge`] when the length overflows.
    pub(crate) fn index_span(&self, shard: &[usize]) -> Result<(bool, usize)> {
        let count: usize = self.grid(shard).iter().product();
        Ok((self.index_at_start, self.index_len(count)?))
    }

    /// Decodes the index of a shard of shape `shard` from its `encoded` bytes (checking its
    /// crc32c when it has one), which lie at byte `at` of the shard.
    ///
    /// # Errors
    ///
    /// The index codecs' errors, saying where the index lies.
    pub(crate) fn decode_index(
        &self,
        encoded: &[u8],
        shard: &[usize],
        at: u64,
    ) -> Result<ShardIndex> {
        let mut index_shape = self.grid(shard);
        index_shape.push(2);
        let len = encoded.len();
        let index = self
            .index_codecs
            .decode(encoded.to_vec(), &index_shape, self.index_element())
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "shard index (bytes {at}+{len} of the shard): {}",
                        e.message()
                    ),
                )
            })?;
        Ok(ShardIndex(
            index
                .chunks_exact(8)
                .map(|b| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ))
    }

    /// Decodes inner chunk `n` from its `encoded` bytes, which the index places at
    /// `(offset, len)`, naming both in an error.
    ///
    /// # Errors
    ///
    /// The inner codecs' errors.
    pub(crate) fn decode_inner(
        &self,
        encoded: Vec<u8>,
        n: usize,
        (offset, len): (u64, u64),
        element: Element<'_>,
    ) -> Result<Vec<u8>> {
        self.codecs
            .decode(encoded, &self.chunk_shape, element)
            .map_err(|e| inner_error(&e, n, (offset, len)))
    }

    /// As [`Sharding::decode_inner`], straight into `out` (the inner chunk's size), for inner
    /// codecs that [`CodecChain::decodes_into`].
    ///
    /// # Errors
    ///
    /// The errors of [`CodecChain::decode_into`], naming the inner chunk.
    pub(crate) fn decode_inner_into(
        &self,
        encoded: Vec<u8>,
        n: usize,
        (offset, len): (u64, u64),
        element: Element<'_>,
        out: &mut [u8],
    ) -> Result<()> {
        self.codecs
            .decode_into(encoded, &self.chunk_shape, element, out)
            .map_err(|e| inner_error(&e, n, (offset, len)))
    }

    /// The inner chunks' shape.
    pub(crate) fn inner_shape(&self) -> &[usize] {
        &self.chunk_shape
    }

    /// The number of inner chunk `coords` (its place in the index, C order) in a shard of
    /// shape `shard`.
    pub(crate) fn inner_number(&self, coords: &[usize], shard: &[usize]) -> usize {
        self.grid(shard)
            .iter()
            .zip(coords)
            .fold(0, |n, (&g, &c)| n * g + c)
    }
}

/// A decoded shard index: the offset and length of each inner chunk, C order.
#[derive(Debug)]
pub(crate) struct ShardIndex(Vec<u64>);

impl ShardIndex {
    /// The index's entry for inner chunk `n`: its offset and length (both `2^64 - 1` for an
    /// inner chunk the shard does not hold).
    pub(crate) fn at(&self, n: usize) -> (u64, u64) {
        (self.0[2 * n], self.0[2 * n + 1])
    }

    /// The bytes of inner chunk `n` in a shard of `shard_len` bytes, `None` when the shard
    /// does not hold it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] for a range outside the shard.
    pub(crate) fn inner_range(
        &self,
        n: usize,
        shard_len: u64,
    ) -> Result<Option<std::ops::Range<u64>>> {
        let (offset, len) = self.at(n);
        if offset == EMPTY && len == EMPTY {
            return Ok(None);
        }
        offset
            .checked_add(len)
            .filter(|&end| end <= shard_len)
            .map(|end| Some(offset..end))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Format,
                    format!("inner chunk {n} of the shard lies at bytes {offset}+{len}, outside the shard's {shard_len} bytes"),
                )
            })
    }
}

/// `e`, saying that it happened in inner chunk `n` of the shard, at `(offset, len)`.
fn inner_error(e: &Error, n: usize, (offset, len): (u64, u64)) -> Error {
    Error::new(
        e.kind(),
        format!(
            "inner chunk {n} of the shard (bytes {offset}+{len}): {}",
            e.message()
        ),
    )
}

/// The error of a shard shorter than its index.
pub(crate) fn truncated_shard(len: u64, index_len: usize) -> Error {
    Error::new(
        ErrorKind::Truncated,
        format!("the shard holds {len} bytes, less than its index of {index_len}"),
    )
}

/// Every coordinate of a grid of `shape`, in C order.
pub fn coords_of(shape: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = shape.iter().product();
    let mut next = vec![0usize; shape.len()];
    (0..total).map(move |_| {
        let current = next.clone();
        for axis in (0..shape.len()).rev() {
            next[axis] += 1;
            if next[axis] < shape[axis] {
                break;
            }
            next[axis] = 0;
        }
        current
    })
}

fn strip_crc(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.len() < CRC_LEN {
        return Err(Error::new(
            ErrorKind::Truncated,
            "the chunk is shorter than its crc32c checksum",
        ));
    }
    let at = bytes.len() - CRC_LEN;
    let stored = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    bytes.truncate(at);
    let actual = crc32c::crc32c(&bytes);
    if stored != actual {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("crc32c checksum mismatch: stored {stored:08x}, computed {actual:08x}"),
        ));
    }
    Ok(bytes)
}

/// Reads a decompressor to its end, refusing output past `limit` bytes.
fn bounded_read(reader: impl Read, limit: usize, what: &str) -> Result<Vec<u8>> {
    // The most the chunk can hold, reserved once: growing by doubling would copy the output
    // up to twice more. `limit` comes from the chunk's shape, checked when the metadata was
    // read, and the reservation is fallible.
    let mut out = reserve(limit.saturating_add(1), what)?;
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| {
        Error::new(
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ErrorKind::Truncated
            } else {
                ErrorKind::Format
            },
            format!("{what} stream does not decode: {e}"),
        )
    })?;
    if out.len() > limit {
        return Err(Error::new(
            ErrorKind::Format,
            format!("{what} stream decodes to more than the {limit} bytes the chunk can hold"),
        ));
    }
    Ok(out)
}

/// An encoded chunk as the byte strings it is stored from, in order (see
/// [`CodecChain::encode_parts`]).
pub(crate) type Parts<'a> = Vec<Cow<'a, [u8]>>;

/// The parts as one buffer; one owned part is taken as it is, not copied.
pub(crate) fn concat(parts: Parts<'_>) -> Vec<u8> {
    match <[Cow<'_, [u8]>; 1]>::try_from(parts) {
        Ok([part]) => part.into_owned(),
        Err(parts) => parts.concat(),
    }
}

/// The parts as one byte string, borrowed when there is just one.
fn joined(parts: Parts<'_>) -> Cow<'_, [u8]> {
    match <[Cow<'_, [u8]>; 1]>::try_from(parts) {
        Ok([part]) => part,
        Err(parts) => Cow::Owned(parts.concat()),
    }
}

/// An empty vector with room for `len` bytes, or `OutOfMemory` naming `what` it was for.
fn reserve(len: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| {
        Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes to decode a {what} stream"),
        )
    })?;
    Ok(out)
}

/// Decodes zstd frames in one call straight into a buffer of the most the chunk can hold
/// (`ZSTD_decompressDCtx`), where the streaming decoder filled its own window buffer and
/// copied out of it in pieces into a growing vector. More output than `limit` is refused,
/// as a bomb; data that ends inside a frame is `Truncated`.
fn zstd_decode(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = reserve(limit, "zstd")?;
    // The decompressor's method fills a vector's spare capacity (the free function of the
    // same name takes a slice, which an empty vector's is).
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| Error::io("zstd decoder", e))?;
    decompressor
        .decompress_to_buffer(data, &mut out)
        .map_err(|e| zstd_error(&e, limit))?;
    Ok(out)
}

/// Decodes zstd frames in one call straight into `out` (the chunk's place in the region being
/// read), returning how many bytes they filled; more output than `out` holds is refused, as in
/// [`zstd_decode`].
fn zstd_decode_into(data: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| Error::io("zstd decoder", e))?;
    decompressor
        .decompress_to_buffer(data, out)
        .map_err(|e| zstd_error(&e, out.len()))
}

/// The error of zstd frames that do not decode into the `limit` bytes a chunk can hold.
fn zstd_error(e: &std::io::Error, limit: usize) -> Error {
    // libzstd says "Src size is incorrect" (or "srcSize is wrong") for a cut frame.
    let text = e.to_string();
    let cut = text.contains("Src size") || text.contains("srcSize");
    if cut {
        Error::new(ErrorKind::Truncated, format!("zstd stream ends early: {e}"))
    } else {
        Error::new(
            ErrorKind::Format,
            format!("zstd stream does not decode into the {limit} bytes the chunk can hold: {e}"),
        )
    }
}

fn gzip(data: Vec<u8>, level: u32) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(&data).map_err(|e| Error::io("gzip", e))?;
    encoder.finish().map_err(|e| Error::io("gzip", e))
}

fn zstd_encode(data: &[u8], level: i32, checksum: bool) -> Result<Vec<u8>> {
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), level).map_err(|e| Error::io("zstd", e))?;
    encoder
        .include_checksum(checksum)
        .map_err(|e| Error::io("zstd", e))?;
    encoder
        .include_contentsize(true)
        .map_err(|e| Error::io("zstd", e))?;
    encoder
        .set_pledged_src_size(Some(data.len() as u64))
        .map_err(|e| Error::io("zstd", e))?;
    encoder.write_all(data).map_err(|e| Error::io("zstd", e))?;
    encoder.finish().map_err(|e| Error::io("zstd", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn f64_element() -> Element<'static> {
        Element {
            kind: DTypeKind::F64,
            fill: &[0; 8],
        }
    }

    fn chains() -> Vec<CodecChain> {
        let le = Codec::Bytes(Some(ByteOrder::Little));
        let be = Codec::Bytes(Some(ByteOrder::Big));
        let shard = |at_start, chunk_shape: [usize; 2]| {
            Codec::Sharding(Box::new(Sharding {
                chunk_shape: chunk_shape.to_vec(),
                codecs: CodecChain::new(vec![
                    Codec::Bytes(Some(ByteOrder::Big)),
                    Codec::Zstd {
                        level: 1,
                        checksum: true,
                    },
                ]),
                index_codecs: CodecChain::new(vec![
                    Codec::Bytes(Some(ByteOrder::Little)),
                    Codec::Crc32c,
                ]),
                index_at_start: at_start,
            }))
        };
        vec![
            CodecChain::new(vec![le.clone()]),
            CodecChain::new(vec![be.clone()]),
            CodecChain::new(vec![
                Codec::Transpose(vec![1, 0]),
                be.clone(),
                Codec::Gzip(5),
            ]),
            CodecChain::new(vec![
                le.clone(),
                Codec::Zstd {
                    level: 3,
                    checksum: false,
                },
                Codec::Crc32c,
            ]),
            CodecChain::new(vec![shard(false, [2, 3])]),
            CodecChain::new(vec![
                Codec::Transpose(vec![1, 0]),
                shard(true, [3, 2]),
                Codec::Crc32c,
            ]),
        ]
    }

    #[test]
    fn every_chain_round_trips() {
        let shape = [4usize, 6];
        let data: Vec<u8> = (0..24u32)
            .flat_map(|v| (f64::from(v) * 0.5).to_ne_bytes())
            .collect();
        for chain in chains() {
            chain.validate(DTypeKind::F64, &shape).unwrap();
            let encoded = chain.encode(data.clone(), &shape, f64_element()).unwrap();
            let back = chain.decode(encoded, &shape, f64_element()).unwrap();
            assert_eq!(back, data, "{chain:?}");
        }
    }

    #[test]
    fn big_endian_bytes_are_big_endian() {
        let chain = CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Big))]);
        let data = 1.0f64.to_ne_bytes().to_vec();
        let encoded = chain.encode(data, &[1], f64_element()).unwrap();
        assert_eq!(encoded, 1.0f64.to_be_bytes());
    }

    #[test]
    fn damage_is_refused_with_its_kind() {
        let shape = [4usize, 6];
        let data: Vec<u8> = (0..24u32)
            .flat_map(|v| f64::from(v + 1).to_ne_bytes())
            .collect();
        let crc = CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little)), Codec::Crc32c]);
        let mut encoded = crc.encode(data.clone(), &shape, f64_element()).unwrap();
        encoded[5] ^= 1;
        assert_eq!(
            crc.decode(encoded.clone(), &shape, f64_element())
                .unwrap_err()
                .kind(),
            ErrorKind::Corrupt
        );
        encoded.truncate(20);
        assert_eq!(
            crc.decode(encoded, &shape, f64_element())
                .unwrap_err()
                .kind(),
            ErrorKind::Corrupt
        );
        let plain = CodecChain::new(vec![Codec::Bytes(Some(ByteOrder::Little))]);
        let err = plain
            .decode(data[..100].to_vec(), &shape, f64_element())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Truncated);

        // A shard whose index points past its end (the index's crc32c recomputed).
        let sharded = &chains()[4];
        let mut shard = sharded.encode(data.clone(), &shape, f64_element()).unwrap();
        let at = shard.len() - 4 - 64;
        shard[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let crc_at = shard.len() - 4;
        let crc = crc32c::crc32c(&shard[crc_at - 64..crc_at]);
        shard[crc_at..].copy_from_slice(&crc.to_le_bytes());
        let err = sharded.decode(shard, &shape, f64_element()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Format);
        assert!(err.message().contains("inner chunk 0"), "{err}");

        // A zstd bomb: more output than the chunk can hold.
        let z = CodecChain::new(vec![
            Codec::Bytes(Some(ByteOrder::Little)),
            Codec::Zstd {
                level: 1,
                checksum: false,
            },
        ]);
        let bomb = zstd_encode(&vec![0u8; 1 << 20], 1, false).unwrap();
        assert_eq!(
            z.decode(bomb, &shape, f64_element()).unwrap_err().kind(),
            ErrorKind::Format
        );
        // A zstd frame cut short is truncated, wherever it is cut.
        let values: Vec<u8> = (0..192u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = zstd_encode(&values, 3, true).unwrap();
        for len in 1..whole.len() {
            let err = z
                .decode(whole[..len].to_vec(), &shape, f64_element())
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::Truncated | ErrorKind::Format),
                "{len}: {err}"
            );
        }
        let plain = zstd_encode(&values, 3, false).unwrap();
        for len in [plain.len() / 2, plain.len() - 1] {
            let err = z
                .decode(plain[..len].to_vec(), &shape, f64_element())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Truncated, "{len}: {err}");
            assert!(err.message().contains("ends early"), "{err}");
        }
        assert_eq!(z.decode(whole, &shape, f64_element()).unwrap(), values);
    }

    #[test]
    fn an_all_fill_shard_is_empty_and_reads_as_fill() {
        let sharded = &chains()[4];
        let shape = [4usize, 6];
        let encoded = sharded
            .encode(vec![0u8; 192], &shape, f64_element())
            .unwrap();
        assert!(encoded.is_empty());
        // A shard with some inner chunks missing reads them as fill.
        let mut data = vec![0u8; 192];
        data[0] = 1;
        let encoded = sharded.encode(data.clone(), &shape, f64_element()).unwrap();
        let index = &encoded[encoded.len() - 4 - 64..encoded.len() - 4];
        assert_eq!(&index[16..32], &[0xff; 16]);
        assert_eq!(
            sharded.decode(encoded, &shape, f64_element()).unwrap(),
            data
        );
    }
}

//! The `.npy` header: numpy's exact bytes on the way out, and a strict, bounded parser of the
//! header's Python-literal dictionary on the way in. Shared by the `file` and `mmap` backends,
//! which must not depend on each other.

use std::io::Read;

use crate::{ArrayMeta, DType, Error, ErrorKind, Order, Result};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// numpy aligns the start of the data to this many bytes.
const ALIGN: usize = 64;

/// numpy leaves room in the header for the growth axis to reach this many digits, so a file can
/// be appended to and its header rewritten in place (numpy >= 1.24 writes it, and so do we).
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// The largest header ndstore reads by default: numpy's own `max_header_size`.
pub const DEFAULT_MAX_HEADER_LEN: usize = 10_000;

/// The format version of a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 1.0: a 2-byte header length, Latin-1 text.
    V1,
    /// 2.0: a 4-byte header length, Latin-1 text.
    V2,
    /// 3.0: a 4-byte header length, UTF-8 text.
    V3,
}

/// A parsed header: the array's metadata and where its data starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the array is.
    pub meta: ArrayMeta,
    /// The format version the file uses.
    pub version: Version,
    /// The byte offset of the first data byte.
    pub data_offset: u64,
}

fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_owned(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The complete header bytes numpy's `np.save` writes for `meta` (magic through the newline),
/// using the lowest version that can hold it.
pub fn encode(meta: &ArrayMeta) -> Vec<u8> {
    let fortran = meta.order == Order::Fortran && meta.shape.len() > 1;
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}",
        meta.dtype.to_numpy_descr(),
        if fortran { "True" } else { "False" },
        shape_repr(&meta.shape)
    );
    let growth_axis = if fortran {
        meta.shape.last()
    } else {
        meta.shape.first()
    };
    if let Some(n) = growth_axis {
        let digits = n.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    wrap(&dict)
}

/// The header bytes (magic, version, length, padded text, newline) for a header dictionary's
/// text, in the lowest version that holds it, padded exactly as numpy pads. `encode` builds on
/// it; tests and hostile corpora use it to frame dictionaries of their own.
pub fn wrap(dict: &str) -> Vec<u8> {
    // Version 1.0 holds headers up to 65535 bytes; larger ones (huge ndim) need 2.0.
    let text_len = dict.len() + 1;
    let v1_len = text_len + numpy_padding(10 + text_len);
    let (version, len_bytes) = if v1_len <= usize::from(u16::MAX) {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let prefix_len = 8 + len_bytes;
    let padding = numpy_padding(prefix_len + text_len);
    let header_len = text_len + padding;
    let mut out = Vec::with_capacity(prefix_len + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + padding, b' ');
    out.push(b'\n');
    out
}

/// numpy's padding: spaces that bring `len` to the next multiple of 64, a whole 64 when it is
/// one already (numpy's `_wrap_header` does exactly this, and the bytes must match).
fn numpy_padding(len: usize) -> usize {
    ALIGN - len % ALIGN
}

/// Reads and parses a header from the start of `reader`, refusing headers longer than
/// `max_header_len` before reading them.
///
/// # Errors
///
/// With the byte offset: `ErrorKind::Format` for a wrong magic or a malformed header,
/// `ErrorKind::Truncated` when the input ends inside the header, `ErrorKind::TooLarge` for a header
/// longer than `max_header_len` or a shape whose size overflows, `ErrorKind::UnsupportedDType` for
/// a dtype outside the catalogue, and the reader's I/O errors.
pub fn read(reader: &mut dyn Read, max_header_len: usize) -> Result<Header> {
    let mut prefix = [0u8; 10];
    read_fully(
        reader,
        &mut prefix,
        0,
        "the file ends inside the .npy magic and version",
    )?;
    if &prefix[..6] != MAGIC {
        return Err(Error::new(
            ErrorKind::Format,
            format!(
                "not a .npy file: the magic string is {:?}, expected \"\\x93NUMPY\"",
                prefix[..6].escape_ascii().to_string()
            ),
        )
        .at_offset(0));
    }
    let (version, header_len, text_start) = match (prefix[6], prefix[7]) {
        (1, 0) => (
            Version::V1,
            u64::from(u16::from_le_bytes([prefix[8], prefix[9]])),
            10u64,
        ),
        (major @ (2 | 3), 0) => {
            let mut rest = [0u8; 2];
            read_fully(
                reader,
                &mut rest,
                10,
                "the file ends inside the header length",
            )?;
            let len = u32::from_le_bytes([prefix[8], prefix[9], rest[0], rest[1]]);
            let version = if major == 2 { Version::V2 } else { Version::V3 };
            (version, u64::from(len), 12u64)
        }
        (major, minor) => {
            return Err(Error::new(
                ErrorKind::Format,
                format!(
                    "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are known)"
                ),
            )
            .at_offset(6));
        }
    };
    if header_len > max_header_len as u64 {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the header is {header_len} bytes, over the limit of {max_header_len}"),
        )
        .at_offset(text_start - 4 + if version == Version::V1 { 2 } else { 0 }));
    }
    let mut text = vec![0u8; header_len as usize];
    read_fully(
        reader,
        &mut text,
        text_start,
        "the file ends inside the header",
    )?;
    let text = match version {
        // Latin-1 maps every byte to the code point of the same value.
        Version::V1 | Version::V2 => text.iter().map(|&b| char::from(b)).collect::<String>(),
        Version::V3 => String::from_utf8(text).map_err(|e| {
            Error::new(ErrorKind::Format, "the version 3.0 header is not UTF-8")
                .at_offset(text_start + e.utf8_error().valid_up_to() as u64)
        })?,
    };
    let raw = parse_dict(&text).map_err(|(pos, msg)| {
        Error::new(ErrorKind::Format, msg).at_offset(text_start + pos as u64)
    })?;
    let unsupported = |msg: String| {
        Error::new(ErrorKind::UnsupportedDType, msg).at_offset(text_start + raw.descr_pos as u64)
    };
    let dtype = match &raw.descr {
        Descr::Simple(descr) => DType::from_numpy_descr(descr)
            .map_err(|e| e.at_offset(text_start + raw.descr_pos as u64))?,
        Descr::Structured(fields) => {
            let shown: String = fields.chars().take(120).collect();
            return Err(unsupported(format!(
                "the structured dtype {shown} is not supported: ndstore stores arrays of one numeric type"
            )));
        }
    };
    let order = if raw.fortran {
        Order::Fortran
    } else {
        Order::C
    };
    let meta = ArrayMeta {
        dtype,
        shape: raw.shape,
        order,
    };
    // A shape whose byte count overflows is refused here, pointing at the shape.
    meta.byte_len()
        .map_err(|e| e.at_offset(text_start + raw.shape_pos as u64))?;
    Ok(Header {
        meta,
        version,
        data_offset: text_start + header_len,
    })
}

/// Reads exactly `buf.len()` bytes that start at `offset`, or says the file is truncated there.
///
/// # Errors
///
/// `ErrorKind::Truncated` with `what`, at the offset where the input ended; the reader's I/O
/// errors.
pub fn read_fully(reader: &mut dyn Read, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(
                    Error::new(ErrorKind::Truncated, what).at_offset(offset + filled as u64)
                );
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read failed", e).at_offset(offset + filled as u64)),
        }
    }
    Ok(())
}

type ParseResult<T> = std::result::Result<T, (usize, String)>;

/// A cursor over the header text; positions are byte offsets into it.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.text[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.text[self.pos..].chars().next()
    }

    fn expect(&mut self, want: char) -> ParseResult<()> {
        match self.peek() {
            Some(c) if c == want => {
                self.pos += c.len_utf8();
                Ok(())
            }
            Some(c) => Err((
                self.pos,
                format!("expected '{want}' in the header, found '{c}'"),
            )),
            None => Err((
                self.pos,
                format!("the header ends where '{want}' was expected"),
            )),
        }
    }

    /// Skips a bracketed value (a list, tuple or dict, with quoted strings inside) and returns
    /// its text: enough to name a structured dtype in an error without interpreting it.
    fn bracketed(&mut self) -> ParseResult<&'a str> {
        self.skip_ws();
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for (i, c) in self.text[start..].char_indices() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                '\'' | '"' => quote = Some(c),
                '[' | '(' | '{' => depth += 1,
                ']' | ')' | '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.pos = start + i + c.len_utf8();
                        return Ok(&self.text[start..self.pos]);
                    }
                }
                _ => {}
            }
        }
        Err((start, "the descr value is not closed".to_owned()))
    }

    fn string(&mut self) -> ParseResult<String> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => {
                return Err((
                    self.pos,
                    "expected a quoted string in the header".to_owned(),
                ));
            }
        };
        self.pos += 1;
        let rest = &self.text[self.pos..];
        match rest.find(quote) {
            Some(end) => {
                let s = rest[..end].to_owned();
                if s.contains('\\') {
                    return Err((
                        start,
                        "escaped characters are not allowed in header strings".to_owned(),
                    ));
                }
                self.pos += end + 1;
                Ok(s)
            }
            None => Err((start, "unterminated string in the header".to_owned())),
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn boolean(&mut self) -> ParseResult<bool> {
        let start = self.pos;
        match self.word() {
            "True" => Ok(true),
            "False" => Ok(false),
            other => Err((start, format!("expected True or False, found '{other}'"))),
        }
    }

    fn shape(&mut self) -> ParseResult<Vec<usize>> {
        self.expect('(')?;
        let mut shape = Vec::new();
        loop {
            if self.peek() == Some(')') {
                self.pos += 1;
                return Ok(shape);
            }
            let start = self.pos;
            let digits = self.word().to_owned();
            // Python 2 wrote long integers with an L suffix.
            let digits = digits.strip_suffix('L').unwrap_or(&digits);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err((
                    start,
                    format!("the shape holds '{digits}', not a non-negative integer"),
                ));
            }
            let n = digits.parse::<usize>().map_err(|_| {
                (
                    start,
                    format!("the axis length {digits} does not fit in memory"),
                )
            })?;
            shape.push(n);
            if shape.len() > 64 {
                return Err((start, "the shape has more than 64 axes".to_owned()));
            }
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                _ => return Err((self.pos, "expected ',' or ')' in the shape".to_owned())),
            }
        }
    }
}

/// The header dictionary's three entries, before the dtype string is interpreted.
#[derive(Debug)]
struct RawHeader {
    descr_pos: usize,
    descr: Descr,
    fortran: bool,
    shape_pos: usize,
    shape: Vec<usize>,
}

/// A header's `descr`: a type string such as `<f8`, or a structured dtype's list of fields.
#[derive(Debug)]
enum Descr {
    Simple(String),
    Structured(String),
}

fn parse_dict(text: &str) -> ParseResult<RawHeader> {
    let mut cur = Cursor { text, pos: 0 };
    let mut descr: Option<(usize, Descr)> = None;
    let mut fortran = None;
    let mut shape = None;
    cur.expect('{')?;
    loop {
        if cur.peek() == Some('}') {
            cur.pos += 1;
            break;
        }
        let key_pos = cur.pos;
        let key = cur.string()?;
        cur.expect(':')?;
        let value_pos = cur.peek().map(|_| cur.pos).unwrap_or(cur.pos);
        let duplicate = match key.as_str() {
            "descr" => {
                let value = match cur.peek() {
                    Some('\'' | '"') => Descr::Simple(cur.string()?),
                    Some('[' | '(' | '{') => Descr::Structured(cur.bracketed()?.to_owned()),
                    _ => {
                        return Err((
                            value_pos,
                            "the descr is not a type string or a list of fields".to_owned(),
                        ));
                    }
                };
                descr.replace((value_pos, value)).is_some()
            }
            "fortran_order" => fortran.replace(cur.boolean()?).is_some(),
            "shape" => shape.replace((value_pos, cur.shape()?)).is_some(),
            other => return Err((key_pos, format!("unknown header key '{other}'"))),
        };
        if duplicate {
            return Err((key_pos, format!("the header repeats the key '{key}'")));
        }
        match cur.peek() {
            Some(',') => cur.pos += 1,
            Some('}') => {}
            _ => return Err((cur.pos, "expected ',' or '}' in the header".to_owned())),
        }
    }
    cur.skip_ws();
    if cur.pos != text.len() {
        return Err((
            cur.pos,
            "unexpected text after the header dictionary".to_owned(),
        ));
    }
    let (descr_pos, descr) = descr.ok_or((0, "the header has no 'descr' key".to_owned()))?;
    let fortran = fortran.ok_or((0, "the header has no 'fortran_order' key".to_owned()))?;
    let (shape_pos, shape) = shape.ok_or((0, "the header has no 'shape' key".to_owned()))?;
    Ok(RawHeader {
        descr_pos,
        descr,
        fortran,
        shape_pos,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ByteOrder, DTypeKind};

    fn meta(descr: &str, shape: &[usize], order: Order) -> ArrayMeta {
        ArrayMeta::new(
            DType::from_numpy_descr(descr).unwrap(),
            shape.to_vec(),
            order,
        )
    }

    #[test]
    fn header_is_aligned_and_parses_back() {
        for shape in [
            &[][..],
            &[0],
            &[7],
            &[3, 4],
            &[2, 3, 4],
            &[usize::MAX / 64, 2],
        ] {
            for order in [Order::C, Order::Fortran] {
                let m = meta(">c16", shape, order);
                let bytes = encode(&m);
                assert_eq!(bytes.len() % 64, 0);
                assert_eq!(*bytes.last().unwrap(), b'\n');
                let h = read(&mut bytes.as_slice(), DEFAULT_MAX_HEADER_LEN).unwrap();
                let want_order = if shape.len() > 1 { order } else { Order::C };
                assert_eq!(
                    h.meta,
                    ArrayMeta {
                        order: want_order,
                        ..m
                    }
                );
                assert_eq!(h.data_offset, bytes.len() as u64);
            }
        }
    }

    #[test]
    fn python2_and_double_quoted_headers_parse() {
        let text = "{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (3L, 4L)}";
        let m = parse_dict(text).unwrap();
        assert_eq!(m.shape, vec![3, 4]);
        assert!(!m.fortran);
        let Descr::Simple(descr) = &m.descr else {
            panic!("not a simple descr: {:?}", m.descr);
        };
        let dtype = DType::from_numpy_descr(descr).unwrap();
        assert_eq!(dtype, DType::new(DTypeKind::I64, ByteOrder::Little));
    }

    #[test]
    fn malformed_headers_name_the_offset() {
        let cases = [
            (
                "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (3,), }",
                "True or False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }",
                "non-negative",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                "does not fit",
            ),
            ("{'descr': '<f8', 'fortran_order': False}", "'shape'"),
            (
                "{'descr': [('a', '<f8')', 'fortran_order': False, 'shape': (), }",
                "not closed",
            ),
            (
                "{'descr': 7, 'fortran_order': False, 'shape': (), }",
                "type string",
            ),
            (
                "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                "repeats",
            ),
        ];
        for (text, want) in cases {
            let (pos, msg) = parse_dict(text).unwrap_err();
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(pos < text.len(), "{text}: {pos}");
        }
    }

    #[test]
    fn overflowing_byte_counts_are_refused_at_the_shape() {
        let m = meta("<c16", &[usize::MAX / 16, 2], Order::C);
        let bytes = encode(&m);
        let err = read(&mut bytes.as_slice(), DEFAULT_MAX_HEADER_LEN).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let key = b"'shape': ";
        let shape_at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        assert_eq!(
            err.location(),
            Some(&crate::Location::Offset(shape_at as u64))
        );
    }
}

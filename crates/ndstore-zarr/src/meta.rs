//! Zarr v3 metadata (`zarr.json`) for arrays and groups: parsed by hand from JSON values, so
//! every refusal says which field is wrong, and written in the shape zarr-python writes.

use std::path::Path;

use half::f16;
use ndstore_core::{ByteOrder, DType, DTypeKind, Error, ErrorKind, Location, Result};
use serde_json::{Map, Value, json};

use crate::codec::{Codec, CodecChain};

/// The name of the metadata document of every Zarr v3 node.
pub const METADATA_FILE: &str = "zarr.json";

/// The most dimensions a Zarr array may have here (ndarray's dynamic dimensions have no limit;
/// this bounds the work a hostile `zarr.json` can ask for).
pub const MAX_NDIM: usize = 32;

/// How chunk grid coordinates become store keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `c/0/1` (or `c.0.1`): the default encoding, with its separator.
    Default(char),
    /// `0.1` (or `0/1`): Zarr v2's encoding, with its separator.
    V2(char),
}

/// True for a key a chunk of some key encoding can have: `c/1/2`, `c.1.2`, `1.2`, `1/2`,
/// `c` (a 0-d array's chunk) or `0`, whatever the array's own encoding and number of axes.
/// Object storage and the command line use it to tell a stray chunk (another encoding's,
/// outside the grid) from other tools' objects.
pub fn is_chunk_key(key: &str) -> bool {
    let rest = match key.strip_prefix('c') {
        Some("") => return true,
        Some(rest) => match rest.strip_prefix(['/', '.']) {
            Some(rest) => rest,
            None => return false,
        },
        None => key,
    };
    !rest.is_empty()
        && rest
            .split(['/', '.'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

impl KeyEncoding {
    /// The key of the chunk at grid coordinates `coords`.
    pub fn key(self, coords: &[u64]) -> String {
        let joined = |sep: char| {
            coords
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(&sep.to_string())
        };
        match self {
            KeyEncoding::Default(sep) if coords.is_empty() => {
                let _ = sep;
                "c".to_owned()
            }
            KeyEncoding::Default(sep) => format!("c{sep}{}", joined(sep)),
            KeyEncoding::V2(_) if coords.is_empty() => "0".to_owned(),
            KeyEncoding::V2(sep) => joined(sep),
        }
    }

    fn to_json(self) -> Value {
        let (name, sep) = match self {
            KeyEncoding::Default(sep) => ("default", sep),
            KeyEncoding::V2(sep) => ("v2", sep),
        };
        json!({"name": name, "configuration": {"separator": sep.to_string()}})
    }
}

/// An array's metadata, as `zarr.json` says it.
#[derive(Clone, Debug, PartialEq)]
pub struct ZarrMeta {
    /// The length of each axis.
    pub shape: Vec<usize>,
    /// The element type.
    pub kind: DTypeKind,
    /// The regular chunk grid's chunk shape (for a sharded array: the shard shape).
    pub chunk_shape: Vec<usize>,
    /// How chunk coordinates become keys.
    pub key_encoding: KeyEncoding,
    /// The fill value's bytes, in the native byte order.
    pub fill: Vec<u8>,
    /// The codec chain a chunk goes through.
    pub codecs: CodecChain,
    /// The user's attributes.
    pub attributes: Map<String, Value>,
    /// A name (or none) per axis, when given.
    pub dimension_names: Option<Vec<Option<String>>>,
}

impl ZarrMeta {
    /// Metadata for a new array of `dtype` and `shape` in chunks of `chunk_shape`, with the
    /// `bytes` codec in the dtype's byte order, zero as the fill value and default keys (`/`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the chunk shape has another rank than the shape or a
    /// zero length; [`ErrorKind::TooLarge`] when a chunk's bytes overflow.
    pub fn new(dtype: DType, shape: &[usize], chunk_shape: &[usize]) -> Result<ZarrMeta> {
        let meta = ZarrMeta {
            shape: shape.to_vec(),
            kind: dtype.kind,
            chunk_shape: chunk_shape.to_vec(),
            key_encoding: KeyEncoding::Default('/'),
            fill: vec![0; dtype.kind.itemsize()],
            codecs: CodecChain::new(vec![Codec::bytes_for(dtype)]),
            attributes: Map::new(),
            dimension_names: None,
        };
        meta.validate()?;
        Ok(meta)
    }

    /// The same metadata with `codecs` as its codec chain, checked against the dtype and the
    /// chunk shape.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] saying which codec does not fit the chunks.
    pub fn with_codecs(mut self, codecs: CodecChain) -> Result<ZarrMeta> {
        self.codecs = codecs;
        self.validate()?;
        Ok(self)
    }

    /// The dtype ndstore reports: the kind, in the byte order of the chain's `bytes` codec
    /// (the innermost one, for a sharded array).
    pub fn dtype(&self) -> DType {
        DType::new(self.kind, self.codecs.byte_order())
    }

    /// The number of chunks along each axis.
    pub fn grid_shape(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&n, &c)| (n as u64).div_ceil(c as u64))
            .collect()
    }

    /// The elements of one chunk (at most `isize::MAX` bytes, as `validate` checked).
    pub fn chunk_elements(&self) -> usize {
        self.chunk_shape.iter().product()
    }

    /// Checks the sizes and the codec chain against the shape and dtype.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.shape.len() > MAX_NDIM {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the array has {} dimensions, more than the {MAX_NDIM} supported",
                    self.shape.len()
                ),
            ));
        }
        if self.chunk_shape.len() != self.shape.len() {
            return Err(Error::new(
                ErrorKind::Format,
                format!(
                    "chunk_shape {:?} has another rank than shape {:?}",
                    self.chunk_shape, self.shape
                ),
            ));
        }
        if self.chunk_shape.contains(&0) {
            return Err(Error::new(
                ErrorKind::Format,
                format!("chunk_shape {:?} has a zero length", self.chunk_shape),
            ));
        }
        let itemsize = self.kind.itemsize();
        ndstore_core::ArrayMeta::new(
            DType::native(self.kind),
            self.shape.clone(),
            ndstore_core::Order::C,
        )
        .byte_len()?;
        chunk_bytes(&self.chunk_shape, itemsize)?;
        self.codecs.validate(self.kind, &self.chunk_shape)
    }

    /// The `zarr.json` document.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("zarr_format".into(), json!(3));
        doc.insert("node_type".into(), json!("array"));
        doc.insert("shape".into(), json!(self.shape));
        doc.insert("data_type".into(), json!(data_type_name(self.kind)));
        doc.insert(
            "chunk_grid".into(),
            json!({"name": "regular", "configuration": {"chunk_shape": self.chunk_shape}}),
        );
        doc.insert("chunk_key_encoding".into(), self.key_encoding.to_json());
        doc.insert("fill_value".into(), fill_to_json(self.kind, &self.fill));
        doc.insert("codecs".into(), self.codecs.to_json());
        doc.insert("attributes".into(), Value::Object(self.attributes.clone()));
        if let Some(names) = &self.dimension_names {
            doc.insert("dimension_names".into(), json!(names));
        }
        doc.insert("storage_transformers".into(), json!([]));
        Value::Object(doc)
    }

    /// The `zarr.json` bytes (pretty-printed, as zarr-python writes them).
    ///
    /// # Errors
    ///
    /// Never in practice: the document holds only JSON values.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&self.to_json())
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("writing zarr.json: {e}")))
    }
}

/// The bytes of a chunk of `shape`, checked to fit `isize`.
///
/// # Errors
///
/// [`ErrorKind::TooLarge`] when they overflow.
pub fn chunk_bytes(shape: &[usize], itemsize: usize) -> Result<usize> {
    shape
        .iter()
        .try_fold(itemsize, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::TooLarge,
                format!("a chunk of shape {shape:?} overflows the address space"),
            )
        })
}

/// A node's metadata: an array or a group.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An array.
    Array(Box<ZarrMeta>),
    /// A group, with its attributes.
    Group(Map<String, Value>),
}

/// The `zarr.json` document of a group with `attributes`.
pub fn group_json(attributes: &Map<String, Value>) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attributes})
}

/// Parses a `zarr.json` document read from `path` (named in every error).
///
/// # Errors
///
/// [`ErrorKind::Format`] for malformed JSON or fields, [`ErrorKind::Unsupported`] for a format
/// version, chunk grid, key encoding, codec or extension this crate does not understand,
/// [`ErrorKind::UnsupportedDType`] for a data type outside ndstore's, and
/// [`ErrorKind::TooLarge`] for sizes that overflow; each names `path`.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Node> {
    // Each refusal names its field in the message; the document is the place otherwise.
    parse_value(bytes).map_err(|e| {
        e.with_path(path)
            .at(Location::Object(METADATA_FILE.to_owned()))
    })
}

fn parse_value(bytes: &[u8]) -> Result<Node> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        format_error(format!("zarr.json is not valid JSON: {e}")).at(Location::LineColumn {
            line: e.line() as u64,
            column: e.column() as u64,
        })
    })?;
    let Value::Object(mut doc) = value else {
        return Err(format_error("zarr.json is not a JSON object"));
    };
    match doc.remove("zarr_format") {
        Some(Value::Number(n)) if n.as_u64() == Some(3) => {}
        Some(other) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("zarr_format {other} is not supported (only 3)"),
            ));
        }
        None => return Err(format_error("zarr.json has no zarr_format")),
    }
    let node_type = take_str(&mut doc, "node_type")?;
    let attributes = match doc.remove("attributes") {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(format_error("attributes is not a JSON object")),
    };
    match node_type.as_str() {
        "group" => {
            check_extensions(&doc)?;
            Ok(Node::Group(attributes))
        }
        "array" => parse_array(doc, attributes).map(|m| Node::Array(Box::new(m))),
        other => Err(format_error(format!(
            "node_type '{other}' is neither array nor group"
        ))),
    }
}

fn parse_array(mut doc: Map<String, Value>, attributes: Map<String, Value>) -> Result<ZarrMeta> {
    let shape = usize_list(&take(&mut doc, "shape")?, "shape")?;
    let data_type = take(&mut doc, "data_type")?;
    let kind = match &data_type {
        Value::String(name) => data_type_kind(name)?,
        other => {
            return Err(Error::new(
                ErrorKind::UnsupportedDType,
                format!("data_type {other} is not supported by ndstore"),
            ));
        }
    };
    let chunk_shape = parse_grid(take(&mut doc, "chunk_grid")?)?;
    let key_encoding = parse_key_encoding(take(&mut doc, "chunk_key_encoding")?)?;
    let fill = fill_from_json(kind, &take(&mut doc, "fill_value")?)?;
    let codecs = CodecChain::from_json(&take(&mut doc, "codecs")?)?;
    let dimension_names = match doc.remove("dimension_names") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(
            names
                .into_iter()
                .map(|n| match n {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s)),
                    _ => Err(format_error(
                        "dimension_names holds a value that is no string",
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(_) => return Err(format_error("dimension_names is not a list")),
    };
    if dimension_names
        .as_ref()
        .is_some_and(|n: &Vec<_>| n.len() != shape.len())
    {
        return Err(format_error(
            "dimension_names has another length than shape",
        ));
    }
    match doc.remove("storage_transformers") {
        None => {}
        Some(Value::Array(list)) if list.is_empty() => {}
        Some(_) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "storage_transformers are not supported",
            ));
        }
    }
    check_extensions(&doc)?;
    let meta = ZarrMeta {
        shape,
        kind,
        chunk_shape,
        key_encoding,
        fill,
        codecs,
        attributes,
        dimension_names,
    };
    meta.validate()?;
    Ok(meta)
}

/// Refuses the fields left over after the known ones were taken, unless each is an extension
/// object that says `"must_understand": false`.
fn check_extensions(rest: &Map<String, Value>) -> Result<()> {
    for (name, value) in rest {
        let optional = value
            .get("must_understand")
            .is_some_and(|m| m == &Value::Bool(false));
        if !optional {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "zarr.json has the field '{name}', which this reader does not understand and may not ignore"
                ),
            ));
        }
    }
    Ok(())
}

fn parse_grid(grid: Value) -> Result<Vec<usize>> {
    let (name, config) = named_config(&grid, "chunk_grid")?;
    if name != "regular" {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("chunk grid '{name}' is not supported (only regular)"),
        ));
    }
    let shape = config
        .and_then(|c| c.get("chunk_shape"))
        .ok_or_else(|| format_error("the regular chunk grid has no chunk_shape"))?;
    usize_list(shape, "chunk_shape")
}

fn parse_key_encoding(encoding: Value) -> Result<KeyEncoding> {
    let (name, config) = named_config(&encoding, "chunk_key_encoding")?;
    let separator = match config.and_then(|c| c.get("separator")) {
        None => None,
        Some(Value::String(s)) if s == "/" || s == "." => s.chars().next(),
        Some(other) => {
            return Err(format_error(format!(
                "chunk key separator {other} is neither \"/\" nor \".\""
            )));
        }
    };
    match name {
        "default" => Ok(KeyEncoding::Default(separator.unwrap_or('/'))),
        "v2" => Ok(KeyEncoding::V2(separator.unwrap_or('.'))),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("chunk key encoding '{other}' is not supported"),
        )),
    }
}

/// The `name` and optional `configuration` of a named object (or a bare name string).
///
/// # Errors
///
/// [`ErrorKind::Format`] naming `what` when it is neither.
pub fn named_config<'a>(value: &'a Value, what: &str) -> Result<(&'a str, Option<&'a Value>)> {
    match value {
        Value::String(name) => Ok((name, None)),
        Value::Object(map) => {
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format_error(format!("{what} has no name")))?;
            Ok((name, map.get("configuration")))
        }
        _ => Err(format_error(format!(
            "{what} is neither a name nor an object"
        ))),
    }
}

/// A list of non-negative integers that fit `usize`.
///
/// # Errors
///
/// [`ErrorKind::Format`] naming `what`.
pub fn usize_list(value: &Value, what: &str) -> Result<Vec<usize>> {
    let Value::Array(items) = value else {
        return Err(format_error(format!("{what} is not a list")));
    };
    if items.len() > MAX_NDIM {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{what} has {} entries, more than the {MAX_NDIM} supported",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format_error(format!("{what} holds {v}, not a length")))
        })
        .collect()
}

fn take(doc: &mut Map<String, Value>, key: &str) -> Result<Value> {
    doc.remove(key)
        .ok_or_else(|| format_error(format!("zarr.json has no {key}")))
}

fn take_str(doc: &mut Map<String, Value>, key: &str) -> Result<String> {
    match take(doc, key)? {
        Value::String(s) => Ok(s),
        other => Err(format_error(format!("{key} is {other}, not a string"))),
    }
}

/// A [`ErrorKind::Format`] error with `message`.
pub fn format_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Format, message)
}

/// Zarr's name of a data type.
pub const fn data_type_name(kind: DTypeKind) -> &'static str {
    match kind {
        DTypeKind::Bool => "bool",
        DTypeKind::I8 => "int8",
        DTypeKind::I16 => "int16",
        DTypeKind::I32 => "int32",
        DTypeKind::I64 => "int64",
        DTypeKind::U8 => "uint8",
        DTypeKind::U16 => "uint16",
        DTypeKind::U32 => "uint32",
        DTypeKind::U64 => "uint64",
        DTypeKind::F16 => "float16",
        DTypeKind::F32 => "float32",
        DTypeKind::F64 => "float64",
        DTypeKind::Complex64 => "complex64",
        DTypeKind::Complex128 => "complex128",
    }
}

fn data_type_kind(name: &str) -> Result<DTypeKind> {
    DTypeKind::ALL
        .into_iter()
        .find(|&k| data_type_name(k) == name)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UnsupportedDType,
                format!("data_type '{name}' is not supported by ndstore"),
            )
        })
}

/// The fill value's native bytes from its JSON spelling.
fn fill_from_json(kind: DTypeKind, value: &Value) -> Result<Vec<u8>> {
    let bad = || {
        format_error(format!(
            "fill_value {value} is not a valid {}",
            data_type_name(kind)
        ))
    };
    let int = |lo: i128, hi: i128| -> Result<i128> {
        let n = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from))
            .ok_or_else(bad)?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    // Each integer arm checks the range first, so the casts below are exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = match kind {
        DTypeKind::Bool => vec![u8::from(value.as_bool().ok_or_else(bad)?)],
        DTypeKind::I8 => (int(i8::MIN.into(), i8::MAX.into())? as i8)
            .to_ne_bytes()
            .to_vec(),
        DTypeKind::I16 => (int(i16::MIN.into(), i16::MAX.into())? as i16)
            .to_ne_bytes()
            .to_vec(),
        DTypeKind::I32 => (int(i32::MIN.into(), i32::MAX.into())? as i32)
            .to_ne_bytes()
            .to_vec(),
        DTypeKind::I64 => (int(i64::MIN.into(), i64::MAX.into())? as i64)
            .to_ne_bytes()
            .to_vec(),
        DTypeKind::U8 => (int(0, u8::MAX.into())? as u8).to_ne_bytes().to_vec(),
        DTypeKind::U16 => (int(0, u16::MAX.into())? as u16).to_ne_bytes().to_vec(),
        DTypeKind::U32 => (int(0, u32::MAX.into())? as u32).to_ne_bytes().to_vec(),
        DTypeKind::U64 => (int(0, u64::MAX.into())? as u64).to_ne_bytes().to_vec(),
        DTypeKind::F16 | DTypeKind::F32 | DTypeKind::F64 => float_from_json(kind, value)?,
        DTypeKind::Complex64 | DTypeKind::Complex128 => {
            let part = if kind == DTypeKind::Complex64 {
                DTypeKind::F32
            } else {
                DTypeKind::F64
            };
            match value {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut bytes = float_from_json(part, &pair[0])?;
                    bytes.extend(float_from_json(part, &pair[1])?);
                    bytes
                }
                _ => return Err(bad()),
            }
        }
    };
    Ok(bytes)
}

/// A float fill value's native bytes: a number, `"NaN"`, `"Infinity"`, `"-Infinity"` or the
/// bits as a hex string (`"0x7fc00001"`).
fn float_from_json(kind: DTypeKind, value: &Value) -> Result<Vec<u8>> {
    let bad = || {
        format_error(format!(
            "fill_value {value} is not a valid {}",
            data_type_name(kind)
        ))
    };
    let width = kind.itemsize();
    let number = match value {
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            hex => {
                let digits = hex.strip_prefix("0x").ok_or_else(bad)?;
                if digits.len() != width * 2 {
                    return Err(bad());
                }
                let bits = u64::from_str_radix(digits, 16).map_err(|_| bad())?;
                return Ok(bits_bytes(bits, width));
            }
        },
        _ => return Err(bad()),
    };
    // Rounding to the narrower type is what the spelling of a decimal number means.
    #[allow(clippy::cast_possible_truncation)]
    Ok(match kind {
        DTypeKind::F16 => f16::from_f64(number).to_ne_bytes().to_vec(),
        DTypeKind::F32 => (number as f32).to_ne_bytes().to_vec(),
        _ => number.to_ne_bytes().to_vec(),
    })
}

/// The native bytes of a `width`-byte value whose bits are `bits`.
fn bits_bytes(bits: u64, width: usize) -> Vec<u8> {
    // The range was checked by the digit count, so the casts are exact.
    #[allow(clippy::cast_possible_truncation)]
    match width {
        2 => (bits as u16).to_ne_bytes().to_vec(),
        4 => (bits as u32).to_ne_bytes().to_vec(),
        _ => bits.to_ne_bytes().to_vec(),
    }
}

/// The JSON spelling of a fill value's native bytes.
fn fill_to_json(kind: DTypeKind, bytes: &[u8]) -> Value {
    let int = |n: usize| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[..n]);
        b
    };
    match kind {
        DTypeKind::Bool => json!(bytes.first().is_some_and(|&b| b != 0)),
        DTypeKind::I8 => json!(i8::from_ne_bytes([bytes[0]])),
        DTypeKind::I16 => json!(i16::from_ne_bytes([bytes[0], bytes[1]])),
        DTypeKind::I32 => json!(i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DTypeKind::I64 => json!(i64::from_ne_bytes(int(8))),
        DTypeKind::U8 => json!(bytes[0]),
        DTypeKind::U16 => json!(u16::from_ne_bytes([bytes[0], bytes[1]])),
        DTypeKind::U32 => json!(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DTypeKind::U64 => json!(u64::from_ne_bytes(int(8))),
        DTypeKind::F16 | DTypeKind::F32 | DTypeKind::F64 => float_to_json(kind, bytes),
        DTypeKind::Complex64 => json!([
            float_to_json(DTypeKind::F32, &bytes[..4]),
            float_to_json(DTypeKind::F32, &bytes[4..8])
        ]),
        DTypeKind::Complex128 => json!([
            float_to_json(DTypeKind::F64, &bytes[..8]),
            float_to_json(DTypeKind::F64, &bytes[8..16])
        ]),
    }
}

fn float_to_json(kind: DTypeKind, bytes: &[u8]) -> Value {
    let width = kind.itemsize();
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(&bytes[..width]);
    let (value, bits, canonical_nan) = match kind {
        DTypeKind::F16 => {
            let v = f16::from_ne_bytes([raw[0], raw[1]]);
            (v.to_f64(), u64::from(v.to_bits()), 0x7e00u64)
        }
        DTypeKind::F32 => {
            let v = f32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
            (f64::from(v), u64::from(v.to_bits()), 0x7fc0_0000u64)
        }
        _ => {
            let v = f64::from_ne_bytes(raw);
            (v, v.to_bits(), 0x7ff8_0000_0000_0000u64)
        }
    };
    if value.is_nan() {
        if bits == canonical_nan {
            json!("NaN")
        } else {
            json!(format!("0x{bits:0width$x}", width = width * 2))
        }
    } else if value == f64::INFINITY {
        json!("Infinity")
    } else if value == f64::NEG_INFINITY {
        json!("-Infinity")
    } else if value == 0.0 && value.is_sign_negative() {
        // JSON numbers keep -0.0 through serde_json, but not through every reader.
        json!(format!("0x{bits:0width$x}", width = width * 2))
    } else {
        json!(value)
    }
}

/// The dtype a `bytes` codec stores for `kind` in `endian` (single-byte kinds have none).
pub fn dtype_in(kind: DTypeKind, endian: Option<ByteOrder>) -> DType {
    DType::new(kind, endian.unwrap_or(ByteOrder::NotApplicable))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn chunk_keys_of_both_encodings_are_recognised() {
        for key in ["c", "c/0", "c/1/22", "c.3.4", "0", "1.2", "1/2"] {
            assert!(is_chunk_key(key), "{key}");
        }
        for key in [
            "zarr.json",
            "c/",
            "c/x",
            "cat",
            "1..2",
            ".ndstore",
            "c/1/zarr.json",
            "",
        ] {
            assert!(!is_chunk_key(key), "{key}");
        }
    }

    fn array_doc(data_type: &str, fill: Value) -> Value {
        json!({
            "zarr_format": 3, "node_type": "array", "shape": [10, 7], "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": fill,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {"a": 1}, "dimension_names": ["y", null],
        })
    }

    fn parse_doc(doc: &Value) -> Result<ZarrMeta> {
        match parse(&serde_json::to_vec(doc).unwrap(), Path::new("x/zarr.json"))? {
            Node::Array(meta) => Ok(*meta),
            Node::Group(_) => panic!("a group"),
        }
    }

    #[test]
    fn every_dtype_and_its_fill_values_round_trip() {
        let fills: &[(&str, Value)] = &[
            ("bool", json!(true)),
            ("int8", json!(-128)),
            ("int16", json!(-2)),
            ("int32", json!(7)),
            ("int64", json!(i64::MIN)),
            ("uint8", json!(255)),
            ("uint16", json!(65535)),
            ("uint32", json!(1)),
            ("uint64", json!(u64::MAX)),
            ("float16", json!("NaN")),
            ("float32", json!("Infinity")),
            ("float64", json!("-Infinity")),
            ("float64", json!(0.1)),
            ("float32", json!("0x7fc00001")),
            ("float64", json!("0x8000000000000000")),
            ("complex64", json!([1.5, "NaN"])),
            ("complex128", json!(["-Infinity", 2.0])),
        ];
        for (dt, fill) in fills {
            let meta = parse_doc(&array_doc(dt, fill.clone())).unwrap();
            let written = meta.to_json();
            assert_eq!(&written["fill_value"], fill, "{dt}");
            assert_eq!(written["data_type"], json!(dt));
            let again = parse_doc(&written).unwrap();
            assert_eq!(again, meta, "{dt}");
        }
    }

    #[test]
    fn keys_follow_both_encodings() {
        assert_eq!(KeyEncoding::Default('/').key(&[0, 12]), "c/0/12");
        assert_eq!(KeyEncoding::Default('.').key(&[3]), "c.3");
        assert_eq!(KeyEncoding::Default('/').key(&[]), "c");
        assert_eq!(KeyEncoding::V2('.').key(&[1, 2]), "1.2");
        assert_eq!(KeyEncoding::V2('/').key(&[1, 2]), "1/2");
        assert_eq!(KeyEncoding::V2('.').key(&[]), "0");
        let mut doc = array_doc("int8", json!(0));
        doc["chunk_key_encoding"] = json!({"name": "v2"});
        assert_eq!(parse_doc(&doc).unwrap().key_encoding, KeyEncoding::V2('.'));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut doc = array_doc("float64", json!(0.0));
        doc["codecs"] = json!([{"name": "bytes"}, {"name": "blosc", "configuration": {}}]);
        let err = parse_doc(&doc).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("blosc"), "{err}");
        assert!(err.to_string().contains("x/zarr.json"), "{err}");

        let mut doc = array_doc("float64", json!(0.0));
        doc["an_extension"] = json!({"must_understand": true});
        assert_eq!(parse_doc(&doc).unwrap_err().kind(), ErrorKind::Unsupported);
        doc["an_extension"] = json!({"must_understand": false});
        assert!(parse_doc(&doc).is_ok());

        let doc = array_doc("string", json!(""));
        assert_eq!(
            parse_doc(&doc).unwrap_err().kind(),
            ErrorKind::UnsupportedDType
        );
        let doc = array_doc("uint8", json!(256));
        assert_eq!(parse_doc(&doc).unwrap_err().kind(), ErrorKind::Format);
    }

    #[test]
    fn a_huge_declared_shape_is_refused_before_anything_is_allocated() {
        let mut doc = array_doc("float64", json!(0.0));
        doc["shape"] = json!([u64::MAX / 2, u64::MAX / 2]);
        assert_eq!(parse_doc(&doc).unwrap_err().kind(), ErrorKind::TooLarge);
        let mut doc = array_doc("float64", json!(0.0));
        doc["chunk_grid"]["configuration"]["chunk_shape"] = json!([1u64 << 40, 1u64 << 40]);
        assert_eq!(parse_doc(&doc).unwrap_err().kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn groups_parse_and_write() {
        let doc = group_json(&Map::new());
        let node = parse(&serde_json::to_vec(&doc).unwrap(), Path::new("g")).unwrap();
        assert_eq!(node, Node::Group(Map::new()));
    }
}

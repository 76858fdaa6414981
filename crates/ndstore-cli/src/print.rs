//! `ndstore cat`: an array's values as numpy prints them (summarised past 1000 elements with 3
//! edge items and `...`, lines wrapped at 75 columns), or as CSV or JSON.

use std::io::Write;
use std::ops::Range;

use ndstore::hdf5;
use ndstore::ndarray::{ArrayViewD, Axis, Slice};
use ndstore::num_complex::Complex;
use ndstore::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::source::{self, Kind, Target};
use crate::{CatFormat, Outcome};

/// numpy's `threshold`: arrays of more elements are summarised.
const THRESHOLD: usize = 1000;
/// numpy's `edgeitems`.
const EDGE: usize = 3;
/// numpy's `linewidth`.
const LINE_WIDTH: usize = 75;

/// One element, whatever the array's type.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    /// bool
    Bool(bool),
    /// Any integer type.
    Int(i128),
    /// A float and the width it came from (16, 32 or 64 bits), for its shortest spelling.
    Float(f64, u8),
    /// A complex number and the width of its parts.
    Complex(f64, f64, u8),
}

/// An element type turned into a [`Scalar`] one shown element at a time, so printing a large
/// array never copies it whole.
pub trait ToScalar: Copy {
    /// The element as a scalar.
    fn scalar(self) -> Scalar;
}

macro_rules! int_scalar {
    ($($t:ty),*) => {
        $(impl ToScalar for $t {
            fn scalar(self) -> Scalar {
                Scalar::Int(self.into())
            }
        })*
    };
}
int_scalar!(i8, i16, i32, i64, u8, u16, u32, u64);

impl ToScalar for bool {
    fn scalar(self) -> Scalar {
        Scalar::Bool(self)
    }
}

impl ToScalar for ndstore::half::f16 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self.to_f64(), 16)
    }
}

impl ToScalar for f32 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self.into(), 32)
    }
}

impl ToScalar for f64 {
    fn scalar(self) -> Scalar {
        Scalar::Float(self, 64)
    }
}

impl ToScalar for Complex<f32> {
    fn scalar(self) -> Scalar {
        Scalar::Complex(self.re.into(), self.im.into(), 32)
    }
}

impl ToScalar for Complex<f64> {
    fn scalar(self) -> Scalar {
        Scalar::Complex(self.re, self.im, 64)
    }
}

/// The shortest spelling that reads back as the same value of its width, as numpy's repr.
fn shortest(v: f64, bits: u8) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf".into() } else { "inf".into() };
    }
    // Debug is the shortest round-trip spelling, with an exponent for very small and large
    // magnitudes; numpy writes a float with an integral value as `2.`, which `2` stands for here.
    let text = match bits {
        16 => format!("{:?}", shortest_f16(v)),
        32 => format!("{:?}", v as f32),
        _ => format!("{v:?}"),
    };
    match text.strip_suffix(".0") {
        Some(integral) => integral.to_owned(),
        None => text,
    }
}

/// The f64 nearest the shortest decimal that reads back as `v`'s f16 (0.1, not 0.099975586).
fn shortest_f16(v: f64) -> f64 {
    use ndstore::half::f16;
    let wanted = f16::from_f64(v);
    (0..6)
        .map(|digits| format!("{:.digits$e}", wanted.to_f32()))
        .filter_map(|text| text.parse::<f64>().ok())
        .find(|&decimal| f16::from_f64(decimal) == wanted)
        .unwrap_or(v)
}

/// numpy's `precision`: at most this many digits after the point (or of the mantissa).
const PRECISION: usize = 8;

/// `text` (a spelling `int.frac`) rounded to [`PRECISION`] digits after its point when longer,
/// trailing zeros dropped, as numpy prints.
fn limit_digits(text: String, rounded: impl Fn() -> String) -> String {
    match text.split_once('.') {
        Some((_, frac)) if frac.len() > PRECISION => {
            let text = rounded();
            let trimmed = text.trim_end_matches('0');
            trimmed.strip_suffix('.').unwrap_or(trimmed).to_owned()
        }
        _ => text,
    }
}

/// A plain spelling for CSV: integers as integers, floats shortest, bools as numpy writes.
fn plain(s: Scalar) -> String {
    match s {
        Scalar::Bool(b) => if b { "True" } else { "False" }.into(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(v, bits) => shortest(v, bits),
        Scalar::Complex(re, im, bits) => {
            let im_text = shortest(im, bits);
            let sign = if im_text.starts_with('-') { "" } else { "+" };
            format!("{}{sign}{im_text}j", shortest(re, bits))
        }
    }
}

/// numpy's float formatting, shared by every element so their decimal points line up:
/// positional unless the values span too many magnitudes.
struct FloatStyle {
    scientific: bool,
    /// Digits after the point (positional) or of the mantissa (scientific).
    digits: usize,
    int_width: usize,
}

impl FloatStyle {
    fn new(values: &[f64], bits: u8) -> FloatStyle {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let abs: Vec<f64> = finite
            .iter()
            .map(|v| v.abs())
            .filter(|&v| v != 0.0)
            .collect();
        let max = abs.iter().copied().fold(0.0, f64::max);
        let min = abs.iter().copied().fold(f64::INFINITY, f64::min);
        let scientific = !abs.is_empty() && (max >= 1e16 || min < 1e-4 || max / min > 1e3);
        let mut digits = 0;
        let mut int_width = 0;
        for &v in &finite {
            let text = if scientific {
                mantissa(v, bits).0
            } else {
                positional(v, bits)
            };
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            digits = digits.max(frac.len());
            int_width = int_width.max(int.len());
        }
        FloatStyle {
            scientific,
            digits,
            int_width,
        }
    }

    fn format(&self, v: f64, bits: u8) -> String {
        if !v.is_finite() {
            return shortest(v, bits);
        }
        if self.scientific {
            let (m, e) = mantissa(v, bits);
            let (int, frac) = m.split_once('.').unwrap_or((&m, ""));
            let sign = if e < 0 { '-' } else { '+' };
            return format!(
                "{int}.{frac:0<width$}e{sign}{:02}",
                e.abs(),
                width = self.digits
            );
        }
        let text = positional(v, bits);
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        format!(
            "{int:>iw$}.{frac:<width$}",
            iw = self.int_width,
            width = self.digits
        )
    }
}

/// The shortest positional spelling of `v`, at most [`PRECISION`] digits after the point.
fn positional(v: f64, bits: u8) -> String {
    limit_digits(shortest(v, bits), || format!("{v:.PRECISION$}"))
}

/// The shortest mantissa (with a point, at most [`PRECISION`] digits after it) and the decimal
/// exponent of `v`.
fn mantissa(v: f64, bits: u8) -> (String, i32) {
    let text = match bits {
        16 => format!("{:e}", shortest_f16(v)),
        32 => format!("{:e}", v as f32),
        _ => format!("{v:e}"),
    };
    let split = |text: &str| {
        let (m, e) = text.split_once('e').unwrap_or((text, "0"));
        (m.to_owned(), e.parse().unwrap_or(0))
    };
    let (m, e) = split(&text);
    if m.split_once('.')
        .is_some_and(|(_, frac)| frac.len() > PRECISION)
    {
        let (m, e) = split(&format!("{v:.PRECISION$e}"));
        let trimmed = m.trim_end_matches('0');
        return (trimmed.strip_suffix('.').unwrap_or(trimmed).to_owned(), e);
    }
    (m, e)
}

/// Every element's text in numpy's style, padded to one width.
fn numpy_texts(shown: &[Scalar]) -> Vec<String> {
    let floats = |pick: &dyn Fn(&Scalar) -> Option<(f64, u8)>| -> Vec<(f64, u8)> {
        shown.iter().filter_map(pick).collect()
    };
    let reals = floats(&|s| match *s {
        Scalar::Float(v, b) | Scalar::Complex(v, _, b) => Some((v, b)),
        _ => None,
    });
    let imags = floats(&|s| match *s {
        Scalar::Complex(_, v, b) => Some((v.abs(), b)),
        _ => None,
    });
    let bits = reals.first().map_or(64, |&(_, b)| b);
    let real_style = FloatStyle::new(&reals.iter().map(|p| p.0).collect::<Vec<_>>(), bits);
    let imag_style = FloatStyle::new(&imags.iter().map(|p| p.0).collect::<Vec<_>>(), bits);
    let texts: Vec<String> = shown
        .iter()
        .map(|s| match *s {
            Scalar::Bool(b) => if b { "True" } else { "False" }.into(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(v, b) => real_style.format(v, b),
            Scalar::Complex(re, im, b) => {
                let sign = if im.is_sign_negative() { '-' } else { '+' };
                let im = imag_style.format(im.abs(), b);
                format!("{}{sign}{}j", real_style.format(re, b), im.trim_start())
            }
        })
        .collect();
    let width = texts.iter().map(String::len).max().unwrap_or(0);
    texts.into_iter().map(|t| format!("{t:>width$}")).collect()
}

/// The indices shown along an axis of `len`: all, or the edges with `None` for `...`.
fn shown_indices(len: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && len > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((len - EDGE..len).map(Some))
            .collect()
    } else {
        (0..len).map(Some).collect()
    }
}

/// Collects the elements numpy would show, in order.
fn collect_shown<T: ToScalar>(a: ArrayViewD<'_, T>, summarise: bool, out: &mut Vec<Scalar>) {
    if a.ndim() == 0 {
        out.extend(a.iter().map(|v| v.scalar()));
        return;
    }
    for i in shown_indices(a.shape()[0], summarise).into_iter().flatten() {
        collect_shown(a.index_axis(Axis(0), i), summarise, out);
    }
}

/// numpy's `_formatArray`: nested brackets, `...` rows, lines wrapped at 75 columns.
fn render(
    shape: &[usize],
    texts: &mut std::slice::Iter<'_, String>,
    summarise: bool,
    indent: &str,
) -> String {
    let Some((&len, rest)) = shape.split_first() else {
        return texts.next().cloned().unwrap_or_default();
    };
    let next_indent = format!("{indent} ");
    let indices = shown_indices(len, summarise);
    if rest.is_empty() {
        let width = LINE_WIDTH.saturating_sub(1);
        let mut out = String::from("[");
        let mut line_len = indent.len() + 1;
        for (n, index) in indices.iter().enumerate() {
            let word = match index {
                Some(_) => texts.next().cloned().unwrap_or_default(),
                None => "...".into(),
            };
            let sep = usize::from(n > 0);
            if n > 0 && line_len + sep + word.len() > width {
                out.push('\n');
                out.push_str(&next_indent);
                line_len = next_indent.len();
            } else if n > 0 {
                out.push(' ');
                line_len += 1;
            }
            out.push_str(&word);
            line_len += word.len();
        }
        out.push(']');
        return out;
    }
    let line_sep = "\n".repeat(rest.len());
    let mut parts = Vec::new();
    for index in &indices {
        parts.push(match index {
            Some(_) => render(rest, texts, summarise, &next_indent),
            None => "...".into(),
        });
    }
    let mut out = String::from("[");
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            out.push_str(&line_sep);
            out.push_str(&next_indent);
        }
        out.push_str(part);
    }
    out.push(']');
    out
}

/// The array as numpy's `print` shows it.
pub fn numpy_text<T: ToScalar>(a: ArrayViewD<'_, T>) -> String {
    let summarise = a.len() > THRESHOLD;
    let mut shown = Vec::new();
    collect_shown(a.view(), summarise, &mut shown);
    let texts = numpy_texts(&shown);
    render(a.shape(), &mut texts.iter(), summarise, "")
}

/// One axis of a `--slice`: a range kept as an axis, or an index that removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// `start:stop`, clamped to the axis as numpy clamps.
    Range(Range<usize>),
    /// `i` (negative from the end).
    Index(usize),
}

/// Parses `0:10,:`-style selections against `shape`; axes not named are kept whole.
pub fn parse_slice(spec: &str, shape: &[usize]) -> Result<Vec<Pick>> {
    let bad = |why: String| Error::new(ErrorKind::InvalidInput, format!("--slice {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    if parts.len() > shape.len() {
        return Err(bad(format!(
            "{} axes selected, the array has {}",
            parts.len(),
            shape.len()
        )));
    }
    let mut picks = Vec::with_capacity(shape.len());
    for (&len, part) in shape.iter().zip(parts) {
        let bound = |text: &str, default: usize| -> Result<usize> {
            if text.is_empty() {
                return Ok(default);
            }
            let n: i64 = text
                .parse()
                .map_err(|_| bad(format!("{text:?} is not an integer")))?;
            let len = len as i64;
            Ok((if n < 0 { n + len } else { n }).clamp(0, len) as usize)
        };
        if let Some((start, stop)) = part.split_once(':') {
            let start = bound(start, 0)?;
            let stop = bound(stop, len)?.max(start);
            picks.push(Pick::Range(start..stop));
        } else {
            let n: i64 = part
                .parse()
                .map_err(|_| bad(format!("{part:?} is neither an index nor start:stop")))?;
            let index = if n < 0 { n + len as i64 } else { n };
            if index < 0 || index >= len as i64 {
                return Err(bad(format!(
                    "index {n} is out of bounds for an axis of {len}"
                )));
            }
            picks.push(Pick::Index(index as usize));
        }
    }
    picks.extend(shape[picks.len()..].iter().map(|&len| Pick::Range(0..len)));
    Ok(picks)
}

/// The box of elements the picks cover, one range per axis (an index is a range of one).
fn bounding_box(picks: &[Pick]) -> Vec<Range<usize>> {
    picks
        .iter()
        .map(|pick| match pick {
            Pick::Range(range) => range.clone(),
            Pick::Index(i) => *i..*i + 1,
        })
        .collect()
}

/// Applies the picks to `a`: ranges slice an axis, indices remove it.
pub fn select<'a, T>(mut a: ArrayViewD<'a, T>, picks: &[Pick]) -> ArrayViewD<'a, T> {
    let mut axis = 0;
    for pick in picks {
        match pick {
            Pick::Range(range) => {
                a.slice_axis_inplace(Axis(axis), Slice::from(range.clone()));
                axis += 1;
            }
            Pick::Index(i) => a = a.index_axis_move(Axis(axis), *i),
        }
    }
    a
}

fn json_float(v: f64, bits: u8) -> Value {
    if v.is_finite() {
        // The value of the element's own shortest spelling (an f32's 0.1 stays 0.1), parsed
        // exactly by the standard library and kept a float in JSON: `-2.0`, not `-2`.
        shortest(v, bits)
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    } else {
        json!(shortest(v, bits))
    }
}

fn json_scalar(s: Scalar) -> Value {
    match s {
        Scalar::Bool(b) => json!(b),
        Scalar::Int(i) => serde_json::from_str(&i.to_string()).unwrap_or(Value::Null),
        Scalar::Float(v, bits) => json_float(v, bits),
        Scalar::Complex(re, im, bits) => json!([json_float(re, bits), json_float(im, bits)]),
    }
}

/// Writes the selection as nested JSON arrays, element by element.
fn write_json<T: ToScalar>(out: &mut dyn Write, a: ArrayViewD<'_, T>) -> std::io::Result<()> {
    if a.ndim() == 0 {
        let value = a
            .iter()
            .next()
            .map_or(Value::Null, |v| json_scalar(v.scalar()));
        return write!(out, "{value}");
    }
    out.write_all(b"[")?;
    for (n, row) in a.outer_iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        write_json(out, row)?;
    }
    out.write_all(b"]")
}

/// Writes the selection as CSV rows.
fn write_csv<T: ToScalar>(out: &mut dyn Write, a: ArrayViewD<'_, T>) -> std::io::Result<()> {
    let mut row = |r: ArrayViewD<'_, T>| {
        let cells: Vec<String> = r.iter().map(|v| plain(v.scalar())).collect();
        writeln!(out, "{}", cells.join(","))
    };
    if a.ndim() == 2 {
        a.outer_iter().try_for_each(row)
    } else {
        row(a)
    }
}

fn print_view<T: ToScalar>(
    a: ArrayViewD<'_, T>,
    picks: Option<&[Pick]>,
    format: CatFormat,
) -> Result<()> {
    let a = match picks {
        Some(picks) => select(a, picks),
        None => a,
    };
    if format == CatFormat::Csv && a.ndim() > 2 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "CSV holds at most 2 axes and the selection has {}; select with --slice",
                a.ndim()
            ),
        ));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        CatFormat::Numpy => writeln!(out, "{}", numpy_text(a)),
        CatFormat::Csv => write_csv(&mut out, a),
        CatFormat::Json => write_json(&mut out, a).and_then(|()| writeln!(out)),
    }
    .and_then(|()| out.flush())
    .map_err(|e| Error::io("cannot write to standard output", e))
}

/// The picks of a selection within the box [`bounding_box`] read: an index is the box's only
/// row, a range starts at the box's start.
fn in_box(picks: Vec<Pick>) -> Vec<Pick> {
    picks
        .into_iter()
        .map(|pick| match pick {
            Pick::Index(_) => Pick::Index(0),
            Pick::Range(range) => Pick::Range(0..range.len()),
        })
        .collect()
}

/// `ndstore cat TARGET [--slice S] [--format F]`.
///
/// A selection of an HDF5 dataset or a Zarr array reads only the box it covers (a hyperslab in
/// the isolated reader; the chunks the box touches); other formats load the array and select
/// from it.
pub fn cat(target: &Target, slice: Option<&str>, format: CatFormat) -> Outcome {
    let path = &target.path;
    let (array, picks) = match (Kind::of(path)?, &target.object, slice) {
        (Kind::Hdf5, Some(name), Some(spec)) => {
            let meta = hdf5::read_meta(path, name)?;
            let picks = parse_slice(spec, &meta.shape)?;
            let array = hdf5::read_slice(path, name, &bounding_box(&picks))?;
            (array, Some(in_box(picks)))
        }
        (Kind::Zarr, _, Some(spec)) => {
            let zarr = crate::zarr::open(target)?;
            let picks = parse_slice(spec, &zarr.meta().shape)?;
            let (start, shape): (Vec<usize>, Vec<usize>) = bounding_box(&picks)
                .into_iter()
                .map(|range| (range.start, range.len()))
                .unzip();
            (zarr.read_region(&start, &shape)?, Some(in_box(picks)))
        }
        _ => {
            let (meta, array) = source::load(target)?;
            let picks = slice
                .map(|spec| parse_slice(spec, &meta.shape))
                .transpose()?;
            (array, picks)
        }
    };
    ndstore::with_dyn_array!(&array, |a| print_view(a.view(), picks.as_deref(), format))?;
    Ok(())
}

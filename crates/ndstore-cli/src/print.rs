//! `ndstore cat`: an array's values as numpy prints them (summarised past 1000 elements with 3
//! edge items and `...`, lines wrapped at 75 columns), or as CSV or JSON.

use std::io::Write;
use std::ops::Range;

use ndstore::file::npz::NpzReader;
use ndstore::hdf5;
use ndstore::ndarray::{ArrayViewD, Axis, Slice};
use ndstore::num_complex::Complex;
use ndstore::{DynArray, Error, ErrorKind, Result};
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

impl ToScalar for Scalar {
    fn scalar(self) -> Scalar {
        self
    }
}

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
        32 => even_tie(format!("{:?}", v as f32), v),
        _ => format!("{v:?}"),
    };
    match text.strip_suffix(".0") {
        Some(integral) => integral.to_owned(),
        None => text,
    }
}

/// `text`, a shortest spelling of the f32 `v`, with its last digit made even when another
/// spelling of as many digits reads back as `v` too and lies exactly as far from it: numpy's
/// Dragon4 rounds such a tie to the even digit (`51131.812` for 51131.8125), where Rust's
/// shortest spelling may take the other (`51131.813`).
fn even_tie(text: String, v: f64) -> String {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => text.split_at(at),
        None => (text.as_str(), ""),
    };
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let point = unsigned.find('.');
    let digits: String = unsigned.chars().filter(char::is_ascii_digit).collect();
    let Ok(n) = digits.parse::<u64>() else {
        return text;
    };
    if n % 2 == 0 {
        return text;
    }
    // A spelling of the digits `m` (as many as `digits`, plus `extra`), with the point where it
    // was.
    let spell = |m: u64, extra: usize| -> Option<String> {
        let body = format!("{m:0width$}", width = digits.len() + extra);
        if body.len() != digits.len() + extra {
            return None;
        }
        let body = match point {
            Some(at) => format!("{}.{}", &body[..at], &body[at..]),
            None => body,
        };
        Some(format!("{sign}{body}{exponent}"))
    };
    for neighbour in [n - 1, n + 1] {
        // The two spellings tie when the decimal halfway between them is `v` exactly.
        let midpoint = (n + neighbour) * 5;
        let ties = spell(midpoint, 1)
            .and_then(|m| m.parse::<f64>().ok())
            .is_some_and(|m| m == v);
        if let Some(other) = spell(neighbour, 0).filter(|_| ties)
            && other.parse::<f32>().ok() == Some(v as f32)
        {
            return other;
        }
    }
    text
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
        // An f16 as the f32 it is exactly, as JSON spells it (65504, not 65500).
        Scalar::Float(v, bits) => shortest(v, bits.max(32)),
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
    /// Digits of the exponent (scientific): at least 2, as many as the largest needs.
    exp_width: usize,
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
        // numpy 2 switches to scientific from 10 to the power of the width's decimal
        // precision (f16 3, f32 6, f64 8 at most), below 1e-4, or past a ratio of 1000.
        let cutoff = match bits {
            16 => 1e3,
            32 => 1e6,
            _ => 1e8,
        };
        let scientific = !abs.is_empty() && (max >= cutoff || min < 1e-4 || max / min > 1e3);
        let mut digits = 0;
        let mut int_width: usize = 0;
        let mut exp_width = 2;
        for &v in &finite {
            let text = if scientific {
                let (m, e) = mantissa(v, bits);
                exp_width = exp_width.max(e.unsigned_abs().to_string().len());
                m
            } else {
                positional(v, bits)
            };
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            digits = digits.max(frac.len());
            int_width = int_width.max(int.len());
        }
        let mut style = FloatStyle {
            scientific,
            digits,
            int_width,
            exp_width,
        };
        // numpy widens the integer part so that `nan`, `inf` and `-inf` fit in an element's
        // width (`  1.` beside `-inf`).
        if finite.len() < values.len() {
            let neginf = values.contains(&f64::NEG_INFINITY);
            let needed = (3 + usize::from(neginf)).saturating_sub(style.right() + 1);
            style.int_width = style.int_width.max(needed);
        }
        style
    }

    /// The width right of the point: the digits, and the exponent (`e+05`) when scientific.
    fn right(&self) -> usize {
        if self.scientific {
            self.digits + 2 + self.exp_width
        } else {
            self.digits
        }
    }

    fn format(&self, v: f64, bits: u8) -> String {
        if !v.is_finite() {
            let width = self.int_width + 1 + self.right();
            return format!("{:>width$}", shortest(v, bits));
        }
        if self.scientific {
            // Every mantissa has the most digits any needs; numpy takes the digits past an
            // element's shortest spelling from its exact value (an f16's 5.96e-08 beside
            // 1.25e+00, not 6.00e-08), as formatting the value at its width does.
            let digits = self.digits;
            let text = match bits {
                32 => format!("{:.digits$e}", v as f32),
                _ => format!("{v:.digits$e}"),
            };
            let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let (int, frac) = m.split_once('.').unwrap_or((m, ""));
            let sign = if e < 0 { '-' } else { '+' };
            return format!(
                "{int}.{frac}e{sign}{:0ew$}",
                e.unsigned_abs(),
                ew = self.exp_width
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
        32 => even_tie(format!("{:e}", v as f32), v),
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
            // numpy pads True to False's width in every array but a 0-d one.
            Scalar::Bool(b) => if b { " True" } else { "False" }.into(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(v, b) => real_style.format(v, b),
            Scalar::Complex(re, im, b) => {
                format!(
                    "{}{}",
                    real_style.format(re, b),
                    imaginary(&imag_style, im, b)
                )
            }
        })
        .collect();
    let width = texts.iter().map(String::len).max().unwrap_or(0);
    texts.into_iter().map(|t| format!("{t:>width$}")).collect()
}

/// An imaginary part as numpy writes it: its sign just before its digits, padded as the other
/// elements' parts are, and the `j` right after the digits, before any padding (`+15.j  `
/// beside ` +2.25j`).
fn imaginary(style: &FloatStyle, im: f64, bits: u8) -> String {
    // numpy writes a nan's sign as `+`, whatever its sign bit (`-inf+nanj`).
    let sign = if im.is_sign_negative() && !im.is_nan() {
        '-'
    } else {
        '+'
    };
    let text = style.format(im.abs(), bits);
    let digits = text.trim_start();
    let lead = text.len() - digits.len();
    let body = digits.trim_end();
    let trail = digits.len() - body.len();
    format!("{:lead$}{sign}{body}j{:trail$}", "", "")
}

/// A 0-d array's one element as numpy prints it, as its scalar's `str`: `100.0`, `1e+20`,
/// `-0.0`, `(1+2j)`, `True`.
fn scalar_text(s: Scalar) -> String {
    match s {
        Scalar::Bool(b) => if b { "True" } else { "False" }.into(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(v, bits) => scalar_float(v, bits, true),
        Scalar::Complex(re, im, bits) => {
            let imag = scalar_float(im, bits, false);
            if re == 0.0 && !re.is_sign_negative() {
                return format!("{imag}j");
            }
            let sign = if imag.starts_with('-') { "" } else { "+" };
            format!("({}{sign}{imag}j)", scalar_float(re, bits, false))
        }
    }
}

/// A float scalar as numpy's `str` spells it: positional from 1e-4 to 10 to the power of its
/// width's precision (f16 3, f32 7, f64 16), `.0` kept on an integral value when `point`
/// (complex parts drop it), else scientific with the shortest mantissa (`1e+20`, `9.98e+03`).
fn scalar_float(v: f64, bits: u8, point: bool) -> String {
    if !v.is_finite() {
        return shortest(v, bits);
    }
    let cutoff = match bits {
        16 => 1e3,
        32 => 1e7,
        _ => 1e16,
    };
    // The value at its width: an f32's 1e-4 is below 1e-4.
    let magnitude = match bits {
        16 => ndstore::half::f16::from_f64(v).to_f64().abs(),
        32 => f64::from(v as f32).abs(),
        _ => v.abs(),
    };
    if magnitude == 0.0 || (1e-4..cutoff).contains(&magnitude) {
        let text = shortest(v, bits);
        return match (text.contains('.'), point) {
            (false, true) => format!("{text}.0"),
            _ => text,
        };
    }
    let (m, e) = mantissa(v, bits);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{m}e{sign}{:02}", e.unsigned_abs())
}

/// The indices shown along an axis of `len`: all, or the edges with `None` for `...`.
fn shown_indices(len: usize, summarise: bool) -> Vec<Option<usize>> {
    shown_of(len, len, summarise)
}

/// The indices shown along an axis of `len` held in an axis of `held` elements: `len`'s own,
/// or, when only its edges are held (`held` is [`EDGE`] twice), where they lie among them.
fn shown_of(len: usize, held: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && len > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((held - EDGE..held).map(Some))
            .collect()
    } else {
        (0..held).map(Some).collect()
    }
}

/// Collects the elements numpy would show of an array shaped `shape`, in order, from `a`,
/// which holds all of it or only its edges.
fn collect_shown<T: ToScalar>(
    a: ArrayViewD<'_, T>,
    shape: &[usize],
    summarise: bool,
    out: &mut Vec<Scalar>,
) {
    let Some((&len, rest)) = shape.split_first() else {
        out.extend(a.iter().map(|v| v.scalar()));
        return;
    };
    for i in shown_of(len, a.shape()[0], summarise).into_iter().flatten() {
        collect_shown(a.index_axis(Axis(0), i), rest, summarise, out);
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
        // numpy keeps room for the closing bracket of this axis and of each axis around it.
        let width = LINE_WIDTH.saturating_sub(1 + indent.len());
        let mut out = String::from("[");
        let mut line_len = indent.len() + 1;
        for (n, index) in indices.iter().enumerate() {
            let word = match index {
                Some(_) => texts.next().cloned().unwrap_or_default(),
                None => "...".into(),
            };
            let sep = usize::from(n > 0);
            if n > 0 && line_len + sep + word.len() > width {
                // numpy strips the padding at the end of a wrapped line.
                out.truncate(out.trim_end().len());
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
    let shape = a.shape().to_vec();
    numpy_text_of(a, &shape)
}

/// An array shaped `shape` as numpy's `print` shows it, from `a`, which holds all of it or,
/// along each axis longer than [`EDGE`] twice, only the [`EDGE`] first and last elements.
fn numpy_text_of<T: ToScalar>(a: ArrayViewD<'_, T>, shape: &[usize]) -> String {
    // numpy prints an array without elements as `[]`, whatever its shape.
    if a.ndim() > 0 && a.is_empty() {
        return "[]".into();
    }
    if a.ndim() == 0 {
        return a
            .iter()
            .next()
            .map_or_else(String::new, |v| scalar_text(v.scalar()));
    }
    let summarise = shape.iter().product::<usize>() > THRESHOLD;
    let mut shown = Vec::new();
    collect_shown(a.view(), shape, summarise, &mut shown);
    let texts = numpy_texts(&shown);
    render(shape, &mut texts.iter(), summarise, "")
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
            let text = text.trim();
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
            if stop.contains(':') {
                return Err(bad(format!(
                    "{part:?} has a step; steps (start:stop:step) are not supported"
                )));
            }
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

/// A float in JSON: its shortest spelling at its width (an f32's 0.1 stays 0.1), kept a float
/// (`-2.0`, not `-2`); an f16 is spelt as the f32 it is exactly (65504, which f16's shortest
/// `6.55e4` would read back as 65500 in any reader of wider floats); nan and the infinities,
/// which JSON has no number for, as the strings "nan", "inf" and "-inf".
fn json_float(v: f64, bits: u8) -> Value {
    if v.is_finite() {
        shortest(v, bits.max(32))
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

/// The picks of a selection made of the rows from `first` on: its first axis shifted.
fn rows_from(picks: Vec<Pick>, first: usize) -> Vec<Pick> {
    picks
        .into_iter()
        .enumerate()
        .map(|(axis, pick)| match (axis, pick) {
            (0, Pick::Index(i)) => Pick::Index(i - first),
            (0, Pick::Range(range)) => Pick::Range(range.start - first..range.end - first),
            (_, pick) => pick,
        })
        .collect()
}

/// The dataset an HDF5 file named without `::OBJECT` is read as: `data`, else its only
/// dataset (as the facade loads it); `None` leaves the choice, and its error, to the loader.
fn only_dataset(path: &std::path::Path) -> Option<String> {
    if hdf5::read_meta(path, hdf5::DEFAULT_DATASET).is_ok() {
        return Some(hdf5::DEFAULT_DATASET.to_owned());
    }
    source::sole_h5_dataset(path)
}

/// The member of an `.npz` a target reads: the one it names, else the archive's only one;
/// `None` leaves the choice, and its error, to the loader.
fn npz_member(target: &Target) -> Option<String> {
    if let Some(object) = &target.object {
        return Some(object.clone());
    }
    match NpzReader::open_lenient(&target.path).ok()?.names() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A selection `spec` of an `.npz` member: only the rows it covers
/// ([`crate::convert::read_member_rows`]), else the member loaded whole.
fn npz_slice(target: &Target, spec: &str) -> Result<(DynArray, Option<Vec<Pick>>)> {
    let path = &target.path;
    if let Some(name) = npz_member(target) {
        let meta = NpzReader::open_lenient(path)?.read_meta(&name)?;
        let picks = parse_slice(spec, &meta.shape).map_err(|e| e.with_path(path))?;
        let rows = bounding_box(&picks).first().cloned().unwrap_or(0..0);
        let first = rows.start;
        if let Some((_, array)) = crate::convert::read_member_rows(path, &name, rows)? {
            // Only the rows of the selection are read: its first axis counts from them.
            return Ok((array, Some(rows_from(picks, first))));
        }
    }
    let (meta, array) = source::load(target)?;
    let picks = parse_slice(spec, &meta.shape).map_err(|e| e.with_path(path))?;
    Ok((array, Some(picks)))
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

/// The ranges read along an axis of `len` for a summarised print: its [`EDGE`] first and last
/// elements, or all of it when that is no more.
fn edge_ranges(len: usize) -> Vec<Range<usize>> {
    if len > 2 * EDGE {
        vec![0..EDGE, len - EDGE..len]
    } else {
        std::iter::once(0..len).collect()
    }
}

/// Every box of the edges of `shape`: one range per axis, each axis's ranges combined.
fn edge_boxes(shape: &[usize]) -> Vec<Vec<Range<usize>>> {
    shape.iter().fold(vec![Vec::new()], |boxes, &len| {
        boxes
            .iter()
            .flat_map(|b| {
                edge_ranges(len).into_iter().map(move |r| {
                    let mut b = b.clone();
                    b.push(r);
                    b
                })
            })
            .collect()
    })
}

/// numpy's print of an array too large to show whole (more than [`THRESHOLD`] elements) of
/// an HDF5 dataset, a `.npy` file, an `.npz` member or a Zarr array, reading only the
/// boxes at its edges that numpy shows (a `.npy` file's or member's whole rows at the edges of
/// its first axis); `None` for a small array, a deflated Fortran-ordered member or another
/// format, which the caller loads.
fn summarised(target: &Target, kind: Kind) -> Result<Option<String>> {
    let path = &target.path;
    let shape = match (kind, &target.object) {
        (Kind::Hdf5, object) => match object.clone().or_else(|| only_dataset(path)) {
            Some(name) => hdf5::read_meta(path, &name)?.shape,
            None => return Ok(None),
        },
        (Kind::Npy, None) => ndstore::file::npy::read_meta(path)?.shape,
        (Kind::Npz, _) => match npz_member(target) {
            Some(name) => NpzReader::open_lenient(path)?.read_meta(&name)?.shape,
            None => return Ok(None),
        },
        (Kind::Zarr, _) => crate::zarr::open(target)?.meta().shape.clone(),
        _ => return Ok(None),
    };
    if shape.iter().product::<usize>() <= THRESHOLD {
        return Ok(None);
    }
    let zarr = match kind {
        Kind::Zarr => Some(crate::zarr::open(target)?),
        _ => None,
    };
    let dataset = match kind {
        Kind::Npz => npz_member(target),
        _ => target.object.clone().or_else(|| only_dataset(path)),
    };
    let held: Vec<usize> = shape.iter().map(|&len| len.min(2 * EDGE)).collect();
    let mut edges = ndstore::ndarray::ArrayD::from_elem(held.clone(), Scalar::Int(0));
    for ranges in edge_boxes(&shape) {
        let array = match (&zarr, &dataset, kind) {
            (Some(zarr), _, _) => {
                let (start, len): (Vec<usize>, Vec<usize>) =
                    ranges.iter().map(|r| (r.start, r.len())).unzip();
                zarr.read_region(&start, &len)?
            }
            (None, Some(name), Kind::Hdf5) => hdf5::read_slice(path, name, &ranges)?,
            (None, Some(name), Kind::Npz) => {
                let rows = ranges.first().cloned().unwrap_or(0..0);
                // A deflated member can only be read in order: it is loaded whole.
                match crate::convert::read_member_rows(path, name, rows)? {
                    Some((_, array)) => array,
                    None => return Ok(None),
                }
            }
            _ => {
                let rows = ranges.first().cloned().unwrap_or(0..0);
                match crate::convert::read_npy_rows(path, rows)? {
                    Some((_, array)) => array,
                    None => return Ok(None),
                }
            }
        };
        let scalars = ndstore::with_dyn_array!(&array, |a| a.mapv(ToScalar::scalar));
        // A `.npy` file's or `.npz` member's rows come whole: the box is cut from them.
        let picks: Vec<Pick> = ranges
            .iter()
            .enumerate()
            .map(|(axis, r)| match (kind, axis) {
                (Kind::Npy | Kind::Npz, 1..) => Pick::Range(r.clone()),
                _ => Pick::Range(0..r.len()),
            })
            .collect();
        let part = select(scalars.view(), &picks);
        // Where the box lies among the edges held: its last edge ends the axis.
        let mut slot = edges.view_mut();
        for (axis, (range, (&len, &held))) in ranges.iter().zip(shape.iter().zip(&held)).enumerate()
        {
            let start = if range.start == 0 {
                0
            } else {
                held - (len - range.start)
            };
            slot.slice_axis_inplace(Axis(axis), Slice::from(start..start + range.len()));
        }
        slot.assign(&part);
    }
    Ok(Some(numpy_text_of(edges.view(), &shape)))
}

/// `ndstore cat TARGET [--slice S] [--format F]`.
///
/// A selection of an HDF5 dataset (`data` or the only one when none is named) or a Zarr array
/// reads only the box it covers (a hyperslab in the isolated reader; the chunks the box
/// touches), one of a `.npy` file only the rows it covers; other formats load the array and
/// select from it. Without a selection, numpy's print of an array too large to show whole
/// reads only the edges it shows from those same formats ([`summarised`]). A stored `.npz`
/// member is read as a `.npy` file is (only the rows needed), a deflated C-ordered one
/// decompressed up to them in bounded memory; a deflated Fortran-ordered one is loaded whole.
pub fn cat(target: &Target, slice: Option<&str>, format: CatFormat) -> Outcome {
    let path = &target.path;
    let kind = Kind::of(path)?;
    if slice.is_none()
        && format == CatFormat::Numpy
        && let Some(text) = summarised(target, kind)?
    {
        return Ok(crate::source::emit(&format!("{text}\n"))?);
    }
    let dataset = match (kind, slice) {
        (Kind::Hdf5, Some(_)) => target.object.clone().or_else(|| only_dataset(path)),
        _ => None,
    };
    let (array, picks) = match (kind, &target.object, slice, dataset) {
        (Kind::Hdf5, _, Some(spec), Some(name)) => {
            let meta = hdf5::read_meta(path, &name)?;
            let picks = parse_slice(spec, &meta.shape).map_err(|e| e.with_path(path))?;
            let array = hdf5::read_slice(path, &name, &bounding_box(&picks))?;
            (array, Some(in_box(picks)))
        }
        (Kind::Npy, None, Some(spec), _) => {
            let meta = ndstore::file::npy::read_meta(path)?;
            let picks = parse_slice(spec, &meta.shape).map_err(|e| e.with_path(path))?;
            let rows = bounding_box(&picks).first().cloned().unwrap_or(0..0);
            let first = rows.start;
            match crate::convert::read_npy_rows(path, rows)? {
                // Only the rows of the selection are read: its first axis counts from them.
                Some((_, array)) => (array, Some(rows_from(picks, first))),
                None => (source::load(target)?.1, Some(picks)),
            }
        }
        (Kind::Npz, _, Some(spec), _) => npz_slice(target, spec)?,
        (Kind::Zarr, _, Some(spec), _) => {
            let zarr = crate::zarr::open(target)?;
            let picks = parse_slice(spec, &zarr.meta().shape).map_err(|e| e.with_path(path))?;
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
                .transpose()
                .map_err(|e| e.with_path(path))?;
            (array, picks)
        }
    };
    ndstore::with_dyn_array!(&array, |a| print_view(a.view(), picks.as_deref(), format))?;
    Ok(())
}

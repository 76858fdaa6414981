//! Element values as text: the shortest decimal that round-trips exactly (or a fixed exponent
//! format), spelled as numpy spells `nan`, `inf` and complex numbers, and parsed back exactly.

use ndstore_core::half::f16;
use ndstore_core::num_complex::Complex;
use ndstore_core::{Element, Error, ErrorKind, Result};

/// How floating-point values are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FloatFormat {
    /// The shortest decimal that reads back as the same value (the default).
    #[default]
    Shortest,
    /// C's `%.Ne`: `N` digits after the point and a signed two-digit exponent, as numpy's
    /// default `%.18e`.
    Exponent(u8),
}

/// How `bool` values are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoolFormat {
    /// `0` and `1` (the default; `np.loadtxt(dtype=bool)` reads them).
    #[default]
    ZeroOne,
    /// `True` and `False`, as Python prints them.
    TrueFalse,
}

/// The formatting choices a value needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Floats.
    pub float: FloatFormat,
    /// Bools.
    pub bool: BoolFormat,
}

/// An element type that can be written as text and parsed back.
pub trait TextValue: Element {
    /// Appends the value's text to `out`.
    fn write_text(&self, out: &mut Vec<u8>, style: &Style);
    /// Parses a field.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Format`] saying why the field is not a value of this type; the caller
    /// attaches the file and the place.
    fn parse_text(field: &[u8]) -> Result<Self>;

    /// Appends one row: the values separated by `delimiter`, then `newline`.
    fn write_row(row: &[Self], delimiter: u8, newline: &[u8], out: &mut Vec<u8>, style: &Style) {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            value.write_text(out, style);
        }
        out.extend_from_slice(newline);
    }

    /// Parses a value at the start of `text` and says how many bytes it used, when the type has
    /// such a fast path (floats); `None` sends the caller to `parse_text` on a split field.
    fn parse_prefix(text: &[u8]) -> Option<(Self, usize)> {
        let _ = text;
        None
    }
}

/// A field that is not a value of the type: [`ErrorKind::Format`], placed by the caller.
fn invalid(why: String) -> Error {
    Error::new(ErrorKind::Format, why)
}

fn describe(field: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&field[..field.len().min(40)]).into_owned();
    if field.len() > 40 {
        format!("'{shown}…'")
    } else {
        format!("'{shown}'")
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl TextValue for $t {
            fn write_text(&self, out: &mut Vec<u8>, _: &Style) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
            }
            fn parse_text(field: &[u8]) -> Result<$t> {
                parse_int::<$t>(field)
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Integers: decimal digits with an optional sign; a float spelling of an exact integer (as
/// `np.savetxt` writes integer arrays by default, `1.000000000000000000e+00`) is accepted too.
fn parse_int<T: TryFrom<i128> + TryFrom<u64>>(field: &[u8]) -> Result<T> {
    let (negative, digits) = match field.first() {
        Some(b'-') => (true, &field[1..]),
        Some(b'+') => (false, &field[1..]),
        _ => (false, field),
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        let mut value: u128 = 0;
        for &d in digits {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .ok_or_else(|| {
                    invalid(format!(
                        "{} overflows {}",
                        describe(field),
                        std::any::type_name::<T>()
                    ))
                })?;
        }
        let value =
            i128::try_from(value).map_err(|_| invalid(format!("{} overflows", describe(field))))?;
        let value = if negative { -value } else { value };
        return T::try_from(value).map_err(|_| out_of_range::<T>(field));
    }
    let float: f64 = fast_float2::parse(field)
        .map_err(|_| invalid(format!("{} is not an integer", describe(field))))?;
    if float.fract() != 0.0 || !float.is_finite() || float.abs() > 9.007_199_254_740_992e15 {
        return Err(invalid(format!(
            "{} is not an exact integer",
            describe(field)
        )));
    }
    T::try_from(float as i128).map_err(|_| out_of_range::<T>(field))
}

fn out_of_range<T>(field: &[u8]) -> Error {
    invalid(format!(
        "{} is out of range for {}",
        describe(field),
        std::any::type_name::<T>()
    ))
}

impl TextValue for bool {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        out.extend_from_slice(match (style.bool, *self) {
            (BoolFormat::ZeroOne, false) => b"0",
            (BoolFormat::ZeroOne, true) => b"1",
            (BoolFormat::TrueFalse, false) => b"False",
            (BoolFormat::TrueFalse, true) => b"True",
        });
    }

    fn parse_text(field: &[u8]) -> Result<bool> {
        match field {
            b"0" | b"False" | b"false" => Ok(false),
            b"1" | b"True" | b"true" => Ok(true),
            _ => match fast_float2::parse::<f64, _>(field) {
                Ok(0.0) => Ok(false),
                Ok(1.0) => Ok(true),
                _ => Err(invalid(format!(
                    "{} is not a bool (0, 1, True or False)",
                    describe(field)
                ))),
            },
        }
    }
}

/// Writes a finite or special float: `nan`, `inf`, `-inf` as numpy spells them.
fn write_float<F: ryu::Float + Into<f64> + Copy>(value: F, out: &mut Vec<u8>, style: &Style) {
    let wide: f64 = value.into();
    if wide.is_nan() {
        out.extend_from_slice(b"nan");
    } else if wide.is_infinite() {
        out.extend_from_slice(if wide < 0.0 { b"-inf" } else { b"inf" });
    } else {
        match style.float {
            FloatFormat::Shortest => {
                out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes())
            }
            FloatFormat::Exponent(digits) => write_exponent(wide, digits, out),
        }
    }
}

/// A row of floats in the tight loop the text writer spends its time in: one ryu buffer, the
/// shortest format decided once, finite values first.
fn write_float_row<F: ryu::Float + Into<f64> + Copy>(
    row: &[F],
    delimiter: u8,
    newline: &[u8],
    out: &mut Vec<u8>,
    style: &Style,
) {
    let mut buffer = ryu::Buffer::new();
    let shortest = style.float == FloatFormat::Shortest;
    for value in row {
        let wide: f64 = (*value).into();
        if shortest && wide.is_finite() {
            out.extend_from_slice(buffer.format_finite(*value).as_bytes());
        } else {
            write_float(*value, out, style);
        }
        out.push(delimiter);
    }
    if row.is_empty() {
        out.extend_from_slice(newline);
    } else {
        // The delimiter after the last value becomes the line ending.
        out.pop();
        out.extend_from_slice(newline);
    }
}

/// C's `%.{digits}e`: `-1.500e+00`.
fn write_exponent(value: f64, digits: u8, out: &mut Vec<u8>) {
    let text = format!("{:.*e}", usize::from(digits), value);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    out.extend_from_slice(mantissa.as_bytes());
    out.push(b'e');
    let (sign, magnitude) = match exponent.strip_prefix('-') {
        Some(m) => (b'-', m),
        None => (b'+', exponent),
    };
    out.push(sign);
    if magnitude.len() < 2 {
        out.push(b'0');
    }
    out.extend_from_slice(magnitude.as_bytes());
}

fn parse_float<F: fast_float2::FastFloat>(field: &[u8]) -> Result<F> {
    fast_float2::parse(field).map_err(|_| invalid(format!("{} is not a number", describe(field))))
}

impl TextValue for f64 {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        write_float(*self, out, style);
    }
    fn parse_text(field: &[u8]) -> Result<f64> {
        parse_float(field)
    }
    fn write_row(row: &[f64], delimiter: u8, newline: &[u8], out: &mut Vec<u8>, style: &Style) {
        write_float_row(row, delimiter, newline, out, style);
    }
    fn parse_prefix(text: &[u8]) -> Option<(f64, usize)> {
        fast_float2::parse_partial(text)
            .ok()
            .filter(|&(_, used)| used > 0)
    }
}

impl TextValue for f32 {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        write_float(*self, out, style);
    }
    fn parse_text(field: &[u8]) -> Result<f32> {
        parse_float(field)
    }
    fn write_row(row: &[f32], delimiter: u8, newline: &[u8], out: &mut Vec<u8>, style: &Style) {
        write_float_row(row, delimiter, newline, out, style);
    }
    fn parse_prefix(text: &[u8]) -> Option<(f32, usize)> {
        fast_float2::parse_partial(text)
            .ok()
            .filter(|&(_, used)| used > 0)
    }
}

impl TextValue for f16 {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        // Every f16 is exactly an f32, so the shortest f32 text reads back as the same f16.
        write_float(self.to_f32(), out, style);
    }
    fn parse_text(field: &[u8]) -> Result<f16> {
        let wide: f32 = parse_float(field)?;
        let value = f16::from_f32(wide);
        if wide.is_finite() && value.is_infinite() {
            return Err(invalid(format!(
                "{} is out of range for f16",
                describe(field)
            )));
        }
        Ok(value)
    }
}

/// Complex numbers as numpy writes them: `(re+imj)`, `(re-imj)`, `(nan+nanj)`.
fn write_complex<F: ryu::Float + Into<f64> + Copy>(re: F, im: F, out: &mut Vec<u8>, style: &Style) {
    out.push(b'(');
    write_float(re, out, style);
    let im_wide: f64 = im.into();
    if !im_wide.is_sign_negative() || im_wide.is_nan() {
        out.push(b'+');
    }
    write_float(im, out, style);
    out.extend_from_slice(b"j)");
}

/// Parses `(re+imj)`, `re+imj`, `re`, `imj` (Python's complex syntax, with numpy's spellings).
fn parse_complex<F: fast_float2::FastFloat + Default>(field: &[u8]) -> Result<(F, F)> {
    let bad = || invalid(format!("{} is not a complex number", describe(field)));
    let inner = match (field.first(), field.last()) {
        (Some(b'('), Some(b')')) => &field[1..field.len() - 1],
        _ => field,
    };
    let Some(body) = inner
        .strip_suffix(b"j")
        .or_else(|| inner.strip_suffix(b"J"))
    else {
        return Ok((parse_float(inner).map_err(|_| bad())?, F::default()));
    };
    // The imaginary part starts at the last sign that does not follow an exponent marker.
    let split = (1..body.len())
        .rev()
        .find(|&i| matches!(body[i], b'+' | b'-') && !matches!(body[i - 1], b'e' | b'E'));
    match split {
        Some(i) => Ok((
            parse_float(&body[..i]).map_err(|_| bad())?,
            parse_float(&body[i..]).map_err(|_| bad())?,
        )),
        None => Ok((F::default(), parse_float(body).map_err(|_| bad())?)),
    }
}

impl TextValue for Complex<f64> {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        write_complex(self.re, self.im, out, style);
    }
    fn parse_text(field: &[u8]) -> Result<Complex<f64>> {
        parse_complex(field).map(|(re, im)| Complex::new(re, im))
    }
}

impl TextValue for Complex<f32> {
    fn write_text(&self, out: &mut Vec<u8>, style: &Style) {
        write_complex(self.re, self.im, out, style);
    }
    fn parse_text(field: &[u8]) -> Result<Complex<f32>> {
        parse_complex(field).map(|(re, im)| Complex::new(re, im))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: TextValue>(v: T, style: &Style) -> String {
        let mut out = Vec::new();
        v.write_text(&mut out, style);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_use_numpy_spellings_and_round_trip() {
        let s = Style::default();
        assert_eq!(text(f64::NAN, &s), "nan");
        assert_eq!(text(f64::NEG_INFINITY, &s), "-inf");
        assert_eq!(text(-0.0f64, &s), "-0.0");
        for v in [0.1f64, 1e-320, f64::MAX, -2.5e-7, 123456789.0] {
            assert_eq!(
                f64::parse_text(text(v, &s).as_bytes()).unwrap().to_bits(),
                v.to_bits()
            );
        }
        let e = Style {
            float: FloatFormat::Exponent(18),
            ..Style::default()
        };
        assert_eq!(text(1.5f64, &e), "1.500000000000000000e+00");
        // The exact binary value, as C's printf (and so numpy) prints it.
        assert_eq!(text(-2.5e-300f64, &e), "-2.499999999999999980e-300");
    }

    #[test]
    fn complex_numbers_read_as_numpy_writes_them() {
        let s = Style::default();
        assert_eq!(text(Complex::new(1.0f64, -2.0), &s), "(1.0-2.0j)");
        assert_eq!(
            text(Complex::new(f64::NAN, f64::INFINITY), &s),
            "(nan+infj)"
        );
        for field in ["(1+2j)", "1+2j", "(-1.5e-3-2e+4j)", "3j", "-7"] {
            let c = Complex::<f64>::parse_text(field.as_bytes()).unwrap();
            assert!(c.re.is_finite() && c.im.is_finite(), "{field}");
        }
        assert_eq!(
            Complex::<f64>::parse_text(b"(-1.5e-3-2e+4j)").unwrap(),
            Complex::new(-1.5e-3, -2e4)
        );
        assert!(Complex::<f64>::parse_text(b"(1+2i)").is_err());
    }

    #[test]
    fn integers_are_checked_and_accept_exact_float_spellings() {
        assert_eq!(i8::parse_text(b"-128").unwrap(), -128);
        assert!(
            i8::parse_text(b"128")
                .unwrap_err()
                .message()
                .contains("out of range")
        );
        assert_eq!(u64::parse_text(b"18446744073709551615").unwrap(), u64::MAX);
        assert!(u64::parse_text(b"18446744073709551616").is_err());
        assert_eq!(i32::parse_text(b"1.000000000000000000e+00").unwrap(), 1);
        assert!(
            i32::parse_text(b"1.5")
                .unwrap_err()
                .message()
                .contains("exact")
        );
        assert!(i32::parse_text(b"").is_err());
        assert!(bool::parse_text(b"2").is_err());
        assert!(bool::parse_text(b"True").unwrap());
    }
}

//! Deterministic test arrays: every dtype, shape and order, seeded so a failing case can be
//! reproduced, and salted with the values that break naive code (NaN payloads, -0.0,
//! infinities, subnormals, integer extremes).

use ndstore_core::half::f16;
use ndstore_core::ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndstore_core::num_complex::Complex;
use ndstore_core::{DTypeKind, DynArray, Element, Order, with_dtype_kind};

/// A small, fast, seedable generator (SplitMix64): good enough for test data, reproducible
/// across platforms, and no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Element values worth testing: a mix of random bit patterns and the special values.
trait Sample: Element {
    fn sample(rng: &mut Rng, index: usize) -> Self;
}

const F64_SPECIAL: [u64; 8] = [
    0x7ff8_0000_0000_0000, // quiet NaN
    0x7ff8_dead_beef_0001, // NaN with a payload
    0xfff0_0000_0000_0001, // negative signalling NaN
    0x8000_0000_0000_0000, // -0.0
    0x7ff0_0000_0000_0000, // +inf
    0xfff0_0000_0000_0000, // -inf
    0x0000_0000_0000_0001, // smallest subnormal
    0x000f_ffff_ffff_ffff, // largest subnormal
];
const F32_SPECIAL: [u32; 8] = [
    0x7fc0_0000,
    0x7fc0_1234,
    0xff80_0001,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000,
    0x0000_0001,
    0x007f_ffff,
];
const F16_SPECIAL: [u16; 8] = [
    0x7e00, 0x7e01, 0xfc01, 0x8000, 0x7c00, 0xfc00, 0x0001, 0x03ff,
];

impl Sample for bool {
    fn sample(rng: &mut Rng, _: usize) -> bool {
        rng.next_u64() & 1 == 1
    }
}

macro_rules! int_sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(rng: &mut Rng, index: usize) -> $t {
                match index % 5 {
                    0 => <$t>::MIN,
                    1 => <$t>::MAX,
                    _ => rng.next_u64() as $t,
                }
            }
        }
    )*};
}
int_sample!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Sample for f64 {
    fn sample(rng: &mut Rng, index: usize) -> f64 {
        if index.is_multiple_of(3) {
            f64::from_bits(F64_SPECIAL[(index / 3) % F64_SPECIAL.len()])
        } else {
            f64::from_bits(rng.next_u64())
        }
    }
}

impl Sample for f32 {
    fn sample(rng: &mut Rng, index: usize) -> f32 {
        if index.is_multiple_of(3) {
            f32::from_bits(F32_SPECIAL[(index / 3) % F32_SPECIAL.len()])
        } else {
            f32::from_bits(rng.next_u64() as u32)
        }
    }
}

impl Sample for f16 {
    fn sample(rng: &mut Rng, index: usize) -> f16 {
        if index.is_multiple_of(3) {
            f16::from_bits(F16_SPECIAL[(index / 3) % F16_SPECIAL.len()])
        } else {
            f16::from_bits(rng.next_u64() as u16)
        }
    }
}

impl Sample for Complex<f32> {
    fn sample(rng: &mut Rng, index: usize) -> Complex<f32> {
        Complex::new(f32::sample(rng, index), f32::sample(rng, index + 1))
    }
}

impl Sample for Complex<f64> {
    fn sample(rng: &mut Rng, index: usize) -> Complex<f64> {
        Complex::new(f64::sample(rng, index), f64::sample(rng, index + 1))
    }
}

fn typed<T: Sample>(shape: &[usize], order: Order, rng: &mut Rng) -> ArrayD<T> {
    let count: usize = shape.iter().product();
    let values: Vec<T> = (0..count).map(|i| T::sample(rng, i)).collect();
    let shape = IxDyn(shape).set_f(order == Order::Fortran);
    // The vector holds exactly `count` values, so the shape always fits.
    ArrayD::from_shape_vec(shape, values).unwrap_or_else(|_| {
        ArrayD::from_shape_simple_fn(IxDyn(&[0]), || T::sample(&mut Rng::new(0), 0))
    })
}

/// An array of `kind`, `shape` and memory `order`, filled from `seed`.
pub fn array(kind: DTypeKind, shape: &[usize], order: Order, seed: u64) -> DynArray {
    let mut rng = Rng::new(seed ^ (kind as u64) << 56);
    with_dtype_kind!(kind, |T| DynArray::from(typed::<T>(shape, order, &mut rng)))
}

/// Values only text can carry exactly: no NaN payloads (a NaN is the quiet NaN), still with
/// -0.0, infinities, subnormals and integer extremes.
pub fn array_without_nan_payloads(
    kind: DTypeKind,
    shape: &[usize],
    order: Order,
    seed: u64,
) -> DynArray {
    let mut array = array(kind, shape, order, seed);
    match &mut array {
        DynArray::F16(a) => a.mapv_inplace(|v| if v.is_nan() { f16::NAN } else { v }),
        DynArray::F32(a) => a.mapv_inplace(|v| if v.is_nan() { f32::NAN } else { v }),
        DynArray::F64(a) => a.mapv_inplace(|v| if v.is_nan() { f64::NAN } else { v }),
        DynArray::Complex64(a) => a.mapv_inplace(|v| {
            Complex::new(
                if v.re.is_nan() { f32::NAN } else { v.re },
                if v.im.is_nan() { f32::NAN } else { v.im },
            )
        }),
        DynArray::Complex128(a) => a.mapv_inplace(|v| {
            Complex::new(
                if v.re.is_nan() { f64::NAN } else { v.re },
                if v.im.is_nan() { f64::NAN } else { v.im },
            )
        }),
        _ => {}
    }
    array
}

/// The shapes of the fixed round-trip matrix: 0-d, empty, 1-d, 2-d, 3-d.
pub const FIXED_SHAPES: [&[usize]; 5] = [&[], &[0], &[7], &[3, 4], &[2, 3, 4]];

/// A random shape of at most `max_ndim` axes and a modest element count, zero-length axes
/// included now and then.
pub fn random_shape(rng: &mut Rng, max_ndim: usize) -> Vec<usize> {
    let ndim = rng.below(max_ndim.min(5) as u64 + 1) as usize;
    let mut shape: Vec<usize> = (0..ndim).map(|_| 1 + rng.below(6) as usize).collect();
    if ndim > 0 && rng.below(10) == 0 {
        let axis = rng.below(ndim as u64) as usize;
        shape[axis] = 0;
    }
    shape
}

//! `ndstore convert`: an array from one format into another, atomically and durably (the
//! destination appears complete or not at all, synced with its directory).
//!
//! A C-ordered `.npy` source going to `.npy` streams: rows are read through a buffer of at
//! most [`BUFFER_BYTES`] and appended to ndstore's streaming `.npy` writer, so memory stays
//! bounded whatever the array's size. Other pairs load the source whole, within its format's
//! own size checks.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use ndstore::file::{NpyWriter, npy, npz};
use ndstore::ndarray::{ArrayD, IxDyn};
use ndstore::{
    ArrayMeta, ByteOrder, Commit, DTypeKind, DynArray, Error, ErrorKind, Order, Result,
    SaveOptions, half, num_complex::Complex,
};

use crate::Outcome;
use crate::source::{self, Kind, Target, text_options, with_path};

/// The most bytes of rows a streaming conversion holds at once.
pub const BUFFER_BYTES: usize = 8 << 20;

/// The formats `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ToFormat {
    /// `.npy`
    Npy,
    /// `.npz` (one array, named as the source's object or `arr_0`)
    Npz,
    /// comma-separated text with a `# ndstore:` line
    Csv,
    /// whitespace-separated text with a `# ndstore:` line
    Txt,
    /// HDF5, dataset `data` (or the source's object path)
    Hdf5,
}

impl ToFormat {
    fn from_kind(kind: Kind) -> ToFormat {
        match kind {
            Kind::Npy => ToFormat::Npy,
            Kind::Npz => ToFormat::Npz,
            Kind::Csv => ToFormat::Csv,
            Kind::Txt => ToFormat::Txt,
            Kind::Hdf5 => ToFormat::Hdf5,
        }
    }
}

/// `ndstore convert SRC DST [--to FORMAT] [--quiet]`.
pub fn convert(src: &Target, dst: &Path, to: Option<ToFormat>, quiet: bool) -> Outcome {
    let to = match to {
        Some(to) => to,
        None => ToFormat::from_kind(Kind::of(dst)?),
    };
    let show = !quiet && std::io::stderr().is_terminal();
    if to == ToFormat::Npy && Kind::of(&src.path)? == Kind::Npy && src.object.is_none() {
        let meta = npy::read_meta(&src.path)?;
        if meta.order == Order::C && !meta.shape.is_empty() {
            return Ok(stream_npy(&src.path, dst, show)?);
        }
    }
    let (_, array) = source::load(src)?;
    let options = SaveOptions::default();
    let name = src.object.as_deref().map(|o| o.trim_start_matches('/'));
    match to {
        ToFormat::Npy => npy::save_dyn(dst, &array, &options)?,
        ToFormat::Npz => npz::save_npz(
            dst,
            &[(name.unwrap_or("arr_0"), &array)],
            npz::Compression::Stored,
            &options,
        )?,
        ToFormat::Csv | ToFormat::Txt => {
            let kind = if to == ToFormat::Csv {
                Kind::Csv
            } else {
                Kind::Txt
            };
            ndstore::with_dyn_array!(&array, |a| ndstore::text::save(
                dst,
                a,
                &text_options(kind),
                &options
            ))?;
        }
        ToFormat::Hdf5 => ndstore::hdf5::save_dyn(
            dst,
            src.object
                .as_deref()
                .unwrap_or(ndstore::hdf5::DEFAULT_DATASET),
            &array,
            &options,
        )?,
    }
    Ok(())
}

/// Copies a C-ordered `.npy` through ndstore's streaming writer, a bounded buffer of rows at a
/// time.
fn stream_npy(src: &Path, dst: &Path, show: bool) -> Result<()> {
    let mut file = File::open(src).map_err(|e| Error::io("cannot open", e).with_path(src))?;
    let meta = npy::read_header_from(&mut file).map_err(|e| with_path(e, src))?;
    let row_shape = meta.shape[1..].to_vec();
    let row_bytes = meta.dtype.itemsize() * row_shape.iter().product::<usize>();
    let rows = meta.shape[0];
    let per_block = BUFFER_BYTES
        .checked_div(row_bytes)
        .map_or(rows.max(1), |n| n.max(1));
    let total = (rows as u64).saturating_mul(row_bytes as u64);
    let bar = show.then(|| progress(total));
    let mut writer = NpyWriter::create(dst, meta.dtype, &row_shape, &SaveOptions::default())?;
    let mut buffer = Vec::new();
    let mut done = 0;
    while done < rows {
        let n = per_block.min(rows - done);
        buffer.resize(n * row_bytes, 0);
        let offset = file_offset(&mut file);
        file.read_exact(&mut buffer).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ErrorKind::Truncated
            } else {
                ErrorKind::Io
            };
            Error::new(
                kind,
                format!("the data ends before row {} of {rows}", done + n),
            )
            .at_offset(offset)
            .with_path(src)
        })?;
        let mut shape = vec![n];
        shape.extend_from_slice(&row_shape);
        writer.append_dyn(&decode(&meta, &buffer, &shape)?)?;
        done += n;
        if let Some(bar) = &bar {
            bar.set_position((done as u64).saturating_mul(row_bytes as u64));
        }
    }
    Commit::commit(writer)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

fn file_offset(file: &mut File) -> u64 {
    use std::io::Seek;
    file.stream_position().unwrap_or(0)
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Elements of `N` bytes in `order`, turned into values by `from`.
fn elements<T, const N: usize>(bytes: &[u8], order: ByteOrder, from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut b = [0u8; N];
            b.copy_from_slice(chunk);
            if order.needs_swap() {
                b.reverse();
            }
            from(b)
        })
        .collect()
}

/// The rows in `bytes` as an array shaped `shape` of the file's dtype.
fn decode(meta: &ArrayMeta, bytes: &[u8], shape: &[usize]) -> Result<DynArray> {
    let order = meta.dtype.byte_order;
    let shaped = |e: ndstore::ndarray::ShapeError| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("rows do not fit their shape: {e}"),
        )
    };
    macro_rules! array {
        ($t:ty, $n:literal, $from:expr) => {
            DynArray::from(
                ArrayD::from_shape_vec(IxDyn(shape), elements::<$t, $n>(bytes, order, $from))
                    .map_err(shaped)?,
            )
        };
    }
    Ok(match meta.dtype.kind {
        DTypeKind::Bool => {
            if let Some(at) = bytes.iter().position(|&b| b > 1) {
                return Err(Error::new(
                    ErrorKind::Format,
                    format!("a bool element holds {}", bytes[at]),
                ));
            }
            array!(bool, 1, |b: [u8; 1]| b[0] == 1)
        }
        DTypeKind::I8 => array!(i8, 1, i8::from_ne_bytes),
        DTypeKind::U8 => array!(u8, 1, u8::from_ne_bytes),
        DTypeKind::I16 => array!(i16, 2, i16::from_ne_bytes),
        DTypeKind::U16 => array!(u16, 2, u16::from_ne_bytes),
        DTypeKind::I32 => array!(i32, 4, i32::from_ne_bytes),
        DTypeKind::U32 => array!(u32, 4, u32::from_ne_bytes),
        DTypeKind::I64 => array!(i64, 8, i64::from_ne_bytes),
        DTypeKind::U64 => array!(u64, 8, u64::from_ne_bytes),
        DTypeKind::F16 => array!(half::f16, 2, half::f16::from_ne_bytes),
        DTypeKind::F32 => array!(f32, 4, f32::from_ne_bytes),
        DTypeKind::F64 => array!(f64, 8, f64::from_ne_bytes),
        DTypeKind::Complex64 => {
            let parts = elements::<f32, 4>(bytes, order, f32::from_ne_bytes);
            let values = parts
                .chunks_exact(2)
                .map(|p| Complex::new(p[0], p[1]))
                .collect();
            DynArray::from(ArrayD::from_shape_vec(IxDyn(shape), values).map_err(shaped)?)
        }
        DTypeKind::Complex128 => {
            let parts = elements::<f64, 8>(bytes, order, f64::from_ne_bytes);
            let values = parts
                .chunks_exact(2)
                .map(|p| Complex::new(p[0], p[1]))
                .collect();
            DynArray::from(ArrayD::from_shape_vec(IxDyn(shape), values).map_err(shaped)?)
        }
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::new(
                ErrorKind::UnsupportedDType,
                format!("cannot stream {other:?}"),
            ));
        }
    })
}

//! RT: arrays come back with the same shape, dtype (byte order included), memory order and
//! bit-identical values; metadata reads without the data; the wrong element type is an error.

use ndstore_core::{
    ArrayMeta, ByteOrder, DType, DTypeKind, DynArray, ErrorKind, Order, SaveOptions,
};

use crate::Ctx;
use crate::check::Check;
use crate::report::CheckResult;
use crate::sample::{self, FIXED_SHAPES, Rng};

/// One round-trip case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The element type.
    pub kind: DTypeKind,
    /// The shape.
    pub shape: Vec<usize>,
    /// The memory order of the saved array.
    pub order: Order,
    /// The byte order to store.
    pub byte_order: ByteOrder,
    /// The value seed.
    pub seed: u64,
}

impl Case {
    /// The array this case saves.
    pub fn array(&self, bit_exact: bool) -> DynArray {
        if bit_exact {
            sample::array(self.kind, &self.shape, self.order, self.seed)
        } else {
            sample::array_without_nan_payloads(self.kind, &self.shape, self.order, self.seed)
        }
    }

    /// The metadata a load must report.
    pub fn expected_meta(&self) -> ArrayMeta {
        ArrayMeta::new(
            DType::new(self.kind, self.byte_order),
            self.shape.clone(),
            self.order,
        )
    }

    /// A short name for failure messages.
    pub fn label(&self) -> String {
        format!(
            "{} {:?} {:?} {:?} seed {}",
            self.kind, self.shape, self.order, self.byte_order, self.seed
        )
    }
}

/// The fixed matrix: every declared dtype × the fixed shapes × the declared orders × the
/// declared byte orders.
pub fn fixed_matrix(ctx: &Ctx<'_>) -> Vec<Case> {
    let caps = ctx.backend.capabilities();
    let orders: &[Order] = if caps.fortran_order {
        &[Order::C, Order::Fortran]
    } else {
        &[Order::C]
    };
    let mut cases = Vec::new();
    for &kind in &caps.dtypes {
        let byte_orders: Vec<ByteOrder> = if caps.both_byte_orders && kind.has_byte_order() {
            vec![ByteOrder::Little, ByteOrder::Big]
        } else {
            vec![ByteOrder::native()]
        };
        for shape in FIXED_SHAPES.iter().filter(|s| s.len() <= caps.max_ndim) {
            for &order in orders {
                for &byte_order in &byte_orders {
                    cases.push(Case {
                        kind,
                        shape: shape.to_vec(),
                        order,
                        byte_order,
                        seed: cases.len() as u64,
                    });
                }
            }
        }
    }
    cases
}

fn property_cases(ctx: &Ctx<'_>) -> Vec<Case> {
    let caps = ctx.backend.capabilities();
    let count = ctx.mode.count(256, 2048);
    let mut rng = Rng::new(0x0a11_ce5e);
    (0..count)
        .map(|n| {
            let kind = caps.dtypes[rng.below(caps.dtypes.len() as u64) as usize];
            let order = if caps.fortran_order && rng.below(2) == 1 {
                Order::Fortran
            } else {
                Order::C
            };
            let byte_order = if caps.both_byte_orders && rng.below(2) == 1 {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            };
            let byte_order = if caps.both_byte_orders {
                byte_order
            } else {
                ByteOrder::native()
            };
            Case {
                kind,
                shape: sample::random_shape(&mut rng, caps.max_ndim),
                order,
                byte_order,
                seed: 1_000_000 + n,
            }
        })
        .collect()
}

/// Saves and loads one case; `Err` says what differed.
pub fn round_trip(ctx: &Ctx<'_>, case: &Case, name: &str) -> Result<(), String> {
    let caps = ctx.backend.capabilities();
    let path = ctx.path(name);
    let array = case.array(caps.bit_exact);
    let options = SaveOptions::new().byte_order(case.byte_order);
    ctx.backend
        .save(&path, &array, &options)
        .map_err(|e| format!("save: {e}"))?;
    let (meta, loaded) =
        crate::checks::load(ctx.backend, &path).map_err(|e| format!("load: {e}"))?;
    let want = case.expected_meta();
    if meta.dtype != want.dtype {
        return Err(format!("dtype {} came back as {}", want.dtype, meta.dtype));
    }
    if meta.shape != want.shape || loaded.shape() != want.shape.as_slice() {
        return Err(format!(
            "shape {:?} came back as {:?} (array {:?})",
            want.shape,
            meta.shape,
            loaded.shape()
        ));
    }
    if meta.effective_order() != want.effective_order() {
        return Err(format!(
            "order {:?} came back as {:?}",
            want.effective_order(),
            meta.effective_order()
        ));
    }
    let loaded_meta = ArrayMeta::new(meta.dtype, loaded.shape().to_vec(), loaded.layout_order());
    if loaded_meta.effective_order() != want.effective_order() {
        return Err(format!(
            "the loaded array is laid out {:?}, the file says {:?}",
            loaded.layout_order(),
            meta.order
        ));
    }
    if !loaded.bit_eq(&array) {
        return Err("values differ".to_owned());
    }
    let only_meta = ctx
        .backend
        .read_meta(&path)
        .map_err(|e| format!("read_meta: {e}"))?;
    if only_meta != meta {
        return Err(format!("read_meta says {only_meta:?}, load says {meta:?}"));
    }
    Ok(())
}

fn wrong_type(ctx: &Ctx<'_>) -> Result<(), String> {
    let caps = ctx.backend.capabilities();
    let path = ctx.path("wrong-type");
    let kind = caps.dtypes[0];
    let other = caps
        .dtypes
        .iter()
        .copied()
        .find(|k| *k != kind)
        .unwrap_or(DTypeKind::Complex128);
    let array = sample::array(kind, &[3, 2], Order::C, 9);
    ctx.backend
        .save(&path, &array, &SaveOptions::default())
        .map_err(|e| format!("save: {e}"))?;
    match ctx.backend.load_as(&path, other) {
        Ok(_) => Err(format!("loading {kind} data as {other} succeeded")),
        Err(e) if e.kind() == ErrorKind::TypeMismatch && e.path().is_some() => Ok(()),
        Err(e) => Err(format!(
            "loading {kind} as {other}: expected a type mismatch naming the file, got {e:?}"
        )),
    }?;
    match ctx.backend.load_as(&path, kind) {
        Ok(a) if a.bit_eq(&array) => Ok(()),
        Ok(_) => Err("load_as with the right type returned other values".to_owned()),
        Err(e) => Err(format!("load_as with the right type: {e}")),
    }
}

/// Bytes this process has read through read(2) and friends so far (`rchar`).
fn bytes_read() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reading metadata must not read the data: on a 16 MiB array, under 1 MiB may be read.
fn meta_without_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let caps = ctx.backend.capabilities();
    let kind = if caps.stores(DTypeKind::F64) {
        DTypeKind::F64
    } else {
        caps.dtypes[0]
    };
    let n = (16 << 20) / kind.itemsize();
    let array = sample::array(kind, &[n / 1024, 1024], Order::C, 3);
    let path = ctx.path("big-meta");
    ctx.backend
        .save(&path, &array, &SaveOptions::new().flushed())
        .map_err(|e| format!("save: {e}"))?;
    let before = bytes_read().ok_or("no /proc/self/io")?;
    let meta = ctx
        .backend
        .read_meta(&path)
        .map_err(|e| format!("read_meta: {e}"))?;
    let read = bytes_read()
        .ok_or("no /proc/self/io")?
        .saturating_sub(before);
    if meta.shape != array.shape() {
        return Err(format!("read_meta gave shape {:?}", meta.shape));
    }
    if read > 1 << 20 {
        return Err(format!("read_meta read {read} bytes of a 16 MiB file"));
    }
    Ok(())
}

/// RT over the fixed matrix, the property cases, metadata without data, and the wrong type.
pub fn rt(ctx: &Ctx<'_>) -> Result<CheckResult, String> {
    let fixed = fixed_matrix(ctx);
    let property = property_cases(ctx);
    let mut failures = Vec::new();
    let mut cases = 0u64;
    let mut progress = crate::progress::Progress::new(
        ctx.backend.name(),
        Check::RoundTrip.id(),
        (fixed.len() + property.len()) as u64,
    );
    for (n, case) in fixed.iter().chain(property.iter()).enumerate() {
        progress.tick(n as u64);
        cases += 1;
        if let Err(e) = round_trip(ctx, case, &format!("rt{n}")) {
            failures.push(format!("{}: {e}", case.label()));
        }
    }
    for (name, result) in [
        ("wrong element type", wrong_type(ctx)),
        ("metadata without data", meta_without_data(ctx)),
    ] {
        cases += 1;
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    let what = format!(
        "{} fixed cases (dtype × shape × order × byte order), {} property cases, metadata without data, wrong element type",
        fixed.len(),
        property.len()
    );
    Ok(CheckResult::counted(
        Check::RoundTrip,
        cases,
        &failures,
        &what,
    ))
}

//! `ndstore info` and `ndstore ls`: what a file holds, without reading its data.

use std::fmt::Write as _;
use std::path::Path;

use ndstore::hdf5::{self, Object};
use ndstore::{ArrayMeta, Order, Result};
use serde_json::{Value, json};

use crate::Outcome;
use crate::source::{self, Kind, Target, emit};

/// A shape as numpy prints it: `(2, 3)`, `(5,)`, `()`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let axes: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", axes.join(", "))
        }
    }
}

fn order_name(order: Order) -> &'static str {
    match order {
        Order::C => "C",
        _ => "F",
    }
}

/// Bytes of an array's data; a size that overflows is printed as such, never a panic.
fn bytes_of(meta: &ArrayMeta) -> Result<u64> {
    Ok(meta.byte_len()? as u64)
}

fn meta_json(name: Option<&str>, meta: &ArrayMeta) -> Result<Value> {
    let mut value = json!({
        "dtype": meta.dtype.to_numpy_descr(),
        "shape": meta.shape,
        "order": order_name(meta.order),
        "bytes": bytes_of(meta)?,
    });
    if let (Some(name), Some(map)) = (name, value.as_object_mut()) {
        map.insert("name".into(), json!(name));
    }
    Ok(value)
}

/// `ndstore info TARGET [--json]`.
pub fn info(target: &Target, json: bool) -> Outcome {
    let (kind, metas) = source::metas(target)?;
    let path = target.path.display().to_string();
    if json {
        let arrays: Result<Vec<Value>> = metas
            .iter()
            .map(|(name, meta)| meta_json(name.as_deref(), meta))
            .collect();
        let value = json!({ "path": path, "format": kind.name(), "arrays": arrays? });
        emit(&format!("{value:#}\n"))?;
        return Ok(());
    }
    let mut out = format!("path:   {path}\nformat: {}\n", kind.name());
    if let (false, [(_, meta)]) = (kind.is_container() && target.object.is_none(), &metas[..]) {
        if let Some(name) = &target.object {
            let _ = writeln!(out, "object: {name}");
        }
        let _ = write!(
            out,
            "dtype:  {}\nshape:  {}\norder:  {}\nbytes:  {}\n",
            meta.dtype.to_numpy_descr(),
            shape_text(&meta.shape),
            order_name(meta.order),
            bytes_of(meta)?
        );
    } else {
        let _ = writeln!(out, "arrays: {}", metas.len());
        let rows: Result<Vec<[String; 5]>> = metas
            .iter()
            .map(|(name, meta)| {
                Ok([
                    name.clone().unwrap_or_default(),
                    meta.dtype.to_numpy_descr(),
                    shape_text(&meta.shape),
                    order_name(meta.order).to_owned(),
                    format!("{} bytes", bytes_of(meta)?),
                ])
            })
            .collect();
        out.push_str(&table(&rows?, "  "));
    }
    emit(&out)?;
    Ok(())
}

/// Rows of cells in left-aligned columns, each line after `indent`.
fn table<const N: usize>(rows: &[[String; N]], indent: &str) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_owned();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line of a listing: the object's path, what it is, and details.
fn describe(object: &Object) -> (String, String) {
    let array = |meta: &ArrayMeta| {
        format!(
            "{} {} {}",
            meta.dtype.to_numpy_descr(),
            shape_text(&meta.shape),
            order_name(meta.order)
        )
    };
    match object {
        Object::Dataset(meta) => ("dataset".into(), array(meta)),
        Object::Unsupported { shape, reason } => (
            "unsupported".into(),
            format!("{} ({reason})", shape_text(shape)),
        ),
        Object::Group { listed: true } => ("group".into(), String::new()),
        Object::Group { listed: false } => ("group".into(), "(deeper than listed)".into()),
        Object::Datatype => ("datatype".into(), String::new()),
        Object::Alias { of } => ("hard link".into(), format!("-> {of} (listed there)")),
        Object::SoftLink { target } => ("soft link".into(), format!("-> {target}")),
        Object::ExternalLink { file, object } => {
            ("external link".into(), format!("-> {file}::{object}"))
        }
        Object::UserLink => ("user link".into(), "(not followed)".into()),
        Object::Unreadable { error } => ("unreadable".into(), error.clone()),
        _ => (
            "unsupported".into(),
            "(an object this version does not know)".into(),
        ),
    }
}

/// `ndstore ls PATH [--json]`.
pub fn ls(path: &Path, json: bool) -> Outcome {
    let kind = Kind::of(path)?;
    let rows: Vec<[String; 3]> = match kind {
        Kind::Hdf5 => hdf5::list(path)?
            .into_iter()
            .map(|entry| {
                let (what, details) = describe(&entry.object);
                [entry.path, what, details]
            })
            .collect(),
        _ => {
            let (_, metas) = source::metas(&Target {
                path: path.to_owned(),
                object: None,
            })?;
            metas
                .into_iter()
                .map(|(name, meta)| {
                    let (what, details) = describe(&Object::Dataset(meta));
                    [
                        name.unwrap_or_default(),
                        what.replace("dataset", "array"),
                        details,
                    ]
                })
                .collect()
        }
    };
    if json {
        let entries: Vec<Value> = rows
            .iter()
            .map(|[name, what, details]| json!({ "name": name, "kind": what, "details": details }))
            .collect();
        emit(&format!("{:#}\n", json!(entries)))?;
    } else {
        emit(&table(&rows, ""))?;
    }
    Ok(())
}

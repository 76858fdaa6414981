//! `ndstore info` and `ndstore ls`: what a file holds, without reading its data (a Zarr
//! array's chunks, shards, codecs, fill value and dimension names among it).

use std::fmt::Write as _;
use std::path::Path;

use ndstore::file::npz::NpzReader;
use ndstore::hdf5::{self, Object};
use ndstore::zarr::meta::ZarrMeta;
use ndstore::{ArrayMeta, Error, ErrorKind, Order, Result};
use serde_json::{Value, json};

use crate::Outcome;
use crate::source::{self, Kind, Target, emit};
use crate::zarr::{self, Found};

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

/// An HDF5 dataset's chunks, filters and maximum shape, for `info`.
fn layout(path: &Path, kind: Kind, name: Option<&str>) -> Result<Option<hdf5::Layout>> {
    match (kind, name) {
        (Kind::Hdf5, Some(name)) => hdf5::read_layout(path, name).map(Some),
        _ => Ok(None),
    }
}

fn maxshape_text(maxshape: &[Option<usize>]) -> String {
    let axes: Vec<String> = maxshape
        .iter()
        .map(|m| m.map_or("None".to_owned(), |n| n.to_string()))
        .collect();
    match &axes[..] {
        [one] => format!("({one},)"),
        _ => format!("({})", axes.join(", ")),
    }
}

/// The layout's facts as text: `chunks (1, 4), filters fletcher32, maxshape (3, 4)`.
fn layout_text(layout: &hdf5::Layout) -> String {
    let chunks = layout
        .chunks
        .as_deref()
        .map_or("contiguous".to_owned(), |c| {
            format!("chunks {}", shape_text(c))
        });
    let filters = if layout.filters.is_empty() {
        "no filters".to_owned()
    } else {
        format!("filters {}", layout.filters.join(","))
    };
    format!(
        "{chunks}, {filters}, maxshape {}",
        maxshape_text(&layout.maxshape)
    )
}

fn meta_json(name: Option<&str>, meta: &ArrayMeta, layout: Option<&hdf5::Layout>) -> Result<Value> {
    let mut value = json!({
        "dtype": meta.dtype.to_numpy_descr(),
        "shape": meta.shape,
        "order": order_name(meta.order),
        "bytes": bytes_of(meta)?,
    });
    if let Some(map) = value.as_object_mut() {
        if let Some(name) = name {
            map.insert("name".into(), json!(name));
        }
        if let Some(layout) = layout {
            map.insert("chunks".into(), json!(layout.chunks));
            map.insert("filters".into(), json!(layout.filters));
            map.insert("maxshape".into(), json!(layout.maxshape));
        }
    }
    Ok(value)
}

/// The JSON of a Zarr array for `info --json`.
fn zarr_json(name: &str, meta: &ZarrMeta) -> Result<Value> {
    let mut value = meta_json(Some(name), &zarr::array_meta(meta), None)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("chunks".into(), json!(zarr::chunk_shape(meta)));
        map.insert("shards".into(), json!(zarr::shard_shape(meta)));
        map.insert("codecs".into(), json!(zarr::chain_text(&meta.codecs)));
        map.insert("codecs_json".into(), meta.codecs.to_json());
        map.insert("fill_value".into(), zarr::fill_value(meta));
        map.insert("dimension_names".into(), json!(meta.dimension_names));
    }
    Ok(value)
}

/// `ndstore info` of a Zarr array, or of every array under a group.
fn zarr_info(target: &Target, json: bool) -> Outcome {
    let entries = zarr::walk(target)?;
    let arrays: Vec<(&str, &ZarrMeta)> = entries
        .iter()
        .filter_map(|entry| match &entry.found {
            Found::Array(meta) => Some((entry.name.as_str(), &**meta)),
            _ => None,
        })
        .collect();
    let path = target.path.display().to_string();
    if json {
        let arrays: Result<Vec<Value>> = arrays
            .iter()
            .map(|(name, meta)| zarr_json(name, meta))
            .collect();
        let mut value =
            json!({ "path": path, "format": "zarr", "zarr_format": 3, "arrays": arrays? });
        if let Some(note) = entries.first().and_then(|e| zarr::writer_note(&e.place))
            && let Some(map) = value.as_object_mut()
        {
            map.insert("writer".into(), json!(note));
        }
        emit(&format!("{value:#}\n"))?;
        return Ok(());
    }
    let mut out = format!("path:   {path}\nformat: zarr v3\n");
    let single = matches!(entries.first().map(|e| &e.found), Some(Found::Array(_)));
    if let (true, [(_, meta)]) = (single, &arrays[..]) {
        if let Some(name) = &target.object {
            let _ = writeln!(out, "object: {name}");
        }
        let _ = write!(
            out,
            "dtype:  {}\nshape:  {}\norder:  C\nbytes:  {}\nchunks: {}\n",
            meta.dtype().to_numpy_descr(),
            shape_text(&meta.shape),
            bytes_of(&zarr::array_meta(meta))?,
            shape_text(zarr::chunk_shape(meta)),
        );
        if let Some(shards) = zarr::shard_shape(meta) {
            let _ = writeln!(out, "shards: {}", shape_text(shards));
        }
        let _ = writeln!(out, "codecs: {}", zarr::chain_text(&meta.codecs));
        let _ = writeln!(out, "fill:   {}", zarr::fill_value(meta));
        if let Some(names) = &meta.dimension_names {
            let _ = writeln!(out, "dims:   {}", zarr::dims_text(names));
        }
        if let Some(note) = entries.first().and_then(|e| zarr::writer_note(&e.place)) {
            let _ = writeln!(out, "writer: {note}");
        }
    } else {
        let _ = writeln!(out, "arrays: {}", arrays.len());
        let rows: Result<Vec<[String; 6]>> = arrays
            .iter()
            .map(|(name, meta)| {
                Ok([
                    (*name).to_owned(),
                    meta.dtype().to_numpy_descr(),
                    shape_text(&meta.shape),
                    "C".to_owned(),
                    format!("{} bytes", bytes_of(&zarr::array_meta(meta))?),
                    zarr::layout_text(meta),
                ])
            })
            .collect();
        out.push_str(&table(&rows?, "  "));
    }
    emit(&out)?;
    Ok(())
}

/// `ndstore info TARGET [--json]`.
pub fn info(target: &Target, json: bool) -> Outcome {
    if Kind::of(&target.path)? == Kind::Zarr {
        return zarr_info(target, json);
    }
    let (kind, metas) = source::metas(target)?;
    let layouts = metas
        .iter()
        .map(|(name, _)| layout(&target.path, kind, name.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let path = target.path.display().to_string();
    if json {
        let arrays: Result<Vec<Value>> = metas
            .iter()
            .zip(&layouts)
            .map(|((name, meta), layout)| meta_json(name.as_deref(), meta, layout.as_ref()))
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
        if let Some(Some(layout)) = layouts.first() {
            let _ = writeln!(out, "layout: {}", layout_text(layout));
        }
    } else {
        let _ = writeln!(out, "arrays: {}", metas.len());
        let rows: Result<Vec<[String; 6]>> = metas
            .iter()
            .zip(&layouts)
            .map(|((name, meta), layout)| {
                Ok([
                    name.clone().unwrap_or_default(),
                    meta.dtype.to_numpy_descr(),
                    shape_text(&meta.shape),
                    order_name(meta.order).to_owned(),
                    format!("{} bytes", bytes_of(meta)?),
                    layout.as_ref().map(layout_text).unwrap_or_default(),
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

/// `ndstore ls PATH[::OBJECT] [--json]`: every object of the file, or the object named and
/// what lies below it (a Zarr or HDF5 group's subtree, an `.npz` member).
pub fn ls(target: &Target, json: bool) -> Outcome {
    let path = target.path.as_path();
    let kind = Kind::of(path)?;
    let rows: Vec<[String; 3]> = match kind {
        Kind::Zarr => zarr::walk(target)?
            .iter()
            .map(|entry| {
                let (what, details) = zarr::describe(entry);
                [entry.name.clone(), what, details]
            })
            .collect(),
        Kind::Npz => source::npz_members(&mut NpzReader::open_lenient(path)?)?
            .into_iter()
            .filter(|(name, _)| target.object.as_ref().is_none_or(|o| o == name))
            .map(|(name, meta)| match meta {
                Ok(meta) => {
                    let (_, details) = describe(&Object::Dataset(meta));
                    [name, "array".to_owned(), details]
                }
                Err(why) => [name, "unsupported".to_owned(), format!("({why})")],
            })
            .collect(),
        // An object's own listing, as h5ls lists it: a hard link to an object outside the
        // subtree describes the object rather than point at a line not shown.
        Kind::Hdf5 => match &target.object {
            Some(object) => hdf5::list_from(path, object)?,
            None => hdf5::list(path)?,
        }
        .into_iter()
        .map(|entry| {
            let (what, details) = describe(&entry.object);
            [entry.path, what, details]
        })
        .collect(),
        _ => {
            let (_, metas) = source::metas(target)?;
            metas
                .into_iter()
                .map(|(name, meta)| {
                    let (what, details) = describe(&Object::Dataset(meta));
                    // A single-array file's one array goes by the file's name.
                    let file = || path.file_name().map(|f| f.to_string_lossy().into_owned());
                    [
                        name.or_else(file).unwrap_or_default(),
                        what.replace("dataset", "array"),
                        details,
                    ]
                })
                .collect()
        }
    };
    if rows.is_empty()
        && let Some(object) = &target.object
    {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no object '{object}' in this file"),
        )
        .with_path(path)
        .into());
    }
    list(&rows, json)
}

/// Prints `ls`'s rows as a table, or as JSON.
fn list(rows: &[[String; 3]], json: bool) -> Outcome {
    if json {
        let entries: Vec<Value> = rows
            .iter()
            .map(|[name, what, details]| json!({ "name": name, "kind": what, "details": details }))
            .collect();
        emit(&format!("{:#}\n", json!(entries)))?;
    } else {
        emit(&table(rows, ""))?;
    }
    Ok(())
}

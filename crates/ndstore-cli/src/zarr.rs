//! Zarr v3 for the command line: the hierarchy of a store (groups and arrays, walked without
//! following a link twice), an array's chunks, shards and codec chain in words, every stored
//! chunk read back for `verify`, and the `zarr.json` a converted array is written with.
//!
//! A node is a [`Place`]: a local directory, or a prefix in object storage (`s3://`), where a
//! group's children are found by listing the keys one level below it (one LIST per group)
//! and an array's stored chunks by listing its keys: no chunk is read to list.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::s3::LEASE;
use ndstore::zarr::codec::{Codec, CodecChain};
use ndstore::zarr::meta::{KeyEncoding, MAX_NDIM, METADATA_FILE, Node, ZarrMeta, is_chunk_key};
use ndstore::zarr::{LeaseState, ObjectTarget, ZarrArray, read_node, read_object_node};
use ndstore::{ArrayMeta, ByteOrder, Error, ErrorKind, Location, Order, Result, SaveOptions};

use crate::inspect::shape_text;
use crate::source::Target;

/// What a directory of a Zarr hierarchy is.
#[derive(Debug)]
pub enum Found {
    /// A Zarr v3 array.
    Array(Box<ZarrMeta>),
    /// A Zarr v3 group (its children are listed after it).
    Group,
    /// A node whose `zarr.json` ndstore cannot read: an unsupported codec or data type, or a
    /// damaged document.
    Unreadable(Error),
    /// A Zarr v2 node (`.zarray` or `.zgroup`), which ndstore does not read.
    V2(&'static str),
    /// A directory inside a group without `zarr.json`: no Zarr v3 node.
    NoMetadata,
    /// A link to a directory listed already, under this name (never followed twice).
    Alias(String),
}

/// Where a Zarr node lives.
#[derive(Clone, Debug)]
pub enum Place {
    /// A local directory.
    Dir(PathBuf),
    /// A prefix in object storage.
    Object(ObjectTarget),
}

impl Place {
    /// The node's name in messages: its directory, or `s3://bucket/prefix`.
    pub fn name(&self) -> PathBuf {
        match self {
            Place::Dir(dir) => dir.clone(),
            Place::Object(target) => target.name().to_path_buf(),
        }
    }

    /// Reads and parses the node's `zarr.json`.
    ///
    /// # Errors
    ///
    /// `NotFound` when there is none; the errors of reading and parsing it.
    pub fn read_node(&self) -> Result<Node> {
        match self {
            Place::Dir(dir) => read_node(dir),
            Place::Object(target) => {
                read_object_node(target).map_err(|e| explain_bucket(e, target))
            }
        }
    }

    /// Opens the array at this place.
    ///
    /// # Errors
    ///
    /// As [`ZarrArray::open`] and [`ZarrArray::open_object`].
    pub fn open(&self) -> Result<ZarrArray> {
        match self {
            Place::Dir(dir) => ZarrArray::open(dir, &SaveOptions::default()),
            Place::Object(target) => {
                ZarrArray::open_object_read_only(target, &SaveOptions::default())
                    .map_err(|e| explain_bucket(e, target))
            }
        }
    }
}

/// A `NotFound` of object storage in clearer words when the bucket itself is missing (S3
/// answers a HEAD or GET of a key in a missing bucket with a bare 404, like a missing key).
fn explain_bucket(e: Error, target: &ObjectTarget) -> Error {
    let missing = crate::s3::no_such_bucket(&e)
        || (e.kind() == ErrorKind::NotFound
            && matches!(
                target.at("").and_then(|root| root.list_level()),
                Err(listing) if crate::s3::no_such_bucket(&listing)
            ));
    if missing {
        return Error::new(
            ErrorKind::NotFound,
            "the bucket does not exist (S3 answered NoSuchBucket)",
        )
        .with_path(target.name());
    }
    e
}

/// One node of a hierarchy: its name from the store's root (`/`, `/g`, `/g/a`), where it
/// lives, and what it is.
#[derive(Debug)]
pub struct Entry {
    /// The name, `/` for the root.
    pub name: String,
    /// The node's directory or prefix.
    pub place: Place,
    /// What the directory holds.
    pub found: Found,
}

/// The node a target names: `PATH`, or `PATH/OBJECT` for `PATH::OBJECT`; a prefix in object
/// storage for an `s3://` URL.
///
/// # Errors
///
/// `InvalidInput` for an object path with a `..` or `.` component, which would name a
/// directory outside the store (or the same node twice); the errors of reaching object
/// storage (see [`crate::s3::target`]).
pub fn node_place(target: &Target) -> Result<Place> {
    if crate::s3::is_s3(&target.path) {
        return crate::s3::target(&target.path, target.object.as_deref()).map(Place::Object);
    }
    node_dir(target).map(Place::Dir)
}

/// The directory of the node a local target names.
fn node_dir(target: &Target) -> Result<PathBuf> {
    match &target.object {
        Some(object) => {
            if object.split('/').any(|part| part == ".." || part == ".") {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the node path '{object}' has a '.' or '..' component; name nodes from the store's root"),
                )
                .with_path(&target.path));
            }
            Ok(target.path.join(object.trim_start_matches('/')))
        }
        None => Ok(target.path.clone()),
    }
}

/// The name of the node a target names, as the hierarchy's listing spells it.
fn root_name(target: &Target) -> String {
    match &target.object {
        Some(object) => format!("/{}", object.trim_matches('/')),
        None => "/".to_owned(),
    }
}

/// The name of `child` inside the node named `parent`.
fn child_name(parent: &str, child: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Opens the array a target names.
///
/// # Errors
///
/// The errors of [`ZarrArray::open`]: no `zarr.json`, a group, a document ndstore cannot read;
/// `Corrupt` for an array with no chunk at its own keys but chunk-like objects at others (an
/// edited `chunk_key_encoding`), which would read as fill.
pub fn open(target: &Target) -> Result<ZarrArray> {
    let place = node_place(target)?;
    let array = place.open()?;
    // On object storage the check would list every key of the array (a LIST per thousand
    // chunks) before each read: `verify` does it there.
    if let Place::Dir(dir) = &place {
        refuse_stray_only(dir, array.meta())?;
    }
    Ok(array)
}

/// Every node under the one `target` names, itself first, each group followed by its children
/// in name order. A link is followed once: a directory reached again (a cycle, or a second
/// link to it) is an [`Found::Alias`]. Hidden entries (ndstore's temporaries among them) and
/// files are not nodes.
///
/// # Errors
///
/// The error of reading the named node's own `zarr.json`; nodes below it never fail the walk.
pub fn walk(target: &Target) -> Result<Vec<Entry>> {
    let root = node_place(target)?;
    let found = match root.read_node()? {
        Node::Array(meta) => Found::Array(meta),
        Node::Group(_) => Found::Group,
    };
    let mut seen = HashMap::new();
    if let Place::Dir(dir) = &root
        && let Some(id) = dir_id(dir)
    {
        seen.insert(id, root_name(target));
    }
    let mut out = Vec::new();
    let mut stack = vec![Entry {
        name: root_name(target),
        place: root,
        found,
    }];
    while let Some(entry) = stack.pop() {
        if matches!(entry.found, Found::Group) {
            let mut children = match &entry.place {
                Place::Dir(dir) => children(&entry.name, dir, &mut seen),
                Place::Object(prefix) => object_children(&entry.name, prefix)?,
            };
            children.reverse();
            stack.extend(children);
        }
        out.push(entry);
    }
    Ok(out)
}

/// A directory's device and inode, `None` when it cannot be inspected.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// The child nodes of a group in object storage, in name order: the "directories" one level
/// below its prefix (hidden ones left out, as ndstore's lease), each classified by its
/// `zarr.json` (one GET) or, without one, by a listing of its own level.
///
/// # Errors
///
/// The error of listing the group's level; a child that cannot be read is listed as
/// unreadable instead.
fn object_children(group: &str, prefix: &ObjectTarget) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for child in prefix.list_level()?.dirs {
        if child.starts_with('.') {
            continue;
        }
        let full = if prefix.prefix().is_empty() {
            child.clone()
        } else {
            format!("{}/{child}", prefix.prefix())
        };
        let target = prefix.at(&full)?;
        let found = match read_object_node(&target) {
            Ok(Node::Array(meta)) => Found::Array(meta),
            Ok(Node::Group(_)) => Found::Group,
            Err(e) if e.kind() == ErrorKind::NotFound => match target.list_level() {
                Ok(level) if level.objects.iter().any(|o| o == ".zarray") => Found::V2("array"),
                Ok(level) if level.objects.iter().any(|o| o == ".zgroup") => Found::V2("group"),
                Ok(_) => Found::NoMetadata,
                Err(e) => Found::Unreadable(e),
            },
            Err(e) => Found::Unreadable(e),
        };
        out.push(Entry {
            name: child_name(group, &child),
            place: Place::Object(target),
            found,
        });
    }
    Ok(out)
}

/// The child nodes of a group, in name order; directories only (links followed), each once.
fn children(group: &str, group_dir: &Path, seen: &mut HashMap<(u64, u64), String>) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(group_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for child in names {
        let dir = group_dir.join(&child);
        let Ok(stat) = std::fs::metadata(&dir) else {
            // A symbolic link to nothing may have been a node: shown, never skipped in silence.
            if let Ok(link) = std::fs::read_link(&dir) {
                out.push(Entry {
                    name: child_name(group, &child),
                    found: Found::Unreadable(
                        Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "a symbolic link to {}, which does not exist",
                                link.display()
                            ),
                        )
                        .with_path(&dir),
                    ),
                    place: Place::Dir(dir),
                });
            }
            continue;
        };
        if !stat.is_dir() {
            continue;
        }
        let name = child_name(group, &child);
        let found = match dir_id(&dir).and_then(|id| seen.get(&id).cloned()) {
            Some(first) => Found::Alias(first),
            None => {
                if let Some(id) = dir_id(&dir) {
                    seen.insert(id, name.clone());
                }
                classify(&dir)
            }
        };
        out.push(Entry {
            name,
            place: Place::Dir(dir),
            found,
        });
    }
    out
}

/// What the directory `dir` inside a group holds.
fn classify(dir: &Path) -> Found {
    if dir.join(METADATA_FILE).exists() {
        match read_node(dir) {
            Ok(Node::Array(meta)) => Found::Array(meta),
            Ok(Node::Group(_)) => Found::Group,
            Err(e) => Found::Unreadable(e),
        }
    } else if dir.join(".zarray").exists() {
        Found::V2("array")
    } else if dir.join(".zgroup").exists() {
        Found::V2("group")
    } else {
        Found::NoMetadata
    }
}

/// The kind and details of an entry in `ls`'s words.
pub fn describe(entry: &Entry) -> (String, String) {
    match &entry.found {
        Found::Array(meta) => (
            "array".into(),
            format!(
                "{} {} C, {}",
                meta.dtype().to_numpy_descr(),
                shape_text(&meta.shape),
                layout_text(meta)
            ),
        ),
        Found::Group => ("group".into(), String::new()),
        Found::Unreadable(e) => ("unsupported".into(), format!("({})", e.message())),
        Found::V2(what) => (
            "unsupported".into(),
            format!("(a Zarr v2 {what}; ndstore reads Zarr v3)"),
        ),
        Found::NoMetadata => (
            "unsupported".into(),
            "(a directory without zarr.json)".into(),
        ),
        Found::Alias(of) => ("link".into(), format!("-> {of} (listed there)")),
    }
}

/// The array's metadata as ndstore reports it (Zarr arrays are C-ordered).
pub fn array_meta(meta: &ZarrMeta) -> ArrayMeta {
    ArrayMeta::new(meta.dtype(), meta.shape.clone(), Order::C)
}

/// One codec in words: `bytes(little)`, `zstd(level 3)`, `sharding_indexed(...)`.
fn codec_text(codec: &Codec) -> String {
    match codec {
        Codec::Transpose(order) => {
            let axes: Vec<String> = order.iter().map(usize::to_string).collect();
            format!("transpose({})", axes.join(", "))
        }
        Codec::Bytes(None) => "bytes".to_owned(),
        Codec::Bytes(Some(order)) => match order {
            ByteOrder::Big => "bytes(big)".to_owned(),
            ByteOrder::Little => "bytes(little)".to_owned(),
            _ => "bytes".to_owned(),
        },
        Codec::Gzip(level) => format!("gzip(level {level})"),
        Codec::Zstd { level, checksum } => format!(
            "zstd(level {level}{})",
            if *checksum { ", checksum" } else { "" }
        ),
        Codec::Crc32c => "crc32c".to_owned(),
        Codec::Sharding(s) => format!(
            "sharding_indexed({}; index {} at the {})",
            chain_text(&s.codecs),
            chain_text(&s.index_codecs),
            if s.index_at_start { "start" } else { "end" }
        ),
    }
}

/// A codec chain in words, in encoding order: `bytes(little) -> zstd(level 3) -> crc32c`.
pub fn chain_text(chain: &CodecChain) -> String {
    let codecs: Vec<String> = chain.codecs().iter().map(codec_text).collect();
    codecs.join(" -> ")
}

/// The chunk shape: the inner chunks' of a sharded array, else the grid's.
pub fn chunk_shape(meta: &ZarrMeta) -> &[usize] {
    meta.codecs
        .sharding()
        .map_or(&meta.chunk_shape, |s| &s.chunk_shape)
}

/// The shard shape of a sharded array (the grid's chunk shape).
pub fn shard_shape(meta: &ZarrMeta) -> Option<&[usize]> {
    meta.codecs.sharding().map(|_| meta.chunk_shape.as_slice())
}

/// The fill value as `zarr.json` spells it.
pub fn fill_value(meta: &ZarrMeta) -> serde_json::Value {
    meta.to_json()
        .get("fill_value")
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Dimension names as a tuple: `(x, y)`, an unnamed axis `None`.
pub fn dims_text(names: &[Option<String>]) -> String {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.clone().unwrap_or_else(|| "None".to_owned()))
        .collect();
    match &names[..] {
        [one] => format!("({one},)"),
        _ => format!("({})", names.join(", ")),
    }
}

/// An array's layout on one line: `chunks (2, 5), shards (4, 5), codecs ..., fill 0`.
pub fn layout_text(meta: &ZarrMeta) -> String {
    let shards = shard_shape(meta).map_or(String::new(), |s| format!(", shards {}", shape_text(s)));
    format!(
        "chunks {}{shards}, codecs {}, fill {}",
        shape_text(chunk_shape(meta)),
        chain_text(&meta.codecs),
        fill_value(meta)
    )
}

/// What an entry under an array's directory is, as the walk of [`visit_keys`] finds it.
enum Stored {
    /// A chunk of the array: at a key its `chunk_key_encoding` names, inside its grid.
    Chunk(Vec<u64>, String),
    /// An object whose key looks like a chunk's (`c/0/1`, `c.0.1`, `0.1`, `0/1`) but is no key
    /// of this array: another encoding's, another number of axes', or outside the grid.
    Stray(String),
}

/// Walks the entries stored under an array's directory (hidden entries, ndstore's
/// temporaries and leases among them, and the root's `zarr.json` left out), handing each chunk
/// and each stray chunk-like object to `visit` until it breaks. An entry at a chunk key is a
/// chunk whatever its type (a FIFO, a directory, a link), so that reading it refuses it as
/// damage instead of taking it for a missing chunk; other files that are not chunk-like are
/// not the array's business and are left alone.
///
/// # Errors
///
/// `Format` naming a symbolic link elsewhere in the directory: a store's entries are never
/// followed, so a linked chunk directory would hide chunks.
fn visit_keys(
    dir: &Path,
    meta: &ZarrMeta,
    visit: &mut dyn FnMut(Stored) -> ControlFlow<()>,
) -> Result<()> {
    let grid = meta.grid_shape();
    // The deepest key of any encoding: `c` and one level per axis of the largest array.
    let depth = MAX_NDIM + 1;
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((here, prefix, level)) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&here) else {
            continue;
        };
        for entry in read.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || (level == 0 && name == METADATA_FILE) {
                continue;
            }
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if let Some(coords) = coords_of_key(meta, &key)
                && coords.iter().zip(&grid).all(|(c, g)| c < g)
            {
                if visit(Stored::Chunk(coords, key)).is_break() {
                    return Ok(());
                }
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    return Err(Error::new(
                        ErrorKind::Format,
                        "a symbolic link in the array's directory (a store's entries are never followed)",
                    )
                    .with_path(entry.path()));
                }
                // A directory deeper than any key is no chunk's either.
                Ok(t) if t.is_dir() => {
                    if level < depth {
                        stack.push((entry.path(), key, level + 1));
                    }
                    continue;
                }
                _ => {}
            }
            if is_chunk_key(&key) && visit(Stored::Stray(key)).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The refusal of the chunk-like objects `strays` (sorted, at least one) of the array in `dir`:
/// the first one's path, what keys the metadata names instead, and how many more there are.
fn stray_error(dir: &Path, meta: &ZarrMeta, strays: &[String], why: &str) -> Error {
    let first = strays.first().map_or("", String::as_str);
    let more = match strays.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let like = meta.key_encoding.key(&vec![0; meta.shape.len()]);
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "{why}{more}: the array's chunk_key_encoding names keys like '{like}' in a grid of \
             {}, so this object would read as fill (was zarr.json's chunk_key_encoding or shape \
             edited?)",
            shape_text(&grid_usize(meta))
        ),
    )
    .with_path(dir.join(first))
}

/// The chunk grid's shape, for messages.
fn grid_usize(meta: &ZarrMeta) -> Vec<usize> {
    meta.grid_shape()
        .iter()
        .map(|&g| usize::try_from(g).unwrap_or(usize::MAX))
        .collect()
}

/// The keys of the chunk entries stored under an array's directory, with their grid
/// coordinates, in C order of the grid.
///
/// # Errors
///
/// `Format` naming a symbolic link in the directory ([`visit_keys`]); `Corrupt` naming the
/// first chunk-like object at no key of the array (another encoding's key, `c/0/1` when the
/// metadata says `c.0.1`, or a key outside the grid): the metadata would read it as fill, so
/// the array is not what was written.
fn stored_chunks(dir: &Path, meta: &ZarrMeta) -> Result<Vec<(Vec<u64>, String)>> {
    let mut found = Vec::new();
    let mut strays = Vec::new();
    visit_keys(dir, meta, &mut |stored| {
        match stored {
            Stored::Chunk(coords, key) => found.push((coords, key)),
            Stored::Stray(key) => strays.push(key),
        }
        ControlFlow::Continue(())
    })?;
    if !strays.is_empty() {
        strays.sort();
        return Err(stray_error(
            dir,
            meta,
            &strays,
            "a chunk object at no key the array's metadata names",
        ));
    }
    found.sort();
    Ok(found)
}

/// Refuses to read an array that has no chunk at a key its metadata names but holds
/// chunk-like objects at other keys: every element would read as fill, silently. The walk stops
/// at the first chunk, so an array with chunks costs a few directory reads.
///
/// # Errors
///
/// `Corrupt` naming the first stray object, as [`stored_chunks`] does; `Format` for a link.
fn refuse_stray_only(dir: &Path, meta: &ZarrMeta) -> Result<()> {
    let mut has_chunk = false;
    let mut strays = Vec::new();
    visit_keys(dir, meta, &mut |stored| match stored {
        Stored::Chunk(..) => {
            has_chunk = true;
            ControlFlow::Break(())
        }
        Stored::Stray(key) => {
            strays.push(key);
            ControlFlow::Continue(())
        }
    })?;
    if has_chunk || strays.is_empty() {
        return Ok(());
    }
    strays.sort();
    Err(stray_error(
        dir,
        meta,
        &strays,
        "the array has no chunk at its keys, only chunk objects at others such as this one",
    ))
}

/// The keys of the chunk objects stored under an array's prefix, with their grid coordinates,
/// in C order of the grid; keys that are no chunk key of the array and not spelled like one
/// (`zarr.json`, ndstore's lease) are left out. Found by listing, no chunk read.
///
/// # Errors
///
/// The store's errors of listing the prefix; `Corrupt` naming the first object spelled like a
/// chunk key at no key of the array (another encoding's, or outside the grid), as
/// [`stored_chunks`] does for a directory.
fn stored_objects(target: &ObjectTarget, meta: &ZarrMeta) -> Result<Vec<(Vec<u64>, String)>> {
    let grid = meta.grid_shape();
    let mut found: Vec<(Vec<u64>, String)> = Vec::new();
    let mut stray: Vec<String> = Vec::new();
    for key in target.keys()? {
        let ours =
            coords_of_key(meta, &key).filter(|coords| coords.iter().zip(&grid).all(|(c, g)| c < g));
        match ours {
            Some(coords) => found.push((coords, key)),
            None if is_chunk_key(&key) => stray.push(key),
            None => {}
        }
    }
    if !stray.is_empty() {
        stray.sort();
        return Err(stray_error(
            target.name(),
            meta,
            &stray,
            "a chunk object at no key the array's metadata names",
        ));
    }
    found.sort();
    Ok(found)
}

/// The grid coordinates whose key is `key`, if it is one.
fn coords_of_key(meta: &ZarrMeta, key: &str) -> Option<Vec<u64>> {
    let split = |body: &str, sep: char| -> Option<Vec<u64>> {
        body.split(sep).map(|part| part.parse().ok()).collect()
    };
    let coords = match (meta.key_encoding, meta.shape.len()) {
        (_, 0) => Vec::new(),
        (KeyEncoding::Default(sep), _) => split(key.strip_prefix('c')?.strip_prefix(sep)?, sep)?,
        (KeyEncoding::V2(sep), _) => split(key, sep)?,
    };
    (coords.len() == meta.shape.len() && meta.key_encoding.key(&coords) == key).then_some(coords)
}

/// Reads every stored chunk of the array in `dir` back through its codec chain, in the grid's
/// order, so every check the chain has runs: crc32c of chunks and shard indexes, shard index
/// bounds, each chunk's size against its shape. Returns the array's bytes.
///
/// # Errors
///
/// The first damaged chunk's error, naming its file and key (and the inner chunk of a shard).
pub fn verify_array(place: &Place) -> Result<u64> {
    if let Place::Object(target) = place {
        check_lease(target)?;
    }
    let array = place.open()?;
    let meta = array.meta().clone();
    let stored = match place {
        Place::Dir(dir) => stored_chunks(dir, &meta)?,
        Place::Object(target) => stored_objects(target, &meta)?,
    };
    for (coords, _key) in stored {
        // The whole chunk: a region read would leave out the inner chunks of an edge shard
        // that lie past the array's end.
        array.check_chunk(&coords)?;
    }
    Ok(array.array_meta().byte_len()? as u64)
}

/// The seconds of `d`, rounded up, for messages.
fn seconds(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX)
}

/// What the writer lease of an array in object storage says, for `info`: a copy writing
/// it now, or one killed before its commit ended; `None` for a local array, a lease absent
/// or released, or one that cannot be read (`verify` reports that).
pub fn writer_note(place: &Place) -> Option<String> {
    let Place::Object(target) = place else {
        return None;
    };
    match target.lease_state().ok()? {
        LeaseState::Held { expires_in } => Some(format!(
            "a writer holds the lease (writing now, or killed less than {} s ago)",
            seconds(expires_in)
        )),
        LeaseState::Expired { since } => Some(format!(
            "a writer was killed before its commit ended (lease expired {} s ago): chunks of two versions may be mixed; write the array again",
            seconds(since)
        )),
        LeaseState::Absent | LeaseState::Released => None,
    }
}

/// Refuses to call intact an array in object storage whose writer lease says that a writer is
/// at work on it (exit status 2: verify again later) or died before its commit ended (damage:
/// with no rename in object storage, a killed replacement leaves each chunk whole but may leave
/// chunks of two versions under one `zarr.json`, or an earlier array's chunks beyond the grid).
fn check_lease(target: &ObjectTarget) -> Result<()> {
    let lease = || target.name().join(LEASE);
    match target.lease_state()? {
        LeaseState::Held { expires_in } => Err(Error::new(
            ErrorKind::Locked,
            format!(
                "a writer holds the array's lease: a copy is writing it now, or was killed less than {} s ago; verify it after the copy ends",
                seconds(expires_in)
            ),
        )
        .with_path(lease())),
        LeaseState::Expired { since } => Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "a writer was killed before its commit ended (its lease expired {} s ago, never released): the array may hold chunks of two versions (each chunk whole) or chunks of an earlier array; write the array again",
                seconds(since)
            ),
        )
        .with_path(lease())),
        LeaseState::Absent | LeaseState::Released => Ok(()),
    }
}

/// Why the root of `verify`, which has no `zarr.json`, holds nothing to check (exit status
/// 2), or `None` when it holds chunks (or, in a local directory, Zarr nodes) whose metadata
/// is lost (damage). Nothing to check: in object storage, the chunks and lease a writer
/// killed before committing a new array left (the array is absent, as promised), the root of
/// a bucket, or a prefix above other prefixes (a folder); a directory or prefix in which
/// nothing is a Zarr node or chunk.
fn nothing_to_verify(place: &Place) -> Result<Option<Error>> {
    let none = |why: String| {
        Ok(Some(
            Error::new(ErrorKind::NotFound, why).with_path(place.name()),
        ))
    };
    match place {
        Place::Object(target) => {
            match target.lease_state()? {
                LeaseState::Held { expires_in } => {
                    return none(format!(
                        "no array yet: a writer holds the lease of a new array it is writing here, or was killed less than {} s ago",
                        seconds(expires_in)
                    ));
                }
                LeaseState::Expired { .. } => {
                    return none(
                        "no array: a writer was killed before it committed a new array here; its chunks and lease stay until the next write of an array here removes them"
                            .to_owned(),
                    );
                }
                LeaseState::Absent | LeaseState::Released => {}
            }
            if target.prefix().is_empty() {
                return none(
                    "the root of a bucket is no Zarr node: name an array or group under it"
                        .to_owned(),
                );
            }
            let level = target.list_level().map_err(|e| explain_bucket(e, target))?;
            // Chunks without zarr.json are an array that lost its metadata. A prefix above
            // arrays is a folder, as S3 users make them, not a group that lost its own.
            let chunks = level.objects.iter().any(|o| is_chunk_key(o))
                || level.dirs.iter().any(|d| d == "c" || is_chunk_key(d));
            if chunks {
                return Ok(None);
            }
            if !level.dirs.is_empty() {
                return none(
                    "no zarr.json: a prefix above other prefixes, not a Zarr array or group; verify the arrays under it (`ndstore ls` lists them)"
                        .to_owned(),
                );
            }
        }
        Place::Dir(dir) => {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| Error::io("cannot list the directory", e).with_path(dir))?;
            let zarr_like = entries.flatten().any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                is_chunk_key(&name) || entry.path().join(METADATA_FILE).exists()
            });
            if zarr_like {
                return Ok(None);
            }
        }
    }
    none(
        "no zarr.json, and nothing in it is a Zarr v3 node or chunk: not a Zarr array or group"
            .to_owned(),
    )
}

/// Reads every array of the hierarchy at `path` for `verify`: the count of arrays and their
/// bytes. Nodes ndstore does not read (Zarr v2, unsupported codecs and data types) are left
/// out, as unsupported HDF5 objects are.
///
/// # Errors
///
/// `NotFound` for an empty directory; else the first damage: a `zarr.json` that is missing
/// or does not parse, a damaged chunk.
pub fn verify(target: &Target) -> Result<(usize, u64)> {
    // An empty directory (or prefix) is no Zarr node to check (exit status 2, as a missing
    // file); one that holds chunks or nodes but no zarr.json has lost its metadata, which is
    // damage.
    let place = node_place(target)?;
    let empty = match &place {
        Place::Dir(dir) => std::fs::read_dir(dir)
            .is_ok_and(|mut entries| entries.next().is_none())
            .then_some("an empty directory, no Zarr v3 array or group"),
        Place::Object(prefix) => {
            let level = prefix.list_level().map_err(|e| explain_bucket(e, prefix))?;
            (level.dirs.is_empty() && level.objects.iter().all(|o| o.starts_with('.')))
                .then_some("no objects under the prefix, no Zarr v3 array or group")
        }
    };
    if let Some(why) = empty {
        return Err(Error::new(ErrorKind::NotFound, why).with_path(place.name()));
    }
    if matches!(place.read_node(), Err(e) if e.kind() == ErrorKind::NotFound)
        && let Some(e) = nothing_to_verify(&place)?
    {
        return Err(e);
    }
    let (mut arrays, mut bytes) = (0, 0);
    for entry in walk(target)? {
        match entry.found {
            Found::Array(_) => {
                bytes += verify_array(&entry.place)?;
                arrays += 1;
            }
            Found::Unreadable(e)
                if !matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::UnsupportedDType
                ) =>
            {
                return Err(e);
            }
            Found::NoMetadata => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "no zarr.json: a directory of the hierarchy is no Zarr v3 node",
                )
                .with_path(entry.place.name().join(METADATA_FILE))
                .at(Location::Object(entry.name)));
            }
            _ => {}
        }
    }
    Ok((arrays, bytes))
}

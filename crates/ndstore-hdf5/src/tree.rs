//! Listing a file's objects: every link once, every object once (by its address), groups to a
//! bounded depth, soft and external links reported and never followed, and datasets ndstore
//! cannot load marked with their HDF5 type instead of failing the listing.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use hdf5_metno::{Group, LinkType, LocationType};
use ndstore_core::{ArrayMeta, Result};
use serde::{Deserialize, Serialize};

use crate::h5::At;
use crate::read::{describe, unsupported};
use crate::sys::{self, LinkValue};

/// One entry of a listing: an object path (from the root, `/`-separated) and what is there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The link's path, as `/group/name`.
    pub path: String,
    /// What the link leads to.
    pub object: Object,
}

impl Entry {
    /// The dataset's metadata, when the entry is a dataset ndstore loads.
    pub fn meta(&self) -> Option<&ArrayMeta> {
        match &self.object {
            Object::Dataset(meta) => Some(meta),
            _ => None,
        }
    }
}

/// What a link in an HDF5 file leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Object {
    /// A dataset ndstore loads, with its metadata.
    Dataset(ArrayMeta),
    /// A dataset ndstore cannot load, with its shape (empty for a scalar or null dataspace) and
    /// why: its HDF5 type (enum, string, compound, opaque, reference, variable-length, ...) or a
    /// null dataspace (`h5py.Empty`).
    Unsupported {
        /// The dataset's shape.
        shape: Vec<usize>,
        /// Why ndstore cannot load it.
        reason: String,
    },
    /// A group. `listed` is false for a group deeper than the listing's depth limit, whose
    /// links were not listed.
    Group {
        /// Whether the group's own links are in the listing.
        listed: bool,
    },
    /// A named (committed) datatype.
    Datatype,
    /// Another hard link to an object already listed at `of` (a cycle, or a second name): not
    /// listed again.
    Alias {
        /// The path at which the object was listed.
        of: String,
    },
    /// A soft link, not followed.
    SoftLink {
        /// The path it names.
        target: String,
    },
    /// An external link into another file, not followed.
    ExternalLink {
        /// The file it names.
        file: String,
        /// The object path inside that file.
        object: String,
    },
    /// A link of a user-defined class, not followed.
    UserLink,
    /// An object whose header libhdf5 could not read (the file is damaged there).
    Unreadable {
        /// libhdf5's error.
        error: String,
    },
}

/// How deep a listing descends into groups by default: the root's links are at depth 1.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Every link of the file, breadth-first by group and by name within one, at most `max_depth`
/// groups deep.
pub(crate) fn list(file: &hdf5_metno::File, path: &Path, max_depth: usize) -> Result<Vec<Entry>> {
    list_from(file, path, "/", max_depth)
}

/// The link `start` (a path from the root; `/` for the whole file) and every link below it,
/// breadth-first as [`list`], as `h5ls -r FILE/start` lists them: each object is described at
/// the first path this listing meets it, and another hard link to it within the listing is an
/// [`Object::Alias`] of that path. An object outside the listed subtree is never named as
/// "listed there": a link to it is described where the listing meets it.
///
/// # Errors
///
/// `NotFound` when no link `start` exists; libhdf5's errors for the root or `start`'s group.
pub(crate) fn list_from(
    file: &hdf5_metno::File,
    path: &Path,
    start: &str,
    max_depth: usize,
) -> Result<Vec<Entry>> {
    let start = format!("/{}", start.trim_matches('/'));
    let at = At::file(path);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut queue: VecDeque<(String, usize)> = VecDeque::new();
    if start == "/" {
        let root: &Group = file;
        let root_key = object_key(root, ".").map_err(|e| at.h5(e))?;
        seen.insert(root_key, "/".to_owned());
        queue.push_back(("/".to_owned(), 1));
    } else {
        // The start is the link of its parent group's, listed first as any link is.
        let (parent, name) = start.rsplit_once('/').unwrap_or(("", &start));
        let parent = if parent.is_empty() { "/" } else { parent };
        let missing = || {
            ndstore_core::Error::new(
                ndstore_core::ErrorKind::NotFound,
                format!("no object '{start}' in this file"),
            )
            .with_path(path)
        };
        let group = file.group(parent).map_err(|_| missing())?;
        let links = group
            .links(
                hdf5_metno::IndexType::Name,
                hdf5_metno::IterationOrder::Increasing,
            )
            .map_err(|e| at.h5(e))?;
        let info = links
            .into_iter()
            .find_map(|(link, info)| (link == name).then_some(info))
            .ok_or_else(missing)?;
        let object = link_object(
            &group,
            name,
            &start,
            info.link_type,
            0,
            max_depth,
            path,
            &mut seen,
            &mut queue,
        );
        entries.push(Entry {
            path: start.clone(),
            object,
        });
    }
    while let Some((group_path, depth)) = queue.pop_front() {
        let group = match file.group(&group_path) {
            Ok(group) => group,
            Err(e) if group_path == "/" => return Err(at.h5(e)),
            Err(_) => continue,
        };
        let links = match group.links(
            hdf5_metno::IndexType::Name,
            hdf5_metno::IterationOrder::Increasing,
        ) {
            Ok(links) => links,
            Err(e) if group_path == "/" => return Err(at.h5(e)),
            Err(e) => {
                // The group is there but its links cannot be read: its entry says so.
                if let Some(entry) = entries.iter_mut().find(|entry| entry.path == group_path) {
                    entry.object = Object::Unreadable {
                        error: e.to_string(),
                    };
                }
                continue;
            }
        };
        for (name, info) in links {
            let child = if group_path == "/" {
                format!("/{name}")
            } else {
                format!("{group_path}/{name}")
            };
            let object = link_object(
                &group,
                &name,
                &child,
                info.link_type,
                depth,
                max_depth,
                path,
                &mut seen,
                &mut queue,
            );
            entries.push(Entry {
                path: child,
                object,
            });
        }
    }
    Ok(entries)
}

/// What the link `name` of `group` (listed as `child`, of type `link_type`) leads to: a soft
/// or external link's value, never followed, or what [`hard_link`] finds.
#[allow(clippy::too_many_arguments)]
fn link_object(
    group: &Group,
    name: &str,
    child: &str,
    link_type: LinkType,
    depth: usize,
    max_depth: usize,
    path: &Path,
    seen: &mut HashMap<String, String>,
    queue: &mut VecDeque<(String, usize)>,
) -> Object {
    match link_type {
        LinkType::Soft => match sys::link_value(group, name, true) {
            Ok(LinkValue::Soft(target)) => Object::SoftLink { target },
            Ok(_) => Object::UserLink,
            Err(e) => Object::Unreadable {
                error: e.to_string(),
            },
        },
        LinkType::External => match sys::link_value(group, name, false) {
            Ok(LinkValue::External { file, object }) => Object::ExternalLink { file, object },
            Ok(_) => Object::UserLink,
            Err(e) => Object::Unreadable {
                error: e.to_string(),
            },
        },
        LinkType::Hard => hard_link(group, name, child, depth, max_depth, path, seen, queue),
    }
}

/// What the hard link `name` of `group` (listed as `child`) leads to; groups not seen before
/// are queued for listing when they are within the depth limit.
#[allow(clippy::too_many_arguments)]
fn hard_link(
    group: &Group,
    name: &str,
    child: &str,
    depth: usize,
    max_depth: usize,
    path: &Path,
    seen: &mut HashMap<String, String>,
    queue: &mut VecDeque<(String, usize)>,
) -> Object {
    let info = match group.loc_info_by_name(name) {
        Ok(info) => info,
        Err(e) => {
            return Object::Unreadable {
                error: e.to_string(),
            };
        }
    };
    let key = key_of(&info);
    if let Some(of) = seen.get(&key) {
        return Object::Alias { of: of.clone() };
    }
    seen.insert(key, child.to_owned());
    match info.loc_type {
        LocationType::Group => {
            let listed = depth < max_depth;
            if listed {
                queue.push_back((child.to_owned(), depth + 1));
            }
            Object::Group { listed }
        }
        LocationType::Dataset => match group.dataset(name) {
            Ok(dataset) => match unsupported(&dataset) {
                Some((_, reason)) => Object::Unsupported {
                    shape: dataset.shape(),
                    reason,
                },
                None => match describe(&dataset, At::new(path, child)) {
                    Ok(meta) => Object::Dataset(meta),
                    Err(e) => Object::Unreadable {
                        error: e.message().to_owned(),
                    },
                },
            },
            Err(e) => Object::Unreadable {
                error: e.to_string(),
            },
        },
        #[allow(unreachable_patterns)]
        _ => Object::Datatype,
    }
}

/// The identity of the object `name` (relative to `group`): its file number and address.
fn object_key(group: &Group, name: &str) -> hdf5_metno::Result<String> {
    Ok(key_of(&group.loc_info_by_name(name)?))
}

fn key_of(info: &hdf5_metno::LocationInfo) -> String {
    // The token is an address (HDF5 1.10) or an opaque token (1.12 and later); its Debug form
    // is its value in either case.
    format!("{}:{:?}", info.fileno, info.token)
}

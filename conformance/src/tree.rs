//! Directory targets as bytes, for BI: a backend whose arrays are directory trees (Zarr) has its
//! trees packed into one byte string (every file's path and contents, in path order), so the
//! corpus, the damage and the region maps work on bytes as they do for single files.
//!
//! Damage to packed bytes means damage to one file of the tree, the others intact: a cut inside
//! a file's contents cuts that file there, a cut inside its entry header leaves it empty, a
//! corrupt content byte is that byte of the file, a corrupt path byte renames the file (a name
//! that leaves the tree drops it), and a cut in the leading magic leaves an empty directory.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// The first bytes of a packed tree.
pub const MAGIC: &[u8] = b"ndstore packed tree 1\n";

/// One file of a packed tree: its path, and where its header (path length, path, content
/// length) and its contents lie in the packed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the tree's root, `/`-separated.
    pub path: String,
    /// The header's bytes.
    pub header: Range<u64>,
    /// The path's bytes (inside the header).
    pub name: Range<u64>,
    /// The contents' bytes.
    pub content: Range<u64>,
}

/// True when `bytes` are a packed tree.
pub fn is_packed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The bytes of `path`: a file's own, or a directory packed.
///
/// # Errors
///
/// The I/O error, as text naming the path.
pub fn read_source(path: &Path) -> Result<Vec<u8>, String> {
    if path.is_dir() {
        pack(path)
    } else {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Removes a case's file or directory.
pub fn remove(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

/// Packs every file below `dir`.
///
/// # Errors
///
/// The I/O error, as text naming the path.
pub fn pack(dir: &Path) -> Result<Vec<u8>, String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).map_err(|e| format!("{}: {e}", at.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut read = Vec::with_capacity(files.len());
    for file in files {
        let rel = file
            .strip_prefix(dir)
            .map_err(|e| e.to_string())?
            .to_path_buf();
        let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        read.push((rel, data));
    }
    Ok(pack_files(read))
}

/// Packs files given by path relative to the tree's root and contents (in any order), as
/// [`pack`] packs a directory that holds them.
pub fn pack_files(files: impl IntoIterator<Item = (PathBuf, Vec<u8>)>) -> Vec<u8> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = MAGIC.to_vec();
    for (rel, data) in files {
        let name = rel.to_string_lossy().into_owned();
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// The entries of packed bytes (stopping at the first that does not fit).
pub fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let Some(name_len) = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            break;
        };
        let name = at + 4..at + 4 + name_len;
        let Some(len) = bytes
            .get(name.end..name.end + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
        else {
            break;
        };
        let content = name.end + 8..name.end + 8 + len;
        if content.end > bytes.len() {
            break;
        }
        out.push(Entry {
            path: String::from_utf8_lossy(&bytes[name.clone()]).into_owned(),
            header: at as u64..content.start as u64,
            name: name.start as u64..name.end as u64,
            content: content.start as u64..content.end as u64,
        });
        at = content.end;
    }
    out
}

/// The damage a case applies to a packed source.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// None.
    None,
    /// Cut at this byte of the packed source.
    Cut(u64),
    /// This byte of the packed source set to this value.
    Set(u64, u8),
}

/// Writes the tree packed in `source`, with `damage` applied as the module says, at `dir`.
///
/// # Errors
///
/// The I/O error, as text naming the path.
pub fn unpack(source: &[u8], damage: Damage, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Damage::Cut(at) = damage
        && at < MAGIC.len() as u64
    {
        return Ok(());
    }
    for entry in entries(source) {
        let mut name = source[entry.name.start as usize..entry.name.end as usize].to_vec();
        let mut content = &source[entry.content.start as usize..entry.content.end as usize];
        let mut changed: Vec<u8>;
        match damage {
            Damage::Cut(at) if entry.header.contains(&at) => content = &[],
            Damage::Cut(at) if entry.content.contains(&at) => {
                content = &content[..(at - entry.content.start) as usize];
            }
            Damage::Set(at, byte) if entry.name.contains(&at) => {
                name[(at - entry.name.start) as usize] = byte;
            }
            Damage::Set(at, byte) if entry.content.contains(&at) => {
                changed = content.to_vec();
                changed[(at - entry.content.start) as usize] = byte;
                content = &changed;
            }
            _ => {}
        }
        let Some(path) = inside(dir, &name) else {
            continue;
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        // A renamed file may collide with a directory of the tree: it is then left out.
        if path.is_dir() {
            continue;
        }
        std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `dir` joined with the relative path `name`, when it stays inside `dir`.
fn inside(dir: &Path, name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains('\0') {
        return None;
    }
    let rel = Path::new(name);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_tree_packs_and_unpacks_with_one_file_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("c/0")).unwrap();
        std::fs::write(src.join("zarr.json"), b"{}").unwrap();
        std::fs::write(src.join("c/0/1"), b"abcdef").unwrap();
        let packed = pack(&src).unwrap();
        let found = entries(&packed);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].path, "c/0/1");
        let out = dir.path().join("out");
        unpack(&packed, Damage::None, &out).unwrap();
        assert_eq!(pack(&out).unwrap(), packed);
        // A cut inside the chunk's contents cuts only it.
        let cut = found[0].content.start + 2;
        let out = dir.path().join("cut");
        unpack(&packed, Damage::Cut(cut), &out).unwrap();
        assert_eq!(std::fs::read(out.join("c/0/1")).unwrap(), b"ab");
        assert_eq!(std::fs::read(out.join("zarr.json")).unwrap(), b"{}");
        // A name bent out of the tree drops the file.
        let out = dir.path().join("renamed");
        unpack(&packed, Damage::Set(found[0].name.start, b'/'), &out).unwrap();
        assert!(!out.join("c/0/1").exists());
    }
}

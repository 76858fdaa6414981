//! The power-loss model, in the manner of ALICE (Pillai et al., OSDI 2014): from the recorded
//! operations of a process ([`crate::syscalls`]), the states the files and directories below its
//! root may be found in after a power cut at any point.
//!
//! Persistence rules: a file's data (writes, truncations) is durable once an fsync of that file
//! followed it; a directory entry (a file created, a directory made, a rename, an exchange, an
//! unlink or removal) is durable once an fsync of its directory followed it (both directories'
//! for a rename or exchange between two), so a new directory's own entry needs its parent's
//! fsync, and its entries are reachable only through it. Anything else may be lost, and a
//! write may be torn at 4 KiB page boundaries. Data operations may persist while earlier ones
//! were lost (reordering); a directory's entry operations persist in order (a journaled file
//! system commits them in order): when one is lost, so are the later non-durable entry
//! operations of its directories. Operations in different directories may reorder.
//!
//! Crash states enumerated for a recording of n operations:
//! - after every prefix of the operations, everything issued persisted;
//! - at every sync point (before each fsync, after the commit, at the end): only what was
//!   durable; everything but one non-durable operation (for each one, with the later entry
//!   operations of its directories); and everything with one non-durable write torn (its
//!   first pages only, its last pages only).
//!
//! A target that is a directory (a Zarr array) is judged as the whole tree below its name.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::syscalls::{Op, ROOT, Recording};

/// The page size at which writes may tear.
pub const PAGE: u64 = 4096;

/// One state of the directory after a simulated power cut. It is kept as which operations
/// persisted, and how, rather than as bytes: a 64 MiB target is rebuilt
/// ([`CrashState::target_bytes`]) only when its content has not been judged yet.
#[derive(Clone, Debug)]
pub struct CrashState {
    /// What the target's name holds: equal keys mean equal bytes.
    pub target: TargetKey,
    /// True when the cut came after the operation under test returned Ok: the target must be
    /// the new version.
    pub after_commit: bool,
    /// How the state arose, for failure messages.
    pub label: String,
}

/// What a name holds in a crash state: the file (its number in the recording) and the
/// operations on it that persisted, each whole or torn, or the directory with every file below
/// it. `None` when nothing has the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetKey(Option<Held>);

/// What a target's name holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Held {
    /// A file.
    File(usize, Content),
    /// A directory: each file below it, by path relative to it.
    Tree(Vec<(PathBuf, usize, Content)>),
}

/// The persisted operations on one file, in order: (operation index, how it persisted).
type Content = Vec<(usize, Keep)>;

/// How one operation is replayed into a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Keep {
    All,
    Lost,
    /// Only the pages before (true) or from (false) the write's middle page boundary.
    Torn(bool),
}

impl CrashState {
    /// The target's bytes in this state (`None` when nothing has its name), given the bytes
    /// each initial file held: a file's bytes, or a directory packed as [`crate::tree`] packs
    /// one.
    ///
    /// # Errors
    ///
    /// When the target holds a write the recording could not complete
    /// ([`Recording::incomplete`]), naming it.
    pub fn target_bytes(
        &self,
        rec: &Recording,
        initial: &HashMap<usize, Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, String> {
        let Some(held) = self.target.0.as_ref() else {
            return Ok(None);
        };
        let contents: Vec<&Content> = match held {
            Held::File(_, content) => vec![content],
            Held::Tree(files) => files.iter().map(|(_, _, c)| c).collect(),
        };
        if let Some(j) = contents
            .iter()
            .flat_map(|c| c.iter())
            .find(|(j, how)| *how != Keep::Lost && rec.incomplete.contains(j))
            .map(|(j, _)| *j)
        {
            return Err(format!(
                "the target holds operation {j} ({}), recorded without all its bytes into a file gone at the end: the model cannot rebuild it",
                describe(&rec.ops[j])
            ));
        }
        Ok(Some(match held {
            Held::File(inode, content) => file_bytes(rec, initial, *inode, content),
            Held::Tree(files) => {
                crate::tree::pack_files(files.iter().map(|(path, inode, content)| {
                    (path.clone(), file_bytes(rec, initial, *inode, content))
                }))
            }
        }))
    }
}

/// The bytes of file `inode` with the persisted operations `content`.
fn file_bytes(
    rec: &Recording,
    initial: &HashMap<usize, Vec<u8>>,
    inode: usize,
    content: &Content,
) -> Vec<u8> {
    let mut file = initial.get(&inode).cloned().unwrap_or_default();
    for &(j, how) in content {
        match &rec.ops[j] {
            Op::Write { offset, data, .. } => {
                let (start, end) = match how {
                    Keep::Torn(first) => {
                        let Some(mid) = torn_boundary(*offset, data.len() as u64) else {
                            continue;
                        };
                        if first {
                            (*offset, mid)
                        } else {
                            (mid, *offset + data.len() as u64)
                        }
                    }
                    _ => (*offset, *offset + data.len() as u64),
                };
                if file.len() < end as usize {
                    file.resize(end as usize, 0);
                }
                let from = (start - offset) as usize;
                let to = (end - offset) as usize;
                file[start as usize..end as usize].copy_from_slice(&data[from..to]);
            }
            Op::Truncate { len, .. } => file.resize(*len as usize, 0),
            _ => {}
        }
    }
    file
}

/// The files and directories below the root after a crash, by path, sorted: each file with
/// its persisted operations, each directory with `None`.
type DirState = Vec<(PathBuf, usize, Option<Content>)>;

/// Each directory's entries: name to inode.
type Namespace = HashMap<usize, HashMap<OsString, usize>>;

/// The namespace before the recording.
fn initial_namespace(rec: &Recording) -> Namespace {
    let mut dirs: Namespace = HashMap::from([(ROOT, HashMap::new())]);
    let mut by_path: HashMap<&Path, usize> = HashMap::from([(Path::new(""), ROOT)]);
    for (path, id) in &rec.initial_dirs {
        dirs.entry(*id).or_default();
        by_path.insert(path, *id);
    }
    let entries = rec.initial_dirs.iter().chain(&rec.initial);
    for (path, id) in entries {
        let parent = path.parent().and_then(|p| by_path.get(p)).copied();
        if let (Some(parent), Some(name)) = (parent, path.file_name()) {
            dirs.entry(parent).or_default().insert(name.to_owned(), *id);
        }
    }
    dirs
}

/// Replays `ops[..upto]`, each as `keep` says, into what every path holds.
fn replay(
    rec: &Recording,
    start: &Namespace,
    upto: usize,
    keep: &dyn Fn(usize) -> Keep,
) -> DirState {
    let mut dirs = start.clone();
    let mut contents: HashMap<usize, Content> = HashMap::new();
    for (j, op) in rec.ops[..upto].iter().enumerate() {
        let how = keep(j);
        if how == Keep::Lost {
            continue;
        }
        match op {
            Op::Create { dir, name, inode } => {
                dirs.entry(*dir).or_default().insert(name.clone(), *inode);
            }
            Op::Mkdir { dir, name, inode } => {
                dirs.entry(*inode).or_default();
                dirs.entry(*dir).or_default().insert(name.clone(), *inode);
            }
            Op::Write {
                inode,
                offset,
                data,
            } => {
                // A torn write that spans one page persists whole or not at all: not torn.
                if matches!(how, Keep::Torn(_))
                    && torn_boundary(*offset, data.len() as u64).is_none()
                {
                    continue;
                }
                contents.entry(*inode).or_default().push((j, how));
            }
            Op::Truncate { inode, .. } => contents.entry(*inode).or_default().push((j, how)),
            Op::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                if let Some(id) = dirs.entry(*from_dir).or_default().remove(from) {
                    dirs.entry(*to_dir).or_default().insert(to.clone(), id);
                }
            }
            Op::Exchange { a_dir, a, b_dir, b } => {
                // An exchange needs both entries; without one (an earlier operation lost) it
                // would have failed, so it changes nothing.
                let first = dirs.get(a_dir).and_then(|d| d.get(a)).copied();
                let second = dirs.get(b_dir).and_then(|d| d.get(b)).copied();
                if let (Some(first), Some(second)) = (first, second) {
                    dirs.entry(*a_dir).or_default().insert(a.clone(), second);
                    dirs.entry(*b_dir).or_default().insert(b.clone(), first);
                }
            }
            Op::Unlink { dir, name } => {
                dirs.entry(*dir).or_default().remove(name);
            }
            Op::Sync { .. } | Op::SyncDir { .. } | Op::Committed | Op::Started => {}
        }
    }
    let mut state: DirState = Vec::new();
    let mut seen = HashSet::from([ROOT]);
    let mut stack = vec![(PathBuf::new(), ROOT)];
    while let Some((at, dir)) = stack.pop() {
        for (name, &id) in dirs.get(&dir).into_iter().flatten() {
            let path = at.join(name);
            if dirs.contains_key(&id) {
                // A directory is reachable once: a cycle cannot be recorded, but a state
                // replayed out of order must not loop.
                if seen.insert(id) {
                    state.push((path.clone(), id, None));
                    stack.push((path, id));
                }
            } else {
                let content = contents.get(&id).cloned().unwrap_or_default();
                state.push((path, id, Some(content)));
            }
        }
    }
    state.sort();
    state
}

fn target_of(state: &DirState, target: &OsStr) -> TargetKey {
    let target = Path::new(target);
    let Some((_, inode, content)) = state.iter().find(|(path, _, _)| path == target) else {
        return TargetKey(None);
    };
    TargetKey(Some(match content {
        Some(content) => Held::File(*inode, content.clone()),
        None => Held::Tree(
            state
                .iter()
                .filter_map(|(path, id, content)| {
                    let rel = path.strip_prefix(target).ok()?;
                    Some((rel.to_path_buf(), *id, content.clone()?))
                })
                .collect(),
        ),
    }))
}

/// The page boundary in the middle of a write that spans more than one page.
fn torn_boundary(offset: u64, len: u64) -> Option<u64> {
    let first_page = offset / PAGE;
    let last_page = (offset + len).saturating_sub(1) / PAGE;
    (last_page > first_page).then(|| {
        ((first_page + last_page).div_ceil(2) * PAGE)
            .clamp((first_page + 1) * PAGE, last_page * PAGE)
    })
}

/// The directories whose entries operation `op` changes.
fn entry_dirs(op: &Op) -> Vec<usize> {
    match op {
        Op::Create { dir, .. } | Op::Mkdir { dir, .. } | Op::Unlink { dir, .. } => vec![*dir],
        Op::Rename {
            from_dir, to_dir, ..
        } => vec![*from_dir, *to_dir],
        Op::Exchange { a_dir, b_dir, .. } => vec![*a_dir, *b_dir],
        _ => Vec::new(),
    }
}

/// Whether operation `j` of `ops[..upto]` is durable at a cut after `upto` operations.
fn durable(ops: &[Op], j: usize, upto: usize) -> bool {
    let later = &ops[j + 1..upto];
    match &ops[j] {
        Op::Write { inode, .. } | Op::Truncate { inode, .. } => later
            .iter()
            .any(|o| matches!(o, Op::Sync { inode: i } if i == inode)),
        op if changes_state(op) => entry_dirs(op).iter().all(|dir| {
            later
                .iter()
                .any(|o| matches!(o, Op::SyncDir { dir: d } if d == dir))
        }),
        _ => true,
    }
}

fn changes_state(op: &Op) -> bool {
    !matches!(
        op,
        Op::Sync { .. } | Op::SyncDir { .. } | Op::Committed | Op::Started
    )
}

/// The operations lost when the non-durable operation `j` is: `j`, and when it is an entry
/// operation, every later one of `optional` in a directory it (or one lost with it) changes.
fn lost_with(ops: &[Op], optional: &[usize], j: usize) -> HashSet<usize> {
    let mut lost = HashSet::from([j]);
    let mut dirs: HashSet<usize> = entry_dirs(&ops[j]).into_iter().collect();
    if dirs.is_empty() {
        return lost;
    }
    for &i in optional.iter().filter(|&&i| i > j) {
        let touched = entry_dirs(&ops[i]);
        if touched.iter().any(|d| dirs.contains(d)) {
            lost.insert(i);
            dirs.extend(touched);
        }
    }
    lost
}

/// Every crash state of the directory under the model (states whose every name holds the same
/// operations counted once), with what it holds under the name `target`.
pub fn crash_states(rec: &Recording, target: &OsStr) -> Vec<CrashState> {
    let ops = &rec.ops;
    let start = initial_namespace(rec);
    let mut seen: HashSet<(DirState, bool)> = HashSet::new();
    let mut states = Vec::new();
    let mut add = |dir: DirState, after_commit: bool, label: String| {
        let key = target_of(&dir, target);
        if seen.insert((dir, after_commit)) {
            states.push(CrashState {
                target: key,
                after_commit,
                label,
            });
        }
    };
    for upto in 0..=ops.len() {
        let after_commit = ops[..upto].iter().any(|o| matches!(o, Op::Committed));
        add(
            replay(rec, &start, upto, &|_| Keep::All),
            after_commit,
            format!("everything up to operation {upto} persisted"),
        );
        let sync_point = upto == ops.len()
            || matches!(ops[upto], Op::Sync { .. } | Op::SyncDir { .. })
            || (upto > 0 && matches!(ops[upto - 1], Op::Committed));
        if !sync_point {
            continue;
        }
        let optional: Vec<usize> = (0..upto)
            .filter(|&j| changes_state(&ops[j]) && !durable(ops, j, upto))
            .collect();
        if optional.is_empty() {
            continue;
        }
        let lost: HashSet<usize> = optional.iter().copied().collect();
        add(
            replay(rec, &start, upto, &|j| {
                if lost.contains(&j) {
                    Keep::Lost
                } else {
                    Keep::All
                }
            }),
            after_commit,
            format!("cut before operation {upto}: only the durable operations persisted"),
        );
        for &j in &optional {
            let with = lost_with(ops, &optional, j);
            add(
                replay(rec, &start, upto, &|i| {
                    if with.contains(&i) {
                        Keep::Lost
                    } else {
                        Keep::All
                    }
                }),
                after_commit,
                format!(
                    "cut before operation {upto}: operation {j} ({}) lost{}, later ones persisted",
                    describe(&ops[j]),
                    if with.len() > 1 {
                        format!(" with {} later entries of its directories", with.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            );
            if let Op::Write { offset, data, .. } = &ops[j]
                && torn_boundary(*offset, data.len() as u64).is_some()
            {
                for first in [true, false] {
                    add(
                        replay(rec, &start, upto, &|i| {
                            if i == j { Keep::Torn(first) } else { Keep::All }
                        }),
                        after_commit,
                        format!(
                            "cut before operation {upto}: write {j} torn, only its {} pages persisted",
                            if first { "first" } else { "last" }
                        ),
                    );
                }
            }
        }
    }
    states
}

/// A short description of an operation, for failure messages.
pub fn describe(op: &Op) -> String {
    match op {
        Op::Create { name, .. } => format!("create {}", name.to_string_lossy()),
        Op::Mkdir { name, .. } => format!("mkdir {}", name.to_string_lossy()),
        Op::Write { offset, data, .. } => format!("write of {} bytes at {offset}", data.len()),
        Op::Truncate { len, .. } => format!("truncate to {len}"),
        Op::Sync { .. } => "fsync".to_owned(),
        Op::Rename { from, to, .. } => format!(
            "rename {} to {}",
            from.to_string_lossy(),
            to.to_string_lossy()
        ),
        Op::Exchange { a, b, .. } => format!(
            "exchange {} and {}",
            a.to_string_lossy(),
            b.to_string_lossy()
        ),
        Op::Unlink { name, .. } => format!("unlink {}", name.to_string_lossy()),
        Op::SyncDir { .. } => "directory fsync".to_owned(),
        Op::Committed => "returned Ok".to_owned(),
        Op::Started => "start".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ops: Vec<Op>) -> Recording {
        Recording {
            ops,
            initial: vec![("t".into(), 0)],
            ..Recording::default()
        }
    }

    fn targets(ops: Vec<Op>) -> Vec<(Option<Vec<u8>>, bool)> {
        let initial = HashMap::from([(0usize, b"old".to_vec())]);
        let r = rec(ops);
        crash_states(&r, OsStr::new("t"))
            .into_iter()
            .map(|s| (s.target_bytes(&r, &initial).unwrap(), s.after_commit))
            .collect()
    }

    fn write(inode: usize, data: &[u8]) -> Op {
        Op::Write {
            inode,
            offset: 0,
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_correct_replace_gives_only_old_or_new_and_new_after_commit() {
        let states = targets(vec![
            Op::Create {
                dir: ROOT,
                name: "tmp".into(),
                inode: 1,
            },
            write(1, b"new"),
            Op::Sync { inode: 1 },
            Op::Rename {
                from_dir: ROOT,
                from: "tmp".into(),
                to_dir: ROOT,
                to: "t".into(),
            },
            Op::SyncDir { dir: ROOT },
            Op::Committed,
        ]);
        assert!(states.len() >= 2);
        for (bytes, after) in states {
            let bytes = bytes.unwrap();
            assert!(bytes == b"old" || bytes == b"new");
            if after {
                assert_eq!(bytes, b"new");
            }
        }
    }

    #[test]
    fn a_rename_before_the_data_is_synced_can_leave_an_empty_target() {
        let states = targets(vec![
            Op::Create {
                dir: ROOT,
                name: "tmp".into(),
                inode: 1,
            },
            write(1, b"new"),
            Op::Rename {
                from_dir: ROOT,
                from: "tmp".into(),
                to_dir: ROOT,
                to: "t".into(),
            },
            Op::SyncDir { dir: ROOT },
            Op::Committed,
        ]);
        assert!(states.iter().any(|(b, _)| b.as_deref() == Some(b"")));
    }

    #[test]
    fn a_write_over_two_pages_tears_at_the_page_boundary() {
        let initial = HashMap::from([(0usize, vec![0u8; 0])]);
        let data = vec![7u8; 2 * PAGE as usize];
        let r = rec(vec![write(0, &data), Op::Sync { inode: 0 }]);
        let states: Vec<Option<Vec<u8>>> = crash_states(&r, OsStr::new("t"))
            .iter()
            .map(|s| s.target_bytes(&r, &initial).unwrap())
            .collect();
        assert!(states.iter().any(|t| {
            t.as_ref()
                .is_some_and(|b| b.len() == PAGE as usize && b.iter().all(|&x| x == 7))
        }));
        assert!(states.iter().any(|t| {
            t.as_ref().is_some_and(|b| {
                b.len() == 2 * PAGE as usize && b[..PAGE as usize].iter().all(|&x| x == 0)
            })
        }));
    }

    /// A tree target: `t` (directory 0) holds `f` (file 1, "old"); a new tree `n` (directory
    /// 2) gets `f` (file 3, "new") and is exchanged with `t`, with the directory fsyncs each
    /// flag keeps.
    fn tree_exchange(sync_new_dir: bool, sync_root: bool) -> Vec<(Option<Vec<u8>>, bool)> {
        let mut ops = vec![
            Op::Mkdir {
                dir: ROOT,
                name: "n".into(),
                inode: 2,
            },
            Op::Create {
                dir: 2,
                name: "f".into(),
                inode: 3,
            },
            write(3, b"new"),
            Op::Sync { inode: 3 },
        ];
        if sync_new_dir {
            ops.push(Op::SyncDir { dir: 2 });
        }
        ops.push(Op::Exchange {
            a_dir: ROOT,
            a: "n".into(),
            b_dir: ROOT,
            b: "t".into(),
        });
        if sync_root {
            ops.push(Op::SyncDir { dir: ROOT });
        }
        ops.push(Op::Committed);
        // The old tree, now named `n`, is removed after the commit.
        ops.push(Op::Unlink {
            dir: 0,
            name: "f".into(),
        });
        ops.push(Op::Unlink {
            dir: ROOT,
            name: "n".into(),
        });
        let r = Recording {
            ops,
            initial: vec![("t/f".into(), 1)],
            initial_dirs: vec![("t".into(), 0)],
            ..Recording::default()
        };
        let initial = HashMap::from([(1usize, b"old".to_vec())]);
        crash_states(&r, OsStr::new("t"))
            .into_iter()
            .map(|s| (s.target_bytes(&r, &initial).unwrap(), s.after_commit))
            .collect()
    }

    fn packed(content: &[u8]) -> Vec<u8> {
        crate::tree::pack_files([("f".into(), content.to_vec())])
    }

    #[test]
    fn a_tree_exchanged_after_its_fsyncs_is_old_or_new_and_new_after_commit() {
        let states = tree_exchange(true, true);
        assert!(states.len() > 4);
        for (bytes, after) in &states {
            let bytes = bytes.as_deref().unwrap();
            assert!(bytes == packed(b"old") || bytes == packed(b"new"));
            if *after {
                assert_eq!(bytes, packed(b"new"));
            }
        }
        assert!(states.iter().any(|(b, _)| *b == Some(packed(b"new"))));
        assert!(states.iter().any(|(b, _)| *b == Some(packed(b"old"))));
    }

    #[test]
    fn a_tree_whose_entries_were_not_fsynced_can_be_published_empty() {
        let states = tree_exchange(false, true);
        let empty = crate::tree::pack_files([]);
        assert!(
            states
                .iter()
                .any(|(b, after)| *after && b.as_deref() == Some(&empty[..]))
        );
    }

    #[test]
    fn an_exchange_without_the_parent_fsync_can_be_lost_after_the_commit() {
        let states = tree_exchange(true, false);
        assert!(
            states
                .iter()
                .any(|(b, after)| *after && *b == Some(packed(b"old")))
        );
    }

    #[test]
    fn entry_operations_of_one_directory_persist_in_order() {
        // Losing the new tree's mkdir loses the later exchange in the same directory with it:
        // no state leaves the target's name empty.
        let states = tree_exchange(true, true);
        assert!(states.iter().all(|(b, _)| b.is_some()));
        // Directly: a lost entry operation takes the later ones of its directory (and of the
        // directories those change) with it, not those of other directories, nor data.
        let ops = vec![
            Op::Create {
                dir: ROOT,
                name: "a".into(),
                inode: 1,
            },
            Op::Create {
                dir: 5,
                name: "b".into(),
                inode: 2,
            },
            write(1, b"x"),
            Op::Rename {
                from_dir: ROOT,
                from: "a".into(),
                to_dir: 6,
                to: "a".into(),
            },
            Op::Unlink {
                dir: 6,
                name: "c".into(),
            },
            Op::Unlink {
                dir: 5,
                name: "b".into(),
            },
        ];
        let optional: Vec<usize> = (0..ops.len()).collect();
        assert_eq!(lost_with(&ops, &optional, 0), HashSet::from([0, 3, 4]));
        assert_eq!(lost_with(&ops, &optional, 1), HashSet::from([1, 5]));
        assert_eq!(lost_with(&ops, &optional, 2), HashSet::from([2]));
    }
}

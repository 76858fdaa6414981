//! The power-loss model, in the manner of ALICE (Pillai et al., OSDI 2014): from the recorded
//! operations of a process ([`crate::syscalls`]), the states its directory may be found in after
//! a power cut at any point.
//!
//! Persistence rules: a file's data (writes, truncations) is durable once an fsync of that file
//! followed it; a directory entry (create, rename, unlink) is durable once an fsync of the
//! directory followed it. Anything else may be lost, may persist while earlier operations were
//! lost (reordering), and a write may be torn at 4 KiB page boundaries.
//!
//! Crash states enumerated for a recording of n operations:
//! - after every prefix of the operations, everything issued persisted;
//! - at every sync point (before each fsync, after the commit, at the end): only what was
//!   durable; everything but one non-durable operation (for each one); and everything with one
//!   non-durable write torn (its first pages only, its last pages only).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};

use crate::syscalls::{Op, Recording};

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
/// operations on it that persisted, each whole or torn. `None` when no file has the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetKey(Option<(usize, Content)>);

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
    /// The target's bytes in this state (`None` when no file has its name), given the bytes
    /// each initial file held.
    pub fn target_bytes(
        &self,
        rec: &Recording,
        initial: &HashMap<usize, Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let (inode, content) = self.target.0.as_ref()?;
        let mut file = initial.get(inode).cloned().unwrap_or_default();
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
        Some(file)
    }
}

/// A directory after a crash, as what each name holds, sorted by name.
type DirState = Vec<(OsString, usize, Content)>;

/// Replays `ops[..upto]`, each as `keep` says, into what every name holds.
fn replay(rec: &Recording, upto: usize, keep: &dyn Fn(usize) -> Keep) -> DirState {
    let mut names: HashMap<OsString, usize> = rec.initial.iter().cloned().collect();
    let mut contents: HashMap<usize, Content> = HashMap::new();
    for (j, op) in rec.ops[..upto].iter().enumerate() {
        let how = keep(j);
        if how == Keep::Lost {
            continue;
        }
        match op {
            Op::Create { name, inode } => {
                names.insert(name.clone(), *inode);
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
            Op::Rename { from, to } => {
                if let Some(id) = names.remove(from) {
                    names.insert(to.clone(), id);
                }
            }
            Op::Unlink { name } => {
                names.remove(name);
            }
            Op::Sync { .. } | Op::SyncDir | Op::Committed | Op::Started => {}
        }
    }
    let mut dir: DirState = names
        .into_iter()
        .map(|(name, id)| {
            let content = contents.get(&id).cloned().unwrap_or_default();
            (name, id, content)
        })
        .collect();
    dir.sort();
    dir
}

fn target_of(dir: &DirState, target: &OsStr) -> TargetKey {
    TargetKey(
        dir.iter()
            .find(|(name, _, _)| name == target)
            .map(|(_, inode, content)| (*inode, content.clone())),
    )
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

/// Whether operation `j` of `ops[..upto]` is durable at a cut after `upto` operations.
fn durable(ops: &[Op], j: usize, upto: usize) -> bool {
    let later = &ops[j + 1..upto];
    match &ops[j] {
        Op::Write { inode, .. } | Op::Truncate { inode, .. } => later
            .iter()
            .any(|o| matches!(o, Op::Sync { inode: i } if i == inode)),
        Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. } => {
            later.iter().any(|o| matches!(o, Op::SyncDir))
        }
        _ => true,
    }
}

fn changes_state(op: &Op) -> bool {
    !matches!(
        op,
        Op::Sync { .. } | Op::SyncDir | Op::Committed | Op::Started
    )
}

/// Every crash state of the directory under the model (states whose every name holds the same
/// operations counted once), with what it holds under the name `target`.
pub fn crash_states(rec: &Recording, target: &OsStr) -> Vec<CrashState> {
    let ops = &rec.ops;
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
            replay(rec, upto, &|_| Keep::All),
            after_commit,
            format!("everything up to operation {upto} persisted"),
        );
        let sync_point = upto == ops.len()
            || matches!(ops[upto], Op::Sync { .. } | Op::SyncDir)
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
            replay(rec, upto, &|j| {
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
            add(
                replay(rec, upto, &|i| {
                    if i == j { Keep::Lost } else { Keep::All }
                }),
                after_commit,
                format!(
                    "cut before operation {upto}: operation {j} ({}) lost, later ones persisted",
                    describe(&ops[j])
                ),
            );
            if let Op::Write { offset, data, .. } = &ops[j]
                && torn_boundary(*offset, data.len() as u64).is_some()
            {
                for first in [true, false] {
                    add(
                        replay(rec, upto, &|i| {
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
        Op::Write { offset, data, .. } => format!("write of {} bytes at {offset}", data.len()),
        Op::Truncate { len, .. } => format!("truncate to {len}"),
        Op::Sync { .. } => "fsync".to_owned(),
        Op::Rename { from, to } => format!(
            "rename {} to {}",
            from.to_string_lossy(),
            to.to_string_lossy()
        ),
        Op::Unlink { name } => format!("unlink {}", name.to_string_lossy()),
        Op::SyncDir => "directory fsync".to_owned(),
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
            .map(|s| (s.target_bytes(&r, &initial), s.after_commit))
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
                name: "tmp".into(),
                inode: 1,
            },
            write(1, b"new"),
            Op::Sync { inode: 1 },
            Op::Rename {
                from: "tmp".into(),
                to: "t".into(),
            },
            Op::SyncDir,
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
                name: "tmp".into(),
                inode: 1,
            },
            write(1, b"new"),
            Op::Rename {
                from: "tmp".into(),
                to: "t".into(),
            },
            Op::SyncDir,
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
            .map(|s| s.target_bytes(&r, &initial))
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
}

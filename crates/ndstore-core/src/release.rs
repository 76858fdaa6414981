//! Releasing a replaced file off the caller's thread.
//!
//! When an atomic save renames its temporary over an existing file, the old file loses its
//! last name, and the kernel frees its page cache and its blocks inside the `rename` call: about
//! 15 ms for 256 MiB on ext4, a quarter of the save. `np.save` pays the same inside its
//! `O_TRUNC` open.
//!
//! ndstore holds the old file open (`O_PATH`: no read access needed, no locks touched, no atime)
//! across the rename, so the rename only unlinks it, and hands the descriptor to one background
//! thread, whose `close` does the freeing while the caller goes on. Only files of at least
//! [`DEFER_BYTES`] are deferred; smaller ones cost less to free than to hand over.
//!
//! A caller that removes a whole tree of files (a Zarr array's old chunks) hands them over in one
//! batch with [`release_all`]: the names go at once, the blocks in the background.
//!
//! The hand-over queue holds one file (or batch): a caller that replaces large files faster than they are
//! freed waits, so at most three old files' blocks are still in use at any time (one being
//! closed by the background thread, one queued, and one held by the caller waiting to queue
//! it; for trees, three batches, whose descriptors [`held_room`] bounds process-wide). A
//! process that exits closes the descriptors itself. A child forked from the process has no
//! background thread: there files close inline. [`settle`] waits until every deferred file is
//! closed, for callers (and tests) that count descriptors or free space.
//!
//! Not on network and user-space file systems (NFS, SMB/CIFS, FUSE, 9p, Ceph, AFS): there a
//! file that is still open when its last name goes is kept by the client (NFS "silly-renames"
//! it to `.nfsXXXX` first, two server operations with a window in which the target has no
//! file), so the rename over a held file is neither cheaper nor as clean. Old files there are
//! freed inline, as by a plain rename.
//!
//! Nothing about durability changes: the directory entry is replaced before the hand-over, and
//! an unlinked file's blocks were never part of any durable state. A synced save hands the file
//! over only after the directory's fsync, so the journal commit that fsync waits for does not
//! also carry the freeing of the old file's blocks.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

/// Old files of at least this many bytes are released in the background.
pub const DEFER_BYTES: u64 = 4 << 20;

/// Files handed over at once, and how many of them took room of [`HELD`].
struct Batch {
    files: Vec<File>,
    counted: usize,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.files.clear();
        give_room(self.counted);
    }
}

/// Descriptors of removed trees' files held open now, process-wide: gathered, queued or being
/// closed.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The most descriptors of removed trees held at once: 256, or an eighth of the soft limit on
/// open files when that is lower, so holding never starves the process of descriptors.
pub fn held_room() -> usize {
    static ROOM: OnceLock<usize> = OnceLock::new();
    *ROOM.get_or_init(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid `struct rlimit` for getrlimit to fill.
        let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        let eighth = if known {
            usize::try_from(limit.rlim_cur / 8).unwrap_or(usize::MAX)
        } else {
            0
        };
        eighth.min(256)
    })
}

/// Takes room for one more held descriptor; false when [`held_room`] is used up (the file is
/// then freed as its name goes).
pub fn take_room() -> bool {
    HELD.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
        (held < held_room()).then_some(held + 1)
    })
    .is_ok()
}

/// Gives back the room of `n` held descriptors, closed or never opened.
pub fn give_room(n: usize) {
    if n > 0 {
        HELD.fetch_sub(n, Ordering::AcqRel);
    }
}

struct Reaper {
    queue: SyncSender<Batch>,
    /// The process whose thread closes the files: a child forked from it has no such thread
    /// (and its copy of `pending` counts the parent's files), so there files close inline.
    pid: u32,
    /// Files handed over and not yet closed, and the condition [`settle`] waits on.
    pending: Mutex<usize>,
    idle: Condvar,
}

fn reaper() -> Option<&'static Reaper> {
    static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (queue, batches) = mpsc::sync_channel::<Batch>(1);
            let spawned = std::thread::Builder::new()
                .name("ndstore-release".into())
                .spawn(move || {
                    for batch in batches {
                        drop(batch);
                        if let Some(reaper) = reaper() {
                            let mut pending = reaper
                                .pending
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner);
                            *pending = pending.saturating_sub(1);
                            if *pending == 0 {
                                reaper.idle.notify_all();
                            }
                        }
                    }
                });
            match spawned {
                Ok(_) => Some(Reaper {
                    queue,
                    pid: std::process::id(),
                    pending: Mutex::new(0),
                    idle: Condvar::new(),
                }),
                Err(e) => {
                    log::debug!("no background release thread ({e}); old files close inline");
                    None
                }
            }
        })
        .as_ref()
}

/// `statfs` magic numbers of file systems where an open file that loses its last name is
/// handled by a client or a user-space server: NFS, SMB, CIFS, SMB2, FUSE, 9p, Ceph, AFS,
/// Coda, OCFS2 and GFS2 (cluster file systems with their own unlink protocols).
const NO_DEFER_FS: [i64; 11] = [
    0x6969,      // NFS
    0x517b,      // SMB
    0xff53_4d42, // CIFS
    0xfe53_4d42, // SMB2
    0x6573_5546, // FUSE
    0x0102_1997, // 9p
    0x00c3_6400, // Ceph
    0x5346_414f, // AFS
    0x7375_7245, // Coda
    0x7461_636f, // OCFS2
    0x0116_1970, // GFS2
];

/// Whether the file system holding `path` frees a held, unlinked file as a local one does.
/// Unknown (statfs failed) counts as no.
pub fn local_unlink_semantics(path: &Path) -> bool {
    let dir = crate::atomic::parent_dir(path);
    crate::os::fs_type(dir).is_ok_and(|kind| !NO_DEFER_FS.contains(&kind))
}

/// Opens `path` to keep its inode alive across a rename over it, when it is big enough to be
/// worth it and its file system is local. `None` when it is small, on a network or user-space
/// file system, or cannot be opened (then the rename frees it inline).
pub(crate) fn hold(path: &Path, size: u64) -> Option<File> {
    if size < DEFER_BYTES || !local_unlink_semantics(path) {
        return None;
    }
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

/// Closes `file` on the background thread, or here when there is none.
pub(crate) fn release(file: File) {
    hand_over(Batch {
        files: vec![file],
        counted: 0,
    });
}

/// Closes `files`, held open across the removal of their last names (each opened with
/// `O_PATH` on a file system where [`local_unlink_semantics`] holds, each after a
/// [`take_room`]), on the background thread in one hand-over, or here when there is none; their
/// room is given back once they are closed.
pub fn release_all(files: Vec<File>) {
    let counted = files.len();
    hand_over(Batch { files, counted });
}

/// The background thread of this process, if there is one.
fn own_reaper() -> Option<&'static Reaper> {
    reaper().filter(|reaper| reaper.pid == std::process::id())
}

fn hand_over(batch: Batch) {
    if batch.files.is_empty() {
        return;
    }
    let Some(reaper) = own_reaper() else {
        drop(batch);
        return;
    };
    *reaper
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner) += 1;
    if let Err(mpsc::SendError(batch)) = reaper.queue.send(batch) {
        // The thread is gone (it cannot be, short of a panic in `close`): close here.
        drop(batch);
        let mut pending = reaper
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *pending = pending.saturating_sub(1);
    }
}

/// Waits until every replaced file handed to the background thread is closed, so its
/// descriptor is gone and its blocks are free. Returns at once when none is pending.
pub fn settle() {
    let Some(reaper) = own_reaper() else {
        return;
    };
    let mut pending = reaper
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    while *pending > 0 {
        pending = reaper
            .idle
            .wait(pending)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn network_and_user_space_file_systems_are_told_apart_from_local_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, b"x").unwrap();
        // The scratch directory is on a local file system (ext4, tmpfs, overlayfs...).
        let kind = crate::os::fs_type(dir.path()).unwrap();
        assert!(!NO_DEFER_FS.contains(&kind), "{kind:#x}");
        assert!(local_unlink_semantics(&path));
        // A directory that cannot be inspected is "unknown": never held.
        assert!(!local_unlink_semantics(Path::new("/no/such/dir/file")));
    }

    #[test]
    fn small_files_are_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, b"x").unwrap();
        assert!(hold(&path, 1).is_none());
    }

    #[test]
    fn a_held_file_outlives_its_name_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, b"old").unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();
        let held = hold(&path, DEFER_BYTES).expect("held");
        std::fs::remove_file(&path).unwrap();
        // The descriptor still names the unlinked inode.
        let fd_path = format!("/proc/self/fd/{}", held.as_raw_fd());
        let link = std::fs::read_link(&fd_path).unwrap();
        assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
        assert_eq!(std::fs::metadata(&fd_path).unwrap().ino(), ino);
        release(held);
        settle();
        // Another test's thread may have opened a file since, with the same descriptor number
        // and even the freed inode's number; only our file's name (deleted) tells them apart.
        assert!(
            std::fs::read_link(&fd_path).map_or(true, |now| now != link),
            "the descriptor is still open after settle"
        );
    }
}

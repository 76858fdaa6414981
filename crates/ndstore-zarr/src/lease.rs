//! The writer lease of an array in object storage: one small object under the array's prefix
//! that a writer claims with a conditional PUT before its first chunk PUT, so a second writer
//! is refused before it writes anything, instead of being caught at its commit after its
//! chunks landed among the winner's.
//!
//! The object holds the holder's name (random per claim) and when the lease expires, or that
//! it was released. Every version of it therefore has its own bytes, and so its own ETag, even
//! on S3, where the ETag is the MD5 of the content. A writer may claim only the lease object
//! exactly as it was when the array was opened (its ETag then), or create it when there was
//! none: a writer that opened the array before another writer claimed it is refused for good,
//! even after that writer released it, since that writer may have committed meanwhile. That
//! closes what a conditional PUT of `zarr.json` alone leaves open on S3: a commit of identical
//! `zarr.json` bytes keeps the ETag, so `If-Match` cannot tell that another commit happened.
//!
//! A killed writer's lease blocks others only until it expires: a writer that opened the array
//! after the claim takes the expired lease over with a PUT conditional on its ETag. Holders
//! renew their lease when half of it has passed. Expiry times are the holder's clock; clocks
//! that disagree by more than the lease's duration break the exclusion.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ndstore_core::{Error, ErrorKind, Result};
use object_store::{
    GetOptions, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use serde::{Deserialize, Serialize};

use crate::object::{ObjectTarget, object_error};

/// The lease object's key under the array's prefix. Zarr readers ignore it: it is neither
/// `zarr.json` nor a chunk key.
pub(crate) const LEASE_KEY: &str = ".ndstore-lease";

/// How long a lease lasts unless renewed, when the target does not say.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The lease object's content.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The name of the claim that wrote it (random).
    owner: String,
    /// When it expires (milliseconds since the Unix epoch on the holder's clock); `None` once
    /// released.
    expires_ms: Option<u64>,
}

/// The lease object as the array's opening saw it.
#[derive(Debug)]
enum Seen {
    /// There was none: a claim creates it.
    Absent,
    /// There was one, at `version`, free from `free_at_ms` on (0 when released).
    Object {
        version: UpdateVersion,
        free_at_ms: u64,
    },
}

/// A lease this writer holds.
#[derive(Debug)]
struct Held {
    version: UpdateVersion,
    expires_ms: u64,
}

/// An array's lease: what the opening saw, and the claim this writer holds, if any.
#[derive(Debug)]
pub(crate) struct Lease {
    seen: Seen,
    held: Option<Held>,
    /// The name this writer's claims write, random per store.
    owner: String,
    duration: Duration,
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A name no other claim has: the process, the time and a per-process counter, mixed by the
/// standard library's randomly keyed hasher.
fn random_owner() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{:016x}-{}-{:x}",
        hasher.finish(),
        std::process::id(),
        now_ms()
    )
}

/// The lease object's bytes and metadata.
fn read(target: &ObjectTarget) -> object_store::Result<(Vec<u8>, ObjectMeta)> {
    let location = target.object(LEASE_KEY);
    let store = target.store();
    target.run(async {
        let got = store.get_opts(&location, GetOptions::default()).await?;
        let meta = got.meta.clone();
        Ok((got.bytes().await?.to_vec(), meta))
    })
}

/// The error of a writer that may not write the array.
fn refused(target: &ObjectTarget, why: &str) -> Error {
    Error::new(ErrorKind::Locked, why.to_owned()).with_path(target.name().join(LEASE_KEY))
}

/// The state of an array's writer lease, as a reader finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// There is no lease object: no ndstore writer wrote the array, or an abandoned new
    /// array's writer removed it.
    Absent,
    /// The last writer released it: it committed (or gave up) and finished.
    Released,
    /// A writer holds it: it is writing now, or died less than `expires_in` ago.
    Held {
        /// How long until the lease expires unless renewed.
        expires_in: Duration,
    },
    /// A writer claimed it and never released it: it died `since` ago (or lost the store)
    /// before its commit ended, and what it left (chunks of its version beside the old one's,
    /// or a new array's chunks without `zarr.json`) stays until the next writer.
    Expired {
        /// How long ago it expired.
        since: Duration,
    },
}

/// The lease of the array at `target` as it is now.
///
/// # Errors
///
/// The store's errors other than the object's absence.
pub(crate) fn state(target: &ObjectTarget) -> Result<LeaseState> {
    let (bytes, meta) = match read(target) {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(LeaseState::Absent),
        Err(e) => {
            return Err(object_error(
                target,
                "cannot read the array's lease",
                LEASE_KEY,
                e,
            ));
        }
    };
    let expires_ms = match serde_json::from_slice::<Record>(&bytes) {
        Ok(Record {
            expires_ms: None, ..
        }) => return Ok(LeaseState::Released),
        Ok(Record {
            expires_ms: Some(at),
            ..
        }) => at,
        // Not ours to read: held as long as a lease written at its time would be.
        Err(_) => u64::try_from(meta.last_modified.timestamp_millis())
            .unwrap_or(0)
            .saturating_add(u64::try_from(target.lease_duration().as_millis()).unwrap_or(u64::MAX)),
    };
    let now = now_ms();
    Ok(if expires_ms > now {
        LeaseState::Held {
            expires_in: Duration::from_millis(expires_ms - now),
        }
    } else {
        LeaseState::Expired {
            since: Duration::from_millis(now - expires_ms),
        }
    })
}

impl Lease {
    /// Reads the lease object of the array at `target`, as a claim will expect to find it.
    ///
    /// # Errors
    ///
    /// The store's errors other than the object's absence.
    pub(crate) fn open(target: &ObjectTarget) -> Result<Lease> {
        let seen = match read(target) {
            Ok((bytes, meta)) => {
                let duration = target.lease_duration();
                let free_at_ms = match serde_json::from_slice::<Record>(&bytes) {
                    Ok(record) => record.expires_ms.unwrap_or(0),
                    // Not ours to read: free once a lease written at its time would be.
                    Err(_) => u64::try_from(meta.last_modified.timestamp_millis())
                        .unwrap_or(0)
                        .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
                };
                Seen::Object {
                    version: UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    },
                    free_at_ms,
                }
            }
            Err(object_store::Error::NotFound { .. }) => Seen::Absent,
            Err(e) => {
                return Err(object_error(
                    target,
                    "cannot read the array's lease",
                    LEASE_KEY,
                    e,
                ));
            }
        };
        Ok(Lease {
            seen,
            held: None,
            owner: random_owner(),
            duration: target.lease_duration(),
        })
    }

    /// True while this writer holds the lease.
    pub(crate) fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Makes sure this writer holds the lease for at least half its duration more: claims it
    /// (the first time), or renews it when half of it has passed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] when another writer holds the lease, or claimed it since the
    /// array was opened, or took this writer's expired lease over; the store's errors.
    pub(crate) fn hold(&mut self, target: &ObjectTarget) -> Result<()> {
        match &self.held {
            None => self.claim(target),
            Some(held) if held.expires_ms.saturating_sub(now_ms()) < self.half_ms() => {
                self.renew(target)
            }
            Some(_) => Ok(()),
        }
    }

    fn half_ms(&self) -> u64 {
        u64::try_from(self.duration.as_millis() / 2).unwrap_or(u64::MAX)
    }

    /// A live record of this writer's, expiring a lease's duration from now.
    fn live(&self) -> (Record, u64) {
        let expires_ms =
            now_ms().saturating_add(u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX));
        (
            Record {
                owner: self.owner.clone(),
                expires_ms: Some(expires_ms),
            },
            expires_ms,
        )
    }

    fn claim(&mut self, target: &ObjectTarget) -> Result<()> {
        let mode = match &self.seen {
            Seen::Absent => PutMode::Create,
            Seen::Object {
                version,
                free_at_ms,
            } => {
                let now = now_ms();
                if *free_at_ms > now {
                    let wait = (*free_at_ms - now).div_ceil(1000);
                    return Err(refused(
                        target,
                        &format!(
                            "another writer holds this array's lease (it is writing the array); try again after its commit, opening the array anew, or in {wait} s, when the lease expires if its writer died"
                        ),
                    ));
                }
                PutMode::Update(version.clone())
            }
        };
        self.take(
            target,
            mode,
            "another writer committed or started writing this array since this writer opened it; open it again",
        )
    }

    /// Extends the lease this writer holds, and so proves it still holds it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Locked`] when the lease was taken over (it expired); the store's errors.
    pub(crate) fn renew(&mut self, target: &ObjectTarget) -> Result<()> {
        let Some(held) = &self.held else {
            return self.claim(target);
        };
        let mode = PutMode::Update(held.version.clone());
        self.take(
            target,
            mode,
            "this writer's lease expired and another writer took it over; nothing more of this writer is published",
        )
    }

    /// Writes a live record of this writer's with `mode` and holds the lease it makes; a
    /// failed condition is the refusal `why`.
    fn take(&mut self, target: &ObjectTarget, mode: PutMode, why: &str) -> Result<()> {
        let (record, expires_ms) = self.live();
        let version = match self.put(target, &record, mode) {
            Ok(version) => version,
            Err(e) if e.kind() == ErrorKind::Locked => {
                self.held = None;
                return Err(refused(target, why));
            }
            // The put may have landed before the error: the lease is ours if it says so.
            Err(e) => self.landed(target, &record).ok_or(e)?,
        };
        self.held = Some(Held {
            version,
            expires_ms,
        });
        Ok(())
    }

    /// Marks the lease this writer holds as released (keeping the object, whose new ETag
    /// tells writers that opened before this claim that the array may have changed).
    ///
    /// # Errors
    ///
    /// The store's errors; [`ErrorKind::Locked`] when the lease was taken over.
    pub(crate) fn release(&mut self, target: &ObjectTarget) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let record = Record {
            owner: self.owner.clone(),
            expires_ms: None,
        };
        self.put(target, &record, PutMode::Update(held.version))
            .map(|_| ())
    }

    /// Removes the lease object this writer holds (an abandoned new array, which leaves the
    /// prefix as it found it), unless the lease has expired: another writer may hold it now.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub(crate) fn remove(&mut self, target: &ObjectTarget) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        if held.expires_ms <= now_ms() {
            return Ok(());
        }
        let location = target.object(LEASE_KEY);
        match target.run(target.store().delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(
                target,
                "cannot remove the array's lease",
                LEASE_KEY,
                e,
            )),
        }
    }

    /// Writes `record` with `mode`, returning the new version.
    fn put(&self, target: &ObjectTarget, record: &Record, mode: PutMode) -> Result<UpdateVersion> {
        let bytes = serde_json::to_vec(record).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot encode the lease: {e}"),
            )
        })?;
        let location = target.object(LEASE_KEY);
        target
            .run(target.store().put_opts(
                &location,
                PutPayload::from(bytes),
                PutOptions::from(mode),
            ))
            .map(UpdateVersion::from)
            .map_err(|e| object_error(target, "cannot write the array's lease", LEASE_KEY, e))
    }

    /// The lease object's version when it holds exactly `record` (a put that landed although
    /// its answer was an error).
    fn landed(&self, target: &ObjectTarget, record: &Record) -> Option<UpdateVersion> {
        let (bytes, meta) = read(target).ok()?;
        let found: Record = serde_json::from_slice(&bytes).ok()?;
        (found.owner == record.owner && found.expires_ms == record.expires_ms).then_some(
            UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        )
    }
}

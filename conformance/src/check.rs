//! The catalogue: every check the harness runs, its two-letter ID (what the matrix, the JSON
//! results and the tests' names show), its name and what it promises. One list, [`Check::ALL`],
//! in the order the matrix shows the checks.

use serde::{Deserialize, Serialize};

/// One check of the catalogue. It serialises as its ID (`"RT"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Check {
    /// RT: round trip.
    #[serde(rename = "RT")]
    RoundTrip,
    /// FC: flush on close.
    #[serde(rename = "FC")]
    FlushOnClose,
    /// FD: flush on drop.
    #[serde(rename = "FD")]
    FlushOnDrop,
    /// CK: `kill -9` during saves.
    #[serde(rename = "CK")]
    Kill,
    /// CP: power loss.
    #[serde(rename = "CP")]
    PowerLoss,
    /// IO: injected I/O errors.
    #[serde(rename = "IO")]
    InjectedIo,
    /// FS: fsync failure.
    #[serde(rename = "FS")]
    FsyncFailure,
    /// BI: bad input.
    #[serde(rename = "BI")]
    BadInput,
    /// CO: concurrency.
    #[serde(rename = "CO")]
    Concurrency,
    /// SE: security.
    #[serde(rename = "SE")]
    Security,
    /// IX: interoperability.
    #[serde(rename = "IX")]
    Interop,
}

impl Check {
    /// Every check, in the order the matrix shows them.
    pub const ALL: [Check; 11] = [
        Check::RoundTrip,
        Check::FlushOnClose,
        Check::FlushOnDrop,
        Check::Kill,
        Check::PowerLoss,
        Check::InjectedIo,
        Check::FsyncFailure,
        Check::BadInput,
        Check::Concurrency,
        Check::Security,
        Check::Interop,
    ];

    /// The catalogue ID: `RT`, `FC`, ...
    pub fn id(self) -> &'static str {
        match self {
            Check::RoundTrip => "RT",
            Check::FlushOnClose => "FC",
            Check::FlushOnDrop => "FD",
            Check::Kill => "CK",
            Check::PowerLoss => "CP",
            Check::InjectedIo => "IO",
            Check::FsyncFailure => "FS",
            Check::BadInput => "BI",
            Check::Concurrency => "CO",
            Check::Security => "SE",
            Check::Interop => "IX",
        }
    }

    /// The check's name in a few words.
    pub fn name(self) -> &'static str {
        match self {
            Check::RoundTrip => "round trip",
            Check::FlushOnClose => "flush on close",
            Check::FlushOnDrop => "flush on drop",
            Check::Kill => "kill -9",
            Check::PowerLoss => "power loss",
            Check::InjectedIo => "injected I/O errors",
            Check::FsyncFailure => "fsync failure",
            Check::BadInput => "bad input",
            Check::Concurrency => "concurrency",
            Check::Security => "security",
            Check::Interop => "interoperability",
        }
    }

    /// What the check promises, as the report's list of checks says it.
    pub fn description(self) -> &'static str {
        match self {
            Check::RoundTrip => "round trip of shape, dtype, order and bit-identical values",
            Check::FlushOnClose => "flush-on-close: another process reads exactly the data",
            Check::FlushOnDrop => {
                "flush-on-drop, rollback of uncommitted writers, drop during panic"
            }
            Check::Kill => "kill -9 during saves: always a complete acknowledged version",
            Check::PowerLoss => "power loss: old or new, new once sync returned",
            Check::InjectedIo => "injected I/O errors: surfaced, old file intact, nothing leaked",
            Check::FsyncFailure => "fsync failure poisons the handle",
            Check::BadInput => "bad input: clear error with a place; no panic, abort, OOM or hang",
            Check::Concurrency => "concurrency: writers, readers during replace, locks",
            Check::Security => "permissions kept, exclusive temporaries, symlinks, read-only dirs",
            Check::Interop => "interoperability with numpy / h5py, both directions",
        }
    }

    /// The check with catalogue ID `id` (exactly as [`Check::id`] spells it).
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.id() == id)
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Check {
    type Err = String;

    fn from_str(id: &str) -> Result<Check, String> {
        Check::from_id(id).ok_or_else(|| {
            let known: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
            format!("unknown check '{id}' (known: {})", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut ids = std::collections::BTreeSet::new();
        for check in Check::ALL {
            assert!(ids.insert(check.id()), "{} appears twice", check.id());
            assert_eq!(check.id().parse::<Check>(), Ok(check));
            let json = serde_json::to_string(&check).unwrap();
            assert_eq!(json, format!("\"{}\"", check.id()));
            assert_eq!(serde_json::from_str::<Check>(&json).unwrap(), check);
            assert!(!check.name().is_empty() && !check.description().is_empty());
        }
        assert_eq!(ids.len(), Check::ALL.len());
        assert!("rt".parse::<Check>().is_err());
        assert!("XX".parse::<Check>().is_err());
    }
}

//! What every fuzz target shares: a scratch file through which inputs reach the loaders that
//! take a path, and the contract every result must keep. A target that breaks the contract
//! panics, and libFuzzer saves the input as a crash.
//!
//! The contract, as the conformance check BI states it for whole files:
//!
//! - an `Err` names the file (for loads by path) and carries a place (byte offset, archive
//!   member, line and column, object) unless its kind is `Io`;
//! - no input this small makes a load run out of memory: `OutOfMemory` is a failure here, and
//!   libFuzzer's `-malloc_limit_mb` and `-rss_limit_mb` (set by `cargo xtask fuzz`) catch an
//!   allocation the input cannot justify before the allocator refuses it;
//! - an `Ok` is consistent: the array has the shape and element type its metadata states, and
//!   two ways of reading the same bytes agree bit for bit.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndstore_core::{ArrayMeta, DTypeKind, DynArray, Error, ErrorKind};

/// The variable `cargo xtask fuzz` sets to the directory for scratch files (on tmpfs when the
/// machine has one); without it, the system's temporary directory.
pub const SCRATCH_ENV: &str = "NDSTORE_FUZZ_SCRATCH";

/// This process's scratch directory, created on first use.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os(SCRATCH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("ndstore-fuzz-{}", std::process::id()));
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("the fuzz harness cannot create {}: {e}", dir.display());
        }
        dir
    })
}

/// Writes `data` to this process's scratch file named `name` (its extension picks the format
/// where that matters) and returns its path. The same path is reused for every input.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    if let Err(e) = fs::write(&path, data) {
        panic!("the fuzz harness cannot write {}: {e}", path.display());
    }
    path
}

/// Asserts the error contract: the file is named (when `path` is given), the place is given
/// unless the kind is `Io`, and the kind is not `OutOfMemory` (fuzz inputs are small, and no
/// memory limit is set, so running out means an allocation the input did not justify).
pub fn check_err(what: &str, err: &Error, path: Option<&Path>) {
    check_err_unplaced(what, err, path);
    if err.kind() != ErrorKind::Io && err.location().is_none() {
        panic!(
            "{what}: a {} error does not say where: {err}",
            err.kind().as_str()
        );
    }
}

/// [`check_err`] without the place, for errors that concern the input as a whole: a raw
/// file's length against the caller's metadata (a raw file has no structure to point into; the
/// message gives both sizes), or a zip archive the zip crate cannot open (it reports no
/// offset).
pub fn check_err_unplaced(what: &str, err: &Error, path: Option<&Path>) {
    // Formatting must work for every error.
    let shown = err.to_string();
    if let Some(path) = path
        && err.path() != Some(path)
    {
        panic!(
            "{what}: the error does not name the file {} (it names {:?}): {shown}",
            path.display(),
            err.path()
        );
    }
    if err.kind() == ErrorKind::OutOfMemory {
        panic!("{what}: a small input ran a load out of memory: {shown}");
    }
}

/// Asserts that a loaded array is what its metadata says.
pub fn check_loaded(what: &str, meta: &ArrayMeta, array: &DynArray) {
    assert_eq!(
        array.kind(),
        meta.dtype.kind,
        "{what}: the array's element type differs from its metadata"
    );
    assert_eq!(
        array.shape(),
        meta.shape.as_slice(),
        "{what}: the array's shape differs from its metadata"
    );
}

/// The element kind a selector byte picks (every kind ndstore stores).
pub fn kind_from_byte(b: u8) -> DTypeKind {
    DTypeKind::ALL[usize::from(b) % DTypeKind::ALL.len()]
}

/// Text reader options a selector byte picks: the delimiter (two bits) and, for files without
/// a metadata line, the dtype (the other bits; 0 is f64, `loadtxt`'s default, at index 11 of
/// `DTypeKind::ALL`).
pub fn text_options(selector: u8) -> ndstore_text::TextOptions {
    use ndstore_text::{Delimiter, TextOptions};
    let delimiter = match selector & 3 {
        0 => Delimiter::Byte(b','),
        1 => Delimiter::Whitespace,
        2 => Delimiter::Byte(b'\t'),
        _ => Delimiter::Byte(b';'),
    };
    TextOptions::new()
        .delimiter(delimiter)
        .dtype(ndstore_core::DType::native(kind_from_byte(
            (selector >> 2) + 11,
        )))
}

/// Loads `text` as a file (`ndstore_text::load_dyn`, `read_meta`) and reads it as a stream
/// (`TextReader::from_reader`, block by block), checking the contract on each, and that a
/// stream read of a file that loads yields exactly as many values.
pub fn fuzz_text(options: &ndstore_text::TextOptions, text: &[u8]) {
    use ndstore_text::TextReader;

    let path = scratch_file("input.csv", text);
    let loaded = ndstore_text::load_dyn(&path, options);
    match &loaded {
        Ok((meta, array)) => {
            check_loaded("text load_dyn", meta, array);
            match ndstore_text::read_meta(&path, options) {
                Ok(read) => assert_eq!(&read, meta, "text read_meta disagrees with load_dyn"),
                Err(e) => panic!("text read_meta fails on a file load_dyn loads: {e}"),
            }
        }
        Err(e) => check_err("text load_dyn", e, Some(&path)),
    }

    let source = Box::new(std::io::Cursor::new(text.to_vec()));
    let mut reader = match TextReader::from_reader(source, &path, options) {
        Ok(reader) => reader,
        Err(e) => {
            check_err("TextReader::from_reader", &e, Some(&path));
            assert!(
                loaded.is_err(),
                "the stream reader refuses a file that loads: {e}"
            );
            return;
        }
    };
    let kind = reader.dtype().kind;
    let streamed: ndstore_core::Result<usize> = ndstore_core::with_dtype_kind!(kind, |T| {
        let mut count = 0usize;
        loop {
            match reader.next_block::<T>() {
                Ok(Some((values, _rows))) => count += values.len(),
                Ok(None) => break Ok(count),
                Err(e) => break Err(e),
            }
        }
    });
    match streamed {
        Ok(count) => {
            if let Ok((_, array)) = &loaded {
                assert_eq!(
                    count,
                    array.len(),
                    "stream and load read different value counts"
                );
            }
        }
        Err(e) => check_err("TextReader::next_block", &e, Some(&path)),
    }
}

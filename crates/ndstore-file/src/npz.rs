//! `.npz` archives: several named arrays in one zip file, stored or deflated, zip64 when large,
//! with member names validated and decompression bounded by what the archive can justify.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array, ArrayBase, Data, Dimension};
use ndstore_core::{
    ArrayMeta, Commit, DynArray, Element, Error, ErrorKind, LoadOptions, Location, OutputFile,
    Replace, Result, SaveOptions, with_dyn_array,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::npy;

/// Deflate cannot expand data by more than about 1032:1; a member claiming more is a bomb.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Members at or over this size are written with zip64 extra fields (the 4 GiB limit, less room
/// for the `.npy` header).
const ZIP64_THRESHOLD: u64 = u32::MAX as u64 - (1 << 20);

/// How members are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed, as `np.savez` writes.
    #[default]
    Stored,
    /// Deflate, as `np.savez_compressed` writes.
    Deflated,
}

/// Checks an array name for use as an archive member: not empty, no NUL or backslash, not
/// absolute, no `.` or `..` components.
///
/// ```
/// use ndstore_core::ErrorKind;
/// use ndstore_file::npz::validate_name;
/// assert!(validate_name("weights/layer1").is_ok());
/// assert_eq!(validate_name("../escape").unwrap_err().kind(), ErrorKind::InvalidName);
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidName`] saying what is wrong with the name.
pub fn validate_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "the name is empty"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else if name.contains('\\') {
        "the name contains a backslash"
    } else if name.starts_with('/') {
        "the name is an absolute path"
    } else if name.as_bytes().get(1) == Some(&b':') {
        "the name starts with a drive letter, as 'C:'"
    } else if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        "the name has an empty, '.' or '..' path component"
    } else {
        return Ok(());
    };
    Err(invalid_name(name, why))
}

fn invalid_name(name: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidName,
        format!("unsafe array name {name:?}: {why}"),
    )
}

/// The archive file as the zip writer sees it: the real file while the writer is live, then a
/// sink that accepts every write and seek without touching the file.
///
/// `ZipWriter`'s own `Drop` finalizes an unfinished archive (writing a central directory, which
/// would publish a partial archive that looks complete) and prints its errors on stderr. An
/// abandoned writer closes the gate first, so that finalization goes nowhere.
struct Gate {
    file: File,
    closed: Arc<AtomicBool>,
    /// The position and length zip believes in, kept up to date so the sink stays consistent.
    pos: u64,
    len: u64,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = if self.closed.load(Ordering::Relaxed) {
            buf.len()
        } else {
            self.file.write(buf)?
        };
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.file.flush()
    }
}

impl Seek for Gate {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if !self.closed.load(Ordering::Relaxed) {
            self.pos = self.file.seek(to)?;
            return Ok(self.pos);
        }
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Writes an `.npz` archive array by array, published on [`Commit::commit`].
///
/// Atomic (the default): dropped without commit (an error, a panic), the target keeps its old
/// content and no temporary file remains. In place: the target is truncated when the writer is
/// created; dropped without commit, the writer finishes the archive with the arrays added so far
/// (errors logged) — unless its thread is panicking or an earlier add failed, when the target
/// is cut back to empty rather than left as a partial archive that looks complete.
///
/// A failed `add` poisons the writer: later adds and the commit return `Err`.
pub struct NpzWriter {
    out: Option<OutputFile>,
    zip: Option<ZipWriter<Gate>>,
    gate: Arc<AtomicBool>,
    names: HashSet<String>,
    compression: Compression,
    options: SaveOptions,
    failed: bool,
}

impl NpzWriter {
    /// Starts an archive at `path`.
    ///
    /// # Errors
    ///
    /// The errors of creating the output file (see [`OutputFile::create`]).
    pub fn create(
        path: impl AsRef<Path>,
        options: &SaveOptions,
        compression: Compression,
    ) -> Result<NpzWriter> {
        let path = path.as_ref();
        let mut out = OutputFile::create(path, options)?;
        let file = out
            .file()?
            .try_clone()
            .map_err(|e| Error::io("duplicating a descriptor", e).with_path(path))?;
        let gate = Arc::new(AtomicBool::new(false));
        let sink = Gate {
            file,
            closed: Arc::clone(&gate),
            pos: 0,
            len: 0,
        };
        Ok(NpzWriter {
            zip: Some(ZipWriter::new(sink)),
            gate,
            out: Some(out),
            names: HashSet::new(),
            compression,
            options: *options,
            failed: false,
        })
    }

    fn target(&self) -> PathBuf {
        self.out
            .as_ref()
            .map_or_else(PathBuf::new, |out| out.target().to_path_buf())
    }

    /// Adds `array` as member `NAME.npy`; `np.load(path)[NAME]` reads it back.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidName`] for an unsafe or repeated name; I/O errors (after which the
    /// writer is poisoned: [`ErrorKind::Poisoned`] from every later call).
    pub fn add<A, S, D>(&mut self, name: &str, array: &ArrayBase<S, D>) -> Result<()>
    where
        A: Element,
        S: Data<Elem = A>,
        D: Dimension,
    {
        self.add_view(name, array.view().into_dyn())
    }

    /// Adds a runtime-typed array as member `NAME.npy`.
    ///
    /// # Errors
    ///
    /// As [`NpzWriter::add`].
    pub fn add_dyn(&mut self, name: &str, array: &DynArray) -> Result<()> {
        with_dyn_array!(array, |a| self.add_view(name, a.view()))
    }

    fn check(&self) -> Result<()> {
        if self.failed {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "an earlier write to this archive failed; write it again with a new writer",
            )
            .with_path(self.target()));
        }
        Ok(())
    }

    fn add_view<T: Element>(&mut self, name: &str, view: ndarray::ArrayViewD<'_, T>) -> Result<()> {
        let size = (view.len() as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        let byte_order = self.options.effective_byte_order();
        self.add_member(name, size, &mut |zip| npy::write_to(zip, &view, byte_order))
    }

    /// Adds member `NAME.npy` holding an array of `meta`'s dtype and shape (C order) whose
    /// rows `rows` hands over a block at a time (`None` after the last), so an array larger
    /// than memory can be archived: only one block is held at once.
    ///
    /// # Errors
    ///
    /// As [`NpzWriter::add`]; the errors `rows` returns; `InvalidInput` when a block's rows do
    /// not have `meta`'s row shape, or the blocks hold more or fewer rows than `meta` declares.
    /// Any error poisons the writer.
    pub fn add_streamed(
        &mut self,
        name: &str,
        meta: &ArrayMeta,
        rows: &mut dyn FnMut() -> Result<Option<DynArray>>,
    ) -> Result<()> {
        let meta = ArrayMeta::new(meta.dtype, meta.shape.clone(), ndstore_core::Order::C);
        let size = meta.byte_len()? as u64;
        let Some((&declared, row_shape)) = meta.shape.split_first() else {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a 0-d array has no rows")
                    .with_path(self.target()),
            );
        };
        let header = ndstore_core::__private::npy_header::encode(&meta);
        let byte_order = meta.dtype.byte_order;
        self.add_member(name, size, &mut |zip| {
            zip.write_all(&header)
                .map_err(|e| Error::io("writing the .npy header", e))?;
            let mut written = 0usize;
            while let Some(block) = rows()? {
                let fits = block.shape().get(1..) == Some(row_shape)
                    && block.kind() == meta.dtype.kind
                    && written + block.shape()[0] <= declared;
                if !fits {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "a block of shape {:?} does not continue an array of shape {:?} after {written} rows",
                            block.shape(),
                            meta.shape
                        ),
                    ));
                }
                written += block.shape()[0];
                with_dyn_array!(&block, |a| ndstore_core::__private::codec::write_elements(
                    &a.view(),
                    ndstore_core::Order::C,
                    byte_order,
                    &mut |bytes| zip.write_all(bytes)
                ))
                .map_err(|e| Error::io("writing the .npy data", e))?;
            }
            if written == declared {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the blocks hold {written} rows of the {declared} declared"),
                ))
            }
        })
    }

    /// Starts member `NAME.npy` of `size` data bytes and has `body` write it; a failure
    /// abandons the archive.
    fn add_member(
        &mut self,
        name: &str,
        size: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        self.check()?;
        let target = self.target();
        validate_name(name).map_err(|e| e.with_path(&target))?;
        if self.names.contains(name) {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("the archive already has an array named {name:?}"),
            )
            .with_path(&target));
        }
        let method = match self.compression {
            Compression::Stored => CompressionMethod::Stored,
            Compression::Deflated => CompressionMethod::Deflated,
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(size >= ZIP64_THRESHOLD)
            .unix_permissions(0o644);
        let zip = self
            .zip
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the archive is finished"))?;
        let member = format!("{name}.npy");
        let result = zip
            .start_file(member.as_str(), options)
            .map_err(|e| zip_error("starting a member", e))
            .and_then(|()| body(zip))
            .map_err(|e| e.in_member(&member).with_path(&target));
        match result {
            Ok(()) => {
                self.names.insert(name.to_owned());
                Ok(())
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// Poisons the writer, closes the gate so nothing more reaches the file, and cuts an
    /// in-place target back to empty.
    fn abandon(&mut self) {
        self.failed = true;
        self.gate.store(true, Ordering::Relaxed);
        // zip's Drop now finalizes into the sink.
        drop(self.zip.take());
        if self.options.replace == Replace::InPlace
            && let Some(out) = self.out.as_mut()
        {
            let result = out.file().and_then(|f| {
                f.set_len(0)
                    .map_err(|e| Error::io("cutting the archive back", e))
            });
            if let Err(e) = result {
                log::error!(
                    "{}: could not cut back an abandoned archive: {e}",
                    self.target().display()
                );
            }
        }
    }
}

impl Commit for NpzWriter {
    fn commit(mut self) -> Result<()> {
        self.check()?;
        let target = self.target();
        if let Some(zip) = self.zip.take() {
            let gate = zip
                .finish()
                .map_err(|e| zip_error("finishing the archive", e).with_path(&target));
            let gate = match gate {
                Ok(gate) => gate,
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            };
            ndstore_core::__private::os::close_file(gate.file)
                .map_err(|e| Error::io("close failed", e).with_path(&target))?;
        }
        // `out` publishes the file; drop has nothing left to do.
        let out = self
            .out
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the archive is finished"))?;
        out.finish()
    }
}

impl Drop for NpzWriter {
    fn drop(&mut self) {
        let Some(zip) = self.zip.take() else {
            return;
        };
        if self.options.replace == Replace::InPlace && !std::thread::panicking() {
            // In place, as every in-place handle: what was added becomes a complete archive.
            if let Err(e) = zip.finish() {
                log::error!(
                    "{}: finishing an uncommitted archive failed on drop: {e}",
                    self.target().display()
                );
            }
            return;
        }
        self.zip = Some(zip);
        self.abandon();
    }
}

/// Saves named arrays as an `.npz` archive, atomically and durably unless `options` say otherwise.
///
/// # Errors
///
/// `ErrorKind::InvalidName` for an unsafe or repeated name; otherwise the errors of opening the
/// output (`OutputFile::create`: `ErrorKind::PermissionDenied`, `ErrorKind::Locked` in place, ...),
/// and I/O errors of writing, syncing, renaming and syncing the directory (`ErrorKind::StorageFull`
/// for a full disk); a failed atomic save leaves the target's old content.
pub fn save_npz(
    path: impl AsRef<Path>,
    arrays: &[(&str, &DynArray)],
    compression: Compression,
    options: &SaveOptions,
) -> Result<()> {
    let mut writer = NpzWriter::create(path, options, compression)?;
    for (name, array) in arrays {
        writer.add_dyn(name, array)?;
    }
    writer.commit()
}

fn zip_error(what: &str, err: zip::result::ZipError) -> Error {
    match err {
        zip::result::ZipError::Io(e) => Error::io(what.to_owned(), e),
        other => Error::new(ErrorKind::Format, format!("{what}: {other}")),
    }
}

/// Where an archive's directory is, for errors about it: the central directory's offset as the
/// end record gives it, or the end record itself when that offset is outside the file, or the
/// end of the file when there is no end record (the file is not a zip archive, or is cut short).
fn directory_place(file: &File, len: u64) -> Location {
    use std::os::unix::fs::FileExt;
    // The end record is 22 bytes plus a comment of at most 65535 bytes.
    let window = len.min(22 + 65535);
    let mut tail = vec![0u8; window as usize];
    if file.read_exact_at(&mut tail, len - window).is_err() {
        return Location::Offset(len);
    }
    let Some(at) = tail
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .filter(|&at| at + 22 <= tail.len())
    else {
        return Location::Offset(len);
    };
    let end_record = len - window + at as u64;
    let field = &tail[at + 16..at + 20];
    let directory = u64::from(u32::from_le_bytes([field[0], field[1], field[2], field[3]]));
    if directory < end_record {
        Location::Offset(directory)
    } else {
        Location::Offset(end_record + 16)
    }
}

/// True when the zip reader reports a CRC-32 mismatch (it says so only in the message).
fn is_crc_error(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::InvalidData && err.to_string().contains("checksum")
}

/// An error reading a member's bytes: a CRC-32 mismatch is corruption, anything else I/O.
fn member_read_error(err: std::io::Error) -> Error {
    if is_crc_error(&err) {
        Error::new(ErrorKind::Corrupt, "the member fails its CRC-32 check")
    } else if err.kind() == std::io::ErrorKind::InvalidData {
        Error::new(ErrorKind::Format, format!("the member is malformed: {err}"))
    } else {
        Error::io("reading the member", err)
    }
}

/// A member's name, or an error when it is not valid text.
fn member_name<R: Read>(member: &zip::read::ZipFile<'_, R>, path: &Path) -> Result<String> {
    member.name().map(|n| n.into_owned()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidName,
            format!("an archive member name is not valid text: {e}"),
        )
        .with_path(path)
    })
}

/// Checks a member's sizes before anything is allocated for it, and says whether its declared
/// size is backed by as many stored bytes: a stored member's data must lie inside the file and
/// its two sizes agree; a deflated member may claim at most what deflate can produce from its
/// compressed bytes.
fn check_sizes(
    member: &zip::read::ZipFile<'_, File>,
    member_name: &str,
    file_len: u64,
) -> Result<bool> {
    let declared = member.size();
    let compressed = member.compressed_size();
    let data_start = member.data_start().unwrap_or(0);
    if data_start
        .checked_add(compressed)
        .is_none_or(|end| end > file_len)
    {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "member '{member_name}' claims {compressed} stored bytes from byte {data_start}, but the file has {file_len} bytes"
            ),
        ));
    }
    match member.compression() {
        CompressionMethod::Stored if declared == compressed => Ok(true),
        CompressionMethod::Stored => Err(Error::new(
            ErrorKind::Format,
            format!(
                "stored member '{member_name}' claims {declared} bytes but stores {compressed}"
            ),
        )),
        _ if declared
            > compressed
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1024) =>
        {
            Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "member '{member_name}' claims {declared} bytes from {compressed} compressed bytes, more than deflate can produce"
                ),
            ))
        }
        _ => Ok(false),
    }
}

/// One member of an `.npz` read as a stream: its metadata, then its data a piece at a time
/// (decompressed as it goes), then [`MemberStream::finish`], which checks that the data ends
/// where the header says and that the member passes its CRC-32 check. Made by
/// [`NpzReader::stream`]; memory stays bounded by the caller's pieces whatever the member's size.
pub struct MemberStream<'a> {
    member: zip::read::ZipFile<'a, File>,
    member_name: String,
    path: PathBuf,
    meta: ArrayMeta,
    offset: u64,
}

impl MemberStream<'_> {
    /// The member's array metadata, from its `.npy` header.
    pub fn meta(&self) -> &ArrayMeta {
        &self.meta
    }

    /// The member's name, as errors name it.
    pub fn name(&self) -> &str {
        &self.member_name
    }

    /// The offset in the member's bytes (its `.npy` header included) of the next byte
    /// [`MemberStream::read_exact`] reads.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Fills `buf` with the next bytes of the member's data.
    ///
    /// # Errors
    ///
    /// `Truncated` when the data ends first, `Corrupt` for a CRC-32 mismatch, `Format` for a
    /// malformed deflate stream, I/O errors; each names the file, the member and the offset in it.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let at = self.offset;
        self.member.read_exact(buf).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::new(
                    ErrorKind::Truncated,
                    "the member's data ends before the array does",
                )
            } else {
                member_read_error(e)
            };
            let at = crc_place(&e, at);
            self.locate(e, at)
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Checks that the member holds nothing after the data read and that it passes its CRC-32.
    ///
    /// # Errors
    ///
    /// `Format` for bytes after the array's data, `Corrupt` for a CRC-32 mismatch, I/O errors.
    pub fn finish(mut self) -> Result<()> {
        let mut rest = [0u8; 1];
        match self.member.read(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Error::new(
                ErrorKind::Format,
                "the member has bytes after the array data",
            )),
            Err(e) => Err(member_read_error(e)),
        }
        .map_err(|e| {
            let at = crc_place(&e, self.offset);
            self.locate(e, at)
        })
    }

    fn locate(&self, e: Error, offset: u64) -> Error {
        e.at(Location::Member {
            name: self.member_name.clone(),
            offset,
        })
        .with_path(&self.path)
    }
}

/// The place of a streamed member's error: a CRC-32 mismatch is of the whole member, so it is
/// placed at its start (byte 0) as a whole load places it, wherever the stream noticed it.
fn crc_place(e: &Error, at: u64) -> u64 {
    if e.kind() == ErrorKind::Corrupt {
        0
    } else {
        at
    }
}

/// A reader that counts the bytes read through it.
struct Counted<'r, R> {
    inner: &'r mut R,
    bytes: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A member of an `.npz` stored without compression, as [`NpzReader::stored_member`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    /// The member's name in the archive (`a.npy`), as errors name it.
    pub name: String,
    /// The member's bytes in the archive file: a whole `.npy` file, header first.
    pub data: std::ops::Range<u64>,
}

/// Reads the arrays of an `.npz` archive.
pub struct NpzReader {
    archive: ZipArchive<File>,
    path: PathBuf,
    file_len: u64,
    names: Vec<String>,
    /// The archive index of each of `names`' members.
    indices: Vec<usize>,
    /// Members left out by [`NpzReader::open_lenient`]: their names and why.
    unsupported: Vec<(String, String)>,
}

impl NpzReader {
    /// Opens the archive at `path` and validates every member name.
    ///
    /// # Errors
    ///
    /// An error naming the file: `ErrorKind::Format` for bytes that are not a zip archive,
    /// `ErrorKind::InvalidName` for a member name that is unsafe, repeated or escapes the archive
    /// (with the member); I/O errors.
    pub fn open(path: impl AsRef<Path>) -> Result<NpzReader> {
        NpzReader::open_with(path.as_ref(), false)
    }

    /// Opens the archive at `path` as [`NpzReader::open`] does, but a member whose name is
    /// unsafe or escapes the archive (`x:y.npy`, `a\b.npy`, `../c.npy`) is left out of
    /// [`NpzReader::names`] and listed in [`NpzReader::unsupported`] with the reason instead
    /// of failing the whole archive: for listing an archive and reading its other members,
    /// which never uses a member's name as a path.
    ///
    /// # Errors
    ///
    /// As [`NpzReader::open`], but for names that are only unsafe.
    pub fn open_lenient(path: impl AsRef<Path>) -> Result<NpzReader> {
        NpzReader::open_with(path.as_ref(), true)
    }

    /// The members [`NpzReader::open_lenient`] left out: each member's name in the archive and
    /// why it cannot be read.
    pub fn unsupported(&self) -> &[(String, String)] {
        &self.unsupported
    }

    fn open_with(path: &Path, lenient: bool) -> Result<NpzReader> {
        let path = path.to_path_buf();
        let file = ndstore_core::__private::load::open_for_load(&path)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(&path))?
            .len();
        let place = directory_place(&file, file_len);
        let archive = ZipArchive::new(file).map_err(|e| {
            zip_error("not a readable zip archive", e)
                .at(place.clone())
                .with_path(&path)
        })?;
        let mut names = Vec::with_capacity(archive.len().min(4096));
        let mut indices = Vec::with_capacity(names.capacity());
        let mut unsupported = Vec::new();
        let mut seen = HashSet::new();
        for index in 0..archive.len() {
            // The central directory's entry only: a member's own header is read when it loads.
            let member = archive.by_index_data(index).map_err(|e| {
                zip_error("reading the archive directory", e)
                    .at(place.clone())
                    .with_path(&path)
            })?;
            let raw = member.name().map(|n| n.into_owned()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidName,
                    format!("an archive member name is not valid text: {e}"),
                )
                .at_offset(member.central_header_start())
                .with_path(&path)
            })?;
            let name = raw.strip_suffix(".npy").unwrap_or(&raw).to_owned();
            let unsafe_name = validate_name(&raw).and_then(|()| {
                member
                    .enclosed_name()
                    .map(|_| ())
                    .ok_or_else(|| invalid_name(&raw, "it escapes the archive"))
            });
            match unsafe_name {
                Ok(()) => {}
                Err(e) if lenient => {
                    unsupported.push((raw, e.message().to_owned()));
                    continue;
                }
                Err(e) => return Err(e.in_member(&raw).with_path(&path)),
            }
            if !seen.insert(name.clone()) {
                return Err(Error::new(
                    ErrorKind::InvalidName,
                    format!("the archive holds {raw:?} twice"),
                )
                .in_member(&raw)
                .with_path(&path));
            }
            names.push(name);
            indices.push(index);
        }
        Ok(NpzReader {
            archive,
            path,
            file_len,
            names,
            indices,
            unsupported,
        })
    }

    /// The array names, in archive order (member names without `.npy`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn member_index(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|at| self.indices.get(at).copied())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("the archive has no array named {name:?}"),
                )
                .with_path(&self.path)
            })
    }

    /// Whether any member ndstore reads is stored deflated, as `np.savez_compressed` writes
    /// them (read from the central directory; a member that cannot be inspected counts as not).
    pub fn any_deflated(&mut self) -> bool {
        self.indices.clone().into_iter().any(|index| {
            self.archive
                .by_index_raw(index)
                .is_ok_and(|m| m.compression() == CompressionMethod::Deflated)
        })
    }

    /// Opens the member holding array `name`, with the member's own name.
    fn member(&mut self, name: &str) -> Result<(zip::read::ZipFile<'_, File>, String)> {
        let index = self.member_index(name)?;
        let header_start = self
            .archive
            .by_index_data(index)
            .map(|entry| entry.header_start())
            .unwrap_or(0);
        // The member's own spelling, so an error before it opens (zip refuses an encrypted
        // member, say) still names it.
        let spelled = match self.archive.name_for_index(index) {
            Some(Ok(spelled)) => spelled.into_owned(),
            _ => name.to_owned(),
        };
        let member = self.archive.by_index(index).map_err(|e| {
            // The place is the member's local header in the archive: its bytes were not reached.
            zip_error(&format!("opening member '{spelled}'"), e)
                .at_offset(header_start)
                .with_path(&self.path)
        })?;
        let member_name = member_name(&member, &self.path)?;
        Ok((member, member_name))
    }

    /// Reads only the metadata of array `name`, decompressing just its header.
    ///
    /// # Errors
    ///
    /// `ErrorKind::NotFound` for a name the archive does not hold; the errors of a damaged member
    /// header, with the member and the offset inside it.
    pub fn read_meta(&mut self, name: &str) -> Result<ArrayMeta> {
        let path = self.path.clone();
        let (mut member, member_name) = self.member(name)?;
        npy::read_header_from(&mut member).map_err(|e| e.in_member(&member_name).with_path(&path))
    }

    /// Opens array `name` for reading as a stream, its header read and its sizes checked as
    /// [`NpzReader::load_dyn_with`] checks them; see [`MemberStream`].
    ///
    /// # Errors
    ///
    /// `ErrorKind::NotFound` for a name the archive does not hold; the errors of a damaged member
    /// header or of sizes the archive cannot justify, with the member and the offset inside it.
    pub fn stream(&mut self, name: &str) -> Result<MemberStream<'_>> {
        let path = self.path.clone();
        let file_len = self.file_len;
        let (mut member, member_name) = self.member(name)?;
        check_sizes(&member, &member_name, file_len).map_err(|e| {
            e.at_offset(member.data_start().unwrap_or(0))
                .with_path(&path)
        })?;
        let mut counted = Counted {
            inner: &mut member,
            bytes: 0,
        };
        let meta = npy::read_header_from(&mut counted)
            .map_err(|e| e.in_member(&member_name).with_path(&path))?;
        let header = counted.bytes;
        Ok(MemberStream {
            member,
            member_name,
            path,
            meta,
            offset: header,
        })
    }

    /// Where the bytes of array `name` lie in the archive file when its member is stored
    /// (neither compressed nor encrypted): a plain `.npy` file at an offset, which a caller can
    /// read in part (a few rows) without reading the rest. `None` for a deflated member, which
    /// can only be read in order ([`NpzReader::stream`]). A part read so checks no CRC-32:
    /// only a read of the whole member can.
    ///
    /// # Errors
    ///
    /// `ErrorKind::NotFound` for a name the archive does not hold; `ErrorKind::Truncated` or
    /// `ErrorKind::Format` naming the member for sizes the archive cannot justify; the errors
    /// of opening the member.
    pub fn stored_member(&mut self, name: &str) -> Result<Option<StoredMember>> {
        let path = self.path.clone();
        let file_len = self.file_len;
        let (member, member_name) = self.member(name)?;
        let stored = check_sizes(&member, &member_name, file_len).map_err(|e| {
            e.at_offset(member.data_start().unwrap_or(0))
                .with_path(&path)
        })?;
        // A member whose data cannot be placed is read in order, as a deflated one is.
        let Some(data_start) = member.data_start() else {
            return Ok(None);
        };
        if !stored || member.encrypted() {
            return Ok(None);
        }
        // Inside the file, as `check_sizes` found.
        let end = data_start.saturating_add(member.size());
        Ok(Some(StoredMember {
            name: member_name,
            data: data_start..end,
        }))
    }

    /// Loads array `name` with its metadata.
    ///
    /// # Errors
    ///
    /// As [`NpzReader::load_dyn_with`].
    pub fn load_dyn(&mut self, name: &str) -> Result<(ArrayMeta, DynArray)> {
        self.load_dyn_with(name, &LoadOptions::default())
    }

    /// Loads array `name` with its metadata, within `options` (a memory limit, say).
    ///
    /// Sizes are checked before anything is allocated: a stored member's data must lie inside
    /// the file and its sizes agree; a deflated member may claim at most what deflate can
    /// produce from its compressed bytes (about 1032:1), and its buffer grows only as it
    /// decompresses. The member's CRC-32 is checked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown name; [`ErrorKind::Truncated`],
    /// [`ErrorKind::TooLarge`] or [`ErrorKind::Format`] naming the member for sizes the archive
    /// cannot justify; [`ErrorKind::Corrupt`] for a CRC-32 mismatch; [`ErrorKind::OutOfMemory`]
    /// over `options.memory_limit`.
    pub fn load_dyn_with(
        &mut self,
        name: &str,
        options: &LoadOptions,
    ) -> Result<(ArrayMeta, DynArray)> {
        let path = self.path.clone();
        let file_len = self.file_len;
        let (mut member, member_name) = self.member(name)?;
        let declared = member.size();
        let backed = check_sizes(&member, &member_name, file_len).map_err(|e| {
            e.at_offset(member.data_start().unwrap_or(0))
                .with_path(&path)
        })?;
        let result = npy::read_dyn_from_limited(&mut member, options, Some(declared), backed)
            .and_then(|loaded| {
                // Reading to the end makes the zip reader check the member's CRC-32.
                let mut rest = [0u8; 1];
                match member.read(&mut rest) {
                    Ok(0) => Ok(loaded),
                    Ok(_) => Err(Error::new(
                        ErrorKind::Format,
                        "the member has bytes after the array data",
                    )),
                    Err(e) => Err(member_read_error(e)),
                }
            })
            .map_err(|e| match e.io_error() {
                Some(io) if is_crc_error(io) => {
                    Error::new(ErrorKind::Corrupt, "the member fails its CRC-32 check")
                }
                _ => e,
            });
        result.map_err(|e| e.in_member(&member_name).with_path(&path))
    }

    /// Loads array `name` as `T` with dimensionality `D`.
    ///
    /// # Errors
    ///
    /// As `NpzReader::load_dyn`, and `ErrorKind::TypeMismatch` when the array holds another element
    /// type or number of dimensions.
    pub fn load<T: Element, D: Dimension>(&mut self, name: &str) -> Result<Array<T, D>> {
        let (meta, array) = self.load_dyn(name)?;
        let ndim = meta.shape.len();
        let typed = array
            .into_typed::<T>()
            .map_err(|e| e.with_path(&self.path))?;
        typed.into_dimensionality::<D>().map_err(|_| {
            Error::new(
                ErrorKind::TypeMismatch,
                format!("array {name:?} is {ndim}-d, another dimensionality was requested"),
            )
            .with_path(&self.path)
        })
    }
}

/// Loads every array of an `.npz` archive, in archive order.
///
/// # Errors
///
/// The errors of `NpzReader::open` and of loading each member (`NpzReader::load_dyn`).
pub fn load_npz(path: impl AsRef<Path>) -> Result<Vec<(String, ArrayMeta, DynArray)>> {
    let mut reader = NpzReader::open(path)?;
    let names = reader.names().to_vec();
    names
        .into_iter()
        .map(|name| {
            reader
                .load_dyn(&name)
                .map(|(meta, array)| (name, meta, array))
        })
        .collect()
}

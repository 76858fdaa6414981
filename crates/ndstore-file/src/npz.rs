//! `.npz` archives: several named arrays in one zip file, stored or deflated, zip64 when large,
//! with member names validated and decompression bounded by what the archive can justify.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array, ArrayBase, Data, Dimension};
use ndstore_core::{
    ArrayMeta, Commit, DynArray, Element, Error, ErrorKind, OutputFile, Result, SaveOptions,
    with_dyn_array,
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
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.contains('\0') {
        return Err("the name contains a NUL byte".to_owned());
    }
    if name.contains('\\') {
        return Err("the name contains a backslash".to_owned());
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return Err("the name is an absolute path".to_owned());
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("the name has an empty, '.' or '..' path component".to_owned());
    }
    Ok(())
}

fn invalid_name(name: &str, why: String) -> Error {
    Error::new(
        ErrorKind::InvalidName,
        format!("unsafe array name {name:?}: {why}"),
    )
}

/// Writes an `.npz` archive array by array, published atomically on [`Commit::commit`].
///
/// Dropped without commit (an error, a panic), the target keeps its old content and no
/// temporary file remains.
pub struct NpzWriter {
    out: OutputFile,
    zip: Option<ZipWriter<File>>,
    names: HashSet<String>,
    compression: Compression,
    options: SaveOptions,
}

impl NpzWriter {
    /// Starts an archive at `path`.
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
            .map_err(|e| Error::io("duplicating a descriptor", e))?;
        Ok(NpzWriter {
            zip: Some(ZipWriter::new(file)),
            out,
            names: HashSet::new(),
            compression,
            options: *options,
        })
    }

    fn target(&self) -> PathBuf {
        self.out.target().to_path_buf()
    }

    /// Adds `array` as member `NAME.npy`; `np.load(path)[NAME]` reads it back.
    pub fn add<A, S, D>(&mut self, name: &str, array: &ArrayBase<S, D>) -> Result<()>
    where
        A: Element,
        S: Data<Elem = A>,
        D: Dimension,
    {
        self.add_view(name, array.view().into_dyn())
    }

    /// Adds a runtime-typed array as member `NAME.npy`.
    pub fn add_dyn(&mut self, name: &str, array: &DynArray) -> Result<()> {
        with_dyn_array!(array, a => self.add_view(name, a.view()))
    }

    fn add_view<T: Element>(&mut self, name: &str, view: ndarray::ArrayViewD<'_, T>) -> Result<()> {
        let target = self.target();
        validate_name(name).map_err(|why| invalid_name(name, why).with_path(&target))?;
        if !self.names.insert(name.to_owned()) {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("the archive already has an array named {name:?}"),
            )
            .with_path(&target));
        }
        let size = (view.len() as u64).saturating_mul(std::mem::size_of::<T>() as u64);
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
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| zip_error("starting a member", e).with_path(&target))?;
        npy::write_to(zip, &view, self.options.effective_byte_order())
            .map_err(|e| e.in_member(&format!("{name}.npy")).with_path(&target))
    }
}

impl Commit for NpzWriter {
    fn commit(mut self) -> Result<()> {
        let target = self.target();
        if let Some(zip) = self.zip.take() {
            let file = zip
                .finish()
                .map_err(|e| zip_error("finishing the archive", e).with_path(&target))?;
            ndstore_core::os::close_file(file)
                .map_err(|e| Error::io("close failed", e).with_path(&target))?;
        }
        self.out.finish()
    }
}

/// Saves named arrays as an `.npz` archive, atomically and durably unless `options` say otherwise.
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

/// Reads the arrays of an `.npz` archive.
pub struct NpzReader {
    archive: ZipArchive<File>,
    path: PathBuf,
    names: Vec<String>,
}

impl NpzReader {
    /// Opens the archive at `path` and validates every member name.
    pub fn open(path: impl AsRef<Path>) -> Result<NpzReader> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io("cannot open", e).with_path(&path))?;
        let mut archive = ZipArchive::new(file)
            .map_err(|e| zip_error("not a readable zip archive", e).with_path(&path))?;
        let mut names = Vec::with_capacity(archive.len().min(4096));
        let mut seen = HashSet::new();
        for index in 0..archive.len() {
            let member = archive
                .by_index_raw(index)
                .map_err(|e| zip_error("reading the archive directory", e).with_path(&path))?;
            let raw = member_name(&member, &path)?;
            let name = raw.strip_suffix(".npy").unwrap_or(&raw).to_owned();
            validate_name(&raw)
                .and_then(|()| {
                    member
                        .enclosed_name()
                        .map(|_| ())
                        .ok_or_else(|| "it escapes the archive".to_owned())
                })
                .map_err(|why| invalid_name(&raw, why).in_member(&raw).with_path(&path))?;
            if !seen.insert(name.clone()) {
                return Err(Error::new(
                    ErrorKind::InvalidName,
                    format!("the archive holds {raw:?} twice"),
                )
                .in_member(&raw)
                .with_path(&path));
            }
            names.push(name);
        }
        Ok(NpzReader {
            archive,
            path,
            names,
        })
    }

    /// The array names, in archive order (member names without `.npy`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn member_index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("the archive has no array named {name:?}"),
            )
            .with_path(&self.path)
        })
    }

    /// Opens the member holding array `name`, with the member's own name.
    fn member(&mut self, name: &str) -> Result<(zip::read::ZipFile<'_, File>, String)> {
        let index = self.member_index(name)?;
        let member = self
            .archive
            .by_index(index)
            .map_err(|e| zip_error("opening a member", e).with_path(&self.path))?;
        let member_name = member_name(&member, &self.path)?;
        Ok((member, member_name))
    }

    /// Reads only the metadata of array `name`, decompressing just its header.
    pub fn read_meta(&mut self, name: &str) -> Result<ArrayMeta> {
        let path = self.path.clone();
        let (mut member, member_name) = self.member(name)?;
        npy::read_header_from(&mut member).map_err(|e| e.in_member(&member_name).with_path(&path))
    }

    /// Loads array `name` with its metadata.
    pub fn load_dyn(&mut self, name: &str) -> Result<(ArrayMeta, DynArray)> {
        let path = self.path.clone();
        let (mut member, member_name) = self.member(name)?;
        let declared = member.size();
        let compressed = member.compressed_size();
        let plausible = match member.compression() {
            CompressionMethod::Stored => declared == compressed,
            _ => {
                declared
                    <= compressed
                        .saturating_mul(MAX_DEFLATE_RATIO)
                        .saturating_add(1024)
            }
        };
        if !plausible {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("the member claims {declared} bytes from {compressed} stored bytes, more than its compression can produce"),
            )
            .in_member(&member_name)
            .with_path(&path));
        }
        let result = npy::read_dyn_from_limited(
            &mut member,
            &ndstore_core::LoadOptions::default(),
            Some(declared),
        )
        .and_then(|loaded| {
            // Reading to the end makes the zip reader check the member's CRC.
            let mut rest = [0u8; 1];
            match member.read(&mut rest) {
                Ok(0) => Ok(loaded),
                Ok(_) => Err(Error::new(
                    ErrorKind::Format,
                    "the member has bytes after the array data",
                )),
                Err(e) => Err(Error::io("the member fails its checksum", e)),
            }
        });
        result.map_err(|e| e.in_member(&member_name).with_path(&path))
    }

    /// Loads array `name` as `T` with dimensionality `D`.
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

//! The harness proves it can fail, on every run: for each check of the catalogue, a backend
//! broken on purpose in one way that check exists to catch, on which the check must FAIL.
//!
//! Every broken variant is the same small `.npy` backend built on ndstore-core's own pieces
//! (`OutputFile`, the `.npy` header, the element codec) with exactly one flaw. Without a flaw it
//! is [`reference()`], which the unit tests run as the control: the checks pass on it, so each
//! FAIL below comes from the flaw and nothing else.
//!
//! `cargo xtask conformance` runs every variant through its check (the `self_test` test of this
//! crate) and the report shows them; a check that passes its broken variant fails the run.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ndstore_core::__private::npy_header;
use ndstore_core::{
    ArrayMeta, ArrayWriter, Backend, ByteOrder, Capabilities, CrashGuarantee, DType, DTypeKind,
    Durability, Durable, DynArray, Error, ErrorKind, LoadOptions, Order, OutputFile, Replace,
    Result, SaveOptions, with_dtype_kind, with_dyn_array,
};

mod chunked;

use crate::check::Check;
use crate::fixtures::{self, Fixtures, Hostile, PythonInterop, Realistic};
use crate::report::{CheckResult, SelfTest, Status};

/// The one thing a variant does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    /// Nothing: the control.
    None,
    DropsByteOrder,
    CommitLosesTail,
    DropPublishes,
    PanicKeepsAppended,
    OverwritesInPlace,
    RenameWithoutFsync,
    IgnoresWriteErrors,
    AppendNotPoisoned,
    SyncSwallowsEio,
    FlushedCommitForgetsPoison,
    AllocatesDeclaredSize,
    PanicsOnShortFiles,
    OpensTwice,
    TemporaryNotPrivate,
    ReplacesProtectedFiles,
    SwapsStoredBytes,
    /// Not a flaw: arrays as directories of chunks, replaced chunk by chunk, declared per chunk.
    Chunked,
    ChunkedMetadataFirst,
    ChunkedClaimsAtomic,
}

impl Flaw {
    /// True for the chunked store's variants (see [`chunked`]).
    fn chunked(self) -> bool {
        matches!(
            self,
            Flaw::Chunked | Flaw::ChunkedMetadataFirst | Flaw::ChunkedClaimsAtomic
        )
    }
}

/// A broken backend and the check that must fail on it.
#[derive(Debug)]
pub struct Variant {
    /// Its name, as the report shows it (`broken-...`).
    pub name: &'static str,
    /// The check that must FAIL on it (none for the control).
    pub check: Option<Check>,
    /// What is broken, in a sentence.
    pub defect: &'static str,
    flaw: Flaw,
}

/// Every broken variant, in catalogue order of the check each targets.
pub const VARIANTS: [Variant; 18] = [
    Variant {
        name: "broken-drops-byte-order",
        check: Some(Check::RoundTrip),
        defect: "saves every array in the native byte order, whatever it is asked for",
        flaw: Flaw::DropsByteOrder,
    },
    Variant {
        name: "broken-commit-loses-tail",
        check: Some(Check::FlushOnClose),
        defect: "a writer's commit publishes the file without the rows appended since its last flush",
        flaw: Flaw::CommitLosesTail,
    },
    Variant {
        name: "broken-drop-publishes",
        check: Some(Check::FlushOnDrop),
        defect: "an uncommitted writer, dropped, publishes the rows it has",
        flaw: Flaw::DropPublishes,
    },
    Variant {
        name: "broken-panic-keeps-appended",
        check: Some(Check::FlushOnDrop),
        defect: "an in-place writer dropped during a panic keeps the rows it wrote out since its last flush, and its header counts them",
        flaw: Flaw::PanicKeepsAppended,
    },
    Variant {
        name: "broken-chunked-metadata-first",
        check: Some(Check::Kill),
        defect: "a chunked store that declares the per-chunk guarantee writes an array's metadata before its chunks, so a new array appears before its data",
        flaw: Flaw::ChunkedMetadataFirst,
    },
    Variant {
        name: "broken-chunked-claims-atomic",
        check: Some(Check::Kill),
        defect: "a chunked store that replaces an array chunk by chunk declares atomic replace, which a kill between two chunks breaks",
        flaw: Flaw::ChunkedClaimsAtomic,
    },
    Variant {
        name: "broken-overwrites-in-place",
        check: Some(Check::Kill),
        defect: "a save truncates the target and rewrites it (as np.save does) while declaring atomic replace",
        flaw: Flaw::OverwritesInPlace,
    },
    Variant {
        name: "broken-rename-without-fsync",
        check: Some(Check::PowerLoss),
        defect: "a save renames its temporary over the target without fsyncing the data first",
        flaw: Flaw::RenameWithoutFsync,
    },
    Variant {
        name: "broken-ignores-write-errors",
        check: Some(Check::InjectedIo),
        defect: "saves and a writer's appends ignore the errors of their writes",
        flaw: Flaw::IgnoresWriteErrors,
    },
    Variant {
        name: "broken-append-not-poisoned",
        check: Some(Check::InjectedIo),
        defect: "a writer whose append fails part-way returns the error but keeps going: the partial rows stay, the row count includes them, and later appends and the commit return Ok",
        flaw: Flaw::AppendNotPoisoned,
    },
    Variant {
        name: "broken-sync-swallows-eio",
        check: Some(Check::FsyncFailure),
        defect: "a writer's sync returns Ok when fsync fails, and keeps going",
        flaw: Flaw::SyncSwallowsEio,
    },
    Variant {
        name: "broken-flushed-commit-forgets-poison",
        check: Some(Check::FsyncFailure),
        defect: "a Durability::Flushed writer's commit, which does not sync, returns Ok after a sync of the writer failed (synced writers are right)",
        flaw: Flaw::FlushedCommitForgetsPoison,
    },
    Variant {
        name: "broken-allocates-declared-size",
        check: Some(Check::BadInput),
        defect: "a load allocates the size the header declares before checking that the file holds it",
        flaw: Flaw::AllocatesDeclaredSize,
    },
    Variant {
        name: "broken-panics-on-short-files",
        check: Some(Check::BadInput),
        defect: "a load slices the data out of the file without checking its length",
        flaw: Flaw::PanicsOnShortFiles,
    },
    Variant {
        name: "broken-opens-twice",
        check: Some(Check::Concurrency),
        defect: "a load reads the header from one open of the path and the data from a second",
        flaw: Flaw::OpensTwice,
    },
    Variant {
        name: "broken-temporary-not-private",
        check: Some(Check::Security),
        defect: "a save creates its temporary without O_EXCL, with the default mode, and never gives it the target's mode",
        flaw: Flaw::TemporaryNotPrivate,
    },
    Variant {
        name: "broken-replaces-protected-files",
        check: Some(Check::Security),
        defect: "a save replaces a file the caller may not write and one whose owner it cannot keep, as if asked to (replace_read_only and allow_owner_change always on)",
        flaw: Flaw::ReplacesProtectedFiles,
    },
    Variant {
        name: "broken-swaps-stored-bytes",
        check: Some(Check::Interop),
        defect: "files store their data in the other byte order from the one their header names (and loads swap it back, so round trips hold)",
        flaw: Flaw::SwapsStoredBytes,
    },
];

/// The control: the same backend without a flaw.
pub const REFERENCE: Variant = Variant {
    name: "reference",
    check: None,
    defect: "none",
    flaw: Flaw::None,
};

/// The control of the chunked variants: the chunked store done right (chunks first, the
/// metadata last), declaring the per-chunk guarantee.
pub const CHUNKED_REFERENCE: Variant = Variant {
    name: "reference-chunked",
    check: None,
    defect: "none",
    flaw: Flaw::Chunked,
};

/// The control backend.
pub fn reference() -> &'static Variant {
    &REFERENCE
}

/// The variant named `name` (the controls included).
pub fn variant(name: &str) -> Option<&'static Variant> {
    VARIANTS
        .iter()
        .chain([&REFERENCE, &CHUNKED_REFERENCE])
        .find(|v| v.name == name)
}

/// The fixtures of every variant: the `.npy` hostile inputs, a realistic `.npy`, and numpy.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelfTestFixtures;

impl Fixtures for SelfTestFixtures {
    fn hostile_inputs(&self) -> Vec<Hostile> {
        fixtures::hostile_npy()
    }

    fn realistic_files(
        &self,
        backend: &dyn Backend,
        dir: &Path,
    ) -> std::result::Result<Vec<Realistic>, String> {
        Ok(vec![fixtures::realistic_npy(backend, dir)?])
    }

    fn python_interop(&self) -> Option<PythonInterop> {
        Some(PythonInterop {
            modules: &[],
            load: "arr = np.load(path)",
            save: "np.save(path, arr)",
        })
    }

    /// The chunked variants' chunks (the others declare no per-chunk guarantee, so CK never
    /// asks them).
    fn chunk_shape(&self, meta: &ArrayMeta) -> Option<Vec<usize>> {
        (meta.shape.len() == 1).then(|| vec![chunked::CHUNK_ELEMENTS])
    }
}

/// The variable naming the directory self-test results are recorded in (the same one the
/// backends' results go to).
const OUT_ENV: &str = "NDSTORE_CONFORMANCE_OUT";

/// Runs variant `name`'s check on it, records the self-test for the report when
/// `NDSTORE_CONFORMANCE_OUT` is set, and returns it.
///
/// # Panics
///
/// When there is no broken variant of that name, or the result cannot be recorded: both
/// mistakes in the test that calls it.
pub fn run(name: &str) -> SelfTest {
    let variant = variant(name).unwrap_or_else(|| panic!("no broken variant named {name}"));
    let check = variant
        .check
        .unwrap_or_else(|| panic!("{name} is the control, which no check must fail on"));
    let result = crate::check(check, variant, &SelfTestFixtures);
    let test = SelfTest::from_result(variant.name, variant.defect, &result);
    if let Some(dir) = std::env::var_os(OUT_ENV) {
        let dir = PathBuf::from(dir).join("self-test");
        let json = serde_json::to_string_pretty(&test).unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("{name}.json")), json))
        {
            panic!("cannot record the self-test {name}: {e}");
        }
    }
    println!(
        "self-test {check} on {}: {:?} — {}",
        variant.name, result.status, result.detail
    );
    test
}

/// Runs variant `name`'s check and fails the calling test unless the check FAILED, as it must
/// (a skip passes only when skips are allowed).
///
/// # Panics
///
/// When the check did not fail on the broken variant.
pub fn must_fail(name: &str) {
    let test = run(name);
    if test.status == Status::Skip && crate::skips_allowed() {
        return;
    }
    assert!(
        test.caught,
        "{} did not fail on {} ({}): {:?} {}",
        test.check, test.variant, test.defect, test.status, test.detail
    );
}

/// Runs `check` on the control and returns its result.
pub fn control(check: Check) -> CheckResult {
    crate::check(check, reference(), &SelfTestFixtures)
}

/// Runs `check` on the chunked store's control and returns its result.
pub fn chunked_control(check: Check) -> CheckResult {
    crate::check(check, &CHUNKED_REFERENCE, &SelfTestFixtures)
}

/// The entry point of the self-tests' child processes: the variant is named in the child's
/// environment.
pub fn child_entry() {
    let Ok(name) = std::env::var(crate::child::BACKEND_ENV) else {
        return;
    };
    if let Some(variant) = variant(&name) {
        crate::child::entry(variant, &SelfTestFixtures);
    } else if std::env::var_os(crate::child::TASK_ENV).is_some() {
        crate::protocol::Reply::Error(format!("no broken variant named {name:?}")).say();
        std::process::exit(2);
    }
}

/// Writes `bytes` in at least 64 KiB and at most 16 pieces (so a fault injected into the k-th
/// write lands inside the data, while a 64 MiB save stays a few writes, as with real backends:
/// CP's crash states grow with the writes a save makes), ignoring their errors when
/// `ignore_errors`.
fn write_pieces(file: &mut File, bytes: &[u8], ignore_errors: bool, path: &Path) -> Result<()> {
    for piece in bytes.chunks((bytes.len() / 16).max(64 << 10)) {
        let written = file.write_all(piece);
        if !ignore_errors {
            written.map_err(|e| Error::io("write failed", e).with_path(path))?;
        }
    }
    Ok(())
}

/// A temporary beside `target` with a name of its own (not ndstore's pattern).
fn side_temp(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.broken-tmp", std::process::id()))
}

impl Variant {
    /// The bytes of a `.npy` file holding `array` in `byte_order`, the data stored swapped when
    /// the flaw says so.
    fn encode(&self, array: &DynArray, byte_order: ByteOrder) -> Result<Vec<u8>> {
        let meta = ArrayMeta::new(
            DType::new(array.kind(), byte_order),
            array.shape().to_vec(),
            array.layout_order(),
        );
        let stored = if self.flaw == Flaw::SwapsStoredBytes {
            match byte_order {
                ByteOrder::Little => ByteOrder::Big,
                ByteOrder::Big => ByteOrder::Little,
                other => other,
            }
        } else {
            meta.dtype.byte_order
        };
        let mut bytes = npy_header::encode(&meta);
        with_dyn_array!(array, |a| ndstore_core::__private::codec::write_elements(
            &a.view(),
            meta.order,
            stored,
            &mut |b| {
                bytes.extend_from_slice(b);
                Ok(())
            }
        ))
        .map_err(|e| Error::io("encoding the data", e))?;
        Ok(bytes)
    }

    fn load_data(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        let at = |e: Error| e.with_path(path);
        let mut file = File::open(path).map_err(|e| at(Error::io("cannot open", e)))?;
        let header = npy_header::read(&mut file, options.max_header_len).map_err(at)?;
        let meta = header.meta;
        let len = meta.byte_len().map_err(at)?;
        // Broken on purpose (one flaw): the buffer the header asks for, before any check.
        let early = (self.flaw == Flaw::AllocatesDeclaredSize).then(|| vec![0u8; len]);
        if self.flaw == Flaw::PanicsOnShortFiles {
            // Broken on purpose: slices without checking the length.
            let bytes = std::fs::read(path).map_err(|e| at(Error::io("read failed", e)))?;
            let start = header.data_offset as usize;
            return self.decode(&meta, &bytes[start..start + len], path);
        }
        if self.flaw == Flaw::OpensTwice {
            // Broken on purpose: the data comes from a second open, which may be another file.
            drop(file);
            std::thread::sleep(std::time::Duration::from_millis(2));
            file = File::open(path).map_err(|e| at(Error::io("cannot open", e)))?;
            file.seek(SeekFrom::Start(header.data_offset))
                .map_err(|e| at(Error::io("seek failed", e)))?;
        }
        let file_len = file
            .metadata()
            .map_err(|e| at(Error::io("cannot inspect", e)))?
            .len();
        let end = header.data_offset.saturating_add(len as u64);
        if file_len < end {
            return Err(at(Error::new(
                ErrorKind::Truncated,
                format!("the data needs {len} bytes, the file ends at {file_len}"),
            )
            .at_offset(file_len)));
        }
        let mut data = match early {
            Some(buffer) => std::hint::black_box(buffer),
            None => {
                options.admit(len as u64).map_err(at)?;
                ndstore_core::__private::load::try_zeroed_vec::<u8>(len, Some(path))?
            }
        };
        file.read_exact(&mut data)
            .map_err(|e| at(Error::io("read failed", e)))?;
        self.decode(&meta, &data, path)
    }

    fn decode(&self, meta: &ArrayMeta, data: &[u8], path: &Path) -> Result<(ArrayMeta, DynArray)> {
        let array = with_dtype_kind!(meta.dtype.kind, |T| {
            let count = meta.element_count().map_err(|e| e.with_path(path))?;
            let mut raw: Vec<<T as ndstore_core::Element>::Raw> =
                ndstore_core::__private::codec::alloc_raw(count).map_err(|e| e.with_path(path))?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(raw.as_mut_slice());
            if bytes.len() != data.len() {
                return Err(Error::new(ErrorKind::Truncated, "the data is short")
                    .at_offset(data.len() as u64)
                    .with_path(path));
            }
            bytes.copy_from_slice(data);
            if self.flaw == Flaw::SwapsStoredBytes {
                // Broken on purpose: undoes the swap the save made, so round trips hold.
                ndstore_core::__private::codec::swap_bytes_in_place(
                    bytes,
                    meta.dtype.kind.swap_width(),
                );
            }
            ndstore_core::__private::codec::array_from_raw::<T>(meta, raw)
                .map(DynArray::from)
                .map_err(|e| e.with_path(path))?
        });
        Ok((meta.clone(), array))
    }
}

impl Backend for Variant {
    fn name(&self) -> &'static str {
        self.name
    }

    fn extension(&self) -> &'static str {
        "npy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dtypes: vec![
                DTypeKind::Bool,
                DTypeKind::U8,
                DTypeKind::I32,
                DTypeKind::I64,
                DTypeKind::F64,
            ],
            both_byte_orders: true,
            fortran_order: true,
            max_ndim: 32,
            bit_exact: true,
            partial_io: false,
            streaming_append: true,
            memory_map: false,
            compression: false,
            crash: if matches!(self.flaw, Flaw::Chunked | Flaw::ChunkedMetadataFirst) {
                CrashGuarantee::PerChunk
            } else {
                CrashGuarantee::AtomicReplace
            },
            in_place: None,
            interop: true,
        }
    }

    fn save(&self, path: &Path, array: &DynArray, options: &SaveOptions) -> Result<()> {
        if self.flaw.chunked() {
            return chunked::save(path, array, self.flaw == Flaw::ChunkedMetadataFirst);
        }
        let forced;
        let options = if self.flaw == Flaw::ReplacesProtectedFiles {
            // Broken on purpose: the careful replace policy's opt-ins, taken without asking.
            forced = options.replace_read_only().allow_owner_change();
            &forced
        } else {
            options
        };
        let byte_order = if self.flaw == Flaw::DropsByteOrder {
            ByteOrder::native()
        } else {
            options.effective_byte_order()
        };
        let bytes = self.encode(array, byte_order)?;
        let io = |what: &'static str| move |e: std::io::Error| Error::io(what, e).with_path(path);
        match self.flaw {
            Flaw::OverwritesInPlace => {
                let mut file = File::create(path).map_err(io("cannot create"))?;
                for piece in bytes.chunks(4096) {
                    file.write_all(piece).map_err(io("write failed"))?;
                }
                Ok(())
            }
            Flaw::RenameWithoutFsync | Flaw::TemporaryNotPrivate => {
                let temp = side_temp(path);
                let mut file = File::create(&temp).map_err(io("cannot create"))?;
                write_pieces(&mut file, &bytes, false, path)?;
                if self.flaw == Flaw::TemporaryNotPrivate {
                    file.sync_all().map_err(io("fsync failed"))?;
                }
                drop(file);
                std::fs::rename(&temp, path).map_err(io("rename failed"))?;
                ndstore_core::__private::atomic::sync_dir(
                    ndstore_core::__private::atomic::parent_dir(path),
                )
            }
            _ => {
                let mut out = OutputFile::create(path, options)?;
                let ignore = self.flaw == Flaw::IgnoresWriteErrors;
                write_pieces(out.file()?, &bytes, ignore, path)?;
                out.finish()
            }
        }
    }

    fn load_with(&self, path: &Path, options: &LoadOptions) -> Result<(ArrayMeta, DynArray)> {
        if self.flaw.chunked() {
            let (meta, data) = chunked::load_bytes(path)?;
            return self.decode(&meta, &data, path);
        }
        self.load_data(path, options)
    }

    fn load_as(&self, path: &Path, kind: DTypeKind) -> Result<DynArray> {
        let meta = self.read_meta(path)?;
        if meta.dtype.kind != kind {
            return Err(
                ndstore_core::__private::array::type_mismatch(meta.dtype.kind, kind)
                    .with_path(path),
            );
        }
        self.load(path).map(|(_, array)| array)
    }

    fn read_meta(&self, path: &Path) -> Result<ArrayMeta> {
        if self.flaw.chunked() {
            return chunked::read_meta(path).map(|(meta, _)| meta);
        }
        let mut file = File::open(path).map_err(|e| Error::io("cannot open", e).with_path(path))?;
        npy_header::read(&mut file, npy_header::DEFAULT_MAX_HEADER_LEN)
            .map(|h| h.meta)
            .map_err(|e| e.with_path(path))
    }

    fn writer(
        &self,
        path: &Path,
        dtype: DType,
        row_shape: &[usize],
        options: &SaveOptions,
    ) -> Result<Box<dyn ArrayWriter>> {
        let meta = ArrayMeta::new(
            DType::new(dtype.kind, options.byte_order_for(dtype)?),
            [&[0], row_shape].concat(),
            Order::C,
        );
        let mut out = OutputFile::create(path, options)?;
        let header = npy_header::encode(&meta);
        write_pieces(out.file()?, &header, false, path)?;
        Ok(Box::new(RowWriter {
            flaw: self.flaw,
            path: path.to_path_buf(),
            out: Some(out),
            replace: options.replace,
            durability: options.durability,
            meta,
            header_len: header.len(),
            pending: Vec::new(),
            rows: 0,
            rows_out: 0,
            flushed_rows: 0,
            flushed_len: header.len() as u64,
            poisoned: false,
        }))
    }
}

/// The variants' streaming writer: rows buffered, written out with the header's row count
/// rewritten in place (its length never changes: numpy pads the growth axis), published on
/// commit. A failed write or sync poisons it: every later call and the commit fail, and an
/// in-place file is cut back to its last flush (as it is when the writer is dropped during a
/// panic).
struct RowWriter {
    flaw: Flaw,
    path: PathBuf,
    out: Option<OutputFile>,
    replace: Replace,
    durability: Durability,
    meta: ArrayMeta,
    header_len: usize,
    pending: Vec<u8>,
    rows: usize,
    rows_out: usize,
    /// The rows and file length of the last `flush` or `sync`: what an in-place file goes back to.
    flushed_rows: usize,
    flushed_len: u64,
    poisoned: bool,
}

impl RowWriter {
    fn finished(&self) -> Error {
        Error::new(ErrorKind::InvalidInput, "the writer is finished").with_path(&self.path)
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned {
            Err(ndstore_core::__private::atomic::poisoned_error(&self.path))
        } else {
            Ok(())
        }
    }

    /// Writes the buffered rows and rewrites the header with their count; a failure poisons
    /// the writer.
    fn write_out(&mut self) -> Result<()> {
        self.check_poison()?;
        let written = self.write_out_unpoisoned();
        if written.is_err() && self.flaw != Flaw::AppendNotPoisoned {
            self.poison();
        }
        written
    }

    fn write_out_unpoisoned(&mut self) -> Result<()> {
        let ignore = self.flaw == Flaw::IgnoresWriteErrors;
        let path = self.path.clone();
        let pending = std::mem::take(&mut self.pending);
        let header = self.header_for(self.rows)?;
        let finished = self.finished();
        let file = self.out.as_mut().ok_or(finished)?.file()?;
        write_pieces(file, &pending, ignore, &path)?;
        let rewritten = file.write_all_at(&header, 0);
        if !ignore {
            rewritten.map_err(|e| Error::io("rewriting the header", e).with_path(&path))?;
        }
        self.rows_out = self.rows;
        Ok(())
    }

    fn header_for(&self, rows: usize) -> Result<Vec<u8>> {
        let mut meta = self.meta.clone();
        meta.shape[0] = rows;
        let header = npy_header::encode(&meta);
        if header.len() == self.header_len {
            Ok(header)
        } else {
            Err(
                Error::new(ErrorKind::TooLarge, "the row count outgrew the header")
                    .with_path(&self.path),
            )
        }
    }

    /// Marks the writer poisoned and cuts an in-place file back to its last flush.
    fn poison(&mut self) {
        self.poisoned = true;
        if self.replace == Replace::InPlace {
            self.cut_back();
        }
    }

    /// An in-place file back to exactly its last flush: its length, and the header's count.
    fn cut_back(&mut self) {
        let Ok(header) = self.header_for(self.flushed_rows) else {
            return;
        };
        let len = self.flushed_len;
        let Some(Ok(file)) = self.out.as_mut().map(OutputFile::file) else {
            return;
        };
        if let Err(e) = file
            .set_len(len)
            .and_then(|()| file.write_all_at(&header, 0))
        {
            log::error!(
                "{}: cutting the file back to its last flush failed: {e}",
                self.path.display()
            );
        }
    }

    /// Notes what a successful flush or sync made the file hold.
    fn flushed(&mut self) -> Result<()> {
        let finished = self.finished();
        let file = self.out.as_mut().ok_or(finished)?.file()?;
        self.flushed_len = file
            .metadata()
            .map_err(|e| Error::io("cannot inspect", e).with_path(&self.path))?
            .len();
        self.flushed_rows = self.rows;
        Ok(())
    }
}

impl ArrayWriter for RowWriter {
    fn append(&mut self, rows: &DynArray) -> Result<()> {
        self.check_poison()?;
        ndstore_core::__private::stream::check_rows(
            self.meta.dtype.kind,
            &self.meta.shape[1..],
            rows.kind(),
            rows.shape(),
            &self.path,
        )?;
        let byte_order = self.meta.dtype.byte_order;
        let pending = &mut self.pending;
        with_dyn_array!(rows, |a| ndstore_core::__private::codec::write_elements(
            &a.view(),
            Order::C,
            byte_order,
            &mut |b| {
                pending.extend_from_slice(b);
                Ok(())
            }
        ))
        .map_err(|e| Error::io("encoding the rows", e).with_path(&self.path))?;
        self.rows += rows.shape()[0];
        if self.pending.len() >= 1 << 20 {
            self.write_out()?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let forgets =
            self.flaw == Flaw::FlushedCommitForgetsPoison && self.durability == Durability::Flushed;
        if !forgets {
            // Broken on purpose when it forgets: a commit that does not sync looks no further.
            self.check_poison()?;
        }
        if self.flaw == Flaw::CommitLosesTail {
            // Broken on purpose: what was appended since the last write-out is forgotten.
            self.pending.clear();
            self.rows = self.rows_out;
        }
        if forgets {
            self.write_out_unpoisoned()?;
        } else {
            self.write_out()?;
        }
        let finished = self.finished();
        self.out.take().ok_or(finished)?.finish()
    }
    fn abort(mut self: Box<Self>) -> Result<()> {
        // The rows die with the writer: an in-place file goes back to its last flush, an
        // atomic writer's temporary is removed.
        if self.replace == Replace::InPlace {
            self.cut_back();
        }
        self.out.take().map_or(Ok(()), OutputFile::abort)
    }
}

impl Durable for RowWriter {
    fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        self.flushed()
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        let finished = self.finished();
        let out = self.out.as_mut().ok_or(finished)?;
        let synced = if self.flaw == Flaw::FlushedCommitForgetsPoison
            && self.durability == Durability::Flushed
        {
            // Broken on purpose: fsyncs the file by other means than the output's own handle,
            // which therefore never learns that a sync failed (the writer alone remembers).
            out.file()?
                .sync_all()
                .map_err(|e| Error::io("fsync failed", e).with_path(&self.path))
        } else {
            out.sync()
        };
        if self.flaw == Flaw::SyncSwallowsEio {
            // Broken on purpose: the failure is dropped.
            let _ = synced;
            return Ok(());
        }
        if synced.is_err() {
            self.poison();
        }
        synced?;
        self.flushed()
    }
}

impl Drop for RowWriter {
    fn drop(&mut self) {
        if self.out.is_none() {
            return;
        }
        if self.flaw == Flaw::DropPublishes {
            // Broken on purpose: an uncommitted writer publishes what it has.
            let _ = self.write_out();
            if let Some(out) = self.out.take() {
                let _ = out.finish();
            }
            return;
        }
        if self.replace == Replace::InPlace && !self.poisoned {
            if std::thread::panicking() {
                // Only what the last flush published stays (unless broken on purpose, when the
                // rows written out since then stay, counted by the header).
                if self.flaw != Flaw::PanicKeepsAppended {
                    self.cut_back();
                }
            } else if let Err(e) = self.write_out() {
                log::error!("{}: flush on drop failed: {e}", self.path.display());
            }
        }
        // An atomic writer's temporary is removed as `out` drops; rows still pending die here.
    }
}

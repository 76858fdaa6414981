//! Resizable datasets written row by row, hyperslab reads and writes, SWMR readers in another
//! process, and `HDF5_USE_FILE_LOCKING`.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ndarray::{Array2, Array3, ArrayD, IxDyn, ShapeBuilder, s};
use ndstore_core::{
    ArrayWriter, Backend, ByteOrder, DType, DTypeKind, Durable, DynArray, ErrorKind, InPlaceArray,
    Location, SaveOptions,
};
use ndstore_hdf5::{H5InPlace, H5Writer, Hdf5Backend, SwmrReader, WriterOptions};

use common::serial;

/// Rows `first..first + n` of a `[n, 3]` i64 table whose row i is `[i, 10 i, 100 i]`.
fn rows(first: usize, n: usize) -> DynArray {
    DynArray::from(
        Array2::from_shape_fn((n, 3), |(i, j)| {
            ((first + i) * 10usize.pow(j as u32)) as i64
        })
        .into_dyn(),
    )
}

/// An in-place writer of the `rows` table (i64 rows of 3) at `path`.
fn in_place_writer(path: &Path, options: &WriterOptions) -> H5Writer {
    H5Writer::create(
        path,
        DType::native(DTypeKind::I64),
        &[3],
        &SaveOptions::default().in_place(),
        options,
    )
    .unwrap()
}

/// Checks that `table` is rows `0..table.len()` of the `rows` table.
fn is_prefix(table: &DynArray) -> bool {
    let n = table.shape().first().copied().unwrap_or(0);
    table.bit_eq(&rows(0, n))
}

/// A child doing `task` on the file at `path` with `args`, in the environment `envs`, its
/// standard output piped.
fn spawn_child(task: &str, path: &Path, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut all = vec![path.to_str().unwrap()];
    all.extend_from_slice(args);
    common::child_command(task, &all)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Limits the size of the files this process writes to `bytes`, once: the first write past it
/// fails with EFBIG, and the limit is lifted then (by the SIGXFSZ handler), so the failure is
/// transient, as an injected I/O error.
fn fail_one_growth(bytes: u64) {
    extern "C" fn lift(_: libc::c_int) {
        let none = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit is a system call, safe in a signal handler; it reads the struct.
        unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &none) };
    }
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: the handler only makes a system call; setrlimit reads the struct passed and
    // changes only this process's limits.
    unsafe {
        let handler = lift as extern "C" fn(libc::c_int) as libc::sighandler_t;
        assert_ne!(libc::signal(libc::SIGXFSZ, handler), libc::SIG_ERR);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// The children's entry point: does nothing unless this binary was started as a child.
#[test]
fn child_entry() {
    let Some((task, args)) = common::child_task() else {
        return;
    };
    let path = std::path::PathBuf::from(&args[0]);
    match task.as_str() {
        // Follows a SWMR writer: prints "SAW n" whenever a refresh shows more rows, after
        // checking that the rows read are a consistent prefix, until the row count (its second
        // argument).
        "swmr-reader" => {
            let total: usize = args[1].parse().unwrap();
            let mut reader = SwmrReader::open(&path, "log/rows").unwrap();
            let mut seen = usize::MAX;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let n = reader.refresh().unwrap();
                if n != seen {
                    let table = reader.read_rows(0..n).unwrap();
                    println!("{} {n}", if is_prefix(&table) { "SAW" } else { "BAD" });
                    seen = n;
                }
                if n >= total || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Opens the file in place and reports how that went.
        "open-in-place" => match H5InPlace::open(&path, "data", Default::default()) {
            Ok(handle) => {
                println!("OPENED");
                drop(handle);
            }
            Err(e) => println!("ERROR {:?} {e}", e.kind()),
        },
        // Writes 1000 rows in place, flushes and dies without closing anything, as if killed.
        "abandon-in-place-writer" => {
            let mut writer = in_place_writer(&path, &WriterOptions::default());
            writer.append(&rows(0, 1000)).unwrap();
            writer.flush().unwrap();
            // SAFETY: ends the process at once, running no exit handler (libhdf5's would close
            // the file).
            unsafe { libc::_exit(0) };
        }
        // Writes 1000 rows in place in chunks of 100 and flushes; appends 1000 more (held in
        // libhdf5's chunk cache), and the first write that grows the file fails once, in the
        // flush of its second argument ("flush" or "commit"); the writer is dropped.
        // Prints whether the call failed and, for a flush, the rows the writer reports and the
        // error of a later append.
        "in-place-flush-fails" => {
            let mut writer = in_place_writer(&path, &WriterOptions::default().chunk_rows(100));
            writer.append(&rows(0, 1000)).unwrap();
            writer.flush().unwrap();
            fail_one_growth(std::fs::metadata(&path).unwrap().len());
            writer.append(&rows(1000, 1000)).unwrap();
            let failed = if args[1] == "commit" {
                Box::new(writer).commit().is_err()
            } else {
                let failed = writer.flush().is_err();
                println!("ROWS {}", writer.rows());
                println!("LATER {}", writer.append(&rows(1000, 1)).unwrap_err());
                failed
            };
            println!("FAILED {failed}");
        }
        other => panic!("unknown child task {other}"),
    }
}

#[test]
fn a_streaming_writer_grows_a_resizable_dataset_and_publishes_it_on_commit() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.h5");
    let save = SaveOptions::default();
    let mut writer = H5Writer::create(
        &path,
        DType::native(DTypeKind::I64),
        &[3],
        &save,
        &WriterOptions::new("/log/rows").chunk_rows(7),
    )
    .unwrap();
    for batch in 0..10 {
        writer.append(&rows(batch * 5, 5)).unwrap();
    }
    writer.append(&rows(50, 0)).unwrap();
    writer.sync().unwrap();
    assert!(!path.exists(), "an atomic writer published before commit");
    assert_eq!(writer.rows(), 50);
    Box::new(writer).commit().unwrap();
    let (meta, table) = ndstore_hdf5::load_dyn(&path, "/log/rows").unwrap();
    assert_eq!(meta.shape, vec![50, 3]);
    assert!(table.bit_eq(&rows(0, 50)));
    assert!(ndstore_core::list_temps(&path).unwrap().is_empty());

    // Rows of the wrong type or shape are refused by name; the writer stays usable.
    let mut writer = Hdf5Backend
        .writer(&path, DType::native(DTypeKind::I64), &[3], &save)
        .unwrap();
    let wrong = DynArray::from(ArrayD::<i64>::zeros(IxDyn(&[2, 4])));
    let err = writer.append(&wrong).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = writer
        .append(&DynArray::from(ArrayD::<f32>::zeros(IxDyn(&[2, 3]))))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    writer.append(&rows(0, 2)).unwrap();
    drop(writer);
    let (_, kept) = ndstore_hdf5::load_dyn(&path, "/log/rows").unwrap();
    assert!(
        kept.bit_eq(&rows(0, 50)),
        "a dropped atomic writer changed the file"
    );
    assert!(ndstore_core::list_temps(&path).unwrap().is_empty());
}

#[test]
fn big_endian_filtered_and_empty_row_streams_round_trip_and_h5py_sees_a_resizable_dataset() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("be.h5");
    let mut options = WriterOptions::new("gz");
    options.filters = ndstore_hdf5::H5Options::new().compressed(4);
    let mut writer = H5Writer::create(
        &path,
        DType::new(DTypeKind::F32, ByteOrder::Big),
        &[2, 2],
        &SaveOptions::default().byte_order(ByteOrder::Big),
        &options,
    )
    .unwrap();
    let block = Array3::from_shape_fn((4, 2, 2), |(i, j, k)| (i * 4 + j * 2 + k) as f32);
    for _ in 0..3 {
        writer
            .append(&DynArray::from(block.clone().into_dyn()))
            .unwrap();
    }
    Box::new(writer).commit().unwrap();
    let (meta, values) = ndstore_hdf5::load_dyn(&path, "gz").unwrap();
    assert_eq!(meta.dtype, DType::new(DTypeKind::F32, ByteOrder::Big));
    assert_eq!(meta.shape, vec![12, 2, 2]);
    let values = values.into_typed::<f32>().unwrap();
    assert_eq!(values.slice(s![8..12, .., ..]), block);

    // Rows with a zero-length axis: the dataset grows, with nothing to write.
    let empty_path = dir.path().join("empty-rows.h5");
    let mut writer = Hdf5Backend
        .writer(
            &empty_path,
            DType::native(DTypeKind::U8),
            &[0],
            &SaveOptions::default(),
        )
        .unwrap();
    writer
        .append(&DynArray::from(ArrayD::<u8>::zeros(IxDyn(&[5, 0]))))
        .unwrap();
    writer.commit().unwrap();
    assert_eq!(
        Hdf5Backend.read_meta(&empty_path).unwrap().shape,
        vec![5, 0]
    );

    if !ndstore_conformance::python::available_or_skip("h5py interop") {
        return;
    }
    let out = ndstore_conformance::python::run_script(&format!(
        "import h5py\nwith h5py.File({:?}, 'r') as f:\n    d = f['gz']\n    print(d.shape, d.maxshape, d.chunks, d.compression, d.dtype.str, float(d[11, 1, 1]))",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(
        out.trim(),
        "(12, 2, 2) (None, 2, 2) (65536, 2, 2) gzip >f4 15.0",
        "h5py's view of a streamed dataset"
    );
}

#[test]
fn hyperslabs_read_and_write_a_box_and_leave_the_rest() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.h5");
    let grid = Array2::from_shape_fn((40, 30), |(i, j)| (i * 100 + j) as f64);
    ndstore_hdf5::save_dyn(
        &path,
        "grid",
        &DynArray::from(grid.clone().into_dyn()),
        &SaveOptions::default(),
    )
    .unwrap();
    let part = ndstore_hdf5::read_slice(&path, "grid", &[5..9, 20..30])
        .unwrap()
        .into_typed::<f64>()
        .unwrap();
    assert_eq!(part, grid.slice(s![5..9, 20..30]).into_dyn());
    let none = ndstore_hdf5::read_slice(&path, "grid", &[5..5, 0..30]).unwrap();
    assert_eq!(none.shape(), &[0, 30]);

    // A box that does not fit names the file, the dataset and the axis.
    let err = ndstore_hdf5::read_slice(&path, "grid", &[0..40, 25..31]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("axis 1"), "{err}");
    assert!(err.to_string().contains("grid.h5"), "{err}");
    assert_eq!(err.location(), Some(&Location::Object("grid".to_owned())));
    let one_axis = [std::ops::Range { start: 0, end: 4 }];
    let err = ndstore_hdf5::read_slice(&path, "grid", &one_axis).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    // In place: only the box changes.
    let mut handle = H5InPlace::open(&path, "grid", Default::default()).unwrap();
    let patch = Array2::<f64>::from_elem((2, 3), -1.0);
    handle
        .write_slice(&[10, 4], &DynArray::from(patch.clone().into_dyn()))
        .unwrap();
    let err = handle
        .write_slice(&[39, 0], &DynArray::from(patch.clone().into_dyn()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = handle
        .write_slice(
            &[0, 0],
            &DynArray::from(ArrayD::<i32>::zeros(IxDyn(&[1, 1]))),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    let read_back = handle
        .read_slice(&[10..12, 4..7])
        .unwrap()
        .into_typed::<f64>()
        .unwrap();
    assert_eq!(read_back, patch.clone().into_dyn());
    Box::new(handle).close().unwrap();
    let mut expected = grid.clone();
    expected.slice_mut(s![10..12, 4..7]).assign(&patch);
    let (_, all) = ndstore_hdf5::load_dyn(&path, "grid").unwrap();
    assert!(all.bit_eq(&DynArray::from(expected.into_dyn())));

    // A Fortran-ordered dataset is sliced by its logical indices.
    let fortran = Array2::from_shape_vec((3, 4).f(), (0..12).collect::<Vec<i16>>()).unwrap();
    ndstore_hdf5::save_dyn(
        &path,
        "f",
        &DynArray::from(fortran.clone().into_dyn()),
        &SaveOptions::default(),
    )
    .unwrap();
    let column = ndstore_hdf5::read_slice(&path, "f", &[0..3, 2..3])
        .unwrap()
        .into_typed::<i16>()
        .unwrap();
    assert_eq!(column, fortran.slice(s![0..3, 2..3]).into_dyn());
}

/// The reader's next line (`SAW n` or `BAD n`), failing after `timeout`.
fn next_line(
    lines: &std::sync::mpsc::Receiver<String>,
    timeout: Duration,
    waiting: &str,
) -> String {
    common::next_line_with(lines, &["SAW ", "BAD "], timeout, waiting)
}

#[test]
fn a_swmr_reader_in_another_process_follows_a_growing_dataset() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swmr.h5");
    let batches = 20;
    let per_batch = 50;
    let mut writer = in_place_writer(&path, &WriterOptions::new("log/rows").chunk_rows(16).swmr());
    writer.flush().unwrap();
    let total = batches * per_batch;
    let mut child = spawn_child("swmr-reader", &path, &[&total.to_string()], &[]);
    let lines = common::lines_of(child.stdout.take().unwrap());
    // Every batch, once flushed, must be seen by the reader before the next is written.
    let first = next_line(&lines, Duration::from_secs(60), "SAW 0");
    assert_eq!(first, "SAW 0");
    for batch in 0..batches {
        writer.append(&rows(batch * per_batch, per_batch)).unwrap();
        writer.flush().unwrap();
        let line = next_line(&lines, Duration::from_secs(60), &format!("batch {batch}"));
        assert_eq!(line, format!("SAW {}", (batch + 1) * per_batch));
    }
    // A second writer is refused while the SWMR writer is open.
    let err = Hdf5Backend
        .save(&path, &rows(0, 1), &SaveOptions::new().in_place())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    Box::new(writer).commit().unwrap();
    assert!(child.wait().unwrap().success());
    let (_, table) = ndstore_hdf5::load_dyn(&path, "log/rows").unwrap();
    assert!(table.bit_eq(&rows(0, total)));

    // h5py follows a SWMR writer too.
    if !ndstore_conformance::python::available_or_skip("h5py interop") {
        return;
    }
    let path = dir.path().join("swmr-h5py.h5");
    let mut writer = in_place_writer(&path, &WriterOptions::new("log/rows").swmr());
    writer.append(&rows(0, 10)).unwrap();
    writer.flush().unwrap();
    let seen = ndstore_conformance::python::run_script(&format!(
        "import h5py\nf = h5py.File({:?}, 'r', swmr=True)\nd = f['log/rows']\nd.refresh()\nprint(d.shape, int(d[9, 2]))",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(seen.trim(), "(10, 3) 900");
    Box::new(writer).commit().unwrap();
}

#[test]
fn a_swmr_writer_must_write_in_place() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atomic-swmr.h5");
    let err = H5Writer::create(
        &path,
        DType::native(DTypeKind::F64),
        &[],
        &SaveOptions::default(),
        &WriterOptions::default().swmr(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!path.exists());
}

#[test]
fn hdf5_use_file_locking_false_is_honoured() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.h5");
    Hdf5Backend
        .save(&path, &rows(0, 4), &SaveOptions::default())
        .unwrap();
    let holder = H5InPlace::open(&path, "data", Default::default()).unwrap();
    let report = |envs: &[(&str, &str)]| {
        let child = spawn_child("open-in-place", &path, &[], envs);
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let locked = report(&[]);
    assert!(locked.contains("ERROR Locked"), "{locked}");
    let unlocked = report(&[("HDF5_USE_FILE_LOCKING", "FALSE")]);
    assert!(unlocked.contains("OPENED"), "{unlocked}");
    Box::new(holder).close().unwrap();
}

#[test]
fn a_writers_byte_order_comes_from_its_dtype_and_a_contradiction_is_refused() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.h5");
    let big = DType::new(DTypeKind::F64, ByteOrder::Big);
    // The dtype alone says big-endian: the dataset is stored big-endian.
    let mut writer = H5Writer::create(
        &path,
        big,
        &[2],
        &SaveOptions::default(),
        &WriterOptions::default(),
    )
    .unwrap();
    writer
        .append(&DynArray::from(ArrayD::from_elem(IxDyn(&[3, 2]), 1.5f64)))
        .unwrap();
    Box::new(writer).commit().unwrap();
    assert_eq!(Hdf5Backend.read_meta(&path).unwrap().dtype, big);
    // Options that contradict the dtype are refused before anything is written.
    let other = dir.path().join("contradiction.h5");
    let err = H5Writer::create(
        &other,
        big,
        &[2],
        &SaveOptions::default().byte_order(ByteOrder::Little),
        &WriterOptions::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!other.exists());
}

/// An in-place writer dropped during a panic keeps the rows of its last flush, and the file does
/// not keep the space of the 64 MiB appended after it (the 1.8 format's chunk B-tree kept them:
/// a 68 MB file for 8 MB of flushed rows).
#[test]
fn an_in_place_writer_dropped_in_a_panic_gives_back_what_it_appended_after_its_flush() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.h5");
    let mut writer = in_place_writer(&path, &WriterOptions::default());
    writer.append(&rows(0, 1000)).unwrap();
    writer.flush().unwrap();
    let flushed_len = std::fs::metadata(&path).unwrap().len();
    // 64 MiB of rows, far past libhdf5's chunk cache.
    let more = rows(1000, (64 << 20) / 24);
    let joined = std::thread::spawn(move || {
        let mut writer = writer;
        writer.append(&more).unwrap();
        panic!("the writing thread dies");
    })
    .join();
    assert!(joined.is_err(), "the thread did not panic");
    let (meta, table) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
    assert_eq!(meta.shape, vec![1000, 3]);
    assert!(table.bit_eq(&rows(0, 1000)));
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len < flushed_len + (1 << 20),
        "the file is {len} bytes after the panic, {flushed_len} after the flush"
    );
}

/// An in-place writer killed after a flush leaves a file that opens, in ndstore and in h5py,
/// without h5clear: the 1.10 format's superblock marks a file open for write until it is
/// closed, so the writer keeps the superblock of the earliest format (an in-place writer
/// created with the 1.10 bounds left a file that nothing would open).
#[test]
fn an_in_place_writer_killed_after_a_flush_leaves_a_file_that_opens() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.h5");
    let status = spawn_child("abandon-in-place-writer", &path, &[], &[])
        .wait()
        .unwrap();
    assert!(status.success(), "{status}");
    let (meta, table) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
    assert_eq!(meta.shape, vec![1000, 3]);
    assert!(table.bit_eq(&rows(0, 1000)));
}

/// Runs the `in-place-flush-fails` child with its failing call, returning what it printed.
fn flush_fails(path: &Path, failing: &str) -> String {
    let child = spawn_child("in-place-flush-fails", path, &[failing], &[]);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

/// A failed flush poisons an in-place writer and cuts it back to its last flush: the commit's
/// flush too (a writer whose commit failed flushed the rows when it was dropped, so a commit
/// that returned Err published them), and the writer's row count says what the file holds.
#[test]
fn an_in_place_writer_whose_flush_or_commit_fails_keeps_its_last_flush() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    for failing in ["flush", "commit"] {
        let path = dir.path().join(format!("{failing}.h5"));
        let said = flush_fails(&path, failing);
        assert!(said.contains("FAILED true"), "{failing}: {said}");
        if failing == "flush" {
            assert!(said.contains("ROWS 1000\n"), "{failing}: {said}");
            // A later call says what failed: a flush, not an fsync.
            assert!(
                said.contains("an earlier write, flush or sync of this writer failed"),
                "{said}"
            );
        }
        let (meta, table) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
        assert_eq!(meta.shape, vec![1000, 3], "{failing}");
        assert!(table.bit_eq(&rows(0, 1000)), "{failing}");
    }
}

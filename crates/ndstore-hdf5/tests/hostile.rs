//! Damaged and hostile HDF5 files through the default (isolated) entry points: bit flips that
//! crashed or hung libhdf5, 600 random flips, link cycles, an external link, and a 1.4 KB file
//! declaring 16 GiB of fill values. Every case runs in a child process of this test binary, so
//! code that crashes on them fails the test instead of killing the test binary.
//!
//! The files are in `tests/corpus/`, written by these tests when missing (deterministically:
//! libhdf5 writes no timestamps for these datasets), so that the flipped offsets stay the ones
//! that were shown to crash libhdf5.

// Tests may unwrap: a panic is how a test reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdf5_metno::types::VarLenUnicode;
use ndarray::{ArrayD, IxDyn};
use ndstore_core::{DynArray, ErrorKind, Order};
use ndstore_hdf5::{Entry, Object, ReadOptions};

/// The corpus directory.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
}

/// The corpus file `name`, written by `make` when it is missing.
fn corpus_file(name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = corpus().join(name);
    if !path.exists() {
        std::fs::create_dir_all(corpus()).unwrap();
        let temp = corpus().join(format!(".{name}.{}.tmp", std::process::id()));
        make(&temp);
        std::fs::rename(&temp, &path).unwrap();
    }
    path
}

/// The values of the old-attribute file: 2000 f64 in chunks of 200.
fn old_values() -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[2000]), |i| ((i[0] * 7919) % 1000) as f64 * 0.25)
}

/// A chunked (200), shuffled, gzip-6, Fletcher-32 dataset with ndstore's attribute as earlier
/// ndstore versions wrote it: a variable-length string, kept in libhdf5's global heap. Byte for
/// byte what `save_with(.., H5Options::new().chunk(&[200]).compressed(6))` wrote then (10,754
/// bytes).
fn old_attribute_file() -> PathBuf {
    corpus_file("old-attribute-gzip.h5", |path| {
        write_old_style(path, &old_values(), r#"{"order":"C"}"#)
    })
}

fn write_old_style(path: &Path, values: &ArrayD<f64>, attribute: &str) {
    let file = hdf5_metno::File::create(path).unwrap();
    let chunk: Vec<usize> = values.shape().iter().map(|&n| n.min(200)).collect();
    let dataset = file
        .new_dataset_builder()
        .with_data(values)
        .chunk(chunk)
        .shuffle()
        .deflate(6)
        .fletcher32()
        .create("data")
        .unwrap();
    let value: VarLenUnicode = attribute.parse().unwrap();
    dataset
        .new_attr::<VarLenUnicode>()
        .shape(())
        .create("ndstore")
        .unwrap()
        .write_scalar(&value)
        .unwrap();
}

/// The offset of the global heap collection (`GCOL`) holding the old attribute's string.
fn heap_offset(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"GCOL")
        .expect("the old attribute file has a global heap")
}

/// `file`'s bytes with bit `bit` of byte `byte` flipped, written next to the test's other files.
fn flipped(file: &Path, byte: usize, bit: u8, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[byte] ^= 1 << bit;
    let path = dir.join(format!("flip-{byte}-{bit}.h5"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A soft link `/g/loop -> /` beside a dataset `/g/x`.
fn soft_loop_file() -> PathBuf {
    corpus_file("soft-link-loop.h5", |path| {
        let file = hdf5_metno::File::create(path).unwrap();
        let group = file.create_group("g").unwrap();
        group
            .new_dataset_builder()
            .with_data(&ndarray::arr1(&[1.0f64, 2.0, 3.0]))
            .create("x")
            .unwrap();
        group.link_soft("/", "loop").unwrap();
    })
}

/// A hard link `/g/back` to `/g` itself: a cycle of hard links.
fn hard_cycle_file() -> PathBuf {
    corpus_file("hard-link-cycle.h5", |path| {
        let file = hdf5_metno::File::create(path).unwrap();
        let group = file.create_group("g").unwrap();
        group
            .new_dataset_builder()
            .with_data(&ndarray::arr1(&[7i32]))
            .create("x")
            .unwrap();
        file.link_hard("/g", "/g/back").unwrap();
    })
}

/// An external link `/ext` into `outside.h5`, which names a dataset there.
fn external_link_file() -> PathBuf {
    corpus_file("external-link.h5", |path| {
        let file = hdf5_metno::File::create(path).unwrap();
        file.new_dataset_builder()
            .with_data(&ndarray::arr1(&[1u8]))
            .create("x")
            .unwrap();
        file.link_external("outside.h5", "/secret", "ext").unwrap();
    })
}

/// A 1.4 KB file whose dataset declares 2^31 f64 and stores none (its values are the fill
/// value): 16 GiB if a reader believes it.
fn unallocated_file() -> PathBuf {
    corpus_file("unallocated-2g.h5", |path| {
        let file = hdf5_metno::File::create(path).unwrap();
        file.new_dataset::<f64>()
            .shape(1usize << 31)
            .create("data")
            .unwrap();
    })
}

/// A 2^28-f64 (2 GiB) chunked dataset with one chunk of 1024 written, whose chunk index (a v1
/// B-tree) is then patched so its one record claims 0xFFFFFFF0 stored bytes for a chunk far
/// outside the extent: the dataset's storage size becomes 4 GiB in a 12 KB file, enough to pass
/// for data the file holds.
fn fake_chunk_file(dir: &Path) -> PathBuf {
    let path = dir.join("fake-chunk.h5");
    {
        let file = hdf5_metno::File::create(&path).unwrap();
        let dataset = file
            .new_dataset::<f64>()
            .shape(1usize << 28)
            .chunk(1024)
            .create("data")
            .unwrap();
        dataset
            .write_slice(&ndarray::Array1::<f64>::ones(1024), ndarray::s![0..1024])
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let node = (0..bytes.len() - 5)
        .find(|&i| &bytes[i..i + 4] == b"TREE" && bytes[i + 4] == 1)
        .expect("a v1 B-tree node of chunks");
    // Key 0: the chunk's stored size (u32), its filter mask (u32), its offsets (u64 per axis
    // and one more); key 1 follows the child's address.
    let key0 = node + 24;
    bytes[key0..key0 + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    bytes[key0 + 8..key0 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let key1 = key0 + 24 + 8;
    bytes[key1 + 8..key1 + 16].copy_from_slice(&((1u64 << 40) + 1024).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    path
}

/// How a child ended, and what it printed.
struct Outcome {
    signal: Option<i32>,
    code: Option<i32>,
    stdout: String,
}

impl Outcome {
    /// The child's lines that start with `word`, without it.
    fn lines(&self, word: &str) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| {
                l.find(word)
                    .map(|at| l[at + word.len()..].trim().to_owned())
            })
            .collect()
    }

    /// Fails unless the child ended normally, naming the signal that killed it otherwise.
    fn assert_survived(&self, what: &str) {
        assert!(
            self.signal.is_none() && self.code == Some(0),
            "{what}: the process died (signal {:?}, exit code {:?}); output:\n{}",
            self.signal,
            self.code,
            self.stdout
        );
    }
}

/// Runs this binary as a child doing `task` with `args`, killing it after `timeout`.
fn in_child(task: &str, args: &[&str], timeout: Duration) -> Outcome {
    let mut child = common::child_command(task, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        signal: status.signal(),
        code: status.code(),
        stdout: reader.join().unwrap(),
    }
}

/// One line for a load's result: `OK` or `ERR <kind> <message>`.
fn report(result: ndstore_core::Result<(ndstore_core::ArrayMeta, DynArray)>) -> String {
    match result {
        Ok((meta, _)) => format!("OK {:?}", meta.shape),
        Err(e) => format!("ERR {:?} {e}", e.kind()),
    }
}

/// The peak resident set of this process, from `/proc/self/status`.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// The children's entry point: does nothing unless this binary was started as a child.
#[test]
fn child_entry() {
    let Some((task, args)) = common::child_task() else {
        return;
    };
    match task.as_str() {
        "load" => println!(
            "RESULT {}",
            report(ndstore_hdf5::load_dyn(&args[0], "data"))
        ),
        "load-timeout" => {
            let options = ReadOptions::new().timeout(Duration::from_secs(args[1].parse().unwrap()));
            println!(
                "RESULT {}",
                report(ndstore_hdf5::load_with(&args[0], "data", &options))
            );
        }
        "load-measured" => {
            let result = report(ndstore_hdf5::load_dyn(&args[0], "data"));
            println!("RESULT {result}");
            println!("PEAK {}", peak_rss());
        }
        // The caller ignores SIGCHLD, so the kernel reaps the reader before this process can.
        "load-sigchld-ignored" => {
            // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            println!(
                "RESULT {}",
                report(ndstore_hdf5::load_dyn(&args[0], "data"))
            );
        }
        "inplace" => println!(
            "RESULT {}",
            match ndstore_hdf5::H5InPlace::open(&args[0], "data", ndstore_core::Durability::Synced)
            {
                Ok(_) => "OK".to_owned(),
                Err(e) => format!("ERR {:?} {e}", e.kind()),
            }
        ),
        "list" => match ndstore_hdf5::list(&args[0]) {
            Ok(entries) => println!("LIST {}", serde_json::to_string(&entries).unwrap()),
            Err(e) => println!("LIST-ERR {:?} {e}", e.kind()),
        },
        // Flips `count` random bits (seeded) of the file's first `end` bytes and loads each
        // damaged copy.
        "flips" => {
            let bytes = std::fs::read(&args[0]).unwrap();
            let dir = PathBuf::from(&args[1]);
            let count: usize = args[2].parse().unwrap();
            let end: u64 = args[3].parse().unwrap();
            let mut random = SplitMix(0x5eed_0013);
            let options = ReadOptions::new().timeout(Duration::from_secs(20));
            for case in 0..count {
                let bit = (random.next() % (end * 8)) as usize;
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                let path = dir.join(format!("case-{case}.h5"));
                std::fs::write(&path, &damaged).unwrap();
                let result = ndstore_hdf5::load_with(&path, "data", &options);
                println!(
                    "CASE {case} byte {} bit {} {}",
                    bit / 8,
                    bit % 8,
                    report(result)
                );
                std::fs::remove_file(&path).unwrap();
            }
            println!("DONE");
            println!("PEAK {}", peak_rss());
        }
        other => panic!("unknown child task {other}"),
    }
}

/// SplitMix64, the harness's seeded generator.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A generous bound on any one child: no case here takes more than seconds when it works.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn a_flipped_bit_in_the_old_attributes_heap_is_an_error_not_a_crash() {
    let file = old_attribute_file();
    let dir = tempfile::tempdir().unwrap();
    let heap = heap_offset(&std::fs::read(&file).unwrap());
    // The heap object's size field: libhdf5 1.10 dies with SIGSEGV in H5HG_read on this one.
    let damaged = flipped(&file, heap + 28, 0, dir.path());
    let outcome = in_child("load", &[damaged.to_str().unwrap()], CHILD_TIMEOUT);
    outcome.assert_survived("loading a file with a flipped bit in its global heap");
    let result = outcome.lines("RESULT").join("");
    assert!(
        result.starts_with("ERR ReaderCrashed") || result.starts_with("ERR Corrupt"),
        "{result}"
    );
    assert!(result.contains(damaged.to_str().unwrap()), "{result}");
}

#[test]
fn a_caller_that_ignores_sigchld_still_loads_and_still_hears_of_crashes() {
    let good = old_attribute_file();
    let outcome = in_child(
        "load-sigchld-ignored",
        &[good.to_str().unwrap()],
        CHILD_TIMEOUT,
    );
    outcome.assert_survived("loading with SIGCHLD ignored");
    let result = outcome.lines("RESULT").join("");
    assert!(result.starts_with("OK"), "{result}");
    let dir = tempfile::tempdir().unwrap();
    let heap = heap_offset(&std::fs::read(&good).unwrap());
    let damaged = flipped(&good, heap + 28, 0, dir.path());
    let outcome = in_child(
        "load-sigchld-ignored",
        &[damaged.to_str().unwrap()],
        CHILD_TIMEOUT,
    );
    outcome.assert_survived("loading a damaged file with SIGCHLD ignored");
    let result = outcome.lines("RESULT").join("");
    assert!(result.starts_with("ERR ReaderCrashed"), "{result}");
}

#[test]
fn an_in_place_open_of_a_file_libhdf5_crashes_on_is_refused_not_a_crash() {
    let file = old_attribute_file();
    let dir = tempfile::tempdir().unwrap();
    let heap = heap_offset(&std::fs::read(&file).unwrap());
    // The crash is in reading ndstore's own attribute, which the in-place open reads too: the
    // isolated check must read it first.
    for (byte, bit) in [(heap + 28, 0), (heap + 24, 3)] {
        let damaged = flipped(&file, byte, bit, dir.path());
        let outcome = in_child("inplace", &[damaged.to_str().unwrap()], CHILD_TIMEOUT);
        outcome.assert_survived("opening a damaged file in place");
        let result = outcome.lines("RESULT").join("");
        assert!(
            result.starts_with("ERR "),
            "byte {byte} bit {bit}: {result}"
        );
        assert!(result.contains(damaged.to_str().unwrap()), "{result}");
    }
}

#[test]
fn a_file_libhdf5_loops_on_is_stopped_by_the_timeout() {
    let file = old_attribute_file();
    let dir = tempfile::tempdir().unwrap();
    let heap = heap_offset(&std::fs::read(&file).unwrap());
    // Another bit of the same size field: libhdf5 1.10 loops without end on this one.
    let damaged = flipped(&file, heap + 24, 3, dir.path());
    let outcome = in_child(
        "load-timeout",
        &[damaged.to_str().unwrap(), "5"],
        CHILD_TIMEOUT,
    );
    outcome.assert_survived("loading a file libhdf5 loops on");
    let result = outcome.lines("RESULT").join("");
    assert!(result.starts_with("ERR ReaderCrashed"), "{result}");
    assert!(result.contains("did not finish within"), "{result}");
}

/// Flips land where libhdf5 parses: the superblock, object headers, B-trees, the local heap,
/// and the global heap up to its free space (its collection header, the attribute's object and
/// the free-space object's header: 64 bytes). Not in the free space libhdf5 skips, nor in the
/// chunks, whose damage Fletcher-32 and inflate catch before libhdf5 parses anything (600 flips
/// over the whole file crashed libhdf5 1.10 no time; over these bytes, twice with SIGSEGV).
#[test]
fn six_hundred_random_bit_flips_never_crash_the_caller() {
    let file = old_attribute_file();
    let end = (heap_offset(&std::fs::read(&file).unwrap()) + 64).to_string();
    let dir = tempfile::tempdir().unwrap();
    let outcome = in_child(
        "flips",
        &[
            file.to_str().unwrap(),
            dir.path().to_str().unwrap(),
            "600",
            &end,
        ],
        Duration::from_secs(1800),
    );
    outcome.assert_survived("600 bit flips");
    let cases = outcome.lines("CASE");
    assert_eq!(cases.len(), 600, "{}", outcome.stdout);
    assert_eq!(outcome.lines("DONE").len(), 1);
    for case in &cases {
        if case.contains(" ERR ") {
            assert!(case.contains("case-"), "an error without the file: {case}");
        }
    }
    // Nor may libhdf5 allocate what a damaged header claims in the caller's process.
    let peak: u64 = outcome.lines("PEAK").join("").parse().unwrap();
    assert!(
        peak < 1 << 30,
        "the caller's memory peaked at {} MiB",
        peak >> 20
    );
    let crashed = cases
        .iter()
        .filter(|c| c.contains("ERR ReaderCrashed"))
        .count();
    let failed = cases.iter().filter(|c| c.contains(" ERR ")).count();
    eprintln!("600 flips: {failed} errors, of which {crashed} isolated reader crashes");
}

#[test]
fn files_with_the_old_variable_length_attribute_still_load() {
    let (meta, values) = ndstore_hdf5::load_dyn(old_attribute_file(), "data").unwrap();
    assert_eq!(meta.order, Order::C);
    assert!(values.bit_eq(&DynArray::from(old_values())));
    // The order the old attribute records is honoured.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fortran.h5");
    let logical = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f64);
    write_old_style(&path, &logical, r#"{"order": "F"}"#);
    let (meta, values) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
    assert_eq!(meta.order, Order::Fortran);
    let values = values.into_typed::<f64>().unwrap();
    assert_eq!(values, logical);
    assert!(values.t().is_standard_layout(), "loaded in Fortran order");
}

#[test]
fn ndstore_writes_its_attribute_as_a_fixed_length_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.h5");
    let a = DynArray::from(ArrayD::from_elem(IxDyn(&[2, 2]), 1u8));
    ndstore_hdf5::save_dyn(&path, "data", &a, &Default::default()).unwrap();
    let file = hdf5_metno::File::open(&path).unwrap();
    let attr = file.dataset("data").unwrap().attr("ndstore").unwrap();
    let descriptor = attr.dtype().unwrap().to_descriptor().unwrap();
    assert!(
        matches!(
            descriptor,
            hdf5_metno::types::TypeDescriptor::FixedAscii(_)
                | hdf5_metno::types::TypeDescriptor::FixedUnicode(_)
        ),
        "{descriptor:?}"
    );
    drop(file);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(4).any(|w| w == b"GCOL"),
        "the file has a global heap"
    );
}

/// The listing of `file` a child printed, after checking that the child survived `listing`.
fn listed(file: &Path, listing: &str) -> Vec<Entry> {
    let outcome = in_child("list", &[file.to_str().unwrap()], CHILD_TIMEOUT);
    outcome.assert_survived(listing);
    let json = outcome.lines("LIST ").join("");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {}", outcome.stdout))
}

#[test]
fn a_soft_link_cycle_is_listed_once_and_not_followed() {
    let file = soft_loop_file();
    let entries = listed(&file, "listing a file with a soft link to the root");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/g", "/g/loop", "/g/x"]);
    assert_eq!(
        entries[1].object,
        Object::SoftLink {
            target: "/".to_owned()
        }
    );
    assert!(entries[2].meta().is_some());
}

#[test]
fn a_hard_link_cycle_lists_each_object_once() {
    let file = hard_cycle_file();
    let entries = listed(&file, "listing a file with a cycle of hard links");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/g", "/g/back", "/g/x"]);
    assert_eq!(
        entries[1].object,
        Object::Alias {
            of: "/g".to_owned()
        }
    );
}

#[test]
fn external_links_are_reported_and_never_followed() {
    let file = external_link_file();
    let dir = tempfile::tempdir().unwrap();
    // Even when the file the link names exists, a load through the link does not open it.
    let copy = dir.path().join("with-link.h5");
    std::fs::copy(&file, &copy).unwrap();
    let outside = dir.path().join("outside.h5");
    let secret = DynArray::from(ArrayD::from_elem(IxDyn(&[4]), 42u64));
    ndstore_hdf5::save_dyn(&outside, "/secret", &secret, &Default::default()).unwrap();
    let entries = listed(&copy, "listing a file with an external link");
    assert_eq!(
        entries[0],
        Entry {
            path: "/ext".to_owned(),
            object: Object::ExternalLink {
                file: "outside.h5".to_owned(),
                object: "/secret".to_owned()
            }
        }
    );
    for err in common::load_errors(&copy, "ext") {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("external link"), "{err}");
    }
}

#[test]
fn chunks_claiming_more_bytes_than_the_file_holds_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let file = fake_chunk_file(dir.path());
    assert!(std::fs::metadata(&file).unwrap().len() < 64 << 10);
    let outcome = in_child("load-measured", &[file.to_str().unwrap()], CHILD_TIMEOUT);
    outcome.assert_survived("loading a dataset whose chunk index lies about its size");
    let result = outcome.lines("RESULT").join("");
    assert!(result.starts_with("ERR Corrupt"), "{result}");
    assert!(result.contains(file.to_str().unwrap()), "{result}");
    let peak: u64 = outcome.lines("PEAK").join("").parse().unwrap();
    assert!(peak < 512 << 20, "the load used {} MiB", peak >> 20);
    let err = ndstore_hdf5::trusted::load_dyn(&file, "data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn an_unallocated_huge_dataset_is_refused_before_anything_is_allocated() {
    let file = unallocated_file();
    assert!(std::fs::metadata(&file).unwrap().len() < 2048);
    let outcome = in_child("load-measured", &[file.to_str().unwrap()], CHILD_TIMEOUT);
    outcome.assert_survived("loading an unallocated 16 GiB dataset");
    let result = outcome.lines("RESULT").join("");
    assert!(result.starts_with("ERR OutOfMemory"), "{result}");
    assert!(result.contains("memory limit"), "{result}");
    assert!(result.contains("fill value"), "{result}");
    let peak: u64 = outcome.lines("PEAK").join("").parse().unwrap();
    assert!(peak < 512 << 20, "the load used {} MiB", peak >> 20);
    // The trusted path checks the same way.
    let err = ndstore_hdf5::trusted::load_dyn(&file, "data")
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
}

#[test]
fn unallocated_datasets_within_the_limits_load_as_their_fill_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fill.h5");
    {
        let file = hdf5_metno::File::create(&path).unwrap();
        file.new_dataset::<i32>()
            .with_dcpl(|p| p.fill_value(-7i32))
            .shape((1000, 3))
            .create("data")
            .unwrap();
    }
    let (meta, values) = ndstore_hdf5::load_dyn(&path, "data").unwrap();
    assert_eq!(meta.shape, vec![1000, 3]);
    assert!(values.bit_eq(&DynArray::from(ArrayD::from_elem(IxDyn(&[1000, 3]), -7i32))));
    // A caller's limit applies to it as to any array.
    let options = ReadOptions::new().memory_limit(1000);
    let err = ndstore_hdf5::load_with(&path, "data", &options)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
}

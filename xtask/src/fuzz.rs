//! `cargo xtask fuzz`: builds the libFuzzer targets of `fuzz/` with coverage instrumentation and
//! AddressSanitizer on the stable toolchain, seeds their corpora, runs them under memory
//! limits, and prints each target's execution count and crashes.
//!
//! No nightly toolchain is needed: the coverage flags (`-Cpasses=sancov-module` and LLVM's
//! `-sanitizer-coverage-*` options) are stable, and `-Zsanitizer=address` is accepted by the
//! stable compiler under `RUSTC_BOOTSTRAP=1`, the switch cargo-fuzz's flags otherwise need
//! nightly for. These are the flags cargo-fuzz passes; the crate keeps cargo-fuzz's layout, so
//! `cargo fuzz run TARGET` works too where cargo-fuzz and a nightly toolchain are at hand.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{cargo, run, target_dir, workspace_root};

pub const USAGE: &str = "\
usage: cargo xtask fuzz [--target T] [--time S] [--runs N] [--no-asan] [--build-only]
                        [--seeds] [--list]

Builds the fuzz targets of fuzz/ (libFuzzer, coverage instrumentation and AddressSanitizer, on
the stable toolchain through RUSTC_BOOTSTRAP=1; the first build takes about 6 minutes on two
cores, later ones under a minute), seeds each target's corpus from the conformance corpus
(conformance/corpus/) and the numpy/h5py files in fuzz/seeds/, and runs every target (or T) for
S seconds (default 60) or N executions, whichever ends first, at the lowest CPU priority. Each
run has a memory limit no correct load of an input of at most 32 KiB reaches (one allocation of
64 MiB, 2 GiB resident) and a 30 s limit per input. Corpora, crash inputs and logs are kept
under the target directory (fuzz/corpus/T, fuzz/artifacts/T, fuzz/logs/T.log); a crash input
reruns with `target/fuzz/x86_64-unknown-linux-gnu/release/T FILE`.

  --target T    one target (see --list)
  --time S      seconds per target (default 60 when --runs is not given)
  --runs N      executions per target
  --no-asan     build without AddressSanitizer (faster, but -malloc_limit_mb is then off)
  --build-only  build, do not run
  --seeds       regenerate fuzz/seeds/ with numpy and h5py (the Python environment of setup)
  --list        print the targets";

/// A fuzz target: its name, where its seeds come from, and how long its inputs may be.
struct Target {
    name: &'static str,
    /// Directories (relative to the workspace root) whose files seed the corpus, and the file
    /// extensions taken from them.
    seeds: &'static [(&'static str, &'static [&'static str])],
    /// How a seed file becomes an input of this target.
    shape: Shape,
    max_len: usize,
}

/// How seed files are turned into inputs.
#[derive(Clone, Copy)]
enum Shape {
    /// The file is the input.
    Whole,
    /// A selector byte (0: comma-separated, f64) before the file.
    TextSelector,
    /// Three bytes of metadata-line choices before the data lines (the file's own metadata
    /// line removed).
    TextMeta,
}

const NPY_SEEDS: &[(&str, &[&str])] = &[
    ("fuzz/seeds/npy", &["npy"]),
    ("conformance/corpus/file", &["npy"]),
    ("conformance/corpus/mmap", &["npy"]),
];
const TEXT_SEEDS: &[(&str, &[&str])] = &[
    ("fuzz/seeds/text", &["csv", "txt"]),
    ("conformance/corpus/text", &["csv"]),
];

const TARGETS: &[Target] = &[
    Target {
        name: "npy_header",
        seeds: NPY_SEEDS,
        shape: Shape::Whole,
        max_len: 12 << 10,
    },
    Target {
        name: "npy_load",
        seeds: NPY_SEEDS,
        shape: Shape::Whole,
        max_len: 32 << 10,
    },
    Target {
        name: "npz",
        seeds: &[
            ("fuzz/seeds/npz", &["npz"]),
            ("conformance/corpus/file", &["npz"]),
        ],
        shape: Shape::Whole,
        max_len: 32 << 10,
    },
    Target {
        name: "text_plain",
        seeds: TEXT_SEEDS,
        shape: Shape::TextSelector,
        max_len: 32 << 10,
    },
    Target {
        name: "text_meta",
        seeds: TEXT_SEEDS,
        shape: Shape::TextMeta,
        max_len: 32 << 10,
    },
    Target {
        name: "mmap_raw",
        seeds: NPY_SEEDS,
        shape: Shape::Whole,
        max_len: 32 << 10,
    },
    Target {
        name: "hdf5",
        seeds: &[
            ("fuzz/seeds/h5", &["h5"]),
            ("conformance/corpus/hdf5", &["h5"]),
        ],
        shape: Shape::Whole,
        max_len: 32 << 10,
    },
];

/// The largest single allocation a target may make: far above what a correct load of an input
/// of `max_len` needs (a deflated `.npz` member of 32 KiB may justify 33 MiB), far below what a
/// size read from a hostile header would ask for.
const MALLOC_LIMIT_MB: u32 = 64;
/// The resident-memory limit (AddressSanitizer's quarantine and shadow memory included).
const RSS_LIMIT_MB: u32 = 2048;
/// libFuzzer's exit code after SIGINT (`-interrupted_exitcode`).
const INTERRUPTED_EXIT_CODE: i32 = 72;
/// Seconds one input may take before it counts as a hang.
const INPUT_TIMEOUT_S: u32 = 30;

struct Options {
    target: Option<String>,
    time: Option<u64>,
    runs: Option<u64>,
    asan: bool,
    build_only: bool,
    seeds: bool,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options {
        target: None,
        time: None,
        runs: None,
        asan: true,
        build_only: false,
        seeds: false,
    };
    let mut iter = args.iter();
    let number = |value: Option<&String>, flag: &str| -> Result<u64, String> {
        value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a whole number"))
    };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--target" => {
                options.target = Some(iter.next().ok_or("--target needs a name")?.clone())
            }
            "--time" => options.time = Some(number(iter.next(), "--time")?),
            "--runs" => options.runs = Some(number(iter.next(), "--runs")?),
            "--no-asan" => options.asan = false,
            "--build-only" => options.build_only = true,
            "--seeds" => options.seeds = true,
            "--list" => {
                for target in TARGETS {
                    println!("{}", target.name);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown option '{other}'\n\n{USAGE}")),
        }
    }
    if let Some(name) = &options.target
        && !TARGETS.iter().any(|t| t.name == name)
    {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        return Err(format!(
            "unknown fuzz target '{name}' (known: {})",
            names.join(", ")
        ));
    }
    Ok(Some(options))
}

/// What one run of one target did.
struct Outcome {
    name: &'static str,
    executions: u64,
    seconds: f64,
    corpus: usize,
    /// Inputs that crashed the fuzzed process.
    crashes: Vec<PathBuf>,
    /// Inputs that killed a forked reader process (the isolated HDF5 reader) while the fuzzed
    /// process went on: the child inherits libFuzzer's crash handler, which saves the input.
    /// Isolation held, so these do not fail the run; they are listed for whoever owns the
    /// reader.
    reader_crashes: Vec<PathBuf>,
}

/// Runs the fuzz task; `setup` installs what the build needs (libhdf5) and returns the
/// project's Python environment (for `--seeds`). `--help` and `--list` need neither.
pub fn fuzz(
    args: &[String],
    setup: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<(), String> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    let python = setup()?;
    if options.seeds {
        run(Command::new(&python)
            .arg(
                workspace_root()
                    .join("fuzz")
                    .join("seeds")
                    .join("make_seeds.py"),
            )
            .arg(workspace_root().join("fuzz").join("seeds")))?;
    }
    let targets: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| options.target.as_deref().is_none_or(|name| name == t.name))
        .collect();
    let host = host_triple()?;
    let started = Instant::now();
    build(&targets, &host, options.asan)?;
    println!(
        "xtask: fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if options.build_only {
        return Ok(());
    }
    let scratch = scratch_dir();
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let mut outcomes = Vec::new();
    let mut result = Ok(());
    for target in &targets {
        match run_target(target, &host, &options, &scratch) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    result?;
    println!(
        "\n| target | executions | seconds | exec/s | corpus files | crashes | reader crashes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} |",
            o.name,
            o.executions,
            o.seconds,
            o.executions as f64 / o.seconds.max(0.001),
            o.corpus,
            o.crashes.len(),
            o.reader_crashes.len()
        );
        for input in &o.reader_crashes {
            println!(
                "xtask: {}: a reader process died on {}",
                o.name,
                input.display()
            );
        }
    }
    let crashed: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.crashes
                .iter()
                .map(|c| format!("{}: {}", o.name, c.display()))
        })
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found {} crash input(s):\n  {}",
            crashed.len(),
            crashed.join("\n  ")
        ))
    }
}

fn fuzz_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// Scratch files the targets write each input to: on tmpfs when the machine has one, so
/// path-based loads cost no disk traffic.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        fuzz_dir()
    };
    base.join(format!("ndstore-fuzz-scratch-{}", std::process::id()))
}

fn host_triple() -> Result<String, String> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

/// The flags cargo-fuzz passes: libFuzzer's coverage feedback (8-bit counters, the PC table,
/// comparison tracing), `cfg(fuzzing)`, every check on, and AddressSanitizer unless asked not.
fn rustflags(asan: bool) -> String {
    let mut flags = vec![
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "--cfg",
        "fuzzing",
    ];
    if asan {
        flags.push("-Zsanitizer=address");
    }
    flags.extend(["-Cdebug-assertions", "-Coverflow-checks"]);
    flags.join(" ")
}

/// Builds the targets. `--target` keeps build scripts and proc macros uninstrumented.
fn build(targets: &[&Target], host: &str, asan: bool) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", host, "--manifest-path"])
        .arg(workspace_root().join("fuzz").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(build_dir(asan));
    for target in targets {
        cmd.args(["--bin", target.name]);
    }
    cmd.env("RUSTFLAGS", rustflags(asan))
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    run(&mut cmd)
}

/// Where cargo builds the targets: the fuzz directory itself, or a separate one without
/// AddressSanitizer (other flags, other artifacts).
fn build_dir(asan: bool) -> PathBuf {
    if asan {
        fuzz_dir()
    } else {
        fuzz_dir().join("no-asan")
    }
}

fn binary(target: &Target, host: &str, asan: bool) -> PathBuf {
    build_dir(asan).join(host).join("release").join(target.name)
}

/// Writes the target's seeds (shaped for its input format) into a fresh directory.
fn write_seeds(target: &Target, dir: &Path) -> Result<usize, String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let root = workspace_root();
    let mut count = 0;
    for (source, extensions) in target.seeds {
        let Ok(entries) = fs::read_dir(root.join(source)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
            })
            .collect();
        files.sort();
        for file in files {
            let bytes =
                fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let input = shape_seed(target.shape, bytes);
            if input.len() > target.max_len {
                continue;
            }
            let name = format!(
                "{}-{}",
                source.replace('/', "-"),
                file.file_name().and_then(|n| n.to_str()).unwrap_or("seed")
            );
            fs::write(dir.join(name), input)
                .map_err(|e| format!("cannot write a seed into {}: {e}", dir.display()))?;
            count += 1;
        }
    }
    Ok(count)
}

fn shape_seed(shape: Shape, bytes: Vec<u8>) -> Vec<u8> {
    match shape {
        Shape::Whole => bytes,
        Shape::TextSelector => [vec![0], bytes].concat(),
        Shape::TextMeta => {
            let body = if bytes.starts_with(b"# ndstore:") {
                bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(Vec::new(), |nl| bytes[nl + 1..].to_vec())
            } else {
                bytes
            };
            // Comma-separated, little-endian f64 (kind 11), a first axis of 4 or more.
            [vec![0, 11, 1], body].concat()
        }
    }
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| entries.filter_map(Result::ok).count())
}

fn file_names(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir).map_or_else(
        |_| BTreeSet::new(),
        |entries| entries.filter_map(Result::ok).map(|e| e.path()).collect(),
    )
}

fn run_target(
    target: &Target,
    host: &str,
    options: &Options,
    scratch: &Path,
) -> Result<Outcome, String> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target.name);
    let seeds = dir.join("seeds").join(target.name);
    let artifacts = dir.join("artifacts").join(target.name);
    let logs = dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let seeded = write_seeds(target, &seeds)?;
    let before = file_names(&artifacts);
    let log_path = logs.join(format!("{}.log", target.name));
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(binary(target, host, options.asan))
        .arg(&corpus)
        .arg(&seeds)
        .arg(format!("-max_len={}", target.max_len))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    if options.asan {
        cmd.arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"));
    }
    match (options.time, options.runs) {
        (None, None) => {
            cmd.arg("-max_total_time=60");
        }
        (time, runs) => {
            if let Some(s) = time {
                cmd.arg(format!("-max_total_time={s}"));
            }
            if let Some(n) = runs {
                cmd.arg(format!("-runs={n}"));
            }
        }
    }
    // Fallible allocations (calloc that may return null) are tested as such, not as aborts.
    cmd.env(
        "ASAN_OPTIONS",
        "allocator_may_return_null=1:detect_leaks=1:abort_on_error=0",
    )
    .env("NDSTORE_FUZZ_SCRATCH", scratch)
    .stdout(Stdio::null())
    .stderr(log);
    println!(
        "xtask: fuzzing {} ({seeded} seeds, corpus {}), log {}",
        target.name,
        corpus.display(),
        log_path.display()
    );
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start the fuzz target {}: {e}", target.name))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let executions = executions(&text);
    let new_inputs: Vec<PathBuf> = file_names(&artifacts)
        .difference(&before)
        .cloned()
        .collect();
    // libFuzzer exits with 72 when interrupted (Ctrl-C): the run ended early, and counts.
    let interrupted = status.code() == Some(INTERRUPTED_EXIT_CODE);
    // A fuzzed process that ran to its end (or was interrupted) did not crash: what it saved
    // came from forked children. A failed run's inputs all count as crashes.
    let (crashes, reader_crashes) = if status.success() || interrupted {
        (Vec::new(), new_inputs)
    } else {
        (new_inputs, Vec::new())
    };
    println!(
        "xtask: {}: {executions} executions in {seconds:.0} s, {} crash input(s){}",
        target.name,
        crashes.len(),
        if status.success() {
            ""
        } else if interrupted {
            " (interrupted)"
        } else {
            " (the run failed; see its log)"
        }
    );
    if !status.success() && !interrupted && crashes.is_empty() {
        return Err(format!(
            "the fuzz target {} failed ({status}) without a crash input; see {}",
            target.name,
            log_path.display()
        ));
    }
    Ok(Outcome {
        name: target.name,
        executions,
        seconds,
        corpus: count_files(&corpus),
        crashes,
        reader_crashes,
    })
}

/// The execution count libFuzzer reports: its final statistics, or else its last status line
/// (`#N ...`), which is all a run that crashed leaves.
fn executions(log: &str) -> u64 {
    let stat = log.lines().rev().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.unwrap_or_else(|| {
        log.lines()
            .rev()
            .find_map(|l| {
                l.strip_prefix('#')
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    })
}

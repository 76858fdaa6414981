//! `cargo xtask bench [--full] [--only OP] [--sizes LIST] [--runs N]`: ndstore side by side
//! with numpy, h5py, pandas, polars, zarr-python and tensorstore on the same files, and with
//! boto3 on the same local S3 server (moto), at every size of the sweep (4 KiB,
//! 1 MiB, 64 MiB, 256 MiB; `--full` adds 1 GiB), with `dd` as the hardware limit, runs
//! alternating; quartiles and a verdict per row, a table on the terminal, and
//! `bench/report.{md,json}` plus one chart per operation under the target directory.

mod report;
mod stats;

use std::fs;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{cargo, run, target_dir, workspace_root};
use stats::{Quartiles, Verdict};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The hardware limit an operation is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Limit {
    None,
    /// `dd` writing the bytes into the page cache.
    WriteCache,
    /// `dd conv=fsync` writing the bytes.
    WriteSync,
    /// `dd` reading the named input file from the page cache.
    Read(&'static str),
}

/// What a target's ratio is measured against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Against {
    /// The best peer's times.
    Peer,
    /// This peer's times, whether it is the fastest or not (the row's peer column shows the
    /// first peer so named).
    Named(&'static str),
    /// The `dd` limit's times.
    Limit,
    /// An absolute time in milliseconds.
    Millis,
    /// Another ndstore operation (or the plain read `plain_read`), run in the same alternating
    /// rotation.
    Op(&'static str),
}

/// One target of an operation: at most `bound` times what it is measured against, at the
/// array sizes from `from` to `to` (inclusive).
#[derive(Clone, Copy)]
struct Target {
    bound: f64,
    against: Against,
    from: u64,
    to: u64,
}

impl Target {
    /// A target at every size.
    const fn always(bound: f64, against: Against) -> Target {
        Target {
            bound,
            against,
            from: 0,
            to: u64::MAX,
        }
    }

    /// A target from size `from` up.
    const fn from(bound: f64, against: Against, from: u64) -> Target {
        Target {
            bound,
            against,
            from,
            to: u64::MAX,
        }
    }

    /// A target below size `below` only.
    const fn below(bound: f64, against: Against, below: u64) -> Target {
        Target {
            bound,
            against,
            from: 0,
            to: below - 1,
        }
    }

    fn applies(&self, size: u64) -> bool {
        (self.from..=self.to).contains(&size)
    }
}

struct Spec {
    op: &'static str,
    peers: &'static [&'static str],
    limit: Limit,
    /// The targets of issue 19 (and of the issues before it); a row's verdict is the worst of
    /// those that apply at its size. None at all (an operation the issue asks to compare
    /// without a target) makes every verdict of the operation `information`.
    targets: &'static [Target],
    /// The CSV operations run once, on their own table, outside the size sweep.
    csv: bool,
}

/// The targets of issue 17: a synced save at most 1.0 × tensorstore with its file sync on.
const ZARR_WRITE_TARGETS: &[Target] = &[Target::always(1.0, Against::Named("tensorstore"))];

/// The targets of issue 17: a read at most 0.5 × zarr-python and 1.0 × tensorstore.
const ZARR_READ_TARGETS: &[Target] = &[
    Target::always(0.5, Against::Named("zarr-python")),
    Target::always(1.0, Against::Named("tensorstore")),
];

/// A whole-array Zarr save (`zarr_write_synced_<layout>`, the layouts bench-op's
/// `ZARR_LAYOUTS`: 1 MiB chunks, plain or in shards of 16 chunks, uncompressed or zstd),
/// atomic and synced, against tensorstore with its file sync on;
/// zarr-python (which never fsyncs) runs in the same rotation, shown without a verdict.
const fn zarr_write(op: &'static str) -> Spec {
    Spec {
        op,
        peers: &["tensorstore", "zarr-python"],
        limit: Limit::WriteSync,
        targets: ZARR_WRITE_TARGETS,
        csv: false,
    }
}

/// A full Zarr read into memory; the limit is `dd` reading the same values as one `.npy`.
const fn zarr_read(op: &'static str) -> Spec {
    Spec {
        op,
        peers: &["zarr-python", "tensorstore"],
        limit: Limit::Read("data.npy"),
        targets: ZARR_READ_TARGETS,
        csv: false,
    }
}

/// The first word of the operations on the local S3 server: their sizes start one, and the
/// report gives their throughput too.
const S3_PREFIX: &str = "s3_";

/// True for an operation on the local S3 server.
fn on_s3(op: &str) -> bool {
    op.starts_with(S3_PREFIX)
}

/// A whole-array Zarr save into (or read from) object storage on the local S3 server, 1 MiB
/// chunks in the plain layout, against boto3 issuing the same chunk requests on a pool as wide
/// as ndstore-zarr's. The issue gives no target: the ratio is information.
const fn s3_chunks(op: &'static str) -> Spec {
    Spec {
        op,
        peers: &["boto3"],
        limit: Limit::None,
        targets: &[],
        csv: false,
    }
}

const SPECS: &[Spec] = &[
    Spec {
        op: "npy_save_flushed",
        peers: &["numpy"],
        limit: Limit::WriteCache,
        targets: &[Target::from(0.95, Against::Peer, MIB)],
        csv: false,
    },
    // The peer is np.save followed by os.fsync of the file (and of its directory, which costs
    // nothing there: numpy rewrites the old file in place, so no directory entry changes).
    Spec {
        op: "npy_save_synced",
        peers: &["numpy"],
        limit: Limit::WriteSync,
        targets: &[
            // Below 64 MiB the fixed cost dominates: a new file and a rename make the directory
            // fsync a second journal commit, which an in-place overwrite does not need.
            Target::below(2.0, Against::Peer, 64 * MIB),
            Target::from(1.10, Against::Peer, 64 * MIB),
        ],
        csv: false,
    },
    Spec {
        op: "npy_load",
        peers: &["numpy"],
        limit: Limit::Read("data.npy"),
        targets: &[
            Target::always(1.0, Against::Peer),
            Target::from(1.25, Against::Op("plain_read"), 256 * MIB),
        ],
        csv: false,
    },
    Spec {
        op: "mmap_open",
        peers: &["numpy"],
        limit: Limit::None,
        targets: &[Target::always(0.1, Against::Millis)],
        csv: false,
    },
    Spec {
        op: "mmap_open_sum",
        peers: &["numpy"],
        limit: Limit::Read("data.npy"),
        targets: &[Target::always(1.0, Against::Peer)],
        csv: false,
    },
    Spec {
        op: "mmap_fill_sync",
        peers: &["numpy"],
        limit: Limit::WriteSync,
        targets: &[Target::always(1.0, Against::Peer)],
        csv: false,
    },
    // libhdf5 in this process: the trusted path, and the yardstick of the isolated one.
    Spec {
        op: "hdf5_read_in_process",
        peers: &["h5py"],
        limit: Limit::Read("data.h5"),
        targets: &[Target::always(1.0, Against::Peer)],
        csv: false,
    },
    // The default load: libhdf5 in a forked reader, the data read by the caller from its own
    // descriptor.
    Spec {
        op: "hdf5_read",
        peers: &["h5py"],
        limit: Limit::Read("data.h5"),
        targets: &[
            Target::always(1.0, Against::Peer),
            Target::always(1.15, Against::Op("hdf5_read_in_process")),
        ],
        csv: false,
    },
    Spec {
        op: "hdf5_write_sync",
        peers: &["h5py"],
        limit: Limit::WriteSync,
        targets: &[Target::always(1.05, Against::Limit)],
        csv: false,
    },
    zarr_write("zarr_write_synced_plain"),
    zarr_write("zarr_write_synced_zstd"),
    zarr_write("zarr_write_synced_sharded"),
    zarr_write("zarr_write_synced_sharded_zstd"),
    zarr_read("zarr_read_plain"),
    zarr_read("zarr_read_zstd"),
    zarr_read("zarr_read_sharded"),
    zarr_read("zarr_read_sharded_zstd"),
    s3_chunks("s3_write_chunks"),
    s3_chunks("s3_read_chunks"),
    Spec {
        op: "csv_read",
        peers: &["pandas", "polars"],
        limit: Limit::Read("data.csv"),
        targets: &[Target::always(1.0, Against::Peer)],
        csv: true,
    },
    Spec {
        op: "csv_write",
        peers: &["polars"],
        limit: Limit::WriteCache,
        targets: &[Target::always(1.0, Against::Peer)],
        csv: true,
    },
];

/// One operation at one size: the quartiles of both sides, and the verdict.
#[derive(Clone)]
struct Row {
    op: &'static str,
    size_bytes: u64,
    /// How many times ndstore's operation ran.
    runs: usize,
    ours: Quartiles,
    /// The fastest and slowest of ndstore's runs.
    range: (f64, f64),
    peer: String,
    theirs: Quartiles,
    /// The other peers of the same rotation.
    others: Vec<Other>,
    limit: Option<Quartiles>,
    peak_rss_bytes: u64,
    target: String,
    /// The ratio to the peer the targets allow at this size, when one is against the peer (the
    /// line on the chart).
    peer_target: Option<f64>,
    verdict: Verdict,
}

/// A peer of a row besides the one its peer column shows.
#[derive(Clone)]
struct Other {
    peer: String,
    times: Quartiles,
    /// The ratio a target allows against this peer, if one does.
    target: Option<f64>,
}

/// Runs a command that prints `ms X` lines (and maybe `rss N`); returns the samples and RSS.
fn timed(cmd: &mut Command) -> Result<(Vec<f64>, u64), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} {:?} failed: {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ms = Vec::new();
    let mut rss = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ms ") {
            ms.push(
                v.trim()
                    .parse()
                    .map_err(|e| format!("bad sample {v}: {e}"))?,
            );
        } else if let Some(v) = line.strip_prefix("rss ") {
            rss = v.trim().parse().unwrap_or(0);
        }
    }
    Ok((ms, rss))
}

/// Times one `dd`, in milliseconds.
fn dd(args: &[String]) -> Result<f64, String> {
    let start = Instant::now();
    let status = Command::new("dd")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run dd: {e}"))?;
    if !status.success() {
        return Err(format!("dd {args:?} failed"));
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn limit_args(limit: Limit, dir: &Path, bytes: u64) -> Option<Vec<String>> {
    // Blocks of 1 MiB, or one block of the whole size for smaller arrays.
    let block = bytes.clamp(1, MIB);
    let blocks = [
        format!("bs={block}"),
        format!("count={}", bytes.div_ceil(block)),
    ];
    let out = format!("of={}", dir.join("dd.bin").display());
    let write = |sync: bool| {
        let mut args = vec!["if=/dev/zero".to_owned(), out.clone()];
        args.extend(blocks.iter().cloned());
        if sync {
            args.push("conv=fsync".into());
        }
        args
    };
    match limit {
        Limit::None => None,
        Limit::WriteCache => Some(write(false)),
        Limit::WriteSync => Some(write(true)),
        Limit::Read(file) => Some(vec![
            format!("if={}", dir.join(file).display()),
            "of=/dev/null".into(),
            "bs=1M".into(),
        ]),
    }
}

fn bench_python(python: &Path) -> Result<(), String> {
    let requirements = workspace_root()
        .join("xtask")
        .join("bench-requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = target_dir()
        .join("py-venv")
        .join("bench-requirements.installed");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))
    .map_err(|e| {
        format!("{e}\nthe benchmark peers (pandas, polars) could not be installed from PyPI")
    })?;
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// What `cargo xtask bench` was asked for.
struct BenchOptions {
    full: bool,
    /// Only the operations whose names start with this.
    only: Option<String>,
    /// The array sizes, when not the mode's sweep.
    sizes: Option<Vec<u64>>,
    /// Alternating rounds per row, when not the size's default (for a quick look at the
    /// mechanics; too few for a verdict to mean much).
    rounds: Option<usize>,
}

impl BenchOptions {
    /// The mode as the report names it: `quick` or `full`, and the options that narrowed it.
    fn mode(&self) -> String {
        let mut mode = if self.full { "full" } else { "quick" }.to_owned();
        if let Some(sizes) = &self.sizes {
            let sizes: Vec<String> = sizes.iter().map(|&s| report::human(s)).collect();
            mode.push_str(&format!(", sizes {}", sizes.join(", ")));
        }
        if let Some(rounds) = self.rounds {
            mode.push_str(&format!(", {rounds} rounds"));
        }
        mode
    }
}

fn bench_options(args: &[String]) -> Result<BenchOptions, String> {
    let mut options = BenchOptions {
        full: false,
        only: None,
        sizes: None,
        rounds: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--full" => options.full = true,
            "--only" => options.only = Some(value()?),
            "--sizes" => {
                let list = value()?;
                let sizes = list.split(',').map(parse_size).collect::<Result<_, _>>()?;
                options.sizes = Some(sizes);
            }
            "--runs" => {
                let n = value()?;
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs needs a positive count, not '{n}'"))?;
                options.rounds = Some(n);
            }
            other => return Err(format!("unknown bench option '{other}'")),
        }
    }
    Ok(options)
}

/// A size such as `4K`, `1M`, `64M`, `1G` or a byte count, a multiple of 8 bytes (f64 values).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let unit = match unit.to_ascii_uppercase().trim_end_matches("IB") {
        "" | "B" => 1,
        "K" => KIB,
        "M" => MIB,
        "G" => GIB,
        _ => return Err(format!("bad size '{text}' (try 4K, 1M, 64M, 1G)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&bytes| bytes >= 8 && bytes.is_multiple_of(8))
        .ok_or_else(|| format!("bad size '{text}' (a positive multiple of 8 bytes)"))
}

/// The sizes of the sweep: 4 KiB, 1 MiB, 64 MiB and 256 MiB, and 1 GiB in full mode.
fn sweep(full: bool) -> Vec<u64> {
    let mut sizes = vec![4 * KIB, MIB, 64 * MIB, 256 * MIB];
    if full {
        sizes.push(GIB);
    }
    sizes
}

/// Alternating rounds, and runs per process in each round, at a size: at least 15 rounds,
/// and more where a run costs little, so the quartiles of small sizes are steady too.
fn counts(bytes: u64) -> (usize, usize) {
    match bytes {
        0..=65_536 => (40, 5),
        65_537..=4_194_304 => (25, 3),
        4_194_305..=268_435_456 => (15, 2),
        _ => (15, 1),
    }
}

/// Where and how much every operation runs: the driver, the peers' script, the data and the
/// counts of the size.
struct Setup<'a> {
    driver: PathBuf,
    python: &'a Path,
    peers_py: PathBuf,
    data: PathBuf,
    /// The f64 array's bytes.
    bytes: u64,
    /// The CSV's rows.
    rows: u64,
    /// Alternating rounds per operation.
    rounds: usize,
    /// Runs per process.
    reps: usize,
    /// The environment of the local S3 server, when this size's operations use one.
    s3_env: Vec<(&'static str, String)>,
}

impl Setup<'_> {
    /// The driver running ndstore operation `op`.
    fn ndstore(&self, op: &str) -> Command {
        let mut c = Command::new(&self.driver);
        c.arg(op)
            .arg(&self.data)
            .arg(self.reps.to_string())
            .arg(self.bytes.to_string())
            .arg(self.rows.to_string())
            .envs(self.s3_env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// The peers' script running `op` with `peer`.
    fn peer(&self, op: &str, peer: &str) -> Command {
        let mut c = Command::new(self.python);
        c.arg(&self.peers_py)
            .arg(op)
            .arg(peer)
            .arg(&self.data)
            .arg(self.reps.to_string())
            .envs(self.s3_env.iter().map(|(k, v)| (k, v)));
        c
    }
}

/// The bucket of the local S3 server the `s3_` operations use.
const S3_BUCKET: &str = "ndstore-bench";

/// The local S3 server of the `s3_` operations: moto's `ThreadedMotoServer`, started by the
/// conformance crate's launcher script with the benchmark's Python (xtask does not depend on
/// the conformance crate, which starts the same script for the tests), stopped when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts the server and waits until it has created [`S3_BUCKET`].
    fn start(python: &Path) -> Result<S3Server, String> {
        let script = workspace_root()
            .join("conformance")
            .join("src")
            .join("s3_server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(S3_BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {} {}: {e}", python.display(), script.display()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        match (read, line.trim().parse::<u16>()) {
            (Some(Ok(_)), Ok(port)) => Ok(S3Server { child, port }),
            _ => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "the local S3 server (moto) did not start ({status}); is moto[server] installed? run `cargo xtask setup`"
                ))
            }
        }
    }

    /// What bench-op and the peer need to reach the server, as the AWS environment variables
    /// name it (the settings of the conformance crate's `s3_settings`), and where the arrays
    /// go (`NDSTORE_BENCH_S3`).
    fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("NDSTORE_BENCH_S3", format!("s3://{S3_BUCKET}")),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing standard input ends the launcher; a kill makes sure.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo xtask bench [--full] [--only PREFIX] [--sizes LIST] [--runs N]`.
pub fn bench(args: &[String], python: &Path) -> Result<(), String> {
    let options = bench_options(args)?;
    bench_python(python)?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "ndstore-benches",
        "--bin",
        "bench-op",
        "--bin",
        "bench-chart",
    ]))?;
    let out_dir = target_dir().join("bench");
    let started = report::Machine::now();
    let specs: Vec<&Spec> = SPECS
        .iter()
        .filter(|spec| {
            options
                .only
                .as_deref()
                .is_none_or(|prefix| spec.op.starts_with(prefix))
        })
        .collect();
    let mut rows = Vec::new();
    let sizes = options.sizes.clone().unwrap_or_else(|| sweep(options.full));
    let sized: Vec<&Spec> = specs.iter().copied().filter(|s| !s.csv).collect();
    if !sized.is_empty() {
        for &bytes in &sizes {
            let dir = out_dir
                .join("data")
                .join(report::human(bytes).replace(' ', ""));
            let zarr = sized.iter().any(|s| s.op.starts_with("zarr_"));
            // A fresh server for each size, stopped with the size's data: moto keeps every
            // object in memory.
            let s3 = if sized.iter().any(|s| on_s3(s.op)) {
                Some(S3Server::start(python)?)
            } else {
                None
            };
            let setup = prepare(python, &dir, bytes, 0, zarr, s3.as_ref(), &options)?;
            for spec in &sized {
                rows.push(measure(spec, &setup)?);
            }
            drop(s3);
            // The data of the next size replaces this one's: a 1 GiB sweep would otherwise
            // keep several gigabytes of inputs and outputs on disk.
            fs::remove_dir_all(&dir)
                .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        }
    }
    if specs.iter().any(|s| s.csv) {
        let rows_csv = if options.full { 1_000_000 } else { 250_000 };
        let setup = prepare(
            python,
            &out_dir.join("data").join("csv"),
            4096,
            rows_csv,
            false,
            None,
            &options,
        )?;
        for spec in specs.iter().filter(|s| s.csv) {
            rows.push(measure(spec, &setup)?);
        }
    }
    // Grouped by operation, each operation's sizes in order.
    rows.sort_by_key(|r| (SPECS.iter().position(|s| s.op == r.op), r.size_bytes));
    let machine = started.finish();
    report::write(&rows, &options.mode(), &machine, &out_dir)?;
    run(
        Command::new(target_dir().join("release").join("bench-chart"))
            .arg(out_dir.join("report.json"))
            .arg(&out_dir),
    )
}

/// Makes the data files of one size in `dir`: the f64 array as `.npy` and HDF5 of `bytes`, as
/// Zarr arrays in every layout when `zarr`, as a plain Zarr array on the S3 server `s3` when
/// there is one, and a `rows` × 10 CSV when `rows` is not 0.
fn prepare<'a>(
    python: &'a Path,
    dir: &Path,
    bytes: u64,
    rows: u64,
    zarr: bool,
    s3: Option<&S3Server>,
    options: &BenchOptions,
) -> Result<Setup<'a>, String> {
    let s3_env = s3.map(S3Server::environment).unwrap_or_default();
    let driver = target_dir().join("release").join("bench-op");
    let peers_py = workspace_root()
        .join("benches")
        .join("peers")
        .join("peers.py");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run(Command::new(&driver)
        .arg("prepare")
        .arg(dir)
        .arg(bytes.to_string())
        .arg(rows.to_string())
        .args(zarr.then_some("zarr"))
        .args(s3.is_some().then_some("s3"))
        .envs(s3_env.iter().map(|(k, v)| (k, v))))?;
    let size = if rows > 0 {
        let csv = dir.join("data.csv");
        fs::metadata(&csv)
            .map_err(|e| format!("{}: {e}", csv.display()))?
            .len()
    } else {
        bytes
    };
    let (rounds, reps) = counts(size);
    let rounds = options.rounds.unwrap_or(rounds);
    println!(
        "xtask: {} ({}), {rounds} alternating rounds of {reps} runs",
        if rows > 0 {
            format!("a {rows} x 10 CSV")
        } else {
            "f64 array".to_owned()
        },
        report::human(size),
    );
    Ok(Setup {
        driver,
        python,
        peers_py,
        data: dir.to_path_buf(),
        bytes,
        rows,
        rounds,
        reps,
        s3_env,
    })
}

/// The times one operation's rounds collected.
#[derive(Default)]
struct Samples {
    ours: Vec<f64>,
    rss: u64,
    /// One list per peer.
    theirs: Vec<Vec<f64>>,
    limit: Vec<f64>,
    /// The operation a target at this size is measured against, and its times.
    versus: Option<(&'static str, Vec<f64>)>,
}

/// Runs `spec` with its peers, the operation a target compares it with and its limit,
/// alternating, and judges it.
fn measure(spec: &Spec, setup: &Setup<'_>) -> Result<Row, String> {
    let size = if spec.csv {
        fs::metadata(setup.data.join("data.csv"))
            .map_err(|e| e.to_string())?
            .len()
    } else {
        setup.bytes
    };
    let versus = spec.targets.iter().find_map(|t| match t.against {
        Against::Op(op) if t.applies(size) => Some((op, Vec::new())),
        _ => None,
    });
    // Warm-up: one run of each, discarded (page cache, Python imports).
    timed(&mut setup.ndstore(spec.op))?;
    for peer in spec.peers {
        timed(&mut setup.peer(spec.op, peer))?;
    }
    let mut samples = Samples {
        theirs: vec![Vec::new(); spec.peers.len()],
        versus,
        ..Samples::default()
    };
    for round in 0..setup.rounds {
        run_round(spec, setup, round, &mut samples)?;
        if let Some(args) = limit_args(spec.limit, &setup.data, size) {
            // dd writes a new file, as a save does: truncating an old one would add the
            // freeing of its blocks (and, on ext4, a forced write-back) to the limit.
            let _ = fs::remove_file(setup.data.join("dd.bin"));
            samples.limit.push(dd(&args)?);
        }
    }
    let row = judge(spec, size, samples);
    println!(
        "{:<20} {:>8}  ndstore {:>10.3} ms  {} {:>10.3} ms  ratio {:.2}  {}",
        row.op,
        report::human(row.size_bytes),
        row.ours.median,
        row.peer,
        row.theirs.median,
        row.ours.median / row.theirs.median,
        row.verdict.word()
    );
    Ok(row)
}

/// One round: ndstore, each peer and the compared operation once each, in an order that
/// alternates between rounds, so neither always meets a warmer or colder machine.
fn run_round(
    spec: &Spec,
    setup: &Setup<'_>,
    round: usize,
    samples: &mut Samples,
) -> Result<(), String> {
    // None is ndstore, Some(i) peer i, and Some(peers.len()) the compared operation (it runs
    // in the same rotation, so both meet the same machine).
    let others = spec.peers.len() + usize::from(samples.versus.is_some());
    let mut order: Vec<Option<usize>> =
        std::iter::once(None).chain((0..others).map(Some)).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    for who in order {
        match who {
            None => {
                let (ms, r) = timed(&mut setup.ndstore(spec.op))?;
                samples.ours.extend(ms);
                samples.rss = samples.rss.max(r);
            }
            Some(i) if i < spec.peers.len() => {
                samples.theirs[i].extend(timed(&mut setup.peer(spec.op, spec.peers[i]))?.0)
            }
            Some(_) => {
                if let Some((op, times)) = samples.versus.as_mut() {
                    times.extend(timed(&mut setup.ndstore(op))?.0);
                }
            }
        }
    }
    Ok(())
}

/// The row of `spec` from its samples: quartiles, the peer of its peer column (the first a
/// target names, or else the best: lowest median), the other peers, and the verdict of every
/// target that applies at `size`.
fn judge(spec: &Spec, size: u64, mut samples: Samples) -> Row {
    let runs = samples.ours.len();
    let ours = Quartiles::of(&mut samples.ours);
    let range = (
        samples.ours.first().copied().unwrap_or(f64::NAN),
        samples.ours.last().copied().unwrap_or(f64::NAN),
    );
    let mut peers: Vec<(String, Quartiles)> = spec
        .peers
        .iter()
        .zip(samples.theirs.iter_mut())
        .map(|(p, s)| (p.to_string(), Quartiles::of(s)))
        .collect();
    let named = spec
        .targets
        .iter()
        .filter(|t| t.applies(size))
        .find_map(|t| match t.against {
            Against::Named(peer) => Some(peer),
            _ => None,
        });
    let column = match named {
        Some(named) => peers.iter().position(|(p, _)| p == named),
        None => (0..peers.len()).min_by(|&a, &b| peers[a].1.median.total_cmp(&peers[b].1.median)),
    };
    let (peer, theirs) = match column {
        Some(i) => peers.remove(i),
        None => (String::new(), Quartiles::exact(f64::NAN)),
    };
    let mut others: Vec<Other> = peers
        .into_iter()
        .map(|(peer, times)| Other {
            peer,
            times,
            target: None,
        })
        .collect();
    let limit = (!samples.limit.is_empty()).then(|| Quartiles::of(&mut samples.limit));
    let mut versus = samples
        .versus
        .take()
        .map(|(op, mut times)| (op, Quartiles::of(&mut times)));
    let mut verdict = Verdict::None;
    let mut words = Vec::new();
    let mut peer_target = None;
    for target in spec.targets.iter().filter(|t| t.applies(size)) {
        let bound = target.bound;
        let (reference, word) = match target.against {
            Against::Peer => {
                peer_target = Some(bound);
                (theirs, format!("≤ {bound} × {peer}"))
            }
            Against::Named(named) if named == peer => {
                peer_target = Some(bound);
                (theirs, format!("≤ {bound} × {peer}"))
            }
            Against::Named(named) => match others.iter_mut().find(|o| o.peer == named) {
                Some(other) => {
                    other.target = Some(bound);
                    (other.times, compared(bound, named, ours, other.times))
                }
                None => (Quartiles::exact(f64::NAN), format!("≤ {bound} × {named}")),
            },
            Against::Limit => (
                limit.unwrap_or(Quartiles::exact(f64::NAN)),
                format!("≤ {bound} × dd"),
            ),
            Against::Millis => (Quartiles::exact(1.0), format!("≤ {bound} ms")),
            Against::Op(op) => match versus.as_mut() {
                Some((_, q)) => (*q, compared(bound, op, ours, *q)),
                None => (Quartiles::exact(f64::NAN), format!("≤ {bound} × {op}")),
            },
        };
        verdict = verdict.and(Verdict::judge(ours, reference.scaled(bound)));
        words.push(word);
    }
    Row {
        op: spec.op,
        size_bytes: size,
        runs,
        ours,
        range,
        peer,
        theirs,
        others,
        limit,
        peak_rss_bytes: samples.rss,
        target: if spec.targets.is_empty() {
            "none given".to_owned()
        } else if words.is_empty() {
            "-".to_owned()
        } else {
            words.join(" and ")
        },
        peer_target,
        verdict: if spec.targets.is_empty() {
            Verdict::Information
        } else {
            verdict
        },
    }
}

/// A target against something besides the peer column, with the ratio and the times:
/// `≤ 1.25 × plain_read (0.72; plain_read 209.2 ms (185.3–220.2) in the same rotation)`.
fn compared(bound: f64, what: &str, ours: Quartiles, theirs: Quartiles) -> String {
    format!(
        "≤ {bound} × {what} ({:.2}; {what} {} in the same rotation)",
        ours.median / theirs.median,
        report::ms_iqr(theirs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("3").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn options_take_values_and_refuse_unknown_ones() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = bench_options(&args(&["--only", "npy", "--sizes", "4K,1M", "--runs", "3"]));
        let o = o.map_err(|e| e.to_string());
        assert!(o.is_ok(), "{:?}", o.err());
        if let Ok(o) = o {
            assert_eq!(o.only.as_deref(), Some("npy"));
            assert_eq!(o.sizes, Some(vec![4096, 1 << 20]));
            assert_eq!(o.rounds, Some(3));
            assert!(!o.full);
        }
        assert!(bench_options(&args(&["--runs", "0"])).is_err());
        assert!(bench_options(&args(&["--only"])).is_err());
        assert!(bench_options(&args(&["--fast"])).is_err());
    }

    /// The spec of operation `op`.
    fn spec(op: &str) -> &'static Spec {
        SPECS
            .iter()
            .find(|s| s.op == op)
            .unwrap_or_else(|| panic!("no operation {op} in SPECS"))
    }

    /// The samples of a row whose peers took `theirs` (one list per peer, in the spec's order).
    fn samples(ours: &[f64], theirs: &[&[f64]]) -> Samples {
        Samples {
            ours: ours.to_vec(),
            theirs: theirs.iter().map(|t| t.to_vec()).collect(),
            ..Samples::default()
        }
    }

    #[test]
    fn a_named_peer_is_the_peer_column_even_when_another_is_faster() {
        let write = spec("zarr_write_synced_sharded_zstd");
        // tensorstore (the target's peer) is slower than zarr-python (information only).
        let row = judge(
            write,
            MIB,
            samples(&[9.0, 10.0, 11.0], &[&[19.0, 20.0, 21.0], &[4.0, 5.0, 6.0]]),
        );
        assert_eq!(row.peer, "tensorstore");
        assert_eq!(row.theirs.median, 20.0);
        assert_eq!(row.peer_target, Some(1.0));
        assert_eq!(row.verdict, Verdict::Met);
        assert_eq!(row.others.len(), 1);
        assert_eq!(row.others[0].peer, "zarr-python");
        assert_eq!(row.others[0].target, None);
        assert_eq!(row.target, "≤ 1 × tensorstore");
    }

    #[test]
    fn every_named_target_counts_toward_the_verdict() {
        let read = spec("zarr_read_plain");
        // Half of zarr-python's time is met, but tensorstore is faster than ndstore.
        let row = judge(
            read,
            MIB,
            samples(&[9.0, 10.0, 11.0], &[&[29.0, 30.0, 31.0], &[4.0, 5.0, 6.0]]),
        );
        assert_eq!(row.peer, "zarr-python");
        assert_eq!(row.peer_target, Some(0.5));
        assert_eq!(row.others.len(), 1);
        assert_eq!(row.others[0].peer, "tensorstore");
        assert_eq!(row.others[0].target, Some(1.0));
        assert_eq!(row.verdict, Verdict::Missed);
        assert!(
            row.target.starts_with(
                "≤ 0.5 × zarr-python and ≤ 1 × tensorstore (2.00; tensorstore 5.000 ms"
            ),
            "{}",
            row.target
        );
        // Both met: the verdict is met.
        let row = judge(
            read,
            MIB,
            samples(
                &[9.0, 10.0, 11.0],
                &[&[29.0, 30.0, 31.0], &[14.0, 15.0, 16.0]],
            ),
        );
        assert_eq!(row.verdict, Verdict::Met);
    }

    #[test]
    fn rows_without_any_target_are_information_at_every_size() {
        for op in ["s3_write_chunks", "s3_read_chunks"] {
            let s3 = spec(op);
            assert!(on_s3(s3.op));
            for size in [4 * KIB, 64 * MIB] {
                let row = judge(
                    s3,
                    size,
                    samples(&[9.0, 10.0, 11.0], &[&[19.0, 20.0, 21.0]]),
                );
                assert_eq!(row.peer, "boto3");
                assert_eq!(row.verdict, Verdict::Information);
                assert_eq!(row.verdict.word(), "information");
                assert_eq!(row.target, "none given");
                assert_eq!(row.peer_target, None);
            }
        }
        // A row whose targets only miss its size is still `none`, as before.
        let flushed = spec("npy_save_flushed");
        let row = judge(flushed, 4 * KIB, samples(&[1.0], &[&[2.0]]));
        assert_eq!(row.verdict, Verdict::None);
        assert_eq!(row.target, "-");
        assert!(!on_s3(flushed.op));
    }

    #[test]
    fn the_best_peer_is_the_column_without_a_named_target() {
        let csv = spec("csv_read");
        let row = judge(csv, MIB, samples(&[9.0], &[&[30.0], &[20.0]]));
        assert_eq!(row.peer, "polars");
        assert_eq!(row.others.len(), 1);
        assert_eq!(row.others[0].peer, "pandas");
    }

    #[test]
    fn targets_apply_at_their_sizes() {
        let synced = SPECS.iter().find(|s| s.op == "npy_save_synced");
        let bounds = |size| {
            synced.map_or(Vec::new(), |s| {
                s.targets
                    .iter()
                    .filter(|t| t.applies(size))
                    .map(|t| t.bound)
                    .collect()
            })
        };
        assert_eq!(bounds(4 * KIB), vec![2.0]);
        assert_eq!(bounds(64 * MIB), vec![1.10]);
        assert_eq!(bounds(GIB), vec![1.10]);
        assert_eq!(counts(4 * KIB), (40, 5));
        assert!(sweep(false).iter().all(|&s| counts(s).0 >= 15));
    }
}

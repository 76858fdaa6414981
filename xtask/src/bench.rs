//! `cargo xtask bench [--full]`: ndstore side by side with numpy, h5py, pandas and polars on the
//! same files, with `dd` as the hardware limit, runs alternating; a table on the terminal and
//! `bench/report.{md,json}` under the target directory.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, run, target_dir, workspace_root};

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

struct Spec {
    op: &'static str,
    peers: &'static [&'static str],
    limit: Limit,
    /// The target, as the ratio that must not be exceeded and what it is measured against.
    target: (f64, Against),
    /// A second target: at most this ratio of another ndstore operation's median, that
    /// operation run in the same alternating rotation.
    versus: Option<(f64, &'static str)>,
    csv: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Against {
    Peer,
    Limit,
    /// An absolute time in milliseconds.
    Millis,
}

const SPECS: &[Spec] = &[
    Spec {
        op: "npy_save_flushed",
        peers: &["numpy"],
        limit: Limit::WriteCache,
        target: (0.95, Against::Peer),
        versus: None,
        csv: false,
    },
    Spec {
        op: "npy_save_synced",
        peers: &["numpy"],
        limit: Limit::WriteSync,
        target: (1.05, Against::Limit),
        versus: None,
        csv: false,
    },
    Spec {
        op: "npy_load",
        peers: &["numpy"],
        limit: Limit::Read("data.npy"),
        target: (1.0, Against::Peer),
        versus: None,
        csv: false,
    },
    Spec {
        op: "mmap_open",
        peers: &["numpy"],
        limit: Limit::None,
        target: (0.1, Against::Millis),
        versus: None,
        csv: false,
    },
    Spec {
        op: "mmap_open_sum",
        peers: &["numpy"],
        limit: Limit::Read("data.npy"),
        target: (1.0, Against::Peer),
        versus: None,
        csv: false,
    },
    Spec {
        op: "mmap_fill_sync",
        peers: &["numpy"],
        limit: Limit::WriteSync,
        target: (1.0, Against::Peer),
        versus: None,
        csv: false,
    },
    // libhdf5 in this process: the trusted path, and the yardstick of the isolated one.
    Spec {
        op: "hdf5_read_in_process",
        peers: &["h5py"],
        limit: Limit::Read("data.h5"),
        target: (1.0, Against::Peer),
        versus: None,
        csv: false,
    },
    // The default load: libhdf5 in a forked reader, the data read by the caller from its own
    // descriptor.
    Spec {
        op: "hdf5_read",
        peers: &["h5py"],
        limit: Limit::Read("data.h5"),
        target: (1.0, Against::Peer),
        versus: Some((1.15, "hdf5_read_in_process")),
        csv: false,
    },
    Spec {
        op: "hdf5_write_sync",
        peers: &["h5py"],
        limit: Limit::WriteSync,
        target: (1.05, Against::Limit),
        versus: None,
        csv: false,
    },
    Spec {
        op: "csv_read",
        peers: &["pandas", "polars"],
        limit: Limit::Read("data.csv"),
        target: (1.0, Against::Peer),
        versus: None,
        csv: true,
    },
    Spec {
        op: "csv_write",
        peers: &["polars"],
        limit: Limit::WriteCache,
        target: (1.0, Against::Peer),
        versus: None,
        csv: true,
    },
];

struct Row {
    op: &'static str,
    size_bytes: u64,
    ndstore_ms: f64,
    /// The fastest and slowest of ndstore's runs.
    ndstore_range: (f64, f64),
    peer: String,
    peer_ms: f64,
    limit_ms: f64,
    peak_rss_bytes: u64,
    target: String,
    met: bool,
}

fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
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
    let mib = bytes.div_ceil(1 << 20).max(1);
    let out = format!("of={}", dir.join("dd.bin").display());
    match limit {
        Limit::None => None,
        Limit::WriteCache => Some(vec![
            "if=/dev/zero".into(),
            out,
            "bs=1M".into(),
            format!("count={mib}"),
        ]),
        Limit::WriteSync => Some(vec![
            "if=/dev/zero".into(),
            out,
            "bs=1M".into(),
            format!("count={mib}"),
            "conv=fsync".into(),
        ]),
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
}

fn bench_options(args: &[String]) -> Result<BenchOptions, String> {
    let full = args.iter().any(|a| a == "--full");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| {
            args.get(i + 1)
                .cloned()
                .ok_or("--only needs an operation prefix")
        })
        .transpose()?;
    if let Some(other) = args
        .iter()
        .enumerate()
        .find(|(i, a)| *a != "--full" && *a != "--only" && (*i == 0 || args[i - 1] != "--only"))
    {
        return Err(format!("unknown bench option '{}'", other.1));
    }
    Ok(BenchOptions { full, only })
}

/// Where and how much every operation runs: the driver, the peers' script, the data and the
/// counts of the mode.
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
    /// The CSV file's bytes.
    csv_bytes: u64,
}

impl Setup<'_> {
    /// The driver running ndstore operation `op`.
    fn ndstore(&self, op: &str) -> Command {
        let mut c = Command::new(&self.driver);
        c.arg(op)
            .arg(&self.data)
            .arg(self.reps.to_string())
            .arg(self.bytes.to_string())
            .arg(self.rows.to_string());
        c
    }

    /// The peers' script running `op` with `peer`.
    fn peer(&self, op: &str, peer: &str) -> Command {
        let mut c = Command::new(self.python);
        c.arg(&self.peers_py)
            .arg(op)
            .arg(peer)
            .arg(&self.data)
            .arg(self.reps.to_string());
        c
    }
}

/// `cargo xtask bench [--full] [--only PREFIX]`.
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
    ]))?;
    let out_dir = target_dir().join("bench");
    let setup = prepare(python, &out_dir, options.full)?;
    let mut rows_out = Vec::new();
    for spec in SPECS {
        if options
            .only
            .as_deref()
            .is_some_and(|prefix| !spec.op.starts_with(prefix))
        {
            continue;
        }
        let row = measure(spec, &setup)?;
        println!(
            "{:<18} ndstore {:>9.3} ms  {} {:>9.3} ms  ratio {:.2}",
            row.op,
            row.ndstore_ms,
            row.peer,
            row.peer_ms,
            row.ndstore_ms / row.peer_ms
        );
        rows_out.push(row);
    }
    write_report(&rows_out, options.full, setup.bytes, &out_dir)
}

/// Makes the data files of the mode under `out_dir`.
fn prepare<'a>(python: &'a Path, out_dir: &Path, full: bool) -> Result<Setup<'a>, String> {
    let driver = target_dir().join("release").join("bench-op");
    let peers_py = workspace_root()
        .join("benches")
        .join("peers")
        .join("peers.py");
    let (bytes, rows, rounds, reps): (u64, u64, usize, usize) = if full {
        (256 << 20, 1_000_000, 5, 3)
    } else {
        (64 << 20, 250_000, 3, 3)
    };
    let data = out_dir.join("data");
    fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    println!(
        "xtask: preparing {} MiB of f64 and a {rows} x 10 CSV in {}",
        bytes >> 20,
        data.display()
    );
    run(Command::new(&driver)
        .arg("prepare")
        .arg(&data)
        .arg(bytes.to_string())
        .arg(rows.to_string()))?;
    let csv_bytes = fs::metadata(data.join("data.csv"))
        .map_err(|e| e.to_string())?
        .len();
    Ok(Setup {
        driver,
        python,
        peers_py,
        data,
        bytes,
        rows,
        rounds,
        reps,
        csv_bytes,
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
    /// The operation of the spec's second target.
    versus: Vec<f64>,
}

/// Runs `spec` with its peers, its second target's operation and its limit, alternating, and
/// judges it.
fn measure(spec: &Spec, setup: &Setup<'_>) -> Result<Row, String> {
    let size = if spec.csv {
        setup.csv_bytes
    } else {
        setup.bytes
    };
    // Warm-up: one run of each, discarded (page cache, Python imports).
    timed(&mut setup.ndstore(spec.op))?;
    for peer in spec.peers {
        timed(&mut setup.peer(spec.op, peer))?;
    }
    let mut samples = Samples {
        theirs: vec![Vec::new(); spec.peers.len()],
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
    Ok(judge(spec, size, samples))
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
    let others = spec.peers.len() + usize::from(spec.versus.is_some());
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
                if let Some((_, op)) = spec.versus {
                    samples.versus.extend(timed(&mut setup.ndstore(op))?.0);
                }
            }
        }
    }
    Ok(())
}

/// The row of `spec` from its samples: medians, the best peer, and whether the targets were
/// met.
fn judge(spec: &Spec, size: u64, mut samples: Samples) -> Row {
    let ours = &mut samples.ours;
    let ndstore_ms = median(ours);
    let ndstore_range = (
        ours.first().copied().unwrap_or(f64::NAN),
        ours.last().copied().unwrap_or(f64::NAN),
    );
    let (peer, peer_ms) = spec
        .peers
        .iter()
        .zip(samples.theirs.iter_mut())
        .map(|(p, s)| (p.to_string(), median(s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    let limit_ms = if samples.limit.is_empty() {
        0.0
    } else {
        median(&mut samples.limit)
    };
    let (bound, against) = spec.target;
    let (mut target, mut met) = match against {
        Against::Peer => (format!("≤ {bound} × {peer}"), ndstore_ms <= bound * peer_ms),
        Against::Limit => (format!("≤ {bound} × dd"), ndstore_ms <= bound * limit_ms),
        Against::Millis => (format!("≤ {bound} ms"), ndstore_ms <= bound),
    };
    if let Some((ratio, other)) = spec.versus {
        let theirs = median(&mut samples.versus);
        target.push_str(&format!(
            " and ≤ {ratio} × {other} ({:.2}; {other} {theirs:.3} ms in the same rotation)",
            ndstore_ms / theirs
        ));
        met = met && ndstore_ms <= ratio * theirs;
    }
    Row {
        op: spec.op,
        size_bytes: size,
        ndstore_ms,
        ndstore_range,
        peer,
        peer_ms,
        limit_ms,
        peak_rss_bytes: samples.rss,
        target,
        met,
    }
}

/// Prints the report and writes it as Markdown and JSON into `out_dir`.
fn write_report(rows: &[Row], full: bool, bytes: u64, out_dir: &Path) -> Result<(), String> {
    // The memory target: a load's peak RSS within 1.05 × the array's bytes + 16 MiB.
    let load_rss = rows
        .iter()
        .find(|r| r.op == "npy_load")
        .map_or(0, |r| r.peak_rss_bytes);
    let rss_limit = (bytes as f64 * 1.05) as u64 + (16 << 20);
    let markdown = to_markdown(rows, full, load_rss, rss_limit);
    println!("\n{markdown}");
    fs::write(out_dir.join("report.md"), &markdown).map_err(|e| e.to_string())?;
    fs::write(out_dir.join("report.json"), to_json(rows, full)).map_err(|e| e.to_string())?;
    println!(
        "written: {} and {}",
        out_dir.join("report.md").display(),
        out_dir.join("report.json").display()
    );
    Ok(())
}

fn fmt_ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".to_owned()
    }
}

fn to_markdown(rows: &[Row], full: bool, load_rss: u64, rss_limit: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| operation | size | ndstore (median, min–max) | best peer (median) | ndstore / peer | dd limit | ndstore / limit | peak RSS | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let limit = if r.limit_ms > 0.0 {
            format!("{:.1} ms", r.limit_ms)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} ms ({:.1}–{:.1}) | {} {:.3} ms | {} | {} | {} | {} MiB | {} | {} |",
            r.op,
            human(r.size_bytes),
            r.ndstore_ms,
            r.ndstore_range.0,
            r.ndstore_range.1,
            r.peer,
            r.peer_ms,
            fmt_ratio(r.ndstore_ms, r.peer_ms),
            limit,
            fmt_ratio(r.ndstore_ms, r.limit_ms),
            r.peak_rss_bytes >> 20,
            r.target,
            if r.met { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        out,
        "\n{} mode; medians of alternating runs on this machine. npy load peak RSS {} MiB, target ≤ {} MiB (1.05 × data + 16 MiB): {}.",
        if full { "full" } else { "quick" },
        load_rss >> 20,
        rss_limit >> 20,
        if load_rss <= rss_limit {
            "met"
        } else {
            "missed"
        }
    );
    out
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

fn to_json(rows: &[Row], full: bool) -> String {
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v:.4}")
        } else {
            "null".to_owned()
        }
    };
    let mut out = format!(
        "{{\"mode\":\"{}\",\"rows\":[",
        if full { "full" } else { "quick" }
    );
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let ratio = if r.peer_ms > 0.0 {
            r.ndstore_ms / r.peer_ms
        } else {
            f64::NAN
        };
        let ratio_to_limit = if r.limit_ms > 0.0 {
            r.ndstore_ms / r.limit_ms
        } else {
            f64::NAN
        };
        let _ = write!(
            out,
            "{{\"op\":\"{}\",\"size_bytes\":{},\"ndstore_ms\":{},\"ndstore_min_ms\":{},\"ndstore_max_ms\":{},\"peer\":\"{}\",\"peer_ms\":{},\"ratio\":{},\"limit_ms\":{},\"ratio_to_limit\":{},\"peak_rss_bytes\":{},\"target\":\"{}\",\"met\":{}}}",
            r.op,
            r.size_bytes,
            num(r.ndstore_ms),
            num(r.ndstore_range.0),
            num(r.ndstore_range.1),
            r.peer,
            num(r.peer_ms),
            num(ratio),
            num(r.limit_ms),
            num(ratio_to_limit),
            r.peak_rss_bytes,
            r.target,
            r.met
        );
    }
    out.push_str("]}\n");
    out
}

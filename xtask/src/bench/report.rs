//! The benchmark's report: the table with quartiles and verdicts as Markdown on the terminal
//! and in `report.md`, the same rows in `report.json` (which the chart drawer reads), and a
//! description of the machine and how busy it was.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::stats::{Quartiles, Verdict};
use super::{Other, Row};

/// Which machine ran the benchmark, and how busy it was at the start and the end.
pub struct Machine {
    /// `uname -srm`, the core count and the date.
    pub description: String,
    load_start: String,
    load_end: String,
}

/// The first line a command prints, or `?`.
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The one-minute load average.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

impl Machine {
    /// The machine as the benchmark starts.
    pub fn now() -> Machine {
        Machine {
            description: format!(
                "{}, {} cores, {}",
                first_line("uname", &["-srm"]),
                first_line("nproc", &[]),
                first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
            ),
            load_start: load_average(),
            load_end: String::new(),
        }
    }

    /// The machine as the benchmark ends.
    pub fn finish(mut self) -> Machine {
        self.load_end = load_average();
        self
    }

    /// One line saying where and when the run was made, and how busy the machine was.
    pub fn caption(&self) -> String {
        format!(
            "{}; load average {} at the start, {} at the end",
            self.description, self.load_start, self.load_end
        )
    }
}

/// Prints the report and writes it as Markdown and JSON into `out_dir`.
pub fn write(rows: &[Row], mode: &str, machine: &Machine, out_dir: &Path) -> Result<(), String> {
    let markdown = to_markdown(rows, mode, machine);
    println!("\n{markdown}");
    fs::create_dir_all(out_dir).map_err(|e| e.to_string())?;
    fs::write(out_dir.join("report.md"), &markdown).map_err(|e| e.to_string())?;
    fs::write(out_dir.join("report.json"), to_json(rows, mode, machine))
        .map_err(|e| e.to_string())?;
    println!(
        "written: {} and {}",
        out_dir.join("report.md").display(),
        out_dir.join("report.json").display()
    );
    Ok(())
}

/// A size in the largest binary unit that divides it: `4 KiB`, `64 MiB`, `1 GiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// Milliseconds with three significant digits or more: `0.0521`, `4.38`, `312`.
fn ms(value: f64) -> String {
    if !value.is_finite() {
        "-".to_owned()
    } else if value < 1.0 {
        format!("{value:.4}")
    } else if value < 10.0 {
        format!("{value:.3}")
    } else if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// A median and its interquartile range: `4.38 ms (4.21–4.60)`.
pub fn ms_iqr(q: Quartiles) -> String {
    format!("{} ms ({}–{})", ms(q.median), ms(q.p25), ms(q.p75))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".to_owned()
    }
}

/// The throughput of moving `bytes` in `ms` milliseconds, in MiB/s.
fn mib_per_s(bytes: u64, ms: f64) -> f64 {
    if ms > 0.0 {
        bytes as f64 / (1u64 << 20) as f64 / (ms / 1e3)
    } else {
        f64::NAN
    }
}

/// The throughput of `bytes` at a median and its interquartile range of times, three
/// significant digits or more: `85.3 MiB/s (80.1–90.2)`, `0.195 MiB/s (0.146–0.244)` (the
/// slower quartile of times is the lower one of throughput).
fn throughput(bytes: u64, q: Quartiles) -> String {
    let rate = |ms: f64| {
        let v = mib_per_s(bytes, ms);
        if !v.is_finite() {
            "-".to_owned()
        } else if v < 1.0 {
            format!("{v:.3}")
        } else if v < 10.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.1}")
        }
    };
    format!("{} MiB/s ({}–{})", rate(q.median), rate(q.p75), rate(q.p25))
}

/// The memory target of a load: peak RSS within 1.05 × the array's bytes + 16 MiB.
fn rss_limit(bytes: u64) -> u64 {
    (bytes as f64 * 1.05) as u64 + (16 << 20)
}

fn to_markdown(rows: &[Row], mode: &str, machine: &Machine) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| operation | size | ndstore, median (IQR) | peer, median (IQR) | ndstore / peer | dd limit, median (IQR) | ndstore / limit | peak RSS | target | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (limit, to_limit) = match r.limit {
            Some(l) => (ms_iqr(l), ratio(r.ours.median, l.median)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} | {} | {} | {} MiB | {} | {} |",
            r.op,
            human(r.size_bytes),
            ms_iqr(r.ours),
            r.peer,
            ms_iqr(r.theirs),
            ratio(r.ours.median, r.theirs.median),
            limit,
            to_limit,
            r.peak_rss_bytes >> 20,
            r.target,
            r.verdict.word()
        );
    }
    let _ = writeln!(
        out,
        "\n{mode} mode: medians and interquartile ranges of alternating runs (each row's run count is in report.json). \
         The peer column is the peer a target names, or else the fastest. A verdict is met when ndstore's whole IQR lies below the target's (the reference's IQR times the allowed ratio), \
         missed when it lies wholly above, and within noise when the two overlap."
    );
    for r in rows.iter().filter(|r| !r.others.is_empty()) {
        let others: Vec<String> = r
            .others
            .iter()
            .map(|o| {
                format!(
                    "{} {}, ndstore / {} {}{}",
                    o.peer,
                    ms_iqr(o.times),
                    o.peer,
                    ratio(r.ours.median, o.times.median),
                    if o.target.is_some() {
                        ""
                    } else {
                        " (no target: information)"
                    }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "\n{} at {}, the other peers of the same rotation: {}.",
            r.op,
            human(r.size_bytes),
            others.join("; ")
        );
    }
    for r in rows.iter().filter(|r| super::on_s3(r.op)) {
        let _ = writeln!(
            out,
            "\n{} at {}, throughput (medians and IQRs): ndstore {}, {} {}.",
            r.op,
            human(r.size_bytes),
            throughput(r.size_bytes, r.ours),
            r.peer,
            throughput(r.size_bytes, r.theirs)
        );
    }
    for r in rows.iter().filter(|r| r.op == "npy_load") {
        let limit = rss_limit(r.size_bytes);
        let _ = writeln!(
            out,
            "\nnpy load of {}: peak RSS {} MiB, target ≤ {} MiB (1.05 × data + 16 MiB): {}.",
            human(r.size_bytes),
            r.peak_rss_bytes >> 20,
            limit >> 20,
            if r.peak_rss_bytes <= limit {
                "met"
            } else {
                "missed"
            }
        );
    }
    let _ = writeln!(out, "\nMachine: {}.", machine.caption());
    out
}

/// A JSON number, or `null` for NaN and infinities.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".to_owned()
    }
}

/// A JSON string of text without control characters (operation names, targets, the machine).
fn string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn to_json(rows: &[Row], mode: &str, machine: &Machine) -> String {
    let mut out = format!(
        "{{\"mode\":{},\"machine\":{},\"rows\":[",
        string(mode),
        string(&machine.caption())
    );
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let limit = r.limit.unwrap_or(Quartiles::exact(f64::NAN));
        let fraction = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let others: Vec<String> = r
            .others
            .iter()
            .map(|o| other_json(o, fraction(r.ours.median, o.times.median)))
            .collect();
        let _ = write!(
            out,
            "\n{{\"op\":{},\"size_bytes\":{},\"runs\":{},\"ndstore_ms\":{},\"p25_ms\":{},\"p75_ms\":{},\"ndstore_min_ms\":{},\"ndstore_max_ms\":{},\"peer\":{},\"peer_ms\":{},\"peer_p25_ms\":{},\"peer_p75_ms\":{},\"ratio\":{},\"limit_ms\":{},\"limit_p25_ms\":{},\"limit_p75_ms\":{},\"ratio_to_limit\":{},\"ndstore_mib_s\":{},\"peer_mib_s\":{},\"peak_rss_bytes\":{},\"target\":{},\"peer_target\":{},\"verdict\":{},\"met\":{},\"other_peers\":[{}]}}",
            string(r.op),
            r.size_bytes,
            r.runs,
            num(r.ours.median),
            num(r.ours.p25),
            num(r.ours.p75),
            num(r.range.0),
            num(r.range.1),
            string(&r.peer),
            num(r.theirs.median),
            num(r.theirs.p25),
            num(r.theirs.p75),
            num(fraction(r.ours.median, r.theirs.median)),
            num(limit.median),
            num(limit.p25),
            num(limit.p75),
            num(fraction(r.ours.median, limit.median)),
            num(mib_per_s(r.size_bytes, r.ours.median)),
            num(mib_per_s(r.size_bytes, r.theirs.median)),
            r.peak_rss_bytes,
            string(&r.target),
            r.peer_target.map_or("null".to_owned(), num),
            string(r.verdict.word()),
            r.verdict == Verdict::Met,
            others.join(",")
        );
    }
    out.push_str("\n]}\n");
    out
}

/// One of a row's other peers in `report.json`, with the same field names as the row's peer
/// (`peer_target` the ratio a target allows against it, or null).
fn other_json(other: &Other, ratio: f64) -> String {
    format!(
        "{{\"peer\":{},\"peer_ms\":{},\"peer_p25_ms\":{},\"peer_p75_ms\":{},\"ratio\":{},\"peer_target\":{}}}",
        string(&other.peer),
        num(other.times.median),
        num(other.times.p25),
        num(other.times.p75),
        num(ratio),
        other.target.map_or("null".to_owned(), num)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(verdict: Verdict) -> Row {
        Row {
            op: "npy_load",
            size_bytes: 1 << 20,
            runs: 75,
            ours: Quartiles {
                p25: 0.9,
                median: 1.0,
                p75: 1.1,
            },
            range: (0.8, 1.5),
            peer: "numpy".to_owned(),
            theirs: Quartiles {
                p25: 1.9,
                median: 2.0,
                p75: 2.1,
            },
            others: Vec::new(),
            limit: None,
            peak_rss_bytes: 3 << 20,
            target: "≤ 1 × numpy".to_owned(),
            peer_target: Some(1.0),
            verdict,
        }
    }

    #[test]
    fn the_json_rows_carry_quartiles_and_the_verdict() {
        let machine = Machine {
            description: "test".to_owned(),
            load_start: "0.5".to_owned(),
            load_end: "0.7".to_owned(),
        };
        let json = to_json(&[row(Verdict::WithinNoise)], "quick", &machine);
        for field in [
            "\"p25_ms\":0.9000",
            "\"p75_ms\":1.1000",
            "\"peer_p25_ms\":1.9000",
            "\"peer_p75_ms\":2.1000",
            "\"verdict\":\"within noise\"",
            "\"ratio\":0.5000",
            "\"limit_ms\":null",
            "\"peer_target\":1.0000",
            "\"met\":false",
        ] {
            assert!(json.contains(field), "{field} missing from {json}");
        }
        let markdown = to_markdown(&[row(Verdict::Met)], "quick", &machine);
        assert!(markdown.contains("| npy_load | 1 MiB | 1.000 ms (0.9000–1.100) | numpy 2.000 ms (1.900–2.100) | 0.50 |"), "{markdown}");
        assert!(markdown.contains("| met |"), "{markdown}");
    }

    #[test]
    fn other_peers_are_reported_beside_the_peer_column() {
        let machine = Machine {
            description: "test".to_owned(),
            load_start: "0.5".to_owned(),
            load_end: "0.7".to_owned(),
        };
        let mut with_others = row(Verdict::Met);
        with_others.op = "zarr_write_synced_plain";
        with_others.others = vec![
            Other {
                peer: "zarr-python".to_owned(),
                times: Quartiles::exact(0.5),
                target: None,
            },
            Other {
                peer: "tensorstore".to_owned(),
                times: Quartiles::exact(4.0),
                target: Some(1.0),
            },
        ];
        let json = to_json(&[with_others.clone()], "quick", &machine);
        assert!(
            json.contains("\"other_peers\":[{\"peer\":\"zarr-python\",\"peer_ms\":0.5000,\"peer_p25_ms\":0.5000,\"peer_p75_ms\":0.5000,\"ratio\":2.0000,\"peer_target\":null},{\"peer\":\"tensorstore\""),
            "{json}"
        );
        assert!(
            json.contains("\"ratio\":0.2500,\"peer_target\":1.0000}]"),
            "{json}"
        );
        let markdown = to_markdown(&[with_others], "quick", &machine);
        assert!(
            markdown.contains("zarr_write_synced_plain at 1 MiB, the other peers of the same rotation: zarr-python 0.5000 ms (0.5000–0.5000), ndstore / zarr-python 2.00 (no target: information); tensorstore 4.000 ms (4.000–4.000), ndstore / tensorstore 0.25."),
            "{markdown}"
        );
        // A row without other peers has no such line.
        let plain = to_markdown(&[row(Verdict::Met)], "quick", &machine);
        assert!(!plain.contains("other peers"), "{plain}");
        assert!(to_json(&[row(Verdict::Met)], "quick", &machine).contains("\"other_peers\":[]"));
    }

    #[test]
    fn object_storage_rows_give_their_throughput() {
        let machine = Machine {
            description: "test".to_owned(),
            load_start: "0.5".to_owned(),
            load_end: "0.7".to_owned(),
        };
        // 64 MiB in 500 ms is 128 MiB/s; the quartile of 400 ms is 160 MiB/s.
        let mut s3 = row(Verdict::Information);
        s3.op = "s3_write_chunks";
        s3.size_bytes = 64 << 20;
        s3.peer = "boto3".to_owned();
        s3.ours = Quartiles {
            p25: 400.0,
            median: 500.0,
            p75: 640.0,
        };
        s3.theirs = Quartiles::exact(1000.0);
        s3.target = "none given".to_owned();
        let markdown = to_markdown(&[s3.clone(), row(Verdict::Met)], "quick", &machine);
        assert!(
            markdown.contains("s3_write_chunks at 64 MiB, throughput (medians and IQRs): ndstore 128.0 MiB/s (100.0–160.0), boto3 64.0 MiB/s (64.0–64.0)."),
            "{markdown}"
        );
        assert!(
            markdown.contains("| none given | information |"),
            "{markdown}"
        );
        // Only the object-storage rows have such a line.
        assert_eq!(markdown.matches("throughput").count(), 1, "{markdown}");
        // Small rates keep three significant digits: 4 KiB in 20 ms is 0.195 MiB/s.
        let mut small = s3.clone();
        small.size_bytes = 4 << 10;
        small.ours = Quartiles::exact(20.0);
        assert!(
            to_markdown(&[small], "quick", &machine).contains("ndstore 0.195 MiB/s (0.195–0.195)"),
            "small rates"
        );
        let json = to_json(&[s3], "quick", &machine);
        assert!(
            json.contains("\"ndstore_mib_s\":128.0000,\"peer_mib_s\":64.0000"),
            "{json}"
        );
        assert!(json.contains("\"verdict\":\"information\""), "{json}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(3 << 29), "1536 MiB");
    }
}

//! Draws the charts of `cargo xtask bench`: for each operation of `report.json`, the ratio of
//! ndstore's time to its peer's (the row's peer column) against the array size (log axis), an
//! error bar per size and the target as a line, as `<operation>.svg` beside the report; and the
//! same against each of the row's other peers (`other_peers`, the Zarr rows' second peer) as
//! `<operation>-<peer>.svg`.
//!
//! The error bar spans the ratios the two interquartile ranges allow: from ndstore's first
//! quartile over the peer's third to ndstore's third over the peer's first. A bar that crosses
//! the target line is a row the report calls within noise.
//!
//! Usage: `bench-chart REPORT.json OUT_DIR`.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

/// One point of a chart: one row of the report.
struct Point {
    size: f64,
    ratio: f64,
    low: f64,
    high: f64,
    /// The ratio to the peer the targets allow at this size.
    target: Option<f64>,
}

/// A row's point, when it has a peer to compare with.
fn point(row: &Value) -> Option<Point> {
    let get = |key: &str| row.get(key).and_then(Value::as_f64);
    let (ours, p25, p75) = (get("ndstore_ms")?, get("p25_ms")?, get("p75_ms")?);
    let (theirs, t25, t75) = (get("peer_ms")?, get("peer_p25_ms")?, get("peer_p75_ms")?);
    (theirs > 0.0 && t25 > 0.0).then(|| Point {
        size: get("size_bytes").unwrap_or(1.0),
        ratio: ours / theirs,
        low: p25 / t75,
        high: p75 / t25,
        target: get("peer_target"),
    })
}

/// The size axis' labels: `4 KiB`, `1 MiB`, `1 GiB`.
fn size_label(bytes: &f64) -> String {
    let bytes = *bytes;
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.0} GiB", bytes / (1u64 << 30) as f64)
    } else if bytes >= (1u64 << 20) as f64 {
        format!("{:.0} MiB", bytes / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes / 1024.0)
    }
}

type Failure = Box<dyn std::error::Error>;

/// Draws one operation's chart into `path`. The x axis is log2 of the size, so its labels fall
/// on powers of two.
fn draw(path: &Path, op: &str, peer: &str, points: &[Point], caption: &str) -> Result<(), Failure> {
    let sizes: Vec<f64> = points.iter().map(|p| p.size.log2()).collect();
    let smallest = sizes.iter().copied().fold(f64::INFINITY, f64::min) - 1.0;
    let largest = sizes.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0;
    let top = points
        .iter()
        .flat_map(|p| [p.high, p.target.unwrap_or(0.0)])
        .filter(|v| v.is_finite())
        .fold(1.2_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer) = root.split_vertically(390);
    footer.draw_text(
        caption,
        &("sans-serif", 11).into_font().color(&BLACK.mix(0.6)),
        (10, 8),
    )?;
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(
            format!("{op}: ndstore / {peer} (dot: median, bar: IQR, red: target)"),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(smallest..largest, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("array size (log scale)")
        .y_desc("time ratio ndstore / peer")
        .x_labels(((largest - smallest) / 2.0) as usize + 1)
        .x_label_formatter(&|log2: &f64| size_label(&log2.round().exp2()))
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(smallest, 1.0), (largest, 1.0)],
        BLACK.mix(0.3),
    ))?;
    // The target as a step line: each size's allowed ratio, held halfway to the neighbouring
    // sizes.
    let targets: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.target.map(|t| (p.size.log2(), t)))
        .collect();
    for (i, &(x, bound)) in targets.iter().enumerate() {
        let left = if i == 0 {
            smallest
        } else {
            (targets[i - 1].0 + x) / 2.0
        };
        let right = targets
            .get(i + 1)
            .map_or(largest, |next| (next.0 + x) / 2.0);
        chart.draw_series(LineSeries::new(
            [(left, bound), (right, bound)],
            RED.stroke_width(2),
        ))?;
    }
    chart.draw_series(points.iter().map(|p| {
        ErrorBar::new_vertical(p.size.log2(), p.low, p.ratio, p.high, BLUE.filled(), 8)
    }))?;
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.size.log2(), p.ratio), 3, BLUE.filled())),
    )?;
    root.present()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(report), Some(out_dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench-chart REPORT.json OUT_DIR");
        return std::process::ExitCode::FAILURE;
    };
    match charts(Path::new(report), Path::new(out_dir)) {
        Ok(written) => {
            for path in written {
                println!("written: {path}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-chart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Draws every operation of `report` that has a peer; returns the files written.
fn charts(report: &Path, out_dir: &Path) -> Result<Vec<String>, Failure> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let caption = format!(
        "cargo xtask bench ({} mode) on {}",
        json.get("mode").and_then(Value::as_str).unwrap_or("?"),
        json.get("machine").and_then(Value::as_str).unwrap_or("?")
    );
    // Keyed by the file name: the operation, and the peer when it is not the peer column's.
    let mut by_op: BTreeMap<String, (String, String, Vec<Point>)> = BTreeMap::new();
    for row in json
        .get("rows")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let op = row.get("op").and_then(Value::as_str).unwrap_or("?");
        let peer = row.get("peer").and_then(Value::as_str).unwrap_or("peer");
        let others = row
            .get("other_peers")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        // An other peer's entry has the row's peer fields; ndstore's come from the row.
        let of_other = |other: &Value| {
            let mut merged = row.clone();
            if let (Some(merged), Some(other)) = (merged.as_object_mut(), other.as_object()) {
                merged.extend(other.clone());
            }
            merged
        };
        let series = std::iter::once((op.to_owned(), peer.to_owned(), row.clone())).chain(
            others.iter().map(|other| {
                let name = other.get("peer").and_then(Value::as_str).unwrap_or("peer");
                (format!("{op}-{name}"), name.to_owned(), of_other(other))
            }),
        );
        for (file, peer, row) in series {
            if let Some(p) = point(&row) {
                let entry = by_op
                    .entry(file)
                    .or_insert_with(|| (op.to_owned(), peer, Vec::new()));
                entry.2.push(p);
            }
        }
    }
    let mut written = Vec::new();
    for (file, (op, peer, mut points)) in by_op {
        points.sort_by(|a, b| a.size.total_cmp(&b.size));
        let path = out_dir.join(format!("{file}.svg"));
        draw(&path, &op, &peer, &points, &caption)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

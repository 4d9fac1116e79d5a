//! `rudp plot`: pictures from an event trace (docs/trace.md), as one SVG
//! with four panels:
//!
//! 1. packet number over time, counted from the connection's first: packets
//!    sent (retransmissions marked; with several streams, one colour per
//!    stream, PROTOCOL.md §15), when each was acknowledged, and which were
//!    declared lost;
//! 2. throughput over time: bytes sent, and bytes acknowledged;
//! 3. congestion window and bytes in flight over time;
//! 4. RTT samples and the smoothed RTT over time.
//!
//! Axes read as people write numbers: whole numbers without `.0`, sizes and
//! rates in the SI unit that fits their magnitude; each panel's legend
//! stands beside its data, never over it.
//!
//! Acknowledgements are read from the ACK frames this side received, so a
//! trace from either side shows that side's view.

use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use thiserror::Error;

/// Points drawn per series at most: a long transfer is decimated (every
/// k-th point kept) so that its SVG stays a few MB and readable.
pub const MAX_POINTS: usize = 4000;
/// Times beyond this (ms, about 11 days) are not believed.
const MAX_TIME_MS: f64 = 1e9;
/// RTTs beyond this (ms) are not believed.
const MAX_RTT_MS: f64 = 1e6;

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a trace event ({reason})")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("the trace has no events{0}")]
    Empty(String),
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// The series one connection's trace gives.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Series {
    pub conn: String,
    /// (time ms, packet number, is a retransmission)
    pub sent: Vec<(f64, u64, bool)>,
    /// The stream whose data each sent packet carried first, by packet
    /// number (packets with no stream data are absent).
    pub stream_of: std::collections::HashMap<u64, u64>,
    /// Each sent packet's size in bytes, by packet number (for the
    /// throughput panel; absent where the trace does not say).
    pub size_of: std::collections::HashMap<u64, u64>,
    /// (time ms, packet number) of first acknowledgement.
    pub acked: Vec<(f64, u64)>,
    pub lost: Vec<(f64, u64)>,
    /// (time ms, congestion window, bytes in flight)
    pub window: Vec<(f64, u64, u64)>,
    /// (time ms, latest RTT ms, smoothed RTT ms), real samples only.
    pub rtt: Vec<(f64, f64, f64)>,
    /// The connection's first packet number: the packet panel counts from
    /// it (packet numbers start at a random value near 2^47, §4.2).
    pub first_pn: u64,
    /// Events skipped because a value was not finite or out of range.
    pub skipped: usize,
}

/// Reads a trace and extracts the series of connection `conn` (or of the
/// first connection in the file).
pub fn read_trace(path: &Path, conn: Option<&str>) -> Result<Series, PlotError> {
    let read_err = |source| PlotError::Read {
        path: path.display().to_string(),
        source,
    };
    // Streamed: a trace of a long run can be larger than memory.
    let file = std::io::BufReader::new(std::fs::File::open(path).map_err(read_err)?);
    let mut s = Series::default();
    // Packets sent and not yet seen acknowledged: an ACK range yields only
    // these, so its width (up to 2^62) costs nothing.
    let mut unacked = BTreeSet::new();
    for (i, line) in file.lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| PlotError::Parse {
            path: path.display().to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        let Some(name) = v["name"].as_str() else {
            continue; // The header line, or a future kind of record.
        };
        let this = v["conn"].as_str().unwrap_or("");
        match conn {
            Some(c) if c != this => continue,
            None if !s.conn.is_empty() && s.conn != this => continue,
            _ => {}
        }
        s.conn = this.to_string();
        let t = v["time"].as_f64().unwrap_or(0.0);
        if !(0.0..=MAX_TIME_MS).contains(&t) {
            s.skipped += 1;
            continue;
        }
        let d = &v["data"];
        let pn = d["header"]["packet_number"].as_u64();
        match name {
            "transport:packet_sent" => {
                if let Some(pn) = pn {
                    s.sent
                        .push((t, pn, d["retransmission"].as_bool().unwrap_or(false)));
                    unacked.insert(pn);
                    let stream = d["frames"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|f| f["frame_type"] == "stream")
                        .and_then(|f| f["stream_id"].as_u64());
                    if let Some(id) = stream {
                        s.stream_of.insert(pn, id);
                    }
                    if let Some(len) = d["raw"]["length"].as_u64() {
                        s.size_of.insert(pn, len);
                    }
                }
            }
            "transport:packet_received" => {
                for f in d["frames"].as_array().into_iter().flatten() {
                    if f["frame_type"] != "ack" {
                        continue;
                    }
                    for r in f["acked_ranges"].as_array().into_iter().flatten() {
                        let (lo, hi) = (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0));
                        if lo > hi {
                            s.skipped += 1;
                            continue;
                        }
                        let newly: Vec<u64> = unacked.range(lo..=hi).copied().collect();
                        for p in newly {
                            unacked.remove(&p);
                            s.acked.push((t, p));
                        }
                    }
                }
            }
            "recovery:packet_lost" => {
                if let Some(pn) = pn {
                    s.lost.push((t, pn));
                }
            }
            "recovery:metrics_updated" => {
                s.window.push((
                    t,
                    d["congestion_window"].as_u64().unwrap_or(0),
                    d["bytes_in_flight"].as_u64().unwrap_or(0),
                ));
                // Before the first sample the RTT fields are the initial guess.
                if d["rtt_sampled"].as_bool().unwrap_or(true) {
                    let latest = d["latest_rtt"].as_f64().unwrap_or(0.0);
                    let smoothed = d["smoothed_rtt"].as_f64().unwrap_or(0.0);
                    let sane = |x: f64| (0.0..=MAX_RTT_MS).contains(&x);
                    if sane(latest) && sane(smoothed) {
                        s.rtt.push((t, latest, smoothed));
                    } else {
                        s.skipped += 1;
                    }
                }
            }
            _ => {}
        }
    }
    if s.sent.is_empty() && s.lost.is_empty() && s.window.is_empty() {
        let which = conn
            .map(|c| format!(" for connection {c}"))
            .unwrap_or_default();
        return Err(PlotError::Empty(which));
    }
    s.first_pn = s
        .sent
        .iter()
        .map(|p| p.1)
        .chain(s.lost.iter().map(|p| p.1))
        .min()
        .unwrap_or(0);
    Ok(s)
}

/// Every k-th item, so that at most [`MAX_POINTS`] remain.
fn decimate<T: Copy>(items: &[T]) -> impl Iterator<Item = T> + '_ {
    let step = items.len().div_ceil(MAX_POINTS).max(1);
    items.iter().step_by(step).copied()
}

/// Draws the four panels into an SVG file.
pub fn draw(series: &Series, out: &Path) -> Result<(), PlotError> {
    draw_inner(series, out).map_err(|e| PlotError::Draw(e.to_string()))
}

/// An SI unit for values up to `max`: the divisor and the unit's name,
/// `base` with k, M or G before it (kB, Mbit/s).
pub fn si_unit(max: f64, base: &str) -> (f64, String) {
    for (div, prefix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if max >= div * 2.0 {
            return (div, format!("{prefix}{base}"));
        }
    }
    (1.0, base.to_string())
}

/// A tick label: a whole number as such (`18000`, not `18000.0`), others
/// with the decimals the axis's step needs.
pub fn tick(v: f64, span: f64) -> String {
    if span >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if span >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Dot(RGBAColor),
    Ring(RGBAColor),
    Cross(RGBAColor),
    Line(RGBAColor),
}

/// Width of the column beside each panel that holds its legend.
const LEGEND_WIDTH: u32 = 230;

/// Splits a panel into the chart and the legend column to its right.
fn with_legend<'a>(
    panel: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
) -> (
    DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
) {
    let (w, _) = panel.dim_in_pixel();
    panel.split_horizontally(w.saturating_sub(LEGEND_WIDTH))
}

/// Draws `entries` down the legend column, beside the data they name.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    entries: &[(String, Mark)],
) -> Result<(), Box<dyn std::error::Error>> {
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (label, mark)) in entries.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        let at = (12, y);
        match *mark {
            Mark::Dot(c) => area.draw(&Circle::new(at, 3, c.filled()))?,
            Mark::Ring(c) => area.draw(&Circle::new(at, 3, c))?,
            Mark::Cross(c) => area.draw(&Cross::new(at, 4, c.stroke_width(2)))?,
            Mark::Line(c) => area.draw(&PathElement::new(vec![(4, y), (20, y)], c))?,
        }
        area.draw(&Text::new(label.clone(), (28, y - 7), style.clone()))?;
    }
    Ok(())
}

/// Bytes sent and bytes first acknowledged per time slice, as rates in
/// bits per second: (slice middle in ms, sent, acknowledged).
pub fn throughput(s: &Series, t_end: f64) -> Vec<(f64, f64, f64)> {
    const SLICES: usize = 100;
    let width = (t_end / SLICES as f64).max(1e-3);
    let mut sent = vec![0u64; SLICES];
    let mut acked = vec![0u64; SLICES];
    let slice = |t: f64| ((t / width) as usize).min(SLICES - 1);
    let size = |pn: u64| s.size_of.get(&pn).copied().unwrap_or(0);
    for p in &s.sent {
        sent[slice(p.0)] += size(p.1);
    }
    for p in &s.acked {
        acked[slice(p.0)] += size(p.1);
    }
    let rate = |bytes: u64| bytes as f64 * 8.0 / (width / 1000.0);
    (0..SLICES)
        .map(|i| ((i as f64 + 0.5) * width, rate(sent[i]), rate(acked[i])))
        .collect()
}

fn draw_inner(s: &Series, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (1100, 1400)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("rudp connection {}", s.conn), ("sans-serif", 22))?;
    let panels = root.split_evenly((4, 1));
    let t_end = s
        .sent
        .iter()
        .map(|p| p.0)
        .chain(s.acked.iter().map(|p| p.0))
        .chain(s.window.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        * 1.02;
    let rel = |pn: u64| pn.saturating_sub(s.first_pn) as f64;
    let time_label = |v: &f64| tick(*v, t_end);

    // 1. Packet numbers over time, counted from the first.
    let max_pn = s
        .sent
        .iter()
        .map(|p| p.1)
        .chain(s.lost.iter().map(|p| p.1))
        .map(rel)
        .fold(1.0f64, f64::max)
        * 1.05;
    let (chart, side) = with_legend(&panels[0]);
    let mut c = ChartBuilder::on(&chart)
        .caption("packets: sent, acknowledged, lost", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, 0.0..max_pn)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc("packet number, from the first")
        .x_label_formatter(&time_label)
        .y_label_formatter(&|v| tick(*v, max_pn))
        .draw()?;
    let mut entries: Vec<(String, Mark)> = Vec::new();
    let (fresh, resent): (Vec<(f64, u64, bool)>, Vec<_>) = s.sent.iter().partition(|p| !p.2);
    // One colour per stream for the first few (lowest ids), found in time
    // linear in the trace: a lookup per point, never a scan of every
    // stream (issue #22).
    const COLOURED: usize = 8;
    let distinct: std::collections::HashSet<u64> = s.stream_of.values().copied().collect();
    let stream_count = distinct.len();
    let mut coloured: Vec<u64> = distinct.into_iter().collect();
    if coloured.len() > COLOURED {
        coloured.select_nth_unstable(COLOURED);
        coloured.truncate(COLOURED);
    }
    coloured.sort_unstable();
    let index_of: std::collections::HashMap<u64, usize> = coloured
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let grey = RGBAColor(150, 150, 150, 1.0);
    if stream_count <= 1 {
        c.draw_series(decimate(&fresh).map(|p| Circle::new((p.0, rel(p.1)), 2, BLUE.filled())))?;
        entries.push(("sent".into(), Mark::Dot(BLUE.to_rgba())));
    } else {
        // The first few streams in colour, the rest grey, and packets
        // without stream data in black.
        let colour_of = |id: Option<&u64>| -> RGBAColor {
            match id.map(|id| index_of.get(id)) {
                Some(Some(&i)) => Palette99::pick(i).to_rgba(),
                Some(None) => grey,
                None => BLACK.to_rgba(),
            }
        };
        let kept: Vec<_> = decimate(&fresh).collect();
        c.draw_series(kept.iter().map(|p| {
            let colour = colour_of(s.stream_of.get(&p.1));
            Circle::new((p.0, rel(p.1)), 2, colour.filled())
        }))?;
        for (i, id) in coloured.iter().enumerate() {
            entries.push((
                format!("sent, stream {id}"),
                Mark::Dot(Palette99::pick(i).to_rgba()),
            ));
        }
        if stream_count > COLOURED {
            entries.push(("sent, other streams".into(), Mark::Dot(grey)));
        }
    }
    c.draw_series(decimate(&resent).map(|p| Circle::new((p.0, rel(p.1)), 3, MAGENTA.filled())))?;
    entries.push((
        "sent, with retransmitted data".into(),
        Mark::Dot(MAGENTA.to_rgba()),
    ));
    c.draw_series(decimate(&s.acked).map(|p| Circle::new((p.0, rel(p.1)), 2, GREEN)))?;
    entries.push(("acknowledged".into(), Mark::Ring(GREEN.to_rgba())));
    c.draw_series(decimate(&s.lost).map(|p| Cross::new((p.0, rel(p.1)), 5, RED.stroke_width(2))))?;
    entries.push(("declared lost".into(), Mark::Cross(RED.to_rgba())));
    legend(&side, &entries)?;

    // 2. Throughput: sent and acknowledged, per slice of time.
    let rates = throughput(s, t_end);
    let max_rate = rates.iter().map(|r| r.1.max(r.2)).fold(1.0f64, f64::max) * 1.1;
    let (div, unit) = si_unit(max_rate, "bit/s");
    let (chart, side) = with_legend(&panels[1]);
    let mut c = ChartBuilder::on(&chart)
        .caption("throughput", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, 0.0..max_rate / div)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc(unit)
        .x_label_formatter(&time_label)
        .y_label_formatter(&|v| tick(*v, max_rate / div))
        .draw()?;
    c.draw_series(LineSeries::new(
        rates.iter().map(|r| (r.0, r.1 / div)),
        &BLUE,
    ))?;
    c.draw_series(LineSeries::new(
        rates.iter().map(|r| (r.0, r.2 / div)),
        &GREEN,
    ))?;
    legend(
        &side,
        &[
            ("sent".into(), Mark::Line(BLUE.to_rgba())),
            ("acknowledged".into(), Mark::Line(GREEN.to_rgba())),
        ],
    )?;

    // 3. Congestion window and bytes in flight.
    let max_w = s
        .window
        .iter()
        .map(|w| w.1.max(w.2))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let (div, unit) = si_unit(max_w, "B");
    let (chart, side) = with_legend(&panels[2]);
    let mut c = ChartBuilder::on(&chart)
        .caption("congestion window and bytes in flight", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, 0.0..max_w / div)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc(unit)
        .x_label_formatter(&time_label)
        .y_label_formatter(&|v| tick(*v, max_w / div))
        .draw()?;
    c.draw_series(LineSeries::new(
        decimate(&s.window).map(|w| (w.0, w.1 as f64 / div)),
        &BLUE,
    ))?;
    c.draw_series(LineSeries::new(
        decimate(&s.window).map(|w| (w.0, w.2 as f64 / div)),
        &RED,
    ))?;
    legend(
        &side,
        &[
            ("congestion window".into(), Mark::Line(BLUE.to_rgba())),
            ("bytes in flight".into(), Mark::Line(RED.to_rgba())),
        ],
    )?;

    // 4. RTT.
    let max_rtt = s.rtt.iter().map(|r| r.1.max(r.2)).fold(0.1f64, f64::max) * 1.1;
    let (chart, side) = with_legend(&panels[3]);
    let mut c = ChartBuilder::on(&chart)
        .caption("round-trip time", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, 0.0..max_rtt)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc("RTT (ms)")
        .x_label_formatter(&time_label)
        .y_label_formatter(&|v| tick(*v, max_rtt))
        .draw()?;
    c.draw_series(decimate(&s.rtt).map(|r| Circle::new((r.0, r.1), 2, BLACK.filled())))?;
    c.draw_series(LineSeries::new(decimate(&s.rtt).map(|r| (r.0, r.2)), &BLUE))?;
    legend(
        &side,
        &[
            ("latest sample".into(), Mark::Dot(BLACK.to_rgba())),
            ("smoothed".into(), Mark::Line(BLUE.to_rgba())),
        ],
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_from_a_small_trace() {
        let dir = std::env::temp_dir().join(format!("rudp-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("t.jsonl");
        std::fs::write(
            &trace,
            [
                r#"{"rudp_trace":1}"#,
                r#"{"time":0.0,"conn":"aa","name":"transport:packet_sent","data":{"header":{"packet_number":0},"retransmission":false}}"#,
                r#"{"time":1.0,"conn":"aa","name":"transport:packet_sent","data":{"header":{"packet_number":1},"retransmission":true}}"#,
                r#"{"time":1.5,"conn":"bb","name":"transport:packet_sent","data":{"header":{"packet_number":9}}}"#,
                r#"{"time":2.0,"conn":"aa","name":"transport:packet_received","data":{"frames":[{"frame_type":"ack","acked_ranges":[[0,1]]}]}}"#,
                r#"{"time":3.0,"conn":"aa","name":"recovery:packet_lost","data":{"header":{"packet_number":1}}}"#,
                r#"{"time":3.0,"conn":"aa","name":"recovery:metrics_updated","data":{"congestion_window":12000,"bytes_in_flight":1200,"latest_rtt":2.0,"smoothed_rtt":2.0}}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let s = read_trace(&trace, None).unwrap();
        assert_eq!(s.conn, "aa");
        assert_eq!(s.sent, vec![(0.0, 0, false), (1.0, 1, true)]);
        assert_eq!(s.acked, vec![(2.0, 0), (2.0, 1)]);
        assert_eq!(s.lost, vec![(3.0, 1)]);
        assert_eq!(s.window, vec![(3.0, 12000, 1200)]);
        assert_eq!(read_trace(&trace, Some("bb")).unwrap().sent.len(), 1);
        assert!(s.stream_of.is_empty(), "no frames in these events");
        assert!(matches!(
            read_trace(&trace, Some("cc")),
            Err(PlotError::Empty(_))
        ));
        let svg = dir.join("t.svg");
        draw(&s, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("congestion window"));
        std::fs::write(&trace, "not json\n").unwrap();
        assert!(matches!(
            read_trace(&trace, None),
            Err(PlotError::Parse { line: 1, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue #26 item 7: numbers as people write them, units by
    /// magnitude, a throughput panel, legends beside the data.
    #[test]
    fn axes_units_throughput_and_legends_read_well() {
        assert_eq!(tick(18000.0, 20000.0), "18000");
        assert_eq!(tick(3.0, 5.0), "3");
        assert_eq!(tick(2.5, 5.0), "2.5");
        assert_eq!(tick(0.25, 0.5), "0.25");
        assert_eq!(si_unit(18_000_000.0, "B"), (1e6, "MB".to_string()));
        assert_eq!(si_unit(18_000.0, "B"), (1e3, "kB".to_string()));
        assert_eq!(si_unit(1_500.0, "B"), (1.0, "B".to_string()));
        assert_eq!(si_unit(48e6, "bit/s"), (1e6, "Mbit/s".to_string()));

        // 1,000-byte packets every ms for 100 ms, each acknowledged 10 ms
        // later: 8 Mbit/s both ways once under way.
        let mut s = Series {
            conn: "aa".into(),
            ..Series::default()
        };
        for i in 0..100u64 {
            s.sent.push((i as f64, i, false));
            s.size_of.insert(i, 1000);
            s.acked.push((i as f64 + 10.0, i));
        }
        s.window.push((0.0, 18_000_000, 1_200));
        let rates = throughput(&s, 110.0);
        let mid = rates.iter().find(|r| (50.0..60.0).contains(&r.0)).unwrap();
        assert!(
            (mid.1 - 8e6).abs() < 1.0e6 && (mid.2 - 8e6).abs() < 1.0e6,
            "{mid:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("t.svg");
        draw(&s, &svg).unwrap();
        // plotters writes each text on a line of its own.
        let text = std::fs::read_to_string(&svg).unwrap().replace('\n', "");
        assert!(
            text.contains(">throughput<") && text.contains(">Mbit/s<"),
            "a throughput panel"
        );
        assert!(text.contains(">MB<"), "the window in MB, not 18000.0 kB");
        assert!(!text.contains("18000.0"));
        // Every legend label stands in the column right of the charts.
        for label in [
            "acknowledged",
            "declared lost",
            "congestion window",
            "smoothed",
        ] {
            let at = text
                .find(&format!(">{label}</text>"))
                .unwrap_or_else(|| panic!("no legend '{label}'"));
            let start = text[..at].rfind("<text").unwrap();
            let x: f64 = text[start..at]
                .split("x=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|x| x.parse().ok())
                .unwrap();
            assert!(x >= f64::from(1100 - LEGEND_WIDTH), "'{label}' at x={x}");
        }
    }

    /// Issue #12 item 13: a trace with `latest_rtt: 1.7e308` made the plot
    /// spin, and 200 wide ACK ranges took 2 GB and wrote a 1.8 GB SVG. Now
    /// such values are skipped and counted, ranges yield only packets that
    /// were sent, and a long run is decimated to a small SVG whose packet
    /// panel counts from the first packet number.
    #[test]
    fn hostile_and_huge_traces_plot_small_and_fast() {
        use std::fmt::Write;
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.jsonl");
        let base = 140_000_000_000_000u64;
        let mut text = String::from("{\"rudp_trace\":1}\n");
        for i in 0..200_000u64 {
            let _ = writeln!(
                text,
                r#"{{"time":{},"conn":"aa","name":"transport:packet_sent","data":{{"header":{{"packet_number":{}}}}}}}"#,
                i as f64 * 0.01,
                base + i
            );
        }
        let ranges: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "[{},{}]",
                    i * 1_000_000_000_000u64,
                    i * 1_000_000_000_000u64 + 999_999_999_999
                )
            })
            .collect();
        let _ = writeln!(
            text,
            r#"{{"time":5.0,"conn":"aa","name":"transport:packet_received","data":{{"frames":[{{"frame_type":"ack","acked_ranges":[{}]}}]}}}}"#,
            ranges.join(",")
        );
        text.push_str(r#"{"time":6.0,"conn":"aa","name":"recovery:metrics_updated","data":{"congestion_window":12000,"bytes_in_flight":1,"latest_rtt":1.7e308,"smoothed_rtt":2.0}}"#);
        text.push('\n');
        text.push_str(r#"{"time":1e300,"conn":"aa","name":"recovery:packet_lost","data":{"header":{"packet_number":5}}}"#);
        text.push('\n');
        std::fs::write(&trace, text).unwrap();
        let started = std::time::Instant::now();
        let s = read_trace(&trace, None).unwrap();
        assert_eq!(s.skipped, 2, "the huge RTT and the far time");
        assert_eq!(s.first_pn, base);
        assert_eq!(s.sent.len(), 200_000);
        assert!(s.acked.len() <= 200_000);
        let svg = dir.path().join("t.svg");
        draw(&s, &svg).unwrap();
        let size = std::fs::metadata(&svg).unwrap().len();
        println!(
            "200,000 packets: SVG of {size} bytes in {:?}",
            started.elapsed()
        );
        assert!(size < 4_000_000, "{size} bytes");
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.contains("packet number, from the first"));
        assert!(
            !svg_text.contains(&base.to_string()),
            "no raw packet numbers"
        );
    }
}

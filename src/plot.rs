//! `rudp plot`: pictures from an event trace (docs/trace.md), as one SVG
//! with three panels:
//!
//! 1. packet number over time: packets sent (retransmissions marked; with
//!    several streams, one colour per stream, PROTOCOL.md §15), when each
//!    was acknowledged, and which were declared lost;
//! 2. congestion window and bytes in flight over time;
//! 3. RTT samples and the smoothed RTT over time.
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

/// Draws the three panels into an SVG file.
pub fn draw(series: &Series, out: &Path) -> Result<(), PlotError> {
    draw_inner(series, out).map_err(|e| PlotError::Draw(e.to_string()))
}

fn draw_inner(s: &Series, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (1000, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("rudp connection {}", s.conn), ("sans-serif", 22))?;
    let panels = root.split_evenly((3, 1));
    let t_end = s
        .sent
        .iter()
        .map(|p| p.0)
        .chain(s.acked.iter().map(|p| p.0))
        .chain(s.window.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        * 1.02;
    let rel = |pn: u64| pn.saturating_sub(s.first_pn) as f64;

    // 1. Packet numbers over time, counted from the first.
    let max_pn = s
        .sent
        .iter()
        .map(|p| p.1)
        .chain(s.lost.iter().map(|p| p.1))
        .map(rel)
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut c = ChartBuilder::on(&panels[0])
        .caption("packets: sent, acknowledged, lost", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..max_pn)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc(format!("packet number - {}", s.first_pn))
        .draw()?;
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
    if stream_count <= 1 {
        c.draw_series(decimate(&fresh).map(|p| Circle::new((p.0, rel(p.1)), 2, BLUE.filled())))?
            .label("sent")
            .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    } else {
        // The first few streams in colour, the rest grey, and packets
        // without stream data in black.
        let colour_of = |id: Option<&u64>| -> RGBAColor {
            match id.map(|id| index_of.get(id)) {
                Some(Some(&i)) => Palette99::pick(i).to_rgba(),
                Some(None) => RGBAColor(150, 150, 150, 1.0),
                None => BLACK.to_rgba(),
            }
        };
        let kept: Vec<_> = decimate(&fresh).collect();
        c.draw_series(kept.iter().map(|p| {
            let colour = colour_of(s.stream_of.get(&p.1));
            Circle::new((p.0, rel(p.1)), 2, colour.filled())
        }))?;
        for (i, id) in coloured.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            c.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label(format!("sent, stream {id}"))
                .legend(move |(x, y)| Circle::new((x, y), 3, colour.filled()));
        }
        if stream_count > COLOURED {
            c.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label("sent, other streams")
                .legend(|(x, y)| Circle::new((x, y), 3, RGBAColor(150, 150, 150, 1.0).filled()));
        }
    }
    c.draw_series(decimate(&resent).map(|p| Circle::new((p.0, rel(p.1)), 3, MAGENTA.filled())))?
        .label("sent, carrying retransmitted data")
        .legend(|(x, y)| Circle::new((x, y), 3, MAGENTA.filled()));
    c.draw_series(decimate(&s.acked).map(|p| Circle::new((p.0, rel(p.1)), 2, GREEN)))?
        .label("acknowledged")
        .legend(|(x, y)| Circle::new((x, y), 3, GREEN));
    c.draw_series(decimate(&s.lost).map(|p| Cross::new((p.0, rel(p.1)), 5, RED.stroke_width(2))))?
        .label("declared lost")
        .legend(|(x, y)| Cross::new((x, y), 4, RED.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // 2. Congestion window and bytes in flight.
    let max_w = s
        .window
        .iter()
        .map(|w| w.1.max(w.2))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut c = ChartBuilder::on(&panels[1])
        .caption("congestion window and bytes in flight", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..max_w / 1000.0)?;
    c.configure_mesh().x_desc("time (ms)").y_desc("kB").draw()?;
    c.draw_series(LineSeries::new(
        decimate(&s.window).map(|w| (w.0, w.1 as f64 / 1000.0)),
        &BLUE,
    ))?
    .label("congestion window")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    c.draw_series(LineSeries::new(
        decimate(&s.window).map(|w| (w.0, w.2 as f64 / 1000.0)),
        &RED,
    ))?
    .label("bytes in flight")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // 3. RTT.
    let max_rtt = s.rtt.iter().map(|r| r.1.max(r.2)).fold(0.1f64, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&panels[2])
        .caption("round-trip time", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..max_rtt)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc("RTT (ms)")
        .draw()?;
    c.draw_series(decimate(&s.rtt).map(|r| Circle::new((r.0, r.1), 2, BLACK.filled())))?
        .label("latest sample")
        .legend(|(x, y)| Circle::new((x, y), 3, BLACK.filled()));
    c.draw_series(LineSeries::new(decimate(&s.rtt).map(|r| (r.0, r.2)), &BLUE))?
        .label("smoothed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
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
        assert!(svg_text.contains(&format!("packet number - {base}")));
    }
}

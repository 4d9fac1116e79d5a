//! `rudp plot`: pictures from an event trace (docs/trace.md), as one SVG
//! with three panels:
//!
//! 1. packet number over time: packets sent (retransmissions marked),
//!    when each was acknowledged, and which were declared lost;
//! 2. congestion window and bytes in flight over time;
//! 3. RTT samples and the smoothed RTT over time.
//!
//! Acknowledgements are read from the ACK frames this side received, so a
//! trace from either side shows that side's view.

use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use thiserror::Error;

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
    /// (time ms, packet number) of first acknowledgement.
    pub acked: Vec<(f64, u64)>,
    pub lost: Vec<(f64, u64)>,
    /// (time ms, congestion window, bytes in flight)
    pub window: Vec<(f64, u64, u64)>,
    /// (time ms, latest RTT ms, smoothed RTT ms), real samples only.
    pub rtt: Vec<(f64, f64, f64)>,
}

/// Reads a trace and extracts the series of connection `conn` (or of the
/// first connection in the file).
pub fn read_trace(path: &Path, conn: Option<&str>) -> Result<Series, PlotError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut s = Series::default();
    let mut acked_seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| PlotError::Parse {
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
        let d = &v["data"];
        let pn = d["header"]["packet_number"].as_u64();
        match name {
            "transport:packet_sent" => {
                if let Some(pn) = pn {
                    s.sent
                        .push((t, pn, d["retransmission"].as_bool().unwrap_or(false)));
                }
            }
            "transport:packet_received" => {
                for f in d["frames"].as_array().into_iter().flatten() {
                    if f["frame_type"] != "ack" {
                        continue;
                    }
                    for r in f["acked_ranges"].as_array().into_iter().flatten() {
                        let (lo, hi) = (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0));
                        for p in lo..=hi.min(lo + 100_000) {
                            if acked_seen.insert(p) {
                                s.acked.push((t, p));
                            }
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
                    s.rtt.push((
                        t,
                        d["latest_rtt"].as_f64().unwrap_or(0.0),
                        d["smoothed_rtt"].as_f64().unwrap_or(0.0),
                    ));
                }
            }
            _ => {}
        }
    }
    if s.sent.is_empty() {
        let which = conn
            .map(|c| format!(" for connection {c}"))
            .unwrap_or_default();
        return Err(PlotError::Empty(which));
    }
    Ok(s)
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
        .fold(1.0f64, f64::max)
        * 1.02;

    // 1. Packet numbers over time.
    let max_pn = s.sent.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64 * 1.05;
    let mut c = ChartBuilder::on(&panels[0])
        .caption("packets: sent, acknowledged, lost", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..max_pn)?;
    c.configure_mesh()
        .x_desc("time (ms)")
        .y_desc("packet number")
        .draw()?;
    c.draw_series(
        s.sent
            .iter()
            .filter(|p| !p.2)
            .map(|p| Circle::new((p.0, p.1 as f64), 2, BLUE.filled())),
    )?
    .label("sent")
    .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    c.draw_series(
        s.sent
            .iter()
            .filter(|p| p.2)
            .map(|p| Circle::new((p.0, p.1 as f64), 3, MAGENTA.filled())),
    )?
    .label("sent, carrying retransmitted data")
    .legend(|(x, y)| Circle::new((x, y), 3, MAGENTA.filled()));
    c.draw_series(
        s.acked
            .iter()
            .map(|p| Circle::new((p.0, p.1 as f64), 2, GREEN)),
    )?
    .label("acknowledged")
    .legend(|(x, y)| Circle::new((x, y), 3, GREEN));
    c.draw_series(
        s.lost
            .iter()
            .map(|p| Cross::new((p.0, p.1 as f64), 5, RED.stroke_width(2))),
    )?
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
        s.window.iter().map(|w| (w.0, w.1 as f64 / 1000.0)),
        &BLUE,
    ))?
    .label("congestion window")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    c.draw_series(LineSeries::new(
        s.window.iter().map(|w| (w.0, w.2 as f64 / 1000.0)),
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
    c.draw_series(
        s.rtt
            .iter()
            .map(|r| Circle::new((r.0, r.1), 2, BLACK.filled())),
    )?
    .label("latest sample")
    .legend(|(x, y)| Circle::new((x, y), 3, BLACK.filled()));
    c.draw_series(LineSeries::new(s.rtt.iter().map(|r| (r.0, r.2)), &BLUE))?
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
}

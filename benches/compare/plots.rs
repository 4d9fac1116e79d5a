//! SVG plots of a run, drawn from its JSON report (plotters).

use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 5] = [BLUE, RED, GREEN, MAGENTA, BLACK];

/// Draws every plot the report has data for; the file name and outcome of
/// each.
pub fn draw(report: &Value, dir: &Path) -> Vec<(&'static str, Result)> {
    let mut out = Vec::new();
    if report["bulk"].is_array() {
        out.push((
            "goodput-vs-loss.svg",
            goodput_vs_loss(report, &dir.join("goodput-vs-loss.svg")),
        ));
    }
    if report["request_response"].is_array() {
        out.push((
            "rtt-5pct-loss.svg",
            rr_cdf(report, &dir.join("rtt-5pct-loss.svg")),
        ));
    }
    if report["kcp_test"].is_array() {
        out.push(("kcp-test.svg", kcp_cdf(report, &dir.join("kcp-test.svg"))));
    }
    out
}

fn goodput_vs_loss(report: &Value, path: &Path) -> Result {
    let rows = report["bulk"].as_array().ok_or("no bulk rows")?;
    let is_loss_row = |r: &Value| {
        let link = r["link"].as_str().unwrap_or("");
        link == "clean" || link.ends_with("% loss")
    };
    let peers = ["rudp", "rudp-clear", "quinn", "tokio_kcp", "TCP"];
    let series: Vec<(&str, Vec<(f64, f64)>)> = peers
        .iter()
        .map(|p| {
            let pts = rows
                .iter()
                .filter(|r| r["peer"] == *p && is_loss_row(r))
                .filter_map(|r| {
                    Some((
                        r["loss_rate"].as_f64()? * 100.0,
                        r["mb_per_second"].as_f64()?,
                    ))
                })
                .collect();
            (*p, pts)
        })
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "bulk goodput against random loss (loopback)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..10.5, 0.0..max_y)?;
    c.configure_mesh()
        .x_desc("loss each way (%)")
        .y_desc("goodput (MB/s)")
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Cumulative distribution curves of `rtts_us` arrays, log-scaled time.
fn cdf(path: &Path, title: &str, curves: Vec<(String, Vec<f64>)>, log: bool) -> Result {
    let curves: Vec<_> = curves.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if curves.is_empty() {
        return Err("no samples".into());
    }
    let max_x = curves
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max)
        * 1.2;
    let min_x = curves
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(f64::MAX, f64::min)
        .max(1.0)
        * 0.8;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = |v: &Vec<f64>| -> Vec<(f64, f64)> {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        s.iter()
            .enumerate()
            .map(|(i, &x)| (x, (i + 1) as f64 / n * 100.0))
            .collect()
    };
    macro_rules! body {
        ($c:expr, $unit:expr) => {{
            let mut c = $c;
            c.configure_mesh()
                .x_desc($unit)
                .y_desc("share of requests (%)")
                .draw()?;
            for (i, (name, v)) in curves.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                c.draw_series(LineSeries::new(points(v), color.stroke_width(2)))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE)
                .border_style(BLACK)
                .draw()?;
        }};
    }
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50);
    if log {
        body!(
            b.build_cartesian_2d((min_x..max_x).log_scale(), 0.0..100.0)?,
            "round-trip time (µs, log scale)"
        );
    } else {
        body!(
            b.build_cartesian_2d(min_x..max_x, 0.0..100.0)?,
            "round-trip time (ms)"
        );
    }
    root.present()?;
    Ok(())
}

fn rtts(r: &Value, scale: f64) -> Vec<f64> {
    r["rtts_us"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|v| v / scale)
                .collect()
        })
        .unwrap_or_default()
}

fn rr_cdf(report: &Value, path: &Path) -> Result {
    let rows = report["request_response"].as_array().ok_or("no rows")?;
    let curves = rows
        .iter()
        .filter(|r| r["link"] == "5% loss" && r["rtts_us"].is_array())
        .map(|r| (r["peer"].as_str().unwrap_or("?").to_string(), rtts(r, 1.0)))
        .collect();
    cdf(
        path,
        "8-byte request/response at 5% loss each way: RTT distribution",
        curves,
        true,
    )
}

fn kcp_cdf(report: &Value, path: &Path) -> Result {
    let rows = report["kcp_test"].as_array().ok_or("no rows")?;
    let curves = rows
        .iter()
        .map(|r| {
            (
                r["peer"].as_str().unwrap_or("?").to_string(),
                rtts(r, 1000.0),
            )
        })
        .collect();
    cdf(path, "KCP's latency test: RTT distribution", curves, false)
}

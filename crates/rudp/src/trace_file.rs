//! Trace files: every connection's events, one JSON object a line
//! (docs/trace.md).

use rudp_core::wire::ConnectionId;
use std::collections::HashMap;
use tracing::warn;

use crate::shared::State;

/// How much a trace records (docs/trace.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TraceLevel {
    /// Every event, every packet sent and received included.
    #[default]
    Packets,
    /// No per-packet events, and at most one `recovery:metrics_updated`
    /// per connection every [`METRICS_INTERVAL_MS`]: losses, state changes
    /// and the windows of a long transfer in a few MB.
    Metrics,
}

impl TraceLevel {
    /// The name in the trace header and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TraceLevel::Packets => "packets",
            TraceLevel::Metrics => "metrics",
        }
    }
}

/// [`TraceLevel::Metrics`]: milliseconds between two metrics events of one
/// connection.
pub const METRICS_INTERVAL_MS: f64 = 10.0;
/// Connections whose last metrics time is remembered, at most.
const METRICS_CONNS_KEPT: usize = 10_000;

/// An open trace file and what its level needs.
#[derive(Debug)]
pub(crate) struct TraceFile {
    pub(crate) w: std::io::BufWriter<std::fs::File>,
    pub(crate) level: TraceLevel,
    /// Trace time of each connection's last metrics event.
    pub(crate) last_metrics: HashMap<ConnectionId, f64>,
}

impl TraceFile {
    /// Whether the level keeps this event.
    fn keeps(&mut self, cid: ConnectionId, name: &str, time: f64) -> bool {
        if self.level == TraceLevel::Packets {
            return true;
        }
        match name {
            "transport:packet_sent" | "transport:packet_received" | "transport:packet_dropped" => {
                false
            }
            "recovery:metrics_updated" => {
                if self.last_metrics.len() >= METRICS_CONNS_KEPT {
                    self.last_metrics.clear(); // At worst one extra line each.
                }
                let last = self.last_metrics.entry(cid).or_insert(f64::NEG_INFINITY);
                let due = time - *last >= METRICS_INTERVAL_MS;
                if due {
                    *last = time;
                }
                due
            }
            _ => true,
        }
    }
}

/// Appends pending trace events to the trace file. A write error stops
/// tracing (with a warning) rather than the connection.
pub(crate) fn write_traces(st: &mut State) {
    use std::io::Write;
    let Some(t) = st.trace.as_mut() else {
        return;
    };
    let mut result = Ok(());
    while let Some((cid, ev)) = st.ep.poll_trace() {
        if !t.keeps(cid, ev.name, ev.time) {
            continue;
        }
        let line = serde_json::json!({
            "time": ev.time,
            "conn": cid.to_string(),
            "name": ev.name,
            "data": ev.data,
        });
        result = result.and_then(|()| writeln!(t.w, "{line}"));
    }
    // Flushed at every turn: the process may exit without destructors.
    if let Err(e) = result.and_then(|()| t.w.flush()) {
        warn!(error = %e, "trace file failed; tracing stops");
        st.trace = None;
        st.ep.set_trace(false);
    }
}

/// Opens `path` and writes the trace header (docs/trace.md).
pub(crate) fn create(
    path: &std::path::Path,
    level: TraceLevel,
    local: std::net::SocketAddr,
) -> std::io::Result<TraceFile> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    // The one wall-clock reading of the crate: the trace's reference
    // time, so that traces of two processes can be lined up.
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let header = serde_json::json!({
        "rudp_trace": 1,
        "level": level.name(),
        "local": local.to_string(),
        "reference_time_unix_ms": unix_ms,
    });
    writeln!(w, "{header}")?;
    w.flush()?;
    Ok(TraceFile {
        w,
        level,
        last_metrics: HashMap::new(),
    })
}

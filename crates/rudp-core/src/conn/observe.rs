//! What a connection reports to its trace (docs/trace.md): state changes,
//! metrics and the events of the other modules, recorded only with the
//! `trace` feature and only once tracing is enabled.

#[cfg(feature = "trace")]
use super::trace::Tracer;
use super::Connection;
#[cfg(feature = "trace")]
use super::State;
#[cfg(feature = "trace")]
use super::TraceEvent;
#[cfg(feature = "trace")]
use serde_json::json;
use std::net::SocketAddr;
use std::time::Instant;

impl Connection {
    #[cfg(feature = "trace")]
    /// Starts recording trace events; drain them with [`Self::poll_trace`].
    pub fn enable_trace(&mut self) {
        if self.tracer.is_none() {
            self.tracer = Some(Tracer::new(self.created));
        }
    }

    #[cfg(feature = "trace")]
    /// The next recorded trace event.
    pub fn poll_trace(&mut self) -> Option<TraceEvent> {
        self.tracer.as_mut()?.pop()
    }

    #[cfg(feature = "trace")]
    pub(super) fn trace(
        &mut self,
        now: Instant,
        name: &'static str,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        if let Some(t) = self.tracer.as_mut() {
            t.event(now, name, data());
        }
    }

    #[cfg(not(feature = "trace"))]
    pub(super) fn trace_state(&mut self, _now: Instant) {}

    #[cfg(not(feature = "trace"))]
    pub(super) fn trace_metrics(&mut self, _now: Instant) {}

    #[cfg(not(feature = "trace"))]
    pub(super) fn trace_path(&mut self, _now: Instant, _what: &'static str, _addr: SocketAddr) {}

    #[cfg(feature = "trace")]
    /// `connectivity:path_updated`: a path validation started
    /// (`validating`), succeeded (`migrated`) or was given up
    /// (`abandoned`), §6.9.
    pub(super) fn trace_path(&mut self, now: Instant, what: &'static str, addr: SocketAddr) {
        self.trace(
            now,
            "connectivity:path_updated",
            || json!({ "event": what, "address": addr.to_string() }),
        );
    }

    #[cfg(not(feature = "trace"))]
    pub(super) fn trace_mtu(&mut self, _now: Instant, _size: usize, _black_hole: bool) {}

    #[cfg(feature = "trace")]
    /// `connectivity:mtu_updated`: the datagram size in use changed (§9.7),
    /// up after an acknowledged probe or down to 1200 after a black hole.
    pub(super) fn trace_mtu(&mut self, now: Instant, size: usize, black_hole: bool) {
        self.trace(
            now,
            "connectivity:mtu_updated",
            || json!({ "new": size, "black_hole": black_hole }),
        );
    }

    #[cfg(feature = "trace")]
    pub(super) fn trace_state(&mut self, now: Instant) {
        let state = self.state;
        self.trace(now, "connectivity:connection_state_updated", || {
            let name = match state {
                State::Handshake => "handshake",
                State::Established => "established",
                State::Lingering => "lingering",
                State::Closing { .. } => "closing",
                State::Draining { .. } => "draining",
                State::Closed => "closed",
            };
            json!({ "new": name })
        });
    }

    #[cfg(feature = "trace")]
    /// `recovery:metrics_updated` when RTT, window or bytes in flight moved.
    pub(super) fn trace_metrics(&mut self, now: Instant) {
        if self.tracer.is_none() {
            return;
        }
        let m = (
            self.path.rtt.smoothed().as_micros() as u64,
            self.path.cc.window(),
            self.recovery.sent.bytes_in_flight(),
        );
        if m == self.last_metrics {
            return;
        }
        self.last_metrics = m;
        let (rtt, cc_window, in_flight) = (self.path.rtt.clone(), m.1, m.2);
        self.trace(now, "recovery:metrics_updated", || {
            json!({
                "smoothed_rtt": rtt.smoothed().as_secs_f64() * 1000.0,
                "min_rtt": rtt.min().as_secs_f64() * 1000.0,
                "latest_rtt": rtt.latest().as_secs_f64() * 1000.0,
                "rtt_variance": rtt.var().as_secs_f64() * 1000.0,
                "congestion_window": cc_window,
                "bytes_in_flight": in_flight,
                // False while the RTT fields are the initial guess (§9.1).
                "rtt_sampled": rtt.has_sample(),
            })
        });
    }
}

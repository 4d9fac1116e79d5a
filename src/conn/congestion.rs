//! Congestion control (PROTOCOL.md §9.4): a small trait, and NewReno
//! (RFC 9002 §7) behind it.
//!
//! Congestion control is local policy: the peer cannot see which controller
//! runs, so new ones can be added without a protocol change.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Which controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 9002 §7: slow start, congestion avoidance, halve on loss.
    #[default]
    NewReno,
}

impl Algorithm {
    pub fn build(self, max_datagram_size: usize) -> Box<dyn Controller> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(max_datagram_size as u64)),
        }
    }
}

/// What a congestion controller is told and asked.
pub trait Controller: Debug + Send {
    /// Bytes of a newly acknowledged in-flight packet sent at `sent`.
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64);
    /// Packets were declared lost; the newest of them was sent at `sent`.
    /// `persistent` reports persistent congestion (RFC 9002 §7.6).
    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool);
    /// Bytes that may be in flight.
    fn window(&self) -> u64;
}

/// NewReno as RFC 9002 §7.3 describes it.
#[derive(Debug, Clone)]
pub struct NewReno {
    mss: u64,
    window: u64,
    ssthresh: u64,
    /// Packets sent before this instant belong to the current recovery
    /// period: their loss does not shrink the window again.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance, not yet turned into
    /// window growth.
    acked_in_avoidance: u64,
}

impl NewReno {
    pub fn new(mss: u64) -> Self {
        Self {
            mss,
            window: initial_window(mss),
            ssthresh: u64::MAX,
            recovery_start: None,
            acked_in_avoidance: 0,
        }
    }

    fn minimum_window(&self) -> u64 {
        2 * self.mss
    }
}

/// RFC 9002 §7.2: min(10 * mss, max(14720, 2 * mss)).
pub fn initial_window(mss: u64) -> u64 {
    (10 * mss).min(14_720.max(2 * mss))
}

impl Controller for NewReno {
    fn on_ack(&mut self, _now: Instant, sent: Instant, bytes: u64) {
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes;
        } else {
            self.acked_in_avoidance += bytes;
            if self.acked_in_avoidance >= self.window {
                self.acked_in_avoidance -= self.window;
                self.window += self.mss;
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool) {
        if persistent {
            self.window = self.minimum_window();
            self.recovery_start = Some(now);
            return;
        }
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        self.recovery_start = Some(now);
        self.ssthresh = (self.window / 2).max(self.minimum_window());
        self.window = self.ssthresh;
        self.acked_in_avoidance = 0;
    }

    fn window(&self) -> u64 {
        self.window
    }
}

/// RFC 9002 §7.6.1: the span of losses that signals persistent congestion.
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// The duration of persistent congestion for the given PTO (without backoff).
pub fn persistent_congestion_duration(pto: Duration) -> Duration {
    pto * PERSISTENT_CONGESTION_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_halve_once_per_recovery() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(1200);
        assert_eq!(cc.window(), 12_000);
        cc.on_ack(t0, t0, 1200);
        assert_eq!(cc.window(), 13_200);
        let t1 = t0 + Duration::from_millis(10);
        cc.on_congestion_event(t1, t0, false);
        assert_eq!(cc.window(), 6_600);
        // A second loss from before the recovery started changes nothing.
        cc.on_congestion_event(t1, t0, false);
        assert_eq!(cc.window(), 6_600);
        // Congestion avoidance: one MSS per window of acknowledged bytes.
        let t2 = t1 + Duration::from_millis(1);
        for _ in 0..5 {
            cc.on_ack(t2, t2, 1200);
        }
        assert_eq!(cc.window(), 6_600);
        cc.on_ack(t2, t2, 1200);
        assert_eq!(cc.window(), 7_800);
        cc.on_congestion_event(t2, t2, true);
        assert_eq!(cc.window(), 2_400);
    }
}

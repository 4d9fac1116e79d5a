//! NewReno (RFC 9002 §7.3), the simplest controller: slow start, then one
//! datagram more per window acknowledged, and half the window on loss.

use super::{initial_window, minimum_window, Controller};
use crate::rtt::RttEstimator;
use std::time::Instant;

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
    /// A controller for datagrams of at most `mss` bytes, in slow start.
    pub fn new(mss: u64) -> Self {
        Self {
            mss,
            window: initial_window(mss),
            ssthresh: u64::MAX,
            recovery_start: None,
            acked_in_avoidance: 0,
        }
    }
}

impl Controller for NewReno {
    fn on_ack(&mut self, _now: Instant, sent: Instant, bytes: u64, _rtt: &RttEstimator) {
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

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        _lost_bytes: u64,
        persistent: bool,
    ) {
        if persistent {
            self.window = minimum_window(self.mss);
            self.recovery_start = Some(now);
            return;
        }
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        self.recovery_start = Some(now);
        self.ssthresh = (self.window / 2).max(minimum_window(self.mss));
        self.window = self.ssthresh;
        self.acked_in_avoidance = 0;
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn set_max_datagram_size(&mut self, mss: u64) {
        self.mss = mss;
        self.window = self.window.max(minimum_window(mss));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slow_start_then_halve_once_per_recovery() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(1200);
        let rtt = RttEstimator::new(Duration::from_millis(100));
        assert_eq!(cc.window(), 12_000);
        cc.on_ack(t0, t0, 1200, &rtt);
        assert_eq!(cc.window(), 13_200);
        let t1 = t0 + Duration::from_millis(10);
        cc.on_congestion_event(t1, t0, 1200, false);
        assert_eq!(cc.window(), 6_600);
        // A second loss from before the recovery started changes nothing.
        cc.on_congestion_event(t1, t0, 1200, false);
        assert_eq!(cc.window(), 6_600);
        // Congestion avoidance: one MSS per window of acknowledged bytes.
        let t2 = t1 + Duration::from_millis(1);
        for _ in 0..5 {
            cc.on_ack(t2, t2, 1200, &rtt);
        }
        assert_eq!(cc.window(), 6_600);
        cc.on_ack(t2, t2, 1200, &rtt);
        assert_eq!(cc.window(), 7_800);
        cc.on_congestion_event(t2, t2, 1200, true);
        assert_eq!(cc.window(), 2_400);
    }
}

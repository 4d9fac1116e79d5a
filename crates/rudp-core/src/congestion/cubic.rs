//! CUBIC (RFC 9438): after a loss the window is cut to 0.7 of itself and
//! grows back along a cubic curve that flattens out near the window of the
//! loss (`w_max`) and then probes beyond it. A Reno-friendly estimate keeps
//! it at least as fast as Reno on short-RTT paths (§4.3 of the RFC).

use super::{initial_window, minimum_window, Controller};
use crate::rtt::RttEstimator;
use std::time::Instant;

/// RFC 9438 §5: the multiplicative decrease factor.
const BETA: f64 = 0.7;
/// RFC 9438 §5: the cubic constant, in datagrams per second cubed.
const C: f64 = 0.4;

/// CUBIC (RFC 9438): cubic window growth, multiplicative decrease by 0.7.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: u64,
    /// The window, fractional so that growth of less than a byte per ACK
    /// accumulates.
    window: f64,
    ssthresh: u64,
    /// Packets sent before this belong to the current recovery period.
    recovery_start: Option<Instant>,
    /// Window (bytes) just before the last reduction.
    w_max: f64,
    /// Seconds the cubic curve takes to climb back to `w_max`.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// The Reno-friendly window estimate, bytes.
    w_est: f64,
}

impl Cubic {
    /// A controller for datagrams of at most `mss` bytes, in slow start.
    pub fn new(mss: u64) -> Self {
        Self {
            mss,
            window: initial_window(mss) as f64,
            ssthresh: u64::MAX,
            recovery_start: None,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
        }
    }

    fn mss(&self) -> f64 {
        self.mss as f64
    }

    /// RFC 9438 §4.1: W_cubic(t) in bytes, `t` seconds into the epoch.
    fn w_cubic(&self, t: f64) -> f64 {
        (C * (t - self.k).powi(3)) * self.mss() + self.w_max
    }
}

impl Controller for Cubic {
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, rtt: &RttEstimator) {
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        let bytes = bytes as f64;
        if self.window < self.ssthresh as f64 {
            self.window += bytes;
            return;
        }
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                // Congestion avoidance without a preceding loss (§4.8):
                // the curve starts flat at the current window.
                self.epoch_start = Some(now);
                self.w_max = self.window;
                self.k = 0.0;
                self.w_est = self.window;
                now
            }
        };
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        // §4.2: aim for the curve's value one RTT ahead, at most 1.5x.
        let target = self
            .w_cubic(t + rtt.smoothed().as_secs_f64())
            .clamp(self.window, 1.5 * self.window);
        let cubic = self.window + (target - self.window) / self.window * bytes;
        // §4.3: the Reno-friendly region.
        let alpha = if self.w_est < self.w_max {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        } else {
            1.0
        };
        self.w_est += alpha * bytes / self.window * self.mss();
        self.window = cubic.max(self.w_est);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        _lost_bytes: u64,
        persistent: bool,
    ) {
        if persistent {
            // RFC 9438 §4.8 / RFC 9002 §7.6.2: back to the minimum window,
            // then slow start up to the current ssthresh.
            self.ssthresh = ((self.window * BETA) as u64).max(minimum_window(self.mss));
            self.window = minimum_window(self.mss) as f64;
            self.recovery_start = Some(now);
            self.epoch_start = None;
            return;
        }
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        self.recovery_start = Some(now);
        // §4.7 fast convergence: a window below the last w_max means the
        // share of the path shrank; release some of it.
        self.w_max = if self.window < self.w_max {
            self.window * (1.0 + BETA) / 2.0
        } else {
            self.window
        };
        let reduced = (self.window * BETA).max(minimum_window(self.mss) as f64);
        self.ssthresh = reduced as u64;
        self.window = reduced;
        self.w_est = reduced;
        self.k = ((self.w_max - reduced) / self.mss() / C).max(0.0).cbrt();
        self.epoch_start = Some(now);
    }

    fn window(&self) -> u64 {
        self.window as u64
    }

    fn set_max_datagram_size(&mut self, mss: u64) {
        self.mss = mss;
        self.window = self.window.max(minimum_window(mss) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cuts_by_beta_then_climbs_back_to_w_max_after_k() {
        let t0 = Instant::now();
        // A long RTT, where the cubic curve rather than the Reno-friendly
        // estimate decides the growth.
        let rtt = RttEstimator::new(Duration::from_millis(100));
        let mut cc = Cubic::new(1000);
        assert_eq!(cc.window(), 10_000);
        // Slow start to 100 datagrams, then a loss.
        for _ in 0..90 {
            cc.on_ack(t0, t0, 1000, &rtt);
        }
        assert_eq!(cc.window(), 100_000);
        let t1 = t0 + Duration::from_millis(1);
        cc.on_congestion_event(t1, t0, 1000, false);
        assert_eq!(cc.window(), 70_000);
        // K = cbrt(30 datagrams / 0.4) = about 4.2 s.
        assert!((cc.k - 4.217).abs() < 0.01, "{}", cc.k);
        // A second loss from the same flight changes nothing.
        cc.on_congestion_event(t1, t0, 1000, false);
        assert_eq!(cc.window(), 70_000);
        // Feed ACKs for K seconds: the window approaches w_max from below.
        let mut now = t1;
        while now < t1 + Duration::from_millis(4100) {
            now += Duration::from_millis(100);
            for _ in 0..(cc.window() / 1000) {
                cc.on_ack(now, now, 1000, &rtt);
            }
        }
        let w = cc.window();
        assert!((95_000..=101_000).contains(&w), "{w}");
        // Well past K it probes beyond w_max.
        while now < t1 + Duration::from_secs(7) {
            now += Duration::from_millis(100);
            for _ in 0..(cc.window() / 1000) {
                cc.on_ack(now, now, 1000, &rtt);
            }
        }
        assert!(cc.window() > 110_000, "{}", cc.window());
        // Persistent congestion: back to the minimum window.
        let t2 = now + Duration::from_millis(1);
        cc.on_congestion_event(t2, now, 1000, true);
        assert_eq!(cc.window(), 2000);
    }
}

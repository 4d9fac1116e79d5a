//! Pacing (PROTOCOL.md §9.6): spreads ack-eliciting packets over time at the
//! congestion controller's rate, so that a full window never leaves as one
//! burst into a shallow queue.
//!
//! A token bucket: tokens (bytes) accrue at the pacing rate up to a burst
//! capacity, and each packet spends its size. The capacity is two
//! milliseconds at the current rate, but never less than ten datagrams: timers
//! fire with about a millisecond of granularity, and a smaller bucket would
//! let that granularity, rather than the rate, decide the throughput. The
//! same compromise as quinn's and Linux's pacers.

use std::time::{Duration, Instant};

/// Burst capacity in time at the pacing rate.
const BURST_TIME: Duration = Duration::from_millis(2);
/// Burst capacity bounds, in datagrams.
const MIN_BURST: u64 = 10;
const MAX_BURST: u64 = 2048;

#[derive(Debug, Clone)]
pub(super) struct Pacer {
    tokens: f64,
    last: Instant,
}

impl Pacer {
    pub(super) fn new(now: Instant, mss: u64) -> Self {
        Self {
            tokens: (MIN_BURST * mss) as f64,
            last: now,
        }
    }

    fn capacity(rate: u64, mss: u64) -> f64 {
        let burst = rate as f64 * BURST_TIME.as_secs_f64();
        burst.clamp((MIN_BURST * mss) as f64, (MAX_BURST * mss) as f64)
    }

    /// Whether a packet of `size` bytes may leave at `now` at `rate` bytes
    /// per second: `None` if so, otherwise when it may.
    pub(super) fn delay(
        &mut self,
        now: Instant,
        size: u64,
        rate: u64,
        mss: u64,
    ) -> Option<Instant> {
        let rate = rate.max(1);
        let capacity = Self::capacity(rate, mss);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64).min(capacity);
        self.last = now;
        let missing = size as f64 - self.tokens;
        if missing <= 0.0 {
            return None;
        }
        // Round up, so that at the returned instant the tokens suffice.
        let nanos = (missing * 1e9 / rate as f64).ceil().max(1.0);
        Some(now + Duration::from_nanos(nanos.min(1e12) as u64))
    }

    /// A packet of `size` bytes left.
    pub(super) fn on_sent(&mut self, size: u64) {
        self.tokens = (self.tokens - size as f64).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_a_window_over_time() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1000);
        // 1 MB/s: the burst is ten datagrams, then one every millisecond.
        let rate = 1_000_000;
        for _ in 0..10 {
            assert_eq!(p.delay(t0, 1000, rate, 1000), None);
            p.on_sent(1000);
        }
        let next = p.delay(t0, 1000, rate, 1000).expect("paced");
        assert_eq!(next, t0 + Duration::from_millis(1));
        assert_eq!(p.delay(next, 1000, rate, 1000), None);
        p.on_sent(1000);
        // An idle period refills at most the burst capacity.
        let later = next + Duration::from_secs(1);
        for _ in 0..10 {
            assert_eq!(p.delay(later, 1000, rate, 1000), None);
            p.on_sent(1000);
        }
        assert!(p.delay(later, 1000, rate, 1000).is_some());
    }
}

//! Pacing (PROTOCOL.md §9.6): spreads ack-eliciting packets over time at the
//! congestion controller's rate, so that a full window never leaves as one
//! burst into a shallow queue.
//!
//! A token bucket: tokens (bytes) accrue at the pacing rate up to a burst
//! capacity, and each packet spends its size. The capacity is one
//! millisecond at the current rate, but never less than ten datagrams:
//! timers fire with about a millisecond of granularity, and a smaller
//! bucket would let that granularity, rather than the rate, decide the
//! throughput (with four datagrams, a 50 Mbit/s link carried 27 Mbit/s);
//! a larger one sends bursts that a shallow bottleneck drops (issue #27:
//! with two milliseconds, a 100 Mbit/s link with a 10-packet queue dropped
//! 6.5-6.9% of a transfer's packets and carried 72-79% of its rate; with
//! one, 0.8-1.0% and 86%; docs/benchmarks.md).

use std::time::{Duration, Instant};

/// Burst capacity in time at the pacing rate (§9.6).
const BURST_TIME: Duration = Duration::from_millis(1);
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

    /// At 100 Mbit/s a burst is ten 1472-byte datagrams (one millisecond
    /// is 12.5 kB, less than the floor), what a 10-packet bottleneck queue
    /// holds; at 1 Gbit/s it is one millisecond, 125 kB.
    #[test]
    fn a_burst_is_a_millisecond_but_at_least_ten_datagrams() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1472);
        let later = t0 + Duration::from_secs(1);
        let mut burst = 0;
        while p.delay(later, 1472, 12_500_000, 1472).is_none() {
            p.on_sent(1472);
            burst += 1;
        }
        assert_eq!(burst, MIN_BURST);
        let mut p = Pacer::new(t0, 1472);
        let mut bytes = 0;
        while p.delay(later, 1472, 125_000_000, 1472).is_none() {
            p.on_sent(1472);
            bytes += 1472;
        }
        assert!((123_000..=125_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn spreads_a_window_over_time() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1000);
        // 1 MB/s: the burst is ten datagrams, then one every millisecond.
        let rate = 1_000_000;
        for _ in 0..MIN_BURST {
            assert_eq!(p.delay(t0, 1000, rate, 1000), None);
            p.on_sent(1000);
        }
        let next = p.delay(t0, 1000, rate, 1000).expect("paced");
        assert_eq!(next, t0 + Duration::from_millis(1));
        assert_eq!(p.delay(next, 1000, rate, 1000), None);
        p.on_sent(1000);
        // An idle period refills at most the burst capacity.
        let later = next + Duration::from_secs(1);
        for _ in 0..MIN_BURST {
            assert_eq!(p.delay(later, 1000, rate, 1000), None);
            p.on_sent(1000);
        }
        assert!(p.delay(later, 1000, rate, 1000).is_some());
    }
}

//! Round-trip time estimation (PROTOCOL.md §9.1; RFC 9002 §5, RFC 6298).

use std::time::Duration;

/// Timer granularity: the smallest loss delay and PTO variance term
/// (RFC 9002 §6.1.2 kGranularity). It is 1 ms, not TCP's customary 200 ms
/// minimum RTO, so that recovery on a fast path takes milliseconds.
pub(super) const GRANULARITY: Duration = Duration::from_millis(1);

/// Time thresholds, as fractions of the RTT: 9/8 (RFC 9002 §6.1.2) to start
/// with, one step wider after each spurious loss (§9.2).
pub(super) const TIME_THRESHOLDS: [(u32, u32); 4] = [(9, 8), (5, 4), (3, 2), (2, 1)];

/// Smoothed RTT, its variation and the minimum, from acknowledgement samples.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
    initial: Duration,
}

impl RttEstimator {
    /// An estimator assuming `initial` until the first sample (§9.1).
    pub fn new(initial: Duration) -> Self {
        Self {
            latest: initial,
            smoothed: None,
            var: initial / 2,
            min: initial,
            initial,
        }
    }

    /// Whether any sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.smoothed.is_some()
    }

    /// Takes one sample (RFC 9002 §5.3). `ack_delay` is the delay the peer
    /// reported, already capped at its max_ack_delay; it is subtracted only
    /// when that leaves the sample at or above the minimum RTT.
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        self.latest = sample;
        let Some(smoothed) = self.smoothed else {
            self.smoothed = Some(sample);
            self.var = sample / 2;
            self.min = sample;
            return;
        };
        self.min = self.min.min(sample);
        let adjusted = if sample >= self.min + ack_delay {
            sample - ack_delay
        } else {
            sample
        };
        let deviation = smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + deviation) / 4;
        self.smoothed = Some((smoothed * 7 + adjusted) / 8);
    }

    /// The smoothed RTT (the initial guess before a sample).
    pub fn smoothed(&self) -> Duration {
        self.smoothed.unwrap_or(self.initial)
    }

    /// The RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// The smallest RTT sampled.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The last sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The probe timeout before backoff and before adding the peer's
    /// max_ack_delay (RFC 9002 §6.2.1).
    pub fn pto_base(&self) -> Duration {
        self.smoothed() + (self.var * 4).max(GRANULARITY)
    }

    /// How long after a later packet was acknowledged an earlier one is
    /// declared lost: 9/8 of the RTT (RFC 9002 §6.1.2).
    pub fn loss_delay(&self) -> Duration {
        self.loss_delay_times(TIME_THRESHOLDS[0])
    }

    /// The loss delay for a time threshold of `num/den` RTT (§9.2: spurious
    /// losses widen it).
    pub fn loss_delay_times(&self, (num, den): (u32, u32)) -> Duration {
        let rtt = self.smoothed().max(self.latest);
        (rtt * num / den).max(GRANULARITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_sample_sets_everything() {
        let mut r = RttEstimator::new(100 * MS);
        r.update(40 * MS, Duration::ZERO);
        assert_eq!(r.smoothed(), 40 * MS);
        assert_eq!(r.var(), 20 * MS);
        assert_eq!(r.min(), 40 * MS);
        assert_eq!(r.pto_base(), 120 * MS);
    }

    #[test]
    fn ewma_and_ack_delay() {
        let mut r = RttEstimator::new(100 * MS);
        r.update(40 * MS, Duration::ZERO);
        // 60 ms with 10 ms ack delay: adjusted 50 ms.
        r.update(60 * MS, 10 * MS);
        assert_eq!(r.smoothed(), (40 * MS * 7 + 50 * MS) / 8);
        assert_eq!(r.var(), (20 * MS * 3 + 10 * MS) / 4);
        // An ack delay that would take the sample below min is ignored.
        r.update(41 * MS, 10 * MS);
        assert_eq!(r.latest(), 41 * MS);
        assert_eq!(r.min(), 40 * MS);
    }

    #[test]
    fn fast_path_has_millisecond_timers() {
        let mut r = RttEstimator::new(100 * MS);
        for _ in 0..20 {
            r.update(Duration::from_micros(100), Duration::ZERO);
        }
        assert!(r.pto_base() < 2 * MS, "{:?}", r.pto_base());
        assert_eq!(r.loss_delay(), GRANULARITY);
    }
}

//! A BBR-style controller (PROTOCOL.md §9.4.3): it models the path by its
//! bottleneck bandwidth (the highest delivery rate measured over the last
//! ten round trips) and its minimum RTT, paces at that bandwidth and keeps
//! about two bandwidth-delay products in flight.
//!
//! Loss-based controllers read every loss as congestion, so 5% random loss
//! holds NewReno and CUBIC to a few datagrams per RTT. This one ignores loss
//! below a ceiling ([`LOSS_CEILING`] of a round's bytes) and reacts only when
//! loss rises above it, which random loss of that size does not do but an
//! overflowing queue does.
//!
//! Modes, after BBR v1: STARTUP doubles the rate each round until the
//! bandwidth stops growing (three rounds under +25%) or, sooner, until the
//! RTT shows a queue building (HyStart++'s delay test, RFC 9406); DRAIN empties the
//! queue STARTUP built; PROBE_BW cycles its pacing gain through 1.25, 0.75,
//! then six rounds at 1.0, so that it notices when more bandwidth appears.
//! There is no PROBE_RTT mode: the minimum RTT is re-measured from ordinary
//! samples once it is ten seconds old.
//!
//! Trade-offs: against loss-based flows on a shallow queue it takes more
//! than its share and keeps that queue full (as BBR v1 does); it trusts its
//! own rate samples, so a path whose capacity drops sharply is overdriven
//! for up to ten rounds, unless the loss ceiling trips first.

use super::delivery::AckSample;
use super::inflight::{InflightBound, Stretch};
use super::{initial_window, Controller};
use crate::rtt::RttEstimator;
use std::time::{Duration, Instant};

/// Loss above this share of a loss epoch's bytes is congestion, not noise.
pub(super) const LOSS_CEILING: f64 = 0.20;
/// A loss epoch lasts until this many datagrams were delivered or lost...
const LOSS_EPOCH_PACKETS: u64 = 200;
/// ...or this many rounds passed, whichever comes first.
const LOSS_EPOCH_ROUNDS: u32 = 16;
/// STARTUP's gain, 2/ln 2: the smallest that doubles delivery per round.
const HIGH_GAIN: f64 = 2.885;
/// STARTUP's window, in estimated BDPs (BBRv3's `BBRStartupCwndGain`): the
/// pacing rate doubles delivery each round, and a window of two BDPs lets it,
/// while bounding the queue STARTUP can build before it notices to about one
/// BDP of the estimate, which lags the true rate (§9.4.3).
const STARTUP_CWND_GAIN: f64 = 2.0;
/// PROBE_BW pacing gains, one phase per minimum RTT.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// PROBE_BW keeps this many bandwidth-delay products in flight.
const CWND_GAIN: f64 = 2.0;
/// Rounds the bandwidth filter remembers.
const BW_ROUNDS: usize = 10;
/// The minimum RTT is re-measured once this old.
const MIN_RTT_LIFETIME: Duration = Duration::from_secs(10);
/// Floor of the window, in datagrams.
const MIN_WINDOW_PACKETS: u64 = 4;
/// After a loss-ceiling round the bandwidth estimate is cut to this share.
const LOSS_BACKOFF: f64 = 0.7;
/// STARTUP's delay test (RFC 9406 §4.3, HyStart++'s `N_RTT_SAMPLE`): a
/// round's minimum RTT counts once it holds this many samples...
const DELAY_SAMPLES: u32 = 8;
/// ...and shows a queue when it exceeds the path's minimum RTT by an
/// eighth of it, within these bounds (`MIN_RTT_THRESH`, `MAX_RTT_THRESH`).
const DELAY_THRESHOLD_MIN: Duration = Duration::from_millis(4);
const DELAY_THRESHOLD_MAX: Duration = Duration::from_millis(16);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw { phase: usize, since: Instant },
}

/// The BBR-style controller (§9.4.3): paces at the measured delivery rate
/// and keeps about two bandwidth-delay products in flight; random loss
/// below a ceiling does not cut the rate.
#[derive(Debug, Clone)]
pub struct Bbr {
    mss: u64,
    mode: Mode,
    window: u64,
    /// Best delivery rate per round, for the last `BW_ROUNDS` rounds.
    bw_samples: [(u64, u64); BW_ROUNDS],
    /// Whether each round's best sample was app-limited.
    bw_app_limited: [bool; BW_ROUNDS],
    min_rtt: Option<(Duration, Instant)>,
    round: u64,
    /// The round ends when a packet sent after this much was delivered is
    /// acknowledged.
    next_round_delivered: u64,
    /// STARTUP's check that the bandwidth still grows.
    full_bw: u64,
    full_bw_rounds: u32,
    /// STARTUP's check that no queue builds: this round's smallest RTT
    /// sample and how many samples it has seen.
    round_rtt: Option<Duration>,
    round_rtt_samples: u32,
    /// Bytes lost during the current loss epoch, `delivered` at its start,
    /// and its rounds so far.
    round_lost: u64,
    round_delivered_start: u64,
    loss_epoch_rounds: u32,
    /// Bytes acknowledged beyond what the estimated rate explains, the
    /// largest over recent rounds: ACK aggregation (delayed ACKs, batched
    /// receives) that the window must absorb.
    extra_acked: [u64; 2],
    epoch: Option<(Instant, u64)>,
    /// The bound on what is in flight that probes which overflowed the
    /// bottleneck's queue taught (inflight.rs).
    inflight: InflightBound,
}

impl Bbr {
    /// A controller for datagrams of at most `mss` bytes, starting up.
    pub fn new(mss: u64) -> Self {
        Self {
            mss,
            mode: Mode::Startup,
            window: initial_window(mss),
            bw_samples: [(0, 0); BW_ROUNDS],
            bw_app_limited: [false; BW_ROUNDS],
            min_rtt: None,
            round: 0,
            next_round_delivered: 0,
            full_bw: 0,
            full_bw_rounds: 0,
            round_rtt: None,
            round_rtt_samples: 0,
            round_lost: 0,
            round_delivered_start: 0,
            loss_epoch_rounds: 0,
            extra_acked: [0; 2],
            epoch: None,
            inflight: InflightBound::default(),
        }
    }

    /// The bottleneck bandwidth estimate, bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bw_samples
            .iter()
            .filter(|(round, _)| round + (BW_ROUNDS as u64) > self.round)
            .map(|&(_, bw)| bw)
            .max()
            .unwrap_or(0)
    }

    fn min_rtt(&self, rtt: &RttEstimator) -> Duration {
        self.min_rtt.map_or(rtt.smoothed(), |(r, _)| r)
    }

    /// Bandwidth-delay product, bytes.
    fn bdp(&self, rtt: &RttEstimator) -> u64 {
        (self.bandwidth() as f64 * self.min_rtt(rtt).as_secs_f64()) as u64
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => HIGH_GAIN,
            Mode::Drain => 1.0 / HIGH_GAIN,
            Mode::ProbeBw { phase, .. } => CYCLE[phase],
        }
    }

    /// Which part of the PROBE_BW cycle this is, for the inflight bound.
    fn stretch(&self) -> Stretch {
        match self.mode {
            Mode::ProbeBw { phase: 0 | 1, .. } => Stretch::Probe,
            Mode::ProbeBw { .. } => Stretch::Cruise,
            Mode::Startup | Mode::Drain => Stretch::Other,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mss
    }

    fn record_bw(&mut self, bw: u64, app_limited: bool) {
        let i = (self.round % BW_ROUNDS as u64) as usize;
        let slot = &mut self.bw_samples[i];
        if slot.0 != self.round {
            *slot = (self.round, 0);
            self.bw_app_limited[i] = true;
        }
        if bw > slot.1 || (bw == slot.1 && !app_limited) {
            slot.1 = bw;
            self.bw_app_limited[i] = app_limited;
        }
    }

    /// Whether the bandwidth estimate comes from an app-limited sample:
    /// it measured the application, not the path.
    fn estimate_app_limited(&self) -> bool {
        self.bw_samples
            .iter()
            .zip(&self.bw_app_limited)
            .filter(|((round, _), _)| round + (BW_ROUNDS as u64) > self.round)
            .max_by_key(|((_, bw), _)| *bw)
            .is_some_and(|(_, &app_limited)| app_limited)
    }

    /// Tracks ACK aggregation: bytes acknowledged since the epoch began
    /// beyond what the bandwidth estimate predicts.
    fn update_ack_aggregation(&mut self, now: Instant, acked: u64) {
        let bw = self.bandwidth();
        let expected = |start: Instant| {
            (bw as f64 * now.saturating_duration_since(start).as_secs_f64()) as u64
        };
        // An epoch lasts while ACKs run ahead of the estimated rate.
        let (start, bytes) = match self.epoch {
            Some((start, bytes)) if bytes > expected(start) => (start, bytes),
            _ => (now, 0),
        };
        let bytes = bytes + acked;
        self.epoch = Some((start, bytes));
        let extra = bytes.saturating_sub(expected(start)).min(self.window);
        let slot = (self.round / 5 % 2) as usize;
        self.extra_acked[slot] = self.extra_acked[slot].max(extra);
    }

    /// STARTUP's delay test (§9.4.3, after RFC 9406 §4.3): once a round
    /// has [`DELAY_SAMPLES`] RTT samples, all above the path's minimum RTT
    /// by `clamp(min_rtt / 8, 4 ms, 16 ms)`, the bottleneck's queue is
    /// growing: the bandwidth has been found, and every further round at
    /// STARTUP's gain would add almost two BDPs of queue (loss at a
    /// shallow queue, delay at a deep one). Random loss does not trip it;
    /// jitter would need every sample of the round to be late.
    fn queue_is_building(&mut self, latest: Duration) -> bool {
        let Some((min_rtt, _)) = self.min_rtt else {
            return false;
        };
        self.round_rtt = Some(self.round_rtt.map_or(latest, |r| r.min(latest)));
        self.round_rtt_samples += 1;
        let threshold = (min_rtt / 8).clamp(DELAY_THRESHOLD_MIN, DELAY_THRESHOLD_MAX);
        self.round_rtt_samples >= DELAY_SAMPLES
            && self.round_rtt.is_some_and(|r| r > min_rtt + threshold)
    }

    /// A round trip ended: check STARTUP's growth and the loss ceiling.
    fn on_round_end(&mut self, delivered: u64) {
        let bw = self.bandwidth();
        let epoch_delivered = delivered - self.round_delivered_start;
        let total = epoch_delivered + self.round_lost;
        self.loss_epoch_rounds += 1;
        // The loss share is judged over a loss epoch of at least
        // LOSS_EPOCH_PACKETS datagrams (or LOSS_EPOCH_ROUNDS rounds): at
        // low rates a round holds a few dozen datagrams, and one burst of
        // random loss in it would look like congestion.
        let epoch_over =
            total >= LOSS_EPOCH_PACKETS * self.mss || self.loss_epoch_rounds >= LOSS_EPOCH_ROUNDS;
        let overdriven = epoch_over
            && self.round_lost >= 3 * self.mss
            && self.round_lost as f64 > LOSS_CEILING * total as f64;
        if overdriven {
            // Too much loss to be noise: the path is overdriven.
            let cut = (bw as f64 * LOSS_BACKOFF) as u64;
            for s in self.bw_samples.iter_mut() {
                s.1 = s.1.min(cut);
            }
            if self.mode == Mode::Startup {
                self.full_bw_rounds = 3;
            }
        } else if self.mode == Mode::Startup {
            if bw > 0 && bw >= self.full_bw + self.full_bw / 4 {
                self.full_bw = bw;
                self.full_bw_rounds = 0;
            } else {
                self.full_bw_rounds += 1;
            }
        }
        if epoch_over {
            self.round_lost = 0;
            self.round_delivered_start = delivered;
            self.loss_epoch_rounds = 0;
        }
        // Start the new aggregation slot fresh every five rounds.
        if self.round % 5 == 0 {
            self.extra_acked[(self.round / 5 % 2) as usize] = 0;
        }
    }
}

impl Controller for Bbr {
    fn on_ack(&mut self, _now: Instant, _sent: Instant, _bytes: u64, _rtt: &RttEstimator) {}

    fn on_ack_event(&mut self, now: Instant, s: &AckSample, rtt: &RttEstimator) {
        if s.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = s.delivered;
            self.round += 1;
            self.on_round_end(s.delivered);
            self.round_rtt = None;
            self.round_rtt_samples = 0;
        }
        if let Some(rate) = s.rate {
            // A sample the application did not limit, above an estimate it
            // did limit: the application now wants more than a thin flow.
            // Probing up 25% every eight rounds would take long, so start
            // over from STARTUP, which doubles each round.
            let restart = !rate.app_limited
                && matches!(self.mode, Mode::ProbeBw { .. })
                && rate.bytes_per_sec > self.bandwidth()
                && self.estimate_app_limited();
            if !rate.app_limited || rate.bytes_per_sec >= self.bandwidth() {
                self.record_bw(rate.bytes_per_sec, rate.app_limited);
            }
            if restart {
                self.mode = Mode::Startup;
                self.full_bw = 0;
                self.full_bw_rounds = 0;
            }
        }
        // Only an ACK that took an RTT sample counts in the delay test and
        // the minimum: another would repeat the previous sample.
        if let Some(latest) = s.rtt_sample {
            if self.mode == Mode::Startup && self.queue_is_building(latest) {
                self.full_bw_rounds = 3;
            }
            if self.min_rtt.is_none_or(|(r, at)| {
                latest <= r || now.saturating_duration_since(at) > MIN_RTT_LIFETIME
            }) {
                self.min_rtt = Some((latest, now));
            }
        }
        self.update_ack_aggregation(now, s.newly_acked);
        self.inflight
            .on_acked(s.newly_acked, s.bytes_in_flight, self.stretch());

        let bdp = self.bdp(rtt);
        let before = self.stretch();
        match self.mode {
            Mode::Startup if self.full_bw_rounds >= 3 => self.mode = Mode::Drain,
            Mode::Drain if s.bytes_in_flight <= bdp => {
                self.mode = Mode::ProbeBw {
                    phase: 2,
                    since: now,
                }
            }
            Mode::ProbeBw { phase, since }
                if now.saturating_duration_since(since) > self.min_rtt(rtt) =>
            {
                self.mode = Mode::ProbeBw {
                    phase: (phase + 1) % CYCLE.len(),
                    since: now,
                };
            }
            _ => {}
        }
        if self.stretch() != before {
            self.inflight.on_stretch_end(before, bdp, self.mss);
        }

        // The window: two BDPs plus what ACK aggregation needs. STARTUP
        // grows it by what was acknowledged, like slow start.
        // The aggregation allowance counts only once STARTUP is over: before
        // that the bandwidth estimate lags, and everything looks aggregated.
        let (gain, aggregation) = if self.mode == Mode::Startup {
            (STARTUP_CWND_GAIN, 0)
        } else {
            (
                CWND_GAIN,
                self.extra_acked.iter().max().copied().unwrap_or(0),
            )
        };
        let target = (bdp as f64 * gain) as u64 + aggregation;
        let target = target.max(self.min_window());
        self.window = if self.mode != Mode::Startup {
            (self.window + s.newly_acked).min(target)
        } else if self.window < target || s.delivered < initial_window(self.mss) {
            // Slow-start-like growth, but only up to the target.
            self.window + s.newly_acked
        } else {
            self.window
        };
        // §9.4.3: no more in flight than a probe that overflowed the
        // bottleneck's queue showed it holds.
        if let (Mode::ProbeBw { .. }, Some(hi)) = (self.mode, self.inflight.bound()) {
            self.window = self.window.min(hi);
        }
        self.window = self.window.max(self.min_window());
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        _sent: Instant,
        lost_bytes: u64,
        persistent: bool,
    ) {
        self.round_lost += lost_bytes;
        self.inflight.on_lost(lost_bytes);
        if persistent {
            // Everything in flight for three PTOs was lost: the model is
            // wrong. Start over from the minimum window.
            self.bw_samples = [(0, 0); BW_ROUNDS];
            self.window = self.min_window();
            self.mode = Mode::Startup;
            self.full_bw = 0;
            self.full_bw_rounds = 0;
        }
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn set_max_datagram_size(&mut self, mss: u64) {
        self.mss = mss;
        self.window = self.window.max(self.min_window());
    }

    fn pacing_rate(&self, rtt: &RttEstimator) -> u64 {
        let bw = self.bandwidth();
        if bw == 0 {
            // No sample yet: the initial window over the RTT, at STARTUP's gain.
            return (super::rate_of(self.window, rtt.smoothed()) as f64 * HIGH_GAIN) as u64;
        }
        (bw as f64 * self.pacing_gain()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::delivery::RateSample;

    fn sample(delivered: u64, prior: u64, acked: u64, bw: u64) -> AckSample {
        AckSample {
            delivered,
            prior_delivered: prior,
            newly_acked: acked,
            bytes_in_flight: 0,
            rate: Some(RateSample {
                bytes_per_sec: bw,
                app_limited: false,
            }),
            rtt_sample: Some(Duration::from_millis(10)),
        }
    }

    /// Drives the controller round by round at a path bandwidth of `bw`,
    /// losing `loss` of each round's bytes; returns its estimate.
    fn run(cc: &mut Bbr, t: &mut Instant, delivered: &mut u64, rounds: usize, bw: u64, loss: f64) {
        let mut rtt = RttEstimator::new(Duration::from_millis(10));
        rtt.update(Duration::from_millis(10), Duration::ZERO);
        for _ in 0..rounds {
            *t += Duration::from_millis(10);
            let bytes = bw / 100;
            let lost = (bytes as f64 * loss) as u64;
            cc.on_congestion_event(*t, *t, lost, false);
            let prior = *delivered;
            *delivered += bytes - lost;
            cc.on_ack_event(*t, &sample(*delivered, prior, bytes - lost, bw), &rtt);
        }
    }

    #[test]
    fn random_loss_below_the_ceiling_keeps_the_rate() {
        let (mut t, mut delivered) = (Instant::now(), 0);
        let mut cc = Bbr::new(1200);
        run(&mut cc, &mut t, &mut delivered, 30, 10_000_000, 0.10);
        assert!(matches!(cc.mode, Mode::ProbeBw { .. }), "{:?}", cc.mode);
        assert_eq!(cc.bandwidth(), 10_000_000);
        // Two BDPs (2 x 100 kB) plus aggregation allowance.
        assert!(cc.window() >= 200_000, "{}", cc.window());
        let rtt = RttEstimator::new(Duration::from_millis(10));
        assert!(cc.pacing_rate(&rtt) >= 7_500_000);
    }

    #[test]
    fn loss_above_the_ceiling_cuts_the_estimate() {
        let (mut t, mut delivered) = (Instant::now(), 0);
        let mut cc = Bbr::new(1200);
        run(&mut cc, &mut t, &mut delivered, 20, 10_000_000, 0.0);
        assert_eq!(cc.bandwidth(), 10_000_000);
        // The path keeps delivering samples at the old rate (queued data),
        // but loses 40% of each round: the estimate must come down, once
        // per loss epoch (about three such rounds).
        let mut rtt = RttEstimator::new(Duration::from_millis(10));
        rtt.update(Duration::from_millis(10), Duration::ZERO);
        for _ in 0..10 {
            t += Duration::from_millis(10);
            cc.on_congestion_event(t, t, 40_000, false);
            let prior = delivered;
            delivered += 60_000;
            let mut s = sample(delivered, prior, 60_000, 0);
            s.rate = None;
            cc.on_ack_event(t, &s, &rtt);
        }
        assert!(cc.bandwidth() <= 5_000_000, "{}", cc.bandwidth());
    }

    /// Feeds one STARTUP round of `acks` ACKs, each with the RTT sample
    /// `rtt_of(i)`, while the bandwidth keeps doubling (so only the delay
    /// test can end STARTUP); returns the mode after it.
    fn startup_round(
        cc: &mut Bbr,
        t: &mut Instant,
        delivered: &mut u64,
        acks: u64,
        rtt_of: impl Fn(u64) -> Duration,
    ) -> Mode {
        startup_round_sampled(cc, t, delivered, acks, |i| Some(rtt_of(i)))
    }

    /// As [`startup_round`], where ACK `i` takes the RTT sample
    /// `rtt_of(i)`, or none.
    fn startup_round_sampled(
        cc: &mut Bbr,
        t: &mut Instant,
        delivered: &mut u64,
        acks: u64,
        rtt_of: impl Fn(u64) -> Option<Duration>,
    ) -> Mode {
        let mut rtt = RttEstimator::new(Duration::from_millis(20));
        let round_start = *delivered;
        let bw = 1_000_000 * (1 << cc.round.min(20));
        for i in 0..acks {
            *t += Duration::from_millis(1);
            if let Some(sample) = rtt_of(i) {
                rtt.update(sample, Duration::ZERO);
            }
            // Every ACK of the round acknowledges packets sent before the
            // round began, except the first, which ends the last round.
            let prior = if i == 0 {
                *delivered
            } else {
                round_start.saturating_sub(1)
            };
            *delivered += 1200;
            let mut s = sample(*delivered, prior, 1200, bw);
            s.rtt_sample = rtt_of(i);
            cc.on_ack_event(*t, &s, &rtt);
        }
        cc.mode
    }

    /// A controller after six rounds of STARTUP of 12 ACKs each, ACK `i`
    /// of a round sampling `rtt_of(i)`: the minimum RTT is known, and the
    /// bandwidth doubles each round, so only the delay test can end it.
    fn six_startup_rounds(rtt_of: impl Fn(u64) -> Duration + Copy) -> (Bbr, Instant, u64) {
        let (mut t, mut delivered) = (Instant::now(), 0);
        let mut cc = Bbr::new(1200);
        for _ in 0..6 {
            let mode = startup_round(&mut cc, &mut t, &mut delivered, 12, rtt_of);
            assert_eq!(mode, Mode::Startup);
        }
        (cc, t, delivered)
    }

    /// §9.4.3: STARTUP ends at the first round whose RTT samples (8 or
    /// more) all exceed the minimum RTT by the delay threshold (here
    /// 20 ms / 8, raised to 4 ms), though the bandwidth is still growing;
    /// samples that jitter around the minimum, some of them late, do not.
    #[test]
    fn startup_ends_when_every_rtt_sample_of_a_round_shows_a_queue() {
        let ms = Duration::from_millis;
        let jitter = |i: u64| if i % 4 == 0 { ms(20) } else { ms(20 + i % 7) };
        let (mut cc, mut t, mut delivered) = six_startup_rounds(jitter);
        // A round of only 7 late samples is too few to judge.
        let mode = startup_round(&mut cc, &mut t, &mut delivered, 7, |_| ms(30));
        assert_eq!(mode, Mode::Startup);
        // 3.9 ms over the minimum is under the threshold.
        let mode = startup_round(&mut cc, &mut t, &mut delivered, 12, |_| {
            ms(20) + Duration::from_micros(3_900)
        });
        assert_eq!(mode, Mode::Startup);
        // Nothing is in flight in these samples, so DRAIN is over at once.
        let mode = startup_round(&mut cc, &mut t, &mut delivered, 12, |i| ms(25 + i));
        assert!(matches!(mode, Mode::ProbeBw { .. }), "{mode:?}");
    }

    #[test]
    fn acks_without_an_rtt_sample_do_not_count_in_the_delay_test() {
        let ms = Duration::from_millis;
        let (mut cc, mut t, mut delivered) = six_startup_rounds(|_| ms(20));
        // Twelve ACKs, each late sample followed by ACKs that took none
        // (their largest packet was acknowledged before): 4 samples are
        // too few to judge, however many ACKs repeat them.
        let mode = startup_round_sampled(&mut cc, &mut t, &mut delivered, 12, |i| {
            (i % 3 == 0).then_some(ms(30))
        });
        assert_eq!(mode, Mode::Startup);
        let mode = startup_round_sampled(&mut cc, &mut t, &mut delivered, 12, |_| Some(ms(30)));
        assert!(matches!(mode, Mode::ProbeBw { .. }), "{mode:?}");
    }

    #[test]
    fn a_thin_flow_turning_bulk_starts_up_again() {
        let t0 = Instant::now();
        let mut cc = Bbr::new(1200);
        let mut rtt = RttEstimator::new(Duration::from_millis(10));
        rtt.update(Duration::from_millis(10), Duration::ZERO);
        let mut t = t0;
        let mut delivered = 0;
        let mut feed = |cc: &mut Bbr, bw: u64, app_limited: bool, t: &mut Instant| {
            *t += Duration::from_millis(10);
            let prior = delivered;
            delivered += bw / 100;
            let mut s = sample(delivered, prior, bw / 100, bw);
            s.rate = Some(RateSample {
                bytes_per_sec: bw,
                app_limited,
            });
            cc.on_ack_event(*t, &s, &rtt);
        };
        // A month-service-like flow: 10 kB/s, always app-limited.
        for _ in 0..30 {
            feed(&mut cc, 10_000, true, &mut t);
        }
        assert!(matches!(cc.mode, Mode::ProbeBw { .. }), "{:?}", cc.mode);
        assert_eq!(cc.bandwidth(), 10_000);
        // Bulk data arrives: the first sample the application did not limit
        // sends the controller back to STARTUP.
        feed(&mut cc, 12_000, false, &mut t);
        assert_eq!(cc.mode, Mode::Startup);
        assert!(cc.pacing_rate(&rtt) >= (12_000.0 * HIGH_GAIN) as u64);
    }

    #[test]
    fn persistent_congestion_restarts() {
        let (mut t, mut delivered) = (Instant::now(), 0);
        let mut cc = Bbr::new(1200);
        run(&mut cc, &mut t, &mut delivered, 20, 10_000_000, 0.0);
        cc.on_congestion_event(t, t, 1200, true);
        assert_eq!(cc.window(), 4 * 1200);
        assert_eq!(cc.bandwidth(), 0);
        assert_eq!(cc.mode, Mode::Startup);
    }
}

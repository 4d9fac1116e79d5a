//! An upper bound on what the BBR-style controller keeps in flight, learned
//! from loss that its own probing causes (PROTOCOL.md §9.4.3; BBRv2's
//! `inflight_hi`), while loss that comes whatever it does is left alone.
//!
//! Random loss takes the same share of every round. Loss at a bottleneck
//! whose queue is full comes when the sender pushes more than the path
//! holds, which PROBE_BW does on purpose in its 1.25 phase. So the
//! controller compares the two: the loss share of each probe (its 1.25 and
//! 0.75 phases, whose losses show up a round later) against a baseline, the
//! share of its cruising phases. A probe that loses more than the baseline
//! by [`EXCESS`], and at least twice the baseline's count, hit the queue's
//! end: what was in flight at its peak, less a tenth, becomes the bound
//! (never below the bandwidth-delay product plus four datagrams). Each
//! probe after that without excess loss raises the bound by an eighth; two
//! clean probes in a row lift it.
//!
//! 5% random loss leaves the baseline at 5% and the bound unset; a
//! ten-packet queue at 100 Mbit/s, which the 1.25 phase overflows by a
//! dozen packets, sets it at what the queue holds.

/// Loss share above the baseline that a probe must exceed (BBRv2's 2%).
pub(super) const EXCESS: f64 = 0.02;
/// Losses below this many datagrams in a probe say nothing.
const MIN_LOST_PACKETS: u64 = 3;
/// Cruising bytes, in datagrams, below which a baseline sample is skipped.
const MIN_BASELINE_PACKETS: u64 = 20;
/// Clean probes in a row that lift the bound.
const CLEAN_PROBES_TO_LIFT: u32 = 2;

/// Which part of the PROBE_BW cycle the bytes being counted belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stretch {
    /// The 1.25 phase and the 0.75 phase after it.
    Probe,
    /// The phases at 1.0.
    Cruise,
    /// STARTUP and DRAIN: neither.
    Other,
}

/// The learned bound and what it is learned from.
#[derive(Debug, Clone, Default)]
pub(super) struct InflightBound {
    /// Loss share of cruising: what random loss costs on this path.
    baseline: Option<f64>,
    /// Bytes lost and delivered in the stretch being counted.
    lost: u64,
    acked: u64,
    /// The most in flight during the current probe.
    peak: u64,
    /// The bound, once a probe overflowed.
    hi: Option<u64>,
    /// Whether the last probe was judged clean, and how many in a row.
    clean_in_a_row: u32,
}

impl InflightBound {
    /// Bytes declared lost.
    pub(super) fn on_lost(&mut self, bytes: u64) {
        self.lost += bytes;
    }

    /// An ACK newly acknowledged `acked` bytes, leaving `in_flight`.
    pub(super) fn on_acked(&mut self, acked: u64, in_flight: u64, stretch: Stretch) {
        self.acked += acked;
        if stretch == Stretch::Probe {
            self.peak = self.peak.max(in_flight + acked);
        }
    }

    /// The stretch that just ended: `Cruise` updates the baseline, `Probe`
    /// is judged against it. `bdp` and `mss` in bytes.
    pub(super) fn on_stretch_end(&mut self, ended: Stretch, bdp: u64, mss: u64) {
        let (lost, total) = (self.lost, self.lost + self.acked);
        self.lost = 0;
        self.acked = 0;
        match ended {
            Stretch::Cruise if total >= MIN_BASELINE_PACKETS * mss => {
                self.peak = 0;
                let share = lost as f64 / total as f64;
                self.baseline = Some(self.baseline.map_or(share, |b| b + (share - b) / 8.0));
                // A new probe begins: a bound earned by clean probes grows.
                if self.clean_in_a_row >= CLEAN_PROBES_TO_LIFT {
                    self.hi = None;
                } else if self.clean_in_a_row > 0 {
                    self.hi = self.hi.map(|h| h + h / 8);
                }
            }
            Stretch::Probe => {
                let peak = std::mem::take(&mut self.peak);
                let Some(baseline) = self.baseline else {
                    return;
                };
                let share = if total == 0 {
                    0.0
                } else {
                    lost as f64 / total as f64
                };
                let overflowed = lost >= MIN_LOST_PACKETS * mss
                    && share > baseline + EXCESS
                    && lost as f64 > 2.0 * baseline * total as f64;
                if overflowed {
                    let floor = bdp + 4 * mss;
                    let bound = (peak - peak / 10).max(floor);
                    self.hi = Some(self.hi.map_or(bound, |h| h.min(bound)).max(floor));
                    self.clean_in_a_row = 0;
                } else {
                    self.clean_in_a_row += 1;
                }
            }
            Stretch::Cruise | Stretch::Other => self.peak = 0,
        }
    }

    /// The bound on the window, if one was learned.
    pub(super) fn bound(&self) -> Option<u64> {
        self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1_000;
    const BDP: u64 = 100 * MSS;

    /// One PROBE_BW cycle: cruising bytes with `cruise_loss`, then a probe
    /// whose peak is `peak` with `probe_loss`.
    fn cycle(b: &mut InflightBound, cruise_loss: f64, peak: u64, probe_loss: f64) {
        let cruise = 600 * MSS;
        b.on_lost((cruise as f64 * cruise_loss) as u64);
        b.on_acked(cruise, BDP, Stretch::Cruise);
        b.on_stretch_end(Stretch::Cruise, BDP, MSS);
        let probe = 200 * MSS;
        b.on_lost((probe as f64 * probe_loss) as u64);
        b.on_acked(probe, 0, Stretch::Other);
        b.on_acked(0, peak, Stretch::Probe);
        b.on_stretch_end(Stretch::Probe, BDP, MSS);
    }

    #[test]
    fn random_loss_sets_no_bound() {
        let mut b = InflightBound::default();
        for _ in 0..20 {
            cycle(&mut b, 0.05, 225 * MSS, 0.06);
        }
        assert_eq!(b.bound(), None);
    }

    #[test]
    fn a_probe_that_overflows_the_queue_sets_the_bound_and_clean_ones_lift_it() {
        let mut b = InflightBound::default();
        cycle(&mut b, 0.0, 125 * MSS, 0.07);
        let bound = b.bound().expect("a bound");
        assert_eq!(bound, 125 * MSS - 125 * MSS / 10);
        // Clean probes: it grows by an eighth, then goes.
        cycle(&mut b, 0.0, bound, 0.0);
        cycle(&mut b, 0.0, bound, 0.0);
        assert_eq!(b.bound(), Some(bound + bound / 8));
        cycle(&mut b, 0.0, bound, 0.0);
        assert_eq!(b.bound(), None);
    }

    #[test]
    fn the_bound_never_falls_below_the_bdp_and_four_datagrams() {
        let mut b = InflightBound::default();
        cycle(&mut b, 0.0, 90 * MSS, 0.2);
        assert_eq!(b.bound(), Some(BDP + 4 * MSS));
    }
}

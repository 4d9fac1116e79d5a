//! Datagram Packetization Layer Path MTU Discovery (PROTOCOL.md §9.7,
//! RFC 8899): which datagram size the path carries.
//!
//! A connection starts at 1200 bytes, which every path must carry (§3.0).
//! While the application has more queued than one datagram holds, it probes
//! larger sizes with padded PING packets, one at a time: a probe that is
//! acknowledged raises the size in use; one lost [`MAX_PROBES`] times caps
//! the search below it. Probe losses are not congestion (their loss says
//! "too big", not "too fast"), so the controller never hears of them. When
//! full-size packets stop arriving while small ones get through (a black
//! hole: the path's MTU dropped; black_hole.rs tells it from loss), the size
//! falls back to 1200, the search starts again below, and the failed size
//! is tried again after [`BLACK_HOLE_RECHECK`].
//!
//! The search climbs a ladder of the sizes paths commonly carry (1472, the
//! payload of a 1500-byte Ethernet frame; 8972, of a 9000-byte jumbo frame;
//! then the maximum), giving a rung up only after [`MAX_PROBES`] losses, so
//! that random loss does not hide a common size. Between the last rung that
//! held and the first that did not, it halves the interval at each step
//! (one loss is enough to go lower there: a refinement, not worth three
//! round trips per step), and stops when the interval is under
//! [`SEARCH_GRANULARITY`]. A finished search starts again after
//! [`RAISE_INTERVAL`], in case the path now carries more.

use super::black_hole::BlackHoleDetector;
use crate::config::{MAX_DATAGRAM_SIZE, MIN_DATAGRAM_SIZE};
use std::time::{Duration, Instant};

/// A UDP payload that fills a 1500-byte Ethernet frame over IPv4: the size
/// most paths carry, tried first.
pub(super) const ETHERNET_PAYLOAD: usize = 1472;
/// A UDP payload that fills a 9000-byte jumbo frame over IPv4.
pub(super) const JUMBO_PAYLOAD: usize = 8972;
/// The rungs of the ladder, below the maximum (which is the last rung).
const LADDER: [usize; 3] = [ETHERNET_PAYLOAD, JUMBO_PAYLOAD, MAX_DATAGRAM_SIZE];
/// Losses of one rung of the ladder before the search gives up on it (RFC
/// 8899 MAX_PROBES).
pub(super) const MAX_PROBES: u8 = 3;
/// The search ends when the sizes it could still try span fewer bytes.
pub(super) const SEARCH_GRANULARITY: usize = 20;
/// A finished search starts again after this (RFC 8899 PMTU_RAISE_TIMER).
pub(super) const RAISE_INTERVAL: Duration = Duration::from_secs(600);
/// After a black hole, the size that failed is searched for again this
/// soon: the detector asks for size-selective loss (black_hole.rs), but a
/// path that dropped large packets for a while may carry them again, and
/// trying costs at most [`MAX_PROBES`] probe packets.
pub(super) const BLACK_HOLE_RECHECK: Duration = Duration::from_secs(30);

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The peer's or our maximum is 1200, or the handshake is not done.
    Disabled,
    /// Looking for the largest size between `lower` (carried) and `upper`
    /// (not yet refuted).
    Searching { upper: usize, failures: u8 },
    /// Settled; search again at `again`.
    Complete { again: Instant },
}

/// A probe in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    pn: u64,
    size: usize,
}

/// The next size to try, and after how many losses to give up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    size: usize,
    give_up_after: u8,
}

/// What the discovery did after an event: whether the size in use changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SizeChange {
    /// The size in use is unchanged.
    Same,
    /// A probe was acknowledged: the size in use grew to this.
    Raised(usize),
    /// Full-size packets stopped arriving: back to 1200.
    BlackHole,
}

/// One connection's path MTU discovery.
#[derive(Debug, Clone)]
pub(super) struct MtuDiscovery {
    /// The size in use: the largest the path has been shown to carry.
    current: usize,
    /// The most we may use: the smaller of ours and the peer's maximum.
    max: usize,
    phase: Phase,
    probe: Option<Probe>,
    /// Whether the size in use stopped passing (§9.7).
    black_holes: BlackHoleDetector,
    /// How long a finished search waits before it starts again:
    /// [`RAISE_INTERVAL`], or [`BLACK_HOLE_RECHECK`] after a black hole.
    recheck: Duration,
}

impl MtuDiscovery {
    /// Before the handshake: 1200, no search.
    pub(super) fn new() -> Self {
        Self {
            current: MIN_DATAGRAM_SIZE,
            max: MIN_DATAGRAM_SIZE,
            phase: Phase::Disabled,
            probe: None,
            black_holes: BlackHoleDetector::default(),
            recheck: RAISE_INTERVAL,
        }
    }

    /// The handshake told us the peer's maximum: search up to the smaller
    /// of it and ours.
    pub(super) fn start(&mut self, ours: usize, peers: usize) {
        self.max = ours.min(peers).max(MIN_DATAGRAM_SIZE);
        if self.max > self.current {
            self.phase = Phase::Searching {
                upper: self.max,
                failures: 0,
            };
        }
    }

    /// The datagram size in use.
    pub(super) fn current(&self) -> usize {
        self.current
    }

    /// The size the next probe should have, if one is due at `now`.
    pub(super) fn probe_size(&mut self, now: Instant) -> Option<usize> {
        if self.probe.is_some() {
            return None;
        }
        if let Phase::Complete { again } = self.phase {
            if now < again {
                return None;
            }
            self.phase = Phase::Searching {
                upper: self.max,
                failures: 0,
            };
            self.recheck = RAISE_INTERVAL;
        }
        let Some(c) = self.candidate() else {
            if let Phase::Searching { .. } = self.phase {
                self.phase = Phase::Complete {
                    again: now + self.recheck,
                };
            }
            return None;
        };
        Some(c.size)
    }

    /// The next size the search tries: the lowest rung of the ladder (the
    /// maximum is the last) above what holds and not yet refuted, else the
    /// middle of what is left; `None` once under the granularity.
    fn candidate(&self) -> Option<Candidate> {
        let Phase::Searching { upper, .. } = self.phase else {
            return None;
        };
        let lower = self.current;
        let rung = LADDER
            .iter()
            .map(|&r| r.min(self.max))
            .find(|&r| lower < r && r <= upper);
        if let Some(size) = rung {
            return Some(Candidate {
                size,
                give_up_after: MAX_PROBES,
            });
        }
        (upper.saturating_sub(lower) >= SEARCH_GRANULARITY).then(|| Candidate {
            size: lower + (upper - lower).div_ceil(2),
            give_up_after: 1,
        })
    }

    /// A probe of `size` bytes left as packet `pn`.
    pub(super) fn on_probe_sent(&mut self, pn: u64, size: usize) {
        self.probe = Some(Probe { pn, size });
    }

    /// Packet `pn` of `size` bytes was acknowledged, by the ACK that
    /// [`Self::on_ack_done`] finishes.
    pub(super) fn on_acked(&mut self, pn: u64, size: usize) -> SizeChange {
        self.black_holes.on_acked(pn, size);
        match self.probe {
            Some(p) if p.pn == pn => {
                self.probe = None;
                if let Phase::Searching { upper, .. } = self.phase {
                    self.phase = Phase::Searching { upper, failures: 0 };
                }
                if p.size > self.current {
                    self.current = p.size;
                    return SizeChange::Raised(p.size);
                }
                SizeChange::Same
            }
            _ => SizeChange::Same,
        }
    }

    /// Packet `pn` of `size` bytes was declared lost.
    pub(super) fn on_lost(&mut self, pn: u64, size: usize) {
        if let Some(p) = self.probe.filter(|p| p.pn == pn) {
            // A lost probe says "too big" for its own size only; the
            // black-hole detector never hears of it.
            self.probe = None;
            let give_up_after = self.candidate().map_or(1, |c| c.give_up_after);
            if let Phase::Searching { upper, failures } = self.phase {
                let failures = failures + 1;
                self.phase = if failures >= give_up_after {
                    // The path does not carry this size: search below it.
                    Phase::Searching {
                        upper: (p.size - 1).min(upper),
                        failures: 0,
                    }
                } else {
                    Phase::Searching { upper, failures }
                };
            }
            return;
        }
        self.black_holes.on_lost(pn, size);
    }

    /// An ACK and the losses it revealed are processed: whether the size
    /// in use fell into a black hole (black_hole.rs).
    pub(super) fn on_ack_done(&mut self) -> SizeChange {
        if self.black_holes.on_ack_done() && self.current > MIN_DATAGRAM_SIZE {
            return self.black_hole();
        }
        SizeChange::Same
    }

    /// The most the last probe packet of a probe timeout may hold: 1200
    /// while the size in use is larger, so that the detector can compare a
    /// small packet with the large ones (§9.3, §9.7).
    pub(super) fn small_probe_size(&self) -> Option<usize> {
        (self.current > MIN_DATAGRAM_SIZE).then_some(MIN_DATAGRAM_SIZE)
    }

    /// The path stopped carrying the size in use: fall back to 1200,
    /// search below the size that failed, and try it again after
    /// [`BLACK_HOLE_RECHECK`].
    fn black_hole(&mut self) -> SizeChange {
        let failed = self.current;
        self.current = MIN_DATAGRAM_SIZE;
        self.black_holes.clear();
        self.probe = None;
        self.recheck = BLACK_HOLE_RECHECK;
        self.phase = Phase::Searching {
            upper: failed - 1,
            failures: 0,
        };
        SizeChange::BlackHole
    }

    /// The packet number of the probe in flight, if any.
    pub(super) fn probe_pn(&self) -> Option<u64> {
        self.probe.map(|p| p.pn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a path that carries `mtu`, losing nothing
    /// else; returns the size it settles on and the probes it sent.
    fn settle(max: usize, mtu: usize) -> (usize, u64) {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(max, max);
        let mut pn = 0u64;
        for _ in 0..1000 {
            let Some(size) = d.probe_size(now) else {
                break;
            };
            pn += 1;
            d.on_probe_sent(pn, size);
            if size <= mtu {
                d.on_acked(pn, size);
            } else {
                d.on_lost(pn, size);
            }
        }
        assert!(d.probe_size(now).is_none(), "the search ended");
        (d.current(), pn)
    }

    #[test]
    fn the_search_settles_within_the_granularity_below_the_path_mtu() {
        for &(max, mtu) in &[
            (65_507, 65_535),
            (65_507, 9_000),
            (65_507, 1_472),
            (65_507, 1_400),
            (9_000, 9_000),
            (1_500, 1_300),
            (65_507, 1_200),
        ] {
            let (size, probes) = settle(max, mtu);
            let carried = mtu.min(max);
            assert!(size <= carried, "{max}/{mtu}: {size}");
            assert!(
                carried - size < SEARCH_GRANULARITY,
                "{max}/{mtu}: settled at {size}"
            );
            assert!(probes <= 60, "{max}/{mtu}: {probes} probes");
        }
    }

    #[test]
    fn no_search_when_either_side_allows_only_1200() {
        let mut d = MtuDiscovery::new();
        d.start(1200, 65_507);
        assert_eq!(d.probe_size(Instant::now()), None);
        let mut d = MtuDiscovery::new();
        d.start(9000, 1200);
        assert_eq!(d.probe_size(Instant::now()), None);
        assert_eq!(d.current(), 1200);
    }

    #[test]
    fn one_probe_at_a_time_and_ethernet_first() {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        assert_eq!(d.probe_size(now), Some(ETHERNET_PAYLOAD));
        d.on_probe_sent(7, ETHERNET_PAYLOAD);
        assert_eq!(d.probe_size(now), None, "a probe is in flight");
        assert_eq!(d.probe_pn(), Some(7));
        assert_eq!(d.on_acked(7, ETHERNET_PAYLOAD), SizeChange::Raised(1472));
        assert_eq!(d.probe_size(now), Some(JUMBO_PAYLOAD), "the next rung");
        d.on_probe_sent(8, JUMBO_PAYLOAD);
        d.on_acked(8, JUMBO_PAYLOAD);
        assert_eq!(
            d.probe_size(now),
            Some(9000),
            "the maximum is the last rung"
        );
        for pn in 9..9 + u64::from(MAX_PROBES) {
            d.on_probe_sent(pn, 9000);
            d.on_lost(pn, 9000);
        }
        // Between the rungs, one loss is enough to search lower.
        let middle = JUMBO_PAYLOAD + (8999 - JUMBO_PAYLOAD).div_ceil(2);
        assert_eq!(d.probe_size(now), Some(middle));
        d.on_probe_sent(20, middle);
        d.on_lost(20, middle);
        assert_eq!(d.probe_size(now), None, "under the granularity: done");
        assert_eq!(d.current(), JUMBO_PAYLOAD);
    }

    #[test]
    fn a_probe_lost_fewer_than_max_probes_times_is_tried_again() {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        for pn in 0..u64::from(MAX_PROBES) - 1 {
            assert_eq!(d.probe_size(now), Some(ETHERNET_PAYLOAD));
            d.on_probe_sent(pn, ETHERNET_PAYLOAD);
            d.on_lost(pn, ETHERNET_PAYLOAD);
        }
        assert_eq!(d.probe_size(now), Some(ETHERNET_PAYLOAD));
        d.on_probe_sent(10, ETHERNET_PAYLOAD);
        d.on_lost(10, ETHERNET_PAYLOAD);
        let next = d.probe_size(now).unwrap();
        assert!(next < ETHERNET_PAYLOAD, "searching below: {next}");
        assert_eq!(d.current(), 1200, "probe losses never lower the size");
    }

    /// Large packets lost while the small probes of two PTOs get through:
    /// back to 1200, a search below the size that failed, and that size
    /// tried again after [`BLACK_HOLE_RECHECK`], not [`RAISE_INTERVAL`].
    #[test]
    fn a_black_hole_falls_back_to_1200_and_tries_the_size_again_soon() {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(1472, 1472);
        d.on_probe_sent(1, ETHERNET_PAYLOAD);
        assert_eq!(d.on_acked(1, ETHERNET_PAYLOAD), SizeChange::Raised(1472));
        assert_eq!(d.on_ack_done(), SizeChange::Same);
        assert_eq!(d.small_probe_size(), Some(1200));
        for (small, lost) in [(12, 2..=10), (14, 13..=13)] {
            d.on_acked(small, 1200);
            for pn in lost {
                d.on_lost(pn, 1472);
            }
            let change = d.on_ack_done();
            assert_eq!(
                change == SizeChange::BlackHole,
                small == 14,
                "after {small}"
            );
        }
        assert_eq!(d.current(), 1200);
        assert_eq!(d.small_probe_size(), None, "already small");
        // The search below 1472 finds nothing worth a step (1200..1471 is
        // searched by halving; every probe is lost here).
        let mut pn = 100;
        while let Some(size) = d.probe_size(now) {
            assert!(size < 1472, "{size}");
            pn += 1;
            d.on_probe_sent(pn, size);
            d.on_lost(pn, size);
        }
        let soon = now + BLACK_HOLE_RECHECK;
        assert_eq!(d.probe_size(soon - Duration::from_millis(1)), None);
        assert_eq!(d.probe_size(soon), Some(1472), "the failed size again");
    }

    /// Probe losses never count towards a black hole, and a congestion
    /// burst revealed by a later large packet's ACK is none either.
    #[test]
    fn probe_losses_and_congestion_bursts_are_no_black_hole() {
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        d.on_probe_sent(1, 1472);
        d.on_acked(1, 1472);
        assert_eq!(d.on_ack_done(), SizeChange::Same);
        for pn in 2..5 {
            d.on_probe_sent(pn, 8972);
            d.on_lost(pn, 8972);
        }
        d.on_acked(100, 1472);
        for pn in 5..90 {
            d.on_lost(pn, 1472);
        }
        assert_eq!(d.on_ack_done(), SizeChange::Same);
        for small in 101..110 {
            d.on_acked(small, 1200);
            assert_eq!(d.on_ack_done(), SizeChange::Same);
        }
        assert_eq!(d.current(), 1472);
    }

    #[test]
    fn a_finished_search_starts_again_after_the_raise_interval() {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        let mut pn = 0;
        while let Some(size) = d.probe_size(now) {
            pn += 1;
            d.on_probe_sent(pn, size);
            if size <= 1472 {
                d.on_acked(pn, size);
            } else {
                d.on_lost(pn, size);
            }
        }
        assert_eq!(d.current(), 1472);
        let almost = now + RAISE_INTERVAL - Duration::from_millis(1);
        assert_eq!(d.probe_size(almost), None);
        let again = d.probe_size(now + RAISE_INTERVAL).expect("searching again");
        assert!(again > 1472, "{again}");
    }
}

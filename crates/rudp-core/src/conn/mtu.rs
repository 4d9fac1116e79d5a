//! Datagram Packetization Layer Path MTU Discovery (PROTOCOL.md §9.7,
//! RFC 8899): which datagram size the path carries.
//!
//! A connection starts at 1200 bytes, which every path must carry (§3.0).
//! While the application has more queued than one datagram holds, it probes
//! larger sizes with padded PING packets, one at a time: a probe that is
//! acknowledged raises the size in use; one lost [`MAX_PROBES`] times caps
//! the search below it. Probe losses are not congestion (their loss says
//! "too big", not "too fast"), so the controller never hears of them. When
//! full-size packets stop arriving (a black hole: the path's MTU dropped),
//! the size falls back to 1200 and the search starts again.
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
/// Packets larger than 1200, all sent after the last such packet that was
/// acknowledged, declared lost with none acknowledged since, that mean a
/// black hole. A congestion loss burst does not count: the ACK that reveals
/// it acknowledges large packets sent after it.
pub(super) const BLACK_HOLE_LOSSES: u32 = 10;
/// Probe timeouts in a row, with packets larger than 1200 outstanding, that
/// mean a black hole: when nothing at all is acknowledged, loss detection
/// declares nothing, and only the probe timer notices.
pub(super) const BLACK_HOLE_PTOS: u32 = 2;

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
    /// Packets larger than 1200 lost since one was last acknowledged,
    /// counting only those sent after it.
    large_lost: u32,
    /// The newest packet larger than 1200 acknowledged: losses of packets
    /// sent before it say nothing about the size.
    largest_large_acked: Option<u64>,
}

impl MtuDiscovery {
    /// Before the handshake: 1200, no search.
    pub(super) fn new() -> Self {
        Self {
            current: MIN_DATAGRAM_SIZE,
            max: MIN_DATAGRAM_SIZE,
            phase: Phase::Disabled,
            probe: None,
            large_lost: 0,
            largest_large_acked: None,
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
        }
        let Some(c) = self.candidate() else {
            if let Phase::Searching { .. } = self.phase {
                self.phase = Phase::Complete {
                    again: now + RAISE_INTERVAL,
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

    /// Packet `pn` of `size` bytes was acknowledged.
    pub(super) fn on_acked(&mut self, pn: u64, size: usize) -> SizeChange {
        if size > MIN_DATAGRAM_SIZE {
            self.large_lost = 0;
            self.largest_large_acked = Some(self.largest_large_acked.map_or(pn, |l| l.max(pn)));
        }
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
    pub(super) fn on_lost(&mut self, pn: u64, size: usize) -> SizeChange {
        if let Some(p) = self.probe.filter(|p| p.pn == pn) {
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
            return SizeChange::Same;
        }
        let after_last_acked = self.largest_large_acked.is_none_or(|l| pn > l);
        if size > MIN_DATAGRAM_SIZE && after_last_acked {
            self.large_lost += 1;
            if self.large_lost >= BLACK_HOLE_LOSSES {
                return self.black_hole();
            }
        }
        SizeChange::Same
    }

    /// The probe timer fired for the `pto_count`th time in a row.
    pub(super) fn on_probe_timeout(&mut self, pto_count: u32) -> SizeChange {
        if pto_count >= BLACK_HOLE_PTOS && self.current > MIN_DATAGRAM_SIZE {
            return self.black_hole();
        }
        SizeChange::Same
    }

    /// The path stopped carrying the size in use: fall back to 1200 and
    /// search again below the size that failed.
    fn black_hole(&mut self) -> SizeChange {
        let failed = self.current;
        self.current = MIN_DATAGRAM_SIZE;
        self.large_lost = 0;
        self.probe = None;
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
            assert_eq!(d.on_lost(pn, ETHERNET_PAYLOAD), SizeChange::Same);
        }
        assert_eq!(d.probe_size(now), Some(ETHERNET_PAYLOAD));
        d.on_probe_sent(10, ETHERNET_PAYLOAD);
        d.on_lost(10, ETHERNET_PAYLOAD);
        let next = d.probe_size(now).unwrap();
        assert!(next < ETHERNET_PAYLOAD, "searching below: {next}");
        assert_eq!(d.current(), 1200, "probe losses never lower the size");
    }

    #[test]
    fn a_black_hole_falls_back_to_1200_and_searches_below() {
        let now = Instant::now();
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        d.on_probe_sent(1, ETHERNET_PAYLOAD);
        d.on_acked(1, ETHERNET_PAYLOAD);
        // Nine large losses, then an acknowledged large packet: not yet.
        for pn in 10..10 + u64::from(BLACK_HOLE_LOSSES) - 1 {
            assert_eq!(d.on_lost(pn, 1472), SizeChange::Same);
        }
        d.on_acked(100, 1472);
        for pn in 200..200 + u64::from(BLACK_HOLE_LOSSES) - 1 {
            assert_eq!(d.on_lost(pn, 1472), SizeChange::Same);
        }
        // Small packets lost say nothing about the size.
        assert_eq!(d.on_lost(300, 1200), SizeChange::Same);
        assert_eq!(d.on_lost(301, 1472), SizeChange::BlackHole);
        assert_eq!(d.current(), 1200);
        let next = d.probe_size(now).unwrap();
        assert!(next < 1472, "the failed size is not tried again: {next}");
    }

    #[test]
    fn a_congestion_burst_revealed_by_later_acknowledgements_is_no_black_hole() {
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        d.on_probe_sent(1, 1472);
        d.on_acked(1, 1472);
        // One ACK acknowledges packet 100 and reveals 30 losses before it.
        d.on_acked(100, 1472);
        for pn in 60..90 {
            assert_eq!(d.on_lost(pn, 1472), SizeChange::Same, "packet {pn}");
        }
        assert_eq!(d.current(), 1472);
        // Losses of packets sent after the last acknowledged one do count.
        for pn in 101..101 + u64::from(BLACK_HOLE_LOSSES) - 1 {
            assert_eq!(d.on_lost(pn, 1472), SizeChange::Same);
        }
        assert_eq!(d.on_lost(200, 1472), SizeChange::BlackHole);
    }

    #[test]
    fn repeated_probe_timeouts_with_large_packets_are_a_black_hole() {
        let mut d = MtuDiscovery::new();
        d.start(9000, 9000);
        assert_eq!(d.on_probe_timeout(5), SizeChange::Same, "already 1200");
        d.on_probe_sent(1, 1472);
        d.on_acked(1, 1472);
        assert_eq!(d.on_probe_timeout(1), SizeChange::Same);
        assert_eq!(d.on_probe_timeout(2), SizeChange::BlackHole);
        assert_eq!(d.current(), 1200);
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

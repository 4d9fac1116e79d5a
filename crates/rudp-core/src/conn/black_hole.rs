//! Black-hole detection (PROTOCOL.md §9.7, RFC 8899 §4.3): telling a path
//! that stopped carrying large datagrams from one that merely lost some.
//!
//! Loss alone cannot tell them apart: a burst of loss, a congested queue or
//! a dropped send batch takes large packets too. What a black hole does
//! that they do not is choose by size: large packets vanish while small
//! ones sent in the same period get through. So a black hole needs both:
//!
//! - **suspicion**: packets larger than 1200 bytes lost, each sent after
//!   the newest large packet the peer acknowledged (an ACK for a later
//!   large packet proves the size still passes, and ends the suspicion);
//! - **evidence**: ACKs that acknowledge a packet of at most 1200 bytes
//!   sent after the suspicion began, and no large packet sent after it. A
//!   small packet lost after it began ends the suspicion: that loss did
//!   not choose by size.
//!
//! The probe timeout provides the small packets a bulk sender would not
//! otherwise send: while the size in use is above 1200, the last probe
//! packet of every PTO is at most 1200 bytes (§9.3), beside one of the
//! full size. This is quinn's detector (loss bursts of large packets only,
//! reset by an acknowledged large packet) with the comparison RFC 8899
//! asks for made explicit.

use crate::config::MIN_DATAGRAM_SIZE;

/// Large packets lost, since the suspicion began, before a black hole may
/// be declared.
pub(super) const BLACK_HOLE_LOSSES: u32 = 3;
/// ACKs of small packets (and of no large one) sent after the suspicion
/// began, before a black hole is declared: one lucky small packet beside
/// a lost large one is loss, twice in a row with nothing large getting
/// through is a path that chooses by size.
pub(super) const BLACK_HOLE_EVIDENCE: u32 = 2;

/// The detector's state between ACKs.
#[derive(Debug, Clone, Default)]
pub(super) struct BlackHoleDetector {
    /// The newest packet larger than 1200 that was acknowledged.
    largest_large_acked: Option<u64>,
    /// The first large packet lost after `largest_large_acked`: the
    /// suspicion runs from it.
    suspect_since: Option<u64>,
    /// Large packets lost since the suspicion began.
    large_lost: u32,
    /// ACKs that were evidence since it began.
    evidence: u32,
    /// In the ACK being processed: the newest small and large packets it
    /// acknowledged.
    small_acked: Option<u64>,
    large_acked: Option<u64>,
}

impl BlackHoleDetector {
    /// Packet `pn` of `size` bytes (not an MTU probe) was acknowledged, by
    /// the ACK that [`Self::on_ack_done`] finishes.
    pub(super) fn on_acked(&mut self, pn: u64, size: usize) {
        let newest = |slot: &mut Option<u64>| *slot = Some(slot.map_or(pn, |p| p.max(pn)));
        if size > MIN_DATAGRAM_SIZE {
            newest(&mut self.large_acked);
            newest(&mut self.largest_large_acked);
        } else {
            newest(&mut self.small_acked);
        }
    }

    /// Packet `pn` of `size` bytes (not an MTU probe) was declared lost.
    pub(super) fn on_lost(&mut self, pn: u64, size: usize) {
        if size > MIN_DATAGRAM_SIZE {
            if self.largest_large_acked.is_none_or(|l| pn > l) {
                self.suspect_since = Some(self.suspect_since.map_or(pn, |s| s.min(pn)));
                self.large_lost = self.large_lost.saturating_add(1);
            }
        } else if self.suspect_since.is_some_and(|s| pn > s) {
            // Small packets go missing too: this loss does not choose by
            // size.
            self.clear();
        }
    }

    /// An ACK (and the losses it revealed) is processed: whether the
    /// evidence now says black hole. The caller falls back and calls
    /// [`Self::clear`].
    pub(super) fn on_ack_done(&mut self) -> bool {
        let (small, large) = (self.small_acked.take(), self.large_acked.take());
        let Some(since) = self.suspect_since else {
            return false;
        };
        if large.is_some_and(|l| l > since) {
            // A large packet sent after the suspicion began got through.
            self.clear();
            return false;
        }
        if small.is_some_and(|s| s > since) {
            self.evidence = self.evidence.saturating_add(1);
        }
        self.evidence >= BLACK_HOLE_EVIDENCE && self.large_lost >= BLACK_HOLE_LOSSES
    }

    /// Ends the suspicion, its losses and its evidence.
    pub(super) fn clear(&mut self) {
        self.suspect_since = None;
        self.large_lost = 0;
        self.evidence = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARGE: usize = 1472;
    const SMALL: usize = 1200;

    /// A path that carries only small packets: large ones lost, the small
    /// probe of each PTO acknowledged, twice: a black hole.
    #[test]
    fn small_packets_through_and_large_ones_lost_is_a_black_hole() {
        let mut d = BlackHoleDetector::default();
        d.on_acked(1, LARGE);
        assert!(!d.on_ack_done());
        // First PTO: its small probe (12) is acknowledged, and reveals
        // that 2..=10 were lost.
        d.on_acked(12, SMALL);
        for pn in 2..=10 {
            d.on_lost(pn, LARGE);
        }
        assert!(!d.on_ack_done(), "one piece of evidence is not enough");
        // Second PTO: its large probe (13) lost, its small one (14) not.
        d.on_acked(14, SMALL);
        d.on_lost(13, LARGE);
        assert!(d.on_ack_done());
    }

    /// A burst that takes large packets, then a large packet sent after it
    /// acknowledged: loss, not a black hole, however long the burst.
    #[test]
    fn a_large_packet_through_after_the_losses_ends_the_suspicion() {
        let mut d = BlackHoleDetector::default();
        d.on_acked(20, SMALL);
        for pn in 2..=19 {
            d.on_lost(pn, LARGE);
        }
        assert!(!d.on_ack_done());
        d.on_acked(21, LARGE);
        assert!(!d.on_ack_done());
        // The evidence starts over: one more small ACK is not two.
        d.on_lost(22, LARGE);
        d.on_acked(30, SMALL);
        assert!(!d.on_ack_done());
    }

    /// Loss that takes small packets too does not choose by size.
    #[test]
    fn a_small_packet_lost_ends_the_suspicion() {
        let mut d = BlackHoleDetector::default();
        for pn in 2..=10 {
            d.on_lost(pn, LARGE);
        }
        d.on_acked(12, SMALL);
        assert!(!d.on_ack_done());
        d.on_lost(11, SMALL);
        d.on_acked(14, SMALL);
        assert!(!d.on_ack_done(), "the suspicion ended with packet 11");
    }

    /// Losses older than an acknowledged large packet say nothing, and
    /// small ACKs without large losses are no evidence.
    #[test]
    fn old_losses_and_small_acks_alone_are_nothing() {
        let mut d = BlackHoleDetector::default();
        d.on_acked(50, LARGE);
        assert!(!d.on_ack_done());
        for pn in 2..=49 {
            d.on_lost(pn, LARGE);
        }
        for pn in 51..60 {
            d.on_acked(pn, SMALL);
            assert!(!d.on_ack_done());
        }
    }
}

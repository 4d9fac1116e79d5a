//! Which packets arrived, and when to say so (PROTOCOL.md §7).
//!
//! The receiver records every packet number it accepts. That record answers
//! two questions: "is this packet a duplicate?" (§7.4) and "what goes in the
//! next ACK frame?" (§7.2). When to send that frame follows RFC 9002 §13.2:
//! at once for every second ack-eliciting packet, for a packet out of order
//! and for a duplicate; otherwise within max_ack_delay.

use crate::ranges::RangeSet;
use crate::wire::AckFrame;
use std::time::{Duration, Instant};

/// Ranges kept in the record (§7.2). Older information is dropped: a packet
/// below the record's floor counts as a duplicate, which is safe because
/// its data, if never acknowledged, is retransmitted in new packets anyway.
/// Generous, because a packet wrongly taken for a duplicate is a real loss:
/// a fast sender on a path that reorders by a few milliseconds opens
/// hundreds of gaps.
pub(super) const MAX_ACK_RANGES: usize = 1024;
/// Ranges in one ACK frame: the highest ones (§7.2). With packet numbers
/// within 2^24 of each other every range takes at most 8 bytes, so a frame
/// stays under 540 bytes.
pub(super) const ACK_FRAME_RANGES: usize = 64;

/// Ack-eliciting packets received before an acknowledgement is sent at once.
pub(super) const ACK_ELICITING_THRESHOLD: u32 = 2;

/// Whether a packet was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    New,
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub(super) struct AckTracker {
    received: RangeSet,
    /// Packet numbers below this are treated as already received.
    floor: u64,
    /// Largest packet number received and when.
    largest: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since the last ACK frame was sent.
    unacked_eliciting: u32,
    /// Whether anything arrived that the peer has not yet seen acknowledged.
    dirty: bool,
    /// Send an ACK at the next opportunity.
    immediate: bool,
    /// Send an ACK by then at the latest.
    deadline: Option<Instant>,
}

impl AckTracker {
    /// Records a packet that passed all checks. Returns whether it was new;
    /// a duplicate's frames must not be processed again.
    pub(super) fn on_packet(
        &mut self,
        now: Instant,
        pn: u64,
        ack_eliciting: bool,
        max_ack_delay: Duration,
    ) -> Arrival {
        if pn < self.floor || self.received.contains(pn) {
            // Our earlier ACK was probably lost: answer soon (§7.2 rule 3).
            self.immediate = true;
            self.dirty = true;
            return Arrival::Duplicate;
        }
        let in_order = self.largest.is_none_or(|(l, _)| pn == l + 1);
        self.received.insert(pn..pn + 1);
        while self.received.len() > MAX_ACK_RANGES {
            if let Some(r) = self.received.pop_first() {
                self.floor = r.end;
            }
        }
        if self.largest.is_none_or(|(l, _)| pn > l) {
            self.largest = Some((pn, now));
        }
        self.dirty = true;
        if ack_eliciting {
            self.unacked_eliciting += 1;
            if !in_order || self.unacked_eliciting >= ACK_ELICITING_THRESHOLD {
                self.immediate = true;
            } else if self.deadline.is_none() {
                self.deadline = Some(now + max_ack_delay);
            }
        }
        Arrival::New
    }

    /// The largest packet number received so far.
    pub(super) fn largest(&self) -> Option<u64> {
        self.largest.map(|(pn, _)| pn)
    }

    /// Asks for an ACK at the next opportunity (for example, during the
    /// handshake, where delaying would only slow it down).
    pub(super) fn request_immediate(&mut self) {
        if self.dirty {
            self.immediate = true;
        }
    }

    /// Whether an ACK must be sent now, even alone in a packet.
    pub(super) fn ack_due(&self, now: Instant) -> bool {
        self.dirty && (self.immediate || self.deadline.is_some_and(|d| d <= now))
    }

    /// Whether there is something new to acknowledge (worth piggybacking).
    pub(super) fn has_news(&self) -> bool {
        self.dirty
    }

    /// When a delayed ACK falls due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.dirty {
            self.deadline
        } else {
            None
        }
    }

    /// The ACK frame to send now, if anything was received.
    pub(super) fn frame(&self, now: Instant) -> Option<AckFrame> {
        let (_, at) = self.largest?;
        Some(AckFrame {
            delay_micros: now.saturating_duration_since(at).as_micros() as u64,
            ranges: self.received.iter_rev().take(ACK_FRAME_RANGES).collect(),
        })
    }

    /// Call once an ACK frame has been put in a packet.
    pub(super) fn on_ack_sent(&mut self) {
        self.unacked_eliciting = 0;
        self.dirty = false;
        self.immediate = false;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(5);

    #[test]
    fn every_second_packet_is_acked_at_once() {
        let t = Instant::now();
        let mut a = AckTracker::default();
        assert_eq!(a.on_packet(t, 0, true, DELAY), Arrival::New);
        assert!(!a.ack_due(t));
        assert_eq!(a.deadline(), Some(t + DELAY));
        assert!(a.ack_due(t + DELAY));
        a.on_packet(t, 1, true, DELAY);
        assert!(a.ack_due(t));
        let f = a.frame(t).unwrap();
        assert_eq!(f.ranges, vec![0..2]);
        a.on_ack_sent();
        assert!(!a.ack_due(t + DELAY));
    }

    #[test]
    fn gap_and_duplicate_are_acked_at_once() {
        let t = Instant::now();
        let mut a = AckTracker::default();
        a.on_packet(t, 0, true, DELAY);
        a.on_ack_sent();
        a.on_packet(t, 2, true, DELAY);
        assert!(a.ack_due(t), "a gap must be reported at once");
        a.on_ack_sent();
        assert_eq!(a.on_packet(t, 2, true, DELAY), Arrival::Duplicate);
        assert!(a.ack_due(t));
        assert_eq!(a.frame(t).unwrap().ranges, vec![2..3, 0..1]);
    }

    #[test]
    fn record_is_bounded() {
        let t = Instant::now();
        let mut a = AckTracker::default();
        for i in 0..(MAX_ACK_RANGES as u64 + 2) {
            a.on_packet(t, i * 2, false, DELAY);
        }
        let f = a.frame(t).unwrap();
        assert_eq!(f.ranges.len(), ACK_FRAME_RANGES);
        assert_eq!(f.ranges[0], 2050..2051);
        // Old packets below the floor count as duplicates.
        assert_eq!(a.on_packet(t, 1, true, DELAY), Arrival::Duplicate);
    }
}

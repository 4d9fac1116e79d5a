//! Packets sent and not yet acknowledged or lost, and loss detection over
//! them (PROTOCOL.md §9.2; RFC 9002 §6.1).

use super::stream_frames::DataFrame;
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

/// RFC 9002 §6.1.1 kPacketThreshold: a packet is lost once a packet sent
/// this many packet numbers after it is acknowledged. This is the starting
/// value; spurious losses raise it (§9.2).
pub(super) const PACKET_THRESHOLD: u64 = 3;
/// The packet threshold grows up to this; a reordering distance beyond it
/// turns the packet threshold off (§9.2).
pub(super) const MAX_PACKET_THRESHOLD: u64 = 20;

/// What a sent packet carried that must be resent if it is lost. Packet
/// numbers are never reused (§4.2): lost content goes into new packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SentFrames {
    /// Stream 0's byte ranges: inline for up to two (no allocation per
    /// packet).
    pub stream: SmallVec<[Range<u64>; 2]>,
    /// Whether stream 0's FIN went out.
    pub fin: bool,
    /// Whether stream 0's MAX_DATA went out.
    pub max_data: bool,
    pub handshake: bool,
    pub ping: bool,
    /// Version 2's frames, boxed: most packets carry none, and every sent
    /// packet is kept until acknowledged, so the record stays small.
    pub v2: Option<Box<V2Sent>>,
}

/// What a packet carried of version 2's frames (§15.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct V2Sent {
    /// Data of other streams (§15.8.2).
    pub streams: SmallVec<[StreamSent; 2]>,
    /// Control frames, resent (with current values) when lost.
    pub controls: SmallVec<[Control; 2]>,
    /// DATAGRAM frames; never resent (§15.6).
    pub datagrams: u32,
}

impl SentFrames {
    /// The version-2 record, created on first use.
    pub(super) fn v2(&mut self) -> &mut V2Sent {
        self.v2.get_or_insert_with(Box::default)
    }

    /// Records that a stream's bytes `range` (and its FIN) went out in
    /// `frame`: version 1's STREAM in the compact record every version-1
    /// packet keeps, STREAM_N in the version-2 one.
    pub(super) fn push_stream(&mut self, frame: DataFrame, range: Range<u64>, fin: bool) {
        match frame {
            DataFrame::Stream => {
                if !range.is_empty() {
                    self.stream.push(range);
                }
                self.fin |= fin;
            }
            DataFrame::StreamN(id) => self.v2().streams.push(StreamSent { id, range, fin }),
        }
    }

    /// DATAGRAM frames carried.
    pub(super) fn datagrams(&self) -> u32 {
        self.v2.as_ref().map_or(0, |v| v.datagrams)
    }
}

/// Bytes of a stream beyond the first that a packet carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamSent {
    pub id: u64,
    pub range: Range<u64>,
    pub fin: bool,
}

/// A version-2 control frame a packet carried (§15.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Control {
    MaxStreamData(u64),
    MaxStreams,
    MaxStreamsData,
    Reset(u64),
    Stop {
        id: u64,
        code: u64,
    },
    Skip {
        id: u64,
        skip: super::send_stream::Skip,
    },
}

#[derive(Debug, Clone)]
pub(super) struct SentPacket {
    pub time_sent: Instant,
    pub size: usize,
    pub ack_eliciting: bool,
    /// Counts against the congestion window (ack-eliciting or padded).
    pub in_flight: bool,
    pub frames: SentFrames,
    /// Delivery state when sent, for the rate sample its ACK gives.
    pub delivery: crate::congestion::delivery::PacketDelivery,
}

/// Ack-only packets (neither ack-eliciting nor in flight) kept at most. They
/// are recorded only so that persistent-congestion detection sees unbroken
/// runs (§9.4); a peer that never acknowledges could otherwise make the
/// record grow by one entry per ACK we send (issue #12 item 4). Beyond this
/// the oldest is forgotten, which at worst hides a persistent-congestion
/// run: the conservative direction.
pub const MAX_ACK_ONLY_TRACKED: usize = 1024;

/// Every packet sent and still unresolved, by packet number. Packets that
/// carry something to retransmit are bounded by the congestion window (and
/// probes by the PTO backoff); ack-only ones by [`MAX_ACK_ONLY_TRACKED`].
/// A number missing from the map means "acknowledged" (or an ack-only packet
/// forgotten): persistent congestion detection relies on it.
#[derive(Debug, Default)]
pub(super) struct SentPackets {
    packets: BTreeMap<u64, SentPacket>,
    /// Numbers of the ack-only packets recorded, oldest first; some may
    /// since have been acknowledged or declared lost.
    ack_only: VecDeque<u64>,
    /// Packets loss detection has looked at, over the connection's life:
    /// what bounds the work per ACK (§9.2).
    examined: u64,
    bytes_in_flight: u64,
    eliciting_in_flight: usize,
    /// Send time of the newest ack-eliciting packet still in flight.
    last_eliciting_sent: Option<Instant>,
}

impl SentPackets {
    pub(super) fn on_sent(&mut self, pn: u64, packet: SentPacket) {
        if packet.in_flight {
            self.bytes_in_flight += packet.size as u64;
        }
        if packet.ack_eliciting {
            self.eliciting_in_flight += 1;
            self.last_eliciting_sent = Some(packet.time_sent);
        }
        if !packet.ack_eliciting && !packet.in_flight {
            self.ack_only.push_back(pn);
            if self.ack_only.len() > MAX_ACK_ONLY_TRACKED {
                if let Some(old) = self.ack_only.pop_front() {
                    // Ack-only: nothing in flight or eliciting to undo.
                    self.packets.remove(&old);
                }
            }
        }
        self.packets.insert(pn, packet);
    }

    fn forget(&mut self, packet: &SentPacket) {
        if packet.in_flight {
            self.bytes_in_flight -= packet.size as u64;
        }
        if packet.ack_eliciting {
            self.eliciting_in_flight -= 1;
            if self.eliciting_in_flight == 0 {
                self.last_eliciting_sent = None;
            }
        }
    }

    /// Removes and returns the packets in `range`, in ascending order.
    pub(super) fn take_range(&mut self, range: Range<u64>) -> Vec<(u64, SentPacket)> {
        let pns: Vec<u64> = self.packets.range(range).map(|(&pn, _)| pn).collect();
        let mut out = Vec::with_capacity(pns.len());
        for pn in pns {
            if let Some(p) = self.packets.remove(&pn) {
                self.forget(&p);
                out.push((pn, p));
            }
        }
        out
    }

    /// Declares lost every packet below `largest_acked` that is too far
    /// behind it in number or time (RFC 9002 §6.1). Returns the lost packets
    /// and when the next one would pass the time threshold.
    pub(super) fn detect_lost(
        &mut self,
        now: Instant,
        largest_acked: u64,
        packet_threshold: u64,
        loss_delay: Duration,
    ) -> (Vec<(u64, SentPacket)>, Option<Instant>) {
        let lost_before = now.checked_sub(loss_delay);
        let mut lost = Vec::new();
        let mut next_loss_time: Option<Instant> = None;
        // Packets are numbered in the order they are sent, so both
        // thresholds are monotonic in the packet number: once one packet is
        // not lost, no later one is, and it is the next to pass the time
        // threshold. Stopping there bounds the work per ACK by the packets
        // it declares lost, however many are outstanding (issue #12 item
        // 15: with the packet threshold off and an inflated RTT, a scan of
        // every outstanding packet on every ACK was quadratic).
        for (&pn, p) in self.packets.range(..largest_acked) {
            self.examined += 1;
            let by_number = largest_acked - pn >= packet_threshold;
            let by_time = lost_before.is_some_and(|t| p.time_sent <= t);
            if by_number || by_time {
                lost.push(pn);
            } else {
                next_loss_time = Some(p.time_sent + loss_delay);
                break;
            }
        }
        let lost = lost
            .into_iter()
            .filter_map(|pn| {
                let p = self.packets.remove(&pn)?;
                self.forget(&p);
                Some((pn, p))
            })
            .collect();
        (lost, next_loss_time)
    }

    /// The oldest ack-eliciting packet in flight: the one a probe resends.
    pub(super) fn oldest_eliciting(&self) -> Option<&SentPacket> {
        self.packets.values().find(|p| p.ack_eliciting)
    }

    pub(super) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    pub(super) fn has_eliciting_in_flight(&self) -> bool {
        self.eliciting_in_flight > 0
    }

    pub(super) fn last_eliciting_sent(&self) -> Option<Instant> {
        self.last_eliciting_sent
    }

    #[cfg(test)]
    /// Packets loss detection has examined so far.
    pub(super) fn examined(&self) -> u64 {
        self.examined
    }

    pub(super) fn len(&self) -> usize {
        self.packets.len()
    }
}

/// Whether a batch of lost packets shows persistent congestion (RFC 9002
/// §7.6.2): two ack-eliciting packets, with every packet numbered between
/// them lost too, sent further apart than `duration`. `lost` is ascending.
pub(super) fn is_persistent_congestion(lost: &[(u64, SentPacket)], duration: Duration) -> bool {
    let mut run_start: Option<Instant> = None;
    let mut prev_pn: Option<u64> = None;
    for (pn, p) in lost {
        if prev_pn.is_some_and(|prev| prev + 1 != *pn) {
            run_start = None;
        }
        prev_pn = Some(*pn);
        if !p.ack_eliciting {
            continue;
        }
        match run_start {
            None => run_start = Some(p.time_sent),
            Some(start) if p.time_sent.saturating_duration_since(start) > duration => return true,
            Some(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(t: Instant) -> SentPacket {
        SentPacket {
            delivery: crate::congestion::delivery::DeliveryRate::new(t).on_sent(t, 0),
            time_sent: t,
            size: 100,
            ack_eliciting: true,
            in_flight: true,
            frames: SentFrames::default(),
        }
    }

    #[test]
    fn packet_and_time_thresholds() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut s = SentPackets::default();
        for pn in 0..5 {
            s.on_sent(pn, pkt(t0 + ms * pn as u32));
        }
        assert_eq!(s.bytes_in_flight(), 500);
        let acked = s.take_range(4..5);
        assert_eq!(acked.len(), 1);
        // At t0+4ms with a 10 ms loss delay: 0 and 1 are 3+ numbers behind.
        let (lost, next) = s.detect_lost(t0 + ms * 4, 4, PACKET_THRESHOLD, 10 * ms);
        assert_eq!(lost.iter().map(|l| l.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(next, Some(t0 + ms * 2 + 10 * ms));
        // Later, the time threshold takes the rest.
        let (lost, next) = s.detect_lost(t0 + ms * 13, 4, PACKET_THRESHOLD, 10 * ms);
        assert_eq!(lost.iter().map(|l| l.0).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(next, None);
        assert_eq!(s.bytes_in_flight(), 0);
        assert!(!s.has_eliciting_in_flight());
    }

    #[test]
    fn persistent_congestion_needs_an_unbroken_run() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let run = vec![(1, pkt(t0)), (2, pkt(t0 + s)), (3, pkt(t0 + 3 * s))];
        assert!(is_persistent_congestion(&run, 2 * s));
        let broken = vec![(1, pkt(t0)), (2, pkt(t0 + s)), (4, pkt(t0 + 3 * s))];
        assert!(!is_persistent_congestion(&broken, 2 * s));
    }

    fn ack_only(t: Instant) -> SentPacket {
        SentPacket {
            ack_eliciting: false,
            in_flight: false,
            ..pkt(t)
        }
    }

    /// Issue #12 item 4: a peer that never acknowledges must not make the
    /// record of our ACK-only packets grow without bound.
    #[test]
    fn ack_only_records_are_bounded() {
        let t0 = Instant::now();
        let mut s = SentPackets::default();
        s.on_sent(0, pkt(t0));
        for pn in 1..100_000 {
            s.on_sent(pn, ack_only(t0));
        }
        assert_eq!(s.len(), MAX_ACK_ONLY_TRACKED + 1);
        assert!(s.has_eliciting_in_flight(), "the data packet is kept");
        assert_eq!(s.bytes_in_flight(), 100);
    }

    /// Issue #12 item 15: loss detection stops at the first packet that is
    /// not lost, and still reports when it will be.
    #[test]
    fn loss_detection_stops_at_the_first_packet_not_lost() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut s = SentPackets::default();
        for pn in 0..10_000 {
            s.on_sent(pn, pkt(t0 + ms * (pn as u32 / 100)));
        }
        let _ = s.take_range(9_999..10_000);
        // Packet threshold off, loss delay 50 ms, at t0 + 60 ms: packets
        // sent at or before t0 + 10 ms (numbers below 1100) are lost.
        let (lost, next) = s.detect_lost(t0 + 60 * ms, 9_999, u64::MAX, 50 * ms);
        assert_eq!(lost.len(), 1100);
        assert_eq!(next, Some(t0 + 11 * ms + 50 * ms));
        assert_eq!(s.examined(), 1101, "the lost packets and one more");
        // A later ACK with nothing newly lost looks at one packet, not 8,899.
        let _ = s.detect_lost(t0 + 60 * ms, 9_999, u64::MAX, 50 * ms);
        assert_eq!(s.examined(), 1102);
    }
}

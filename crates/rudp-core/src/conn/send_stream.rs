//! The outgoing half of a connection: messages become length-prefixed
//! records in one byte stream (PROTOCOL.md §8.1), which is cut into STREAM
//! frames, retransmitted where lost, and limited by the peer's flow-control
//! window (§8.3) and by our own send buffer.

use crate::ranges::RangeSet;
use crate::wire::varint;
use bytes::Bytes;
use std::collections::VecDeque;
use std::ops::Range;

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteError {
    /// The send buffer is full: try again once data has been acknowledged.
    Blocked,
    /// The stream was finished (the connection is closing).
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fin {
    /// The application has not finished the stream.
    Open,
    /// Finished; the FIN bit must be (re)sent.
    Pending,
    /// Sent and not yet acknowledged.
    Sent,
    Acked,
}

#[derive(Debug)]
pub(super) struct SendStream {
    /// Written bytes from `acked_prefix` on, as the chunks they were written
    /// in, each with its stream offset.
    chunks: VecDeque<(u64, Bytes)>,
    /// Every byte below this was acknowledged and dropped from `chunks`.
    acked_prefix: u64,
    /// Next offset to write at: the stream's length so far.
    end: u64,
    /// Bytes below this have been sent at least once.
    sent: u64,
    /// Acknowledged ranges at or above `acked_prefix`.
    acked: RangeSet,
    /// Ranges declared lost (or picked for a probe) that must be sent again.
    retransmit: RangeSet,
    fin: Fin,
    /// The peer's flow-control limit: we may send bytes below this.
    max_data: u64,
    /// Our send buffer size.
    capacity: u64,
}

/// A STREAM frame the sender has chosen to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chunk {
    pub offset: u64,
    pub len: usize,
    pub fin: bool,
}

impl SendStream {
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            chunks: VecDeque::new(),
            acked_prefix: 0,
            end: 0,
            sent: 0,
            acked: RangeSet::new(),
            retransmit: RangeSet::new(),
            fin: Fin::Open,
            max_data: 0,
            capacity,
        }
    }

    /// Queues one message. Fails with `Blocked` only when the buffer already
    /// holds data: an empty buffer always takes one message (the size limit
    /// is checked by the caller).
    pub(super) fn write(&mut self, msg: Bytes) -> Result<(), WriteError> {
        if self.fin != Fin::Open {
            return Err(WriteError::Finished);
        }
        let mut header = Vec::with_capacity(8);
        varint::write(msg.len() as u64, &mut header);
        let total = (header.len() + msg.len()) as u64;
        if self.buffered() > 0 && self.buffered() + total > self.capacity {
            return Err(WriteError::Blocked);
        }
        self.push(Bytes::from(header));
        if !msg.is_empty() {
            self.push(msg);
        }
        Ok(())
    }

    fn push(&mut self, bytes: Bytes) {
        let len = bytes.len() as u64;
        self.chunks.push_back((self.end, bytes));
        self.end += len;
    }

    /// Bytes held: unacknowledged plus unsent.
    pub(super) fn buffered(&self) -> u64 {
        self.end - self.acked_prefix
    }

    /// Ends the stream after the bytes written so far.
    pub(super) fn finish(&mut self) {
        if self.fin == Fin::Open {
            self.fin = Fin::Pending;
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        self.fin != Fin::Open
    }

    /// Every byte written has been acknowledged.
    pub(super) fn is_data_acked(&self) -> bool {
        self.acked_prefix == self.end
    }

    /// Every byte and the FIN have been acknowledged.
    pub(super) fn is_fully_acked(&self) -> bool {
        self.fin == Fin::Acked && self.is_data_acked()
    }

    pub(super) fn set_max_data(&mut self, max: u64) {
        self.max_data = self.max_data.max(max);
    }

    /// Whether new data is waiting but flow control forbids sending it.
    pub(super) fn is_flow_blocked(&self) -> bool {
        self.sent < self.end && self.sent >= self.max_data
    }

    /// New bytes that flow control lets us send now.
    pub(super) fn unsent(&self) -> u64 {
        self.end.min(self.max_data).saturating_sub(self.sent)
    }

    /// Whether `next_chunk` would return something.
    pub(super) fn has_sendable(&self) -> bool {
        // A FIN waiting behind data that flow control holds back is not
        // sendable yet: counting it made a blocked sender fill its window
        // with PING-only packets (issue #12 item 16, §8.3).
        !self.retransmit.is_empty()
            || (self.sent < self.end && self.sent < self.max_data)
            || (self.fin == Fin::Pending && self.sent == self.end)
    }

    /// Chooses the next STREAM frame of at most `max_len` data bytes:
    /// retransmissions first (oldest first), then new data, then a bare FIN.
    /// The caller copies the bytes with [`Self::copy_range`] and then calls
    /// [`Self::on_chunk_sent`].
    pub(super) fn next_chunk(&mut self, max_len: usize) -> Option<Chunk> {
        if max_len == 0 && self.fin != Fin::Pending {
            return None;
        }
        // Drop retransmission ranges acknowledged meanwhile.
        while let Some(r) = self.retransmit.first() {
            let gaps = self.acked.gaps_in(r.start.max(self.acked_prefix)..r.end);
            match gaps.first() {
                Some(g) if max_len > 0 => {
                    let len = (g.end - g.start).min(max_len as u64) as usize;
                    let end = g.start + len as u64;
                    let fin = end == self.end && self.fin_unacked();
                    return Some(Chunk {
                        offset: g.start,
                        len,
                        fin,
                    });
                }
                Some(_) => return None,
                None => {
                    self.retransmit.remove(r);
                }
            }
        }
        let limit = self.end.min(self.max_data);
        if self.sent < limit && max_len > 0 {
            let len = (limit - self.sent).min(max_len as u64) as usize;
            let end = self.sent + len as u64;
            let fin = end == self.end && self.fin != Fin::Open && self.fin != Fin::Acked;
            return Some(Chunk {
                offset: self.sent,
                len,
                fin,
            });
        }
        if self.fin == Fin::Pending && self.sent == self.end {
            return Some(Chunk {
                offset: self.end,
                len: 0,
                fin: true,
            });
        }
        None
    }

    fn fin_unacked(&self) -> bool {
        matches!(self.fin, Fin::Pending | Fin::Sent)
    }

    /// Appends the stream bytes `range` to `out`.
    pub(super) fn copy_range(&self, range: Range<u64>, out: &mut Vec<u8>) {
        // The chunk holding `range.start`: chunks are sorted by offset.
        let idx = self
            .chunks
            .partition_point(|(off, b)| off + b.len() as u64 <= range.start);
        let mut pos = range.start;
        for (off, bytes) in self.chunks.range(idx..) {
            if pos >= range.end {
                break;
            }
            let from = (pos - off) as usize;
            let to = ((range.end - off) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
            pos = off + to as u64;
        }
        debug_assert_eq!(pos, range.end, "copy_range outside the buffer");
    }

    pub(super) fn on_chunk_sent(&mut self, chunk: &Chunk) {
        let end = chunk.offset + chunk.len as u64;
        self.retransmit.remove(chunk.offset..end);
        self.sent = self.sent.max(end);
        if chunk.fin && self.fin == Fin::Pending {
            self.fin = Fin::Sent;
        }
    }

    /// The peer acknowledged a packet that carried these ranges.
    pub(super) fn on_acked(&mut self, ranges: &[Range<u64>], fin: bool) {
        for r in ranges {
            // Bytes below the prefix were acknowledged before (a range can be
            // acknowledged twice when it was also retransmitted).
            let start = r.start.max(self.acked_prefix);
            if start < r.end {
                self.acked.insert(start..r.end);
            }
            self.retransmit.remove(r.clone());
        }
        if fin {
            self.fin = Fin::Acked;
        }
        // Release the acknowledged prefix; it only ever moves forward.
        while let Some(first) = self.acked.first() {
            if first.start > self.acked_prefix {
                break;
            }
            self.acked_prefix = self.acked_prefix.max(first.end);
            self.acked.pop_first();
        }
        while let Some((off, b)) = self.chunks.front() {
            if off + b.len() as u64 <= self.acked_prefix {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// A packet that carried these ranges was lost (or is being probed):
    /// queue what the peer has not acknowledged for retransmission.
    pub(super) fn on_lost(&mut self, ranges: &[Range<u64>], fin: bool) {
        for r in ranges {
            let start = r.start.max(self.acked_prefix);
            for gap in self.acked.gaps_in(start..r.end.max(start)) {
                self.retransmit.insert(gap);
            }
        }
        if fin && self.fin == Fin::Sent {
            self.fin = Fin::Pending;
        }
    }

    /// Sent bytes below `below` that are not acknowledged, if they add up
    /// to at most `max` bytes in at most `max_ranges` ranges: what a thin
    /// stream bundles into the spare room of its next packet (§8.4).
    pub(super) fn unacked_below(
        &self,
        below: u64,
        max: u64,
        max_ranges: usize,
    ) -> Option<Vec<Range<u64>>> {
        let start = self.acked_prefix;
        if below <= start {
            return None;
        }
        let gaps = self.acked.gaps_in(start..below);
        let total: u64 = gaps.iter().map(|g| g.end - g.start).sum();
        (total > 0 && total <= max && gaps.len() <= max_ranges).then_some(gaps)
    }

    /// Raises the buffer size to `capacity` (it never shrinks): the
    /// connection keeps it at twice the congestion window, so that the
    /// application can keep a long, fast path full (§8.3).
    pub(super) fn grow_capacity(&mut self, capacity: u64) {
        self.capacity = self.capacity.max(capacity);
    }

    /// Bytes below this have been sent at least once.
    pub(super) fn sent_offset(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // One-range lists are what the tests mean.
mod tests {
    use super::*;

    fn stream_with(msgs: &[&'static [u8]]) -> SendStream {
        let mut s = SendStream::new(1 << 20);
        s.set_max_data(1 << 20);
        for m in msgs {
            s.write(Bytes::from_static(m)).unwrap();
        }
        s
    }

    #[test]
    fn frames_messages_with_length_prefix() {
        let mut s = stream_with(&[b"abc", b"de"]);
        let c = s.next_chunk(100).unwrap();
        assert_eq!(
            c,
            Chunk {
                offset: 0,
                len: 7,
                fin: false
            }
        );
        let mut out = Vec::new();
        s.copy_range(0..7, &mut out);
        assert_eq!(out, b"\x03abc\x02de");
    }

    #[test]
    fn lost_ranges_are_resent_first_and_acked_ones_skipped() {
        let mut s = stream_with(&[b"0123456789"]);
        for _ in 0..3 {
            let c = s.next_chunk(4).unwrap();
            s.on_chunk_sent(&c);
        }
        assert_eq!(s.next_chunk(4), None);
        s.on_acked(&[4..8], false);
        s.on_lost(&[0..8], false);
        let c = s.next_chunk(100).unwrap();
        assert_eq!((c.offset, c.len), (0, 4));
        s.on_chunk_sent(&c);
        assert_eq!(s.next_chunk(100), None);
        s.on_acked(&[0..4, 8..11], false);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn flow_control_and_fin() {
        let mut s = SendStream::new(1 << 20);
        s.write(Bytes::from_static(b"hello")).unwrap();
        s.finish();
        assert!(s.is_flow_blocked() || s.next_chunk(100).is_none());
        s.set_max_data(3);
        let c = s.next_chunk(100).unwrap();
        assert_eq!((c.offset, c.len, c.fin), (0, 3, false));
        s.on_chunk_sent(&c);
        assert!(s.is_flow_blocked());
        assert!(
            !s.has_sendable(),
            "a FIN behind blocked data is not sendable (issue #12 item 16)"
        );
        s.set_max_data(100);
        assert!(s.has_sendable());
        let c = s.next_chunk(100).unwrap();
        assert_eq!((c.offset, c.len, c.fin), (3, 3, true));
        s.on_chunk_sent(&c);
        s.on_lost(&[3..6], true);
        let c = s.next_chunk(100).unwrap();
        assert!(c.fin);
        s.on_chunk_sent(&c);
        s.on_acked(&[0..6], true);
        assert!(s.is_fully_acked());
        assert_eq!(s.write(Bytes::new()), Err(WriteError::Finished));
    }

    #[test]
    fn acked_prefix_never_moves_back_when_a_range_is_acked_twice() {
        let mut s = stream_with(&[b"0123456789"]);
        while let Some(c) = s.next_chunk(4) {
            s.on_chunk_sent(&c);
        }
        s.on_acked(&[0..8], false);
        assert_eq!(s.buffered(), 3);
        // The original and a retransmission of 0..4 are both acknowledged.
        s.on_acked(&[0..4], false);
        assert_eq!(s.buffered(), 3);
        s.on_acked(&[8..11], false);
        assert!(s.is_data_acked());
    }

    #[test]
    fn buffer_pushes_back() {
        let mut s = SendStream::new(10);
        s.write(Bytes::from(vec![0u8; 20])).unwrap();
        assert_eq!(s.write(Bytes::from_static(b"x")), Err(WriteError::Blocked));
    }
}

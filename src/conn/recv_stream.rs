//! The incoming half of a connection: STREAM frames arrive in any order and
//! any number of times; bytes are put back in order exactly once, cut into
//! messages at their length prefixes (PROTOCOL.md §8.2), and held within the
//! advertised flow-control window (§8.3).

use crate::ranges::RangeSet;
use crate::wire::{varint, Reader};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// A stream-level protocol violation by the peer; the connection is closed
/// with the matching code (§11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// Data beyond the flow-control limit we advertised.
    FlowControl { end: u64, limit: u64 },
    /// The stream's end moved, or data arrived beyond it.
    FinalSize,
    /// A message larger than our max_message_size.
    MessageTooLarge { len: u64, max: u64 },
    /// The stream ended in the middle of a message.
    TruncatedMessage,
}

#[derive(Debug)]
pub struct RecvStream {
    /// In-order bytes not yet cut into messages; starts at a message boundary.
    partial: BytesMut,
    /// Every byte below this has been received.
    assembled: u64,
    /// Segments above `assembled`, disjoint, keyed by offset.
    out_of_order: BTreeMap<u64, Bytes>,
    /// Which ranges `out_of_order` holds.
    out_of_order_ranges: RangeSet,
    /// Whole messages, waiting for the application.
    ready: VecDeque<Bytes>,
    /// Stream offset up to which the application has taken messages.
    consumed: u64,
    /// Stream offset just after the messages in `ready`.
    ready_end: u64,
    /// Highest offset received.
    highest: u64,
    /// The limit most recently advertised to the peer.
    max_data: u64,
    window: u64,
    max_message: u64,
    fin: Option<u64>,
}

impl RecvStream {
    pub fn new(window: u64, max_message: u64) -> Self {
        Self {
            partial: BytesMut::new(),
            assembled: 0,
            out_of_order: BTreeMap::new(),
            out_of_order_ranges: RangeSet::new(),
            ready: VecDeque::new(),
            consumed: 0,
            ready_end: 0,
            highest: 0,
            max_data: window,
            window,
            max_message,
            fin: None,
        }
    }

    /// Takes one STREAM frame. Returns the number of bytes that were new.
    pub fn on_frame(&mut self, offset: u64, data: &[u8], fin: bool) -> Result<u64, StreamError> {
        let end = offset + data.len() as u64;
        if end > self.max_data {
            return Err(StreamError::FlowControl {
                end,
                limit: self.max_data,
            });
        }
        if let Some(f) = self.fin {
            if end > f || (fin && end != f) {
                return Err(StreamError::FinalSize);
            }
        }
        if fin {
            if end < self.highest {
                return Err(StreamError::FinalSize);
            }
            self.fin = Some(end);
        }
        self.highest = self.highest.max(end);
        let mut new = 0;
        if end > self.assembled {
            let start = offset.max(self.assembled);
            if start == self.assembled && self.out_of_order.is_empty() {
                // In order with nothing held back (the common case): the
                // bytes go straight to the message buffer, copied once.
                new += end - start;
                self.partial
                    .extend_from_slice(&data[(start - offset) as usize..]);
                self.assembled = end;
            } else {
                self.place_out_of_order(offset, data, start..end, &mut new);
            }
            self.cut_messages()?;
        }
        if self.fin == Some(self.assembled) && !self.partial.is_empty() {
            return Err(StreamError::TruncatedMessage);
        }
        Ok(new)
    }

    /// Stores the parts of `data` (at `offset`) within `range` not held yet,
    /// then moves whatever became contiguous to the message buffer.
    fn place_out_of_order(&mut self, offset: u64, data: &[u8], range: Range<u64>, new: &mut u64) {
        for gap in self.out_of_order_ranges.gaps_in(range) {
            let from = (gap.start - offset) as usize;
            let to = (gap.end - offset) as usize;
            *new += gap.end - gap.start;
            self.out_of_order
                .insert(gap.start, Bytes::copy_from_slice(&data[from..to]));
            self.out_of_order_ranges.insert(gap);
        }
        while let Some(entry) = self.out_of_order.first_entry() {
            if *entry.key() != self.assembled {
                break;
            }
            let bytes = entry.remove();
            self.out_of_order_ranges
                .remove(self.assembled..self.assembled + bytes.len() as u64);
            self.assembled += bytes.len() as u64;
            self.partial.extend_from_slice(&bytes);
        }
    }

    fn cut_messages(&mut self) -> Result<(), StreamError> {
        loop {
            let mut r = Reader::new(&self.partial);
            let Ok(len) = varint::read(&mut r) else {
                return Ok(()); // The length prefix itself is incomplete.
            };
            if len > self.max_message {
                return Err(StreamError::MessageTooLarge {
                    len,
                    max: self.max_message,
                });
            }
            let header = self.partial.len() - r.remaining();
            let total = header + len as usize;
            if self.partial.len() < total {
                // Room for the whole message at once: growing by doubling
                // would copy it several times, and past the allocator's
                // mmap threshold fault in fresh pages for every message.
                self.partial.reserve(total - self.partial.len());
                return Ok(());
            }
            self.partial.advance(header);
            self.ready
                .push_back(self.partial.split_to(len as usize).freeze());
            self.ready_end += total as u64;
        }
    }

    /// The next whole message, if any.
    pub fn pop(&mut self) -> Option<Bytes> {
        let msg = self.ready.pop_front()?;
        self.consumed += (varint::encoded_len(msg.len() as u64) + msg.len()) as u64;
        Some(msg)
    }

    pub fn has_message(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether the peer finished the stream and every message was taken.
    pub fn is_finished(&self) -> bool {
        self.fin == Some(self.consumed)
    }

    /// Whether every byte up to the peer's FIN has arrived.
    pub fn is_fin_received(&self) -> bool {
        self.fin == Some(self.assembled)
    }

    /// A new limit to advertise, once the application has freed at least half
    /// the window (§8.3): fewer, larger updates.
    pub fn max_data_update(&self) -> Option<u64> {
        if self.fin.is_some() {
            return None;
        }
        let candidate = self.consumed + self.window;
        (candidate - self.max_data >= self.window / 2).then_some(candidate)
    }

    /// Doubles the window, up to `max` (§8.3 auto-tuning).
    pub fn grow_window(&mut self, max: u64) {
        self.window = self.window.saturating_mul(2).min(max).max(self.window);
    }

    /// The current window.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Records that `max` was advertised.
    pub fn on_max_data_sent(&mut self, max: u64) {
        self.max_data = self.max_data.max(max);
    }

    /// The currently advertised limit (resent as is if its packet is lost).
    pub fn max_data(&self) -> u64 {
        self.max_data
    }

    /// Bytes received and held but not yet taken by the application.
    pub fn buffered(&self) -> u64 {
        self.highest.max(self.assembled) - self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            varint::write(m.len() as u64, &mut out);
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn reorders_and_dedups() {
        let bytes = encode(&[b"hello", b"", b"world!"]);
        let mut r = RecvStream::new(1000, 100);
        assert_eq!(
            r.on_frame(4, &bytes[4..], true).unwrap(),
            bytes.len() as u64 - 4
        );
        assert!(!r.has_message());
        assert_eq!(r.on_frame(4, &bytes[4..], true).unwrap(), 0);
        assert_eq!(r.on_frame(0, &bytes[..6], false).unwrap(), 4);
        assert_eq!(r.pop().unwrap(), &b"hello"[..]);
        assert_eq!(r.pop().unwrap(), &b""[..]);
        assert_eq!(r.pop().unwrap(), &b"world!"[..]);
        assert!(r.is_finished());
    }

    #[test]
    fn violations() {
        let mut r = RecvStream::new(10, 100);
        assert!(matches!(
            r.on_frame(5, &[0; 6], false),
            Err(StreamError::FlowControl { .. })
        ));
        let mut r = RecvStream::new(1000, 3);
        assert_eq!(
            r.on_frame(0, &encode(&[b"toolong"]), false),
            Err(StreamError::MessageTooLarge { len: 7, max: 3 })
        );
        let mut r = RecvStream::new(1000, 100);
        assert_eq!(
            r.on_frame(0, &[5, b'a'], true),
            Err(StreamError::TruncatedMessage)
        );
        let mut r = RecvStream::new(1000, 100);
        r.on_frame(0, &[1, b'a'], true).unwrap();
        assert_eq!(
            r.on_frame(0, &[1, b'a', 1], false),
            Err(StreamError::FinalSize)
        );
    }

    #[test]
    fn window_moves_when_half_consumed() {
        let mut r = RecvStream::new(100, 100);
        assert_eq!(r.max_data_update(), None);
        let bytes = encode(&[&[7u8; 60]]);
        r.on_frame(0, &bytes, false).unwrap();
        assert_eq!(r.max_data_update(), None, "nothing consumed yet");
        r.pop().unwrap();
        assert_eq!(r.max_data_update(), Some(161));
        r.on_max_data_sent(161);
        assert_eq!(r.max_data_update(), None);
    }
}

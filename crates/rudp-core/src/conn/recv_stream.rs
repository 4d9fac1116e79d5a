//! The incoming half of a connection: STREAM frames arrive in any order and
//! any number of times; bytes are put back in order exactly once, cut into
//! messages at their length prefixes (PROTOCOL.md §8.2), and held within the
//! advertised flow-control window (§8.3).
//!
//! Memory is bounded by the window whatever the peer does (§8.2, §13): bytes
//! that arrive ahead of a gap go into one contiguous buffer indexed by
//! offset, never into an allocation per frame, and the number of separate
//! pieces held ahead of the gaps is capped in proportion to the window.

use crate::ranges::RangeSet;
use crate::wire::{varint, Reader};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::ops::Range;

/// §8.2: a receiver holds out-of-order data in at most `window / this`
/// separate pieces (but at least [`MIN_OUT_OF_ORDER_PIECES`]). An honest
/// sender's pieces are whole packets, over 1000 bytes each, so it can never
/// reach the cap; a peer that sends one byte in every other position of the
/// window does, and is closed with FLOW_CONTROL_ERROR instead of making the
/// receiver keep a record per byte.
pub(super) const BYTES_PER_OUT_OF_ORDER_PIECE: u64 = 1024;
/// The cap on out-of-order pieces for small windows.
pub(super) const MIN_OUT_OF_ORDER_PIECES: usize = 64;

/// A stream-level protocol violation by the peer; the connection is closed
/// with the matching code (§11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StreamError {
    /// Data beyond the flow-control limit we advertised.
    FlowControl { end: u64, limit: u64 },
    /// The stream's end moved, or data arrived beyond it.
    FinalSize,
    /// A message larger than our max_message_size.
    MessageTooLarge { len: u64, max: u64 },
    /// The stream ended in the middle of a message.
    TruncatedMessage,
    /// Out-of-order data in more separate pieces than the window allows.
    TooFragmented { pieces: usize, max: usize },
}

#[derive(Debug)]
pub(super) struct RecvStream {
    /// In-order bytes not yet cut into messages; starts at a message boundary.
    partial: BytesMut,
    /// Every byte below this has been received.
    assembled: u64,
    /// Bytes above `assembled`: `ahead[i]` is stream byte `assembled + i`.
    /// Only the ranges in `ahead_ranges` hold data; the rest are gaps.
    /// Its length never exceeds `max_data - assembled`, so the window.
    ahead: VecDeque<u8>,
    /// Which ranges (absolute offsets) `ahead` holds.
    ahead_ranges: RangeSet,
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
    pub(super) fn new(window: u64, max_message: u64) -> Self {
        Self {
            partial: BytesMut::new(),
            assembled: 0,
            ahead: VecDeque::new(),
            ahead_ranges: RangeSet::new(),
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
    pub(super) fn on_frame(
        &mut self,
        offset: u64,
        data: &[u8],
        fin: bool,
    ) -> Result<u64, StreamError> {
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
            if start == self.assembled && self.ahead_ranges.is_empty() {
                // In order with nothing held back (the common case): the
                // bytes go straight to the message buffer, copied once.
                new += end - start;
                self.partial
                    .extend_from_slice(&data[(start - offset) as usize..]);
                self.assembled = end;
            } else {
                new += self.place_out_of_order(offset, data, start..end)?;
            }
            self.cut_messages()?;
        }
        if self.fin == Some(self.assembled) && !self.partial.is_empty() {
            return Err(StreamError::TruncatedMessage);
        }
        Ok(new)
    }

    /// Stores the parts of `data` (at `offset`) within `range` not held yet,
    /// then moves whatever became contiguous to the message buffer. Returns
    /// the number of bytes that were new.
    fn place_out_of_order(
        &mut self,
        offset: u64,
        data: &[u8],
        range: Range<u64>,
    ) -> Result<u64, StreamError> {
        let mut new = 0;
        let gaps = self.ahead_ranges.gaps_in(range.clone());
        let needed = (range.end - self.assembled) as usize;
        if needed > self.ahead.capacity() {
            // Double (amortised copies), but never past the window: the
            // peer may make us hold what it may send, not twice that.
            let window_span = (self.max_data - self.assembled) as usize;
            let want = self
                .ahead
                .capacity()
                .saturating_mul(2)
                .min(window_span)
                .max(needed);
            self.ahead.reserve_exact(want - self.ahead.len());
        }
        if needed > self.ahead.len() {
            self.ahead.resize(needed, 0);
        }
        for gap in gaps {
            let src = &data[(gap.start - offset) as usize..(gap.end - offset) as usize];
            write_at(&mut self.ahead, (gap.start - self.assembled) as usize, src);
            new += gap.end - gap.start;
            self.ahead_ranges.insert(gap);
        }
        let max = self.max_pieces();
        if self.ahead_ranges.len() > max {
            return Err(StreamError::TooFragmented {
                pieces: self.ahead_ranges.len(),
                max,
            });
        }
        if let Some(first) = self.ahead_ranges.first() {
            if first.start == self.assembled {
                self.ahead_ranges.pop_first();
                let n = (first.end - first.start) as usize;
                let (a, b) = self.ahead.as_slices();
                let from_a = n.min(a.len());
                self.partial.extend_from_slice(&a[..from_a]);
                self.partial.extend_from_slice(&b[..n - from_a]);
                self.ahead.drain(..n);
                self.assembled = first.end;
                if self.ahead_ranges.is_empty() {
                    // Nothing held ahead: give the memory back.
                    self.ahead = VecDeque::new();
                }
            }
        }
        Ok(new)
    }

    /// The most separate out-of-order pieces held at once (§8.2).
    fn max_pieces(&self) -> usize {
        let by_window = (self.window / BYTES_PER_OUT_OF_ORDER_PIECE).min(usize::MAX as u64);
        (by_window as usize).max(MIN_OUT_OF_ORDER_PIECES)
    }

    /// Frees the reassembly buffers: the connection failed, so no more
    /// bytes will arrive. Whole messages already cut stay readable.
    pub(super) fn release(&mut self) {
        self.partial = BytesMut::new();
        self.ahead = VecDeque::new();
        self.ahead_ranges = RangeSet::new();
    }

    /// Bytes of memory the buffers hold: what the window bounds.
    pub(super) fn memory(&self) -> usize {
        self.partial.capacity()
            + self.ahead.capacity()
            + self.ready.iter().map(Bytes::len).sum::<usize>()
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
    pub(super) fn pop(&mut self) -> Option<Bytes> {
        let msg = self.ready.pop_front()?;
        self.consumed += (varint::encoded_len(msg.len() as u64) + msg.len()) as u64;
        Some(msg)
    }

    pub(super) fn has_message(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether the peer finished the stream and every message was taken.
    pub(super) fn is_finished(&self) -> bool {
        self.fin == Some(self.consumed)
    }

    /// Whether every byte up to the peer's FIN has arrived.
    pub(super) fn is_fin_received(&self) -> bool {
        self.fin == Some(self.assembled)
    }

    /// A new limit to advertise, once the application has freed at least half
    /// the window (§8.3): fewer, larger updates.
    pub(super) fn max_data_update(&self) -> Option<u64> {
        if self.fin.is_some() {
            return None;
        }
        let candidate = self.consumed + self.window;
        (candidate - self.max_data >= self.window / 2).then_some(candidate)
    }

    /// Doubles the window, up to `max` (§8.3 auto-tuning).
    pub(super) fn grow_window(&mut self, max: u64) {
        self.window = self.window.saturating_mul(2).min(max).max(self.window);
    }

    /// The current window.
    pub(super) fn window(&self) -> u64 {
        self.window
    }

    /// Records that `max` was advertised.
    pub(super) fn on_max_data_sent(&mut self, max: u64) {
        self.max_data = self.max_data.max(max);
    }

    /// The currently advertised limit (resent as is if its packet is lost).
    pub(super) fn max_data(&self) -> u64 {
        self.max_data
    }

    /// Bytes received and held but not yet taken by the application.
    pub(super) fn buffered(&self) -> u64 {
        self.highest.max(self.assembled) - self.consumed
    }
}

/// Copies `src` into `buf` from index `at`, across the ring's two halves.
fn write_at(buf: &mut VecDeque<u8>, at: usize, src: &[u8]) {
    let (a, b) = buf.as_mut_slices();
    let mut done = 0;
    if at < a.len() {
        let n = src.len().min(a.len() - at);
        a[at..at + n].copy_from_slice(&src[..n]);
        done = n;
    }
    if done < src.len() {
        let from = at + done - a.len();
        b[from..from + src.len() - done].copy_from_slice(&src[done..]);
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

    /// Issue #12 item 1: one byte at every other offset, never offset 0,
    /// used to cost an allocation and two map entries per byte (300 MiB for
    /// a 4 MiB window). Now the memory stays within the window and the
    /// peer is stopped once its pieces pass the cap.
    #[test]
    fn fragment_attack_is_bounded_by_the_window() {
        let window = 4 << 20;
        let mut r = RecvStream::new(window, 1 << 20);
        let max = r.max_pieces();
        assert_eq!(max, 4096);
        let mut offset = 2;
        let err = loop {
            match r.on_frame(offset, &[7], false) {
                Ok(1) => offset += 2,
                Ok(n) => panic!("{n} new bytes"),
                Err(e) => break e,
            }
            assert!(
                r.memory() as u64 <= window && r.memory() as u64 <= 2 * offset + 64,
                "{} bytes held at offset {offset}",
                r.memory()
            );
        };
        assert_eq!(
            err,
            StreamError::TooFragmented {
                pieces: max + 1,
                max
            }
        );
        println!(
            "fragment attack: stopped after {} pieces, {} bytes held for a {window}-byte window",
            max + 1,
            r.memory()
        );
    }

    /// Whole packets arriving out of order, the honest case, never reach the
    /// cap even when every other packet of a full window is missing.
    #[test]
    fn honest_reordering_fills_the_window_without_hitting_the_cap() {
        let window = 1 << 20;
        let msgs: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 1000]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let bytes = encode(&refs);
        let mut r = RecvStream::new(window, 1 << 20);
        let chunks: Vec<(usize, &[u8])> = bytes.chunks(1100).enumerate().collect();
        for (i, c) in chunks.iter().filter(|(i, _)| i % 2 == 1) {
            r.on_frame((*i * 1100) as u64, c, false).unwrap();
        }
        assert!(r.memory() as u64 <= window);
        for (i, c) in chunks.iter().filter(|(i, _)| i % 2 == 0) {
            r.on_frame((*i * 1100) as u64, c, false).unwrap();
        }
        let mut got = 0;
        while let Some(m) = r.pop() {
            assert_eq!(m, msgs[got]);
            got += 1;
        }
        assert_eq!(got, 1000);
        assert_eq!(r.ahead.capacity(), 0, "memory given back once in order");
    }

    /// The ring buffer wraps: data placed after a partial drain lands right.
    #[test]
    fn out_of_order_bytes_survive_the_ring_wrapping() {
        let bytes = encode(&[&[1u8; 50], &[2u8; 50], &[3u8; 50]]);
        let mut r = RecvStream::new(1000, 100);
        r.on_frame(20, &bytes[20..40], false).unwrap();
        r.on_frame(60, &bytes[60..100], false).unwrap();
        r.on_frame(0, &bytes[0..20], false).unwrap(); // drains 0..40
        r.on_frame(120, &bytes[120..], false).unwrap();
        r.on_frame(40, &bytes[40..60], false).unwrap();
        r.on_frame(100, &bytes[100..120], false).unwrap();
        assert_eq!(r.pop().unwrap(), &[1u8; 50][..]);
        assert_eq!(r.pop().unwrap(), &[2u8; 50][..]);
        assert_eq!(r.pop().unwrap(), &[3u8; 50][..]);
    }
}

//! The incoming half of a connection: STREAM frames arrive in any order and
//! any number of times; bytes are put back in order exactly once, cut into
//! messages at their length prefixes (PROTOCOL.md §8.2), and held within the
//! advertised flow-control window (§8.3).
//!
//! Memory is bounded by the window whatever the peer does (§8.2, §13): bytes
//! that arrive ahead of a gap go into one contiguous buffer indexed by
//! offset, never into an allocation per frame, and the number of separate
//! pieces held ahead of the gaps is capped in proportion to the window.
//!
//! Version 2 (§15) adds skipped messages: a SKIP marks its range, and the
//! in-order reader steps over a marked range (dropping whatever of it
//! arrived), reporting how many messages it held. Unordered streams deliver a message as soon as all
//! of its bytes are here, and mark it the same way so that the in-order
//! reader later steps over it without delivering it twice.
//!
//! Entries are charged as well as bytes (§13): an empty message is one
//! byte on the wire, so a queue with an entry per message would let a peer
//! make us hold 30 bytes or more of bookkeeping per byte of window. Whole
//! messages therefore stay where they arrived, as one run of bytes in
//! wire format, and are split off one at a time when the application reads
//! them; an entry is made only where the sequence is broken by a skip or an
//! early delivery, adjacent skips merge into one, and the number of entries
//! is bounded by the bytes they hold. Past that bound, cutting waits until
//! the application reads, and the peer's further skips wait as markers,
//! which are capped like out-of-order pieces.

use super::streams::Delivery;
use crate::ranges::RangeSet;
use crate::wire::{varint, Reader};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// What the application reads from a stream (§15.5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A whole message.
    Message(Bytes),
    /// The sender abandoned this many messages here (their lifetime or
    /// retransmission budget ran out): they will never arrive.
    Skipped {
        /// How many messages.
        messages: u64,
        /// Which: the first one's number on this stream, counting every
        /// message the sender wrote from 0 (delivered, delivered early or
        /// skipped), so `first..first + messages` are the ones lost. A
        /// sender that numbers its messages the same way knows which.
        first: u64,
    },
}

/// What waits for the application, in order (see the module doc): whole
/// messages in wire format (length prefix, then body), or a skip.
#[derive(Debug)]
enum Ready {
    /// `count` whole messages, back to back, each with its length prefix.
    Messages { bytes: Bytes, count: u64 },
    /// Messages `first..first + messages` the sender abandoned here;
    /// adjacent skips merge.
    Skipped { messages: u64, first: u64 },
}

/// Bytes one [`Ready`] entry costs beyond the bytes it holds: its slot in
/// the queue and the shared-buffer header behind its `Bytes`.
pub(super) const READY_ENTRY_COST: usize = std::mem::size_of::<Ready>() + 32;
/// Bytes one marker costs in its ordered map (key, value and node share).
pub(super) const MARKER_COST: usize = 2 * std::mem::size_of::<(u64, Marker)>();
/// Entries the ready queue may always hold, whatever bytes they carry.
pub(super) const MIN_READY_ENTRIES: usize = 64;
/// Beyond [`MIN_READY_ENTRIES`], one entry per this many bytes held: the
/// bookkeeping never costs more than the data it describes.
pub(super) const BYTES_PER_READY_ENTRY: usize = 64;

/// A range the in-order reader steps over instead of parsing.
#[derive(Debug, Clone, Copy)]
struct Marker {
    end: u64,
    /// Messages the sender skipped here; zero for a message an unordered
    /// stream already delivered.
    skipped: u64,
}

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
    /// A SKIP or an unordered message start that is not at a message
    /// boundary: inside delivered data, or overlapping another (§15.5).
    BadSkip,
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
    /// Whole messages (and skips) cut off the run, waiting for the
    /// application; they come before the run.
    ready: VecDeque<Ready>,
    /// Bytes of messages in `ready`.
    ready_bytes: usize,
    /// The first `run_len` bytes of `partial` are `run_count` whole,
    /// checked messages that follow `ready`: split off only when read.
    run_len: usize,
    run_count: u64,
    /// Messages cut so far, in order: the number of the next message
    /// (what [`Received::Skipped`]'s `first` counts).
    cut_count: u64,
    /// An error found while cutting on the application's read, after the
    /// cut had waited for it; the connection closes with it.
    failed: Option<StreamError>,
    /// Ranges to step over, by start (§15.5, §15.3).
    markers: BTreeMap<u64, Marker>,
    /// Deliver each message as soon as it is whole (§15.3).
    delivery: Delivery,
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
            ready_bytes: 0,
            run_len: 0,
            run_count: 0,
            cut_count: 0,
            failed: None,
            markers: BTreeMap::new(),
            delivery: Delivery::Ordered,
            consumed: 0,
            ready_end: 0,
            highest: 0,
            max_data: window,
            window,
            max_message,
            fin: None,
        }
    }

    /// Delivers messages as soon as they are whole (§15.3).
    /// How the peer sends these messages, as far as its frames told
    /// (§15.3): unordered once a frame carried a message start.
    pub(super) fn delivery(&self) -> Delivery {
        self.delivery
    }

    pub(super) fn set_unordered(&mut self) {
        self.delivery = Delivery::Unordered;
    }

    /// Takes one SKIP frame (§15.8.8): `offset..offset + len`, `messages`
    /// whole messages, will never come. Returns whether it was new.
    pub(super) fn on_skip(
        &mut self,
        offset: u64,
        len: u64,
        messages: u64,
    ) -> Result<bool, StreamError> {
        let end = offset + len;
        if end <= self.ready_end || self.markers.contains_key(&offset) {
            return Ok(false); // Stepped over already, or a repeat.
        }
        if offset < self.ready_end {
            // Part of it was delivered: the sender merged a message we may
            // have had, which §15.8.8 forbids.
            return Err(StreamError::BadSkip);
        }
        if end > self.max_data {
            return Err(StreamError::FlowControl {
                end,
                limit: self.max_data,
            });
        }
        if self.fin.is_some_and(|f| end > f) {
            return Err(StreamError::FinalSize);
        }
        self.check_new_marker(offset, end)?;
        self.highest = self.highest.max(end);
        self.markers.insert(
            offset,
            Marker {
                end,
                skipped: messages,
            },
        );
        self.cut_messages()?;
        Ok(true)
    }

    /// A new marked range `start..end` (a skip, or a message delivered
    /// early) must not overlap one held, and their number is bounded like
    /// out-of-order pieces (§15.5).
    fn check_new_marker(&self, start: u64, end: u64) -> Result<(), StreamError> {
        let before = self.markers.range(..start).next_back();
        let inside = self.markers.range(start..end).next();
        if before.is_some_and(|(_, m)| m.end > start) || inside.is_some() {
            return Err(StreamError::BadSkip);
        }
        if self.markers.len() >= self.max_pieces() {
            return Err(StreamError::TooFragmented {
                pieces: self.markers.len() + 1,
                max: self.max_pieces(),
            });
        }
        Ok(())
    }

    /// Moves the reader from `ready_end` (a marker's start) to `end`,
    /// dropping whatever bytes of the range arrived. The run must be
    /// closed, so that `partial` starts at `ready_end`.
    fn jump_to(&mut self, end: u64) {
        debug_assert_eq!(self.run_len, 0);
        if self.assembled >= end {
            self.partial.advance((end - self.ready_end) as usize);
        } else {
            self.partial.clear();
            let n = (end - self.assembled) as usize;
            if n >= self.ahead.len() {
                self.ahead.clear();
            } else {
                self.ahead.drain(..n);
            }
            self.ahead_ranges.remove(0..end);
            self.assembled = end;
            self.absorb_contiguous();
        }
        self.ready_end = end;
    }

    /// Takes one STREAM frame. Returns the number of bytes that were new.
    #[cfg(test)]
    pub(super) fn on_frame(
        &mut self,
        offset: u64,
        data: &[u8],
        fin: bool,
    ) -> Result<u64, StreamError> {
        self.on_frame_in(offset, None, data, fin)
    }

    /// Takes one STREAM or STREAM_N frame; `message_start` is where the
    /// message of its bytes starts, on unordered streams (§15.3).
    pub(super) fn on_frame_in(
        &mut self,
        offset: u64,
        message_start: Option<u64>,
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
            if let (true, Some(m)) = (self.delivery == Delivery::Unordered, message_start) {
                self.deliver_early(m)?;
            }
        }
        self.check_truncated()?;
        Ok(new)
    }

    /// §15.3: the message starting at `start`, ahead of a gap, is delivered
    /// if all of it is here, and marked so the in-order reader skips it.
    fn deliver_early(&mut self, start: u64) -> Result<(), StreamError> {
        if start < self.assembled || self.markers.contains_key(&start) {
            return Ok(()); // In order (cut already) or delivered before.
        }
        let at = (start - self.assembled) as usize;
        let mut prefix = [0u8; 8];
        let avail = self.ahead.len().saturating_sub(at).min(8);
        for (i, b) in prefix.iter_mut().enumerate().take(avail) {
            *b = self.ahead[at + i];
        }
        let mut r = Reader::new(&prefix[..avail]);
        let Ok(len) = varint::read(&mut r) else {
            return Ok(());
        };
        if len > self.max_message {
            return Err(StreamError::MessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        let header = (avail - r.remaining()) as u64;
        let end = start + header + len;
        if !self.ahead_ranges.gaps_in(start..end).is_empty() {
            return Ok(()); // Not whole yet.
        }
        // A message that overlaps one delivered or skipped before means the
        // peer lied about where messages start: delivering it would copy
        // the same bytes again and again (§15.3).
        self.check_new_marker(start, end)?;
        if !self.may_add_entry() {
            // Over the entry budget: it is read in order instead, once
            // the gap before it fills.
            return Ok(());
        }
        let total = (header + len) as usize;
        let wire: Vec<u8> = self.ahead.range(at..at + total).copied().collect();
        self.ready_bytes += total;
        self.ready.push_back(Ready::Messages {
            bytes: Bytes::from(wire),
            count: 1,
        });
        self.markers.insert(start, Marker { end, skipped: 0 });
        Ok(())
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
        self.absorb_contiguous();
        Ok(new)
    }

    /// Moves the held range that starts where the in-order bytes end, if
    /// any, to the message buffer.
    fn absorb_contiguous(&mut self) {
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
    }

    /// The most separate out-of-order pieces held at once (§8.2).
    fn max_pieces(&self) -> usize {
        let by_window = (self.window / BYTES_PER_OUT_OF_ORDER_PIECE).min(usize::MAX as u64);
        (by_window as usize).max(MIN_OUT_OF_ORDER_PIECES)
    }

    /// Frees the reassembly buffers: the connection failed, so no more
    /// bytes will arrive. Whole messages already cut stay readable.
    pub(super) fn release(&mut self) {
        self.close_run();
        self.partial = BytesMut::new();
        self.ahead = VecDeque::new();
        self.ahead_ranges = RangeSet::new();
    }

    /// Bytes of memory the buffers hold, entries charged at their cost
    /// (§13): what the window and the entry budget bound.
    pub(super) fn memory(&self) -> usize {
        self.partial.capacity()
            + self.ahead.capacity()
            + self.ready_bytes
            + self.ready.len() * READY_ENTRY_COST
            + self.markers.len() * MARKER_COST
    }

    /// Whether one more entry fits the budget: at least
    /// [`MIN_READY_ENTRIES`], and one per [`BYTES_PER_READY_ENTRY`] bytes
    /// of messages held.
    fn may_add_entry(&self) -> bool {
        let held = self.ready_bytes + self.run_len;
        self.ready.len() < MIN_READY_ENTRIES.max(held / BYTES_PER_READY_ENTRY)
    }

    /// Whether cutting stopped at a marker for want of entry budget: it
    /// resumes when the application reads.
    fn blocked(&self) -> bool {
        self.markers.contains_key(&self.ready_end)
    }

    /// The stream ended inside a message (§8.2): every byte up to the FIN
    /// is here, cutting did not wait, and bytes after the run are left.
    fn check_truncated(&self) -> Result<(), StreamError> {
        if self.fin == Some(self.assembled) && !self.blocked() && self.partial.len() > self.run_len
        {
            return Err(StreamError::TruncatedMessage);
        }
        Ok(())
    }

    /// Moves the run of whole messages into the ready queue as one entry.
    fn close_run(&mut self) {
        if self.run_count > 0 {
            let bytes = self.partial.split_to(self.run_len).freeze();
            self.ready_bytes += self.run_len;
            self.ready.push_back(Ready::Messages {
                bytes,
                count: self.run_count,
            });
            self.run_len = 0;
            self.run_count = 0;
        }
    }

    /// Advances `ready_end` over every whole message and marked range it
    /// can: messages join the run, marked ranges are stepped over.
    fn cut_messages(&mut self) -> Result<(), StreamError> {
        loop {
            if let Some(m) = self.markers.get(&self.ready_end).copied() {
                // A skipped or already delivered range (§15.5, §15.3).
                if !self.may_add_entry() {
                    return Ok(()); // Resumed when the application reads.
                }
                self.markers.remove(&self.ready_end);
                self.close_run();
                let len = m.end - self.ready_end;
                self.jump_to(m.end);
                let first = self.cut_count;
                if m.skipped > 0 {
                    // Nothing of it waits for the application: its bytes
                    // are consumed now, so they return to the window. (An
                    // early-delivered message counts when it is read.)
                    self.consumed += len;
                    match self.ready.back_mut() {
                        Some(Ready::Skipped { messages, first: f }) if *f + *messages == first => {
                            *messages += m.skipped
                        }
                        _ => self.ready.push_back(Ready::Skipped {
                            messages: m.skipped,
                            first,
                        }),
                    }
                }
                // An early-delivered message is one message.
                self.cut_count += m.skipped.max(1);
                continue;
            }
            let rest = &self.partial[self.run_len..];
            let mut r = Reader::new(rest);
            let Ok(len) = varint::read(&mut r) else {
                return self.check_truncated(); // The prefix is incomplete.
            };
            if len > self.max_message {
                return Err(StreamError::MessageTooLarge {
                    len,
                    max: self.max_message,
                });
            }
            let header = rest.len() - r.remaining();
            let total = header + len as usize;
            if rest.len() < total {
                // Room for the whole message at once: growing by doubling
                // would copy it several times, and past the allocator's
                // mmap threshold fault in fresh pages for every message.
                self.partial
                    .reserve(self.run_len + total - self.partial.len());
                return self.check_truncated();
            }
            let start = self.ready_end;
            if self
                .markers
                .range(start + 1..start + total as u64)
                .next()
                .is_some()
            {
                // A marked range starts inside this message: the peer's
                // SKIP or message start was not at a message boundary.
                return Err(StreamError::BadSkip);
            }
            self.run_len += total;
            self.run_count += 1;
            self.cut_count += 1;
            self.ready_end += total as u64;
        }
    }

    /// The next whole message or skip, if any.
    pub(super) fn pop_item(&mut self) -> Option<Received> {
        let (item, total) = match self.ready.front_mut() {
            Some(Ready::Skipped { messages, first }) => {
                let item = Received::Skipped {
                    messages: *messages,
                    first: *first,
                };
                self.ready.pop_front();
                (item, 0)
            }
            Some(Ready::Messages { bytes, count }) => {
                let (header, len) = message_at(bytes)?;
                bytes.advance(header);
                let msg = bytes.split_to(len);
                *count -= 1;
                if *count == 0 {
                    self.ready.pop_front();
                }
                self.ready_bytes -= header + len;
                (Received::Message(msg), header + len)
            }
            None if self.run_count > 0 => {
                let (header, len) = message_at(&self.partial[..self.run_len])?;
                self.partial.advance(header);
                let msg = self.partial.split_to(len).freeze();
                self.run_len -= header + len;
                self.run_count -= 1;
                (Received::Message(msg), header + len)
            }
            None => return None,
        };
        self.consumed += total as u64;
        if self.blocked() && self.failed.is_none() {
            // The read freed entry budget: cut what waited.
            if let Err(e) = self.cut_messages() {
                self.failed = Some(e);
            }
        }
        Some(item)
    }

    /// An error found while cutting on a read (see `failed`), once.
    pub(super) fn take_error(&mut self) -> Option<StreamError> {
        self.failed.take()
    }

    /// The next whole message, if any; skips are stepped over.
    #[cfg(test)]
    pub(super) fn pop(&mut self) -> Option<Bytes> {
        loop {
            match self.pop_item()? {
                Received::Message(m) => return Some(m),
                Received::Skipped { .. } => continue,
            }
        }
    }

    pub(super) fn has_message(&self) -> bool {
        !self.ready.is_empty() || self.run_count > 0
    }

    /// What the application has freed, for flow control: read bytes, but
    /// not those an unordered stream delivered ahead of a gap (§15.3).
    pub(super) fn consumed_credit(&self) -> u64 {
        self.consumed.min(self.ready_end)
    }

    /// The highest offset received (data, FIN or SKIP).
    pub(super) fn highest(&self) -> u64 {
        self.highest
    }

    /// The peer reset the stream at `final_size` (§15.8.6): nothing more
    /// will be delivered, and everything up to the final size counts as
    /// received and freed.
    pub(super) fn on_reset(&mut self, final_size: u64) -> Result<(), StreamError> {
        if final_size < self.highest || self.fin.is_some_and(|f| f != final_size) {
            return Err(StreamError::FinalSize);
        }
        if final_size > self.max_data {
            return Err(StreamError::FlowControl {
                end: final_size,
                limit: self.max_data,
            });
        }
        self.highest = final_size;
        self.fin = Some(final_size);
        self.release();
        self.ready.clear();
        self.ready_bytes = 0;
        self.markers.clear();
        self.assembled = final_size;
        self.ready_end = final_size;
        self.consumed = final_size;
        Ok(())
    }

    /// Whether the peer finished the stream and every message was taken.
    pub(super) fn is_finished(&self) -> bool {
        // Skips count as consumed when stepped over, before the
        // application reads them: the stream is over only once it has.
        self.fin == Some(self.consumed) && !self.has_message()
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
        // Messages an unordered stream delivered ahead of a gap free no
        // window until the gap fills: the buffer still spans them (§15.3).
        let candidate = self.consumed.min(self.ready_end) + self.window;
        (candidate.saturating_sub(self.max_data) >= self.window / 2).then_some(candidate)
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
        self.highest
            .max(self.assembled)
            .saturating_sub(self.consumed)
    }
}

/// The length prefix's size and the body's length of the first message of
/// a run of whole messages in wire format. `None` only if the run is not
/// what `cut_messages` checked (never, by construction).
fn message_at(run: &[u8]) -> Option<(usize, usize)> {
    let mut r = Reader::new(run);
    let len = varint::read(&mut r).ok()? as usize;
    let header = run.len() - r.remaining();
    if run.len() < header + len {
        debug_assert!(false, "a run holds only whole messages");
        return None;
    }
    Some((header, len))
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

    fn message(r: Option<Received>) -> Option<Vec<u8>> {
        match r {
            Some(Received::Message(m)) => Some(m.to_vec()),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_skip_steps_over_its_messages_and_reports_them() {
        let bytes = encode(&[b"one", b"two", b"three"]);
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        // "one" arrives; "two" (4..8) is lost and skipped; "three" arrives.
        r.on_frame(0, &bytes[..4], false).unwrap();
        r.on_frame(8, &bytes[8..], false).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"one".to_vec()));
        assert_eq!(r.pop_item(), None, "three waits behind the gap");
        assert!(r.on_skip(4, 4, 1).unwrap());
        // The second message (number 1) is the one lost.
        assert_eq!(
            r.pop_item(),
            Some(Received::Skipped {
                messages: 1,
                first: 1
            })
        );
        assert_eq!(message(r.pop_item()), Some(b"three".to_vec()));
        // Repeats and late data change nothing.
        assert!(!r.on_skip(4, 4, 1).unwrap());
        r.on_frame(4, &bytes[4..8], false).unwrap();
        assert_eq!(r.pop_item(), None);
        assert_eq!(r.consumed_credit(), bytes.len() as u64);
    }

    /// Issue #24: a skip says which messages it stands for, counting the
    /// messages delivered early on an unordered stream; skips on either
    /// side of one do not merge.
    #[test]
    fn a_skip_names_its_messages_around_one_delivered_early() {
        let bytes = encode(&[b"aaa", b"bbb", b"ccc", b"ddd"]);
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.set_unordered();
        // b (4..8) arrives and is delivered ahead of the gap; a (0..4) and
        // c (8..12) are given up; d (12..16) arrives.
        r.on_frame_in(4, Some(4), &bytes[4..8], false).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"bbb".to_vec()));
        r.on_frame_in(12, Some(12), &bytes[12..], true).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"ddd".to_vec()));
        assert!(r.on_skip(8, 4, 1).unwrap());
        assert!(r.on_skip(0, 4, 1).unwrap());
        let skip = |first| Some(Received::Skipped { messages: 1, first });
        assert_eq!(r.pop_item(), skip(0));
        assert_eq!(r.pop_item(), skip(2));
        assert_eq!(r.pop_item(), None);
        assert!(r.is_finished());
    }

    #[test]
    fn a_skip_drops_the_part_of_a_message_that_arrived() {
        let bytes = encode(&[b"abcdefgh", b"z"]);
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.on_frame(0, &bytes[..3], false).unwrap();
        assert!(r.on_skip(0, 9, 1).unwrap());
        r.on_frame(9, &bytes[9..], true).unwrap();
        assert_eq!(
            r.pop_item(),
            Some(Received::Skipped {
                messages: 1,
                first: 0
            })
        );
        assert_eq!(message(r.pop_item()), Some(b"z".to_vec()));
        assert!(r.is_finished());
    }

    #[test]
    fn skips_that_are_not_at_message_boundaries_are_refused() {
        let bytes = encode(&[b"one", b"two"]);
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.on_frame(0, &bytes[..4], false).unwrap();
        r.pop_item();
        // Straddles the read position (4).
        assert_eq!(r.on_skip(2, 4, 1), Err(StreamError::BadSkip));
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.on_skip(10, 5, 1).unwrap();
        assert_eq!(r.on_skip(12, 5, 1), Err(StreamError::BadSkip), "overlap");
        // A message read in order that contains a marked range.
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.on_skip(2, 1, 1).unwrap();
        assert_eq!(r.on_frame(0, &bytes[..4], false), Err(StreamError::BadSkip));
    }

    #[test]
    fn unordered_delivers_whole_messages_ahead_of_a_gap_once() {
        let bytes = encode(&[b"one", b"two", b"three"]);
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.set_unordered();
        // "two" (4..8) and "three" (8..14) arrive before "one".
        r.on_frame_in(8, Some(8), &bytes[8..], true).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"three".to_vec()));
        r.on_frame_in(4, Some(4), &bytes[4..8], false).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"two".to_vec()));
        // Not credited to the window while "one" is missing.
        assert_eq!(r.consumed_credit(), 0);
        r.on_frame_in(4, Some(4), &bytes[4..8], false).unwrap();
        assert_eq!(r.pop_item(), None, "a duplicate is not delivered again");
        r.on_frame_in(0, Some(0), &bytes[..4], false).unwrap();
        assert_eq!(message(r.pop_item()), Some(b"one".to_vec()));
        assert_eq!(r.pop_item(), None, "nothing twice once in order");
        assert!(r.is_finished());
        assert_eq!(r.consumed_credit(), bytes.len() as u64);
    }

    #[test]
    fn a_lying_message_start_cannot_make_the_receiver_copy_bytes_twice() {
        // A 200-byte message; the peer then claims a message starts at
        // every byte inside it.
        let mut bytes = encode(&[&[1u8; 200]]);
        bytes.extend(encode(&[b"next"]));
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        r.set_unordered();
        r.on_frame_in(10, Some(0), &bytes[10..202], false).unwrap();
        r.on_frame_in(1, Some(0), &bytes[1..10], false).unwrap();
        // Byte 0 missing: nothing delivered yet. A lie at offset 5, whose
        // "prefix" 1 makes a 2-byte message 5..7 inside the first, is
        // delivered once; a second, overlapping it, is refused.
        r.on_frame_in(5, Some(5), &bytes[5..6], false).unwrap();
        assert!(r.pop_item().is_some());
        assert_eq!(
            r.on_frame_in(6, Some(6), &bytes[6..7], false),
            Err(StreamError::BadSkip)
        );
        // The real message, read in order, contains the lie: refused too.
        assert_eq!(
            r.on_frame_in(0, Some(0), &bytes[..1], false),
            Err(StreamError::BadSkip)
        );
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

    /// Issue #22: 4 MiB of 0x00 bytes is four million empty messages. They
    /// used to cost an entry each (+146 MiB); now they wait as the bytes
    /// they arrived as, and are still read one by one.
    #[test]
    fn empty_messages_cost_their_bytes_not_an_entry_each() {
        let window = 4u64 << 20;
        let mut r = RecvStream::new(window, 1 << 20);
        let chunk = vec![0u8; 1400];
        let mut offset = 0;
        while offset + 1400 <= window {
            r.on_frame(offset, &chunk, false).unwrap();
            offset += 1400;
        }
        let bound = 2 * offset as usize + MIN_READY_ENTRIES * READY_ENTRY_COST;
        println!(
            "{offset} empty messages held in {} bytes (bound {bound})",
            r.memory()
        );
        assert!(r.memory() <= bound, "{} bytes held", r.memory());
        assert!(r.ready.len() <= 1, "{} entries", r.ready.len());
        let mut read = 0;
        while let Some(m) = r.pop() {
            assert!(m.is_empty());
            read += 1;
        }
        assert_eq!(read, offset);
        assert_eq!(r.consumed_credit(), offset);
    }

    /// Issue #22: a million one-byte SKIPs in order merge into one report
    /// (they used to cost 33 bytes each).
    #[test]
    fn skips_in_order_merge_into_one_entry() {
        let mut r = RecvStream::new(4 << 20, 1 << 20);
        for i in 0..1_000_000u64 {
            assert!(r.on_skip(i, 1, 1).unwrap());
        }
        assert_eq!(r.ready.len(), 1);
        assert!(r.memory() < 1024, "{} bytes held", r.memory());
        assert_eq!(
            r.pop_item(),
            Some(Received::Skipped {
                messages: 1_000_000,
                first: 0
            })
        );
    }

    /// Issue #22: an empty message, then a one-byte SKIP, again and again:
    /// each pair would be two entries for two bytes. Past the entry budget
    /// the cut waits and the SKIPs wait as markers, whose cap stops the
    /// peer; the memory stays a small multiple of the bytes.
    #[test]
    fn messages_between_skips_cannot_buy_an_entry_per_byte() {
        let window = 2u64 << 20;
        let mut r = RecvStream::new(window, 1 << 20);
        let mut offset = 0;
        let err = loop {
            r.on_frame(offset, &[0], false).unwrap();
            match r.on_skip(offset + 1, 1, 1) {
                Ok(_) => offset += 2,
                Err(e) => break e,
            }
            assert!(
                r.memory()
                    <= 4096 * MARKER_COST
                        + MIN_READY_ENTRIES * READY_ENTRY_COST
                        + 4 * offset as usize,
                "{} bytes held at offset {offset}",
                r.memory()
            );
        };
        assert!(matches!(err, StreamError::TooFragmented { .. }), "{err:?}");
        println!(
            "alternating messages and skips: stopped at offset {offset}, {} bytes held",
            r.memory()
        );
    }

    /// An honest peer whose application does not read for a while: the
    /// cut waits at the entry budget, and every message and skip still
    /// comes out once, in order, when it reads.
    #[test]
    fn a_waiting_cut_resumes_when_the_application_reads() {
        let mut r = RecvStream::new(1 << 20, 1 << 20);
        let mut offset = 0;
        let mut expected = Vec::new();
        for i in 0..500u64 {
            let msg = encode(&[&i.to_be_bytes()]);
            r.on_frame(offset, &msg, false).unwrap();
            offset += msg.len() as u64;
            expected.push(Some(i));
            if i % 3 == 0 {
                r.on_skip(offset, 2, 1).unwrap();
                offset += 2;
                expected.push(None);
            }
        }
        assert!(r.blocked(), "the budget is reached");
        let mut got = Vec::new();
        while let Some(item) = r.pop_item() {
            match item {
                Received::Message(m) => {
                    got.push(Some(u64::from_be_bytes(m[..].try_into().unwrap())))
                }
                Received::Skipped { messages, first } => {
                    assert_eq!(messages, 1);
                    assert_eq!(first, got.len() as u64, "each entry is one message");
                    got.push(None)
                }
            }
        }
        assert_eq!(got, expected);
        assert_eq!(r.take_error(), None);
        assert_eq!(r.consumed_credit(), offset);
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

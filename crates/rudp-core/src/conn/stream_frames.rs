//! Streams on the wire (PROTOCOL.md §8, §15.8): writing stream data,
//! SKIPs, flow-control and stream control frames and datagrams into a
//! packet by priority; applying the peer's; and what acknowledgement and
//! loss do to them. Every stream goes through the same paths; stream 0
//! differs only in its encoding (STREAM and MAX_DATA frames, §15.2).

use super::sent::{Control, SentFrames};
use super::streams::{Credit, Reset};
use super::{datagrams, stream_error, Connection, Event, StreamId, MAX_BUNDLED_RANGES};
use crate::error::TransportCode;
use crate::wire::frame::{
    encode_stream_header, encode_stream_n_header, SkipFrame, StreamNFrame, StreamParams,
    MAX_STREAM_HEADER_LEN, MAX_STREAM_N_HEADER_LEN,
};
use crate::wire::Frame;
use std::time::Instant;

/// Bytes a control frame or SKIP takes at most (type and four varints).
const MAX_CONTROL_LEN: usize = 1 + 4 * 8;

/// The frame that carries a stream's data (§15.2): version 1's STREAM for
/// stream 0 (§5.5), STREAM_N with the stream's id for every other
/// (§15.8.2). Decided once per stream written into a packet; the header
/// and the packet's record (`SentFrames::push_stream`) follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataFrame {
    /// Version 1's STREAM: stream 0, without an id.
    Stream,
    /// STREAM_N, naming its stream.
    StreamN(u64),
}

impl DataFrame {
    /// The frame for stream `id`'s data.
    fn of(id: u64) -> Self {
        if id == StreamId::FIRST.0 {
            Self::Stream
        } else {
            Self::StreamN(id)
        }
    }

    /// The largest header this frame can have.
    fn max_header_len(self) -> usize {
        match self {
            Self::Stream => MAX_STREAM_HEADER_LEN,
            Self::StreamN(_) => MAX_STREAM_N_HEADER_LEN,
        }
    }

    /// The header of a frame carrying `len` bytes at `offset`; version 1's
    /// STREAM has no message start (§5.5).
    fn encode_header(
        self,
        offset: u64,
        message_start: Option<u64>,
        len: usize,
        fin: bool,
        out: &mut Vec<u8>,
    ) {
        match self {
            Self::Stream => encode_stream_header(offset, len, fin, out),
            Self::StreamN(id) => encode_stream_n_header(id, offset, message_start, len, fin, out),
        }
    }
}

impl Connection {
    /// Our version-2 limits, for STREAM_PARAMETERS (§15.8.1).
    pub(super) fn local_stream_params(&self) -> StreamParams {
        StreamParams {
            max_streams: self.config.max_streams,
            stream_window: self.config.stream_receive_window,
            streams_window: self.config.streams_receive_window,
            max_datagram_payload: datagrams::Datagrams::local_max_payload(&self.config),
        }
    }

    /// The peer's STREAM_PARAMETERS (§15.8.1): only the first counts.
    pub(super) fn on_stream_params(
        &mut self,
        p: &StreamParams,
    ) -> Result<(), (TransportCode, String)> {
        if self.peer_streams.is_some() {
            return Ok(());
        }
        let max_message = self.peer.map_or(0, |h| h.max_message_size);
        if p.max_streams > crate::config::MAX_STREAMS_LIMIT
            || (p.max_streams > 0 && p.stream_window < max_message.saturating_add(8))
            || p.streams_window < p.stream_window
        {
            return Err((
                TransportCode::InvalidParameters,
                format!("unacceptable stream parameters {p:?}"),
            ));
        }
        self.peer_streams = Some(*p);
        self.streams.peer_max_streams = p.max_streams;
        self.streams.peer_stream_window = p.stream_window;
        self.streams.peer_max_total = p.streams_window;
        Ok(())
    }

    /// Whether any stream or datagram waits to be sent.
    pub(super) fn streams_want_to_send(&self) -> bool {
        self.streams.has_sendable() || self.datagrams.has_queued()
    }

    /// Writes the flow-control and stream control frames owed (§8.3,
    /// §15.8.3–§15.8.7), as long as they fit; returns whether it wrote
    /// any.
    pub(super) fn write_stream_controls(
        &mut self,
        now: Instant,
        limit: usize,
        out: &mut Vec<u8>,
        frames: &mut SentFrames,
    ) -> bool {
        if !self.streams.has_control() {
            return false; // The common case: nothing owed, nothing to walk.
        }
        let start = out.len();
        let fits = |out: &Vec<u8>| out.len() + MAX_CONTROL_LEN <= limit;
        if self.streams.max_streams_pending && fits(out) {
            Frame::MaxStreams(self.streams.local_max_streams).encode(out);
            frames.v2().controls.push(Control::MaxStreams);
            self.streams.max_streams_pending = false;
        }
        if self.streams.max_total_pending && fits(out) {
            let max = self
                .streams
                .max_total_update()
                .unwrap_or(self.streams.local_max_total)
                .max(self.streams.local_max_total);
            self.streams.local_max_total = max;
            Frame::MaxStreamsData(max).encode(out);
            frames.v2().controls.push(Control::MaxStreamsData);
            self.streams.max_total_pending = false;
        }
        for (&id, s) in self.streams.map.iter_mut() {
            // Each frame only if it fits; what does not waits for the next
            // packet.
            if s.max_data_pending && fits(out) {
                if s.credit == Credit::Connection && s.recv.max_data_update().is_some() {
                    // §8.3 auto-tuning: a new limit needed within two RTTs
                    // of the last one means the window, not the path,
                    // limits the sender.
                    let fast = self.last_window_update.is_some_and(|t| {
                        now.saturating_duration_since(t) < self.path.rtt.smoothed() * 2
                    });
                    if fast {
                        s.recv.grow_window(self.config.max_receive_window);
                    }
                    self.last_window_update = Some(now);
                }
                let max = s.recv.max_data_update().unwrap_or(s.recv.max_data());
                s.recv.on_max_data_sent(max);
                if s.credit == Credit::Connection {
                    // Version 1's encoding (§15.2).
                    Frame::MaxData(max).encode(out);
                    frames.max_data = true;
                } else {
                    Frame::MaxStreamData { id, max }.encode(out);
                    frames.v2().controls.push(Control::MaxStreamData(id));
                }
                s.max_data_pending = false;
            }
            if s.stop_pending.is_some() && fits(out) {
                if let Some(code) = s.stop_pending.take() {
                    Frame::StopSending { id, code }.encode(out);
                    frames.v2().controls.push(Control::Stop { id, code });
                }
            }
            if let (Some(Reset::Pending { code }), true) = (s.reset, fits(out)) {
                // The final size is what this side sent (data or SKIP):
                // bytes written and never sent are dropped, so a reset
                // never claims more of the peer's windows than data did
                // (§15.4, §15.8.6).
                Frame::ResetStream {
                    id,
                    code,
                    final_size: s.accounted,
                }
                .encode(out);
                frames.v2().controls.push(Control::Reset(id));
                s.reset = Some(Reset::Sent { code });
            }
            if !fits(out) {
                break;
            }
        }
        out.len() > start
    }

    /// Writes stream `id`'s SKIPs and data while they fit; returns
    /// whether it wrote anything, and sets `retransmitted` when it resent
    /// bytes.
    pub(super) fn write_stream(
        &mut self,
        id: u64,
        limit: usize,
        out: &mut Vec<u8>,
        frames: &mut SentFrames,
        retransmitted: &mut bool,
    ) -> bool {
        let Some(cap) = self
            .streams
            .map
            .get(&id)
            .map(|s| self.streams.shared_cap(s))
        else {
            return false;
        };
        let Some(s) = self.streams.map.get_mut(&id) else {
            return false;
        };
        let mut wrote = false;
        let mut used = s.accounted;
        while out.len() + MAX_CONTROL_LEN <= limit {
            let Some(k) = s.send.next_skip(cap) else {
                break;
            };
            Frame::Skip(SkipFrame {
                id,
                offset: k.offset,
                len: k.len,
                messages: k.messages,
            })
            .encode(out);
            frames.v2().controls.push(Control::Skip { id, skip: k });
            used = used.max(k.offset + k.len);
            wrote = true;
        }
        let frame = DataFrame::of(id);
        let header_len = frame.max_header_len();
        let frontier = s.send.sent_offset();
        let room_at_start = limit.saturating_sub(out.len());
        let mut resent = false;
        while let Some(room) = limit.checked_sub(out.len() + header_len) {
            let Some(chunk) = s.send.next_chunk_within(room, cap) else {
                break;
            };
            let end = chunk.offset + chunk.len as u64;
            frame.encode_header(chunk.offset, chunk.message_start, chunk.len, chunk.fin, out);
            s.send.copy_range(chunk.offset..end, out);
            s.send.on_chunk_sent(&chunk);
            if chunk.offset < frontier {
                *retransmitted = true;
                resent = true;
                self.stats.sent.stream_bytes_retransmitted += frontier.min(end) - chunk.offset;
            }
            frames.push_stream(frame, chunk.offset..end, chunk.fin);
            used = used.max(end);
            wrote = true;
            if chunk.len == 0 {
                break;
            }
        }
        // §8.4, §15.7: a thin ordered stream of reliable messages bundles
        // what is still unacknowledged if it fits in a quarter of the
        // room: a lost message of a small flow, alone or next to a bulk
        // one, is repaired by its next message, not a round trip later.
        let new_data = s.send.sent_offset() > frontier;
        if new_data && !resent && s.send.is_simple() {
            let room = (room_at_start / 4).min(limit.saturating_sub(out.len()));
            let max = room.saturating_sub(MAX_BUNDLED_RANGES * header_len) as u64;
            if let Some(ranges) = s.send.unacked_below(frontier, max, MAX_BUNDLED_RANGES) {
                for r in ranges {
                    let len = (r.end - r.start) as usize;
                    frame.encode_header(r.start, None, len, false, out);
                    s.send.copy_range(r.clone(), out);
                    self.stats.sent.stream_bytes_bundled += len as u64;
                    frames.push_stream(frame, r, false);
                }
            }
        }
        // §15.4: what the shared streams used of the shared limit.
        if s.credit == Credit::Shared && used > s.accounted {
            self.streams.sent_total += used - s.accounted;
            s.accounted = used;
        }
        wrote
    }

    /// Writes queued datagrams while they fit (§15.6); returns whether it
    /// wrote any.
    pub(super) fn write_datagrams(
        &mut self,
        limit: usize,
        out: &mut Vec<u8>,
        frames: &mut SentFrames,
    ) -> bool {
        let mut wrote = false;
        while let Some(d) = self.datagrams.pop_fitting(limit.saturating_sub(out.len())) {
            Frame::Datagram(&d).encode(out);
            frames.v2().datagrams += 1;
            self.stats.streams.datagrams_sent += 1;
            wrote = true;
        }
        wrote
    }

    /// §15.5: abandons the messages that can no longer arrive within their
    /// lifetime (one-way delay, estimated as half the smoothed RTT, ahead
    /// of the deadline), and drops datagrams the path no longer carries.
    pub(super) fn expire_messages(&mut self, now: Instant) {
        let lead = self.path.rtt.smoothed() / 2;
        let mut abandoned = 0;
        for s in self.streams.map.values_mut() {
            if s.reset.is_none() {
                abandoned += s.send.expire(now, lead);
            }
        }
        self.stats.streams.messages_abandoned += abandoned;
        if self.datagrams.has_queued() {
            if let Some(max) = self.max_datagram_payload() {
                self.stats.streams.datagrams_dropped_unsent += self.datagrams.drop_oversized(max);
            }
        }
    }

    /// The earliest message deadline (§15.5): when `expire_messages` next
    /// has work.
    pub(super) fn expiry_deadline(&self) -> Option<Instant> {
        if self.peer.is_none() || self.outcome.is_some() {
            return None;
        }
        let lead = self.path.rtt.smoothed() / 2;
        let d = self
            .streams
            .map
            .values()
            .filter(|s| s.reset.is_none())
            .filter_map(|s| s.send.next_deadline())
            .min()?;
        Some(d.checked_sub(lead).unwrap_or(d))
    }

    /// Applies one version-2 frame from the peer (§15.8).
    pub(super) fn on_stream_frame(&mut self, f: &Frame<'_>) -> Result<(), (TransportCode, String)> {
        match f {
            Frame::StreamParams(p) => self.on_stream_params(p)?,
            Frame::StreamN(st) => self.on_stream_data(st)?,
            Frame::MaxStreamData { id, max } => {
                if let Some(s) = self.streams.get_or_open(*id)? {
                    s.send.set_max_data(*max);
                }
            }
            Frame::MaxStreams(m) => {
                self.streams.peer_max_streams = self
                    .streams
                    .peer_max_streams
                    .max((*m).min(crate::config::MAX_STREAMS_LIMIT << 32));
            }
            Frame::MaxStreamsData(m) => {
                self.streams.peer_max_total = self.streams.peer_max_total.max(*m);
            }
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => {
                if *id == 0 {
                    return Err((
                        TransportCode::StreamState,
                        "the first stream cannot be reset".into(),
                    ));
                }
                let Some(s) = self.streams.get_or_open(*id)? else {
                    return Ok(());
                };
                if s.peer_reset.is_none() {
                    let before = s.recv.highest();
                    s.recv.on_reset(*final_size).map_err(stream_error)?;
                    s.peer_reset = Some(*code);
                    let delta = s.recv.highest() - before;
                    let credit = s.credit;
                    self.streams
                        .on_received(credit, delta)
                        .map_err(stream_error)?;
                    self.emit(Event::StreamReadable(StreamId(*id)));
                }
            }
            Frame::StopSending { id, code } => {
                if *id == 0 {
                    return Err((
                        TransportCode::StreamState,
                        "the first stream cannot be stopped".into(),
                    ));
                }
                let Some(s) = self.streams.get_or_open(*id)? else {
                    return Ok(());
                };
                if s.stopped.is_none() {
                    s.stopped = Some(*code);
                    if s.reset.is_none() && !s.send.is_fully_acked() {
                        s.reset = Some(Reset::Pending { code: *code });
                        self.stats.streams.reset += 1;
                    }
                    self.emit(Event::Writable);
                }
            }
            Frame::Skip(k) => {
                if let Some(s) = self.streams.get_or_open(k.id)? {
                    let before = s.recv.highest();
                    let new = s
                        .recv
                        .on_skip(k.offset, k.len, k.messages)
                        .map_err(stream_error)?;
                    let delta = s.recv.highest() - before;
                    let readable = s.recv.has_message() || s.recv.is_finished();
                    let credit = s.credit;
                    self.streams
                        .on_received(credit, delta)
                        .map_err(stream_error)?;
                    if new && readable {
                        self.emit(Event::StreamReadable(StreamId(k.id)));
                    }
                }
            }
            Frame::Datagram(d) => {
                let max = datagrams::Datagrams::local_max_payload(&self.config);
                if d.len() as u64 > max {
                    return Err((
                        TransportCode::ProtocolViolation,
                        format!("datagram of {} bytes, above the {max} announced", d.len()),
                    ));
                }
                if self.datagrams.on_received(d) {
                    self.stats.streams.datagrams_received += 1;
                    self.emit(Event::DatagramReceived);
                } else {
                    self.stats.streams.datagrams_dropped_received += 1;
                }
            }
            _ => {}
        }
        if self.streams.take_opened() {
            self.emit(Event::StreamOpened);
        }
        Ok(())
    }

    /// Bytes of a stream (§8.2, §15.3), from a STREAM_N frame or, for
    /// stream 0, a STREAM frame.
    pub(super) fn on_stream_data(
        &mut self,
        st: &StreamNFrame<'_>,
    ) -> Result<(), (TransportCode, String)> {
        let Some(s) = self.streams.get_or_open(st.id)? else {
            return Ok(());
        };
        if s.peer_reset.is_some() {
            return Ok(());
        }
        // Stream 0 is always ordered (§15.3).
        let message_start = st.message_start.filter(|_| s.credit == Credit::Shared);
        if message_start.is_some() {
            s.recv.set_unordered();
        }
        let before = s.recv.highest();
        let new = s
            .recv
            .on_frame_in(st.offset, message_start, st.data, st.fin)
            .map_err(stream_error)?;
        let delta = s.recv.highest() - before;
        let readable = s.recv.has_message() || s.recv.is_finished();
        let credit = s.credit;
        self.streams
            .on_received(credit, delta)
            .map_err(stream_error)?;
        if (new > 0 || st.fin) && readable {
            self.emit(Event::StreamReadable(StreamId(st.id)));
        }
        Ok(())
    }

    /// A packet carrying these stream frames was acknowledged.
    pub(super) fn on_streams_acked(&mut self, frames: &SentFrames) {
        if !frames.stream.is_empty() || frames.fin {
            let first = &mut self.streams.first_mut().send;
            first.on_acked(&frames.stream, frames.fin);
        }
        let Some(frames) = frames.v2.as_deref() else {
            return;
        };
        for st in &frames.streams {
            if let Some(s) = self.streams.map.get_mut(&st.id) {
                s.send.on_acked(std::slice::from_ref(&st.range), st.fin);
            }
        }
        for c in &frames.controls {
            match c {
                Control::Reset(id) => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        s.reset = Some(Reset::Acked);
                    }
                }
                Control::Skip { id, skip } => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        s.send.on_skip_acked(*skip);
                    }
                }
                _ => {}
            }
        }
        self.stats.streams.datagrams_acked += u64::from(frames.datagrams);
    }

    /// A packet carrying these stream frames was lost (or is probed):
    /// data and control frames go back in line; datagrams do not.
    pub(super) fn requeue_streams(&mut self, frames: &SentFrames) {
        if !frames.stream.is_empty() || frames.fin || frames.max_data {
            let first = self.streams.first_mut();
            first.send.on_lost(&frames.stream, frames.fin);
            first.max_data_pending |= frames.max_data;
        }
        let Some(frames) = frames.v2.as_deref() else {
            return;
        };
        for st in &frames.streams {
            if let Some(s) = self.streams.map.get_mut(&st.id) {
                if s.reset.is_none() {
                    s.send.on_lost(std::slice::from_ref(&st.range), st.fin);
                }
            }
        }
        for c in &frames.controls {
            match c {
                Control::MaxStreams => self.streams.max_streams_pending = true,
                Control::MaxStreamsData => self.streams.max_total_pending = true,
                Control::MaxStreamData(id) => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        s.max_data_pending = !s.recv.is_fin_received();
                    }
                }
                Control::Reset(id) => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        if let Some(Reset::Sent { code }) = s.reset {
                            s.reset = Some(Reset::Pending { code });
                        }
                    }
                }
                Control::Stop { id, code } => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        if s.peer_reset.is_none() && !s.recv.is_finished() {
                            s.stop_pending = Some(*code);
                        }
                    }
                }
                Control::Skip { id, skip } => {
                    if let Some(s) = self.streams.map.get_mut(id) {
                        if s.reset.is_none() {
                            s.send.on_skip_lost(*skip);
                        }
                    }
                }
            }
        }
    }
}

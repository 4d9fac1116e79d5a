//! The application's side of version 2 (PROTOCOL.md §15): opening,
//! accepting, writing, reading, finishing, resetting and stopping
//! streams, per-message reliability, priorities, and datagrams.
//!
//! Every stream, the first included (version 1's only stream, §8.1), goes
//! through the same calls, [`Connection::send_on`], [`Connection::recv_on`]
//! and the rest, named by its [`StreamId`]. What sets the first apart is
//! what it may do: its FIN is the graceful close, and it cannot be reset
//! or stopped (§15.9).

use super::send_stream::{Expiry, WriteError};
use super::streams::{Credit, Lookup, Reset};
use super::{Connection, Received, Reliability, SendError, StreamId, StreamInfo, StreamOptions};
use crate::error::VarInt;
use crate::wire::PacketType;
use bytes::Bytes;
use std::time::Instant;

/// Why a stream could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The connection speaks version 1 (the peer did not offer version 2),
    /// or the handshake has not completed.
    Unsupported,
    /// The peer's stream limit is reached: wait for a stream to close.
    Limit,
    /// The connection is closing or closed.
    Closed,
}

/// Why a stream could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// No such stream: neither side ever opened it (§15.2).
    UnknownStream,
    /// The first stream cannot be stopped (§15.8.7): its end is the
    /// connection's close.
    FirstStream,
    /// The peer reset the stream with this code; what it had not
    /// delivered is lost (§15.8.6).
    Reset {
        /// The peer application's code.
        code: u64,
    },
}

/// Why a datagram was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// The peer does not take datagrams (version 1, or it refused them).
    Unsupported,
    /// Larger than the path and the peer allow now.
    TooLarge {
        /// The datagram's length.
        len: usize,
        /// The largest payload that fits now.
        max: usize,
    },
    /// The handshake has not completed.
    NotConnected,
    /// The connection is closing or closed.
    Closed,
}

impl Connection {
    /// The connection's protocol version (§3.4): 2 once both sides speak
    /// it; 0 on a server before the first INITIAL.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Whether streams beyond the first and datagrams can be used: the
    /// handshake completed in version 2 (§15.1).
    pub fn supports_streams(&self) -> bool {
        self.version >= crate::wire::VERSION_2 && self.peer_streams.is_some()
    }

    /// Opens a stream to the peer (§15.2).
    pub fn open_stream(&mut self, opts: StreamOptions) -> Result<StreamId, OpenError> {
        if self.outcome.is_some() || self.streams.first().send.is_finished() {
            return Err(OpenError::Closed);
        }
        if !self.supports_streams() {
            return Err(OpenError::Unsupported);
        }
        let id = self.streams.open(opts).ok_or(OpenError::Limit)?;
        self.stats.streams.opened += 1;
        Ok(id)
    }

    /// The next stream the peer opened, in the order it opened them.
    pub fn accept_stream(&mut self) -> Option<StreamId> {
        let id = self.streams.accept()?;
        self.stats.streams.accepted += 1;
        Some(id)
    }

    /// Whether the peer will open no stream that [`Self::accept_stream`]
    /// has not returned yet: none is waiting, and the peer's stream 0 FIN
    /// has arrived (§15.9: it comes after every other stream's direction
    /// is over, so every stream the peer sends on is known by then), or
    /// the connection ended. An application waiting for streams stops
    /// there, instead of waiting for its own close.
    pub fn is_accept_done(&self) -> bool {
        !self.streams.has_waiting_accept()
            && (self.outcome.is_some() || self.streams.first().recv.is_fin_received())
    }

    /// Queues one message on stream `id` with the given reliability
    /// (§15.5). On the first stream too, once version 2 is in use.
    pub fn send_on(
        &mut self,
        now: Instant,
        id: StreamId,
        msg: Bytes,
        reliability: Reliability,
    ) -> Result<(), SendError> {
        if reliability != Reliability::Reliable && self.version < crate::wire::VERSION_2 {
            if self.outcome.is_some() {
                return Err(SendError::Closed);
            }
            if self.peer.is_none() {
                return Err(SendError::NotConnected);
            }
            // Version 1 has no SKIP: a message can only be reliable.
            return Err(SendError::Unsupported);
        }
        let expiry = match reliability {
            Reliability::Reliable => Expiry::default(),
            Reliability::Lifetime(d) => Expiry {
                deadline: Some(now + d),
                budget: None,
            },
            Reliability::Retransmits(n) => Expiry {
                deadline: None,
                budget: Some(n),
            },
        };
        self.write(id, msg, expiry)
    }

    /// Queues one message on stream `id`, given up as `expiry` says.
    pub(super) fn write(
        &mut self,
        id: StreamId,
        msg: Bytes,
        expiry: Expiry,
    ) -> Result<(), SendError> {
        if self.outcome.is_some() {
            return Err(SendError::Closed);
        }
        let Some(peer) = self.peer else {
            return Err(SendError::NotConnected);
        };
        let max = peer.max_message_size.min(usize::MAX as u64) as usize;
        if msg.len() > max {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let s = match self.streams.lookup(id) {
            Lookup::Live(s) => s,
            Lookup::Over => return Err(SendError::StreamFinished),
            Lookup::Never => return Err(SendError::UnknownStream),
        };
        if let Some(code) = s.stopped {
            return Err(SendError::Stopped { code });
        }
        if s.reset.is_some() {
            return Err(SendError::StreamFinished);
        }
        match s.send.write_with(msg, expiry) {
            Ok(()) => {
                self.stats.sent.messages += 1;
                Ok(())
            }
            Err(WriteError::Blocked) => Err(SendError::Blocked),
            // The first stream's FIN is the connection's close (§15.9).
            Err(WriteError::Finished) if s.credit == Credit::Connection => Err(SendError::Closed),
            Err(WriteError::Finished) => Err(SendError::StreamFinished),
        }
    }

    /// The next message or skip on stream `id`: `Ok(None)` when nothing
    /// is there now (see [`Self::is_stream_finished`] for the end), and
    /// always once the stream is over and forgotten (§15.2).
    pub fn recv_on(&mut self, id: StreamId) -> Result<Option<Received>, RecvError> {
        let s = match self.streams.lookup(id) {
            Lookup::Live(s) => s,
            Lookup::Over => return Ok(None),
            Lookup::Never => return Err(RecvError::UnknownStream),
        };
        if let Some(code) = s.peer_reset {
            return Err(RecvError::Reset { code });
        }
        let item = s.recv.pop_item();
        if s.recv.max_data_update().is_some() {
            s.max_data_pending = true;
        }
        if s.credit == Credit::Shared && self.streams.max_total_update().is_some() {
            self.streams.max_total_pending = true;
        }
        self.note_read_error(id);
        match &item {
            Some(Received::Message(m)) => {
                self.stats.received.messages += 1;
                self.stats.received.bytes_delivered += m.len() as u64;
            }
            Some(Received::Skipped { messages, .. }) => {
                self.stats.streams.messages_skipped += messages;
            }
            None => {}
        }
        self.streams.collect();
        Ok(item)
    }

    /// Whether the peer has acknowledged everything sent on stream `id` so
    /// far: every message (or the SKIP that gave it up, §15.5) and, once
    /// the stream is finished, its FIN (§15.9). `Err(Stopped)` if the peer
    /// stopped the stream, `Err(StreamFinished)` if this side reset it:
    /// what was not delivered then never will be. A stream over and
    /// forgotten (§15.2) was delivered. On stream 0, the FIN is the
    /// graceful close's.
    pub fn is_stream_delivered(&self, id: StreamId) -> Result<bool, SendError> {
        match self.streams.map.get(&id.0) {
            Some(s) => match (s.stopped, s.reset) {
                (Some(code), _) => Err(SendError::Stopped { code }),
                (None, Some(_)) => Err(SendError::StreamFinished),
                (None, None) => Ok(s.send.is_delivered()),
            },
            None if self.streams.was_opened(id) => Ok(true),
            None => Err(SendError::UnknownStream),
        }
    }

    /// Whether the peer finished stream `id` and every message was read
    /// (or the stream is over and forgotten).
    pub fn is_stream_finished(&self, id: StreamId) -> bool {
        match self.streams.map.get(&id.0) {
            Some(s) => s.recv.is_finished(),
            None => self.streams.was_opened(id),
        }
    }

    /// Ends stream `id` after what was written (FIN). Finishing the first
    /// stream is [`Self::close`].
    pub fn finish_stream(&mut self, id: StreamId) -> Result<(), SendError> {
        match self.streams.lookup(id) {
            // The first stream's FIN is the connection's close (§15.9).
            Lookup::Live(s) if s.credit == Credit::Connection => self.close(),
            Lookup::Live(s) => s.send.finish(),
            Lookup::Over => {}
            Lookup::Never => return Err(SendError::UnknownStream),
        }
        Ok(())
    }

    /// Abandons the sending half of stream `id` (§15.8.6): nothing more of
    /// it is sent or resent, and the peer's reader gets `code`. The first
    /// stream cannot be reset (abort the connection instead).
    pub fn reset_stream(&mut self, id: StreamId, code: VarInt) -> Result<(), SendError> {
        let s = match self.streams.lookup(id) {
            // §15.8.6: the first stream cannot be reset; abort instead.
            Lookup::Live(s) if s.credit == Credit::Connection => {
                return Err(SendError::FirstStream)
            }
            Lookup::Live(s) => s,
            Lookup::Over => return Ok(()), // Nothing is left to abandon.
            Lookup::Never => return Err(SendError::UnknownStream),
        };
        if s.reset.is_none() && !s.send.is_fully_acked() {
            s.reset = Some(Reset::Pending {
                code: code.into_inner(),
            });
            self.stats.streams.reset += 1;
        }
        Ok(())
    }

    /// Tells the peer that this side will not read stream `id` any more
    /// (§15.8.7): what arrives is discarded, and the peer resets its half.
    pub fn stop_stream(&mut self, id: StreamId, code: VarInt) -> Result<(), RecvError> {
        let s = match self.streams.lookup(id) {
            // §15.8.7: the first stream cannot be stopped.
            Lookup::Live(s) if s.credit == Credit::Connection => {
                return Err(RecvError::FirstStream)
            }
            Lookup::Live(s) => s,
            Lookup::Over => return Ok(()), // Everything was read already.
            Lookup::Never => return Err(RecvError::UnknownStream),
        };
        if s.peer_reset.is_none() && !s.recv.is_finished() {
            s.stop_pending = Some(code.into_inner());
        }
        Ok(())
    }

    /// What this side knows of stream `id`: how each direction delivers
    /// and our priority on it. `None` for a stream that never was, or is
    /// over.
    pub fn stream_info(&mut self, id: StreamId) -> Option<StreamInfo> {
        match self.streams.lookup(id) {
            Lookup::Live(s) => Some(StreamInfo {
                sending: s.send.delivery(),
                receiving: s.recv.delivery(),
                priority: s.priority,
            }),
            Lookup::Over | Lookup::Never => None,
        }
    }

    /// Sets the priority of stream `id` (higher goes first, §15.7).
    pub fn set_priority(&mut self, id: StreamId, priority: i8) -> Result<(), SendError> {
        match self.streams.lookup(id) {
            Lookup::Live(s) => s.priority = priority,
            Lookup::Over => {}
            Lookup::Never => return Err(SendError::UnknownStream),
        }
        Ok(())
    }

    /// Sets the priority datagrams are sent with, against streams (§15.7).
    pub fn set_datagram_priority(&mut self, priority: i8) {
        self.datagrams.priority = priority;
    }

    /// The largest datagram payload that can be sent now: the peer's limit
    /// and what fits one packet at the current datagram size (§15.6).
    /// `None` if datagrams cannot be sent on this connection.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        let peer = self.peer_streams?;
        if peer.max_datagram_payload == 0 || self.version < crate::wire::VERSION_2 {
            return None;
        }
        let room = self
            .path
            .max_datagram()
            .saturating_sub(PacketType::Data.header_len() + self.trailer_len(PacketType::Data))
            .saturating_sub(crate::wire::frame::MAX_DATAGRAM_HEADER_LEN);
        Some(room.min(peer.max_datagram_payload.min(usize::MAX as u64) as usize))
    }

    /// Queues one unreliable datagram (§15.6). A full queue drops its
    /// oldest datagram.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), DatagramError> {
        if self.outcome.is_some() {
            return Err(DatagramError::Closed);
        }
        if self.peer.is_none() {
            return Err(DatagramError::NotConnected);
        }
        let max = self
            .max_datagram_payload()
            .ok_or(DatagramError::Unsupported)?;
        if data.len() > max {
            return Err(DatagramError::TooLarge {
                len: data.len(),
                max,
            });
        }
        if self.datagrams.push(data) {
            self.stats.streams.datagrams_dropped_unsent += 1;
        }
        Ok(())
    }

    /// The next datagram received, if any.
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams.recv()
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported => write!(
                f,
                "streams need protocol version 2, which the peer did not offer"
            ),
            Self::Limit => write!(f, "the peer's stream limit is reached"),
            Self::Closed => write!(f, "the connection is closing or closed"),
        }
    }
}

impl std::error::Error for OpenError {}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownStream => write!(f, "no such stream"),
            Self::FirstStream => write!(
                f,
                "the first stream cannot be stopped: close or abort the connection"
            ),
            Self::Reset { code } => write!(f, "the peer reset the stream (code {code})"),
        }
    }
}

impl std::error::Error for RecvError {}

impl std::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported => write!(
                f,
                "the peer does not take datagrams (protocol version 1, or refused)"
            ),
            Self::TooLarge { len, max } => write!(
                f,
                "datagram of {len} bytes exceeds the {max} bytes the path and peer allow"
            ),
            Self::NotConnected => write!(f, "the handshake has not completed"),
            Self::Closed => write!(f, "the connection is closing or closed"),
        }
    }
}

impl std::error::Error for DatagramError {}

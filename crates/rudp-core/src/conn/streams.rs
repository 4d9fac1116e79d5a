//! Every stream of a connection (PROTOCOL.md §15): which exist, who
//! opened them, the limits on opening them and on the bytes they all
//! carry together, their priorities, and the control frames they owe.
//!
//! Stream 0, the connection's first stream and version 1's only one, is
//! one of them, held from the start and never forgotten. What sets it
//! apart is its flow control ([`Credit::Connection`]: MAX_DATA with an
//! auto-tuned window, outside the shared limit, §15.4), its encoding
//! (STREAM frames, §15.2) and what it may do: its FIN is the graceful
//! close (§15.9), and it cannot be reset or stopped (§15.8.6).

use super::recv_stream::{RecvStream, StreamError};
use super::send_stream::SendStream;
use super::Side;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A stream of a connection (§15.1): 0 is the first stream, which exists
/// from the start; the client opens even numbers, the server odd ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The connection's first stream: the only one of version 1.
    pub const FIRST: StreamId = StreamId(0);

    /// Which side opened it.
    pub fn initiator(self) -> Side {
        if self.0 % 2 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Its place among the streams its initiator opened, counting from 1
    /// (§15.2): what the stream limit bounds.
    pub fn ordinal(self) -> u64 {
        self.0.div_ceil(2)
    }

    fn from_ordinal(side: Side, ordinal: u64) -> Self {
        match side {
            Side::Client => StreamId(ordinal * 2),
            Side::Server => StreamId(ordinal * 2 - 1),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {}", self.0)
    }
}

/// How a stream hands messages to the receiving application (§15.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// In the order they were sent (the first stream's only mode).
    #[default]
    Ordered,
    /// Each as soon as it is whole, in any order.
    Unordered,
}

/// How hard the sender tries to deliver one message (§15.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reliability {
    /// Until it arrives (the default).
    #[default]
    Reliable,
    /// Until this long after `send`; then it is abandoned and the receiver
    /// told to skip it. Not (re)sent once it could not arrive in time.
    Lifetime(std::time::Duration),
    /// Abandoned once lost more than this many times (0: sent once).
    Retransmits(u32),
}

/// How a new stream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    delivery: Delivery,
    priority: i8,
}

impl StreamOptions {
    /// Ordered, priority 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers messages as soon as each is whole (§15.3): the same as
    /// `delivery(Delivery::Unordered)`.
    pub fn unordered(self) -> Self {
        self.delivery(Delivery::Unordered)
    }

    /// How the peer's application receives our messages (§15.3).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Higher goes first (§15.7); the first stream and datagrams have 0
    /// unless changed.
    pub fn priority(mut self, priority: i8) -> Self {
        self.priority = priority;
        self
    }
}

/// What this side knows of a stream (§15.3, §15.7), from
/// `Connection::stream_info`: for a stream it opened, what it asked for;
/// for one it accepted, also how the peer sends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// How the peer receives what we send: as opened; ordered on a
    /// stream the peer opened.
    pub sending: Delivery,
    /// How the peer sends what we receive: unordered once one of its
    /// frames said so (§15.3). Every frame of an unordered stream does, so
    /// an accepted stream shows its mode from the first.
    pub receiving: Delivery,
    /// The priority of what we send on it (§15.7). The peer's priorities
    /// are its own scheduling and never travel on the wire.
    pub priority: i8,
}

/// The sending half's end (§15.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reset {
    /// RESET_STREAM must be (re)sent.
    Pending {
        code: u64,
    },
    Sent {
        code: u64,
    },
    Acked,
}

/// Which flow control a stream is under (§15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credit {
    /// Stream 0: version 1's MAX_DATA, with a window that grows when the
    /// sender is window-limited (§8.3), outside the shared limit.
    Connection,
    /// Every other stream: MAX_STREAM_DATA at a fixed Stream Window, and
    /// the Streams Window that all of them share.
    Shared,
}

/// One stream: both directions, and what is owed to the peer about it.
#[derive(Debug)]
pub(super) struct Stream {
    pub send: SendStream,
    pub recv: RecvStream,
    pub credit: Credit,
    pub priority: i8,
    /// Set once the application (or a STOP_SENDING) reset the sending half.
    pub reset: Option<Reset>,
    /// The peer reset its sending half with this code.
    pub peer_reset: Option<u64>,
    /// The peer asked us to stop sending, with this code.
    pub stopped: Option<u64>,
    /// STOP_SENDING to send, with this code (the receiving half was
    /// stopped by the application).
    pub stop_pending: Option<u64>,
    /// Whether MAX_STREAM_DATA must be sent.
    pub max_data_pending: bool,
    /// The highest offset this stream's sending half has used (data or
    /// SKIP): what counts against the shared limit (§15.4).
    pub accounted: u64,
}

impl Stream {
    fn new(send: SendStream, recv: RecvStream, credit: Credit, priority: i8) -> Self {
        Stream {
            send,
            recv,
            credit,
            priority,
            reset: None,
            peer_reset: None,
            stopped: None,
            stop_pending: None,
            max_data_pending: false,
            accounted: 0,
        }
    }

    /// Whether our direction is over: everything sent, the FIN included,
    /// acknowledged, or a reset acknowledged (§15.9).
    fn is_send_done(&self) -> bool {
        match self.reset {
            Some(Reset::Acked) => true,
            Some(_) => false,
            None => self.send.is_fully_acked(),
        }
    }

    /// Whether both halves are over and nothing is owed to the peer: the
    /// stream can be forgotten. Stream 0 never is: the connection's
    /// graceful close is its end (§6.5).
    fn is_done(&self) -> bool {
        let recv_done = self.peer_reset.is_some() || self.recv.is_finished();
        self.credit == Credit::Shared
            && self.is_send_done()
            && recv_done
            && self.stop_pending.is_none()
            && !self.max_data_pending
    }
}

/// What [`Streams::lookup`] found.
pub(super) enum Lookup<'a> {
    Live(&'a mut Stream),
    /// Opened once, both halves since ended: reads answer "finished",
    /// and nothing more can be sent.
    Over,
    Never,
}

/// Every stream, the first included, and the limits on them (§15.2,
/// §15.4).
#[derive(Debug)]
pub(super) struct Streams {
    side: Side,
    /// Live streams by id; stream 0 from the start to the end.
    pub map: BTreeMap<u64, Stream>,
    /// Ordinals (§15.2) of the streams we opened so far.
    local_opened: u64,
    /// We may open streams up to this ordinal (the peer's MAX_STREAMS).
    pub peer_max_streams: u64,
    /// Ordinals of the peer's streams that exist or existed.
    peer_opened: u64,
    /// The peer may open streams up to this ordinal; advertised.
    pub local_max_streams: u64,
    /// The most streams the peer may have open at once (our setting).
    max_streams: u64,
    /// Peer-opened streams forgotten so far: each lets the peer open one more.
    peer_closed: u64,
    pub max_streams_pending: bool,
    /// Peer-opened streams the application has not accepted yet, by id
    /// (the order they opened in); a stream forgotten before it was
    /// accepted leaves it, so nothing is kept for streams that are over.
    accept_queue: BTreeSet<u64>,
    /// Set when the peer opened streams since the last `take_opened`.
    opened_new: bool,
    /// Shared limit (§15.4), sending: the peer's, and what we used of it.
    pub peer_max_total: u64,
    pub sent_total: u64,
    /// Shared limit, receiving: what we advertised, the window it grows
    /// by, and the highest offsets received over all streams (and of
    /// streams since forgotten).
    pub local_max_total: u64,
    total_window: u64,
    pub received_total: u64,
    /// Consumed bytes of streams since forgotten.
    retired_consumed: u64,
    pub max_total_pending: bool,
    /// Flow-control window of each new stream, ours and the peer's.
    stream_window: u64,
    pub peer_stream_window: u64,
    max_message: u64,
    send_buffer: u64,
    /// The stream served last, for round robin within a priority (§15.7).
    pub last_served: u64,
    /// The connection is closing gracefully: streams the peer opens from
    /// now on start with our direction finished (§15.9).
    closing: bool,
}

impl Streams {
    pub(super) fn new(side: Side, config: &crate::config::Config) -> Self {
        let first = Stream::new(
            SendStream::new(config.send_buffer),
            RecvStream::new(config.receive_window, config.max_message_size as u64),
            Credit::Connection,
            0,
        );
        Self {
            side,
            map: BTreeMap::from([(StreamId::FIRST.0, first)]),
            local_opened: 0,
            peer_max_streams: 0,
            peer_opened: 0,
            local_max_streams: config.max_streams,
            max_streams: config.max_streams,
            peer_closed: 0,
            max_streams_pending: false,
            accept_queue: BTreeSet::new(),
            opened_new: false,
            peer_max_total: 0,
            sent_total: 0,
            local_max_total: config.streams_receive_window,
            total_window: config.streams_receive_window,
            received_total: 0,
            retired_consumed: 0,
            max_total_pending: false,
            stream_window: config.stream_receive_window,
            peer_stream_window: 0,
            max_message: config.max_message_size as u64,
            send_buffer: config.send_buffer,
            last_served: 0,
            closing: false,
        }
    }

    fn new_stream(&self, priority: i8, delivery: Delivery) -> Stream {
        let mut send = SendStream::new(self.send_buffer);
        send.set_max_data(self.peer_stream_window);
        let recv = RecvStream::new(self.stream_window, self.max_message);
        if self.closing {
            send.finish();
        }
        if delivery == Delivery::Unordered {
            // The receiving half follows the peer's frames (§15.3).
            send.set_unordered();
        }
        Stream::new(send, recv, Credit::Shared, priority)
    }

    /// Opens a stream of ours, if the peer's limit allows (§15.2).
    pub(super) fn open(&mut self, opts: StreamOptions) -> Option<StreamId> {
        if self.local_opened >= self.peer_max_streams {
            return None;
        }
        self.local_opened += 1;
        let id = StreamId::from_ordinal(self.side, self.local_opened);
        let stream = self.new_stream(opts.priority, opts.delivery);
        self.map.insert(id.0, stream);
        Some(id)
    }

    /// Stream `id`, if it is live.
    pub(super) fn stream_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.map.get_mut(&id.0)
    }

    /// Stream `id` as the application names it: live, over and forgotten
    /// (both halves ended, §15.2), or never opened by either side.
    pub(super) fn lookup(&mut self, id: StreamId) -> Lookup<'_> {
        let opened = self.was_opened(id);
        match self.map.get_mut(&id.0) {
            Some(s) => Lookup::Live(s),
            None if opened => Lookup::Over,
            None => Lookup::Never,
        }
    }

    /// The next stream the peer opened that the application has not seen.
    pub(super) fn accept(&mut self) -> Option<StreamId> {
        self.accept_queue.pop_first().map(StreamId)
    }

    /// Whether a stream the peer opened waits for [`Self::accept`].
    pub(super) fn has_waiting_accept(&self) -> bool {
        !self.accept_queue.is_empty()
    }

    /// The stream a frame from the peer names, opening the peer's streams
    /// up to it if it is new (§15.2). `Ok(None)`: a stream since forgotten,
    /// whose late frames are ignored. Stream 0 has ordinal 0: it is always
    /// open.
    pub(super) fn get_or_open(
        &mut self,
        id: u64,
    ) -> Result<Option<&mut Stream>, (crate::error::TransportCode, String)> {
        use crate::error::TransportCode;
        let sid = StreamId(id);
        if sid.initiator() == self.side {
            if sid.ordinal() > self.local_opened {
                return Err((
                    TransportCode::StreamState,
                    format!("frame for {sid}, which this side never opened"),
                ));
            }
        } else if sid.ordinal() > self.peer_opened {
            if sid.ordinal() > self.local_max_streams {
                return Err((
                    TransportCode::StreamLimit,
                    format!(
                        "{sid} is beyond the limit of {} streams",
                        self.local_max_streams
                    ),
                ));
            }
            // Opening a stream opens the peer's lower-numbered ones too,
            // as in QUIC: frames may arrive out of order.
            while self.peer_opened < sid.ordinal() {
                self.peer_opened += 1;
                let new = StreamId::from_ordinal(self.side.other(), self.peer_opened);
                let stream = self.new_stream(0, Delivery::Ordered);
                self.map.insert(new.0, stream);
                self.accept_queue.insert(new.0);
                self.opened_new = true;
            }
        }
        Ok(self.map.get_mut(&id))
    }

    /// Whether `id` was opened, by either side (it may be over since).
    pub(super) fn was_opened(&self, id: StreamId) -> bool {
        let opened = if id.initiator() == self.side {
            self.local_opened
        } else {
            self.peer_opened
        };
        id.ordinal() <= opened
    }

    /// Whether the peer opened streams since the last call.
    pub(super) fn take_opened(&mut self) -> bool {
        std::mem::take(&mut self.opened_new)
    }

    /// The first stream (§15.2), which lives as long as the connection.
    pub(super) fn first(&self) -> &Stream {
        self.map
            .get(&StreamId::FIRST.0)
            .expect("stream 0 is never forgotten")
    }

    /// The first stream, to change.
    pub(super) fn first_mut(&mut self) -> &mut Stream {
        self.map
            .get_mut(&StreamId::FIRST.0)
            .expect("stream 0 is never forgotten")
    }

    /// Forgets the streams that are over; each of the peer's lets it open
    /// one more (MAX_STREAMS, §15.2).
    pub(super) fn collect(&mut self) {
        let done: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, s)| s.is_done())
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            if let Some(s) = self.map.remove(&id) {
                self.retired_consumed += s.recv.consumed_credit();
                self.accept_queue.remove(&id);
                if StreamId(id).initiator() != self.side {
                    self.peer_closed += 1;
                    self.local_max_streams = self.peer_closed + self.max_streams;
                    self.max_streams_pending = true;
                }
            }
        }
    }

    /// §15.4: the new shared limit to advertise, once the application has
    /// freed half the shared window.
    pub(super) fn max_total_update(&self) -> Option<u64> {
        let consumed: u64 = self.retired_consumed
            + self
                .map
                .values()
                .filter(|s| s.credit == Credit::Shared)
                .map(|s| s.recv.consumed_credit())
                .sum::<u64>();
        let candidate = consumed + self.total_window;
        (candidate.saturating_sub(self.local_max_total) >= self.total_window / 2)
            .then_some(candidate)
    }

    /// Counts `delta` more bytes received on a stream under `credit`
    /// (§15.4): only the shared streams' count against the shared limit.
    pub(super) fn on_received(&mut self, credit: Credit, delta: u64) -> Result<(), StreamError> {
        if credit == Credit::Connection {
            return Ok(());
        }
        self.received_total += delta;
        if self.received_total > self.local_max_total {
            return Err(StreamError::FlowControl {
                end: self.received_total,
                limit: self.local_max_total,
            });
        }
        Ok(())
    }

    /// How far stream `s` may go now under the shared limit (§15.4);
    /// stream 0 is outside it.
    pub(super) fn shared_cap(&self, s: &Stream) -> u64 {
        match s.credit {
            Credit::Connection => u64::MAX,
            Credit::Shared => s.accounted + self.peer_max_total.saturating_sub(self.sent_total),
        }
    }

    /// Whether stream `s` has something to send now: data, a FIN or a
    /// SKIP, within the shared limit. Exactly when the transmit loop would
    /// write a frame for it, so that nothing sends a PING for nothing.
    pub(super) fn sendable(&self, s: &Stream) -> bool {
        let cap = self.shared_cap(s);
        s.reset.is_none() && (s.send.has_skip(cap) || s.send.has_sendable_within(cap))
    }

    /// Whether any stream has something to send now.
    pub(super) fn has_sendable(&self) -> bool {
        self.map.values().any(|s| self.sendable(s))
    }

    /// Whether a control frame is owed (§15.8).
    pub(super) fn has_control(&self) -> bool {
        self.max_streams_pending
            || self.max_total_pending
            || self.map.values().any(|s| {
                s.max_data_pending
                    || s.stop_pending.is_some()
                    || matches!(s.reset, Some(Reset::Pending { .. }))
            })
    }

    /// Bytes written and not yet sent, over all streams.
    pub(super) fn unsent(&self) -> u64 {
        self.map.values().map(|s| s.send.unsent()).sum()
    }

    /// Bytes held, sent and unsent, over all streams.
    pub(super) fn send_buffered(&self) -> u64 {
        self.map.values().map(|s| s.send.buffered()).sum()
    }

    /// Bytes received and not yet read, over all streams.
    pub(super) fn recv_buffered(&self) -> u64 {
        self.map.values().map(|s| s.recv.buffered()).sum()
    }

    /// Streams that have something to send, by priority (highest first),
    /// round robin within a priority starting after the one served last
    /// (§15.7). Datagrams take part as `u64::MAX` when `datagram` gives
    /// their priority.
    pub(super) fn schedule(&self, datagram: Option<i8>) -> Vec<u64> {
        let mut ids: Vec<(i8, u64)> = self
            .map
            .iter()
            .filter(|(_, s)| self.sendable(s))
            .map(|(&id, s)| (s.priority, id))
            .collect();
        if let Some(p) = datagram {
            ids.push((p, u64::MAX));
        }
        let last = self.last_served;
        // Within one priority, ids after the last served come first.
        ids.sort_by_key(|&(p, id)| (std::cmp::Reverse(p), id <= last, id));
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether every stream, the first included, is over in both
    /// directions as the graceful close counts it (§6.5, §15.9): ours
    /// acknowledged with its FIN (or reset), the peer's received up to its
    /// FIN (or reset).
    pub(super) fn all_closed(&self) -> bool {
        self.map
            .values()
            .all(|s| s.is_send_done() && (s.peer_reset.is_some() || s.recv.is_fin_received()))
    }

    /// Whether this side's direction of every stream but the first is
    /// over: finished and acknowledged, or reset and acknowledged. Until
    /// then the first stream's FIN waits, so that a peer that has it knows
    /// of every stream this side will ever send on (§15.9).
    pub(super) fn all_sends_done(&self) -> bool {
        self.map
            .values()
            .all(|s| s.credit == Credit::Connection || s.is_send_done())
    }

    /// Finishes the sending half of every stream, the first included (the
    /// connection closes).
    pub(super) fn finish_all(&mut self) {
        self.closing = true;
        for s in self.map.values_mut() {
            s.send.finish();
        }
    }

    /// Frees every stream's reassembly memory (the connection failed).
    pub(super) fn release(&mut self) {
        for s in self.map.values_mut() {
            s.recv.release();
        }
    }

    /// Memory held for the streams: reassembly, and each opened stream's
    /// own state and set entries (§13).
    pub(super) fn memory(&self) -> usize {
        const PER_STREAM: usize = std::mem::size_of::<Stream>() + 64;
        // Stream 0's own state is part of every connection's fixed cost.
        let opened = self.map.len().saturating_sub(1);
        opened * PER_STREAM + self.map.values().map(|s| s.recv.memory()).sum::<usize>()
    }
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #22: streams the peer opened and that ended before the
    /// application accepted them used to leave their ids in the accept
    /// queue for the life of the connection (8.6 bytes each, 500,000
    /// streams). Now nothing of a stream that is over is kept.
    #[test]
    fn streams_over_before_they_were_accepted_leave_the_accept_queue() {
        let config = crate::config::Config::default();
        let mut streams = Streams::new(Side::Server, &config);
        for round in 0..1000u64 {
            // The peer opens 100 streams, then ends both halves of each.
            let first = round * 100 + 1;
            for ordinal in first..first + 100 {
                let id = StreamId::from_ordinal(Side::Client, ordinal);
                let s = streams
                    .get_or_open(id.0)
                    .expect("within the limit")
                    .expect("new");
                s.peer_reset = Some(0);
                s.reset = Some(Reset::Acked);
            }
            streams.collect();
            assert_eq!(streams.map.len(), 1, "stream 0 stays");
            assert!(streams.accept_queue.is_empty(), "round {round}");
        }
        assert_eq!(streams.accept(), None);
        assert_eq!(
            streams.local_max_streams, 100_100,
            "each lets one more open"
        );
    }

    #[test]
    fn streams_are_accepted_in_the_order_they_opened() {
        let config = crate::config::Config::default();
        let mut streams = Streams::new(Side::Server, &config);
        streams
            .get_or_open(StreamId::from_ordinal(Side::Client, 3).0)
            .expect("within the limit");
        let got: Vec<u64> = std::iter::from_fn(|| streams.accept().map(|id| id.0)).collect();
        assert_eq!(got, vec![2, 4, 6]);
    }
}

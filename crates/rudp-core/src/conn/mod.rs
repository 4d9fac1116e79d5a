//! One connection's protocol logic, without I/O (PROTOCOL.md §6–§9).
//!
//! A [`Connection`] is driven from outside. Its inputs are `handle_*`, its
//! outputs `poll_*`, and every call takes the current time. It never reads a
//! clock, sleeps or touches a socket, so tests can run it in virtual time.
//!
//! Call order, for whoever drives it (the [`crate::endpoint::Endpoint`] does):
//! 1. feed every datagram for this connection to [`Connection::handle_packet`]
//!    and, when the deadline from [`Connection::poll_timeout`] passes, call
//!    [`Connection::handle_timeout`];
//! 2. after any input (including `send`, `recv`, `close`), call
//!    [`Connection::poll_transmit`] until it returns `false`, sending each
//!    datagram it writes;
//! 3. drain [`Connection::poll_event`], then sleep until `poll_timeout`.
//!
//! Parts, one file each: [`ack`] (what we received), [`sent`] (what we sent,
//! loss detection), [`rtt`], [`congestion`], [`delivery`] (rate samples),
//! [`pacing`], [`send_stream`],
//! [`recv_stream`], [`stats`].

mod ack;
mod pacing;
mod recv_stream;
mod send_stream;
mod sent;
pub mod stats;
#[cfg(feature = "trace")]
pub mod trace;

use crate::config::Config;
use crate::congestion::delivery::DeliveryRate;
use crate::congestion::{self, Controller};
use crate::error::{ConnectionError, TransportCode, VarInt};
use crate::psk::{PacketKey, Psk, TAG_LEN};
use crate::rtt::{self, RttEstimator};
use crate::wire::frame::{self, encode_stream_header, MAX_STREAM_HEADER_LEN};
use crate::wire::packet::{append_checksum, LONG_HEADER_LEN};
use crate::wire::{
    AckFrame, CloseFrame, CloseKind, ConnectionId, Frame, HandshakeParams, Header, PacketType,
    Protection, CHECKSUM_LEN,
};
use ack::{AckTracker, Arrival};
use bytes::Bytes;
use pacing::Pacer;
use recv_stream::{RecvStream, StreamError};
use send_stream::{SendStream, WriteError};
pub use sent::MAX_ACK_ONLY_TRACKED;
use sent::{SentFrames, SentPacket, SentPackets};
#[cfg(feature = "trace")]
use serde_json::json;
pub use stats::Stats;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
#[cfg(feature = "trace")]
pub use trace::TraceEvent;
#[cfg(feature = "trace")]
use trace::Tracer;

/// Compiles its statements only with the `trace` feature: without it, no
/// trace code or JSON is built (docs/trace.md).
macro_rules! traced {
    ($($body:tt)*) => {
        #[cfg(feature = "trace")]
        {
            $($body)*
        }
    };
}

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opened the connection.
    Client,
    /// Accepted it.
    Server,
}

/// The connection state machine of PROTOCOL.md §6.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client: INITIAL sent, no ACCEPT yet. Server: ACCEPT sent, no DATA
    /// packet from the client yet.
    Handshake,
    /// Both sides know each other's connection ID and parameters.
    Established,
    /// Graceful close reported: our stream and its FIN are acknowledged and
    /// the peer's stream arrived up to its FIN. Still acknowledging the
    /// peer's retransmissions (its FIN may lack our ACK) until the idle
    /// timeout passes with nothing heard (§6.5): like TCP's TIME-WAIT, this
    /// outlasts any retransmission the peer can still make.
    Lingering,
    /// We sent CLOSE; we answer further packets with CLOSE until `until`.
    Closing {
        /// When the connection may be forgotten.
        until: Instant,
    },
    /// The peer sent CLOSE; we stay silent until `until`.
    Draining {
        /// When the connection may be forgotten.
        until: Instant,
    },
    /// Nothing left to do: the connection can be dropped.
    Closed,
}

/// Something the application may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// A message can be read with [`Connection::recv`], or the peer finished.
    Readable,
    /// Acknowledgements freed send-buffer space.
    Writable,
    /// The connection ended: `Ok` for a graceful close.
    Closed(Result<(), ConnectionError>),
}

/// Why [`Connection::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("the send buffer is full")]
    /// The send buffer is full; try again after `Writable`.
    Blocked,
    #[error("message of {len} bytes exceeds the peer's limit of {max} bytes")]
    /// Larger than the peer's Max Message Size.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The peer's limit.
        max: usize,
    },
    #[error("the handshake has not completed")]
    /// The handshake has not completed.
    NotConnected,
    #[error("the connection is closing or closed")]
    /// The connection is closing or closed.
    Closed,
}

/// Whether a server knows that the client really receives at the address
/// its packets come from (§6.7, §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    /// Not yet: the anti-amplification limit applies until the client's
    /// first DATA packet.
    Unvalidated,
    /// The client echoed a valid retry token from that address.
    Validated,
}

/// Packet numbers a receiver accepts lie within this distance of the
/// largest it has received (§4.2): enough for any window of packets in
/// flight, while a blind attacker who knows the CID still has to guess the
/// random starting number.
pub const PN_WINDOW: u64 = 1 << 24;
/// Each side starts numbering its packets at a random value below this
/// (§4.2).
pub const FIRST_PN_RANGE: u64 = 1 << 48;

/// The pre-shared-key packet keys of one connection (§3.7).
#[derive(Debug)]
struct Keys {
    psk: Psk,
    /// Key for the packets we send.
    seal: PacketKey,
    /// Key for the peer's packets, and the server CID it was derived for: a
    /// client learns that CID from the ACCEPT it is about to open.
    open: Option<(ConnectionId, PacketKey)>,
}

/// Where a packet's frames are, once its protection is checked.
enum Body {
    /// In the payload as received.
    Clear,
    /// In the buffer the sealed payload was opened into.
    Opened,
}

/// A CLOSE frame we must (re)send while closing.
#[derive(Debug, Clone)]
struct PendingClose {
    kind: CloseKind,
    code: u64,
    reason: Vec<u8>,
}

/// Probe packets sent when the probe timeout fires (RFC 9002 §6.2.4: "one or
/// two"; two make tail loss on a lossy link far less likely to need a
/// second, doubled timeout).
const PROBES_PER_PTO: u8 = 2;
/// Cap on PTO backoff doublings (keeps the multiplication in range).
const MAX_PTO_BACKOFF: u32 = 16;
/// The backed-off PTO is at most the idle timeout divided by this (§9.3).
const PROBES_PER_IDLE_TIMEOUT: u32 = 20;

/// The sans-IO state of one connection.
#[derive(Debug)]
pub struct Connection {
    side: Side,
    state: State,
    config: Arc<Config>,
    local_cid: ConnectionId,
    /// Zero until the client learns it from an ACCEPT.
    remote_cid: ConnectionId,
    peer: Option<HandshakeParams>,
    /// Server: the client has sent a DATA packet, so it has our ACCEPT.
    confirmed: bool,
    next_pn: u64,
    sent: SentPackets,
    largest_acked: Option<u64>,
    acks: AckTracker,
    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    /// Which controller `cc` is, for statistics.
    congestion_name: &'static str,
    delivery: DeliveryRate,
    pacer: Pacer,
    /// Set when pacing held back a packet: when it may go (§9.6).
    pacing_until: Option<Instant>,
    send: SendStream,
    recv: RecvStream,
    /// Time-threshold loss timer or probe timeout (RFC 9002 §6.2).
    loss_timer: Option<Instant>,
    loss_time: Option<Instant>,
    pto_count: u32,
    probes: u8,
    handshake_pending: bool,
    max_data_pending: bool,
    /// When the last new flow-control limit was sent (§8.3 auto-tuning).
    last_window_update: Option<Instant>,
    ping_pending: bool,
    close: Option<PendingClose>,
    close_send_pending: bool,
    /// CLOSING: packets received since we entered it, and the count at
    /// which the next one is answered with CLOSE (§6.6 rate limit).
    closing_received: u64,
    closing_next_reply: u64,
    /// Server: the handshake must be confirmed by then, however many
    /// INITIALs keep arriving (§6.2; issue #12 item 5).
    handshake_deadline: Option<Instant>,
    /// When an ACK last acknowledged something new, or when ack-eliciting
    /// packets went in flight with none before: a peer that leaves them
    /// unacknowledged for an idle timeout is timed out (§9.5).
    ack_progress: Instant,
    outcome: Option<Result<(), ConnectionError>>,
    events: VecDeque<Event>,
    stats: Stats,
    max_datagram: usize,
    idle_timeout: Duration,
    idle_deadline: Instant,
    eliciting_since_recv: bool,
    last_eliciting_sent: Option<Instant>,
    created: Instant,
    #[cfg(feature = "trace")]
    tracer: Option<Tracer>,
    /// Last values reported in a metrics event, to report only changes.
    #[cfg(feature = "trace")]
    last_metrics: (u64, u64, u64),
    /// Adaptive loss thresholds (§9.2): packets, and an index into
    /// `rtt::TIME_THRESHOLDS`.
    packet_threshold: u64,
    time_threshold: usize,
    /// Recently declared losses: packet number -> largest acknowledged when
    /// it was declared lost. An ACK for one of them reveals reordering.
    recently_lost: std::collections::BTreeMap<u64, u64>,
    /// Server, until the client's address is validated: bytes received from
    /// and sent to it, for the anti-amplification limit (§6.7).
    unvalidated: (u64, u64),
    address: Address,
    /// Our first packet number (§4.2): nothing below it can be acknowledged.
    first_pn: u64,
    keys: Option<Keys>,
    /// Client: the token a RETRY gave us, echoed in every later INITIAL.
    retry_token: Option<Vec<u8>>,
    /// Reused buffer for opened (decrypted) payloads.
    plain_buf: Vec<u8>,
}

/// §6.7: before validation a server sends at most this many times the bytes
/// it received.
const AMPLIFICATION_FACTOR: u64 = 3;
/// Smallest packet worth building under the amplification budget: header,
/// ACK, HANDSHAKE and a little data.
const MIN_BUDGETED_PACKET: u64 = 128;

/// Most ranges of unacknowledged data a thin-stream packet bundles (§8.4).
const MAX_BUNDLED_RANGES: usize = 8;

/// Declared losses remembered for spurious-loss detection.
const RECENTLY_LOST_KEPT: usize = 1024;

impl Connection {
    /// A client connection; its first `poll_transmit` writes the INITIAL.
    /// `first_pn` should be random, below [`FIRST_PN_RANGE`] (§4.2).
    pub fn client(
        now: Instant,
        config: Arc<Config>,
        local_cid: ConnectionId,
        first_pn: u64,
    ) -> Self {
        let keys = config.psk.as_ref().map(|psk| Keys {
            seal: psk.client_key(local_cid),
            open: None,
            psk: psk.clone(),
        });
        Self::new(
            now,
            Side::Client,
            config,
            (local_cid, ConnectionId(0)),
            first_pn,
            keys,
            Address::Validated,
        )
    }

    /// A server connection for a client that chose `client_cid`; feed it the
    /// INITIAL that announced it with [`Self::handle_packet`].
    pub fn server(
        now: Instant,
        config: Arc<Config>,
        (local_cid, client_cid): (ConnectionId, ConnectionId),
        first_pn: u64,
        address: Address,
    ) -> Self {
        let keys = config.psk.as_ref().map(|psk| Keys {
            seal: psk.server_key(client_cid, local_cid),
            open: Some((local_cid, psk.client_key(client_cid))),
            psk: psk.clone(),
        });
        Self::new(
            now,
            Side::Server,
            config,
            (local_cid, client_cid),
            first_pn,
            keys,
            address,
        )
    }

    fn new(
        now: Instant,
        side: Side,
        config: Arc<Config>,
        (local_cid, remote_cid): (ConnectionId, ConnectionId),
        first_pn: u64,
        keys: Option<Keys>,
        address: Address,
    ) -> Self {
        Self {
            side,
            state: State::Handshake,
            local_cid,
            remote_cid,
            peer: None,
            confirmed: false,
            next_pn: first_pn,
            sent: SentPackets::default(),
            largest_acked: None,
            acks: AckTracker::default(),
            rtt: RttEstimator::new(config.initial_rtt),
            cc: config.congestion.build(config.max_datagram_size as u64),
            congestion_name: config.congestion.name(),
            delivery: DeliveryRate::new(now),
            pacer: Pacer::new(now, config.max_datagram_size as u64),
            pacing_until: None,
            send: SendStream::new(config.send_buffer),
            recv: RecvStream::new(config.receive_window, config.max_message_size as u64),
            loss_timer: None,
            loss_time: None,
            pto_count: 0,
            probes: 0,
            handshake_pending: true,
            max_data_pending: false,
            last_window_update: None,
            ping_pending: false,
            close: None,
            close_send_pending: false,
            closing_received: 0,
            closing_next_reply: 1,
            handshake_deadline: (side == Side::Server).then(|| now + config.idle_timeout),
            ack_progress: now,
            outcome: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            max_datagram: config.max_datagram_size,
            idle_timeout: config.idle_timeout,
            idle_deadline: now + config.idle_timeout,
            eliciting_since_recv: false,
            last_eliciting_sent: None,
            created: now,
            #[cfg(feature = "trace")]
            tracer: None,
            #[cfg(feature = "trace")]
            last_metrics: (0, 0, 0),
            packet_threshold: sent::PACKET_THRESHOLD,
            time_threshold: 0,
            recently_lost: Default::default(),
            unvalidated: (0, 0),
            address,
            first_pn,
            keys,
            retry_token: None,
            plain_buf: Vec::new(),
            config,
        }
    }

    // ----- Tracing (docs/trace.md) ------------------------------------------

    #[cfg(feature = "trace")]
    /// Starts recording trace events; drain them with [`Self::poll_trace`].
    pub fn enable_trace(&mut self) {
        if self.tracer.is_none() {
            self.tracer = Some(Tracer::new(self.created));
        }
    }

    #[cfg(feature = "trace")]
    /// The next recorded trace event.
    pub fn poll_trace(&mut self) -> Option<TraceEvent> {
        self.tracer.as_mut()?.pop()
    }

    #[cfg(feature = "trace")]
    fn trace(
        &mut self,
        now: Instant,
        name: &'static str,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        if let Some(t) = self.tracer.as_mut() {
            t.event(now, name, data());
        }
    }

    fn set_state(&mut self, now: Instant, state: State) {
        if self.state != state {
            tracing::debug!(cid = %self.local_cid, from = ?self.state, to = ?state, "state");
            self.state = state;
            self.trace_state(now);
        }
    }

    #[cfg(not(feature = "trace"))]
    fn trace_state(&mut self, _now: Instant) {}

    #[cfg(not(feature = "trace"))]
    fn trace_metrics(&mut self, _now: Instant) {}

    #[cfg(feature = "trace")]
    fn trace_state(&mut self, now: Instant) {
        let state = self.state;
        self.trace(now, "connectivity:connection_state_updated", || {
            let name = match state {
                State::Handshake => "handshake",
                State::Established => "established",
                State::Lingering => "lingering",
                State::Closing { .. } => "closing",
                State::Draining { .. } => "draining",
                State::Closed => "closed",
            };
            json!({ "new": name })
        });
    }

    #[cfg(feature = "trace")]
    /// `recovery:metrics_updated` when RTT, window or bytes in flight moved.
    fn trace_metrics(&mut self, now: Instant) {
        if self.tracer.is_none() {
            return;
        }
        let m = (
            self.rtt.smoothed().as_micros() as u64,
            self.cc.window(),
            self.sent.bytes_in_flight(),
        );
        if m == self.last_metrics {
            return;
        }
        self.last_metrics = m;
        let (rtt, cc_window, in_flight) = (self.rtt.clone(), m.1, m.2);
        self.trace(now, "recovery:metrics_updated", || {
            json!({
                "smoothed_rtt": rtt.smoothed().as_secs_f64() * 1000.0,
                "min_rtt": rtt.min().as_secs_f64() * 1000.0,
                "latest_rtt": rtt.latest().as_secs_f64() * 1000.0,
                "rtt_variance": rtt.var().as_secs_f64() * 1000.0,
                "congestion_window": cc_window,
                "bytes_in_flight": in_flight,
                // False while the RTT fields are the initial guess (§9.1).
                "rtt_sampled": rtt.has_sample(),
            })
        });
    }

    // ----- Accessors -----------------------------------------------------

    /// Which end this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The state (§6.4).
    pub fn state(&self) -> State {
        self.state
    }

    /// This side's connection ID: the destination of the peer's packets.
    pub fn local_cid(&self) -> ConnectionId {
        self.local_cid
    }

    /// The peer's connection ID.
    pub fn remote_cid(&self) -> ConnectionId {
        self.remote_cid
    }

    /// The largest packet number received from the peer, if any.
    pub fn largest_received(&self) -> Option<u64> {
        self.acks.largest()
    }

    /// Whether the peer has proved it receives at its address (§6.2): for a
    /// server, the client sent a DATA packet, which names the CID only our
    /// ACCEPT told it (and, with a key, is sealed with it); for a client,
    /// an ACCEPT arrived.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Whether the handshake completed and the connection is usable.
    pub fn is_established(&self) -> bool {
        self.state == State::Established || self.peer.is_some() && self.state == State::Handshake
    }

    /// How the connection ended, once it has: `Ok` for a graceful close.
    pub fn outcome(&self) -> Option<&Result<(), ConnectionError>> {
        self.outcome.as_ref()
    }

    /// Whether the connection can be dropped.
    pub fn is_drained(&self) -> bool {
        self.state == State::Closed
    }

    /// Counters and current estimates.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.path.smoothed_rtt = self.rtt.smoothed();
        s.path.min_rtt = self.rtt.min();
        s.path.rtt_var = self.rtt.var();
        s.path.congestion = self.congestion_name;
        s.path.congestion_window = self.cc.window();
        s.path.pacing_rate = self.cc.pacing_rate(&self.rtt);
        s.path.bytes_in_flight = self.sent.bytes_in_flight();
        s.buffers.receive_buffered = self.recv.buffered();
        s.buffers.send_buffered = self.send.buffered();
        s.buffers.receive_window = self.recv.window();
        s.buffers.receive_memory = self.recv.memory() as u64;
        s.buffers.packets_tracked = self.sent.len() as u64;
        s
    }

    /// The server answered our INITIAL with a version negotiation packet that
    /// excludes our version (§3.5): the connection cannot be made.
    pub fn on_version_negotiation(&mut self, theirs: Vec<u8>) {
        if self.side == Side::Client && self.state == State::Handshake {
            self.finish(Err(ConnectionError::VersionMismatch {
                ours: crate::wire::VERSION,
                theirs,
            }));
            self.state = State::Closed;
            let at = self.created;
            self.trace_state(at);
        }
    }

    /// The current probe timeout, without backoff (§9.3). A process about to
    /// exit after a graceful close lingers for a few of these (§6.5).
    pub fn probe_timeout(&self) -> Duration {
        self.pto()
    }

    /// Counts a datagram that claimed to be ours but failed its checksum.
    pub fn on_corrupt_datagram(&mut self) {
        self.stats.received.corrupt_dropped += 1;
    }

    // ----- Application side ----------------------------------------------

    /// Queues one message (PROTOCOL.md §8.1).
    pub fn send(&mut self, msg: Bytes) -> Result<(), SendError> {
        if self.outcome.is_some() || self.send.is_finished() {
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
        match self.send.write(msg) {
            Ok(()) => {
                self.stats.sent.messages += 1;
                Ok(())
            }
            Err(WriteError::Blocked) => Err(SendError::Blocked),
            Err(WriteError::Finished) => Err(SendError::Closed),
        }
    }

    /// The next whole message from the peer, if one has arrived.
    pub fn recv(&mut self) -> Option<Bytes> {
        let msg = self.recv.pop()?;
        self.stats.received.messages += 1;
        self.stats.received.bytes_delivered += msg.len() as u64;
        if self.recv.max_data_update().is_some() {
            self.max_data_pending = true;
        }
        Some(msg)
    }

    /// Whether the peer finished its stream and every message was read:
    /// nothing more will arrive.
    pub fn is_recv_finished(&self) -> bool {
        self.recv.is_finished()
    }

    /// Graceful close (§6.5): everything queued is still delivered, then the
    /// stream ends. The connection ends once both sides have done this.
    pub fn close(&mut self) {
        if self.outcome.is_none() {
            self.send.finish();
        }
    }

    /// Abrupt close with an application error code (§6.6). Undelivered data
    /// is discarded on both sides.
    pub fn abort(&mut self, now: Instant, code: VarInt, reason: &str) {
        if self.outcome.is_some() {
            return;
        }
        self.start_closing(
            now,
            CloseKind::Application,
            code.into_inner(),
            reason,
            Err(ConnectionError::LocallyAborted { code }),
        );
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn emit(&mut self, e: Event) {
        if self.events.back() != Some(&e) {
            self.events.push_back(e);
        }
    }

    // ----- Timers ---------------------------------------------------------

    /// The earliest instant at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.amplification_blocked() {
            // Nothing can be sent until the client sends more (§6.7): only
            // its next packet or the idle timeout can change anything, and a
            // due ACK or probe must not keep waking us for nothing.
            return Some(self.idle_deadline);
        }
        match self.state {
            State::Closed => None,
            State::Closing { until } | State::Draining { until } => Some(until),
            State::Handshake | State::Established | State::Lingering => [
                Some(self.idle_deadline),
                self.loss_timer,
                self.acks.deadline(),
                self.keep_alive_deadline(),
                self.pacing_until,
                self.unconfirmed_deadline(),
                self.ack_progress_deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// Server, before the client's first DATA packet: when the handshake
    /// gives up (§6.2).
    fn unconfirmed_deadline(&self) -> Option<Instant> {
        self.handshake_deadline.filter(|_| !self.confirmed)
    }

    /// With ack-eliciting packets outstanding: when the peer, having
    /// acknowledged nothing new for an idle timeout, is declared gone even
    /// if it keeps sending (§9.5).
    fn ack_progress_deadline(&self) -> Option<Instant> {
        self.sent
            .has_eliciting_in_flight()
            .then(|| self.ack_progress + self.effective_idle_timeout())
    }

    fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.state != State::Established || self.send.is_finished() || self.ping_pending {
            return None;
        }
        let interval = self.config.keep_alive?.min(self.idle_timeout / 2);
        Some(self.last_eliciting_sent? + interval)
    }

    /// Runs every timer that has expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Closing { until } | State::Draining { until } => {
                if now >= until {
                    self.set_state(now, State::Closed);
                }
                return;
            }
            State::Handshake | State::Established | State::Lingering => {}
        }
        let unconfirmed = self.unconfirmed_deadline().is_some_and(|t| now >= t);
        let unacknowledged = self.ack_progress_deadline().is_some_and(|t| now >= t);
        if now >= self.idle_deadline || unconfirmed || unacknowledged {
            // §9.5: silent close; the peer will time out too. A lingering
            // connection already reported its graceful outcome.
            traced! {
                self.trace(now, "connectivity:idle_timeout", || json!({}));
            }
            self.finish(Err(ConnectionError::TimedOut(self.idle_timeout)));
            self.set_state(now, State::Closed);
            return;
        }
        if self.loss_timer.is_some_and(|t| now >= t) {
            self.on_loss_timer(now);
        }
        if self.pacing_until.is_some_and(|t| now >= t) {
            // The caller polls for transmits next; the pacer decides again.
            self.pacing_until = None;
        }
        if self.keep_alive_deadline().is_some_and(|t| now >= t) {
            traced! {
                self.trace(now, "rudp:keepalive", || json!({}));
            }
            self.ping_pending = true;
        }
    }

    fn pto(&self) -> Duration {
        // The peer delays ACKs only once the handshake is confirmed (§9.3).
        let ack_delay = match self.peer {
            Some(p) if self.confirmed => Duration::from_micros(p.max_ack_delay_micros),
            _ => Duration::ZERO,
        };
        self.rtt.pto_base() + ack_delay
    }

    /// RFC 9002 §6.2.1 SetLossDetectionTimer.
    fn set_loss_timer(&mut self) {
        if let Some(t) = self.loss_time {
            self.loss_timer = Some(t);
            return;
        }
        match self.sent.last_eliciting_sent() {
            Some(last) => {
                let pto = self.pto();
                let backed_off = pto * (1u32 << self.pto_count.min(MAX_PTO_BACKOFF));
                // §9.3: backoff stops at a twentieth of the idle timeout, so a
                // lossy but live path gets about twenty probes before the
                // idle timeout declares it dead.
                let cap = (self.effective_idle_timeout() / PROBES_PER_IDLE_TIMEOUT).max(pto);
                self.loss_timer = Some(last + backed_off.min(cap));
            }
            None => self.loss_timer = None,
        }
    }

    /// RFC 9002 §6.2.1 OnLossDetectionTimeout.
    fn on_loss_timer(&mut self, now: Instant) {
        let timer = if self.loss_time.is_some() {
            "time_threshold"
        } else {
            "pto"
        };
        let pto_count = self.pto_count;
        tracing::debug!(cid = %self.local_cid, timer, pto_count, "loss timer fired");
        traced! {
            self.trace(
                now,
                "recovery:loss_timer_expired",
                || json!({ "timer_type": timer, "pto_count": pto_count }),
            );
        }
        if self.loss_time.is_some() {
            self.detect_lost(now);
        } else {
            // Probe timeout: resend the oldest unacknowledged content in up to
            // two new packets, outside the congestion window (§9.3).
            self.stats.sent.probe_timeouts += 1;
            self.pto_count += 1;
            self.probes = PROBES_PER_PTO;
            if let Some(p) = self.sent.oldest_eliciting() {
                let frames = p.frames.clone();
                self.requeue(&frames);
            }
        }
        self.set_loss_timer();
    }

    // ----- Receiving ------------------------------------------------------

    /// Takes one packet addressed to this connection whose header the
    /// endpoint already checked (§10 says in which order).
    pub fn handle_packet(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        // §4.2: a number far from the largest received is forged or stale.
        if let Some(largest) = self.acks.largest() {
            if header.pn.abs_diff(largest) > PN_WINDOW {
                self.stats.received.out_of_window_dropped += 1;
                return;
            }
        }
        let wire_len = header.ty.header_len() + payload.len() + CHECKSUM_LEN;
        let mut plain = std::mem::take(&mut self.plain_buf);
        match self.unprotect(header, payload, &mut plain) {
            Some(Body::Clear) => self.on_payload(now, header, wire_len, payload),
            Some(Body::Opened) => self.on_payload(now, header, wire_len, &plain),
            None => self.stats.received.unauthenticated_dropped += 1,
        }
        self.plain_buf = plain;
    }

    /// §3.7: checks a packet's protection against ours and opens a sealed
    /// payload into `plain`. `None` if the packet must be dropped.
    fn unprotect(&mut self, header: &Header, payload: &[u8], plain: &mut Vec<u8>) -> Option<Body> {
        match (self.keys.is_some(), header.protection) {
            (false, Protection::Clear) => Some(Body::Clear),
            (false, Protection::Sealed) => None,
            (true, Protection::Sealed) => {
                let mut aad = Vec::with_capacity(LONG_HEADER_LEN);
                header.encode(&mut aad);
                let key = self.open_key(header)?;
                key.open(header.pn, &aad, payload, plain).ok()?;
                Some(Body::Opened)
            }
            (true, Protection::Clear) => {
                // The one clear packet a keyed client accepts: a server
                // without a key refusing it, so the user learns why.
                let refused = TransportCode::ConnectionRefused.to_u64();
                let refusal = self.side == Side::Client
                    && self.state == State::Handshake
                    && header.ty == PacketType::Accept
                    && matches!(frame::decode_all(payload).as_deref(),
                        Ok([Frame::Close(c)]) if c.kind == CloseKind::Transport && c.code == refused);
                refusal.then_some(Body::Clear)
            }
        }
    }

    /// The key that opens this packet of the peer's.
    fn open_key(&mut self, header: &Header) -> Option<&PacketKey> {
        let (side, local, remote) = (self.side, self.local_cid, self.remote_cid);
        let keys = self.keys.as_mut()?;
        if side == Side::Client {
            // The server's key is bound to its CID: the source CID of an
            // ACCEPT (zero in stateless replies), then the one we learned.
            let server_cid = header.scid.unwrap_or(remote);
            if keys.open.as_ref().is_none_or(|(c, _)| *c != server_cid) {
                keys.open = Some((server_cid, keys.psk.server_key(local, server_cid)));
            }
        }
        keys.open.as_ref().map(|(_, k)| k)
    }

    /// A RETRY answering our INITIAL (§6.8): the server wants its token back
    /// before it keeps any state. Accepted once, during the handshake.
    pub fn handle_retry(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        if self.side != Side::Client
            || self.state != State::Handshake
            || self.peer.is_some()
            || self.retry_token.is_some()
        {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        let mut plain = std::mem::take(&mut self.plain_buf);
        let body = match self.unprotect(header, payload, &mut plain) {
            Some(Body::Clear) => payload,
            Some(Body::Opened) => &plain[..],
            None => {
                self.stats.received.unauthenticated_dropped += 1;
                self.plain_buf = plain;
                return;
            }
        };
        let token = frame::decode_all(body).ok().and_then(|frames| {
            frames.iter().find_map(|f| match f {
                Frame::Token(t) => Some(t.to_vec()),
                _ => None,
            })
        });
        self.plain_buf = plain;
        let Some(token) = token else {
            self.stats.received.malformed_dropped += 1;
            return;
        };
        tracing::debug!(cid = %self.local_cid, "retry: echoing the server's token");
        traced! {
            self.trace(now, "rudp:retry", || json!({ "token_length": token.len() }));
        }
        self.retry_token = Some(token);
        self.stats.received.retries += 1;
        // The server kept nothing: our INITIALs so far will never be
        // acknowledged, and are not lost either. Start the handshake again
        // at once, with the token.
        let _ = self.sent.take_range(0..u64::MAX);
        self.loss_time = None;
        self.pto_count = 0;
        self.probes = 0;
        self.handshake_pending = true;
        self.idle_deadline = now + self.effective_idle_timeout();
        self.set_loss_timer();
    }

    fn on_payload(&mut self, now: Instant, header: &Header, wire_len: usize, payload: &[u8]) {
        if self.amplification_limited() {
            self.unvalidated.0 += wire_len as u64;
        }
        let frames = match frame::decode_all(payload) {
            Ok(f) => f,
            Err(_) => {
                self.stats.received.malformed_dropped += 1;
                return;
            }
        };
        if matches!(self.state, State::Closed | State::Draining { .. }) {
            return;
        }
        if !self.packet_type_allowed(header.ty) || !initial_frames_allowed(header.ty, &frames) {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        let eliciting = frames.iter().any(Frame::is_ack_eliciting);
        let max_ack_delay = self.config.max_ack_delay;
        if self
            .acks
            .on_packet(now, header.pn, eliciting, max_ack_delay)
            == Arrival::Duplicate
        {
            self.stats.received.duplicates_discarded += 1;
            traced! {
                let pn = header.pn;
                self.trace(
                    now,
                    "transport:packet_dropped",
                    || json!({ "header": { "packet_number": pn }, "trigger": "duplicate" }),
                );
            }
            return;
        }
        if let State::Closing { .. } = self.state {
            // §6.6: answer new packets with our CLOSE again, but only the
            // 1st, 2nd, 4th, 8th... since entering CLOSING (RFC 9000
            // §10.2.1), so a peer cannot turn us into a reflector.
            self.closing_received += 1;
            if self.closing_received >= self.closing_next_reply {
                self.closing_next_reply = self.closing_received.saturating_mul(2);
                self.close_send_pending = true;
            }
            return;
        }
        traced! {
            if let Some(t) = self.tracer.as_mut() {
                t.packet_frames(
                    now,
                    "transport:packet_received",
                    header,
                    wire_len,
                    &frames,
                    json!({}),
                );
            }
        }
        self.stats.received.packets += 1;
        self.stats.received.bytes += wire_len as u64;
        self.idle_deadline = now + self.effective_idle_timeout();
        self.eliciting_since_recv = false;

        // Handshake progress (§6.2). The client completes on an ACCEPT that
        // carries the server's parameters (every valid one does).
        let carries_params = frames.iter().any(|f| matches!(f, Frame::Handshake(_)));
        match (self.side, header.ty) {
            (Side::Client, PacketType::Accept)
                if self.state == State::Handshake && carries_params =>
            {
                self.remote_cid = header.scid.unwrap_or_default();
                self.confirmed = true;
                self.set_state(now, State::Established);
                self.handshake_pending = false;
                self.acks.request_immediate();
                self.emit(Event::Connected);
            }
            (Side::Server, PacketType::Data) if !self.confirmed => {
                self.confirmed = true;
                self.handshake_pending = false;
                if self.state == State::Handshake {
                    self.set_state(now, State::Established);
                    self.emit(Event::Connected);
                }
            }
            (_, PacketType::Initial | PacketType::Accept) => self.acks.request_immediate(),
            _ => {}
        }

        for f in &frames {
            if let Err((code, reason)) = self.on_frame(now, f) {
                self.start_closing(
                    now,
                    CloseKind::Transport,
                    code.to_u64(),
                    &reason,
                    Err(ConnectionError::LocalTransportClose {
                        code,
                        reason: reason.clone(),
                    }),
                );
                return;
            }
            if self.outcome.is_some() {
                return;
            }
        }
        self.check_graceful_end(now);
        // §7.2: a FIN, and anything that arrives once we are lingering, is
        // acknowledged at once, so closes complete without a delayed ACK
        // (and a process that exits after its close has sent it).
        let carries_fin = frames
            .iter()
            .any(|f| matches!(f, Frame::Stream(s) if s.fin));
        if carries_fin || self.state == State::Lingering {
            self.acks.request_immediate();
        }
    }

    fn packet_type_allowed(&self, ty: PacketType) -> bool {
        match (self.side, ty) {
            (Side::Server, PacketType::Accept) | (Side::Client, PacketType::Initial) => false,
            // RETRY is stateless and goes to `handle_retry`.
            (_, PacketType::Retry) => false,
            // A client that has no ACCEPT yet cannot use DATA packets: it does
            // not know the server's parameters.
            (Side::Client, PacketType::Data) => self.state != State::Handshake,
            _ => true,
        }
    }

    fn on_frame(&mut self, now: Instant, f: &Frame<'_>) -> Result<(), (TransportCode, String)> {
        match f {
            // The endpoint read the TOKEN before creating us (§6.8).
            Frame::Padding(_) | Frame::Ping | Frame::Token(_) => {}
            Frame::Ack(ack) => self.on_ack(now, ack)?,
            Frame::Handshake(p) => self.on_handshake(p)?,
            Frame::Stream(s) => {
                let new = self
                    .recv
                    .on_frame(s.offset, s.data, s.fin)
                    .map_err(stream_error)?;
                if (new > 0 || s.fin) && (self.recv.has_message() || self.recv.is_finished()) {
                    self.emit(Event::Readable);
                }
            }
            Frame::MaxData(max) => self.send.set_max_data(*max),
            Frame::Close(c) => {
                // §5.7: the reason is for people, and may be printed:
                // escape anything a terminal would act on.
                let reason = crate::text::printable_bytes(c.reason);
                let err = match c.kind {
                    CloseKind::Application => ConnectionError::PeerAborted {
                        // A decoded varint always fits.
                        code: VarInt::from_u64(c.code).unwrap_or(VarInt::MAX),
                        reason,
                    },
                    CloseKind::Transport => ConnectionError::PeerTransportClose {
                        code: TransportCode::from_u64(c.code),
                        reason,
                    },
                };
                let until = now + self.pto() * 3;
                self.set_state(now, State::Draining { until });
                self.finish(Err(err));
            }
        }
        Ok(())
    }

    fn on_handshake(&mut self, p: &HandshakeParams) -> Result<(), (TransportCode, String)> {
        if self.peer.is_some() {
            return Ok(()); // Repeated in every INITIAL/ACCEPT; the first counts.
        }
        if p.max_datagram_size < crate::config::MIN_DATAGRAM_SIZE as u64
            || p.max_message_size == 0
            || p.idle_timeout_millis == 0
            || p.max_ack_delay_micros > 1_000_000
            || p.initial_max_data < p.max_message_size.saturating_add(8)
        {
            return Err((
                TransportCode::InvalidParameters,
                format!("unacceptable transport parameters {p:?}"),
            ));
        }
        self.peer = Some(*p);
        self.max_datagram = self.max_datagram.min(p.max_datagram_size as usize);
        self.idle_timeout = self
            .idle_timeout
            .min(Duration::from_millis(p.idle_timeout_millis));
        self.send.set_max_data(p.initial_max_data);
        Ok(())
    }

    fn local_params(&self) -> HandshakeParams {
        HandshakeParams {
            max_ack_delay_micros: self.config.max_ack_delay.as_micros() as u64,
            idle_timeout_millis: self.config.idle_timeout.as_millis() as u64,
            initial_max_data: self.recv.max_data(),
            max_message_size: self.config.max_message_size as u64,
            max_datagram_size: self.config.max_datagram_size as u64,
        }
    }

    /// The idle timeout, never shorter than three probe timeouts (§9.5), so
    /// that a slow path is not mistaken for a dead one.
    fn effective_idle_timeout(&self) -> Duration {
        self.idle_timeout.max(self.pto() * 3)
    }

    /// RFC 9002 §6 OnAckReceived.
    fn on_ack(&mut self, now: Instant, ack: &AckFrame) -> Result<(), (TransportCode, String)> {
        let largest = ack.largest();
        let smallest = ack.ranges.last().map_or(largest, |r| r.start);
        if largest >= self.next_pn || smallest < self.first_pn {
            return Err((
                TransportCode::ProtocolViolation,
                format!("acknowledged packets {smallest}..={largest}, not all of which were sent"),
            ));
        }
        let mut newly = Vec::new();
        for r in &ack.ranges {
            newly.extend(self.sent.take_range(r.clone()));
            self.detect_spurious(now, r.clone());
        }
        if newly.is_empty() {
            return Ok(());
        }
        self.ack_progress = now;
        if self.largest_acked.is_none_or(|l| largest > l) {
            self.largest_acked = Some(largest);
        }
        // RTT sample: only from the largest acknowledged, if it is newly
        // acknowledged and ack-eliciting (RFC 9002 §5.1).
        if let Some((_, p)) = newly.iter().find(|(pn, _)| *pn == largest) {
            if p.ack_eliciting {
                let peer_max =
                    Duration::from_micros(self.peer.map_or(0, |p| p.max_ack_delay_micros));
                let delay = Duration::from_micros(ack.delay_micros).min(peer_max);
                self.rtt
                    .update(now.saturating_duration_since(p.time_sent), delay);
            }
        }
        // §8.3: the send buffer holds at least two congestion windows, so a
        // window as large as the path needs can be filled; not while the
        // peer's flow-control limit is what holds data back.
        if !self.send.is_flow_blocked() {
            let wanted = self.cc.window().saturating_mul(2);
            self.send
                .grow_capacity(wanted.min(self.config.max_send_buffer));
        }
        let before = self.send.buffered();
        for (_, p) in &newly {
            if p.in_flight {
                self.cc.on_ack(now, p.time_sent, p.size as u64, &self.rtt);
                self.delivery
                    .on_packet_acked(now, p.time_sent, p.size as u64, &p.delivery);
            }
            self.send.on_acked(&p.frames.stream, p.frames.fin);
        }
        if let Some(sample) = self
            .delivery
            .finish_ack(self.rtt.min(), self.sent.bytes_in_flight())
        {
            self.cc.on_ack_event(now, &sample, &self.rtt);
        }
        if self.send.buffered() < before {
            self.emit(Event::Writable);
        }
        self.detect_lost(now);
        self.pto_count = 0;
        self.set_loss_timer();
        self.trace_metrics(now);
        Ok(())
    }

    /// §9.2: an ACK for packets already declared lost shows the path
    /// reorders; widen the thresholds so it stops looking like loss.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    fn detect_spurious(&mut self, now: Instant, acked: std::ops::Range<u64>) {
        let spurious: Vec<(u64, u64)> = self
            .recently_lost
            .range(acked)
            .map(|(&pn, &largest)| (pn, largest))
            .collect();
        for (pn, largest_then) in spurious {
            self.recently_lost.remove(&pn);
            self.stats.sent.spurious_losses += 1;
            let distance = largest_then - pn + 1;
            // Beyond the cap, counting packets cannot tell loss from
            // reordering: leave it to the time threshold (§9.2).
            self.packet_threshold = if distance > sent::MAX_PACKET_THRESHOLD {
                u64::MAX
            } else {
                self.packet_threshold.max(distance)
            };
            self.time_threshold = (self.time_threshold + 1).min(rtt::TIME_THRESHOLDS.len() - 1);
            let packet_threshold = self.packet_threshold;
            tracing::debug!(cid = %self.local_cid, pn, packet_threshold, "spurious loss: the path reorders");
            traced! {
                let (num, den) = rtt::TIME_THRESHOLDS[self.time_threshold];
                self.trace(now, "rudp:spurious_loss", || {
                    json!({
                        "header": { "packet_number": pn },
                        "packet_threshold": packet_threshold,
                        "time_threshold": format!("{num}/{den}"),
                    })
                });
            }
        }
    }

    /// RFC 9002 §6.1 DetectAndRemoveLostPackets, then the congestion
    /// response (§7) and requeueing of what the lost packets carried.
    fn detect_lost(&mut self, now: Instant) {
        let Some(largest) = self.largest_acked else {
            return;
        };
        let loss_delay = self
            .rtt
            .loss_delay_times(rtt::TIME_THRESHOLDS[self.time_threshold]);
        let (lost, loss_time) =
            self.sent
                .detect_lost(now, largest, self.packet_threshold, loss_delay);
        self.loss_time = loss_time;
        if lost.is_empty() {
            return;
        }
        self.stats.sent.packets_lost += lost.len() as u64;
        for (pn, _) in &lost {
            self.recently_lost.insert(*pn, largest);
        }
        while self.recently_lost.len() > RECENTLY_LOST_KEPT {
            self.recently_lost.pop_first();
        }
        tracing::debug!(
            cid = %self.local_cid,
            lost = ?lost.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(),
            largest_acked = largest,
            "packets declared lost"
        );
        traced! {
            if self.tracer.is_some() {
                for (pn, _) in &lost {
                    let (pn, by_number) = (*pn, largest - *pn >= self.packet_threshold);
                    self.trace(now, "recovery:packet_lost", || {
                        let trigger = if by_number {
                            "reordering_threshold"
                        } else {
                            "time_threshold"
                        };
                        json!({ "header": { "packet_number": pn }, "trigger": trigger })
                    });
                }
            }
        }
        let mut newest_in_flight: Option<Instant> = None;
        let mut lost_bytes = 0;
        for (_, p) in &lost {
            self.requeue(&p.frames);
            if p.in_flight {
                newest_in_flight =
                    Some(newest_in_flight.map_or(p.time_sent, |t| t.max(p.time_sent)));
                lost_bytes += p.size as u64;
            }
        }
        if let Some(sent) = newest_in_flight {
            let persistent = self.rtt.has_sample()
                && sent::is_persistent_congestion(
                    &lost,
                    congestion::persistent_congestion_duration(self.pto()),
                );
            self.cc
                .on_congestion_event(now, sent, lost_bytes, persistent);
            self.trace_metrics(now);
        }
    }

    /// Puts what a lost (or probed) packet carried back in line to be sent.
    fn requeue(&mut self, frames: &SentFrames) {
        self.send.on_lost(&frames.stream, frames.fin);
        if frames.max_data {
            self.max_data_pending = true;
        }
        if frames.handshake && !self.confirmed {
            self.handshake_pending = true;
        }
    }

    /// §6.5: once our stream and its FIN are acknowledged (so the peer
    /// knows we finished) and the peer's stream has arrived up to its FIN,
    /// the close is graceful.
    fn check_graceful_end(&mut self, now: Instant) {
        if self.state == State::Established
            && self.send.is_fully_acked()
            && self.recv.is_fin_received()
        {
            self.set_state(now, State::Lingering);
            self.finish(Ok(()));
        }
    }

    fn finish(&mut self, outcome: Result<(), ConnectionError>) {
        if outcome.is_err() {
            // Nothing more will be reassembled: return the memory now, not
            // when the connection is finally dropped (§13).
            self.recv.release();
        }
        if self.outcome.is_none() {
            self.outcome = Some(outcome.clone());
            self.emit(Event::Closed(outcome));
        }
    }

    fn start_closing(
        &mut self,
        now: Instant,
        kind: CloseKind,
        code: u64,
        reason: &str,
        outcome: Result<(), ConnectionError>,
    ) {
        self.close = Some(PendingClose {
            kind,
            code,
            reason: reason.as_bytes().iter().take(256).copied().collect(),
        });
        self.close_send_pending = true;
        let until = now + self.pto() * 3;
        self.set_state(now, State::Closing { until });
        self.finish(outcome);
    }

    // ----- Sending --------------------------------------------------------

    /// Whether the §6.7 limit applies: a server that has not yet seen a DATA
    /// packet from the client, so cannot know the client's address is real.
    fn amplification_limited(&self) -> bool {
        self.side == Side::Server && !self.confirmed && self.address == Address::Unvalidated
    }

    /// Whether the §6.7 budget is too small for any packet.
    fn amplification_blocked(&self) -> bool {
        self.amplification_limited()
            && matches!(self.state, State::Handshake | State::Established)
            && self.amplification_budget() < MIN_BUDGETED_PACKET
    }

    /// Bytes the server may still send before validation.
    fn amplification_budget(&self) -> u64 {
        (self.unvalidated.0 * AMPLIFICATION_FACTOR).saturating_sub(self.unvalidated.1)
    }

    fn header(&self, ty: PacketType, pn: u64) -> Header {
        Header {
            ty,
            protection: if self.keys.is_some() {
                Protection::Sealed
            } else {
                Protection::Clear
            },
            dcid: self.remote_cid,
            scid: ty.has_source_cid().then_some(self.local_cid),
            pn,
        }
    }

    /// Seals the frames after the header with our key, if we have one,
    /// then appends the checksum: the last step of building a packet.
    fn finish_packet(&self, ty: PacketType, pn: u64, out: &mut Vec<u8>) {
        if let Some(keys) = &self.keys {
            keys.seal.seal(pn, ty.header_len(), out);
        }
        append_checksum(out);
    }

    /// Bytes after the frames: the AEAD tag, if any, and the checksum.
    fn trailer_len(&self) -> usize {
        CHECKSUM_LEN + if self.keys.is_some() { TAG_LEN } else { 0 }
    }

    fn packet_type(&self) -> PacketType {
        match self.side {
            Side::Client if self.state == State::Handshake => PacketType::Initial,
            Side::Server if !self.confirmed => PacketType::Accept,
            _ => PacketType::Data,
        }
    }

    /// Writes the next datagram to send into `out` (cleared first) and
    /// returns true, or returns false if there is nothing to send now.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self.state {
            State::Closed | State::Draining { .. } => return false,
            State::Closing { .. } => return self.write_close(now, out),
            _ => {}
        }
        let ty = self.packet_type();
        let probe = self.probes > 0;
        let in_flight = self.sent.bytes_in_flight();
        let cwnd_open = in_flight + self.max_datagram as u64 <= self.cc.window();
        let have_data = self.peer.is_some() && self.send.has_sendable();
        let have_eliciting = (ty != PacketType::Data && self.handshake_pending)
            || have_data
            || self.max_data_pending
            || self.ping_pending;
        if cwnd_open && !have_data && self.state == State::Established {
            // Room in the window and nothing to fill it: rate samples taken
            // now measure the application, not the path (§9.4.3).
            self.delivery.on_app_limited(in_flight);
        }
        // §9.6: pace what the window allows; probes are not paced.
        let mut paced_open = true;
        if cwnd_open && have_eliciting && !probe {
            let rate = self.cc.pacing_rate(&self.rtt);
            let mss = self.max_datagram as u64;
            self.pacing_until = self.pacer.delay(now, mss, rate, mss);
            paced_open = self.pacing_until.is_none();
        }
        let may_elicit = probe || (cwnd_open && paced_open);
        let want_eliciting = may_elicit && (have_eliciting || probe);
        if !want_eliciting && !self.acks.ack_due(now) {
            return false;
        }
        // §6.7: an unvalidated client gets at most three times what it sent.
        let mut max_len = self.max_datagram;
        if self.amplification_blocked() {
            return false;
        }
        if self.amplification_limited() {
            max_len = max_len.min(self.amplification_budget() as usize);
        }

        let pn = self.next_pn;
        self.next_pn += 1;
        self.header(ty, pn).encode(out);
        let limit = max_len - self.trailer_len();
        let mut frames = SentFrames::default();
        let mut eliciting = false;
        let mut retransmitted = false;
        let mut frontier = 0;

        if self.acks.has_news() {
            if let Some(ack) = self.acks.frame(now) {
                Frame::Ack(ack).encode(out);
                self.acks.on_ack_sent();
            }
        }
        if ty != PacketType::Data {
            // Every INITIAL and ACCEPT carries the parameters (§6.2), so any
            // one of them that arrives completes the handshake.
            Frame::Handshake(self.local_params()).encode(out);
            if let (PacketType::Initial, Some(token)) = (ty, &self.retry_token) {
                Frame::Token(token).encode(out);
            }
            frames.handshake = true;
            self.handshake_pending = false;
            eliciting = true;
        }
        if want_eliciting {
            if self.max_data_pending {
                if self.recv.max_data_update().is_some() {
                    // §8.3 auto-tuning: a new limit needed within two RTTs
                    // of the last one means the window, not the path,
                    // limits the sender.
                    let fast = self.last_window_update.is_some_and(|t| {
                        now.saturating_duration_since(t) < self.rtt.smoothed() * 2
                    });
                    if fast {
                        self.recv.grow_window(self.config.max_receive_window);
                    }
                    self.last_window_update = Some(now);
                }
                let max = self.recv.max_data_update().unwrap_or(self.recv.max_data());
                Frame::MaxData(max).encode(out);
                self.recv.on_max_data_sent(max);
                frames.max_data = true;
                self.max_data_pending = false;
                eliciting = true;
            }
            if self.peer.is_some() {
                // Data below the frontier was sent before: a retransmission.
                frontier = self.send.sent_offset();
                while let Some(room) = limit.checked_sub(out.len() + MAX_STREAM_HEADER_LEN) {
                    let Some(chunk) = self.send.next_chunk(room) else {
                        break;
                    };
                    let end = chunk.offset + chunk.len as u64;
                    encode_stream_header(chunk.offset, chunk.len, chunk.fin, out);
                    self.send.copy_range(chunk.offset..end, out);
                    self.send.on_chunk_sent(&chunk);
                    if chunk.offset < frontier {
                        retransmitted = true;
                        self.stats.sent.stream_bytes_retransmitted +=
                            frontier.min(end) - chunk.offset;
                    }
                    if chunk.len > 0 {
                        frames.stream.push(chunk.offset..end);
                    }
                    frames.fin |= chunk.fin;
                    eliciting = true;
                    if chunk.len == 0 {
                        break;
                    }
                }
            }
            let new_data = frames.stream.last().is_some_and(|r| r.end > frontier);
            if new_data && !retransmitted {
                self.bundle_unacked(frontier, limit, out, &mut frames);
            }
            if !eliciting {
                Frame::Ping.encode(out);
                frames.ping = true;
                eliciting = true;
            }
            self.ping_pending = false;
            self.probes = self.probes.saturating_sub(1);
        }
        if ty == PacketType::Initial && out.len() < limit {
            // §6.2: INITIALs fill the datagram, proving the path carries
            // full-size datagrams and bounding amplification.
            Frame::Padding(limit - out.len()).encode(out);
        }
        #[cfg(feature = "trace")]
        let traced = self
            .tracer
            .is_some()
            .then(|| out[ty.header_len()..].to_vec());
        self.finish_packet(ty, pn, out);

        self.stats.sent.packets += 1;
        self.stats.sent.bytes += out.len() as u64;
        if self.amplification_limited() {
            self.unvalidated.1 += out.len() as u64;
        }
        if retransmitted {
            self.stats.sent.packets_retransmitted += 1;
        }
        let in_flight = eliciting || ty == PacketType::Initial;
        if eliciting && !self.sent.has_eliciting_in_flight() {
            self.ack_progress = now;
        }
        let delivery = self.delivery.on_sent(now, self.sent.bytes_in_flight());
        if in_flight {
            self.pacer.on_sent(out.len() as u64);
        }
        self.sent.on_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: out.len(),
                ack_eliciting: eliciting,
                in_flight,
                frames,
                delivery,
            },
        );
        traced! {
            if let Some(frames) = traced {
                let header = self.header(ty, pn);
                if let Some(t) = self.tracer.as_mut() {
                    t.packet(
                        now,
                        "transport:packet_sent",
                        &header,
                        &frames,
                        out.len(),
                        json!({ "retransmission": retransmitted }),
                    );
                }
            }
        }
        self.trace_metrics(now);
        if eliciting {
            self.last_eliciting_sent = Some(now);
            if !self.eliciting_since_recv {
                // RFC 9000 §10.1: the idle timer restarts on the first
                // ack-eliciting packet sent after a receipt.
                self.eliciting_since_recv = true;
                self.idle_deadline = self.idle_deadline.max(now + self.effective_idle_timeout());
            }
            self.set_loss_timer();
        }
        true
    }

    /// §8.4 thin streams: a packet that carries new data and has room to
    /// spare also carries again every byte still unacknowledged, if all of
    /// them fit. A lone lost packet of a sparse flow (a request now and
    /// then) is then repaired by the next packet, without waiting for any
    /// loss timer. Bulk flows fill their packets and never bundle.
    fn bundle_unacked(
        &mut self,
        below: u64,
        limit: usize,
        out: &mut Vec<u8>,
        frames: &mut SentFrames,
    ) {
        let room = limit.saturating_sub(out.len());
        let max = room.saturating_sub(MAX_BUNDLED_RANGES * MAX_STREAM_HEADER_LEN) as u64;
        let Some(ranges) = self.send.unacked_below(below, max, MAX_BUNDLED_RANGES) else {
            return;
        };
        for r in ranges {
            let len = (r.end - r.start) as usize;
            encode_stream_header(r.start, len, false, out);
            self.send.copy_range(r.clone(), out);
            self.stats.sent.stream_bytes_bundled += len as u64;
            frames.stream.push(r);
        }
    }

    /// CLOSING: the CLOSE frame, once per reply due (§6.6), in the packet
    /// type the handshake state calls for: an INITIAL (padded, like every
    /// INITIAL, §6.2), an ACCEPT, or DATA.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    fn write_close(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.close_send_pending {
            return false;
        }
        let Some(close) = self.close.as_ref() else {
            return false;
        };
        self.close_send_pending = false;
        let ty = self.packet_type();
        let pn = self.next_pn;
        self.header(ty, pn).encode(out);
        Frame::Close(CloseFrame {
            kind: close.kind,
            code: close.code,
            reason: &close.reason,
        })
        .encode(out);
        if ty == PacketType::Initial {
            let limit = crate::config::MIN_DATAGRAM_SIZE - self.trailer_len();
            if out.len() < limit {
                Frame::Padding(limit - out.len()).encode(out);
            }
        }
        // §6.7: a CLOSE is held to the anti-amplification budget like every
        // other packet; one that does not fit is not sent.
        let len = (out.len() + self.trailer_len()) as u64;
        if self.amplification_limited() && len > self.amplification_budget() {
            out.clear();
            self.stats.sent.closes_suppressed += 1;
            return false;
        }
        self.next_pn += 1;
        #[cfg(feature = "trace")]
        let traced = self
            .tracer
            .is_some()
            .then(|| out[ty.header_len()..].to_vec());
        self.finish_packet(ty, pn, out);
        self.stats.sent.packets += 1;
        self.stats.sent.bytes += out.len() as u64;
        if self.amplification_limited() {
            self.unvalidated.1 += out.len() as u64;
        }
        traced! {
            if let Some(frames) = traced {
                let header = self.header(ty, pn);
                if let Some(t) = self.tracer.as_mut() {
                    let len = out.len();
                    t.packet(
                        now,
                        "transport:packet_sent",
                        &header,
                        &frames,
                        len,
                        json!({}),
                    );
                }
            }
        }
        true
    }
}

/// §3.3: an INITIAL carries HANDSHAKE (or, from a client closing during its
/// handshake, CLOSE), and only frames a client may send before it knows the
/// server's parameters: no STREAM or MAX_DATA.
pub(crate) fn initial_frames_allowed(ty: PacketType, frames: &[Frame<'_>]) -> bool {
    if ty != PacketType::Initial {
        return true;
    }
    let announced = frames
        .iter()
        .any(|f| matches!(f, Frame::Handshake(_) | Frame::Close(_)));
    announced
        && frames.iter().all(|f| {
            matches!(
                f,
                Frame::Padding(_)
                    | Frame::Ping
                    | Frame::Ack(_)
                    | Frame::Handshake(_)
                    | Frame::Token(_)
                    | Frame::Close(_)
            )
        })
}

fn stream_error(e: StreamError) -> (TransportCode, String) {
    match e {
        StreamError::FlowControl { end, limit } => (
            TransportCode::FlowControl,
            format!("stream data up to {end} exceeds the limit {limit}"),
        ),
        StreamError::FinalSize => (TransportCode::FinalSize, "stream end moved".into()),
        StreamError::MessageTooLarge { len, max } => (
            TransportCode::MessageTooLarge,
            format!("message of {len} bytes exceeds the limit of {max}"),
        ),
        StreamError::TruncatedMessage => (
            TransportCode::ProtocolViolation,
            "stream ended inside a message".into(),
        ),
        StreamError::TooFragmented { pieces, max } => (
            TransportCode::FlowControl,
            format!("out-of-order stream data in {pieces} pieces exceeds the limit of {max}"),
        ),
    }
}

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
//! Parts, one file each, each owning its fields: `ack` (what we received),
//! `sent` (what we sent), `recovery` (loss detection), `timers`, `path`
//! (RTT, controller, pacer), `migration` (path validation), `mtu` and
//! `black_hole` (datagram size), `streams`, `send_stream` and
//! `recv_stream` (messages into bytes and back), `datagrams`, `closing`
//! (the CLOSE owed), `keys` (packet keys and their ratchet), `secure`
//! (version 3's handshake), [`stats`].
//! `transmit`, `receive`, `stream_frames`, `stream_api` and `observe` hold
//! the `Connection` methods that tie the parts together; the files of
//! `recovery`, `timers`, `migration` and `secure` end with such methods
//! too. Every file names what it uses. RTT estimation and congestion
//! control are `crate::rtt` and [`crate::congestion`].

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

mod ack;
mod black_hole;
mod closing;
mod datagrams;
mod envelope;
mod keys;
mod migration;
mod mtu;
mod observe;
mod pacing;
mod path;
mod receive;
mod recovery;
mod recv_stream;
mod secure;
mod send_stream;
mod sent;
pub mod stats;
mod stream_api;
mod stream_frames;
mod streams;
mod timers;
#[cfg(feature = "trace")]
pub mod trace;
mod transmit;

use crate::config::Config;
use crate::error::{ConnectionError, TransportCode, VarInt};
use crate::wire::frame;
use crate::wire::{CloseKind, ConnectionId, Frame, HandshakeParams, PacketType};
use ack::AckTracker;
use keys::Keys;
use path::Path;
pub use recv_stream::Received;
use recv_stream::StreamError;
pub use sent::MAX_ACK_ONLY_TRACKED;
pub use stats::Stats;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use stream_api::{DatagramError, OpenError, RecvError};
pub use streams::{Delivery, Reliability, StreamId, StreamInfo, StreamOptions};
#[cfg(feature = "trace")]
pub use trace::TraceEvent;
#[cfg(feature = "trace")]
use trace::Tracer;

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
    /// Acknowledgements freed send-buffer space (on any stream), or the
    /// peer stopped a stream.
    Writable,
    /// The peer opened a stream: take it with
    /// [`Connection::accept_stream`] (§15.2).
    StreamOpened,
    /// A stream has a message, a skip or an end to read with
    /// [`Connection::recv_on`].
    StreamReadable(StreamId),
    /// A datagram arrived: [`Connection::recv_datagram`] (§15.6).
    DatagramReceived,
    /// The connection ended: `Ok` for a graceful close.
    Closed(Result<(), ConnectionError>),
}

/// Why [`Connection::send_on`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The send buffer is full; try again after `Writable`.
    Blocked,
    /// Larger than the peer's Max Message Size.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The peer's limit.
        max: usize,
    },
    /// The handshake has not completed.
    NotConnected,
    /// The connection is closing or closed.
    Closed,
    /// No such stream: neither side ever opened it (§15.2).
    UnknownStream,
    /// The first stream cannot be reset (§15.8.6): its end is the
    /// connection's close or abort.
    FirstStream,
    /// Partial reliability needs protocol version 2 (§15.5), which the
    /// peer did not offer.
    Unsupported,
    /// The stream was finished or reset; nothing more can be sent on it.
    StreamFinished,
    /// The peer asked us to stop sending on this stream, with this code
    /// (§15.8.7); the stream was reset.
    Stopped {
        /// The peer application's code.
        code: u64,
    },
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

/// Where a packet's frames are, once its protection is checked.
enum Body {
    /// In the payload as received.
    Clear,
    /// In the buffer the sealed payload was opened into.
    Opened,
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
    /// Where the peer is: every packet goes there, except path
    /// validation's (§6.9).
    remote: SocketAddr,
    /// Path validation: a new address being proven, responses owed (§6.9).
    migration: migration::Migration,
    peer: Option<HandshakeParams>,
    /// Server: the client has sent a DATA packet, so it has our ACCEPT.
    confirmed: bool,
    next_pn: u64,
    /// Loss recovery: what we sent, what was acknowledged, loss detection
    /// and the probe timeout (§9.2, §9.3).
    recovery: recovery::Recovery,
    acks: AckTracker,
    /// The deadlines of §6.2, §9.5 and §9.6 and what they count from.
    timers: timers::Timers,
    /// The network path: RTT, congestion control, pacing, datagram size
    /// and the anti-amplification budget (§9, §6.7).
    path: Path,
    /// The protocol version of this connection's packets: the client's
    /// offer until a version negotiation says otherwise; a server takes
    /// the first INITIAL's (0 until then). §3.5.
    version: u8,
    /// Every stream: the first, and version 2's others (§15).
    streams: streams::Streams,
    /// Version 2's unreliable datagrams (§15.6).
    datagrams: datagrams::Datagrams,
    /// The peer's version-2 limits, once known (§15.8.1).
    peer_streams: Option<frame::StreamParams>,
    handshake_pending: bool,
    /// When the last new flow-control limit was sent (§8.3 auto-tuning).
    last_window_update: Option<Instant>,
    ping_pending: bool,
    /// The CLOSE we owe the peer while closing (§6.6).
    closer: closing::Closer,
    /// A stream error found while the application read (a cut that had
    /// waited for entry budget, recv_stream.rs): the connection closes
    /// with it at the next `poll_transmit`, which knows the time.
    read_error: Option<StreamError>,
    outcome: Option<Result<(), ConnectionError>>,
    events: VecDeque<Event>,
    stats: Stats,
    created: Instant,
    #[cfg(feature = "trace")]
    tracer: Option<Tracer>,
    /// Last values reported in a metrics event, to report only changes.
    #[cfg(feature = "trace")]
    last_metrics: (u64, u64, u64),
    address: Address,
    /// Our first packet number (§4.2): nothing below it can be acknowledged.
    first_pn: u64,
    keys: Option<Keys>,
    /// Version 3's Noise handshake (§16).
    handshake: secure::Handshake,
    /// Version 3: the peer's static key (a client's: the key it expects).
    peer_key: Option<crate::noise::PublicKey>,
    /// Server, version 3: the first INITIAL's Noise payload (the client's
    /// parameters), applied with every INITIAL of the connection (§16.3).
    initial_plain: Option<Vec<u8>>,
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
    /// A client connection to `remote`; its first `poll_transmit` writes
    /// the INITIAL. `first_pn` should be random, below [`FIRST_PN_RANGE`]
    /// (§4.2); `path_secret` (32 bytes from a secure source) keys the path
    /// challenges (§6.9).
    pub fn client(
        now: Instant,
        config: Arc<Config>,
        local_cid: ConnectionId,
        first_pn: u64,
        remote: SocketAddr,
        path_secret: [u8; 32],
    ) -> Self {
        // Version 3 seals with the handshake's keys; the pre-shared key,
        // if any, is its second factor (§16.2).
        let keys = config
            .psk
            .as_ref()
            .filter(|_| config.version != crate::wire::VERSION_3)
            .map(|psk| Keys::client_psk(psk, local_cid));
        let mut c = Self::new(
            now,
            Side::Client,
            config,
            (local_cid, ConnectionId(0)),
            first_pn,
            keys,
            Address::Validated,
            (remote, path_secret),
        );
        if c.version == crate::wire::VERSION_3 {
            c.start_secure();
        }
        c
    }

    /// A server connection for a client at `remote` that chose
    /// `client_cid`; feed it the INITIAL that announced it with
    /// [`Self::handle_packet`]. `path_secret` as for [`Self::client`].
    pub fn server(
        now: Instant,
        config: Arc<Config>,
        (local_cid, client_cid): (ConnectionId, ConnectionId),
        first_pn: u64,
        address: Address,
        (remote, path_secret): (SocketAddr, [u8; 32]),
    ) -> Self {
        let keys = config
            .psk
            .as_ref()
            .map(|psk| Keys::server_psk(psk, client_cid, local_cid));
        Self::new(
            now,
            Side::Server,
            config,
            (local_cid, client_cid),
            first_pn,
            keys,
            address,
            (remote, path_secret),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        now: Instant,
        side: Side,
        config: Arc<Config>,
        (local_cid, remote_cid): (ConnectionId, ConnectionId),
        first_pn: u64,
        keys: Option<Keys>,
        address: Address,
        (remote, path_secret): (SocketAddr, [u8; 32]),
    ) -> Self {
        Self {
            side,
            state: State::Handshake,
            local_cid,
            remote_cid,
            remote,
            migration: migration::Migration::new(path_secret),
            peer: None,
            confirmed: false,
            next_pn: first_pn,
            recovery: recovery::Recovery::default(),
            acks: AckTracker::default(),
            timers: timers::Timers::new(now, side, config.idle_timeout),
            path: Path::new(now, &config),
            version: match side {
                Side::Client => config.version,
                Side::Server => 0,
            },
            streams: streams::Streams::new(side, &config),
            datagrams: datagrams::Datagrams::new(&config),
            peer_streams: None,
            handshake_pending: true,
            last_window_update: None,
            ping_pending: false,
            closer: closing::Closer::default(),
            read_error: None,
            outcome: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            created: now,
            #[cfg(feature = "trace")]
            tracer: None,
            #[cfg(feature = "trace")]
            last_metrics: (0, 0, 0),
            address,
            first_pn,
            keys,
            handshake: secure::Handshake::default(),
            peer_key: None,
            initial_plain: None,
            retry_token: None,
            plain_buf: Vec::new(),
            config,
        }
    }

    // ----- Lifecycle -----------------------------------------------------

    fn set_state(&mut self, now: Instant, state: State) {
        if self.state != state {
            debug_log!(cid = %self.local_cid, from = ?self.state, to = ?state, "state");
            self.state = state;
            self.trace_state(now);
        }
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

    /// The peer's address: where packets go. It changes when the peer moves
    /// and proves its new address (§6.9).
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
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
        s.path.smoothed_rtt = self.path.rtt.smoothed();
        s.path.min_rtt = self.path.rtt.min();
        s.path.rtt_var = self.path.rtt.var();
        s.path.congestion = self.path.congestion_name;
        s.path.congestion_window = self.path.cc.window();
        s.path.pacing_rate = self.path.cc.pacing_rate(&self.path.rtt);
        s.path.bytes_in_flight = self.recovery.sent.bytes_in_flight();
        s.path.max_datagram_size = self.path.max_datagram() as u64;
        s.buffers.receive_buffered = self.streams.recv_buffered();
        s.buffers.send_buffered = self.streams.send_buffered();
        s.buffers.receive_window = self.streams.first().recv.window();
        s.buffers.receive_memory = self.receive_memory() as u64;
        s.buffers.datagrams_queued = self.datagrams.queued() as u64;
        s.buffers.packets_tracked = self.recovery.sent.len() as u64;
        s
    }

    /// When the peer's last packet that passed every check (checksum,
    /// authentication, packet number) arrived; `None` before the first.
    /// What tells a peer that answers from one that is gone, for a caller
    /// deciding how long to wait for a close (`rudp::Endpoint::shutdown`).
    pub fn last_received(&self) -> Option<Instant> {
        self.timers.last_received
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

    /// Bytes this connection holds for what the peer sent and the
    /// application has not read: every stream's reassembly and ready
    /// messages, entries charged at their cost, stream state, and received
    /// datagrams (§13). What the endpoint's memory limit counts, with
    /// [`Self::send_buffered`].
    pub fn receive_memory(&self) -> usize {
        self.streams.memory() + self.datagrams.memory()
    }

    /// Bytes written by the application and not yet acknowledged, over
    /// every stream.
    pub fn send_buffered(&self) -> u64 {
        self.streams.send_buffered()
    }

    /// Keeps an error the read of stream `id` found, for
    /// [`Self::close_on_read_error`].
    pub(super) fn note_read_error(&mut self, id: StreamId) {
        let Some(s) = self.streams.stream_mut(id) else {
            return;
        };
        if let Some(e) = s.recv.take_error() {
            self.read_error.get_or_insert(e);
        }
    }

    /// Closes the connection with the error a read found, if any (§13).
    pub(super) fn close_on_read_error(&mut self, now: Instant) {
        if let Some(e) = self.read_error.take() {
            if self.outcome.is_none() {
                let (code, reason) = stream_error(e);
                self.close_for_violation(now, code, reason);
            }
        }
    }

    /// Closes the connection because the peer broke the protocol: CLOSE
    /// (transport) with `code` and `reason`, and the same as our outcome.
    pub(super) fn close_for_violation(
        &mut self,
        now: Instant,
        code: TransportCode,
        reason: String,
    ) {
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
    }

    /// Graceful close (§6.5): everything queued is still delivered, then the
    /// streams end (every stream, §15.2). The connection ends once both
    /// sides have done this.
    pub fn close(&mut self) {
        if self.outcome.is_none() {
            self.streams.finish_all();
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

    /// §6.5: once our stream and its FIN are acknowledged (so the peer
    /// knows we finished) and the peer's stream has arrived up to its FIN,
    /// the close is graceful; in version 2, every stream's (§15.9).
    fn check_graceful_end(&mut self, now: Instant) {
        if self.state == State::Established && self.streams.all_closed() {
            self.set_state(now, State::Lingering);
            self.finish(Ok(()));
        }
    }

    fn finish(&mut self, outcome: Result<(), ConnectionError>) {
        if outcome.is_err() {
            // Nothing more will be reassembled: return the memory now, not
            // when the connection is finally dropped (§13).
            self.streams.release();
            self.datagrams.release();
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
        self.closer.start(kind, code, reason);
        let until = now + self.pto() * 3;
        self.set_state(now, State::Closing { until });
        self.finish(outcome);
    }

    // ----- What both sides agreed, read by every part ------------------

    /// The probe timeout without backoff (§9.3): the RTT's PTO base, plus
    /// the peer's ACK delay once the handshake is confirmed.
    pub(super) fn pto(&self) -> Duration {
        // The peer delays ACKs only once the handshake is confirmed (§9.3).
        let ack_delay = match self.peer {
            Some(p) if self.confirmed => Duration::from_micros(p.max_ack_delay_micros),
            _ => Duration::ZERO,
        };
        self.path.rtt.pto_base() + ack_delay
    }

    /// Our HANDSHAKE parameters (§5.4): what INITIAL and ACCEPT announce,
    /// and version 3's Noise payload carries (§16.2).
    pub(super) fn local_params(&self) -> HandshakeParams {
        HandshakeParams {
            max_ack_delay_micros: self.config.max_ack_delay.as_micros() as u64,
            idle_timeout_millis: self.config.idle_timeout.as_millis() as u64,
            initial_max_data: self.streams.first().recv.max_data(),
            max_message_size: self.config.max_message_size as u64,
            max_datagram_size: self.config.max_datagram_size as u64,
        }
    }

    /// The idle timeout, never shorter than three probe timeouts (§9.5), so
    /// that a slow path is not mistaken for a dead one.
    pub(super) fn effective_idle_timeout(&self) -> Duration {
        self.timers.idle_timeout.max(self.pto() * 3)
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
    // Version 2's STREAM_PARAMETERS travels with HANDSHAKE (§15.8.1), and
    // version 3's CIPHERS in the same Noise payload (§16.5); the caller
    // has already dropped frames of later versions.
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
                    | Frame::StreamParams(_)
                    | Frame::Ciphers(_)
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
        StreamError::BadSkip => (
            TransportCode::ProtocolViolation,
            "a SKIP or message start that is not at a message boundary".into(),
        ),
        StreamError::TooFragmented { pieces, max } => (
            TransportCode::FlowControl,
            format!("out-of-order stream data in {pieces} pieces exceeds the limit of {max}"),
        ),
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blocked => write!(f, "the send buffer is full"),
            Self::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes exceeds the peer's limit of {max} bytes"
            ),
            Self::NotConnected => write!(f, "the handshake has not completed"),
            Self::Closed => write!(f, "the connection is closing or closed"),
            Self::UnknownStream => write!(f, "no such stream"),
            Self::FirstStream => write!(
                f,
                "the first stream cannot be reset: close or abort the connection"
            ),
            Self::Unsupported => write!(
                f,
                "messages that may expire need protocol version 2, which the peer did not offer"
            ),
            Self::StreamFinished => write!(f, "the stream was finished or reset"),
            Self::Stopped { code } => {
                write!(f, "the peer stopped the stream (code {code})")
            }
        }
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests;

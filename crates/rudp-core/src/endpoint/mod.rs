//! Many connections behind one socket, without I/O (PROTOCOL.md §3.2, §6.1,
//! §10).
//!
//! The endpoint checks each datagram once, routes it by destination
//! connection ID to its [`Connection`], creates server connections for new
//! INITIALs, answers unknown versions, and drops and counts everything else.
//! It schedules the connections' timers and transmissions so that a driver
//! only has to move datagrams and call `handle_timeout`:
//!
//! 1. `handle_datagram(now, from, bytes)` for each datagram received;
//!    `handle_timeout(now)` once `poll_timeout()` has passed;
//! 2. `poll_transmit(now, buf)` until it returns `None`, sending each
//!    datagram to the address it returns;
//! 3. `poll_event()` until `None`.

mod admission;

use crate::config::{Config, ConfigError, MIN_DATAGRAM_SIZE};
#[cfg(feature = "trace")]
use crate::conn::TraceEvent;
use crate::conn::{self, Address, Connection, Event};
use crate::error::TransportCode;
use crate::token::TokenKeys;
use crate::wire::frame::{self, Frame};
use crate::wire::packet::{self, decode};
use crate::wire::{
    CloseFrame, CloseKind, ConnectionId, Datagram, DecodeError, Header, PacketType, Protection,
    VersionNegotiation,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// Maps keyed by values this endpoint chose (connection IDs, handles),
/// looked up for every datagram: foldhash is several times faster than
/// SipHash, and a peer cannot choose the keys that are stored.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// Maps keyed by values a peer chooses (its address, its connection ID):
/// SipHash with random keys, so that no one can compute colliding keys and
/// turn every insertion into a scan.
type PeerKeyedMap<K, V> = HashMap<K, V, std::collections::hash_map::RandomState>;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Stateless replies use packet numbers from here up to 2^62 - 1; no
/// connection's numbers get near (they start below 2^48).
const STATELESS_PN_START: u64 = 1 << 61;

/// Names one connection of an endpoint. Never reused by that endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u64);

/// Endpoint settings. Always valid: make one with
/// [`EndpointConfig::builder`] (or [`EndpointConfig::to_builder`]); read
/// them with the methods of the same names.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub(crate) connection: Arc<Config>,
    pub(crate) max_connections: usize,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) max_pending_per_source: usize,
    pub(crate) max_connections_per_source: usize,
    pub(crate) max_memory: u64,
    pub(crate) retry: RetryPolicy,
    pub(crate) server_id: Option<u8>,
}

settings!(EndpointConfig, EndpointConfigBuilder, {
    /// Settings for every connection of this endpoint.
    connection: Arc<Config>,
    /// Open connections at most (ones that have not yet ended; those still
    /// lingering after a close do not count); further INITIALs are refused
    /// (§6.3). Default 100,000.
    max_connections: usize,
    /// Server connections whose client has not yet proved its address
    /// (§6.2) at most; beyond it an INITIAL without a token gets a RETRY,
    /// one with a token is refused (§6.3). Default 4096.
    max_pending_handshakes: usize,
    /// Of those, at most this many from one source (one IPv4 address or
    /// one IPv6 /64) without a token, and as many again with one (§6.3):
    /// one address cannot take the whole budget. Past the first share an
    /// INITIAL gets a RETRY, past the second a refusal. Default 32.
    max_pending_per_source: usize,
    /// Established server connections (the client proved its address and
    /// the connection has not ended) from one source (one IPv4 address or
    /// one IPv6 /64) at most; beyond it an INITIAL is refused (§6.3).
    /// Pending handshakes have their own limit above. Default 256.
    max_connections_per_source: usize,
    /// Bytes all connections together may hold for their peers (what
    /// [`Connection::receive_memory`] and [`Connection::send_buffered`]
    /// count); while they hold this much or more, new connections are
    /// refused (§6.3, §13). Default 1 GiB.
    max_memory: u64,
    /// When to make clients prove their address with a RETRY round trip
    /// before any state is kept for them (§6.8).
    retry: RetryPolicy,
    /// The first byte of every connection ID this endpoint chooses (§3.2),
    /// the other 56 bits staying random; `None` (the default) keeps all 64
    /// random. The peer writes our CID on every packet after the INITIAL,
    /// so whatever routes datagrams to endpoints (an `SO_REUSEPORT` group
    /// steered by the tokio crate's `steer_by_server_id`, or a load
    /// balancer, docs/deploy.md) can send a client that changed address
    /// (§6.9) to the endpoint that knows it.
    server_id: Option<u8>,
});

/// Makes an [`EndpointConfig`]; `build` checks the limits.
#[derive(Debug, Clone)]
pub struct EndpointConfigBuilder(EndpointConfig);

impl EndpointConfigBuilder {
    /// The connection settings, given by value.
    pub fn connection_config(self, config: Config) -> Self {
        self.connection(Arc::new(config))
    }

    /// The config, if every limit is at least 1.
    pub fn build(self) -> Result<EndpointConfig, ConfigError> {
        let c = &self.0;
        for (value, name) in [
            (c.max_connections, "max_connections"),
            (c.max_pending_handshakes, "max_pending_handshakes"),
            (c.max_pending_per_source, "max_pending_per_source"),
            (c.max_connections_per_source, "max_connections_per_source"),
            (c.max_memory.min(usize::MAX as u64) as usize, "max_memory"),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("{name} must be at least 1")));
            }
        }
        Ok(self.0)
    }
}

impl EndpointConfig {
    /// Default limits, with these connection settings.
    pub fn new(connection: Config) -> Self {
        Self {
            connection: Arc::new(connection),
            ..Self::default()
        }
    }

    /// A builder starting from the defaults.
    pub fn builder() -> EndpointConfigBuilder {
        EndpointConfigBuilder(EndpointConfig::default())
    }

    /// A builder starting from these settings.
    pub fn to_builder(&self) -> EndpointConfigBuilder {
        EndpointConfigBuilder(self.clone())
    }
}

/// Which side an endpoint plays: chosen by its constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Opens connections; INITIALs from unknown peers are dropped.
    Client,
    /// Accepts connections, and may open them too.
    Server,
}

/// When a server answers an INITIAL with a RETRY instead of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Never: every INITIAL that passes the limits creates a connection.
    Never,
    /// Once this many connections are in their handshake: a flood of
    /// INITIALs from forged addresses then costs no memory, while a quiet
    /// server saves its clients the extra round trip.
    WhenBusy {
        /// The threshold.
        pending_handshakes: usize,
    },
    /// For every INITIAL without a valid token.
    Always,
}

/// Default [`RetryPolicy::WhenBusy`] threshold.
pub const RETRY_WHEN_PENDING: usize = 64;
/// Default [`EndpointConfig::max_pending_per_source`].
pub const MAX_PENDING_PER_SOURCE: usize = 32;
/// Default [`EndpointConfig::max_connections_per_source`].
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 256;
/// Default [`EndpointConfig::max_memory`].
pub const MAX_MEMORY: u64 = 1 << 30;

/// The source a pending-handshake budget is counted for (§6.3): an IPv4
/// address, or the /64 prefix of an IPv6 one (what one host usually has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source(u128);

/// A source's pending handshakes are counted apart by whether the client
/// echoed a token: RETRY sheds the first kind at no cost, not the second.
type SourceKey = (Source, Address);

impl Source {
    fn of(addr: SocketAddr) -> Self {
        match addr.ip().to_canonical() {
            std::net::IpAddr::V4(v4) => Source(u32::from(v4) as u128),
            std::net::IpAddr::V6(v6) => Source((u128::from(v6) >> 64) << 64 | 1),
        }
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            connection: Arc::new(Config::default()),
            max_connections: 100_000,
            max_pending_handshakes: 4096,
            max_pending_per_source: MAX_PENDING_PER_SOURCE,
            max_connections_per_source: MAX_CONNECTIONS_PER_SOURCE,
            max_memory: MAX_MEMORY,
            retry: RetryPolicy::WhenBusy {
                pending_handshakes: RETRY_WHEN_PENDING,
            },
            server_id: None,
        }
    }
}

/// What the endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new server connection whose client has proved its address: it
    /// sent a DATA packet, which only a peer that received our ACCEPT can
    /// address (§6.2). Connections that never get this far are never
    /// announced.
    Incoming(ConnectionHandle),
    /// Something happened on a connection.
    Connection(ConnectionHandle, Event),
    /// The connection finished draining and was removed.
    Drained(ConnectionHandle),
}

crate::counters! {
    /// Datagrams the endpoint dropped before any connection saw them, and
    /// what it answered itself (§10).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[non_exhaustive]
    pub struct EndpointStats {
        /// Datagrams read from the socket.
        pub datagrams_received: u64,
        /// Without rudp's magic bytes: not a rudp datagram (§3).
        pub dropped_not_rudp: u64,
        /// The checksum failed (§3.6).
        pub dropped_corrupt: u64,
        /// The header did not parse (§3).
        pub dropped_malformed: u64,
        /// For no connection this endpoint has (INITIALs too, on an
        /// endpoint that does not accept connections).
        pub dropped_unknown_connection: u64,
        /// For a connection, from an address other than its peer's (§6.1).
        pub dropped_wrong_address: u64,
        /// INITIALs (first or later) shorter than 1200 bytes (§6.2).
        pub dropped_small_initial: u64,
        /// INITIALs that failed pre-shared-key authentication (§3.7).
        pub dropped_unauthenticated: u64,
        /// VERSION_NEGOTIATION packets sent (§3.5).
        pub version_negotiations_sent: u64,
        /// RETRY packets sent instead of creating a connection (§6.8).
        pub retries_sent: u64,
        /// INITIALs refused: connection or pending-handshake limit, key
        /// mismatch, bad token (§6.3).
        pub refused: u64,
        /// Of those, for a token that was invalid or expired.
        pub invalid_tokens: u64,
        /// Of those, because the source had its share of pending handshakes.
        pub refused_per_source: u64,
        /// Server connections created.
        pub connections_accepted: u64,
        /// Of those, created for a client that echoed a valid token.
        pub accepted_with_token: u64,
        /// Version 3: RETRYs carrying our key to clients that asked (§16.4).
        pub keys_sent: u64,
        /// Version 3: INITIALs refused for their client key (§16.4).
        pub refused_client_key: u64,
    }
}

#[derive(Debug)]
struct Entry {
    conn: Connection,
    /// Where the connection's first packet came from, for the per-source
    /// limit on pending handshakes (§6.3): fixed, though the peer may move
    /// later (§6.9).
    source: Source,
    /// Key in `by_initial`, for server connections.
    initial_key: Option<(SocketAddr, ConnectionId)>,
    /// Deadline currently in the timer heap for this connection.
    timer: Option<Instant>,
    /// Counted in `Endpoint::pending`: a server connection whose client has
    /// not proved its address, in any state (a CLOSING one too).
    pending: bool,
    /// Whether `EndpointEvent::Incoming` was emitted for it.
    announced: bool,
    /// Whether a token validated the client's address when it was created.
    address: Address,
    /// Whether the handle is in `dirty`.
    dirty: bool,
    /// What the connection held when last settled, in `Endpoint::memory`.
    memory: u64,
    /// Counted in `Endpoint::established_by_source`: a server connection
    /// whose client proved its address, not yet ended.
    established: bool,
}

/// The sans-IO endpoint.
#[derive(Debug)]
pub struct Endpoint {
    role: Role,
    config: EndpointConfig,
    rng: ChaCha8Rng,
    next_handle: u64,
    conns: Map<ConnectionHandle, Entry>,
    by_cid: Map<ConnectionId, ConnectionHandle>,
    by_initial: PeerKeyedMap<(SocketAddr, ConnectionId), ConnectionHandle>,
    /// Connections that may have something to send.
    dirty: VecDeque<ConnectionHandle>,
    timers: BinaryHeap<Reverse<(Instant, ConnectionHandle)>>,
    /// Replies sent without a connection (version negotiation, refusals).
    stateless: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<EndpointEvent>,
    stats: EndpointStats,
    /// Whether new connections record trace events (docs/trace.md).
    #[cfg(feature = "trace")]
    trace: bool,
    #[cfg(feature = "trace")]
    traces: VecDeque<(ConnectionId, TraceEvent)>,
    /// Server connections whose client has not proved its address (§6.3,
    /// §6.8), in all and per source.
    pending: usize,
    pending_by_source: PeerKeyedMap<SourceKey, usize>,
    /// Established server connections per source (§6.3).
    established_by_source: PeerKeyedMap<Source, usize>,
    /// Bytes every connection held when last settled (§13).
    memory: u64,
    tokens: TokenKeys,
    /// Reused buffer for opening sealed INITIALs.
    plain_buf: Vec<u8>,
    /// The version of the INITIAL being answered, for stateless replies
    /// (refusals and RETRY answer in the version they were asked in, §3.5).
    reply_version: u8,
}

/// A connection borrowed from its [`Endpoint`] with
/// [`Endpoint::connection_mut`]: dropping it schedules what changed.
#[derive(Debug)]
pub struct ConnectionMut<'a> {
    ep: &'a mut Endpoint,
    h: ConnectionHandle,
}

impl std::ops::Deref for ConnectionMut<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self.ep.conns.get(&self.h) {
            Some(e) => &e.conn,
            // Checked when the guard was made; nothing removes connections
            // while it borrows the endpoint.
            None => unreachable!("a ConnectionMut outlived its connection"),
        }
    }
}

impl std::ops::DerefMut for ConnectionMut<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self.ep.conns.get_mut(&self.h) {
            Some(e) => &mut e.conn,
            None => unreachable!("a ConnectionMut outlived its connection"),
        }
    }
}

impl Drop for ConnectionMut<'_> {
    fn drop(&mut self) {
        self.ep.touch(self.h);
    }
}

impl Endpoint {
    /// An endpoint whose connection IDs come from a generator seeded with
    /// `seed`; the tokio layer seeds it from the OS.
    /// A server endpoint: accepts connections (and may open them too).
    /// `seed` keys every random choice (connection IDs, packet numbers,
    /// token secrets): 32 bytes from a secure source.
    pub fn server(config: EndpointConfig, seed: [u8; 32]) -> Self {
        Self::new(Role::Server, config, seed)
    }

    /// A client endpoint: opens connections; INITIALs from unknown peers
    /// are dropped.
    pub fn client(config: EndpointConfig, seed: [u8; 32]) -> Self {
        Self::new(Role::Client, config, seed)
    }

    fn new(role: Role, config: EndpointConfig, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        // The retry-token secrets come from their own generator, keyed
        // from the seed once: nothing on the wire is drawn from it.
        let mut token_seed = [0u8; 32];
        rng.fill_bytes(&mut token_seed);
        let tokens = TokenKeys::new(token_seed);
        Self {
            role,
            config,
            rng,
            next_handle: 0,
            conns: Map::default(),
            by_cid: Map::default(),
            by_initial: PeerKeyedMap::default(),
            dirty: VecDeque::new(),
            timers: BinaryHeap::new(),
            stateless: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            #[cfg(feature = "trace")]
            trace: false,
            #[cfg(feature = "trace")]
            traces: VecDeque::new(),
            pending: 0,
            pending_by_source: PeerKeyedMap::default(),
            established_by_source: PeerKeyedMap::default(),
            memory: 0,
            tokens,
            plain_buf: Vec::new(),
            reply_version: crate::wire::VERSION_1,
        }
    }

    /// Server connections still in their handshake.
    pub fn pending_handshakes(&self) -> usize {
        self.pending
    }

    /// Bytes all connections held for their peers when last touched: what
    /// [`EndpointConfig::max_memory`] bounds.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    #[cfg(feature = "trace")]
    /// Records trace events for every connection created from now on;
    /// drain them with [`Self::poll_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    #[cfg(feature = "trace")]
    /// The next trace event, with the local connection ID it belongs to.
    pub fn poll_trace(&mut self) -> Option<(ConnectionId, TraceEvent)> {
        self.traces.pop_front()
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// What the endpoint dropped or answered itself.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The largest current probe timeout among the connections (zero when
    /// there are none): how long a peer may go quiet before it retransmits.
    pub fn max_probe_timeout(&self) -> std::time::Duration {
        self.conns
            .values()
            .map(|e| e.conn.probe_timeout())
            .max()
            .unwrap_or_default()
    }

    /// Starts a client connection to `remote`.
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> ConnectionHandle {
        self.connect_with(now, remote, self.config.connection.clone())
    }

    /// Like [`Self::connect`], with settings of its own for this connection
    /// (a [`Config`] is valid by construction).
    pub fn connect_with(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        config: Arc<Config>,
    ) -> ConnectionHandle {
        let cid = self.new_cid();
        let first_pn = self.rng.next_u64() % conn::FIRST_PN_RANGE;
        let conn = Connection::client(now, config, cid, first_pn, remote, self.path_secret());
        self.insert(conn, None, Address::Validated)
    }

    /// A fresh key for one connection's path challenges (§6.9).
    fn path_secret(&mut self) -> [u8; 32] {
        let mut secret = [0u8; 32];
        self.rng.fill_bytes(&mut secret);
        secret
    }

    fn new_cid(&mut self) -> ConnectionId {
        loop {
            let mut cid = ConnectionId(self.rng.next_u64());
            if let Some(id) = self.config.server_id {
                cid.0 = (u64::from(id) << 56) | (cid.0 & ((1 << 56) - 1));
            }
            if cid.0 != 0 && !self.by_cid.contains_key(&cid) {
                return cid;
            }
        }
    }

    fn insert(
        &mut self,
        #[cfg_attr(not(feature = "trace"), allow(unused_mut))] mut conn: Connection,
        initial_key: Option<(SocketAddr, ConnectionId)>,
        address: Address,
    ) -> ConnectionHandle {
        #[cfg(feature = "trace")]
        if self.trace {
            conn.enable_trace();
        }
        let h = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        self.by_cid.insert(conn.local_cid(), h);
        if let Some(k) = initial_key {
            self.by_initial.insert(k, h);
        }
        let source = Source::of(conn.remote_addr());
        self.conns.insert(
            h,
            Entry {
                source,
                conn,
                initial_key,
                timer: None,
                pending: false,
                announced: false,
                address,
                dirty: false,
                memory: 0,
                established: false,
            },
        );
        self.touch(h);
        h
    }

    /// A connection, to read its state.
    pub fn connection(&self, h: ConnectionHandle) -> Option<&Connection> {
        self.conns.get(&h).map(|e| &e.conn)
    }

    /// A connection to act on directly; whatever that changes is scheduled
    /// when the guard is dropped, as after [`Self::with_connection`].
    pub fn connection_mut(&mut self, h: ConnectionHandle) -> Option<ConnectionMut<'_>> {
        self.conns
            .contains_key(&h)
            .then_some(ConnectionMut { ep: self, h })
    }

    /// The peer address of a connection.
    pub fn remote(&self, h: ConnectionHandle) -> Option<SocketAddr> {
        self.conns.get(&h).map(|e| e.conn.remote_addr())
    }

    /// Runs `f` on a connection (to send, receive, close...), then schedules
    /// whatever that changed. `None` if the connection is gone.
    pub fn with_connection<R>(
        &mut self,
        h: ConnectionHandle,
        f: impl FnOnce(&mut Connection) -> R,
    ) -> Option<R> {
        let r = f(&mut self.conns.get_mut(&h)?.conn);
        self.touch(h);
        Some(r)
    }

    /// Processes one received datagram (§10 gives the order of checks).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_received += 1;
        let (header, payload) = match decode(data) {
            Ok(Datagram::Packet { header, payload }) => (header, payload),
            Ok(Datagram::VersionNegotiation(vn)) => return self.on_version_negotiation(from, vn),
            Err(DecodeError::UnsupportedVersion { scid, .. }) => {
                return self.answer_unknown_version(from, data.len(), scid)
            }
            Err(DecodeError::BadMagic) => {
                self.stats.dropped_not_rudp += 1;
                return;
            }
            Err(DecodeError::BadChecksum) => {
                self.stats.dropped_corrupt += 1;
                // Credit the connection the datagram claims, if the claim
                // is plausible (its address matches); the bytes are suspect.
                if let Some(h) = self.route_unverified(from, data) {
                    if let Some(e) = self.conns.get_mut(&h) {
                        e.conn.on_corrupt_datagram();
                    }
                }
                return;
            }
            Err(_) => {
                self.stats.dropped_malformed += 1;
                return;
            }
        };
        let h = match header.ty {
            PacketType::Initial if data.len() < MIN_DATAGRAM_SIZE => {
                // §6.2: every INITIAL fills a full datagram, retransmissions
                // too, so that no INITIAL can draw more than it costs.
                self.stats.dropped_small_initial += 1;
                return;
            }
            PacketType::Initial => {
                let key = (from, header.scid.unwrap_or_default());
                match self.by_initial.get(&key) {
                    Some(&h) => h,
                    // A new connection takes the frames admission opened
                    // and decoded: the INITIAL is not handled twice.
                    None => return self.accept(now, from, &header, payload, data.len()),
                }
            }
            PacketType::Accept | PacketType::Data | PacketType::Retry => {
                match self.by_cid.get(&header.dcid) {
                    Some(&h) => h,
                    None => {
                        self.stats.dropped_unknown_connection += 1;
                        return;
                    }
                }
            }
        };
        let Some(entry) = self.conns.get_mut(&h) else {
            return;
        };
        if !entry.conn.accepts_from(from) {
            // §10 step 7: before the handshake is confirmed a connection
            // does not move; a packet from elsewhere is spoofed or misrouted.
            self.stats.dropped_wrong_address += 1;
            return;
        }
        if header.ty == PacketType::Retry {
            entry.conn.handle_retry(now, &header, payload);
        } else {
            entry.conn.handle_packet(now, from, &header, payload);
        }
        self.touch(h);
    }

    fn route_unverified(&self, from: SocketAddr, data: &[u8]) -> Option<ConnectionHandle> {
        let dcid = ConnectionId(packet::read_u64(data, packet::field::DCID)?);
        let h = *self.by_cid.get(&dcid)?;
        (self.conns.get(&h)?.conn.remote_addr() == from).then_some(h)
    }

    /// A new INITIAL: create a server connection, if we accept and may
    /// (§6.2), after the checks of §6.3, §3.7 and §6.8 in that order. The
    /// INITIAL is opened and decoded once, here; the new connection takes
    /// its frames.
    fn accept(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        payload: &[u8],
        wire_len: usize,
    ) {
        if self.role != Role::Server {
            self.stats.dropped_unknown_connection += 1;
            return;
        }
        let client_cid = header.scid.unwrap_or_default();
        if client_cid.0 == 0 {
            // §3.2: CIDs are non-zero.
            self.stats.dropped_malformed += 1;
            return;
        }
        // §3.5: a version newer than this server is configured to speak is
        // answered like an unknown one, so the client can fall back.
        if header.version > self.config.connection.version {
            self.answer_unknown_version(from, MIN_DATAGRAM_SIZE, client_cid);
            return;
        }
        // Stateless replies answer in the INITIAL's version.
        self.reply_version = header.version;
        if header.version == crate::wire::VERSION_3 {
            return self.accept_secure(now, from, header, payload, wire_len);
        }
        let security = &self.config.connection.security;
        if self.config.connection.version == crate::wire::VERSION_3 && !security.allow_insecure {
            // §16.1: a secure server serves clear clients only if told to.
            self.refuse(
                from,
                client_cid,
                Protection::Clear,
                TransportCode::ConnectionRefused,
                "this server requires encryption: connect without --insecure (rudp's default), \
                 or ask its operator to allow clear clients (--allow-insecure)",
            );
            return;
        }
        // §3.7: the INITIAL's protection must match ours. A mismatch is
        // answered in clear, so that the user learns why; a wrong key is not
        // (the server cannot tell it from a forgery).
        let psk = self.config.connection.psk.clone();
        let mut plain = std::mem::take(&mut self.plain_buf);
        let body = match (&psk, header.protection) {
            (None, Protection::Clear) => Some(payload),
            (Some(psk), Protection::Sealed) => {
                match psk
                    .client_key(client_cid)
                    .open_packet(header, payload, &mut plain)
                {
                    Ok(()) => Some(&plain[..]),
                    Err(_) => {
                        self.stats.dropped_unauthenticated += 1;
                        None
                    }
                }
            }
            (Some(_), Protection::Clear) => {
                self.refuse(
                    from,
                    client_cid,
                    Protection::Clear,
                    TransportCode::ConnectionRefused,
                    "this server requires a pre-shared key",
                );
                None
            }
            (None, Protection::Sealed) => {
                self.refuse(
                    from,
                    client_cid,
                    Protection::Clear,
                    TransportCode::ConnectionRefused,
                    "this server has no pre-shared key; connect without one",
                );
                None
            }
        };
        // §3.3: the INITIAL that opens a connection carries HANDSHAKE, and
        // only frames an INITIAL may carry.
        let frames = body.map(|b| match frame::decode_all(b) {
            Ok(frames)
                if frames.iter().any(|f| matches!(f, Frame::Handshake(_)))
                    && conn::initial_frames_allowed(PacketType::Initial, &frames) =>
            {
                Some(frames)
            }
            _ => None,
        });
        match &frames {
            None => {}
            Some(None) => self.stats.dropped_malformed += 1,
            Some(Some(frames)) => {
                let token = frames.iter().find_map(|f| match f {
                    Frame::Token(t) => Some(*t),
                    _ => None,
                });
                let verdict = self.admission(now, from, client_cid, token);
                if let Some(address) = self.carry_out(now, from, client_cid, header, verdict) {
                    let (cid, first_pn) = self.new_identity();
                    let conn = Connection::server(
                        now,
                        self.config.connection.clone(),
                        (cid, client_cid),
                        first_pn,
                        address,
                        (from, self.path_secret()),
                    );
                    self.accepted(conn, (now, from, header, wire_len), frames, address);
                }
            }
        }
        drop(frames);
        self.plain_buf = plain;
    }

    /// A new server connection's CID and first packet number (§3.2, §4.2).
    fn new_identity(&mut self) -> (ConnectionId, u64) {
        let cid = self.new_cid();
        (cid, self.rng.next_u64() % conn::FIRST_PN_RANGE)
    }

    /// Keeps a server connection admission made, counts it, and hands it
    /// the frames of the INITIAL that made it.
    fn accepted(
        &mut self,
        conn: Connection,
        (now, from, header, wire_len): (Instant, SocketAddr, &Header, usize),
        frames: &[Frame<'_>],
        address: Address,
    ) {
        let client_cid = header.scid.unwrap_or_default();
        let h = self.insert(conn, Some((from, client_cid)), address);
        self.stats.connections_accepted += 1;
        if address == Address::Validated {
            self.stats.accepted_with_token += 1;
        }
        if let Some(e) = self.conns.get_mut(&h) {
            e.conn
                .handle_first_initial(now, from, header, wire_len, frames);
        }
        self.touch(h);
    }

    /// A version-3 INITIAL (§16.4): in clear, carrying IK's first message
    /// in a NOISE frame, or no NOISE frame when the client asks for our
    /// key. Admission (RETRY, limits) comes before the Diffie-Hellman, so
    /// a flood of spoofed INITIALs costs no X25519; the message is read
    /// once, here, and what it said is handed to the connection.
    fn accept_secure(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        payload: &[u8],
        wire_len: usize,
    ) {
        let client_cid = header.scid.unwrap_or_default();
        let frames = match frame::decode_all(payload) {
            Ok(f) if header.protection == Protection::Clear => f,
            _ => {
                self.stats.dropped_malformed += 1;
                return;
            }
        };
        // §16.3: only NOISE (at most one), TOKEN and PADDING in clear.
        let mut message = None;
        let mut token = None;
        for f in &frames {
            match f {
                Frame::Noise(m) if message.is_none() => message = Some(*m),
                Frame::Token(t) if token.is_none() => token = Some(*t),
                Frame::Padding(_) => {}
                _ => {
                    self.stats.dropped_malformed += 1;
                    return;
                }
            }
        }
        let Some(identity) = self.config.connection.security.identity.clone() else {
            self.refuse_handshake(
                from,
                client_cid,
                "this server has no key: connect with --insecure",
            );
            return;
        };
        let Some(message) = message else {
            self.send_key(from, client_cid, identity.public().0, None);
            return;
        };
        let verdict = self.admission(now, from, client_cid, token);
        let Some(address) = self.carry_out(now, from, client_cid, header, verdict) else {
            return;
        };
        let prologue = crate::noise::prologue(
            crate::wire::VERSION_3,
            &[crate::wire::VERSION_3],
            client_cid,
        );
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let inputs = crate::noise::HandshakeInputs {
            prologue: &prologue,
            psk: self
                .config
                .connection
                .psk
                .as_ref()
                .map(crate::psk::Psk::noise_key),
            seed,
            fixed_ephemeral: None,
        };
        let Ok(responder) = crate::noise::Responder::read(&identity, &inputs, message) else {
            // Written to another key than ours, or a forgery: the two look
            // alike. Our public key, in a stateless RETRY smaller than the
            // INITIAL, lets a client that expected another key say so at
            // once instead of timing out; it reveals nothing a key request
            // would not (§16.4).
            self.stats.dropped_unauthenticated += 1;
            let unread = message.get(..32).and_then(|e| e.try_into().ok());
            self.send_key(from, client_cid, identity.public().0, unread);
            return;
        };
        if let Some(policy) = &self.config.connection.security.clients {
            if let Err(reason) = policy.admit(&responder.client()) {
                self.stats.refused_client_key += 1;
                self.refuse_handshake(from, client_cid, &reason);
                return;
            }
        }
        // The Noise payload holds the client's parameters: the frames of
        // this INITIAL and of every INITIAL of the connection (§16.3),
        // decoded here once and handed to the connection.
        let payload = responder.payload().to_vec();
        let Ok(params) = frame::decode_all(&payload) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        // §16.5: the client's first allowed packet cipher.
        let allowed = &self.config.connection.security.packet_ciphers;
        let offered = params.iter().find_map(|f| match f {
            Frame::Ciphers(ids) => Some(*ids),
            _ => None,
        });
        let chosen = crate::cipher::PacketCipher::choose(offered, allowed);
        let Some(cipher) = chosen else {
            let names: Vec<String> = allowed.iter().map(|c| c.to_string()).collect();
            let reason = format!(
                "no packet cipher in common: this server allows {}",
                names.join(", ")
            );
            self.refuse_handshake(from, client_cid, &reason);
            return;
        };
        let (cid, first_pn) = self.new_identity();
        let conn = Connection::server_secure(
            now,
            self.config.connection.clone(),
            (cid, client_cid),
            first_pn,
            address,
            (from, self.path_secret()),
            responder,
            cipher,
        );
        if let Ok(conn) = conn {
            self.accepted(conn, (now, from, header, wire_len), &params, address);
        }
    }

    /// §16.4: a version-3 handshake refused, in clear (CONNECTION_REFUSED
    /// with a reason the client shows).
    fn refuse_handshake(&mut self, from: SocketAddr, client_cid: ConnectionId, reason: &str) {
        self.refuse(
            from,
            client_cid,
            Protection::Clear,
            TransportCode::ConnectionRefused,
            reason,
        );
    }

    /// §6.8: a stateless RETRY carrying a token bound to the client's
    /// address and CID.
    fn send_retry(
        &mut self,
        now: Instant,
        to: SocketAddr,
        client_cid: ConnectionId,
        protection: Protection,
    ) {
        let token = self.tokens.issue(now, to, client_cid);
        self.stats.retries_sent += 1;
        self.stateless_reply(
            to,
            client_cid,
            PacketType::Retry,
            protection,
            &[Frame::Token(&token)],
        );
    }

    /// §16.4: a stateless RETRY carrying only our static public key, for a
    /// version-3 client that asked for it or whose first message we could
    /// not read. No token: the client's next INITIAL goes through
    /// admission as any other (a token bound to an address a NAT may
    /// rebind in between would only get it refused).
    /// `unread` names the first message we could not read, by its
    /// ephemeral key.
    fn send_key(
        &mut self,
        to: SocketAddr,
        client_cid: ConnectionId,
        key: [u8; 32],
        unread: Option<[u8; 32]>,
    ) {
        self.stats.keys_sent += 1;
        let key = Frame::ServerKey(key);
        let frames = match unread {
            Some(e) => vec![key, Frame::Unreadable(e)],
            None => vec![key],
        };
        self.stateless_reply(
            to,
            client_cid,
            PacketType::Retry,
            Protection::Clear,
            &frames,
        );
    }

    /// §6.3: a stateless ACCEPT carrying only CLOSE (transport) with `code`.
    fn refuse(
        &mut self,
        to: SocketAddr,
        client_cid: ConnectionId,
        protection: Protection,
        code: TransportCode,
        reason: &str,
    ) {
        self.stats.refused += 1;
        self.stateless_reply(
            to,
            client_cid,
            PacketType::Accept,
            protection,
            &[Frame::Close(CloseFrame {
                kind: CloseKind::Transport,
                code: code.to_u64(),
                reason: reason.as_bytes(),
            })],
        );
    }

    /// A reply sent without creating state: source CID zero, and a random
    /// packet number from the top half of the range, so that a sealed one
    /// never repeats a nonce of the connection that may follow (§3.7).
    fn stateless_reply(
        &mut self,
        to: SocketAddr,
        client_cid: ConnectionId,
        ty: PacketType,
        protection: Protection,
        frames: &[Frame<'_>],
    ) {
        // The top quarter of the varint range, 2^61 values: a power of two,
        // so the modulo is unbiased.
        let pn = STATELESS_PN_START
            + self.rng.next_u64() % (crate::wire::varint::MAX + 1 - STATELESS_PN_START);
        let mut out = Vec::with_capacity(128);
        Header {
            version: self.reply_version,
            ty,
            protection,
            dcid: client_cid,
            scid: Some(ConnectionId(0)),
            pn,
        }
        .encode(&mut out);
        for f in frames {
            f.encode(&mut out);
        }
        if protection == Protection::Sealed {
            if let Some(psk) = &self.config.connection.psk {
                psk.server_key(client_cid, ConnectionId(0))
                    .seal(pn, ty.header_len(), &mut out);
            }
        }
        packet::append_checksum(&mut out);
        self.stateless.push_back((to, out));
    }

    fn answer_unknown_version(&mut self, from: SocketAddr, len: usize, scid: ConnectionId) {
        // §3.5: only servers answer, and only full-size datagrams, so the
        // answer is never larger than the question.
        if self.role != Role::Server || len < MIN_DATAGRAM_SIZE {
            self.stats.dropped_malformed += 1;
            return;
        }
        let mut out = Vec::with_capacity(32);
        VersionNegotiation {
            dcid: scid,
            scid: ConnectionId(0),
            versions: packet::SUPPORTED_VERSIONS
                .iter()
                .copied()
                .filter(|&v| v <= self.config.connection.version)
                .collect(),
        }
        .encode(&mut out);
        self.stats.version_negotiations_sent += 1;
        self.stateless.push_back((from, out));
    }

    fn on_version_negotiation(&mut self, from: SocketAddr, vn: VersionNegotiation) {
        let Some(&h) = self.by_cid.get(&vn.dcid) else {
            self.stats.dropped_unknown_connection += 1;
            return;
        };
        let Some(entry) = self.conns.get_mut(&h) else {
            return;
        };
        // §3.5: ignored unless it answers our INITIAL and really excludes
        // our version (a forged one listing our version changes nothing).
        if entry.conn.remote_addr() != from || vn.versions.contains(&entry.conn.version()) {
            self.stats.dropped_malformed += 1;
            return;
        }
        entry.conn.on_version_negotiation(vn.versions);
        self.touch(h);
    }

    /// Runs the timers of every connection whose deadline has passed. Each
    /// connection runs once per call, even if it asks for `now` again.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(entry) = self.conns.get_mut(&h) {
                if entry.timer == Some(t) {
                    entry.timer = None;
                    expired.push(h);
                }
                // Otherwise stale: the connection rescheduled since.
            }
        }
        for h in expired {
            if let Some(entry) = self.conns.get_mut(&h) {
                entry.conn.handle_timeout(now);
            }
            self.touch(h);
        }
    }

    /// The next instant `handle_timeout` must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            if self.conns.get(&h).is_some_and(|e| e.timer == Some(t)) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Writes the next datagram into `buf` and returns where to send it.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if let Some((to, bytes)) = self.stateless.pop_front() {
            buf.clear();
            buf.extend_from_slice(&bytes);
            return Some(to);
        }
        while let Some(&h) = self.dirty.front() {
            let Some(entry) = self.conns.get_mut(&h) else {
                self.dirty.pop_front();
                continue;
            };
            if let Some(to) = entry.conn.poll_transmit(now, buf) {
                return Some(to);
            }
            entry.dirty = false;
            self.dirty.pop_front();
            self.settle(h);
        }
        None
    }

    /// The next event: new connections, connection events, removals.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// After anything touched a connection: collect its events, queue it for
    /// transmission, and reschedule its timer.
    fn touch(&mut self, h: ConnectionHandle) {
        if let Some(entry) = self.conns.get_mut(&h) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push_back(h);
            }
        }
        self.settle(h);
    }

    fn settle(&mut self, h: ConnectionHandle) {
        let Some(entry) = self.conns.get_mut(&h) else {
            return;
        };
        while let Some(e) = entry.conn.poll_event() {
            self.events.push_back(EndpointEvent::Connection(h, e));
        }
        #[cfg(feature = "trace")]
        while let Some(t) = entry.conn.poll_trace() {
            self.traces.push_back((entry.conn.local_cid(), t));
        }
        let server = entry.initial_key.is_some();
        let pending = server && !entry.conn.is_confirmed() && !entry.conn.is_drained();
        if pending != entry.pending {
            entry.pending = pending;
            let source = (entry.source, entry.address);
            if pending {
                self.pending += 1;
                *self.pending_by_source.entry(source).or_default() += 1;
            } else {
                self.pending -= 1;
                if let Some(n) = self.pending_by_source.get_mut(&source) {
                    *n -= 1;
                    if *n == 0 {
                        self.pending_by_source.remove(&source);
                    }
                }
            }
        }
        let established = server && entry.conn.is_confirmed() && entry.conn.outcome().is_none();
        if established != entry.established {
            entry.established = established;
            let n = self.established_by_source.entry(entry.source).or_default();
            if established {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    self.established_by_source.remove(&entry.source);
                }
            }
        }
        if server && !entry.announced && entry.conn.is_confirmed() {
            // §6.2: the application sees a connection only once its client
            // has proved it receives at its address (issue #12 item 3).
            entry.announced = true;
            self.events.push_back(EndpointEvent::Incoming(h));
        }
        let memory = if entry.conn.is_drained() {
            0
        } else {
            entry.conn.receive_memory() as u64 + entry.conn.send_buffered()
        };
        self.memory = self.memory - entry.memory + memory;
        entry.memory = memory;
        if entry.conn.is_drained() {
            let entry = self.conns.remove(&h);
            if let Some(entry) = entry {
                self.by_cid.remove(&entry.conn.local_cid());
                if let Some(k) = entry.initial_key {
                    self.by_initial.remove(&k);
                }
            }
            self.events.push_back(EndpointEvent::Drained(h));
            return;
        }
        let t = entry.conn.poll_timeout();
        if t != entry.timer {
            entry.timer = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t, h)));
            }
        }
    }
}

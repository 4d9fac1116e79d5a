//! [`Endpoint`]: a UDP socket speaking rudp, and the driver task that moves
//! datagrams and timer expiries between it and the sans-IO state machine.

use crate::connection::{Connection, Keyed};
use crate::error::Error;
use crate::shared::{ConnSlot, Shared, State};
use crate::udp::{RxBuffers, Socket, TxBatch};
use rudp_core::config::Config;
use rudp_core::conn::Event;
use rudp_core::endpoint::{self as proto, EndpointConfig, EndpointEvent, EndpointStats};
use rudp_core::error::{ConnectionError, VarInt};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{debug, debug_span, info_span, trace, warn, Instrument};

/// Datagrams read from the socket per wake-up before timers and sends get a
/// turn: bounds the latency a flood can add to everything else.
const RECV_BATCH: usize = 64;

/// Socket buffer size asked for, each way. The kernel caps it (Linux:
/// `net.core.rmem_max` / `wmem_max`); the default of about 200 KiB
/// overflows under a burst of a few hundred datagrams, which a busy server
/// or a bulk transfer produces.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Whether a socket may share its port with other sockets of this user
/// (`SO_REUSEPORT`, for one endpoint per core; unix only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortSharing {
    /// The port is this socket's alone: binding a port in use fails.
    Exclusive,
    /// Other sockets may bind the same address too; the kernel spreads
    /// datagrams over them by the sender's address and port.
    Shared,
}

/// A non-blocking UDP socket bound to `addr`, with large buffers where the
/// OS allows (best effort: a smaller buffer is not an error): what every
/// endpoint's socket is, for [`Endpoint::server_on`] when the port is shared.
pub fn bind_udp(addr: SocketAddr, sharing: PortSharing) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if sharing == PortSharing::Shared {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "sharing a port needs SO_REUSEPORT (unix)",
        ));
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    force_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Where the kernel capped the buffers below [`SOCKET_BUFFER`]
/// (`net.core.rmem_max`, about 208 KiB by default on Linux) and this
/// process may exceed the cap (`CAP_NET_ADMIN`, as root), asks again with
/// `SO_RCVBUFFORCE` / `SO_SNDBUFFORCE`: a burst that overflows a 208 KiB
/// buffer is a loss of this host that the link never saw (issue #26 item
/// 4). Without the capability the smaller buffer stays; nothing fails.
#[cfg(target_os = "linux")]
fn force_buffers(socket: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER as libc::c_int;
    for (got, option) in [
        (socket.recv_buffer_size(), libc::SO_RCVBUFFORCE),
        (socket.send_buffer_size(), libc::SO_SNDBUFFORCE),
    ] {
        if got.is_ok_and(|g| g >= SOCKET_BUFFER) {
            continue;
        }
        // SAFETY: setsockopt(2) reads an int from a pointer to one.
        let _ = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

#[cfg(not(target_os = "linux"))]
fn force_buffers(_socket: &socket2::Socket) {}

/// Waits on an endpoint's lock ([`Endpoint::lock_contention`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockContention {
    /// Times a task found the lock taken.
    pub waits: u64,
    /// Time spent waiting for it, in all.
    pub waited: Duration,
}

/// Which side an endpoint plays; chosen by the constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Opens connections; INITIALs from unknown peers are dropped.
    Client,
    /// Accepts connections (and may open them too).
    Server,
}

/// A UDP socket speaking rudp: a client, a server, or both.
///
/// Cloning gives another handle to the same endpoint. Constructors bind at
/// once (they do not wait) and must be called within a tokio runtime,
/// which runs the endpoint's driver task.
#[derive(Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared.lock().endpoint_handles += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.lock().endpoint_handles -= 1;
        self.shared.wake_driver.notify_one();
    }
}

impl Endpoint {
    /// A server endpoint: binds `addr` and accepts incoming connections.
    pub fn server(addr: SocketAddr, config: EndpointConfig) -> Result<Self, Error> {
        Self::start(
            bind_udp(addr, PortSharing::Exclusive)?,
            config,
            Role::Server,
        )
    }

    /// A server endpoint on a socket the caller made and bound: for options
    /// this crate does not set, such as `SO_REUSEPORT`, which lets several
    /// endpoints (one per core) share a port (docs/architecture.md, "Using
    /// every core"). The socket is made non-blocking here.
    pub fn server_on(socket: std::net::UdpSocket, config: EndpointConfig) -> Result<Self, Error> {
        Self::start(socket, config, Role::Server)
    }

    /// A client endpoint on an ephemeral port of the loopback or wildcard
    /// address matching `peer`'s family.
    pub fn client(peer: SocketAddr, config: EndpointConfig) -> Result<Self, Error> {
        let local: SocketAddr = match (peer.is_ipv4(), peer.ip().is_loopback()) {
            (true, true) => "127.0.0.1:0",
            (true, false) => "0.0.0.0:0",
            (false, true) => "[::1]:0",
            (false, false) => "[::]:0",
        }
        .parse()
        .unwrap_or_else(|_| unreachable!("constant addresses parse"));
        Self::bind(local, config)
    }

    /// A client endpoint bound to `addr`.
    pub fn bind(addr: SocketAddr, config: EndpointConfig) -> Result<Self, Error> {
        Self::start(
            bind_udp(addr, PortSharing::Exclusive)?,
            config,
            Role::Client,
        )
    }

    fn start(
        socket: std::net::UdpSocket,
        config: EndpointConfig,
        role: Role,
    ) -> Result<Self, Error> {
        // A blocking socket would stall the runtime's thread.
        socket.set_nonblocking(true)?;
        let socket = Socket::new(socket)?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ep: match role {
                    Role::Server => proto::Endpoint::server(config, rand::random()),
                    Role::Client => proto::Endpoint::client(config, rand::random()),
                },
                slots: HashMap::new(),
                incoming: VecDeque::new(),
                closing: false,
                stopped: None,
                endpoint_handles: 1,
                last_rx: None,
                #[cfg(feature = "trace")]
                trace: None,
            }),
            wake_driver: Notify::new(),
            incoming: Notify::new(),
            local_addr,
            lock_waits: Default::default(),
            lock_wait_ns: Default::default(),
        });
        let span = info_span!("endpoint", local = %local_addr);
        tokio::spawn(drive(shared.clone(), socket).instrument(span));
        Ok(Self { shared })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Writes an event trace of every connection opened from now on to
    /// `path`, one JSON object a line (docs/trace.md), every packet
    /// included. The file is created or truncated.
    #[cfg(feature = "trace")]
    pub fn trace_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.trace_to_level(path, crate::TraceLevel::Packets)
    }

    /// [`Self::trace_to`] at a chosen level: [`crate::TraceLevel::Metrics`]
    /// keeps long runs small.
    #[cfg(feature = "trace")]
    pub fn trace_to_level(
        &self,
        path: &std::path::Path,
        level: crate::TraceLevel,
    ) -> std::io::Result<()> {
        let file = crate::trace_file::create(path, level, self.shared.local_addr)?;
        let mut st = self.shared.lock();
        st.trace = Some(file);
        st.ep.set_trace(true);
        Ok(())
    }

    /// Opens a connection to `remote` with the endpoint's settings and
    /// waits for the handshake.
    ///
    /// Cancel-safe in the sense that dropping the future abandons the
    /// attempt: the half-open connection is closed in the background.
    pub async fn connect(&self, remote: SocketAddr) -> Result<Connection, Error> {
        self.open(remote, None).await
    }

    /// Like [`Self::connect`], with settings of its own for this one
    /// connection (the endpoint's limits still apply).
    pub async fn connect_with(
        &self,
        config: Config,
        remote: SocketAddr,
    ) -> Result<Connection, Error> {
        self.open(remote, Some(Arc::new(config))).await
    }

    async fn open(
        &self,
        remote: SocketAddr,
        config: Option<Arc<Config>>,
    ) -> Result<Connection, Error> {
        let (h, keyed) = {
            let mut st = self.shared.lock();
            if st.stopped.is_some() || st.closing {
                return Err(Error::EndpointClosed);
            }
            let c = config
                .clone()
                .unwrap_or_else(|| st.ep.config().connection());
            let keyed = match (c.version() == rudp_core::wire::VERSION_3, c.psk().is_some()) {
                (true, _) => Keyed::Noise,
                (false, true) => Keyed::Psk,
                (false, false) => Keyed::No,
            };
            let h = match config {
                Some(c) => st.ep.connect_with(Instant::now(), remote, c),
                None => st.ep.connect(Instant::now(), remote),
            };
            let mut slot = ConnSlot::new(remote);
            slot.handles = 1; // The handle made below, counted now.
            st.slots.insert(h, slot);
            (h, keyed)
        };
        self.shared.wake_driver.notify_one();
        let conn = Connection::counted(self.shared.clone(), h, remote);
        std::future::poll_fn(|cx| conn.poll_connected(cx, keyed)).await?;
        Ok(conn)
    }

    /// The next incoming connection; `None` once the endpoint is shut down.
    ///
    /// A connection is returned only once its client has proved that it
    /// receives at its address (it sent a DATA packet, which needs the
    /// server's ACCEPT; with a key, sealed with it): a forged or replayed
    /// INITIAL never reaches the application (PROTOCOL.md §6.2 step 5).
    ///
    /// Cancel-safe: a connection is taken from the queue only when this
    /// returns it.
    pub async fn accept(&self) -> Option<Connection> {
        loop {
            let notified = self.shared.incoming.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(h) = st.incoming.pop_front() {
                    let remote = st.slots.get(&h).map(|s| s.remote)?;
                    drop(st);
                    return Some(Connection::new(self.shared.clone(), h, remote));
                }
                if st.closing || st.stopped.is_some() {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Counters of datagrams the endpoint dropped or answered itself.
    pub fn stats(&self) -> EndpointStats {
        self.shared.lock().ep.stats().clone()
    }

    /// How often, and how long in all, the driver and the application
    /// tasks waited for each other on the endpoint's lock since it was
    /// made: the cost of sharing one state machine between tasks.
    pub fn lock_contention(&self) -> LockContention {
        use std::sync::atomic::Ordering;
        LockContention {
            waits: self.shared.lock_waits.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.shared.lock_wait_ns.load(Ordering::Relaxed)),
        }
    }

    /// Open connections (including those still finishing a close).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().ep.connection_count()
    }

    /// For a process about to exit after its connections closed gracefully:
    /// waits until the peers have been quiet for three probe timeouts (or no
    /// connection is left), at most `max`. A peer whose final ACK from us was
    /// lost retransmits within that time, and gets its ACK (PROTOCOL.md §6.5,
    /// the role TCP's TIME-WAIT plays).
    ///
    /// Cancel-safe: it only waits.
    pub async fn linger(&self, max: Duration) {
        let started = Instant::now();
        let deadline = started + max;
        loop {
            let (open, quiet, last_rx) = {
                let st = self.shared.lock();
                (
                    st.ep.connection_count(),
                    st.ep.max_probe_timeout() * 3,
                    st.last_rx,
                )
            };
            let until = last_rx.unwrap_or(started).max(started) + quiet;
            if open == 0 || Instant::now() >= until.min(deadline) {
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(until.min(deadline))).await;
        }
    }

    /// Stops accepting, closes every connection gracefully and waits up to
    /// `grace` for them to finish; connections still open then are aborted.
    /// A connection whose peer answers nothing within three probe timeouts
    /// of the close is aborted then (its peer is gone: a process killed,
    /// a machine off the network), so a server whose clients vanished
    /// stops at once instead of waiting out `grace` (issue #26).
    ///
    /// Not cancel-safe: dropping the future leaves the connections closing
    /// gracefully, without the abort at the end of `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let started = Instant::now();
        {
            let mut st = self.shared.lock();
            st.closing = true;
            let handles: Vec<_> = st.slots.keys().copied().collect();
            for h in handles {
                st.ep.with_connection(h, |c| c.close());
            }
        }
        self.shared.wake_driver.notify_one();
        self.shared.incoming.notify_waiters();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.shared.incoming.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let silent_until = {
                let mut st = self.shared.lock();
                if st.slots.values().all(|s| s.outcome.is_some()) || st.stopped.is_some() {
                    break;
                }
                self.abort_silent(&mut st, started)
            };
            self.shared.wake_driver.notify_one();
            let wake = silent_until
                .map(tokio::time::Instant::from_std)
                .map_or(deadline, |t| t.min(deadline));
            if tokio::time::timeout_at(wake, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                let mut st = self.shared.lock();
                let handles: Vec<_> = st.slots.keys().copied().collect();
                for h in handles {
                    st.ep.with_connection(h, |c| {
                        c.abort(Instant::now(), VarInt::ZERO, "endpoint shutting down")
                    });
                }
                drop(st);
                self.shared.wake_driver.notify_one();
                break;
            }
        }
    }

    /// [`Self::shutdown`]'s test for a vanished peer: aborts each open
    /// connection that has heard nothing since `started` for three probe
    /// timeouts; returns when the next one would be due. Connections are
    /// only read here: one is touched (its timers rescheduled) only when
    /// it is aborted, so a wake-up costs a scan, not a timer update per
    /// connection.
    fn abort_silent(&self, st: &mut crate::shared::State, started: Instant) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut silent = Vec::new();
        for (h, slot) in &st.slots {
            let Some(c) = st.ep.connection(*h) else {
                continue;
            };
            if slot.outcome.is_some() || c.last_received().is_some_and(|t| t >= started) {
                continue; // Over, or it answers: wait for its close.
            }
            let due = started + c.probe_timeout() * 3;
            if now >= due {
                silent.push(*h);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        for h in silent {
            st.ep.with_connection(h, |c| {
                c.abort(now, VarInt::ZERO, "endpoint shutting down; no answer")
            });
        }
        next
    }
}

/// The driver task: moves datagrams and timer expiries between the socket
/// and the state machine, and wakes the application. The lock is taken
/// between system calls, never across one.
async fn drive(shared: Arc<Shared>, socket: Socket) {
    let mut out = Vec::with_capacity(65_536);
    let mut tx = TxBatch::default();
    let mut rx = RxBuffers::default();
    loop {
        // 1. Collect what the state machine wants sent, and its events.
        let deadline = {
            let mut st = shared.lock();
            // A fresh time for each datagram: a burst of hundreds takes long
            // enough that one timestamp for all would distort the delivery
            // rate samples (PROTOCOL.md §9.4.3) and the pacing.
            while let Some(to) = st.ep.poll_transmit(Instant::now(), &mut out) {
                trace_datagram("out", to, &out);
                tx.push(to, &mut out);
            }
            dispatch_events(&shared, &mut st);
            #[cfg(feature = "trace")]
            crate::trace_file::write_traces(&mut st);
            if st.endpoint_handles == 0
                && st.ep.connection_count() == 0
                && st.slots.values().all(|s| s.handles == 0)
            {
                debug!("no handles and no connections left: driver stops");
                st.stopped = Some("endpoint dropped".into());
                return;
            }
            st.ep.poll_timeout()
        };
        // 2. Send it, without the lock, batched (GSO) where possible.
        if !tx.is_empty() {
            socket.send(&mut tx).await;
        }
        // 3. Wait for a datagram, a timer or the application.
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Datagrams arrived: take those already queued, a bounded batch.
            r = socket.readable() => {
                if let Err(e) = r {
                    debug!(error = %e, "socket not readable");
                    continue;
                }
                receive(&shared, &socket, &mut rx);
            }
            // A connection timer expired.
            () = sleep => {
                let mut st = shared.lock();
                st.ep.handle_timeout(Instant::now());
            }
            // The application queued data, read, closed or dropped a handle.
            () = shared.wake_driver.notified() => {}
        }
    }
}

/// Reads up to [`RECV_BATCH`] queued datagrams, one system call at a time
/// without the lock, and hands each batch to the state machine under it.
fn receive(shared: &Shared, socket: &Socket, rx: &mut RxBuffers) {
    let mut total = 0;
    while total < RECV_BATCH {
        let n = match socket.try_recv_batch(rx) {
            Ok(0) => break,
            Ok(n) => n,
            // ICMP errors surface here on some systems; they concern one
            // peer, whose connection times out by itself.
            Err(e) => {
                debug!(error = %e, "receive error");
                break;
            }
        };
        let mut st = shared.lock();
        let st = &mut *st;
        total += rx.for_each(n, |from, datagram| {
            trace_datagram("in", from, datagram);
            st.ep.handle_datagram(Instant::now(), from, datagram);
        });
        st.last_rx = Some(Instant::now());
    }
}

/// Logs one datagram, decoded, at trace level (`RUST_LOG=rudp=trace`).
fn trace_datagram(way: &str, peer: SocketAddr, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        trace!(%peer, "{way} {}", rudp_core::wire::describe(bytes));
    }
}

/// Turns endpoint events into wake-ups of the tasks they concern and
/// recorded outcomes.
fn dispatch_events(shared: &Shared, st: &mut State) {
    while let Some(ev) = st.ep.poll_event() {
        match ev {
            EndpointEvent::Incoming(h) => {
                let remote = st.ep.remote(h);
                if st.closing {
                    st.ep.with_connection(h, |c| {
                        c.abort(Instant::now(), VarInt::ZERO, "server shutting down")
                    });
                    continue;
                }
                if let Some(remote) = remote {
                    debug!(peer = %remote, "incoming connection");
                    let mut slot = ConnSlot::new(remote);
                    slot.connected = true;
                    st.slots.insert(h, slot);
                    st.incoming.push_back(h);
                    shared.incoming.notify_waiters();
                }
            }
            EndpointEvent::Connection(h, ev) => {
                // Statistics only for the last event: the others are frequent.
                let conn = st.ep.connection(h);
                let stats = conn
                    .filter(|_| matches!(ev, Event::Closed(_)))
                    .map(|c| c.stats());
                let cid = conn.map(|c| c.local_cid()).unwrap_or_default();
                let version = conn.map_or(0, |c| c.version());
                let Some(slot) = st.slots.get_mut(&h) else {
                    continue;
                };
                // One span per connection: its ID and peer on every line.
                if version != 0 {
                    slot.version = version;
                }
                let span = debug_span!("conn", %cid, peer = %slot.remote);
                let _entered = span.enter();
                match ev {
                    Event::Connected => {
                        debug!("connected");
                        slot.connected = true;
                        slot.state.wake();
                        slot.writers.wake();
                    }
                    Event::Closed(outcome) => {
                        match &outcome {
                            Ok(()) => debug!("closed gracefully"),
                            Err(e) => debug!(error = %e, "connection failed"),
                        }
                        slot.outcome = Some(outcome);
                        slot.final_stats = stats;
                        slot.wake_all();
                        // `shutdown` waits on this.
                        shared.incoming.notify_waiters();
                    }
                    Event::StreamReadable(_) | Event::StreamOpened | Event::DatagramReceived => {
                        slot.readers.wake()
                    }
                    Event::Writable => slot.writers.wake(),
                    // An event this layer does not know yet: let every
                    // waiting task look again.
                    _ => slot.wake_all(),
                }
            }
            EndpointEvent::Drained(h) => {
                if let Some(slot) = st.slots.get_mut(&h) {
                    slot.drained = true;
                    if slot.outcome.is_none() {
                        warn!(peer = %slot.remote, "connection removed without an outcome");
                        slot.outcome =
                            Some(Err(ConnectionError::LocallyAborted { code: VarInt::ZERO }));
                    }
                    slot.wake_all();
                    if slot.handles == 0 {
                        st.slots.remove(&h);
                    }
                }
                st.incoming.retain(|&x| x != h);
            }
        }
    }
}

//! The tokio layer: a UDP socket, a driver task, and handles for the
//! application (docs/architecture.md, "The driver").
//!
//! One driver task per [`Endpoint`] owns the socket and the sans-IO
//! [`crate::endpoint::Endpoint`], which sits behind a mutex shared with the
//! handles. The driver does three things in a loop: hand received datagrams
//! and expired timers to the state machine, send what it asks to send, and
//! wake the application tasks its events concern. Application calls
//! (`send`, `recv`, `close`) lock the state briefly, act on their
//! connection, and wake the driver. So retransmissions and acknowledgements
//! happen while the application is busy elsewhere.
//!
//! Lock discipline: the mutex is never held across an `.await`.

mod error;
mod udp;

pub use error::{Error, Secs};

use crate::conn::{Event, SendError, Stats};
use crate::endpoint::{self as proto, ConnectionHandle, EndpointConfig, EndpointEvent};
use crate::error::ConnectionError;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{debug, debug_span, info_span, trace, warn, Instrument};
use udp::{RxBuffers, Socket, TxBatch};

/// Datagrams read from the socket per wake-up before timers and sends get a
/// turn: bounds the latency a flood can add to everything else.
const RECV_BATCH: usize = 64;

/// Socket buffer size asked for, each way. The kernel caps it (Linux:
/// `net.core.rmem_max` / `wmem_max`); the default of about 200 KiB
/// overflows under a burst of a few hundred datagrams, which a busy server
/// or a bulk transfer produces.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr`, with large buffers where the
/// OS allows (best effort: a smaller buffer is not an error).
fn bind_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What the application tasks of one connection wait on.
#[derive(Debug)]
struct ConnSlot {
    /// Woken on every event of the connection.
    notify: Arc<Notify>,
    remote: SocketAddr,
    connected: bool,
    outcome: Option<Result<(), ConnectionError>>,
    /// Statistics at the moment the connection was removed.
    final_stats: Option<Stats>,
    /// Application handles alive (for the implicit close on drop).
    handles: usize,
    drained: bool,
}

#[derive(Debug)]
struct State {
    ep: proto::Endpoint,
    slots: crate::endpoint::Map<ConnectionHandle, ConnSlot>,
    incoming: VecDeque<ConnectionHandle>,
    /// Set by `shutdown`: no more connections are accepted.
    closing: bool,
    /// Set when the driver stopped (socket error or shutdown).
    stopped: Option<String>,
    /// Endpoint handles alive; the driver stops once there are none and no
    /// connection is left.
    endpoint_handles: usize,
    /// When the last datagram arrived (for `linger`).
    last_rx: Option<Instant>,
    /// Where trace events go, one JSON object a line (docs/trace.md).
    trace: Option<TraceFile>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: the application changed something.
    wake_driver: Notify,
    /// Wakes `accept` callers.
    incoming: Notify,
    local_addr: SocketAddr,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough
        // to keep shutting down: no invariant spans two statements.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A UDP socket speaking rudp: a client, a server, or both.
///
/// Cloning gives another handle to the same endpoint.
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
    pub async fn server(addr: SocketAddr, mut config: EndpointConfig) -> Result<Self, Error> {
        config.accept_incoming = true;
        Self::bind(addr, config).await
    }

    /// A client endpoint on an ephemeral port of the loopback or wildcard
    /// address matching `peer`'s family.
    pub async fn client(peer: SocketAddr, config: EndpointConfig) -> Result<Self, Error> {
        let local: SocketAddr = match (peer.is_ipv4(), peer.ip().is_loopback()) {
            (true, true) => "127.0.0.1:0",
            (true, false) => "0.0.0.0:0",
            (false, true) => "[::1]:0",
            (false, false) => "[::]:0",
        }
        .parse()
        .unwrap_or_else(|_| unreachable!("constant addresses parse"));
        Self::bind(local, config).await
    }

    /// Binds `addr` with the given configuration and starts the driver.
    pub async fn bind(addr: SocketAddr, config: EndpointConfig) -> Result<Self, Error> {
        config
            .connection
            .validate()
            .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let socket = Socket::new(bind_socket(addr)?)?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ep: proto::Endpoint::new(config, rand::random()),
                slots: Default::default(),
                incoming: VecDeque::new(),
                closing: false,
                stopped: None,
                endpoint_handles: 1,
                last_rx: None,
                trace: None,
            }),
            wake_driver: Notify::new(),
            incoming: Notify::new(),
            local_addr,
        });
        let span = info_span!("endpoint", local = %local_addr);
        tokio::spawn(drive(shared.clone(), socket).instrument(span));
        Ok(Self { shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Writes an event trace of every connection opened from now on to
    /// `path`, one JSON object a line (docs/trace.md), every packet
    /// included. The file is created or truncated.
    pub fn trace_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.trace_to_level(path, TraceLevel::Packets)
    }

    /// [`Self::trace_to`] at a chosen level: [`TraceLevel::Metrics`] keeps
    /// long runs small.
    pub fn trace_to_level(&self, path: &std::path::Path, level: TraceLevel) -> std::io::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let header = serde_json::json!({
            "rudp_trace": 1,
            "level": level.name(),
            "local": self.shared.local_addr.to_string(),
            "reference_time_unix_ms": unix_ms,
        });
        writeln!(w, "{header}")?;
        w.flush()?;
        let mut st = self.shared.lock();
        st.trace = Some(TraceFile {
            w,
            level,
            last_metrics: HashMap::new(),
        });
        st.ep.set_trace(true);
        Ok(())
    }

    /// Opens a connection to `remote` and waits for the handshake.
    pub async fn connect(&self, remote: SocketAddr) -> Result<Connection, Error> {
        let h = {
            let mut st = self.shared.lock();
            if st.stopped.is_some() || st.closing {
                return Err(Error::EndpointClosed);
            }
            let h = st.ep.connect(Instant::now(), remote);
            st.slots.insert(h, ConnSlot::new(remote));
            h
        };
        self.shared.wake_driver.notify_one();
        let conn = Connection::new(self.shared.clone(), h, remote);
        conn.wait(|st, slot| {
            if slot.connected {
                return Some(Ok(()));
            }
            match &slot.outcome {
                Some(Err(e)) => Some(Err(
                    match Error::from_connection(remote, false, e.clone()) {
                        Error::NoAnswer { addr, after }
                            if st.ep.config().connection.psk.is_some() =>
                        {
                            Error::NoAnswerKeyed { addr, after }
                        }
                        other => other,
                    },
                )),
                Some(Ok(())) => Some(Err(Error::Closed)),
                None => st.stopped.as_ref().map(|_| Err(Error::EndpointClosed)),
            }
        })
        .await?;
        Ok(conn)
    }

    /// The next incoming connection; `None` once the endpoint is shut down.
    ///
    /// A connection is returned only once its client has proved that it
    /// receives at its address (it sent a DATA packet, which needs the
    /// server's ACCEPT; with a key, sealed with it): a forged or replayed
    /// INITIAL never reaches the application (PROTOCOL.md §6.2 step 5).
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
    pub fn stats(&self) -> proto::EndpointStats {
        self.shared.lock().ep.stats().clone()
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
    pub async fn shutdown(&self, grace: Duration) {
        let now = Instant::now();
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
            {
                let st = self.shared.lock();
                if st.slots.values().all(|s| s.outcome.is_some()) || st.stopped.is_some() {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let mut st = self.shared.lock();
                let handles: Vec<_> = st.slots.keys().copied().collect();
                for h in handles {
                    st.ep
                        .with_connection(h, |c| c.abort(now, 0, "endpoint shutting down"));
                }
                drop(st);
                self.shared.wake_driver.notify_one();
                break;
            }
        }
    }
}

impl ConnSlot {
    fn new(remote: SocketAddr) -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            remote,
            connected: false,
            outcome: None,
            final_stats: None,
            handles: 0,
            drained: false,
        }
    }
}

/// One rudp connection: ordered, reliable messages to one peer.
///
/// Cloning gives another handle to the same connection, so one task can
/// send while another receives. When the last handle is dropped without
/// `close` or `abort`, the connection is closed gracefully in the
/// background: what was sent is still delivered.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
    remote: SocketAddr,
    notify: Arc<Notify>,
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        Connection::new(self.shared.clone(), self.handle, self.remote)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let Some(slot) = st.slots.get_mut(&self.handle) else {
            return;
        };
        slot.handles -= 1;
        if slot.handles == 0 {
            if slot.drained {
                st.slots.remove(&self.handle);
            } else {
                st.ep.with_connection(self.handle, |c| c.close());
            }
        }
        drop(st);
        self.shared.wake_driver.notify_one();
    }
}

impl Connection {
    fn new(shared: Arc<Shared>, handle: ConnectionHandle, remote: SocketAddr) -> Self {
        let notify = {
            let mut st = shared.lock();
            match st.slots.get_mut(&handle) {
                Some(slot) => {
                    slot.handles += 1;
                    slot.notify.clone()
                }
                None => Arc::new(Notify::new()),
            }
        };
        Self {
            shared,
            handle,
            remote,
            notify,
        }
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Runs `check` under the lock until it returns `Some`, sleeping until
    /// the connection's next event in between. Registering for the wake-up
    /// before checking means no event can slip between check and sleep.
    async fn wait<T>(&self, mut check: impl FnMut(&mut State, &mut ConnSlot) -> Option<T>) -> T {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut guard = self.shared.lock();
                let st = &mut *guard;
                // The slot lives as long as a handle does; without one (which
                // `Drop` prevents) the connection reads as aborted.
                let existed = st.slots.remove(&self.handle);
                let had_slot = existed.is_some();
                let mut slot = existed.unwrap_or_else(|| {
                    let mut s = ConnSlot::new(self.remote);
                    s.outcome = Some(Err(ConnectionError::LocallyAborted { code: 0 }));
                    s
                });
                let r = check(st, &mut slot);
                if had_slot {
                    st.slots.insert(self.handle, slot);
                }
                if let Some(r) = r {
                    return r;
                }
            }
            notified.await;
        }
    }

    fn outcome_error(&self, slot: &ConnSlot) -> Option<Error> {
        match &slot.outcome {
            Some(Err(ConnectionError::LocallyAborted { .. })) => Some(Error::Closed),
            Some(Err(e)) => Some(Error::from_connection(self.remote, true, e.clone())),
            _ => None,
        }
    }

    /// Queues one message; waits while the send buffer is full.
    pub async fn send(&self, msg: Bytes) -> Result<(), Error> {
        let r = self
            .wait(|st, slot| {
                if let Some(e) = self.outcome_error(slot) {
                    return Some(Err(e));
                }
                match st.ep.with_connection(self.handle, |c| c.send(msg.clone())) {
                    Some(Ok(())) => Some(Ok(())),
                    Some(Err(SendError::Blocked | SendError::NotConnected)) => None,
                    Some(Err(SendError::TooLarge { len, max })) => {
                        Some(Err(Error::MessageTooLarge { len, max }))
                    }
                    Some(Err(SendError::Closed)) | None => Some(Err(Error::Closed)),
                }
            })
            .await;
        self.shared.wake_driver.notify_one();
        r
    }

    /// The next message, in order; `Ok(None)` once the peer has closed and
    /// every message it sent has been read.
    pub async fn recv(&self) -> Result<Option<Bytes>, Error> {
        enum Polled {
            Message(Bytes),
            Finished,
            Nothing,
        }
        let r = self
            .wait(|st, slot| {
                let polled = st.ep.with_connection(self.handle, |c| match c.recv() {
                    Some(m) => Polled::Message(m),
                    None if c.is_recv_finished() => Polled::Finished,
                    None => Polled::Nothing,
                });
                match polled {
                    Some(Polled::Message(m)) => Some(Ok(Some(m))),
                    Some(Polled::Finished) => Some(Ok(None)),
                    // The connection is gone: report how it ended.
                    None => Some(self.outcome_error(slot).map_or(Ok(None), Err)),
                    Some(Polled::Nothing) => match self.outcome_error(slot) {
                        Some(e) => Some(Err(e)),
                        None => st.stopped.as_ref().map(|_| Err(Error::EndpointClosed)),
                    },
                }
            })
            .await;
        // Reading may have opened the flow-control window.
        self.shared.wake_driver.notify_one();
        r
    }

    /// Closes gracefully: everything sent is delivered, the peer learns the
    /// connection ended, and this returns once the peer has closed too.
    pub async fn close(&self) -> Result<(), Error> {
        {
            let mut st = self.shared.lock();
            st.ep.with_connection(self.handle, |c| c.close());
        }
        self.shared.wake_driver.notify_one();
        self.wait(|st, slot| match &slot.outcome {
            Some(Ok(())) => Some(Ok(())),
            Some(Err(_)) => self.outcome_error(slot).map(Err),
            None => st.stopped.as_ref().map(|_| Err(Error::EndpointClosed)),
        })
        .await
    }

    /// Closes at once with an application error code; undelivered data is
    /// discarded on both sides and the peer sees the code and reason.
    pub fn abort(&self, code: u64, reason: &str) {
        {
            let mut st = self.shared.lock();
            st.ep
                .with_connection(self.handle, |c| c.abort(Instant::now(), code, reason));
        }
        self.shared.wake_driver.notify_one();
    }

    /// Counters and current estimates (PROTOCOL.md has their meaning).
    pub fn stats(&self) -> Stats {
        let st = self.shared.lock();
        match st.ep.connection(self.handle) {
            Some(c) => c.stats(),
            None => st
                .slots
                .get(&self.handle)
                .and_then(|s| s.final_stats.clone())
                .unwrap_or_default(),
        }
    }
}

/// The driver task: moves datagrams and timer expiries between the socket
/// and the state machine, and wakes the application.
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
                tx.push(to, &out);
            }
            dispatch_events(&shared, &mut st);
            write_traces(&mut st);
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
                let mut st = shared.lock();
                let now = Instant::now();
                let st = &mut *st;
                let read = socket.try_recv(&mut rx, RECV_BATCH, |from, datagram| {
                    trace_datagram("in", from, datagram);
                    st.ep.handle_datagram(Instant::now(), from, datagram);
                });
                match read {
                    Ok(n) if n > 0 => st.last_rx = Some(now),
                    Ok(_) => {}
                    // ICMP errors surface here on some systems; they concern
                    // one peer, whose connection times out by itself.
                    Err(e) => debug!(error = %e, "receive error"),
                }
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

/// Logs one datagram, decoded, at trace level (`RUST_LOG=rudp=trace`).
fn trace_datagram(way: &str, peer: SocketAddr, bytes: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        trace!(%peer, "{way} {}", crate::wire::describe(bytes));
    }
}

/// How much a trace records (docs/trace.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceLevel {
    /// Every event, every packet sent and received included.
    #[default]
    Packets,
    /// No per-packet events, and at most one `recovery:metrics_updated`
    /// per connection every [`METRICS_INTERVAL_MS`]: losses, state changes
    /// and the windows of a long transfer in a few MB.
    Metrics,
}

impl TraceLevel {
    /// The name in the trace header and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TraceLevel::Packets => "packets",
            TraceLevel::Metrics => "metrics",
        }
    }
}

/// [`TraceLevel::Metrics`]: milliseconds between two metrics events of one
/// connection.
pub const METRICS_INTERVAL_MS: f64 = 10.0;
/// Connections whose last metrics time is remembered, at most.
const METRICS_CONNS_KEPT: usize = 10_000;

/// An open trace file and what its level needs.
#[derive(Debug)]
struct TraceFile {
    w: std::io::BufWriter<std::fs::File>,
    level: TraceLevel,
    /// Trace time of each connection's last metrics event.
    last_metrics: HashMap<crate::wire::ConnectionId, f64>,
}

impl TraceFile {
    /// Whether the level keeps this event.
    fn keeps(&mut self, cid: crate::wire::ConnectionId, name: &str, time: f64) -> bool {
        if self.level == TraceLevel::Packets {
            return true;
        }
        match name {
            "transport:packet_sent" | "transport:packet_received" | "transport:packet_dropped" => {
                false
            }
            "recovery:metrics_updated" => {
                if self.last_metrics.len() >= METRICS_CONNS_KEPT {
                    self.last_metrics.clear(); // At worst one extra line each.
                }
                let last = self.last_metrics.entry(cid).or_insert(f64::NEG_INFINITY);
                let due = time - *last >= METRICS_INTERVAL_MS;
                if due {
                    *last = time;
                }
                due
            }
            _ => true,
        }
    }
}

/// Appends pending trace events to the trace file. A write error stops
/// tracing (with a warning) rather than the connection.
fn write_traces(st: &mut State) {
    use std::io::Write;
    let Some(t) = st.trace.as_mut() else {
        return;
    };
    let mut result = Ok(());
    while let Some((cid, ev)) = st.ep.poll_trace() {
        if !t.keeps(cid, ev.name, ev.time) {
            continue;
        }
        let line = serde_json::json!({
            "time": ev.time,
            "conn": cid.to_string(),
            "name": ev.name,
            "data": ev.data,
        });
        result = result.and_then(|()| writeln!(t.w, "{line}"));
    }
    // Flushed at every turn: the process may exit without destructors.
    if let Err(e) = result.and_then(|()| t.w.flush()) {
        warn!(error = %e, "trace file failed; tracing stops");
        st.trace = None;
        st.ep.set_trace(false);
    }
}

/// Turns endpoint events into wake-ups and recorded outcomes.
fn dispatch_events(shared: &Shared, st: &mut State) {
    while let Some(ev) = st.ep.poll_event() {
        match ev {
            EndpointEvent::Incoming(h) => {
                let remote = st.ep.remote(h);
                if st.closing {
                    st.ep
                        .with_connection(h, |c| c.abort(Instant::now(), 0, "server shutting down"));
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
                let Some(slot) = st.slots.get_mut(&h) else {
                    continue;
                };
                // One span per connection: its ID and peer on every line.
                let span = debug_span!("conn", %cid, peer = %slot.remote);
                let _entered = span.enter();
                match ev {
                    Event::Connected => {
                        debug!("connected");
                        slot.connected = true;
                    }
                    Event::Closed(outcome) => {
                        match &outcome {
                            Ok(()) => debug!("closed gracefully"),
                            Err(e) => debug!(error = %e, "connection failed"),
                        }
                        slot.outcome = Some(outcome);
                        slot.final_stats = stats;
                        // `shutdown` waits on this.
                        shared.incoming.notify_waiters();
                    }
                    Event::Readable | Event::Writable => {}
                }
                slot.notify.notify_waiters();
            }
            EndpointEvent::Drained(h) => {
                if let Some(slot) = st.slots.get_mut(&h) {
                    slot.drained = true;
                    if slot.outcome.is_none() {
                        warn!(peer = %slot.remote, "connection removed without an outcome");
                        slot.outcome = Some(Err(ConnectionError::LocallyAborted { code: 0 }));
                    }
                    slot.notify.notify_waiters();
                    if slot.handles == 0 {
                        st.slots.remove(&h);
                    }
                }
                st.incoming.retain(|&x| x != h);
            }
        }
    }
}

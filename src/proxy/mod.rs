//! `rudp proxy`: a UDP relay that impairs traffic, reproducibly
//! (docs/proxy.md). It knows nothing of rudp and works for any UDP protocol.
//!
//! Shape: the listening socket faces clients; each client address gets its
//! own upstream socket, so the server sees distinct peers. Receiving tasks
//! (one for the listening socket, one per upstream socket) hand datagrams to
//! the core task, which owns the two [`Impairment`] models (one per
//! direction, shared by all clients like one real link), the deliveries due,
//! and the `--schedule` of changes to the models, and sends each datagram
//! when it is due.

mod args;
pub mod capture;
pub mod control;
pub mod control_listener;
pub mod delay_line;
pub mod kernel_drops;
pub mod schedule;

pub use args::{ImpairArgs, DEFAULT_MTU, DEFAULT_QUEUE_DELAY, MAX_BLACKOUTS};

use delay_line::{DelayLine, DelayLineStats, Way};
use rudp_core::impair::{ImpairConfig, ImpairStats, Impairment};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// By default, a client mapping with no traffic for this long is dropped.
pub const MAPPING_IDLE: Duration = Duration::from_secs(60);
/// By default, at most this many client mappings (each an upstream socket,
/// so a file descriptor) are open at once; a new client beyond it replaces
/// the mapping that has been idle longest.
pub const MAX_CLIENTS: usize = 1000;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    /// Client to server.
    pub up: ImpairConfig,
    /// Server to client.
    pub down: ImpairConfig,
    pub seed: u64,
    /// A client mapping with no traffic either way for this long is dropped
    /// (its upstream socket closed); the client's next datagram opens a new
    /// one. Usually [`MAPPING_IDLE`].
    pub mapping_idle: Duration,
    /// Client mappings open at most (`--max-clients`); usually
    /// [`MAX_CLIENTS`]. A new client beyond it evicts the mapping idle
    /// longest, so 20,000 forged sources cannot exhaust file descriptors.
    pub max_clients: usize,
    /// Timed changes to `up` and `down` (`--schedule`), in time order.
    pub schedule: Vec<schedule::Change>,
    /// Where to capture every datagram and its verdict (`--pcap`), and the
    /// file's size limit in bytes.
    pub pcap: Option<(std::path::PathBuf, u64)>,
    /// `--rebind EVERY`: each client's upstream mapping moves to a new
    /// source port about this often, the old one closed, as a NAT rebinds
    /// an idle UDP flow: the server sees the client's address change.
    pub rebind: Option<Duration>,
}

impl ProxyConfig {
    /// A clean link from `listen` to `upstream` with the usual limits (no
    /// impairment, no schedule, no capture); set the rest with struct
    /// update syntax.
    pub fn new(listen: SocketAddr, upstream: SocketAddr, seed: u64) -> Self {
        let clean = ImpairArgs::new();
        Self {
            listen,
            upstream,
            up: clean.up,
            down: clean.down,
            seed,
            mapping_idle: MAPPING_IDLE,
            max_clients: MAX_CLIENTS,
            schedule: Vec::new(),
            pcap: None,
            rebind: None,
        }
    }
}

/// What the proxy did, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client to server.
    pub up: ImpairStats,
    /// Server to client.
    pub down: ImpairStats,
    /// Client mappings currently open.
    pub clients: usize,
    /// Mappings closed to make room for a new client (`--max-clients`).
    pub clients_evicted: u64,
    /// Changes of the `--schedule` applied so far.
    pub schedule_applied: u64,
    /// `--pcap`: datagrams written, and those left out after the limit.
    pub pcap_recorded: u64,
    pub pcap_left_out: u64,
    /// `--rebind`: client mappings moved to a new upstream port.
    pub rebinds: u64,
    /// Datagrams on their way now, the bounds, and the drops for want of
    /// room (delay_line.rs).
    pub delay_line: DelayLineStats,
    /// Datagrams the kernel dropped before the proxy read them, their
    /// socket's receive buffer full (kernel_drops.rs): from clients, and
    /// from the server. Losses of the local host, not of the link.
    pub kernel_dropped_up: u64,
    pub kernel_dropped_down: u64,
}

/// A running proxy. Dropping it stops the proxy.
pub struct Proxy {
    local_addr: SocketAddr,
    seed: u64,
    stats: Arc<Mutex<ProxyStats>>,
    /// Changes to the impairments while it runs (the control API).
    control: mpsc::Sender<ControlRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds the listening address (and creates the `--pcap` file) and
    /// starts relaying; an error says which of the two failed.
    pub async fn start(config: ProxyConfig) -> std::io::Result<Proxy> {
        let context = |what: String| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let listen = Arc::new(
            kernel_drops::bind(config.listen)
                .map_err(context(format!("cannot listen on {}", config.listen)))?,
        );
        let listen_batch = Arc::new(
            quinn_udp::UdpSocketState::new((&*listen).into())
                .map_err(context(format!("cannot set up {}", config.listen)))?,
        );
        if let Some(got) = kernel_drops::capped_buffer(&listen) {
            warn!(
                asked = kernel_drops::SOCKET_BUFFER,
                got,
                "the kernel caps socket buffers (net.core.rmem_max): a sender's bursts may be \
                 dropped before the proxy reads them, counted as kernel drops; raise the cap with \
                 sysctl -w net.core.rmem_max=8388608"
            );
        }
        let capture = match &config.pcap {
            Some((path, limit)) => Some(
                capture::Capture::create(path, *limit)
                    .map_err(context(format!("cannot create {}", path.display())))?,
            ),
            None => None,
        };
        let local_addr = listen.local_addr()?;
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let (stop, stopped) = oneshot::channel();
        let start = Instant::now();
        let core = Core {
            listen_batch,
            listen: listen.clone(),
            upstream: config.upstream,
            up: Impairment::new(config.up, config.seed, start),
            down: Impairment::new(config.down, config.seed.wrapping_add(1), start),
            deliveries: DelayLine::default(),
            mappings: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            mapping_idle: config.mapping_idle,
            max_clients: config.max_clients.max(1),
            evicted: 0,
            start,
            schedule: config.schedule.into(),
            schedule_applied: 0,
            capture,
            rebind: config.rebind.filter(|d| !d.is_zero()),
            rebinds: 0,
            kernel_drops_closed: 0,
            kernel_drops: (0, 0),
            stats: stats.clone(),
        };
        let (tx, rx) = mpsc::channel(4096);
        let (control, control_rx) = mpsc::channel(16);
        let task = tokio::spawn(core.run(rx, tx, control_rx, stopped));
        info!(listen = %local_addr, upstream = %config.upstream, seed = config.seed, "proxy ready");
        Ok(Proxy {
            local_addr,
            seed: config.seed,
            stats,
            control,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The seed in use (chosen at random when none was given).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn stats(&self) -> ProxyStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The impairments in force now, both directions.
    pub async fn impairments(&self) -> Result<ImpairArgs, ControlError> {
        self.update(|current| Ok(current.clone())).await
    }

    /// Changes the impairments while the proxy runs: `change` gets the
    /// current ones and returns the new ones, which take effect at once
    /// for the next datagram; an error changes nothing. The random streams
    /// carry on, so the same seed and the same changes at the same points
    /// give the same decisions (docs/proxy.md).
    pub async fn update(
        &self,
        change: impl FnOnce(&ImpairArgs) -> Result<ImpairArgs, String> + Send + 'static,
    ) -> Result<ImpairArgs, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(ControlRequest {
                change: Box::new(change),
                reply,
            })
            .await
            .map_err(|_| ControlError::Stopped)?;
        answer
            .await
            .map_err(|_| ControlError::Stopped)?
            .map_err(ControlError::Rejected)
    }

    /// Stops relaying and returns the final statistics.
    pub async fn stop(mut self) -> ProxyStats {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
        self.stats()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a change to a running proxy's impairments did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// A name or value was bad; nothing changed.
    #[error("{0}")]
    Rejected(String),
    #[error("the proxy has stopped")]
    Stopped,
}

/// A change to the impairments: the current ones in, the new ones (or why
/// not) out.
type Change = Box<dyn FnOnce(&ImpairArgs) -> Result<ImpairArgs, String> + Send>;

/// A change for the core task to make, and where to say how it went.
struct ControlRequest {
    change: Change,
    reply: oneshot::Sender<Result<ImpairArgs, String>>,
}

/// A datagram handed to the core by a receiving task.
#[derive(Debug)]
enum Input {
    /// From a client to the listening socket.
    FromClient(SocketAddr, Vec<u8>),
    /// From the server to the upstream socket of mapping `id`.
    FromServer(u64, Vec<u8>),
}

struct Mapping {
    id: u64,
    socket: Arc<UdpSocket>,
    /// Batched I/O on `socket` (quinn-udp: GRO and recvmmsg for its
    /// reader, GSO for runs sent to the server), shared with the reader.
    batch: Arc<quinn_udp::UdpSocketState>,
    last_seen: Instant,
    /// When the upstream socket was opened (for `--rebind`).
    bound_at: Instant,
    reader: JoinHandle<()>,
}

impl Mapping {
    /// What the kernel dropped on this mapping's upstream socket so far.
    fn kernel_drops(&self) -> u64 {
        kernel_drops::socket_drops(&*self.socket).unwrap_or(0)
    }
}

struct Core {
    listen: Arc<UdpSocket>,
    /// Batched I/O on `listen`, shared with its reader.
    listen_batch: Arc<quinn_udp::UdpSocketState>,
    upstream: SocketAddr,
    up: Impairment,
    down: Impairment,
    /// Datagrams on their way, bounded (delay_line.rs).
    deliveries: DelayLine,
    mappings: HashMap<SocketAddr, Mapping>,
    by_id: HashMap<u64, SocketAddr>,
    next_id: u64,
    mapping_idle: Duration,
    max_clients: usize,
    evicted: u64,
    /// The proxy's start: schedule times count from it.
    start: Instant,
    /// Changes not yet applied, in time order.
    schedule: std::collections::VecDeque<schedule::Change>,
    schedule_applied: u64,
    /// `--pcap`, while it is open.
    capture: Option<capture::Capture>,
    /// `--rebind`: how often a mapping moves to a new upstream port.
    rebind: Option<Duration>,
    rebinds: u64,
    /// Kernel drops on upstream sockets already closed, and the last
    /// reading of both directions (kernel_drops.rs).
    kernel_drops_closed: u64,
    kernel_drops: (u64, u64),
    stats: Arc<Mutex<ProxyStats>>,
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        tx: mpsc::Sender<Input>,
        mut control: mpsc::Receiver<ControlRequest>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let listen_reader = tokio::spawn(read_clients(
            self.listen.clone(),
            self.listen_batch.clone(),
            tx.clone(),
        ));
        let mut sweep =
            tokio::time::interval((self.mapping_idle / 4).max(Duration::from_millis(10)));
        // `--rebind`: checked a few times per period, so a mapping moves
        // within a quarter period of its due time.
        let mut rebind_tick = tokio::time::interval(
            (self.rebind.unwrap_or(Duration::from_secs(3600)) / 4).max(Duration::from_millis(5)),
        );
        loop {
            let now = Instant::now();
            self.apply_schedule(now);
            self.send_due(now).await;
            self.publish_stats();
            let next = [
                self.schedule.front().map(|c| self.start + c.at),
                self.deliveries.next_due(),
                self.up.next_release(),
                self.down.next_release(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A datagram arrived from a client or the server.
                Some(input) = rx.recv() => {
                    let now = Instant::now();
                    self.on_input(now, input, &tx);
                    // Take whatever else is already queued.
                    while let Ok(input) = rx.try_recv() {
                        self.on_input(now, input, &tx);
                    }
                }
                // A delivery or a held datagram is due.
                () = sleep => {}
                // A change from the control API.
                Some(req) = control.recv() => {
                    let current = self.impairments();
                    let result = (req.change)(&current);
                    if let Ok(next) = &result {
                        if *next != current {
                            info!(settings = ?next, "link changed by the control API");
                        }
                        self.set_impairments(next.clone());
                    }
                    let _ = req.reply.send(result);
                }
                // Forget clients that went quiet; read the kernel's drops.
                _ = sweep.tick() => {
                    self.expire(Instant::now());
                    self.sample_kernel_drops();
                }
                // Move mappings whose port is due for a change.
                _ = rebind_tick.tick(), if self.rebind.is_some() => {
                    self.rebind_due(Instant::now(), &tx);
                }
                // The owner stopped the proxy.
                _ = &mut stopped => break,
            }
        }
        listen_reader.abort();
        for m in self.mappings.values() {
            m.reader.abort();
        }
        self.sample_kernel_drops();
        self.publish_stats();
        if let Some(c) = self.capture.as_mut() {
            c.finish();
        }
    }

    fn on_input(&mut self, now: Instant, input: Input, tx: &mpsc::Sender<Input>) {
        match input {
            Input::FromClient(from, data) => {
                let Some(id) = self.mapping_for(now, from, tx) else {
                    return;
                };
                let original = self.capture.is_some().then(|| data.clone());
                let (deliveries, verdict) = self.up.process_verdict(now, id, data);
                if let (Some(c), Some(original)) = (self.capture.as_mut(), original) {
                    c.record(capture::Way::Up, from, self.upstream, &original, &verdict);
                }
                for d in deliveries {
                    self.deliveries.push(d.at, Way::Up, d.tag, d.data);
                }
            }
            Input::FromServer(id, data) => {
                let client = self.by_id.get(&id).copied();
                if let Some(m) = client.and_then(|a| self.mappings.get_mut(&a)) {
                    m.last_seen = now;
                }
                let original = self.capture.is_some().then(|| data.clone());
                let (deliveries, verdict) = self.down.process_verdict(now, id, data);
                if let (Some(c), Some(original), Some(client)) =
                    (self.capture.as_mut(), original, client)
                {
                    c.record(
                        capture::Way::Down,
                        client,
                        self.upstream,
                        &original,
                        &verdict,
                    );
                }
                for d in deliveries {
                    self.deliveries.push(d.at, Way::Down, d.tag, d.data);
                }
            }
        }
    }

    /// The mapping of a client, created on its first datagram.
    fn mapping_for(
        &mut self,
        now: Instant,
        client: SocketAddr,
        tx: &mpsc::Sender<Input>,
    ) -> Option<u64> {
        if let Some(m) = self.mappings.get_mut(&client) {
            m.last_seen = now;
            return Some(m.id);
        }
        if self.mappings.len() >= self.max_clients {
            self.evict_idlest();
        }
        let (socket, batch) = match self.upstream_socket() {
            // Out of file descriptors (or ports): make room once, and retry.
            Err(_) if self.evict_idlest() => self.upstream_socket(),
            r => r,
        }
        .map_err(|e| warn!(client = %client, error = %e, "cannot open an upstream socket"))
        .ok()?;
        let id = self.next_id;
        self.next_id += 1;
        let reader = tokio::spawn(read_server(socket.clone(), batch.clone(), id, tx.clone()));
        debug!(client = %client, id, "new client");
        self.mappings.insert(
            client,
            Mapping {
                id,
                batch,
                socket,
                last_seen: now,
                bound_at: now,
                reader,
            },
        );
        self.by_id.insert(id, client);
        Some(id)
    }

    /// A socket for one client's traffic to the server, connected to the
    /// server: the kernel then delivers only the server's datagrams on it,
    /// so a third party cannot inject traffic that reaches the client as if
    /// from the server.
    fn upstream_socket(&self) -> std::io::Result<(Arc<UdpSocket>, Arc<quinn_udp::UdpSocketState>)> {
        let bind: SocketAddr = if self.upstream.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = rudp::bind_udp(bind, rudp::PortSharing::Exclusive)?;
        s.connect(self.upstream)?;
        let socket = UdpSocket::from_std(s)?;
        let batch = quinn_udp::UdpSocketState::new((&socket).into())?;
        Ok((Arc::new(socket), Arc::new(batch)))
    }

    fn impairments(&self) -> ImpairArgs {
        ImpairArgs {
            up: self.up.config().clone(),
            down: self.down.config().clone(),
        }
    }

    fn set_impairments(&mut self, next: ImpairArgs) {
        self.up.set_config(next.up);
        self.down.set_config(next.down);
    }

    /// Applies every `--schedule` change whose time has come.
    fn apply_schedule(&mut self, now: Instant) {
        while let Some(change) = self.schedule.front() {
            if self.start + change.at > now {
                break;
            }
            let next = change.apply(&self.impairments());
            info!(at = ?change.at, change = %change.text, "link changed");
            self.set_impairments(next);
            self.schedule_applied += 1;
            self.schedule.pop_front();
        }
    }

    /// Closes the mapping idle longest; false if there is none.
    fn evict_idlest(&mut self) -> bool {
        let Some(addr) = self
            .mappings
            .iter()
            .min_by_key(|(_, m)| m.last_seen)
            .map(|(a, _)| *a)
        else {
            return false;
        };
        if let Some(m) = self.mappings.remove(&addr) {
            m.reader.abort();
            self.kernel_drops_closed += m.kernel_drops();
            self.by_id.remove(&m.id);
            self.evicted += 1;
            debug!(client = %addr, "mapping evicted for a new client");
        }
        true
    }

    async fn send_due(&mut self, now: Instant) {
        for (way, model) in [(Way::Up, &mut self.up), (Way::Down, &mut self.down)] {
            for d in model.poll_release(now) {
                self.deliveries.push(d.at, way, d.tag, d.data);
            }
        }
        let mut due = Vec::new();
        while let Some(d) = self.deliveries.pop_due(now) {
            due.push(d);
        }
        let mut rest = &due[..];
        while let Some((way, id, first)) = rest.first() {
            // A run of datagrams due now for the same socket and peer, all
            // of the first one's size but the last, which may be shorter:
            // what one GSO send carries (the kernel cuts it back apart).
            let size = first.len();
            let mut run = 1;
            let mut bytes = size;
            while let Some((w, i, d)) = rest.get(run) {
                let full = rest[run - 1].2.len() == size;
                if w != way || i != id || !full || d.len() > size || d.is_empty() {
                    break;
                }
                if run >= MAX_SEND_RUN || bytes + d.len() > MAX_SEND_BYTES {
                    break;
                }
                bytes += d.len();
                run += 1;
            }
            let (datagrams, next) = rest.split_at(run);
            rest = next;
            let Some(&client) = self.by_id.get(id) else {
                continue; // The mapping expired meanwhile.
            };
            let (socket, batch, to) = match way {
                Way::Up => match self.mappings.get(&client) {
                    Some(m) => (&*m.socket, &*m.batch, self.upstream),
                    None => continue,
                },
                Way::Down => (&*self.listen, &*self.listen_batch, client),
            };
            if run > 1 && run <= batch.max_gso_segments() {
                let mut contents = Vec::with_capacity(bytes);
                for (_, _, data) in datagrams {
                    contents.extend_from_slice(data);
                }
                match send_batch(socket, batch, to, &contents, size).await {
                    Ok(()) => continue,
                    // A kernel or device that refuses GSO after all:
                    // quinn-udp stops offering it, and this run goes one
                    // by one below, so nothing is lost.
                    Err(e) => debug!(error = %e, ?way, "GSO send failed; sending one by one"),
                }
            }
            let mut r = Ok(());
            for (_, _, data) in datagrams {
                let sent = match way {
                    Way::Up => socket.send(data).await,
                    Way::Down => socket.send_to(data, to).await,
                };
                r = r.and(sent.map(|_| ()));
            }
            if let Err(e) = r {
                debug!(error = %e, ?way, "send failed");
            }
        }
    }

    /// `--rebind`: gives every mapping bound for a whole period a new
    /// upstream socket (a new source port), closing the old one, as a NAT
    /// does when it rebinds a flow. Datagrams the server sends to the old
    /// port are lost, as they would be behind the NAT.
    fn rebind_due(&mut self, now: Instant, tx: &mpsc::Sender<Input>) {
        let Some(every) = self.rebind else {
            return;
        };
        let due: Vec<SocketAddr> = self
            .mappings
            .iter()
            .filter(|(_, m)| now.duration_since(m.bound_at) >= every)
            .map(|(a, _)| *a)
            .collect();
        for client in due {
            let (socket, batch) = match self.upstream_socket() {
                Ok(s) => s,
                Err(e) => {
                    warn!(client = %client, error = %e, "cannot open a new upstream socket; the mapping stays");
                    continue;
                }
            };
            if let Some(m) = self.mappings.get_mut(&client) {
                m.reader.abort();
                self.kernel_drops_closed += m.kernel_drops();
                m.reader =
                    tokio::spawn(read_server(socket.clone(), batch.clone(), m.id, tx.clone()));
                m.batch = batch;
                m.socket = socket;
                m.bound_at = now;
                self.rebinds += 1;
                debug!(client = %client, id = m.id, "mapping moved to a new port");
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let stale: Vec<SocketAddr> = self
            .mappings
            .iter()
            .filter(|(_, m)| now.duration_since(m.last_seen) > self.mapping_idle)
            .map(|(a, _)| *a)
            .collect();
        for a in stale {
            if let Some(m) = self.mappings.remove(&a) {
                m.reader.abort();
                self.kernel_drops_closed += m.kernel_drops();
                self.by_id.remove(&m.id);
                debug!(client = %a, "mapping expired");
            }
        }
    }

    /// Reads the kernel's drop counters: the listening socket's (datagrams
    /// from clients) and every upstream socket's, open or closed (from the
    /// server). A system call per socket: done on the sweep's tick, not
    /// per datagram.
    fn sample_kernel_drops(&mut self) {
        let up = kernel_drops::socket_drops(&*self.listen).unwrap_or(0);
        let down = self.kernel_drops_closed
            + self
                .mappings
                .values()
                .map(Mapping::kernel_drops)
                .sum::<u64>();
        self.kernel_drops = (up, down);
    }

    fn publish_stats(&self) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        (s.kernel_dropped_up, s.kernel_dropped_down) = self.kernel_drops;
        s.up = self.up.stats().clone();
        s.down = self.down.stats().clone();
        s.clients = self.mappings.len();
        s.clients_evicted = self.evicted;
        s.schedule_applied = self.schedule_applied;
        s.rebinds = self.rebinds;
        s.delay_line = self.deliveries.stats();
        if let Some(c) = &self.capture {
            s.pcap_recorded = c.recorded;
            s.pcap_left_out = c.left_out;
        }
    }
}

/// Datagrams and bytes one GSO send of the proxy carries at most.
const MAX_SEND_RUN: usize = 64;
const MAX_SEND_BYTES: usize = 64_000;

/// Sends `contents`, datagrams of `size` bytes back to back (the last may
/// be shorter), to `to` as one GSO send: one system call where there were
/// as many as datagrams (issue #27).
async fn send_batch(
    socket: &UdpSocket,
    state: &quinn_udp::UdpSocketState,
    to: SocketAddr,
    contents: &[u8],
    size: usize,
) -> std::io::Result<()> {
    let t = quinn_udp::Transmit {
        destination: to,
        ecn: None,
        contents,
        segment_size: Some(size),
        src_ip: None,
    };
    loop {
        socket.writable().await?;
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            state.try_send(socket.into(), &t)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

async fn read_clients(
    socket: Arc<UdpSocket>,
    batch: Arc<quinn_udp::UdpSocketState>,
    tx: mpsc::Sender<Input>,
) {
    let (what, buffers) = ("the listening socket", LISTEN_RX_BUFFERS);
    read_batches(&socket, &batch, buffers, what, Input::FromClient, &tx).await;
}

async fn read_server(
    socket: Arc<UdpSocket>,
    batch: Arc<quinn_udp::UdpSocketState>,
    id: u64,
    tx: mpsc::Sender<Input>,
) {
    // Connected: only the server's datagrams arrive here.
    let input = |_, datagram| Input::FromServer(id, datagram);
    read_batches(&socket, &batch, 1, "an upstream socket", input, &tx).await;
}

/// Receive buffers per system call on the listening socket, one for all
/// clients. Each upstream socket (one per client, up to `max_clients`)
/// reads into one buffer, which GRO still fills with many datagrams: as
/// much memory per client as before reads were batched, so a thousand
/// spoofed clients cost no more than they did.
const LISTEN_RX_BUFFERS: usize = 8;
/// The size of each receive buffer: one GRO batch of full-size UDP
/// payloads.
const RX_BUFFER_LEN: usize = 65_536;

/// Reads `socket` until the proxy stops, many datagrams per system call
/// (recvmmsg; with GRO, a buffer holds several datagrams of one sender,
/// cut apart here by their stride, so each is impaired on its own), and
/// hands each to the proxy's loop as `input(from, datagram)`. A relay that
/// made one system call per datagram spent its time in them and in the
/// wake-ups between them (issue #27: the relay capped rudp at 108-125 MB/s
/// with 1472-byte datagrams).
async fn read_batches(
    socket: &UdpSocket,
    state: &quinn_udp::UdpSocketState,
    buffers: usize,
    what: &'static str,
    input: impl Fn(SocketAddr, Vec<u8>) -> Input,
    tx: &mpsc::Sender<Input>,
) {
    use std::io::IoSliceMut;
    let mut bufs: Vec<Box<[u8]>> = (0..buffers)
        .map(|_| vec![0u8; RX_BUFFER_LEN].into_boxed_slice())
        .collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); buffers];
    loop {
        if let Err(e) = socket.readable().await {
            debug!(error = %e, "cannot wait on {what}");
            return;
        }
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = match socket.try_io(tokio::io::Interest::READABLE, || {
            state.recv(socket.into(), &mut slices, &mut meta)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            // An ICMP "port unreachable" from a server that is not up yet.
            Err(e) => {
                debug!(error = %e, "receive error on {what}");
                continue;
            }
        };
        for (m, buf) in meta.iter().zip(&bufs).take(n) {
            let data = &buf[..m.len.min(buf.len())];
            // An empty datagram is a datagram too (`chunks` yields none).
            let stride = if data.is_empty() { 1 } else { m.stride.max(1) };
            let count = data.len().div_ceil(stride).max(1);
            for i in 0..count {
                let datagram =
                    &data[(i * stride).min(data.len())..((i + 1) * stride).min(data.len())];
                if tx.send(input(m.addr, datagram.to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The statistics as a table for people.
pub fn format_stats(s: &ProxyStats) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<16}{:>10}{:>11}{:>8}{:>8}{:>8}{:>10}{:>6}{:>8}{:>9}{:>9}{:>12}{:>12}\n",
        "direction",
        "in",
        "forwarded",
        "loss",
        "burst",
        "queue",
        "blackout",
        "mtu",
        "dup",
        "reorder",
        "corrupt",
        "bytes in",
        "bytes out"
    ));
    for (name, d) in [("client->server", &s.up), ("server->client", &s.down)] {
        out.push_str(&format!(
            "{:<16}{:>10}{:>11}{:>8}{:>8}{:>8}{:>10}{:>6}{:>8}{:>9}{:>9}{:>12}{:>12}\n",
            name,
            d.datagrams_in,
            d.forwarded,
            d.dropped_loss,
            d.dropped_burst,
            d.dropped_queue,
            d.dropped_blackout,
            d.dropped_mtu,
            d.duplicated,
            d.reordered,
            d.corrupted,
            d.bytes_in,
            d.bytes_forwarded
        ));
    }
    if s.kernel_dropped_up + s.kernel_dropped_down > 0 {
        out.push_str(&format!(
            "kernel: dropped before the proxy read them (socket buffer full): client->server {}, \
             server->client {}; a loss of this host, not of the link\n",
            s.kernel_dropped_up, s.kernel_dropped_down
        ));
    }
    out.push_str(&format!(
        "clients: {} open, {} evicted to make room",
        s.clients, s.clients_evicted
    ));
    if s.rebinds > 0 {
        out.push_str(&format!(", {} moved to a new port (--rebind)", s.rebinds));
    }
    out.push('\n');
    if s.pcap_recorded + s.pcap_left_out > 0 {
        out.push_str(&format!(
            "pcap: {} datagram(s) recorded, {} left out after the size limit\n",
            s.pcap_recorded, s.pcap_left_out
        ));
    }
    if s.schedule_applied > 0 {
        out.push_str(&format!(
            "schedule: {} change(s) applied\n",
            s.schedule_applied
        ));
    }
    out
}

/// Writes the statistics as JSON to `path`, atomically.
pub fn write_stats_json(path: &std::path::Path, s: &ProxyStats) -> std::io::Result<()> {
    crate::report::write_json_atomic(path, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's drops are shown, per direction, only when there were
    /// some: a loss of this host, told apart from the link's.
    #[test]
    fn kernel_drops_get_their_own_line() {
        let quiet = format_stats(&ProxyStats::default());
        assert!(!quiet.contains("kernel:"), "{quiet}");
        let s = ProxyStats {
            kernel_dropped_up: 146,
            ..ProxyStats::default()
        };
        let shown = format_stats(&s);
        assert!(
            shown.contains("kernel: dropped before the proxy read them (socket buffer full): client->server 146, server->client 0"),
            "{shown}"
        );
    }
}

//! Two endpoints joined by impaired links, in virtual time.
//!
//! Nothing here sleeps or touches a socket: [`Sim::step`] jumps the clock
//! to the next thing that happens (a datagram arriving, a timer firing, a
//! held datagram being released), so a connection across a lossy 100 ms
//! path takes microseconds of real time. The same seed gives the same run.

use crate::conn::Event;
use crate::endpoint::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent};
use crate::error::ConnectionError;
use crate::impair::{ImpairConfig, ImpairStats, Impairment};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A handshake [`Sim::connect`] could not finish.
#[derive(Debug)]
pub struct HandshakeFailed {
    /// The client's connection.
    pub client: ConnectionHandle,
    /// The server's, if it announced one.
    pub server: Option<ConnectionHandle>,
    /// How the client's attempt ended, if it did.
    pub outcome: Option<Result<(), ConnectionError>>,
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// Decides, before the impairment model, whether to drop a datagram: lets a
/// test remove exactly the packet it wants. Returns true to drop.
pub type Filter = Box<dyn FnMut(Instant, Direction, &[u8]) -> bool>;

/// A datagram on the simulated wire: (arrival, sequence number for a stable
/// order among equal arrivals, direction, bytes).
type InFlight = (Instant, u64, Direction, Vec<u8>);

/// A client endpoint and a server endpoint joined by one link each way.
pub struct Sim {
    now: Instant,
    start: Instant,
    /// The client side.
    pub client: Endpoint,
    /// The server side.
    pub server: Endpoint,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    to_server: Impairment,
    to_client: Impairment,
    /// Datagrams on the wire: (arrival, sequence for stable order, way, bytes).
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    buf: Vec<u8>,
    filter: Option<Filter>,
    trace: bool,
    outages: [Outage; 2],
    /// A NAT in front of the client that rebinds its mapping this often:
    /// the client's address (as the server sees it) moves to the next port.
    rebind_every: Option<Duration>,
    next_rebind: Instant,
    rebinds: u64,
    /// Bytes the server sent to addresses that are not the client's now,
    /// by address: what a spoofer could make it send (§6.7, §6.9).
    sent_elsewhere: std::collections::BTreeMap<SocketAddr, u64>,
}

/// Tracks how long a direction went without delivering anything while
/// datagrams were being dropped: an effective cut of the link.
#[derive(Debug, Clone, Copy)]
struct Outage {
    last_delivery: Instant,
    dropped_since: bool,
    longest: Duration,
}

impl Outage {
    fn new(start: Instant) -> Self {
        Self {
            last_delivery: start,
            dropped_since: false,
            longest: Duration::ZERO,
        }
    }

    fn close_at(&mut self, t: Instant) {
        if self.dropped_since {
            self.longest = self
                .longest
                .max(t.saturating_duration_since(self.last_delivery));
        }
    }
}

impl Sim {
    /// A simulation whose every random choice derives from `seed`.
    pub fn new(
        seed: u64,
        client: EndpointConfig,
        server: EndpointConfig,
        to_server: ImpairConfig,
        to_client: ImpairConfig,
    ) -> Self {
        let start = Instant::now();
        Self {
            now: start,
            start,
            client: Endpoint::client(client, seed_bytes(seed.wrapping_mul(3).wrapping_add(1))),
            server: Endpoint::server(server, seed_bytes(seed.wrapping_mul(5).wrapping_add(2))),
            client_addr: "127.0.0.1:1000".parse().unwrap_or_else(|_| unreachable!()),
            server_addr: "127.0.0.1:2000".parse().unwrap_or_else(|_| unreachable!()),
            to_server: Impairment::new(to_server, seed ^ 0x5555, start),
            to_client: Impairment::new(to_client, seed ^ 0xaaaa, start),
            wire: BinaryHeap::new(),
            seq: 0,
            buf: Vec::with_capacity(65536),
            filter: None,
            trace: false,
            outages: [Outage::new(start); 2],
            rebind_every: None,
            next_rebind: start,
            rebinds: 0,
            sent_elsewhere: Default::default(),
        }
    }

    /// Moves the client to `to` at once, as a client that changes networks
    /// does: its datagrams come from there, and datagrams to its old
    /// address are lost.
    pub fn move_client(&mut self, to: SocketAddr) {
        self.client_addr = to;
    }

    /// Hands the server `data` from `from` now, as an attacker who can
    /// write any source address would: not through the link.
    pub fn inject_to_server(&mut self, from: SocketAddr, data: &[u8]) {
        self.server.handle_datagram(self.now, from, data);
    }

    /// Bytes the server sent to `addr` while it was not the client's
    /// address (an old address, or one a spoofer used).
    pub fn server_sent_elsewhere(&self, addr: SocketAddr) -> u64 {
        self.sent_elsewhere.get(&addr).copied().unwrap_or(0)
    }

    /// Puts a rebinding NAT in front of the client (`None` removes it):
    /// every `every` of virtual time from now, the client's address as the
    /// server sees it moves to the next port, and datagrams the server
    /// sends to an older address are dropped, as the NAT no longer maps it.
    /// The simulator's counterpart of `rudp proxy --rebind`.
    pub fn set_rebind(&mut self, every: Option<Duration>) {
        self.rebind_every = every.filter(|d| !d.is_zero());
        self.next_rebind = self.now + self.rebind_every.unwrap_or_default();
    }

    /// Changes the links' impairments from now on, each way (what `rudp
    /// proxy --schedule` does): for instance a smaller MTU mid-run, a black
    /// hole appearing. Datagrams already on the wire are unaffected.
    pub fn set_links(&mut self, to_server: ImpairConfig, to_client: ImpairConfig) {
        self.to_server.set_config(to_server);
        self.to_client.set_config(to_client);
    }

    /// Times the client's address moved (`set_rebind`).
    pub fn rebinds(&self) -> u64 {
        self.rebinds
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The server's simulated address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    /// The client's simulated address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Prints every datagram sent and delivered to standard error.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// Drops the datagrams `filter` picks, before the impairment model.
    pub fn set_filter(&mut self, filter: Filter) {
        self.filter = Some(filter);
    }

    /// The longest time each direction (to server, to client) delivered
    /// nothing while dropping everything it was given: an effective cut.
    pub fn longest_outages(&self) -> (Duration, Duration) {
        let mut o = self.outages;
        for x in o.iter_mut() {
            x.close_at(self.now);
        }
        (o[0].longest, o[1].longest)
    }

    /// What the link did in each direction.
    pub fn link_stats(&self) -> (&ImpairStats, &ImpairStats) {
        (self.to_server.stats(), self.to_client.stats())
    }

    /// Puts on the wire everything both endpoints want to send now.
    pub fn flush(&mut self) {
        for way in [Direction::ToServer, Direction::ToClient] {
            loop {
                let ep = match way {
                    Direction::ToServer => &mut self.client,
                    Direction::ToClient => &mut self.server,
                };
                let Some(to) = ep.poll_transmit(self.now, &mut self.buf) else {
                    break;
                };
                if way == Direction::ToClient && to != self.client_addr {
                    // The NAT has no mapping for an old address any more.
                    self.outages[way as usize].dropped_since = true;
                    *self.sent_elsewhere.entry(to).or_default() += self.buf.len() as u64;
                    continue;
                }
                let data = self.buf.clone();
                if self.trace {
                    eprintln!(
                        "{:>12?} send {way:?} {}",
                        self.now - self.start,
                        crate::wire::describe(&data)
                    );
                }
                if let Some(f) = self.filter.as_mut() {
                    if f(self.now, way, &data) {
                        self.outages[way as usize].dropped_since = true;
                        continue;
                    }
                }
                let link = match way {
                    Direction::ToServer => &mut self.to_server,
                    Direction::ToClient => &mut self.to_client,
                };
                let dropped_before = dropped(link.stats());
                let deliveries = link.process(self.now, data);
                if dropped(link.stats()) > dropped_before {
                    self.outages[way as usize].dropped_since = true;
                }
                for d in deliveries {
                    self.seq += 1;
                    self.wire.push(Reverse((d.at, self.seq, way, d.data)));
                }
            }
        }
    }

    /// The handshake every test starts from: opens a connection from the
    /// client and steps until the client is established and the server has
    /// announced it (at most `max_steps` steps, or until the client's
    /// attempt ends). Events of both endpoints up to then are consumed.
    pub fn connect(
        &mut self,
        max_steps: usize,
    ) -> Result<(ConnectionHandle, ConnectionHandle), HandshakeFailed> {
        let c = self.client.connect(self.now, self.server_addr);
        let mut s = None;
        let mut outcome = None;
        for _ in 0..max_steps {
            if !self.step() {
                break;
            }
            while let Some(e) = self.server.poll_event() {
                if let EndpointEvent::Incoming(h) = e {
                    s = Some(h);
                }
            }
            while let Some(e) = self.client.poll_event() {
                if let EndpointEvent::Connection(h, Event::Closed(r)) = e {
                    if h == c {
                        outcome = Some(r);
                    }
                }
            }
            let up = self
                .client
                .connection(c)
                .is_some_and(|x| x.is_established());
            match (up, s, &outcome) {
                (true, Some(s), _) => return Ok((c, s)),
                (_, _, Some(_)) => break,
                _ => {}
            }
        }
        Err(HandshakeFailed {
            client: c,
            server: s,
            outcome,
        })
    }

    /// Sends what is pending, then advances the clock to the next event and
    /// handles it. Returns false when nothing at all is scheduled.
    pub fn step(&mut self) -> bool {
        self.step_until(None)
    }

    /// [`Self::step`], but the clock stops at `limit` if nothing happens
    /// before: lets a test act at times of its own (a message every 10 ms)
    /// on a connection that would otherwise sleep until its next timer.
    pub fn step_until(&mut self, limit: Option<Instant>) -> bool {
        self.flush();
        let next = [
            self.wire.peek().map(|Reverse((t, ..))| *t),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.to_server.next_release(),
            self.to_client.next_release(),
        ]
        .into_iter()
        .flatten()
        .chain(limit)
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        if let Some(every) = self.rebind_every {
            while self.now >= self.next_rebind {
                let port = self.client_addr.port().wrapping_add(1).max(1);
                self.client_addr.set_port(port);
                self.next_rebind += every;
                self.rebinds += 1;
            }
        }
        while let Some(Reverse((t, ..))) = self.wire.peek() {
            if *t > self.now {
                break;
            }
            let Some(Reverse((_, _, way, data))) = self.wire.pop() else {
                break;
            };
            let outage = &mut self.outages[way as usize];
            outage.close_at(self.now);
            outage.last_delivery = self.now;
            outage.dropped_since = false;
            if self.trace {
                eprintln!(
                    "{:>12?}   recv {way:?} {}",
                    self.now - self.start,
                    crate::wire::describe(&data)
                );
            }
            match way {
                Direction::ToServer => {
                    self.server
                        .handle_datagram(self.now, self.client_addr, &data)
                }
                Direction::ToClient => {
                    self.client
                        .handle_datagram(self.now, self.server_addr, &data)
                }
            }
        }
        for (way, link) in [
            (Direction::ToServer, &mut self.to_server),
            (Direction::ToClient, &mut self.to_client),
        ] {
            for d in link.poll_release(self.now) {
                self.seq += 1;
                self.wire.push(Reverse((d.at, self.seq, way, d.data)));
            }
        }
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        true
    }
}

fn dropped(s: &ImpairStats) -> u64 {
    s.dropped_loss + s.dropped_burst + s.dropped_queue + s.dropped_blackout + s.dropped_mtu
}

/// A 256-bit endpoint seed from a small number, for reproducible tests and
/// simulations (a real endpoint takes 32 random bytes).
pub fn seed_bytes(n: u64) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed
}

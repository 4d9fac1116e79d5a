//! Hostile peers II (issue #22): bounds that count entries as well as
//! bytes. Each test drives one attack against the sans-IO endpoint in
//! virtual time and measures what the server's thread really allocated
//! (a counting allocator, so a bound cannot be met by miscounting), prints
//! the figure, and checks it against the bound docs/security.md states.

mod common;

use common::FirstStream;
use rudp_core::config::Config;
use rudp_core::endpoint::{ConnectionHandle, Endpoint, EndpointConfig, RetryPolicy};
use rudp_core::error::ConnectionError;
use rudp_core::impair::ImpairConfig;
use rudp_core::sim::Sim;
use rudp_core::wire::frame::{SkipFrame, StreamFrame, StreamNFrame};
use rudp_core::wire::{ConnectionId, Frame, Header};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

/// Counts the bytes each thread holds: the tests run in parallel threads,
/// and each drives its endpoints on its own.
struct PerThread;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counter is a const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = HELD.try_with(|h| h.set(h.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

fn held() -> isize {
    HELD.with(Cell::get)
}

const MIB: isize = 1 << 20;

/// An established connection in version `version`; the server's
/// application never reads.
fn established(version: u8, server: EndpointConfig) -> (Sim, ConnectionHandle) {
    let conn = Config::builder().version(version).build().expect("valid");
    let client = EndpointConfig::new(conn);
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(22, client, server, clean.clone(), clean);
    let (_, s) = sim.connect(10_000).expect("handshake");
    (sim, s)
}

/// Writes forged DATA packets to the server's connection `s` as its
/// client, in clear, with the next packet numbers.
struct Forger {
    dcid: ConnectionId,
    pn: u64,
    version: u8,
    from: std::net::SocketAddr,
    now: Instant,
}

impl Forger {
    fn new(sim: &Sim, s: ConnectionHandle) -> Self {
        let conn = sim.server.connection(s).expect("the server's connection");
        Self {
            dcid: conn.local_cid(),
            pn: conn.largest_received().expect("a packet received") + 1,
            version: conn.version(),
            from: sim.client_addr(),
            now: sim.now(),
        }
    }

    fn send(&mut self, server: &mut Endpoint, frames: &[Frame<'_>]) {
        let header = Header {
            version: self.version,
            dcid: self.dcid,
            pn: self.pn,
            ..common::DATA
        };
        let out = common::clear_packet(header, frames);
        self.pn += 1;
        server.handle_datagram(self.now, self.from, &out);
        // What the application and the driver take anyway: events, and
        // the datagrams to send (ACKs).
        while server.poll_event().is_some() {}
        let mut buf = Vec::new();
        while server.poll_transmit(self.now, &mut buf).is_some() {}
    }
}

fn open(server: &Endpoint, s: ConnectionHandle) -> bool {
    server.connection(s).is_some_and(|c| c.outcome().is_none())
}

/// Issue #22: 16 MiB of 0x00 bytes over 100 streams is 16 million empty
/// messages; it grew `rudp server` by about 350 MiB. Now each waits as the
/// byte it arrived as.
#[test]
fn empty_messages_on_a_hundred_streams_cost_their_bytes() {
    let (mut sim, s) = established(2, EndpointConfig::default());
    let mut forger = Forger::new(&sim, s);
    let zeros = [0u8; 1300];
    let window = Config::default().streams_receive_window();
    let before = held();
    let mut sent = 0u64;
    let mut offsets = [0u64; 100];
    'fill: for round in 0.. {
        for (i, offset) in offsets.iter_mut().enumerate() {
            if sent + zeros.len() as u64 > window {
                break 'fill;
            }
            forger.send(
                &mut sim.server,
                &[Frame::StreamN(StreamNFrame {
                    id: 2 * (i as u64 + 1),
                    offset: *offset,
                    message_start: None,
                    data: &zeros,
                    fin: false,
                })],
            );
            *offset += zeros.len() as u64;
            sent += zeros.len() as u64;
        }
        assert!(round < 1_000_000);
    }
    let growth = held() - before;
    assert!(
        open(&sim.server, s),
        "within the window: the connection stays"
    );
    println!(
        "{sent} empty messages on 100 streams: the server's thread grew by {} KiB",
        growth / 1024
    );
    assert!(growth <= 64 * MIB, "grew by {growth} bytes");
}

/// Issue #22: 4 MiB of empty messages on version 1's only stream: +146 MiB
/// before.
#[test]
fn empty_messages_on_version_1_cost_their_bytes() {
    let (mut sim, s) = established(1, EndpointConfig::default());
    let mut forger = Forger::new(&sim, s);
    let zeros = [0u8; 1300];
    let before = held();
    let mut offset = 0u64;
    while offset + 1300 <= 4 << 20 {
        forger.send(
            &mut sim.server,
            &[Frame::Stream(StreamFrame {
                offset,
                data: &zeros,
                fin: false,
            })],
        );
        offset += 1300;
    }
    let growth = held() - before;
    assert!(open(&sim.server, s));
    println!(
        "{offset} empty messages on version 1: the server's thread grew by {} KiB",
        growth / 1024
    );
    assert!(growth <= 24 * MIB, "grew by {growth} bytes");
}

/// Issue #22: a million one-byte SKIPs in order cost 33 bytes each; they
/// now merge into one report.
#[test]
fn a_million_one_byte_skips_merge() {
    let (mut sim, s) = established(2, EndpointConfig::default());
    let mut forger = Forger::new(&sim, s);
    let before = held();
    let mut offset = 0u64;
    while offset < 1_000_000 {
        let frames: Vec<Frame> = (0..100)
            .map(|i| {
                Frame::Skip(SkipFrame {
                    id: 2,
                    offset: offset + i,
                    len: 1,
                    messages: 1,
                })
            })
            .collect();
        forger.send(&mut sim.server, &frames);
        offset += 100;
    }
    let growth = held() - before;
    assert!(open(&sim.server, s));
    println!(
        "{offset} one-byte SKIPs: the server's thread grew by {} KiB",
        growth / 1024
    );
    assert!(growth <= 2 * MIB, "grew by {growth} bytes");
}

/// Issue #22: 300 unread datagrams of 65,000 bytes filled a queue of 256
/// (16 MiB); the queue is now bounded in bytes too (1 MiB by default).
#[test]
fn unread_datagrams_are_bounded_in_bytes() {
    let (mut sim, s) = established(2, EndpointConfig::default());
    let mut forger = Forger::new(&sim, s);
    let payload = vec![7u8; 65_000];
    let before = held();
    for _ in 0..300 {
        forger.send(&mut sim.server, &[Frame::Datagram(&payload)]);
    }
    let growth = held() - before;
    let conn = sim.server.connection(s).expect("connection");
    assert!(conn.outcome().is_none());
    let stats = conn.stats();
    println!(
        "300 unread datagrams of 65,000 bytes: {} kept, {} dropped, the server's thread grew by {} KiB",
        stats.streams.datagrams_received,
        stats.streams.datagrams_dropped_received,
        growth / 1024
    );
    assert!(
        stats.streams.datagrams_dropped_received > 0,
        "the byte bound dropped some"
    );
    assert!(growth <= 4 * MIB, "grew by {growth} bytes");
}

/// Issue #22 item 3: established connections from one source are capped
/// (the pending-handshake cap alone let one address hold 60 connections
/// and 2 GiB).
#[test]
fn one_source_cannot_hold_more_established_connections_than_its_share() {
    let server = EndpointConfig::builder()
        .retry(RetryPolicy::Never)
        .max_connections_per_source(3)
        .build()
        .expect("valid");
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(7, EndpointConfig::default(), server, clean.clone(), clean);
    for i in 0..3 {
        sim.connect(10_000)
            .unwrap_or_else(|e| panic!("connection {i}: {e:?}"));
    }
    let refused = sim.connect(10_000).expect_err("a fourth is refused");
    println!("fourth connection from one address: {:?}", refused.outcome);
    assert!(
        matches!(&refused.outcome, Some(Err(ConnectionError::PeerTransportClose { reason, .. }))
            if reason.contains("too many connections from this address")),
        "{:?}",
        refused.outcome
    );
    assert_eq!(sim.server.stats().refused_per_source, 1);
}

/// Issue #22 item 2: past the endpoint's memory limit, new connections are
/// refused with a reason; those open carry on.
#[test]
fn past_the_memory_limit_new_connections_are_refused() {
    let server = EndpointConfig::builder()
        .retry(RetryPolicy::Never)
        .max_memory(64 << 10)
        .build()
        .expect("valid");
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(8, EndpointConfig::default(), server, clean.clone(), clean);
    let (c, s) = sim.connect(10_000).expect("first connection");
    // The server's application reads nothing: 200 KB wait there.
    {
        let mut conn = sim.client.connection_mut(c).expect("client");
        for _ in 0..200 {
            conn.send(bytes::Bytes::from(vec![1u8; 1000]))
                .expect("room to send");
        }
    }
    for _ in 0..2000 {
        sim.step();
    }
    let memory = sim.server.memory();
    assert!(memory >= 64 << 10, "the server holds {memory} bytes");
    let refused = sim.connect(10_000).expect_err("refused");
    println!(
        "server holding {memory} bytes (limit 65536): {:?}",
        refused.outcome
    );
    assert!(
        matches!(&refused.outcome, Some(Err(ConnectionError::PeerTransportClose { reason, .. }))
            if reason.contains("memory limit")),
        "{:?}",
        refused.outcome
    );
    assert!(open(&sim.server, s), "the first connection carries on");
}

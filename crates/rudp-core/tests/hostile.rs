//! Hostile peers (issue #12): each test drives one attack from the review
//! against the sans-IO endpoint in virtual time, checks the limit that now
//! bounds it, and prints the figure (PROTOCOL.md §13, docs/security.md).

mod common;

use bytes::Bytes;
use common::{forged_initial, replies, template_initial, token_of, FirstStream};
use rudp_core::config::Config;
use rudp_core::conn::Event;
use rudp_core::endpoint::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, RetryPolicy};
use rudp_core::error::{ConnectionError, TransportCode};
use rudp_core::impair::ImpairConfig;
use rudp_core::psk::Psk;
use rudp_core::sim::Sim;
use rudp_core::wire::frame::decode_all;
use rudp_core::wire::frame::StreamFrame;
use rudp_core::wire::packet::decode;
use rudp_core::wire::{ConnectionId, Datagram, Frame, HandshakeParams, Header, PacketType};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server_cfg(retry: RetryPolicy) -> EndpointConfig {
    EndpointConfig::builder()
        .retry(retry)
        .build()
        .expect("valid settings")
}

/// A sim whose client is established and whose server announced the
/// connection: (sim, client handle, server handle).
fn established(
    client: EndpointConfig,
    server: EndpointConfig,
) -> (Sim, ConnectionHandle, ConnectionHandle) {
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(3, client, server, clean.clone(), clean);
    let (c, s) = sim.connect(10_000).expect("handshake");
    (sim, c, s)
}

/// What a hostile client needs to write packets the server's connection
/// accepts: the server's CID and the next packet number in its window.
fn target(sim: &Sim, s: ConnectionHandle) -> (ConnectionId, u64) {
    let conn = sim.server.connection(s).expect("the server's connection");
    let next = conn.largest_received().expect("a packet received") + 1;
    (conn.local_cid(), next)
}

/// A DATA packet as a hostile client would write it, in clear.
fn forged_data(dcid: ConnectionId, pn: u64, frames: &[Frame<'_>]) -> Vec<u8> {
    common::clear_packet(
        Header {
            dcid,
            pn,
            ..common::DATA
        },
        frames,
    )
}

/// An INITIAL with these parameters and frames, padded to `len` bytes.
fn initial(scid: u64, pn: u64, params: Option<HandshakeParams>, len: usize) -> Vec<u8> {
    let header = Header {
        scid: Some(ConnectionId(scid)),
        pn,
        ..common::INITIAL
    };
    let first = match params {
        Some(p) => Frame::Handshake(p),
        None => Frame::Ping,
    };
    common::padded_packet(header, &[first], len)
}

fn params() -> HandshakeParams {
    HandshakeParams {
        max_ack_delay_micros: 1000,
        idle_timeout_millis: 30_000,
        initial_max_data: 4 << 20,
        max_message_size: 1 << 20,
        max_datagram_size: 1200,
    }
}

/// Bytes of every datagram the server wants to send now, and to whom.
fn drain(server: &mut Endpoint, now: Instant) -> Vec<(SocketAddr, usize)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(to) = server.poll_transmit(now, &mut buf) {
        out.push((to, buf.len()));
    }
    out
}

// ----- Item 1: out-of-order fragments --------------------------------------

/// One byte at every other offset of the window, never offset 0, packed
/// ~150 frames to a packet. Before: 20x the bytes sent in server memory
/// (299 MiB for 15 MB). Now the reassembly holds at most the window, the
/// peer is closed with FLOW_CONTROL_ERROR once its pieces pass the cap, and
/// the memory is returned at once.
#[test]
fn out_of_order_fragments_cost_at_most_the_window() {
    let (mut sim, _c, s) = established(EndpointConfig::default(), server_cfg(RetryPolicy::Never));
    let from = sim.client_addr();
    let window = sim
        .server
        .connection(s)
        .unwrap()
        .stats()
        .buffers
        .receive_window;
    let (dcid, mut pn) = target(&sim, s);
    let byte = [0x55u8];
    let (mut offset, mut sent, mut peak) = (2u64, 0usize, 0u64);
    let now = sim.now();
    while sim.server.connection(s).unwrap().outcome().is_none() {
        let frames: Vec<Frame> = (0..150)
            .map(|i| {
                Frame::Stream(StreamFrame {
                    offset: offset + 2 * i,
                    data: &byte,
                    fin: false,
                })
            })
            .collect();
        offset += 300;
        let d = forged_data(dcid, pn, &frames);
        pn += 1;
        sent += d.len();
        sim.server.handle_datagram(now, from, &d);
        peak = peak.max(
            sim.server
                .connection(s)
                .unwrap()
                .stats()
                .buffers
                .receive_memory,
        );
        assert!(offset < window, "never stopped");
    }
    let conn = sim.server.connection(s).unwrap();
    match conn.outcome() {
        Some(Err(ConnectionError::LocalTransportClose { code, .. })) => {
            assert_eq!(*code, TransportCode::FlowControl)
        }
        other => panic!("expected FLOW_CONTROL_ERROR, got {other:?}"),
    }
    println!(
        "fragment attack: {sent} bytes sent, peak {peak} bytes held (window {window}), \
         {} held after the close",
        conn.stats().buffers.receive_memory
    );
    assert!(
        peak <= window,
        "{peak} bytes held for a {window}-byte window"
    );
    assert!(
        peak <= 2 * offset + 1024,
        "{peak} bytes held for data spanning {offset} bytes"
    );
    assert_eq!(
        conn.stats().buffers.receive_memory,
        0,
        "memory returned at the close"
    );
}

// ----- Item 2: amplification through CLOSING -------------------------------

/// One INITIAL with invalid parameters from the victim's address, then a
/// stream of further INITIALs with the same source CID (full-size ones with
/// new packet numbers, 33-byte ones, and replays). Before: 6.7x to 8x. Now
/// at most 3x in every configuration, and far less in practice.
#[test]
fn closing_state_cannot_amplify_towards_a_spoofed_address() {
    let victim: SocketAddr = "127.0.0.9:5000".parse().unwrap();
    let bad = HandshakeParams {
        max_datagram_size: 100, // INVALID_PARAMETERS
        ..params()
    };
    for retry in [
        RetryPolicy::Never,
        EndpointConfig::default().retry(),
        RetryPolicy::Always,
    ] {
        let mut server = Endpoint::server(server_cfg(retry), rudp_core::sim::seed_bytes(9));
        let mut now = Instant::now();
        let (mut received, mut sent) = (0usize, 0usize);
        let first = initial(42, 1, Some(bad), 1200);
        for i in 0..2_000u64 {
            let d = match i % 4 {
                0 if i == 0 => first.clone(),
                0 => first.clone(), // replay: a duplicate
                1 => initial(42, 1 + i, Some(bad), 33),
                _ => initial(42, 1 + i, Some(bad), 1200),
            };
            received += d.len();
            server.handle_datagram(now, victim, &d);
            sent += drain(&mut server, now)
                .iter()
                .filter(|(to, _)| *to == victim)
                .map(|(_, n)| n)
                .sum::<usize>();
            now += Duration::from_millis(1);
            server.handle_timeout(now);
        }
        let ratio = sent as f64 / received as f64;
        println!("{retry:?}: {received} bytes in, {sent} bytes out: {ratio:.4}x");
        assert!(sent > 0, "{retry:?}: nothing was answered at all");
        assert!(
            sent <= 3 * received,
            "{retry:?}: {sent} bytes out for {received} in"
        );
        assert!(server.stats().dropped_small_initial >= 500);
    }
}

/// The CLOSE replies of a connection in CLOSING are rate-limited: the 1st,
/// 2nd, 4th, 8th... packet received draws one (RFC 9000 §10.2.1).
#[test]
fn closing_replies_are_rate_limited() {
    let (mut sim, c, s) = established(EndpointConfig::default(), server_cfg(RetryPolicy::Never));
    let now = sim.now();
    sim.server
        .with_connection(s, |x| {
            x.abort(now, rudp_core::error::VarInt::from_u32(7), "go away")
        })
        .unwrap();
    let _ = drain(&mut sim.server, now);
    let from = sim.client_addr();
    let (dcid, first) = target(&sim, s);
    let mut closes = 0;
    for pn in first..first + 1000 {
        sim.server
            .handle_datagram(now, from, &forged_data(dcid, pn, &[Frame::Ping]));
        closes += drain(&mut sim.server, now).len();
    }
    let _ = c;
    println!("1000 packets in CLOSING drew {closes} CLOSE replies");
    assert_eq!(closes, 10, "replies at packets 1, 2, 4, ... 512");
}

// ----- Item 3: no phantom connections --------------------------------------

/// A spoofed INITIAL makes a connection the application never sees; it
/// gives up after the handshake deadline, however many INITIALs keep it
/// company, and a real client is announced as soon as it proves its address.
#[test]
fn a_spoofed_initial_never_reaches_the_application() {
    let template = template_initial();
    let mut server = Endpoint::server(
        server_cfg(RetryPolicy::Never),
        rudp_core::sim::seed_bytes(4),
    );
    let t0 = Instant::now();
    let spoofed: SocketAddr = "127.0.0.7:4000".parse().unwrap();
    server.handle_datagram(t0, spoofed, &forged_initial(&template, 99, None));
    assert_eq!(server.connection_count(), 1);
    let mut t = t0;
    while t < t0 + Duration::from_secs(31) {
        // Full-size INITIAL retransmissions (for 25 s) do not extend the
        // handshake past its deadline of one idle timeout.
        if t < t0 + Duration::from_secs(25) {
            server.handle_datagram(t, spoofed, &forged_initial(&template, 99, None));
        }
        let _ = drain(&mut server, t);
        t += Duration::from_millis(500);
        server.handle_timeout(t);
        while let Some(e) = server.poll_event() {
            assert!(
                !matches!(e, EndpointEvent::Incoming(_)),
                "phantom announced"
            );
        }
    }
    assert_eq!(server.connection_count(), 0, "the handshake never gave up");
    assert_eq!(server.pending_handshakes(), 0);
    assert_eq!(server.stats().connections_accepted, 1);
}

/// With a key, a sealed INITIAL recorded from a real client and replayed
/// from another address creates no announced connection: only a DATA
/// packet sealed with the key and addressed to the new server CID would.
#[test]
fn a_replayed_sealed_initial_never_reaches_the_application() {
    let psk = Psk::new(b"0123456789abcdef0123").unwrap();
    let keyed = || {
        EndpointConfig::builder()
            .connection(Arc::new(
                Config::builder()
                    .psk(Some(psk.clone()))
                    .build()
                    .expect("valid settings"),
            ))
            .retry(RetryPolicy::Never)
            .build()
            .expect("valid settings")
    };
    let mut client = Endpoint::client(keyed(), rudp_core::sim::seed_bytes(1));
    let t0 = Instant::now();
    client.connect(t0, "127.0.0.1:9".parse().unwrap());
    let mut recorded = Vec::new();
    client.poll_transmit(t0, &mut recorded).expect("an INITIAL");
    let mut server = Endpoint::server(keyed(), rudp_core::sim::seed_bytes(2));
    let replayer: SocketAddr = "127.0.0.66:6666".parse().unwrap();
    server.handle_datagram(t0, replayer, &recorded);
    assert_eq!(
        server.connection_count(),
        1,
        "the replay opens (it is sealed)"
    );
    // Whatever the replayer sends back without the key is dropped.
    let out = replies(&mut server, t0);
    assert_eq!(out[0].1, PacketType::Accept);
    let mut t = t0;
    for i in 0..100u64 {
        let dcid = ConnectionId(i); // it cannot read the server's CID's key
        server.handle_datagram(t, replayer, &forged_data(dcid, i, &[Frame::Ping]));
        t += Duration::from_millis(400);
        server.handle_timeout(t);
    }
    while let Some(e) = server.poll_event() {
        assert!(!matches!(e, EndpointEvent::Incoming(_)), "replay announced");
    }
    assert_eq!(server.connection_count(), 0);
}

// ----- Item 4: a peer that never acknowledges ------------------------------

/// The peer replays one PING (each copy draws an ACK-only packet) and sends
/// fresh PINGs, but never acknowledges anything. Before: the sent-packet
/// record grew by one entry per ACK (25 MiB in 12 s). Now it stays bounded
/// and the peer is timed out once our data has gone unacknowledged for an
/// idle timeout.
#[test]
fn a_peer_that_never_acknowledges_is_bounded_and_timed_out() {
    let (mut sim, _c, s) = established(EndpointConfig::default(), server_cfg(RetryPolicy::Never));
    let from = sim.client_addr();
    let (dcid, mut pn) = target(&sim, s);
    sim.server
        .with_connection(s, |x| x.send(Bytes::from_static(b"never acknowledged")))
        .unwrap()
        .unwrap();
    let replayed = forged_data(dcid, pn, &[Frame::Ping]);
    pn += 1;
    let t0 = sim.now();
    let mut t = t0;
    let mut peak = 0;
    let mut ended = None;
    while t < t0 + Duration::from_secs(120) && ended.is_none() {
        sim.server
            .handle_datagram(t, from, &forged_data(dcid, pn, &[Frame::Ping]));
        pn += 1;
        for _ in 0..20 {
            sim.server.handle_datagram(t, from, &replayed);
        }
        let _ = drain(&mut sim.server, t);
        t += Duration::from_millis(10);
        sim.server.handle_timeout(t);
        let _ = drain(&mut sim.server, t);
        if let Some(x) = sim.server.connection(s) {
            peak = peak.max(x.stats().buffers.packets_tracked);
        }
        while let Some(e) = sim.server.poll_event() {
            if let EndpointEvent::Connection(h, Event::Closed(o)) = e {
                if h == s {
                    ended = Some((t - t0, o));
                }
            }
        }
    }
    let (after, outcome) = ended.expect("the silent peer was never timed out");
    println!("never-acking peer: at most {peak} sent packets tracked; timed out after {after:?}");
    assert!(
        matches!(outcome, Err(ConnectionError::TimedOut(_))),
        "{outcome:?}"
    );
    assert!(after <= Duration::from_secs(35), "{after:?}");
    assert!(
        peak <= rudp_core::conn::MAX_ACK_ONLY_TRACKED as u64 + 64,
        "{peak}"
    );
}

// ----- Item 5: one address against everyone --------------------------------

/// One address opens 4,096 handshakes, echoing every RETRY token as a real
/// host can, and keeps them alive with small INITIALs. Before: every other
/// client was refused "server busy". Now the address holds at most its two
/// shares, the small INITIALs are dropped, and another client gets in.
#[test]
fn one_address_cannot_take_the_pending_handshake_budget() {
    let template = template_initial();
    let mut server = Endpoint::server(
        server_cfg(EndpointConfig::default().retry()),
        rudp_core::sim::seed_bytes(6),
    );
    let now = Instant::now();
    for i in 0..4096u64 {
        let from = SocketAddr::from(([127, 0, 0, 1], 2000 + i as u16));
        server.handle_datagram(now, from, &forged_initial(&template, 1000 + i, None));
        for (to, ty, payload) in replies(&mut server, now) {
            if ty == PacketType::Retry {
                let token = token_of(&payload);
                server.handle_datagram(now, to, &forged_initial(&template, 1000 + i, Some(&token)));
                let _ = replies(&mut server, now);
            }
        }
        // The cheap keep-alive: a 33-byte INITIAL.
        server.handle_datagram(now, from, &initial(1000 + i, 5, Some(params()), 33));
    }
    let held = server.pending_handshakes();
    let share = EndpointConfig::default().max_pending_per_source();
    println!(
        "4096 handshakes from one address: {held} kept, {} refused for the source, {} small INITIALs dropped",
        server.stats().refused_per_source,
        server.stats().dropped_small_initial
    );
    assert!(held <= 2 * share, "{held} pending from one address");
    assert_eq!(server.stats().dropped_small_initial, 4096);

    // Someone else connects as usual.
    let other: SocketAddr = "127.0.0.2:7000".parse().unwrap();
    server.handle_datagram(now, other, &forged_initial(&template, 7, None));
    let r = replies(&mut server, now);
    let accepted = match r[0].1 {
        PacketType::Accept => decode_all(&r[0].2)
            .unwrap()
            .iter()
            .any(|f| matches!(f, Frame::Handshake(_))),
        PacketType::Retry => {
            let token = token_of(&r[0].2);
            server.handle_datagram(now, other, &forged_initial(&template, 7, Some(&token)));
            let r = replies(&mut server, now);
            r[0].1 == PacketType::Accept
                && decode_all(&r[0].2)
                    .unwrap()
                    .iter()
                    .any(|f| matches!(f, Frame::Handshake(_)))
        }
        _ => false,
    };
    assert!(accepted, "another client was locked out: {r:?}");

    // And the half-open handshakes give up after the idle timeout.
    let later = now + Duration::from_secs(31);
    server.handle_timeout(later);
    assert_eq!(server.pending_handshakes(), 0);
}

// ----- Item 16: a sender blocked by flow control ---------------------------

/// A server with answers and a FIN pending behind a client window of 300
/// bytes that is never opened. Before: its window filled with PING-only
/// packets (2 million in 20 s with a window of 0). Now it sends only what
/// the rules require: probes on PTO and keepalives.
#[test]
fn a_flow_blocked_sender_does_not_storm() {
    let small = EndpointConfig::builder()
        .connection(Arc::new(
            Config::builder()
                .receive_window(300)
                .max_message_size(200)
                .build()
                .expect("valid settings"),
        ))
        .build()
        .expect("valid settings");
    let (mut sim, c, s) = established(small, server_cfg(RetryPolicy::Never));
    for _ in 0..20 {
        sim.server
            .with_connection(s, |x| x.send(Bytes::from(vec![b'm'; 40])))
            .unwrap()
            .unwrap();
    }
    sim.server.with_connection(s, |x| x.close()).unwrap();
    let before = sim.server.connection(s).unwrap().stats().sent.packets;
    let t0 = sim.now();
    // The client reads nothing: its window stays closed.
    while sim.now() < t0 + Duration::from_secs(20) {
        if !sim.step() {
            break;
        }
        while sim.client.poll_event().is_some() {}
        while sim.server.poll_event().is_some() {}
    }
    let _ = c;
    let sent = sim.server.connection(s).unwrap().stats().sent.packets - before;
    println!("flow-blocked server: {sent} packets in 20 s");
    assert!(sent < 100, "{sent} packets while blocked");
}

// ----- Item 19: the INITIAL rules of §3.3 ------------------------------------

/// An INITIAL without HANDSHAKE, or one carrying STREAM data, opens
/// nothing.
#[test]
fn an_initial_without_handshake_or_with_data_opens_nothing() {
    let mut server = Endpoint::server(
        server_cfg(RetryPolicy::Never),
        rudp_core::sim::seed_bytes(8),
    );
    let now = Instant::now();
    let from: SocketAddr = "127.0.0.1:5555".parse().unwrap();
    server.handle_datagram(now, from, &initial(5, 1, None, 1200));
    let header = Header {
        scid: Some(ConnectionId(6)),
        pn: 1,
        ..common::INITIAL
    };
    let frames = [
        Frame::Handshake(params()),
        Frame::Stream(StreamFrame {
            offset: 0,
            data: b"\x05hello",
            fin: false,
        }),
    ];
    let with_data = common::padded_packet(header, &frames, 1200);
    assert!(matches!(decode(&with_data), Ok(Datagram::Packet { .. })));
    server.handle_datagram(now, from, &with_data);
    let st = server.stats().clone();
    assert_eq!(st.connections_accepted, 0, "{st:?}");
    assert_eq!(st.dropped_malformed, 2, "{st:?}");
    assert!(
        drain(&mut server, now).is_empty(),
        "a dropped INITIAL drew an answer"
    );
}

// ----- PROTOCOL.md §6.6: closing during the handshake ----------------------

/// A server that rejects a client's parameters answers with an ACCEPT that
/// carries only CLOSE (INVALID_PARAMETERS) and its own CID (Vector 9); the
/// client reports INVALID_PARAMETERS instead of timing out.
#[test]
fn a_handshake_closed_by_the_server_is_reported_by_the_client() {
    let mut client = Endpoint::client(EndpointConfig::default(), rudp_core::sim::seed_bytes(1));
    let mut server = Endpoint::server(
        server_cfg(RetryPolicy::Never),
        rudp_core::sim::seed_bytes(2),
    );
    let now = Instant::now();
    let server_addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:5544".parse().unwrap();
    let c = client.connect(now, server_addr);
    let mut buf = Vec::new();
    client.poll_transmit(now, &mut buf).expect("an INITIAL");
    // Rewrite the client's HANDSHAKE with a max datagram size below 1200.
    let Ok(Datagram::Packet { header, .. }) = decode(&buf) else {
        panic!("undecodable INITIAL");
    };
    let bad = HandshakeParams {
        max_datagram_size: 100,
        ..params()
    };
    let forged = initial(header.scid.unwrap().0, header.pn, Some(bad), 1200);
    server.handle_datagram(now, client_addr, &forged);
    let mut raw = Vec::new();
    let to = server.poll_transmit(now, &mut raw).expect("an answer");
    assert_eq!(to, client_addr);
    assert!(server.poll_transmit(now, &mut Vec::new()).is_none());
    let Ok(Datagram::Packet { header, payload }) = decode(&raw) else {
        panic!("undecodable answer");
    };
    assert_eq!(header.ty, PacketType::Accept);
    assert_ne!(
        header.scid,
        Some(ConnectionId(0)),
        "a connection, not a refusal"
    );
    let frames = decode_all(payload).unwrap();
    assert!(
        matches!(frames.as_slice(), [Frame::Close(c)] if c.code == TransportCode::InvalidParameters.to_u64()),
        "{frames:?}"
    );
    // A retransmitted INITIAL is a duplicate: no second CLOSE.
    server.handle_datagram(now, client_addr, &forged);
    assert!(server.poll_transmit(now, &mut Vec::new()).is_none());
    client.handle_datagram(now, server_addr, &raw);
    let mut outcome = None;
    while let Some(e) = client.poll_event() {
        if let EndpointEvent::Connection(h, Event::Closed(r)) = e {
            assert_eq!(h, c);
            outcome = Some(r);
        }
    }
    match outcome {
        Some(Err(ConnectionError::PeerTransportClose { code, reason })) => {
            assert_eq!(code, TransportCode::InvalidParameters, "{reason}");
        }
        other => panic!("the client did not report INVALID_PARAMETERS: {other:?}"),
    }
}

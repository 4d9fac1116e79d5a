//! Address validation, pre-shared keys, limits and off-path attackers
//! (PROTOCOL.md §3.7, §4.2, §6.3, §6.8, §13), driven sans-IO.

mod common;

use common::{close_of, forged_initial, replies, template_initial, token_of, FirstStream};

use bytes::Bytes;
use rudp_core::config::Config;
use rudp_core::endpoint::{ConnectionHandle, Endpoint, EndpointConfig, RetryPolicy};
use rudp_core::error::{ConnectionError, TransportCode};
use rudp_core::impair::ImpairConfig;
use rudp_core::psk::Psk;
use rudp_core::sim::{Direction, Sim};
use rudp_core::wire::frame::decode_all;
use rudp_core::wire::packet::{append_checksum, decode};
use rudp_core::wire::{Datagram, Frame, Header, PacketType, Protection};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server_cfg(psk: Option<Psk>, retry: RetryPolicy) -> EndpointConfig {
    EndpointConfig::builder()
        .connection(Arc::new(
            Config::builder().psk(psk).build().expect("valid settings"),
        ))
        .retry(retry)
        .build()
        .expect("valid settings")
}

fn client_cfg(psk: Option<Psk>) -> EndpointConfig {
    EndpointConfig::builder()
        .connection(Arc::new(
            Config::builder()
                .psk(psk)
                .idle_timeout(Duration::from_secs(5))
                .build()
                .expect("valid settings"),
        ))
        .build()
        .expect("valid settings")
}

fn key(text: &str) -> Option<Psk> {
    Psk::new(text.as_bytes())
}

fn new_sim(client: EndpointConfig, server: EndpointConfig) -> Sim {
    let clean = ImpairConfig::default();
    Sim::new(7, client, server, clean.clone(), clean)
}

/// Connects and runs until the client is established or has an outcome.
/// Returns the client handle, the server handle (if one was accepted) and
/// the client's outcome (if it ended).
fn handshake(
    sim: &mut Sim,
) -> (
    ConnectionHandle,
    Option<ConnectionHandle>,
    Option<Result<(), ConnectionError>>,
) {
    match sim.connect(10_000) {
        Ok((c, s)) => (c, Some(s), None),
        Err(f) => (f.client, f.server, f.outcome),
    }
}

/// Sends `msgs` from client to server and returns what the server got.
fn deliver(sim: &mut Sim, c: ConnectionHandle, s: ConnectionHandle, msgs: &[&[u8]]) -> Vec<Bytes> {
    for m in msgs {
        sim.client
            .with_connection(c, |x| x.send(Bytes::copy_from_slice(m)))
            .expect("client connection")
            .expect("send accepted");
    }
    let mut got = Vec::new();
    for _ in 0..10_000 {
        if got.len() == msgs.len() || !sim.step() {
            break;
        }
        while let Some(m) = sim.server.with_connection(s, |x| x.recv()).flatten() {
            got.push(m);
        }
    }
    got
}

fn refused_with(outcome: &Option<Result<(), ConnectionError>>, code: TransportCode, text: &str) {
    match outcome {
        Some(Err(ConnectionError::PeerTransportClose { code: c, reason })) => {
            assert_eq!(*c, code, "reason {reason:?}");
            assert!(reason.contains(text), "reason {reason:?} lacks {text:?}");
        }
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
}

#[test]
fn retry_costs_one_round_trip_and_validates_the_address() {
    let mut sim = new_sim(client_cfg(None), server_cfg(None, RetryPolicy::Always));
    let (c, s, outcome) = handshake(&mut sim);
    assert!(outcome.is_none(), "{outcome:?}");
    let s = s.expect("accepted after the retry");
    let st = sim.server.stats();
    assert_eq!((st.retries_sent, st.accepted_with_token), (1, 1), "{st:?}");
    assert_eq!(
        sim.client.connection(c).unwrap().stats().received.retries,
        1
    );
    let got = deliver(&mut sim, c, s, &[b"one", b"two"]);
    assert_eq!(got, vec![Bytes::from("one"), Bytes::from("two")]);
}

/// A keyed client and server work through a RETRY, and nothing they send
/// can be read on the wire.
#[test]
fn a_shared_key_seals_everything_on_the_wire() {
    let mut sim = new_sim(
        client_cfg(key("correct horse battery staple")),
        server_cfg(key("correct horse battery staple"), RetryPolicy::Always),
    );
    let wire: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let seen = wire.clone();
    sim.set_filter(Box::new(move |_, _, d| {
        seen.borrow_mut().push(d.to_vec());
        false
    }));
    let (c, s, outcome) = handshake(&mut sim);
    assert!(outcome.is_none(), "{outcome:?}");
    let got = deliver(&mut sim, c, s.unwrap(), &[b"attack at dawn"]);
    assert_eq!(got, vec![Bytes::from("attack at dawn")]);
    let wire = wire.borrow();
    assert!(wire.len() >= 4);
    for d in wire.iter() {
        let Ok(Datagram::Packet { header, payload }) = decode(d) else {
            panic!("undecodable datagram on the wire");
        };
        assert_eq!(header.protection, Protection::Sealed, "{header:?}");
        assert!(decode_all(payload).is_err() || payload.len() < 8);
        assert!(
            !d.windows(6).any(|w| w == b"attack"),
            "plaintext on the wire"
        );
    }
}

#[test]
fn a_wrong_key_is_dropped_and_counted_and_the_client_times_out() {
    let mut sim = new_sim(
        client_cfg(key("the client's secret key")),
        server_cfg(key("the server's other secret"), RetryPolicy::Never),
    );
    let (_c, s, outcome) = handshake(&mut sim);
    assert!(
        s.is_none(),
        "no connection for a packet that fails authentication"
    );
    assert!(
        matches!(outcome, Some(Err(ConnectionError::TimedOut(_)))),
        "{outcome:?}"
    );
    let st = sim.server.stats();
    assert!(st.dropped_unauthenticated >= 2, "{st:?}");
    assert_eq!(st.connections_accepted, 0);
}

#[test]
fn a_key_mismatch_is_refused_with_a_reason() {
    let mut sim = new_sim(
        client_cfg(None),
        server_cfg(key("server-only secret!"), RetryPolicy::Never),
    );
    let (_, _, outcome) = handshake(&mut sim);
    refused_with(
        &outcome,
        TransportCode::ConnectionRefused,
        "requires a pre-shared key",
    );

    let mut sim = new_sim(
        client_cfg(key("client-only secret!")),
        server_cfg(None, RetryPolicy::Never),
    );
    let (_, _, outcome) = handshake(&mut sim);
    refused_with(
        &outcome,
        TransportCode::ConnectionRefused,
        "has no pre-shared key",
    );
}

/// An on-path attacker who alters a sealed packet (and fixes its checksum)
/// gets it dropped as unauthenticated; the data still arrives intact.
#[test]
fn an_altered_sealed_packet_is_rejected() {
    let mut sim = new_sim(
        client_cfg(key("correct horse battery staple")),
        server_cfg(key("correct horse battery staple"), RetryPolicy::Never),
    );
    let (c, s, _) = handshake(&mut sim);
    let s = s.unwrap();
    let mut buf = Vec::new();
    sim.client
        .with_connection(c, |x| x.send(Bytes::from_static(b"pay 10 euros")))
        .unwrap()
        .unwrap();
    let to = sim.client.poll_transmit(sim.now(), &mut buf).unwrap();
    assert_eq!(to, sim.server_addr());
    let mut bad = buf[..buf.len() - 4].to_vec();
    let last = bad.len() - 20;
    bad[last] ^= 0x01;
    append_checksum(&mut bad);
    sim.server
        .handle_datagram(sim.now(), sim.client_addr(), &bad);
    let st = sim.server.connection(s).unwrap().stats();
    assert_eq!(st.received.unauthenticated_dropped, 1);
    assert_eq!(st.received.messages, 0);
    // The genuine packet is accepted.
    sim.server
        .handle_datagram(sim.now(), sim.client_addr(), &buf);
    let got = sim.server.with_connection(s, |x| x.recv()).flatten();
    assert_eq!(got.as_deref(), Some(&b"pay 10 euros"[..]));
}

#[test]
fn tokens_are_checked_for_address_cid_and_age() {
    let template = template_initial();
    let mut server = Endpoint::server(
        server_cfg(None, RetryPolicy::Always),
        rudp_core::sim::seed_bytes(3),
    );
    let t0 = Instant::now();
    let alice: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mallory: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    server.handle_datagram(t0, alice, &forged_initial(&template, 77, None));
    let r = replies(&mut server, t0);
    assert_eq!((r.len(), r[0].0, r[0].1), (1, alice, PacketType::Retry));
    let token = token_of(&r[0].2);
    assert_eq!(server.connection_count(), 0, "a RETRY keeps no state");

    // Someone else's address, another CID, garbage, or too late: refused
    // with INVALID_TOKEN, and still no state.
    let late = t0 + Duration::from_secs(11);
    for (from, cid, tok, at, why) in [
        (mallory, 77, token.clone(), t0, "not issued to this address"),
        (alice, 78, token.clone(), t0, "not issued to this address"),
        (alice, 77, vec![0xab; 24], t0, "not issued to this address"),
        (alice, 77, token.clone(), late, "expired"),
    ] {
        server.handle_datagram(at, from, &forged_initial(&template, cid, Some(&tok)));
        let r = replies(&mut server, at);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, PacketType::Accept);
        let (code, reason) = close_of(&r[0].2);
        assert_eq!(code, TransportCode::InvalidToken.to_u64());
        assert!(reason.contains(why), "{reason}");
    }
    assert_eq!(server.connection_count(), 0);
    assert_eq!(server.stats().invalid_tokens, 4);

    // The right one, in time, creates the connection.
    let t1 = t0 + Duration::from_secs(1);
    server.handle_datagram(t1, alice, &forged_initial(&template, 77, Some(&token)));
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.stats().accepted_with_token, 1);
}

/// 100,000 INITIALs from forged addresses: once 64 handshakes are pending
/// the server answers statelessly, so its state stops growing; a real
/// client still gets in (through a RETRY).
#[test]
fn a_flood_of_forged_initials_creates_bounded_state() {
    let template = template_initial();
    let mut server = Endpoint::server(
        server_cfg(None, EndpointConfig::default().retry()),
        rudp_core::sim::seed_bytes(5),
    );
    let now = Instant::now();
    let flood = 100_000u64;
    let (mut received, mut sent) = (0usize, 0usize);
    let started = std::time::Instant::now();
    for i in 0..flood {
        // Forged sources all over 127/8: each address is its own source
        // for the per-source limit (§6.3).
        let [_, a, b, c] = (i as u32).to_be_bytes();
        let from = SocketAddr::from(([127, a, b, c.max(1)], 1024 + (i % 60_000) as u16));
        let d = forged_initial(&template, 1 + i, None);
        received += d.len();
        server.handle_datagram(now, from, &d);
        let mut buf = Vec::new();
        while server.poll_transmit(now, &mut buf).is_some() {
            sent += buf.len();
        }
    }
    let took = started.elapsed();
    let st = server.stats().clone();
    eprintln!(
        "{flood} forged INITIALs in {took:?} ({:.0}/s): {} connections kept, {} retries, \
         {received} bytes in, {sent} bytes out",
        flood as f64 / took.as_secs_f64(),
        server.connection_count(),
        st.retries_sent
    );
    let busy = rudp_core::endpoint::RETRY_WHEN_PENDING;
    assert_eq!(server.connection_count(), busy);
    assert_eq!(server.pending_handshakes(), busy);
    assert_eq!(st.connections_accepted, busy as u64);
    assert_eq!(st.retries_sent, flood - busy as u64);
    assert!(sent < received, "replies are smaller than the flood");
}

#[test]
fn the_pending_handshake_limit_refuses_clearly() {
    let template = template_initial();
    let cfg = server_cfg(None, RetryPolicy::Never)
        .to_builder()
        .max_pending_handshakes(3)
        .build()
        .expect("valid settings");
    let mut sim = new_sim(client_cfg(None), cfg);
    for i in 0..3u16 {
        let from = SocketAddr::from(([127, 0, 0, 1], 7000 + i));
        sim.server.handle_datagram(
            sim.now(),
            from,
            &forged_initial(&template, 900 + i as u64, None),
        );
    }
    assert_eq!(sim.server.pending_handshakes(), 3);
    while sim.server.poll_event().is_some() {} // The forged ones' Incoming.
                                               // The sim delivers every server datagram to the client, which drops
                                               // those for connections it does not have.
    sim.set_filter(Box::new(|_, way, d| {
        way == Direction::ToClient && d.len() > 200 // the forged peers' ACCEPTs
    }));
    let (_, s, outcome) = handshake(&mut sim);
    assert!(s.is_none());
    refused_with(
        &outcome,
        TransportCode::ConnectionRefused,
        "too many handshakes",
    );
}

/// Packets forged by an off-path attacker: old ones replayed, numbers far
/// outside the window. None changes what is delivered.
#[test]
fn replayed_and_out_of_window_packets_change_nothing() {
    let mut sim = new_sim(client_cfg(None), server_cfg(None, RetryPolicy::Never));
    let captured: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let cap = captured.clone();
    sim.set_filter(Box::new(move |_, way, d| {
        if way == Direction::ToServer {
            cap.borrow_mut().push(d.to_vec());
        }
        false
    }));
    let (c, s, _) = handshake(&mut sim);
    let s = s.unwrap();
    let got = deliver(&mut sim, c, s, &[b"first", b"second"]);
    assert_eq!(got.len(), 2);
    let before = sim.server.connection(s).unwrap().stats();
    // Replay everything the client ever sent.
    let old = captured.borrow().clone();
    for d in &old {
        sim.server.handle_datagram(sim.now(), sim.client_addr(), d);
    }
    // And a DATA packet with a valid CID and address but a packet number
    // far beyond the window, carrying a message.
    let conn = sim.server.connection(s).unwrap();
    let largest = conn.largest_received().unwrap();
    let header = Header {
        dcid: conn.local_cid(),
        pn: largest + rudp_core::conn::PN_WINDOW + 1,
        ..common::DATA
    };
    let forged = common::clear_packet(
        header,
        &[Frame::Stream(rudp_core::wire::frame::StreamFrame {
            offset: 100,
            data: b"\x06forged",
            fin: false,
        })],
    );
    sim.server
        .handle_datagram(sim.now(), sim.client_addr(), &forged);
    for _ in 0..100 {
        sim.step();
    }
    let after = sim.server.connection(s).unwrap().stats();
    assert_eq!(after.received.messages, before.received.messages);
    assert_eq!(after.received.out_of_window_dropped, 1);
    assert!(
        after.received.duplicates_discarded
            >= before.received.duplicates_discarded + old.len() as u64 - 2,
        "replays: {} -> {} of {}",
        before.received.duplicates_discarded,
        after.received.duplicates_discarded,
        old.len()
    );
    assert!(sim
        .server
        .with_connection(s, |x| x.recv())
        .flatten()
        .is_none());
    // The connection still works.
    let got = deliver(&mut sim, c, s, &[b"third"]);
    assert_eq!(got, vec![Bytes::from("third")]);
}

/// Each side's first packet number is random (§4.2).
#[test]
fn packet_numbers_start_at_random_offsets() {
    let firsts: Vec<u64> = (0..4)
        .map(|seed| {
            let mut client = Endpoint::client(client_cfg(None), rudp_core::sim::seed_bytes(seed));
            let now = Instant::now();
            client.connect(now, "127.0.0.1:9".parse().unwrap());
            let mut buf = Vec::new();
            client.poll_transmit(now, &mut buf).unwrap();
            match decode(&buf) {
                Ok(Datagram::Packet { header, .. }) => header.pn,
                _ => panic!("undecodable"),
            }
        })
        .collect();
    assert!(firsts
        .iter()
        .all(|&pn| pn < rudp_core::conn::FIRST_PN_RANGE));
    let mut unique = firsts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), firsts.len(), "{firsts:?}");
    assert!(firsts.iter().any(|&pn| pn > 1 << 32), "{firsts:?}");
}

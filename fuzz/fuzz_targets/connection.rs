//! The connection state machine fed arbitrary packets (PROTOCOL.md §10).
//!
//! An established client/server pair runs in the simulator. The input is cut
//! into chunks; each becomes a packet to the server, correctly addressed and
//! sealed (a fuzzer cannot guess CRC32Cs), with the type, packet number and
//! frames taken from the chunk; virtual time moves between packets. Then real
//! traffic flows. Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rudp::endpoint::{EndpointConfig, EndpointEvent};
use rudp::impair::ImpairConfig;
use rudp::sim::Sim;
use rudp::wire::packet::append_checksum;
use rudp::wire::{ConnectionId, Header, PacketType, Protection};

fuzz_target!(|data: &[u8]| {
    let server_cfg = EndpointConfig {
        accept_incoming: true,
        ..EndpointConfig::default()
    };
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(
        1,
        EndpointConfig::default(),
        server_cfg,
        clean.clone(),
        clean,
    );
    let c = sim.client.connect(sim.now(), sim.server_addr());
    let mut s = None;
    for _ in 0..200 {
        sim.step();
        while let Some(e) = sim.server.poll_event() {
            if let EndpointEvent::Incoming(h) = e {
                s = Some(h);
            }
        }
        if s.is_some() && sim.client.connection(c).is_some_and(|x| x.is_established()) {
            break;
        }
    }
    let Some(s) = s else { return };
    let Some(cid) = sim.server.connection(s).map(|x| x.local_cid()) else {
        return;
    };
    let from = sim.client_addr();

    // Chunks: [len][type][pn: 2 bytes][frames ...], len counting what follows.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        if chunk.len() < 3 {
            continue;
        }
        let ty = [PacketType::Data, PacketType::Initial, PacketType::Accept][chunk[0] as usize % 3];
        let pn = u64::from(u16::from_be_bytes([chunk[1], chunk[2]]));
        let mut bytes = Vec::new();
        Header {
            ty,
            protection: Protection::Clear,
            dcid: if ty == PacketType::Initial {
                ConnectionId(0)
            } else {
                cid
            },
            scid: ty.has_source_cid().then_some(ConnectionId(9)),
            pn,
        }
        .encode(&mut bytes);
        bytes.extend_from_slice(&chunk[3..]);
        append_checksum(&mut bytes);
        sim.server.handle_datagram(sim.now(), from, &bytes);
        sim.step();
    }
    // Real traffic afterwards, both ways.
    let _ = sim
        .client
        .with_connection(c, |x| x.send(Bytes::from_static(b"after")));
    let _ = sim
        .server
        .with_connection(s, |x| x.send(Bytes::from_static(b"reply")));
    for _ in 0..500 {
        if !sim.step() {
            break;
        }
        let _ = sim.server.with_connection(s, |x| x.recv());
        let _ = sim.client.with_connection(c, |x| x.recv());
    }
});

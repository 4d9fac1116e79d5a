//! The connection state machine fed arbitrary packets (PROTOCOL.md §10).
//!
//! An established client/server pair runs in the simulator. The input's
//! first byte chooses the state the server is in when the hostile packets
//! arrive (docs/fuzzing.md): established, blocked by a tiny client window
//! with answers and a FIN pending, CLOSING after an abort, or with data in
//! flight. The rest is cut into chunks; each becomes a packet to the server,
//! correctly addressed and sealed (a fuzzer cannot guess CRC32Cs), with the
//! type and frames taken from the chunk and a packet number within the
//! window of the largest received (a fuzzer cannot guess 48 random bits
//! either), from the client's address or, with the type byte's top bit, from
//! another (path validation, §6.9); virtual time moves between packets. Then real traffic flows.
//! Nothing may panic, and the receive memory stays within the window.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rudp_core::config::Config;
use rudp_core::conn::{Connection, Reliability, SendError, StreamId};
use rudp_core::endpoint::EndpointConfig;
use rudp_core::impair::ImpairConfig;
use rudp_core::sim::Sim;
use rudp_core::wire::packet::append_checksum;
use rudp_core::wire::{ConnectionId, Header, PacketType, Protection};
use std::time::Instant;

/// Queues `msg` on the first stream (§8.1); a reliable message has no
/// lifetime, so the time is not read.
fn send(x: &mut Connection, msg: Bytes) -> Result<(), SendError> {
    x.send_on(Instant::now(), StreamId::FIRST, msg, Reliability::Reliable)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let server_cfg = EndpointConfig::default();
    let client_cfg = if mode % 4 == 1 {
        // The client's window is tiny and never opened: the server blocks.
        let tiny = Config::builder()
            .receive_window(300)
            .max_message_size(200)
            .build();
        let Ok(tiny) = tiny else { return };
        EndpointConfig::new(tiny)
    } else {
        EndpointConfig::default()
    };
    let clean = ImpairConfig::default();
    let mut sim = Sim::new(1, client_cfg, server_cfg, clean.clone(), clean);
    let Ok((c, s)) = sim.connect(200) else { return };
    let Some((cid, window)) = sim
        .server
        .connection(s)
        .map(|x| (x.local_cid(), x.stats().buffers.receive_window))
    else {
        return;
    };
    match mode % 4 {
        1 => {
            for _ in 0..10 {
                let _ = sim
                    .server
                    .with_connection(s, |x| send(x, Bytes::from(vec![b'a'; 100])));
            }
            let _ = sim.server.with_connection(s, |x| x.close());
        }
        2 => {
            let now = sim.now();
            let _ = sim.server.with_connection(s, |x| {
                x.abort(now, rudp_core::error::VarInt::from_u32(3), "fuzz")
            });
        }
        3 => {
            let _ = sim
                .server
                .with_connection(s, |x| send(x, Bytes::from(vec![b'b'; 50_000])));
        }
        _ => {}
    }
    sim.step();
    // A packet whose type byte has the top bit set comes from another
    // address: a NAT rebinding or a spoofer (§6.9).
    let elsewhere: std::net::SocketAddr = "198.51.100.7:4242".parse().expect("an address");

    // Chunks: [len][type][pn offset: 2 bytes][frames ...], len counting
    // what follows. The offset is signed around the largest received.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        if chunk.len() < 3 {
            continue;
        }
        let ty = [PacketType::Data, PacketType::Initial, PacketType::Accept][chunk[0] as usize % 3];
        let Some(largest) = sim.server.connection(s).and_then(|x| x.largest_received()) else {
            return;
        };
        let offset = i64::from(i16::from_be_bytes([chunk[1], chunk[2]]));
        let pn = largest.saturating_add_signed(offset);
        let mut bytes = Vec::new();
        Header {
            version: rudp_core::wire::VERSION,
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
        let from = if chunk[0] & 0x80 != 0 {
            elsewhere
        } else {
            sim.client_addr()
        };
        sim.server.handle_datagram(sim.now(), from, &bytes);
        if let Some(x) = sim.server.connection(s) {
            // §8.2: within the window (as it may have grown), plus the one
            // message being assembled, whatever the frames.
            let st = x.stats();
            let bound = 2 * window.max(st.buffers.receive_window) + (1 << 20) + 8;
            assert!(
                st.buffers.receive_memory <= bound,
                "{} bytes held",
                st.buffers.receive_memory
            );
        }
        sim.step();
    }
    // Real traffic afterwards, both ways.
    let _ = sim
        .client
        .with_connection(c, |x| send(x, Bytes::from_static(b"after")));
    let _ = sim
        .server
        .with_connection(s, |x| send(x, Bytes::from_static(b"reply")));
    for _ in 0..500 {
        if !sim.step() {
            break;
        }
        let _ = sim
            .server
            .with_connection(s, |x| x.recv_on(StreamId::FIRST));
        let _ = sim
            .client
            .with_connection(c, |x| x.recv_on(StreamId::FIRST));
    }
});

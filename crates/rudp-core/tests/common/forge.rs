//! Packets a forger builds from a real client's, and what an endpoint
//! answers: shared by rudp-core's tests and the end-to-end tests (which
//! include this file by path).
#![allow(dead_code)] // Each test file uses its own subset.

use rudp_core::endpoint::EndpointConfig;
use rudp_core::wire::frame::{decode_all, HANDSHAKE};
use rudp_core::wire::packet::{append_checksum, decode};
use rudp_core::wire::{ConnectionId, Datagram, Frame, Header, PacketType};
use std::net::SocketAddr;

/// A real client's INITIAL, re-addressed with another source CID (and
/// optionally a TOKEN frame), as a forger would build it.
pub fn forged_initial(template: &[u8], scid: u64, token: Option<&[u8]>) -> Vec<u8> {
    let Ok(Datagram::Packet { header, payload }) = decode(template) else {
        panic!("template is not a packet");
    };
    assert_eq!(header.ty, PacketType::Initial);
    let mut out = Vec::with_capacity(1200);
    Header {
        version: rudp_core::wire::VERSION,
        scid: Some(ConnectionId(scid)),
        ..header
    }
    .encode(&mut out);
    let frames = decode_all(payload).unwrap();
    let Some(Frame::Handshake(p)) = frames.iter().find(|f| matches!(f, Frame::Handshake(_))) else {
        panic!("no HANDSHAKE in the INITIAL");
    };
    Frame::Handshake(*p).encode(&mut out);
    if let Some(t) = token {
        Frame::Token(t).encode(&mut out);
    }
    let pad = 1200 - 4 - out.len();
    Frame::Padding(pad).encode(&mut out);
    append_checksum(&mut out);
    assert!(
        out.len() == 1200
            && out[rudp_core::wire::packet::field::SCID] == scid.to_be_bytes()
            && payload[0] == HANDSHAKE
    );
    out
}

/// A real client's first INITIAL, to forge others from.
pub fn template_initial() -> Vec<u8> {
    let mut client = rudp_core::endpoint::Endpoint::client(
        EndpointConfig::default(),
        rudp_core::sim::seed_bytes(1),
    );
    let now = std::time::Instant::now();
    client.connect(now, "127.0.0.1:9".parse().unwrap());
    let mut buf = Vec::new();
    client.poll_transmit(now, &mut buf).expect("an INITIAL");
    buf
}

/// The stateless reply to one datagram: (type, frames' summary).
pub fn replies(
    server: &mut rudp_core::endpoint::Endpoint,
    now: std::time::Instant,
) -> Vec<(SocketAddr, PacketType, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(to) = server.poll_transmit(now, &mut buf) {
        let Ok(Datagram::Packet { header, payload }) = decode(&buf) else {
            panic!("undecodable reply");
        };
        out.push((to, header.ty, payload.to_vec()));
    }
    out
}

pub fn token_of(payload: &[u8]) -> Vec<u8> {
    decode_all(payload)
        .unwrap()
        .iter()
        .find_map(|f| match f {
            Frame::Token(t) => Some(t.to_vec()),
            _ => None,
        })
        .expect("a TOKEN frame")
}

pub fn close_of(payload: &[u8]) -> (u64, String) {
    match decode_all(payload).unwrap().as_slice() {
        [Frame::Close(c)] => (c.code, String::from_utf8_lossy(c.reason).into_owned()),
        other => panic!("expected a lone CLOSE, got {other:?}"),
    }
}

/// A clear DATA header of the current version, to fill in as
/// `Header { dcid, pn, ..DATA }` (smoltcp's tests build packets this way).
pub const DATA: Header = Header {
    version: rudp_core::wire::VERSION,
    ty: PacketType::Data,
    protection: rudp_core::wire::Protection::Clear,
    dcid: ConnectionId(0),
    scid: None,
    pn: 0,
};

/// A clear INITIAL header: `Header { scid: Some(..), pn, ..INITIAL }`.
pub const INITIAL: Header = Header {
    ty: PacketType::Initial,
    scid: Some(ConnectionId(0)),
    ..DATA
};

/// The one clear-packet forger: `header`, then `frames`, then the CRC32C
/// (PROTOCOL.md §3.6), unpadded.
pub fn clear_packet(header: Header, frames: &[Frame<'_>]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1200);
    for f in frames {
        f.encode(&mut payload);
    }
    clear_packet_raw(header, &payload)
}

/// [`clear_packet`] with the payload given as bytes (which may be no
/// valid frames at all).
pub fn clear_packet_raw(header: Header, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.ty.header_len() + payload.len() + 4);
    header.encode(&mut out);
    out.extend_from_slice(payload);
    append_checksum(&mut out);
    out
}

/// [`clear_packet`] padded with PADDING to exactly `len` bytes where it
/// is shorter (an INITIAL fills 1200, PROTOCOL.md §6.2).
pub fn padded_packet(header: Header, frames: &[Frame<'_>], len: usize) -> Vec<u8> {
    let unpadded = clear_packet(header, frames);
    match len.checked_sub(unpadded.len()) {
        Some(pad) if pad > 0 => {
            let mut all = frames.to_vec();
            all.push(Frame::Padding(pad));
            clear_packet(header, &all)
        }
        _ => unpadded,
    }
}

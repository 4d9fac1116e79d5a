//! Version 3's handshake parsers (PROTOCOL.md §16.3, §16.4): arbitrary
//! bytes as the frames of an INITIAL to a version-3 server (the NOISE
//! frame, its Noise message, TOKEN, padding), and as the payload of an
//! ACCEPT or RETRY to a version-3 client waiting for its answer. No panic,
//! no overflow, no failed debug assertion, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudp_core::config::Config;
use rudp_core::endpoint::{Endpoint, EndpointConfig, RetryPolicy};
use rudp_core::noise::{Keypair, PinnedKey, Security};
use rudp_core::wire::packet::append_checksum;
use rudp_core::wire::{ConnectionId, Header, PacketType, Protection};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn packet(
    ty: PacketType,
    protection: Protection,
    dcid: u64,
    scid: Option<u64>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1300);
    let header = Header {
        version: 3,
        ty,
        protection,
        dcid: ConnectionId(dcid),
        scid: scid.map(ConnectionId),
        pn: 7,
    };
    header.encode(&mut out);
    out.extend_from_slice(body);
    if ty == PacketType::Initial && out.len() < 1196 {
        out.resize(1196, 0); // PADDING to 1200 with the checksum
    }
    // Sealed packets of version 3 carry no checksum (PROTOCOL.md §16.3).
    if header.has_checksum() {
        append_checksum(&mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let key = Keypair::from_private([0x11; 32]);
    let now = Instant::now();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let drain = |ep: &mut Endpoint, t: Instant| {
        let mut buf = Vec::new();
        while ep.poll_transmit(t, &mut buf).is_some() {}
        while ep.poll_event().is_some() {}
    };
    if mode % 2 == 0 {
        let conn = Config::builder()
            .version(3)
            .security(Security {
                identity: Some(key),
                ..Security::default()
            })
            .build()
            .unwrap();
        let cfg = EndpointConfig::builder()
            .connection_config(conn)
            .retry(if mode % 4 == 0 {
                RetryPolicy::Never
            } else {
                RetryPolicy::Always
            })
            .build()
            .unwrap();
        let mut server = Endpoint::server(cfg, [1; 32]);
        let initial = packet(
            PacketType::Initial,
            Protection::Clear,
            0,
            Some(0x1122),
            body,
        );
        server.handle_datagram(now, peer, &initial);
        server.handle_datagram(now, peer, &initial);
        drain(&mut server, now);
        server.handle_timeout(now + Duration::from_secs(1));
        drain(&mut server, now + Duration::from_secs(1));
    } else {
        let conn = Config::builder()
            .version(3)
            .security(Security {
                verifier: Some(Arc::new(PinnedKey(key.public()))),
                ..Security::default()
            })
            .build()
            .unwrap();
        let mut client = Endpoint::client(EndpointConfig::new(conn), [2; 32]);
        let h = client.connect(now, peer);
        let mut buf = Vec::new();
        let _ = client.poll_transmit(now, &mut buf);
        let cid = client.connection(h).map_or(0, |c| c.local_cid().0);
        let (ty, protection) = match mode % 8 {
            1 => (PacketType::Accept, Protection::Sealed),
            3 => (PacketType::Accept, Protection::Clear),
            5 => (PacketType::Retry, Protection::Clear),
            _ => (PacketType::Data, Protection::Sealed),
        };
        let scid = (ty != PacketType::Data).then_some(0x99);
        client.handle_datagram(now, peer, &packet(ty, protection, cid, scid, body));
        drain(&mut client, now);
        client.handle_timeout(now + Duration::from_secs(1));
        drain(&mut client, now + Duration::from_secs(1));
    }
});

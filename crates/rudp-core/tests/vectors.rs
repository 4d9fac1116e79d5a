#![allow(clippy::single_range_in_vec_init)] // One-range ACKs are what the vectors mean.
//! PROTOCOL.md §14 test vectors, checked byte for byte: each vector below is
//! built from its fields with the encoder and compared with the hex in
//! PROTOCOL.md, and the hex is decoded back into the same fields.
//!
//! `RUDP_PRINT_VECTORS=1 cargo test --test vectors -- --nocapture` prints
//! the encoder's hex, for writing the document.

mod common;

use rudp_core::cipher::PacketCipher;
use rudp_core::psk::{PacketKey, Psk};
use rudp_core::wire::frame::decode_all;
use rudp_core::wire::frame::{SkipFrame, StreamFrame, StreamNFrame, StreamParams};
use rudp_core::wire::packet::{append_checksum, decode};
use rudp_core::wire::{
    AckFrame, CloseFrame, CloseKind, ConnectionId, Datagram, Frame, HandshakeParams, Header,
    PacketType, Protection, VersionNegotiation,
};

const CLIENT_CID: ConnectionId = ConnectionId(0x1122_3344_5566_7788);
const SERVER_CID: ConnectionId = ConnectionId(0x99aa_bbcc_ddee_ff00);

fn params() -> HandshakeParams {
    HandshakeParams {
        max_ack_delay_micros: 5_000,
        idle_timeout_millis: 30_000,
        initial_max_data: 4_194_304,
        max_message_size: 1_048_576,
        max_datagram_size: 1_200,
    }
}

fn packet(header: Header, frames: &[Frame<'_>]) -> Vec<u8> {
    common::clear_packet(header, frames)
}

/// (name as in PROTOCOL.md, header, frames); the VN vector is separate.
fn vectors() -> Vec<(&'static str, Header, Vec<Frame<'static>>)> {
    let initial_hdr = Header {
        version: 1,
        ty: PacketType::Initial,
        protection: Protection::Clear,
        dcid: ConnectionId(0),
        scid: Some(CLIENT_CID),
        pn: 0,
    };
    // An INITIAL fills 1200 bytes: header 28 + HANDSHAKE 17 + PADDING + CRC 4.
    let padding = 1200 - 28 - 17 - 4;
    vec![
        (
            "INITIAL",
            initial_hdr,
            vec![Frame::Handshake(params()), Frame::Padding(padding)],
        ),
        (
            "ACCEPT",
            Header {
                version: 1,
                ty: PacketType::Accept,
                protection: Protection::Clear,
                dcid: CLIENT_CID,
                scid: Some(SERVER_CID),
                pn: 0,
            },
            vec![
                Frame::Ack(AckFrame {
                    delay_micros: 0,
                    ranges: vec![0..1],
                }),
                Frame::Handshake(params()),
                // One message, "hi": length prefix 0x02, then the bytes.
                Frame::Stream(StreamFrame {
                    offset: 0,
                    data: b"\x02hi",
                    fin: false,
                }),
            ],
        ),
        (
            "DATA with ACK ranges and a final message",
            Header {
                version: 1,
                ty: PacketType::Data,
                protection: Protection::Clear,
                dcid: SERVER_CID,
                scid: None,
                pn: 7,
            },
            vec![
                Frame::Ack(AckFrame {
                    delay_micros: 250,
                    ranges: vec![10..13, 5..7, 0..1],
                }),
                Frame::Stream(StreamFrame {
                    offset: 3,
                    data: b"\x05March",
                    fin: true,
                }),
            ],
        ),
        (
            "DATA with MAX_DATA and PING",
            Header {
                version: 1,
                ty: PacketType::Data,
                protection: Protection::Clear,
                dcid: CLIENT_CID,
                scid: None,
                pn: 300,
            },
            vec![Frame::MaxData(6_291_456), Frame::Ping],
        ),
        (
            "DATA with an application CLOSE",
            Header {
                version: 1,
                ty: PacketType::Data,
                protection: Protection::Clear,
                dcid: SERVER_CID,
                scid: None,
                pn: 8,
            },
            vec![Frame::Close(CloseFrame {
                kind: CloseKind::Application,
                code: 42,
                reason: b"bye",
            })],
        ),
    ]
}

/// Vectors 9 and 10: closing during the handshake (PROTOCOL.md §6.6): CLOSE
/// in place of HANDSHAKE, a client's INITIAL still padded to 1200 bytes.
fn closing_vectors() -> Vec<(&'static str, Header, Vec<Frame<'static>>)> {
    // Header 28 + CLOSE (1 + 1 + 1 + 9) + PADDING + CRC 4.
    let padding = 1200 - 28 - 12 - 4;
    vec![
        (
            "ACCEPT closing the handshake",
            Header {
                version: 1,
                ty: PacketType::Accept,
                protection: Protection::Clear,
                dcid: CLIENT_CID,
                scid: Some(SERVER_CID),
                pn: 1,
            },
            vec![Frame::Close(CloseFrame {
                kind: CloseKind::Transport,
                code: 7,
                reason: b"bad params",
            })],
        ),
        (
            "INITIAL closing the handshake",
            Header {
                version: 1,
                ty: PacketType::Initial,
                protection: Protection::Clear,
                dcid: ConnectionId(0),
                scid: Some(CLIENT_CID),
                pn: 2,
            },
            vec![
                Frame::Close(CloseFrame {
                    kind: CloseKind::Application,
                    code: 0,
                    reason: b"cancelled",
                }),
                Frame::Padding(padding),
            ],
        ),
    ]
}

/// Vectors 11 and 12: path validation (PROTOCOL.md §6.9): the server
/// challenges a client's new address, and the client answers; each frame
/// alone in its DATA packet.
fn path_vectors() -> Vec<(&'static str, Header, Vec<Frame<'static>>)> {
    const CHALLENGE: [u8; 8] = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18];
    vec![
        (
            "DATA with PATH_CHALLENGE",
            Header {
                version: 1,
                ty: PacketType::Data,
                protection: Protection::Clear,
                dcid: CLIENT_CID,
                scid: None,
                pn: 301,
            },
            vec![Frame::PathChallenge(CHALLENGE)],
        ),
        (
            "DATA with PATH_RESPONSE",
            Header {
                version: 1,
                ty: PacketType::Data,
                protection: Protection::Clear,
                dcid: SERVER_CID,
                scid: None,
                pn: 9,
            },
            vec![Frame::PathResponse(CHALLENGE)],
        ),
    ]
}

/// Vectors 13 to 15: version 2 (PROTOCOL.md §15): the client's INITIAL
/// with STREAM_PARAMETERS, stream data on an unordered stream with a SKIP,
/// and a datagram with the stream control frames.
fn version_2_vectors() -> Vec<(&'static str, Header, Vec<Frame<'static>>)> {
    let v2 = |ty, dcid, scid, pn| Header {
        version: 2,
        ty,
        protection: Protection::Clear,
        dcid,
        scid,
        pn,
    };
    let stream_params = StreamParams {
        max_streams: 100,
        stream_window: 2_097_152,
        streams_window: 16_777_216,
        max_datagram_payload: 1_200,
    };
    // header 28 + HANDSHAKE 17 + STREAM_PARAMETERS 13 + PADDING + CRC 4.
    let padding = 1200 - 28 - 17 - 13 - 4;
    vec![
        (
            "version 2 INITIAL",
            v2(PacketType::Initial, ConnectionId(0), Some(CLIENT_CID), 0),
            vec![
                Frame::Handshake(params()),
                Frame::StreamParams(stream_params),
                Frame::Padding(padding),
            ],
        ),
        (
            "STREAM_N and SKIP",
            v2(PacketType::Data, SERVER_CID, None, 12),
            vec![
                // Stream 2 (the client's first), unordered: bytes 9..15,
                // the whole message "hello" (prefix 05) starting at 9.
                Frame::StreamN(StreamNFrame {
                    id: 2,
                    offset: 9,
                    message_start: Some(9),
                    data: b"\x05hello",
                    fin: false,
                }),
                // Stream 4, ordered: its last message, "bye", then FIN.
                Frame::StreamN(StreamNFrame {
                    id: 4,
                    offset: 100,
                    message_start: None,
                    data: b"\x03bye",
                    fin: true,
                }),
                // Stream 2's message at 0..9 expired: skipped.
                Frame::Skip(SkipFrame {
                    id: 2,
                    offset: 0,
                    len: 9,
                    messages: 1,
                }),
            ],
        ),
        (
            "DATAGRAM and stream control frames",
            v2(PacketType::Data, CLIENT_CID, None, 40),
            vec![
                Frame::MaxStreamData {
                    id: 2,
                    max: 4_194_304,
                },
                Frame::MaxStreams(101),
                Frame::MaxStreamsData(33_554_432),
                Frame::ResetStream {
                    id: 1,
                    code: 7,
                    final_size: 300,
                },
                Frame::StopSending { id: 4, code: 8 },
                Frame::Datagram(b"tick"),
            ],
        ),
    ]
}

/// Vector 7: a RETRY with a 24-byte token 00 01 .. 17.
fn retry() -> (Header, Vec<u8>) {
    const TOKEN: [u8; 24] = {
        let mut t = [0u8; 24];
        let mut i = 0;
        while i < 24 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };
    (
        Header {
            version: 1,
            ty: PacketType::Retry,
            protection: Protection::Clear,
            dcid: CLIENT_CID,
            scid: Some(ConnectionId(0)),
            pn: 1 << 61,
        },
        TOKEN.to_vec(),
    )
}

/// Vector 8's key: 32 ASCII bytes.
const VECTOR_PSK: &[u8] = b"rudp test vector key, 32 bytes!!";

/// Vector 8: a sealed DATA packet from the client.
fn sealed_data() -> (Header, Frame<'static>) {
    (
        Header {
            version: 1,
            ty: PacketType::Data,
            protection: Protection::Sealed,
            dcid: SERVER_CID,
            scid: None,
            pn: 7,
        },
        Frame::Stream(StreamFrame {
            offset: 0,
            data: b"\x05March",
            fin: true,
        }),
    )
}

/// `frame` in a packet with `header`, sealed with the client's key of the
/// vector PSK (§3.7), then its checksum.
fn psk_sealed(header: Header, frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode(&mut out);
    frame.encode(&mut out);
    Psk::new(VECTOR_PSK).unwrap().client_key(CLIENT_CID).seal(
        header.pn,
        header.ty.header_len(),
        &mut out,
    );
    append_checksum(&mut out);
    out
}

fn version_negotiation() -> VersionNegotiation {
    VersionNegotiation {
        dcid: CLIENT_CID,
        scid: ConnectionId(0),
        versions: vec![1],
    }
}

/// The hex blocks of PROTOCOL.md §14, by vector name. `00*1153` stands for
/// 1153 zero bytes; white space is ignored.
fn document_vectors() -> Vec<(String, Vec<u8>)> {
    let doc = include_str!("../../../PROTOCOL.md");
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("### Vector ") {
            name = rest.split_once(": ").map(|(_, n)| n.trim().to_string());
        } else if line.trim() == "```hex" {
            let mut bytes = Vec::new();
            for l in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                for token in l.split_whitespace() {
                    if let Some((b, n)) = token.split_once('*') {
                        let b = u8::from_str_radix(b, 16).expect("hex byte");
                        bytes.extend(std::iter::repeat_n(b, n.parse().expect("count")));
                    } else {
                        assert!(token.len() % 2 == 0, "odd hex token {token}");
                        for i in (0..token.len()).step_by(2) {
                            bytes.push(u8::from_str_radix(&token[i..i + 2], 16).expect("hex"));
                        }
                    }
                }
            }
            out.push((
                name.take()
                    .expect("a ### Vector heading before each hex block"),
                bytes,
            ));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    // 16 bytes a line, in 2-byte groups; long zero runs shortened.
    let mut s = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| b == 0).count();
        if run >= 32 {
            s.push_str(&format!("\n00*{run}\n"));
            i += run;
            continue;
        }
        s.push_str(&format!("{:02x}", bytes[i]));
        i += 1;
        if i % 16 == 0 {
            s.push('\n');
        } else if i % 2 == 0 {
            s.push(' ');
        }
    }
    s
}

#[test]
fn protocol_md_vectors_match_the_encoder_and_decoder() {
    let mut built: Vec<(String, Vec<u8>)> = vectors()
        .into_iter()
        .map(|(n, h, f)| (n.to_string(), packet(h, &f)))
        .collect();
    let mut vn = Vec::new();
    version_negotiation().encode(&mut vn);
    built.push(("VERSION_NEGOTIATION".to_string(), vn.clone()));
    let (retry_header, token) = retry();
    built.push((
        "RETRY".to_string(),
        packet(retry_header, &[Frame::Token(&token)]),
    ));
    let (sealed_header, frame) = sealed_data();
    built.push((
        "DATA sealed with a pre-shared key".to_string(),
        psk_sealed(sealed_header, &frame),
    ));
    for (n, h, f) in closing_vectors()
        .into_iter()
        .chain(path_vectors())
        .chain(version_2_vectors())
    {
        built.push((n.to_string(), packet(h, &f)));
    }
    let v3 = version_3_vectors();
    built.extend(v3.packets);
    // §3.7: version 2 keeps version 1's key labels; only the header (the
    // associated data) differs.
    let (v2_header, frame) = sealed_data();
    built.push((
        "version 2 DATA sealed with a pre-shared key".to_string(),
        psk_sealed(
            Header {
                version: 2,
                ..v2_header
            },
            &frame,
        ),
    ));
    built.push(("version 3 DATA with AEGIS-256X2".to_string(), v3.aegis_data));
    if std::env::var("RUDP_PRINT_VECTORS").is_ok() {
        for (n, b) in &built {
            println!("### {n} ({} bytes)\n{}\n", b.len(), hex(b));
        }
    }
    let doc = document_vectors();
    assert_eq!(
        doc.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        built.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        "PROTOCOL.md §14 lists other vectors than this test"
    );
    for ((name, want), (_, got)) in doc.iter().zip(&built) {
        assert!(
            want == got,
            "vector {name}: PROTOCOL.md has\n{}\nthe encoder gives\n{}",
            hex(want),
            hex(got)
        );
    }
    // Decoding the document's bytes gives back the fields (vectors 1-5,
    // then 9 to 12 after the three built apart).
    let fielded: Vec<_> = vectors()
        .into_iter()
        .map(Some)
        .chain([None, None, None])
        .chain(closing_vectors().into_iter().map(Some))
        .chain(path_vectors().into_iter().map(Some))
        .chain(version_2_vectors().into_iter().map(Some))
        .collect();
    for ((name, bytes), (_, header, frames)) in
        doc.iter().zip(fielded).filter_map(|(d, v)| Some((d, v?)))
    {
        match decode(bytes) {
            Ok(Datagram::Packet { header: h, payload }) => {
                assert_eq!(h, header, "vector {name}");
                assert_eq!(
                    decode_all(payload).unwrap().to_vec(),
                    frames,
                    "vector {name}"
                );
            }
            other => panic!("vector {name} decodes as {other:?}"),
        }
    }
    let (_, vn_bytes) = &doc[5];
    assert_eq!(
        decode(vn_bytes),
        Ok(Datagram::VersionNegotiation(version_negotiation()))
    );
    match decode(&doc[6].1) {
        Ok(Datagram::Packet { header, payload }) => {
            assert_eq!(header, retry_header);
            assert_eq!(
                decode_all(payload).unwrap().to_vec(),
                vec![Frame::Token(&token)]
            );
        }
        other => panic!("the RETRY vector decodes as {other:?}"),
    }
    // The sealed vector opens with the key and gives back its frame.
    match decode(&doc[7].1) {
        Ok(Datagram::Packet { header, payload }) => {
            assert_eq!(header, sealed_header);
            let mut aad = Vec::new();
            header.encode(&mut aad);
            let mut plain = Vec::new();
            Psk::new(VECTOR_PSK)
                .unwrap()
                .client_key(CLIENT_CID)
                .open(header.pn, &aad, payload, &mut plain)
                .expect("the vector opens with its key");
            assert_eq!(decode_all(&plain).unwrap().to_vec(), vec![frame]);
        }
        other => panic!("the sealed vector decodes as {other:?}"),
    }
}

// ----- Version 3 (PROTOCOL.md §16) ----------------------------------------

/// The fixed keys of vectors 16 to 19: every byte of a version-3 session's
/// first packets follows from them.
const SERVER_STATIC: [u8; 32] = [0x11; 32];
const CLIENT_STATIC: [u8; 32] = [0x22; 32];
const CLIENT_EPHEMERAL: [u8; 32] = [0x33; 32];
const SERVER_EPHEMERAL: [u8; 32] = [0x44; 32];

struct Version3 {
    /// Vectors 16 to 19.
    packets: Vec<(String, Vec<u8>)>,
    /// Vector 21, which PROTOCOL.md lists after version 2's vector 20.
    aegis_data: Vec<u8>,
    keys: rudp_core::noise::TransportKeys,
}

fn v3_stream_params() -> StreamParams {
    StreamParams {
        max_streams: 100,
        stream_window: 2_097_152,
        streams_window: 16_777_216,
        max_datagram_payload: 1_200,
    }
}

/// Vectors 16-19: INITIAL (IK's first message), ACCEPT (the second, then
/// a sealed ACK) and the client's first DATA, from the fixed keys.
fn version_3_vectors() -> Version3 {
    use rudp_core::noise::{prologue, HandshakeInputs, Initiator, Keypair, Responder};
    let server = Keypair::from_private(SERVER_STATIC);
    let client = Keypair::from_private(CLIENT_STATIC);
    let p = prologue(3, &[3], CLIENT_CID);
    // The client offers AES-256-GCM, then ChaCha20-Poly1305; the server
    // takes the first (§16.5).
    let payload = |ciphers: &[u8]| {
        let mut p = Vec::new();
        Frame::Handshake(params()).encode(&mut p);
        Frame::StreamParams(v3_stream_params()).encode(&mut p);
        Frame::Ciphers(ciphers).encode(&mut p);
        p
    };
    let (payload1, payload2) = (payload(&[2, 1]), payload(&[2]));
    let inputs = |e: [u8; 32]| HandshakeInputs {
        prologue: &p,
        psk: None,
        seed: [0; 32],
        fixed_ephemeral: Some(e),
    };
    let initiator = Initiator::start(
        &client,
        &server.public(),
        &inputs(CLIENT_EPHEMERAL),
        &payload1,
    )
    .expect("IK first message");
    let responder = Responder::read(&server, &inputs(SERVER_EPHEMERAL), initiator.message())
        .expect("the server reads it");
    assert_eq!(responder.client(), client.public());
    assert_eq!(responder.payload(), &payload1[..]);
    let (message2, keys) = responder.answer(&payload2).expect("IK second message");
    let aes = PacketCipher::Aes256Gcm;

    // Vector 16: the INITIAL, in clear, padded to 1200 bytes.
    let mut initial = Vec::new();
    Header {
        version: 3,
        ty: PacketType::Initial,
        protection: Protection::Clear,
        dcid: ConnectionId(0),
        scid: Some(CLIENT_CID),
        pn: 0,
    }
    .encode(&mut initial);
    Frame::Noise(initiator.message()).encode(&mut initial);
    let padding = 1200 - 4 - initial.len();
    Frame::Padding(padding).encode(&mut initial);
    append_checksum(&mut initial);

    // Vector 17: the ACCEPT; header and NOISE frame are associated data.
    let mut accept = Vec::new();
    Header {
        version: 3,
        ty: PacketType::Accept,
        protection: Protection::Sealed,
        dcid: CLIENT_CID,
        scid: Some(SERVER_CID),
        pn: 0,
    }
    .encode(&mut accept);
    Frame::Noise(&message2).encode(&mut accept);
    let clear = accept.len();
    Frame::Ack(AckFrame {
        ranges: vec![0..1],
        delay_micros: 0,
    })
    .encode(&mut accept);
    PacketKey::from_raw(aes, keys.server_to_client).seal(0, clear, &mut accept);
    append_checksum(&mut accept);

    // Vector 18: the client's first DATA: "March" with FIN.
    let (data_header, frame) = sealed_data();
    let data_header = Header {
        version: 3,
        pn: 1,
        ..data_header
    };
    let data_sealed_with = |cipher| {
        let mut data = Vec::new();
        data_header.encode(&mut data);
        frame.encode(&mut data);
        PacketKey::from_raw(cipher, keys.client_to_server).seal(
            1,
            data_header.ty.header_len(),
            &mut data,
        );
        // A sealed DATA packet of version 3 ends with its tag: no CRC32C
        // (§16.3).
        data
    };
    // Vector 19: the same, had the server chosen ChaCha20-Poly1305 (the
    // payloads do not enter Noise's Split(), so the keys are the same).
    // Vector 21: and had it chosen AEGIS-256X2, whose nonce is 24 zero
    // bytes and the packet number.
    let (data, chacha_data, aegis_data) = (
        data_sealed_with(aes),
        data_sealed_with(PacketCipher::ChaCha20Poly1305),
        data_sealed_with(PacketCipher::Aegis256X2),
    );
    if std::env::var("RUDP_PRINT_VECTORS").is_ok() {
        println!("server public {}", hex::encode(server.public().0));
        println!("client public {}", hex::encode(client.public().0));
        println!(
            "c2s {} s2c {}",
            hex::encode(keys.client_to_server),
            hex::encode(keys.server_to_client)
        );
        println!(
            "message 1 ({} bytes) {}",
            initiator.message().len(),
            hex::encode(initiator.message())
        );
        println!(
            "message 2 ({} bytes) {}",
            message2.len(),
            hex::encode(&message2)
        );
        println!("payload 1 {}", hex::encode(&payload1));
        println!("payload 2 {}", hex::encode(&payload2));
    }
    Version3 {
        packets: vec![
            ("version 3 INITIAL".to_string(), initial),
            ("version 3 ACCEPT".to_string(), accept),
            ("version 3 DATA".to_string(), data),
            (
                "version 3 DATA with ChaCha20-Poly1305".to_string(),
                chacha_data,
            ),
        ],
        aegis_data,
        keys,
    }
}

/// The document's version-3 vectors, read back by the real receive path:
/// the INITIAL opens a connection at a server holding the static key (and
/// at no other), and the ACCEPT and DATA open with the handshake's keys.
#[test]
fn version_3_vectors_are_read_by_the_receive_path() {
    use rudp_core::config::Config;
    use rudp_core::endpoint::{Endpoint, EndpointConfig, RetryPolicy};
    use rudp_core::noise::{Keypair, Security};
    let doc: std::collections::HashMap<String, Vec<u8>> = document_vectors().into_iter().collect();
    let server_with = |key: [u8; 32]| {
        let conn = Config::builder()
            .version(3)
            .security(Security {
                identity: Some(Keypair::from_private(key)),
                ..Security::default()
            })
            .build()
            .unwrap();
        let cfg = EndpointConfig::builder()
            .connection_config(conn)
            .retry(RetryPolicy::Never)
            .build()
            .unwrap();
        Endpoint::server(cfg, [5; 32])
    };
    let now = std::time::Instant::now();
    let from: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let initial = &doc["version 3 INITIAL"];
    let mut right = server_with(SERVER_STATIC);
    right.handle_datagram(now, from, initial);
    assert_eq!(right.stats().connections_accepted, 1);
    let mut wrong = server_with([0x55; 32]);
    wrong.handle_datagram(now, from, initial);
    assert_eq!(wrong.stats().connections_accepted, 0);
    assert_eq!(wrong.stats().dropped_unauthenticated, 1);

    let keys = version_3_vectors().keys;
    let (aes, chacha) = (PacketCipher::Aes256Gcm, PacketCipher::ChaCha20Poly1305);
    for (name, cipher, key) in [
        ("version 3 ACCEPT", aes, keys.server_to_client),
        ("version 3 DATA", aes, keys.client_to_server),
        (
            "version 3 DATA with ChaCha20-Poly1305",
            chacha,
            keys.client_to_server,
        ),
        (
            "version 3 DATA with AEGIS-256X2",
            PacketCipher::Aegis256X2,
            keys.client_to_server,
        ),
    ] {
        let Ok(Datagram::Packet { header, payload }) = decode(&doc[name]) else {
            panic!("{name} does not decode");
        };
        let mut r = rudp_core::wire::Reader::new(payload);
        let clear = match rudp_core::wire::frame::decode_one(&mut r) {
            Ok(Frame::Noise(_)) => payload.len() - r.remaining(),
            _ => 0,
        };
        let mut aad = Vec::new();
        header.encode(&mut aad);
        aad.extend_from_slice(&payload[..clear]);
        let mut plain = Vec::new();
        PacketKey::from_raw(cipher, key)
            .open(header.pn, &aad, &payload[clear..], &mut plain)
            .unwrap_or_else(|_| panic!("{name} does not open"));
        let frames = decode_all(&plain).expect("frames");
        println!("{name}: {frames:?}");
    }
}

//! Exact-frame tests of [`Connection`], grouped by state, in the manner of
//! smoltcp's TCP socket tests: feed one connection specific packets at
//! specific times and check the exact frames it emits (as `Frame`'s
//! `Display` prints them), not just that things work out eventually.

use super::send_stream::Expiry;
use super::*;
use crate::wire::packet::{self, append_checksum, Datagram};
use crate::wire::{CloseFrame, Header, Protection};
use bytes::Bytes;
use std::time::Duration;

const CLIENT_CID: ConnectionId = ConnectionId(0xC1C1_C1C1_C1C1_C1C1);
const SERVER_CID: ConnectionId = ConnectionId(0x5E5E_5E5E_5E5E_5E5E);
const CLIENT_PN: u64 = 1000;
const SERVER_PN: u64 = 5000;
const CLIENT_ADDR: &str = "192.0.2.1:1000";
/// Version 2's limits, as the default configuration announces them next
/// to HANDSHAKE (§15.8.1).
const STREAM_PARAMS: &str =
    "STREAM_PARAMETERS streams=100 window=2097152 total=16777216 datagram=65507";
const SERVER_ADDR: &str = "192.0.2.2:2000";

fn addr(a: &str) -> SocketAddr {
    a.parse().expect("a test address")
}

/// Version 1's view of the first stream (§8.1): reliable messages only.
trait FirstStream {
    fn send(&mut self, msg: Bytes) -> Result<(), SendError>;
    fn recv(&mut self) -> Option<Bytes>;
}

impl FirstStream for Connection {
    fn send(&mut self, msg: Bytes) -> Result<(), SendError> {
        self.write(StreamId::FIRST, msg, Expiry::default())
    }

    fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.recv_on(StreamId::FIRST).ok()?? {
                Received::Message(m) => return Some(m),
                Received::Skipped { .. } => continue,
            }
        }
    }
}

fn t0() -> Instant {
    // Any fixed origin: only differences matter.
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn client(now: Instant) -> Connection {
    Connection::client(
        now,
        Arc::new(Config::default()),
        CLIENT_CID,
        CLIENT_PN,
        addr(SERVER_ADDR),
        [1; 32],
    )
}

fn server(now: Instant) -> Connection {
    Connection::server(
        now,
        Arc::new(Config::default()),
        (SERVER_CID, CLIENT_CID),
        SERVER_PN,
        Address::Validated,
        (addr(CLIENT_ADDR), [2; 32]),
    )
}

/// One datagram the connection sent: its header, its length and its frames
/// as text.
#[derive(Debug)]
struct Sent {
    header: Header,
    len: usize,
    frames: Vec<String>,
    bytes: Vec<u8>,
}

/// The next datagram `c` sends at `now`, if any.
fn transmit(c: &mut Connection, now: Instant) -> Option<Sent> {
    let mut out = Vec::new();
    c.poll_transmit(now, &mut out)?;
    let Ok(Datagram::Packet { header, payload }) = packet::decode(&out) else {
        panic!("the connection sent an undecodable datagram");
    };
    let frames = frame::decode_all(payload)
        .expect("the connection's own frames decode")
        .iter()
        .map(|f| f.to_string())
        .collect();
    Some(Sent {
        header,
        len: out.len(),
        frames,
        bytes: out.clone(),
    })
}

/// Every datagram `c` sends at `now`.
fn transmit_all(c: &mut Connection, now: Instant) -> Vec<Sent> {
    std::iter::from_fn(|| transmit(c, now)).take(100).collect()
}

/// Hands a datagram to `c` as the endpoint would.
fn deliver(c: &mut Connection, now: Instant, datagram: &[u8]) {
    let Ok(Datagram::Packet { header, payload }) = packet::decode(datagram) else {
        panic!("test datagrams decode");
    };
    // From the peer's address, whichever side `c` is.
    let from = match c.side() {
        Side::Client => addr(SERVER_ADDR),
        Side::Server => addr(CLIENT_ADDR),
    };
    c.handle_packet(now, from, &header, payload);
}

/// A packet from the peer with exactly these frames.
fn packet(ty: PacketType, dcid: ConnectionId, pn: u64, frames: &[Frame<'_>]) -> Vec<u8> {
    let header = Header {
        version: crate::wire::VERSION,
        ty,
        protection: Protection::Clear,
        dcid,
        scid: ty.has_source_cid().then_some(SERVER_CID),
        pn,
    };
    let mut out = Vec::new();
    header.encode(&mut out);
    for f in frames {
        f.encode(&mut out);
    }
    append_checksum(&mut out);
    out
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// A client and server past the handshake, at time `now` (returned).
fn established() -> (Connection, Connection, Instant) {
    let now = t0();
    let (mut c, mut s) = (client(now), server(now));
    for _ in 0..10 {
        let mut moved = false;
        for d in transmit_all(&mut c, now) {
            deliver(&mut s, now, &d.bytes);
            moved = true;
        }
        for d in transmit_all(&mut s, now) {
            deliver(&mut c, now, &d.bytes);
            moved = true;
        }
        if !moved && c.is_established() && s.is_confirmed() {
            break;
        }
    }
    assert!(c.is_established() && s.is_established(), "handshake");
    events(&mut c);
    events(&mut s);
    (c, s, now)
}

mod handshake {
    use super::*;

    #[test]
    fn the_client_opens_with_one_full_size_initial() {
        let now = t0();
        let mut c = client(now);
        let sent = transmit_all(&mut c, now);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let s = &sent[0];
        assert_eq!(s.header.ty, PacketType::Initial);
        assert_eq!(
            s.header.dcid,
            ConnectionId(0),
            "the server's CID is not known yet"
        );
        assert_eq!(s.header.scid, Some(CLIENT_CID));
        assert_eq!(s.header.pn, CLIENT_PN);
        assert_eq!(s.len, 1200, "§6.2: INITIALs fill the datagram");
        assert_eq!(s.header.version, crate::wire::VERSION_2);
        assert_eq!(s.frames.len(), 3, "{:?}", s.frames);
        assert_eq!(s.frames[0], "HANDSHAKE");
        assert_eq!(s.frames[1], STREAM_PARAMS);
        assert!(s.frames[2].starts_with("PADDING "), "{:?}", s.frames);
    }

    #[test]
    fn a_version_1_client_sends_version_1_frames_only() {
        let now = t0();
        let config = Config::builder().version(1).build().unwrap();
        let mut c = Connection::client(
            now,
            Arc::new(config),
            CLIENT_CID,
            CLIENT_PN,
            addr(SERVER_ADDR),
            [1; 32],
        );
        let s = transmit(&mut c, now).expect("an INITIAL");
        assert_eq!(s.header.version, crate::wire::VERSION_1);
        assert_eq!(s.frames.len(), 2, "{:?}", s.frames);
        assert_eq!(s.frames[0], "HANDSHAKE");
        // A version-2 server answers in version 1, without version 2's
        // frames (§15.1).
        let mut srv = server(now);
        deliver(&mut srv, now, &s.bytes);
        let a = transmit(&mut srv, now).expect("an ACCEPT");
        assert_eq!(a.header.version, crate::wire::VERSION_1);
        assert_eq!(a.frames[1..], ["HANDSHAKE".to_string()]);
        assert_eq!(srv.version(), crate::wire::VERSION_1);
    }

    #[test]
    fn version_negotiation_makes_a_version_2_client_fall_back_to_version_1() {
        let now = t0();
        let mut c = client(now);
        transmit(&mut c, now).expect("an INITIAL");
        c.on_version_negotiation(vec![1]);
        assert!(c.outcome().is_none(), "not a failure: version 1 is common");
        let again = transmit(&mut c, now).expect("the INITIAL in version 1");
        assert_eq!(again.header.version, crate::wire::VERSION_1);
        assert_eq!(again.frames[0], "HANDSHAKE");
        assert!(again.frames[1].starts_with("PADDING"), "{:?}", again.frames);
        assert_eq!(c.stats().streams.version_fallbacks, 1);
        // A server that speaks neither version ends it.
        let mut c = client(now);
        c.on_version_negotiation(vec![7]);
        assert!(matches!(
            c.outcome(),
            Some(Err(ConnectionError::VersionMismatch { ours: 2, .. }))
        ));
    }

    #[test]
    fn the_server_answers_an_initial_with_an_accept_that_acknowledges_it() {
        let now = t0();
        let mut c = client(now);
        let initial = transmit(&mut c, now).expect("an INITIAL");
        let mut s = server(now);
        deliver(&mut s, now, &initial.bytes);
        let sent = transmit_all(&mut s, now);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let a = &sent[0];
        assert_eq!(a.header.ty, PacketType::Accept);
        assert_eq!(a.header.dcid, CLIENT_CID);
        assert_eq!(a.header.scid, Some(SERVER_CID));
        assert_eq!(a.header.pn, SERVER_PN);
        assert_eq!(
            a.frames[0],
            format!("ACK {CLIENT_PN}..{} delay=0us", CLIENT_PN + 1)
        );
        assert_eq!(a.frames[1], "HANDSHAKE");
        assert_eq!(a.frames[2], STREAM_PARAMS);
        assert_eq!(a.frames.len(), 3, "{:?}", a.frames);
        assert!(
            !s.is_confirmed(),
            "confirmed only by the client's first DATA (§6.2)"
        );
    }

    #[test]
    fn an_unanswered_initial_is_sent_again_at_the_probe_timeout_with_a_new_number() {
        let now = t0();
        let mut c = client(now);
        transmit(&mut c, now).expect("an INITIAL");
        let deadline = c.poll_timeout().expect("a probe timer");
        // 100 ms initial RTT: PTO = srtt + 4 * rttvar (50 ms) = 300 ms
        // before the peer's ack delay is known (§9.3).
        assert_eq!(deadline - now, ms(300));
        assert!(transmit(&mut c, deadline - ms(1)).is_none());
        c.handle_timeout(deadline);
        let again = transmit_all(&mut c, deadline);
        assert!(!again.is_empty());
        for p in &again {
            assert_eq!(p.header.ty, PacketType::Initial);
            assert_eq!(p.len, 1200);
            assert_eq!(p.frames[0], "HANDSHAKE");
        }
        assert_eq!(again[0].header.pn, CLIENT_PN + 1);
    }

    #[test]
    fn the_client_confirms_with_data_and_reports_connected() {
        let now = t0();
        let (mut c, mut s) = (client(now), server(now));
        deliver(&mut s, now, &transmit(&mut c, now).unwrap().bytes);
        deliver(&mut c, now, &transmit(&mut s, now).unwrap().bytes);
        assert_eq!(events(&mut c), vec![Event::Connected]);
        let sent = transmit_all(&mut c, now);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].header.ty, PacketType::Data);
        assert_eq!(sent[0].header.dcid, SERVER_CID);
        assert_eq!(
            sent[0].frames,
            vec![format!("ACK {SERVER_PN}..{} delay=0us", SERVER_PN + 1)]
        );
        deliver(&mut s, now, &sent[0].bytes);
        assert!(s.is_confirmed());
    }

    #[test]
    fn a_repeated_initial_gets_the_accept_again() {
        let now = t0();
        let mut c = client(now);
        let initial = transmit(&mut c, now).expect("an INITIAL");
        let mut s = server(now);
        deliver(&mut s, now, &initial.bytes);
        let first = transmit_all(&mut s, now);
        assert_eq!(first.len(), 1);
        // The ACCEPT was lost; the client's probe repeats the INITIAL.
        let later = now + ms(300);
        c.handle_timeout(later);
        let again = transmit(&mut c, later).expect("the INITIAL again");
        deliver(&mut s, later, &again.bytes);
        let sent = transmit_all(&mut s, later);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].header.ty, PacketType::Accept);
        assert!(sent[0].header.pn > first[0].header.pn);
        assert_eq!(
            sent[0].frames,
            vec![
                format!("ACK {CLIENT_PN}..{} delay=0us", again.header.pn + 1),
                "HANDSHAKE".to_string(),
                STREAM_PARAMS.to_string(),
            ]
        );
    }
}

mod established {
    use super::*;

    #[test]
    fn a_message_leaves_in_one_stream_frame_with_its_length_prefix() {
        let (mut c, _s, now) = established();
        c.send(Bytes::from_static(b"7")).unwrap();
        let sent = transmit_all(&mut c, now);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].header.ty, PacketType::Data);
        assert_eq!(sent[0].frames, vec!["STREAM off=0 len=2"]);
    }

    #[test]
    fn one_data_packet_is_acknowledged_after_the_ack_delay_not_before() {
        let (mut c, mut s, now) = established();
        c.send(Bytes::from_static(b"7")).unwrap();
        let d = transmit(&mut c, now).unwrap();
        deliver(&mut s, now, &d.bytes);
        assert_eq!(events(&mut s), vec![Event::StreamReadable(StreamId::FIRST)]);
        assert!(
            transmit(&mut s, now).is_none(),
            "§7: one packet waits for a second"
        );
        let at = s.poll_timeout().expect("the ack timer");
        assert_eq!(at - now, ms(1), "max_ack_delay");
        s.handle_timeout(at);
        let sent = transmit_all(&mut s, at);
        assert_eq!(sent.len(), 1);
        // Everything so far is one range: the INITIAL, the DATA that
        // confirmed the handshake, and this packet.
        assert_eq!(
            sent[0].frames,
            vec![format!("ACK {CLIENT_PN}..{} delay=1000us", d.header.pn + 1)]
        );
    }

    #[test]
    fn a_second_packet_or_a_gap_is_acknowledged_at_once() {
        let (mut c, mut s, now) = established();
        // Three messages, each sent before the next is queued: three
        // packets.
        let mut packets = Vec::new();
        let mut t = now;
        for m in [&b"1"[..], b"2", b"3"] {
            c.send(Bytes::copy_from_slice(m)).unwrap();
            loop {
                if let Some(p) = transmit(&mut c, t) {
                    packets.push(p);
                    break;
                }
                t += ms(1); // The pacer's next slot.
            }
        }
        // The second packet arrives first: a gap, acknowledged at once.
        deliver(&mut s, t, &packets[1].bytes);
        let sent = transmit_all(&mut s, t);
        assert_eq!(sent.len(), 1, "a gap is acknowledged immediately (§7.1)");
        // Ranges largest first: the one just received, then the handshake's
        // (the INITIAL and the first DATA) below the gap.
        let (first, second) = (packets[0].header.pn, packets[1].header.pn);
        assert_eq!(
            sent[0].frames,
            vec![format!(
                "ACK {second}..{}, {CLIENT_PN}..{first} delay=0us",
                second + 1
            )
            .replace(", ", ",")]
        );
    }

    #[test]
    fn a_duplicate_is_discarded_and_acknowledged_at_once() {
        let (mut c, mut s, now) = established();
        c.send(Bytes::from_static(b"7")).unwrap();
        let d = transmit(&mut c, now).unwrap();
        deliver(&mut s, now, &d.bytes);
        let at = s.poll_timeout().unwrap();
        s.handle_timeout(at);
        transmit_all(&mut s, at);
        deliver(&mut s, at, &d.bytes);
        assert_eq!(s.stats().received.duplicates_discarded, 1);
        let sent = transmit_all(&mut s, at);
        assert_eq!(sent.len(), 1, "§7.4: a duplicate means our ACK was lost");
        assert_eq!(sent[0].frames.len(), 1, "{:?}", sent[0].frames);
        assert!(
            sent[0].frames[0].starts_with("ACK "),
            "{:?}",
            sent[0].frames
        );
        assert_eq!(s.recv(), Some(Bytes::from_static(b"7")));
        assert_eq!(s.recv(), None, "delivered once");
    }

    #[test]
    fn a_lost_message_is_sent_again_in_a_new_packet_at_the_probe_timeout() {
        let (mut c, _s, now) = established();
        c.send(Bytes::from_static(b"7")).unwrap();
        let first = transmit(&mut c, now).unwrap();
        let at = c.poll_timeout().expect("a probe timer");
        c.handle_timeout(at);
        let again = transmit_all(&mut c, at);
        assert!(!again.is_empty());
        assert!(
            again[0].header.pn > first.header.pn,
            "never the same number twice (§4.2)"
        );
        assert!(
            again[0].frames.iter().any(|f| f == "STREAM off=0 len=2"),
            "{:?}",
            again[0].frames
        );
    }
}

mod closing {
    use super::*;

    #[test]
    fn abort_sends_one_close_with_the_code_and_reason() {
        let (mut c, _s, now) = established();
        c.abort(now, VarInt::from_u32(7), "bye");
        let sent = transmit_all(&mut c, now);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].frames, vec![r#"CLOSE Application code=7 "bye""#]);
        assert!(matches!(c.state(), State::Closing { .. }));
        assert_eq!(
            events(&mut c),
            vec![Event::Closed(Err(ConnectionError::LocallyAborted {
                code: VarInt::from_u32(7)
            }))]
        );
    }

    #[test]
    fn in_closing_new_packets_get_the_close_again_at_a_falling_rate_and_duplicates_none() {
        let (mut c, mut s, now) = established();
        c.abort(now, VarInt::from_u32(7), "bye");
        transmit_all(&mut c, now);
        // The server keeps sending (it has not seen the CLOSE).
        let mut replies = Vec::new();
        let mut last = None;
        for i in 0..8u8 {
            s.send(Bytes::copy_from_slice(&[i])).unwrap();
            let t = now + ms(u64::from(i));
            let Some(d) = transmit(&mut s, t) else {
                continue;
            };
            deliver(&mut c, t, &d.bytes);
            replies.push(transmit_all(&mut c, t).len());
            last = Some(d);
        }
        // Replies to the 1st, 2nd, 4th and 8th new packet (§6.6).
        assert_eq!(replies, vec![1, 1, 0, 1, 0, 0, 0, 1]);
        let dup = last.unwrap();
        deliver(&mut c, now + ms(10), &dup.bytes);
        assert!(
            transmit(&mut c, now + ms(10)).is_none(),
            "a duplicate gets nothing"
        );
    }

    #[test]
    fn a_peer_close_drains_in_silence_and_reports_why() {
        let (mut c, _s, now) = established();
        let close = packet(
            PacketType::Data,
            CLIENT_CID,
            SERVER_PN + 100,
            &[Frame::Close(CloseFrame {
                kind: CloseKind::Application,
                code: 42,
                reason: b"done",
            })],
        );
        deliver(&mut c, now, &close);
        assert!(matches!(c.state(), State::Draining { .. }));
        assert!(
            transmit(&mut c, now).is_none(),
            "§6.6: a draining side sends nothing"
        );
        assert_eq!(
            events(&mut c),
            vec![Event::Closed(Err(ConnectionError::PeerAborted {
                code: VarInt::from_u32(42),
                reason: "done".into()
            }))]
        );
    }
}

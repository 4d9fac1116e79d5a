//! Reading one's own captures: version-3 packets turned to clear with the
//! transport keys of a key log (PROTOCOL.md §16.7).
//!
//! A decrypted packet keeps its header, with the sealed bit cleared, and
//! the NOISE frame an ACCEPT starts with (in clear on the wire, and part of
//! the associated data, §16.4); its frames follow in clear and the CRC32C
//! is computed anew, so that any reader of version 1's clear packets (the
//! Wireshark dissector, [`crate::wire::describe`]) shows them.
//!
//! The connection is found by CID: a key-log line names the client's CID,
//! which server-to-client packets carry; an ACCEPT names both CIDs, which
//! tells the server's CID that client-to-server packets carry.
//!
//! Everything kept is bounded by the key log: one pair of key chains per
//! line, and one server CID per connection whose key the log holds.

use crate::cipher::PacketCipher;
use crate::noise::{rekey, KEY_LEN};
use crate::psk::PacketKey;
use crate::wire::frame::{self, Frame};
use crate::wire::packet::{self, append_checksum};
use crate::wire::{ConnectionId, Datagram, Header, PacketType, Protection, Reader, VERSION_3};
use std::collections::HashMap;

/// How many rekeys (§16.6) past the newest key seen a packet may be sealed
/// with: a sender moves on at most once per acknowledged key, so a capture
/// that missed a few packets is still followed.
pub const REKEYS_AHEAD: usize = 4;

/// One direction's keys: the first, from the key log, and each that
/// followed by REKEY (§16.6), as far as the packets went.
#[derive(Debug, Clone)]
struct Direction {
    cipher: PacketCipher,
    /// The newest key's raw bytes, from which the next one follows.
    newest: [u8; KEY_LEN],
    /// The previous key (packets on their way when the sender moved on).
    previous: Option<PacketKey>,
    current: PacketKey,
}

impl Direction {
    fn new(cipher: PacketCipher, first: [u8; KEY_LEN]) -> Self {
        Self {
            cipher,
            newest: first,
            previous: None,
            current: PacketKey::from_raw(cipher, first),
        }
    }

    /// Opens a sealed payload with the current key, the previous one, or
    /// one of the next [`REKEYS_AHEAD`], moving on to the one that opens.
    fn open(&mut self, pn: u64, aad: &[u8], sealed: &[u8], plain: &mut Vec<u8>) -> bool {
        if self.current.open(pn, aad, sealed, plain).is_ok() {
            return true;
        }
        if let Some(p) = &self.previous {
            if p.open(pn, aad, sealed, plain).is_ok() {
                return true;
            }
        }
        // The key just before the one that opens becomes the previous:
        // late packets come from there, whatever the capture missed.
        let mut before = self.current.clone();
        let mut raw = self.newest;
        for _ in 0..REKEYS_AHEAD {
            raw = rekey(self.cipher, &raw);
            let key = PacketKey::from_raw(self.cipher, raw);
            if key.open(pn, aad, sealed, plain).is_ok() {
                self.previous = Some(before);
                self.current = key;
                self.newest = raw;
                return true;
            }
            before = key;
        }
        false
    }
}

/// What [`CaptureKeys::open`] made of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Not a sealed version-3 packet: nothing to open.
    NotSealed,
    /// A sealed version-3 packet that no key of the log opens.
    NoKey,
    /// The same packet in clear.
    Clear(Vec<u8>),
}

/// The keys of a key log, by connection, following each direction's
/// rekeys through the capture.
#[derive(Debug, Default)]
pub struct CaptureKeys {
    /// By client CID: client to server, server to client.
    by_client: HashMap<u64, (Direction, Direction)>,
    /// Server CID to client CID, learned from ACCEPTs of known connections,
    /// and back: one server CID per connection, the latest an ACCEPT named.
    client_of_server: HashMap<u64, u64>,
    server_of_client: HashMap<u64, u64>,
}

impl CaptureKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one key-log line's connection (§16.7); a later line for the
    /// same client CID replaces an earlier one.
    pub fn insert(
        &mut self,
        client_cid: ConnectionId,
        cipher: PacketCipher,
        client_to_server: [u8; KEY_LEN],
        server_to_client: [u8; KEY_LEN],
    ) {
        self.by_client.insert(
            client_cid.0,
            (
                Direction::new(cipher, client_to_server),
                Direction::new(cipher, server_to_client),
            ),
        );
    }

    /// How many connections' keys are held.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether no connection's keys are held.
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// `datagram` with its packet in clear, if it is a sealed version-3
    /// packet whose keys are held. Datagrams must come in capture order:
    /// an ACCEPT teaches the server's CID, and keys follow rekeys.
    pub fn open(&mut self, datagram: &[u8]) -> Opened {
        let Ok(Datagram::Packet { header, payload }) = packet::decode(datagram) else {
            return Opened::NotSealed;
        };
        if header.version != VERSION_3 || header.protection != Protection::Sealed {
            return Opened::NotSealed;
        }
        // An ACCEPT's NOISE frame is in clear and part of the associated
        // data (§16.4).
        let mut r = Reader::new(payload);
        let clear = match (header.ty, frame::decode_one(&mut r)) {
            (PacketType::Accept, Ok(Frame::Noise(_))) => payload.len() - r.remaining(),
            _ => 0,
        };
        let Some(keys) = self.direction(&header) else {
            return Opened::NoKey;
        };
        let mut aad = Vec::with_capacity(packet::LONG_HEADER_LEN + clear);
        header.encode(&mut aad);
        aad.extend_from_slice(&payload[..clear]);
        let mut frames = Vec::new();
        if !keys.open(header.pn, &aad, &payload[clear..], &mut frames) {
            return Opened::NoKey;
        }
        let mut out = Vec::with_capacity(datagram.len());
        Header {
            protection: Protection::Clear,
            ..header
        }
        .encode(&mut out);
        out.extend_from_slice(&payload[..clear]);
        out.extend_from_slice(&frames);
        append_checksum(&mut out);
        Opened::Clear(out)
    }

    /// The direction whose keys open a packet with this header, if known.
    fn direction(&mut self, header: &Header) -> Option<&mut Direction> {
        if let (PacketType::Accept, Some(scid)) = (header.ty, header.scid) {
            // Only for connections in the log, and one server CID each: the
            // maps stay as small as the key log, however many ACCEPTs (or
            // forgeries of them) the capture holds.
            let client = header.dcid.0;
            if self.by_client.contains_key(&client) {
                if let Some(old) = self.server_of_client.insert(client, scid.0) {
                    self.client_of_server.remove(&old);
                }
                self.client_of_server.insert(scid.0, client);
            }
        }
        if self.by_client.contains_key(&header.dcid.0) {
            return self.by_client.get_mut(&header.dcid.0).map(|(_, s2c)| s2c);
        }
        let client = self.client_of_server.get(&header.dcid.0)?;
        self.by_client.get_mut(client).map(|(c2s, _)| c2s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §16.6: a direction's keys follow the sender's rekeys from the key
    /// log's first key: late packets under the previous key still open,
    /// and a key more than [`REKEYS_AHEAD`] moves away does not.
    #[test]
    fn a_direction_follows_rekeys_for_both_ciphers() {
        for cipher in PacketCipher::ALL {
            let mut raw = [9u8; 32];
            let mut chain = vec![raw];
            for _ in 0..8 {
                raw = rekey(cipher, &raw);
                chain.push(raw);
            }
            let sealed = |generation: usize, pn: u64| {
                let mut p = b"frames".to_vec();
                PacketKey::from_raw(cipher, chain[generation]).seal(pn, 0, &mut p);
                p
            };
            let mut d = Direction::new(cipher, chain[0]);
            let mut plain = Vec::new();
            // Generation 2's first packet arrives after generation 3's.
            for (generation, pn) in [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (3, 6)] {
                assert!(
                    d.open(pn, b"", &sealed(generation, pn), &mut plain),
                    "{cipher}: generation {generation}, pn {pn}"
                );
                assert_eq!(plain, b"frames");
            }
            // Two keys back, or five ahead, is out of reach.
            assert!(!d.open(7, b"", &sealed(0, 7), &mut plain));
            assert!(!d.open(8, b"", &sealed(8, 8), &mut plain));
            assert!(d.open(9, b"", &sealed(7, 9), &mut plain));
        }
    }

    /// A sealed DATA packet to the client's CID opens with the
    /// server-to-client key into the same packet in clear; one to an
    /// unknown CID, or from an ACCEPT of a connection not in the log,
    /// teaches nothing.
    #[test]
    fn a_sealed_packet_opens_into_its_clear_twin() {
        let cipher = PacketCipher::ChaCha20Poly1305;
        let (c2s, s2c) = ([1u8; 32], [2u8; 32]);
        let mut keys = CaptureKeys::new();
        keys.insert(ConnectionId(7), cipher, c2s, s2c);
        let frames = {
            let mut f = Vec::new();
            Frame::Ping.encode(&mut f);
            f
        };
        let sealed = |dcid: u64, key: [u8; 32]| {
            let header = Header {
                version: VERSION_3,
                ty: PacketType::Data,
                protection: Protection::Sealed,
                dcid: ConnectionId(dcid),
                scid: None,
                pn: 11,
            };
            let mut out = Vec::new();
            header.encode(&mut out);
            let len = out.len();
            out.extend_from_slice(&frames);
            PacketKey::from_raw(cipher, key).seal(header.pn, len, &mut out);
            // A sealed version-3 DATA packet has no CRC32C (§16.5).
            assert!(!header.has_checksum());
            out
        };
        let Opened::Clear(clear) = keys.open(&sealed(7, s2c)) else {
            panic!("the server-to-client key opens a packet to the client's CID");
        };
        let Ok(Datagram::Packet { header, payload }) = packet::decode(&clear) else {
            panic!("the clear packet decodes");
        };
        assert_eq!(header.protection, Protection::Clear);
        assert_eq!(header.pn, 11);
        assert_eq!(payload, &frames[..]);
        assert_eq!(keys.open(&sealed(8, c2s)), Opened::NoKey);
        assert_eq!(keys.open(&clear), Opened::NotSealed);
        assert_eq!(keys.open(b"not rudp"), Opened::NotSealed);
        assert!(keys.client_of_server.is_empty());
    }

    /// However many ACCEPTs name a known connection, it keeps one server
    /// CID (the latest), and ACCEPTs of unknown ones keep nothing.
    #[test]
    fn accepts_keep_one_server_cid_per_known_connection() {
        let mut keys = CaptureKeys::new();
        keys.insert(
            ConnectionId(7),
            PacketCipher::ChaCha20Poly1305,
            [1; 32],
            [2; 32],
        );
        for (client, server) in (1..=100)
            .map(|s| (7, s))
            .chain((1..=100).map(|s| (8, 1000 + s)))
        {
            let header = Header {
                version: VERSION_3,
                ty: PacketType::Accept,
                protection: Protection::Sealed,
                dcid: ConnectionId(client),
                scid: Some(ConnectionId(server)),
                pn: 1,
            };
            let _ = keys.direction(&header);
        }
        assert_eq!(keys.client_of_server.len(), 1);
        assert_eq!(keys.client_of_server.get(&100), Some(&7));
        assert_eq!(keys.server_of_client.len(), 1);
    }
}

//! The keys one connection seals and opens its packets with: derived from
//! a pre-shared key (PROTOCOL.md §3.7), or made by version 3's handshake
//! (§16.5) and then moved on by its key ratchet (§16.6).
//!
//! A part of the connection that owns its key material and is reached
//! through narrow calls: what it needs of the rest (side, CIDs, time,
//! packet numbers) is passed in, and what it did is returned for the
//! connection to count.

use super::Side;
use crate::cipher::PacketCipher;
use crate::noise::TransportKeys;
use crate::psk::{PacketKey, Psk};
use crate::wire::{ConnectionId, Header};
use std::time::{Duration, Instant};

/// The packet keys of one connection.
#[derive(Debug)]
pub(super) struct Keys {
    /// The pre-shared key a client derives the server's key from, once it
    /// learns the server's CID; `None` for version 3's keys.
    psk: Option<Psk>,
    /// Key for the packets we send.
    seal: PacketKey,
    /// Key for the peer's packets, and the server CID it was derived for: a
    /// client learns that CID from the ACCEPT it is about to open.
    open: Option<(ConnectionId, PacketKey)>,
    /// Version 3's ratchet; `None` for a pre-shared key's fixed keys.
    ratchet: Option<Box<Ratchet>>,
}

/// Version 3's key ratchet (§16.6): the packet cipher the handshake
/// chose, the raw bytes of this side's sending key and of the peer's
/// current one, from which each next key follows by Noise's REKEY, and the
/// peer's previous key for packets that were on their way when it moved on.
struct Ratchet {
    cipher: PacketCipher,
    send: [u8; 32],
    /// When our sending key was last moved on, and the first packet number
    /// sealed with it: it moves on again only once the peer acknowledged
    /// one of those, so the peer is never two keys behind.
    send_since: Instant,
    send_first_pn: u64,
    open: [u8; 32],
    /// The peer's previous key, and until when late packets may use it.
    previous: Option<(PacketKey, Instant)>,
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ratchet(..)") // Never print key material.
    }
}

/// Which of the peer's other keys opened a DATA packet (§16.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OtherKey {
    /// Its previous key: the packet was on its way when it moved on.
    Previous,
    /// Its next key: it moved on, and so does our view of it.
    Next,
}

impl Keys {
    /// A client's keys from a pre-shared key (§3.7): the key for the
    /// server's packets follows once the server's CID is known.
    pub(super) fn client_psk(psk: &Psk, local_cid: ConnectionId) -> Self {
        Self {
            seal: psk.client_key(local_cid),
            open: None,
            psk: Some(psk.clone()),
            ratchet: None,
        }
    }

    /// A server's keys from a pre-shared key (§3.7).
    pub(super) fn server_psk(psk: &Psk, client_cid: ConnectionId, local_cid: ConnectionId) -> Self {
        Self {
            seal: psk.server_key(client_cid, local_cid),
            open: Some((local_cid, psk.client_key(client_cid))),
            psk: Some(psk.clone()),
            ratchet: None,
        }
    }

    /// A side's keys from version 3's handshake (§16.5), the ratchet
    /// starting with the packet number `next_pn`.
    pub(super) fn from_handshake(
        now: Instant,
        side: Side,
        local_cid: ConnectionId,
        cipher: PacketCipher,
        k: &TransportKeys,
        next_pn: u64,
    ) -> Self {
        let (send, open) = match side {
            Side::Client => (k.client_to_server, k.server_to_client),
            Side::Server => (k.server_to_client, k.client_to_server),
        };
        Self {
            psk: None,
            seal: PacketKey::from_raw(cipher, send),
            open: Some((local_cid, PacketKey::from_raw(cipher, open))),
            ratchet: Some(Box::new(Ratchet {
                cipher,
                send,
                send_since: now,
                send_first_pn: next_pn,
                open,
                previous: None,
            })),
        }
    }

    /// The packet cipher version 3's handshake chose; `None` for a
    /// pre-shared key's keys.
    pub(super) fn cipher(&self) -> Option<PacketCipher> {
        self.ratchet.as_ref().map(|r| r.cipher)
    }

    /// Seals packet `pn` in `out` after its first `clear` bytes (§3.7).
    pub(super) fn seal(&self, pn: u64, clear: usize, out: &mut Vec<u8>) {
        self.seal.seal(pn, clear, out);
    }

    /// The key that opens this packet of the peer's. A client keyed by a
    /// pre-shared key derives the server's key from the server's CID: the
    /// source CID of an ACCEPT (zero in stateless replies), then the one
    /// it learned (`remote_cid`).
    pub(super) fn open_key(
        &mut self,
        side: Side,
        local_cid: ConnectionId,
        remote_cid: ConnectionId,
        header: &Header,
    ) -> Option<&PacketKey> {
        if let (Side::Client, Some(psk)) = (side, &self.psk) {
            let server_cid = header.scid.unwrap_or(remote_cid);
            if self.open.as_ref().is_none_or(|(c, _)| *c != server_cid) {
                self.open = Some((server_cid, psk.server_key(local_cid, server_cid)));
            }
        }
        self.open.as_ref().map(|(_, k)| k)
    }

    /// §16.6: moves our sending key on once it has been in use for
    /// `rekey_after` and the peer acknowledged a packet sealed with it
    /// (`largest_acked`); the next key starts at packet `next_pn`. Returns
    /// whether it moved. Packet numbers go on rising across keys, so no
    /// (key, nonce) pair repeats, whatever is retransmitted.
    pub(super) fn rekey_if_due(
        &mut self,
        now: Instant,
        rekey_after: Duration,
        largest_acked: Option<u64>,
        next_pn: u64,
    ) -> bool {
        let Some(r) = self.ratchet.as_mut() else {
            return false;
        };
        let due = now.saturating_duration_since(r.send_since) >= rekey_after;
        if !due || largest_acked.is_none_or(|a| a < r.send_first_pn) {
            return false;
        }
        r.send = crate::noise::rekey(r.cipher, &r.send);
        r.send_since = now;
        r.send_first_pn = next_pn;
        self.seal = PacketKey::from_raw(r.cipher, r.send);
        true
    }

    /// §16.6: opens a DATA packet that the peer's current key did not with
    /// its previous key (until `previous_for` after it moved on) or its
    /// next one. Only a packet that opens moves our view on, so a forgery
    /// changes nothing.
    pub(super) fn open_with_other_keys(
        &mut self,
        now: Instant,
        previous_for: Duration,
        header: &Header,
        payload: &[u8],
        plain: &mut Vec<u8>,
    ) -> Option<OtherKey> {
        let r = self.ratchet.as_mut()?;
        if let Some((previous, until)) = &r.previous {
            if now < *until && previous.open_packet(header, payload, plain).is_ok() {
                return Some(OtherKey::Previous);
            }
        }
        let next_raw = crate::noise::rekey(r.cipher, &r.open);
        let next = PacketKey::from_raw(r.cipher, next_raw);
        next.open_packet(header, payload, plain).ok()?;
        if let Some((cid, current)) = self.open.take() {
            r.previous = Some((current, now + previous_for));
            self.open = Some((cid, next));
        }
        r.open = next_raw;
        Some(OtherKey::Next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PacketType, Protection, VERSION_3};

    const CLIENT: ConnectionId = ConnectionId(0xC1);
    const SERVER: ConnectionId = ConnectionId(0x5E);
    const SECOND: Duration = Duration::from_secs(1);

    /// Both sides' keys from one handshake's split.
    fn pair(now: Instant) -> (Keys, Keys) {
        let split = TransportKeys {
            client_to_server: [1; 32],
            server_to_client: [2; 32],
        };
        let cipher = PacketCipher::ChaCha20Poly1305;
        (
            Keys::from_handshake(now, Side::Client, CLIENT, cipher, &split, 100),
            Keys::from_handshake(now, Side::Server, SERVER, cipher, &split, 500),
        )
    }

    /// A DATA packet from the client, numbered `pn`: its header and its
    /// sealed payload.
    fn data(client: &Keys, pn: u64) -> (Header, Vec<u8>) {
        let header = Header {
            version: VERSION_3,
            ty: PacketType::Data,
            protection: Protection::Sealed,
            dcid: SERVER,
            scid: None,
            pn,
        };
        let mut out = Vec::new();
        header.encode(&mut out);
        let clear = out.len();
        out.extend_from_slice(b"frames");
        client.seal(pn, clear, &mut out);
        (header, out.split_off(clear))
    }

    fn opens_with_current(server: &mut Keys, (header, payload): &(Header, Vec<u8>)) -> bool {
        let key = server
            .open_key(Side::Server, SERVER, CLIENT, header)
            .expect("a key");
        key.open_packet(header, payload, &mut Vec::new()).is_ok()
    }

    #[test]
    fn the_sending_key_moves_on_only_when_due_and_acknowledged() {
        let t0 = Instant::now();
        let (mut client, _) = pair(t0);
        assert!(
            !client.rekey_if_due(t0 + SECOND / 2, SECOND, Some(120), 130),
            "not in use for long enough"
        );
        assert!(
            !client.rekey_if_due(t0 + SECOND * 2, SECOND, Some(99), 130),
            "nothing sealed with the key was acknowledged"
        );
        assert!(client.rekey_if_due(t0 + SECOND * 2, SECOND, Some(100), 130));
        assert!(
            !client.rekey_if_due(t0 + SECOND * 4, SECOND, Some(129), 140),
            "the new key's first packet (130) is not acknowledged yet"
        );
        assert!(client.rekey_if_due(t0 + SECOND * 4, SECOND, Some(130), 140));
    }

    #[test]
    fn the_peer_moving_on_is_followed_and_its_previous_key_opens_late_packets() {
        let t0 = Instant::now();
        let (mut client, mut server) = pair(t0);
        let late = data(&client, 100);
        assert!(opens_with_current(&mut server, &late));
        assert!(client.rekey_if_due(t0 + SECOND, SECOND, Some(100), 101));
        let moved = data(&client, 101);
        assert!(!opens_with_current(&mut server, &moved));
        let now = t0 + SECOND;
        let (header, payload) = &moved;
        let mut plain = Vec::new();
        assert_eq!(
            server.open_with_other_keys(now, SECOND, header, payload, &mut plain),
            Some(OtherKey::Next)
        );
        assert_eq!(plain, b"frames");
        assert!(
            opens_with_current(&mut server, &moved),
            "now the current key"
        );
        let (header, payload) = &late;
        assert_eq!(
            server.open_with_other_keys(now, SECOND, header, payload, &mut plain),
            Some(OtherKey::Previous)
        );
        assert_eq!(
            server.open_with_other_keys(now + SECOND, SECOND, header, payload, &mut plain),
            None,
            "the previous key is kept for a while only"
        );
    }

    #[test]
    fn a_forgery_moves_nothing() {
        let t0 = Instant::now();
        let (client, mut server) = pair(t0);
        let (header, mut payload) = data(&client, 100);
        payload[0] ^= 1;
        let mut plain = Vec::new();
        assert_eq!(
            server.open_with_other_keys(t0, SECOND, &header, &payload, &mut plain),
            None
        );
        assert!(opens_with_current(&mut server, &data(&client, 101)));
    }
}

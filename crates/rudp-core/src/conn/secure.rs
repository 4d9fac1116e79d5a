//! Version 3 on a connection (PROTOCOL.md §16): where the Noise handshake
//! travels and how its keys take over.
//!
//! - Client: IK's first message rides in a NOISE frame of every INITIAL
//!   (the same bytes each time, so a lost INITIAL is resent as it was);
//!   its payload carries our HANDSHAKE and STREAM_PARAMETERS frames. A
//!   client that does not know the server's key first sends INITIALs
//!   without NOISE and learns the key from the server's RETRY (§16.4).
//! - Server: the endpoint read the first message before creating us; we
//!   answer with the second in a NOISE frame at the start of every ACCEPT,
//!   its payload carrying our parameters, and seal the rest of the ACCEPT
//!   with the new keys, the header and the NOISE frame as associated data.
//! - Both: from then on every packet is sealed as in §3.7, with the
//!   handshake's two transport keys.

use super::keys::{Keys, OtherKey};
use super::{Address, Body, Connection, Side, State};
use crate::cipher::PacketCipher;
use crate::config::Config;
use crate::error::{ConnectionError, TransportCode};
use crate::noise::{HandshakeInputs, Initiator, Keypair, PublicKey, Responder, TransportKeys};
use crate::psk::PacketKey;
use crate::wire::{frame, CloseKind, ConnectionId, Frame, Header, PacketType, Protection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where a connection's Noise handshake stands.
#[derive(Debug, Default)]
pub(super) enum Handshake {
    /// Versions 1 and 2, or version 3 once complete.
    #[default]
    Idle,
    /// Client: waiting for the server's key (RETRY with SERVER_KEY).
    AwaitingKey { identity: Keypair },
    /// Client: IK's first message sent; `frame` is its NOISE frame.
    Sent {
        /// Boxed: snow's state is large, and most connections never hold one.
        initiator: Box<Initiator>,
        frame: Vec<u8>,
        identity: Keypair,
    },
    /// Server: the NOISE frame every ACCEPT starts with.
    Answered { frame: Vec<u8> },
}

/// The Noise message `m` as a NOISE frame.
fn noise_frame(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + 4);
    Frame::Noise(m).encode(&mut out);
    out
}

/// The client's reading of the server's CIPHERS (§16.5): exactly one
/// identifier, one we offered; none means ChaCha20-Poly1305, if we offered
/// it. Anything else fails the handshake.
fn chosen_cipher(offered: &[PacketCipher], answer: &[u8]) -> Result<PacketCipher, String> {
    let frames = frame::decode_all(answer).map_err(|_| "the server's parameters are malformed")?;
    let mut lists = frames.iter().filter_map(|f| match f {
        Frame::Ciphers(ids) => Some(*ids),
        _ => None,
    });
    let chosen = match (lists.next(), lists.next()) {
        (None, _) => Some(PacketCipher::ChaCha20Poly1305),
        (Some([id]), None) => PacketCipher::from_id(*id),
        _ => None,
    };
    chosen
        .filter(|c| offered.contains(c))
        .ok_or_else(|| "the server chose a packet cipher this client did not offer".into())
}

/// A CIPHERS frame listing `ciphers`, best first (§16.5).
fn ciphers_frame(ciphers: &[PacketCipher], out: &mut Vec<u8>) {
    let ids: Vec<u8> = ciphers.iter().map(|c| c.id()).collect();
    Frame::Ciphers(&ids).encode(out);
}

impl Connection {
    /// The seed of this connection's handshake randomness: a hash of the
    /// path secret (which the endpoint drew from its secure seed), so the
    /// two never share output.
    fn noise_seed(&self, label: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"rudp noise seed ");
        h.update(label);
        h.update(self.migration.secret());
        h.finalize().into()
    }

    fn noise_psk(&self) -> Option<[u8; 32]> {
        self.config.psk.as_ref().map(crate::psk::Psk::noise_key)
    }

    /// Our parameters, as the payload of a Noise message, with the packet
    /// ciphers: a client's offer or a server's choice (§16.2, §16.5).
    fn params_payload(&self, ciphers: &[PacketCipher]) -> Vec<u8> {
        let mut p = Vec::with_capacity(64);
        Frame::Handshake(self.local_params()).encode(&mut p);
        Frame::StreamParams(self.local_stream_params()).encode(&mut p);
        ciphers_frame(ciphers, &mut p);
        p
    }

    /// Client: starts version 3 with the server's key if the verifier
    /// knows it, otherwise asks for it (§16.4).
    pub(super) fn start_secure(&mut self) {
        let identity = match &self.config.security.identity {
            Some(k) => k.clone(),
            None => Keypair::generate(self.noise_seed(b"identity")),
        };
        let Some(verifier) = self.config.security.verifier.clone() else {
            return self.fail_server_key("no server-key verifier is configured".into());
        };
        match verifier.expected(self.remote) {
            Some(key) => self.send_first_message(identity, key),
            None => self.handshake = Handshake::AwaitingKey { identity },
        }
    }

    /// Writes IK's first message to `server`.
    fn send_first_message(&mut self, identity: Keypair, server: PublicKey) {
        let prologue = crate::noise::prologue(
            crate::wire::VERSION_3,
            &[crate::wire::VERSION_3],
            self.local_cid,
        );
        let inputs = HandshakeInputs {
            prologue: &prologue,
            psk: self.noise_psk(),
            seed: self.noise_seed(b"ephemeral"),
            fixed_ephemeral: None,
        };
        let payload = self.params_payload(&self.config.security.packet_ciphers);
        match Initiator::start(&identity, &server, &inputs, &payload) {
            Ok(initiator) => {
                let frame = noise_frame(initiator.message());
                self.peer_key = Some(server);
                self.handshake = Handshake::Sent {
                    initiator: Box::new(initiator),
                    frame,
                    identity,
                };
                self.handshake_pending = true;
            }
            Err(e) => self.fail_server_key(format!("{e} (key {server:?})")),
        }
    }

    fn fail_server_key(&mut self, reason: String) {
        self.handshake = Handshake::Idle;
        self.finish(Err(ConnectionError::ServerKey { reason }));
        self.state = State::Closed;
    }

    /// Client: a RETRY of version 3 may carry the server's key: the one we
    /// asked for, or, with UNREADABLE naming our first message by its
    /// ephemeral key, the server's answer to a message it could not read
    /// (§16.4). The verifier decides on a key we did not use; a key it
    /// refuses ends the connection at once, before any data, and a RETRY
    /// never makes us trust a key the verifier did not accept. Returns
    /// false if the connection failed.
    pub(super) fn on_server_key(
        &mut self,
        key: Option<[u8; 32]>,
        unreadable: Option<[u8; 32]>,
    ) -> bool {
        let Some(key) = key.map(PublicKey) else {
            return true; // A plain RETRY: only its token counts.
        };
        if self.peer_key == Some(key) {
            let ours = match &self.handshake {
                Handshake::Sent { initiator, .. } => initiator.message().get(..32),
                _ => None,
            };
            if unreadable.is_some() && ours == unreadable.as_ref().map(|e| &e[..]) {
                // The server holds the key we used but could not read our
                // message: the pre-shared keys differ.
                self.fail_server_key(
                    "the server holds the expected key but could not read this client's \
                     handshake: the two sides use different pre-shared keys (--psk), or one \
                     side none"
                        .into(),
                );
                return false;
            }
            return true; // A repeated answer to our key request.
        }
        if !matches!(
            self.handshake,
            Handshake::AwaitingKey { .. } | Handshake::Sent { .. }
        ) {
            return true;
        }
        let verdict = match &self.config.security.verifier {
            Some(v) => v.verify(self.remote, &key),
            None => Err("no server-key verifier is configured".into()),
        };
        if let Err(reason) = verdict {
            self.fail_server_key(reason);
            return false;
        }
        match std::mem::take(&mut self.handshake) {
            Handshake::AwaitingKey { identity } | Handshake::Sent { identity, .. } => {
                self.send_first_message(identity, key)
            }
            other => self.handshake = other,
        }
        self.outcome.is_none()
    }

    /// Server: a connection whose client's first message the endpoint read
    /// and admitted, with the packet cipher it chose (§16.5). Writes the
    /// answer at once; the keys are ready.
    #[allow(clippy::too_many_arguments)] // One per part of what was agreed.
    pub fn server_secure(
        now: Instant,
        config: Arc<Config>,
        cids: (ConnectionId, ConnectionId),
        first_pn: u64,
        address: Address,
        remote: (SocketAddr, [u8; 32]),
        responder: Responder,
        cipher: PacketCipher,
    ) -> Result<Self, crate::noise::HandshakeError> {
        let mut c = Self::server(now, config, cids, first_pn, address, remote);
        c.version = crate::wire::VERSION_3;
        c.keys = None;
        let client = responder.client();
        c.initial_plain = Some(responder.payload().to_vec());
        let (answer, keys) = responder.answer(&c.params_payload(&[cipher]))?;
        c.install_keys(now, cipher, &keys);
        c.peer_key = Some(client);
        c.handshake = Handshake::Answered {
            frame: noise_frame(&answer),
        };
        Ok(c)
    }

    fn install_keys(&mut self, now: Instant, cipher: PacketCipher, keys: &TransportKeys) {
        if let Some(log) = &self.config.security.key_log {
            let client_cid = match self.side {
                Side::Client => self.local_cid,
                Side::Server => self.remote_cid,
            };
            log.log(client_cid, cipher, keys);
        }
        self.keys = Some(Keys::from_handshake(
            now,
            self.side,
            self.local_cid,
            cipher,
            keys,
            self.next_pn,
        ));
    }

    /// §16.6: moves our sending key on once the handshake is confirmed
    /// and the key is due ([`Keys::rekey_if_due`]).
    pub(super) fn maybe_rekey(&mut self, now: Instant) {
        let (acked, next_pn) = (self.recovery.largest_acked, self.next_pn);
        let Some(keys) = self.keys.as_mut().filter(|_| self.confirmed) else {
            return;
        };
        if keys.rekey_if_due(now, self.config.rekey_after, acked, next_pn) {
            self.stats.sent.rekeys += 1;
        }
    }

    /// §16.6: a DATA packet that the peer's current key does not open may
    /// be sealed with its next key or its previous one, which stays usable
    /// for three probe timeouts after the peer moved on.
    fn open_with_other_keys(
        &mut self,
        now: Instant,
        header: &Header,
        payload: &[u8],
        plain: &mut Vec<u8>,
    ) -> bool {
        let previous_for = self.pto() * 3;
        let Some(keys) = self.keys.as_mut() else {
            return false;
        };
        match keys.open_with_other_keys(now, previous_for, header, payload, plain) {
            Some(OtherKey::Next) => {
                self.stats.received.rekeys += 1;
                true
            }
            Some(OtherKey::Previous) => true,
            None => false,
        }
    }

    /// The NOISE frame that starts an INITIAL or ACCEPT of ours, if any.
    pub(super) fn handshake_frame(&self) -> Option<&[u8]> {
        match &self.handshake {
            Handshake::Sent { frame, .. } | Handshake::Answered { frame } => Some(frame),
            _ => None,
        }
    }

    /// §16.3: opens a packet of version 3 into `plain`, completing the
    /// client's handshake on the first ACCEPT. `None` if it must be dropped.
    pub(super) fn unprotect_secure(
        &mut self,
        now: Instant,
        header: &Header,
        payload: &[u8],
        plain: &mut Vec<u8>,
    ) -> Option<Body> {
        match (self.side, header.ty, header.protection) {
            // An INITIAL: only NOISE, TOKEN and PADDING travel in clear. The
            // first one's Noise payload (the client's parameters) stands for
            // the frames of every INITIAL, as the HANDSHAKE frame each
            // INITIAL of version 2 carries: a resent INITIAL is acknowledged
            // like any other, so the client stops resending it.
            (Side::Server, PacketType::Initial, Protection::Clear) => {
                let frames = frame::decode_all(payload).ok()?;
                let clear_only = frames
                    .iter()
                    .all(|f| matches!(f, Frame::Noise(_) | Frame::Token(_) | Frame::Padding(_)));
                if !clear_only {
                    return None;
                }
                plain.clear();
                if let Some(first) = &self.initial_plain {
                    plain.extend_from_slice(first);
                }
                Some(Body::Opened)
            }
            // The one clear ACCEPT a client takes: a refusal (§6.3).
            (Side::Client, PacketType::Accept, Protection::Clear) => {
                let refused = TransportCode::ConnectionRefused.to_u64();
                let refusal = self.state == State::Handshake
                    && matches!(frame::decode_all(payload).as_deref(),
                        Ok([Frame::Close(c)]) if c.kind == CloseKind::Transport && c.code == refused);
                refusal.then_some(Body::Clear)
            }
            (Side::Client, PacketType::Accept, Protection::Sealed) => {
                let mut r = crate::wire::Reader::new(payload);
                let Ok(Frame::Noise(answer)) = frame::decode_one(&mut r) else {
                    return None;
                };
                let clear_len = payload.len() - r.remaining();
                // The NOISE frame is one of the packet's frames (§16.3): it
                // makes every ACCEPT ack-eliciting, also one whose sealed
                // part is empty (a probe, §9.3), so the server learns that
                // its handshake arrived and stops resending it.
                plain.clear();
                plain.extend_from_slice(&payload[..clear_len]);
                if let Handshake::Sent { .. } = &self.handshake {
                    let Handshake::Sent { initiator, .. } = std::mem::take(&mut self.handshake)
                    else {
                        return None;
                    };
                    // A forgery that fails here ends the handshake: only
                    // someone on the path could send one, and they could
                    // as well drop the real ACCEPT (§16.8).
                    let Ok((params, keys)) = initiator.finish(answer) else {
                        let why = if self.config.psk.is_some() {
                            "the server's answer did not authenticate: do both sides use the same pre-shared key?"
                        } else {
                            "the server's answer did not authenticate"
                        };
                        self.fail_server_key(why.into());
                        return None;
                    };
                    let offered = &self.config.security.packet_ciphers;
                    let cipher = match chosen_cipher(offered, &params) {
                        Ok(c) => c,
                        Err(why) => {
                            self.fail_server_key(why);
                            return None;
                        }
                    };
                    self.install_keys(now, cipher, &keys);
                    plain.extend_from_slice(&params);
                }
                let mut aad = Vec::with_capacity(crate::wire::packet::LONG_HEADER_LEN + clear_len);
                header.encode(&mut aad);
                aad.extend_from_slice(&payload[..clear_len]);
                let key = self.open_key(header)?;
                let mut rest = Vec::new();
                key.open(header.pn, &aad, &payload[clear_len..], &mut rest)
                    .ok()?;
                plain.extend_from_slice(&rest);
                Some(Body::Opened)
            }
            (_, PacketType::Data, Protection::Sealed) => {
                let opened = self.open_key(header)?.open_packet(header, payload, plain);
                if opened.is_ok() || self.open_with_other_keys(now, header, payload, plain) {
                    Some(Body::Opened)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The packet cipher of a version-3 connection once its keys are made
    /// (§16.5); `None` before, and in versions 1 and 2.
    pub fn packet_cipher(&self) -> Option<PacketCipher> {
        self.keys.as_ref().and_then(Keys::cipher)
    }

    /// The peer's static public key, once the version-3 handshake has
    /// authenticated it (a client knows it from the start: the key it
    /// expects). `None` in versions 1 and 2.
    pub fn peer_key(&self) -> Option<PublicKey> {
        if self.version == crate::wire::VERSION_3 {
            self.peer_key
        } else {
            None
        }
    }

    /// The key that opens this packet of the peer's.
    pub(super) fn open_key(&mut self, header: &Header) -> Option<&PacketKey> {
        let (side, local, remote) = (self.side, self.local_cid, self.remote_cid);
        self.keys.as_mut()?.open_key(side, local, remote, header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(lists: &[&[u8]]) -> Vec<u8> {
        let mut p = Vec::new();
        Frame::Ping.encode(&mut p);
        for ids in lists {
            Frame::Ciphers(ids).encode(&mut p);
        }
        p
    }

    /// §16.5: the client takes the server's one choice among those it
    /// offered; no list means ChaCha20-Poly1305; anything else fails.
    #[test]
    fn a_client_accepts_only_one_cipher_it_offered() {
        use PacketCipher::{Aes256Gcm, ChaCha20Poly1305};
        let both = [Aes256Gcm, ChaCha20Poly1305];
        assert_eq!(chosen_cipher(&both, &answer(&[&[2]])), Ok(Aes256Gcm));
        assert_eq!(chosen_cipher(&both, &answer(&[&[1]])), Ok(ChaCha20Poly1305));
        assert_eq!(chosen_cipher(&both, &answer(&[])), Ok(ChaCha20Poly1305));
        assert!(chosen_cipher(&[Aes256Gcm], &answer(&[])).is_err());
        assert!(chosen_cipher(&[ChaCha20Poly1305], &answer(&[&[2]])).is_err());
        assert!(chosen_cipher(&both, &answer(&[&[2, 1]])).is_err());
        assert!(chosen_cipher(&both, &answer(&[&[2], &[2]])).is_err());
        assert!(chosen_cipher(&both, &answer(&[&[7]])).is_err());
        assert!(chosen_cipher(&both, &[0x1e, 0x00]).is_err());
    }
}

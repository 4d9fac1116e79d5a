//! Version 3's handshake (PROTOCOL.md §16): the Noise Protocol Framework,
//! revision 34, pattern IK with X25519, ChaCha20-Poly1305 and BLAKE2s,
//! through the `snow` crate. Nothing here is hand-written cryptography:
//! snow runs the handshake, and its two transport keys then seal packets as
//! §3.7 does, with the header as associated data and the packet number as
//! the nonce.
//!
//! - The client knows the server's static key (pinned, or learned on first
//!   use) and sends IK's first message in its INITIAL; the server answers
//!   with the second in its ACCEPT. One round trip, as in clear versions.
//! - The first message carries the client's static key, encrypted: the
//!   server learns who is connecting and may refuse unknown keys.
//! - With a pre-shared key, the pattern is IKpsk2: the key is a second
//!   factor, mixed in after the second message.
//! - The prologue binds the version, the versions the client offered and
//!   the client's connection ID, so a downgrade or a handshake replayed for
//!   another connection fails.
//!
//! Randomness (ephemeral keys, fresh client identities) comes from a
//! generator the caller seeds, through a snow resolver: the core reads no
//! OS state, and the simulator replays a seed exactly.

use crate::cipher::PacketCipher;
use crate::wire::ConnectionId;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snow::params::{DHChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::fmt;
use std::sync::Arc;

/// The Noise protocol name without a pre-shared key.
pub const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// The Noise protocol name with a pre-shared key (a second factor).
pub const PATTERN_PSK: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Bytes of an X25519 key.
pub const KEY_LEN: usize = 32;
/// The prologue's fixed start (PROTOCOL.md §16.2).
pub const PROLOGUE_LABEL: &[u8] = b"rudp noise v3";
/// The largest Noise message (the Noise specification's limit).
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// An X25519 public key: who a peer is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl PublicKey {
    /// The key from 32 bytes, if that many.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// A static key pair: this side's identity. The private half never leaves
/// it: not in logs, not in key logs (§16.7).
#[derive(Clone)]
pub struct Keypair {
    private: [u8; KEY_LEN],
    public: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ public: {:?}, .. }}", self.public)
    }
}

impl Keypair {
    /// The pair whose private key is `private` (any 32 bytes; X25519
    /// clamps them).
    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        let mut dh = curve25519();
        dh.set(&private);
        let public = PublicKey::from_slice(dh.pubkey()).unwrap_or(PublicKey([0; KEY_LEN]));
        Self { private, public }
    }

    /// A new pair from 32 bytes of a secure random source.
    pub fn generate(seed: [u8; 32]) -> Self {
        let mut private = [0u8; KEY_LEN];
        ChaCha8Rng::from_seed(seed).fill_bytes(&mut private);
        Self::from_private(private)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private half, to store it (`rudp keygen`).
    pub fn private_bytes(&self) -> [u8; KEY_LEN] {
        self.private
    }
}

fn curve25519() -> Box<dyn Dh> {
    match DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        Some(dh) => dh,
        // The feature `use-curve25519` is on: the default resolver has it.
        None => unreachable!("snow is built with Curve25519"),
    }
}

/// How a client decides whether the key a server presents is the right
/// one: a pinned key, a known_hosts file, or the application's own policy
/// (as rustls's certificate verifiers do).
pub trait ServerKeyVerifier: Send + Sync + fmt::Debug {
    /// The key expected of the server at `server`, if known: the client
    /// then uses it at once (IK, one round trip). `None`: the client asks
    /// the server for its key first (one more round trip) and calls
    /// [`Self::verify`] with it.
    fn expected(&self, server: std::net::SocketAddr) -> Option<PublicKey>;

    /// Whether to trust `key`, which the server at `server` presented when
    /// [`Self::expected`] had none; `Err` says why not, for the user.
    fn verify(&self, server: std::net::SocketAddr, key: &PublicKey) -> Result<(), String>;
}

/// Trusts exactly one key.
#[derive(Debug, Clone)]
pub struct PinnedKey(pub PublicKey);

impl ServerKeyVerifier for PinnedKey {
    fn expected(&self, _: std::net::SocketAddr) -> Option<PublicKey> {
        Some(self.0)
    }

    fn verify(&self, _: std::net::SocketAddr, key: &PublicKey) -> Result<(), String> {
        if *key == self.0 {
            Ok(())
        } else {
            Err("the server's key is not the pinned one".into())
        }
    }
}

/// Which clients a server admits, by their static key.
pub trait ClientKeyPolicy: Send + Sync + fmt::Debug {
    /// `Err` with a reason the client is told, or `Ok`.
    fn admit(&self, key: &PublicKey) -> Result<(), String>;
}

/// Admits exactly the keys listed.
#[derive(Debug, Clone, Default)]
pub struct AuthorizedKeys(pub std::collections::BTreeSet<PublicKey>);

impl ClientKeyPolicy for AuthorizedKeys {
    fn admit(&self, key: &PublicKey) -> Result<(), String> {
        if self.0.contains(key) {
            Ok(())
        } else {
            Err("this server does not know your key: ask its operator to add it to the server's --authorized-keys".into())
        }
    }
}

/// Version 3's security settings of one side (`Config::security`).
#[derive(Clone)]
pub struct Security {
    /// This side's static key pair. A server needs one; a client without
    /// one makes a fresh pair for each connection.
    pub identity: Option<Keypair>,
    /// A client's way to know the server's key. Without one, a version-3
    /// client cannot connect.
    pub verifier: Option<Arc<dyn ServerKeyVerifier>>,
    /// A server's admission policy for client keys; `None` admits any.
    pub clients: Option<Arc<dyn ClientKeyPolicy>>,
    /// A server also serves clients of the clear versions 1 and 2.
    pub allow_insecure: bool,
    /// Called with each connection's transport keys, for tools that read
    /// one's own captures (`RUDP_KEYLOG`, §16.7).
    pub key_log: Option<Arc<dyn KeyLog>>,
    /// Packet ciphers (§16.5): a client's offer, best first; the ciphers a
    /// server allows. Default: [`PacketCipher::preferred`], AEGIS-256X2
    /// first where the processor has AES instructions. Must not be empty.
    pub packet_ciphers: Vec<PacketCipher>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            identity: None,
            verifier: None,
            clients: None,
            allow_insecure: false,
            key_log: None,
            packet_ciphers: PacketCipher::preferred(),
        }
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("identity", &self.identity.as_ref().map(Keypair::public))
            .field("verifier", &self.verifier)
            .field("clients", &self.clients)
            .field("allow_insecure", &self.allow_insecure)
            .field("key_log", &self.key_log.is_some())
            .field("packet_ciphers", &self.packet_ciphers)
            .finish()
    }
}

/// Receives each connection's transport keys (never a static key).
pub trait KeyLog: Send + Sync {
    /// One line's worth (§16.7): the client's connection ID, the packet
    /// cipher the handshake chose and the two keys.
    fn log(&self, client_cid: ConnectionId, cipher: PacketCipher, keys: &TransportKeys);
}

/// The two directions' keys a handshake ends with, and its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportKeys {
    /// Seals what the client sends.
    pub client_to_server: [u8; KEY_LEN],
    /// Seals what the server sends.
    pub server_to_client: [u8; KEY_LEN],
}

impl fmt::Debug for TransportKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportKeys(..)")
    }
}

/// Why a handshake message was not accepted: a wrong key, a forgery, or a
/// message that is not Noise at all. Deliberately one case: telling them
/// apart would help an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeError;

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Noise handshake message did not authenticate")
    }
}

impl std::error::Error for HandshakeError {}

/// Noise's REKEY (revision 34, §4.2) for the packet cipher in use: the
/// next key of a direction is the first 32 bytes of ENCRYPT(k, 2^64 - 1,
/// empty, 32 zero bytes) with the cipher's own nonce encoding: zero bytes,
/// then the 64-bit counter, as every packet's nonce (§16.5, §16.6). A
/// one-way step: the old key cannot be found from the new.
pub fn rekey(cipher: PacketCipher, key: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut sealed = vec![0u8; KEY_LEN];
    crate::psk::PacketKey::from_raw(cipher, *key).seal(u64::MAX, 0, &mut sealed);
    let mut next = [0u8; KEY_LEN];
    next.copy_from_slice(&sealed[..KEY_LEN]);
    next
}

/// The prologue both sides feed Noise (§16.2): a label, the version in
/// use, the versions the client offered, and the client's CID.
pub fn prologue(version: u8, offered: &[u8], client_cid: ConnectionId) -> Vec<u8> {
    let mut p = Vec::with_capacity(PROLOGUE_LABEL.len() + 2 + offered.len() + 8);
    p.extend_from_slice(PROLOGUE_LABEL);
    p.push(version);
    p.push(offered.len() as u8);
    p.extend_from_slice(offered);
    p.extend_from_slice(&client_cid.0.to_be_bytes());
    p
}

/// Supplies snow with randomness from a seeded generator.
struct Seeded(ChaCha8Rng);

impl Random for Seeded {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// A resolver that gives snow our generator and the default primitives.
struct SeededResolver([u8; 32]);

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Seeded(ChaCha8Rng::from_seed(self.0))))
    }
    fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }
    fn resolve_hash(&self, _: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        None
    }
    fn resolve_cipher(&self, _: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

/// A builder with `identity` as our static key, `remote` as the peer's if
/// known, and `inputs`' prologue, pre-shared key and ephemeral key.
fn configured<'a>(
    identity: &'a Keypair,
    remote: Option<&'a PublicKey>,
    inputs: &'a HandshakeInputs<'_>,
) -> Result<snow::Builder<'a>, HandshakeError> {
    let mut b = builder(inputs.seed, inputs.psk.is_some())
        .local_private_key(&identity.private)
        .and_then(|b| b.prologue(inputs.prologue))
        .map_err(|_| HandshakeError)?;
    if let Some(remote) = remote {
        b = b.remote_public_key(&remote.0).map_err(|_| HandshakeError)?;
    }
    if let Some(psk) = &inputs.psk {
        b = b.psk(2, psk).map_err(|_| HandshakeError)?;
    }
    if let Some(e) = &inputs.fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    Ok(b)
}

fn builder(seed: [u8; 32], psk: bool) -> snow::Builder<'static> {
    let name = if psk { PATTERN_PSK } else { PATTERN };
    let params: NoiseParams = match name.parse() {
        Ok(p) => p,
        // Both names are constants snow knows.
        Err(_) => unreachable!("a valid Noise protocol name"),
    };
    let resolver = FallbackResolver::new(Box::new(SeededResolver(seed)), Box::new(DefaultResolver));
    snow::Builder::with_resolver(params, Box::new(resolver))
}

/// What a handshake needs besides the keys: the prologue, the optional
/// pre-shared key, and the seed of its randomness.
#[derive(Clone)]
pub struct HandshakeInputs<'a> {
    /// [`prologue`].
    pub prologue: &'a [u8],
    /// IKpsk2's key, derived from the pre-shared key file (§16.2).
    pub psk: Option<[u8; KEY_LEN]>,
    /// Seeds the ephemeral key.
    pub seed: [u8; 32],
    /// A fixed ephemeral private key, for test vectors only.
    pub fixed_ephemeral: Option<[u8; KEY_LEN]>,
}

/// The client's side after its first message.
pub struct Initiator {
    state: snow::HandshakeState,
    /// The first message, kept to resend identically (a lost INITIAL).
    message: Vec<u8>,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Initiator {{ message: {} bytes }}", self.message.len())
    }
}

impl Initiator {
    /// Writes IK's first message to `server`, carrying `payload`.
    pub fn start(
        identity: &Keypair,
        server: &PublicKey,
        inputs: &HandshakeInputs<'_>,
        payload: &[u8],
    ) -> Result<Self, HandshakeError> {
        let mut state = configured(identity, Some(server), inputs)?
            .build_initiator()
            .map_err(|_| HandshakeError)?;
        let mut message = vec![0u8; MAX_MESSAGE_LEN];
        let n = state
            .write_message(payload, &mut message)
            .map_err(|_| HandshakeError)?;
        message.truncate(n);
        message.shrink_to_fit(); // 65,535 bytes were reserved; keep only the message.
        Ok(Self { state, message })
    }

    /// The first message, to send (and resend) in INITIALs.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Reads the server's answer: its payload and the transport keys.
    pub fn finish(mut self, answer: &[u8]) -> Result<(Vec<u8>, TransportKeys), HandshakeError> {
        let mut payload = vec![0u8; answer.len()];
        let n = self
            .state
            .read_message(answer, &mut payload)
            .map_err(|_| HandshakeError)?;
        payload.truncate(n);
        let (c2s, s2c) = self.state.dangerously_get_raw_split();
        Ok((
            payload,
            TransportKeys {
                client_to_server: c2s,
                server_to_client: s2c,
            },
        ))
    }
}

/// The server's side after reading a client's first message: who the
/// client is and what it said, before anything is kept for it.
pub struct Responder {
    state: snow::HandshakeState,
    client: PublicKey,
    payload: Vec<u8>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Responder {{ client: {:?} }}", self.client)
    }
}

impl Responder {
    /// Reads IK's first message with the server's `identity`. Costs two
    /// X25519 operations: call it only after the RETRY and limit checks
    /// (§16.4).
    pub fn read(
        identity: &Keypair,
        inputs: &HandshakeInputs<'_>,
        message: &[u8],
    ) -> Result<Self, HandshakeError> {
        let mut state = configured(identity, None, inputs)?
            .build_responder()
            .map_err(|_| HandshakeError)?;
        let mut payload = vec![0u8; message.len()];
        let n = state
            .read_message(message, &mut payload)
            .map_err(|_| HandshakeError)?;
        payload.truncate(n);
        let client = state
            .get_remote_static()
            .and_then(PublicKey::from_slice)
            .ok_or(HandshakeError)?;
        Ok(Self {
            state,
            client,
            payload,
        })
    }

    /// The client's static key.
    pub fn client(&self) -> PublicKey {
        self.client
    }

    /// What the client's first message carried.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Writes the second message, carrying `payload`; returns it and the
    /// transport keys.
    pub fn answer(mut self, payload: &[u8]) -> Result<(Vec<u8>, TransportKeys), HandshakeError> {
        let mut message = vec![0u8; MAX_MESSAGE_LEN];
        let n = self
            .state
            .write_message(payload, &mut message)
            .map_err(|_| HandshakeError)?;
        message.truncate(n);
        message.shrink_to_fit(); // 65,535 bytes were reserved; keep only the message.
        let (c2s, s2c) = self.state.dangerously_get_raw_split();
        Ok((
            message,
            TransportKeys {
                client_to_server: c2s,
                server_to_client: s2c,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(seed: u8, prologue: &[u8], psk: Option<[u8; 32]>) -> HandshakeInputs<'_> {
        HandshakeInputs {
            prologue,
            psk,
            seed: [seed; 32],
            fixed_ephemeral: None,
        }
    }

    #[test]
    fn ik_agrees_on_keys_and_identities() {
        let server = Keypair::generate([1; 32]);
        let client = Keypair::generate([2; 32]);
        let p = prologue(3, &[3], ConnectionId(7));
        for psk in [None, Some([9u8; 32])] {
            let i =
                Initiator::start(&client, &server.public(), &inputs(3, &p, psk), b"hello").unwrap();
            let r = Responder::read(&server, &inputs(4, &p, psk), i.message()).unwrap();
            assert_eq!(r.client(), client.public());
            assert_eq!(r.payload(), b"hello");
            let (answer, server_keys) = r.answer(b"welcome").unwrap();
            let (payload, client_keys) = i.finish(&answer).unwrap();
            assert_eq!(payload, b"welcome");
            assert_eq!(server_keys, client_keys);
            assert_ne!(server_keys.client_to_server, server_keys.server_to_client);
        }
    }

    #[test]
    fn a_wrong_key_prologue_or_psk_fails_the_handshake() {
        let server = Keypair::generate([1; 32]);
        let other = Keypair::generate([5; 32]);
        let client = Keypair::generate([2; 32]);
        let p = prologue(3, &[3], ConnectionId(7));
        let i = Initiator::start(&client, &other.public(), &inputs(3, &p, None), b"").unwrap();
        assert!(Responder::read(&server, &inputs(4, &p, None), i.message()).is_err());
        let i = Initiator::start(&client, &server.public(), &inputs(3, &p, None), b"").unwrap();
        let q = prologue(3, &[3, 2], ConnectionId(7));
        assert!(Responder::read(&server, &inputs(4, &q, None), i.message()).is_err());
        let r = prologue(3, &[3], ConnectionId(8));
        assert!(Responder::read(&server, &inputs(4, &r, None), i.message()).is_err());
        let i = Initiator::start(
            &client,
            &server.public(),
            &inputs(3, &p, Some([1; 32])),
            b"",
        )
        .unwrap();
        let r = Responder::read(&server, &inputs(4, &p, Some([2; 32])), i.message());
        // IKpsk2 mixes the key in after the second message: the first
        // reads, the answer does not.
        let (answer, _) = r.unwrap().answer(b"").unwrap();
        assert!(i.finish(&answer).is_err());
    }

    /// Our REKEY is snow's: a message sealed at nonce 0 after snow's
    /// `rekey_outgoing` is what the rekeyed packet key seals.
    #[test]
    fn rekey_matches_snow() {
        let server = Keypair::generate([1; 32]);
        let client = Keypair::generate([2; 32]);
        let p = prologue(3, &[3], ConnectionId(7));
        let i = Initiator::start(&client, &server.public(), &inputs(3, &p, None), b"").unwrap();
        let r = Responder::read(&server, &inputs(4, &p, None), i.message()).unwrap();
        let (answer, keys) = r.answer(b"").unwrap();
        // The same handshake once more, kept as snow's transport state.
        let mut i2 = builder([3; 32], false)
            .local_private_key(&client.private)
            .unwrap()
            .remote_public_key(&server.public().0)
            .unwrap()
            .prologue(&p)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut buf = vec![0u8; 1024];
        i2.write_message(b"", &mut buf).unwrap();
        let mut payload = vec![0u8; 1024];
        i2.read_message(&answer, &mut payload).unwrap();
        let mut t = i2.into_transport_mode().unwrap();
        t.rekey_outgoing();
        let n = t.write_message(b"hello", &mut buf).unwrap();
        let mut ours = b"hello".to_vec();
        let chacha = PacketCipher::ChaCha20Poly1305;
        crate::psk::PacketKey::from_raw(chacha, rekey(chacha, &keys.client_to_server))
            .seal(0, 0, &mut ours);
        assert_eq!(&buf[..n], &ours[..]);
    }

    /// The same for AES-256-GCM (§16.6): after snow's `rekey_outgoing` in
    /// a handshake whose cipher is AESGCM, its first transport message is
    /// what our rekeyed AES-256-GCM packet key seals.
    #[test]
    fn aes_rekey_matches_snow() {
        let params: NoiseParams = "Noise_NN_25519_AESGCM_BLAKE2s".parse().unwrap();
        let seeded = |seed| {
            let resolver =
                FallbackResolver::new(Box::new(SeededResolver(seed)), Box::new(DefaultResolver));
            snow::Builder::with_resolver(params.clone(), Box::new(resolver))
        };
        let mut i = seeded([5; 32]).build_initiator().unwrap();
        let mut r = seeded([6; 32]).build_responder().unwrap();
        let (mut m, mut p) = (vec![0u8; 1024], vec![0u8; 1024]);
        let n = i.write_message(b"", &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(b"", &mut m).unwrap();
        i.read_message(&m[..n], &mut p).unwrap();
        let (send, _) = i.dangerously_get_raw_split();
        let mut t = i.into_transport_mode().unwrap();
        t.rekey_outgoing();
        let n = t.write_message(b"hello", &mut m).unwrap();
        let aes = PacketCipher::Aes256Gcm;
        let mut ours = b"hello".to_vec();
        crate::psk::PacketKey::from_raw(aes, rekey(aes, &send)).seal(0, 0, &mut ours);
        assert_eq!(&m[..n], &ours[..]);
    }

    /// Noise defines no AEGIS cipher, so snow cannot check this one: our
    /// AEGIS-256X2 REKEY (§16.6) is the draft cipher's encryption of 32
    /// zero bytes at the nonce of packet number 2^64 - 1 (24 zero bytes,
    /// then eight `ff`), with no associated data, cut to 32 bytes.
    #[test]
    fn aegis_rekey_uses_the_maximal_nonce() {
        let key = [0x5a; KEY_LEN];
        let mut nonce = [0xff; 32];
        nonce[..24].fill(0);
        let mut expected = [0u8; KEY_LEN];
        let _tag = aegis::aegis256x2::Aegis256X2::<16>::new(&key, &nonce)
            .encrypt_in_place(&mut expected, &[]);
        let next = rekey(PacketCipher::Aegis256X2, &key);
        assert_eq!(next, expected);
        assert_ne!(next, key);
        assert_ne!(next, rekey(PacketCipher::Aes256Gcm, &key));
    }

    #[test]
    fn the_same_seed_makes_the_same_messages() {
        let server = Keypair::generate([1; 32]);
        let client = Keypair::generate([2; 32]);
        let p = prologue(3, &[3], ConnectionId(7));
        let a = Initiator::start(&client, &server.public(), &inputs(3, &p, None), b"x").unwrap();
        let b = Initiator::start(&client, &server.public(), &inputs(3, &p, None), b"x").unwrap();
        assert_eq!(a.message(), b.message());
        let c = Initiator::start(&client, &server.public(), &inputs(4, &p, None), b"x").unwrap();
        assert_ne!(a.message(), c.message());
    }
}

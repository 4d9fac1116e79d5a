//! Pre-shared-key packet protection (PROTOCOL.md §3.7).
//!
//! Without a key, rudp packets are readable and forgeable by anyone on the
//! path (§13). With one, every packet's frames are sealed with
//! ChaCha20-Poly1305 (RFC 8439): a party without the key can neither read
//! them nor forge or alter a packet, header included, since the header is
//! the AEAD's associated data.
//!
//! Keys are derived with HKDF-SHA256 (RFC 5869) so that no two packets
//! anywhere share a (key, nonce) pair: each direction of each connection has
//! its own key, bound to the connection IDs, and the nonce is the packet
//! number, which a sender never reuses (§4.2).

use crate::cipher::PacketCipher;
use crate::wire::ConnectionId;
use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use std::fmt;
use std::path::Path;

/// Bytes the AEAD tag adds to every sealed packet.
pub const TAG_LEN: usize = 16;
/// Shortest key file accepted: 128 bits.
pub const MIN_PSK_LEN: usize = 16;
/// HKDF salt: names the protocol and version, so that the same secret used
/// elsewhere yields unrelated keys.
const SALT: &[u8] = b"rudp v1 psk";
/// HKDF info prefixes for the two directions (§3.7).
const CLIENT_LABEL: &[u8] = b"rudp v1 client";
const SERVER_LABEL: &[u8] = b"rudp v1 server";
/// HKDF info of version 3's Noise pre-shared key (§16.2).
const NOISE_PSK_LABEL: &[u8] = b"rudp v3 noise psk";

/// Why a key could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum PskError {
    /// The file could not be opened or read.
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Fewer than [`MIN_PSK_LEN`] bytes.
    TooShort {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
    /// A directory, device or FIFO.
    NotAFile {
        /// The file.
        path: String,
    },
    /// More than [`MAX_PSK_FILE_LEN`] bytes.
    TooLong {
        /// The file.
        path: String,
    },
}

/// The largest key file read (§3.7 needs at least 16 bytes; 32 is usual).
pub const MAX_PSK_FILE_LEN: usize = 4096;

/// A packet failed authentication: wrong key, forged, or altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError;

/// A pre-shared key, ready to derive packet keys from.
#[derive(Clone)]
pub struct Psk {
    prk: Hkdf<Sha256>,
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(..)") // Never print key material.
    }
}

impl Psk {
    /// A key from the secret's bytes, used as they are (any content works,
    /// as long as both sides have the same bytes). `None` if shorter than
    /// [`MIN_PSK_LEN`].
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_PSK_LEN).then(|| Self {
            prk: Hkdf::new(Some(SALT), secret),
        })
    }

    /// Reads a key file (`--psk FILE`): its whole content is the secret.
    /// Only a regular file of at most [`MAX_PSK_FILE_LEN`] bytes is read:
    /// `/dev/zero` or a FIFO would otherwise be read without end.
    pub fn from_file(path: &Path) -> Result<Self, PskError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_err = |source| PskError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(PskError::NotAFile { path: shown });
        }
        let mut secret = Vec::new();
        file.take(MAX_PSK_FILE_LEN as u64 + 1)
            .read_to_end(&mut secret)
            .map_err(read_err)?;
        if secret.len() > MAX_PSK_FILE_LEN {
            return Err(PskError::TooLong { path: shown });
        }
        Self::new(&secret).ok_or(PskError::TooShort {
            path: shown,
            len: secret.len(),
        })
    }

    /// Version 3's IKpsk2 key (§16.2): the file as a second factor.
    pub fn noise_key(&self) -> [u8; 32] {
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160.
        let _ = self.prk.expand(NOISE_PSK_LABEL, &mut okm);
        okm
    }

    /// The key for packets from the client of the connection whose client
    /// chose `client_cid` (INITIAL and DATA).
    pub fn client_key(&self, client_cid: ConnectionId) -> PacketKey {
        self.derive(CLIENT_LABEL, client_cid, None)
    }

    /// The key for packets from the server: ACCEPT and DATA with the
    /// server's CID, and stateless RETRY or refusal packets with CID zero.
    pub fn server_key(&self, client_cid: ConnectionId, server_cid: ConnectionId) -> PacketKey {
        self.derive(SERVER_LABEL, client_cid, Some(server_cid))
    }

    fn derive(
        &self,
        label: &[u8],
        client_cid: ConnectionId,
        server_cid: Option<ConnectionId>,
    ) -> PacketKey {
        let mut info = Vec::with_capacity(label.len() + 16);
        info.extend_from_slice(label);
        info.extend_from_slice(&client_cid.0.to_be_bytes());
        if let Some(s) = server_cid {
            info.extend_from_slice(&s.0.to_be_bytes());
        }
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        if self.prk.expand(&info, &mut key).is_err() {
            unreachable!("HKDF output length is constant and valid");
        }
        PacketKey::from_raw(PacketCipher::ChaCha20Poly1305, key)
    }
}

/// One direction's packet key: ChaCha20-Poly1305 (RFC 8439; versions 1
/// and 2 with a pre-shared key, and version 3 by default), AES-256-GCM or
/// AEGIS-256X2 (version 3 where negotiated, §16.5). The first two through
/// ring, AEGIS through the `aegis` crate (libaegis): assembly or
/// intrinsics implementations that seal several times faster than portable
/// ones (docs/benchmarks.md), in place, without a copy.
#[derive(Clone)]
pub struct PacketKey {
    aead: Aead,
}

/// The sealing state behind a [`PacketKey`]. Cloned per connection path,
/// so ring's expanded key schedule is shared rather than copied.
#[derive(Clone)]
enum Aead {
    Ring(std::sync::Arc<LessSafeKey>),
    /// AEGIS needs no expanded key: its state is built from the key and the
    /// nonce for each packet.
    Aegis256X2(std::sync::Arc<[u8; 32]>),
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PacketKey(..)")
    }
}

/// How far past the source, modulo 4 KiB, a copy's destination stalls it.
const ALIASING_DISTANCE: usize = 256;
/// Copies shorter than this did not stall, wherever the buffers lay
/// (1452 and 2900 bytes placed 28 bytes apart opened at full speed; 4096
/// and more at a third): memcpy switches to `rep movsb`, the form that
/// suffers, only for longer copies. Leaving shorter ones alone keeps a
/// GRO batch of small datagrams, whose offsets modulo 4 KiB run through
/// every value, from moving the buffer again and again.
const MIN_STALLING_COPY: usize = 2048;

/// Moves `plain` if copying `sealed` into it would stall on 4K aliasing.
///
/// Opening copies the sealed payload into `plain`, then decrypts in
/// place. When `plain` starts a little past `sealed` modulo 4 KiB, each
/// load of the copy is taken to depend on a store just made to the same
/// page offset, and the copy crawls: 64 KB packets opened at 1.2 GB/s
/// instead of 8-10 with AEGIS-256X2, and at 1.1 instead of 4-5 with
/// AES-256-GCM (`cargo bench --bench ciphers`, docs/benchmarks.md). The
/// allocator decides where a connection's receive buffer lies, for its
/// whole life, so an unlucky connection would receive at a fraction of
/// the speed. A new buffer elsewhere costs one allocation, once.
fn keep_copy_unaliased(plain: &mut Vec<u8>, sealed: &[u8]) {
    let stalls = |p: &Vec<u8>| {
        let d = (p.as_ptr() as usize).wrapping_sub(sealed.as_ptr() as usize) % 4096;
        d > 0 && d < ALIASING_DISTANCE
    };
    // A buffer too small is reallocated by the copy anyway (an empty one
    // has no address at all): it is looked at from the next packet on.
    if sealed.len() < MIN_STALLING_COPY || plain.capacity() < sealed.len() || !stalls(plain) {
        return;
    }
    // Each try is kept until the end, so the next lands elsewhere.
    let mut tries = Vec::new();
    for _ in 0..8 {
        let candidate = Vec::with_capacity(plain.capacity() + 64);
        if !stalls(&candidate) {
            *plain = candidate;
            return;
        }
        tries.push(candidate);
    }
}

/// ChaCha20-Poly1305's and AES-256-GCM's 96-bit nonce: 32 zero bits, then
/// the packet number (§3.7). A sender never reuses a packet number with one
/// key, which is what ring's `assume_unique_for_key` asks of us.
fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// AEGIS-256X2's 256-bit nonce: 24 zero bytes, then the packet number
/// (§16.5), the same rule with a longer nonce.
fn aegis_nonce(pn: u64) -> [u8; 32] {
    let mut n = [0u8; 32];
    n[24..].copy_from_slice(&pn.to_be_bytes());
    n
}

type Aegis = aegis::aegis256x2::Aegis256X2<TAG_LEN>;

impl PacketKey {
    /// A key from 32 bytes for `cipher`: one of version 3's transport
    /// keys (§16.5), or a pre-shared key's derived key (§3.7).
    pub fn from_raw(cipher: PacketCipher, key: [u8; 32]) -> Self {
        let algorithm = match cipher {
            PacketCipher::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
            PacketCipher::Aes256Gcm => &ring::aead::AES_256_GCM,
            PacketCipher::Aegis256X2 => {
                return Self {
                    aead: Aead::Aegis256X2(std::sync::Arc::new(key)),
                }
            }
        };
        let unbound = match UnboundKey::new(algorithm, &key) {
            Ok(k) => k,
            // Only a key of the wrong length is refused; both ciphers
            // take 32 bytes.
            Err(_) => unreachable!("a 32-byte key"),
        };
        Self {
            aead: Aead::Ring(std::sync::Arc::new(LessSafeKey::new(unbound))),
        }
    }

    /// Seals `out[header_len..]` (the frames) in place, with `out[..header_len]`
    /// as associated data, and appends the tag. The checksum comes after.
    pub fn seal(&self, pn: u64, header_len: usize, out: &mut Vec<u8>) {
        let (header, body) = out.split_at_mut(header_len);
        match &self.aead {
            Aead::Ring(key) => {
                match key.seal_in_place_separate_tag(nonce(pn), Aad::from(&*header), body) {
                    Ok(tag) => out.extend_from_slice(tag.as_ref()),
                    // Only fails for plaintexts beyond 256 GiB.
                    Err(_) => unreachable!("a datagram is far below the AEAD's limit"),
                }
            }
            Aead::Aegis256X2(key) => {
                let tag = Aegis::new(key, &aegis_nonce(pn)).encrypt_in_place(body, header);
                out.extend_from_slice(&tag);
            }
        }
    }

    /// Opens the sealed payload of a packet whose header is `header`: the
    /// header, as encoded, is the associated data (§3.7). The one way both
    /// the endpoint (INITIALs) and connections open packets.
    pub fn open_packet(
        &self,
        header: &crate::wire::Header,
        sealed: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<(), AuthError> {
        let mut aad = Vec::with_capacity(crate::wire::packet::LONG_HEADER_LEN);
        header.encode(&mut aad);
        self.open(header.pn, &aad, sealed, plain)
    }

    /// Opens a sealed payload (ciphertext then tag) into `plain`. `plain`
    /// may be replaced by a buffer placed elsewhere in memory, where the
    /// copy into it runs at full speed; keep reusing the one you pass.
    pub fn open(
        &self,
        pn: u64,
        header: &[u8],
        sealed: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<(), AuthError> {
        let len = sealed.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
        keep_copy_unaliased(plain, sealed);
        plain.clear();
        let opened = match &self.aead {
            Aead::Ring(key) => {
                plain.extend_from_slice(sealed);
                key.open_in_place(nonce(pn), Aad::from(header), plain)
                    .map(|p| p.len() == len)
                    .unwrap_or(false)
            }
            Aead::Aegis256X2(key) => {
                let (body, tag) = sealed.split_at(len);
                let Ok(tag) = <&[u8; TAG_LEN]>::try_from(tag) else {
                    unreachable!("the last TAG_LEN bytes");
                };
                plain.extend_from_slice(body);
                Aegis::new(key, &aegis_nonce(pn))
                    .decrypt_in_place(plain, tag, header)
                    .is_ok()
            }
        };
        if opened {
            plain.truncate(len);
            Ok(())
        } else {
            plain.clear();
            Err(AuthError)
        }
    }
}

impl std::fmt::Display for PskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, source, .. } => {
                write!(f, "cannot read the key file {path}: {source}")
            }
            Self::TooShort { path, len } => write!(
                f,
                "the key file {path} holds {len} bytes; at least {MIN_PSK_LEN} are needed \
         (make one with: head -c 32 /dev/urandom > {path})"
            ),
            Self::NotAFile { path } => write!(f, "the key file {path} is not a regular file"),
            Self::TooLong { path } => write!(
                f,
                "the key file {path} is larger than {MAX_PSK_FILE_LEN} bytes; a key needs 16 to 64"
            ),
        }
    }
}

impl std::error::Error for PskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "packet failed authentication")
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &PacketKey, pn: u64, header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = header.to_vec();
        out.extend_from_slice(body);
        key.seal(pn, header.len(), &mut out);
        out
    }

    /// Packet 5, sealed as `out` (header, then payload), opens with no bit
    /// of its payload flipped, nor cut short.
    fn flipped_or_cut_fails(key: &PacketKey, header: &[u8], out: &[u8]) {
        let mut plain = Vec::new();
        let payload = header.len();
        for i in payload..out.len() {
            let mut bad = out.to_vec();
            bad[i] ^= 1;
            assert_eq!(
                key.open(5, header, &bad[payload..], &mut plain),
                Err(AuthError)
            );
        }
        assert_eq!(
            key.open(5, header, &out[payload..payload + 4], &mut plain),
            Err(AuthError)
        );
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let psk = Psk::new(b"0123456789abcdef").unwrap();
        let key = psk.client_key(ConnectionId(7));
        let header = b"HEADER";
        let out = sealed(&key, 5, header, b"frames");
        assert_eq!(out.len(), header.len() + 6 + TAG_LEN);
        assert_ne!(
            &out[6..12],
            b"frames",
            "the frames must not travel in clear"
        );
        let mut plain = Vec::new();
        key.open(5, header, &out[6..], &mut plain).unwrap();
        assert_eq!(plain, b"frames");
        // Another packet number, header, key or any flipped bit fails.
        assert_eq!(key.open(6, header, &out[6..], &mut plain), Err(AuthError));
        assert_eq!(
            key.open(5, b"HEADEr", &out[6..], &mut plain),
            Err(AuthError)
        );
        let other = psk.client_key(ConnectionId(8));
        assert_eq!(other.open(5, header, &out[6..], &mut plain), Err(AuthError));
        let server = psk.server_key(ConnectionId(7), ConnectionId(0));
        assert_eq!(
            server.open(5, header, &out[6..], &mut plain),
            Err(AuthError)
        );
        let wrong = Psk::new(b"0123456789abcdeF")
            .unwrap()
            .client_key(ConnectionId(7));
        assert_eq!(wrong.open(5, header, &out[6..], &mut plain), Err(AuthError));
        flipped_or_cut_fails(&key, header, &out);
    }

    /// Every packet cipher (§16.5) opens what it sealed, and nothing
    /// altered: another packet number, header, key, or any flipped bit.
    #[test]
    fn every_packet_cipher_detects_tampering() {
        let header = b"HEADER";
        for cipher in PacketCipher::ALL {
            let key = PacketKey::from_raw(cipher, [9; 32]);
            let out = sealed(&key, 5, header, b"frames");
            assert_eq!(out.len(), header.len() + 6 + TAG_LEN, "{cipher}");
            assert_ne!(&out[6..12], b"frames", "{cipher} left the frames in clear");
            let mut plain = Vec::new();
            key.open(5, header, &out[6..], &mut plain).unwrap();
            assert_eq!(plain, b"frames", "{cipher}");
            assert_eq!(key.open(6, header, &out[6..], &mut plain), Err(AuthError));
            assert!(plain.is_empty(), "{cipher} kept a failed opening");
            assert_eq!(
                key.open(5, b"HEADEr", &out[6..], &mut plain),
                Err(AuthError)
            );
            let other = PacketKey::from_raw(cipher, [8; 32]);
            assert_eq!(other.open(5, header, &out[6..], &mut plain), Err(AuthError));
            flipped_or_cut_fails(&key, header, &out);
            // The same key and packet under another cipher gives other bytes.
            for c in PacketCipher::ALL.into_iter().filter(|&c| c != cipher) {
                assert_ne!(
                    sealed(&PacketKey::from_raw(c, [9; 32]), 5, header, b"frames"),
                    out
                );
            }
        }
    }

    /// A receive buffer that lies just past the sealed payload modulo
    /// 4 KiB (where the copy into it would stall) is moved once, and the
    /// packet still opens into it; one elsewhere is kept.
    #[test]
    fn a_receive_buffer_that_would_stall_the_copy_is_moved() {
        let header = b"HEADER";
        for cipher in PacketCipher::ALL {
            let key = PacketKey::from_raw(cipher, [9; 32]);
            let body = vec![0x5a; 3000];
            let out = sealed(&key, 5, header, &body);
            let packet = &out[header.len()..];
            let mut plain = Vec::with_capacity(4096);
            let before = plain.as_ptr() as usize;
            // Place a copy of the sealed payload 28 bytes before `plain`
            // modulo 4 KiB.
            let mut backing = vec![0u8; 8192 + packet.len()];
            let at = (before
                .wrapping_sub(28)
                .wrapping_sub(backing.as_ptr() as usize))
                % 4096;
            backing[at..at + packet.len()].copy_from_slice(packet);
            let aliased = &backing[at..at + packet.len()];
            key.open(5, header, aliased, &mut plain).unwrap();
            assert_eq!(plain, body, "{cipher}");
            let moved = plain.as_ptr() as usize;
            assert_ne!(moved, before, "{cipher}: the buffer was not moved");
            let d = moved.wrapping_sub(aliased.as_ptr() as usize) % 4096;
            assert!(
                !(1..ALIASING_DISTANCE).contains(&d),
                "{cipher}: still {d} bytes past"
            );
            // Now placed well, it stays where it is.
            key.open(5, header, aliased, &mut plain).unwrap();
            assert_eq!(plain.as_ptr() as usize, moved, "{cipher}");
            assert_eq!(plain, body, "{cipher}");
            // A short packet's copy does not stall: nothing moves for it.
            let small = sealed(&key, 6, header, &body[..1000]);
            let small = &small[header.len()..];
            let at = (moved
                .wrapping_sub(28)
                .wrapping_sub(backing.as_ptr() as usize))
                % 4096;
            backing[at..at + small.len()].copy_from_slice(small);
            key.open(6, header, &backing[at..at + small.len()], &mut plain)
                .unwrap();
            assert_eq!(
                plain.as_ptr() as usize,
                moved,
                "{cipher}: moved for a short copy"
            );
            assert_eq!(plain, &body[..1000], "{cipher}");
        }
    }

    /// The `aegis` crate is the draft's AEGIS-256X2: test vector 2 of
    /// draft-irtf-cfrg-aegis-aead (appendix A.5), with its 128-bit tag.
    #[test]
    fn aegis_256x2_matches_the_drafts_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key: [u8; 32] = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .try_into()
            .unwrap();
        let nonce: [u8; 32] =
            hex("101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f")
                .try_into()
                .unwrap();
        let mut msg = hex(&"04050607".repeat(30));
        let tag = Aegis::new(&key, &nonce).encrypt_in_place(&mut msg, &hex("0102030401020304"));
        assert_eq!(
            msg,
            hex(concat!(
                "72120c2ea8236180d67859001f4729077b7064c414384fe3a7b52f1571f4f8a7",
                "d0f01e18db4f3bc0adb150702e5d147a8d36522132761b994c1bd395589e2ccf",
                "0790dfe2a3d12d61cd666b2859827739db4037dd3124c78424459376f6cac08e",
                "1a7223a2a43e398ce6385cd654a19f481cba3b8f25910b42"
            ))
        );
        assert_eq!(tag.to_vec(), hex("635d391828520bf1512763f0c8f5cdbd"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Psk::new(&[1; MIN_PSK_LEN - 1]).is_none());
        let dir = std::env::temp_dir().join(format!("rudp-psk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.key");
        std::fs::write(&path, b"short").unwrap();
        let e = Psk::from_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("holds 5 bytes") && e.contains("/dev/urandom"),
            "{e}"
        );
        let e = Psk::from_file(&dir.join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read the key file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue #12 item 12: `--psk /dev/zero` used to read without end.
    #[test]
    fn key_files_are_bounded_and_regular() {
        assert!(matches!(
            Psk::from_file(Path::new("/dev/zero")),
            Err(PskError::NotAFile { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![7u8; MAX_PSK_FILE_LEN + 1]).unwrap();
        assert!(matches!(
            Psk::from_file(&big),
            Err(PskError::TooLong { .. })
        ));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, [7u8; 32]).unwrap();
        assert!(Psk::from_file(&ok).is_ok());
        assert!(matches!(
            Psk::from_file(dir.path()),
            Err(PskError::NotAFile { .. } | PskError::Read { .. })
        ));
    }
}

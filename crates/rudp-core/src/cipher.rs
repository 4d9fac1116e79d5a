//! Which AEAD seals a version-3 connection's packets (PROTOCOL.md §16.5).
//!
//! The Noise handshake itself always uses ChaCha20-Poly1305
//! (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, §16.2): every implementation has
//! it, and it is fast without special instructions. The packets that
//! follow are where a transfer spends its time, and on processors with AES
//! instructions AEGIS-256X2 seals them about seven times faster, and
//! AES-256-GCM three to four times (docs/benchmarks.md). So the client lists the packet ciphers it accepts
//! in its first Noise payload, best first for its own processor, and the
//! server picks one in its answer, as TLS 1.3 negotiates a cipher suite.
//! Both lists travel inside the handshake, so an attacker cannot change
//! them without the handshake failing. A side that lists nothing speaks
//! ChaCha20-Poly1305, which every version-3 implementation must support.

use std::fmt;

/// A packet cipher of version 3 (§16.5), by its wire identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PacketCipher {
    /// ChaCha20-Poly1305 (RFC 8439), identifier 1: mandatory, and the
    /// cipher of a connection that negotiated none.
    ChaCha20Poly1305,
    /// AES-256-GCM (NIST SP 800-38D), identifier 2: preferred where the
    /// processor has AES and carry-less multiplication instructions.
    Aes256Gcm,
    /// AEGIS-256X2 (draft-irtf-cfrg-aegis-aead) with a 16-byte tag,
    /// identifier 3: the fastest where the processor has AES instructions,
    /// and offered only there (its portable AES is slow).
    Aegis256X2,
}

/// The most identifiers a CIPHERS frame may list (§16.3); longer lists
/// are malformed.
pub const MAX_OFFERED: usize = 8;

impl PacketCipher {
    /// Every cipher this implementation supports.
    pub const ALL: [PacketCipher; 3] = [
        PacketCipher::ChaCha20Poly1305,
        PacketCipher::Aes256Gcm,
        PacketCipher::Aegis256X2,
    ];

    /// The identifier in a CIPHERS frame (§16.3).
    pub fn id(self) -> u8 {
        match self {
            PacketCipher::ChaCha20Poly1305 => 1,
            PacketCipher::Aes256Gcm => 2,
            PacketCipher::Aegis256X2 => 3,
        }
    }

    /// The cipher with this identifier, if we support it.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The name in key logs (§16.7) and statistics.
    pub fn name(self) -> &'static str {
        match self {
            PacketCipher::ChaCha20Poly1305 => "CHACHA20_POLY1305",
            PacketCipher::Aes256Gcm => "AES_256_GCM",
            PacketCipher::Aegis256X2 => "AEGIS_256X2",
        }
    }

    /// The cipher with this key-log name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The ciphers this machine seals fastest with, best first: where the
    /// processor has AES instructions (x86-64 AES-NI with PCLMULQDQ, or the
    /// ARMv8 AES and PMULL extensions), AEGIS-256X2, then AES-256-GCM, then
    /// ChaCha20-Poly1305; elsewhere ChaCha20-Poly1305, then AES-256-GCM,
    /// and not AEGIS, whose portable AES is both slow and built on tables.
    /// The default of `Security::packet_ciphers`, for a client's offer and
    /// a server's allowed list alike.
    pub fn preferred() -> Vec<PacketCipher> {
        use PacketCipher::*;
        if has_aes_instructions() {
            vec![Aegis256X2, Aes256Gcm, ChaCha20Poly1305]
        } else {
            vec![ChaCha20Poly1305, Aes256Gcm]
        }
    }

    /// The server's choice (§16.5): the first cipher of the client's list
    /// that the server allows. A client that listed nothing offered
    /// ChaCha20-Poly1305 alone. `None`: nothing in common.
    pub fn choose(offered: Option<&[u8]>, allowed: &[PacketCipher]) -> Option<PacketCipher> {
        let chacha = [PacketCipher::ChaCha20Poly1305.id()];
        offered
            .unwrap_or(&chacha)
            .iter()
            .filter_map(|&id| Self::from_id(id))
            .find(|c| allowed.contains(c))
    }
}

impl fmt::Display for PacketCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketCipher::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            PacketCipher::Aes256Gcm => "AES-256-GCM",
            PacketCipher::Aegis256X2 => "AEGIS-256X2",
        })
    }
}

#[cfg(target_arch = "x86_64")]
fn has_aes_instructions() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn has_aes_instructions() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn has_aes_instructions() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_names_round_trip() {
        for c in PacketCipher::ALL {
            assert_eq!(PacketCipher::from_id(c.id()), Some(c));
            assert_eq!(PacketCipher::from_name(c.name()), Some(c));
        }
        assert_eq!(PacketCipher::from_id(0), None);
        assert_eq!(PacketCipher::from_id(4), None);
    }

    #[test]
    fn the_server_takes_the_clients_first_allowed_choice() {
        use PacketCipher::*;
        let both = [ChaCha20Poly1305, Aes256Gcm];
        assert_eq!(PacketCipher::choose(Some(&[2, 1]), &both), Some(Aes256Gcm));
        assert_eq!(
            PacketCipher::choose(Some(&[1, 2]), &both),
            Some(ChaCha20Poly1305)
        );
        // Unknown identifiers are skipped, not refused.
        assert_eq!(PacketCipher::choose(Some(&[9, 2]), &both), Some(Aes256Gcm));
        assert_eq!(
            PacketCipher::choose(Some(&[2, 1]), &[ChaCha20Poly1305]),
            Some(ChaCha20Poly1305)
        );
        // No list: ChaCha20-Poly1305 alone.
        assert_eq!(PacketCipher::choose(None, &both), Some(ChaCha20Poly1305));
        assert_eq!(PacketCipher::choose(None, &[Aes256Gcm]), None);
        assert_eq!(PacketCipher::choose(Some(&[9]), &both), None);
    }

    #[test]
    fn the_preference_lists_each_cipher_at_most_once_and_aegis_only_with_aes() {
        let mut p = PacketCipher::preferred();
        p.sort();
        let expected: Vec<_> = PacketCipher::ALL
            .into_iter()
            .filter(|&c| c != PacketCipher::Aegis256X2 || has_aes_instructions())
            .collect();
        assert_eq!(p, expected);
    }
}

//! Stateless address-validation tokens (PROTOCOL.md §6.8), the rudp
//! equivalent of TCP SYN cookies and QUIC's Retry tokens (RFC 9000 §8.1).
//!
//! A server under load answers an INITIAL with a RETRY carrying a token
//! instead of creating a connection. Only a client that really receives at
//! the address it claims can echo the token in its next INITIAL, so a flood
//! of INITIALs from forged addresses costs the server no memory at all.
//!
//! A token is `issued (8 bytes, ms) || tag (16 bytes)`, where the tag is the
//! first 16 bytes of HMAC-SHA256 over the issue time, the client's connection
//! ID and its address, keyed with a random secret. The secret rotates every
//! [`KEY_PERIOD`]; tokens verify against the current and previous secret,
//! and expire after [`TOKEN_LIFETIME`]. Only the server ever reads a token,
//! so this format is the reference implementation's choice, not the
//! protocol's.

use crate::wire::ConnectionId;
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

type HmacSha256 = Hmac<Sha256>;

/// How long a token stays valid: a client echoes it within one round trip.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// How often the secret changes.
pub const KEY_PERIOD: Duration = Duration::from_secs(60);
/// Bytes in a token.
pub const TOKEN_LEN: usize = 8 + TAG_LEN;
const TAG_LEN: usize = 16;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Forged, altered, or issued to another address or connection.
    Invalid,
    /// Older than its lifetime.
    Expired,
}

/// The server's rotating token secrets.
#[derive(Debug)]
pub struct TokenKeys {
    /// Draws the secrets; keyed once from the endpoint's seed and used for
    /// nothing else.
    rng: ChaCha20Rng,
    /// Origin of the issue times: the first instant the keys were used.
    epoch: Option<Instant>,
    /// (period number, secret), oldest first; at most the current and the
    /// previous period's.
    keys: VecDeque<(u64, [u8; 32])>,
}

impl TokenKeys {
    /// Secrets drawn from a generator keyed with `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(seed),
            epoch: None,
            keys: VecDeque::new(),
        }
    }

    fn millis(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_millis() as u64
    }

    /// The current period's secret, made (and older ones retired) as time
    /// passes.
    fn current(&mut self, ms: u64) -> [u8; 32] {
        let period = ms / KEY_PERIOD.as_millis() as u64;
        if self.keys.back().is_none_or(|(p, _)| *p < period) {
            let mut secret = [0u8; 32];
            self.rng.fill_bytes(&mut secret);
            self.keys.push_back((period, secret));
        }
        while self.keys.front().is_some_and(|(p, _)| *p + 1 < period) {
            self.keys.pop_front();
        }
        self.keys.back().map_or([0; 32], |(_, k)| *k)
    }

    /// A token for the client at `addr` whose INITIAL named `client_cid`.
    pub fn issue(&mut self, now: Instant, addr: SocketAddr, client_cid: ConnectionId) -> Vec<u8> {
        let ms = self.millis(now);
        let secret = self.current(ms);
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.extend_from_slice(&ms.to_be_bytes());
        token.extend_from_slice(&tag(&secret, ms, addr, client_cid));
        token
    }

    /// Checks a token echoed by the client at `addr`.
    pub fn validate(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        client_cid: ConnectionId,
        token: &[u8],
    ) -> Result<(), TokenError> {
        let ms_now = self.millis(now);
        self.current(ms_now); // Retire old secrets first.
        if token.len() != TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let (issued, tag_bytes) = token.split_at(8);
        let mut b = [0u8; 8];
        b.copy_from_slice(issued);
        let issued = u64::from_be_bytes(b);
        let period = issued / KEY_PERIOD.as_millis() as u64;
        let secret = self
            .keys
            .iter()
            .find(|(p, _)| *p == period)
            .map(|(_, k)| *k)
            .ok_or(TokenError::Invalid)?;
        let mut mac = keyed(&secret);
        feed(&mut mac, issued, addr, client_cid);
        // Constant-time comparison: timing reveals nothing about the tag.
        mac.verify_truncated_left(tag_bytes)
            .map_err(|_| TokenError::Invalid)?;
        if issued > ms_now {
            return Err(TokenError::Invalid);
        }
        if ms_now - issued > TOKEN_LIFETIME.as_millis() as u64 {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

fn keyed(secret: &[u8; 32]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// The MAC input: issue time, client CID, then the address as 16 bytes of
/// IPv6 (IPv4 mapped) and the port.
fn feed(mac: &mut HmacSha256, issued: u64, addr: SocketAddr, client_cid: ConnectionId) {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    mac.update(&issued.to_be_bytes());
    mac.update(&client_cid.0.to_be_bytes());
    mac.update(&ip.octets());
    mac.update(&addr.port().to_be_bytes());
}

fn tag(secret: &[u8; 32], issued: u64, addr: SocketAddr, client_cid: ConnectionId) -> [u8; 16] {
    let mut mac = keyed(secret);
    feed(&mut mac, issued, addr, client_cid);
    let full = mac.finalize().into_bytes();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid => write!(
                f,
                "the retry token is malformed or was not issued to this address"
            ),
            Self::Expired => write!(f, "the retry token has expired"),
        }
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_address_and_cid_and_expire() {
        let mut keys = TokenKeys::new([7; 32]);
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let cid = ConnectionId(42);
        let token = keys.issue(t0, addr, cid);
        assert_eq!(token.len(), TOKEN_LEN);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(keys.validate(later, addr, cid, &token), Ok(()));
        let other_port: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        for (a, c) in [(other_port, cid), (v6, cid), (addr, ConnectionId(43))] {
            assert_eq!(keys.validate(later, a, c, &token), Err(TokenError::Invalid));
        }
        let mut forged = token.clone();
        forged[3] ^= 1; // A later issue time with the old tag.
        assert_eq!(
            keys.validate(later, addr, cid, &forged),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.validate(later, addr, cid, &token[..10]),
            Err(TokenError::Invalid)
        );
        let expired = t0 + TOKEN_LIFETIME + Duration::from_millis(1);
        assert_eq!(
            keys.validate(expired, addr, cid, &token),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn secrets_rotate() {
        let mut keys = TokenKeys::new([7; 32]);
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let cid = ConnectionId(1);
        keys.issue(t0, addr, cid); // Fixes the epoch.
                                   // Issued just before a rotation: still valid just after it.
        let before = t0 + KEY_PERIOD - Duration::from_secs(1);
        let token = keys.issue(before, addr, cid);
        let after = t0 + KEY_PERIOD + Duration::from_secs(1);
        assert_eq!(keys.validate(after, addr, cid, &token), Ok(()));
        assert_eq!(keys.keys.len(), 2);
        // Two periods on, the old secret is gone: the token cannot verify.
        let much_later = t0 + KEY_PERIOD * 3;
        assert_eq!(
            keys.validate(much_later, addr, cid, &token),
            Err(TokenError::Invalid)
        );
        assert_eq!(keys.keys.len(), 1);
    }
}

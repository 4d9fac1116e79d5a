//! Connection migration (PROTOCOL.md §6.9): a connection follows its peer to
//! a new address once the peer proves it receives there.
//!
//! A packet that passes every check of §10 but comes from an address other
//! than the peer's starts a path validation, if it is the newest packet yet
//! (a late or replayed one never moves anything). Only its path-validation
//! frames are processed, and it is not recorded as received, so its sender
//! resends the rest after the move. We send a PATH_CHALLENGE
//! with 8 unpredictable bytes to the new address, and keep everything else
//! on the current path. Only a PATH_RESPONSE with those bytes moves the
//! connection, so a packet spoofed from, or replayed through, an address
//! whose owner cannot read our challenge never does. Until then the new
//! address gets at most three times the bytes that came from it (§6.7),
//! and after [`MAX_CHALLENGES`] unanswered challenges the validation is
//! abandoned. A move to another IP address starts a fresh path (RTT,
//! congestion control, MTU); a NAT rebinding (same address, new port) keeps
//! them, as RFC 9000 §9.4 allows.
//!
//! Answering is simpler: a PATH_CHALLENGE from anywhere is echoed in a
//! PATH_RESPONSE to the address it came from, within the same three-times
//! budget when that is not the peer's address.

use super::path::{Amplification, Path};
use super::{Connection, State};
use crate::wire::{Frame, PacketType};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Challenges sent to one new address before the validation is abandoned.
pub(super) const MAX_CHALLENGES: u32 = 3;
/// PATH_RESPONSEs waiting to be sent at most; more challenges than this
/// between two transmissions replace the oldest.
pub(super) const MAX_PENDING_RESPONSES: usize = 4;
/// Shortest wait for a PATH_RESPONSE before challenging again: the RTT of a
/// new path is unknown, and may be longer than the old one's.
pub(super) const MIN_CHALLENGE_INTERVAL: Duration = Duration::from_millis(100);

/// A new address being validated.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) addr: SocketAddr,
    challenge: [u8; 8],
    /// A challenge should be (re)sent.
    pub(super) due: bool,
    /// Challenges sent so far.
    pub(super) sent: u32,
    /// When the next challenge is due, once one is out.
    pub(super) retry_at: Option<Instant>,
    /// What came from the address and what we sent it (§6.7).
    pub(super) amplification: Amplification,
}

/// What became of a challenge, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Validation {
    /// The candidate proved it receives at its address.
    Validated(SocketAddr),
    /// The candidate never answered.
    Abandoned(SocketAddr),
}

/// One connection's path validations: the candidate address, if any, and
/// the responses it owes.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) candidate: Option<Candidate>,
    responses: VecDeque<(SocketAddr, [u8; 8])>,
    /// Keys the challenge generator: from the endpoint's secure seed.
    secret: [u8; 32],
    challenges_made: u64,
}

impl Migration {
    /// The secret (for deriving other per-connection randomness from it).
    pub(super) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    pub(super) fn new(secret: [u8; 32]) -> Self {
        Self {
            candidate: None,
            responses: VecDeque::new(),
            secret,
            challenges_made: 0,
        }
    }

    /// 8 bytes nobody without the secret can predict: a ChaCha8 keystream
    /// keyed with it, one stream per challenge.
    fn next_challenge(&mut self) -> [u8; 8] {
        let mut rng = ChaCha8Rng::from_seed(self.secret);
        rng.set_stream(self.challenges_made);
        self.challenges_made += 1;
        rng.next_u64().to_be_bytes()
    }

    /// A valid packet of `len` bytes came from `from`, not the peer's
    /// address. `newest` says whether its number is the largest received:
    /// only such a packet starts a validation. Returns whether a new
    /// validation started.
    pub(super) fn on_packet_from(&mut self, from: SocketAddr, len: usize, newest: bool) -> bool {
        if let Some(c) = self.candidate.as_mut().filter(|c| c.addr == from) {
            c.amplification.received += len as u64;
            return false;
        }
        if !newest {
            return false;
        }
        let challenge = self.next_challenge();
        self.candidate = Some(Candidate {
            addr: from,
            challenge,
            due: true,
            sent: 0,
            retry_at: None,
            amplification: Amplification {
                received: len as u64,
                sent: 0,
            },
        });
        true
    }

    /// A PATH_CHALLENGE from `from`: answer it (the newest few are kept).
    pub(super) fn on_challenge(&mut self, from: SocketAddr, data: [u8; 8]) {
        if self.responses.len() == MAX_PENDING_RESPONSES {
            self.responses.pop_front();
        }
        self.responses.push_back((from, data));
    }

    /// A PATH_RESPONSE: the validation it completes, if it echoes the
    /// candidate's challenge.
    pub(super) fn on_response(&mut self, data: [u8; 8]) -> Option<Validation> {
        let c = self.candidate.as_ref()?;
        if c.challenge != data || c.sent == 0 {
            return None;
        }
        let addr = c.addr;
        self.candidate = None;
        Some(Validation::Validated(addr))
    }

    /// The next response to send, and where.
    pub(super) fn pop_response(&mut self) -> Option<(SocketAddr, [u8; 8])> {
        self.responses.pop_front()
    }

    /// The candidate's challenge, if one is due now, with its address.
    pub(super) fn due_challenge(&self) -> Option<(SocketAddr, [u8; 8])> {
        let c = self.candidate.as_ref().filter(|c| c.due)?;
        Some((c.addr, c.challenge))
    }

    /// A challenge left; the next is due `wait` from now.
    pub(super) fn on_challenge_sent(&mut self, now: Instant, wait: Duration) {
        if let Some(c) = self.candidate.as_mut() {
            c.due = false;
            c.sent += 1;
            c.retry_at = Some(now + wait.max(MIN_CHALLENGE_INTERVAL));
        }
    }

    /// When the challenge timer next fires.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.candidate.as_ref().and_then(|c| c.retry_at)
    }

    /// The challenge timer fired: challenge again, or give up.
    pub(super) fn on_timeout(&mut self, now: Instant) -> Option<Validation> {
        let c = self.candidate.as_mut()?;
        if c.retry_at.is_none_or(|t| now < t) {
            return None;
        }
        if c.sent >= MAX_CHALLENGES {
            let addr = c.addr;
            self.candidate = None;
            return Some(Validation::Abandoned(addr));
        }
        c.due = true;
        c.retry_at = None;
        None
    }

    /// Bytes we may still send to `addr` if it is the candidate (§6.7);
    /// `None` if it is not.
    pub(super) fn budget(&self, addr: SocketAddr) -> Option<u64> {
        let c = self.candidate.as_ref().filter(|c| c.addr == addr)?;
        Some(c.amplification.budget())
    }

    /// `len` bytes went to `addr`: charge the candidate's budget.
    pub(super) fn on_sent_to(&mut self, addr: SocketAddr, len: usize) {
        if let Some(c) = self.candidate.as_mut().filter(|c| c.addr == addr) {
            c.amplification.sent += len as u64;
        }
    }
}

impl Connection {
    /// §6.9: a valid packet came from `from`, not the peer's address.
    pub(super) fn on_packet_from_new_address(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        newest: bool,
    ) {
        self.stats.migration.packets_unvalidated += 1;
        if self.migration.on_packet_from(from, len, newest) {
            self.stats.migration.validations_started += 1;
            debug_log!(cid = %self.local_cid, %from, "packet from a new address: validating it");
            self.trace_path(now, "validating", from);
        }
    }

    /// §6.9: a PATH_RESPONSE; if it echoes our challenge, the peer is at the
    /// candidate address and the connection moves there.
    pub(super) fn on_path_response(&mut self, now: Instant, data: [u8; 8]) {
        if let Some(Validation::Validated(addr)) = self.migration.on_response(data) {
            self.migrate_to(now, addr);
        }
    }

    /// Sends everything to `addr` from now on. A new IP address is a new
    /// path: its RTT, congestion state and MTU are unknown. A new port on
    /// the same address is a NAT rebinding: the path is the same.
    fn migrate_to(&mut self, now: Instant, addr: SocketAddr) {
        let old = std::mem::replace(&mut self.remote, addr);
        self.stats.migration.migrations += 1;
        if old.ip() != addr.ip() {
            self.path = Path::new(now, &self.config);
            self.start_mtu_search();
            self.stats.migration.path_resets += 1;
        }
        debug_log!(cid = %self.local_cid, from = %old, to = %addr, "migrated");
        self.trace_path(now, "migrated", addr);
        // Whatever was sent to the old address may be gone: probe now
        // rather than wait for a timer.
        self.ping_pending = true;
    }

    /// The path-validation timer fired (§6.9).
    pub(super) fn on_path_timer(&mut self, now: Instant) {
        if let Some(Validation::Abandoned(addr)) = self.migration.on_timeout(now) {
            self.stats.migration.validations_failed += 1;
            debug_log!(cid = %self.local_cid, %addr, "path validation abandoned");
            self.trace_path(now, "abandoned", addr);
        }
    }

    /// A packet of path validation, if one is owed: a PATH_RESPONSE to
    /// whoever challenged us, or our PATH_CHALLENGE to the candidate, each
    /// alone in a DATA packet. Returns where it goes. Nothing goes to an
    /// unproven address beyond three times what came from it (§6.7).
    pub(super) fn write_path_packet(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        if !matches!(self.state, State::Established | State::Lingering)
            || self.packet_type() != PacketType::Data
        {
            return None;
        }
        // A lone frame: header, 9 bytes, trailer.
        let len = (PacketType::Data.header_len() + 9 + self.trailer_len(PacketType::Data)) as u64;
        while let Some((to, data)) = self.migration.pop_response() {
            let allowed = to == self.remote || self.migration.budget(to).is_some_and(|b| len <= b);
            if allowed {
                self.write_lone_frame(now, Frame::PathResponse(data), to, out);
                self.stats.migration.responses_sent += 1;
                return Some(to);
            }
            self.stats.migration.responses_suppressed += 1;
        }
        let (to, challenge) = self.migration.due_challenge()?;
        if self.migration.budget(to).is_none_or(|b| len > b) {
            return None;
        }
        self.write_lone_frame(now, Frame::PathChallenge(challenge), to, out);
        self.migration.on_challenge_sent(now, self.pto() * 2);
        self.stats.migration.challenges_sent += 1;
        Some(to)
    }

    fn write_lone_frame(
        &mut self,
        now: Instant,
        frame: Frame<'_>,
        to: SocketAddr,
        out: &mut Vec<u8>,
    ) {
        let pn = self.next_pn;
        self.next_pn += 1;
        self.header(PacketType::Data, pn).encode(out);
        frame.encode(out);
        self.seal_and_count(now, PacketType::Data, pn, out, None);
        self.migration.on_sent_to(to, out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn only_the_newest_packet_starts_a_validation_and_only_the_echo_ends_it() {
        let mut m = Migration::new([7; 32]);
        assert!(!m.on_packet_from(addr(1), 100, false), "a late packet");
        assert!(m.candidate.is_none());
        assert!(m.on_packet_from(addr(1), 100, true));
        let (to, challenge) = m.due_challenge().expect("a challenge is due");
        assert_eq!(to, addr(1));
        assert_eq!(m.on_response(challenge), None, "not sent yet");
        m.on_challenge_sent(Instant::now(), Duration::from_millis(10));
        assert_eq!(m.on_response([0; 8]), None, "wrong bytes");
        assert_eq!(
            m.on_response(challenge),
            Some(Validation::Validated(addr(1)))
        );
        assert!(m.candidate.is_none());
    }

    #[test]
    fn challenges_are_unpredictable_and_never_repeat() {
        let mut a = Migration::new([1; 32]);
        let mut b = Migration::new([2; 32]);
        let (x, y) = (a.next_challenge(), a.next_challenge());
        assert_ne!(x, y);
        assert_ne!(x, b.next_challenge(), "another secret, other bytes");
    }

    #[test]
    fn the_new_address_gets_at_most_three_times_what_it_sent() {
        let mut m = Migration::new([3; 32]);
        m.on_packet_from(addr(1), 40, true);
        assert_eq!(m.budget(addr(1)), Some(120));
        m.on_sent_to(addr(1), 50);
        assert_eq!(m.budget(addr(1)), Some(70));
        m.on_packet_from(addr(1), 10, true);
        assert_eq!(m.budget(addr(1)), Some(100));
        assert_eq!(m.budget(addr(2)), None, "not the candidate");
    }

    #[test]
    fn an_unanswered_validation_is_abandoned_after_three_challenges() {
        let t = Instant::now();
        let mut m = Migration::new([4; 32]);
        m.on_packet_from(addr(1), 100, true);
        let wait = Duration::from_millis(200);
        let mut now = t;
        for _ in 0..MAX_CHALLENGES {
            assert!(m.due_challenge().is_some());
            m.on_challenge_sent(now, wait);
            now += wait;
            let result = m.on_timeout(now);
            if m.candidate.is_none() {
                assert_eq!(result, Some(Validation::Abandoned(addr(1))));
            }
        }
        assert!(m.candidate.is_none());
    }

    #[test]
    fn responses_owed_are_bounded() {
        let mut m = Migration::new([5; 32]);
        for i in 0..100u8 {
            m.on_challenge(addr(u16::from(i)), [i; 8]);
        }
        let owed: Vec<_> = std::iter::from_fn(|| m.pop_response()).collect();
        assert_eq!(owed.len(), MAX_PENDING_RESPONSES);
        assert_eq!(owed.last(), Some(&(addr(99), [99; 8])), "the newest kept");
    }
}

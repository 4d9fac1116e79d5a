//! Admission (PROTOCOL.md §6.3, §6.8): whether a new INITIAL makes a
//! connection. [`Endpoint::admission`] decides from the endpoint's limits
//! and the INITIAL's token alone, and returns a [`Verdict`], like quinn's
//! `Incoming`; [`Endpoint::carry_out`] answers a RETRY or refusal. Deciding
//! apart from doing keeps every check in one place, in the order §6.3
//! gives, and lets version 3 decide before its Diffie-Hellman (§16.4).

use super::*;
use crate::token::TokenError;

/// What admission decided for a new INITIAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Make the connection, with this address validation.
    Accept(Address),
    /// Answer with a stateless RETRY carrying a token (§6.8): keep
    /// nothing until the client proves its address.
    Retry,
    /// Answer with a stateless refusal (§6.3).
    Refuse(Refusal),
}

/// Why admission refused an INITIAL: the reason the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The echoed retry token did not check (§6.8).
    InvalidToken(TokenError),
    /// `max_connections` open connections.
    ConnectionLimit,
    /// `max_memory` in use.
    MemoryLimit,
    /// `max_connections_per_source` established from this address.
    SourceConnections,
    /// `max_pending_handshakes` in progress, for a validated address.
    Handshakes,
    /// `max_pending_per_source` in progress from this validated address.
    SourceHandshakes,
}

impl Refusal {
    /// The transport code of the CLOSE that carries the refusal.
    fn code(self) -> TransportCode {
        match self {
            Refusal::InvalidToken(_) => TransportCode::InvalidToken,
            _ => TransportCode::ConnectionRefused,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::InvalidToken(e) => write!(f, "{e}"),
            Refusal::ConnectionLimit => f.write_str("server at its connection limit"),
            Refusal::MemoryLimit => f.write_str("server at its memory limit"),
            Refusal::SourceConnections => {
                f.write_str("server busy: too many connections from this address")
            }
            Refusal::Handshakes => f.write_str("server busy: too many handshakes in progress"),
            Refusal::SourceHandshakes => {
                f.write_str("server busy: too many handshakes in progress from this address")
            }
        }
    }
}

impl Endpoint {
    /// §6.3, §6.8: whether a new connection may be made for this INITIAL,
    /// and with what address validation. A verdict only: it sends, counts
    /// and keeps nothing (the token secrets alone move on with time), so
    /// it comes before any per-connection work: a version-3 handshake's
    /// Diffie-Hellman comes only after it (§16.4). [`Self::carry_out`]
    /// answers what it refuses.
    pub(super) fn admission(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_cid: ConnectionId,
        token: Option<&[u8]>,
    ) -> Verdict {
        // §6.8: a token proves the address; without one, a busy server
        // sends one and keeps nothing.
        let address = match token {
            Some(t) => match self.tokens.validate(now, from, client_cid, t) {
                Ok(()) => Address::Validated,
                Err(e) => return Verdict::Refuse(Refusal::InvalidToken(e)),
            },
            None if self.retry_wanted() => return Verdict::Retry,
            None => Address::Unvalidated,
        };
        // §6.3: limits. Counting open connections only when the total could
        // be at the limit keeps the common path O(1).
        let at_limit = self.conns.len() >= self.config.max_connections
            && self
                .conns
                .values()
                .filter(|e| e.conn.outcome().is_none())
                .count()
                >= self.config.max_connections;
        if at_limit {
            return Verdict::Refuse(Refusal::ConnectionLimit);
        }
        if self.memory >= self.config.max_memory {
            return Verdict::Refuse(Refusal::MemoryLimit);
        }
        let established = self.established_by_source.get(&Source::of(from)).copied();
        if established.unwrap_or(0) >= self.config.max_connections_per_source {
            return Verdict::Refuse(Refusal::SourceConnections);
        }
        // Under pressure a RETRY costs nothing to keep, and lets a real
        // client in as soon as a place frees up; sources that may be
        // forged and share an address come back with a token.
        if self.pending >= self.config.max_pending_handshakes {
            return match address {
                Address::Unvalidated => Verdict::Retry,
                Address::Validated => Verdict::Refuse(Refusal::Handshakes),
            };
        }
        let key = (Source::of(from), address);
        let from_source = self.pending_by_source.get(&key).copied().unwrap_or(0);
        if from_source >= self.config.max_pending_per_source {
            return match address {
                Address::Unvalidated => Verdict::Retry,
                Address::Validated => Verdict::Refuse(Refusal::SourceHandshakes),
            };
        }
        Verdict::Accept(address)
    }

    /// Carries out a verdict of [`Self::admission`] for the INITIAL with
    /// `header`: the address validation of a connection to make, or
    /// `None` once a RETRY or refusal is sent (in the INITIAL's
    /// protection) and counted.
    pub(super) fn carry_out(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_cid: ConnectionId,
        header: &Header,
        verdict: Verdict,
    ) -> Option<Address> {
        let refusal = match verdict {
            Verdict::Accept(address) => return Some(address),
            Verdict::Retry => {
                self.send_retry(now, from, client_cid, header.protection);
                return None;
            }
            Verdict::Refuse(r) => r,
        };
        match refusal {
            Refusal::InvalidToken(_) => self.stats.invalid_tokens += 1,
            Refusal::SourceConnections | Refusal::SourceHandshakes => {
                self.stats.refused_per_source += 1
            }
            Refusal::ConnectionLimit | Refusal::MemoryLimit | Refusal::Handshakes => {}
        }
        self.refuse(
            from,
            client_cid,
            header.protection,
            refusal.code(),
            &refusal.to_string(),
        );
        None
    }

    /// Whether an INITIAL without a token gets a RETRY (§6.8).
    pub(super) fn retry_wanted(&self) -> bool {
        match self.config.retry {
            RetryPolicy::Never => false,
            RetryPolicy::Always => true,
            RetryPolicy::WhenBusy { pending_handshakes } => self.pending >= pending_handshakes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(build: impl FnOnce(EndpointConfigBuilder) -> EndpointConfigBuilder) -> Endpoint {
        let config = build(EndpointConfig::builder()).build();
        Endpoint::server(config.expect("valid limits"), [7; 32])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Admission decides and does nothing else: no datagram, no count,
    /// whatever the verdict.
    fn verdict(ep: &mut Endpoint, now: Instant, token: Option<&[u8]>) -> Verdict {
        let stats = ep.stats().clone();
        let v = ep.admission(now, addr(4000), ConnectionId(9), token);
        assert_eq!(ep.stats(), &stats, "admission counted something");
        assert_eq!(
            ep.poll_transmit(now, &mut Vec::new()),
            None,
            "admission sent"
        );
        v
    }

    #[test]
    fn tokens_decide_retry_and_validation() {
        let now = Instant::now();
        let mut ep = server(|b| b.retry(RetryPolicy::Always));
        assert_eq!(verdict(&mut ep, now, None), Verdict::Retry);
        let token = ep.tokens.issue(now, addr(4000), ConnectionId(9));
        assert_eq!(
            verdict(&mut ep, now, Some(&token)),
            Verdict::Accept(Address::Validated)
        );
        assert_eq!(
            verdict(&mut ep, now, Some(b"forged")),
            Verdict::Refuse(Refusal::InvalidToken(TokenError::Invalid))
        );
        let mut ep = server(|b| b.retry(RetryPolicy::Never));
        assert_eq!(
            verdict(&mut ep, now, None),
            Verdict::Accept(Address::Unvalidated)
        );
    }

    #[test]
    fn limits_refuse_or_retry_in_the_order_of_section_6_3() {
        let now = Instant::now();
        let mut ep = server(|b| b.retry(RetryPolicy::Never).max_memory(1));
        ep.memory = 1;
        assert_eq!(
            verdict(&mut ep, now, None),
            Verdict::Refuse(Refusal::MemoryLimit)
        );
        // Too many handshakes: an unproven address gets a RETRY (it keeps
        // nothing), a proven one a refusal.
        let mut ep = server(|b| b.retry(RetryPolicy::Never).max_pending_handshakes(1));
        ep.pending = 1;
        assert_eq!(verdict(&mut ep, now, None), Verdict::Retry);
        let token = ep.tokens.issue(now, addr(4000), ConnectionId(9));
        assert_eq!(
            verdict(&mut ep, now, Some(&token)),
            Verdict::Refuse(Refusal::Handshakes)
        );
        let mut ep = server(|b| b.retry(RetryPolicy::Never).max_connections_per_source(1));
        ep.established_by_source.insert(Source::of(addr(5000)), 1);
        assert_eq!(
            verdict(&mut ep, now, None),
            Verdict::Refuse(Refusal::SourceConnections)
        );
    }

    /// Carried out, a refusal is one stateless ACCEPT with CLOSE, counted.
    #[test]
    fn a_refusal_is_answered_and_counted() {
        let now = Instant::now();
        let mut ep = server(|b| b);
        let header = Header {
            version: crate::wire::VERSION_2,
            ty: PacketType::Initial,
            protection: Protection::Clear,
            dcid: ConnectionId(0),
            scid: Some(ConnectionId(9)),
            pn: 0,
        };
        let refused = Verdict::Refuse(Refusal::SourceHandshakes);
        assert_eq!(
            ep.carry_out(now, addr(4000), ConnectionId(9), &header, refused),
            None
        );
        assert_eq!(ep.stats().refused, 1);
        assert_eq!(ep.stats().refused_per_source, 1);
        let mut out = Vec::new();
        assert_eq!(ep.poll_transmit(now, &mut out), Some(addr(4000)));
        assert!(crate::wire::describe(&out).contains("too many handshakes in progress"));
        let accepted = Verdict::Accept(Address::Unvalidated);
        assert_eq!(
            ep.carry_out(now, addr(4000), ConnectionId(9), &header, accepted),
            Some(Address::Unvalidated)
        );
        assert_eq!(ep.poll_transmit(now, &mut out), None);
    }
}

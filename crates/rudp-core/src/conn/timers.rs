//! The connection's timers (PROTOCOL.md §9.3, §9.5, §6.2): idle, handshake,
//! acknowledgement progress, keep-alive, loss and probe timeouts; the
//! earliest is what `poll_timeout` reports.

use super::{Connection, Side, State};
use crate::error::ConnectionError;
#[cfg(feature = "trace")]
use serde_json::json;
use std::time::{Duration, Instant};

/// The connection's timers: what each does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// §9.5: nothing heard for the idle timeout; the connection ends.
    Idle,
    /// §6.2: a server's unconfirmed handshake gives up.
    Handshake,
    /// §9.5: the peer acknowledged nothing new for an idle timeout.
    AckProgress,
    /// RFC 9002 §6.2: time-threshold loss detection or a probe timeout.
    Loss,
    /// §7.1: a delayed acknowledgement is due.
    Ack,
    /// A keep-alive PING is due.
    KeepAlive,
    /// The pacer lets the next packet go (§9.6).
    Pacing,
    /// §6.9: challenge a new address again, or give up on it.
    PathValidation,
    /// §15.5: a message's lifetime runs out; abandon it and send SKIP.
    Expiry,
}

/// The connection's deadlines and the instants they count from: one part,
/// owned here, that the rest of the connection reads and moves through
/// narrow methods.
#[derive(Debug)]
pub(super) struct Timers {
    /// The idle timeout in force: ours, or the peer's if shorter (§9.5).
    pub(super) idle_timeout: Duration,
    /// When the connection ends if nothing is heard (§9.5).
    pub(super) idle: Instant,
    /// Server: the handshake must be confirmed by then, however many
    /// INITIALs keep arriving (§6.2).
    pub(super) handshake: Option<Instant>,
    /// When an ACK last acknowledged something new, or when ack-eliciting
    /// packets went in flight with none before: a peer that leaves them
    /// unacknowledged for an idle timeout is timed out (§9.5).
    pub(super) ack_progress: Instant,
    /// When the peer's last packet that passed every check arrived.
    pub(super) last_received: Option<Instant>,
    /// Whether we sent something ack-eliciting since the peer's last
    /// packet: the idle timer restarts only on the first (§9.5).
    pub(super) eliciting_since_recv: bool,
    /// When we last sent something ack-eliciting: keep-alives count from
    /// it (§9.5).
    pub(super) last_eliciting_sent: Option<Instant>,
    /// Set when pacing held back a packet: when it may go (§9.6).
    pub(super) pacing: Option<Instant>,
}

impl Timers {
    pub(super) fn new(now: Instant, side: Side, idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            idle: now + idle_timeout,
            handshake: (side == Side::Server).then(|| now + idle_timeout),
            ack_progress: now,
            last_received: None,
            eliciting_since_recv: false,
            last_eliciting_sent: None,
            pacing: None,
        }
    }

    /// A packet of the peer's passed every check: the idle timer restarts
    /// (§9.5) with `idle`, the timeout in force.
    pub(super) fn on_received(&mut self, now: Instant, idle: Duration) {
        self.idle = now + idle;
        self.last_received = Some(now);
        self.eliciting_since_recv = false;
    }

    /// We sent an ack-eliciting packet: keep-alives count from it, and the
    /// idle timer restarts on the first after a receipt (RFC 9000 §10.1).
    pub(super) fn on_eliciting_sent(&mut self, now: Instant, idle: Duration) {
        self.last_eliciting_sent = Some(now);
        if !self.eliciting_since_recv {
            self.eliciting_since_recv = true;
            self.idle = self.idle.max(now + idle);
        }
    }

    /// Server, before the client's first DATA packet: when the handshake
    /// gives up (§6.2).
    pub(super) fn unconfirmed(&self, confirmed: bool) -> Option<Instant> {
        self.handshake.filter(|_| !confirmed)
    }

    /// With ack-eliciting packets outstanding: when the peer, having
    /// acknowledged nothing new for `idle`, is declared gone even if it
    /// keeps sending (§9.5).
    pub(super) fn ack_progress_deadline(
        &self,
        eliciting_in_flight: bool,
        idle: Duration,
    ) -> Option<Instant> {
        eliciting_in_flight.then(|| self.ack_progress + idle)
    }

    /// §9.5: a PING after `interval` without anything ack-eliciting sent.
    pub(super) fn keep_alive(&self, interval: Duration) -> Option<Instant> {
        Some(self.last_eliciting_sent? + interval)
    }
}

impl Connection {
    /// Every timer and when it fires, if armed: the one table that both
    /// `poll_timeout` and `handle_timeout` read, so the deadline reported
    /// and the work done can never disagree.
    pub(super) fn timer_table(&self) -> [(Timer, Option<Instant>); 9] {
        [
            (Timer::Idle, Some(self.timers.idle)),
            (Timer::Handshake, self.unconfirmed_deadline()),
            (Timer::AckProgress, self.ack_progress_deadline()),
            (Timer::Loss, self.recovery.timer),
            (Timer::Ack, self.acks.deadline()),
            (Timer::KeepAlive, self.keep_alive_deadline()),
            (Timer::Pacing, self.timers.pacing),
            (Timer::PathValidation, self.migration.deadline()),
            (Timer::Expiry, self.expiry_deadline()),
        ]
    }

    /// Whether `timer` is armed and has fired by `now`.
    fn expired(table: &[(Timer, Option<Instant>)], timer: Timer, now: Instant) -> bool {
        table
            .iter()
            .any(|&(t, at)| t == timer && at.is_some_and(|at| now >= at))
    }

    /// The earliest instant at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.amplification_blocked() {
            // Nothing can be sent until the client sends more (§6.7): only
            // its next packet or the idle timeout can change anything, and a
            // due ACK or probe must not keep waking us for nothing.
            return Some(self.timers.idle);
        }
        match self.state {
            State::Closed => None,
            State::Closing { until } | State::Draining { until } => Some(until),
            State::Handshake | State::Established | State::Lingering => self
                .timer_table()
                .into_iter()
                .filter_map(|(_, at)| at)
                .min(),
        }
    }

    /// Server, before the client's first DATA packet: when the handshake
    /// gives up (§6.2).
    pub(super) fn unconfirmed_deadline(&self) -> Option<Instant> {
        self.timers.unconfirmed(self.confirmed)
    }

    /// With ack-eliciting packets outstanding: when the peer, having
    /// acknowledged nothing new for an idle timeout, is declared gone even
    /// if it keeps sending (§9.5).
    pub(super) fn ack_progress_deadline(&self) -> Option<Instant> {
        let in_flight = self.recovery.sent.has_eliciting_in_flight();
        self.timers
            .ack_progress_deadline(in_flight, self.effective_idle_timeout())
    }

    /// §9.5: a PING after a keep-alive interval without anything
    /// ack-eliciting sent, while the connection is open and the peer's side
    /// has not finished: also after our own stream finished, since a side
    /// waiting for the rest of the peer's data must still be heard from, or
    /// a NAT that rebinds it would leave the peer no way to find it (§6.9).
    pub(super) fn keep_alive_deadline(&self) -> Option<Instant> {
        let first = self.streams.first();
        let both_finished = first.send.is_finished() && first.recv.is_fin_received();
        if self.state != State::Established || both_finished || self.ping_pending {
            return None;
        }
        let interval = self.config.keep_alive?.min(self.timers.idle_timeout / 2);
        self.timers.keep_alive(interval)
    }

    /// Runs every timer that has expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Closing { until } | State::Draining { until } => {
                if now >= until {
                    self.set_state(now, State::Closed);
                }
                return;
            }
            State::Handshake | State::Established | State::Lingering => {}
        }
        let table = self.timer_table();
        let fired = |timer| Self::expired(&table, timer, now);
        if fired(Timer::Idle) || fired(Timer::Handshake) || fired(Timer::AckProgress) {
            // §9.5: silent close; the peer will time out too. A lingering
            // connection already reported its graceful outcome.
            traced! {
                self.trace(now, "connectivity:idle_timeout", || json!({}));
            }
            self.finish(Err(ConnectionError::TimedOut(self.timers.idle_timeout)));
            self.set_state(now, State::Closed);
            return;
        }
        if fired(Timer::Loss) {
            self.on_loss_timer(now);
        }
        if fired(Timer::PathValidation) {
            self.on_path_timer(now);
        }
        if fired(Timer::Pacing) {
            // The caller polls for transmits next; the pacer decides again.
            self.timers.pacing = None;
        }
        if fired(Timer::Expiry) {
            // §15.5: abandon now, so the SKIP goes out with the next packet.
            self.expire_messages(now);
        }
        // Timer::Ack needs nothing here: `poll_transmit` sends a due ACK.
        if fired(Timer::KeepAlive) {
            traced! {
                self.trace(now, "rudp:keepalive", || json!({}));
            }
            self.ping_pending = true;
        }
    }
}

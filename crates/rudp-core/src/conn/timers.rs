//! The connection's timers (PROTOCOL.md §9.3, §9.5, §6.2): idle, handshake,
//! acknowledgement progress, keep-alive, loss and probe timeouts; the
//! earliest is what `poll_timeout` reports.

use super::*;

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

impl Connection {
    /// Every timer and when it fires, if armed: the one table that both
    /// `poll_timeout` and `handle_timeout` read, so the deadline reported
    /// and the work done can never disagree.
    pub(super) fn timer_table(&self) -> [(Timer, Option<Instant>); 9] {
        [
            (Timer::Idle, Some(self.idle_deadline)),
            (Timer::Handshake, self.unconfirmed_deadline()),
            (Timer::AckProgress, self.ack_progress_deadline()),
            (Timer::Loss, self.loss_timer),
            (Timer::Ack, self.acks.deadline()),
            (Timer::KeepAlive, self.keep_alive_deadline()),
            (Timer::Pacing, self.pacing_until),
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
            return Some(self.idle_deadline);
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
        self.handshake_deadline.filter(|_| !self.confirmed)
    }

    /// With ack-eliciting packets outstanding: when the peer, having
    /// acknowledged nothing new for an idle timeout, is declared gone even
    /// if it keeps sending (§9.5).
    pub(super) fn ack_progress_deadline(&self) -> Option<Instant> {
        self.sent
            .has_eliciting_in_flight()
            .then(|| self.ack_progress + self.effective_idle_timeout())
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
        let interval = self.config.keep_alive?.min(self.idle_timeout / 2);
        Some(self.last_eliciting_sent? + interval)
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
            self.finish(Err(ConnectionError::TimedOut(self.idle_timeout)));
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
            self.pacing_until = None;
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

    pub(super) fn pto(&self) -> Duration {
        // The peer delays ACKs only once the handshake is confirmed (§9.3).
        let ack_delay = match self.peer {
            Some(p) if self.confirmed => Duration::from_micros(p.max_ack_delay_micros),
            _ => Duration::ZERO,
        };
        self.path.rtt.pto_base() + ack_delay
    }

    /// RFC 9002 §6.2.1 SetLossDetectionTimer.
    pub(super) fn set_loss_timer(&mut self) {
        if let Some(t) = self.loss.time {
            self.loss_timer = Some(t);
            return;
        }
        match self.sent.last_eliciting_sent() {
            Some(last) => {
                let pto = self.pto();
                let backed_off = pto * (1u32 << self.pto_count.min(MAX_PTO_BACKOFF));
                // §9.3: backoff stops at a twentieth of the idle timeout, so a
                // lossy but live path gets about twenty probes before the
                // idle timeout declares it dead.
                let cap = (self.effective_idle_timeout() / PROBES_PER_IDLE_TIMEOUT).max(pto);
                self.loss_timer = Some(last + backed_off.min(cap));
            }
            None => self.loss_timer = None,
        }
    }

    /// RFC 9002 §6.2.1 OnLossDetectionTimeout.
    pub(super) fn on_loss_timer(&mut self, now: Instant) {
        #[cfg(any(feature = "log", feature = "trace"))]
        let (timer, pto_count) = (
            if self.loss.time.is_some() {
                "time_threshold"
            } else {
                "pto"
            },
            self.pto_count,
        );
        debug_log!(cid = %self.local_cid, timer, pto_count, "loss timer fired");
        traced! {
            self.trace(
                now,
                "recovery:loss_timer_expired",
                || json!({ "timer_type": timer, "pto_count": pto_count }),
            );
        }
        if self.loss.time.is_some() {
            self.detect_lost(now);
        } else {
            // Probe timeout: resend the oldest unacknowledged content in up to
            // two new packets, outside the congestion window (§9.3).
            self.stats.sent.probe_timeouts += 1;
            self.pto_count += 1;
            if self.path.mtu.on_probe_timeout(self.pto_count) == mtu::SizeChange::BlackHole {
                self.on_black_hole(now);
            }
            self.probes = PROBES_PER_PTO;
            if let Some(p) = self.sent.oldest_eliciting() {
                let frames = p.frames.clone();
                self.requeue(&frames);
            }
        }
        self.set_loss_timer();
    }
}

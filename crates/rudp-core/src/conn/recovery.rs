//! Loss recovery (PROTOCOL.md §9, RFC 9002): what an ACK acknowledges,
//! RTT samples, spurious-loss detection and the thresholds it widens, loss
//! detection, the loss timer, requeueing what lost packets carried, and
//! what a change of datagram size (§9.7) does to the controller.

use super::mtu::SizeChange;
use super::sent::{SentFrames, SentPacket, SentPackets};
use super::{
    sent, Connection, Event, MAX_PTO_BACKOFF, PROBES_PER_IDLE_TIMEOUT, PROBES_PER_PTO,
    RECENTLY_LOST_KEPT,
};
use crate::error::TransportCode;
use crate::rtt::RttEstimator;
use crate::wire::AckFrame;
use crate::{congestion, rtt};
#[cfg(feature = "trace")]
use serde_json::json;
use std::time::{Duration, Instant};

/// Loss recovery's own state (§9.2, §9.3, RFC 9002 §6): the packets in
/// flight, the largest acknowledged, loss detection, and the loss or probe
/// timer with its backoff. The connection reaches it as one part; what it
/// decides alone (arming the timer, a probe timeout, starting over after a
/// RETRY) are its own methods, given only the durations they need.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    /// What we sent and is not yet acknowledged or lost.
    pub(super) sent: SentPackets,
    /// The largest packet number the peer acknowledged.
    pub(super) largest_acked: Option<u64>,
    /// Loss detection's thresholds and its memory of recent losses.
    pub(super) loss: LossDetector,
    /// Time-threshold loss timer or probe timeout (RFC 9002 §6.2).
    pub(super) timer: Option<Instant>,
    /// Probe timeouts in a row, without an ACK in between.
    pub(super) pto_count: u32,
    /// Probe packets still to send for the last probe timeout.
    pub(super) probes: u8,
}

impl Recovery {
    /// RFC 9002 §6.2.1 SetLossDetectionTimer: the time-threshold timer if
    /// a packet waits on it, else the probe timeout after the last
    /// ack-eliciting packet, backed off; `pto` as §9.3 computes it.
    pub(super) fn arm_timer(&mut self, pto: Duration, idle_timeout: Duration) {
        if let Some(t) = self.loss.time {
            self.timer = Some(t);
            return;
        }
        self.timer = self.sent.last_eliciting_sent().map(|last| {
            let backed_off = pto * (1u32 << self.pto_count.min(MAX_PTO_BACKOFF));
            // §9.3: backoff stops at a twentieth of the idle timeout, so a
            // lossy but live path gets about twenty probes before the idle
            // timeout declares it dead.
            let cap = (idle_timeout / PROBES_PER_IDLE_TIMEOUT).max(pto);
            last + backed_off.min(cap)
        });
    }

    /// A probe timeout fired (§9.3): back off, owe [`PROBES_PER_PTO`]
    /// probes, and return what the oldest unacknowledged ack-eliciting
    /// packet carried, to send again.
    pub(super) fn on_probe_timeout(&mut self) -> Option<SentFrames> {
        self.pto_count += 1;
        self.probes = PROBES_PER_PTO;
        self.sent.oldest_eliciting().map(|p| p.frames.clone())
    }

    /// §6.8: the server kept nothing (a RETRY): what we sent will never be
    /// acknowledged, and is not lost either. Starts over.
    pub(super) fn restart(&mut self) {
        let _ = self.sent.take_range(0..u64::MAX);
        self.loss.time = None;
        self.pto_count = 0;
        self.probes = 0;
    }
}

impl Connection {
    /// RFC 9002 §6 OnAckReceived.
    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        ack: &AckFrame,
    ) -> Result<(), (TransportCode, String)> {
        let largest = ack.largest();
        let smallest = ack.ranges.last().map_or(largest, |r| r.start);
        if largest >= self.next_pn || smallest < self.first_pn {
            return Err((
                TransportCode::ProtocolViolation,
                format!("acknowledged packets {smallest}..={largest}, not all of which were sent"),
            ));
        }
        let mut newly = Vec::new();
        for r in &ack.ranges {
            newly.extend(self.recovery.sent.take_range(r.clone()));
            self.detect_spurious(now, r.clone());
        }
        if newly.is_empty() {
            return Ok(());
        }
        self.timers.ack_progress = now;
        if self.recovery.largest_acked.is_none_or(|l| largest > l) {
            self.recovery.largest_acked = Some(largest);
        }
        // RTT sample: only from the largest acknowledged, if it is newly
        // acknowledged and ack-eliciting (RFC 9002 §5.1).
        let mut rtt_sample = None;
        if let Some((_, p)) = newly.iter().find(|(pn, _)| *pn == largest) {
            if p.ack_eliciting {
                let peer_max =
                    Duration::from_micros(self.peer.map_or(0, |p| p.max_ack_delay_micros));
                let delay = Duration::from_micros(ack.delay_micros).min(peer_max);
                self.path
                    .rtt
                    .update(now.saturating_duration_since(p.time_sent), delay);
                rtt_sample = Some(self.path.rtt.latest());
            }
        }
        // §8.3: the send buffer holds at least two congestion windows, so a
        // window as large as the path needs can be filled; not while the
        // peer's flow-control limit is what holds data back.
        let wanted = self
            .path
            .cc
            .window()
            .saturating_mul(2)
            .min(self.config.max_send_buffer);
        let first = &mut self.streams.first_mut().send;
        if !first.is_flow_blocked() {
            first.grow_capacity(wanted);
        }
        let before = self.streams.send_buffered();
        for (pn, p) in &newly {
            if let SizeChange::Raised(size) = self.path.mtu.on_acked(*pn, p.size) {
                self.on_datagram_size(now, size);
            }
            if p.in_flight {
                self.path
                    .cc
                    .on_ack(now, p.time_sent, p.size as u64, &self.path.rtt);
                self.path
                    .delivery
                    .on_packet_acked(now, p.time_sent, p.size as u64, &p.delivery);
            }
            self.on_streams_acked(&p.frames);
        }
        self.streams.collect();
        if let Some(sample) = self.path.delivery.finish_ack(
            self.path.rtt.min(),
            self.recovery.sent.bytes_in_flight(),
            rtt_sample,
        ) {
            self.path.cc.on_ack_event(now, &sample, &self.path.rtt);
        }
        // Writers wait for room; `is_stream_delivered` waiters also for a
        // FIN, a SKIP or a RESET_STREAM acknowledged.
        let ends_acked = newly.iter().any(|(_, p)| {
            p.frames.fin
                || p.frames
                    .v2
                    .as_deref()
                    .is_some_and(|v| v.streams.iter().any(|s| s.fin) || !v.controls.is_empty())
        });
        if ends_acked || self.streams.send_buffered() < before {
            self.emit(Event::Writable);
        }
        self.detect_lost(now);
        // §9.7: with what this ACK acknowledged and revealed lost, the
        // black-hole detector decides.
        if self.path.mtu.on_ack_done() == SizeChange::BlackHole {
            self.on_black_hole(now);
        }
        self.recovery.pto_count = 0;
        self.set_loss_timer();
        self.trace_metrics(now);
        Ok(())
    }

    /// §9.2: an ACK for packets already declared lost shows the path
    /// reorders: the detector widens its thresholds; count and trace each.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    pub(super) fn detect_spurious(&mut self, now: Instant, acked: std::ops::Range<u64>) {
        for s in self.recovery.loss.on_acked(acked) {
            self.stats.sent.spurious_losses += 1;
            debug_log!(cid = %self.local_cid, pn = s.pn, packet_threshold = s.packet_threshold, "spurious loss: the path reorders");
            traced! {
                let (num, den) = s.time_threshold;
                self.trace(now, "rudp:spurious_loss", || {
                    json!({
                        "header": { "packet_number": s.pn },
                        "packet_threshold": s.packet_threshold,
                        "time_threshold": format!("{num}/{den}"),
                    })
                });
            }
        }
    }

    /// RFC 9002 §6.1 DetectAndRemoveLostPackets, then the congestion
    /// response (§7) and requeueing of what the lost packets carried.
    pub(super) fn detect_lost(&mut self, now: Instant) {
        let Some(largest) = self.recovery.largest_acked else {
            return;
        };
        let pto = self.pto();
        // §9.7: a lost MTU probe says the path does not carry its size,
        // not that we sent too fast.
        let mtu_probe = self.path.mtu.probe_pn();
        let outcome = self.recovery.loss.detect(
            now,
            &mut self.recovery.sent,
            largest,
            &self.path.rtt,
            pto,
            mtu_probe,
        );
        if outcome.lost.is_empty() {
            return;
        }
        for (pn, p) in &outcome.lost {
            self.path.mtu.on_lost(*pn, p.size);
        }
        let probes = outcome
            .lost
            .iter()
            .filter(|(pn, _)| Some(*pn) == mtu_probe)
            .count();
        self.stats.sent.packets_lost += (outcome.lost.len() - probes) as u64;
        self.stats.sent.ack_only_lost += outcome
            .lost
            .iter()
            .filter(|(_, p)| !p.ack_eliciting)
            .count() as u64;
        self.stats.sent.mtu_probes_lost += probes as u64;
        debug_log!(
            cid = %self.local_cid,
            lost = ?outcome.lost.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(),
            largest_acked = largest,
            "packets declared lost"
        );
        traced! {
            if self.tracer.is_some() {
                for (pn, _) in &outcome.lost {
                    let (pn, by_number) = (*pn, largest - *pn >= self.recovery.loss.packet_threshold);
                    self.trace(now, "recovery:packet_lost", || {
                        let trigger = if by_number {
                            "reordering_threshold"
                        } else {
                            "time_threshold"
                        };
                        json!({ "header": { "packet_number": pn }, "trigger": trigger })
                    });
                }
            }
        }
        for (_, p) in &outcome.lost {
            self.requeue(&p.frames);
            self.stats.streams.datagrams_lost += u64::from(p.frames.datagrams());
        }
        if let Some(sent) = outcome.newest_in_flight {
            self.path
                .cc
                .on_congestion_event(now, sent, outcome.lost_bytes, outcome.persistent);
            self.trace_metrics(now);
        }
    }

    /// §9.7: an MTU probe of `size` bytes was acknowledged; packets may be
    /// that large from now on.
    pub(super) fn on_datagram_size(&mut self, now: Instant, size: usize) {
        debug_log!(cid = %self.local_cid, size, "path MTU probe acknowledged");
        self.path.cc.set_max_datagram_size(size as u64);
        self.trace_mtu(now, size, false);
    }

    /// §9.7: packets of the size in use stopped arriving while smaller
    /// ones got through: back to 1200.
    pub(super) fn on_black_hole(&mut self, now: Instant) {
        debug_log!(cid = %self.local_cid, "path MTU black hole: back to 1200 bytes");
        self.stats.sent.mtu_black_holes += 1;
        let size = self.path.max_datagram();
        self.path.cc.set_max_datagram_size(size as u64);
        self.trace_mtu(now, size, true);
    }

    /// Puts what a lost (or probed) packet carried back in line to be sent.
    pub(super) fn requeue(&mut self, frames: &SentFrames) {
        self.requeue_streams(frames);
        if frames.handshake && !self.confirmed {
            self.handshake_pending = true;
        }
    }

    /// RFC 9002 §6.2.1 SetLossDetectionTimer ([`Recovery::arm_timer`]).
    pub(super) fn set_loss_timer(&mut self) {
        let (pto, idle) = (self.pto(), self.effective_idle_timeout());
        self.recovery.arm_timer(pto, idle);
    }

    /// RFC 9002 §6.2.1 OnLossDetectionTimeout.
    pub(super) fn on_loss_timer(&mut self, now: Instant) {
        #[cfg(any(feature = "log", feature = "trace"))]
        let (timer, pto_count) = (
            if self.recovery.loss.time.is_some() {
                "time_threshold"
            } else {
                "pto"
            },
            self.recovery.pto_count,
        );
        debug_log!(cid = %self.local_cid, timer, pto_count, "loss timer fired");
        traced! {
            self.trace(
                now,
                "recovery:loss_timer_expired",
                || json!({ "timer_type": timer, "pto_count": pto_count }),
            );
        }
        if self.recovery.loss.time.is_some() {
            self.detect_lost(now);
        } else {
            // Probe timeout: resend the oldest unacknowledged content in up to
            // two new packets, outside the congestion window (§9.3).
            self.stats.sent.probe_timeouts += 1;
            let oldest = self.recovery.on_probe_timeout();
            if let Some(frames) = oldest {
                self.requeue(&frames);
            }
        }
        self.set_loss_timer();
    }

    /// §9.7: once the peer's parameters are known, and on a new path,
    /// search up to what both sides accept.
    pub(super) fn start_mtu_search(&mut self) {
        if let Some(peer) = self.peer {
            let peers = peer
                .max_datagram_size
                .min(crate::config::MAX_DATAGRAM_SIZE as u64) as usize;
            self.path.mtu.start(self.config.max_datagram_size, peers);
        }
    }
}

/// Loss detection's state (§9.2, RFC 9002 §6.1): the thresholds, which
/// widen when losses turn out to be reordering, the time at which the
/// earliest unacknowledged packet will count as lost, and the packets lost
/// lately (to recognise a spurious loss when its ACK arrives).
#[derive(Debug)]
pub(super) struct LossDetector {
    /// A packet this many numbers below the largest acknowledged is lost.
    pub(super) packet_threshold: u64,
    /// Index into `rtt::TIME_THRESHOLDS`: a packet older than that many
    /// RTTs is lost.
    time_threshold: usize,
    /// When the next packet will have waited long enough to count as lost.
    pub(super) time: Option<Instant>,
    /// Packet number -> largest acknowledged when it was declared lost.
    recently_lost: std::collections::BTreeMap<u64, u64>,
}

impl Default for LossDetector {
    fn default() -> Self {
        Self {
            packet_threshold: sent::PACKET_THRESHOLD,
            time_threshold: 0,
            time: None,
            recently_lost: Default::default(),
        }
    }
}

/// A loss that was really reordering, and the thresholds it left: what the
/// log and the trace report (read only with those features).
#[cfg_attr(not(any(feature = "log", feature = "trace")), allow(dead_code))]
pub(super) struct SpuriousLoss {
    pub(super) pn: u64,
    pub(super) packet_threshold: u64,
    #[cfg_attr(not(feature = "trace"), allow(dead_code))]
    pub(super) time_threshold: (u32, u32),
}

/// What one round of loss detection found: the lost packets, and what the
/// congestion controller needs to hear about them.
pub(super) struct LossOutcome {
    /// The lost packets, their numbers first.
    pub(super) lost: Vec<(u64, SentPacket)>,
    /// Bytes of the lost packets that counted in flight.
    pub(super) lost_bytes: u64,
    /// When the newest of those was sent; `None` if none was in flight.
    pub(super) newest_in_flight: Option<Instant>,
    /// Whether they show persistent congestion (RFC 9002 §7.6).
    pub(super) persistent: bool,
}

impl LossDetector {
    /// Packets in `acked` that were declared lost: each widens the
    /// thresholds so that the path's reordering stops looking like loss.
    pub(super) fn on_acked(&mut self, acked: std::ops::Range<u64>) -> Vec<SpuriousLoss> {
        let spurious: Vec<(u64, u64)> = self
            .recently_lost
            .range(acked)
            .map(|(&pn, &largest)| (pn, largest))
            .collect();
        spurious
            .into_iter()
            .map(|(pn, largest_then)| {
                self.recently_lost.remove(&pn);
                let distance = largest_then - pn + 1;
                // Beyond the cap, counting packets cannot tell loss from
                // reordering: leave it to the time threshold (§9.2).
                self.packet_threshold = if distance > sent::MAX_PACKET_THRESHOLD {
                    u64::MAX
                } else {
                    self.packet_threshold.max(distance)
                };
                self.time_threshold = (self.time_threshold + 1).min(rtt::TIME_THRESHOLDS.len() - 1);
                SpuriousLoss {
                    pn,
                    packet_threshold: self.packet_threshold,
                    time_threshold: rtt::TIME_THRESHOLDS[self.time_threshold],
                }
            })
            .collect()
    }

    /// Takes the packets that count as lost from `sent` and says what the
    /// congestion controller must be told.
    pub(super) fn detect(
        &mut self,
        now: Instant,
        sent: &mut SentPackets,
        largest: u64,
        rtt: &RttEstimator,
        pto: Duration,
        mtu_probe: Option<u64>,
    ) -> LossOutcome {
        let loss_delay = rtt.loss_delay_times(rtt::TIME_THRESHOLDS[self.time_threshold]);
        let (lost, loss_time) = sent.detect_lost(now, largest, self.packet_threshold, loss_delay);
        self.time = loss_time;
        for (pn, _) in &lost {
            self.recently_lost.insert(*pn, largest);
        }
        while self.recently_lost.len() > RECENTLY_LOST_KEPT {
            self.recently_lost.pop_first();
        }
        let mut newest_in_flight: Option<Instant> = None;
        let mut lost_bytes = 0;
        // Everything lost but the MTU probe (§9.7), ack-only packets too:
        // they keep persistent congestion's runs of numbers unbroken.
        let congestion: Vec<(u64, SentPacket)> = lost
            .iter()
            .filter(|(pn, _)| Some(*pn) != mtu_probe)
            .cloned()
            .collect();
        for (_, p) in congestion.iter().filter(|(_, p)| p.in_flight) {
            newest_in_flight = Some(newest_in_flight.map_or(p.time_sent, |t| t.max(p.time_sent)));
            lost_bytes += p.size as u64;
        }
        let persistent = newest_in_flight.is_some()
            && rtt.has_sample()
            && sent::is_persistent_congestion(
                &congestion,
                congestion::persistent_congestion_duration(pto),
            );
        LossOutcome {
            lost,
            lost_bytes,
            newest_in_flight,
            persistent,
        }
    }
}

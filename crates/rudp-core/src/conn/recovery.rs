//! Loss recovery (PROTOCOL.md §9, RFC 9002): what an ACK acknowledges,
//! RTT samples, spurious-loss detection and the thresholds it widens, loss
//! detection, and requeueing what lost packets carried.

use super::*;

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
            newly.extend(self.sent.take_range(r.clone()));
            self.detect_spurious(now, r.clone());
        }
        if newly.is_empty() {
            return Ok(());
        }
        self.ack_progress = now;
        if self.largest_acked.is_none_or(|l| largest > l) {
            self.largest_acked = Some(largest);
        }
        // RTT sample: only from the largest acknowledged, if it is newly
        // acknowledged and ack-eliciting (RFC 9002 §5.1).
        if let Some((_, p)) = newly.iter().find(|(pn, _)| *pn == largest) {
            if p.ack_eliciting {
                let peer_max =
                    Duration::from_micros(self.peer.map_or(0, |p| p.max_ack_delay_micros));
                let delay = Duration::from_micros(ack.delay_micros).min(peer_max);
                self.path
                    .rtt
                    .update(now.saturating_duration_since(p.time_sent), delay);
            }
        }
        // §8.3: the send buffer holds at least two congestion windows, so a
        // window as large as the path needs can be filled; not while the
        // peer's flow-control limit is what holds data back.
        if !self.send.is_flow_blocked() {
            let wanted = self.path.cc.window().saturating_mul(2);
            self.send
                .grow_capacity(wanted.min(self.config.max_send_buffer));
        }
        let before = self.send.buffered();
        for (_, p) in &newly {
            if p.in_flight {
                self.path
                    .cc
                    .on_ack(now, p.time_sent, p.size as u64, &self.path.rtt);
                self.path
                    .delivery
                    .on_packet_acked(now, p.time_sent, p.size as u64, &p.delivery);
            }
            self.send.on_acked(&p.frames.stream, p.frames.fin);
        }
        if let Some(sample) = self
            .path
            .delivery
            .finish_ack(self.path.rtt.min(), self.sent.bytes_in_flight())
        {
            self.path.cc.on_ack_event(now, &sample, &self.path.rtt);
        }
        if self.send.buffered() < before {
            self.emit(Event::Writable);
        }
        self.detect_lost(now);
        self.pto_count = 0;
        self.set_loss_timer();
        self.trace_metrics(now);
        Ok(())
    }

    /// §9.2: an ACK for packets already declared lost shows the path
    /// reorders; widen the thresholds so it stops looking like loss.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    pub(super) fn detect_spurious(&mut self, now: Instant, acked: std::ops::Range<u64>) {
        let spurious: Vec<(u64, u64)> = self
            .recently_lost
            .range(acked)
            .map(|(&pn, &largest)| (pn, largest))
            .collect();
        for (pn, largest_then) in spurious {
            self.recently_lost.remove(&pn);
            self.stats.sent.spurious_losses += 1;
            let distance = largest_then - pn + 1;
            // Beyond the cap, counting packets cannot tell loss from
            // reordering: leave it to the time threshold (§9.2).
            self.packet_threshold = if distance > sent::MAX_PACKET_THRESHOLD {
                u64::MAX
            } else {
                self.packet_threshold.max(distance)
            };
            self.time_threshold = (self.time_threshold + 1).min(rtt::TIME_THRESHOLDS.len() - 1);
            let packet_threshold = self.packet_threshold;
            debug_log!(cid = %self.local_cid, pn, packet_threshold, "spurious loss: the path reorders");
            traced! {
                let (num, den) = rtt::TIME_THRESHOLDS[self.time_threshold];
                self.trace(now, "rudp:spurious_loss", || {
                    json!({
                        "header": { "packet_number": pn },
                        "packet_threshold": packet_threshold,
                        "time_threshold": format!("{num}/{den}"),
                    })
                });
            }
        }
    }

    /// RFC 9002 §6.1 DetectAndRemoveLostPackets, then the congestion
    /// response (§7) and requeueing of what the lost packets carried.
    pub(super) fn detect_lost(&mut self, now: Instant) {
        let Some(largest) = self.largest_acked else {
            return;
        };
        let loss_delay = self
            .path
            .rtt
            .loss_delay_times(rtt::TIME_THRESHOLDS[self.time_threshold]);
        let (lost, loss_time) =
            self.sent
                .detect_lost(now, largest, self.packet_threshold, loss_delay);
        self.loss_time = loss_time;
        if lost.is_empty() {
            return;
        }
        self.stats.sent.packets_lost += lost.len() as u64;
        for (pn, _) in &lost {
            self.recently_lost.insert(*pn, largest);
        }
        while self.recently_lost.len() > RECENTLY_LOST_KEPT {
            self.recently_lost.pop_first();
        }
        debug_log!(
            cid = %self.local_cid,
            lost = ?lost.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(),
            largest_acked = largest,
            "packets declared lost"
        );
        traced! {
            if self.tracer.is_some() {
                for (pn, _) in &lost {
                    let (pn, by_number) = (*pn, largest - *pn >= self.packet_threshold);
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
        let mut newest_in_flight: Option<Instant> = None;
        let mut lost_bytes = 0;
        for (_, p) in &lost {
            self.requeue(&p.frames);
            if p.in_flight {
                newest_in_flight =
                    Some(newest_in_flight.map_or(p.time_sent, |t| t.max(p.time_sent)));
                lost_bytes += p.size as u64;
            }
        }
        if let Some(sent) = newest_in_flight {
            let persistent = self.path.rtt.has_sample()
                && sent::is_persistent_congestion(
                    &lost,
                    congestion::persistent_congestion_duration(self.pto()),
                );
            self.path
                .cc
                .on_congestion_event(now, sent, lost_bytes, persistent);
            self.trace_metrics(now);
        }
    }

    /// Puts what a lost (or probed) packet carried back in line to be sent.
    pub(super) fn requeue(&mut self, frames: &SentFrames) {
        self.send.on_lost(&frames.stream, frames.fin);
        if frames.max_data {
            self.max_data_pending = true;
        }
        if frames.handshake && !self.confirmed {
            self.handshake_pending = true;
        }
    }
}

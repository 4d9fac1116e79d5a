//! Sending (PROTOCOL.md §6.7, §8, §9.6): filling a packet with frames in
//! priority order within the congestion window, pacing and the
//! amplification limit, and the CLOSE of CLOSING. The packet's envelope
//! (type, header, sealing, checksum) is `envelope`'s.

use super::sent::{SentFrames, SentPacket};
use super::{Connection, State};
use crate::wire::frame::MAX_STREAM_HEADER_LEN;
use crate::wire::{CloseFrame, Frame, PacketType};
use std::net::SocketAddr;
use std::time::Instant;

impl Connection {
    /// Writes the next datagram to send into `out` (cleared first) and
    /// returns where to send it: the peer's address, or a new address of the
    /// peer's being validated (§6.9). `None` if there is nothing to send now.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        out.clear();
        self.close_on_read_error(now);
        self.maybe_rekey(now);
        match self.state {
            State::Closed | State::Draining { .. } => return None,
            State::Closing { .. } => return self.write_close(now, out).then_some(self.remote),
            _ => {}
        }
        if let Some(to) = self.write_path_packet(now, out) {
            return Some(to);
        }
        if self.peer.is_some() {
            self.expire_messages(now);
        }
        // §15.9: the first stream's FIN goes last.
        let others_open = !self.streams.all_sends_done();
        self.streams.first_mut().send.hold_fin(others_open);
        let ty = self.packet_type();
        let probe = self.recovery.probes > 0;
        let in_flight = self.recovery.sent.bytes_in_flight();
        // §9.6: datagrams sized by time at the pacing rate, within what
        // the path carries.
        let rate = self.path.cc.pacing_rate(&self.path.rtt);
        let datagram = self.path.datagram_at(rate);
        let cwnd_open = in_flight + datagram as u64 <= self.path.cc.window();
        let have_data = self.peer.is_some() && self.streams_want_to_send();
        let have_eliciting = (ty != PacketType::Data && self.handshake_pending)
            || have_data
            || self.streams.has_control()
            || self.ping_pending;
        if cwnd_open && !have_data && self.state == State::Established {
            // Room in the window and nothing to fill it: rate samples taken
            // now measure the application, not the path (§9.4.3).
            self.path.delivery.on_app_limited(in_flight);
        }
        // §9.6: pace what the window allows; probes are not paced.
        let mut paced_open = true;
        if cwnd_open && have_eliciting && !probe {
            let mss = datagram as u64;
            self.timers.pacing = self.path.pacer.delay(now, mss, rate, mss);
            paced_open = self.timers.pacing.is_none();
        }
        let may_elicit = probe || (cwnd_open && paced_open);
        let want_eliciting = may_elicit && (have_eliciting || probe);
        if !want_eliciting && !self.acks.ack_due(now) {
            return None;
        }
        // §6.7: an unvalidated client gets at most three times what it sent.
        let mut max_len = datagram;
        if self.amplification_blocked() {
            return None;
        }
        if self.amplification_limited() {
            max_len = max_len.min(self.amplification_budget() as usize);
        }
        // §9.3, §9.7: the last probe of a probe timeout is small, so that
        // the black-hole detector learns whether small packets get through
        // where large ones do not.
        if probe && self.recovery.probes == 1 {
            if let Some(small) = self.path.mtu.small_probe_size() {
                max_len = max_len.min(small);
            }
        }
        // §9.7: a path MTU probe, when one is due and the window has room.
        let mtu_probe = if want_eliciting && !probe {
            self.mtu_probe_due(now, in_flight)
        } else {
            None
        };
        if let Some(size) = mtu_probe {
            max_len = size;
        }

        let pn = self.next_pn;
        self.next_pn += 1;
        self.begin_packet(ty, pn, out);
        let limit = max_len - self.trailer_len(ty);
        // §16.3: what a version-3 packet carries in clear is only the
        // handshake; nothing else is sent before there are keys.
        let clear_v3 = self.version == crate::wire::VERSION_3 && self.keys.is_none();
        let mut frames = SentFrames::default();
        let mut eliciting = false;
        let mut retransmitted = false;

        if self.acks.has_news() && !clear_v3 {
            if let Some(ack) = self.acks.frame(now) {
                Frame::Ack(ack).encode(out);
                self.acks.on_ack_sent();
            }
        }
        if ty != PacketType::Data {
            // Every INITIAL and ACCEPT carries the parameters (§6.2), so any
            // one of them that arrives completes the handshake; in version
            // 3 they travel inside its Noise messages (§16.3).
            if self.version != crate::wire::VERSION_3 {
                Frame::Handshake(self.local_params()).encode(out);
            }
            if self.version == crate::wire::VERSION_2 {
                Frame::StreamParams(self.local_stream_params()).encode(out);
            }
            if let (PacketType::Initial, Some(token)) = (ty, &self.retry_token) {
                Frame::Token(token).encode(out);
            }
            frames.handshake = true;
            self.handshake_pending = false;
            eliciting = true;
        }
        if let Some(size) = mtu_probe {
            // PING and PADDING only: a probe carries nothing that would
            // need resending when it is lost, as it may well be.
            Frame::Ping.encode(out);
            frames.ping = true;
            eliciting = true;
            self.ping_pending = false;
            self.path.mtu.on_probe_sent(pn, size);
            self.stats.sent.mtu_probes += 1;
        } else if want_eliciting {
            if self.peer.is_some() {
                eliciting |= self.write_stream_controls(now, limit, out, &mut frames);
                // §15.7: by priority, round robin within one.
                let datagram = self
                    .datagrams
                    .has_queued()
                    .then_some(self.datagrams.priority);
                let order: smallvec::SmallVec<[u64; 4]> =
                    if self.streams.map.len() == 1 && datagram.is_none() {
                        // One stream (every version-1 connection): no
                        // schedule to build per packet.
                        let only = self.streams.map.iter().next();
                        only.filter(|(_, s)| self.streams.sendable(s))
                            .map(|(&id, _)| id)
                            .into_iter()
                            .collect()
                    } else {
                        self.streams.schedule(datagram).into_iter().collect()
                    };
                for id in order {
                    if out.len() + MAX_STREAM_HEADER_LEN >= limit {
                        break;
                    }
                    let wrote = if id == u64::MAX {
                        self.write_datagrams(limit, out, &mut frames)
                    } else {
                        let wrote =
                            self.write_stream(id, limit, out, &mut frames, &mut retransmitted);
                        if wrote {
                            self.streams.last_served = id;
                        }
                        wrote
                    };
                    eliciting |= wrote;
                }
            }
            if !eliciting {
                Frame::Ping.encode(out);
                frames.ping = true;
                eliciting = true;
            }
            self.ping_pending = false;
            self.recovery.probes = self.recovery.probes.saturating_sub(1);
        }
        if (ty == PacketType::Initial || mtu_probe.is_some()) && out.len() < limit {
            // §6.2: INITIALs fill the datagram, proving the path carries
            // full-size datagrams and bounding amplification. §9.7: a probe
            // is exactly the size it tests.
            Frame::Padding(limit - out.len()).encode(out);
        }
        self.seal_and_count(now, ty, pn, out, Some(retransmitted));
        if retransmitted {
            self.stats.sent.packets_retransmitted += 1;
        }
        let in_flight = eliciting || ty == PacketType::Initial;
        if eliciting && !self.recovery.sent.has_eliciting_in_flight() {
            self.timers.ack_progress = now;
        }
        let delivery = self
            .path
            .delivery
            .on_sent(now, self.recovery.sent.bytes_in_flight());
        if in_flight {
            self.path.pacer.on_sent(out.len() as u64);
        }
        self.recovery.sent.on_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: out.len(),
                ack_eliciting: eliciting,
                in_flight,
                frames,
                delivery,
            },
        );
        self.trace_metrics(now);
        if eliciting {
            let idle = self.effective_idle_timeout();
            self.timers.on_eliciting_sent(now, idle);
            self.set_loss_timer();
        }
        Some(self.remote)
    }

    /// §9.7: the size of the path MTU probe to send now, if one is due:
    /// only once established, only while more is queued than one datagram
    /// of the size in use holds (a request-and-answer connection never
    /// probes), and only if the probe fits the congestion window.
    fn mtu_probe_due(&mut self, now: Instant, in_flight: u64) -> Option<usize> {
        let unsent = self.streams.unsent();
        if self.state != State::Established || unsent <= self.path.max_datagram() as u64 {
            return None;
        }
        let size = self.path.mtu.probe_size(now)?;
        (in_flight + size as u64 <= self.path.cc.window()).then_some(size)
    }

    /// CLOSING: the CLOSE frame, once per reply due (§6.6), in the packet
    /// type the handshake state calls for: an INITIAL (padded, like every
    /// INITIAL, §6.2), an ACCEPT, or DATA.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    pub(super) fn write_close(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let Some(close) = self.closer.take_due() else {
            return false;
        };
        let ty = self.packet_type();
        let pn = self.next_pn;
        self.begin_packet(ty, pn, out);
        Frame::Close(CloseFrame {
            kind: close.kind,
            code: close.code,
            reason: &close.reason,
        })
        .encode(out);
        if ty == PacketType::Initial {
            let limit = crate::config::MIN_DATAGRAM_SIZE - self.trailer_len(ty);
            if out.len() < limit {
                Frame::Padding(limit - out.len()).encode(out);
            }
        }
        // §6.7: a CLOSE is held to the anti-amplification budget like every
        // other packet; one that does not fit is not sent.
        let len = (out.len() + self.trailer_len(ty)) as u64;
        if self.amplification_limited() && len > self.amplification_budget() {
            out.clear();
            self.stats.sent.closes_suppressed += 1;
            return false;
        }
        self.next_pn += 1;
        self.seal_and_count(now, ty, pn, out, None);
        true
    }
}

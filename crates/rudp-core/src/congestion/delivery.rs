//! Delivery-rate estimation (PROTOCOL.md §9.4.3), after
//! draft-cheng-iccrg-delivery-rate-estimation: how many bytes the path
//! delivered per second, measured from acknowledgements.
//!
//! Each sent packet remembers how much had been delivered when it left.
//! When it is acknowledged, the bytes delivered since, divided by the longer
//! of the send and the acknowledgement intervals, is one rate sample. Using
//! the longer interval keeps a burst of acknowledgements (delayed or
//! aggregated ACKs) from looking like a faster path.

use std::time::{Duration, Instant};

/// What a packet records about the delivery state when it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketDelivery {
    /// Bytes delivered (acknowledged) before this packet was sent.
    delivered: u64,
    /// When `delivered` last grew, as of sending.
    delivered_time: Instant,
    /// Send time of the first packet of the current flight.
    first_sent_time: Instant,
    /// Sent while the application, not the network, limited the rate: a
    /// sample from it says little about the path's capacity.
    app_limited: bool,
}

/// One rate sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSample {
    /// Delivery rate measured over the sample's interval.
    pub bytes_per_sec: u64,
    /// Whether the application, not the network, limited it.
    pub app_limited: bool,
}

/// What one ACK frame told us, for the congestion controller.
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    /// Bytes delivered over the connection's life, including this ACK.
    pub delivered: u64,
    /// `delivered` as of the sending of the newest packet this ACK covered:
    /// once it passes the value at a round's start, a round trip is over.
    pub prior_delivered: u64,
    /// Bytes this ACK newly acknowledged.
    pub newly_acked: u64,
    /// Bytes still in flight after this ACK.
    pub bytes_in_flight: u64,
    /// The rate sample this ACK gave, if any (§9.4.3).
    pub rate: Option<RateSample>,
    /// The RTT sample this ACK gave, if any: only an ACK that newly
    /// acknowledges its largest packet, an ack-eliciting one, gives one
    /// (§9.1, RFC 9002 §5.1).
    pub rtt_sample: Option<Duration>,
}

/// The connection's delivery counters.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRate {
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Non-zero while app-limited: the `delivered` value at which the
    /// app-limited stretch will have left the network.
    app_limited_until: u64,
    /// The sample being built from the current ACK frame.
    current: Option<Building>,
}

#[derive(Debug, Clone, Copy)]
struct Building {
    prior_delivered: u64,
    prior_time: Instant,
    send_elapsed: Duration,
    ack_elapsed: Duration,
    app_limited: bool,
    newly_acked: u64,
}

impl DeliveryRate {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            app_limited_until: 0,
            current: None,
        }
    }

    /// A packet is being sent with `bytes_in_flight` already in flight.
    pub(crate) fn on_sent(&mut self, now: Instant, bytes_in_flight: u64) -> PacketDelivery {
        if bytes_in_flight == 0 {
            // A new flight after an idle period: intervals restart here.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        PacketDelivery {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited_until != 0,
        }
    }

    /// The sender had room to send but nothing to send.
    pub(crate) fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = (self.delivered + bytes_in_flight).max(1);
    }

    /// One newly acknowledged in-flight packet of `size` bytes.
    pub(crate) fn on_packet_acked(
        &mut self,
        now: Instant,
        sent: Instant,
        size: u64,
        p: &PacketDelivery,
    ) {
        self.delivered += size;
        self.delivered_time = now;
        let b = self.current.get_or_insert(Building {
            prior_delivered: p.delivered,
            prior_time: p.delivered_time,
            send_elapsed: Duration::ZERO,
            ack_elapsed: Duration::ZERO,
            app_limited: p.app_limited,
            newly_acked: 0,
        });
        b.newly_acked += size;
        // The sample is taken from the most recently sent packet acknowledged.
        if p.delivered >= b.prior_delivered {
            b.prior_delivered = p.delivered;
            b.prior_time = p.delivered_time;
            b.app_limited = p.app_limited;
            b.send_elapsed = sent.saturating_duration_since(p.first_sent_time);
            b.ack_elapsed = now.saturating_duration_since(p.delivered_time);
            self.first_sent_time = sent;
        }
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
    }

    /// Ends the ACK frame: the sample it gave, with its RTT sample if it
    /// took one. Intervals shorter than `min_rtt` are discarded, as they
    /// measure bursts, not the path.
    pub(crate) fn finish_ack(
        &mut self,
        min_rtt: Duration,
        bytes_in_flight: u64,
        rtt_sample: Option<Duration>,
    ) -> Option<AckSample> {
        let b = self.current.take()?;
        let interval = b.send_elapsed.max(b.ack_elapsed);
        let bytes = self.delivered - b.prior_delivered;
        let rate = (!interval.is_zero() && interval >= min_rtt).then(|| RateSample {
            bytes_per_sec: super::rate_of(bytes, interval),
            app_limited: b.app_limited,
        });
        Some(AckSample {
            delivered: self.delivered,
            prior_delivered: b.prior_delivered,
            newly_acked: b.newly_acked,
            bytes_in_flight,
            rate,
            rtt_sample,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_flow_measures_its_rate() {
        // One 1000-byte packet every millisecond, each acknowledged 10 ms
        // later: the path delivers 1 MB/s.
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut d = DeliveryRate::new(t0);
        let mut sent = Vec::new();
        let mut last = None;
        for i in 0..100u64 {
            // Acknowledge what was sent 10 ms ago, then send.
            if i >= 10 {
                let (t, p) = sent[(i - 10) as usize];
                d.on_packet_acked(ms(i), t, 1000, &p);
                last = d.finish_ack(Duration::from_millis(10), 10_000, None);
            }
            let in_flight = 1000 * (i.min(10));
            sent.push((ms(i), d.on_sent(ms(i), in_flight)));
        }
        let rate = last.and_then(|s| s.rate).expect("a sample");
        assert!(
            (950_000..=1_050_000).contains(&rate.bytes_per_sec),
            "{rate:?}"
        );
        assert!(!rate.app_limited);
    }

    #[test]
    fn samples_after_an_idle_sender_are_app_limited() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::new(t0);
        d.on_app_limited(0);
        let p = d.on_sent(t0, 0);
        let t1 = t0 + Duration::from_millis(10);
        d.on_packet_acked(t1, t0, 1000, &p);
        let s = d.finish_ack(Duration::from_millis(1), 0, None).unwrap();
        assert!(s.rate.unwrap().app_limited);
        assert_eq!(s.newly_acked, 1000);
        // Once that packet is delivered the app-limited stretch is over.
        let p = d.on_sent(t1, 0);
        d.on_packet_acked(t1 + Duration::from_millis(10), t1, 1000, &p);
        let s = d.finish_ack(Duration::from_millis(1), 0, None).unwrap();
        assert!(!s.rate.unwrap().app_limited);
    }
}

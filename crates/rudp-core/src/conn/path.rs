//! What a connection knows about its network path (PROTOCOL.md §9, §6.7):
//! the RTT estimate, the congestion controller and its delivery-rate
//! samples, the pacer, the datagram size the path carries (§9.7), and the
//! anti-amplification budget of an unvalidated address. One value, so that a connection that
//! moves to a new path (the paths issue) can start a fresh one and keep
//! the old until the new is proven.

use super::mtu::{MtuDiscovery, ETHERNET_PAYLOAD};
use super::pacing::Pacer;
use crate::config::Config;
use crate::congestion::delivery::DeliveryRate;
use crate::congestion::Controller;
use crate::rtt::RttEstimator;
use std::time::{Duration, Instant};

/// How long one datagram may hold the bottleneck at the pacing rate
/// (§9.6): what a small message of another stream waits behind at most,
/// the way Linux sizes TSO bursts to about a millisecond.
pub(super) const DATAGRAM_TIME: Duration = Duration::from_millis(1);

/// What an unvalidated address sent us and what we sent it (§6.7): we may
/// send at most three times what we received.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Amplification {
    /// Bytes received from the address.
    pub(super) received: u64,
    /// Bytes sent to it.
    pub(super) sent: u64,
}

impl Amplification {
    /// Bytes we may still send to the address.
    pub(super) fn budget(&self) -> u64 {
        (self.received * super::AMPLIFICATION_FACTOR).saturating_sub(self.sent)
    }
}

/// One network path's state.
#[derive(Debug)]
pub(super) struct Path {
    /// Round-trip time estimate (§9.1).
    pub(super) rtt: RttEstimator,
    /// Congestion controller (§9.4).
    pub(super) cc: Box<dyn Controller>,
    /// Which controller `cc` is, for statistics.
    pub(super) congestion_name: &'static str,
    /// Delivery-rate samples for the controller (§9.4.3).
    pub(super) delivery: DeliveryRate,
    /// Spreads sends over the RTT (§9.6).
    pub(super) pacer: Pacer,
    /// The datagram size it carries, and the search for a larger one
    /// (§9.7).
    pub(super) mtu: MtuDiscovery,
    /// Server, until the client's address is validated (§6.7).
    pub(super) amplification: Amplification,
}

impl Path {
    pub(super) fn new(now: Instant, config: &Config) -> Self {
        // Every path starts at 1200 bytes (§3.0); discovery raises it.
        let mss = crate::config::MIN_DATAGRAM_SIZE as u64;
        Self {
            rtt: RttEstimator::new(config.initial_rtt),
            cc: config.congestion.build(mss),
            congestion_name: config.congestion.name(),
            delivery: DeliveryRate::new(now),
            pacer: Pacer::new(now, mss),
            mtu: MtuDiscovery::new(),
            amplification: Amplification::default(),
        }
    }

    /// The largest datagram the path carries (§9.7).
    pub(super) fn max_datagram(&self) -> usize {
        self.mtu.current()
    }

    /// The largest datagram to send now (§9.6): what the path carries, or,
    /// if the pacing rate sends less than that in [`DATAGRAM_TIME`], the
    /// largest 1472 × 2^k bytes it does send in that time (at least 1472, a
    /// 1500-byte Ethernet frame, where the path carries that). A fast path
    /// (loopback) keeps its large datagrams; at 50 Mbit/s they are 5,888
    /// bytes, so no datagram holds the bottleneck for more than about a
    /// millisecond. Steps of a power of two change the size seldom as the
    /// rate moves, so runs of equal datagrams still leave as one GSO send.
    /// `pacing_rate` is the controller's, in bytes per second.
    pub(super) fn datagram_at(&self, pacing_rate: u64) -> usize {
        let carried = self.mtu.current();
        let rate = u128::from(pacing_rate);
        let by_time = rate * DATAGRAM_TIME.as_micros() / 1_000_000;
        let by_time = usize::try_from(by_time).unwrap_or(usize::MAX);
        if by_time >= carried || carried <= ETHERNET_PAYLOAD {
            return carried;
        }
        let mut size = ETHERNET_PAYLOAD;
        while size * 2 <= by_time {
            size *= 2;
        }
        size
    }
}

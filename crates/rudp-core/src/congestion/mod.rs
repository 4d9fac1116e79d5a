//! Congestion control (PROTOCOL.md §9.4): a small trait and three
//! controllers behind it.
//!
//! - [`NewReno`] (RFC 9002 §7): halves its window on each loss.
//! - [`Cubic`] (RFC 9438): the Linux default; grows back to the window of
//!   the last loss along a cubic curve and cuts by 30% on loss.
//! - [`Bbr`] (the default): a BBR-style controller that sends at the
//!   delivery rate it measures, and does not treat random loss as
//!   congestion (§9.4.3 gives its rules and trade-offs).
//!
//! Congestion control is local policy: the peer cannot see which controller
//! runs, so new ones can be added without a protocol change. To bring your
//! own, implement [`Controller`] and a [`ControllerFactory`] that makes it,
//! and put the factory in [`crate::Config::congestion`].

mod bbr;
mod cubic;
pub(crate) mod delivery;
mod inflight;
mod new_reno;

pub use delivery::{AckSample, RateSample};

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use new_reno::NewReno;

use crate::rtt::RttEstimator;
use std::fmt::Debug;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Which controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 9002 §7: slow start, congestion avoidance, halve on loss.
    NewReno,
    /// RFC 9438: cubic window growth, multiplicative decrease by 0.7.
    Cubic,
    /// Rate-based, loss-tolerant up to a loss ceiling (§9.4.3).
    #[default]
    Bbr,
}

/// Makes each new connection's congestion controller. [`Algorithm`] is the
/// factory of the built-in ones; a type of your own makes yours.
pub trait ControllerFactory: Debug + Send + Sync {
    /// A controller for a connection whose datagrams are at most
    /// `max_datagram_size` bytes.
    fn build(&self, max_datagram_size: u64) -> Box<dyn Controller>;
    /// A short name for statistics and traces (`Stats::congestion`).
    fn name(&self) -> &'static str;
}

impl Algorithm {
    /// The name used on the command line and in statistics.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::NewReno => "newreno",
            Algorithm::Cubic => "cubic",
            Algorithm::Bbr => "bbr",
        }
    }
}

impl ControllerFactory for Algorithm {
    fn build(&self, mss: u64) -> Box<dyn Controller> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(mss)),
            Algorithm::Cubic => Box::new(Cubic::new(mss)),
            Algorithm::Bbr => Box::new(Bbr::new(mss)),
        }
    }

    fn name(&self) -> &'static str {
        Algorithm::name(*self)
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "newreno" | "reno" => Ok(Algorithm::NewReno),
            "cubic" => Ok(Algorithm::Cubic),
            "bbr" => Ok(Algorithm::Bbr),
            _ => Err(format!(
                "unknown congestion controller '{s}': use bbr, cubic or newreno"
            )),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a congestion controller is told and asked (PROTOCOL.md §9.4). The
/// connection calls
/// `on_ack` for each newly acknowledged in-flight packet, then `on_ack_event`
/// once for the whole ACK frame, then `on_congestion_event` if the ACK
/// revealed losses.
pub trait Controller: Debug + Send {
    /// Bytes of a newly acknowledged in-flight packet sent at `sent`.
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, rtt: &RttEstimator);
    /// One ACK frame was processed: the delivery-rate sample it gave
    /// (§9.4.3), for controllers that model the path's rate.
    fn on_ack_event(&mut self, _now: Instant, _sample: &AckSample, _rtt: &RttEstimator) {}
    /// Packets were declared lost: `lost_bytes` in all, the newest of them
    /// sent at `sent`. `persistent` reports persistent congestion (RFC 9002
    /// §7.6).
    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        lost_bytes: u64,
        persistent: bool,
    );
    /// Bytes that may be in flight.
    fn window(&self) -> u64;
    /// Path MTU discovery (PROTOCOL.md §9.7) changed the largest datagram
    /// to `mss` bytes. A controller whose minimum window is counted in
    /// datagrams must keep room for at least one: the connection sends only
    /// whole datagrams that fit the window.
    fn set_max_datagram_size(&mut self, _mss: u64) {}
    /// Bytes per second to pace sends at (§9.6). Window-based controllers
    /// spread their window over the smoothed RTT, with 25% headroom so that
    /// pacing never is what limits them (RFC 9002 §7.7).
    fn pacing_rate(&self, rtt: &RttEstimator) -> u64 {
        rate_of(self.window() * 5 / 4, rtt.smoothed())
    }
}

/// Bytes per second for `bytes` spread over `over`.
pub fn rate_of(bytes: u64, over: Duration) -> u64 {
    let nanos = over.as_nanos().max(1);
    (bytes as u128 * 1_000_000_000 / nanos).min(u64::MAX as u128) as u64
}

/// RFC 9002 §7.2: min(10 * mss, max(14720, 2 * mss)).
pub fn initial_window(mss: u64) -> u64 {
    (10 * mss).min(14_720.max(2 * mss))
}

/// RFC 9002 §7.2: the window never shrinks below two datagrams.
pub fn minimum_window(mss: u64) -> u64 {
    2 * mss
}

/// RFC 9002 §7.6.1: the span of losses that signals persistent congestion.
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// The duration of persistent congestion for the given PTO (without backoff).
pub fn persistent_congestion_duration(pto: Duration) -> Duration {
    pto * PERSISTENT_CONGESTION_THRESHOLD
}

//! # rudp-core: the sans-IO protocol core of rudp
//!
//! Everything rudp decides, and nothing it does: this crate turns received
//! datagrams and the passing of time into datagrams to send, deadlines and
//! application events. It never opens a socket, reads a clock or spawns a
//! task; it has no dependency that could (no tokio, no socket crate). The
//! caller passes `now` into every call. That is what lets the tests run
//! thousands of lossy connections a second in virtual time, and what lets
//! you drive rudp from any event loop. The `rudp` crate is the tokio driver.
//!
//! PROTOCOL.md in the repository specifies every rule implemented here.
//!
//! ## Layout
//!
//! Lower layers never depend on upper ones:
//!
//! - [`wire`]: bytes on the wire: header, frames, checksum (PROTOCOL.md §3–§5).
//! - `ranges`: the range set behind acknowledgements and reassembly.
//! - [`conn`]: one connection's state machine: handshake, acks, RTT, loss
//!   detection, retransmission, flow and congestion control (§6–§9).
//! - [`endpoint`]: many connections behind one socket: routing by
//!   connection ID, accepting, version negotiation (§10).
//! - [`psk`]: optional pre-shared-key sealing of packets (§3.7).
//! - [`noise`], [`cipher`]: version 3's Noise handshake and the packet
//!   cipher it negotiates (§16).
//! - `token`: stateless address-validation tokens for RETRY (§6.8).
//! - [`capture`]: one's own captures in clear, from a key log (§16.7).
//! - [`config`], [`error`]: settings and failure reasons.
//! - [`text`]: peer-supplied text made safe to print.
//! - `impair`, `sim` (feature `sim`): a seeded, I/O-free model of a bad
//!   network, and two endpoints joined by impaired links in virtual time.
//!
//! ## Features
//!
//! - `serde`: `Serialize` on statistics and summaries.
//! - `fuzzing`: the codec (`wire::frame`, `wire::packet`) and the modules
//!   named here without a link, public for the fuzz targets and the core's
//!   own tests. Not an API: no semver.
//! - `trace`: qlog-style JSON trace events from a connection (docs/trace.md).
//! - `sim`: the impairment model and the simulator.
//! - `log`: debug logs (state changes, losses, timers) through `tracing`.
//!
//! With no feature, the dependency tree is the crypto, checksum and random
//! number crates the protocol needs, and nothing else.

#![warn(missing_docs, unreachable_pub)]

/// A module that is not part of the API: private, except with the
/// `fuzzing` feature, which the fuzz targets (fuzz/) and the core's own
/// integration tests turn on to reach the codec and the pieces they
/// check one by one. Applications find what they need re-exported where
/// it belongs; nothing here follows semver.
macro_rules! internal_mod {
    ($name:ident) => {
        #[cfg(feature = "fuzzing")]
        pub mod $name;
        #[cfg(not(feature = "fuzzing"))]
        #[allow(unreachable_pub)]
        pub(crate) mod $name;
    };
}

/// A debug log line through `tracing`, with the `log` feature; nothing
/// without it.
macro_rules! debug_log {
    ($($arg:tt)*) => {
        #[cfg(feature = "log")]
        tracing::debug!($($arg)*);
    };
}

/// Getters on a settings struct and chainable setters on its builder (a
/// newtype around it), one pair per field, from one list: the names, types
/// and documentation cannot drift apart.
macro_rules! settings {
    ($settings:ty, $builder:ty, { $( $(#[$doc:meta])* $name:ident: $ty:ty, )* }) => {
        impl $settings {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> $ty {
                    self.$name.clone()
                }
            )*
        }

        impl $builder {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> Self {
                    self.0.$name = value;
                    self
                }
            )*
        }
    };
}

/// Defines a struct of `u64` counters with an `accumulate` that adds
/// every field of another: totals over many connections or endpoints
/// cannot forget a field, because the field list is written once.
#[macro_export]
#[doc(hidden)]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident: u64, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u64, )*
        }

        impl $name {
            /// Adds every counter of `other` to this one's.
            pub fn accumulate(&mut self, other: &Self) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

pub mod capture;
pub mod cipher;
pub mod config;
pub mod congestion;
pub mod conn;
pub mod endpoint;
pub mod error;
#[cfg(feature = "sim")]
pub mod impair;
pub mod noise;
pub mod psk;
internal_mod!(ranges);
internal_mod!(rtt);
#[cfg(feature = "sim")]
pub mod sim;
pub mod text;
internal_mod!(token);
pub mod wire;

pub use config::Config;
pub use endpoint::{Endpoint, EndpointConfig};
pub use error::ConnectionError;

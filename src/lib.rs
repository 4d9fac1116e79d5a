//! # rudp: reliable, ordered messages over UDP
//!
//! rudp turns UDP's lossy, duplicating, reordering datagrams into a
//! connection that delivers every message exactly once, in order, with its
//! boundaries kept, or fails with a clear error. PROTOCOL.md in the
//! repository specifies the wire format and every rule this crate follows.
//!
//! ## Layout
//!
//! Lower layers never depend on upper ones:
//!
//! - [`wire`]: bytes on the wire: header, frames, checksum (PROTOCOL.md §3–§5).
//! - [`ranges`]: the range set behind acknowledgements and reassembly.
//! - [`conn`]: one connection's state machine, sans-IO: handshake, acks, RTT,
//!   loss detection, retransmission, flow and congestion control (§6–§9).
//! - [`endpoint`]: many connections behind one socket, sans-IO: routing by
//!   connection ID, accepting, version negotiation (§10).
//! - [`impair`]: a seeded, I/O-free model of a bad network: loss, bursts,
//!   duplication, reordering, delay, jitter, corruption, rate limits.
//! - [`sim`]: two endpoints joined by impaired links, in virtual time: how
//!   the tests run thousands of lossy connections a second.
//! - [`config`], [`error`]: settings and failure reasons.

pub mod cli;
pub mod config;
pub mod conn;
pub mod demo;
pub mod endpoint;
pub mod error;
pub mod impair;
pub mod io;
pub mod month;
pub mod proxy;
pub mod ranges;
pub mod sim;
pub mod wire;

pub use config::Config;
pub use error::ConnectionError;
pub use io::{Connection, Endpoint, Error};

//! The applications behind the `rudp` command, built on the `rudp` and
//! `rudp-core` libraries' public APIs only: the month service, file
//! transfer, the fault-injecting proxy, the demo, trace plots and reports.
//! `src/main.rs` parses the command line with [`cli`] and runs one of them.
//!
//! This crate is not a library for other programs (use `rudp` and
//! `rudp-core`); it is a library so that the integration tests under
//! tests/ can drive the applications in-process.

use std::time::Duration;

/// Longest a command (`client`, `send`, `recv`) stays after its last close
/// to re-acknowledge a peer's FIN whose ACK was lost (PROTOCOL.md §6.5,
/// `rudp::Endpoint::linger`): the process's policy, not the library's.
pub const LINGER: Duration = Duration::from_secs(2);

pub mod cli;
pub mod decrypt;
pub mod demo;
pub mod demo_streams;
pub mod demo_wire;
pub mod keylog;
pub mod keys;
pub mod month;
pub mod plot;
pub mod proxy;
pub mod report;
pub mod secure_args;
pub mod transfer;
pub mod units;

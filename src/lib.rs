//! The applications behind the `rudp` command, built on the `rudp` and
//! `rudp-core` libraries' public APIs only: the month service, file
//! transfer, the fault-injecting proxy, the demo, trace plots and reports.
//! `src/main.rs` parses the command line with [`cli`] and runs one of them.
//!
//! This crate is not a library for other programs (use `rudp` and
//! `rudp-core`); it is a library so that the integration tests under
//! tests/ can drive the applications in-process.

pub mod cli;
pub mod demo;
pub mod month;
pub mod plot;
pub mod proxy;
pub mod report;
pub mod transfer;
pub mod units;

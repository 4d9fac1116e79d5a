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
//! - [`psk`]: optional pre-shared-key sealing of packets (§3.7).
//! - [`token`]: stateless address-validation tokens for RETRY (§6.8).
//! - [`config`], [`error`]: settings and failure reasons.
//! - [`text`]: peer-supplied text made safe to print.
//! - [`io`]: the tokio layer: [`Endpoint`] (a socket and its driver task)
//!   and [`Connection`] (send, receive, close, statistics).
//! - [`month`], [`transfer`], [`proxy`], [`demo`], [`cli`]: the applications, built on the
//!   public API only.
//!
//! docs/architecture.md follows one datagram from the socket to the
//! application and back.
//!
//! ## Example
//!
//! A server that answers every message in upper case, and a client:
//!
//! ```
//! use bytes::Bytes;
//! use rudp::{endpoint::EndpointConfig, Endpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rudp::Error> {
//! let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), EndpointConfig::default()).await?;
//! let addr = server.local_addr();
//! tokio::spawn(async move {
//!     while let Some(conn) = server.accept().await {
//!         tokio::spawn(async move {
//!             while let Ok(Some(msg)) = conn.recv().await {
//!                 let _ = conn.send(Bytes::from(msg.to_ascii_uppercase())).await;
//!             }
//!             let _ = conn.close().await;
//!         });
//!     }
//! });
//!
//! let client = Endpoint::client(addr, EndpointConfig::default()).await?;
//! let conn = client.connect(addr).await?;
//! conn.send(Bytes::from_static(b"hello")).await?;
//! assert_eq!(conn.recv().await?.as_deref(), Some(&b"HELLO"[..]));
//! conn.close().await?; // Both sides have closed: nothing was lost.
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod config;
pub mod conn;
pub mod demo;
pub mod endpoint;
pub mod error;
pub mod impair;
pub mod io;
pub mod month;
pub mod plot;
pub mod proxy;
pub mod psk;
pub mod ranges;
pub mod report;
pub mod sim;
pub mod text;
pub mod token;
pub mod transfer;
pub mod wire;

pub use config::Config;
pub use error::ConnectionError;
pub use io::{Connection, Endpoint, Error};

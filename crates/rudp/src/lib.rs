//! # rudp: reliable, ordered messages over UDP, for tokio programs
//!
//! rudp turns UDP's lossy, duplicating, reordering datagrams into a
//! connection that delivers every message exactly once, in order, with its
//! boundaries kept, or fails with a clear error. PROTOCOL.md in the
//! repository specifies the wire format and every rule.
//!
//! This crate is the tokio driver: an [`Endpoint`] owns a UDP socket and a
//! task that feeds it to the sans-IO state machines of [`rudp_core`]
//! (re-exported as [`proto`]); a [`Connection`] is the application's
//! handle on one connection. docs/architecture.md follows one datagram from
//! the socket to the application and back.
//!
//! ## Example
//!
//! A server that answers every message in upper case, and a client:
//!
//! ```
//! use bytes::Bytes;
//! use rudp::{Endpoint, EndpointConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rudp::Error> {
//! let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), EndpointConfig::default())?;
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
//! let client = Endpoint::client(addr, EndpointConfig::default())?;
//! let conn = client.connect(addr).await?;
//! conn.send(Bytes::from_static(b"hello")).await?;
//! assert_eq!(conn.recv().await?.as_deref(), Some(&b"HELLO"[..]));
//! conn.close().await?; // Both sides have closed: nothing was lost.
//! # Ok(())
//! # }
//! ```
//!
//! ## The driver
//!
//! One driver task per [`Endpoint`] owns the socket and the sans-IO
//! [`proto::Endpoint`], which sits behind a mutex shared with the handles.
//! The driver does three things in a loop: hand received datagrams and
//! expired timers to the state machine, send what it asks to send, and wake
//! the application tasks its events concern. Application calls (`send`,
//! `recv`, `close`) lock the state briefly, act on their connection, and
//! wake the driver. So retransmissions and acknowledgements happen while
//! the application is busy elsewhere.
//!
//! Lock discipline: the mutex is never held across an `.await` or a
//! system call. A server that wants every core runs one endpoint per core
//! on sockets sharing a port ([`Endpoint::server_on`], `SO_REUSEPORT`):
//! the endpoints share nothing.

#![warn(missing_docs, unreachable_pub)]

mod connection;
mod endpoint;
mod error;
mod shared;
mod steering;
mod stream;
#[cfg(feature = "trace")]
mod trace_file;
mod udp;

pub use connection::{Connection, MessageSink, Messages};
pub use endpoint::{bind_udp, Endpoint, LockContention, PortSharing, SOCKET_BUFFER};
pub use error::{Error, Secs};
pub use steering::{steer_by_server_id, MAX_STEERED_SOCKETS};
pub use stream::{Stream, StreamMessages, StreamSink};
#[cfg(feature = "trace")]
pub use trace_file::{TraceLevel, METRICS_INTERVAL_MS};

/// The sans-IO core this crate drives: wire format, state machines,
/// configuration. Everything a program needs from it is also re-exported
/// at the top of this crate.
pub use rudp_core as proto;
pub use rudp_core::cipher::PacketCipher;
pub use rudp_core::config::{Config, ConfigError};
pub use rudp_core::congestion::Algorithm;
pub use rudp_core::conn::{Delivery, Received, Reliability, Stats, StreamId, StreamOptions};
pub use rudp_core::endpoint::{EndpointConfig, EndpointStats, RetryPolicy};
pub use rudp_core::error::{ConnectionError, TransportCode, VarInt, VarIntBoundsExceeded};
pub use rudp_core::noise::{
    AuthorizedKeys, ClientKeyPolicy, KeyLog, Keypair, PinnedKey, PublicKey, Security,
    ServerKeyVerifier, TransportKeys,
};
pub use rudp_core::psk::Psk;

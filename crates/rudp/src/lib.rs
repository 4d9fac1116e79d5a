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
//! ## Authenticated and encrypted (protocol version 3)
//!
//! The configurations above speak clear version 2, as `Config::default()`
//! does: a library cannot guess how its caller learns keys. Version 3
//! (PROTOCOL.md §16) authenticates the server (and, if asked, the client)
//! through a Noise IK handshake and encrypts every packet after it, with
//! forward secrecy; the command-line tools speak it by default. The server
//! needs its static key pair, the client a way to check the server's key:
//! [`PinnedKey`], or any [`ServerKeyVerifier`] (the tools' `known_hosts`
//! is one). [`Connection::peer_key`] says who is at the other end.
//!
//! ```
//! use bytes::Bytes;
//! use rudp::{Config, Endpoint, EndpointConfig, Keypair, PinnedKey, Security};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a real server: read it from a file made by `rudp keygen`.
//! let server_key = Keypair::generate(rand::random());
//! let server_public = server_key.public();
//! let server_config = Config::builder()
//!     .version(3)
//!     .security(Security { identity: Some(server_key), ..Security::default() })
//!     .build()?;
//! let server = Endpoint::server("127.0.0.1:0".parse()?, EndpointConfig::new(server_config))?;
//! let addr = server.local_addr();
//! tokio::spawn(async move {
//!     while let Some(conn) = server.accept().await {
//!         let _ = conn.send(Bytes::from_static(b"hello, whoever you are")).await;
//!         let _ = conn.close().await;
//!     }
//! });
//!
//! let client_config = Config::builder()
//!     .version(3)
//!     .security(Security {
//!         verifier: Some(Arc::new(PinnedKey(server_public))),
//!         ..Security::default()
//!     })
//!     .build()?;
//! let client = Endpoint::client(addr, EndpointConfig::new(client_config))?;
//! let conn = client.connect(addr).await?;
//! assert_eq!(conn.peer_key(), Some(server_public));
//! assert!(conn.recv().await?.is_some());
//! conn.close().await?;
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

// docs/streams.md, the streams guide: its examples are compiled and run
// with the doc tests, so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/streams.md")]
struct StreamsGuide;

/// README.md's snippets, compiled with the doctests so that they cannot
/// drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct Readme;

mod connection;
mod endpoint;
mod error;
mod shared;
mod steering;
mod stream;
#[cfg(feature = "trace")]
mod trace_file;
mod udp;

pub use connection::Connection;
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
pub use rudp_core::config::{Config, ConfigBuilder, ConfigError};
pub use rudp_core::congestion::Algorithm;
pub use rudp_core::conn::stats::{
    BufferStats, MigrationStats, PathStats, ReceivedStats, SentStats, StreamStats,
};
pub use rudp_core::conn::{
    Delivery, Received, Reliability, Stats, StreamId, StreamInfo, StreamOptions,
};
pub use rudp_core::endpoint::{EndpointConfig, EndpointConfigBuilder, EndpointStats, RetryPolicy};
pub use rudp_core::error::{ConnectionError, TransportCode, VarInt, VarIntBoundsExceeded};
pub use rudp_core::noise::{
    AuthorizedKeys, ClientKeyPolicy, KeyLog, Keypair, PinnedKey, PublicKey, Security,
    ServerKeyVerifier, TransportKeys,
};
pub use rudp_core::psk::Psk;

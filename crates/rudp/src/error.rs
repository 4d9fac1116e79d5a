//! Errors of the tokio API, worded for the person who has to act on them.

use rudp_core::error::ConnectionError;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// What went wrong with an endpoint or connection.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake got no answer within the idle timeout.
    #[error("no answer from {addr} after {}: is the server running?", Secs(*after))]
    NoAnswer {
        /// The server's address.
        addr: SocketAddr,
        /// How long this side waited (the idle timeout).
        after: Duration,
    },
    /// The handshake got no answer, and this side seals its packets with a
    /// pre-shared key: a server with another key drops them unanswered.
    #[error(
        "no answer from {addr} after {}: is the server running, and does it use the same pre-shared key, if any?",
        Secs(*after)
    )]
    NoAnswerKeyed {
        /// The server's address.
        addr: SocketAddr,
        /// How long this side waited (the idle timeout).
        after: Duration,
    },
    /// The handshake got no answer, and this side speaks version 3: the
    /// server is down or unreachable, or it is not the server expected.
    #[error(
        "no answer from {addr} after {}: is the server running? (If it is, it may not be the server whose key this client expects.)",
        Secs(*after)
    )]
    NoAnswerSecure {
        /// The server's address.
        addr: SocketAddr,
        /// How long this side waited (the idle timeout).
        after: Duration,
    },
    /// The connection was established, then failed.
    #[error("connection to {addr} failed: {source}")]
    Connection {
        /// The peer's address.
        addr: SocketAddr,
        /// Why it failed.
        #[source]
        source: ConnectionError,
    },
    /// The message is larger than the peer accepts.
    #[error("message of {len} bytes exceeds the peer's limit of {max} bytes")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The largest message the peer accepts.
        max: usize,
    },
    /// The connection was closed by this side (`close` or `abort` was called).
    #[error("the connection is closed")]
    Closed,
    /// The endpoint was shut down.
    #[error("the endpoint is shut down")]
    EndpointClosed,
    /// The settings cannot work together.
    #[error(transparent)]
    Config(#[from] rudp_core::config::ConfigError),
    /// Streams, partial reliability and datagrams need protocol version
    /// 2, which the peer did not offer (PROTOCOL.md §15.1).
    #[error("the peer speaks protocol version 1: no streams, expiring messages or datagrams")]
    Unsupported,
    /// The peer speaks version 2 or 3 but accepts no datagrams: it
    /// announced a largest datagram of 0 (PROTOCOL.md §15.6), as the month
    /// server does.
    #[error("the peer accepts no datagrams")]
    DatagramsRefused,
    /// The first stream cannot be reset or stopped (PROTOCOL.md §15.8.6):
    /// it ends with the connection.
    #[error("the first stream cannot be reset or stopped: close or abort the connection instead")]
    FirstStream,
    /// No such stream: neither side ever opened it. (A stream that is over
    /// and forgotten reads as finished, PROTOCOL.md §15.2.)
    #[error("no such stream")]
    UnknownStream,
    /// The stream was finished or reset: nothing more can be sent on it.
    #[error("the stream was finished or reset")]
    StreamFinished,
    /// The peer reset the stream; what it had not delivered is lost.
    #[error("the peer reset the stream (code {code})")]
    StreamReset {
        /// The peer application's code.
        code: u64,
    },
    /// The peer asked us to stop sending on the stream, which was reset.
    #[error("the peer stopped the stream (code {code})")]
    StreamStopped {
        /// The peer application's code.
        code: u64,
    },
    /// A datagram larger than the path and the peer allow now.
    #[error("datagram of {len} bytes exceeds the {max} bytes the path and peer allow")]
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
        /// The largest payload that fits now.
        max: usize,
    },
    /// `start_send` on a [`crate::StreamSink`] without a successful
    /// `poll_ready` first.
    #[error("the sink was not ready: call poll_ready first")]
    SinkNotReady,
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Wraps a core connection error for the connection to `addr`.
    pub(crate) fn from_connection(addr: SocketAddr, established: bool, e: ConnectionError) -> Self {
        match e {
            ConnectionError::TimedOut(after) if !established => Error::NoAnswer { addr, after },
            source => Error::Connection { addr, source },
        }
    }
}

/// Formats a duration the way people say it: "10 s", "1.5 s", "250 ms"
/// (as the error messages do).
#[derive(Debug, Clone, Copy)]
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_secs(1) {
            write!(f, "{} ms", d.as_millis())
        } else if d.subsec_millis() == 0 {
            write!(f, "{} s", d.as_secs())
        } else {
            write!(f, "{:.1} s", d.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_answer_reads_well() {
        let e = Error::NoAnswer {
            addr: "127.0.0.1:8091".parse().unwrap(),
            after: Duration::from_secs(10),
        };
        assert_eq!(
            e.to_string(),
            "no answer from 127.0.0.1:8091 after 10 s: is the server running?"
        );
        assert_eq!(Secs(Duration::from_millis(1500)).to_string(), "1.5 s");
        assert_eq!(Secs(Duration::from_millis(250)).to_string(), "250 ms");
    }
}

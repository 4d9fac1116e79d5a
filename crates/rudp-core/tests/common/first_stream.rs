//! The first stream as version 1 sees it (PROTOCOL.md §8.1): the calls
//! every stream takes, with [`StreamId::FIRST`], shortened for tests that
//! exchange messages on it and nothing else.

use bytes::Bytes;
use rudp_core::conn::{Connection, Received, Reliability, SendError, StreamId};
use std::time::Instant;

/// Version 1's view of a connection: one stream of reliable messages.
pub trait FirstStream {
    /// Queues `msg` on the first stream, reliably.
    fn send(&mut self, msg: Bytes) -> Result<(), SendError>;
    /// The next whole message on the first stream; skips are stepped over.
    fn recv(&mut self) -> Option<Bytes>;
    /// Whether the peer finished the first stream and all of it was read.
    fn is_recv_finished(&self) -> bool;
}

impl FirstStream for Connection {
    fn send(&mut self, msg: Bytes) -> Result<(), SendError> {
        // A reliable message has no lifetime, so the time is not read.
        self.send_on(Instant::now(), StreamId::FIRST, msg, Reliability::Reliable)
    }

    fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.recv_on(StreamId::FIRST).ok()?? {
                Received::Message(m) => return Some(m),
                _ => continue,
            }
        }
    }

    fn is_recv_finished(&self) -> bool {
        self.is_stream_finished(StreamId::FIRST)
    }
}

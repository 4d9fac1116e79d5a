//! [`Connection`]: the application's handle on one connection. It hands
//! out [`crate::Stream`]s (stream.rs); `send` and `recv` are shorthands
//! for its first stream's.

use crate::error::Error;
use crate::shared::{ConnSlot, Shared, State};
use bytes::Bytes;
use rudp_core::conn::Stats;
use rudp_core::endpoint::ConnectionHandle;
use rudp_core::error::{ConnectionError, VarInt};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How a client's packets are protected: what a server that stays silent
/// may be telling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyed {
    /// In clear.
    No,
    /// Sealed with a pre-shared key, which a server with another drops.
    Psk,
    /// Version 3: a server that holds another key than the one expected
    /// answers with its own; silence is a server down, or one unreachable.
    Noise,
}

/// One rudp connection: ordered, reliable messages to one peer.
///
/// Cloning gives another handle to the same connection, so one task can
/// send while another receives. When the last handle is dropped without
/// `close` or `abort`, the connection is closed gracefully in the
/// background: what was sent is still delivered.
///
/// A connection is not itself a stream: it hands out [`crate::Stream`]s,
/// its first ([`Self::stream`]) and those either side opens. [`Self::send`]
/// and [`Self::recv`] are shorthands for the first stream's, which is all
/// a version-1 peer has. Each async method has a `poll_*` primitive under
/// it, for code that writes its own futures.
#[derive(Debug)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: ConnectionHandle,
    remote: SocketAddr,
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        Connection::new(self.shared.clone(), self.handle, self.remote)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let Some(slot) = st.slots.get_mut(&self.handle) else {
            return;
        };
        slot.handles -= 1;
        if slot.handles == 0 {
            if slot.drained {
                st.slots.remove(&self.handle);
            } else {
                st.ep.with_connection(self.handle, |c| c.close());
            }
        }
        drop(st);
        self.shared.wake_driver.notify_one();
    }
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>, handle: ConnectionHandle, remote: SocketAddr) -> Self {
        if let Some(slot) = shared.lock().slots.get_mut(&handle) {
            slot.handles += 1;
        }
        Self::counted(shared, handle, remote)
    }

    /// A handle whose slot already counts it: `connect` counts it in the
    /// same critical section that makes the slot, so a connection that
    /// fails at once (a refused server key) cannot be drained and
    /// forgotten before the handle exists, losing its reason.
    pub(crate) fn counted(
        shared: Arc<Shared>,
        handle: ConnectionHandle,
        remote: SocketAddr,
    ) -> Self {
        Self {
            shared,
            handle,
            remote,
        }
    }

    /// The peer's address now. It changes when the peer moves (a NAT
    /// rebinding, a new network) and proves it receives at the new address
    /// (PROTOCOL.md §6.9); once the connection is gone, the last one.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared
            .lock()
            .ep
            .remote(self.handle)
            .unwrap_or(self.remote)
    }

    /// The peer's static public key, authenticated by the version-3
    /// handshake (PROTOCOL.md §16): who is at the other end. `None` for a
    /// clear connection (versions 1 and 2), or once the connection is
    /// gone.
    pub fn peer_key(&self) -> Option<crate::PublicKey> {
        self.shared
            .lock()
            .ep
            .connection(self.handle)
            .and_then(|c| c.peer_key())
    }

    /// The cipher that seals a version-3 connection's packets, as its
    /// handshake negotiated it (PROTOCOL.md §16.5). `None` for a clear
    /// connection, before the keys are made, or once the connection is
    /// gone.
    pub fn packet_cipher(&self) -> Option<crate::PacketCipher> {
        self.shared
            .lock()
            .ep
            .connection(self.handle)
            .and_then(|c| c.packet_cipher())
    }

    /// The local address of the endpoint the connection belongs to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Runs `f` on the connection's slot under the lock. Without a slot
    /// (which `Drop` prevents while a handle lives) the connection reads
    /// as aborted.
    pub(crate) fn with_slot<T>(&self, f: impl FnOnce(&mut State, &mut ConnSlot) -> T) -> T {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        match st.slots.remove(&self.handle) {
            Some(mut slot) => {
                let r = f(st, &mut slot);
                st.slots.insert(self.handle, slot);
                r
            }
            None => {
                let mut slot = ConnSlot::new(self.remote);
                slot.outcome = Some(Err(ConnectionError::LocallyAborted { code: VarInt::ZERO }));
                f(st, &mut slot)
            }
        }
    }

    /// How the connection failed, if it did: `Closed` if this side
    /// aborted it, the reason otherwise.
    pub(crate) fn outcome_error(&self, slot: &ConnSlot) -> Option<Error> {
        match &slot.outcome {
            Some(Err(ConnectionError::LocallyAborted { .. })) => Some(Error::Closed),
            Some(Err(e)) => Some(Error::from_connection(self.remote, true, e.clone())),
            _ => None,
        }
    }

    /// Why nothing more can be done on a connection the core calls
    /// closed. The core may know the reason before the driver has passed
    /// its `Closed` event on (a peer's CLOSE read between two driver
    /// turns): it is read from the core then, so that a refusal's reason
    /// is never reported as a bare "closed".
    pub(crate) fn ended(&self, st: &mut State, slot: &ConnSlot) -> Error {
        if let Some(e) = self.outcome_error(slot) {
            return e;
        }
        let core = st
            .ep
            .with_connection(self.handle, |c| c.outcome().cloned())
            .flatten();
        match core {
            Some(Err(ConnectionError::LocallyAborted { .. })) | Some(Ok(())) | None => {
                Error::Closed
            }
            Some(Err(e)) => Error::from_connection(self.remote, true, e),
        }
    }

    /// The handshake's outcome, for `connect`; `keyed` words a silence.
    pub(crate) fn poll_connected(
        &self,
        cx: &mut Context<'_>,
        keyed: Keyed,
    ) -> Poll<Result<(), Error>> {
        self.with_slot(|st, slot| {
            if slot.connected {
                return Poll::Ready(Ok(()));
            }
            match &slot.outcome {
                Some(Err(e)) => Poll::Ready(Err(
                    match Error::from_connection(self.remote, false, e.clone()) {
                        Error::NoAnswer { addr, after } if keyed == Keyed::Psk => {
                            Error::NoAnswerKeyed { addr, after }
                        }
                        Error::NoAnswer { addr, after } if keyed == Keyed::Noise => {
                            Error::NoAnswerSecure { addr, after }
                        }
                        other => other,
                    },
                )),
                Some(Ok(())) => Poll::Ready(Err(Error::Closed)),
                None if st.stopped.is_some() => Poll::Ready(Err(Error::EndpointClosed)),
                None => {
                    slot.state.register(cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// Queues one message on the first stream; waits while the send
    /// buffer is full. Shorthand for `self.stream().send(msg)`.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the
    /// message was not queued.
    pub async fn send(&self, msg: Bytes) -> Result<(), Error> {
        self.stream().send(msg).await
    }

    /// The next message on the first stream, in order; `Ok(None)` once
    /// the peer has closed and every message it sent has been read.
    /// Messages the peer gave up (§15.5) are stepped over: read
    /// `self.stream().recv()` to see them.
    ///
    /// Cancel-safe: a message is taken from the connection only when this
    /// returns it, so `recv` can be used in `tokio::select!`.
    pub async fn recv(&self) -> Result<Option<Bytes>, Error> {
        let first = self.stream();
        loop {
            match first.recv().await? {
                Some(rudp_core::conn::Received::Message(m)) => return Ok(Some(m)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// `Ready` once the connection has ended: `Ok(())` if it closed
    /// gracefully (both sides), the reason otherwise.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.with_slot(|st, slot| match &slot.outcome {
            Some(Ok(())) => Poll::Ready(Ok(())),
            Some(Err(_)) => Poll::Ready(self.outcome_error(slot).map_or(Ok(()), Err)),
            None if st.stopped.is_some() => Poll::Ready(Err(Error::EndpointClosed)),
            None => {
                slot.state.register(cx.waker());
                Poll::Pending
            }
        })
    }

    /// Waits until the connection has ended, without ending it: `Ok(())`
    /// if it closed gracefully, the reason otherwise.
    ///
    /// Cancel-safe: it only waits.
    pub async fn closed(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Closes gracefully: everything sent is delivered, the peer learns the
    /// connection ended, and this returns once the peer has closed too.
    ///
    /// Cancel-safe in the sense that the close, once started, completes in
    /// the background if the future is dropped.
    pub async fn close(&self) -> Result<(), Error> {
        self.shared
            .lock()
            .ep
            .with_connection(self.handle, |c| c.close());
        self.shared.wake_driver.notify_one();
        self.closed().await
    }

    /// Closes at once with an application error code; undelivered data is
    /// discarded on both sides and the peer sees the code and reason (at
    /// most 1,024 bytes of it are sent).
    pub fn abort(&self, code: VarInt, reason: &str) {
        self.shared
            .lock()
            .ep
            .with_connection(self.handle, |c| c.abort(Instant::now(), code, reason));
        self.shared.wake_driver.notify_one();
    }

    /// Counters and current estimates (PROTOCOL.md has their meaning).
    pub fn stats(&self) -> Stats {
        let st = self.shared.lock();
        match st.ep.connection(self.handle) {
            Some(c) => c.stats(),
            None => st
                .slots
                .get(&self.handle)
                .and_then(|s| s.final_stats.clone())
                .unwrap_or_default(),
        }
    }

    /// The current smoothed round-trip time estimate (PROTOCOL.md §9.1).
    pub fn rtt(&self) -> Duration {
        self.stats().path.smoothed_rtt
    }
}

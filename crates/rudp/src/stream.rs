//! Version 2 on a [`Connection`] (PROTOCOL.md §15): [`Stream`] handles
//! for the connection's streams, per-message [`Reliability`], priorities,
//! unreliable datagrams, and the `futures` adapters [`StreamMessages`] and
//! [`StreamSink`].
//!
//! Every call here locks the endpoint's state once, asks the core, and
//! either returns or registers the task's waker where the driver wakes it
//! (readers, writers, state). The first stream is one of these streams:
//! [`Connection::send`] and [`Connection::recv`] go through it.

use crate::connection::Connection;
use crate::error::Error;
use bytes::Bytes;
use rudp_core::conn::{
    DatagramError, OpenError, Received, RecvError, Reliability, SendError, StreamId, StreamInfo,
    StreamOptions,
};
use rudp_core::error::VarInt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

/// One stream of a connection: the first stream ([`Connection::stream`])
/// or one opened by either side ([`Connection::open_stream`],
/// [`Connection::accept_stream`]). Cloning gives another handle on the
/// same stream.
#[derive(Debug, Clone)]
pub struct Stream {
    conn: Connection,
    id: StreamId,
}

impl Connection {
    /// The protocol version in use (PROTOCOL.md §3.4): 3 (encrypted) or 2
    /// (clear) when both sides speak it, with streams, expiring messages
    /// and datagrams; 1 for a peer that speaks only version 1. It stays
    /// readable after the connection ended.
    pub fn version(&self) -> u8 {
        self.with_slot(|st, slot| {
            st.ep
                .connection(self.handle)
                .map_or(slot.version, |c| c.version())
        })
    }

    /// A handle on the connection's first stream (stream 0, §15.2), the
    /// one [`Connection::send`] and [`Connection::recv`] use and the only
    /// one a version-1 peer has. It is an ordinary stream, with one
    /// difference that the protocol makes: its end is the connection's
    /// (finishing it closes the connection gracefully; it cannot be reset
    /// or stopped, §15.9).
    pub fn stream(&self) -> Stream {
        Stream {
            conn: self.clone(),
            id: StreamId::FIRST,
        }
    }

    /// Opens a stream (§15.2), waiting while the peer's stream limit is
    /// reached. Fails with [`Error::Unsupported`] if the peer speaks
    /// version 1. Cancel-safe: a stream is opened only when this returns.
    pub async fn open_stream(&self, opts: StreamOptions) -> Result<Stream, Error> {
        let id = poll_fn(|cx| self.poll_open_stream(cx, opts)).await?;
        Ok(Stream {
            conn: self.clone(),
            id,
        })
    }

    /// The primitive under [`Self::open_stream`].
    pub fn poll_open_stream(
        &self,
        cx: &mut Context<'_>,
        opts: StreamOptions,
    ) -> Poll<Result<StreamId, Error>> {
        let r = self.with_slot(|st, slot| {
            if let Some(e) = self.outcome_error(slot) {
                return Poll::Ready(Err(e));
            }
            match st.ep.with_connection(self.handle, |c| c.open_stream(opts)) {
                Some(Ok(id)) => Poll::Ready(Ok(id)),
                Some(Err(OpenError::Limit)) => {
                    slot.writers.register(cx.waker());
                    Poll::Pending
                }
                Some(Err(OpenError::Unsupported)) if !slot.connected => {
                    slot.state.register(cx.waker());
                    Poll::Pending
                }
                Some(Err(OpenError::Unsupported)) => Poll::Ready(Err(Error::Unsupported)),
                Some(Err(_)) | None => Poll::Ready(Err(self.ended(st, slot))),
            }
        });
        if r.is_ready() {
            self.shared.wake_driver.notify_one();
        }
        r
    }

    /// The next stream the peer opened, in the order it opened them;
    /// `Ok(None)` once the peer will open no more: it closed gracefully
    /// (its first stream's end arrived, §15.9, after every stream it
    /// opened), or the connection ended gracefully. Cancel-safe.
    pub async fn accept_stream(&self) -> Result<Option<Stream>, Error> {
        let id = poll_fn(|cx| self.poll_accept_stream(cx)).await?;
        Ok(id.map(|id| Stream {
            conn: self.clone(),
            id,
        }))
    }

    /// The primitive under [`Self::accept_stream`].
    pub fn poll_accept_stream(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<StreamId>, Error>> {
        self.with_slot(|st, slot| {
            if let Some(id) = st
                .ep
                .with_connection(self.handle, |c| c.accept_stream())
                .flatten()
            {
                return Poll::Ready(Ok(Some(id)));
            }
            // The peer closed: every stream it opened was returned.
            let peer_closed = st
                .ep
                .connection(self.handle)
                .is_some_and(|c| c.outcome().is_none() && c.is_accept_done());
            if slot.outcome.is_none() && peer_closed {
                return Poll::Ready(Ok(None));
            }
            match &slot.outcome {
                Some(Ok(())) => Poll::Ready(Ok(None)),
                Some(Err(_)) => Poll::Ready(self.outcome_error(slot).map_or(Ok(None), Err)),
                None if st.stopped.is_some() => Poll::Ready(Err(Error::EndpointClosed)),
                None => {
                    slot.readers.register(cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// The largest datagram payload that can be sent now (§15.6), or
    /// `None` if the peer takes no datagrams.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        self.shared
            .lock()
            .ep
            .connection(self.handle)
            .and_then(|c| c.max_datagram_payload())
    }

    /// Queues an unreliable datagram (§15.6): sent once, never resent,
    /// delivered at most once and in any order. It does not wait: a full
    /// queue drops its oldest datagram (counted in the statistics).
    pub fn send_datagram(&self, data: Bytes) -> Result<(), Error> {
        let r = self.with_slot(|st, slot| {
            if let Some(e) = self.outcome_error(slot) {
                return Err(e);
            }
            match st
                .ep
                .with_connection(self.handle, |c| c.send_datagram(data))
            {
                Some(Ok(())) => Ok(()),
                Some(Err(DatagramError::TooLarge { len, max })) => {
                    Err(Error::DatagramTooLarge { len, max })
                }
                Some(Err(DatagramError::Unsupported | DatagramError::NotConnected)) => {
                    Err(self.datagrams_unavailable(st))
                }
                Some(Err(_)) | None => Err(self.ended(st, slot)),
            }
        });
        self.shared.wake_driver.notify_one();
        r
    }

    /// The next datagram received. Cancel-safe.
    pub async fn recv_datagram(&self) -> Result<Bytes, Error> {
        poll_fn(|cx| self.poll_recv_datagram(cx)).await
    }

    /// The primitive under [`Self::recv_datagram`].
    pub fn poll_recv_datagram(&self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Error>> {
        self.with_slot(|st, slot| {
            if let Some(d) = st
                .ep
                .with_connection(self.handle, |c| c.recv_datagram())
                .flatten()
            {
                return Poll::Ready(Ok(d));
            }
            if let Some(e) = self.outcome_error(slot) {
                return Poll::Ready(Err(e));
            }
            if slot.outcome.is_some() {
                return Poll::Ready(Err(Error::Closed));
            }
            if st.stopped.is_some() {
                return Poll::Ready(Err(Error::EndpointClosed));
            }
            slot.readers.register(cx.waker());
            Poll::Pending
        })
    }

    /// Sets the priority of datagrams against streams (§15.7). Fails, as
    /// [`Self::send_datagram`] would, on a connection that cannot carry
    /// datagrams: a priority there would do nothing.
    pub fn set_datagram_priority(&self, priority: i8) -> Result<(), Error> {
        self.with_slot(|st, slot| {
            if let Some(e) = self.outcome_error(slot) {
                return Err(e);
            }
            let allowed = st.ep.with_connection(self.handle, |c| {
                let allowed = c.max_datagram_payload().is_some();
                if allowed {
                    c.set_datagram_priority(priority);
                }
                allowed
            });
            match allowed {
                Some(true) => Ok(()),
                Some(false) => Err(self.datagrams_unavailable(st)),
                None => Err(Error::Closed),
            }
        })
    }

    /// Why this connection carries no datagrams: the peer speaks version
    /// 1, or it accepts none.
    fn datagrams_unavailable(&self, st: &crate::shared::State) -> Error {
        match st.ep.connection(self.handle).map(|c| c.version()) {
            Some(v) if v >= rudp_core::wire::VERSION_2 => Error::DatagramsRefused,
            _ => Error::Unsupported,
        }
    }
}

impl Stream {
    /// Its number (§15.1).
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The connection it belongs to.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Sends one message reliably. Cancel-safe: the message is queued
    /// entirely or not at all.
    pub async fn send(&self, msg: Bytes) -> Result<(), Error> {
        self.send_with(msg, Reliability::Reliable).await
    }

    /// Sends one message with the given reliability (§15.5): a message
    /// with a lifetime or a retransmission budget is abandoned once it is
    /// spent, and the receiver reads [`Received::Skipped`] in its place.
    /// The lifetime counts from this call. Cancel-safe.
    pub async fn send_with(&self, msg: Bytes, reliability: Reliability) -> Result<(), Error> {
        let now = Instant::now();
        poll_fn(|cx| self.poll_send_at(cx, &msg, reliability, now)).await
    }

    /// The primitive under [`Self::send_with`], for code that writes its
    /// own futures: a lifetime counts from the poll that queues the
    /// message.
    pub fn poll_send_with(
        &self,
        cx: &mut Context<'_>,
        msg: &Bytes,
        reliability: Reliability,
    ) -> Poll<Result<(), Error>> {
        self.poll_send_at(cx, msg, reliability, Instant::now())
    }

    fn poll_send_at(
        &self,
        cx: &mut Context<'_>,
        msg: &Bytes,
        reliability: Reliability,
        sent: Instant,
    ) -> Poll<Result<(), Error>> {
        let conn = &self.conn;
        let r = conn.with_slot(|st, slot| {
            if let Some(e) = conn.outcome_error(slot) {
                return Poll::Ready(Err(e));
            }
            if st.stopped.is_some() {
                return Poll::Ready(Err(Error::EndpointClosed));
            }
            let r = st.ep.with_connection(conn.handle, |c| {
                c.send_on(sent, self.id, msg.clone(), reliability)
            });
            match r {
                Some(Ok(())) => Poll::Ready(Ok(())),
                Some(Err(SendError::Blocked)) => {
                    slot.writers.register(cx.waker());
                    Poll::Pending
                }
                Some(Err(SendError::NotConnected)) => {
                    slot.state.register(cx.waker());
                    Poll::Pending
                }
                Some(Err(SendError::TooLarge { len, max })) => {
                    Poll::Ready(Err(Error::MessageTooLarge { len, max }))
                }
                Some(Err(SendError::Unsupported)) => Poll::Ready(Err(Error::Unsupported)),
                Some(Err(SendError::UnknownStream)) => Poll::Ready(Err(Error::UnknownStream)),
                Some(Err(SendError::StreamFinished)) => Poll::Ready(Err(Error::StreamFinished)),
                Some(Err(SendError::Stopped { code })) => {
                    Poll::Ready(Err(Error::StreamStopped { code }))
                }
                Some(Err(_)) | None => Poll::Ready(Err(conn.ended(st, slot))),
            }
        });
        if r.is_ready() {
            conn.shared.wake_driver.notify_one();
        }
        r
    }

    /// The next message or skip; `Ok(None)` once the peer finished the
    /// stream and everything was read. Cancel-safe.
    pub async fn recv(&self) -> Result<Option<Received>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The primitive under [`Self::recv`].
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Received>, Error>> {
        enum Polled {
            Item(Received),
            Finished,
            Nothing,
            Failed(Error),
        }
        let conn = &self.conn;
        let r = conn.with_slot(|st, slot| {
            let polled = st
                .ep
                .with_connection(conn.handle, |c| match c.recv_on(self.id) {
                    Ok(Some(item)) => Polled::Item(item),
                    Ok(None) if c.is_stream_finished(self.id) => Polled::Finished,
                    Ok(None) => Polled::Nothing,
                    Err(RecvError::Reset { code }) => Polled::Failed(Error::StreamReset { code }),
                    Err(_) => Polled::Failed(Error::UnknownStream),
                });
            match polled {
                Some(Polled::Item(item)) => Poll::Ready(Ok(Some(item))),
                Some(Polled::Finished) => Poll::Ready(Ok(None)),
                Some(Polled::Failed(e)) => Poll::Ready(Err(e)),
                None => Poll::Ready(conn.outcome_error(slot).map_or(Ok(None), Err)),
                Some(Polled::Nothing) => match conn.outcome_error(slot) {
                    Some(e) => Poll::Ready(Err(e)),
                    None if slot.outcome.is_some() => Poll::Ready(Ok(None)),
                    None if st.stopped.is_some() => Poll::Ready(Err(Error::EndpointClosed)),
                    None => {
                        slot.readers.register(cx.waker());
                        Poll::Pending
                    }
                },
            }
        });
        if r.is_ready() {
            // Reading may have opened a flow-control window.
            conn.shared.wake_driver.notify_one();
        }
        r
    }

    /// Ends the stream after what was sent (FIN): the peer reads the rest,
    /// then `Ok(None)`. Finishing the first stream closes the connection
    /// gracefully, as [`Connection::close`] does, without waiting.
    pub fn finish(&self) -> Result<(), Error> {
        self.with_core(|c| c.finish_stream(self.id))
    }

    /// Waits until the peer has acknowledged everything sent on this
    /// stream so far: each message (or, for one that expired, the notice
    /// that it was given up) and, after [`Self::finish`], the end of the
    /// stream (PROTOCOL.md §15.9). Acknowledged means the peer's rudp has
    /// it, not that its application has read it.
    ///
    /// `Err(StreamStopped)` if the peer stopped the stream, and
    /// `Err(StreamFinished)` if this side reset it: what was not delivered
    /// then never will be. On the first stream, `finish()` closes the
    /// connection, and a graceful close counts as delivery.
    ///
    /// ```no_run
    /// # async fn f(conn: rudp::Connection) -> Result<(), rudp::Error> {
    /// let stream = conn.open_stream(rudp::StreamOptions::new()).await?;
    /// stream.send(bytes::Bytes::from_static(b"the whole report")).await?;
    /// stream.finish()?;
    /// stream.delivered().await?; // The peer has all of it, and the end.
    /// # Ok(()) }
    /// ```
    pub async fn delivered(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_delivered(cx)).await
    }

    /// The primitive under [`Self::delivered`].
    pub fn poll_delivered(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let conn = &self.conn;
        conn.with_slot(|st, slot| {
            let r = st
                .ep
                .with_connection(conn.handle, |c| c.is_stream_delivered(self.id));
            match r {
                Some(Ok(true)) => Poll::Ready(Ok(())),
                Some(Err(SendError::Stopped { code })) => {
                    Poll::Ready(Err(Error::StreamStopped { code }))
                }
                Some(Err(SendError::StreamFinished)) => Poll::Ready(Err(Error::StreamFinished)),
                Some(Err(_)) => Poll::Ready(Err(Error::UnknownStream)),
                Some(Ok(false)) | None => match conn.outcome_error(slot) {
                    Some(e) => Poll::Ready(Err(e)),
                    // Closed gracefully: everything arrived.
                    None if slot.outcome.is_some() => Poll::Ready(Ok(())),
                    None if st.stopped.is_some() => Poll::Ready(Err(Error::EndpointClosed)),
                    None if r.is_none() => Poll::Ready(Err(Error::Closed)),
                    None => {
                        slot.writers.register(cx.waker());
                        Poll::Pending
                    }
                },
            }
        })
    }

    /// Abandons the stream's sending half (§15.8.6): what was not yet
    /// delivered is dropped, and the peer's reader gets `code`.
    /// [`Error::FirstStream`] on the first stream: abort the connection
    /// instead.
    pub fn reset(&self, code: VarInt) -> Result<(), Error> {
        self.with_core(|c| c.reset_stream(self.id, code))
    }

    /// Asks the peer to stop sending on this stream (§15.8.7); what still
    /// arrives is discarded. [`Error::FirstStream`] on the first stream.
    pub fn stop(&self, code: VarInt) -> Result<(), Error> {
        let r = self
            .conn
            .shared
            .lock()
            .ep
            .with_connection(self.conn.handle, |c| c.stop_stream(self.id, code));
        self.conn.shared.wake_driver.notify_one();
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(RecvError::FirstStream)) => Err(Error::FirstStream),
            Some(Err(_)) => Err(Error::UnknownStream),
            None => Err(Error::Closed),
        }
    }

    /// What this side knows of the stream (§15.3, §15.7): how the peer
    /// sends on it (an accepted stream shows its mode from the first), how
    /// the peer receives what we send, and our priority on it. Fails with
    /// [`Error::UnknownStream`] once the stream is over, or
    /// [`Error::Closed`] once the connection is.
    ///
    /// ```no_run
    /// # async fn f(conn: rudp::Connection) -> Result<(), rudp::Error> {
    /// use rudp::Delivery;
    /// while let Some(stream) = conn.accept_stream().await? {
    ///     if stream.info()?.receiving == Delivery::Unordered {
    ///         // readings that may arrive in any order, each whole
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> Result<StreamInfo, Error> {
        let r = self
            .conn
            .shared
            .lock()
            .ep
            .with_connection(self.conn.handle, |c| c.stream_info(self.id));
        match r {
            Some(Some(info)) => Ok(info),
            Some(None) => Err(Error::UnknownStream),
            None => Err(Error::Closed),
        }
    }

    /// Sets the stream's priority: higher goes first, round robin within
    /// one priority (§15.7).
    pub fn set_priority(&self, priority: i8) -> Result<(), Error> {
        self.with_core(|c| c.set_priority(self.id, priority))
    }

    fn with_core(
        &self,
        f: impl FnOnce(&mut rudp_core::conn::Connection) -> Result<(), SendError>,
    ) -> Result<(), Error> {
        let r = self
            .conn
            .shared
            .lock()
            .ep
            .with_connection(self.conn.handle, f);
        self.conn.shared.wake_driver.notify_one();
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(SendError::UnknownStream)) => Err(Error::UnknownStream),
            Some(Err(SendError::FirstStream)) => Err(Error::FirstStream),
            Some(Err(_)) | None => Err(Error::Closed),
        }
    }

    /// The stream's messages (and skips) as a [`futures_core::Stream`],
    /// ending when the peer finishes the stream.
    pub fn messages(&self) -> StreamMessages {
        StreamMessages {
            stream: self.clone(),
            done: false,
        }
    }

    /// A [`futures_sink::Sink`] of messages on this stream, each sent with
    /// `reliability`; closing it finishes the stream.
    pub fn sink(&self, reliability: Reliability) -> StreamSink {
        StreamSink {
            stream: self.clone(),
            reliability,
            pending: None,
        }
    }
}

/// A stream's messages and skips as a [`futures_core::Stream`]
/// ([`Stream::messages`]).
#[derive(Debug)]
pub struct StreamMessages {
    stream: Stream,
    done: bool,
}

impl futures_core::Stream for StreamMessages {
    type Item = Result<Received, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let r = ready!(self.stream.poll_recv(cx));
        Poll::Ready(next_item(&mut self.done, r))
    }
}

/// A [`futures_sink::Sink`] of messages on one stream ([`Stream::sink`]).
/// It holds at most one message that did not fit the send buffer yet.
#[derive(Debug)]
pub struct StreamSink {
    stream: Stream,
    reliability: Reliability,
    pending: Option<(Bytes, Instant)>,
}

impl StreamSink {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some((msg, at)) = &self.pending {
            ready!(self.stream.poll_send_at(cx, msg, self.reliability, *at))?;
            self.pending = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl futures_sink::Sink<Bytes> for StreamSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        let this = self.get_mut();
        if this.pending.is_some() {
            return Err(Error::SinkNotReady);
        }
        this.pending = Some((item, Instant::now()));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Poll::Ready(this.stream.finish())
    }
}

/// A `poll_recv` result as a `Stream` item: the end and the first error
/// end the stream (`done`), which then yields `None` for ever.
fn next_item<T>(done: &mut bool, r: Result<Option<T>, Error>) -> Option<Result<T, Error>> {
    match r {
        Ok(Some(item)) => Some(Ok(item)),
        Ok(None) => {
            *done = true;
            None
        }
        Err(e) => {
            *done = true;
            Some(Err(e))
        }
    }
}

//! The control API's listener: at most [`MAX_CONTROL_CONNECTIONS`] open at
//! once, each closed after [`CONTROL_IDLE_TIMEOUT`] without a byte either
//! way (docs/security.md). Without these, anything that can reach the port
//! could hold a file descriptor per connection until the proxy has none
//! left for its clients' sockets.
//!
//! Connections beyond the cap wait in the kernel's accept queue, which
//! costs the proxy nothing; they are accepted as others close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Control connections open at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 32;
/// A control connection silent this long, both ways, is closed.
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`TcpListener`] that hands out bounded, idle-timed connections.
#[derive(Debug)]
pub struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl BoundedListener {
    /// At most `max` connections at once, each closed after `idle` of
    /// silence.
    pub fn new(listener: TcpListener, max: usize, idle: Duration) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = IdleTimed;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleTimed, SocketAddr) {
        loop {
            // Waits for a free slot before accepting: the connection beyond
            // the cap stays in the kernel's queue. The semaphore is never
            // closed, so this cannot fail.
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (IdleTimed::new(stream, permit, self.idle), addr);
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather
                    // than spin (as axum's own listener does).
                    tracing::debug!(cause = %e, "control API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A control connection: fails with `TimedOut` once idle too long, and
/// gives its slot back when dropped.
#[derive(Debug)]
pub struct IdleTimed {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimed {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        Self {
            stream,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Some progress was made: the silence starts again.
    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// Whether the connection has been silent too long; registers the
    /// waker for the moment it will have been.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "control connection idle")
}

impl AsyncRead for IdleTimed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleTimed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A peer that stops reading our answer is as idle as one that
            // stops writing.
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

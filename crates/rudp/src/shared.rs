//! The state an endpoint's driver and its handles share, and the wake-up
//! lists that tell waiting application tasks when to look again.

use rudp_core::conn::Stats;
use rudp_core::endpoint::{self as proto, ConnectionHandle};
use rudp_core::error::ConnectionError;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::task::Waker;
use std::time::Instant;
use tokio::sync::Notify;

/// Tasks waiting for one condition. Registering a waker that would wake the
/// same task again replaces nothing, so a task polling in a loop takes one
/// entry; the list empties each time it is woken.
#[derive(Debug, Default)]
pub(crate) struct Wakers(Vec<Waker>);

impl Wakers {
    pub(crate) fn register(&mut self, waker: &Waker) {
        if !self.0.iter().any(|w| w.will_wake(waker)) {
            self.0.push(waker.clone());
        }
    }

    pub(crate) fn wake(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

/// What the application tasks of one connection wait on: one wake-up list
/// per condition, so a reader is not woken by acknowledgements and a
/// writer not by arriving data.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    /// Waiting for a message, or for the end of the peer's messages.
    pub(crate) readers: Wakers,
    /// Waiting for room in the send buffer.
    pub(crate) writers: Wakers,
    /// Waiting for the handshake to finish or the connection to end.
    pub(crate) state: Wakers,
    pub(crate) remote: SocketAddr,
    pub(crate) connected: bool,
    /// The protocol version, kept from the handshake on, so that it can
    /// still be read once the connection is gone.
    pub(crate) version: u8,
    pub(crate) outcome: Option<Result<(), ConnectionError>>,
    /// Statistics at the moment the connection was removed.
    pub(crate) final_stats: Option<Stats>,
    /// Application handles alive (for the implicit close on drop).
    pub(crate) handles: usize,
    pub(crate) drained: bool,
}

impl ConnSlot {
    pub(crate) fn new(remote: SocketAddr) -> Self {
        Self {
            readers: Wakers::default(),
            writers: Wakers::default(),
            state: Wakers::default(),
            remote,
            connected: false,
            version: 0,
            outcome: None,
            final_stats: None,
            handles: 0,
            drained: false,
        }
    }

    /// The connection ended or went away: everyone waiting looks again.
    pub(crate) fn wake_all(&mut self) {
        self.readers.wake();
        self.writers.wake();
        self.state.wake();
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) ep: proto::Endpoint,
    pub(crate) slots: HashMap<ConnectionHandle, ConnSlot>,
    pub(crate) incoming: VecDeque<ConnectionHandle>,
    /// Set by `shutdown`: no more connections are accepted.
    pub(crate) closing: bool,
    /// Set when the driver stopped (socket error or shutdown).
    pub(crate) stopped: Option<String>,
    /// Endpoint handles alive; the driver stops once there are none and no
    /// connection is left.
    pub(crate) endpoint_handles: usize,
    /// When the last datagram arrived (for `linger`).
    pub(crate) last_rx: Option<Instant>,
    /// Where trace events go, one JSON object a line (docs/trace.md).
    #[cfg(feature = "trace")]
    pub(crate) trace: Option<crate::trace_file::TraceFile>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the driver: the application changed something.
    pub(crate) wake_driver: Notify,
    /// Wakes `accept` and `shutdown` callers.
    pub(crate) incoming: Notify,
    pub(crate) local_addr: SocketAddr,
    /// Times a caller found the lock taken, and nanoseconds spent waiting
    /// for it: how much the driver and the application tasks get in each
    /// other's way ([`crate::Endpoint::lock_contention`]).
    pub(crate) lock_waits: AtomicU64,
    pub(crate) lock_wait_ns: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough
        // to keep shutting down: no invariant spans two statements.
        match self.state.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let started = Instant::now();
                let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let waited = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
                self.lock_waits.fetch_add(1, Ordering::Relaxed);
                self.lock_wait_ns.fetch_add(waited, Ordering::Relaxed);
                guard
            }
        }
    }
}

//! Batched UDP I/O for the driver (docs/architecture.md, "The driver"):
//! many datagrams per system call where the OS allows it, through the
//! `quinn-udp` crate.
//!
//! - Sending: consecutive datagrams to the same peer, all of one size (the
//!   last may be shorter), leave as one GSO send (Linux UDP segmentation
//!   offload): one system call for up to 64 datagrams. Where GSO is missing
//!   or fails, `quinn-udp` reports one segment at most and each datagram
//!   goes alone.
//! - Receiving: `recvmmsg` reads several datagrams per call, and with GRO
//!   the kernel hands over several coalesced datagrams in one buffer, cut
//!   back apart here by their stride.
//!
//! Buffers are allocated once per endpoint and reused.
//!
//! `RUDP_GSO=off` in the environment turns segmentation offload off (one
//! datagram per send), to measure what it brings.

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

/// Largest total size of one GSO send (the kernel's limit is 64 KiB).
const MAX_GSO_BYTES: usize = 65_000;
/// Receive buffers per `recvmmsg` call.
const RX_BUFFERS: usize = 8;
/// Size of each receive buffer: one GRO batch of full-size UDP payloads.
const RX_BUFFER_LEN: usize = 65_536;

pub(crate) struct Socket {
    io: UdpSocket,
    state: UdpSocketState,
    max_segments: usize,
}

impl Socket {
    pub(crate) fn new(std: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&std).into())?;
        let io = UdpSocket::from_std(std)?;
        let gso_off = std::env::var("RUDP_GSO").is_ok_and(|v| v == "off");
        let max_segments = if gso_off { 1 } else { state.max_gso_segments() };
        debug!(
            gso_segments = max_segments,
            gro_segments = state.gro_segments(),
            "socket ready"
        );
        Ok(Self {
            io,
            state,
            max_segments,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn segments_allowed(&self) -> usize {
        self.max_segments.min(self.state.max_gso_segments()).max(1)
    }

    /// Sends everything queued in `tx`, then empties it.
    pub(crate) async fn send(&self, tx: &mut TxBatch) {
        let max_segments = self.segments_allowed();
        for g in tx.groups(max_segments) {
            let contents = tx.contents(g.span);
            let segment_size = (g.len > g.segment).then_some(g.segment);
            if let Err(e) = self.send_one(g.to, contents, segment_size).await {
                if segment_size.is_some() {
                    // GSO failed (quinn-udp now reports one segment at most):
                    // send the datagrams one by one.
                    for d in contents.chunks(g.segment) {
                        if let Err(e) = self.send_one(g.to, d, None).await {
                            debug!(peer = %g.to, error = %e, "send failed");
                        }
                    }
                } else {
                    // One unreachable peer must not stop the others.
                    debug!(peer = %g.to, error = %e, "send failed");
                }
            }
        }
        tx.clear();
    }

    async fn send_one(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        loop {
            self.io.writable().await?;
            match self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &t)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Waits until datagrams can be read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// One `recvmmsg` (or `recvmsg`) call, without waiting: fills `rx`
    /// and returns how many buffers hold data (0 if nothing was queued).
    /// Read them with [`RxBuffers::for_each`]. The caller holds no lock
    /// during the system call.
    pub(crate) fn try_recv_batch(&self, rx: &mut RxBuffers) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> =
            rx.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        match self.io.try_io(Interest::READABLE, || {
            self.state
                .recv((&self.io).into(), &mut slices, &mut rx.meta)
        }) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Receive buffers, allocated once.
pub(crate) struct RxBuffers {
    bufs: Vec<Box<[u8]>>,
    meta: Vec<RecvMeta>,
}

impl RxBuffers {
    /// Calls `f` for each datagram of the first `n` buffers (as returned by
    /// [`Socket::try_recv_batch`]), cutting GRO batches apart by their
    /// stride; returns how many datagrams there were.
    pub(crate) fn for_each(&self, n: usize, mut f: impl FnMut(SocketAddr, &[u8])) -> usize {
        let mut count = 0;
        for (meta, buf) in self.meta.iter().zip(&self.bufs).take(n) {
            let stride = meta.stride.max(1);
            for datagram in buf[..meta.len].chunks(stride) {
                f(meta.addr, datagram);
                count += 1;
            }
        }
        count
    }
}

impl Default for RxBuffers {
    fn default() -> Self {
        Self {
            bufs: (0..RX_BUFFERS)
                .map(|_| vec![0u8; RX_BUFFER_LEN].into_boxed_slice())
                .collect(),
            meta: vec![RecvMeta::default(); RX_BUFFERS],
        }
    }
}

/// Datagrams waiting to be sent. Those small enough to share a GSO send
/// are copied into one reused byte buffer, side by side; a larger one
/// (which always leaves alone) keeps the buffer it was written into, moved
/// here rather than copied: at 64 KB a datagram, that copy was a tenth of
/// a bulk sender's time.
#[derive(Default)]
pub(crate) struct TxBatch {
    data: Vec<u8>,
    /// Datagrams moved in whole, and emptied buffers to hand back.
    owned: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    datagrams: Vec<(SocketAddr, Span)>,
}

/// Where a queued datagram lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// `data[start..end]`.
    Shared { start: usize, end: usize },
    /// `owned[i]`.
    Owned(usize),
}

/// A run of datagrams that can leave in one send.
#[derive(Debug, PartialEq, Eq)]
struct Group {
    to: SocketAddr,
    span: Span,
    len: usize,
    segment: usize,
}

/// Datagrams larger than this cannot share a GSO send with another of
/// their size, so they are moved into the batch instead of copied.
const MOVE_ABOVE: usize = MAX_GSO_BYTES / 2;
/// Emptied buffers kept for reuse: as many as one batch has needed, up to
/// this (64 MiB of 64 KB datagrams). Freeing and allocating them again
/// costs a page fault per 4 KiB.
const SPARE_BUFFERS: usize = 1024;

impl TxBatch {
    /// Queues the datagram in `datagram`, which may be swapped for an
    /// empty buffer (with the same capacity or more) instead of copied.
    pub(crate) fn push(&mut self, to: SocketAddr, datagram: &mut Vec<u8>) {
        if datagram.len() > MOVE_ABOVE {
            let capacity = datagram.capacity();
            let empty = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(capacity));
            self.owned.push(std::mem::replace(datagram, empty));
            self.datagrams.push((to, Span::Owned(self.owned.len() - 1)));
        } else {
            let start = self.data.len();
            self.data.extend_from_slice(datagram);
            let end = self.data.len();
            self.datagrams.push((to, Span::Shared { start, end }));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    fn contents(&self, span: Span) -> &[u8] {
        match span {
            Span::Shared { start, end } => &self.data[start..end],
            Span::Owned(i) => &self.owned[i],
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.datagrams.clear();
        for mut b in self.owned.drain(..) {
            if self.spare.len() < SPARE_BUFFERS {
                b.clear();
                self.spare.push(b);
            }
        }
    }

    /// Cuts the queue into GSO groups: same peer, same size (the last may
    /// be shorter), at most `max_segments` and `MAX_GSO_BYTES` each.
    fn groups(&self, max_segments: usize) -> Vec<Group> {
        let mut out: Vec<Group> = Vec::new();
        let mut count = 0;
        for &(to, span) in &self.datagrams {
            let len = self.contents(span).len();
            if let (Some(g), Span::Shared { start, end }) = (out.last_mut(), span) {
                if let Span::Shared {
                    start: g_start,
                    end: g_end,
                } = &mut g.span
                {
                    let closed = g.len % g.segment != 0;
                    if g.to == to
                        && !closed
                        && len <= g.segment
                        && count < max_segments
                        && end - *g_start <= MAX_GSO_BYTES
                        && *g_end == start
                    {
                        *g_end = end;
                        g.len += len;
                        count += 1;
                        continue;
                    }
                }
            }
            out.push(Group {
                to,
                span,
                len,
                segment: len.max(1),
            });
            count = 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_same_peer_same_size_runs() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut tx = TxBatch::default();
        for len in [100, 100, 100, 40, 100] {
            tx.push(a, &mut vec![0; len]);
        }
        tx.push(b, &mut vec![0; 100]);
        tx.push(b, &mut vec![0; 100]);
        let g = tx.groups(64);
        // a: three 100s and the shorter 40 close a group; the next 100
        // starts another; b gets its own.
        let spans: Vec<_> = g.iter().map(|g| (g.to, g.len, g.segment)).collect();
        assert_eq!(spans, vec![(a, 340, 100), (a, 100, 100), (b, 200, 100)]);
        // The segment limit splits runs.
        let g = tx.groups(2);
        let spans: Vec<_> = g.iter().map(|g| (g.len, g.segment)).collect();
        assert_eq!(spans, vec![(200, 100), (140, 100), (100, 100), (200, 100)]);
    }

    #[test]
    fn large_datagrams_are_moved_in_order_and_buffers_come_back() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut tx = TxBatch::default();
        let mut out = vec![1; 100];
        tx.push(a, &mut out);
        assert_eq!(out.len(), 100, "a small datagram is copied");
        let mut big = Vec::with_capacity(65_536);
        big.resize(40_000, 2);
        let ptr = big.as_ptr();
        tx.push(a, &mut big);
        assert!(big.is_empty(), "a large one is moved out");
        assert!(big.capacity() >= 65_536, "and the caller gets room back");
        tx.push(a, &mut vec![3; 100]);
        let g = tx.groups(64);
        let spans: Vec<_> = g.iter().map(|g| (g.len, tx.contents(g.span)[0])).collect();
        // The large one splits the run of small ones: order is kept.
        assert_eq!(spans, vec![(100, 1), (40_000, 2), (100, 3)]);
        assert_eq!(tx.contents(g[1].span).as_ptr(), ptr, "not copied");
        tx.clear();
        assert!(tx.is_empty());
        assert_eq!(tx.spare.len(), 1, "its buffer is kept for reuse");
    }

    #[tokio::test]
    async fn sends_and_receives_a_batch() {
        let bind = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            Socket::new(s).unwrap()
        };
        let (tx_sock, rx_sock) = (bind(), bind());
        let to = rx_sock.local_addr().unwrap();
        let mut tx = TxBatch::default();
        // Mostly small datagrams sharing GSO sends, two large ones moved
        // in whole among them, and a short one last.
        let size = |i: u8| match i {
            49 => 7,
            10 | 11 => 60_000,
            _ => 1200,
        };
        for i in 0..50u8 {
            let len = size(i);
            tx.push(to, &mut vec![i; len]);
        }
        tx_sock.send(&mut tx).await;
        assert!(tx.is_empty());
        let mut rx = RxBuffers::default();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 50 && std::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), rx_sock.readable())
                .await;
            loop {
                let n = rx_sock.try_recv_batch(&mut rx).unwrap();
                if n == 0 {
                    break;
                }
                rx.for_each(n, |_, d| got.push(d.to_vec()));
            }
        }
        assert_eq!(got.len(), 50);
        for (i, d) in got.iter().enumerate() {
            assert!(d.iter().all(|&b| b == i as u8));
            assert_eq!(d.len(), size(i as u8));
        }
    }
}

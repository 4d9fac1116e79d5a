//! Version 2's unreliable datagrams (PROTOCOL.md §15.6, after RFC 9221):
//! each is sent once, in one DATAGRAM frame, congestion-controlled and
//! paced with everything else, and never retransmitted; the receiver
//! delivers each at most once, in any order.
//!
//! Both queues are bounded by our settings: the send queue drops its
//! oldest entry when full (a datagram that waited is the least useful
//! one), the receive queue drops new arrivals when the application is not
//! reading. Each drop is counted. The receive queue is bounded in bytes as
//! well as in datagrams (§13): 256 unread datagrams of 65 KB would be
//! 16 MiB.

use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Debug)]
pub(super) struct Datagrams {
    outgoing: VecDeque<Bytes>,
    incoming: VecDeque<Bytes>,
    /// Bytes in `incoming`.
    incoming_bytes: usize,
    send_limit: usize,
    recv_limit: usize,
    recv_byte_limit: usize,
    /// Scheduled against streams by this priority (§15.7).
    pub priority: i8,
}

impl Datagrams {
    pub(super) fn new(config: &crate::config::Config) -> Self {
        Self {
            outgoing: VecDeque::new(),
            incoming: VecDeque::new(),
            incoming_bytes: 0,
            send_limit: config.datagram_send_queue,
            recv_limit: config.datagram_receive_queue,
            recv_byte_limit: config.datagram_receive_buffer,
            priority: 0,
        }
    }

    /// The largest payload we accept, as announced (§15.8.1): 0 refuses
    /// datagrams; otherwise what fits the largest datagram we accept.
    pub(super) fn local_max_payload(config: &crate::config::Config) -> u64 {
        if config.datagram_receive_queue == 0 {
            0
        } else {
            config.max_datagram_size as u64
        }
    }

    /// Queues one to send; returns whether an older one was dropped to
    /// make room.
    pub(super) fn push(&mut self, data: Bytes) -> bool {
        let dropped = self.outgoing.len() >= self.send_limit.max(1);
        if dropped {
            self.outgoing.pop_front();
        }
        self.outgoing.push_back(data);
        dropped
    }

    /// The next one to send, if its frame fits in `room` bytes.
    pub(super) fn pop_fitting(&mut self, room: usize) -> Option<Bytes> {
        let len = self.outgoing.front()?.len();
        if len + crate::wire::frame::MAX_DATAGRAM_HEADER_LEN > room {
            return None;
        }
        self.outgoing.pop_front()
    }

    /// Drops queued datagrams that can never fit a packet of `max_payload`
    /// (the path's datagram size fell); returns how many.
    pub(super) fn drop_oversized(&mut self, max_payload: usize) -> u64 {
        let before = self.outgoing.len();
        self.outgoing.retain(|d| d.len() <= max_payload);
        (before - self.outgoing.len()) as u64
    }

    pub(super) fn has_queued(&self) -> bool {
        !self.outgoing.is_empty()
    }

    pub(super) fn queued(&self) -> usize {
        self.outgoing.len()
    }

    /// One received; returns whether it was kept (the queue had room).
    pub(super) fn on_received(&mut self, data: &[u8]) -> bool {
        if self.incoming.len() >= self.recv_limit
            || self.incoming_bytes + data.len() > self.recv_byte_limit
        {
            return false;
        }
        self.incoming_bytes += data.len();
        self.incoming.push_back(Bytes::copy_from_slice(data));
        true
    }

    pub(super) fn recv(&mut self) -> Option<Bytes> {
        let d = self.incoming.pop_front()?;
        self.incoming_bytes -= d.len();
        Some(d)
    }

    /// Bytes the receive queue holds, each entry charged its overhead.
    pub(super) fn memory(&self) -> usize {
        self.incoming_bytes + self.incoming.len() * (std::mem::size_of::<Bytes>() + 32)
    }

    /// Frees what waits on either side (the connection failed).
    pub(super) fn release(&mut self) {
        self.outgoing = VecDeque::new();
        self.incoming = VecDeque::new();
        self.incoming_bytes = 0;
    }
}

//! The datagrams on their way through the proxy: each waits here until
//! its delivery time. A real link holds only so much in flight, and so
//! does this one: at most [`MAX_DELAY_LINE_PACKETS`] datagrams and
//! [`MAX_DELAY_LINE_BYTES`] bytes, both directions together. A datagram
//! that does not fit is dropped and counted, as a full queue drops it;
//! without the bound, `delay=1h` from the control API grew the proxy by
//! 1.1 GB in 20 s (issue #22).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Datagrams in flight at most.
pub const MAX_DELAY_LINE_PACKETS: usize = 1 << 18;
/// Bytes in flight at most (payloads).
pub const MAX_DELAY_LINE_BYTES: usize = 256 << 20;

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Way {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// One datagram waiting: (when, sequence number for a stable order,
/// direction, mapping id, bytes).
type Scheduled = (Instant, u64, Way, u64, Vec<u8>);

/// Datagrams in delivery-time order, bounded in number and bytes.
#[derive(Debug)]
pub struct DelayLine {
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    bytes: usize,
    max_packets: usize,
    max_bytes: usize,
    dropped: u64,
}

impl Default for DelayLine {
    fn default() -> Self {
        Self::new(MAX_DELAY_LINE_PACKETS, MAX_DELAY_LINE_BYTES)
    }
}

impl DelayLine {
    /// A line holding at most `max_packets` datagrams and `max_bytes`.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
            bytes: 0,
            max_packets,
            max_bytes,
            dropped: 0,
        }
    }

    /// Queues `data` to leave at `at`; drops and counts it if the line is
    /// full. Returns whether it was queued.
    pub fn push(&mut self, at: Instant, way: Way, id: u64, data: Vec<u8>) -> bool {
        if self.heap.len() >= self.max_packets || self.bytes + data.len() > self.max_bytes {
            self.dropped += 1;
            return false;
        }
        self.seq += 1;
        self.bytes += data.len();
        self.heap.push(Reverse((at, self.seq, way, id, data)));
        true
    }

    /// When the next datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, ..))| *t)
    }

    /// The next datagram due by `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Way, u64, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse((_, _, way, id, data)) = self.heap.pop()?;
        self.bytes -= data.len();
        Some((way, id, data))
    }

    /// What the line holds and may hold, and what it dropped.
    pub fn stats(&self) -> DelayLineStats {
        DelayLineStats {
            packets: self.heap.len(),
            bytes: self.bytes,
            max_packets: self.max_packets,
            max_bytes: self.max_bytes,
            dropped: self.dropped,
        }
    }
}

/// The delay line's occupancy, bounds and drops (`rudp proxy ctl stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DelayLineStats {
    /// Datagrams in flight now.
    pub packets: usize,
    /// Their bytes.
    pub bytes: usize,
    /// The bound on datagrams in flight.
    pub max_packets: usize,
    /// The bound on bytes in flight.
    pub max_bytes: usize,
    /// Datagrams dropped because the line was full.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_line_drops_and_counts_and_delivers_in_time_order() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(3, 10);
        assert!(line.push(t0 + Duration::from_secs(2), Way::Up, 1, vec![0; 4]));
        assert!(line.push(t0 + Duration::from_secs(1), Way::Down, 2, vec![0; 4]));
        assert!(!line.push(t0, Way::Up, 3, vec![0; 4]), "bytes bound");
        assert!(line.push(t0, Way::Up, 4, vec![0; 2]));
        assert!(!line.push(t0, Way::Up, 5, vec![]), "packet bound");
        assert_eq!(line.stats().dropped, 2);
        assert_eq!(line.pop_due(t0).map(|(_, id, _)| id), Some(4));
        assert_eq!(line.pop_due(t0), None, "the rest is not due");
        let later = t0 + Duration::from_secs(5);
        assert_eq!(line.pop_due(later).map(|(_, id, _)| id), Some(2));
        assert_eq!(line.pop_due(later).map(|(_, id, _)| id), Some(1));
        let s = line.stats();
        assert_eq!((s.packets, s.bytes), (0, 0));
    }
}

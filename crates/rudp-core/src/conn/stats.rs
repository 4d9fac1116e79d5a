//! Per-connection counters (issue: statistics), readable at any time.

use std::fmt::Write;

/// What one connection did. Counters only grow; the RTT and window fields
/// are the current values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// Datagrams sent, and their bytes.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Valid datagrams received for this connection, and their bytes.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Packets that resent stream data, and the resent bytes.
    pub packets_retransmitted: u64,
    pub stream_bytes_retransmitted: u64,
    /// Unacknowledged stream bytes sent again, unasked, in the spare room
    /// of a later packet of a thin stream (§8.4).
    pub stream_bytes_bundled: u64,
    /// Packets declared lost (§9.2).
    pub packets_lost: u64,
    /// Of those, packets acknowledged after all: losses that were really
    /// reordering (§9.2).
    pub spurious_losses: u64,
    /// Probe timeouts that fired (§9.3).
    pub probe_timeouts: u64,
    /// Packets received twice and discarded (§7.4).
    pub duplicates_discarded: u64,
    /// Datagrams addressed to this connection whose checksum failed (§3.6).
    pub corrupt_dropped: u64,
    /// Datagrams for this connection that failed to parse (§10).
    pub malformed_dropped: u64,
    /// Packets whose number was too far from the largest received: forged
    /// or stale (§4.2).
    pub out_of_window_dropped: u64,
    /// Packets that failed pre-shared-key authentication, or arrived in
    /// clear on a connection that uses a key (§3.7).
    pub unauthenticated_dropped: u64,
    /// RETRY packets that sent the client back with a token (§6.8).
    pub retries: u64,
    /// CLOSE replies not sent in CLOSING because the anti-amplification
    /// budget had no room for them (§6.7).
    pub closes_suppressed: u64,
    /// Messages queued by the application, and received whole.
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Message payload bytes handed to the application.
    pub bytes_delivered: u64,
    /// Current RTT estimate, in microseconds (§9.1).
    pub smoothed_rtt_us: u64,
    pub min_rtt_us: u64,
    pub rtt_var_us: u64,
    /// Current congestion window and bytes in flight (§9.4).
    pub congestion_window: u64,
    pub bytes_in_flight: u64,
    /// Current pacing rate, bytes per second (§9.6).
    pub pacing_rate: u64,
    /// Bytes received and held, not yet taken by the application; never
    /// more than the receive window (§8.3).
    pub receive_buffered: u64,
    /// Bytes queued to send and not yet acknowledged (the send buffer).
    pub send_buffered: u64,
    /// Current receive window: it grows when it limits the peer (§8.3).
    pub receive_window: u64,
    /// Bytes of memory the receive side's buffers hold (reassembly and
    /// whole messages not yet read): bounded by the window (§8.2, §13).
    pub receive_memory: u64,
    /// Sent packets recorded and not yet acknowledged or lost (§9.2).
    pub packets_tracked: u64,
}

impl Stats {
    /// One compact line for people, at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "packets sent {} received {}, retransmitted {}, lost {}, duplicates discarded {}, \
             corrupt dropped {}; RTT {:.2} ms (min {:.2} ms); cwnd {} B; delivered {} B in {} messages",
            self.packets_sent,
            self.packets_received,
            self.packets_retransmitted,
            self.packets_lost,
            self.duplicates_discarded,
            self.corrupt_dropped,
            self.smoothed_rtt_us as f64 / 1000.0,
            self.min_rtt_us as f64 / 1000.0,
            self.congestion_window,
            self.bytes_delivered,
            self.messages_received,
        );
        for (n, what) in [
            (self.malformed_dropped, "malformed"),
            (self.out_of_window_dropped, "out of window"),
            (self.unauthenticated_dropped, "unauthenticated"),
        ] {
            if n > 0 {
                let _ = write!(s, "; {what} dropped {n}");
            }
        }
        s
    }

    /// Adds another connection's counters (for totals over many
    /// connections); the current estimates are taken from `other`.
    pub fn accumulate(&mut self, other: &Stats) {
        self.packets_sent += other.packets_sent;
        self.bytes_sent += other.bytes_sent;
        self.packets_received += other.packets_received;
        self.bytes_received += other.bytes_received;
        self.packets_retransmitted += other.packets_retransmitted;
        self.stream_bytes_retransmitted += other.stream_bytes_retransmitted;
        self.packets_lost += other.packets_lost;
        self.spurious_losses += other.spurious_losses;
        self.probe_timeouts += other.probe_timeouts;
        self.duplicates_discarded += other.duplicates_discarded;
        self.corrupt_dropped += other.corrupt_dropped;
        self.malformed_dropped += other.malformed_dropped;
        self.out_of_window_dropped += other.out_of_window_dropped;
        self.unauthenticated_dropped += other.unauthenticated_dropped;
        self.retries += other.retries;
        self.closes_suppressed += other.closes_suppressed;
        self.stream_bytes_bundled += other.stream_bytes_bundled;
        self.messages_sent += other.messages_sent;
        self.messages_received += other.messages_received;
        self.bytes_delivered += other.bytes_delivered;
        self.smoothed_rtt_us = other.smoothed_rtt_us;
        self.min_rtt_us = other.min_rtt_us;
        self.rtt_var_us = other.rtt_var_us;
        self.congestion_window = other.congestion_window;
        self.bytes_in_flight = other.bytes_in_flight;
        self.receive_buffered = other.receive_buffered;
        self.send_buffered = other.send_buffered;
    }
}

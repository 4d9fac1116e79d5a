//! Per-connection counters (issue: statistics), readable at any time.

use serde::Serialize;

/// What one connection did. Counters only grow; the RTT and window fields
/// are the current values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// Packets declared lost (§9.2).
    pub packets_lost: u64,
    /// Probe timeouts that fired (§9.3).
    pub probe_timeouts: u64,
    /// Packets received twice and discarded (§7.4).
    pub duplicates_discarded: u64,
    /// Datagrams addressed to this connection whose checksum failed (§3.6).
    pub corrupt_dropped: u64,
    /// Datagrams for this connection that failed to parse (§10).
    pub malformed_dropped: u64,
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
    /// Bytes received and held, not yet taken by the application; never
    /// more than the receive window (§8.3).
    pub receive_buffered: u64,
    /// Bytes queued to send and not yet acknowledged (the send buffer).
    pub send_buffered: u64,
}

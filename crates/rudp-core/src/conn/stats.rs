//! Per-connection statistics, readable at any time, in groups: what was
//! sent, what was received, the path's current estimates and the buffers.
//!
//! Counters are defined with [`crate::counters!`], so the totals over many
//! connections ([`Stats::accumulate`]) add every field without a list to
//! keep up to date; the current estimates are taken whole from the last
//! connection added.

use std::fmt::Write;
use std::time::Duration;

crate::counters! {
    /// What this side sent, and what became of it.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[non_exhaustive]
    pub struct SentStats {
        /// Datagrams sent.
        pub packets: u64,
        /// Their bytes (UDP payload).
        pub bytes: u64,
        /// Packets that resent stream data.
        pub packets_retransmitted: u64,
        /// Stream bytes sent again.
        pub stream_bytes_retransmitted: u64,
        /// Unacknowledged stream bytes sent again, unasked, in the spare
        /// room of a later packet of a thin stream (§8.4).
        pub stream_bytes_bundled: u64,
        /// Packets declared lost (§9.2).
        pub packets_lost: u64,
        /// Of those, packets that carried only acknowledgements (or
        /// padding): nothing to send again, so they are lost but never
        /// retransmitted.
        pub ack_only_lost: u64,
        /// Of those, packets acknowledged after all: losses that were
        /// really reordering (§9.2).
        pub spurious_losses: u64,
        /// Probe timeouts that fired (§9.3).
        pub probe_timeouts: u64,
        /// CLOSE replies not sent in CLOSING because the
        /// anti-amplification budget had no room for them (§6.7).
        pub closes_suppressed: u64,
        /// Messages queued by the application.
        pub messages: u64,
        /// Path MTU probes sent (§9.7).
        pub mtu_probes: u64,
        /// Of those, declared lost: the path did not carry their size.
        pub mtu_probes_lost: u64,
        /// Times packets of the size in use stopped arriving and the size
        /// fell back to 1200 (§9.7).
        pub mtu_black_holes: u64,
        /// Version 3: times this side moved its sending key on (§16.6).
        pub rekeys: u64,
    }
}

crate::counters! {
    /// What this side received for the connection, and what it dropped.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[non_exhaustive]
    pub struct ReceivedStats {
        /// Valid datagrams received.
        pub packets: u64,
        /// Their bytes (UDP payload).
        pub bytes: u64,
        /// Packets received twice and discarded (§7.4).
        pub duplicates_discarded: u64,
        /// Datagrams whose checksum failed (§3.6). A corrupted DATA packet
        /// of version 3 has no checksum and counts as unauthenticated
        /// (§16.3).
        pub corrupt_dropped: u64,
        /// Datagrams that failed to parse (§10).
        pub malformed_dropped: u64,
        /// Packets whose number was too far from the largest received:
        /// forged or stale (§4.2).
        pub out_of_window_dropped: u64,
        /// Packets that failed authentication (a pre-shared key's, §3.7, or
        /// version 3's keys, §16.5: forged, altered or corrupted on the
        /// way), or arrived in clear on a connection that seals.
        pub unauthenticated_dropped: u64,
        /// RETRY packets that sent the client back with a token (§6.8).
        pub retries: u64,
        /// Version 3: times the peer's key moved on (§16.6).
        pub rekeys: u64,
        /// Messages received whole and handed to the application.
        pub messages: u64,
        /// Their payload bytes.
        pub bytes_delivered: u64,
    }
}

crate::counters! {
    /// Path validation and migration (§6.9).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[non_exhaustive]
    pub struct MigrationStats {
        /// Valid packets from an address other than the peer's: only their
        /// path-validation frames were processed (§6.9).
        pub packets_unvalidated: u64,
        /// Validations of a new peer address started: a valid packet came
        /// from it.
        pub validations_started: u64,
        /// PATH_CHALLENGEs sent.
        pub challenges_sent: u64,
        /// Moves to a validated new address (each ends one validation).
        pub migrations: u64,
        /// Of those, to a new IP address: RTT, congestion control and path
        /// MTU started over.
        pub path_resets: u64,
        /// Validations abandoned, their challenges unanswered.
        pub validations_failed: u64,
        /// PATH_RESPONSEs sent, answering the peer's challenges.
        pub responses_sent: u64,
        /// Responses not sent: owed to an address that was neither the
        /// peer's nor being validated, or beyond its budget (§6.7).
        pub responses_suppressed: u64,
    }
}

crate::counters! {
    /// Version 2's streams, partial reliability and datagrams (§15).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[non_exhaustive]
    pub struct StreamStats {
        /// Version negotiations that made this client fall back from
        /// version 2 to version 1 (§3.5).
        pub version_fallbacks: u64,
        /// Streams this side opened.
        pub opened: u64,
        /// Streams the peer opened.
        pub accepted: u64,
        /// Streams whose sending half this side reset (the application, or
        /// the peer's STOP_SENDING).
        pub reset: u64,
        /// Messages this side abandoned: their lifetime or retransmission
        /// budget ran out (§15.5).
        pub messages_abandoned: u64,
        /// Messages the peer abandoned, reported to the application as
        /// skipped.
        pub messages_skipped: u64,
        /// Datagrams sent (§15.6).
        pub datagrams_sent: u64,
        /// Of those, in packets acknowledged.
        pub datagrams_acked: u64,
        /// Of those, in packets declared lost (never resent).
        pub datagrams_lost: u64,
        /// Datagrams dropped before sending: the send queue overflowed, or
        /// the path's datagram size fell below them.
        pub datagrams_dropped_unsent: u64,
        /// Datagrams received and queued for the application.
        pub datagrams_received: u64,
        /// Datagrams received and dropped: the receive queue was full.
        pub datagrams_dropped_received: u64,
    }
}

/// The path's current estimates (not counters: totals take the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PathStats {
    /// Smoothed round-trip time (§9.1).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "smoothed_rtt_ms", serialize_with = "millis")
    )]
    pub smoothed_rtt: Duration,
    /// Smallest round-trip time seen.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "min_rtt_ms", serialize_with = "millis")
    )]
    pub min_rtt: Duration,
    /// Round-trip time variation.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rtt_var_ms", serialize_with = "millis")
    )]
    pub rtt_var: Duration,
    /// Congestion window, bytes (§9.4).
    pub congestion_window: u64,
    /// Bytes in flight.
    pub bytes_in_flight: u64,
    /// Pacing rate, bytes per second (§9.6).
    pub pacing_rate: u64,
    /// The congestion controller that ran
    /// ([`crate::congestion::ControllerFactory::name`]).
    pub congestion: &'static str,
    /// The largest datagram in use, bytes: 1200 until path MTU discovery
    /// finds more (§9.7).
    pub max_datagram_size: u64,
}

/// Buffers and bookkeeping now (not counters: totals take the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BufferStats {
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
    /// Datagrams queued to send (§15.6).
    pub datagrams_queued: u64,
}

/// What one connection did, and its current estimates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// What this side sent.
    pub sent: SentStats,
    /// What this side received.
    pub received: ReceivedStats,
    /// The path's current estimates.
    pub path: PathStats,
    /// Path validation and migration.
    pub migration: MigrationStats,
    /// Streams, partial reliability and datagrams (version 2).
    pub streams: StreamStats,
    /// Buffers now.
    pub buffers: BufferStats,
}

#[cfg(feature = "serde")]
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Stats {
    /// One compact line for people, at the end of a run.
    pub fn summary(&self) -> String {
        let (sent, received, path) = (&self.sent, &self.received, &self.path);
        // "retransmitted 0, lost 4" reads as a contradiction unless the
        // lost packets carried only acknowledgements: say so (issue #26).
        let lost = if sent.ack_only_lost > 0 {
            format!(
                "{} ({} acknowledgements only)",
                sent.packets_lost, sent.ack_only_lost
            )
        } else {
            sent.packets_lost.to_string()
        };
        let mut s = format!(
            "packets sent {} received {}, retransmitted {}, lost {}, duplicates discarded {}, \
             corrupt dropped {}; RTT {:.2} ms (min {:.2} ms); cwnd {} B; delivered {} B in {} messages",
            sent.packets,
            received.packets,
            sent.packets_retransmitted,
            lost,
            received.duplicates_discarded,
            received.corrupt_dropped,
            path.smoothed_rtt.as_secs_f64() * 1000.0,
            path.min_rtt.as_secs_f64() * 1000.0,
            path.congestion_window,
            received.bytes_delivered,
            received.messages,
        );
        // Real paths (§6.9, §9.7): shown only when something happened.
        let m = &self.migration;
        if m.migrations > 0 || m.validations_failed > 0 {
            let _ = write!(
                s,
                "; peer moved {} time(s), {} new address(es) not validated",
                m.migrations, m.validations_failed
            );
        }
        if path.max_datagram_size > 1200 {
            let _ = write!(s, "; datagrams up to {} B", path.max_datagram_size);
        }
        if sent.mtu_black_holes > 0 {
            let _ = write!(s, "; path MTU black holes {}", sent.mtu_black_holes);
        }
        // Version 2 (§15): shown only when used.
        let st = &self.streams;
        if st.version_fallbacks > 0 {
            let _ = write!(s, "; the server speaks protocol version 1 only");
        }
        if st.opened + st.accepted > 0 {
            let _ = write!(
                s,
                "; streams opened {}, accepted {}",
                st.opened, st.accepted
            );
        }
        if st.messages_abandoned + st.messages_skipped > 0 {
            let _ = write!(
                s,
                "; messages expired: {} abandoned, {} skipped",
                st.messages_abandoned, st.messages_skipped
            );
        }
        if st.datagrams_sent + st.datagrams_received > 0 {
            let _ = write!(
                s,
                "; datagrams sent {} ({} lost), received {}",
                st.datagrams_sent, st.datagrams_lost, st.datagrams_received
            );
        }
        for (n, what) in [
            (received.malformed_dropped, "malformed"),
            (received.out_of_window_dropped, "out of window"),
            (received.unauthenticated_dropped, "unauthenticated"),
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
        self.sent.accumulate(&other.sent);
        self.received.accumulate(&other.received);
        self.migration.accumulate(&other.migration);
        self.streams.accumulate(&other.streams);
        self.path = other.path.clone();
        self.buffers = other.buffers.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "retransmitted 0, lost 4" said nothing of why nothing was resent:
    /// lost packets that carried only acknowledgements are named.
    #[test]
    fn lost_acknowledgements_are_told_apart() {
        let mut s = Stats::default();
        s.sent.packets_lost = 4;
        assert!(
            s.summary().contains("retransmitted 0, lost 4, "),
            "{}",
            s.summary()
        );
        s.sent.ack_only_lost = 4;
        assert!(
            s.summary()
                .contains("retransmitted 0, lost 4 (4 acknowledgements only), "),
            "{}",
            s.summary()
        );
    }

    #[test]
    fn the_summary_mentions_moves_and_datagram_sizes_only_when_they_happened() {
        let mut st = Stats::default();
        st.path.max_datagram_size = 1200;
        let quiet = st.summary();
        assert!(
            !quiet.contains("moved") && !quiet.contains("datagrams up to"),
            "{quiet}"
        );
        st.migration.migrations = 3;
        st.path.max_datagram_size = 1472;
        st.sent.mtu_black_holes = 1;
        let busy = st.summary();
        assert!(
            busy.contains("peer moved 3 time(s), 0 new address(es) not validated"),
            "{busy}"
        );
        assert!(busy.contains("datagrams up to 1472 B"), "{busy}");
        assert!(busy.contains("path MTU black holes 1"), "{busy}");
    }

    #[test]
    fn totals_add_every_counter_and_take_the_last_estimates() {
        let mut one = Stats::default();
        one.sent.stream_bytes_bundled = 5;
        one.received.bytes_delivered = 7;
        one.path.pacing_rate = 100;
        let mut two = one.clone();
        two.path.pacing_rate = 200;
        two.buffers.receive_window = 9;
        let mut total = Stats::default();
        total.accumulate(&one);
        total.accumulate(&two);
        assert_eq!(total.sent.stream_bytes_bundled, 10);
        assert_eq!(total.received.bytes_delivered, 14);
        assert_eq!(total.path.pacing_rate, 200);
        assert_eq!(total.buffers.receive_window, 9);
    }
}

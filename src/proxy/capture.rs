//! `rudp proxy --pcap FILE`: every datagram the proxy received, both
//! directions, and what it did to each, in pcapng (docs/proxy.md).
//!
//! Each datagram is written as the proxy received it, wrapped in IPv4 or
//! IPv6 and UDP headers between the client and the server (so Wireshark's
//! dissectors, rudp's included, decode it), with a packet comment giving the
//! direction and the verdict: forwarded after how long, dropped and why,
//! duplicated, reordered, which bit was corrupted. The file is bounded: once
//! the next packet would pass the limit, capturing stops, with a warning
//! and a last comment saying so; the proxy carries on.

use etherparse::PacketBuilder;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use rudp_core::impair::Verdict;
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Default `--pcap-limit`: 100 MB.
pub const DEFAULT_PCAP_LIMIT: u64 = 100_000_000;

/// Which way a datagram was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// An open capture.
pub struct Capture {
    writer: Option<PcapNgWriter<BufWriter<std::fs::File>>>,
    written: u64,
    limit: u64,
    /// Datagrams recorded, and those left out once the limit was reached.
    pub recorded: u64,
    pub left_out: u64,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("written", &self.written)
            .field("limit", &self.limit)
            .field("recorded", &self.recorded)
            .finish()
    }
}

impl Capture {
    /// Creates (or truncates) `path` and writes the pcapng header: one
    /// interface of raw IP packets with nanosecond timestamps.
    pub fn create(path: &Path, limit: u64) -> std::io::Result<Capture> {
        let file = BufWriter::new(std::fs::File::create(path)?);
        let mut writer = PcapNgWriter::new(file).map_err(std::io::Error::other)?;
        let written = writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::RAW,
                snaplen: 0,
                options: vec![
                    // Timestamps in nanoseconds (10^-9).
                    InterfaceDescriptionOption::IfTsResol(9),
                    InterfaceDescriptionOption::IfName(Cow::Borrowed("rudp proxy")),
                ],
            })
            .map_err(std::io::Error::other)?;
        Ok(Capture {
            writer: Some(writer),
            written: written as u64 + 32, // and the section header
            limit,
            recorded: 0,
            left_out: 0,
        })
    }

    /// Records one datagram received from `client` (way `Up`) or for it
    /// (way `Down`), with what the proxy did to it.
    pub fn record(
        &mut self,
        way: Way,
        client: SocketAddr,
        server: SocketAddr,
        data: &[u8],
        verdict: &Verdict,
    ) {
        let Some(writer) = self.writer.as_mut() else {
            self.left_out += 1;
            return;
        };
        let (from, to, label) = match way {
            Way::Up => (client, server, "client->server"),
            Way::Down => (server, client, "server->client"),
        };
        let Some(packet) = ip_udp(from, to, data) else {
            self.left_out += 1;
            return;
        };
        let comment = format!("{label}: {verdict}");
        // Block overhead: 32 bytes, the comment option, padding.
        let size = 40 + packet.len() as u64 + comment.len() as u64;
        if self.written + size > self.limit {
            tracing::warn!(
                limit = self.limit,
                "pcap size limit reached: capture stopped (the proxy goes on)"
            );
            let note = format!(
                "capture stopped: the next packet would pass the limit of {} bytes",
                self.limit
            );
            let _ = writer.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: now(),
                original_len: 0,
                data: Cow::Borrowed(&[]),
                options: vec![EnhancedPacketOption::Comment(Cow::Owned(note))],
            });
            self.finish();
            self.left_out += 1;
            return;
        }
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: now(),
            original_len: packet.len() as u32,
            data: Cow::Borrowed(&packet),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment))],
        };
        match writer.write_pcapng_block(block) {
            Ok(n) => {
                self.written += n as u64;
                self.recorded += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "pcap write failed: capture stopped");
                self.writer = None;
                self.left_out += 1;
            }
        }
    }

    /// Flushes and closes the file; later datagrams are left out.
    pub fn finish(&mut self) {
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.into_inner().flush() {
                tracing::warn!(error = %e, "pcap flush failed");
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `data` in UDP and IP headers from `from` to `to`, or `None` when the
/// two addresses are of different families (an IPv4 client of an IPv6
/// server is written as IPv6, mapped) or the datagram is too large.
fn ip_udp(from: SocketAddr, to: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
    let builder = match (from.ip(), to.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), 64),
        (a, b) => PacketBuilder::ipv6(v6(a).octets(), v6(b).octets(), 64),
    };
    let builder = builder.udp(from.port(), to.port());
    let mut out = Vec::with_capacity(builder.size(data.len()));
    builder.write(&mut out, data).ok()?;
    Some(out)
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

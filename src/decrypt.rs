//! `rudp decrypt --keylog FILE IN OUT`: a capture of `rudp proxy --pcap`
//! with every version-3 packet whose keys the key log holds turned to
//! clear (PROTOCOL.md §16.7), so the dissector shows its frames
//! (docs/wireshark.md). Everything else is copied as it was, the proxy's
//! verdict comments included.
//!
//! A decrypted packet keeps its header, with the sealed bit cleared, and
//! the NOISE frame an ACCEPT starts with; its frames follow in clear and
//! the CRC32C is computed anew. The connection is found by CID: a key-log
//! line names the client's CID, which server-to-client packets carry; an
//! ACCEPT names both CIDs, which tells the server's CID that
//! client-to-server packets carry.
//!
//! OUT is written to a temporary file beside it and renamed into place at
//! the end: an interrupted run leaves no half capture that looks whole.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use rudp_core::capture::{CaptureKeys, Opened};
use rudp_core::wire::ConnectionId;
use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use thiserror::Error;

/// Why a capture could not be decrypted.
#[derive(Debug, Error)]
pub enum DecryptError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a pcapng capture: {why}")]
    Format { path: String, why: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no RUDP_TRAFFIC_V3 line")]
    NoKeys { path: String },
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Packets in the capture.
    pub packets: u64,
    /// Version-3 sealed packets seen.
    pub sealed: u64,
    /// Of those, turned to clear.
    pub decrypted: u64,
}

/// Decrypts `input` into `output` with the keys of `keylog`.
pub fn decrypt(keylog: &Path, input: &Path, output: &Path) -> Result<Summary, DecryptError> {
    let shown = |p: &Path| p.display().to_string();
    let text = read_keylog(keylog).map_err(|source| DecryptError::Read {
        path: shown(keylog),
        source,
    })?;
    let entries = crate::keylog::parse(&text);
    if entries.is_empty() {
        return Err(DecryptError::NoKeys {
            path: shown(keylog),
        });
    }
    let mut keys = CaptureKeys::new();
    for e in entries {
        keys.insert(
            ConnectionId(e.client_cid),
            e.cipher,
            e.client_to_server,
            e.server_to_client,
        );
    }
    let file = std::fs::File::open(input).map_err(|source| DecryptError::Read {
        path: shown(input),
        source,
    })?;
    let mut reader =
        PcapNgReader::new(std::io::BufReader::new(file)).map_err(|e| DecryptError::Format {
            path: shown(input),
            why: e.to_string(),
        })?;
    let werr = |source| DecryptError::Write {
        path: shown(output),
        source,
    };
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".rudp-decrypt")
        .tempfile_in(dir)
        .map_err(werr)?;
    let mut writer = PcapNgWriter::with_section_header(
        std::io::BufWriter::new(tmp.reopen().map_err(werr)?),
        reader.section().clone(),
    )
    .map_err(|e| werr(std::io::Error::other(e)))?;
    let mut summary = Summary::default();
    while let Some(block) = reader.next_block() {
        let block = block.map_err(|e| DecryptError::Format {
            path: shown(input),
            why: e.to_string(),
        })?;
        let block = match block {
            Block::EnhancedPacket(p) => {
                summary.packets += 1;
                match clear_packet(&p.data, &mut keys, &mut summary) {
                    Some(data) => Block::EnhancedPacket(EnhancedPacketBlock {
                        original_len: data.len() as u32,
                        data: Cow::Owned(data),
                        ..p
                    }),
                    None => Block::EnhancedPacket(p),
                }
            }
            other => other,
        };
        writer
            .write_block(&block)
            .map_err(|e| werr(std::io::Error::other(e)))?;
    }
    writer.into_inner().flush().map_err(werr)?;
    tmp.persist(output).map_err(|e| werr(e.error))?;
    Ok(summary)
}

/// The largest key log read: 200,000 connections' lines.
pub const MAX_KEYLOG: u64 = 64 << 20;

/// A key log, at most [`MAX_KEYLOG`] bytes (a larger one is an error, not
/// a reason to fill the memory).
fn read_keylog(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_KEYLOG + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_KEYLOG {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_KEYLOG >> 20
        )));
    }
    Ok(text)
}

/// The IP packet `ip` with its rudp packet in clear, if it holds a
/// version-3 sealed packet whose key is known.
fn clear_packet(ip: &[u8], keys: &mut CaptureKeys, summary: &mut Summary) -> Option<Vec<u8>> {
    let sliced = SlicedPacket::from_ip(ip).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let Some(TransportSlice::Udp(udp)) = sliced.transport else {
        return None;
    };
    let out = match keys.open(udp.payload()) {
        Opened::NotSealed => return None,
        Opened::NoKey => {
            summary.sealed += 1;
            return None;
        }
        Opened::Clear(out) => {
            summary.sealed += 1;
            out
        }
    };
    let builder = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => PacketBuilder::ipv6(a.octets(), b.octets(), 64),
        _ => return None,
    }
    .udp(udp.source_port(), udp.destination_port());
    let mut packet = Vec::with_capacity(builder.size(out.len()));
    builder.write(&mut packet, &out).ok()?;
    summary.decrypted += 1;
    Some(packet)
}

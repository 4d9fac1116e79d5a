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
use rudp_core::cipher::PacketCipher;
use rudp_core::psk::PacketKey;
use rudp_core::wire::packet::{append_checksum, decode};
use rudp_core::wire::{Datagram, Frame, Header, PacketType, Protection};
use std::borrow::Cow;
use std::collections::HashMap;
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

/// How many rekeys (§16.6) past the newest key seen a packet may be
/// sealed with: a sender moves on at most once per acknowledged key, so a
/// capture that missed a few packets is still followed.
const REKEYS_AHEAD: usize = 4;

/// One direction's keys: the first, from the key log, and each that
/// followed by REKEY (§16.6), as far as the packets went.
struct Direction {
    cipher: PacketCipher,
    /// The newest key's raw bytes, from which the next one follows.
    newest: [u8; 32],
    /// The previous key (packets on their way when the sender moved on)
    /// and the newest one.
    previous: Option<PacketKey>,
    current: PacketKey,
}

impl Direction {
    fn new(cipher: PacketCipher, first: [u8; 32]) -> Self {
        Self {
            cipher,
            newest: first,
            previous: None,
            current: PacketKey::from_raw(cipher, first),
        }
    }

    /// Opens a sealed payload with the current key, the previous one, or
    /// one of the next [`REKEYS_AHEAD`], moving on to the one that opens.
    fn open(&mut self, pn: u64, aad: &[u8], sealed: &[u8], plain: &mut Vec<u8>) -> bool {
        if self.current.open(pn, aad, sealed, plain).is_ok() {
            return true;
        }
        if let Some(p) = &self.previous {
            if p.open(pn, aad, sealed, plain).is_ok() {
                return true;
            }
        }
        // The key just before the one that opens becomes the previous:
        // late packets come from there, whatever the capture missed.
        let mut before = self.current.clone();
        let mut raw = self.newest;
        for _ in 0..REKEYS_AHEAD {
            raw = rudp_core::noise::rekey(self.cipher, &raw);
            let key = PacketKey::from_raw(self.cipher, raw);
            if key.open(pn, aad, sealed, plain).is_ok() {
                self.previous = Some(before);
                self.current = key;
                self.newest = raw;
                return true;
            }
            before = key;
        }
        false
    }
}

/// The key log's keys, by client CID (client to server, server to
/// client), and the server CIDs learned.
struct Keys {
    by_client: HashMap<u64, (Direction, Direction)>,
    client_of_server: HashMap<u64, u64>,
}

impl Keys {
    /// The direction whose keys open a packet to `dcid`, if known.
    fn for_packet(&mut self, header: &Header) -> Option<&mut Direction> {
        if let (PacketType::Accept, Some(scid)) = (header.ty, header.scid) {
            self.client_of_server.insert(scid.0, header.dcid.0);
        }
        if self.by_client.contains_key(&header.dcid.0) {
            return self.by_client.get_mut(&header.dcid.0).map(|(_, s2c)| s2c);
        }
        let client = self.client_of_server.get(&header.dcid.0)?;
        self.by_client.get_mut(client).map(|(c2s, _)| c2s)
    }
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
    let mut keys = Keys {
        by_client: entries
            .into_iter()
            .map(|e| {
                let c2s = Direction::new(e.cipher, e.client_to_server);
                let s2c = Direction::new(e.cipher, e.server_to_client);
                (e.client_cid, (c2s, s2c))
            })
            .collect(),
        client_of_server: HashMap::new(),
    };
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
fn clear_packet(ip: &[u8], keys: &mut Keys, summary: &mut Summary) -> Option<Vec<u8>> {
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
    let datagram = udp.payload();
    let Ok(Datagram::Packet { header, payload }) = decode(datagram) else {
        return None;
    };
    if header.version != rudp_core::wire::VERSION_3 || header.protection != Protection::Sealed {
        return None;
    }
    summary.sealed += 1;
    // An ACCEPT's NOISE frame is in clear and part of the associated data.
    let mut r = rudp_core::wire::Reader::new(payload);
    let clear = match (header.ty, rudp_core::wire::frame::decode_one(&mut r)) {
        (PacketType::Accept, Ok(Frame::Noise(_))) => payload.len() - r.remaining(),
        _ => 0,
    };
    let keys = keys.for_packet(&header)?;
    let mut aad = Vec::with_capacity(28 + clear);
    header.encode(&mut aad);
    aad.extend_from_slice(&payload[..clear]);
    let mut frames = Vec::new();
    if !keys.open(header.pn, &aad, &payload[clear..], &mut frames) {
        return None;
    }
    let mut out = Vec::with_capacity(datagram.len());
    Header {
        protection: Protection::Clear,
        ..header
    }
    .encode(&mut out);
    out.extend_from_slice(&payload[..clear]);
    out.extend_from_slice(&frames);
    append_checksum(&mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// §16.6: a direction's keys follow the sender's rekeys from the key
    /// log's first key: late packets under the previous key still open,
    /// and a key more than [`REKEYS_AHEAD`] moves away does not.
    #[test]
    fn a_direction_follows_rekeys_for_both_ciphers() {
        for cipher in PacketCipher::ALL {
            let mut raw = [9u8; 32];
            let mut chain = vec![raw];
            for _ in 0..8 {
                raw = rudp_core::noise::rekey(cipher, &raw);
                chain.push(raw);
            }
            let sealed = |generation: usize, pn: u64| {
                let mut p = b"frames".to_vec();
                PacketKey::from_raw(cipher, chain[generation]).seal(pn, 0, &mut p);
                p
            };
            let mut d = Direction::new(cipher, chain[0]);
            let mut plain = Vec::new();
            // Generation 2's first packet arrives after generation 3's.
            for (generation, pn) in [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (3, 6)] {
                assert!(
                    d.open(pn, b"", &sealed(generation, pn), &mut plain),
                    "{cipher}: generation {generation}, pn {pn}"
                );
                assert_eq!(plain, b"frames");
            }
            // Two keys back, or five ahead, is out of reach.
            assert!(!d.open(7, b"", &sealed(0, 7), &mut plain));
            assert!(!d.open(8, b"", &sealed(8, 8), &mut plain));
            assert!(d.open(9, b"", &sealed(7, 9), &mut plain));
        }
    }
}

//! The envelope of every packet this side sends (PROTOCOL.md §3, §3.7,
//! §6.7, §16.3): its type, header and clear prefix, sealing and checksum,
//! the anti-amplification budget it is charged to, and the count. What
//! goes inside is `transmit`'s and `migration`'s.

use super::{Address, Connection, Side, State, MIN_BUDGETED_PACKET};
use crate::psk::TAG_LEN;
use crate::wire::packet::append_checksum;
use crate::wire::{Header, PacketType, Protection, CHECKSUM_LEN};
#[cfg(feature = "trace")]
use serde_json::json;
use std::time::Instant;

impl Connection {
    /// Whether the §6.7 limit applies: a server that has not yet seen a DATA
    /// packet from the client, so cannot know the client's address is real.
    pub(super) fn amplification_limited(&self) -> bool {
        self.side == Side::Server && !self.confirmed && self.address == Address::Unvalidated
    }

    /// Whether the §6.7 budget is too small for any packet.
    pub(super) fn amplification_blocked(&self) -> bool {
        self.amplification_limited()
            && matches!(self.state, State::Handshake | State::Established)
            && self.amplification_budget() < MIN_BUDGETED_PACKET
    }

    /// Bytes the server may still send before validation.
    pub(super) fn amplification_budget(&self) -> u64 {
        self.path.amplification.budget()
    }

    /// The type of the next packet (§3.3, §6.2): INITIAL until a client
    /// has the server's ACCEPT, ACCEPT until a server has the client's
    /// first DATA packet, DATA after.
    pub(super) fn packet_type(&self) -> PacketType {
        match self.side {
            Side::Client if self.state == State::Handshake => PacketType::Initial,
            Side::Server if !self.confirmed => PacketType::Accept,
            _ => PacketType::Data,
        }
    }

    /// The header of our packet `pn` of type `ty` (§3.1): sealed once we
    /// have keys, to the peer's CID, with ours where the type carries it.
    pub(super) fn header(&self, ty: PacketType, pn: u64) -> Header {
        Header {
            version: self.version,
            ty,
            protection: if self.keys.is_some() {
                Protection::Sealed
            } else {
                Protection::Clear
            },
            dcid: self.remote_cid,
            scid: ty.has_source_cid().then_some(self.local_cid),
            pn,
        }
    }

    /// Version 3's INITIAL and ACCEPT start with the handshake's NOISE
    /// frame, in clear (§16.3).
    fn clear_prefix(&self, ty: PacketType) -> Option<&[u8]> {
        if self.version == crate::wire::VERSION_3 && ty != PacketType::Data {
            self.handshake_frame()
        } else {
            None
        }
    }

    /// The first step of building a packet: the header, then the clear
    /// prefix, if any.
    pub(super) fn begin_packet(&self, ty: PacketType, pn: u64, out: &mut Vec<u8>) {
        self.header(ty, pn).encode(out);
        if let Some(prefix) = self.clear_prefix(ty) {
            out.extend_from_slice(prefix);
        }
    }

    /// Seals the frames after the header (and the clear prefix) with our
    /// key, if we have one, the rest being associated data, then appends
    /// the checksum, except to a sealed DATA packet of version 3 (§16.3):
    /// the last step of building a packet.
    pub(super) fn finish_packet(&self, ty: PacketType, pn: u64, out: &mut Vec<u8>) {
        if let Some(keys) = &self.keys {
            let clear = ty.header_len() + self.clear_prefix(ty).map_or(0, <[u8]>::len);
            keys.seal(pn, clear, out);
        }
        if self.header(ty, pn).has_checksum() {
            append_checksum(out);
        }
    }

    /// Bytes after the frames of a packet of type `ty`: the AEAD tag, if
    /// any, and the checksum, if any (§3.6, §16.3).
    pub(super) fn trailer_len(&self, ty: PacketType) -> usize {
        let tag = if self.keys.is_some() { TAG_LEN } else { 0 };
        let checksum = if self.header(ty, 0).has_checksum() {
            CHECKSUM_LEN
        } else {
            0
        };
        tag + checksum
    }

    /// The end of every packet this side sends, data or CLOSE: seals it
    /// (pre-shared key) and appends the checksum, counts it, charges it to
    /// the anti-amplification budget (§6.7), and traces it with the frames
    /// as they went out. `retransmission` is `None` for a CLOSE.
    #[cfg_attr(not(feature = "trace"), allow(unused_variables))]
    pub(super) fn seal_and_count(
        &mut self,
        now: Instant,
        ty: PacketType,
        pn: u64,
        out: &mut Vec<u8>,
        retransmission: Option<bool>,
    ) {
        #[cfg(feature = "trace")]
        let frames = self
            .tracer
            .is_some()
            .then(|| out[ty.header_len()..].to_vec());
        self.finish_packet(ty, pn, out);
        self.stats.sent.packets += 1;
        self.stats.sent.bytes += out.len() as u64;
        if self.amplification_limited() {
            self.path.amplification.sent += out.len() as u64;
        }
        traced! {
            if let Some(frames) = frames {
                let header = self.header(ty, pn);
                let data = match retransmission {
                    Some(r) => json!({ "retransmission": r }),
                    None => json!({}),
                };
                if let Some(t) = self.tracer.as_mut() {
                    t.packet(now, "transport:packet_sent", &header, &frames, out.len(), data);
                }
            }
        }
    }
}

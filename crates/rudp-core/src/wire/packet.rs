//! Packet header, checksum and version negotiation (PROTOCOL.md §3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Magic 0x52 0x55 ("RU")    |  Version (8)  |   Type (8)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Destination Connection ID (64)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Source Connection ID (64): INITIAL, ACCEPT and RETRY only     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Packet Number (64)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Frames (1 or more) ...                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          CRC32C (32)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! All fixed-width fields are big-endian.

use super::{DecodeError, Reader};
use std::fmt;

/// The first two bytes of every rudp datagram: ASCII "RU" (§3.1).
pub const MAGIC: [u8; 2] = [0x52, 0x55];
/// Version 1: one stream of messages each way (§3.4).
pub const VERSION_1: u8 = 1;
/// Version 2: version 1 plus many streams, per-message reliability and
/// unreliable datagrams (§3.4, §15).
pub const VERSION_2: u8 = 2;
/// Version 3: version 2's frames and rules, every connection authenticated
/// and encrypted through a Noise handshake (§16).
pub const VERSION_3: u8 = 3;
/// The version a library client offers by default (§3.5). Version 3 needs
/// keys (`Config::security`); the command-line tools offer it by default.
pub const VERSION: u8 = VERSION_2;
/// Every version this implementation accepts, most preferred first.
pub const SUPPORTED_VERSIONS: &[u8] = &[VERSION_3, VERSION_2, VERSION_1];
/// The version byte that marks a version negotiation packet (§3.5).
pub const VERSION_NEGOTIATION: u8 = 0;
/// Length of the CRC32C trailer.
pub const CHECKSUM_LEN: usize = 4;

/// Where each header field lies in a datagram (§3.1), as smoltcp names its
/// offsets: code that reads a field before the whole packet is checked
/// (the endpoint's routing, the invariants of §3.4) uses these, not bare
/// numbers.
pub mod field {
    use std::ops::Range;

    /// Magic, "RU".
    pub const MAGIC: Range<usize> = 0..2;
    /// The version byte.
    pub const VERSION: usize = 2;
    /// The type byte (with the sealed bit).
    pub const TYPE: usize = 3;
    /// The destination connection ID.
    pub const DCID: Range<usize> = 4..12;
    /// The source connection ID, in long headers (INITIAL, ACCEPT, RETRY)
    /// and at the same place in every version's INITIAL (§3.4).
    pub const SCID: Range<usize> = 12..20;
    /// The packet number of a long header.
    #[cfg(test)]
    pub const LONG_PN: Range<usize> = 20..28;
    /// The packet number of a short header (DATA).
    #[cfg(test)]
    pub const SHORT_PN: Range<usize> = 12..20;
}

/// The 8-byte big-endian value at `range` of `data`, if it is there.
pub fn read_u64(data: &[u8], range: std::ops::Range<usize>) -> Option<u64> {
    let bytes: [u8; 8] = data.get(range)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Header length of INITIAL, ACCEPT and RETRY packets (with a source CID).
pub const LONG_HEADER_LEN: usize = 28;
/// Header length of DATA packets.
pub const SHORT_HEADER_LEN: usize = 20;

/// A 64-bit connection ID chosen at random by the endpoint that receives
/// packets carrying it (§3.2). Zero means "not yet known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The packet types of version 1 (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// Client to server, before the client knows the server's connection ID.
    Initial = 0x01,
    /// Server to client, until the client has proven it received one.
    Accept = 0x02,
    /// Either direction, once the handshake is done.
    Data = 0x03,
    /// Server to client, statelessly: "come back with this token" (§6.8).
    Retry = 0x04,
}

/// Bit of the type byte set on packets whose frames are sealed with the
/// pre-shared key (§3.7).
pub const SEALED_BIT: u8 = 0x40;

/// Whether a packet's frames travel in clear or sealed with the pre-shared
/// key's AEAD (§3.7). The header itself is always readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protection {
    #[default]
    /// Frames in clear.
    Clear,
    /// Frames sealed with the pre-shared key.
    Sealed,
}

impl PacketType {
    fn from_byte(b: u8) -> Result<(Self, Protection), DecodeError> {
        let protection = if b & SEALED_BIT != 0 {
            Protection::Sealed
        } else {
            Protection::Clear
        };
        let ty = match b & !SEALED_BIT {
            0x01 => Self::Initial,
            0x02 => Self::Accept,
            0x03 => Self::Data,
            0x04 => Self::Retry,
            _ => return Err(DecodeError::UnknownPacketType(b)),
        };
        Ok((ty, protection))
    }

    /// Whether the header carries a source connection ID.
    pub fn has_source_cid(self) -> bool {
        matches!(self, Self::Initial | Self::Accept | Self::Retry)
    }

    /// Bytes of the header of this packet type.
    pub fn header_len(self) -> usize {
        if self.has_source_cid() {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }
}

/// A decoded packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The version byte: [`VERSION_1`], [`VERSION_2`] or [`VERSION_3`].
    pub version: u8,
    /// The packet type.
    pub ty: PacketType,
    /// Whether the payload is sealed (§3.7); the type byte's 0x40 bit.
    pub protection: Protection,
    /// The destination connection ID.
    pub dcid: ConnectionId,
    /// Present exactly when `ty.has_source_cid()`.
    pub scid: Option<ConnectionId>,
    /// The packet number (§4.2).
    pub pn: u64,
}

impl Header {
    /// The type byte: the packet type, and the sealed bit (§3.3).
    pub fn type_byte(&self) -> u8 {
        match self.protection {
            Protection::Clear => self.ty as u8,
            Protection::Sealed => self.ty as u8 | SEALED_BIT,
        }
    }

    /// Whether the packet ends with a CRC32C ([`has_checksum`]).
    pub fn has_checksum(&self) -> bool {
        has_checksum(self.version, self.type_byte())
    }

    /// Appends the header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.version);
        out.push(self.type_byte());
        out.extend_from_slice(&self.dcid.0.to_be_bytes());
        if self.ty.has_source_cid() {
            out.extend_from_slice(&self.scid.unwrap_or_default().0.to_be_bytes());
        }
        out.extend_from_slice(&self.pn.to_be_bytes());
    }
}

/// A version negotiation packet (§3.5): the answer to an INITIAL of a
/// version the server does not speak.
///
/// ```text
/// Magic (16) | 0x00 (8) | 0x00 (8) | DCID (64) | SCID (64) |
/// Supported Version (8) ... | CRC32C (32)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNegotiation {
    /// The client's source connection ID, echoed so the client can match it.
    pub dcid: ConnectionId,
    /// The server's connection ID (any value).
    pub scid: ConnectionId,
    /// The versions the server speaks, one byte each.
    pub versions: Vec<u8>,
}

impl VersionNegotiation {
    /// Appends the packet, checksum included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION_NEGOTIATION);
        out.push(0);
        out.extend_from_slice(&self.dcid.0.to_be_bytes());
        out.extend_from_slice(&self.scid.0.to_be_bytes());
        out.extend_from_slice(&self.versions);
        append_checksum(out);
    }
}

/// A checked datagram: either a packet of our version, whose payload still
/// has to be parsed into frames, or a version negotiation packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A packet of our version: its header and its (unparsed) payload.
    Packet {
        /// The checked header.
        header: Header,
        /// The frames, still encoded (and sealed, if the header says so).
        payload: &'a [u8],
    },
    /// A version negotiation packet.
    VersionNegotiation(VersionNegotiation),
}

/// Whether a packet of `version` whose type byte is `type_byte` ends with a
/// CRC32C (§3.6): every packet does but a sealed DATA packet of version 3,
/// whose AEAD tag already detects any change to any byte, so that a
/// checksum would cost both ends a pass over every byte for nothing
/// (§16.3). ACCEPTs keep theirs: their NOISE frame travels in clear, and
/// a corrupted one must be dropped as such, not fail the handshake.
pub fn has_checksum(version: u8, type_byte: u8) -> bool {
    version != crate::wire::VERSION_3 || type_byte != PacketType::Data as u8 | SEALED_BIT
}

/// Appends the CRC32C of everything in `out` (§3.6).
pub fn append_checksum(out: &mut Vec<u8>) {
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Checks magic, checksum and version, and splits off the header.
///
/// The order of checks is the one §10 prescribes: magic first (cheap, and it
/// rejects foreign traffic), then version (so that an unknown version can be
/// answered even if its checksum differs), then checksum, then header fields.
/// A sealed DATA packet of version 3 has no checksum ([`has_checksum`]):
/// its payload is checked when it is opened.
pub fn decode(datagram: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    if datagram.len() < 4 {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    if datagram[field::MAGIC] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = datagram[field::VERSION];
    if !SUPPORTED_VERSIONS.contains(&version) && version != VERSION_NEGOTIATION {
        // §3.4 invariants: the source CID sits at the same place in every
        // version's INITIAL.
        let scid = read_u64(datagram, field::SCID)
            .map(ConnectionId)
            .ok_or(DecodeError::TooShort(datagram.len()))?;
        return Err(DecodeError::UnsupportedVersion { version, scid });
    }
    if datagram.len() < SHORT_HEADER_LEN + CHECKSUM_LEN {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    let body = if has_checksum(version, datagram[field::TYPE]) {
        let (body, crc) = datagram.split_at(datagram.len() - CHECKSUM_LEN);
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc_bytes) {
            return Err(DecodeError::BadChecksum);
        }
        body
    } else {
        datagram
    };
    let mut r = Reader::new(&body[field::TYPE..]);
    let ty_byte = r.u8()?;
    if version == VERSION_NEGOTIATION {
        let dcid = ConnectionId(r.u64_be()?);
        let scid = ConnectionId(r.u64_be()?);
        let versions = r.bytes(r.remaining())?.to_vec();
        return Ok(Datagram::VersionNegotiation(VersionNegotiation {
            dcid,
            scid,
            versions,
        }));
    }
    let (ty, protection) = PacketType::from_byte(ty_byte)?;
    let dcid = ConnectionId(r.u64_be()?);
    let scid = if ty.has_source_cid() {
        Some(ConnectionId(r.u64_be()?))
    } else {
        None
    };
    let pn = r.u64_be()?;
    if pn > super::varint::MAX {
        // §4.2: ACK frames carry packet numbers as varints, so larger ones
        // could never be acknowledged.
        return Err(DecodeError::OutOfRange);
    }
    let payload = r.bytes(r.remaining())?;
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(Datagram::Packet {
        header: Header {
            version,
            ty,
            protection,
            dcid,
            scid,
            pn,
        },
        payload,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn field_ranges_are_where_the_encoder_writes() {
        for ty in [PacketType::Initial, PacketType::Data] {
            let h = Header {
                version: crate::wire::VERSION,
                ty,
                protection: Protection::Sealed,
                dcid: ConnectionId(0x1111_1111_1111_1111),
                scid: ty
                    .has_source_cid()
                    .then_some(ConnectionId(0x2222_2222_2222_2222)),
                pn: 0x3333_3333_3333_3333,
            };
            let mut out = Vec::new();
            h.encode(&mut out);
            assert_eq!(out.len(), ty.header_len());
            assert_eq!(out[field::MAGIC], MAGIC);
            assert_eq!(out[field::VERSION], VERSION);
            assert_eq!(out[field::TYPE], ty as u8 | SEALED_BIT);
            assert_eq!(read_u64(&out, field::DCID), Some(h.dcid.0));
            if ty.has_source_cid() {
                assert_eq!(read_u64(&out, field::SCID), h.scid.map(|c| c.0));
                assert_eq!(read_u64(&out, field::LONG_PN), Some(h.pn));
            } else {
                assert_eq!(read_u64(&out, field::SHORT_PN), Some(h.pn));
            }
        }
    }
    use super::*;
    use proptest::prelude::*;

    fn packet(header: Header, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        out.extend_from_slice(payload);
        append_checksum(&mut out);
        out
    }

    #[test]
    fn header_round_trip() {
        for (ty, protection) in [
            (PacketType::Initial, Protection::Clear),
            (PacketType::Accept, Protection::Sealed),
            (PacketType::Data, Protection::Clear),
            (PacketType::Data, Protection::Sealed),
            (PacketType::Retry, Protection::Clear),
        ] {
            let header = Header {
                version: crate::wire::VERSION,
                ty,
                protection,
                dcid: ConnectionId(7),
                scid: ty.has_source_cid().then_some(ConnectionId(9)),
                pn: 1234,
            };
            let bytes = packet(header, &[0x01]);
            assert_eq!(bytes.len(), ty.header_len() + 1 + CHECKSUM_LEN);
            match decode(&bytes).unwrap() {
                Datagram::Packet { header: h, payload } => {
                    assert_eq!(h, header);
                    assert_eq!(payload, &[0x01]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The standard CRC-32C check value PROTOCOL.md §3.6 quotes.
    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn corrupt_bit_is_detected() {
        let header = Header {
            version: crate::wire::VERSION,
            ty: PacketType::Data,
            protection: Protection::Clear,
            dcid: ConnectionId(1),
            scid: None,
            pn: 0,
        };
        let bytes = packet(header, &[0x01, 0x01]);
        for i in 3..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode(&b).is_err(), "flip of byte {i} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn packet_number_beyond_varint_range_is_malformed() {
        let header = Header {
            version: crate::wire::VERSION,
            ty: PacketType::Data,
            protection: Protection::Clear,
            dcid: ConnectionId(1),
            scid: None,
            pn: 1 << 62,
        };
        assert_eq!(
            decode(&packet(header, &[0x01])),
            Err(DecodeError::OutOfRange)
        );
        let ok = Header {
            pn: (1 << 62) - 1,
            ..header
        };
        assert!(decode(&packet(ok, &[0x01])).is_ok());
    }

    #[test]
    fn unknown_version_reports_scid() {
        let mut b = vec![0x52, 0x55, 0x07, 0x01];
        b.extend_from_slice(&0u64.to_be_bytes());
        b.extend_from_slice(&0xabcdu64.to_be_bytes());
        b.extend_from_slice(&[0; 20]);
        assert_eq!(
            decode(&b),
            Err(DecodeError::UnsupportedVersion {
                version: 7,
                scid: ConnectionId(0xabcd)
            })
        );
    }

    #[test]
    fn version_negotiation_round_trip() {
        let vn = VersionNegotiation {
            dcid: ConnectionId(5),
            scid: ConnectionId(0),
            versions: vec![1],
        };
        let mut out = Vec::new();
        vn.encode(&mut out);
        assert_eq!(decode(&out), Ok(Datagram::VersionNegotiation(vn)));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        /// Arbitrary bytes behind a valid magic, version and checksum never
        /// panic the decoder either (this reaches past the checksum).
        #[test]
        fn decode_sealed_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = vec![0x52, 0x55, VERSION];
            b.append(&mut bytes);
            append_checksum(&mut b);
            let _ = decode(&b);
        }
    }
}

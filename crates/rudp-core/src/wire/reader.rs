//! A cursor over untrusted bytes, and why decoding failed (PROTOCOL.md §4).

use super::varint;
use super::packet::ConnectionId;

/// Why a datagram could not be decoded. The receiver drops the datagram and
/// counts it (PROTOCOL.md §10); connection state never changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than any header (its length).
    TooShort(usize),
    /// The magic bytes are missing: not rudp.
    BadMagic,
    /// The CRC32C does not match (§3.6).
    BadChecksum,
    /// A version this implementation does not speak.
    UnsupportedVersion {
        /// The version byte.
        version: u8,
        /// The sender's source connection ID, read from the version-independent
        /// invariant positions (§3.4), so that a version negotiation reply can
        /// be addressed.
        scid: ConnectionId,
    },
    /// A packet type byte outside §3.3.
    UnknownPacketType(u8),
    /// A frame type byte outside §5.
    UnknownFrameType(u8),
    /// A frame or field runs past the end.
    Truncated,
    /// ACK ranges that overlap, underflow or are empty (§5.3).
    InvalidAck,
    /// A value beyond its limit.
    OutOfRange,
    /// A packet without frames.
    Empty,
}

/// A cursor over untrusted bytes whose every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The next 8 bytes as a big-endian integer.
    pub fn u64_be(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// The next variable-length integer (§4.1).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        varint::read(self)
    }

    /// A varint that must fit in `usize` (a length).
    pub fn varint_len(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.varint()?).map_err(|_| DecodeError::OutOfRange)
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort(v0) => write!(f, "datagram too short ({v0} bytes)"),
            Self::BadMagic => write!(f, "not an rudp datagram (bad magic)"),
            Self::BadChecksum => write!(f, "checksum mismatch"),
            Self::UnsupportedVersion { version, .. } => write!(f, "unsupported version {version}"),
            Self::UnknownPacketType(v0) => write!(f, "unknown packet type {v0:#04x}"),
            Self::UnknownFrameType(v0) => write!(f, "unknown frame type {v0:#04x}"),
            Self::Truncated => write!(f, "frame truncated"),
            Self::InvalidAck => write!(f, "invalid ack ranges"),
            Self::OutOfRange => write!(f, "value out of range"),
            Self::Empty => write!(f, "packet carries no frames"),
        }
    }
}

impl std::error::Error for DecodeError {}

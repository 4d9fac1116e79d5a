//! Why a connection ended, and the error codes CLOSE frames carry
//! (PROTOCOL.md §11).

use std::fmt;
use std::time::Duration;

/// Transport error codes of CLOSE frames of kind "transport" (§11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportCode {
    /// 0x0: the connection ended without error.
    NoError,
    /// 0x1: the implementation failed.
    InternalError,
    /// 0x2: the peer broke a rule of PROTOCOL.md.
    ProtocolViolation,
    /// 0x3: the peer sent beyond the flow-control limit, or too fragmented (§8.2).
    FlowControl,
    /// 0x4: data beyond or a change of the stream's announced end.
    FinalSize,
    /// 0x5: a message over the receiver's Max Message Size.
    MessageTooLarge,
    /// 0x6: the server will not take the connection (§6.3).
    ConnectionRefused,
    /// 0x7: handshake parameters outside their limits (§5.4).
    InvalidParameters,
    /// 0x8: a RETRY token that failed validation (§6.8).
    InvalidToken,
    /// 0x9: a stream beyond the advertised limit (§15.2).
    StreamLimit,
    /// 0xa: a frame for a stream in a state that cannot take it (§15.2).
    StreamState,
    /// A code this version does not define (kept, so it can be reported).
    Unknown(u64),
}

impl TransportCode {
    /// The code on the wire.
    pub fn to_u64(self) -> u64 {
        match self {
            Self::NoError => 0x0,
            Self::InternalError => 0x1,
            Self::ProtocolViolation => 0x2,
            Self::FlowControl => 0x3,
            Self::FinalSize => 0x4,
            Self::MessageTooLarge => 0x5,
            Self::ConnectionRefused => 0x6,
            Self::InvalidParameters => 0x7,
            Self::InvalidToken => 0x8,
            Self::StreamLimit => 0x9,
            Self::StreamState => 0xa,
            Self::Unknown(c) => c,
        }
    }

    /// The code for a wire value; unknown values are kept.
    pub fn from_u64(code: u64) -> Self {
        match code {
            0x0 => Self::NoError,
            0x1 => Self::InternalError,
            0x2 => Self::ProtocolViolation,
            0x3 => Self::FlowControl,
            0x4 => Self::FinalSize,
            0x5 => Self::MessageTooLarge,
            0x6 => Self::ConnectionRefused,
            0x7 => Self::InvalidParameters,
            0x8 => Self::InvalidToken,
            0x9 => Self::StreamLimit,
            0xa => Self::StreamState,
            c => Self::Unknown(c),
        }
    }
}

impl fmt::Display for TransportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::NoError => "NO_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ProtocolViolation => "PROTOCOL_VIOLATION",
            Self::FlowControl => "FLOW_CONTROL_ERROR",
            Self::FinalSize => "FINAL_SIZE_ERROR",
            Self::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Self::ConnectionRefused => "CONNECTION_REFUSED",
            Self::InvalidParameters => "INVALID_PARAMETERS",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::StreamLimit => "STREAM_LIMIT_ERROR",
            Self::StreamState => "STREAM_STATE_ERROR",
            Self::Unknown(c) => return write!(f, "unknown error {c:#x}"),
        };
        f.write_str(name)
    }
}

/// Why a connection failed. A graceful close is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Nothing was heard from the peer for the idle timeout (§9.5).
    TimedOut(Duration),
    /// The server speaks none of our versions (§3.5).
    VersionMismatch {
        /// The version this side speaks.
        ours: u8,
        /// The versions the server listed.
        theirs: Vec<u8>,
    },
    /// Version 3: the server's static key was refused by the verifier, or
    /// there is no way to verify it (§16.4).
    ServerKey {
        /// Why, for the user.
        reason: String,
    },
    /// The peer's rudp implementation closed the connection with an error.
    PeerTransportClose {
        /// The transport error code (§11).
        code: TransportCode,
        /// The reason, escaped for printing.
        reason: String,
    },
    /// The peer's application aborted the connection.
    PeerAborted {
        /// The application's code.
        code: VarInt,
        /// The reason, escaped for printing.
        reason: String,
    },
    /// This side found the peer breaking the protocol and closed.
    LocalTransportClose {
        /// The transport error code sent (§11).
        code: TransportCode,
        /// The reason sent.
        reason: String,
    },
    /// This side's application aborted the connection.
    LocallyAborted {
        /// The code this side gave.
        code: VarInt,
    },
}

/// An application error code: a variable-length integer of at most 62
/// bits, as CLOSE frames carry it (PROTOCOL.md §4.1, §5.7). Checked when
/// made, so a code is never silently truncated on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VarInt(u64);

/// A value above [`VarInt::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarIntBoundsExceeded(
    /// The value that did not fit.
    pub u64,
);

impl VarInt {
    /// The largest value: 2^62 - 1.
    pub const MAX: VarInt = VarInt(crate::wire::varint::MAX);
    /// Zero, the code of an abort without a reason.
    pub const ZERO: VarInt = VarInt(0);

    /// Any `u32` fits.
    pub const fn from_u32(v: u32) -> Self {
        Self(v as u64)
    }

    /// `v`, if at most [`Self::MAX`].
    pub fn from_u64(v: u64) -> Result<Self, VarIntBoundsExceeded> {
        if v <= crate::wire::varint::MAX {
            Ok(Self(v))
        } else {
            Err(VarIntBoundsExceeded(v))
        }
    }

    /// The value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }
}

impl From<u32> for VarInt {
    fn from(v: u32) -> Self {
        Self::from_u32(v)
    }
}

impl From<u8> for VarInt {
    fn from(v: u8) -> Self {
        Self(v as u64)
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        Self::from_u64(v)
    }
}

impl From<VarInt> for u64 {
    fn from(v: VarInt) -> u64 {
        v.0
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TimedOut(v0) => write!(f, "no answer from the peer for {v0:?}"),
            Self::VersionMismatch { ours, theirs } => write!(
                f,
                "the peer speaks protocol versions {theirs:?}, we speak {ours}"
            ),
            Self::ServerKey { reason } => write!(f, "the server's key was not accepted: {reason}"),
            Self::PeerTransportClose { code, reason } => {
                write!(f, "the peer closed the connection: {code}: {reason}")
            }
            Self::PeerAborted { code, reason } => write!(
                f,
                "the peer aborted the connection with code {code}: {reason}"
            ),
            Self::LocalTransportClose { code, reason } => {
                write!(f, "the peer broke the protocol ({code}): {reason}")
            }
            Self::LocallyAborted { code } => {
                write!(f, "the connection was aborted locally with code {code}")
            }
        }
    }
}

impl std::error::Error for ConnectionError {}

impl std::fmt::Display for VarIntBoundsExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self(v0) = self;
        write!(f, "{v0} does not fit a 62-bit variable-length integer")
    }
}

impl std::error::Error for VarIntBoundsExceeded {}

#[cfg(test)]
mod varint_tests {
    use super::*;

    #[test]
    fn codes_are_checked_not_masked() {
        assert_eq!(VarInt::from_u64(7).map(u64::from), Ok(7));
        assert_eq!(VarInt::from_u64(VarInt::MAX.into_inner()), Ok(VarInt::MAX));
        assert_eq!(
            VarInt::from_u64(1 << 62),
            Err(VarIntBoundsExceeded(1 << 62))
        );
        assert_eq!(
            VarInt::try_from(u64::MAX),
            Err(VarIntBoundsExceeded(u64::MAX))
        );
    }
}

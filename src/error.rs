//! Why a connection ended, and the error codes CLOSE frames carry
//! (PROTOCOL.md §11).

use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// Transport error codes of CLOSE frames of kind "transport" (§11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportCode {
    NoError,
    InternalError,
    ProtocolViolation,
    FlowControl,
    FinalSize,
    MessageTooLarge,
    ConnectionRefused,
    InvalidParameters,
    InvalidToken,
    /// A code this version does not define (kept, so it can be reported).
    Unknown(u64),
}

impl TransportCode {
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
            Self::Unknown(c) => c,
        }
    }

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
            Self::Unknown(c) => return write!(f, "unknown error {c:#x}"),
        };
        f.write_str(name)
    }
}

/// Why a connection failed. A graceful close is not an error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    /// Nothing was heard from the peer for the idle timeout (§9.5).
    #[error("no answer from the peer for {0:?}")]
    TimedOut(Duration),
    /// The server speaks none of our versions (§3.5).
    #[error("the peer speaks protocol versions {theirs:?}, we speak {ours}")]
    VersionMismatch { ours: u8, theirs: Vec<u8> },
    /// The peer's rudp implementation closed the connection with an error.
    #[error("the peer closed the connection: {code}: {reason}")]
    PeerTransportClose { code: TransportCode, reason: String },
    /// The peer's application aborted the connection.
    #[error("the peer aborted the connection with code {code}: {reason}")]
    PeerAborted { code: u64, reason: String },
    /// This side found the peer breaking the protocol and closed.
    #[error("the peer broke the protocol ({code}): {reason}")]
    LocalTransportClose { code: TransportCode, reason: String },
    /// This side's application aborted the connection.
    #[error("the connection was aborted locally with code {code}")]
    LocallyAborted { code: u64 },
}

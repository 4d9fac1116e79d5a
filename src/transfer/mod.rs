//! `rudp send` and `rudp recv`: a file over one rudp connection
//! (docs/transfer.md).
//!
//! The sender's messages are, in order: an [`Offer`] (JSON: name and size),
//! the file's bytes in messages of at most [`CHUNK`] bytes, and a
//! [`Trailer`] (JSON: the SHA-256 of the content). The receiver knows from
//! the size where the data ends. It writes to a temporary file beside the
//! output, checks size and hash, and only then renames the file into place
//! and answers with a [`Verdict`]. Any failure removes the temporary file:
//! nothing at the output path ever looks complete without being complete.

mod progress;
pub mod recv;
pub mod send;

use rudp::Error as IoError;
use rudp_core::conn::Stats;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// Data bytes per message.
pub const CHUNK: usize = 64 * 1024;
/// The transfer format version in the offer.
pub const FORMAT_VERSION: u32 = 1;

/// The first message: what is coming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub version: u32,
    /// The file's name, without any directory.
    pub name: String,
    pub size: u64,
}

/// The last message from the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Lowercase hex SHA-256 of the whole content.
    pub sha256: String,
}

/// The receiver's answer, after verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Error { reason: String },
}

/// Why a transfer failed.
#[derive(Debug, Error)]
pub enum TransferError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Connection(#[from] IoError),
    #[error("the peer broke the transfer format: {0}")]
    Format(String),
    #[error("the content did not verify: {0}; nothing was kept")]
    Verify(String),
    #[error("the receiver refused the file: {0}")]
    Refused(String),
    #[error("no progress for {0:?}")]
    Stalled(Duration),
    /// The other side ended the transfer early, with a [`Stop`] code.
    #[error("the {who} stopped the transfer: {reason}")]
    PeerStopped { who: &'static str, reason: String },
    /// This side was interrupted (Ctrl-C, SIGTERM); the peer was told.
    #[error("interrupted; the {peer} was told")]
    Interrupted { peer: &'static str },
}

/// Why a side ends a transfer early: the application error code of its
/// CLOSE (PROTOCOL.md §6.6), which the other side reports at once with the
/// reason that comes with it (docs/transfer.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The transfer failed on this side (the file changed while being
    /// sent, the receiver stopped).
    Failed = 1,
    /// The receiver serves `--max-transfers` already.
    Busy = 2,
    /// The receiver refused the file or could not take it: the reason
    /// says why (too large, no space, cannot write, did not verify).
    Refused = 3,
    /// Ctrl-C or SIGTERM on this side.
    Interrupted = 4,
}

impl Stop {
    /// The CLOSE frame's code.
    pub fn code(self) -> rudp::VarInt {
        rudp::VarInt::from_u32(self as u32)
    }

    fn from_code(code: rudp::VarInt) -> Option<Stop> {
        [Stop::Failed, Stop::Busy, Stop::Refused, Stop::Interrupted]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

impl TransferError {
    /// A connection error, read as the transfer's: a peer that aborted
    /// with a [`Stop`] code ended the transfer for the reason it gave,
    /// which is what to print (once), not the connection's failure.
    /// `who` names the peer ("receiver" or "sender").
    pub fn from_connection(e: IoError, who: &'static str) -> TransferError {
        if let IoError::Connection {
            source: rudp::ConnectionError::PeerAborted { code, reason },
            ..
        } = &e
        {
            match Stop::from_code(*code) {
                Some(Stop::Refused | Stop::Busy) if who == "receiver" => {
                    return TransferError::Refused(reason.clone())
                }
                Some(_) => {
                    return TransferError::PeerStopped {
                        who,
                        reason: reason.clone(),
                    }
                }
                None => {}
            }
        }
        TransferError::Connection(e)
    }
}

impl TransferError {
    /// The reason as the peer is told it in a verdict: what went wrong,
    /// without the receiver's paths (issue #12 item 17).
    /// It follows "the receiver refused the file: " on the sender's side,
    /// so a refusal's own reason is told bare (issue #26: it was printed
    /// twice).
    pub fn for_peer(&self) -> String {
        match self {
            TransferError::Write { source, .. } => {
                format!("it cannot write the file: {}", source.kind())
            }
            TransferError::Read { source, .. } => {
                format!("it cannot read: {}", source.kind())
            }
            TransferError::Refused(reason) => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// What a finished transfer did, for the summary line and `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub bytes: u64,
    pub seconds: f64,
    pub sha256: String,
    pub stats: Stats,
}

impl Report {
    /// One line for people: bytes, time, rate; with `verbose`, a second
    /// with what the protocol did.
    pub fn summary(&self, verb: &str, verbose: bool) -> String {
        let s = &self.stats;
        let mb = self.bytes as f64 / 1e6;
        let rate = if self.seconds > 0.0 {
            mb / self.seconds
        } else {
            0.0
        };
        let lost_pct = if s.sent.packets > 0 {
            100.0 * s.sent.packets_lost as f64 / s.sent.packets as f64
        } else {
            0.0
        };
        let mut line = format!(
            "{verb} {} ({} bytes) in {:.2} s: {rate:.2} MB/s ({lost_pct:.1}% of packets lost); sha256 {}",
            self.name, self.bytes, self.seconds, self.sha256,
        );
        if verbose {
            line.push_str(&format!("\nstats: {}", s.summary()));
        }
        line
    }
}

/// Makes a name from the peer safe to use as a file name in one directory:
/// no separators, no `.` or `..`, no control characters, not empty.
pub fn safe_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() || clean == "." || clean == ".." || clean.len() > 255 {
        return None;
    }
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_peer_cannot_escape() {
        assert_eq!(safe_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_name("C:\\x\\y.txt").as_deref(), Some("y.txt"));
        assert_eq!(safe_name(".."), None);
        assert_eq!(safe_name("dir/"), None);
        assert_eq!(safe_name("a\nb").as_deref(), Some("ab"));
        assert_eq!(safe_name(""), None);
    }

    #[test]
    fn verdict_json() {
        assert_eq!(
            serde_json::to_string(&Verdict::Ok).unwrap(),
            r#"{"status":"ok"}"#
        );
        let e: Verdict =
            serde_json::from_str(r#"{"status":"error","reason":"disk full"}"#).unwrap();
        assert_eq!(
            e,
            Verdict::Error {
                reason: "disk full".into()
            }
        );
    }

    /// Issue #12 item 17: the sender learns what failed, not where.
    #[test]
    fn verdicts_carry_no_receiver_paths() {
        let e = TransferError::Write {
            path: "/home/alice/secret/out/.f.rudp-partial-1-00".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let told = e.for_peer();
        assert!(!told.contains("/home/alice"), "{told}");
        assert!(told.contains("cannot write"), "{told}");
        assert!(
            e.to_string().contains("/home/alice"),
            "the local message keeps it"
        );
    }
}

//! Frames (PROTOCOL.md §5). A packet's payload is a sequence of frames, each
//! a type byte followed by type-specific fields (varints unless noted).
//!
//! | type      | name        | ack-eliciting | fields                                   |
//! |-----------|-------------|---------------|------------------------------------------|
//! | 0x00      | PADDING     | no            | (none; a run of 0x00 bytes)              |
//! | 0x01      | PING        | yes           | (none)                                   |
//! | 0x02      | ACK         | no            | largest, delay, range count, ranges      |
//! | 0x03      | HANDSHAKE   | yes           | transport parameters                     |
//! | 0x04/0x05 | STREAM, STREAM_FIN | yes     | offset, length, data                     |
//! | 0x06      | MAX_DATA    | yes           | maximum stream offset                    |
//! | 0x07/0x08 | CLOSE       | no            | error code, reason length, reason        |
//! | 0x09      | TOKEN       | yes           | token length, token                      |
//! | 0x0a      | PATH_CHALLENGE | no         | 8 bytes of data                          |
//! | 0x0b      | PATH_RESPONSE  | no         | 8 bytes of data                          |
//!
//! Version 2 adds (§15.8; a version-1 packet carrying one is malformed):
//!
//! | type      | name        | ack-eliciting | fields                                   |
//! |-----------|-------------|---------------|------------------------------------------|
//! | 0x0c      | STREAM_PARAMETERS | yes     | max streams, windows, datagram payload   |
//! | 0x10-0x13 | STREAM_N    | yes           | id, offset, [message start], length, data|
//! | 0x14      | MAX_STREAM_DATA | yes       | id, maximum                              |
//! | 0x15      | MAX_STREAMS | yes           | maximum                                  |
//! | 0x16      | MAX_STREAMS_DATA | yes      | maximum (all streams but the first)      |
//! | 0x17      | RESET_STREAM | yes          | id, error code, final size               |
//! | 0x18      | STOP_SENDING | yes          | id, error code                           |
//! | 0x19      | SKIP        | yes           | id, offset, length, messages             |
//! | 0x1a      | DATAGRAM    | yes           | length, data                             |
//!
//! Version 3 adds (§16.3; a version-1 or -2 packet carrying one is
//! malformed):
//!
//! | type      | name        | ack-eliciting | fields                                   |
//! |-----------|-------------|---------------|------------------------------------------|
//! | 0x1b      | NOISE       | yes           | length, a Noise handshake message        |
//! | 0x1c      | SERVER_KEY  | no            | 32 bytes: the server's static public key |
//! | 0x1d      | UNREADABLE  | no            | 32 bytes: the ephemeral key of a first message the server could not read |
//! | 0x1e      | CIPHERS     | no            | count, packet cipher identifiers (in a Noise payload) |

use super::{varint, DecodeError, Reader};
use std::ops::Range;

/// Frame type: one byte of padding (runs of them pad a packet).
pub const PADDING: u8 = 0x00;
/// Frame type: asks for an acknowledgement, carries nothing.
pub const PING: u8 = 0x01;
/// Frame type: acknowledged packet-number ranges and the ACK delay.
pub const ACK: u8 = 0x02;
/// Frame type: the handshake parameters (§5.4).
pub const HANDSHAKE: u8 = 0x03;
/// Frame type: stream bytes at an offset.
pub const STREAM: u8 = 0x04;
/// Frame type: stream bytes at an offset, the last of the stream.
pub const STREAM_FIN: u8 = 0x05;
/// Frame type: the receiver's new flow-control limit.
pub const MAX_DATA: u8 = 0x06;
/// Frame type: closed by the implementation, with a code from §11.
pub const CLOSE_TRANSPORT: u8 = 0x07;
/// Frame type: closed by the application, with its own code.
pub const CLOSE_APPLICATION: u8 = 0x08;
/// Frame type: an address-validation token (§5.8).
pub const TOKEN: u8 = 0x09;

/// Frame type: asks the receiver to echo 8 bytes, to prove it receives at
/// the address the packet went to (§5.9, §6.9).
pub const PATH_CHALLENGE: u8 = 0x0a;
/// Frame type: echoes a PATH_CHALLENGE's 8 bytes (§5.9).
pub const PATH_RESPONSE: u8 = 0x0b;

/// Frame type (version 2): the sender's stream limits (§15.8.1).
pub const STREAM_PARAMETERS: u8 = 0x0c;
/// Frame types (version 2): data of a numbered stream (§15.8.2); bit 0x01
/// is FIN, bit 0x02 says a Message Start field follows the offset.
pub const STREAM_N: u8 = 0x10;
/// The FIN bit of a STREAM_N type.
pub const STREAM_N_FIN_BIT: u8 = 0x01;
/// The message-start bit of a STREAM_N type (unordered streams).
pub const STREAM_N_START_BIT: u8 = 0x02;
/// Frame type (version 2): one stream's new flow-control limit (§15.8.3).
pub const MAX_STREAM_DATA: u8 = 0x14;
/// Frame type (version 2): how many streams the peer may open (§15.8.4).
pub const MAX_STREAMS: u8 = 0x15;
/// Frame type (version 2): the limit shared by all streams but the first
/// (§15.8.5).
pub const MAX_STREAMS_DATA: u8 = 0x16;
/// Frame type (version 2): the sender abandons its half of a stream
/// (§15.8.6).
pub const RESET_STREAM: u8 = 0x17;
/// Frame type (version 2): the receiver asks the sender to stop (§15.8.7).
pub const STOP_SENDING: u8 = 0x18;
/// Frame type (version 2): messages the sender gave up on (§15.8.8).
pub const SKIP: u8 = 0x19;
/// Frame type (version 2): an unreliable datagram (§15.8.9).
pub const DATAGRAM: u8 = 0x1a;
/// Frame type (version 3): a Noise handshake message (§16.3).
pub const NOISE: u8 = 0x1b;
/// Frame type (version 3): the server's static public key, in a RETRY
/// that answers a client that does not know it yet (§16.4).
pub const SERVER_KEY: u8 = 0x1c;
/// Frame type (version 3): beside SERVER_KEY in a RETRY, names the first
/// Noise message the server could not read by its ephemeral key (§16.4).
pub const UNREADABLE: u8 = 0x1d;
/// Frame type (version 3): packet ciphers offered (client) or chosen
/// (server), inside a Noise payload (§16.5).
pub const CIPHERS: u8 = 0x1e;

/// Longest address-validation token a frame may carry (§5.8).
pub const MAX_TOKEN_LEN: usize = 255;

/// An ACK frame (§5.3), with its ranges already turned into absolute packet
/// numbers: half-open, disjoint, in descending order, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame {
    /// The receiver's delay between receiving the largest acknowledged packet
    /// and sending this frame, in microseconds (§7.2).
    pub delay_micros: u64,
    /// Acknowledged packet numbers, largest range first, disjoint.
    pub ranges: Vec<Range<u64>>,
}

impl AckFrame {
    /// Largest packet number acknowledged.
    pub fn largest(&self) -> u64 {
        // Never empty: decode rejects empty, and the encoder is only ever
        // given non-empty range lists.
        self.ranges.first().map_or(0, |r| r.end - 1)
    }
}

/// Transport parameters exchanged in INITIAL and ACCEPT packets (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeParams {
    /// How long the sender may delay an acknowledgement, in microseconds.
    pub max_ack_delay_micros: u64,
    /// The sender's idle timeout in milliseconds; the connection uses the
    /// smaller of the two sides' values.
    pub idle_timeout_millis: u64,
    /// The initial flow-control limit: bytes of stream the peer may send.
    pub initial_max_data: u64,
    /// The largest message the sender accepts, in bytes.
    pub max_message_size: u64,
    /// The largest UDP payload the sender accepts.
    pub max_datagram_size: u64,
}

/// The limits of version 2's streams and datagrams (§15.8.1), sent by each
/// side in its INITIAL or ACCEPT next to HANDSHAKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamParams {
    /// How many streams the peer may open at once, beyond the first.
    pub max_streams: u64,
    /// The flow-control limit of each new stream (bytes).
    pub stream_window: u64,
    /// The limit over all streams but the first, together (bytes).
    pub streams_window: u64,
    /// The largest DATAGRAM payload accepted; 0 refuses datagrams.
    pub max_datagram_payload: u64,
}

/// A STREAM_N frame (§15.8.2): bytes of stream `id` at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamNFrame<'a> {
    /// The stream.
    pub id: u64,
    /// Stream offset of the first byte.
    pub offset: u64,
    /// On unordered streams: where the message these bytes belong to
    /// starts (its length prefix); the frame holds nothing past its end.
    pub message_start: Option<u64>,
    /// The bytes.
    pub data: &'a [u8],
    /// Whether the stream ends after them.
    pub fin: bool,
}

/// A SKIP frame (§15.8.8): stream bytes `offset..offset + len`, holding
/// `messages` whole messages, will never be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipFrame {
    /// The stream.
    pub id: u64,
    /// Where the first abandoned message starts.
    pub offset: u64,
    /// Bytes abandoned (length prefixes included).
    pub len: u64,
    /// Messages abandoned.
    pub messages: u64,
}

/// A STREAM frame (§5.5): bytes `offset..offset + data.len()` of the
/// sender's stream; with `fin`, the stream ends after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFrame<'a> {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
    /// Whether the stream ends after them.
    pub fin: bool,
}

/// Who closed the connection (§5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The rudp implementation itself, with a code from §11.
    Transport,
    /// The application, with a code of its own choosing.
    Application,
}

/// A CLOSE frame (§5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Who closed.
    pub kind: CloseKind,
    /// The error code (§11 for transport closes).
    pub code: u64,
    /// Why, for people (at most 1024 bytes are sent).
    pub reason: &'a [u8],
}

/// One decoded frame, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of this many padding bytes.
    Padding(usize),
    /// Asks for an acknowledgement (§5.2).
    Ping,
    /// Acknowledgements (§5.3).
    Ack(AckFrame),
    /// Handshake parameters (§5.4).
    Handshake(HandshakeParams),
    /// Stream data (§5.5).
    Stream(StreamFrame<'a>),
    /// A new flow-control limit: stream offset the peer may send up to (§5.6).
    MaxData(u64),
    /// The connection is closing (§5.7).
    Close(CloseFrame<'a>),
    /// An address-validation token (§5.8): in RETRY from the server, echoed
    /// in the client's INITIALs.
    Token(&'a [u8]),
    /// Echo these bytes back (§5.9): path validation (§6.9).
    PathChallenge([u8; 8]),
    /// The bytes of a PATH_CHALLENGE, echoed (§5.9).
    PathResponse([u8; 8]),
    /// Version 2: stream and datagram limits (§15.8.1).
    StreamParams(StreamParams),
    /// Version 2: data of a numbered stream (§15.8.2).
    StreamN(StreamNFrame<'a>),
    /// Version 2: stream `id` may send below `max` (§15.8.3).
    MaxStreamData {
        /// The stream.
        id: u64,
        /// The new limit.
        max: u64,
    },
    /// Version 2: the peer may open this many streams (§15.8.4).
    MaxStreams(u64),
    /// Version 2: the limit over all streams but the first (§15.8.5).
    MaxStreamsData(u64),
    /// Version 2: the sender abandoned its half of stream `id` (§15.8.6).
    ResetStream {
        /// The stream.
        id: u64,
        /// The application's reason.
        code: u64,
        /// The stream's final size.
        final_size: u64,
    },
    /// Version 2: the receiver no longer wants stream `id` (§15.8.7).
    StopSending {
        /// The stream.
        id: u64,
        /// The application's reason.
        code: u64,
    },
    /// Version 2: messages the sender gave up on (§15.8.8).
    Skip(SkipFrame),
    /// Version 2: an unreliable datagram (§15.8.9).
    Datagram(&'a [u8]),
    /// Version 3: a Noise handshake message (§16.3).
    Noise(&'a [u8]),
    /// Version 3: the server's static public key (§16.4).
    ServerKey([u8; 32]),
    /// Version 3: the ephemeral key of a first message the server could
    /// not read (§16.4).
    Unreadable([u8; 32]),
    /// Version 3: packet cipher identifiers, a client's offer best first
    /// or a server's one choice (§16.5); 1 to 8 of them.
    Ciphers(&'a [u8]),
}

/// One line per frame, as logs and `wire::describe` print it:
/// `STREAM off=0 len=2 fin`, `ACK 0..5,7..9 delay=250us`.
impl std::fmt::Display for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Padding(n) => write!(f, "PADDING {n}"),
            Frame::Ping => f.write_str("PING"),
            Frame::Ack(a) => {
                f.write_str("ACK ")?;
                for (i, r) in a.ranges.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{}..{}", r.start, r.end)?;
                }
                write!(f, " delay={}us", a.delay_micros)
            }
            Frame::Handshake(_) => f.write_str("HANDSHAKE"),
            Frame::Stream(st) => write!(
                f,
                "STREAM off={} len={}{}",
                st.offset,
                st.data.len(),
                if st.fin { " fin" } else { "" }
            ),
            Frame::MaxData(m) => write!(f, "MAX_DATA {m}"),
            Frame::Close(c) => write!(
                f,
                "CLOSE {:?} code={} {:?}",
                c.kind,
                c.code,
                String::from_utf8_lossy(c.reason)
            ),
            Frame::Token(t) => write!(f, "TOKEN {} bytes", t.len()),
            Frame::PathChallenge(d) => write!(f, "PATH_CHALLENGE {:016x}", u64::from_be_bytes(*d)),
            Frame::PathResponse(d) => write!(f, "PATH_RESPONSE {:016x}", u64::from_be_bytes(*d)),
            Frame::StreamParams(p) => write!(
                f,
                "STREAM_PARAMETERS streams={} window={} total={} datagram={}",
                p.max_streams, p.stream_window, p.streams_window, p.max_datagram_payload
            ),
            Frame::StreamN(st) => {
                write!(f, "STREAM_N id={} off={}", st.id, st.offset)?;
                if let Some(m) = st.message_start {
                    write!(f, " msg={m}")?;
                }
                write!(
                    f,
                    " len={}{}",
                    st.data.len(),
                    if st.fin { " fin" } else { "" }
                )
            }
            Frame::MaxStreamData { id, max } => write!(f, "MAX_STREAM_DATA id={id} {max}"),
            Frame::MaxStreams(m) => write!(f, "MAX_STREAMS {m}"),
            Frame::MaxStreamsData(m) => write!(f, "MAX_STREAMS_DATA {m}"),
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => write!(f, "RESET_STREAM id={id} code={code} final={final_size}"),
            Frame::StopSending { id, code } => write!(f, "STOP_SENDING id={id} code={code}"),
            Frame::Skip(k) => write!(
                f,
                "SKIP id={} off={} len={} messages={}",
                k.id, k.offset, k.len, k.messages
            ),
            Frame::Datagram(d) => write!(f, "DATAGRAM len={}", d.len()),
            Frame::Noise(m) => write!(f, "NOISE {} bytes", m.len()),
            Frame::ServerKey(_) => write!(f, "SERVER_KEY"),
            Frame::Unreadable(_) => write!(f, "UNREADABLE"),
            Frame::Ciphers(ids) => write!(f, "CIPHERS {ids:?}"),
        }
    }
}

impl Frame<'_> {
    /// Whether receiving this frame obliges the receiver to acknowledge (§7.1).
    /// Path validation's frames are answered by their own rules (§6.9),
    /// never retransmitted, and so never acknowledged.
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(
            self,
            Frame::Padding(_)
                | Frame::Ack(_)
                | Frame::Close(_)
                | Frame::PathChallenge(_)
                | Frame::PathResponse(_)
                | Frame::ServerKey(_)
                | Frame::Unreadable(_)
                | Frame::Ciphers(_)
        )
    }

    /// Whether only version 2 has this frame (§15.8): a version-1 packet
    /// that carries one is malformed.
    pub fn is_version_2(&self) -> bool {
        matches!(
            self,
            Frame::StreamParams(_)
                | Frame::StreamN(_)
                | Frame::MaxStreamData { .. }
                | Frame::MaxStreams(_)
                | Frame::MaxStreamsData(_)
                | Frame::ResetStream { .. }
                | Frame::StopSending { .. }
                | Frame::Skip(_)
                | Frame::Datagram(_)
        )
    }

    /// Appends the encoded frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Padding(n) => out.resize(out.len() + n, PADDING),
            Frame::Ping => out.push(PING),
            Frame::Ack(ack) => encode_ack(ack, out),
            Frame::Handshake(p) => {
                out.push(HANDSHAKE);
                for v in [
                    p.max_ack_delay_micros,
                    p.idle_timeout_millis,
                    p.initial_max_data,
                    p.max_message_size,
                    p.max_datagram_size,
                ] {
                    varint::write(v, out);
                }
            }
            Frame::Stream(s) => {
                encode_stream_header(s.offset, s.data.len(), s.fin, out);
                out.extend_from_slice(s.data);
            }
            Frame::MaxData(max) => {
                out.push(MAX_DATA);
                varint::write(*max, out);
            }
            Frame::Close(c) => {
                out.push(match c.kind {
                    CloseKind::Transport => CLOSE_TRANSPORT,
                    CloseKind::Application => CLOSE_APPLICATION,
                });
                varint::write(c.code, out);
                varint::write(c.reason.len() as u64, out);
                out.extend_from_slice(c.reason);
            }
            Frame::Token(t) => {
                out.push(TOKEN);
                varint::write(t.len() as u64, out);
                out.extend_from_slice(t);
            }
            Frame::PathChallenge(d) => {
                out.push(PATH_CHALLENGE);
                out.extend_from_slice(d);
            }
            Frame::PathResponse(d) => {
                out.push(PATH_RESPONSE);
                out.extend_from_slice(d);
            }
            Frame::StreamParams(p) => {
                out.push(STREAM_PARAMETERS);
                for v in [
                    p.max_streams,
                    p.stream_window,
                    p.streams_window,
                    p.max_datagram_payload,
                ] {
                    varint::write(v, out);
                }
            }
            Frame::StreamN(st) => {
                encode_stream_n_header(
                    st.id,
                    st.offset,
                    st.message_start,
                    st.data.len(),
                    st.fin,
                    out,
                );
                out.extend_from_slice(st.data);
            }
            Frame::MaxStreamData { id, max } => write_varints(MAX_STREAM_DATA, &[*id, *max], out),
            Frame::MaxStreams(m) => write_varints(MAX_STREAMS, &[*m], out),
            Frame::MaxStreamsData(m) => write_varints(MAX_STREAMS_DATA, &[*m], out),
            Frame::ResetStream {
                id,
                code,
                final_size,
            } => write_varints(RESET_STREAM, &[*id, *code, *final_size], out),
            Frame::StopSending { id, code } => write_varints(STOP_SENDING, &[*id, *code], out),
            Frame::Skip(k) => write_varints(SKIP, &[k.id, k.offset, k.len, k.messages], out),
            Frame::Datagram(d) => {
                out.push(DATAGRAM);
                varint::write(d.len() as u64, out);
                out.extend_from_slice(d);
            }
            Frame::Noise(m) => {
                out.push(NOISE);
                varint::write(m.len() as u64, out);
                out.extend_from_slice(m);
            }
            Frame::ServerKey(k) => {
                out.push(SERVER_KEY);
                out.extend_from_slice(k);
            }
            Frame::Unreadable(e) => {
                out.push(UNREADABLE);
                out.extend_from_slice(e);
            }
            Frame::Ciphers(ids) => {
                out.push(CIPHERS);
                out.push(ids.len() as u8);
                out.extend_from_slice(ids);
            }
        }
    }
}

/// Appends the type, offset and length of a STREAM frame; the caller then
/// appends exactly `len` bytes of data. Lets the sender copy stream bytes
/// straight from its buffer into the datagram.
pub fn encode_stream_header(offset: u64, len: usize, fin: bool, out: &mut Vec<u8>) {
    out.push(if fin { STREAM_FIN } else { STREAM });
    varint::write(offset, out);
    varint::write(len as u64, out);
}

/// Bytes a STREAM frame header takes at most (type + two 8-byte varints).
pub const MAX_STREAM_HEADER_LEN: usize = 17;

/// Appends the header of a STREAM_N frame (§15.8.2); the caller then
/// appends exactly `len` bytes.
pub fn encode_stream_n_header(
    id: u64,
    offset: u64,
    message_start: Option<u64>,
    len: usize,
    fin: bool,
    out: &mut Vec<u8>,
) {
    let mut ty = STREAM_N;
    if fin {
        ty |= STREAM_N_FIN_BIT;
    }
    if message_start.is_some() {
        ty |= STREAM_N_START_BIT;
    }
    out.push(ty);
    varint::write(id, out);
    varint::write(offset, out);
    if let Some(m) = message_start {
        varint::write(m, out);
    }
    varint::write(len as u64, out);
}

/// Bytes a STREAM_N frame header takes at most (type + four 8-byte varints).
pub const MAX_STREAM_N_HEADER_LEN: usize = 33;

/// Bytes a DATAGRAM frame adds to its payload at most.
pub const MAX_DATAGRAM_HEADER_LEN: usize = 9;

fn write_varints(ty: u8, values: &[u64], out: &mut Vec<u8>) {
    out.push(ty);
    for v in values {
        varint::write(*v, out);
    }
}

fn encode_ack(ack: &AckFrame, out: &mut Vec<u8>) {
    out.push(ACK);
    let mut ranges = ack.ranges.iter();
    let Some(first) = ranges.next() else {
        return;
    };
    varint::write(first.end - 1, out);
    varint::write(ack.delay_micros, out);
    varint::write((ack.ranges.len() - 1) as u64, out);
    varint::write(first.end - 1 - first.start, out);
    let mut smallest = first.start;
    for r in ranges {
        // RFC 9000 §19.3.1: gap counts the unacknowledged packets between
        // ranges, minus one; length counts the range's packets, minus one.
        varint::write(smallest - r.end - 1, out);
        varint::write(r.end - 1 - r.start, out);
        smallest = r.start;
    }
}

/// Frames of one packet: inline up to four (no allocation per packet).
pub type Frames<'a> = smallvec::SmallVec<[Frame<'a>; 4]>;

/// Decodes every frame of a payload. A payload with any malformed frame is
/// rejected whole, so that a bad packet never half-applies (§10).
pub fn decode_all(payload: &[u8]) -> Result<Frames<'_>, DecodeError> {
    let mut r = Reader::new(payload);
    let mut frames = Frames::new();
    while !r.is_empty() {
        frames.push(decode_one(&mut r)?);
    }
    if frames.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(frames)
}

/// Decodes the one frame at the reader's position (version 3's ACCEPT
/// starts with a NOISE frame in clear, §16.3).
pub fn decode_one<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, DecodeError> {
    let ty = r.u8()?;
    Ok(match ty {
        PADDING => {
            let mut n = 1;
            while r.peek() == Some(PADDING) {
                r.u8()?;
                n += 1;
            }
            Frame::Padding(n)
        }
        PING => Frame::Ping,
        ACK => Frame::Ack(decode_ack(r)?),
        HANDSHAKE => Frame::Handshake(HandshakeParams {
            max_ack_delay_micros: r.varint()?,
            idle_timeout_millis: r.varint()?,
            initial_max_data: r.varint()?,
            max_message_size: r.varint()?,
            max_datagram_size: r.varint()?,
        }),
        STREAM | STREAM_FIN => {
            let offset = r.varint()?;
            let len = r.varint_len()?;
            if offset
                .checked_add(len as u64)
                .is_none_or(|end| end > varint::MAX)
            {
                return Err(DecodeError::OutOfRange);
            }
            Frame::Stream(StreamFrame {
                offset,
                data: r.bytes(len)?,
                fin: ty == STREAM_FIN,
            })
        }
        MAX_DATA => Frame::MaxData(r.varint()?),
        CLOSE_TRANSPORT | CLOSE_APPLICATION => {
            let code = r.varint()?;
            let len = r.varint_len()?;
            Frame::Close(CloseFrame {
                kind: if ty == CLOSE_TRANSPORT {
                    CloseKind::Transport
                } else {
                    CloseKind::Application
                },
                code,
                reason: r.bytes(len)?,
            })
        }
        TOKEN => {
            let len = r.varint_len()?;
            if len == 0 || len > MAX_TOKEN_LEN {
                return Err(DecodeError::OutOfRange);
            }
            Frame::Token(r.bytes(len)?)
        }
        PATH_CHALLENGE | PATH_RESPONSE => {
            let mut data = [0u8; 8];
            data.copy_from_slice(r.bytes(8)?);
            if ty == PATH_CHALLENGE {
                Frame::PathChallenge(data)
            } else {
                Frame::PathResponse(data)
            }
        }
        STREAM_PARAMETERS => Frame::StreamParams(StreamParams {
            max_streams: r.varint()?,
            stream_window: r.varint()?,
            streams_window: r.varint()?,
            max_datagram_payload: r.varint()?,
        }),
        STREAM_N..=0x13 => {
            let id = r.varint()?;
            let offset = r.varint()?;
            let message_start = if ty & STREAM_N_START_BIT != 0 {
                let m = r.varint()?;
                if m > offset {
                    return Err(DecodeError::OutOfRange);
                }
                Some(m)
            } else {
                None
            };
            let len = r.varint_len()?;
            if offset
                .checked_add(len as u64)
                .is_none_or(|end| end > varint::MAX)
            {
                return Err(DecodeError::OutOfRange);
            }
            Frame::StreamN(StreamNFrame {
                id,
                offset,
                message_start,
                data: r.bytes(len)?,
                fin: ty & STREAM_N_FIN_BIT != 0,
            })
        }
        MAX_STREAM_DATA => Frame::MaxStreamData {
            id: r.varint()?,
            max: r.varint()?,
        },
        MAX_STREAMS => Frame::MaxStreams(r.varint()?),
        MAX_STREAMS_DATA => Frame::MaxStreamsData(r.varint()?),
        RESET_STREAM => Frame::ResetStream {
            id: r.varint()?,
            code: r.varint()?,
            final_size: r.varint()?,
        },
        STOP_SENDING => Frame::StopSending {
            id: r.varint()?,
            code: r.varint()?,
        },
        SKIP => {
            let k = SkipFrame {
                id: r.varint()?,
                offset: r.varint()?,
                len: r.varint()?,
                messages: r.varint()?,
            };
            // A skip covers at least one message, each at least one byte
            // (its length prefix), and stays within the offset space.
            if k.messages == 0
                || k.len < k.messages
                || k.offset
                    .checked_add(k.len)
                    .is_none_or(|end| end > varint::MAX)
            {
                return Err(DecodeError::OutOfRange);
            }
            Frame::Skip(k)
        }
        DATAGRAM => {
            let len = r.varint_len()?;
            Frame::Datagram(r.bytes(len)?)
        }
        NOISE => {
            let len = r.varint_len()?;
            if len == 0 || len > crate::noise::MAX_MESSAGE_LEN {
                return Err(DecodeError::OutOfRange);
            }
            Frame::Noise(r.bytes(len)?)
        }
        SERVER_KEY | UNREADABLE => {
            let mut key = [0u8; 32];
            key.copy_from_slice(r.bytes(32)?);
            if ty == SERVER_KEY {
                Frame::ServerKey(key)
            } else {
                Frame::Unreadable(key)
            }
        }
        CIPHERS => {
            let count = usize::from(r.u8()?);
            if count == 0 || count > crate::cipher::MAX_OFFERED {
                return Err(DecodeError::OutOfRange);
            }
            Frame::Ciphers(r.bytes(count)?)
        }
        other => return Err(DecodeError::UnknownFrameType(other)),
    })
}

fn decode_ack(r: &mut Reader<'_>) -> Result<AckFrame, DecodeError> {
    let largest = r.varint()?;
    let delay_micros = r.varint()?;
    let count = r.varint()?;
    let first = r.varint()?;
    let mut smallest = largest.checked_sub(first).ok_or(DecodeError::InvalidAck)?;
    // Each further range takes at least two bytes, which bounds `count` by
    // the datagram size before any allocation.
    if count > (r.remaining() / 2) as u64 {
        return Err(DecodeError::InvalidAck);
    }
    let mut ranges = Vec::with_capacity(count as usize + 1);
    ranges.push(smallest..largest + 1);
    for _ in 0..count {
        let gap = r.varint()?;
        let len = r.varint()?;
        let high = smallest
            .checked_sub(gap)
            .and_then(|v| v.checked_sub(2))
            .ok_or(DecodeError::InvalidAck)?;
        let low = high.checked_sub(len).ok_or(DecodeError::InvalidAck)?;
        ranges.push(low..high + 1);
        smallest = low;
    }
    Ok(AckFrame {
        delay_micros,
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(frame: Frame<'_>) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert_eq!(decode_all(&out).unwrap().to_vec(), vec![frame]);
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Padding(5));
        round_trip(Frame::Ping);
        round_trip(Frame::Ack(AckFrame {
            delay_micros: 250,
            ranges: vec![10..13, 5..7, 0..1],
        }));
        round_trip(Frame::Handshake(HandshakeParams {
            max_ack_delay_micros: 5000,
            idle_timeout_millis: 30000,
            initial_max_data: 4 << 20,
            max_message_size: 1 << 20,
            max_datagram_size: 1200,
        }));
        round_trip(Frame::Stream(StreamFrame {
            offset: 70000,
            data: b"hello",
            fin: true,
        }));
        round_trip(Frame::MaxData(123456));
        round_trip(Frame::Close(CloseFrame {
            kind: CloseKind::Application,
            code: 42,
            reason: b"bye",
        }));
        round_trip(Frame::Token(&[7; 24]));
        round_trip(Frame::PathChallenge([1, 2, 3, 4, 5, 6, 7, 8]));
        round_trip(Frame::PathResponse([8; 8]));
        round_trip(Frame::StreamParams(StreamParams {
            max_streams: 100,
            stream_window: 2 << 20,
            streams_window: 16 << 20,
            max_datagram_payload: 1150,
        }));
        for message_start in [None, Some(3)] {
            for fin in [false, true] {
                round_trip(Frame::StreamN(StreamNFrame {
                    id: 5,
                    offset: 9,
                    message_start,
                    data: b"abc",
                    fin,
                }));
            }
        }
        round_trip(Frame::MaxStreamData {
            id: 2,
            max: 1 << 30,
        });
        round_trip(Frame::MaxStreams(7));
        round_trip(Frame::MaxStreamsData(1 << 40));
        round_trip(Frame::ResetStream {
            id: 4,
            code: 9,
            final_size: 100,
        });
        round_trip(Frame::StopSending { id: 3, code: 1 });
        round_trip(Frame::Skip(SkipFrame {
            id: 1,
            offset: 10,
            len: 20,
            messages: 2,
        }));
        round_trip(Frame::Datagram(b"tick"));
        round_trip(Frame::Noise(&[5; 96]));
        round_trip(Frame::ServerKey([9; 32]));
        round_trip(Frame::Unreadable([8; 32]));
        round_trip(Frame::Ciphers(&[2, 1]));
    }

    #[test]
    fn version_2_frames_reject_impossible_fields() {
        // A message start after the frame's own offset.
        assert!(decode_all(&[STREAM_N | STREAM_N_START_BIT, 1, 2, 3, 0]).is_err());
        // A SKIP of no message, or of more messages than bytes.
        assert!(decode_all(&[SKIP, 1, 0, 4, 0]).is_err());
        assert!(decode_all(&[SKIP, 1, 0, 1, 2]).is_err());
        // A DATAGRAM longer than the packet.
        assert!(decode_all(&[DATAGRAM, 5, 1]).is_err());
    }

    #[test]
    fn empty_or_oversized_token_is_rejected() {
        assert_eq!(decode_all(&[TOKEN, 0]), Err(DecodeError::OutOfRange));
        let mut big = vec![TOKEN, 0x41, 0x00]; // length 256
        big.extend_from_slice(&[1; 256]);
        assert_eq!(decode_all(&big), Err(DecodeError::OutOfRange));
    }

    #[test]
    fn ack_with_underflowing_gap_is_rejected() {
        // largest 3, first range 1 (packets 2..=3), then a gap of 5: below 0.
        let bytes = [ACK, 3, 0, 1, 1, 5, 0];
        assert_eq!(decode_all(&bytes), Err(DecodeError::InvalidAck));
    }

    #[test]
    fn truncated_stream_is_rejected() {
        let bytes = [STREAM, 0, 10, b'a'];
        assert_eq!(decode_all(&bytes), Err(DecodeError::Truncated));
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<Range<u64>>> {
        // Build descending, non-touching ranges from (gap, len) pairs.
        (
            0u64..1 << 40,
            proptest::collection::vec((0u64..1000, 0u64..1000), 1..20),
        )
            .prop_map(|(base, steps)| {
                let mut ranges = Vec::new();
                let mut low = base;
                for (gap, len) in steps {
                    let start = low;
                    let end = start + len + 1;
                    ranges.push(start..end);
                    low = end + gap + 1;
                }
                ranges.reverse();
                ranges
            })
    }

    proptest! {
        #[test]
        fn ack_round_trip(ranges in arb_ranges(), delay in 0u64..1 << 30) {
            let ack = AckFrame { delay_micros: delay, ranges };
            let mut out = Vec::new();
            Frame::Ack(ack.clone()).encode(&mut out);
            prop_assert_eq!(decode_all(&out).unwrap().to_vec(), vec![Frame::Ack(ack)]);
        }

        #[test]
        fn stream_round_trip(offset in 0u64..1 << 50, data in proptest::collection::vec(any::<u8>(), 0..300), fin in any::<bool>()) {
            let f = Frame::Stream(StreamFrame { offset, data: &data, fin });
            let mut out = Vec::new();
            f.encode(&mut out);
            prop_assert_eq!(decode_all(&out).unwrap().to_vec(), vec![f]);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all(&bytes);
        }
    }
}

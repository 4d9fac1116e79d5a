//! The wire format: bytes in, typed values out, and back (PROTOCOL.md §3–§5).
//!
//! Nothing here knows about connections, timers or state. Every decoder takes
//! untrusted bytes and either returns a fully checked value or a
//! `DecodeError`; none of them can panic on any input (checked by the
//! property tests of `packet` and by `fuzz/`).
//!
//! What applications need is public: connection IDs, the version numbers
//! and [`describe`]. The codec itself (`varint`, `reader`, `packet` for the
//! header, checksum and version negotiation of §3, `frame` for the frames
//! of §5) is public only with the `fuzzing` feature, for the fuzz targets
//! and the core's own tests: it is not an API, and changes with the wire.

internal_mod!(frame);
internal_mod!(packet);
internal_mod!(reader);
internal_mod!(varint);

pub use packet::{ConnectionId, SUPPORTED_VERSIONS, VERSION, VERSION_1, VERSION_2, VERSION_3};
/// The codec's types, where the crate (and, with `fuzzing`, the tests)
/// name them.
macro_rules! codec_types {
    ($vis:vis) => {
        $vis use frame::{AckFrame, CloseFrame, CloseKind, Frame, HandshakeParams};
        $vis use packet::{
            Datagram, Header, PacketType, Protection, VersionNegotiation, CHECKSUM_LEN,
        };
        $vis use reader::{DecodeError, Reader};
    };
}
#[cfg(feature = "fuzzing")]
codec_types!(pub);
#[cfg(not(feature = "fuzzing"))]
codec_types!(pub(crate));

/// A one-line human description of a datagram, for traces and debugging:
/// `DATA dcid=… pn=7 len=60 [ACK 0..5 delay=120us, STREAM off=0 len=11 fin]`.
pub fn describe(datagram: &[u8]) -> String {
    describe_as(datagram, Detail::Full)
}

/// [`describe`] without the connection IDs and length, for a packet a
/// line on screen: `DATA pn=7 [ACK 0..5 delay=120us, STREAM off=0 len=11 fin]`.
pub fn describe_brief(datagram: &[u8]) -> String {
    describe_as(datagram, Detail::Brief)
}

/// How much of a header [`describe_as`] shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    Brief,
}

fn describe_as(datagram: &[u8], detail: Detail) -> String {
    use std::fmt::Write;
    let (header, payload) = match packet::decode(datagram) {
        Ok(Datagram::Packet { header, payload }) => (header, payload),
        Ok(Datagram::VersionNegotiation(vn)) => {
            return format!(
                "VERSION_NEGOTIATION dcid={} versions={:?}",
                vn.dcid, vn.versions
            )
        }
        Err(e) => return format!("undecodable ({e}), {} bytes", datagram.len()),
    };
    let mut s = format!("{:?} ", header.ty);
    if detail == Detail::Full {
        let _ = write!(s, "dcid={} ", header.dcid);
        if let Some(scid) = header.scid {
            let _ = write!(s, "scid={scid} ");
        }
    }
    let _ = write!(s, "pn={} ", header.pn);
    if detail == Detail::Full {
        let _ = write!(s, "len={} ", datagram.len());
    }
    s.push('[');
    if header.protection == Protection::Sealed {
        let _ = write!(s, "sealed {} bytes]", payload.len());
        return s;
    }
    match frame::decode_all(payload) {
        Ok(frames) => {
            let parts: Vec<String> = frames.iter().map(Frame::to_string).collect();
            s.push_str(&parts.join(", "));
        }
        Err(e) => {
            let _ = write!(s, "malformed: {e}");
        }
    }
    s.push(']');
    s
}

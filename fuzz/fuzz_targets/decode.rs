//! The packet and frame decoders on arbitrary bytes (PROTOCOL.md §10):
//! they must return an error or a value, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudp_core::wire::{frame, packet, Datagram};

fuzz_target!(|data: &[u8]| {
    if let Ok(Datagram::Packet { payload, .. }) = packet::decode(data) {
        let _ = frame::decode_all(payload);
    }
    // Frames without the checksum in front, to reach the frame parsers
    // directly; and the one-line describer used by traces and logs.
    let _ = frame::decode_all(data);
    let _ = rudp_core::wire::describe(data);
});

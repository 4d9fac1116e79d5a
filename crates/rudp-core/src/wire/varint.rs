//! Variable-length integers (PROTOCOL.md §4.1), identical to QUIC's
//! (RFC 9000 §16): the two high bits of the first byte give the length.
//!
//! | prefix | length | usable bits | range                    |
//! |--------|--------|-------------|--------------------------|
//! | 00     | 1      | 6           | 0..=63                   |
//! | 01     | 2      | 14          | 0..=16383                |
//! | 10     | 4      | 30          | 0..=1073741823           |
//! | 11     | 8      | 62          | 0..=4611686018427387903  |

use super::{DecodeError, Reader};

/// The largest value a varint can hold: 2^62 - 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v`. Values above [`MAX`] are a caller bug.
pub fn encoded_len(v: u64) -> usize {
    debug_assert!(v <= MAX, "varint out of range: {v}");
    match v {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=1073741823 => 4,
        _ => 8,
    }
}

/// Appends `v` in its shortest encoding.
pub fn write(v: u64, out: &mut Vec<u8>) {
    match encoded_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&((v & MAX) | 0xC000_0000_0000_0000).to_be_bytes()),
    }
}

/// Reads one varint. Non-shortest encodings are accepted, as in QUIC.
pub fn read(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let first = r.u8()?;
    let len = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3F);
    for _ in 1..len {
        v = (v << 8) | u64::from(r.u8()?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The examples of RFC 9000 Appendix A.1, which PROTOCOL.md §4.1 repeats.
    #[test]
    fn rfc9000_examples() {
        let cases: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            (&[0x40, 0x25], 37),
        ];
        for (bytes, value) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(read(&mut r).unwrap(), *value);
            assert!(r.is_empty());
        }
        let mut out = Vec::new();
        write(15_293, &mut out);
        assert_eq!(out, [0x7b, 0xbd]);
    }

    proptest! {
        #[test]
        fn round_trip(v in 0..=MAX) {
            let mut out = Vec::new();
            write(v, &mut out);
            prop_assert_eq!(out.len(), encoded_len(v));
            let mut r = Reader::new(&out);
            prop_assert_eq!(read(&mut r).unwrap(), v);
        }
    }
}

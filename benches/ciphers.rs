//! What each packet cipher of version 3 (PROTOCOL.md §16.5) costs: sealing
//! and opening in place on one core, through the same `PacketKey` the
//! connections use, at a path-MTU datagram, a 16 KB one and loopback's
//! 64 KB one. Prints GB/s; asserts nothing about speed (docs/benchmarks.md).
//!
//! `cargo bench --bench ciphers` (`-- MB` to seal another amount per cell,
//! default 2000).

use rudp_core::cipher::PacketCipher;
use rudp_core::psk::PacketKey;
use std::time::Instant;

/// The header length of a DATA packet: the associated data.
const HEADER: usize = 20;

fn main() {
    let mb: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    println!(
        "packet ciphers, one core, GB/s sealed / opened ({mb} MB a cell; release build; \
         preferred here: {})",
        PacketCipher::preferred()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("{:>12}", "payload");
    for c in PacketCipher::ALL {
        print!("  {:>20}", c.to_string());
    }
    println!();
    for size in [1_452usize, 16_384, 65_000] {
        print!("{:>6} bytes", size);
        for cipher in PacketCipher::ALL {
            let key = PacketKey::from_raw(cipher, [7; 32]);
            let count = (mb * 1_000_000 / size).max(1);
            let mut packet = vec![0x5a; HEADER + size];
            let start = Instant::now();
            for pn in 0..count as u64 {
                packet.truncate(HEADER + size);
                key.seal(pn, HEADER, &mut packet);
            }
            let sealing = start.elapsed();
            // Open one sealed packet again and again: the same work as
            // opening distinct ones (no cache of results), and the check
            // that it opens at all.
            packet.truncate(HEADER + size);
            key.seal(0, HEADER, &mut packet);
            let (header, sealed) = packet.split_at(HEADER);
            let plain = &mut apart_from(sealed, size + 16);
            let start = Instant::now();
            for _ in 0..count {
                if key.open(0, header, sealed, plain).is_err() {
                    panic!("{cipher} did not open what it sealed");
                }
            }
            let opening = start.elapsed();
            let rate = |d: std::time::Duration| (count * size) as f64 / d.as_secs_f64() / 1e9;
            print!("  {:>9.1} / {:>8.1}", rate(sealing), rate(opening));
        }
        println!();
    }
}

/// A buffer of `capacity` bytes whose address differs from `other`'s by
/// at least 512 bytes modulo 4 KiB. Copying between two buffers whose
/// addresses nearly agree modulo 4 KiB stalls on 4K aliasing (a load is
/// taken to depend on a store to the same page offset): opening 16 KB
/// measured a third of its speed here for that alone, whatever the cipher.
/// Where the allocator put the buffers would otherwise decide the figure.
fn apart_from(other: &[u8], capacity: usize) -> Vec<u8> {
    let offset = |v: &Vec<u8>| (v.as_ptr() as usize).wrapping_sub(other.as_ptr() as usize) % 4096;
    let mut gaps = Vec::new();
    loop {
        let buf = Vec::with_capacity(capacity);
        if (512..=4096 - 512).contains(&offset(&buf)) || gaps.len() >= 64 {
            return buf;
        }
        // Keep the failed buffer, so the next one lands elsewhere.
        gaps.push(buf);
        gaps.push(Vec::<u8>::with_capacity(gaps.len() * 256));
    }
}

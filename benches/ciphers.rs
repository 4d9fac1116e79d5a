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
            // Wherever the allocator puts it: `open` moves a buffer that
            // would stall its copy on 4K aliasing (psk.rs).
            let mut plain = Vec::with_capacity(size + 16);
            let start = Instant::now();
            for _ in 0..count {
                if key.open(0, header, sealed, &mut plain).is_err() {
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

//! The raw UDP ceiling: how many 1200-byte datagrams one sender can push to
//! one receiver on loopback, with one `send` per datagram and with GSO,
//! through `quinn-udp` (the same calls rudp makes). No protocol at all.

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::IoSliceMut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZE: usize = 1200;

#[derive(Debug, serde::Serialize)]
pub struct Ceiling {
    pub mode: &'static str,
    pub sent_per_second: f64,
    pub received_per_second: f64,
    pub received_mb_per_second: f64,
}

/// Blasts for `secs` seconds; `segments` datagrams per send call.
pub fn blast(segments: usize, secs: f64) -> std::io::Result<Ceiling> {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
    for s in [&rx, &tx] {
        let sock = socket2::SockRef::from(s);
        let _ = sock.set_recv_buffer_size(4 << 20);
        let _ = sock.set_send_buffer_size(4 << 20);
    }
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let to = rx.local_addr()?;
    let rx_state = UdpSocketState::new((&rx).into())?;
    let tx_state = UdpSocketState::new((&tx).into())?;
    // At most 64 KiB per send, the largest UDP payload.
    let most = tx_state.max_gso_segments().clamp(1, 65_000 / SIZE);
    let segments = segments.clamp(1, most);
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut bufs = vec![vec![0u8; 65_536]; 8];
            let mut meta = vec![RecvMeta::default(); 8];
            while !stop.load(Ordering::Relaxed) {
                let mut slices: Vec<IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                if let Ok(n) = rx_state.recv((&rx).into(), &mut slices, &mut meta) {
                    let count: usize = meta[..n].iter().map(|m| m.len / m.stride.max(1)).sum();
                    received.fetch_add(count as u64, Ordering::Relaxed);
                }
            }
        })
    };
    let payload = vec![0x42u8; SIZE * segments];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents: &payload,
            segment_size: (segments > 1).then_some(SIZE),
            src_ip: None,
        };
        if tx_state.try_send((&tx).into(), &t).is_ok() {
            sent += segments as u64;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    let got = received.load(Ordering::Relaxed) as f64;
    Ok(Ceiling {
        mode: if segments > 1 {
            "GSO"
        } else {
            "one send per datagram"
        },
        sent_per_second: sent as f64 / elapsed,
        received_per_second: got / elapsed,
        received_mb_per_second: got * SIZE as f64 / elapsed / 1e6,
    })
}

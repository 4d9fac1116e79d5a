//! rudp on loopback, no impairment: bulk goodput of one connection, and
//! request/response latency, both ends on one shared runtime. A quick check
//! of the protocol alone; the comparison against quinn, KCP and TCP is
//! `benches/compare` (docs/benchmarks.md).
//!
//! `cargo bench --bench transfer`; `RUDP_BENCH_MB` sets the bulk size
//! (default 200), `RUDP_BENCH_ROUNDS` the echo count (default 10000).

use bytes::Bytes;
use rudp::Endpoint;
use rudp_core::endpoint::EndpointConfig;
use std::time::{Duration, Instant};

async fn echo_server() -> std::net::SocketAddr {
    let ep = Endpoint::server("127.0.0.1:0".parse().unwrap(), EndpointConfig::default()).unwrap();
    let addr = ep.local_addr();
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            tokio::spawn(async move {
                while let Ok(Some(m)) = conn.recv().await {
                    // Bulk messages are large: answer them with one byte.
                    let reply = if m.len() > 64 {
                        Bytes::from_static(b"k")
                    } else {
                        m
                    };
                    if conn.send(reply).await.is_err() {
                        return;
                    }
                }
                let _ = conn.close().await;
            });
        }
    });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mb: usize = std::env::var("RUDP_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let rounds: usize = std::env::var("RUDP_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let addr = echo_server().await;

        // Bulk: `mb` MiB in 64 KiB messages, then wait for the last reply.
        let ep = Endpoint::client(addr, EndpointConfig::default()).unwrap();
        let conn = ep.connect(addr).await.unwrap();
        let msg = Bytes::from(vec![0x5a; 64 * 1024]);
        let count = mb * 16;
        let start = Instant::now();
        let sender = {
            let conn = conn.clone();
            tokio::spawn(async move {
                for _ in 0..count {
                    conn.send(msg.clone()).await.unwrap();
                }
            })
        };
        for _ in 0..count {
            conn.recv().await.unwrap().unwrap();
        }
        sender.await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        let stats = conn.stats();
        println!("bulk, clean loopback: {mb} MiB in {secs:.2} s = {:.1} MB/s goodput", (mb << 20) as f64 / secs / 1e6);
        println!("  packets sent {}, retransmitted {}, lost {}, srtt {} us, cwnd {} bytes",
            stats.sent.packets, stats.sent.packets_retransmitted, stats.sent.packets_lost, stats.path.smoothed_rtt.as_micros(), stats.path.congestion_window);
        conn.close().await.unwrap();

        // Request/response: 8-byte echo, one at a time.
        let conn = ep.connect(addr).await.unwrap();
        let mut rtts = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let t = Instant::now();
            conn.send(Bytes::copy_from_slice(&(i as u64).to_be_bytes())).await.unwrap();
            conn.recv().await.unwrap().unwrap();
            rtts.push(t.elapsed());
        }
        rtts.sort();
        println!(
            "request/response, 8-byte echo, clean loopback, {rounds} rounds: p50 {:?}, p99 {:?}, max {:?}",
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.99),
            rtts[rtts.len() - 1]
        );
        conn.close().await.unwrap();
    });
}

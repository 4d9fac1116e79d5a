//! How many datagrams per second `rudp proxy` forwards with no impairment
//! (issue: at least 150,000 on this 2-core machine; a plain tokio relay with
//! one datagram per call measured 87,000).
//!
//! An echo server sits behind the proxy; load threads keep a window of
//! datagrams outstanding through the proxy and count the echoes. Every echo
//! is two datagrams forwarded. Runs in `cargo bench --bench proxy`;
//! `RUDP_BENCH_SECS` sets the measuring time (default 5).

use rudp_cli::proxy::{Proxy, ProxyConfig};
use rudp_core::impair::ImpairConfig;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WINDOW: usize = 64;
const FLOWS: usize = 2;

fn echo_server(stop: Arc<AtomicBool>) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    addr
}

/// One flow: keeps WINDOW datagrams outstanding; counts echoes.
fn flow(proxy: SocketAddr, payload: usize, stop: Arc<AtomicBool>, echoes: Arc<AtomicU64>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let msg = vec![7u8; payload];
    let mut buf = [0u8; 2048];
    let mut outstanding = 0;
    while !stop.load(Ordering::Relaxed) {
        while outstanding < WINDOW {
            if s.send_to(&msg, proxy).is_ok() {
                outstanding += 1;
            }
        }
        match s.recv_from(&mut buf) {
            Ok(_) => {
                outstanding -= 1;
                echoes.fetch_add(1, Ordering::Relaxed);
            }
            // A datagram was dropped somewhere: refill the window.
            Err(_) => outstanding = 0,
        }
    }
}

/// A plain tokio relay for comparison: one datagram per call, a socket per
/// client, no model, no scheduling.
async fn plain_relay(listen: tokio::net::UdpSocket, upstream: SocketAddr) {
    use std::collections::HashMap;
    use tokio::net::UdpSocket as TokioUdp;
    let listen = Arc::new(listen);
    let mut mappings: HashMap<SocketAddr, Arc<TokioUdp>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = listen.recv_from(&mut buf).await else {
            continue;
        };
        let up = match mappings.get(&from) {
            Some(u) => u.clone(),
            None => {
                let u = Arc::new(TokioUdp::bind("127.0.0.1:0").await.unwrap());
                let (u2, l2) = (u.clone(), listen.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok((n, _)) = u2.recv_from(&mut b).await {
                        let _ = l2.send_to(&b[..n], from).await;
                    }
                });
                mappings.insert(from, u.clone());
                u
            }
        };
        let _ = up.send_to(&buf[..n], upstream).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relay {
    RudpProxy,
    /// The proxy with `--pcap` on.
    RudpProxyPcap,
    /// The proxy with `--control` serving (idle).
    RudpProxyControl,
    PlainTokio,
}

/// Forwarded datagrams per second through `relay` with `payload`-byte datagrams.
fn measure(relay: Relay, payload: usize, secs: u64) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = echo_server(stop.clone());
    let (addr, proxy) = match relay {
        Relay::RudpProxy | Relay::RudpProxyPcap | Relay::RudpProxyControl => {
            // With --pcap: every datagram written with its verdict, to a
            // temporary file removed afterwards (no size limit reached).
            let pcap = (relay == Relay::RudpProxyPcap).then(|| {
                let path =
                    std::env::temp_dir().join(format!("rudp-bench-{}.pcapng", std::process::id()));
                (path, u64::MAX)
            });
            let p = runtime
                .block_on(Proxy::start(ProxyConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    upstream,
                    up: ImpairConfig::default(),
                    down: ImpairConfig::default(),
                    seed: 1,
                    mapping_idle: rudp_cli::proxy::MAPPING_IDLE,
                    max_clients: rudp_cli::proxy::MAX_CLIENTS,
                    schedule: Vec::new(),
                    pcap: pcap.clone(),
                    rebind: None,
                }))
                .unwrap();
            let p = Arc::new(p);
            if relay == Relay::RudpProxyControl {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                    .unwrap();
                let access = listener
                    .local_addr()
                    .map(|a| rudp_cli::proxy::control::Access::new(a, None))
                    .unwrap();
                runtime.spawn(rudp_cli::proxy::control::serve(
                    listener,
                    p.clone(),
                    access,
                    std::future::pending(),
                ));
            }
            (p.local_addr(), Some((p, pcap.map(|(path, _)| path))))
        }
        Relay::PlainTokio => {
            let sock = runtime
                .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
                .unwrap();
            let a = sock.local_addr().unwrap();
            runtime.spawn(plain_relay(sock, upstream));
            (a, None)
        }
    };
    let echoes = Arc::new(AtomicU64::new(0));
    let flows: Vec<_> = (0..FLOWS)
        .map(|_| {
            let (stop, echoes) = (stop.clone(), echoes.clone());
            std::thread::spawn(move || flow(addr, payload, stop, echoes))
        })
        .collect();
    // Warm up, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let start_count = echoes.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let count = echoes.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flows {
        let _ = f.join();
    }
    if let Some((p, pcap)) = proxy {
        drop(p);
        if let Some(path) = pcap {
            let _ = std::fs::remove_file(path);
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    2.0 * count as f64 / elapsed
}

fn main() {
    let secs: u64 = std::env::var("RUDP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "UDP relays, no impairment, {FLOWS} flows x {WINDOW} datagrams outstanding, {secs} s each"
    );
    println!(
        "{:<18}{:>10}{:>22}",
        "relay", "payload", "datagrams/s forwarded"
    );
    for payload in [64, 1200] {
        for relay in [
            Relay::RudpProxy,
            Relay::RudpProxyPcap,
            Relay::RudpProxyControl,
            Relay::PlainTokio,
        ] {
            let rate = measure(relay, payload, secs);
            println!("{:<18}{:>10}{:>22.0}", format!("{relay:?}"), payload, rate);
        }
    }
    println!("target: rudp proxy at least 150000 datagrams/s");
}

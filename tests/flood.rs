//! The flood test of PROTOCOL.md §13: a real `rudp server` process gets
//! 100,000 forged handshake packets and 100,000 garbage datagrams while 20
//! legitimate clients keep using the month service. Every legitimate answer
//! must be right, the server's memory must stay bounded, and every datagram
//! must be accounted for: counted by the server, or dropped by the kernel
//! (its socket's drop counter).

mod common;

use common::{forged_initial, template_initial, MONTHS};
use rand::{Rng, RngCore, SeedableRng};
use rudp_cli::month::client::{self, ClientExit, ClientOptions, Input};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const FORGED: u64 = 100_000;
const GARBAGE: u64 = 100_000;
const CLIENTS: usize = 20;
/// Bound on the server's resident memory growth under the flood.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

/// The kernel's drop counter for the UDP socket bound to `port` (the last
/// column of /proc/net/udp): datagrams the socket buffer had no room for.
fn kernel_drops(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    text.lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some(&local))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_forged_handshakes_and_garbage_while_clients_work() {
    let dir = std::env::temp_dir().join(format!("rudp-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats_path = dir.join("server.json");
    // Quiet, except for the month server's start line, which names its port.
    let mut server = common::Listening::spawn_with_env(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--stats-json",
            stats_path.to_str().unwrap(),
            // The forged INITIALs below are of version 2, in clear; the
            // clients speak version 3 with the server's key pinned.
            "--allow-insecure",
        ],
        &[("RUST_LOG", "rudp=warn,rudp_cli::month::server=info")],
    )
    .await;
    let addr = server.addr;
    let pid = server.child.id().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Warm up: one session, so the baseline includes a served connection.
    let mut opts = ClientOptions::new(addr, Duration::from_secs(20));
    opts.connection = server.client_config();
    let mut out = Vec::new();
    let code = client::run(
        &opts,
        Input::Args(vec!["1".into()]),
        &mut out,
        &mut Vec::new(),
    )
    .await;
    assert_eq!(code, ClientExit::AllMonths);
    let rss_before = status_kib(pid, "VmRSS:");

    // 20 clients, each running sessions of all twelve months until the
    // flood is over.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (opts, flooding) = (opts.clone(), flooding.clone());
        clients.push(tokio::spawn(async move {
            let mut sessions = 0u32;
            let mut packets = 0u64;
            let expected: String = MONTHS.iter().map(|m| format!("{m}\n")).collect();
            loop {
                let months: Vec<String> = (1..=12).map(|m| m.to_string()).collect();
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let (code, report) =
                    client::run_with_report(&opts, Input::Args(months), &mut out, &mut err).await;
                let err = String::from_utf8_lossy(&err);
                assert_eq!(code, ClientExit::AllMonths, "client {i}: {err}");
                assert_eq!(String::from_utf8_lossy(&out), expected, "client {i}");
                packets += report.map_or(0, |r| r.stats.sent.packets);
                sessions += 1;
                if !flooding.load(std::sync::atomic::Ordering::Relaxed) && sessions >= 2 {
                    return (sessions, packets);
                }
                // A person's pace, not a benchmark's: the CPU is for the flood.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // The flood, from 16 sockets, paced at about 50,000 datagrams a second
    // (what a debug-ish test build of the server handles on 2 shared cores;
    // the kernel's drops are accounted for below either way).
    let started = Instant::now();
    let flood = tokio::task::spawn_blocking(move || {
        let template = template_initial();
        let sockets: Vec<UdpSocket> = (0..16)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let mut garbage = vec![0u8; 1300];
        for i in 0..FORGED + GARBAGE {
            let sock = &sockets[i as usize % sockets.len()];
            if i % 2 == 0 {
                let d = forged_initial(&template, rng.gen_range(1..u64::MAX), None);
                sock.send_to(&d, addr).unwrap();
            } else {
                let len = rng.gen_range(1..1300);
                rng.fill_bytes(&mut garbage[..len]);
                if i % 4 == 1 && len > 3 {
                    // Half the garbage looks like rudp: magic and version.
                    garbage[..3].copy_from_slice(&[0x52, 0x55, 0x01]);
                }
                sock.send_to(&garbage[..len], addr).unwrap();
            }
            if i % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    flood.await.unwrap();
    let flood_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = status_kib(pid, "VmRSS:");
    let rss_peak = status_kib(pid, "VmHWM:");
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let (mut sessions, mut legit_packets) = (0, 0);
    for c in clients {
        let (s, p) = tokio::time::timeout(Duration::from_secs(120), c)
            .await
            .expect("clients finish")
            .expect("client task");
        sessions += s;
        legit_packets += p;
    }
    let drops = kernel_drops(addr.port());

    // Stop the server; its statistics count what it dropped.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("server exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    let ep = &report["endpoint"];
    let n = |k: &str| ep[k].as_u64().unwrap_or_else(|| panic!("endpoint.{k}"));
    eprintln!(
        "flood: {FORGED} forged INITIALs + {GARBAGE} garbage in {flood_secs:.1} s; \
         {sessions} legitimate sessions, all answers right; server RSS {rss_before} KiB -> \
         {rss_after} KiB (peak {rss_peak} KiB, growth {} KiB); kernel drops {drops}; \
         endpoint {ep}",
        rss_after.saturating_sub(rss_before)
    );
    let growth = rss_peak.saturating_sub(rss_before);
    assert!(growth < MAX_GROWTH_KIB, "server grew by {growth} KiB");
    // Every datagram is accounted for: counted by the endpoint, or dropped
    // by the kernel before the server could see it. (The warm-up session's
    // packets are counted too.)
    let received = n("datagrams_received");
    let sent_total = FORGED + GARBAGE + legit_packets;
    assert!(
        received + drops >= sent_total && received <= sent_total + 100,
        "received {received} + kernel drops {drops} vs {sent_total} sent"
    );
    let bad = n("dropped_not_rudp") + n("dropped_malformed") + n("dropped_corrupt");
    if drops == 0 {
        assert_eq!(bad, GARBAGE, "every garbage datagram is counted as dropped");
    }
    let forged_handled = n("retries_sent") + n("connections_accepted") + n("refused");
    assert!(
        bad + drops >= GARBAGE && forged_handled + drops >= FORGED,
        "garbage counted {bad}, forged handled {forged_handled}, kernel drops {drops}"
    );
    // Forged INITIALs made at most the pending-handshake threshold's worth
    // of connections; the rest got stateless RETRYs. (Legitimate clients
    // get in without a token while the server is not busy.)
    let without_token = n("connections_accepted") - n("accepted_with_token");
    let legit_sessions = u64::from(sessions) + 1;
    assert!(
        without_token <= rudp_core::endpoint::RETRY_WHEN_PENDING as u64 + legit_sessions,
        "{without_token} connections without a token"
    );
    assert!(n("retries_sent") > 0, "the server sent RETRYs under load");
    let _ = std::fs::remove_dir_all(&dir);
}

//! `rudp send` and `rudp recv` end to end: content verified byte for byte
//! through a lossy proxy, and every failure leaves nothing at the output.

mod common;

use bytes::Bytes;
use common::{rudp, silent_peer, Listening};
use rand::{RngCore, SeedableRng};
use rudp::Endpoint;
use rudp_cli::transfer::{Offer, Trailer, FORMAT_VERSION};
use rudp_core::endpoint::EndpointConfig;
use rudp_core::impair::ImpairConfig;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rudp-transfer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    std::fs::write(path, &data).unwrap();
    data
}

/// Everything in `dir` whose name marks an unfinished transfer.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("rudp-partial"))
        .collect()
}

/// `rudp recv` on a port of its own choosing, with `args` after `--listen`.
async fn spawn_recv(args: &[&str]) -> Listening {
    let mut all = vec!["recv", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Listening::spawn(&all).await
}

#[tokio::test]
async fn a_file_arrives_intact_through_10_percent_loss() {
    let dir = scratch("lossy");
    let src = dir.join("data.bin");
    let data = random_file(&src, 3_000_000, 1);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap()]).await;
    let listen = recv.addr.to_string();
    let link = ImpairConfig {
        loss: 0.1,
        duplicate: 0.02,
        reorder: 0.05,
        ..ImpairConfig::default()
    };
    let proxy = common::proxy(listen.parse().unwrap(), link.clone(), link, 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            &proxy.local_addr().to_string(),
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert!(
        sent.stderr.contains("sent data.bin (3000000 bytes)"),
        "{}",
        sent.stderr
    );
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // The sender's file name is kept inside the output directory.
    assert!(
        std::fs::read(out_dir.join("data.bin")).unwrap() == data,
        "content differs"
    );
    assert!(leftovers(&out_dir).is_empty());
    let stats = proxy.stop().await;
    assert!(
        stats.up.dropped_loss + stats.down.dropped_loss > 0,
        "{stats:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn out_dash_writes_to_standard_output() {
    let dir = scratch("stdout");
    let src = dir.join("small.txt");
    let data = random_file(&src, 200_000, 2);
    // Read the receiver's output while it runs: a full pipe would stall it.
    let recv = spawn_recv(&["--out", "-"]).await;
    let listen = recv.addr.to_string();
    let recv = tokio::spawn(recv.wait_with_output());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = rudp(
        &["send", src.to_str().unwrap(), "--to", &listen],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let r = tokio::time::timeout(LIMIT, recv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert!(
        r.stdout == data,
        "standard output carries exactly the content"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_interrupted_transfer_leaves_no_file_and_both_sides_fail() {
    let dir = scratch("interrupted");
    let src = dir.join("big.bin");
    random_file(&src, 20_000_000, 3);
    let out = dir.join("received.bin");
    let recv = spawn_recv(&["--out", out.to_str().unwrap(), "--timeout", "2s"]).await;
    let listen = recv.addr.to_string();
    // A slow link, so the transfer is still running when the sender dies.
    let link = ImpairConfig {
        rate: Some(2_000_000),
        queue: 100,
        ..ImpairConfig::default()
    };
    let proxy = common::proxy(listen.parse().unwrap(), link.clone(), link, 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sender = common::rudp_command()
        .args([
            "send",
            src.to_str().unwrap(),
            "--to",
            &proxy.local_addr().to_string(),
        ])
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sender.kill().await.unwrap();
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed"), "{stderr}");
    assert!(
        !out.exists(),
        "an interrupted transfer left a file at the output path"
    );
    assert!(
        leftovers(&dir).is_empty(),
        "temporary files left: {:?}",
        leftovers(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn content_that_fails_verification_is_not_kept() {
    let dir = scratch("verify");
    let out = dir.join("x.bin");
    let recv = spawn_recv(&["--out", out.to_str().unwrap()]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A sender that lies about the hash.
    let addr = listen.parse().unwrap();
    let ep = Endpoint::client(addr, EndpointConfig::new(recv.client_config())).unwrap();
    let conn = ep.connect(addr).await.unwrap();
    let offer = Offer {
        version: FORMAT_VERSION,
        name: "x.bin".into(),
        size: 5,
    };
    conn.send(Bytes::from(serde_json::to_vec(&offer).unwrap()))
        .await
        .unwrap();
    conn.send(Bytes::from_static(b"hello")).await.unwrap();
    let bad = Trailer {
        sha256: "00".repeat(32),
    };
    conn.send(Bytes::from(serde_json::to_vec(&bad).unwrap()))
        .await
        .unwrap();
    // The receiver's answer is its CLOSE: code 3 (refused), with the reason.
    match conn.recv().await {
        Err(rudp::Error::Connection {
            source: rudp::ConnectionError::PeerAborted { code, reason },
            ..
        }) => {
            assert_eq!(code, rudp::VarInt::from_u32(3));
            assert!(reason.contains("did not verify"), "{reason}");
        }
        other => panic!("expected the receiver's refusal, got {other:?}"),
    }
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(!out.exists());
    assert!(leftovers(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_arguments_fail_clearly() {
    let dir = scratch("badargs");
    let (_nobody, to) = silent_peer();
    let to = to.to_string();
    let missing = dir.join("nope.bin");
    let out = rudp(
        &["send", missing.to_str().unwrap(), "--to", &to],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cannot read") && out.stderr.contains("nope.bin"),
        "{}",
        out.stderr
    );
    // Nobody listening: a clear failure within the timeout.
    let src = dir.join("a.bin");
    random_file(&src, 10, 4);
    let out = rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            &to,
            "--timeout",
            "1s",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is the server running?"),
        "{}",
        out.stderr
    );
    // An output path in a directory that does not exist.
    let bad_out = dir.join("no/such/dir/f.bin");
    let out = rudp(
        &[
            "recv",
            "--listen",
            "127.0.0.1:0",
            "--out",
            bad_out.to_str().unwrap(),
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--psk` on both sides: the file arrives; a sender without the key is
/// refused with a reason and nothing is written.
#[tokio::test]
async fn a_transfer_sealed_with_a_pre_shared_key() {
    let dir = scratch("psk");
    let src = dir.join("secret.bin");
    let data = random_file(&src, 300_000, 4);
    let key = dir.join("transfer.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let key = key.to_str().unwrap();
    let out = dir.join("received.bin");
    let recv = spawn_recv(&["--out", out.to_str().unwrap(), "--psk", key, "--keep-open"]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = rudp(
        &["send", src.to_str().unwrap(), "--to", &listen],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    // Version 3: the key file is a second factor of the handshake
    // (PROTOCOL.md §16.2); the sender learns at once that they differ.
    assert!(
        refused.stderr.contains("different pre-shared keys (--psk)"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists());
    let sent = rudp(
        &["send", src.to_str().unwrap(), "--to", &listen, "--psk", key],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    drop(recv);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--congestion` picks the controller on each side (PROTOCOL.md §9.4): a
/// file crosses a lossy link with each, the sender's JSON statistics name
/// the controller that ran and its window, and an unknown name is refused
/// with status 2.
#[tokio::test]
async fn each_congestion_controller_moves_a_file_through_loss() {
    let dir = scratch("congestion");
    let src = dir.join("data.bin");
    let data = random_file(&src, 1_000_000, 9);
    for (i, algorithm) in ["bbr", "cubic", "newreno"].into_iter().enumerate() {
        let out = dir.join(format!("out-{algorithm}.bin"));
        let recv = spawn_recv(&["--out", out.to_str().unwrap(), "--congestion", algorithm]).await;
        let listen = recv.addr.to_string();
        let link = ImpairConfig {
            loss: 0.05,
            ..ImpairConfig::default()
        };
        let proxy = common::proxy(listen.parse().unwrap(), link.clone(), link, i as u64).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats_path = dir.join(format!("stats-{algorithm}.json"));
        let sent = rudp(
            &[
                "send",
                src.to_str().unwrap(),
                "--to",
                &proxy.local_addr().to_string(),
                "--congestion",
                algorithm,
                // 1200-byte datagrams: about 900 packets, so that 5% loss
                // surely hits some (64 KiB ones would make about 20). Also
                // checks the flag.
                "--max-datagram-size",
                "1200",
                "--stats-json",
                stats_path.to_str().unwrap(),
            ],
            b"",
            LIMIT,
        )
        .await;
        assert_eq!(sent.code, Some(0), "{algorithm}: {sent:?}");
        let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{algorithm}");
        assert!(
            std::fs::read(&out).unwrap() == data,
            "{algorithm}: content differs"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
        assert!(json["stats"]["path"]["congestion_window"].as_u64().unwrap() >= 2 * 1200);
        assert_eq!(json["stats"]["path"]["max_datagram_size"], 1200);
        assert_eq!(json["stats"]["sent"]["mtu_probes"], 0);
        assert!(
            json["stats"]["sent"]["packets_lost"].as_u64().unwrap() > 0,
            "{algorithm}: {json}"
        );
        // The controller asked for is the one that ran (issue #13).
        assert_eq!(
            json["stats"]["path"]["congestion"], algorithm,
            "{algorithm}: {json}"
        );
        proxy.stop().await;
    }
    let out = rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            "127.0.0.1:9",
            "--congestion",
            "vegas",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown congestion controller 'vegas'"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for a `rudp recv` to exit: its status and standard error.
async fn finish(recv: Listening) -> (Option<i32>, String) {
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .expect("recv exits in time")
        .expect("recv ran");
    (
        r.status.code(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

/// Sends `src` to `listen` and returns the sender's run.
async fn send_to(src: &Path, listen: &str) -> common::Output {
    rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            listen,
            "--timeout",
            "5s",
        ],
        b"",
        LIMIT,
    )
    .await
}

/// Issue #12 item 6: a sender named its file `.bashrc` and replaced the
/// receiver's. Now a dotfile is refused, an existing file is never replaced
/// (the new one gets another name, printed), and `--force` replaces.
#[tokio::test]
async fn existing_files_and_dotfiles_are_never_replaced() {
    let dir = scratch("noclobber");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join(".bashrc"), "mine").unwrap();
    std::fs::write(out_dir.join("notes.txt"), "mine").unwrap();
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap(), "--keep-open"]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dot = dir.join(".bashrc");
    random_file(&dot, 100, 1);
    let sent = send_to(&dot, &listen).await;
    assert_eq!(sent.code, Some(1), "{sent:?}");
    assert!(sent.stderr.contains("starts with a dot"), "{}", sent.stderr);
    assert!(
        !sent.stderr.contains(out_dir.to_str().unwrap()),
        "{}",
        sent.stderr
    );
    let notes = dir.join("notes.txt");
    let data = random_file(&notes, 1000, 2);
    let sent = send_to(&notes, &listen).await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join(".bashrc")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read(out_dir.join("notes.1.txt")).unwrap(), data);
    // The first receiver ends; a second one, with --force, replaces.
    let mut recv = recv;
    recv.child.kill().await.unwrap();
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap(), "--force"]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(send_to(&notes, &listen).await.code, Some(0));
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("notes.txt"),
        "where the file went: {stderr}"
    );
    assert_eq!(std::fs::read(out_dir.join("notes.txt")).unwrap(), data);
    assert!(leftovers(&out_dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #12 items 9 and 18: an offer over `--max-size` is refused before
/// any data moves, and a `--out DIR/` that cannot be made fails at start
/// (one that does not exist yet is made: issue #26).
#[tokio::test]
async fn oversized_offers_and_missing_directories_fail_before_any_data() {
    let dir = scratch("limits");
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let impossible = format!("{}/", dir.join("a-file/sub").display());
    let out = rudp(
        &["recv", "--listen", "127.0.0.1:0", "--out", &impossible],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("cannot make the output directory"),
        "{}",
        out.stderr
    );
    let out = rudp(
        &["recv", "--listen", "127.0.0.1:0", "--max-size", "lots"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");

    let recv = spawn_recv(&["--out", dir.to_str().unwrap(), "--max-size", "100kB"]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let big = dir.join("big.bin");
    random_file(&big, 2_000_000, 3);
    let sent = send_to(&big, &listen).await;
    assert_eq!(sent.code, Some(1), "{sent:?}");
    assert!(sent.stderr.contains("at most 100000"), "{}", sent.stderr);
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(leftovers(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #12 item 3: a peer that connects and then says nothing used to
/// hold `rudp recv` for the whole `--timeout` while the real sender failed.
/// Now both are served at once; the real transfer completes and ends the
/// run.
#[tokio::test]
async fn an_idle_peer_does_not_block_the_real_sender() {
    let dir = scratch("idle");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap(), "--timeout", "30s"]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = listen.parse().unwrap();
    let idle = Endpoint::client(addr, EndpointConfig::new(recv.client_config())).unwrap();
    let _idle_conn = idle.connect(addr).await.unwrap();
    let src = dir.join("real.bin");
    let data = random_file(&src, 200_000, 5);
    let started = std::time::Instant::now();
    let sent = send_to(&src, &listen).await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(std::fs::read(out_dir.join("real.bin")).unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #12 item 13: `--trace-level metrics` leaves out every per-packet
/// event (a 300 MB transfer's trace was 315 MB), and `rudp plot` still draws
/// the windows and losses from it.
#[tokio::test]
async fn a_metrics_trace_has_no_packets_and_still_plots() {
    let dir = scratch("tracelevel");
    let recv = spawn_recv(&["--out", dir.to_str().unwrap()]).await;
    let listen = recv.addr.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let src = dir.join("t.bin");
    random_file(&src, 2_000_000, 6);
    let trace = dir.join("send.trace");
    let sent = rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            &listen,
            "--trace",
            trace.to_str().unwrap(),
            "--trace-level",
            "metrics",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text
        .lines()
        .next()
        .unwrap()
        .contains("\"level\":\"metrics\""));
    assert!(
        !text.contains("transport:packet_sent"),
        "per-packet events in a metrics trace"
    );
    assert!(text.contains("recovery:metrics_updated"));
    let svg = dir.join("send.svg");
    let out = rudp(
        &["plot", trace.to_str().unwrap(), "-o", svg.to_str().unwrap()],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(std::fs::metadata(&svg).unwrap().len() > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `src` to `to` with `--stats-json json`; both the sender and the
/// receiver `recv` must succeed.
async fn send_and_finish(src: &Path, to: std::net::SocketAddr, json: &Path, recv: Listening) {
    let sent = rudp(
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            &to.to_string(),
            "--stats-json",
            json.to_str().unwrap(),
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(0), "{stderr}");
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Issue #15: through a NAT that rebinds the sender every 500 ms, on a link
/// losing 10% each way, the file arrives intact; the receiver's statistics
/// show the moves it validated (PROTOCOL.md §6.9), the sender's the
/// challenges it answered.
#[tokio::test]
async fn a_file_arrives_intact_through_a_rebinding_nat_and_10_percent_loss() {
    let dir = scratch("rebind");
    let src = dir.join("moving.bin");
    let data = random_file(&src, 3_000_000, 11);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let recv_json = dir.join("recv.json");
    let recv = spawn_recv(&[
        "--out",
        out_dir.to_str().unwrap(),
        "--stats-json",
        recv_json.to_str().unwrap(),
    ])
    .await;
    // 1 MB/s: the 3 MB take a few seconds, so the NAT rebinds several times.
    let link = ImpairConfig {
        loss: 0.1,
        rate: Some(1_000_000),
        queue: 100,
        ..ImpairConfig::default()
    };
    let proxy = common::rebinding_proxy(
        recv.addr,
        link.clone(),
        link,
        12,
        Some(Duration::from_millis(500)),
    )
    .await;
    let send_json = dir.join("send.json");
    send_and_finish(&src, proxy.local_addr(), &send_json, recv).await;
    assert!(std::fs::read(out_dir.join("moving.bin")).unwrap() == data);
    let stats = proxy.stop().await;
    assert!(stats.rebinds >= 2, "{stats:?}");
    let (r, s) = (json_file(&recv_json), json_file(&send_json));
    let migrations = r["stats"]["migration"]["migrations"].as_u64().unwrap();
    assert!(migrations >= 2, "{r}");
    assert!(
        s["stats"]["migration"]["responses_sent"].as_u64().unwrap() >= migrations,
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #15: through a proxy that drops datagrams over 1400 bytes (`rudp
/// proxy --mtu 1400`), path MTU discovery over real sockets settles just
/// under it (PROTOCOL.md §9.7) and the file arrives intact; only probes
/// were too big.
#[tokio::test]
async fn discovery_settles_under_the_proxys_mtu_and_the_file_arrives() {
    let dir = scratch("mtu");
    let src = dir.join("sized.bin");
    let data = random_file(&src, 4_000_000, 13);
    // A probe lost to a busy machine's queues (the whole test suite runs
    // at once on two cores) gives its size up, like one lost to the path
    // (§9.7), and can leave the search at 1200. The path is never crossed:
    // that holds on every attempt; finding more than 1200 must happen on
    // one of three.
    let mut sizes = Vec::new();
    for attempt in 0..3u64 {
        let out = dir.join(format!("sized-{attempt}.out"));
        let recv = spawn_recv(&["--out", out.to_str().unwrap()]).await;
        let link = ImpairConfig {
            mtu: Some(1400),
            ..ImpairConfig::default()
        };
        let proxy = common::proxy(recv.addr, link.clone(), link, 14 + attempt).await;
        let json = dir.join(format!("send-{attempt}.json"));
        send_and_finish(&src, proxy.local_addr(), &json, recv).await;
        assert!(std::fs::read(&out).unwrap() == data);
        let s = json_file(&json);
        let size = s["stats"]["path"]["max_datagram_size"].as_u64().unwrap();
        assert!(size <= 1400, "settled at {size}, above the path: {s}");
        let stats = proxy.stop().await;
        // Only probes were ever too big: no data packet crossed the path's
        // size (each datagram dropped for its size was a probe).
        let probes = s["stats"]["sent"]["mtu_probes"].as_u64().unwrap();
        assert!(
            stats.up.dropped_mtu <= probes && stats.up.dropped_mtu > 0,
            "{} dropped for size, {probes} probes sent: {s}",
            stats.up.dropped_mtu
        );
        sizes.push(size);
        if size > 1200 {
            break;
        }
    }
    assert!(
        sizes.iter().any(|&s| s > 1200),
        "discovery never found more than 1200 bytes: {sizes:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #26 item 6: the README's `rudp recv --out received/` works as
/// written when `received/` does not exist yet: it is made, and the file
/// lands in it.
#[tokio::test]
async fn recv_out_dir_makes_the_directory() {
    let dir = scratch("mkdir");
    let src = dir.join("made.bin");
    let data = random_file(&src, 50_000, 9);
    let target = dir.join("received");
    let arg = format!("{}/", target.display());
    let recv = spawn_recv(&["--out", &arg]).await;
    assert!(target.is_dir(), "made at start");
    let listen = recv.addr.to_string();
    let sent = rudp(
        &["send", src.to_str().unwrap(), "--to", &listen],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let _ = recv.wait_with_output().await;
    assert_eq!(std::fs::read(target.join("made.bin")).unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends SIGINT to a child process, as Ctrl-C does.
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("the child runs") as libc::pid_t;
    // SAFETY: kill(2) with a live child's pid and a valid signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

/// Issue #26 item 2: a sender still pushing data learns why the receiver
/// refused the file within a round trip (not "no progress for 10s"), and
/// says it once.
#[tokio::test]
async fn a_refused_sender_learns_why_at_once_and_says_it_once() {
    let dir = scratch("refused-fast");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap(), "--max-size", "1MB"]).await;
    let listen = recv.addr.to_string();
    let big = dir.join("big.bin");
    random_file(&big, 20_000_000, 8);
    let started = std::time::Instant::now();
    let sent = send_to(&big, &listen).await;
    let took = started.elapsed();
    assert_eq!(sent.code, Some(1), "{sent:?}");
    // Well under the 10 s "no progress" it took before; generous, because
    // the whole suite runs beside it on two cores (3 s flaked once there).
    assert!(took < Duration::from_secs(6), "the sender took {took:?}");
    assert_eq!(
        sent.stderr.matches("at most 1000000").count(),
        1,
        "{}",
        sent.stderr
    );
    assert_eq!(
        sent.stderr.matches("refused the file").count(),
        1,
        "{}",
        sent.stderr
    );
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(leftovers(&out_dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #26 item 3: Ctrl-C on either side ends the transfer at once: the
/// other side reports it within 3 s, and the receiver keeps nothing.
#[tokio::test]
async fn ctrl_c_on_either_side_tells_the_other_at_once() {
    for interrupted in ["send", "recv"] {
        let dir = scratch(&format!("ctrl-c-{interrupted}"));
        let out_dir = dir.join("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let src = dir.join("big.bin");
        random_file(&src, 20_000_000, 9);
        let recv = spawn_recv(&["--out", out_dir.to_str().unwrap(), "--timeout", "20s"]).await;
        let listen = recv.addr.to_string();
        // A slow link, so that the transfer is under way when Ctrl-C comes.
        let link = ImpairConfig {
            rate: Some(2_000_000),
            queue: 100,
            ..ImpairConfig::default()
        };
        let proxy = common::proxy(listen.parse().unwrap(), link.clone(), link, 6).await;
        let sender = common::rudp_command()
            .args([
                "send",
                src.to_str().unwrap(),
                "--to",
                &proxy.local_addr().to_string(),
                "--timeout",
                "20s",
            ])
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let at = std::time::Instant::now();
        if interrupted == "send" {
            interrupt(&sender);
        } else {
            interrupt(&recv.child);
        }
        let sent = tokio::time::timeout(LIMIT, sender.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let sender_took = at.elapsed();
        let (code, stderr) = finish(recv).await;
        let receiver_took = at.elapsed();
        let sent_err = String::from_utf8_lossy(&sent.stderr);
        if interrupted == "send" {
            assert_eq!(sent.status.code(), Some(130), "{sent_err}");
            assert!(
                sent_err.contains("interrupted; the receiver was told"),
                "{sent_err}"
            );
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains("the sender stopped the transfer: the sender was interrupted"),
                "{stderr}"
            );
        } else {
            assert_eq!(code, Some(130), "{stderr}");
            assert_eq!(sent.status.code(), Some(1), "{sent_err}");
            assert!(
                sent_err
                    .contains("the receiver stopped the transfer: the receiver was interrupted"),
                "{sent_err}"
            );
        }
        assert!(
            sender_took < Duration::from_secs(3) && receiver_took < Duration::from_secs(3),
            "{interrupted}: sender after {sender_took:?}, receiver after {receiver_took:?}"
        );
        assert!(leftovers(&out_dir).is_empty(), "{:?}", leftovers(&out_dir));
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Issue #26 item 4: through `rudp proxy --loss 5%` on loopback, the loss
/// the sender reports is the link's, not the link's plus what a full
/// socket buffer dropped before the proxy read it (13-32% before the proxy
/// sized its buffers). The proxy's statistics count any kernel drops.
#[tokio::test]
async fn loss_reported_through_a_5_percent_proxy_matches_the_link() {
    let dir = scratch("loss-figures");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let src = dir.join("data.bin");
    random_file(&src, 30_000_000, 12);
    let recv = spawn_recv(&["--out", out_dir.to_str().unwrap()]).await;
    let json = dir.join("proxy.json");
    let proxy = common::spawn_proxy(
        recv.addr,
        &[
            "--loss",
            "5%",
            "--seed",
            "5",
            "--stats-json",
            json.to_str().unwrap(),
        ],
    )
    .await;
    let sent = send_to(&src, &proxy.addr.to_string()).await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let lost: f64 = sent
        .stderr
        .split_once("% of packets lost")
        .and_then(|(before, _)| before.rsplit_once('(').map(|(_, n)| n.to_string()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loss figure in {}", sent.stderr));
    println!("reported loss {lost}%");
    assert!(
        lost <= 10.0,
        "{lost}% reported through a 5% link: {}",
        sent.stderr
    );
    let (code, stderr) = finish(recv).await;
    assert_eq!(code, Some(0), "{stderr}");
    let pid = proxy.child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) with a live child's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let done = tokio::time::timeout(LIMIT, proxy.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.code(), Some(0));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(stats["kernel_dropped_up"].is_u64(), "{stats}");
    assert!(stats["kernel_dropped_down"].is_u64(), "{stats}");
    let _ = std::fs::remove_dir_all(&dir);
}

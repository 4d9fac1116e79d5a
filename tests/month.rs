//! The month service end to end: the real client binary against a server on
//! loopback, directly and through a lossy proxy.

mod common;

use common::{proxy, rudp, Server, MONTHS};
use rand::{Rng, SeedableRng};
use rudp::Endpoint;
use rudp_cli::month::client::{self, ClientExit, ClientOptions, Input};
use rudp_core::endpoint::EndpointConfig;
use rudp_core::impair::ImpairConfig;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn all_twelve() -> Vec<String> {
    (1..=12).map(|m| m.to_string()).collect()
}

fn args<'a>(server: &'a str, months: &'a [String]) -> Vec<&'a str> {
    let mut a = vec!["client", "--server", server, "--"];
    a.extend(months.iter().map(String::as_str));
    a
}

#[tokio::test]
async fn all_twelve_months_in_order() {
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let months = all_twelve();
    let out = rudp(&args(&addr, &months), b"", LIMIT).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), MONTHS);
    assert!(
        out.stderr.contains("Welcome to the rudp month service"),
        "{out:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_answered_with_errors_and_the_connection_stays_usable() {
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let long = "9".repeat(5000);
    let requests: Vec<String> = ["1", "13", "0x1", "abc", "", &long, "-3", "12"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = rudp(&args(&addr, &requests), b"", LIMIT).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), requests.len(), "{out:?}");
    assert_eq!(lines[0], "January");
    assert_eq!(
        lines[1],
        "error: 13 is out of range: send a number from 1 to 12 (0 ends the session)"
    );
    assert!(lines[2].starts_with("error: '0x1' is not a number"));
    assert!(lines[3].starts_with("error: 'abc' is not a number"));
    assert!(lines[4].starts_with("error: empty request"));
    assert!(lines[5].starts_with("error: request too long (5000 bytes)"));
    assert!(lines[6].starts_with("error: '-3' is not a number"));
    assert_eq!(lines[7], "December");
    server.stop().await;
}

#[tokio::test]
async fn piped_lines_and_zero_ends_the_session() {
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let out = rudp(&["client", "--server", &addr], b"3\r\n4\n0\n5\n", LIMIT).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "March\nApril\n");
    assert!(out.stderr.contains("goodbye"), "{out:?}");
    // A huge line is refused by the client itself, in its place.
    let mut input = b"1\n".to_vec();
    input.extend(vec![b'7'; 100_000]);
    input.extend(b"\n2\n");
    let out = rudp(&["client", "--server", &addr], &input, LIMIT).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "January");
    assert!(lines[1].starts_with("error: request too long"), "{out:?}");
    assert_eq!(lines[2], "February");
    server.stop().await;
}

#[tokio::test]
async fn nothing_listening_fails_with_status_1_within_the_timeout() {
    // A port held by a socket that never answers: nobody is serving there.
    let (_nobody, addr) = common::silent_peer();
    let addr = addr.to_string();
    let started = Instant::now();
    let out = rudp(
        &["client", "--server", &addr, "--timeout", "1s", "1"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "no answer from {addr} after 1 s: is the server running?"
        )),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn fifty_clients_at_once_each_get_their_own_answers() {
    let server = Server::start().await;
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i);
            let requests: Vec<String> =
                (0..20).map(|_| rng.gen_range(1..=12).to_string()).collect();
            let expected: String = requests
                .iter()
                .map(|r| format!("{}\n", MONTHS[r.parse::<usize>().unwrap() - 1]))
                .collect();
            let opts = ClientOptions::new(addr, Duration::from_secs(20));
            let mut out = Vec::new();
            let mut err = Vec::new();
            let code = client::run(&opts, Input::Args(requests), &mut out, &mut err).await;
            assert_eq!(
                code,
                ClientExit::AllMonths,
                "client {i}: {}",
                String::from_utf8_lossy(&err)
            );
            assert_eq!(String::from_utf8(out).unwrap(), expected, "client {i}");
        }));
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t)
            .await
            .expect("clients finish")
            .expect("client ok");
    }
    server.stop().await;
}

/// The month exchange, then large messages, through the proxy under `link`
/// in both directions.
async fn through_lossy_link(link: ImpairConfig, seed: u64) {
    let server = Server::start().await;
    let proxy = proxy(server.addr, link.clone(), link.clone(), seed).await;
    let addr = proxy.local_addr().to_string();
    let mut requests = all_twelve();
    requests.extend(["13", "abc", "0x1"].map(String::from));
    requests.extend(all_twelve());
    let out = rudp(&args(&addr, &requests), b"", LIMIT).await;
    assert_eq!(out.code, Some(2), "{out:?}\nproxy: {:?}", proxy.stats());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..12], MONTHS, "{out:?}");
    assert!(lines[12].starts_with("error: 13 is out of range"));
    assert!(lines[13].starts_with("error: 'abc'"));
    assert!(lines[14].starts_with("error: '0x1'"));
    assert_eq!(&lines[15..], MONTHS);
    server.stop().await;

    // Large messages (up to 128 KiB, about 1 MiB in all) through a proxy with the
    // same impairments, echoed back.
    let (echo, echo_task) = common::echo_server().await;
    let echo_proxy = common::proxy(echo, link.clone(), link, seed + 100).await;
    tokio::time::timeout(
        LIMIT,
        common::echo_exchange(echo_proxy.local_addr(), 16, 128 * 1024, seed),
    )
    .await
    .expect("large messages within the time limit");
    echo_task.abort();
    let big = echo_proxy.stop().await;

    proxy.stop().await;
    let dropped =
        big.up.dropped_loss + big.down.dropped_loss + big.up.dropped_burst + big.down.dropped_burst;
    assert!(dropped > 0, "the link dropped nothing: {big:?}");
}

#[tokio::test]
async fn survives_30_percent_loss_with_duplication_reordering_and_corruption() {
    through_lossy_link(
        ImpairConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.1,
            corrupt: 0.02,
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(2),
            ..ImpairConfig::default()
        },
        1,
    )
    .await;
}

#[tokio::test]
async fn survives_10_percent_loss() {
    through_lossy_link(
        ImpairConfig {
            loss: 0.1,
            ..ImpairConfig::default()
        },
        2,
    )
    .await;
}

#[tokio::test]
async fn survives_burst_loss() {
    through_lossy_link(
        ImpairConfig {
            loss: 0.2,
            loss_burst: Some(4.0),
            duplicate: 0.05,
            reorder: 0.05,
            ..ImpairConfig::default()
        },
        3,
    )
    .await;
}

#[tokio::test]
async fn server_binary_exits_0_on_sigterm() {
    let mut server = common::Listening::spawn(&["server", "--listen", "127.0.0.1:0"]).await;
    let addr = server.addr.to_string();
    // Serve one real client first.
    let out = rudp(&["client", "--server", &addr, "7"], b"", LIMIT).await;
    assert_eq!(out.stdout, "July\n", "{out:?}");
    let pid = server.child.id().expect("running") as i32;
    // SAFETY-free: sending a signal through the kill(1) command.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("server exits within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(code.code(), Some(0));
}

#[tokio::test]
async fn answers_stream_out_while_standard_input_is_still_open() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let server = Server::start().await;
    let mut child = interactive_client(server.addr);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Each answer must come out before the next request is even written.
    for (req, want) in [
        ("4", "April"),
        ("oops", "error: 'oops' is not a number"),
        ("11", "November"),
    ] {
        stdin
            .write_all(format!("{req}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the answer is printed while input is still open")
            .unwrap()
            .unwrap();
        assert!(line.starts_with(want), "{req}: {line}");
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(2), "one request was rejected");
    server.stop().await;
}

#[tokio::test]
async fn summaries_and_stats_json_for_server_and_client() {
    let dir = std::env::temp_dir().join(format!("rudp-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let client_json = dir.join("client.json");
    let out = rudp(
        &[
            "client",
            "--server",
            &addr,
            "--stats-json",
            client_json.to_str().unwrap(),
            "1",
            "2",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout, "January\nFebruary\n",
        "the summary must not touch standard output"
    );
    // Quiet by default (issue #26 item 9): the stats line needs -v.
    assert!(!out.stderr.contains("stats:"), "{}", out.stderr);
    let verbose = rudp(&["client", "--server", &addr, "-v", "3"], b"", LIMIT).await;
    assert_eq!(verbose.stdout, "March\n", "{verbose:?}");
    assert!(
        verbose.stderr.contains("stats: packets sent"),
        "{}",
        verbose.stderr
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&client_json).unwrap()).unwrap();
    assert_eq!(
        v["stats"]["received"]["messages"], 3,
        "greeting and two answers: {v}"
    );
    assert!(v["stats"]["path"]["smoothed_rtt_ms"].as_f64().unwrap() > 0.0);
    let report = server.stop().await;
    assert_eq!(report.connections, 2, "the quiet run and the -v one");
    assert_eq!(report.totals.received.messages, 3);
    assert!(report.summary().contains("served 2 connection"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn trace_file_and_plot() {
    let dir = std::env::temp_dir().join(format!("rudp-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::start().await;
    let proxy = proxy(
        server.addr,
        ImpairConfig {
            loss: 0.2,
            ..ImpairConfig::default()
        },
        ImpairConfig {
            loss: 0.2,
            ..ImpairConfig::default()
        },
        9,
    )
    .await;
    let trace = dir.join("client.trace");
    let addr = proxy.local_addr().to_string();
    let months = all_twelve();
    let mut args = vec![
        "client",
        "--server",
        &addr,
        "--trace",
        trace.to_str().unwrap(),
    ];
    args.extend(months.iter().map(String::as_str));
    let out = rudp(&args, b"", LIMIT).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        if i == 0 {
            assert_eq!(v["rudp_trace"], 1);
            continue;
        }
        assert!(v["time"].as_f64().is_some() && v["conn"].as_str().is_some_and(|c| c.len() == 16));
        names.insert(v["name"].as_str().unwrap().to_string());
    }
    for expected in [
        "transport:packet_sent",
        "transport:packet_received",
        "recovery:metrics_updated",
        "connectivity:connection_state_updated",
    ] {
        assert!(names.contains(expected), "no {expected} in {names:?}");
    }
    let svg = dir.join("client.svg");
    let plot = rudp(
        &["plot", trace.to_str().unwrap(), "-o", svg.to_str().unwrap()],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(plot.code, Some(0), "{plot:?}");
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("packets: sent, acknowledged, lost"));
    let missing = rudp(&["plot", dir.join("nope").to_str().unwrap()], b"", LIMIT).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("cannot read"), "{missing:?}");
    proxy.stop().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn max_connections_refuses_clearly_and_closed_connections_free_their_place() {
    let server = common::Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "1",
    ])
    .await;
    let addr = server.addr.to_string();
    // The one allowed connection, held open.
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    let ep = rudp::Endpoint::client(sock, EndpointConfig::new(server.client_config())).unwrap();
    let held = ep
        .connect(sock)
        .await
        .expect("the first client is accepted");
    assert!(held.recv().await.unwrap().is_some(), "greeting");
    // A second client is refused with a clear message.
    let out = rudp(&["client", "--server", &addr, "1"], b"", LIMIT).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("CONNECTION_REFUSED"), "{}", out.stderr);
    // Once the first has closed (it lingers, but no longer counts), the
    // place is free again.
    held.close().await.expect("graceful close");
    let out = rudp(&["client", "--server", &addr, "1"], b"", LIMIT).await;
    assert_eq!(out.stdout, "January\n", "{out:?}");
}

/// `--psk` and `--retry` from the command line: the right key works
/// through a RETRY; no key, a wrong key and a short key fail clearly.
#[tokio::test]
async fn pre_shared_key_and_retry_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("rudp-month-psk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, wrong, short) = (dir.join("a.key"), dir.join("b.key"), dir.join("c.key"));
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    std::fs::write(&wrong, b"fedcba9876543210fedcba9876543210").unwrap();
    std::fs::write(&short, b"too short").unwrap();
    let (key, wrong, short) = (
        key.to_str().unwrap(),
        wrong.to_str().unwrap(),
        short.to_str().unwrap(),
    );
    let server = common::Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--psk",
        key,
        "--retry",
        "always",
    ])
    .await;
    let addr = server.addr.to_string();

    let out = rudp(
        &["client", "--server", &addr, "--psk", key, "3"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "March\n"),
        "{out:?}"
    );

    // Version 3: the key file is a second factor, mixed into the Noise
    // handshake (PROTOCOL.md §16.2); a client without it is told at once.
    let out = rudp(&["client", "--server", &addr, "3"], b"", LIMIT).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("different pre-shared keys (--psk)"),
        "{}",
        out.stderr
    );

    let out = rudp(
        &[
            "client",
            "--server",
            &addr,
            "--psk",
            wrong,
            "--timeout",
            "1s",
            "3",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("same pre-shared key"), "{}", out.stderr);

    let out = rudp(
        &["client", "--server", &addr, "--psk", short, "3"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("at least 16 are needed"),
        "{}",
        out.stderr
    );

    // The clear protocol with a key (§3.7), as before version 3.
    let clear = common::Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--protocol-version",
        "2",
        "--allow-insecure",
        "--psk",
        key,
    ])
    .await;
    let addr = clear.addr.to_string();
    let out = rudp(
        &["client", "--server", &addr, "--insecure", "--psk", key, "4"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "April\n"),
        "{out:?}"
    );
    let out = rudp(
        &["client", "--server", &addr, "--insecure", "4"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("requires a pre-shared key"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #14: a client offering version 2 and a server that speaks only
/// version 1 (`--protocol-version 1`) interoperate: the client falls back
/// on the server's version negotiation and says so. `rudp client` offers
/// version 1 by default (it needs only the first stream), which a
/// version-2 server serves in version 1.
#[tokio::test]
async fn protocol_versions_1_and_2_interoperate() {
    let old = common::Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--protocol-version",
        "1",
        "--allow-insecure",
    ])
    .await;
    let addr = old.addr.to_string();
    let out = rudp(
        &[
            "client",
            "--server",
            &addr,
            "--insecure",
            "--protocol-version",
            "2",
            "-v",
            "1",
            "12",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "January\nDecember\n"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("the server speaks protocol version 1 only"),
        "{}",
        out.stderr
    );
    // A server of the current version that also serves clear clients:
    // version 3 by default, 1 and 2 with --insecure.
    let new =
        common::Listening::spawn(&["server", "--listen", "127.0.0.1:0", "--allow-insecure"]).await;
    let addr = new.addr.to_string();
    for args in [
        &["7"][..],
        &["--protocol-version", "3", "7"],
        &["--insecure", "7"],
        &["--insecure", "--protocol-version", "1", "7"],
        &["--insecure", "--protocol-version", "2", "7"],
    ] {
        let mut all = vec!["client", "--server", &addr];
        all.extend_from_slice(args);
        let out = rudp(&all, b"", LIMIT).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(0), "July\n"),
            "{args:?}: {out:?}"
        );
        assert!(!out.stderr.contains("version 1 only"), "{}", out.stderr);
    }
    for (args, says) in [
        (&["--protocol-version", "4", "7"][..], "expected 1, 2 or 3"),
        (&["--protocol-version", "2", "7"], "add --insecure"),
        (&["--insecure", "--protocol-version", "3", "7"], "not 3"),
    ] {
        let mut all = vec!["client", "--server", &addr];
        all.extend_from_slice(args);
        let out = rudp(&all, b"", LIMIT).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}

/// Issue #12 item 10: the server kept a record (~530 B) of every session it
/// ever served. Its report is now running totals: the same size after 5
/// sessions as after 60.
#[tokio::test]
async fn the_server_keeps_totals_not_a_record_per_session() {
    async fn serve_sessions(n: usize) -> (usize, usize) {
        let server = Server::start().await;
        let endpoint = Endpoint::client(server.addr, EndpointConfig::default()).unwrap();
        for _ in 0..n {
            let conn = endpoint.connect(server.addr).await.unwrap();
            let _greeting = conn.recv().await.unwrap();
            conn.send(bytes::Bytes::from_static(b"0")).await.unwrap();
            let _goodbye = conn.recv().await.unwrap();
            let _ = conn.close().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report = server.stop().await;
        let json = serde_json::to_string(&report).unwrap();
        (report.connections, json.len())
    }
    let (few, few_len) = serve_sessions(5).await;
    let (many, many_len) = serve_sessions(60).await;
    println!("report: {few_len} bytes after {few} sessions, {many_len} after {many}");
    assert_eq!((few, many), (5, 60));
    assert!(
        many_len < few_len + 200,
        "the report grew from {few_len} to {many_len} bytes"
    );
}

/// Issue #12 item 14: a hostile server's answer held a line break (a
/// forged `error:` line) and terminal escapes. The client prints exactly
/// one line per request, with control characters escaped.
#[tokio::test]
async fn a_hostile_server_cannot_forge_lines_or_reach_the_terminal() {
    let server = Endpoint::server("127.0.0.1:0".parse().unwrap(), common::server_config()).unwrap();
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        let conn = server.accept().await.unwrap();
        conn.send(bytes::Bytes::from_static(b"hi\x1b[2J"))
            .await
            .unwrap();
        while let Ok(Some(_)) = conn.recv().await {
            conn.send(bytes::Bytes::from_static(
                b"March\nerror: forged\x1b]0;owned\x07",
            ))
            .await
            .unwrap();
        }
        let _ = conn.close().await;
    });
    let out = rudp(&["client", "--server", &addr.to_string(), "3"], b"", LIMIT).await;
    let _ = task.await;
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    assert!(
        !out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'),
        "{out:?}"
    );
    assert!(
        out.stdout.starts_with("March\\nerror: forged\\u{1b}"),
        "{out:?}"
    );
}

/// Issue #12 item 11: `--timeout 1e20` panicked (exit 101). Every bad
/// value is a clear error with exit 2.
#[tokio::test]
async fn huge_and_malformed_durations_are_clear_errors() {
    for bad in [
        "1e20",
        "-5",
        "NaN",
        "inf",
        "1e20s",
        "100000000000000000000ms",
        "5 parsecs",
    ] {
        let out = rudp(&["client", "--timeout", bad, "3"], b"", LIMIT).await;
        assert_eq!(out.code, Some(2), "--timeout {bad}: {out:?}");
        assert!(out.stderr.contains("--timeout"), "--timeout {bad}: {out:?}");
    }
    let out = rudp(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--delay",
            "1e20s",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
}

/// Issue #13: options are recognised anywhere on the line (`3 --timeout 2s`
/// used to send "--timeout" and "2s" as requests), `--` ends them, and a
/// request that starts with `-` can be sent after it.
#[tokio::test]
async fn options_anywhere_and_double_dash_ends_them() {
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let out = rudp(
        &["client", "3", "--timeout", "2s", "--server", &addr, "4"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "March\nApril\n", "{out:?}");

    let out = rudp(
        &["client", "--server", &addr, "5", "--", "-3", "--timeout"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert_eq!(lines[0], "May");
    assert!(
        lines[1].starts_with("error: '-3' is not a number"),
        "{out:?}"
    );
    assert!(
        lines[2].starts_with("error: '--timeout' is not a number"),
        "{out:?}"
    );

    // Without `--`, a leading '-' is an unknown option: a usage error that
    // says how to send it, and nothing reaches the server.
    let out = rudp(&["client", "--server", &addr, "-3"], b"", LIMIT).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("-- -3"), "{out:?}");
}

/// Issue #13: `rudp server --threads N` runs one endpoint per worker
/// thread on sockets sharing the port (SO_REUSEPORT). Clients from many
/// ports are spread over the workers by the kernel; each gets its own
/// answers, and the report sums the workers.
#[tokio::test]
async fn workers_sharing_a_port_all_serve() {
    let sockets = rudp_cli::cli::shared_port_sockets("127.0.0.1:0".parse().unwrap(), 2)
        .expect("two sockets on one port");
    let addr = sockets[0].local_addr().unwrap();
    assert_eq!(sockets[1].local_addr().unwrap(), addr);
    let setup = rudp_cli::month::server::WorkerSetup {
        configs: vec![EndpointConfig::default(); 2],
        trace: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rudp_cli::month::server::serve_threads(
        sockets,
        setup,
        async move {
            let _ = stopped.await;
        },
    ));
    let clients = 40;
    let mut tasks = Vec::new();
    for i in 0..clients {
        tasks.push(tokio::spawn(async move {
            let month = i % 12 + 1;
            let opts = ClientOptions::new(addr, Duration::from_secs(20));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = client::run(
                &opts,
                Input::Args(vec![month.to_string()]),
                &mut out,
                &mut err,
            )
            .await;
            assert_eq!(
                code,
                ClientExit::AllMonths,
                "client {i}: {}",
                String::from_utf8_lossy(&err)
            );
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{}\n", MONTHS[month - 1])
            );
        }));
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t)
            .await
            .expect("clients finish")
            .expect("client ok");
    }
    let _ = stop.send(());
    let report = tokio::time::timeout(LIMIT, server)
        .await
        .expect("server stops")
        .unwrap()
        .expect("workers start");
    assert_eq!(report.workers, 2);
    assert_eq!(report.connections, clients);
    assert_eq!(report.endpoint.connections_accepted, clients as u64);
    assert_eq!(
        report.totals.received.messages, clients as u64,
        "one request each"
    );
    // 40 clients on random ports all hashed to one socket: odds 2^-39.
    assert_eq!(report.worker_connections.len(), 2);
    assert!(
        report.worker_connections.iter().all(|&n| n > 0),
        "every worker served: {:?}",
        report.worker_connections
    );
    // Single-threaded workers: no task can find the lock taken.
    assert_eq!(report.lock_waits, 0);
}

/// A second server on a port in use is refused by the kernel: SO_REUSEPORT
/// sockets join only a group made by the same user, and `--threads 1` does
/// not set it at all.
#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for threads in ["1", "2"] {
        let out = rudp(
            &["server", "--listen", &addr, "--threads", threads],
            b"",
            LIMIT,
        )
        .await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("error: cannot listen on {addr}")),
            "{out:?}"
        );
    }
}

/// `--trace` records one worker, so it takes `--threads 1` (the default
/// with `--trace`); asking for more is a usage error.
#[tokio::test]
async fn trace_with_several_workers_is_a_usage_error() {
    let out = rudp(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--trace",
            "/tmp/never-written.jsonl",
        ],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--threads 1"), "{out:?}");
}

/// Issue #15 with the real server's workers: `rudp server --threads 2`
/// steers each packet to the worker its connection ID names (PROTOCOL.md
/// §3.2), so a client whose NAT rebinds it every 300 ms (a new source port,
/// which the kernel's hash would send to either worker) keeps its
/// connection, its worker validating and following each move (§6.9).
#[tokio::test]
async fn workers_keep_a_client_whose_nat_rebinds_it() {
    let dir = std::env::temp_dir().join(format!("rudp-month-rebind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("server.json");
    let server = common::Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--stats-json",
        json.to_str().unwrap(),
    ])
    .await;
    let link = rudp_core::impair::ImpairConfig {
        loss: 0.1,
        ..Default::default()
    };
    let proxy = common::rebinding_proxy(
        server.addr,
        link.clone(),
        link,
        21,
        Some(Duration::from_millis(300)),
    )
    .await;
    let code = common::ask_one_by_one(proxy.local_addr(), 30, Duration::from_millis(100)).await;
    assert_eq!(code, Some(0));
    let rebinds = proxy.stop().await.rebinds;
    assert!(rebinds >= 5, "{rebinds} rebinds");
    let pid = server.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(LIMIT, server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["workers"], 2, "{report}");
    let migrations = report["totals"]["migration"]["migrations"]
        .as_u64()
        .unwrap();
    assert!(
        migrations >= 3,
        "{migrations} migrations after {rebinds} rebinds: {report}"
    );
    assert_eq!(
        report["endpoint"]["dropped_unknown_connection"], 0,
        "no packet reached the wrong worker: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #26 item 1: a second `rudp server` on a port a running one holds
/// used to start silently (SO_REUSEPORT) and take a share of the clients.
/// Only one server's own workers may share a port: the second exits 1,
/// saying the address is in use, and the first answers every client.
#[tokio::test]
async fn a_second_server_on_a_busy_port_exits_1() {
    let first =
        common::Listening::spawn(&["server", "--listen", "127.0.0.1:0", "--threads", "2"]).await;
    let addr = first.addr.to_string();
    let started = std::time::Instant::now();
    let second = rudp(&["server", "--listen", &addr, "--threads", "2"], b"", LIMIT).await;
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(second.stderr.contains("in use"), "{}", second.stderr);
    assert!(started.elapsed() < Duration::from_secs(3));
    for i in 1..=20 {
        let month = (i % 12 + 1).to_string();
        let out = rudp(&["client", "--server", &addr, &month], b"", LIMIT).await;
        assert_eq!(out.code, Some(0), "client {i}: {out:?}");
    }
}

/// `rudp client` reading requests from a pipe, its answers on another.
fn interactive_client(server: std::net::SocketAddr) -> tokio::process::Child {
    common::rudp_command()
        .args(["client", "--server", &server.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// An interactive `rudp client` that asked for January and got it: its
/// connection is up and idle.
async fn idle_client(server: std::net::SocketAddr) -> tokio::process::Child {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut child = interactive_client(server);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1\n").await.unwrap();
    // Kept open: the client waits for more.
    std::mem::forget(stdin);
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("January"));
    child
}

fn signal(child: &tokio::process::Child, sig: libc::c_int) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) with a live child's pid and a valid signal.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Issue #26 item 3: Ctrl-C on a client tells the server at once (exit
/// 130), and a server whose last clients are gone (one interrupted, one
/// killed outright) stops within a second of SIGINT, not after its whole
/// three-second grace.
#[tokio::test]
async fn servers_stop_at_once_when_their_clients_are_gone() {
    let server =
        common::Listening::spawn(&["server", "--listen", "127.0.0.1:0", "--threads", "1"]).await;
    let interrupted = idle_client(server.addr).await;
    let mut killed = idle_client(server.addr).await;
    let at = Instant::now();
    signal(&interrupted, libc::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(5), interrupted.wait_with_output())
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status.code(), Some(130));
    assert!(at.elapsed() < Duration::from_secs(3), "{:?}", at.elapsed());
    killed.kill().await.unwrap();
    let at = Instant::now();
    signal(&server.child, libc::SIGINT);
    let out = tokio::time::timeout(Duration::from_secs(10), server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = at.elapsed();
    println!("server stopped {took:?} after SIGINT");
    assert!(out.status.success(), "{out:?}");
    assert!(took < Duration::from_secs(1), "the server took {took:?}");
}

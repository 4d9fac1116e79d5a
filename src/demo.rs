//! `rudp demo`: the month service over a bad link, in one process, with no
//! setup: the problem, then the fix.
//!
//! 1. The exchange the month service comes from, as a socket-programming
//!    lab writes it: one plain UDP datagram per question and per answer, a
//!    client that waits a moment for each answer and moves on. Through a
//!    proxy that loses, duplicates, reorders and delays datagrams, answers
//!    go missing and late ones are read as the answers to later questions.
//! 2. The same questions over rudp, through the identical link (same
//!    seed), encrypted as the tools are by default: each question with its
//!    answer and how long it took, then the first datagrams on the wire
//!    (decrypted with the session's own key log, as `rudp decrypt` does),
//!    what the link did and what the protocol did about it.
//!
//! Then one line compares the two. The exit status is rudp's: 0 when every
//! rudp answer was right.

use crate::demo_wire::Recorded;
use crate::month::{self, server};
use crate::proxy::{format_stats, Proxy, ProxyConfig};
use bytes::Bytes;
use rudp::{Config, Endpoint, Error, Keypair, PinnedKey, Security};
use rudp_core::endpoint::EndpointConfig;
use rudp_core::impair::ImpairConfig;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The demo's link, each way: 20% loss, 5% duplication, 10% reordering,
/// 10 ms ± 5 ms delay.
pub fn demo_link() -> ImpairConfig {
    ImpairConfig {
        loss: 0.2,
        duplicate: 0.05,
        reorder: 0.1,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(10),
        ..ImpairConfig::default()
    }
}

/// A proxy in front of `upstream` with the demo's link both ways, and a
/// capture into `pcap` if given.
async fn demo_proxy(
    upstream: std::net::SocketAddr,
    seed: u64,
    pcap: Option<std::path::PathBuf>,
) -> std::io::Result<Proxy> {
    Proxy::start(ProxyConfig {
        up: demo_link(),
        down: demo_link(),
        pcap: pcap.map(|p| (p, 16 << 20)),
        ..ProxyConfig::new(([127, 0, 0, 1], 0).into(), upstream, seed)
    })
    .await
}

/// How many captured datagrams the demo lists.
const WIRE_LINES: usize = 18;

/// Version 3 for both ends (PROTOCOL.md §16), as the tools speak it: a
/// fresh server key, pinned by the client, and the client's key log kept
/// in memory so that the demo can show its own traffic in clear.
fn secure_configs(keys: Arc<Recorded>) -> Result<(EndpointConfig, EndpointConfig), Error> {
    let server_key = Keypair::generate(rand::random());
    let config = |security: Security| {
        Config::builder()
            .version(3)
            .security(security)
            .build()
            .map(EndpointConfig::new)
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
    };
    let client = config(Security {
        verifier: Some(Arc::new(PinnedKey(server_key.public()))),
        key_log: Some(keys),
        ..Security::default()
    })?;
    let server = config(Security {
        identity: Some(server_key),
        ..Security::default()
    })?;
    Ok((client, server))
}

/// The questions: all twelve months, then bad input.
pub fn demo_questions() -> Vec<String> {
    let mut q: Vec<String> = (1..=12).map(|m| m.to_string()).collect();
    q.extend(["13", "0x1", "abc", ""].map(String::from));
    q
}

/// How long the plain-UDP client waits for each answer before it asks the
/// next question, as a lab client with a receive timeout does.
pub const PLAIN_UDP_WAIT: Duration = Duration::from_millis(300);

/// What became of the plain-UDP questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainUdpTally {
    pub right: usize,
    pub lost: usize,
    pub mismatched: usize,
}

/// Runs the demo, writing to `out`. Returns true if every rudp answer was
/// right (the plain-UDP part is expected to go wrong).
pub async fn run(seed: u64, out: &mut impl Write) -> Result<bool, Error> {
    let plain = plain_udp(seed, out).await?;
    let (rudp_all_right, rudp_right) = rudp_part(seed, out).await?;
    let questions = demo_questions().len();
    let _ = writeln!(
        out,
        "\nIn short: plain UDP got {} of {questions} answers right ({} lost, {} paired with the \
         wrong question); rudp got {} of {questions} right, over the same link.",
        plain.right, plain.lost, plain.mismatched, rudp_right,
    );
    Ok(rudp_all_right)
}

/// Part 1: plain UDP datagrams, no reliability, through the demo's link.
async fn plain_udp(seed: u64, out: &mut impl Write) -> Result<PlainUdpTally, Error> {
    let server = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await?;
    let server_addr = server.local_addr()?;
    // The lab's server: each datagram in, one answer datagram back.
    let server_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf).await {
            let answer = month::answer(&buf[..n]).to_message();
            let _ = server.send_to(answer.as_bytes(), from).await;
        }
    });
    let proxy = demo_proxy(server_addr, seed, None).await?;
    let _ = writeln!(
        out,
        "Part 1, the problem: plain UDP, one datagram per question and per answer, through a\n\
         lossy proxy on {} (seed {seed}); the client waits {} ms for each answer.\n",
        proxy.local_addr(),
        PLAIN_UDP_WAIT.as_millis()
    );
    let client = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await?;
    let questions = demo_questions();
    let mut tally = PlainUdpTally::default();
    let mut buf = vec![0u8; 2048];
    for q in &questions {
        let asked = std::time::Instant::now();
        client.send_to(q.as_bytes(), proxy.local_addr()).await?;
        let expected = month::answer(q.as_bytes()).to_message();
        let line = match tokio::time::timeout(PLAIN_UDP_WAIT, client.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                let answer = rudp_core::text::printable_bytes(&buf[..n]);
                let ms = asked.elapsed().as_secs_f64() * 1000.0;
                if answer == expected {
                    tally.right += 1;
                    format!("{answer}   [ok, {ms:.0} ms]")
                } else {
                    tally.mismatched += 1;
                    let whose = questions
                        .iter()
                        .find(|other| month::answer(other.as_bytes()).to_message() == answer)
                        .map_or("another question".to_string(), |o| format!("{o:?}"));
                    format!("{answer}   [MISMATCHED: the answer to {whose}, {ms:.0} ms]")
                }
            }
            _ => {
                tally.lost += 1;
                format!(
                    "(nothing)   [LOST: no answer in {} ms]",
                    PLAIN_UDP_WAIT.as_millis()
                )
            }
        };
        let _ = writeln!(out, "  {:>5} -> {line}", format!("{q:?}"));
    }
    let link = proxy.stop().await;
    server_task.abort();
    let _ = writeln!(
        out,
        "\nThe link dropped {} and duplicated {} of the {} datagrams; nothing repaired it.\n",
        link.up.dropped_loss + link.down.dropped_loss,
        link.up.duplicated + link.down.duplicated,
        link.up.datagrams_in + link.down.datagrams_in,
    );
    Ok(tally)
}

/// Part 2: the same questions over rudp through the identical link.
/// Returns whether every answer was right, and how many were.
async fn rudp_part(seed: u64, out: &mut impl Write) -> Result<(bool, usize), Error> {
    let keys = Arc::new(Recorded::default());
    let (client_config, server_config) = secure_configs(keys.clone())?;
    let server_ep = Endpoint::server(([127, 0, 0, 1], 0).into(), server_config)?;
    let server_addr = server_ep.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server::serve(server_ep.clone(), async move {
        let _ = stopped.await;
    }));
    let dir = tempfile::tempdir()?;
    let capture = dir.path().join("link.pcapng");
    let proxy = demo_proxy(server_addr, seed, Some(capture.clone())).await?;
    let _ = writeln!(
        out,
        "Part 2, the fix: the same questions over rudp, through the identical link.\n"
    );
    let _ = writeln!(
        out,
        "rudp demo: month server on {server_addr}, lossy proxy on {} (seed {seed}):\n  \
         each way 20% loss, 5% duplication, 10% reordering, 10 ms ± 5 ms delay\n",
        proxy.local_addr()
    );

    let client_ep = Endpoint::client(proxy.local_addr(), client_config)?;
    let conn = client_ep.connect(proxy.local_addr()).await?;
    let greeting = conn.recv().await?.unwrap_or_default();
    let cipher = conn
        .packet_cipher()
        .map_or("none".to_string(), |c| c.to_string());
    let _ = writeln!(
        out,
        "Encrypted and authenticated (protocol version 3: Noise IK, packets sealed with \
         {cipher});\nthe client pinned the server's key.\n"
    );
    let _ = writeln!(out, "server: {}\n", String::from_utf8_lossy(&greeting));

    // One question at a time, timed: a lost datagram shows as a slower
    // answer, repaired within a few RTTs rather than after a fixed timer.
    let mut all_right = true;
    let mut right = 0;
    for q in &demo_questions() {
        let asked = std::time::Instant::now();
        conn.send(Bytes::from(q.clone())).await?;
        let answer = match conn.recv().await? {
            Some(a) => String::from_utf8_lossy(&a).into_owned(),
            None => {
                let _ = writeln!(out, "the server closed the connection early");
                all_right = false;
                break;
            }
        };
        let expected = month::answer(q.as_bytes()).to_message();
        let mark = if answer == expected { "ok" } else { "WRONG" };
        all_right &= answer == expected;
        right += usize::from(answer == expected);
        let ms = asked.elapsed().as_secs_f64() * 1000.0;
        let _ = writeln!(
            out,
            "  {:>5} -> {answer}   [{mark}, {ms:.0} ms]",
            format!("{q:?}")
        );
    }
    conn.close().await?;
    let stats = conn.stats();
    let link = proxy.stop().await;
    let _ = stop.send(());
    let _ = server_task.await;

    let _ = writeln!(out);
    if let Err(e) = crate::demo_wire::show(&keys, &capture, dir.path(), WIRE_LINES, out) {
        let _ = writeln!(out, "(the capture could not be shown: {e})\n");
    }
    let _ = writeln!(out, "What the link did:\n{}", format_stats(&link));
    let _ = writeln!(
        out,
        "What the protocol did (client side):\n  {}\n  probe timeouts {}, messages sent {}\n",
        stats.summary().replace("; ", "\n  "),
        stats.sent.probe_timeouts,
        stats.sent.messages,
    );
    let verdict = if all_right {
        "every answer belongs to its question"
    } else {
        "SOME ANSWERS WERE WRONG"
    };
    let _ = writeln!(out, "Result: {verdict}.");
    Ok((all_right, right))
}

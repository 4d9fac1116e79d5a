//! `rudp demo`: the month service over a bad link, in one process, with no
//! setup: a server, a proxy that loses, duplicates, reorders and delays
//! datagrams, and a client that asks for all twelve months and a few bad
//! inputs, one at a time. It prints each question with its answer and how
//! long the answer took, then what the link did and what the protocol did
//! about it.

use crate::endpoint::EndpointConfig;
use crate::impair::ImpairConfig;
use crate::io::{Endpoint, Error};
use crate::month::{self, server};
use crate::proxy::{format_stats, Proxy, ProxyConfig};
use bytes::Bytes;
use std::io::Write;
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

/// The questions: all twelve months, then bad input.
pub fn demo_questions() -> Vec<String> {
    let mut q: Vec<String> = (1..=12).map(|m| m.to_string()).collect();
    q.extend(["13", "0x1", "abc", ""].map(String::from));
    q
}

/// Runs the demo, writing to `out`. Returns true if every answer was right.
pub async fn run(seed: u64, out: &mut impl Write) -> Result<bool, Error> {
    let server_ep = Endpoint::server(([127, 0, 0, 1], 0).into(), EndpointConfig::default()).await?;
    let server_addr = server_ep.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server::serve(server_ep.clone(), async move {
        let _ = stopped.await;
    }));
    let proxy = Proxy::start(ProxyConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        upstream: server_addr,
        up: demo_link(),
        down: demo_link(),
        seed,
        mapping_idle: crate::proxy::MAPPING_IDLE,
        max_clients: crate::proxy::MAX_CLIENTS,
        schedule: Vec::new(),
    })
    .await?;
    let _ = writeln!(
        out,
        "rudp demo: month server on {server_addr}, lossy proxy on {} (seed {seed}):\n  \
         each way 20% loss, 5% duplication, 10% reordering, 10 ms ± 5 ms delay\n",
        proxy.local_addr()
    );

    let client_ep = Endpoint::client(proxy.local_addr(), EndpointConfig::default()).await?;
    let conn = client_ep.connect(proxy.local_addr()).await?;
    let greeting = conn.recv().await?.unwrap_or_default();
    let _ = writeln!(out, "server: {}\n", String::from_utf8_lossy(&greeting));

    // One question at a time, timed: a lost datagram shows as a slower
    // answer, repaired within a few RTTs rather than after a fixed timer.
    let mut all_right = true;
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

    let _ = writeln!(out, "\nWhat the link did:\n{}", format_stats(&link));
    let _ = writeln!(
        out,
        "What the protocol did (client side):\n  {}\n  probe timeouts {}, messages sent {}\n",
        stats.summary().replace("; ", "\n  "),
        stats.probe_timeouts,
        stats.messages_sent,
    );
    let verdict = if all_right {
        "every answer belongs to its question"
    } else {
        "SOME ANSWERS WERE WRONG"
    };
    let _ = writeln!(out, "Result: {verdict}.");
    Ok(all_right)
}

//! `rudp demo streams`: why streams, priorities and datagrams matter (issue
//! #14, PROTOCOL.md §15), shown on one connection through the lossy proxy.
//!
//! A bulk transfer fills a 50 Mbit/s bottleneck while a flow of 8-byte
//! messages, one every 10 ms, shares the connection. The small messages'
//! latency is measured in each arrangement:
//!
//! - alone on an idle connection (the floor);
//! - behind the bulk data on the same stream (head-of-line blocking: they
//!   wait for the whole send buffer ahead of them);
//! - on their own stream at higher priority;
//! - as datagrams at higher priority;
//!
//! and, for the benchmark (`cargo bench --bench compare -- --only
//! streams`), on a second connection during the bulk transfer (the
//! queueing delay the bulk flow adds at the bottleneck, which no scheduling
//! on one connection can remove) and on their own stream with a 100 ms
//! lifetime.
//!
//! Each small message carries its number and the time it was sent
//! (microseconds since the run began); client and server run in this one
//! process, so the receiver computes latency from the same clock.

use crate::proxy::{Proxy, ProxyConfig};
use bytes::Bytes;
use plotters::prelude::*;
use rudp::{Connection, Endpoint, EndpointConfig, Error, Received, Reliability, StreamOptions};
use rudp_core::impair::ImpairConfig;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small message: its number and when it was sent, 4 bytes each.
pub const SMALL_LEN: usize = 8;
/// The bulk transfer's messages.
pub const BULK_LEN: usize = 16 * 1024;
/// Priority of the small flow's stream and of datagrams: above the bulk
/// transfer's 0 (§15.7).
pub const URGENT: i8 = 10;

/// The link of the benchmark, each way: 5% random loss, 10 ms
/// one-way delay, a 50 Mbit/s bottleneck with a 100-datagram queue, and
/// Ethernet's datagram size.
pub fn streams_link() -> ImpairConfig {
    ImpairConfig {
        loss: 0.05,
        delay: Duration::from_millis(10),
        rate: Some(50_000_000 / 8),
        queue: 100,
        mtu: Some(1472),
        ..ImpairConfig::default()
    }
}

/// One arrangement of the small flow and the bulk transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The small flow alone, no bulk transfer.
    Alone,
    /// Both on the first stream: each small message waits behind the bulk
    /// data queued before it.
    SharedStream,
    /// The small flow on its own stream at priority [`URGENT`].
    OwnStream,
    /// The small flow as datagrams at priority [`URGENT`].
    Datagrams,
    /// The small flow on a second connection through the same bottleneck.
    SecondConnection,
    /// The small flow as datagrams on a second connection: the one-way
    /// delay of the loaded link itself, with no repair and no scheduling.
    SecondConnectionDatagrams,
    /// Like `OwnStream`, unordered, each message with this lifetime.
    Lifetime(Duration),
    /// The bulk transfer alone, no small flow: the goodput to compare with.
    BulkOnly,
}

impl Case {
    /// How the demo's table names it.
    pub fn label(&self) -> String {
        match self {
            Case::Alone => "alone on an idle connection".into(),
            Case::SharedStream => "behind the bulk data, one stream".into(),
            Case::OwnStream => "own stream, higher priority".into(),
            Case::Datagrams => "datagrams, higher priority".into(),
            Case::SecondConnection => "second connection".into(),
            Case::SecondConnectionDatagrams => "second connection, datagrams".into(),
            Case::Lifetime(d) => format!("own stream, {} ms lifetime", d.as_millis()),
            Case::BulkOnly => "none (the bulk transfer alone)".into(),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    /// Small messages sent, and delivered (each at most once).
    pub sent: u64,
    pub delivered: u64,
    /// Small messages that arrived more than once (must stay 0).
    pub duplicates: u64,
    /// Small messages the receiver was told were skipped (lifetime run).
    pub skipped: u64,
    /// Latency of each delivered small message, sorted.
    pub latencies: Vec<Duration>,
    /// (send time since the start, latency) of each, for the plot.
    pub points: Vec<(Duration, Duration)>,
    /// Bulk bytes delivered per second.
    pub bulk_goodput: f64,
}

impl CaseResult {
    /// The `p`-th percentile latency (0..=100).
    pub fn percentile(&self, p: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        self.latencies[i]
    }

    /// The largest latency.
    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// Delivered messages whose latency exceeded `limit`.
    pub fn later_than(&self, limit: Duration) -> usize {
        self.latencies.iter().filter(|&&l| l > limit).count()
    }
}

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct StreamsDemo {
    pub seed: u64,
    /// How long the small flow (and the bulk transfer) run.
    pub duration: Duration,
    /// The link, each way.
    pub link: ImpairConfig,
    /// One small message this often.
    pub every: Duration,
    /// Where the client of the own-stream case writes its event trace
    /// (docs/trace.md), for `rudp plot`: one colour per stream.
    pub trace: Option<std::path::PathBuf>,
}

impl StreamsDemo {
    /// The benchmark link, a small message every 10 ms.
    pub fn new(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            duration,
            link: streams_link(),
            every: Duration::from_millis(10),
            trace: None,
        }
    }
}

/// What the receiving side records as messages arrive.
#[derive(Default)]
struct Tally {
    seen: BTreeSet<u32>,
    duplicates: u64,
    skipped: u64,
    points: Vec<(Duration, Duration)>,
    bulk_bytes: u64,
}

type Shared = Arc<Mutex<Tally>>;

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

fn small_message(n: u32, origin: Instant) -> Bytes {
    let micros = origin.elapsed().as_micros().min(u32::MAX as u128) as u32;
    let mut m = Vec::with_capacity(SMALL_LEN);
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&micros.to_be_bytes());
    Bytes::from(m)
}

/// Records one message the server received: small ones by number and
/// latency, anything else as bulk bytes.
fn record(tally: &Shared, origin: Instant, m: &[u8]) {
    let mut t = lock(tally);
    if m.len() != SMALL_LEN {
        t.bulk_bytes += m.len() as u64;
        return;
    }
    let mut n = [0u8; 4];
    n.copy_from_slice(&m[..4]);
    let mut us = [0u8; 4];
    us.copy_from_slice(&m[4..]);
    let sent = Duration::from_micros(u64::from(u32::from_be_bytes(us)));
    let latency = origin.elapsed().saturating_sub(sent);
    if t.seen.insert(u32::from_be_bytes(n)) {
        t.points.push((sent, latency));
    } else {
        t.duplicates += 1;
    }
}

/// Reads everything a server connection receives: the first stream,
/// every stream the client opens, and datagrams.
fn serve(conn: Connection, tally: Shared, origin: Instant) {
    let (first, t) = (conn.clone(), tally.clone());
    tokio::spawn(async move {
        while let Ok(Some(m)) = first.recv().await {
            record(&t, origin, &m);
        }
    });
    let (c, t) = (conn.clone(), tally.clone());
    tokio::spawn(async move {
        while let Ok(Some(s)) = c.accept_stream().await {
            let t = t.clone();
            tokio::spawn(async move {
                while let Ok(Some(item)) = s.recv().await {
                    match item {
                        Received::Message(m) => record(&t, origin, &m),
                        Received::Skipped { messages, .. } => lock(&t).skipped += messages,
                        _ => {}
                    }
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Ok(d) = conn.recv_datagram().await {
            record(&tally, origin, &d);
        }
    });
}

/// Runs one case through a fresh proxy and endpoints.
pub async fn run_case(demo: &StreamsDemo, case: Case) -> Result<CaseResult, Error> {
    let server = Endpoint::server(([127, 0, 0, 1], 0).into(), EndpointConfig::default())?;
    let proxy = Proxy::start(ProxyConfig {
        up: demo.link.clone(),
        down: demo.link.clone(),
        ..ProxyConfig::new(([127, 0, 0, 1], 0).into(), server.local_addr(), demo.seed)
    })
    .await?;
    let origin = Instant::now();
    let tally: Shared = Arc::default();
    let accepting = server.clone();
    let t = tally.clone();
    let acceptor = tokio::spawn(async move {
        while let Some(conn) = accepting.accept().await {
            serve(conn, t.clone(), origin);
        }
    });
    let to: SocketAddr = proxy.local_addr();
    let client = Endpoint::client(to, EndpointConfig::default())?;
    if let (Case::OwnStream, Some(path)) = (case, &demo.trace) {
        client.trace_to(path)?;
    }
    let bulk_conn = client.connect(to).await?;
    let second = matches!(
        case,
        Case::SecondConnection | Case::SecondConnectionDatagrams
    );
    let small_conn = if second {
        let other = Endpoint::client(to, EndpointConfig::default())?;
        let c = other.connect(to).await?;
        Some((other, c))
    } else {
        None
    };
    let deadline = Instant::now() + demo.duration;
    let bulk = (case != Case::Alone).then(|| {
        let c = bulk_conn.clone();
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![0xb5u8; BULK_LEN]);
            while Instant::now() < deadline {
                if c.send(chunk.clone()).await.is_err() {
                    break;
                }
            }
        })
    });
    // The small flow's way out.
    let small_stream = match case {
        Case::OwnStream => Some(
            bulk_conn
                .open_stream(StreamOptions::new().priority(URGENT))
                .await?,
        ),
        Case::Lifetime(_) => Some(
            bulk_conn
                .open_stream(StreamOptions::new().priority(URGENT).unordered())
                .await?,
        ),
        _ => None,
    };
    if case == Case::Datagrams {
        bulk_conn.set_datagram_priority(URGENT)?;
    }
    let reliability = match case {
        Case::Lifetime(d) => Reliability::Lifetime(d),
        _ => Reliability::Reliable,
    };
    let mut sent = 0u32;
    let mut tick = tokio::time::interval(demo.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        if case == Case::BulkOnly {
            continue;
        }
        let m = small_message(sent, origin);
        match (case, &small_stream, &small_conn) {
            (Case::Datagrams, _, _) => bulk_conn.send_datagram(m)?,
            (Case::SecondConnectionDatagrams, _, Some((_, c))) => c.send_datagram(m)?,
            (_, Some(s), _) => s.send_with(m, reliability).await?,
            (_, _, Some((_, c))) => c.send(m).await?,
            _ => bulk_conn.send(m).await?,
        }
        sent += 1;
    }
    if let Some(b) = bulk {
        b.abort();
    }
    // Goodput counts what arrived within the run, not what was still on
    // its way (issue #26 item 8: 52 Mbit/s through a 50 Mbit/s link).
    let bulk_in_time = lock(&tally).bulk_bytes;
    // Stragglers: what is still queued behind the bulk data (one stream)
    // can take a while; the other cases settle within a few round trips.
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle {
        let accounted = {
            let t = lock(&tally);
            t.seen.len() as u64 + t.skipped
        };
        let done = match case {
            Case::Datagrams | Case::SecondConnectionDatagrams | Case::BulkOnly => true,
            _ => accounted >= u64::from(sent),
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if matches!(case, Case::Datagrams | Case::SecondConnectionDatagrams) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let elapsed = demo.duration.as_secs_f64().max(1e-3);
    bulk_conn.abort(rudp::VarInt::ZERO, "demo over");
    if let Some((ep, c)) = &small_conn {
        c.abort(rudp::VarInt::ZERO, "demo over");
        ep.shutdown(Duration::from_millis(100)).await;
    }
    client.shutdown(Duration::from_millis(100)).await;
    server.shutdown(Duration::from_millis(100)).await;
    acceptor.abort();
    drop(proxy);
    let t = lock(&tally);
    let mut latencies: Vec<Duration> = t.points.iter().map(|p| p.1).collect();
    latencies.sort_unstable();
    Ok(CaseResult {
        case,
        sent: u64::from(sent),
        delivered: t.seen.len() as u64,
        duplicates: t.duplicates,
        skipped: t.skipped,
        latencies,
        points: t.points.clone(),
        bulk_goodput: bulk_in_time as f64 / elapsed,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Prints one table row per case.
pub fn print_table(results: &[CaseResult], out: &mut impl Write) {
    let _ = writeln!(
        out,
        "{:<34} {:>10} {:>10} {:>10} {:>18} {:>14}",
        "small messages", "p50", "p99", "max", "delivered", "bulk goodput"
    );
    for r in results {
        let share = 100.0 * r.delivered as f64 / r.sent.max(1) as f64;
        let bulk = if r.case == Case::Alone {
            "-".to_string()
        } else {
            format!("{:.1} Mbit/s", r.bulk_goodput * 8.0 / 1e6)
        };
        let _ = writeln!(
            out,
            "{:<34} {:>10} {:>10} {:>10} {:>18} {:>14}",
            r.case.label(),
            ms(r.percentile(50)),
            ms(r.percentile(99)),
            ms(r.max()),
            format!("{}/{} ({share:.1}%)", r.delivered, r.sent),
            bulk
        );
        if r.duplicates > 0 || r.skipped > 0 {
            let _ = writeln!(
                out,
                "{:<34} {} delivered twice, {} skipped (expired)",
                "", r.duplicates, r.skipped
            );
        }
    }
}

/// Draws each case's latencies over time into an SVG, one colour a case.
pub fn plot(results: &[CaseResult], path: &Path) -> Result<(), String> {
    plot_inner(results, path).map_err(|e| e.to_string())
}

fn plot_inner(results: &[CaseResult], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let t_end = results
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.0.as_secs_f64()))
        .fold(1.0, f64::max);
    let l_max = results
        .iter()
        .map(|r| r.max().as_secs_f64() * 1000.0)
        .fold(1.0, f64::max)
        * 1.5;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "latency of 8-byte messages sharing a connection with a bulk transfer",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, (0.1..l_max).log_scale())?;
    c.configure_mesh()
        .x_desc("sent at (s)")
        .y_desc("latency (ms)")
        .draw()?;
    for (i, r) in results.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        c.draw_series(r.points.iter().map(|p| {
            Circle::new(
                (p.0.as_secs_f64(), (p.1.as_secs_f64() * 1000.0).max(0.1)),
                2,
                colour.filled(),
            )
        }))?
        .label(r.case.label())
        .legend(move |(x, y)| Circle::new((x, y), 3, colour.filled()));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `rudp demo streams`: the four cases, a table, a summary line and,
/// optionally, a plot. Returns whether every case ran and no message was
/// delivered twice.
pub async fn run(
    demo: &StreamsDemo,
    plot_to: Option<&Path>,
    out: &mut impl Write,
) -> Result<bool, Error> {
    let l = &demo.link;
    let _ = writeln!(
        out,
        "rudp demo streams: a bulk transfer and an 8-byte message every {} ms on one \
         connection,\nthrough a link with {:.0}% loss each way, {} ms delay, a {:.0} Mbit/s \
         bottleneck\nwith a {}-datagram queue and {}; seed {}, {} s a case.\n",
        demo.every.as_millis(),
        l.loss * 100.0,
        l.delay.as_millis(),
        l.rate.unwrap_or(0) as f64 * 8.0 / 1e6,
        l.queue,
        l.mtu.map_or("no MTU".to_string(), |m| format!(
            "{m}-byte datagrams at most (a 1500-byte MTU, rudp proxy's default)"
        )),
        demo.seed,
        demo.duration.as_secs_f64()
    );
    let mut results = Vec::new();
    for case in [
        Case::Alone,
        Case::SharedStream,
        Case::OwnStream,
        Case::Datagrams,
    ] {
        let _ = writeln!(out, "running: {} ...", case.label());
        let _ = out.flush();
        results.push(run_case(demo, case).await?);
    }
    let _ = writeln!(out);
    print_table(&results, out);
    let (shared, own, dgram) = (&results[1], &results[2], &results[3]);
    let factor = shared.percentile(99).as_secs_f64() / own.percentile(99).as_secs_f64().max(1e-6);
    let _ = writeln!(
        out,
        "\nIn short: on their own stream at higher priority the small messages' p99 is {} \
         ({factor:.0}x better than behind the bulk data on one stream, {}); as datagrams \
         {:.1}% arrive with p99 {}.",
        ms(own.percentile(99)),
        ms(shared.percentile(99)),
        100.0 * dgram.delivered as f64 / dgram.sent.max(1) as f64,
        ms(dgram.percentile(99)),
    );
    if let Some(path) = &demo.trace {
        let _ = writeln!(
            out,
            "trace of the own-stream case written to {} (draw it with rudp plot)",
            path.display()
        );
    }
    if let Some(path) = plot_to {
        match plot(&results, path) {
            Ok(()) => {
                let _ = writeln!(out, "plot written to {}", path.display());
            }
            Err(e) => {
                let _ = writeln!(out, "error: cannot write {}: {e}", path.display());
                return Ok(false);
            }
        }
    }
    Ok(results.iter().all(|r| r.duplicates == 0))
}

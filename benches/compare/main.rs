//! The comparison suite (docs/benchmarks.md): rudp against quinn, tokio_kcp
//! and TCP on the same loopback links, in one run. `rudp` is version 3,
//! encrypted, as the command-line tools run it; `rudp-clear` the clear
//! version 2 beside it, so that what encryption costs shows side by side.
//!
//! ```sh
//! cargo bench --bench compare                      # everything, 200 MB bulk
//! cargo bench --bench compare -- --quick           # 20 MB, fewer rounds
//! cargo bench --bench compare -- --only bulk,rr    # some sections
//! cargo bench --bench compare -- --peers rudp,quinn # some transports
//! cargo bench --bench compare -- --congestion cubic # rudp's controller
//! cargo bench --bench compare -- --peers rudp,rudp-clear # encrypted and clear
//! cargo bench --bench compare -- --datagram-size 1452 # rudp's datagrams
//! cargo bench --bench compare -- --packet-cipher AES_256_GCM # version 3's cipher
//! cargo bench --bench compare -- --only bulk --links clean,loss5
//! cargo bench --bench compare -- --only bulk --links relay # through the proxy, nothing set
//! cargo bench --bench compare -- --out docs/benchmarks   # refresh the docs
//! ```
//!
//! Sections: `udp` (raw UDP ceiling), `bulk` (goodput of one transfer per
//! link and transport, with CPU seconds per GB and, on links that lose
//! nothing themselves, the share of packets the sender lost), `rr` (request/response
//! latency, 8-byte echo and the month service), `kcp` (KCP's own latency
//! test), `scale` (1,000 and 10,000 concurrent month clients), `streams`
//! (small messages next to a bulk transfer on one connection: one stream,
//! own stream at higher priority, datagrams, a lifetime). Tables go to
//! standard output; `compare.json` and SVG plots to the output directory
//! (default `target/compare`).
//!
//! Loss for TCP comes from nftables random drop, which needs root and the
//! `nft` command (Debian package `nftables`); without it TCP's loss rows
//! are skipped and say so.

mod ceiling;
mod link;
mod peers;
mod plots;
mod scale;
mod stats;
mod streams;

use link::Link;
use peers::{BoxError, Peer};
use serde_json::{json, Value};
use stats::{cpu_time, fmt_us, Summary};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Options {
    bulk_mb: u64,
    rounds: usize,
    sections: Vec<String>,
    out: PathBuf,
    scale: Vec<usize>,
    /// `--threads` values for the scale servers; `None` runs without it.
    scale_threads: Vec<Option<usize>>,
    /// Another `rudp` binary to measure in the scale section, side by side
    /// (for example the previous release), run without `--threads`.
    scale_baseline: Option<PathBuf>,
    peers: Vec<Peer>,
    /// Bulk links to run, by key (`clean`, `loss1`, ...); all by default.
    links: Option<Vec<String>>,
}

const ALL: [&str; 6] = ["udp", "bulk", "rr", "kcp", "scale", "streams"];

fn options() -> Result<Options, String> {
    let mut o = Options {
        bulk_mb: 200,
        rounds: 2000,
        sections: ALL.iter().map(|s| s.to_string()).collect(),
        out: PathBuf::from("target/compare"),
        scale: vec![1_000, 10_000],
        scale_threads: vec![Some(1), Some(2)],
        scale_baseline: None,
        peers: PEERS.to_vec(),
        links: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            // cargo bench passes --bench to harness-less benches.
            "--bench" => {}
            "--quick" => {
                o.bulk_mb = 20;
                o.rounds = 300;
                o.scale = vec![1_000];
            }
            "--mb" => o.bulk_mb = value("--mb")?.parse().map_err(|e| format!("--mb: {e}"))?,
            "--rounds" => {
                o.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--only" => {
                o.sections = value("--only")?.split(',').map(str::to_string).collect();
                if let Some(bad) = o.sections.iter().find(|s| !ALL.contains(&s.as_str())) {
                    return Err(format!("unknown section '{bad}': use {}", ALL.join(",")));
                }
            }
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--links" => {
                let keys: Vec<String> = value("--links")?.split(',').map(str::to_string).collect();
                if let Some(bad) = keys
                    .iter()
                    .find(|k| !BULK_LINKS.iter().any(|l| l.key() == k.as_str()))
                {
                    let all: Vec<_> = BULK_LINKS.iter().map(|l| l.key()).collect();
                    return Err(format!("unknown link '{bad}': use {}", all.join(",")));
                }
                o.links = Some(keys);
            }
            "--datagram-size" => {
                let n: usize = value("--datagram-size")?
                    .parse()
                    .map_err(|e| format!("--datagram-size: {e}"))?;
                if !(1200..=65_507).contains(&n) {
                    return Err("--datagram-size must be within 1200..=65507".into());
                }
                let _ = peers::RUDP_DATAGRAM.set(n);
            }
            "--packet-cipher" => {
                let name = value("--packet-cipher")?;
                let cipher = rudp::PacketCipher::from_name(&name).ok_or_else(|| {
                    format!(
                        "unknown packet cipher '{name}': use {}",
                        rudp::PacketCipher::ALL.map(|c| c.name()).join(",")
                    )
                })?;
                let _ = peers::RUDP_CIPHER.set(cipher);
            }
            "--congestion" => {
                let a = value("--congestion")?.parse()?;
                let _ = peers::RUDP_CONGESTION.set(a);
            }
            "--peers" => {
                let names = value("--peers")?;
                o.peers = names
                    .split(',')
                    .map(|n| {
                        PEERS
                            .into_iter()
                            .find(|p| {
                                p.name().eq_ignore_ascii_case(n) || (n == "kcp" && *p == Peer::Kcp)
                            })
                            .ok_or(format!(
                                "unknown peer '{n}': use rudp,rudp-clear,quinn,kcp,tcp"
                            ))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--scale" => {
                o.scale = value("--scale")?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--scale: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--scale-threads" => {
                o.scale_threads = value("--scale-threads")?
                    .split(',')
                    .map(|s| {
                        s.parse()
                            .map(Some)
                            .map_err(|e| format!("--scale-threads: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--scale-baseline" => {
                o.scale_baseline = Some(PathBuf::from(value("--scale-baseline")?))
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&o.out) {
        eprintln!("error: cannot create {}: {e}", o.out.display());
        std::process::exit(1);
    }
    // Clients run here, servers on `peers::server_runtime()`: one worker
    // thread each.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("client")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut report = json!({
        "machine": machine(),
        "bulk_mb": o.bulk_mb,
        "rounds": o.rounds,
        "nftables": link::nft_available(),
    });
    let want = |s: &str| o.sections.iter().any(|x| x == s);
    if want("udp") {
        report["udp_ceiling"] = udp_ceiling();
    }
    if want("bulk") {
        report["bulk"] = rt.block_on(bulk(&o));
    }
    if want("rr") {
        report["request_response"] = rt.block_on(request_response(&o));
    }
    if want("kcp") {
        report["kcp_test"] = rt.block_on(kcp_test());
    }
    if want("scale") {
        report["scale"] = rt.block_on(scale_section(&o));
    }
    if want("streams") {
        let seconds = if o.bulk_mb < 200 { 4 } else { 10 };
        report["streams"] = rt.block_on(streams::section(1, Duration::from_secs(seconds)));
    }
    let path = o.out.join("compare.json");
    match serde_json::to_string_pretty(&report) {
        Ok(s) => {
            if let Err(e) = std::fs::write(&path, s + "\n") {
                eprintln!("error: cannot write {}: {e}", path.display());
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
    for (name, result) in plots::draw(&report, &o.out) {
        match result {
            Ok(()) => println!("plot: {}", o.out.join(name).display()),
            Err(e) => eprintln!("plot {name} failed: {e}"),
        }
    }
    println!("results: {}", path.display());
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpu": cpu, "cores": cores })
}

fn heading(s: &str) {
    println!("\n## {s}\n");
}

fn udp_ceiling() -> Value {
    heading("Raw UDP ceiling (1200-byte datagrams, one sender, one receiver, 2 s)");
    println!("| mode | sent/s | received/s | received MB/s |");
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for segments in [1, 64] {
        match ceiling::blast(segments, 2.0) {
            Ok(c) => {
                println!(
                    "| {} | {:.0}k | {:.0}k | {:.0} |",
                    c.mode,
                    c.sent_per_second / 1e3,
                    c.received_per_second / 1e3,
                    c.received_mb_per_second
                );
                rows.push(json!(c));
            }
            Err(e) => println!("| {segments} segments | failed: {e} | | |"),
        }
    }
    Value::Array(rows)
}

const BULK_LINKS: [Link; 8] = [
    Link::Clean,
    Link::Relay,
    Link::Loss(0.01),
    Link::Loss(0.05),
    Link::Loss(0.10),
    Link::Rtt(Duration::from_millis(10)),
    Link::Rtt(Duration::from_millis(50)),
    Link::Burst(0.03, 8.0),
];
/// Runs per transport on the clean link; the median is reported.
const CLEAN_REPEATS: usize = 3;
const PEERS: [Peer; 5] = [
    Peer::Rudp,
    Peer::RudpClear,
    Peer::Quinn,
    Peer::Kcp,
    Peer::Tcp,
];

/// One run of a workload against a fresh server over `link`.
async fn with_client<T>(
    peer: Peer,
    link: Link,
    seed: u64,
    limit: Duration,
    work: impl AsyncFnOnce(&mut peers::Client) -> Result<T, BoxError>,
) -> Result<(T, Option<rudp_core::conn::Stats>, &'static str), String> {
    let server = peers::server(peer).await.map_err(|e| e.to_string())?;
    let path = link::path(link, peer, server.addr, seed).await?;
    let via = path.via;
    let run = async {
        let mut client = peers::connect(peer, path.addr).await?;
        let r = work(&mut client).await?;
        let stats = client.rudp_stats();
        client.close().await;
        Ok::<_, BoxError>((r, stats))
    };
    match tokio::time::timeout(limit, run).await {
        Ok(Ok((r, s))) => Ok((r, s, via)),
        Ok(Err(e)) => Err(format!("failed: {e}")),
        Err(_) => Err(format!("did not finish within {} s", limit.as_secs())),
    }
}

async fn bulk(o: &Options) -> Value {
    let bytes = o.bulk_mb * 1_000_000;
    heading(&format!(
        "Bulk goodput, one {} MB transfer (MB/s, clean link: median of 3; CPU s/GB of both ends)",
        o.bulk_mb
    ));
    println!("| link | {} |", names(&o.peers));
    println!("|---|{}", "---|".repeat(o.peers.len()));
    let mut rows = Vec::new();
    for (li, link) in BULK_LINKS.iter().enumerate() {
        if o.links
            .as_ref()
            .is_some_and(|k| !k.iter().any(|k| k == link.key()))
        {
            continue;
        }
        let mut cells = Vec::new();
        for &peer in &o.peers {
            // A clean transfer lasts a fraction of a second, so scheduling
            // noise moves it a lot: the median of three. Lossy links run
            // long enough for one run to be representative.
            let repeats = if *link == Link::Clean {
                CLEAN_REPEATS
            } else {
                1
            };
            let mut runs = Vec::new();
            for _ in 0..repeats {
                let cpu0 = cpu_time();
                let limit = Duration::from_secs(30 + o.bulk_mb / 2);
                let r = with_client(
                    peer,
                    *link,
                    li as u64 + 1,
                    limit,
                    async |c: &mut peers::Client| {
                        let elapsed = c.bulk(bytes).await?;
                        Ok((elapsed, c.lost_share()))
                    },
                )
                .await;
                let cpu = (cpu_time() - cpu0).as_secs_f64();
                runs.push(r.map(|(elapsed, stats, via)| (elapsed, stats, via, cpu)));
            }
            let mut ok: Vec<_> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
            ok.sort_by_key(|r| r.0 .0);
            let all_mbps: Vec<f64> = ok
                .iter()
                .map(|r| bytes as f64 / r.0 .0.as_secs_f64() / 1e6)
                .collect();
            let median = ok.get(ok.len() / 2).copied();
            let first_error = runs.iter().find_map(|r| r.as_ref().err()).cloned();
            let row = match (median, first_error) {
                (Some(((elapsed, lost), stats, via, cpu)), _) => {
                    let mbps = bytes as f64 / elapsed.as_secs_f64() / 1e6;
                    let cpu_per_gb = cpu / (bytes as f64 / 1e9);
                    // Issue #27: on links that lose nothing themselves, what
                    // the sender lost is loss it caused.
                    match lost.filter(|_| loss_of(link) == 0.0) {
                        Some(l) => cells.push(format!(
                            "{mbps:.1} ({cpu_per_gb:.1}; {:.2}% lost)",
                            l * 100.0
                        )),
                        None => cells.push(format!("{mbps:.1} ({cpu_per_gb:.1})")),
                    }
                    json!({
                        "link": link.name(), "peer": peer.name(), "via": via,
                        "seconds": elapsed.as_secs_f64(), "mb_per_second": mbps,
                        "runs_mb_per_second": all_mbps,
                        "cpu_seconds_per_gb": cpu_per_gb,
                        "packets_lost_share": lost,
                        "loss_rate": loss_of(link),
                        "rudp_stats": stats,
                    })
                }
                (None, e) => {
                    let e = e.unwrap_or_default();
                    cells.push(format!("– ({e})"));
                    json!({ "link": link.name(), "peer": peer.name(), "loss_rate": loss_of(link), "error": e })
                }
            };
            rows.push(row);
        }
        println!("| {} | {} |", link.name(), cells.join(" | "));
    }
    Value::Array(rows)
}

fn names(peers: &[Peer]) -> String {
    peers
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn loss_of(link: &Link) -> f64 {
    match link {
        Link::Clean | Link::Relay | Link::Rtt(_) => 0.0,
        Link::Loss(p) | Link::Burst(p, _) => *p,
        Link::Kcp => 0.05,
    }
}

const RR_LINKS: [Link; 4] = [
    Link::Clean,
    Link::Loss(0.01),
    Link::Loss(0.05),
    Link::Loss(0.10),
];

async fn request_response(o: &Options) -> Value {
    heading(&format!(
        "Request/response: 8-byte echo, {} rounds one at a time (p50 / p99 / max; CPU ms per 10k requests)",
        o.rounds
    ));
    let mut rows = Vec::new();
    println!("| link | {} | rudp month service |", names(&o.peers));
    println!("|---|{}---|", "---|".repeat(o.peers.len()));
    for (li, link) in RR_LINKS.iter().enumerate() {
        let mut cells = Vec::new();
        for &peer in &o.peers {
            let cpu0 = cpu_time();
            let deadline = Instant::now() + Duration::from_secs(60);
            let r = with_client(
                peer,
                *link,
                100 + li as u64,
                Duration::from_secs(90),
                async |c: &mut peers::Client| c.echo(o.rounds, deadline).await,
            )
            .await;
            let cpu = (cpu_time() - cpu0).as_secs_f64();
            rows.push(match r {
                Ok((mut rtts, _, via)) => {
                    let s = Summary::of(&mut rtts);
                    let cpu_per_10k = cpu / s.count.max(1) as f64 * 10_000.0;
                    cells.push(format!(
                        "{} / {} / {} ({:.0})",
                        fmt_us(s.p50_us),
                        fmt_us(s.p99_us),
                        fmt_us(s.max_us),
                        cpu_per_10k * 1000.0
                    ));
                    json!({ "link": link.name(), "peer": peer.name(), "via": via, "loss_rate": loss_of(link),
                            "latency": s, "cpu_seconds_per_10k": cpu_per_10k, "rtts_us": rtts.iter().map(|d| d.as_micros() as u64).collect::<Vec<_>>() })
                }
                Err(e) => {
                    cells.push(format!("– ({e})"));
                    json!({ "link": link.name(), "peer": peer.name(), "loss_rate": loss_of(link), "error": e })
                }
            });
        }
        let month = month_latency(*link, o.rounds, 200 + li as u64).await;
        cells.push(match &month {
            Ok(s) => format!(
                "{} / {} / {}",
                fmt_us(s.p50_us),
                fmt_us(s.p99_us),
                fmt_us(s.max_us)
            ),
            Err(e) => format!("– ({e})"),
        });
        rows.push(match month {
            Ok(s) => json!({ "link": link.name(), "peer": "rudp month service", "loss_rate": loss_of(link), "latency": s }),
            Err(e) => json!({ "link": link.name(), "peer": "rudp month service", "error": e }),
        });
        println!("| {} | {} |", link.name(), cells.join(" | "));
    }
    Value::Array(rows)
}

/// The month service (the real server code, in process) over `link`:
/// request "7", answer "July", one at a time.
async fn month_latency(link: Link, rounds: usize, seed: u64) -> Result<Summary, String> {
    let any = "127.0.0.1:0".parse().map_err(|_| "address")?;
    let (addr, server) = peers::server_runtime()
        .spawn(async move {
            let ep =
                rudp::Endpoint::server(any, peers::rudp_config(Peer::Rudp, peers::Side::Server))?;
            let addr = ep.local_addr();
            let task = tokio::spawn(rudp_cli::month::server::serve(ep, std::future::pending()));
            Ok::<_, rudp::Error>((addr, task))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let path = link::path(link, Peer::Rudp, addr, seed).await?;
    let run = async {
        let ep = rudp::Endpoint::client(
            path.addr,
            peers::rudp_config(Peer::Rudp, peers::Side::Client),
        )?;
        let conn = ep.connect(path.addr).await?;
        conn.recv().await?; // greeting
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut rtts = Vec::new();
        for _ in 0..rounds {
            if Instant::now() >= deadline {
                break;
            }
            let t = Instant::now();
            conn.send(bytes::Bytes::from_static(b"7")).await?;
            match conn.recv().await? {
                Some(a) if &a[..] == b"July" => rtts.push(t.elapsed()),
                other => return Err(format!("unexpected answer {other:?}").into()),
            }
        }
        conn.abort(rudp::VarInt::from_u32(0), "done");
        Ok::<_, BoxError>(rtts)
    };
    let r = tokio::time::timeout(Duration::from_secs(90), run).await;
    server.abort();
    match r {
        Ok(Ok(mut rtts)) => Ok(Summary::of(&mut rtts)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("did not finish within 90 s".into()),
    }
}

async fn kcp_test() -> Value {
    heading("KCP's latency test: an 8-byte message every 20 ms, 1000 messages, echoed; 5% loss and 30-62 ms one-way delay (in order) each way");
    println!("| transport | average RTT | p99 | maximum |");
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for peer in [Peer::Rudp, Peer::Kcp] {
        let r = with_client(
            peer,
            Link::Kcp,
            300,
            Duration::from_secs(60),
            async |c: &mut peers::Client| c.paced_echo(1000, Duration::from_millis(20)).await,
        )
        .await;
        rows.push(match r {
            Ok((mut rtts, stats, _)) => {
                let s = Summary::of(&mut rtts);
                println!(
                    "| {} | {:.0} ms | {:.0} ms | {:.0} ms |",
                    peer.name(),
                    s.mean_us / 1000.0,
                    s.p99_us / 1000.0,
                    s.max_us / 1000.0
                );
                json!({ "peer": peer.name(), "latency": s, "rudp_stats": stats,
                        "rtts_us": rtts.iter().map(|d| d.as_micros() as u64).collect::<Vec<_>>() })
            }
            Err(e) => {
                println!("| {} | – ({e}) | | |", peer.name());
                json!({ "peer": peer.name(), "error": e })
            }
        });
    }
    println!("(KCP's published figures for this test: default mode 740 / 1507 ms, normal 156 / 571, fast 138 / 392 average / maximum; the link's loss-free floor is about 93 / 121.)");
    Value::Array(rows)
}

async fn scale_section(o: &Options) -> Value {
    heading(&format!(
        "Scale: concurrent month clients on one `rudp server` process, {} requests each",
        scale::REQUESTS
    ));
    println!("| server | workers | clients | connected | connect time | requests/s | p50 / p99 / max | CPU per request | datagrams per CPU second | lock wait | server RSS | per connection |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut runs: Vec<(Option<&std::path::Path>, Option<usize>)> = Vec::new();
    if let Some(b) = &o.scale_baseline {
        runs.push((Some(b.as_path()), None));
    }
    runs.extend(o.scale_threads.iter().map(|&t| (None, t)));
    let mut rows = Vec::new();
    for &n in &o.scale {
        for &(bin, threads) in &runs {
            let name = bin.map_or("this build".to_string(), |b| b.display().to_string());
            let workers = threads.map_or("-".to_string(), |t| t.to_string());
            match scale::run(n, threads, bin).await {
                Ok(r) => {
                    println!(
                        "| {name} | {workers} | {} | {} | {:.1} s | {:.0} | {} / {} / {} | {:.0} µs | {:.0} | {} | {} MiB | {:.1} KiB |",
                        r.clients,
                        r.connected,
                        r.connect_seconds,
                        r.requests_per_second,
                        fmt_us(r.latency.p50_us),
                        fmt_us(r.latency.p99_us),
                        fmt_us(r.latency.max_us),
                        r.server_cpu_us_per_request,
                        r.server_datagrams_per_cpu_second,
                        r.server_lock_wait_share
                            .map_or("–".to_string(), |s| format!("{:.2}%", s * 100.0)),
                        r.server_rss_kib / 1024,
                        r.kib_per_connection
                    );
                    rows.push(json!(r));
                }
                Err(e) => {
                    println!("| {name} | {workers} | {n} | failed: {e} | | | | | | | | |");
                    rows.push(json!({ "clients": n, "threads": threads, "error": e.to_string() }));
                }
            }
        }
    }
    Value::Array(rows)
}

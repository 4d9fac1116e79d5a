//! Many concurrent month clients on one `rudp server` process: handshakes,
//! requests per second, latency, and the server's memory per connection.

use crate::peers::BoxError;
use crate::stats::Summary;
use bytes::Bytes;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};

/// Connections per client endpoint (one UDP socket each).
const PER_ENDPOINT: usize = 20;
/// Handshakes in progress at once, so the server's pending-handshake limit
/// (4096) is not what is measured.
const CONNECTING_AT_ONCE: usize = 500;
/// Requests each client makes, one after another.
pub const REQUESTS: usize = 5;

#[derive(Debug, serde::Serialize)]
pub struct ScaleResult {
    /// The server binary measured, and its `--threads` (None: not passed,
    /// for a binary from before the option).
    pub server: String,
    pub threads: Option<usize>,
    pub clients: usize,
    pub connected: usize,
    pub connect_seconds: f64,
    pub requests: usize,
    pub requests_per_second: f64,
    pub latency: Summary,
    pub server_rss_base_kib: u64,
    pub server_rss_kib: u64,
    pub kib_per_connection: f64,
    pub failures: usize,
    /// Server CPU time (user + system) during the request phase, per
    /// request.
    pub server_cpu_us_per_request: f64,
    /// Datagrams the server read per second of its CPU time over the whole
    /// run: what one fully busy core would handle.
    pub server_datagrams_per_cpu_second: f64,
    /// Share of the server's CPU time its tasks spent waiting on an
    /// endpoint lock (None for a server that does not report it).
    pub server_lock_wait_share: Option<f64>,
}

/// User + system CPU time of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are the 14th and 15th fields of the line.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs `clients` month clients against `server_bin` (this build's `rudp`
/// unless given) with `--threads threads` when set.
pub async fn run(
    clients: usize,
    threads: Option<usize>,
    server_bin: Option<&std::path::Path>,
) -> Result<ScaleResult, BoxError> {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.local_addr()?.port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let bin = server_bin.map_or(std::path::PathBuf::from(env!("CARGO_BIN_EXE_rudp")), |p| {
        p.to_path_buf()
    });
    let report = tempfile::NamedTempFile::new()?;
    let mut args = vec![
        "server".to_string(),
        "--listen".into(),
        addr.to_string(),
        "--max-connections".into(),
        "100000".into(),
        "--stats-json".into(),
        report.path().display().to_string(),
    ];
    if let Some(n) = threads {
        args.extend(["--threads".into(), n.to_string()]);
    }
    let mut server = tokio::process::Command::new(&bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().ok_or("server exited")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(pid);

    let endpoints: Vec<rudp::Endpoint> = {
        let mut v = Vec::new();
        // Each client endpoint on its own loopback address (127.0.x.y):
        // the server limits pending handshakes per source address (32,
        // PROTOCOL.md §6.3), and real clients come from many addresses.
        for i in 0..clients.div_ceil(PER_ENDPOINT) {
            let local =
                std::net::SocketAddr::from(([127, 0, (i / 250) as u8, (i % 250 + 1) as u8], 0));
            v.push(rudp::Endpoint::bind(
                local,
                rudp_core::endpoint::EndpointConfig::default(),
            )?);
        }
        v
    };
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    // Everyone connects, then all send their requests together, then all
    // stay idle while the server's memory is read.
    let connected = Arc::new(Barrier::new(clients + 1));
    let requested = Arc::new(Barrier::new(clients + 1));
    let release = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        // Interleaved, so the handshakes in progress come from many addresses.
        let ep = endpoints[i % endpoints.len()].clone();
        let (connecting, connected, requested, release) = (
            connecting.clone(),
            connected.clone(),
            requested.clone(),
            release.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let conn = {
                let _permit = connecting.acquire().await;
                match tokio::time::timeout(Duration::from_secs(60), async {
                    let c = ep.connect(addr).await?;
                    c.recv().await?; // the greeting
                    Ok::<_, rudp::Error>(c)
                })
                .await
                {
                    Ok(Ok(c)) => Some(c),
                    _ => None,
                }
            };
            connected.wait().await;
            let mut rtts = Vec::new();
            let mut ok = conn.is_some();
            if let Some(c) = &conn {
                for r in 0..REQUESTS {
                    let month = (i + r) % 12 + 1;
                    let t = Instant::now();
                    let answer = tokio::time::timeout(Duration::from_secs(30), async {
                        c.send(Bytes::from(month.to_string())).await?;
                        c.recv().await
                    })
                    .await;
                    match answer {
                        Ok(Ok(Some(a))) if a.len() >= 3 && !a.starts_with(b"error") => {
                            rtts.push(t.elapsed())
                        }
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
            }
            requested.wait().await;
            release.notified().await;
            if let Some(c) = conn {
                let _ = c.send(Bytes::from_static(b"0")).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
            }
            (ok, rtts)
        }));
    }
    connected.wait().await;
    let connect_seconds = start.elapsed().as_secs_f64();
    let request_start = Instant::now();
    let cpu_before = cpu_seconds(pid);
    requested.wait().await;
    let request_seconds = request_start.elapsed().as_secs_f64();
    let request_cpu = cpu_seconds(pid) - cpu_before;
    // All connections open and idle: the server's memory now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(pid);
    release.notify_waiters();
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        // Tasks still waiting for `release` registered before it fired?
        // notify_waiters only wakes registered ones: retry until done.
        let mut t = t;
        let (ok, rtts) = loop {
            match tokio::time::timeout(Duration::from_millis(200), &mut t).await {
                Ok(r) => break r?,
                Err(_) => release.notify_waiters(),
            }
        };
        failures += usize::from(!ok);
        all.extend(rtts);
    }
    // SIGTERM: the server shuts down and writes its report.
    let total_cpu = cpu_seconds(pid);
    // SAFETY: kill has no memory preconditions; pid is our child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = tokio::time::timeout(Duration::from_secs(20), server.wait()).await;
    let _ = server.start_kill();
    let served: serde_json::Value = std::fs::read_to_string(report.path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let datagrams = served["endpoint"]["datagrams_received"]
        .as_f64()
        .unwrap_or(0.0);
    let lock_wait = served["lock_wait_seconds"].as_f64();
    let connected_n = clients - failures;
    Ok(ScaleResult {
        server: bin.display().to_string(),
        threads,
        server_cpu_us_per_request: request_cpu * 1e6 / all.len().max(1) as f64,
        server_datagrams_per_cpu_second: datagrams / total_cpu.max(1e-9),
        server_lock_wait_share: lock_wait.map(|w| w / total_cpu.max(1e-9)),
        clients,
        connected: connected_n,
        connect_seconds,
        requests: all.len(),
        requests_per_second: all.len() as f64 / request_seconds,
        latency: Summary::of(&mut all),
        server_rss_base_kib: base,
        server_rss_kib: rss,
        kib_per_connection: (rss.saturating_sub(base)) as f64 / clients.max(1) as f64,
        failures,
    })
}

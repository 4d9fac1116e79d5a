//! `rudp server`: serves the month service to any number of clients.

use super::{answer, Answer, GREETING};
use bytes::Bytes;
use rudp::{Connection, Endpoint};
use rudp_core::conn::Stats;
use rudp_core::endpoint::EndpointStats;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, Instrument};

/// How long a shutdown waits for connections to close gracefully.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What the server did over its run (`--stats-json`). Running totals only:
/// a server that runs for months keeps no record per session (issue #12
/// item 10).
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// Sessions served (connections accepted and finished).
    pub connections: usize,
    /// How long the server ran.
    pub seconds: f64,
    /// Message bytes received per second over the run.
    pub goodput_bytes_per_sec: f64,
    /// Counters summed over every connection.
    pub totals: Stats,
    /// Datagrams the endpoint dropped or answered itself.
    pub endpoint: EndpointStats,
}

impl ServerReport {
    pub fn summary(&self) -> String {
        format!(
            "served {} connection(s) in {:.1} s; totals: {}; goodput {:.1} kB/s",
            self.connections,
            self.seconds,
            self.totals.summary(),
            self.goodput_bytes_per_sec / 1e3
        )
    }
}

/// Serves until `shutdown` completes, then closes every connection
/// gracefully (waiting at most [`SHUTDOWN_GRACE`]) and returns what it did.
pub async fn serve(endpoint: Endpoint, shutdown: impl Future<Output = ()>) -> ServerReport {
    info!(listen = %endpoint.local_addr(), "month service ready");
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    let mut totals = Stats::default();
    let mut connections = 0;
    let mut record = |done: Result<Stats, _>| {
        if let Ok(stats) = done {
            totals.accumulate(&stats);
            connections += 1;
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // A client connected: serve it in its own task.
            conn = endpoint.accept() => match conn {
                Some(conn) => {
                    let span = info_span!("conn", peer = %conn.remote_addr());
                    tasks.spawn(serve_one(conn).instrument(span));
                }
                None => break,
            },
            // Collect finished sessions so the set stays small.
            Some(done) = tasks.join_next(), if !tasks.is_empty() => record(done),
            // Ctrl-C, SIGTERM, or the caller's own signal.
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
        }
    }
    endpoint.shutdown(SHUTDOWN_GRACE).await;
    // Sessions end once their connections have; wait briefly, then stop.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            record(done);
        }
    })
    .await;
    tasks.abort_all();
    info!("stopped");
    let seconds = started.elapsed().as_secs_f64();
    ServerReport {
        connections,
        seconds,
        goodput_bytes_per_sec: totals.bytes_delivered as f64 / seconds.max(1e-9),
        totals,
        endpoint: endpoint.stats(),
    }
}

/// Serves on several endpoints at once, each running [`serve`] in its own
/// task: with sockets sharing one port (`SO_REUSEPORT`), the kernel spreads
/// clients over them by address, and the endpoints share nothing, so a
/// multi-thread runtime runs them on every core (docs/architecture.md,
/// "Using every core"). The report sums the workers'.
pub async fn serve_all(
    endpoints: Vec<Endpoint>,
    shutdown: impl Future<Output = ()>,
) -> ServerReport {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = JoinSet::new();
    for (i, endpoint) in endpoints.into_iter().enumerate() {
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        workers.spawn(serve(endpoint, signal).instrument(info_span!("worker", i)));
    }
    shutdown.await;
    let _ = stop.send(true);
    let mut total: Option<ServerReport> = None;
    while let Some(done) = workers.join_next().await {
        let Ok(r) = done else { continue };
        match total.as_mut() {
            None => total = Some(r),
            Some(t) => {
                t.connections += r.connections;
                t.seconds = t.seconds.max(r.seconds);
                t.totals.accumulate(&r.totals);
                t.endpoint.accumulate(&r.endpoint);
            }
        }
    }
    let mut total = total.unwrap_or_else(|| ServerReport {
        connections: 0,
        seconds: 0.0,
        goodput_bytes_per_sec: 0.0,
        totals: Stats::default(),
        endpoint: EndpointStats::default(),
    });
    total.goodput_bytes_per_sec = total.totals.bytes_delivered as f64 / total.seconds.max(1e-9);
    total
}

/// One client's session: the greeting, then one answer per request.
async fn serve_one(conn: Connection) -> Stats {
    session(&conn).await;
    conn.stats()
}

async fn session(conn: &Connection) {
    debug!("session starts");
    if let Err(e) = conn.send(Bytes::from_static(GREETING.as_bytes())).await {
        debug!(error = %e, "greeting failed");
        return;
    }
    loop {
        let request = match conn.recv().await {
            Ok(Some(r)) => r,
            Ok(None) => break, // The client closed its side.
            Err(e) => {
                debug!(error = %e, "session failed");
                return;
            }
        };
        let a = answer(&request);
        debug!(request = ?String::from_utf8_lossy(&request[..request.len().min(40)]), answer = ?a);
        if let Err(e) = conn.send(Bytes::from(a.to_message())).await {
            debug!(error = %e, "answer failed");
            return;
        }
        if a == Answer::End {
            break;
        }
    }
    match conn.close().await {
        Ok(()) => debug!(stats = %conn.stats().summary(), "session closed"),
        Err(e) => debug!(error = %e, "close failed"),
    }
}

//! `rudp server`: serves the month service to any number of clients.

use super::{answer, Answer, GREETING};
use bytes::Bytes;
use rudp::{Connection, Endpoint, EndpointConfig};
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
    /// Workers (endpoints) that served.
    pub workers: usize,
    /// Sessions served by each worker: how evenly the kernel spread the
    /// clients.
    pub worker_connections: Vec<usize>,
    /// Times a task found its endpoint's lock taken, and the seconds spent
    /// waiting for it, summed over the workers (docs/architecture.md).
    pub lock_waits: u64,
    pub lock_wait_seconds: f64,
}

impl ServerReport {
    pub fn summary(&self) -> String {
        format!(
            "served {} connection(s) in {:.1} s on {} worker(s); totals: {}; goodput {:.1} kB/s; \
             lock waits {} ({:.1} ms)",
            self.connections,
            self.seconds,
            self.workers,
            self.totals.summary(),
            self.goodput_bytes_per_sec / 1e3,
            self.lock_waits,
            self.lock_wait_seconds * 1e3,
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
    let lock = endpoint.lock_contention();
    ServerReport {
        connections,
        seconds,
        goodput_bytes_per_sec: totals.received.bytes_delivered as f64 / seconds.max(1e-9),
        totals,
        endpoint: endpoint.stats(),
        workers: 1,
        worker_connections: vec![connections],
        lock_waits: lock.waits,
        lock_wait_seconds: lock.waited.as_secs_f64(),
    }
}

/// How `rudp server` runs its workers ([`serve_threads`]).
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// Settings of each worker's endpoint, one per socket (limits already
    /// shared out).
    pub configs: Vec<EndpointConfig>,
    /// Trace worker 0's connections to this file, at this level.
    pub trace: Option<(std::path::PathBuf, rudp::TraceLevel)>,
}

/// Serves on one thread per socket, each with its own single-threaded
/// runtime and endpoint (thread per core): with sockets sharing one port
/// (`SO_REUSEPORT`) the kernel spreads clients over them by address, and
/// the workers share nothing, not even a runtime, so no task ever waits
/// for another worker (docs/architecture.md, "Using every core"). Returns
/// once `shutdown` completes and every worker has stopped; the report sums
/// the workers'. An endpoint or trace file that cannot be made is an
/// error before anything is served.
pub async fn serve_threads(
    sockets: Vec<std::net::UdpSocket>,
    setup: WorkerSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<ServerReport, String> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut ready = Vec::new();
    let mut reports = Vec::new();
    let mut threads = Vec::new();
    if sockets.len() != setup.configs.len() {
        return Err(format!(
            "{} sockets for {} worker settings",
            sockets.len(),
            setup.configs.len()
        ));
    }
    for (i, (socket, config)) in sockets.into_iter().zip(setup.configs.clone()).enumerate() {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (report_tx, report_rx) = tokio::sync::oneshot::channel::<ServerReport>();
        let mut stopped = stopped.clone();
        let trace = setup.trace.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rudp-worker-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start worker {i}: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let endpoint = match Endpoint::server_on(socket, config) {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    if let (0, Some((path, level))) = (i, &trace) {
                        if let Err(e) = endpoint.trace_to_level(path, *level) {
                            let _ = ready_tx.send(Err(format!(
                                "cannot write the trace {}: {e}",
                                path.display()
                            )));
                            return;
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let signal = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    let report = serve(endpoint, signal)
                        .instrument(info_span!("worker", i))
                        .await;
                    let _ = report_tx.send(report);
                });
            })
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        threads.push(thread);
        ready.push(ready_rx);
        reports.push(report_rx);
    }
    let mut failed = None;
    for r in ready {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => failed = failed.or(Some("a worker stopped before it started".into())),
        }
    }
    if failed.is_none() {
        shutdown.await;
    }
    let _ = stop.send(true);
    let mut total: Option<ServerReport> = None;
    for r in reports {
        let Ok(r) = r.await else { continue };
        match total.as_mut() {
            None => total = Some(r),
            Some(t) => {
                t.connections += r.connections;
                t.seconds = t.seconds.max(r.seconds);
                t.totals.accumulate(&r.totals);
                t.endpoint.accumulate(&r.endpoint);
                t.workers += r.workers;
                t.worker_connections.extend(r.worker_connections);
                t.lock_waits += r.lock_waits;
                t.lock_wait_seconds += r.lock_wait_seconds;
            }
        }
    }
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut total = total.ok_or("no worker reported")?;
    total.goodput_bytes_per_sec =
        total.totals.received.bytes_delivered as f64 / total.seconds.max(1e-9);
    Ok(total)
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

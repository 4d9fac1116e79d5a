//! `rudp server`: serves the month service to any number of clients.

use super::{answer, Answer, GREETING};
use crate::io::{Connection, Endpoint};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, Instrument};

/// How long a shutdown waits for connections to close gracefully.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves until `shutdown` completes, then closes every connection
/// gracefully (waiting at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(endpoint: Endpoint, shutdown: impl Future<Output = ()>) {
    info!(listen = %endpoint.local_addr(), "month service ready");
    let mut tasks = JoinSet::new();
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
            // Reap finished connection tasks so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            // Ctrl-C, SIGTERM, or the caller's own signal.
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
        }
    }
    endpoint.shutdown(SHUTDOWN_GRACE).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    info!("stopped");
}

/// One client's session: the greeting, then one answer per request.
async fn serve_one(conn: Connection) {
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
        Ok(()) => debug!(stats = ?conn.stats(), "session closed"),
        Err(e) => debug!(error = %e, "close failed"),
    }
}

//! `rudp recv`: receive files from `rudp send`, several senders at once.

use super::args::{
    parse_size, parse_timeout, shutdown_signal, start_trace, write_report, ConnArgs, ObserveArgs,
};
use super::server::served;
use super::{parse_addr, DEFAULT_RECV_ADDR, EXIT_INTERRUPTED};
use crate::secure_args::IdentityArgs;
use rudp::Endpoint;
use rudp_core::endpoint::EndpointConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `rudp recv`'s flags.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_RECV_ADDR, value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Where to write: a file path, a directory (the sender's file name is
    /// kept), or - for standard output. Default: the current directory.
    #[arg(short, long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Serve transfers until interrupted, instead of exiting after the
    /// first one.
    #[arg(long)]
    pub keep_open: bool,
    /// Replace a file of the same name in the output directory (by
    /// default the new file gets another name: NAME.1.EXT, NAME.2.EXT...).
    #[arg(long)]
    pub force: bool,
    /// Refuse files larger than this (e.g. 500MB, 2GiB, or bytes).
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub max_size: u64,
    /// Transfers served at once; senders beyond it are turned away with
    /// "receiver busy".
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_transfers: u32,
    /// Give up on a transfer after this long without progress.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
    pub timeout: Duration,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

impl RecvArgs {
    /// Runs the command; returns the process exit status.
    pub async fn run(self) -> i32 {
        let RecvArgs {
            listen,
            out,
            keep_open,
            force,
            max_size,
            max_transfers,
            timeout,
            identity,
            conn,
            observe,
        } = self;
        let output = match crate::transfer::recv::Output::from_arg(out.as_deref()) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let connection = match identity.config(served(false), &conn, "recv") {
            Ok(c) => c,
            Err(code) => return code,
        };
        let config = EndpointConfig::new(connection);
        let opts = crate::transfer::recv::RecvOptions {
            output,
            timeout,
            max_size,
            force,
        };
        let serve = RecvServe {
            keep_open,
            max_transfers: max_transfers as usize,
        };
        run_recv(listen, config, opts, serve, observe).await
    }
}

/// How `rudp recv` takes senders.
struct RecvServe {
    keep_open: bool,
    max_transfers: usize,
}

/// Serves senders concurrently, up to `max_transfers` at once, so that one
/// idle or slow peer never blocks another (issue #12 item 3). Without
/// `--keep-open` it ends with the first transfer that got as far as a valid
/// offer: exit 0 if that transfer succeeded, 1 if it failed. A connection
/// that never offers anything is dropped after `--timeout` and does not end
/// the run.
async fn run_recv(
    listen: SocketAddr,
    config: EndpointConfig,
    opts: crate::transfer::recv::RecvOptions,
    serve: RecvServe,
    observe: ObserveArgs,
) -> i32 {
    use crate::transfer::recv::{receive, remove_stale_partials};
    use crate::transfer::Stop;
    if let Some(dir) = opts.output.dir() {
        let removed = remove_stale_partials(dir);
        if removed > 0 {
            eprintln!(
                "rudp recv: removed {removed} partial file(s) left in {} by receivers that were killed",
                dir.display()
            );
        }
    }
    let endpoint = match Endpoint::server(listen, config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    if !start_trace(&endpoint, observe.trace_spec()) {
        return 1;
    }
    eprintln!("rudp recv: listening on {}", endpoint.local_addr());
    let opts = std::sync::Arc::new(opts);
    let mut tasks = tokio::task::JoinSet::new();
    let mut active = std::collections::HashMap::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let code = loop {
        tokio::select! {
            // The next sender that proved its address.
            c = endpoint.accept() => {
                let Some(conn) = c else { break 1 };
                if tasks.len() >= serve.max_transfers {
                    conn.abort(Stop::Busy.code(), &format!("receiver busy: {} transfers in progress", tasks.len()));
                    eprintln!("warning: turned away {}: {} transfers in progress", conn.remote_addr(), tasks.len());
                    continue;
                }
                let (task_conn, task_opts) = (conn.clone(), opts.clone());
                let id = tasks
                    .spawn(async move {
                        let r = receive(&task_conn, &task_opts).await;
                        (task_conn.remote_addr(), r)
                    })
                    .id();
                active.insert(id, conn);
            }
            // A transfer ended.
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let Ok((id, (peer, result))) = done else { continue };
                active.remove(&id);
                match result {
                    Ok(report) => {
                        eprintln!("{}", report.summary("received", observe.verbose));
                        let written = write_report(observe.stats_json.as_deref(), &report);
                        if !serve.keep_open {
                            endpoint.linger(crate::LINGER).await;
                            break written.map_or(1, |()| 0);
                        }
                    }
                    Err(f) if !f.offered => {
                        eprintln!("warning: {peer} sent no usable offer ({}); still listening", f.error);
                    }
                    Err(f) => {
                        eprintln!("error: transfer from {peer} failed: {}", f.error);
                        if !serve.keep_open {
                            break 1;
                        }
                    }
                }
            }
            // Ctrl-C or SIGTERM: the senders are told at once (issue #26).
            () = &mut shutdown => {
                if tasks.is_empty() {
                    break if serve.keep_open { 0 } else { 1 };
                }
                for conn in active.values() {
                    conn.abort(Stop::Interrupted.code(), "the receiver was interrupted");
                }
                eprintln!("error: interrupted; nothing was kept of {} transfer(s) in progress", tasks.len());
                break EXIT_INTERRUPTED;
            }
        }
    };
    // Whatever is still running is cut, and its sender told; its partial
    // file is removed as its task unwinds.
    for conn in active.values() {
        conn.abort(Stop::Failed.code(), "the receiver stopped");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // The CLOSEs (a refusal's reason, an interruption) go out before exit.
    endpoint.linger(crate::LINGER).await;
    code
}

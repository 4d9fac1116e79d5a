//! `rudp server`: the month service, one worker endpoint per core on a
//! shared port.

use super::args::{shutdown_signal, write_report, ConnArgs, ObserveArgs};
use super::{parse_addr, DEFAULT_ADDR};
use crate::month::client::ClientExit;
use crate::month::server;
use crate::secure_args::IdentityArgs;
use rudp_core::endpoint::{EndpointConfig, RetryPolicy, RETRY_WHEN_PENDING};
use std::net::SocketAddr;

/// `rudp server`'s flags.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR, value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Open connections at most; more clients are refused with CONNECTION_REFUSED.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections in their handshake at most; more are refused with CONNECTION_REFUSED.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_handshakes: u32,
    /// When to answer a client's first packet with a RETRY token and keep no
    /// state until it comes back (address validation, PROTOCOL.md §6.8).
    #[arg(long, value_enum, default_value_t = RetryMode::Auto)]
    pub retry: RetryMode,
    /// Worker endpoints, each with its own socket on the same port
    /// (SO_REUSEPORT), so that the server uses every core. Default: the
    /// number of cores, or 1 with --trace. The limits above are totals,
    /// shared out equally between the workers (so there are never more
    /// workers than --max-connections).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

impl ServerArgs {
    /// Runs the command; returns the process exit status.
    pub async fn run(self) -> i32 {
        let ServerArgs {
            listen,
            max_connections,
            max_pending_handshakes,
            retry,
            threads,
            identity,
            conn,
            observe,
        } = self;
        let connection = match identity.config(served(true), &conn, "server") {
            Ok(c) => c,
            Err(code) => return code,
        };
        let threads = match (threads, &observe.trace) {
            (Some(n), Some(_)) if n > 1 => {
                eprintln!("error: --trace records one worker: use it with --threads 1");
                return 2;
            }
            (Some(n), _) => usize::from(n),
            (None, Some(_)) => 1,
            (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let (max_connections, max_pending) =
            (max_connections as usize, max_pending_handshakes as usize);
        // Every worker takes an equal share of the totals, so they add
        // up exactly; no more workers than there are connections to
        // share out.
        let threads = threads.min(max_connections).min(max_pending).max(1);
        let share = |total: usize, worker: usize| {
            (total / threads + usize::from(worker < total % threads)).max(1)
        };
        let connection = std::sync::Arc::new(connection);
        let defaults = EndpointConfig::default();
        let configs: Result<Vec<EndpointConfig>, _> = (0..threads)
            .map(|i| {
                defaults
                    .to_builder()
                    .connection(connection.clone())
                    .max_connections(share(max_connections, i))
                    .max_pending_handshakes(share(max_pending, i))
                    .max_pending_per_source(share(defaults.max_pending_per_source(), i))
                    .max_connections_per_source(share(defaults.max_connections_per_source(), i))
                    .max_memory(defaults.max_memory() / threads as u64)
                    .retry(retry.policy(threads))
                    // Worker i's CIDs start with byte i, so the shared
                    // port can steer a moved client back to it (§6.9).
                    .server_id(
                        (threads > 1 && threads <= rudp::MAX_STEERED_SOCKETS).then_some(i as u8),
                    )
                    .build()
            })
            .collect();
        let configs = match configs {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        run_server(listen, configs, observe).await
    }
}

/// When the server makes clients prove their address first (`--retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryMode {
    /// Only while many handshakes are pending (a flood): no extra round
    /// trip otherwise.
    Auto,
    /// Always: every client pays one extra round trip.
    Always,
    /// Never: every INITIAL within the limits creates a connection.
    Never,
}

impl RetryMode {
    /// The policy for one of `workers` server endpoints: `auto`'s
    /// threshold is shared out like the other limits.
    pub fn policy(self, workers: usize) -> RetryPolicy {
        match self {
            Self::Auto => RetryPolicy::WhenBusy {
                pending_handshakes: RETRY_WHEN_PENDING.div_ceil(workers.max(1)),
            },
            Self::Always => RetryPolicy::Always,
            Self::Never => RetryPolicy::Never,
        }
    }
}

/// What `rudp server` and `rudp recv` start from: they read only the
/// first stream, so they let a peer open no other stream and send no
/// datagram (announced as 0, PROTOCOL.md §15.2, §15.6): a peer cannot make
/// them hold what they never read (docs/security.md). `month` also sizes
/// the first stream for requests of a few bytes: 64 KiB messages, and a
/// 256 KiB window that does not grow.
pub(super) fn served(month: bool) -> rudp::Config {
    let base = rudp::Config::builder()
        .max_streams(0)
        .datagram_receive_queue(0);
    let base = if month {
        base.max_message_size(64 << 10)
            .receive_window(256 << 10)
            .max_receive_window(256 << 10)
    } else {
        base
    };
    base.build().unwrap_or_default()
}

async fn run_server(listen: SocketAddr, configs: Vec<EndpointConfig>, observe: ObserveArgs) -> i32 {
    let threads = configs.len();
    let sockets = match shared_port_sockets(listen, threads) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ClientExit::Failed as i32;
        }
    };
    if threads > 1 {
        if let Ok(addr) = sockets[0].local_addr() {
            tracing::info!(listen = %addr, workers = threads, "one socket and one thread per worker (SO_REUSEPORT)");
        }
        // Packets go to the worker their connection ID names, whatever
        // port they come from: a client behind a rebinding NAT stays with
        // its worker (PROTOCOL.md §6.9).
        let steered = threads <= rudp::MAX_STEERED_SOCKETS;
        match steered.then(|| rudp::steer_by_server_id(&sockets[0])) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "cannot steer by connection ID: a client that changes address may reach another worker and lose its connection"),
            None => tracing::warn!(workers = threads, "more workers than connection IDs can name: a client that changes address may reach another worker and lose its connection"),
        }
    }
    let setup = server::WorkerSetup {
        configs,
        trace: observe
            .trace_spec()
            .map(|(path, level)| (path.to_path_buf(), level)),
    };
    let report = match server::serve_threads(sockets, setup, shutdown_signal()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ClientExit::Failed as i32;
        }
    };
    eprintln!("{}", report.summary());
    write_report(observe.stats_json.as_deref(), &report).map_or(1, |()| 0)
}

/// `n` non-blocking UDP sockets bound to one address, for one server
/// endpoint each: with more than one, `SO_REUSEPORT` lets them share the
/// port and the kernel hashes each client's address and port to one of
/// them. With port 0, the first socket's port is the one the others take.
pub fn shared_port_sockets(
    listen: SocketAddr,
    n: usize,
) -> std::io::Result<Vec<std::net::UdpSocket>> {
    let sharing = if n > 1 {
        rudp::PortSharing::Shared
    } else {
        rudp::PortSharing::Exclusive
    };
    let mut addr = listen;
    if sharing == rudp::PortSharing::Shared {
        // SO_REUSEPORT lets any socket of the same user join the port's
        // group, another server's too, which would then silently take a
        // share of the clients. A socket bound without it first proves
        // that nobody holds the port (a second server gets "address in
        // use" and exits 1); only then do this server's workers share it.
        let probe = rudp::bind_udp(listen, rudp::PortSharing::Exclusive)?;
        addr = probe.local_addr()?;
    }
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let s = rudp::bind_udp(addr, sharing)?;
        addr = s.local_addr()?;
        sockets.push(s);
    }
    Ok(sockets)
}

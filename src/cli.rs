//! The `rudp` command line (docs/cli.md). `main.rs` only parses and calls
//! [`run`]; everything here is library code the tests can reach.

use crate::month::client::{self, ClientExit, ClientOptions, Input};
use crate::month::server;
use crate::proxy::{format_stats, ImpairArgs, Proxy, ProxyConfig};
use crate::secure_args::{IdentityArgs, TrustArgs};
use crate::units::parse_duration;
use clap::{Parser, Subcommand};
use rudp::Endpoint;
use rudp_core::congestion::Algorithm;
use rudp_core::endpoint::{EndpointConfig, RetryPolicy, RETRY_WHEN_PENDING};
use rudp_core::psk::Psk;
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The default address of the month service.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8091";
/// Where `rudp recv` listens and `rudp send` sends by default.
pub const DEFAULT_RECV_ADDR: &str = "127.0.0.1:9100";

#[derive(Debug, Parser)]
#[command(
    name = "rudp",
    version,
    about = "Reliable, ordered messages over UDP: the month service, a fault-injecting proxy and tools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What a run records besides its output: statistics and an event trace.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObserveArgs {
    /// At the end of the run (for recv, after each transfer), write its
    /// statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Write an event trace (JSON lines) of every connection to FILE; see `rudp plot`.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// What the trace records: every packet, or (for long runs) only
    /// losses, state changes and metrics every 10 ms.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = TraceLevelArg::Packets, requires = "trace")]
    pub trace_level: TraceLevelArg,
    /// Also print what the protocol did (the `stats:` line: packets,
    /// losses, RTT, window) on standard error at the end.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `--trace-level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceLevelArg {
    /// Every packet sent and received.
    #[default]
    Packets,
    /// No per-packet events; metrics at most every 10 ms per connection.
    Metrics,
}

impl From<TraceLevelArg> for rudp::TraceLevel {
    fn from(a: TraceLevelArg) -> Self {
        match a {
            TraceLevelArg::Packets => rudp::TraceLevel::Packets,
            TraceLevelArg::Metrics => rudp::TraceLevel::Metrics,
        }
    }
}

impl ObserveArgs {
    /// `--trace` with its level, if asked.
    pub fn trace_spec(&self) -> Option<(&std::path::Path, rudp::TraceLevel)> {
        Some((self.trace.as_deref()?, self.trace_level.into()))
    }
}

/// Connection settings for every command that opens connections: packet
/// protection and congestion control.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Seal every packet with the pre-shared key in FILE (its whole content,
    /// at least 16 bytes; make one with `head -c 32 /dev/urandom > FILE`).
    /// Both sides need the same file. See docs/security.md.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Congestion controller: bbr (rate-based, tolerates random loss), cubic
    /// or newreno (loss-based). See docs/benchmarks.md for how they compare.
    #[arg(long, value_name = "ALGORITHM", default_value_t = Algorithm::default())]
    pub congestion: Algorithm,
    /// Largest UDP payload to accept and to search for with path MTU
    /// discovery (PROTOCOL.md §9.7), 1200 to 65507. Connections start at
    /// 1200 bytes and grow only to what the path is shown to carry; 1200
    /// turns discovery off.
    #[arg(long, value_name = "BYTES", default_value_t = rudp_core::config::MAX_DATAGRAM_SIZE,
          value_parser = parse_datagram_size)]
    pub max_datagram_size: usize,
    /// Newest protocol version to offer (client, send) or accept (server,
    /// recv): 3 (the default: authenticated and encrypted, PROTOCOL.md
    /// §16), or the clear ones, 2 (streams, expiring messages, datagrams;
    /// §15) and 1, the first edition, which need --insecure (client, send)
    /// or --allow-insecure (server, recv). With --insecure, client and send
    /// offer 1 unless told otherwise; a version-2 client falls back to 1 by
    /// itself when the server speaks only 1.
    #[arg(long, value_name = "1|2|3", value_parser = parse_protocol_version)]
    pub protocol_version: Option<u8>,
}

/// `--protocol-version`: 1, 2 or 3.
fn parse_protocol_version(s: &str) -> Result<u8, String> {
    match s.trim() {
        "1" => Ok(1),
        "2" => Ok(2),
        "3" => Ok(3),
        _ => Err("expected 1, 2 or 3".into()),
    }
}

/// `--max-datagram-size`: a whole number of bytes in 1200..=65507.
fn parse_datagram_size(s: &str) -> Result<usize, String> {
    use rudp_core::config::{MAX_DATAGRAM_SIZE, MIN_DATAGRAM_SIZE};
    match s.parse::<usize>() {
        Ok(n) if (MIN_DATAGRAM_SIZE..=MAX_DATAGRAM_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of bytes from {MIN_DATAGRAM_SIZE} to {MAX_DATAGRAM_SIZE}"
        )),
    }
}

impl Default for ConnArgs {
    fn default() -> Self {
        Self {
            psk: None,
            congestion: Algorithm::default(),
            max_datagram_size: rudp_core::config::MAX_DATAGRAM_SIZE,
            protocol_version: None,
        }
    }
}

impl ConnArgs {
    /// These flags with `--protocol-version` decided.
    pub fn with_version(&self, version: u8) -> Self {
        Self {
            protocol_version: Some(version),
            ..self.clone()
        }
    }

    /// The key, if one was given.
    pub fn load(&self) -> Result<Option<Psk>, rudp_core::psk::PskError> {
        self.psk.as_deref().map(Psk::from_file).transpose()
    }

    /// The connection configuration these flags ask for, on top of `base`;
    /// `None` (after a message) if the key file cannot be used.
    pub fn config(&self, base: rudp::Config) -> Option<rudp::Config> {
        let psk = self.load().map_err(|e| eprintln!("error: {e}")).ok()?;
        base.to_builder()
            .psk(psk)
            .congestion(std::sync::Arc::new(self.congestion))
            .max_datagram_size(self.max_datagram_size)
            .version(self.protocol_version.unwrap_or(base.version()))
            .build()
            .map_err(|e| eprintln!("error: {e}"))
            .ok()
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

/// `rudp proxy ctl`: a client of a running proxy's `--control` API.
#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Show or change a running proxy's link through its `--control` API.
    Ctl {
        /// The proxy's `--control` address.
        #[arg(value_parser = parse_addr)]
        addr: SocketAddr,
        /// The token the proxy printed for `--control-token`.
        #[arg(long, env = "RUDP_CONTROL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        what: CtlCommand,
    },
}

/// What `rudp proxy ctl` asks.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Print the statistics (as --stats-json writes them).
    Stats,
    /// Print every setting, by flag name without the dashes.
    Get,
    /// Change settings: NAME=VALUE ... or --NAME VALUE ... (e.g. loss=20%
    /// up-delay=50ms rate=none, or --loss 20% --up-delay 50ms).
    Set {
        #[arg(
            value_name = "SETTING",
            required = true,
            allow_hyphen_values = true,
            trailing_var_arg = true
        )]
        settings: Vec<String>,
    },
    /// Remove every impairment.
    Clear,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the month service: answer a number from 1 to 12 with that month's name.
    Server {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR, value_parser = parse_addr)]
        listen: SocketAddr,
        /// Open connections at most; more clients are refused with CONNECTION_REFUSED.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Connections in their handshake at most; more are refused with CONNECTION_REFUSED.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
        max_pending_handshakes: u32,
        /// When to answer a client's first packet with a RETRY token and keep no
        /// state until it comes back (address validation, PROTOCOL.md §6.8).
        #[arg(long, value_enum, default_value_t = RetryMode::Auto)]
        retry: RetryMode,
        /// Worker endpoints, each with its own socket on the same port
        /// (SO_REUSEPORT), so that the server uses every core. Default: the
        /// number of cores, or 1 with --trace. The limits above are totals,
        /// shared out equally between the workers (so there are never more
        /// workers than --max-connections).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: Option<u16>,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        observe: ObserveArgs,
    },
    /// Ask the month service: one request per MONTH argument, or per line of standard input.
    Client {
        /// Address of the server (`--server` is an older name for it).
        #[arg(long = "to", alias = "server", value_name = "ADDR", default_value = DEFAULT_ADDR, value_parser = parse_addr)]
        server: SocketAddr,
        /// Give up after this long without progress from the server (e.g. 10s, 500ms).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
        timeout: Duration,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        observe: ObserveArgs,
        /// Requests to send; with none, each line of standard input is one.
        /// Options may come before or after them; after `--` everything is
        /// a request, so `rudp client -- -3` sends "-3".
        #[arg(value_name = "MONTH")]
        months: Vec<String>,
    },
    /// Relay UDP between clients and a server, impairing it: loss, bursts,
    /// duplication, reordering, delay, jitter, corruption, rate limits,
    /// blackouts; `rudp proxy ctl` changes a running one.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Every impairment also has a form for one direction: --up-NAME (client to server) \
                      and --down-NAME (server to client), e.g. --up-loss 5% --down-delay 40ms; \
                      docs/proxy.md has them all."
    )]
    Proxy {
        /// Talk to a running proxy instead (`rudp proxy ctl ADDR ...`).
        #[command(subcommand)]
        ctl: Option<ProxyCommand>,
        /// Address clients send to.
        #[arg(long, value_name = "ADDR", required = true, value_parser = parse_addr)]
        listen: Option<SocketAddr>,
        /// Address of the real server (`--upstream` is an older name for it).
        #[arg(long = "to", alias = "upstream", value_name = "ADDR", required = true, value_parser = parse_addr)]
        upstream: Option<SocketAddr>,
        #[command(flatten)]
        impair: Box<ImpairArgs>,
        /// Seed for every random decision; without it one is chosen and printed.
        #[arg(long)]
        seed: Option<u64>,
        /// Also print the statistics this often (e.g. 5s).
        #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true)]
        stats_interval: Option<Duration>,
        /// Write the statistics as JSON to FILE (on exit, and at every interval).
        #[arg(long, value_name = "FILE")]
        stats_json: Option<PathBuf>,
        /// Client addresses relayed at once (each needs a socket); a new
        /// client beyond it replaces the one idle longest.
        #[arg(long, value_name = "N", default_value_t = crate::proxy::MAX_CLIENTS as u32, value_parser = clap::value_parser!(u32).range(1..))]
        max_clients: u32,
        /// Change the link over time: one change a line, `TIME NAME=VALUE ...`
        /// (names as the impairment flags, without the dashes) or `TIME clear`,
        /// times from the start, e.g. `10s loss=20%` (docs/proxy.md).
        #[arg(long, value_name = "FILE", value_parser = parse_schedule)]
        schedule: Option<ScheduleArg>,
        /// Serve the HTTP/JSON control API on this loopback address, to change
        /// the link while it runs (see `rudp proxy ctl`, docs/proxy.md).
        #[arg(long, value_name = "ADDR", value_parser = parse_control_addr)]
        control: Option<SocketAddr>,
        /// Require this token on every control request (`Authorization:
        /// Bearer TOKEN`, `rudp proxy ctl --token`); without a value, a
        /// random one is made and printed.
        #[arg(long, value_name = "TOKEN", num_args = 0..=1, default_missing_value = "", requires = "control")]
        control_token: Option<String>,
        /// Write every datagram received, both ways, with what the proxy did to
        /// it as a packet comment, to FILE in pcapng (for Wireshark).
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
        /// Stop capturing once the pcap file would pass this size.
        #[arg(long, value_name = "SIZE", default_value = "100MB", value_parser = parse_size, requires = "pcap")]
        pcap_limit: u64,
        /// Move each client's mapping to a new upstream source port about this
        /// often, as a NAT rebinding does (e.g. 30s, 500ms): the server sees
        /// the client's address change.
        #[arg(long, value_name = "EVERY", value_parser = parse_positive_duration)]
        rebind: Option<Duration>,
    },
    /// Send a file to `rudp recv`; exit 0 once the receiver has verified it.
    Send {
        /// The file to send (streamed: any size works).
        file: PathBuf,
        /// Address of the receiver.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_RECV_ADDR, value_parser = parse_addr)]
        to: SocketAddr,
        /// Give up after this long without progress (e.g. 10s).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
        timeout: Duration,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        observe: ObserveArgs,
    },
    /// Receive a file from `rudp send`, verify its SHA-256, then put it in place.
    Recv {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_RECV_ADDR, value_parser = parse_addr)]
        listen: SocketAddr,
        /// Where to write: a file path, a directory (the sender's file name is
        /// kept), or - for standard output. Default: the current directory.
        #[arg(short, long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Serve transfers until interrupted, instead of exiting after the
        /// first one.
        #[arg(long)]
        keep_open: bool,
        /// Replace a file of the same name in the output directory (by
        /// default the new file gets another name: NAME.1.EXT, NAME.2.EXT...).
        #[arg(long)]
        force: bool,
        /// Refuse files larger than this (e.g. 500MB, 2GiB, or bytes).
        #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
        max_size: u64,
        /// Transfers served at once; senders beyond it are turned away with
        /// "receiver busy".
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
        max_transfers: u32,
        /// Give up on a transfer after this long without progress.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
        timeout: Duration,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        observe: ObserveArgs,
    },
    /// Turn a capture of `rudp proxy --pcap` into one whose version-3
    /// packets are in clear, with the keys `RUDP_KEYLOG` wrote; the
    /// proxy's comments are kept (docs/wireshark.md).
    Decrypt {
        /// The key log (`RUDP_KEYLOG=FILE` on either end).
        #[arg(long, value_name = "FILE")]
        keylog: PathBuf,
        /// The capture to read.
        input: PathBuf,
        /// The capture to write (replaced whole at the end).
        output: PathBuf,
    },
    /// Make a static key pair: the private key into FILE (base64, mode
    /// 0600), the public key on standard output (base64), as `wg genkey`
    /// and `wg pubkey` do.
    Keygen {
        /// Where to write the private key; refused if it exists.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Draw a trace (from --trace) as an SVG: packets sent, acknowledged and
    /// lost over time; congestion window and bytes in flight; RTT.
    Plot {
        /// The trace file.
        trace: PathBuf,
        /// The SVG to write (default: the trace's name with .svg).
        #[arg(short = 'o', long = "out", value_name = "FILE.svg")]
        out: Option<PathBuf>,
        /// Which connection, by its ID as in the trace (default: the first).
        #[arg(long)]
        conn: Option<String>,
    },
    /// The month service over a lossy, reordering, duplicating link, in one
    /// process; `rudp demo streams` shows streams, priorities and datagrams.
    Demo {
        /// What to show: `months` (the month service, plain UDP against
        /// rudp) or `streams` (small messages next to a bulk transfer on
        /// one connection: one stream, own stream at higher priority,
        /// datagrams).
        #[arg(value_enum, default_value_t = DemoMode::Months)]
        mode: DemoMode,
        /// Seed for the link's random decisions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `streams`: how long each case runs.
        #[arg(long, value_parser = parse_positive_duration, default_value = "5s")]
        duration: Duration,
        /// `streams`: also draw the small messages' latency over time.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// `streams`: write the own-stream case's client trace here
        /// (docs/trace.md); `rudp plot` colours its packets by stream.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
}

/// What `rudp server` and `rudp recv` start from: they read only the
/// first stream, so they let a peer open no other stream and send no
/// datagram (announced as 0, PROTOCOL.md §15.2, §15.6): a peer cannot make
/// them hold what they never read (docs/security.md). `month` also sizes
/// the first stream for requests of a few bytes: 64 KiB messages, and a
/// 256 KiB window that does not grow.
fn served(month: bool) -> rudp::Config {
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

/// What `rudp demo` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMode {
    /// The month service over a bad link: plain UDP, then rudp.
    #[default]
    Months,
    /// Small messages next to a bulk transfer: one stream, own stream at
    /// higher priority, datagrams (PROTOCOL.md §15).
    Streams,
}

/// `host:port`, resolved; the first address wins.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("'{s}' is not a HOST:PORT address ({e})"))?
        .next()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

/// A duration with a unit (`10s`, `500ms`), or a plain number of seconds
/// (`2.5`). Anything else, huge and negative values included, is an error
/// for clap to report (exit 2), never a panic.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("'{s}' must be a positive duration of at most 24h"))?,
        Err(_) => parse_duration(s).map_err(|e| e.to_string())?,
    };
    if d < Duration::from_millis(10) || d > Duration::from_secs(24 * 3600) {
        return Err(format!("'{s}' is outside the range 10ms to 24h"));
    }
    Ok(d)
}

/// The tracing filter used when `RUST_LOG` is not set.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Server { .. } | Command::Proxy { .. } => "rudp=info",
        Command::Client { .. }
        | Command::Demo { .. }
        | Command::Send { .. }
        | Command::Recv { .. }
        | Command::Keygen { .. }
        | Command::Decrypt { .. }
        | Command::Plot { .. } => "rudp=warn",
    }
}

/// Runs a parsed command; returns the process exit status.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Server {
            listen,
            max_connections,
            max_pending_handshakes,
            retry,
            threads,
            identity,
            conn,
            observe,
        } => {
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
                            (threads > 1 && threads <= rudp::MAX_STEERED_SOCKETS)
                                .then_some(i as u8),
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
        Command::Client {
            server,
            timeout,
            trust,
            conn,
            observe,
            months,
        } => {
            let connection = match trust.config(rudp::Config::default(), &conn) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let input = if months.is_empty() {
                Input::Lines {
                    reader: Box::new(tokio::io::BufReader::new(tokio::io::stdin())),
                    prompt: std::io::stdin().is_terminal(),
                }
            } else {
                Input::Args(months)
            };
            let opts = ClientOptions {
                server,
                timeout,
                trace: observe.trace.clone(),
                trace_level: observe.trace_level.into(),
                connection,
            };
            let mut out = tokio::io::stdout();
            let mut err = std::io::stderr();
            let (exit, report) =
                client::run_until(&opts, input, &mut out, &mut err, shutdown_signal()).await;
            match report {
                Some(r) => {
                    // Quiet by default: a one-shot query prints its answers
                    // and nothing else (issue #26 item 9).
                    if observe.verbose {
                        eprintln!("{}", r.summary());
                    }
                    write_report(observe.stats_json.as_deref(), &r)
                        .map_or(ClientExit::Failed as i32, |()| exit as i32)
                }
                None => exit as i32,
            }
        }
        Command::Proxy {
            ctl: Some(ProxyCommand::Ctl { addr, token, what }),
            ..
        } => tokio::task::spawn_blocking(move || run_ctl(addr, token, what))
            .await
            .unwrap_or(1),
        Command::Proxy {
            ctl: None,
            listen,
            upstream,
            impair,
            seed,
            stats_interval,
            stats_json,
            max_clients,
            schedule,
            control,
            control_token,
            pcap,
            pcap_limit,
            rebind,
        } => {
            // Required unless `ctl` is given, which this arm excludes.
            let (Some(listen), Some(upstream)) = (listen, upstream) else {
                eprintln!("error: --listen and --to are required");
                return 2;
            };
            let limits = ProxyLimits {
                max_clients: max_clients as usize,
                schedule: schedule.map(|s| s.0).unwrap_or_default(),
                control,
                control_token,
                pcap: pcap.map(|p| (p, pcap_limit)),
                rebind,
            };
            run_proxy(
                listen,
                upstream,
                impair,
                seed,
                stats_interval,
                stats_json,
                limits,
            )
            .await
        }
        Command::Send {
            file,
            to,
            timeout,
            trust,
            conn,
            observe,
        } => {
            let base = match rudp::Config::builder().idle_timeout(timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: --timeout: {e}");
                    return 2;
                }
            };
            let connection = match trust.config(base, &conn) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let config = EndpointConfig::new(connection);
            let sent = crate::transfer::send::send_file(
                &file,
                to,
                config,
                timeout,
                observe.trace_spec(),
                shutdown_signal(),
            )
            .await;
            match sent {
                Ok(report) => {
                    eprintln!("{}", report.summary("sent", observe.verbose));
                    write_report(observe.stats_json.as_deref(), &report).map_or(1, |()| 0)
                }
                Err(e @ crate::transfer::TransferError::Interrupted { .. }) => {
                    eprintln!("error: {e}");
                    EXIT_INTERRUPTED
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if let crate::transfer::TransferError::Connection(e) = &e {
                        if let Some(hint) = crate::report::hint(e) {
                            eprintln!("{hint}");
                        }
                    }
                    1
                }
            }
        }
        Command::Recv {
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
        } => {
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
        Command::Keygen { file, force } => crate::secure_args::keygen(&file, force),
        Command::Decrypt {
            keylog,
            input,
            output,
        } => match crate::decrypt::decrypt(&keylog, &input, &output) {
            Ok(s) => {
                eprintln!(
                    "decrypted {} of {} sealed version-3 packets ({} packets in all) into {}",
                    s.decrypted,
                    s.sealed,
                    s.packets,
                    output.display()
                );
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Command::Plot { trace, out, conn } => {
            let out = out.unwrap_or_else(|| trace.with_extension("svg"));
            let drawn = crate::plot::read_trace(&trace, conn.as_deref())
                .and_then(|series| crate::plot::draw(&series, &out).map(|()| series));
            match drawn {
                Ok(series) => {
                    eprintln!(
                        "wrote {} (connection {}: {} packets sent, {} lost; at most {} points drawn per series)",
                        out.display(),
                        series.conn,
                        series.sent.len(),
                        series.lost.len(),
                        crate::plot::MAX_POINTS,
                    );
                    if series.skipped > 0 {
                        eprintln!(
                            "warning: skipped {} event(s) with values out of range or not finite",
                            series.skipped
                        );
                    }
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Demo {
            mode: DemoMode::Streams,
            seed,
            duration,
            plot,
            trace,
        } => {
            let mut out = std::io::stdout();
            let demo = crate::demo_streams::StreamsDemo {
                trace,
                ..crate::demo_streams::StreamsDemo::new(seed, duration)
            };
            match crate::demo_streams::run(&demo, plot.as_deref(), &mut out).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Demo { plot: Some(_), .. } | Command::Demo { trace: Some(_), .. } => {
            eprintln!("error: --plot and --trace apply to `rudp demo streams`");
            2
        }
        Command::Demo { seed, .. } => {
            let mut out = std::io::stdout();
            match crate::demo::run(seed, &mut out).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
    }
}

/// What `rudp proxy` holds at most, and how its link changes over time.
struct ProxyLimits {
    max_clients: usize,
    schedule: Vec<crate::proxy::schedule::Change>,
    /// Where to serve the control API, if anywhere.
    control: Option<SocketAddr>,
    /// `--control-token`: the token to require; empty asks for a random one.
    control_token: Option<String>,
    /// `--pcap FILE` and its size limit.
    pcap: Option<(PathBuf, u64)>,
    /// `--rebind EVERY`.
    rebind: Option<Duration>,
}

/// A duration above zero (`--rebind`).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("'{s}' must be longer than zero")),
        Err(e) => Err(e.0),
    }
}

/// `--control ADDR`: the API has no authentication, so only a loopback
/// address is accepted.
fn parse_control_addr(s: &str) -> Result<SocketAddr, String> {
    let addr = parse_addr(s)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "'{s}' is not a loopback address; the control API has no authentication (use 127.0.0.1:PORT or [::1]:PORT)"
        ));
    }
    Ok(addr)
}

/// `rudp proxy ctl ADDR set`'s words as (NAME, VALUE): `NAME=VALUE`,
/// `--NAME=VALUE` or `--NAME VALUE`, mixed as the user likes.
fn ctl_settings(words: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut words = words.iter();
    while let Some(w) = words.next() {
        let pair = match w.strip_prefix("--") {
            Some(flag) => match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = words.next().ok_or(format!("{w} needs a value"))?;
                    (flag.to_string(), v.clone())
                }
            },
            None => {
                let (n, v) = w
                    .split_once('=')
                    .ok_or(format!("'{w}' is not NAME=VALUE or --NAME VALUE"))?;
                (n.to_string(), v.to_string())
            }
        };
        out.push(pair);
    }
    Ok(out)
}

/// `rudp proxy ctl`: one request to a proxy's control API; prints the
/// answer's JSON, or the proxy's error (exit 1).
fn run_ctl(addr: SocketAddr, token: Option<String>, what: CtlCommand) -> i32 {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let base = format!("http://{addr}");
    // The proxy's `--control-token`, if it asked for one.
    let auth = token.map(|t| format!("Bearer {}", t.trim()));
    fn authorized<B>(r: ureq::RequestBuilder<B>, auth: &Option<String>) -> ureq::RequestBuilder<B> {
        match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }
    // `set` and `clear` print what they changed: the settings before.
    let changes = matches!(what, CtlCommand::Set { .. } | CtlCommand::Clear);
    let before = if changes {
        authorized(agent.get(format!("{base}/impairments")), &auth)
            .call()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    } else {
        None
    };
    let sent = match &what {
        CtlCommand::Stats => authorized(agent.get(format!("{base}/stats")), &auth).call(),
        CtlCommand::Get => authorized(agent.get(format!("{base}/impairments")), &auth).call(),
        CtlCommand::Clear => authorized(agent.delete(format!("{base}/impairments")), &auth).call(),
        CtlCommand::Set { settings } => {
            let pairs = match ctl_settings(settings) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let mut body = serde_json::Map::new();
            for (name, value) in pairs {
                body.insert(name, serde_json::Value::String(value));
            }
            authorized(agent.post(format!("{base}/impairments")), &auth)
                .header("content-type", "application/json")
                .send(serde_json::Value::Object(body).to_string())
        }
    };
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the control API at {addr}: {e}");
            return 1;
        }
    };
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        match &before {
            Some(before) => print!("{}", settings_changed(before, &json)),
            None => println!("{}", serde_json::to_string_pretty(&json).unwrap_or(text)),
        }
        0
    } else {
        let reason = json["error"].as_str().map_or(text.clone(), str::to_string);
        eprintln!(
            "error: the proxy refused ({status}): {}",
            rudp_core::text::printable(&reason)
        );
        1
    }
}

/// `rudp proxy ctl set` / `clear`: one line per setting whose value
/// changed, `name: old -> new`, or that nothing did (issue #26 item 9:
/// not all 60 settings after each change; `get` shows them all).
fn settings_changed(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return format!("{after}\n");
    };
    // A two-way name (`delay`) is listed only while both directions
    // agree; its comings and goings show in the one-way names.
    let mut out = String::new();
    for (name, old) in b {
        match a.get(name) {
            Some(new) if new != old => {
                out.push_str(&format!("{name}: {} -> {}\n", shown(old), shown(new)));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push_str("nothing changed\n");
    }
    out
}

/// The changes of a `--schedule` file (one flag value, many changes).
#[derive(Debug, Clone)]
pub struct ScheduleArg(pub Vec<crate::proxy::schedule::Change>);

/// `--schedule FILE`, read and checked before the proxy starts: a bad line
/// exits 2 naming it.
fn parse_schedule(s: &str) -> Result<ScheduleArg, String> {
    crate::proxy::schedule::read(std::path::Path::new(s))
        .map(ScheduleArg)
        .map_err(|e| e.to_string())
}

async fn run_proxy(
    listen: SocketAddr,
    upstream: SocketAddr,
    impair: Box<ImpairArgs>,
    seed: Option<u64>,
    interval: Option<Duration>,
    json: Option<PathBuf>,
    limits: ProxyLimits,
) -> i32 {
    let seed = seed.unwrap_or_else(rand::random);
    let control_addr = limits.control;
    let proxy = match Proxy::start(ProxyConfig {
        listen,
        upstream,
        up: impair.up,
        down: impair.down,
        seed,
        mapping_idle: crate::proxy::MAPPING_IDLE,
        max_clients: limits.max_clients,
        schedule: limits.schedule,
        pcap: limits.pcap.clone(),
        rebind: limits.rebind,
    })
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    eprintln!(
        "rudp proxy: {} -> {upstream}, seed {seed} (replay with --seed {seed})",
        proxy.local_addr()
    );
    let proxy = std::sync::Arc::new(proxy);
    let control = match control_addr {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let shown = listener.local_addr().unwrap_or(addr);
                let token = limits.control_token.as_ref().map(|t| match t.as_str() {
                    "" => hex::encode(rand::random::<[u8; 16]>()),
                    given => given.to_string(),
                });
                match &token {
                    Some(t) => eprintln!(
                        "rudp proxy: control API on http://{shown} (rudp proxy ctl --token {t} {shown} ...)"
                    ),
                    None => eprintln!(
                        "rudp proxy: control API on http://{shown} (rudp proxy ctl {shown} ...)"
                    ),
                }
                let access = crate::proxy::control::Access::new(shown, token.as_deref());
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let task = tokio::spawn(crate::proxy::control::serve(
                    listener,
                    proxy.clone(),
                    access,
                    async move {
                        let _ = stopped.await;
                    },
                ));
                Some((stop, task))
            }
            Err(e) => {
                eprintln!("error: cannot serve the control API on {addr}: {e}");
                return 1;
            }
        },
        None => None,
    };
    let write_json = |s: &crate::proxy::ProxyStats| write_report(json.as_deref(), s).is_ok();
    let mut tick = interval.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Ctrl-C or SIGTERM: final statistics, then exit.
            () = &mut shutdown => break,
            // --stats-interval: statistics so far.
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                let s = proxy.stats();
                print!("{}", format_stats(&s));
                write_json(&s);
            }
        }
    }
    if let Some((stop, task)) = control {
        let _ = stop.send(());
        // Open keep-alive connections are not waited for long.
        if tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .is_err()
        {
            tracing::debug!("control API connections cut at exit");
        }
    }
    let s = match std::sync::Arc::try_unwrap(proxy) {
        Ok(p) => p.stop().await,
        // A control request still holds it: its statistics, then drop.
        Err(p) => p.stats(),
    };
    print!("{}", format_stats(&s));
    if write_json(&s) {
        0
    } else {
        1
    }
}

/// Writes `--stats-json`, if asked; a failure is reported and fails the run.
fn write_report(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> Result<(), ()> {
    let Some(path) = path else { return Ok(()) };
    crate::report::write_json_atomic(path, value).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
    })
}

/// How `rudp recv` takes senders.
struct RecvServe {
    keep_open: bool,
    max_transfers: usize,
}

/// Exit status of a command interrupted by Ctrl-C or SIGTERM (128 + SIGINT,
/// as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

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

/// A size: bytes, or a number with a unit (`500MB`, `2GiB`, `1.5 TB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    crate::units::parse_size(s).map_err(|e| e.0)
}

/// Starts `--trace`, if asked; false (after a message) if the file fails.
fn start_trace(endpoint: &Endpoint, spec: Option<(&std::path::Path, rudp::TraceLevel)>) -> bool {
    let Some((path, level)) = spec else {
        return true;
    };
    match endpoint.trace_to_level(path, level) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot write the trace {}: {e}", path.display());
            false
        }
    }
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

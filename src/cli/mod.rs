//! The `rudp` command line (docs/cli.md). `main.rs` only parses and calls
//! [`run`]; everything here is library code the tests can reach. Each
//! command's arguments and its `run` live in its own module, as
//! mini-redis keeps its commands; [`args`] holds what they share.

pub mod args;
pub mod client;
pub mod decrypt;
pub mod demo;
pub mod keygen;
pub mod plot;
pub mod proxy;
pub mod recv;
pub mod send;
pub mod server;

pub use args::{
    parse_addr, parse_size, parse_timeout, shutdown_signal, ConnArgs, ObserveArgs, TraceLevelArg,
};
pub use server::{shared_port_sockets, RetryMode};

use clap::{Parser, Subcommand};

/// The default address of the month service.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8091";
/// Where `rudp recv` listens and `rudp send` sends by default.
pub const DEFAULT_RECV_ADDR: &str = "127.0.0.1:9100";
/// Exit status of a command interrupted by Ctrl-C or SIGTERM (128 + SIGINT,
/// as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

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

/// The commands; each one's arguments and `run` are in its module.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the month service: answer a number from 1 to 12 with that month's name.
    Server(server::ServerArgs),
    /// Ask the month service: one request per MONTH argument, or per line of standard input.
    Client(client::ClientArgs),
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
    Proxy(proxy::ProxyArgs),
    /// Send a file to `rudp recv`; exit 0 once the receiver has verified it.
    Send(send::SendArgs),
    /// Receive a file from `rudp send`, verify its SHA-256, then put it in place.
    Recv(recv::RecvArgs),
    /// Turn a capture of `rudp proxy --pcap` into one whose version-3
    /// packets are in clear, with the keys `RUDP_KEYLOG` wrote; the
    /// proxy's comments are kept (docs/wireshark.md).
    Decrypt(decrypt::DecryptArgs),
    /// Make a static key pair: the private key into FILE (base64, mode
    /// 0600), the public key on standard output (base64), as `wg genkey`
    /// and `wg pubkey` do.
    Keygen(keygen::KeygenArgs),
    /// Draw a trace (from --trace) as an SVG: packets sent, acknowledged and
    /// lost over time; congestion window and bytes in flight; RTT.
    Plot(plot::PlotArgs),
    /// The month service over a lossy, reordering, duplicating link, in one
    /// process; `rudp demo streams` shows streams, priorities and datagrams.
    Demo(demo::DemoArgs),
}

/// Runs a parsed command; returns the process exit status.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Server(a) => a.run().await,
        Command::Client(a) => a.run().await,
        Command::Proxy(a) => a.run().await,
        Command::Send(a) => a.run().await,
        Command::Recv(a) => a.run().await,
        Command::Decrypt(a) => a.run(),
        Command::Keygen(a) => a.run(),
        Command::Plot(a) => a.run(),
        Command::Demo(a) => a.run().await,
    }
}

/// The tracing filter used when `RUST_LOG` is not set.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Server(_) | Command::Proxy(_) => "rudp=info",
        Command::Client(_)
        | Command::Demo(_)
        | Command::Send(_)
        | Command::Recv(_)
        | Command::Keygen(_)
        | Command::Decrypt(_)
        | Command::Plot(_) => "rudp=warn",
    }
}

//! `rudp send`: send a file to `rudp recv`.

use super::args::{parse_timeout, shutdown_signal, write_report, ConnArgs, ObserveArgs};
use super::{parse_addr, DEFAULT_RECV_ADDR, EXIT_INTERRUPTED};
use crate::secure_args::TrustArgs;
use rudp_core::endpoint::EndpointConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `rudp send`'s flags.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send (streamed: any size works).
    pub file: PathBuf,
    /// Address of the receiver.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_RECV_ADDR, value_parser = parse_addr)]
    pub to: SocketAddr,
    /// Give up after this long without progress (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
    pub timeout: Duration,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

impl SendArgs {
    /// Runs the command; returns the process exit status.
    pub async fn run(self) -> i32 {
        let SendArgs {
            file,
            to,
            timeout,
            trust,
            conn,
            observe,
        } = self;
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
}

//! `rudp client`: ask the month service.

use super::args::{parse_timeout, shutdown_signal, write_report, ConnArgs, ObserveArgs};
use super::{parse_addr, DEFAULT_ADDR};
use crate::month::client::{self, ClientExit, ClientOptions, Input};
use crate::secure_args::TrustArgs;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

/// `rudp client`'s flags.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Address of the server (`--server` is an older name for it).
    #[arg(long = "to", alias = "server", value_name = "ADDR", default_value = DEFAULT_ADDR, value_parser = parse_addr)]
    pub server: SocketAddr,
    /// Give up after this long without progress from the server (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout, allow_hyphen_values = true)]
    pub timeout: Duration,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Requests to send; with none, each line of standard input is one.
    /// Options may come before or after them; after `--` everything is
    /// a request, so `rudp client -- -3` sends "-3".
    #[arg(value_name = "MONTH")]
    pub months: Vec<String>,
}

impl ClientArgs {
    /// Runs the command; returns the process exit status.
    pub async fn run(self) -> i32 {
        let ClientArgs {
            server,
            timeout,
            trust,
            conn,
            observe,
            months,
        } = self;
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
}

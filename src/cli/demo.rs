//! `rudp demo`: the month service, or streams, over a bad link in one
//! process.

use super::args::parse_positive_duration;
use std::path::PathBuf;
use std::time::Duration;

/// `rudp demo`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// What to show: `months` (the month service, plain UDP against
    /// rudp) or `streams` (small messages next to a bulk transfer on
    /// one connection: one stream, own stream at higher priority,
    /// datagrams).
    #[arg(value_enum, default_value_t = DemoMode::Months)]
    pub mode: DemoMode,
    /// Seed for the link's random decisions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `streams`: how long each case runs.
    #[arg(long, value_parser = parse_positive_duration, default_value = "5s")]
    pub duration: Duration,
    /// `streams`: also draw the small messages' latency over time.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// `streams`: write the own-stream case's client trace here
    /// (docs/trace.md); `rudp plot` colours its packets by stream.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
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

impl DemoArgs {
    /// Runs the demo; returns the process exit status.
    pub async fn run(self) -> i32 {
        let DemoArgs {
            mode,
            seed,
            duration,
            plot,
            trace,
        } = self;
        if mode == DemoMode::Months {
            if plot.is_some() || trace.is_some() {
                eprintln!("error: --plot and --trace apply to `rudp demo streams`");
                return 2;
            }
            let mut out = std::io::stdout();
            return match crate::demo::run(seed, &mut out).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            };
        }
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
}

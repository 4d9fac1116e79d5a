//! What several commands share: connection and observation flags, the
//! parsers of addresses, durations and sizes, `--stats-json` and
//! `--trace`, and the shutdown signal.

use crate::units::parse_duration;
use rudp::Endpoint;
use rudp_core::congestion::Algorithm;
use rudp_core::psk::Psk;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

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

/// A size: bytes, or a number with a unit (`500MB`, `2GiB`, `1.5 TB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    crate::units::parse_size(s).map_err(|e| e.0)
}

/// A duration above zero (`--rebind`).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("'{s}' must be longer than zero")),
        Err(e) => Err(e.0),
    }
}

/// Writes `--stats-json`, if asked; a failure is reported and fails the run.
pub(super) fn write_report(
    path: Option<&std::path::Path>,
    value: &impl serde::Serialize,
) -> Result<(), ()> {
    let Some(path) = path else { return Ok(()) };
    crate::report::write_json_atomic(path, value).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
    })
}

/// Starts `--trace`, if asked; false (after a message) if the file fails.
pub(super) fn start_trace(
    endpoint: &Endpoint,
    spec: Option<(&std::path::Path, rudp::TraceLevel)>,
) -> bool {
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

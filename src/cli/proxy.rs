//! `rudp proxy`: relay UDP and impair it; `rudp proxy ctl`: change a
//! running proxy through its control API.

use super::args::{
    parse_positive_duration, parse_size, parse_timeout, shutdown_signal, write_report,
};
use super::parse_addr;
use crate::proxy::{format_stats, ImpairArgs, Proxy, ProxyConfig};
use clap::Subcommand;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `rudp proxy`'s flags, or `rudp proxy ctl`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Talk to a running proxy instead (`rudp proxy ctl ADDR ...`).
    #[command(subcommand)]
    pub ctl: Option<ProxyCommand>,
    /// Address clients send to.
    #[arg(long, value_name = "ADDR", required = true, value_parser = parse_addr)]
    pub listen: Option<SocketAddr>,
    /// Address of the real server (`--upstream` is an older name for it).
    #[arg(long = "to", alias = "upstream", value_name = "ADDR", required = true, value_parser = parse_addr)]
    pub upstream: Option<SocketAddr>,
    #[command(flatten)]
    pub impair: Box<ImpairArgs>,
    /// Seed for every random decision; without it one is chosen and printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also print the statistics this often (e.g. 5s).
    #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true)]
    pub stats_interval: Option<Duration>,
    /// Write the statistics as JSON to FILE (on exit, and at every interval).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Client addresses relayed at once (each needs a socket); a new
    /// client beyond it replaces the one idle longest.
    #[arg(long, value_name = "N", default_value_t = crate::proxy::MAX_CLIENTS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,
    /// Change the link over time: one change a line, `TIME NAME=VALUE ...`
    /// (names as the impairment flags, without the dashes) or `TIME clear`,
    /// times from the start, e.g. `10s loss=20%` (docs/proxy.md).
    #[arg(long, value_name = "FILE", value_parser = parse_schedule)]
    pub schedule: Option<ScheduleArg>,
    /// Serve the HTTP/JSON control API on this loopback address, to change
    /// the link while it runs (see `rudp proxy ctl`, docs/proxy.md).
    #[arg(long, value_name = "ADDR", value_parser = parse_control_addr)]
    pub control: Option<SocketAddr>,
    /// Require this token on every control request (`Authorization:
    /// Bearer TOKEN`, `rudp proxy ctl --token`); without a value, a
    /// random one is made and printed.
    #[arg(long, value_name = "TOKEN", num_args = 0..=1, default_missing_value = "", requires = "control")]
    pub control_token: Option<String>,
    /// Write every datagram received, both ways, with what the proxy did to
    /// it as a packet comment, to FILE in pcapng (for Wireshark).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Stop capturing once the pcap file would pass this size.
    #[arg(long, value_name = "SIZE", default_value = "100MB", value_parser = parse_size, requires = "pcap")]
    pub pcap_limit: u64,
    /// Move each client's mapping to a new upstream source port about this
    /// often, as a NAT rebinding does (e.g. 30s, 500ms): the server sees
    /// the client's address change.
    #[arg(long, value_name = "EVERY", value_parser = parse_positive_duration)]
    pub rebind: Option<Duration>,
}

impl ProxyArgs {
    /// Runs the proxy, or `ctl` against a running one; returns the
    /// process exit status.
    pub async fn run(mut self) -> i32 {
        if let Some(ProxyCommand::Ctl { addr, token, what }) = self.ctl.take() {
            return tokio::task::spawn_blocking(move || run_ctl(addr, token, what))
                .await
                .unwrap_or(1);
        }
        // Required unless `ctl` is given, which returned above.
        let (Some(listen), Some(upstream)) = (self.listen, self.upstream) else {
            eprintln!("error: --listen and --to are required");
            return 2;
        };
        run_proxy(listen, upstream, self).await
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

/// Relays from `listen` to `upstream` as `args` ask, until Ctrl-C or
/// SIGTERM; returns the process exit status.
async fn run_proxy(listen: SocketAddr, upstream: SocketAddr, args: ProxyArgs) -> i32 {
    let seed = args.seed.unwrap_or_else(rand::random);
    let (impair, interval, json) = (args.impair, args.stats_interval, args.stats_json);
    let control_addr = args.control;
    let proxy = match Proxy::start(ProxyConfig {
        listen,
        upstream,
        up: impair.up,
        down: impair.down,
        seed,
        mapping_idle: crate::proxy::MAPPING_IDLE,
        max_clients: args.max_clients as usize,
        schedule: args.schedule.map(|s| s.0).unwrap_or_default(),
        pcap: args.pcap.map(|p| (p, args.pcap_limit)),
        rebind: args.rebind,
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
                let token = args.control_token.as_ref().map(|t| match t.as_str() {
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

//! The links a run goes over: direct loopback, `rudp proxy` (a separate
//! process) for loss, delay and bursts on UDP, and nftables random drop for
//! TCP, which cannot pass through a UDP proxy.
//!
//! Why not nftables for the UDP transports too: a GSO send (rudp and quinn
//! use GSO) crosses the loopback output hook as one packet of up to 64
//! datagrams, so nftables would drop whole batches: bursts, not random loss.

use crate::peers::{BoxError, Peer};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    Clean,
    /// Random loss, each direction.
    Loss(f64),
    /// Round-trip delay added by the proxy (half each way).
    Rtt(Duration),
    /// Bursty loss: average share, mean burst length in datagrams.
    Burst(f64, f64),
    /// `rudp proxy` with no impairment and no MTU limit (`--mtu none`): a
    /// relay that is a CPU-bound bottleneck with ordinary socket buffers,
    /// where the loss a sender sees is the loss it causes (issue #27).
    Relay,
    /// KCP's latency test link: 5% loss each way, one-way delay uniform in
    /// 30..62 ms, delivered in order.
    Kcp,
}

impl Link {
    /// Short name for `--links`.
    pub fn key(&self) -> &'static str {
        match *self {
            Link::Clean => "clean",
            Link::Relay => "relay",
            Link::Loss(p) if p <= 0.01 => "loss1",
            Link::Loss(p) if p <= 0.05 => "loss5",
            Link::Loss(_) => "loss10",
            Link::Rtt(d) if d.as_millis() <= 10 => "rtt10",
            Link::Rtt(_) => "rtt50",
            Link::Burst(..) => "burst",
            Link::Kcp => "kcp",
        }
    }

    pub fn name(&self) -> String {
        match self {
            Link::Clean => "clean".into(),
            Link::Relay => "relay (proxy, no impairment)".into(),
            Link::Loss(p) => format!("{}% loss", p * 100.0),
            Link::Rtt(d) => format!("{} ms RTT", d.as_millis()),
            Link::Burst(p, len) => format!("{}% burst loss (mean {len})", p * 100.0),
            Link::Kcp => "KCP test link".into(),
        }
    }

    fn proxy_args(&self) -> Vec<String> {
        let pct = |p: f64| format!("{}%", p * 100.0);
        match *self {
            Link::Clean => vec![],
            Link::Relay => vec!["--mtu".into(), "none".into()],
            Link::Loss(p) => vec!["--loss".into(), pct(p)],
            Link::Rtt(d) => vec!["--delay".into(), format!("{}us", d.as_micros() / 2)],
            Link::Burst(p, len) => vec![
                "--loss".into(),
                pct(p),
                "--loss-burst".into(),
                len.to_string(),
            ],
            Link::Kcp => [
                "--loss",
                "5%",
                "--delay",
                "30ms",
                "--jitter",
                "32ms",
                "--jitter-order",
                "keep",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// What a client connects to, and what must stay alive meanwhile.
pub struct Path {
    pub addr: SocketAddr,
    _proxy: Option<tokio::process::Child>,
    _nft: Option<NftDrop>,
    pub via: &'static str,
}

/// Sets up `link` in front of the server at `server`, or says why `peer`
/// cannot use it.
pub async fn path(link: Link, peer: Peer, server: SocketAddr, seed: u64) -> Result<Path, String> {
    match (link, peer.is_udp()) {
        (Link::Clean, _) => Ok(Path {
            addr: server,
            _proxy: None,
            _nft: None,
            via: "loopback",
        }),
        (Link::Loss(p), false) => {
            let nft = NftDrop::new(server.port(), p)?;
            Ok(Path {
                addr: server,
                _proxy: None,
                _nft: Some(nft),
                via: "nftables",
            })
        }
        (_, false) => Err("TCP cannot pass through the UDP proxy".into()),
        (link, true) => {
            let (addr, child) = proxy(server, &link.proxy_args(), seed)
                .await
                .map_err(|e| format!("cannot start the proxy: {e}"))?;
            Ok(Path {
                addr,
                _proxy: Some(child),
                _nft: None,
                via: "rudp proxy",
            })
        }
    }
}

async fn proxy(
    upstream: SocketAddr,
    args: &[String],
    seed: u64,
) -> Result<(SocketAddr, tokio::process::Child), BoxError> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rudp"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &upstream.to_string(),
        ])
        .args(["--seed", &seed.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    // The proxy announces "rudp proxy: 127.0.0.1:PORT -> upstream, seed N".
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await?.ok_or("the proxy exited")?;
            if let Some(rest) = line.strip_prefix("rudp proxy: ") {
                let addr: SocketAddr = rest.split(' ').next().unwrap_or("").parse()?;
                return Ok::<_, BoxError>(addr);
            }
        }
    })
    .await??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((addr, child))
}

/// Whether nftables random drop can be used: root and the `nft` command.
pub fn nft_available() -> bool {
    std::process::Command::new("nft")
        .args(["list", "tables"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An nftables table dropping a random share of the TCP segments to and from
/// one port on loopback; removed on drop.
pub struct NftDrop {
    table: String,
}

impl NftDrop {
    pub fn new(port: u16, share: f64) -> Result<Self, String> {
        if !nft_available() {
            return Err("nftables is not available (needs root and the nft command)".into());
        }
        let table = format!("rudp_bench_{}", std::process::id());
        let per_10k = (share * 10_000.0).round() as u32;
        let script = format!(
            "table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
             tcp dport {port} numgen random mod 10000 < {per_10k} drop\n  \
             tcp sport {port} numgen random mod 10000 < {per_10k} drop\n }}\n}}\n"
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        use std::io::Write;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(script.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "nft failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Self { table })
    }
}

impl Drop for NftDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

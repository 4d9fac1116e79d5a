//! Helpers shared by the end-to-end tests: servers, proxies and the real
//! binary, all on loopback with ephemeral ports and bounded waits.
#![allow(dead_code)] // Each test file uses its own subset.

use rudp::Endpoint;
use rudp_cli::proxy::{Proxy, ProxyConfig};
use rudp_core::endpoint::EndpointConfig;
use rudp_core::impair::ImpairConfig;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// The packet forgers, shared with rudp-core's own tests.
#[path = "../../crates/rudp-core/tests/common/forge.rs"]
mod forge;
#[allow(unused_imports)] // Only some test files forge packets.
pub use forge::*;

/// A month server in this process on an ephemeral loopback port.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<rudp_cli::month::server::ServerReport>,
}

/// The one server key of a test process, in-process servers and the
/// binary's alike, so that a port reused by another test's server presents
/// the key known_hosts recorded for it.
pub fn test_identity() -> rudp::Keypair {
    rudp::Keypair::from_private([7; 32])
}

/// What the in-process servers of the tests run: version 3 with
/// [`test_identity`], as `rudp server` does by default, also serving clear
/// clients (the tests' in-process clients are mostly clear).
pub fn server_config() -> EndpointConfig {
    let conn = rudp::Config::builder()
        .version(3)
        .security(rudp::Security {
            identity: Some(test_identity()),
            allow_insecure: true,
            ..rudp::Security::default()
        })
        .build()
        .expect("valid");
    EndpointConfig::new(conn)
}

impl Server {
    /// The month service in process, as `rudp server` runs by default
    /// (version 3 with [`test_identity`]), also serving clear clients.
    pub async fn start() -> Server {
        let endpoint = Endpoint::server("127.0.0.1:0".parse().unwrap(), server_config())
            .expect("bind a loopback port");
        let addr = endpoint.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rudp_cli::month::server::serve(endpoint, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the server; returns what it did.
    pub async fn stop(mut self) -> rudp_cli::month::server::ServerReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task did not panic")
    }
}

/// A proxy in this process in front of `upstream`.
pub async fn proxy(upstream: SocketAddr, up: ImpairConfig, down: ImpairConfig, seed: u64) -> Proxy {
    rebinding_proxy(upstream, up, down, seed, None).await
}

/// [`proxy`] that also rebinds each client's upstream port every `rebind`,
/// as a NAT does (`rudp proxy --rebind`).
pub async fn rebinding_proxy(
    upstream: SocketAddr,
    up: ImpairConfig,
    down: ImpairConfig,
    seed: u64,
    rebind: Option<Duration>,
) -> Proxy {
    Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        up,
        down,
        seed,
        mapping_idle: rudp_cli::proxy::MAPPING_IDLE,
        max_clients: rudp_cli::proxy::MAX_CLIENTS,
        schedule: Vec::new(),
        pcap: None,
        rebind,
    })
    .await
    .expect("start the proxy")
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The real `rudp` binary, with its key and known_hosts directories in a
/// temporary directory of this test process (kept while it runs): tests
/// never touch the user's keys, and servers of one test binary share one
/// key, so the known_hosts entries of ports reused by later tests agree.
pub fn rudp_command() -> tokio::process::Command {
    static DIRS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIRS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The binary's default key is the in-process servers' key too.
        let keys = dir.path().join("data/rudp");
        std::fs::create_dir_all(&keys).expect("the key directory");
        rudp_cli::keys::write_private(&keys.join("key"), &test_identity(), false)
            .expect("the test key");
        dir
    });
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rudp"));
    c.env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"));
    c
}

/// Runs the real `rudp` binary with `args` and `stdin`, killing it after
/// `limit`.
pub async fn rudp(args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = rudp_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rudp");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        // Dropping closes standard input.
    });
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("rudp {args:?} did not finish within {limit:?}"))
        .expect("wait for rudp");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback address where a socket is bound and never answers: a peer
/// that is not there. The socket is returned so that the test holds the port
/// for as long as it needs it; a port bound and released could be taken at
/// once by another test running in parallel (it happened: a `send` meant for
/// nobody reached another test's `recv`).
pub fn silent_peer() -> (std::net::UdpSocket, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    let addr = socket.local_addr().expect("a bound socket has an address");
    (socket, addr)
}

/// A child `rudp` process that listens on a port the kernel chose for it
/// (`--listen 127.0.0.1:0`), read back from the address it logs. Handing a
/// child a port the test reserved and released would race with every other
/// test binding ephemeral ports at the same time.
pub struct Listening {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// The public key a version-3 server printed at start.
    pub key: Option<rudp::PublicKey>,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<String>,
}

impl Listening {
    /// Runs the binary with `args`, which must listen on port 0, and waits
    /// (at most 30 s) for the line that names the address it got:
    /// `listening on ADDR` or `listen=ADDR`.
    pub async fn spawn(args: &[&str]) -> Listening {
        Self::spawn_with_env(args, &[]).await
    }

    /// [`Listening::spawn`] with environment variables set for the child.
    pub async fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Listening {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
        let mut child = rudp_command()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn rudp");
        let mut out = child.stdout.take().expect("stdout is piped");
        let stdout = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf).await;
            buf
        });
        let mut err = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let mut seen = String::new();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let start = seen.len();
                match err.read_line(&mut seen).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {
                        if let Some(addr) = logged_address(&seen[start..]) {
                            return Some(addr);
                        }
                    }
                }
            }
        })
        .await;
        let Ok(Some(addr)) = found else {
            panic!("rudp {args:?} never said where it listens; it wrote:\n{seen}");
        };
        // A version-3 server names its public key before its address.
        let key = seen.lines().find_map(|l| {
            let (_, rest) = l.split_once("public key ")?;
            rudp_cli::keys::parse_public(rest.split_whitespace().next()?).ok()
        });
        let stderr = tokio::spawn(async move {
            let _ = err.read_to_string(&mut seen).await;
            seen
        });
        Listening {
            child,
            addr,
            key,
            stdout,
            stderr,
        }
    }

    /// Settings for an in-process client of this server: version 3 with
    /// the key the server printed pinned, or the clear defaults if it
    /// printed none.
    pub fn client_config(&self) -> rudp::Config {
        match self.key {
            Some(key) => rudp::Config::builder()
                .version(3)
                .security(rudp::Security {
                    verifier: Some(std::sync::Arc::new(rudp::PinnedKey(key))),
                    ..rudp::Security::default()
                })
                .build()
                .expect("a valid version-3 client config"),
            None => rudp::Config::default(),
        }
    }

    /// Waits for the child to exit: its status and everything it wrote.
    pub async fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        let status = self.child.wait().await?;
        let stdout = self.stdout.await.unwrap_or_default();
        let stderr = self.stderr.await.unwrap_or_default().into_bytes();
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// `rudp decrypt --keylog KEYLOG CAPTURE OUT`, as a user runs it.
pub async fn decrypt(
    keylog: &std::path::Path,
    capture: &std::path::Path,
    out: &std::path::Path,
) -> Output {
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_string();
    let (keylog, capture, out) = (path(keylog), path(capture), path(out));
    rudp(
        &["decrypt", "--keylog", &keylog, &capture, &out],
        b"",
        Duration::from_secs(30),
    )
    .await
}

/// `rudp proxy` on a port of its own in front of `upstream`, with `args`.
pub async fn spawn_proxy(upstream: SocketAddr, args: &[&str]) -> Listening {
    let upstream = upstream.to_string();
    let mut all = vec!["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream];
    all.extend_from_slice(args);
    Listening::spawn(&all).await
}

/// The address in a line such as `rudp recv: listening on 127.0.0.1:4433`
/// or `... month service ready listen=127.0.0.1:4433`.
fn logged_address(line: &str) -> Option<SocketAddr> {
    ["listening on ", "listen="].iter().find_map(|marker| {
        let rest = &line[line.find(marker)? + marker.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub const MONTHS: [&str; 12] = rudp_cli::month::MONTHS;

/// An echo server in this process: every message comes back, in order.
pub async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let endpoint = Endpoint::server("127.0.0.1:0".parse().unwrap(), EndpointConfig::default())
        .expect("bind a loopback port");
    let addr = endpoint.local_addr();
    let task = tokio::spawn(async move {
        while let Some(conn) = endpoint.accept().await {
            tokio::spawn(async move {
                while let Ok(Some(m)) = conn.recv().await {
                    if conn.send(m).await.is_err() {
                        return;
                    }
                }
                let _ = conn.close().await;
            });
        }
    });
    (addr, task)
}

/// Sends `count` messages of up to `max_len` bytes (seeded contents) to an
/// echo server at `addr` and checks every echo, in order.
pub async fn echo_exchange(addr: SocketAddr, count: usize, max_len: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let messages: Vec<bytes::Bytes> = (0..count)
        .map(|_| {
            let len = rng.gen_range(0..=max_len);
            bytes::Bytes::from((0..len).map(|_| rng.gen::<u8>()).collect::<Vec<u8>>())
        })
        .collect();
    let endpoint = Endpoint::client(addr, EndpointConfig::default()).unwrap();
    let conn = endpoint
        .connect(addr)
        .await
        .expect("connect through the link");
    let sender = {
        let conn = conn.clone();
        let messages = messages.clone();
        tokio::spawn(async move {
            for m in messages {
                conn.send(m).await.expect("send");
            }
        })
    };
    for (i, want) in messages.iter().enumerate() {
        let got = conn.recv().await.expect("recv").expect("an echo");
        assert!(
            got == *want,
            "echo {i} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
    sender.await.unwrap();
    conn.close().await.expect("graceful close");
}

/// Runs `rudp client --server server` and asks months one at a time,
/// `pause` apart, `requests` in all (cycling 1 to 12): each answer must be
/// the right month, read before the next request is written. Returns the
/// client's exit status once its standard input is closed.
pub async fn ask_one_by_one(server: SocketAddr, requests: usize, pause: Duration) -> Option<i32> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = rudp_command()
        .args(["client", "--server", &server.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rudp client");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    for i in 0..requests {
        let month = i % 12 + 1;
        stdin
            .write_all(format!("{month}\n").as_bytes())
            .await
            .expect("write a request");
        let answer = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer to request {i} within 20 s"))
            .expect("read an answer");
        let Some(answer) = answer else {
            // Say why: the client's own words.
            let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output()).await;
            let why = match out {
                Ok(Ok(o)) => format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr)),
                other => format!("{other:?}"),
            };
            panic!("the client ended before answering request {i}: {why}");
        };
        assert_eq!(answer, MONTHS[month - 1], "request {i}");
        tokio::time::sleep(pause).await;
    }
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the client exits within 20 s of its input closing")
        .expect("wait for the client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.code()
}

/// A month session in version 3 through `rudp proxy --pcap`, the server
/// writing its key log (`RUDP_KEYLOG`): asks for `months`, checks the
/// answers `expect`, stops the proxy so that the capture is complete, and
/// returns (key log, capture), both in `dir`.
pub async fn keylogged_capture(
    dir: &std::path::Path,
    months: &[&str],
    expect: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let keylog = dir.join("keys.log");
    let capture = dir.join("sealed.pcapng");
    let server = Listening::spawn_with_env(
        &["server", "--listen", "127.0.0.1:0", "--threads", "1"],
        &[("RUDP_KEYLOG", keylog.to_str().expect("a UTF-8 path"))],
    )
    .await;
    let proxy = spawn_proxy(
        server.addr,
        &["--pcap", capture.to_str().expect("a UTF-8 path")],
    )
    .await;
    let listen = proxy.addr.to_string();
    let mut args = vec!["client", "--server", &listen];
    args.extend_from_slice(months);
    let out = rudp(&args, b"", Duration::from_secs(30)).await;
    assert_eq!(out.stdout, expect, "{out:?}");
    let pid = proxy.child.id().expect("the proxy runs").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill the proxy");
    let _ = proxy.wait_with_output().await;
    (keylog, capture)
}

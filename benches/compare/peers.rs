//! The transports under test, each as a server and two client workloads:
//! bulk (send N bytes, wait for a one-byte receipt) and echo (request and
//! answer of a few bytes, timed one by one).
//!
//! rudp is message-oriented; the others carry a byte stream with a small
//! header: `B` + u64 length for bulk, `E` for an echo session.

use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Write and message size for bulk transfers.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Peer {
    /// rudp as the command-line tools run it: version 3, authenticated
    /// and encrypted (PROTOCOL.md §16), with a pinned server key.
    Rudp,
    /// rudp in clear (version 2, `--insecure`), side by side with the
    /// encrypted one: what encryption costs.
    RudpClear,
    Quinn,
    Kcp,
    Tcp,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Rudp => "rudp",
            Peer::RudpClear => "rudp-clear",
            Peer::Quinn => "quinn",
            Peer::Kcp => "tokio_kcp",
            Peer::Tcp => "TCP",
        }
    }

    /// Whether it runs over UDP (and so through the proxy).
    pub fn is_udp(self) -> bool {
        self != Peer::Tcp
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The congestion controller rudp runs with (`--congestion`), default bbr.
pub static RUDP_CONGESTION: std::sync::OnceLock<rudp_core::congestion::Algorithm> =
    std::sync::OnceLock::new();

/// rudp's largest datagram (`--datagram-size`): the most path MTU discovery
/// searches up to; default the configuration's (65507).
pub static RUDP_DATAGRAM: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The packet cipher both ends of [`Peer::Rudp`] use (`--packet-cipher`,
/// PROTOCOL.md §16.5); default the library's negotiation.
pub static RUDP_CIPHER: std::sync::OnceLock<rudp::PacketCipher> = std::sync::OnceLock::new();

/// Which end a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// rudp's endpoint configuration: the defaults, with `--congestion` and
/// `--datagram-size`; for [`Peer::Rudp`] version 3 with a fixed server key,
/// pinned by the client, and `--packet-cipher`; for [`Peer::RudpClear`] the
/// library's clear default.
pub fn rudp_config(peer: Peer, side: Side) -> rudp_core::endpoint::EndpointConfig {
    let defaults = rudp::Config::default();
    let mut b = defaults
        .to_builder()
        .congestion(Arc::new(RUDP_CONGESTION.get().copied().unwrap_or_default()))
        .max_datagram_size(
            RUDP_DATAGRAM
                .get()
                .copied()
                .unwrap_or(defaults.max_datagram_size()),
        );
    if peer == Peer::Rudp {
        let key = rudp::Keypair::from_private([0x5e; 32]);
        let ciphers = RUDP_CIPHER
            .get()
            .map_or_else(rudp::PacketCipher::preferred, |&c| vec![c]);
        let security = match side {
            Side::Server => rudp::Security {
                identity: Some(key),
                packet_ciphers: ciphers,
                ..rudp::Security::default()
            },
            Side::Client => rudp::Security {
                verifier: Some(Arc::new(rudp::PinnedKey(key.public()))),
                packet_ciphers: ciphers,
                ..rudp::Security::default()
            },
        };
        b = b.version(3).security(security);
    }
    rudp_core::endpoint::EndpointConfig::new(b.build().expect("valid settings"))
}

/// A running server; dropping it stops it.
pub struct Server {
    pub addr: SocketAddr,
    _task: AbortOnDrop,
    _quinn: Option<quinn::Endpoint>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Servers run on a runtime of their own, one worker thread, and clients
/// on the main runtime, also one worker: like two processes on two cores.
/// (In one shared runtime, tokio keeps tasks that wake each other on one
/// worker, and every transport would be measured on one core.)
pub fn server_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("server")
            .enable_all()
            .build()
            .expect("server runtime")
    })
}

pub async fn server(peer: Peer) -> Result<Server, BoxError> {
    server_runtime().spawn(start_server(peer)).await?
}

async fn start_server(peer: Peer) -> Result<Server, BoxError> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(match peer {
        Peer::Rudp | Peer::RudpClear => {
            let ep = rudp::Endpoint::server(any, rudp_config(peer, Side::Server))?;
            let addr = ep.local_addr();
            let task = tokio::spawn(async move {
                while let Some(conn) = ep.accept().await {
                    tokio::spawn(serve_rudp(conn));
                }
            });
            Server {
                addr,
                _task: AbortOnDrop(task),
                _quinn: None,
            }
        }
        Peer::Quinn => {
            let (server_config, _) = quinn_configs()?;
            let ep = quinn::Endpoint::server(server_config, any)?;
            let addr = ep.local_addr()?;
            let accept = ep.clone();
            let task = tokio::spawn(async move {
                while let Some(incoming) = accept.accept().await {
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.await else { return };
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            tokio::spawn(serve_stream(recv, send));
                        }
                    });
                }
            });
            Server {
                addr,
                _task: AbortOnDrop(task),
                _quinn: Some(ep),
            }
        }
        Peer::Kcp => {
            let mut listener = tokio_kcp::KcpListener::bind(kcp_config(), any).await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (r, w) = tokio::io::split(stream);
                    tokio::spawn(serve_stream(r, w));
                }
            });
            Server {
                addr,
                _task: AbortOnDrop(task),
                _quinn: None,
            }
        }
        Peer::Tcp => {
            let listener = tokio::net::TcpListener::bind(any).await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let (r, w) = stream.into_split();
                    tokio::spawn(serve_stream(r, w));
                }
            });
            Server {
                addr,
                _task: AbortOnDrop(task),
                _quinn: None,
            }
        }
    })
}

/// KCP at its fastest settings ("turbo": no delay, 10 ms interval, fast
/// resend after 2 duplicate ACKs, no congestion control) with large windows.
pub fn kcp_config() -> tokio_kcp::KcpConfig {
    tokio_kcp::KcpConfig {
        nodelay: tokio_kcp::KcpNoDelayConfig::fastest(),
        wnd_size: (1024, 1024),
        stream: true,
        flush_write: true,
        flush_acks_input: true,
        ..Default::default()
    }
}

/// A self-signed certificate for "localhost", trusted by the client.
fn quinn_configs() -> Result<(quinn::ServerConfig, quinn::ClientConfig), BoxError> {
    use std::sync::OnceLock;
    static CONFIGS: OnceLock<(quinn::ServerConfig, quinn::ClientConfig)> = OnceLock::new();
    if let Some(c) = CONFIGS.get() {
        return Ok(c.clone());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let server = quinn::ServerConfig::with_single_cert(vec![der.clone()], key)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der)?;
    let client = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    let _ = CONFIGS.set((server.clone(), client.clone()));
    Ok((server, client))
}

async fn serve_rudp(conn: rudp::Connection) {
    let mut bulk_left: Option<u64> = None;
    while let Ok(Some(m)) = conn.recv().await {
        let reply = match bulk_left {
            Some(left) => {
                let left = left.saturating_sub(m.len() as u64);
                bulk_left = Some(left);
                if left > 0 {
                    continue;
                }
                bulk_left = None;
                Bytes::from_static(b"k")
            }
            None if m.len() == 9 && m[0] == b'B' => {
                let n = u64::from_be_bytes(m[1..9].try_into().unwrap_or_default());
                bulk_left = Some(n);
                continue;
            }
            None => m,
        };
        if conn.send(reply).await.is_err() {
            return;
        }
    }
    let _ = conn.close().await;
}

async fn serve_stream(mut r: impl AsyncRead + Unpin, mut w: impl AsyncWrite + Unpin) {
    let _ = async {
        let mut mode = [0u8; 1];
        r.read_exact(&mut mode).await?;
        match mode[0] {
            b'B' => {
                let n = r.read_u64().await?;
                let mut buf = vec![0u8; CHUNK];
                let mut left = n;
                while left > 0 {
                    let want = (left as usize).min(CHUNK);
                    let k = r.read(&mut buf[..want]).await?;
                    if k == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                    left -= k as u64;
                }
                w.write_all(b"k").await?;
                w.flush().await?;
                // Keep the stream until the client is done with it.
                let _ = r.read(&mut buf).await;
            }
            _ => {
                let mut b = [0u8; 8];
                while r.read_exact(&mut b).await.is_ok() {
                    w.write_all(&b).await?;
                    w.flush().await?;
                }
            }
        }
        Ok::<_, io::Error>(())
    }
    .await;
}

/// A client connection of any kind, ready for one workload.
pub enum Client {
    Rudp(rudp::Connection, rudp::Endpoint),
    Stream(
        Box<dyn AsyncRead + Unpin + Send>,
        Box<dyn AsyncWrite + Unpin + Send>,
        Option<(quinn::Connection, quinn::Endpoint)>,
    ),
}

pub async fn connect(peer: Peer, addr: SocketAddr) -> Result<Client, BoxError> {
    Ok(match peer {
        Peer::Rudp | Peer::RudpClear => {
            let ep = rudp::Endpoint::client(addr, rudp_config(peer, Side::Client))?;
            let conn = ep.connect(addr).await?;
            Client::Rudp(conn, ep)
        }
        Peer::Quinn => {
            let (_, client_config) = quinn_configs()?;
            let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            ep.set_default_client_config(client_config);
            let conn = ep.connect(addr, "localhost")?.await?;
            let (send, recv) = conn.open_bi().await?;
            Client::Stream(Box::new(recv), Box::new(send), Some((conn, ep)))
        }
        Peer::Kcp => {
            let stream = tokio_kcp::KcpStream::connect(&kcp_config(), addr).await?;
            let (r, w) = tokio::io::split(stream);
            Client::Stream(Box::new(r), Box::new(w), None)
        }
        Peer::Tcp => {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            Client::Stream(Box::new(r), Box::new(w), None)
        }
    })
}

impl Client {
    /// Sends `bytes` and waits for the receipt: the elapsed time from the
    /// first byte handed over to the receipt.
    pub async fn bulk(&mut self, bytes: u64) -> Result<Duration, BoxError> {
        let chunk = Bytes::from(vec![0x5a; CHUNK]);
        let start = Instant::now();
        match self {
            Client::Rudp(conn, _) => {
                let mut header = vec![b'B'];
                header.extend_from_slice(&bytes.to_be_bytes());
                conn.send(Bytes::from(header)).await?;
                let mut left = bytes;
                while left > 0 {
                    let n = (left as usize).min(CHUNK);
                    conn.send(chunk.slice(..n)).await?;
                    left -= n as u64;
                }
                match conn.recv().await? {
                    Some(m) if &m[..] == b"k" => {}
                    other => return Err(format!("unexpected receipt {other:?}").into()),
                }
            }
            Client::Stream(r, w, _) => {
                w.write_all(b"B").await?;
                w.write_u64(bytes).await?;
                let mut left = bytes;
                while left > 0 {
                    let n = (left as usize).min(CHUNK);
                    w.write_all(&chunk[..n]).await?;
                    left -= n as u64;
                }
                w.flush().await?;
                let mut k = [0u8; 1];
                r.read_exact(&mut k).await?;
            }
        }
        Ok(start.elapsed())
    }

    /// `rounds` echoes of `size`-byte messages (at most 8 for streams),
    /// one at a time; the round-trip time of each. Stops early at
    /// `deadline`.
    pub async fn echo(
        &mut self,
        rounds: usize,
        deadline: Instant,
    ) -> Result<Vec<Duration>, BoxError> {
        let mut rtts = Vec::with_capacity(rounds);
        if let Client::Stream(_, w, _) = self {
            w.write_all(b"E").await?;
        }
        for i in 0..rounds as u64 {
            if Instant::now() >= deadline {
                break;
            }
            let msg = i.to_be_bytes();
            let start = Instant::now();
            match self {
                Client::Rudp(conn, _) => {
                    conn.send(Bytes::copy_from_slice(&msg)).await?;
                    match conn.recv().await? {
                        Some(m) if m[..] == msg => {}
                        other => return Err(format!("bad echo {other:?}").into()),
                    }
                }
                Client::Stream(r, w, _) => {
                    w.write_all(&msg).await?;
                    w.flush().await?;
                    let mut b = [0u8; 8];
                    r.read_exact(&mut b).await?;
                    if b != msg {
                        return Err("bad echo".into());
                    }
                }
            }
            rtts.push(start.elapsed());
        }
        Ok(rtts)
    }

    /// KCP's latency test: one echo request at each tick of `interval`,
    /// without waiting for answers, until the first `count` have all come
    /// back (as KCP's test.cpp does: its sender keeps sending, so the last
    /// measured messages are not tail packets). The round-trip time of each
    /// of the first `count`.
    pub async fn paced_echo(
        &mut self,
        count: usize,
        interval: Duration,
    ) -> Result<Vec<Duration>, BoxError> {
        // Enough extra ticks to outlast any repair; the sender stops sooner
        // once every answer is in.
        let ticks = count + 500;
        let start = Instant::now();
        let sent_at: Vec<Instant> = (0..ticks).map(|i| start + interval * i as u32).collect();
        let mut rtts = vec![None; count];
        let mut missing = count;
        let done = tokio::sync::Notify::new();
        let mut note = |i: usize| {
            if i < count && rtts[i].is_none() {
                rtts[i] = Some(sent_at[i].elapsed());
                missing -= 1;
            }
            missing == 0
        };
        match self {
            Client::Rudp(conn, _) => {
                let send = async {
                    for (i, t) in sent_at.iter().enumerate() {
                        tokio::select! {
                            () = tokio::time::sleep_until((*t).into()) => {}
                            () = done.notified() => return Ok(()),
                        }
                        conn.send(Bytes::copy_from_slice(&(i as u64).to_be_bytes()))
                            .await?;
                    }
                    Ok::<_, BoxError>(())
                };
                let recv = async {
                    loop {
                        let m = conn.recv().await?.ok_or("connection ended")?;
                        let i = u64::from_be_bytes(m[..8].try_into()?) as usize;
                        if note(i) {
                            done.notify_one();
                            return Ok::<_, BoxError>(());
                        }
                    }
                };
                let (a, b) = tokio::join!(send, recv);
                a?;
                b?;
            }
            Client::Stream(r, w, _) => {
                w.write_all(b"E").await?;
                w.flush().await?;
                let recv = async {
                    loop {
                        let mut b = [0u8; 8];
                        r.read_exact(&mut b).await?;
                        if note(u64::from_be_bytes(b) as usize) {
                            done.notify_one();
                            return Ok::<_, BoxError>(());
                        }
                    }
                };
                let send = async {
                    for (i, t) in sent_at.iter().enumerate() {
                        tokio::select! {
                            () = tokio::time::sleep_until((*t).into()) => {}
                            () = done.notified() => return Ok(()),
                        }
                        w.write_all(&(i as u64).to_be_bytes()).await?;
                        w.flush().await?;
                    }
                    Ok::<_, BoxError>(())
                };
                let (a, b) = tokio::join!(recv, send);
                a?;
                b?;
            }
        }
        rtts.into_iter()
            .map(|r| r.ok_or_else(|| BoxError::from("an answer never came")))
            .collect()
    }

    /// The rudp connection's statistics, for rudp clients.
    /// The share of the sender's packets that its loss detection declared
    /// lost, for rudp and quinn (issue #27: loss one causes itself at a
    /// bottleneck); `None` for TCP and KCP, which do not say.
    pub fn lost_share(&self) -> Option<f64> {
        let (lost, sent) = match self {
            Client::Rudp(c, _) => {
                let s = c.stats().sent;
                (s.packets_lost, s.packets)
            }
            Client::Stream(_, _, Some((conn, _))) => {
                let p = conn.stats().path;
                (p.lost_packets, p.sent_packets)
            }
            Client::Stream(_, _, None) => return None,
        };
        Some(lost as f64 / sent.max(1) as f64)
    }

    pub fn rudp_stats(&self) -> Option<rudp_core::conn::Stats> {
        match self {
            Client::Rudp(c, _) => Some(c.stats()),
            Client::Stream(..) => None,
        }
    }

    pub async fn close(self) {
        match self {
            Client::Rudp(conn, ep) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
                drop(ep);
            }
            Client::Stream(_, mut w, quinn) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
                if let Some((conn, ep)) = quinn {
                    conn.close(0u32.into(), b"done");
                    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
                }
            }
        }
    }
}

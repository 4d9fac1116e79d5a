//! Connection settings, with the defaults PROTOCOL.md §12 lists.

use crate::congestion::{Algorithm, ControllerFactory};
use std::sync::Arc;
use std::time::Duration;

/// Settings for one connection. Both sides announce the parts the peer must
/// know in their HANDSHAKE frame (PROTOCOL.md §5.4).
///
/// A `Config` is always valid: make one with [`Config::builder`] (or
/// [`Config::to_builder`] from another), whose `build` checks that the
/// settings fit together and says which do not. Read the settings with the
/// methods of the same names.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest UDP payload accepted, announced to the peer, and the most
    /// path MTU discovery searches up to (default 65 507, the largest UDP
    /// payload over IPv4). At least 1200. Connections start at 1200, the
    /// size every path carries, and send larger datagrams only once a probe
    /// of that size got through (PROTOCOL.md §9.7); 1200 turns discovery
    /// off.
    pub(crate) max_datagram_size: usize,
    /// Largest message accepted from the peer, and sent to it (default 1 MiB).
    pub(crate) max_message_size: usize,
    /// Bytes of received, undelivered stream data this side buffers at most;
    /// the flow-control window advertised to the peer (default 4 MiB).
    pub(crate) receive_window: u64,
    /// The receive window grows by doubling up to this when the sender is
    /// limited by it (§8.3 auto-tuning; default 64 MiB). Memory is used
    /// only for data actually received and not yet taken.
    pub(crate) max_receive_window: u64,
    /// Bytes of sent but unacknowledged data, plus unsent data, queued at
    /// most before `send` pushes back (default 4 MiB).
    pub(crate) send_buffer: u64,
    /// The send buffer grows to twice the congestion window, up to this
    /// (default 64 MiB), so that a long fast path can be kept full; it does
    /// not grow while the peer's flow-control window blocks sending.
    pub(crate) max_send_buffer: u64,
    /// Longest time this side delays an acknowledgement (default 1 ms). The
    /// peer's probe timeout includes it, so it bounds how fast a lone lost
    /// request or answer is repaired; a small value costs a few more
    /// ACK-only packets on sparse flows, none on bulk ones (they are acked
    /// every second packet anyway).
    pub(crate) max_ack_delay: Duration,
    /// Silence after which the connection is declared dead (default 30 s).
    pub(crate) idle_timeout: Duration,
    /// Send a PING after this long without sending anything ack-eliciting, so
    /// that a quiet but live connection does not hit the idle timeout
    /// (default 10 s; at most half the idle timeout is used, PROTOCOL.md
    /// §9.5). `None` disables it.
    pub(crate) keep_alive: Option<Duration>,
    /// RTT assumed before the first sample (default 100 ms; RFC 9002 uses
    /// 333 ms, which makes handshake loss needlessly slow to repair).
    pub(crate) initial_rtt: Duration,
    /// Makes each connection's congestion controller (default: the
    /// loss-tolerant BBR-style one, [`Algorithm::Bbr`], PROTOCOL.md
    /// §9.4.3). Any [`ControllerFactory`] works, so a program can bring its
    /// own controller.
    pub(crate) congestion: Arc<dyn ControllerFactory>,
    /// Pre-shared key: when set, every packet is sealed with it and packets
    /// not sealed with it are dropped (PROTOCOL.md §3.7). Both sides must
    /// use the same key. Default: none, packets travel in clear.
    pub(crate) psk: Option<crate::psk::Psk>,
    /// The newest protocol version offered (a client) or accepted (a
    /// server): 2 (default), which adds streams, per-message reliability
    /// and datagrams (PROTOCOL.md §15); 3, version 2 authenticated and
    /// encrypted by a Noise handshake (§16), which reads the `security`
    /// settings (the `rudp` tools' default); or 1, the first edition. A client
    /// offering 2 to a server that speaks only 1 falls back to 1 on its
    /// version negotiation packet (§3.5), one round trip later.
    pub(crate) version: u8,
    /// Streams the peer may open at once beyond the first (default 100;
    /// §15.2). Each costs a few hundred bytes of state until it closes.
    pub(crate) max_streams: u64,
    /// Flow-control window of each stream beyond the first (default 2 MiB;
    /// §15.4); at least max_message_size + 8.
    pub(crate) stream_receive_window: u64,
    /// Flow-control window shared by all streams beyond the first (default
    /// 16 MiB; §15.4): what bounds the memory they can make us hold.
    pub(crate) streams_receive_window: u64,
    /// Datagrams received and not yet taken that are held at most; more
    /// are dropped and counted (default 256; §15.6). Zero refuses
    /// datagrams: the peer is told it may not send any.
    pub(crate) datagram_receive_queue: usize,
    /// Bytes of received datagrams held at most, whatever their number;
    /// more are dropped and counted (default 1 MiB; §15.6, §13).
    pub(crate) datagram_receive_buffer: usize,
    /// Datagrams queued for sending at most; a full queue drops the oldest
    /// (default 256; §15.6).
    pub(crate) datagram_send_queue: usize,
    /// Version 3's keys and policies (PROTOCOL.md §16): this side's static
    /// key pair, a client's server-key verifier, a server's client-key
    /// policy and whether it also serves clear clients.
    pub(crate) security: crate::noise::Security,
    /// Version 3: how long a sending key is used before it moves on, as
    /// WireGuard's 2 minutes (default 120 s; §16.6).
    pub(crate) rekey_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_datagram_size: MAX_DATAGRAM_SIZE,
            max_message_size: 1 << 20,
            receive_window: 4 << 20,
            max_receive_window: 64 << 20,
            send_buffer: 4 << 20,
            max_send_buffer: 64 << 20,
            max_ack_delay: Duration::from_millis(1),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(10)),
            initial_rtt: Duration::from_millis(100),
            congestion: Arc::new(Algorithm::default()),
            psk: None,
            version: crate::wire::VERSION,
            max_streams: 100,
            stream_receive_window: 2 << 20,
            streams_receive_window: 16 << 20,
            datagram_receive_queue: 256,
            datagram_receive_buffer: 1 << 20,
            datagram_send_queue: 256,
            security: crate::noise::Security::default(),
            rekey_after: Duration::from_secs(120),
        }
    }
}

/// A setting that cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this explanation (for configurations built on top of
    /// this crate's).
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// The smallest datagram size allowed (PROTOCOL.md §3): large enough for an
/// INITIAL with its HANDSHAKE frame and for useful ACK frames.
pub const MIN_DATAGRAM_SIZE: usize = 1200;
/// The largest datagram size: the largest UDP payload over IPv4.
pub const MAX_DATAGRAM_SIZE: usize = 65_507;
/// The most streams a side may let its peer open at once (§15.2): the
/// bound on per-connection stream state, whatever a configuration says.
pub const MAX_STREAMS_LIMIT: u64 = 1 << 16;

settings!(Config, ConfigBuilder, {
    /// Largest UDP payload accepted, and the most path MTU discovery
    /// searches up to (default 65 507), §9.7. 1200 turns discovery off.
    max_datagram_size: usize,
    /// Largest message accepted from the peer, and sent to it (default 1 MiB).
    max_message_size: usize,
    /// The flow-control window first advertised (default 4 MiB), §8.3.
    receive_window: u64,
    /// The receive window grows up to this (default 64 MiB), §8.3.
    max_receive_window: u64,
    /// Bytes queued at most before `send` pushes back (default 4 MiB).
    send_buffer: u64,
    /// The send buffer grows up to this (default 64 MiB).
    max_send_buffer: u64,
    /// Longest time an acknowledgement is delayed (default 1 ms), §7.
    max_ack_delay: Duration,
    /// Silence after which the connection is declared dead (default 30 s), §9.5.
    idle_timeout: Duration,
    /// PING after this long without sending (default 10 s, at most half the idle timeout), §9.5; `None` never.
    keep_alive: Option<Duration>,
    /// RTT assumed before the first sample (default 100 ms), §9.1.
    initial_rtt: Duration,
    /// Makes each connection's congestion controller (default BBR-style), §9.4.
    congestion: Arc<dyn ControllerFactory>,
    /// Pre-shared key sealing every packet (default none), §3.7.
    psk: Option<crate::psk::Psk>,
    /// The newest protocol version offered or accepted (1, 2 or 3).
    version: u8,
    /// Streams the peer may open at once beyond the first.
    max_streams: u64,
    /// Flow-control window of each stream beyond the first.
    stream_receive_window: u64,
    /// Flow-control window shared by the streams beyond the first.
    streams_receive_window: u64,
    /// Received datagrams held for the application at most (0 refuses them).
    datagram_receive_queue: usize,
    /// Bytes of received datagrams held at most (default 1 MiB).
    datagram_receive_buffer: usize,
    /// Datagrams queued for sending at most.
    datagram_send_queue: usize,
    /// Version 3's identity, verifier and policies (§16).
    security: crate::noise::Security,
    /// Version 3: a sending key's lifetime before it moves on (default 120 s), §16.6.
    rekey_after: Duration,
});

/// Makes a [`Config`]: start from the defaults ([`Config::builder`]) or
/// another config ([`Config::to_builder`]), set what differs, then
/// [`ConfigBuilder::build`].
#[derive(Debug, Clone)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// The config, if its settings fit together.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// A builder starting from this config's settings.
    pub fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder(self.clone())
    }

    /// Checks that the settings fit together.
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if !(MIN_DATAGRAM_SIZE..=MAX_DATAGRAM_SIZE).contains(&self.max_datagram_size) {
            return err(format!(
                "max_datagram_size {} is outside {MIN_DATAGRAM_SIZE}..={MAX_DATAGRAM_SIZE}",
                self.max_datagram_size
            ));
        }
        if self.max_message_size == 0 {
            return err("max_message_size must be at least 1".into());
        }
        // A message is delivered only when whole, so the window must hold the
        // largest one plus its 8-byte length prefix, or the connection would
        // stall (PROTOCOL.md §8.3).
        let needed = self.max_message_size as u64 + 8;
        if self.receive_window < needed {
            return err(format!(
                "receive_window {} must be at least max_message_size + 8 = {needed}",
                self.receive_window
            ));
        }
        if self.max_receive_window < self.receive_window {
            return err(format!(
                "max_receive_window {} must be at least receive_window {}",
                self.max_receive_window, self.receive_window
            ));
        }
        if self.send_buffer < needed {
            return err(format!(
                "send_buffer {} must be at least max_message_size + 8 = {needed}",
                self.send_buffer
            ));
        }
        if !crate::wire::SUPPORTED_VERSIONS.contains(&self.version) {
            return err(format!(
                "version {} is not one of {:?}",
                self.version,
                crate::wire::SUPPORTED_VERSIONS
            ));
        }
        if self.stream_receive_window < needed {
            return err(format!(
                "stream_receive_window {} must be at least max_message_size + 8 = {needed}",
                self.stream_receive_window
            ));
        }
        if self.streams_receive_window < self.stream_receive_window {
            return err(format!(
                "streams_receive_window {} must be at least stream_receive_window {}",
                self.streams_receive_window, self.stream_receive_window
            ));
        }
        if self.max_streams > MAX_STREAMS_LIMIT {
            return err(format!(
                "max_streams {} is above {MAX_STREAMS_LIMIT}",
                self.max_streams
            ));
        }
        if self.version == crate::wire::VERSION_3
            && self.security.identity.is_none()
            && self.security.verifier.is_none()
        {
            return err(
                "version 3 needs a static key (a server) or a server-key verifier (a client): set security".into(),
            );
        }
        let ciphers = &self.security.packet_ciphers;
        if ciphers.is_empty() || ciphers.len() > crate::cipher::MAX_OFFERED {
            return err(format!(
                "security.packet_ciphers must list 1 to {} ciphers",
                crate::cipher::MAX_OFFERED
            ));
        }
        if self.rekey_after < Duration::from_millis(10) {
            return err("rekey_after must be at least 10 ms".into());
        }
        if self.idle_timeout < Duration::from_millis(10) {
            return err("idle_timeout must be at least 10 ms".into());
        }
        if self.max_ack_delay > Duration::from_secs(1) {
            return err("max_ack_delay must be at most 1 s".into());
        }
        if self.initial_rtt.is_zero() {
            return err("initial_rtt must be positive".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self(v0) = self;
        write!(f, "invalid configuration: {v0}")
    }
}

impl std::error::Error for ConfigError {}

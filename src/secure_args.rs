//! The command line's security flags (docs/security.md): who the server is
//! to a client (`--server-key`, known_hosts, `--key`, `--insecure`), who a
//! server is and whom it serves (`--key`, `--authorized-keys`,
//! `--allow-insecure`), and `rudp keygen`. Every connection of `client`,
//! `send`, `server` and `recv` is authenticated and encrypted (protocol
//! version 3, PROTOCOL.md §16) unless these flags say otherwise.

use crate::cli::ConnArgs;
use crate::keys::{self, KnownHosts, Made, Trust};
use rudp::{Config, PublicKey, Security};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a client knows whom it is talking to: `client` and `send`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    /// The server's public key (base64, as the server prints when it
    /// starts): connect only to the holder of its private key. Without it,
    /// the key recorded in known_hosts at the first connection is expected
    /// (trust on first use, as ssh does).
    #[arg(long, value_name = "KEY", value_parser = keys::parse_public)]
    pub server_key: Option<PublicKey>,
    /// This client's private key file (as `rudp keygen` writes); without
    /// it, a fresh key for each run. Servers with --authorized-keys admit
    /// only the keys they list.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Speak the clear protocol (versions 1 and 2): nothing authenticated,
    /// nothing encrypted. For servers that do not speak version 3, and for
    /// reading the protocol on the wire.
    #[arg(long, conflicts_with_all = ["server_key", "key"])]
    pub insecure: bool,
}

/// Who a server is, and whom it serves: `server` and `recv`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IdentityArgs {
    /// This server's private key file (as `rudp keygen` writes). Default:
    /// $XDG_DATA_HOME/rudp/key (~/.local/share/rudp/key), made on first
    /// start. The public key is printed at start: give it to clients
    /// (--server-key).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Admit only clients whose public keys FILE lists (one base64 key a
    /// line, `#` comments); others are refused with a reason they print.
    #[arg(long, value_name = "FILE")]
    pub authorized_keys: Option<PathBuf>,
    /// Also serve clients of the clear protocol (`--insecure`): they are
    /// neither authenticated nor encrypted. Secure clients are served too.
    #[arg(long)]
    pub allow_insecure: bool,
}

/// Why the flags cannot work together: exit 2, as clap's own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl TrustArgs {
    /// The version a client offers: 3 unless `--insecure`, when
    /// `--protocol-version` (default 1) picks a clear one.
    pub fn version(&self, asked: Option<u8>) -> Result<u8, Usage> {
        match (self.insecure, asked) {
            (false, None | Some(3)) => Ok(3),
            (false, Some(v)) => Err(Usage(format!(
                "--protocol-version {v} is the clear protocol: add --insecure to use it"
            ))),
            (true, Some(3)) => Err(Usage(
                "--insecure speaks the clear versions 1 and 2, not 3".into(),
            )),
            (true, v) => Ok(v.unwrap_or(rudp_core::wire::VERSION_1)),
        }
    }

    /// The settings of `client` and `send`: `base`, the connection flags,
    /// and this client's identity and trust (none with `--insecure`).
    /// `Err` is the exit status, after a message: 2 for flags that do not
    /// fit together, 1 for a key file that cannot be used.
    pub fn config(&self, base: Config, conn: &ConnArgs) -> Result<Config, i32> {
        let version = self.version(conn.protocol_version).map_err(usage)?;
        let base = self.apply(base).map_err(failed)?;
        conn.with_version(version).config(base).ok_or(1)
    }

    fn apply(&self, config: Config) -> Result<Config, String> {
        if self.insecure {
            return Ok(config);
        }
        let identity = match &self.key {
            Some(path) => Some(keys::read_private(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let trust = match self.server_key {
            Some(k) => Trust::Pinned(k),
            None => {
                let path = KnownHosts::default_path().map_err(|e| e.to_string())?;
                Trust::KnownHosts(KnownHosts::open(path).map_err(|e| e.to_string())?)
            }
        };
        config
            .to_builder()
            .security(Security {
                identity,
                verifier: Some(Arc::new(trust)),
                key_log: crate::keylog::from_env()?,
                ..Security::default()
            })
            .build()
            .map_err(|e| e.to_string())
    }
}

impl IdentityArgs {
    /// The version a server accepts up to: 3, unless `--protocol-version`
    /// limits it to the clear ones, which needs `--allow-insecure`.
    pub fn version(&self, asked: Option<u8>) -> Result<u8, Usage> {
        match asked {
            None | Some(3) => Ok(3),
            Some(v) if self.allow_insecure => Ok(v),
            Some(v) => Err(Usage(format!(
                "--protocol-version {v} serves only the clear protocol: add --allow-insecure"
            ))),
        }
    }

    /// The settings of `server` and `recv`: `base`, the connection flags,
    /// and this server's key, admission policy and clear-client policy;
    /// prints the public key (`who` names the command). `Err` is the exit
    /// status, after a message, as for [`TrustArgs::config`].
    pub fn config(&self, base: Config, conn: &ConnArgs, who: &str) -> Result<Config, i32> {
        let version = self.version(conn.protocol_version).map_err(usage)?;
        let base = if version < rudp_core::wire::VERSION_3 {
            base // Clear only (--protocol-version 1 or 2).
        } else {
            self.apply(base, who).map_err(failed)?
        };
        conn.with_version(version).config(base).ok_or(1)
    }

    fn apply(&self, config: Config, who: &str) -> Result<Config, String> {
        let (identity, path, made) =
            keys::server_identity(self.key.as_deref()).map_err(|e| e.to_string())?;
        let clients = match &self.authorized_keys {
            Some(p) => Some(
                Arc::new(keys::read_authorized(p).map_err(|e| e.to_string())?)
                    as Arc<dyn rudp::ClientKeyPolicy>,
            ),
            None => None,
        };
        announce(
            who,
            &identity.public(),
            &path,
            made,
            self.authorized_keys.as_deref(),
        );
        config
            .to_builder()
            .security(Security {
                identity: Some(identity),
                clients,
                allow_insecure: self.allow_insecure,
                key_log: crate::keylog::from_env()?,
                ..Security::default()
            })
            .build()
            .map_err(|e| e.to_string())
    }
}

fn usage(u: Usage) -> i32 {
    eprintln!("error: {}", u.0);
    2
}

fn failed(message: String) -> i32 {
    eprintln!("error: {message}");
    1
}

/// The line a server prints at start: its public key, for clients.
fn announce(who: &str, key: &PublicKey, path: &Path, made: Made, authorized: Option<&Path>) {
    let key = keys::encode_public(key);
    match made {
        Made::Now => eprintln!("rudp {who}: made a new key in {}", path.display()),
        Made::No => {}
    }
    eprintln!("rudp {who}: public key {key} (clients: --server-key {key})");
    if let Some(a) = authorized {
        eprintln!(
            "rudp {who}: admitting only the client keys in {}",
            a.display()
        );
    }
}

/// `rudp keygen FILE [--force]`: a new key pair; the private key into FILE
/// (mode 0600, refused if FILE exists unless `force`), the public key on
/// standard output. Returns the exit status.
pub fn keygen(file: &Path, force: bool) -> i32 {
    let pair = rudp::Keypair::generate(rand::random());
    match keys::write_private(file, &pair, force) {
        Ok(()) => {
            println!("{}", keys::encode_public(&pair.public()));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

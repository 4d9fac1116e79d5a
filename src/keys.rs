//! Keys on disk, the way ssh and WireGuard users expect them (docs/security.md):
//!
//! - a private key file holds base64 of the 32 bytes on one line (as
//!   `wg genkey` writes), mode 0600; a public key is base64 of its 32 bytes
//!   (as `wg pubkey` prints);
//! - a server without `--key` uses `$XDG_DATA_HOME/rudp/key` (by default
//!   `~/.local/share/rudp/key`), made on first start;
//! - a client trusts a server's key on first use, as ssh does: the first
//!   connection to a HOST:PORT records the key in
//!   `$XDG_CONFIG_HOME/rudp/known_hosts` (by default
//!   `~/.config/rudp/known_hosts`); a later, different key fails the
//!   connection, naming the file and line to change;
//! - a server with `--authorized-keys FILE` admits only the client keys
//!   listed there, one base64 key a line.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rudp::{Keypair, PublicKey, ServerKeyVerifier};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// The largest key or key-list file read: a key file is 45 bytes, and a
/// list of 20,000 keys fits.
pub const MAX_KEY_FILE: u64 = 1 << 20;

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file of at most 1 MiB")]
    NotAFile { path: String },
    #[error("{path}:{line}: {why}")]
    Bad {
        path: String,
        line: usize,
        why: String,
    },
    #[error("{path} exists; use --force to replace it")]
    Exists { path: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no home directory: set HOME, or XDG_DATA_HOME and XDG_CONFIG_HOME")]
    NoHome,
}

/// A public key as base64 of its 32 bytes.
pub fn encode_public(key: &PublicKey) -> String {
    BASE64.encode(key.0)
}

/// A public key from base64 of 32 bytes (`--server-key`, key lists).
pub fn parse_public(s: &str) -> Result<PublicKey, String> {
    let bytes = BASE64
        .decode(s.trim())
        .map_err(|_| format!("'{}' is not base64", s.trim()))?;
    PublicKey::from_slice(&bytes).ok_or_else(|| {
        format!(
            "'{}' is {} bytes, not a 32-byte key (base64 of 44 characters, as `rudp keygen` prints)",
            s.trim(),
            bytes.len()
        )
    })
}

fn read_bounded(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        return Err(KeyError::NotAFile { path: shown });
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
    Ok(text)
}

/// Reads a private key file: base64 of 32 bytes on its first line.
pub fn read_private(path: &Path) -> Result<Keypair, KeyError> {
    let text = read_bounded(path)?;
    let shown = path.display().to_string();
    let line = text.lines().next().unwrap_or("").trim();
    let bytes = BASE64.decode(line).map_err(|_| KeyError::Bad {
        path: shown.clone(),
        line: 1,
        why: "not a private key (base64 of 32 bytes, as `rudp keygen` writes)".into(),
    })?;
    let private: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| KeyError::Bad {
        path: shown.clone(),
        line: 1,
        why: format!("{} bytes, not a 32-byte private key", b.len()),
    })?;
    warn_if_readable_by_others(path);
    Ok(Keypair::from_private(private))
}

/// A private key anyone else can read is no longer private: say so, as
/// ssh does (it refuses; WireGuard warns).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: {} is readable by other users; run chmod 600 on it",
                    path.display()
                );
            }
        }
    }
}

/// Writes a new private key to `path`, mode 0600: refused if the file
/// exists, unless `force`, when it is replaced whole (a new file renamed
/// over it, so a reader never sees half a key).
pub fn write_private(path: &Path, key: &Keypair, force: bool) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    let werr = |source| KeyError::Write {
        path: shown.clone(),
        source,
    };
    let line = format!("{}\n", BASE64.encode(key.private_bytes()));
    if !force {
        let mut file = create_private(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: shown.clone(),
            },
            _ => werr(e),
        })?;
        file.write_all(line.as_bytes()).map_err(werr)?;
        return file.sync_all().map_err(werr);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rudp-key")
        .permissions(private_mode())
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(line.as_bytes()).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn private_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
fn private_mode() -> std::fs::Permissions {
    std::fs::File::open(".")
        .and_then(|f| f.metadata())
        .map(|m| m.permissions())
        .unwrap_or_else(|_| unreachable!("no permissions on this platform"))
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn home() -> Result<PathBuf, KeyError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(KeyError::NoHome)
}

/// `$XDG_DATA_HOME/rudp`, by default `~/.local/share/rudp`.
pub fn data_dir() -> Result<PathBuf, KeyError> {
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d).join("rudp")),
        None => Ok(home()?.join(".local/share/rudp")),
    }
}

/// `$XDG_CONFIG_HOME/rudp`, by default `~/.config/rudp`.
pub fn config_dir() -> Result<PathBuf, KeyError> {
    match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d).join("rudp")),
        None => Ok(home()?.join(".config/rudp")),
    }
}

fn create_dir_private(dir: &Path) -> Result<(), KeyError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| KeyError::Write {
        path: dir.display().to_string(),
        source,
    })
}

/// A server's key: `--key FILE`, or the default one, made on first use.
/// Returns the pair and where it came from.
pub fn server_identity(key: Option<&Path>) -> Result<(Keypair, PathBuf, Made), KeyError> {
    if let Some(path) = key {
        return Ok((read_private(path)?, path.to_path_buf(), Made::No));
    }
    let dir = data_dir()?;
    let path = dir.join("key");
    match read_private(&path) {
        Ok(k) => Ok((k, path, Made::No)),
        Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create_dir_private(&dir)?;
            let k = Keypair::generate(rand::random());
            match write_private(&path, &k, false) {
                Ok(()) => Ok((k, path, Made::Now)),
                // Another process made it meanwhile: use theirs.
                Err(KeyError::Exists { .. }) => Ok((read_private(&path)?, path, Made::No)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether a default key was made by this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// It existed (or was given).
    No,
    /// It was made now.
    Now,
}

/// Reads an `--authorized-keys` file: one base64 key a line; `#` starts a
/// comment, and text after the key on a line is a comment too (a name).
pub fn read_authorized(path: &Path) -> Result<rudp::AuthorizedKeys, KeyError> {
    let text = read_bounded(path)?;
    let mut keys = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let key = parse_public(word).map_err(|why| KeyError::Bad {
            path: path.display().to_string(),
            line: i + 1,
            why,
        })?;
        keys.insert(key);
    }
    Ok(rudp::AuthorizedKeys(keys))
}

/// How a client knows the server's key: `--server-key`, or known_hosts.
#[derive(Debug)]
pub enum Trust {
    /// `--server-key`: exactly this key.
    Pinned(PublicKey),
    /// Trust on first use, remembered in a file.
    KnownHosts(KnownHosts),
}

impl ServerKeyVerifier for Trust {
    fn expected(&self, server: SocketAddr) -> Option<PublicKey> {
        match self {
            Trust::Pinned(k) => Some(*k),
            Trust::KnownHosts(h) => h.lookup(server).map(|(k, _)| k),
        }
    }

    fn verify(&self, server: SocketAddr, key: &PublicKey) -> Result<(), String> {
        match self {
            Trust::Pinned(k) if k == key => Ok(()),
            Trust::Pinned(k) => Err(format!(
                "the server at {server} has the key {}, not the one given with --server-key ({})",
                encode_public(key),
                encode_public(k)
            )),
            Trust::KnownHosts(h) => h.verify(server, key),
        }
    }
}

/// The known_hosts file: `HOST:PORT KEY` a line, `#` comments.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    /// Read once at start; lines added by this run are appended here too.
    entries: Mutex<Vec<(String, PublicKey, usize)>>,
}

impl KnownHosts {
    /// The file at `path` (it may not exist yet).
    pub fn open(path: PathBuf) -> Result<Self, KeyError> {
        let mut entries = Vec::new();
        match read_bounded(&path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    let mut words = line.split_whitespace();
                    let (Some(host), Some(key)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let key = parse_public(key).map_err(|why| KeyError::Bad {
                        path: path.display().to_string(),
                        line: i + 1,
                        why,
                    })?;
                    entries.push((host.to_string(), key, i + 1));
                }
            }
            Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            path,
            entries: Mutex::new(entries),
        })
    }

    /// The default file.
    pub fn default_path() -> Result<PathBuf, KeyError> {
        Ok(config_dir()?.join("known_hosts"))
    }

    fn lookup(&self, server: SocketAddr) -> Option<(PublicKey, usize)> {
        let name = server.to_string();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(h, _, _)| *h == name)
            .map(|(_, k, line)| (*k, *line))
    }

    fn verify(&self, server: SocketAddr, key: &PublicKey) -> Result<(), String> {
        match self.lookup(server) {
            Some((known, _)) if known == *key => Ok(()),
            Some((known, line)) => Err(format!(
                "the server at {server} presented the key {}, but {}:{line} records {} for it. \
                 If its key changed on purpose, delete line {line} of {} (or give the new key \
                 with --server-key); otherwise someone may be intercepting the connection",
                encode_public(key),
                self.path.display(),
                encode_public(&known),
                self.path.display()
            )),
            None => self.record(server, key),
        }
    }

    /// Trust on first use: appends the key and says so.
    fn record(&self, server: SocketAddr, key: &PublicKey) -> Result<(), String> {
        let write = || -> Result<usize, String> {
            if let Some(dir) = self.path.parent() {
                create_dir_private(dir).map_err(|e| e.to_string())?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| format!("cannot record the key in {}: {e}", self.path.display()))?;
            let lines = std::fs::read_to_string(&self.path)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            writeln!(f, "{server} {}", encode_public(key))
                .map_err(|e| format!("cannot record the key in {}: {e}", self.path.display()))?;
            Ok(lines + 1)
        };
        let line = write()?;
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((server.to_string(), *key, line));
        eprintln!(
            "rudp: first connection to {server}: trusting its key {} from now on (recorded in {}:{line})",
            encode_public(key),
            self.path.display()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_round_trip_with_mode_0600_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = Keypair::generate([3; 32]);
        write_private(&p, &k, false).unwrap();
        assert_eq!(read_private(&p).unwrap().public(), k.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let other = Keypair::generate([4; 32]);
        assert!(matches!(
            write_private(&p, &other, false),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(read_private(&p).unwrap().public(), k.public(), "untouched");
        write_private(&p, &other, true).unwrap();
        assert_eq!(read_private(&p).unwrap().public(), other.public());
        std::fs::write(&p, "not a key\n").unwrap();
        assert!(matches!(
            read_private(&p),
            Err(KeyError::Bad { line: 1, .. })
        ));
        assert!(matches!(
            read_private(dir.path()),
            Err(KeyError::NotAFile { .. })
        ));
    }

    #[test]
    fn known_hosts_records_on_first_use_and_names_the_line_of_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let (a, b) = (
            Keypair::generate([5; 32]).public(),
            Keypair::generate([6; 32]).public(),
        );
        let hosts = KnownHosts::open(path.clone()).unwrap();
        assert_eq!(hosts.lookup(addr), None);
        hosts.verify(addr, &a).unwrap();
        let again = KnownHosts::open(path.clone()).unwrap();
        assert_eq!(again.lookup(addr), Some((a, 1)));
        let e = again.verify(addr, &b).unwrap_err();
        assert!(
            e.contains(&encode_public(&a)) && e.contains(&encode_public(&b)),
            "{e}"
        );
        assert!(e.contains(&format!("{}:1", path.display())), "{e}");
        assert!(e.contains("delete line 1"), "{e}");
    }

    #[test]
    fn authorized_keys_take_comments_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authorized");
        let k = Keypair::generate([7; 32]).public();
        std::fs::write(&p, format!("# team\n{} alice\n\n", encode_public(&k))).unwrap();
        assert!(read_authorized(&p).unwrap().0.contains(&k));
        std::fs::write(&p, format!("{}\nbogus\n", encode_public(&k))).unwrap();
        assert!(matches!(
            read_authorized(&p),
            Err(KeyError::Bad { line: 2, .. })
        ));
    }

    #[test]
    fn public_keys_parse_as_wg_prints_them() {
        let k = Keypair::generate([8; 32]).public();
        assert_eq!(parse_public(&encode_public(&k)), Ok(k));
        assert!(parse_public("abc").is_err());
        assert!(parse_public(&BASE64.encode([0u8; 16]))
            .unwrap_err()
            .contains("16 bytes"));
    }
}

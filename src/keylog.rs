//! `RUDP_KEYLOG=FILE`, like `SSLKEYLOGFILE`: appends each version-3
//! connection's two transport keys to FILE, so that its owner can read
//! their own captures (docs/wireshark.md). Never a static private key: a
//! leaked key log exposes the connections it lists, not the identities.
//!
//! One line a connection (PROTOCOL.md §16.7):
//! `RUDP_TRAFFIC_V3 <client CID, 16 hex> <client-to-server key, 64 hex> <server-to-client key, 64 hex> <packet cipher>`.

use rudp::proto::cipher::PacketCipher;
use rudp::proto::wire::ConnectionId;
use rudp::{KeyLog, TransportKeys};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The environment variable that names the key log.
pub const ENV: &str = "RUDP_KEYLOG";
/// The first word of every line.
pub const LABEL: &str = "RUDP_TRAFFIC_V3";

/// Appends lines to a file, each written whole.
struct FileKeyLog(Mutex<std::fs::File>);

/// One connection's key-log line (PROTOCOL.md §16.7), newline included.
pub fn line(client_cid: ConnectionId, cipher: PacketCipher, keys: &TransportKeys) -> String {
    format!(
        "{LABEL} {:016x} {} {} {}\n",
        client_cid.0,
        hex::encode(keys.client_to_server),
        hex::encode(keys.server_to_client),
        cipher.name()
    )
}

impl KeyLog for FileKeyLog {
    fn log(&self, client_cid: ConnectionId, cipher: PacketCipher, keys: &TransportKeys) {
        let line = line(client_cid, cipher, keys);
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!(cause = %e, "cannot write the key log");
        }
    }
}

/// The key log `RUDP_KEYLOG` asks for, if any; `Err` if it cannot be
/// opened (mode 0600: what it holds opens connections).
pub fn from_env() -> Result<Option<Arc<dyn KeyLog>>, String> {
    let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(&path).map_err(|e| {
        format!(
            "cannot open the key log {} ({ENV}): {e}",
            std::path::Path::new(&path).display()
        )
    })?;
    Ok(Some(Arc::new(FileKeyLog(Mutex::new(file)))))
}

/// One parsed key-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The client's connection ID.
    pub client_cid: u64,
    /// The packet cipher both directions use.
    pub cipher: PacketCipher,
    /// The first client-to-server key.
    pub client_to_server: [u8; 32],
    /// The first server-to-client key.
    pub server_to_client: [u8; 32],
}

/// Reads a key log's lines; others (comments, other tools' lines, ciphers
/// we do not know) are passed over. A line without a cipher is
/// ChaCha20-Poly1305 (§16.7).
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != LABEL {
                return None;
            }
            let client_cid = u64::from_str_radix(w.next()?, 16).ok()?;
            let client_to_server = hex::decode(w.next()?).ok()?.try_into().ok()?;
            let server_to_client = hex::decode(w.next()?).ok()?.try_into().ok()?;
            let cipher = match w.next() {
                None => PacketCipher::ChaCha20Poly1305,
                Some(name) => PacketCipher::from_name(name)?,
            };
            Some(Entry {
                client_cid,
                cipher,
                client_to_server,
                server_to_client,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_written_are_lines_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.log");
        let log = FileKeyLog(Mutex::new(std::fs::File::create(&path).unwrap()));
        let keys = TransportKeys {
            client_to_server: [1; 32],
            server_to_client: [2; 32],
        };
        log.log(ConnectionId(0xabc), PacketCipher::Aes256Gcm, &keys);
        let text = std::fs::read_to_string(&path).unwrap();
        let old = format!(
            "{LABEL} 0000000000000def {} {}\n",
            "03".repeat(32),
            "04".repeat(32)
        );
        let unknown = format!(
            "{LABEL} 0000000000000123 {} {} ROT13\n",
            "05".repeat(32),
            "06".repeat(32)
        );
        assert_eq!(
            parse(&format!("# x\n{text}garbage\n{old}{unknown}")),
            vec![
                Entry {
                    client_cid: 0xabc,
                    cipher: PacketCipher::Aes256Gcm,
                    client_to_server: [1; 32],
                    server_to_client: [2; 32],
                },
                Entry {
                    client_cid: 0xdef,
                    cipher: PacketCipher::ChaCha20Poly1305,
                    client_to_server: [3; 32],
                    server_to_client: [4; 32],
                },
            ]
        );
    }
}

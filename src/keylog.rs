//! `RUDP_KEYLOG=FILE`, like `SSLKEYLOGFILE`: appends each version-3
//! connection's two transport keys to FILE, so that its owner can read
//! their own captures (docs/wireshark.md). Never a static private key: a
//! leaked key log exposes the connections it lists, not the identities.
//!
//! One line a connection (PROTOCOL.md §16.7):
//! `RUDP_TRAFFIC_V3 <client CID, 16 hex> <client-to-server key, 64 hex> <server-to-client key, 64 hex>`.

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

impl KeyLog for FileKeyLog {
    fn log(&self, client_cid: ConnectionId, keys: &TransportKeys) {
        let line = format!(
            "{LABEL} {:016x} {} {}\n",
            client_cid.0,
            hex::encode(keys.client_to_server),
            hex::encode(keys.server_to_client)
        );
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

/// One parsed key-log line: (client CID, client-to-server key,
/// server-to-client key).
pub type Entry = (u64, [u8; 32], [u8; 32]);

/// Reads a key log's lines; others (comments, other tools' lines) are
/// passed over.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != LABEL {
                return None;
            }
            let cid = u64::from_str_radix(w.next()?, 16).ok()?;
            let c2s: [u8; 32] = hex::decode(w.next()?).ok()?.try_into().ok()?;
            let s2c: [u8; 32] = hex::decode(w.next()?).ok()?.try_into().ok()?;
            Some((cid, c2s, s2c))
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
        log.log(ConnectionId(0xabc), &keys);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            parse(&format!("# x\n{text}garbage\n")),
            vec![(0xabc, [1; 32], [2; 32])]
        );
    }
}

//! What `rudp demo`'s encrypted session looked like on the wire: the
//! proxy's capture (`--pcap`), turned to clear with the session's own key
//! log exactly as `rudp decrypt` does (PROTOCOL.md §16.7,
//! docs/wireshark.md), then listed one datagram a line with the proxy's
//! verdict: the handshake, what the link dropped, and the repairs.

use crate::keylog;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use rudp::proto::cipher::PacketCipher;
use rudp::proto::wire::{self, ConnectionId};
use rudp::{KeyLog, TransportKeys};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Keeps each connection's key-log line in memory.
#[derive(Default)]
pub struct Recorded(Mutex<String>);

impl KeyLog for Recorded {
    fn log(&self, client_cid: ConnectionId, cipher: PacketCipher, keys: &TransportKeys) {
        let line = keylog::line(client_cid, cipher, keys);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_str(&line);
    }
}

impl Recorded {
    /// The key log's text, as `RUDP_KEYLOG` would have written it.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One captured datagram: the proxy's verdict and the rudp packet.
struct Line {
    verdict: String,
    packet: String,
}

/// Decrypts `capture` with `keys` into `dir` and writes its first `first`
/// datagrams to `out`, one line each; then how many more there were.
pub fn show(
    keys: &Recorded,
    capture: &Path,
    dir: &Path,
    first: usize,
    out: &mut impl Write,
) -> Result<(), String> {
    let keylog = dir.join("keys.log");
    std::fs::write(&keylog, keys.text()).map_err(|e| format!("key log: {e}"))?;
    let clear = dir.join("clear.pcapng");
    let summary = crate::decrypt::decrypt(&keylog, capture, &clear).map_err(|e| e.to_string())?;
    let lines = read(&clear)?;
    let _ = writeln!(
        out,
        "On the wire: every packet after the handshake is encrypted (PROTOCOL.md §16). \
         The demo kept\nits session's key log, as RUDP_KEYLOG=FILE does, and decrypted the \
         proxy's capture as\n`rudp decrypt` does ({} of {} sealed packets opened); the first \
         {} datagrams:\n",
        summary.decrypted,
        summary.sealed,
        first.min(lines.len())
    );
    let width = lines
        .iter()
        .take(first)
        .map(|l| l.verdict.len())
        .max()
        .unwrap_or(0);
    for l in lines.iter().take(first) {
        let _ = writeln!(out, "  {:width$}  {}", l.verdict, l.packet);
    }
    if lines.len() > first {
        let _ = writeln!(out, "  ... and {} more", lines.len() - first);
    }
    let _ = writeln!(out);
    Ok(())
}

/// Every datagram of a capture, with the proxy's comment.
fn read(path: &Path) -> Result<Vec<Line>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = PcapNgReader::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    while let Some(block) = reader.next_block() {
        let Block::EnhancedPacket(p) = block.map_err(|e| e.to_string())? else {
            continue;
        };
        let verdict = p
            .options
            .iter()
            .find_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let Ok(sliced) = etherparse::SlicedPacket::from_ip(&p.data) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
            continue;
        };
        lines.push(Line {
            verdict: short_verdict(&verdict),
            packet: wire::describe_brief(udp.payload()),
        });
    }
    Ok(lines)
}

/// "client->server: forwarded after 10.2 ms" as "client->server forwarded".
fn short_verdict(comment: &str) -> String {
    let (way, what) = comment.split_once(": ").unwrap_or((comment, ""));
    let what = what.split(" after ").next().unwrap_or(what);
    format!("{way} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_shortened() {
        assert_eq!(
            short_verdict("client->server: forwarded after 10.250 ms"),
            "client->server forwarded"
        );
        assert_eq!(
            short_verdict("server->client: dropped: random loss"),
            "server->client dropped: random loss"
        );
    }
}

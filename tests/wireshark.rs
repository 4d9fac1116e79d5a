//! The Wireshark dissector (contrib/wireshark/rudp.lua) decodes a real
//! exchange captured on loopback. Needs tshark (installed by .ci/run from
//! Debian's packages) and the right to capture (root); skipped, saying
//! why, where tshark is not installed.

mod common;

use common::{rudp, Server};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const DISSECTOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/wireshark/rudp.lua");

/// Whether tshark runs here; if not, says the test is skipped and why.
fn tshark_available() -> bool {
    let there = std::process::Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        eprintln!(
            "SKIPPED: tshark is not installed (bash .ci/run installs it from Debian's packages)"
        );
    }
    there
}

/// Decodes `pcap` with the dissector and prints `fields` of each packet,
/// `;`-separated, one line per packet; tshark must succeed and the Lua
/// dissector report no error.
fn decode_fields(pcap: &std::path::Path, fields: &[&str]) -> String {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r").arg(pcap).args([
        "-X",
        &format!("lua_script:{DISSECTOR}"),
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let decoded = cmd.output().expect("run tshark -r");
    let errors = String::from_utf8_lossy(&decoded.stderr);
    assert!(
        decoded.status.success() && !errors.contains("Lua"),
        "{errors}"
    );
    String::from_utf8_lossy(&decoded.stdout).into_owned()
}

#[tokio::test]
async fn tshark_decodes_a_captured_month_session() {
    if !tshark_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rudp-wireshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("session.pcapng");
    let server = Server::start().await;
    let port = server.addr.port();

    // Capture this server's port on loopback; wait until tshark is ready.
    let mut capture = tokio::process::Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("udp port {port}"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tshark");
    let mut stderr = BufReader::new(capture.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("Capturing on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "tshark did not start capturing on lo");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    // tshark reports "Capturing on" before its capture child has the filter
    // in place; give it time, or the first packets are missed.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The clear protocol, so that every field can be read off the wire
    // (version 3's are sealed: tshark_reads_a_version_3_capture_once_decrypted).
    let out = rudp(
        &[
            "client",
            "--server",
            &server.addr.to_string(),
            "--insecure",
            "7",
        ],
        b"",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.stdout, "July\n", "{out:?}");
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGINT lets tshark finish the file.
    let pid = capture.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), capture.wait())
        .await
        .unwrap()
        .unwrap();

    let fields = [
        "rudp1.type",
        "rudp1.version",
        "rudp1.dcid",
        "rudp1.pn",
        "rudp1.handshake.max_datagram_size",
        "rudp1.handshake.max_message_size",
        "rudp1.padding.length",
        "rudp1.stream.data",
        "rudp1.ack.range",
        "rudp1.stream_parameters.max_streams",
    ];
    let text = decode_fields(&pcap, &fields);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    assert!(rows.len() >= 6, "too few packets decoded:\n{text}");

    // The client's INITIAL, field by field (PROTOCOL.md §3, §5.4, §6.2).
    let initial = &rows[0];
    assert_eq!(initial[0], "0x01", "type INITIAL: {initial:?}");
    // `rudp client --insecure` offers version 1: it needs only the first stream.
    assert_eq!(initial[1], "1", "version");
    assert_eq!(initial[9], "", "no STREAM_PARAMETERS in version 1");
    assert_eq!(
        initial[2], "0x0000000000000000",
        "INITIAL's destination CID is zero"
    );
    let first_pn: u64 = initial[3].parse().expect("a packet number");
    assert!(
        first_pn < 1 << 48,
        "first packet number {first_pn}: random below 2^48 (§4.2)"
    );
    // The default maximum, what discovery may search up to (§9.7).
    assert_eq!(initial[4], "65507");
    assert_eq!(initial[5], "1048576");
    // 1200 - 28 (header) - 4 (CRC) - 17 (HANDSHAKE).
    assert_eq!(initial[6], "1151", "padding up to 1200 bytes");
    // The ACCEPT answers with type 2 and acknowledges the INITIAL.
    let accept = rows.iter().find(|r| r[0] == "0x02").expect("an ACCEPT");
    let acked = format!("{first_pn}-{first_pn}");
    assert!(accept[8].split(',').any(|r| r == acked), "{accept:?}");
    // The request "7" and the answer "July", with their length prefixes
    // (§8.1), appear as stream data.
    let data: Vec<&str> = rows.iter().flat_map(|r| r[7].split(',')).collect();
    assert!(data.contains(&"0137"), "request '7' not decoded: {data:?}");
    assert!(
        data.contains(&"044a756c79"),
        "answer 'July' not decoded: {data:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The dissector decodes path validation's frames (PROTOCOL.md §5.9): a
/// challenge and its response, written to a capture file the way `rudp
/// proxy --pcap` writes what it relays.
#[test]
fn tshark_decodes_path_challenge_and_response() {
    use rudp_cli::proxy::capture::{Capture, Way};
    use rudp_core::impair::Verdict;
    use rudp_core::wire::packet::append_checksum;
    use rudp_core::wire::{ConnectionId, Frame, Header, PacketType, Protection};
    if !tshark_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rudp-wireshark-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("path.pcapng");
    let packet = |dcid: u64, pn: u64, frame: Frame<'_>| {
        let mut out = Vec::new();
        Header {
            version: rudp_core::wire::VERSION,
            ty: PacketType::Data,
            protection: Protection::Clear,
            dcid: ConnectionId(dcid),
            scid: None,
            pn,
        }
        .encode(&mut out);
        frame.encode(&mut out);
        append_checksum(&mut out);
        out
    };
    let data = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18];
    let (client, server) = (
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:8091".parse().unwrap(),
    );
    let mut capture = Capture::create(&pcap, 1 << 20).expect("create the capture");
    let verdict = Verdict::default();
    capture.record(
        Way::Down,
        client,
        server,
        &packet(1, 301, Frame::PathChallenge(data)),
        &verdict,
    );
    capture.record(
        Way::Up,
        client,
        server,
        &packet(2, 9, Frame::PathResponse(data)),
        &verdict,
    );
    capture.finish();
    let text = decode_fields(
        &pcap,
        &["rudp1.frame", "rudp1.path_challenge", "rudp1.path_response"],
    );
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows,
        ["0x0a;0xa1b2c3d4e5f60718;", "0x0b;;0xa1b2c3d4e5f60718"],
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Version 3 (PROTOCOL.md §16): the dissector shows an ACCEPT's clear
/// NOISE frame and nothing else of a sealed capture; after `rudp decrypt`
/// with the server's key log, every frame, the proxy's verdicts kept.
#[tokio::test]
async fn tshark_reads_a_version_3_capture_once_decrypted() {
    if !tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clear = dir.path().join("clear.pcapng");
    let (keylog, capture) = common::keylogged_capture(dir.path(), &["4"], "April\n").await;
    let sealed = decode_fields(&capture, &["_ws.col.Info"]);
    assert!(
        sealed.contains("ACCEPT") && sealed.contains("NOISE, sealed"),
        "{sealed}"
    );
    assert!(!sealed.contains("STREAM"), "{sealed}");
    let out = common::decrypt(&keylog, &capture, &clear).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let opened = decode_fields(&clear, &["frame.comment", "_ws.col.Info"]);
    assert!(opened.contains("STREAM"), "{opened}");
    assert!(!opened.contains("sealed"), "{opened}");
    assert!(
        opened.contains("client->server: forwarded"),
        "verdicts kept: {opened}"
    );
    println!("{opened}");
}

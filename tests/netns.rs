//! Path MTU discovery over a real link (PROTOCOL.md §9.7): two network
//! namespaces joined by a veth pair whose MTU the test sets, `rudp recv` in
//! one and `rudp send` in the other. The sockets set the don't-fragment bit,
//! so a datagram larger than the link's MTU fails to leave (EMSGSIZE) and
//! the probe of that size is lost: discovery must settle on exactly the
//! link's UDP payload, 1472 bytes for a 1500-byte MTU and 8972 for 9000.
//!
//! Needs root and `ip` (iproute2); the namespaces are this test's own,
//! named after its process, and removed when it ends. Skipped, saying why,
//! where they cannot be made.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Two namespaces joined by a veth pair; removed on drop (which removes the
/// pair too).
struct Link {
    a: String,
    b: String,
    /// The veth ends: `va` in `a`, `vb` in `b`.
    va: String,
    vb: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Link {
    /// `None` if namespaces cannot be made here (not root, no `ip`).
    fn new(tag: &str) -> Option<Link> {
        let id = std::process::id();
        let (a, b) = (format!("rudp{id}{tag}a"), format!("rudp{id}{tag}b"));
        // Interface names are at most 15 bytes.
        let (va, vb) = (
            format!("r{}{tag}a", id % 100_000),
            format!("r{}{tag}b", id % 100_000),
        );
        if !ip(&["netns", "add", &a]) {
            return None;
        }
        let link = Link { a, b, va, vb };
        let ok = ip(&["netns", "add", &link.b])
            && ip(&[
                "link", "add", &link.va, "type", "veth", "peer", "name", &link.vb,
            ])
            && ip(&["link", "set", &link.va, "netns", &link.a])
            && ip(&["link", "set", &link.vb, "netns", &link.b])
            && ip(&[
                "-n",
                &link.a,
                "addr",
                "add",
                "10.77.0.1/24",
                "dev",
                &link.va,
            ])
            && ip(&[
                "-n",
                &link.b,
                "addr",
                "add",
                "10.77.0.2/24",
                "dev",
                &link.vb,
            ])
            && ip(&["-n", &link.a, "link", "set", &link.va, "up"])
            && ip(&["-n", &link.b, "link", "set", &link.vb, "up"]);
        ok.then_some(link)
    }

    /// Sets the MTU of both ends.
    fn set_mtu(&self, mtu: u32) {
        for (ns, dev) in [(&self.a, &self.va), (&self.b, &self.vb)] {
            assert!(
                ip(&["-n", ns, "link", "set", dev, "mtu", &mtu.to_string()]),
                "set the MTU of {dev} in {ns}"
            );
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rudp-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch directory");
    d
}

/// Sends `src` from namespace a to `rudp recv` in namespace b; returns the
/// sender's statistics.
async fn transfer(link: &Link, src: &Path, out: &Path, port: u16) -> serde_json::Value {
    let listen = format!("10.77.0.2:{port}");
    // Keys and known_hosts in the scratch directory, not the user's.
    let keys = out.parent().unwrap_or(Path::new(".")).join("keys");
    let recv = tokio::process::Command::new("ip")
        .env("XDG_DATA_HOME", &keys)
        .env("XDG_CONFIG_HOME", &keys)
        .args(["netns", "exec", &link.b, env!("CARGO_BIN_EXE_rudp"), "recv"])
        .args(["--listen", &listen, "--force", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start rudp recv");
    // The namespace is new: nothing else can hold the port; give the
    // receiver a moment to bind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let json = out.with_extension("json");
    let sent = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new("ip")
            .env("XDG_DATA_HOME", &keys)
            .env("XDG_CONFIG_HOME", &keys)
            .args(["netns", "exec", &link.a, env!("CARGO_BIN_EXE_rudp"), "send"])
            .arg(src)
            .args(["--to", &listen, "--stats-json"])
            .arg(&json)
            .output(),
    )
    .await
    .expect("the sender finishes")
    .expect("run rudp send");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let r = tokio::time::timeout(LIMIT, recv.wait_with_output())
        .await
        .expect("the receiver finishes")
        .expect("run rudp recv");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    serde_json::from_slice(&std::fs::read(&json).expect("the statistics")).expect("JSON")
}

#[tokio::test]
async fn discovery_finds_exactly_what_a_real_link_carries() {
    let Some(link) = Link::new("m") else {
        eprintln!("SKIPPED: cannot make network namespaces here (needs root and iproute2)");
        return;
    };
    let dir = scratch();
    let src = dir.join("data.bin");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).expect("write the file");
    for (mtu, payload, port) in [(1500, 1472, 9400), (9000, 8972, 9401)] {
        link.set_mtu(mtu);
        let out = dir.join(format!("out-{mtu}.bin"));
        let stats = transfer(&link, &src, &out, port).await;
        assert!(
            std::fs::read(&out).expect("the file") == data,
            "MTU {mtu}: content"
        );
        let s = &stats["stats"];
        assert_eq!(
            s["path"]["max_datagram_size"], payload,
            "MTU {mtu}: {stats}"
        );
        assert_eq!(s["sent"]["mtu_black_holes"], 0, "MTU {mtu}: {stats}");
        println!(
            "MTU {mtu}: settled at {} with {} probes, {} lost",
            s["path"]["max_datagram_size"], s["sent"]["mtu_probes"], s["sent"]["mtu_probes_lost"]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

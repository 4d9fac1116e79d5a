//! The command line's keys (docs/security.md): `rudp keygen`, the
//! server's default identity, and reading one's own traffic with
//! `RUDP_KEYLOG` and `rudp decrypt` (docs/wireshark.md).

mod common;

use common::{rudp, Listening};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn keygen_writes_a_private_file_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("id");
    let path = file.to_str().unwrap();
    let out = rudp(&["keygen", path], b"", LIMIT).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let public = out.stdout.trim().to_string();
    assert_eq!(out.stdout.lines().count(), 1);
    let public = rudp_cli::keys::parse_public(&public).expect("base64 of 32 bytes");
    let private = rudp_cli::keys::read_private(&file).expect("a key file");
    assert_eq!(private.public(), public);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(text.trim().len(), 44, "base64 of 32 bytes: {text:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // An existing file is never replaced, unless --force.
    let again = rudp(&["keygen", path], b"", LIMIT).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let forced = rudp(&["keygen", "--force", path], b"", LIMIT).await;
    assert_eq!(forced.code, Some(0), "{forced:?}");
    assert_ne!(std::fs::read_to_string(&file).unwrap(), text);
}

/// A server run with `--key FILE` presents that key; a client pinned to
/// it connects, and one pinned to another key fails at once naming both.
#[tokio::test]
async fn a_server_presents_its_key_file_and_pinning_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.key");
    let out = rudp(&["keygen", file.to_str().unwrap()], b"", LIMIT).await;
    let public = out.stdout.trim().to_string();
    let server = Listening::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--key",
        file.to_str().unwrap(),
    ])
    .await;
    let addr = server.addr.to_string();
    assert_eq!(
        server.key.map(|k| rudp_cli::keys::encode_public(&k)),
        Some(public.clone())
    );
    let out = rudp(
        &["client", "--server", &addr, "--server-key", &public, "5"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "May\n"),
        "{out:?}"
    );
    let other = rudp_cli::keys::encode_public(&rudp::Keypair::generate([3; 32]).public());
    let out = rudp(
        &["client", "--server", &addr, "--server-key", &other, "5"],
        b"",
        LIMIT,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&public) && out.stderr.contains(&other),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// `RUDP_KEYLOG` on the server, a capture from the proxy, `rudp decrypt`:
/// the capture holds no answer in clear, the decrypted one holds them
/// all, and every sealed packet was opened.
#[tokio::test]
async fn a_key_log_turns_a_capture_to_clear() {
    let dir = tempfile::tempdir().unwrap();
    let clear = dir.path().join("clear.pcapng");
    let (keylog, capture) =
        common::keylogged_capture(dir.path(), &["1", "11"], "January\nNovember\n").await;
    let log = std::fs::read_to_string(&keylog).unwrap();
    assert!(log.starts_with("RUDP_TRAFFIC_V3 "), "{log}");
    let sealed = std::fs::read(&capture).unwrap();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        !find(&sealed, b"November"),
        "an answer in clear in the capture"
    );
    let out = common::decrypt(&keylog, &capture, &clear).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // "decrypted N of M sealed version-3 packets ..."
    let words: Vec<&str> = out.stderr.split_whitespace().collect();
    let (decrypted, of): (u64, u64) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    assert!(decrypted > 0 && decrypted == of, "{}", out.stderr);
    let opened = std::fs::read(&clear).unwrap();
    assert!(find(&opened, b"January") && find(&opened, b"November"));
    // A key log without keys is an error, and writes nothing.
    std::fs::write(&keylog, "# nothing\n").unwrap();
    let none = dir.path().join("none.pcapng");
    let out = common::decrypt(&keylog, &capture, &none).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!none.exists());
}

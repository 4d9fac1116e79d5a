//! The receiving side: write to a temporary file, verify, then put it in
//! place without replacing anything the user did not name (or stream to
//! standard output).

use super::progress::bar;
use super::{safe_name, Offer, Report, Stop, Trailer, TransferError, Verdict, FORMAT_VERSION};
use bytes::Bytes;
use rudp::{Connection, Error as IoError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where received content goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into this directory, under the sender's file name; an existing file
    /// is never replaced unless `--force` was given.
    Dir(PathBuf),
    /// To exactly this path, replaced if it exists: the user named it.
    File(PathBuf),
    /// To standard output (`--out -`): no rename, so a failed check can only
    /// be reported, not undone.
    Stdout,
}

impl Output {
    /// `--out` as given, checked before anything is accepted: `-`, an
    /// existing directory (a trailing `/` says it must be one), or a file
    /// path in an existing directory; none means the current directory.
    pub fn from_arg(arg: Option<&Path>) -> Result<Output, String> {
        let Some(p) = arg else {
            return Ok(Output::Dir(PathBuf::from(".")));
        };
        if p == Path::new("-") {
            return Ok(Output::Stdout);
        }
        if p.is_dir() {
            return Ok(Output::Dir(p.to_path_buf()));
        }
        if p.as_os_str().to_string_lossy().ends_with('/') {
            // `--out DIR/` names a directory: made now, as `mkdir -p` would,
            // so the README's `rudp recv --out received/` works as written;
            // one that cannot be made is an error before anything is
            // accepted (issue #26).
            std::fs::create_dir_all(p)
                .map_err(|e| format!("cannot make the output directory {}: {e}", p.display()))?;
            return Ok(Output::Dir(p.to_path_buf()));
        }
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            return Err(format!(
                "cannot write {}: its directory does not exist",
                p.display()
            ));
        }
        Ok(Output::File(p.to_path_buf()))
    }

    /// The directory files are written in (and partial files kept in).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Output::Dir(d) => Some(d),
            Output::File(f) => Some(
                f.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            ),
            Output::Stdout => None,
        }
    }
}

/// How a receiver treats what senders offer.
#[derive(Debug, Clone)]
pub struct RecvOptions {
    pub output: Output,
    /// Longest wait without progress.
    pub timeout: Duration,
    /// Largest file accepted (`--max-size`).
    pub max_size: u64,
    /// Replace an existing file in the output directory (`--force`).
    pub force: bool,
}

/// Default `--max-size`: 64 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;
/// Room left free on the disk beyond the offered size.
const FREE_SPACE_MARGIN: u64 = 16 << 20;
/// Marks our temporary files: `.NAME.rudp-partial-PID-RANDOM`.
const PARTIAL_MARK: &str = ".rudp-partial-";
/// Other names tried, `NAME.1` to this, before a transfer is refused.
const MAX_RENAMES: u32 = 999;

/// A failed transfer, and whether the peer got as far as a valid offer:
/// a connection that never offers anything is not a transfer.
#[derive(Debug)]
pub struct Failure {
    pub offered: bool,
    pub error: TransferError,
}

/// Removes the temporary file unless the transfer was committed, whatever
/// path the code takes out (error, panic, cancelled task).
struct PartialFile {
    path: PathBuf,
    committed: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Receives one transfer on `conn`. On failure the sender is told why at
/// once, in the connection's CLOSE ([`Stop::Refused`], without the
/// receiver's paths: a sender still pushing data learns it within a round
/// trip, issue #26), and nothing is left at the output.
pub async fn receive(conn: &Connection, opts: &RecvOptions) -> Result<Report, Failure> {
    let mut offered = false;
    let result = receive_inner(conn, opts, &mut offered).await;
    match &result {
        Ok(_) => {
            let verdict = serde_json::to_vec(&Verdict::Ok).unwrap_or_default();
            let _ = conn.send(Bytes::from(verdict)).await;
            let _ = tokio::time::timeout(opts.timeout, conn.close()).await;
        }
        // The connection is gone, or the sender ended it: nothing to tell.
        Err(TransferError::Connection(_) | TransferError::PeerStopped { .. }) => {}
        Err(e) => conn.abort(Stop::Refused.code(), &e.for_peer()),
    }
    result.map_err(|error| Failure { offered, error })
}

async fn next(conn: &Connection, timeout: Duration) -> Result<Bytes, TransferError> {
    match tokio::time::timeout(timeout, conn.recv()).await {
        Err(_) => Err(TransferError::Stalled(timeout)),
        Ok(Err(e)) => Err(TransferError::from_connection(e, "sender")),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(TransferError::Connection(IoError::Closed)),
    }
}

async fn receive_inner(
    conn: &Connection,
    opts: &RecvOptions,
    offered: &mut bool,
) -> Result<Report, TransferError> {
    let offer: Offer = serde_json::from_slice(&next(conn, opts.timeout).await?)
        .map_err(|e| TransferError::Format(format!("unreadable offer: {e}")))?;
    if offer.version != FORMAT_VERSION {
        return Err(TransferError::Format(format!(
            "transfer format {} (this receiver speaks {FORMAT_VERSION})",
            offer.version
        )));
    }
    *offered = true;
    let name = safe_name(&offer.name)
        .ok_or_else(|| TransferError::Format(format!("unusable file name {:?}", offer.name)))?;
    if matches!(opts.output, Output::Dir(_)) && name.starts_with('.') {
        return Err(TransferError::Refused(format!(
            "the file name {:?} starts with a dot (a hidden file); rename it to send it",
            rudp_core::text::printable(&name)
        )));
    }
    if offer.size > opts.max_size {
        return Err(TransferError::Refused(format!(
            "{} bytes offered; this receiver accepts at most {} (--max-size)",
            offer.size, opts.max_size
        )));
    }
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TransferError::Write { path, source }
    };
    if let Some(dir) = opts.output.dir() {
        let available = free_space(dir).map_err(write_err(dir))?;
        if offer.size.saturating_add(FREE_SPACE_MARGIN) > available {
            return Err(TransferError::Refused(format!(
                "{} bytes offered; the receiver's disk has {available} bytes free",
                offer.size
            )));
        }
    }
    let started = Instant::now();

    // The temporary file sits beside the target, so putting it in place is
    // a link or a rename within one directory.
    let mut partial = None;
    let mut sink: Box<dyn AsyncWrite + Unpin + Send> = match opts.output.dir() {
        Some(dir) => {
            let tmp = dir.join(format!(
                ".{name}{PARTIAL_MARK}{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .await
                .map_err(write_err(&tmp))?;
            partial = Some(PartialFile {
                path: tmp,
                committed: false,
            });
            Box::new(tokio::io::BufWriter::with_capacity(256 * 1024, file))
        }
        None => Box::new(tokio::io::stdout()),
    };
    let shown = match &partial {
        Some(p) => p.path.clone(),
        None => PathBuf::from("standard output"),
    };

    let progress = bar(offer.size, &format!("receiving {name}"));
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    while got < offer.size {
        let chunk = next(conn, opts.timeout).await?;
        if got + chunk.len() as u64 > offer.size {
            return Err(TransferError::Format(format!(
                "more data than the {} bytes offered",
                offer.size
            )));
        }
        hasher.update(&chunk);
        sink.write_all(&chunk).await.map_err(write_err(&shown))?;
        got += chunk.len() as u64;
        progress.set_position(got);
    }
    progress.finish_and_clear();
    let trailer: Trailer = serde_json::from_slice(&next(conn, opts.timeout).await?)
        .map_err(|e| TransferError::Format(format!("unreadable trailer: {e}")))?;
    let sha256 = hex::encode(hasher.finalize());
    if trailer.sha256 != sha256 {
        return Err(TransferError::Verify(format!(
            "sha256 {sha256} differs from the sender's {}",
            trailer.sha256
        )));
    }
    sink.flush().await.map_err(write_err(&shown))?;
    drop(sink);
    // Where the file goes: a new name in a directory, or exactly a path
    // (one the user named, or any with --force); nowhere for stdout.
    let destination = match &opts.output {
        Output::Dir(d) if !opts.force => Some(Destination::NewIn(d)),
        Output::Dir(d) => Some(Destination::Exactly(d.join(&name))),
        Output::File(f) => Some(Destination::Exactly(f.clone())),
        Output::Stdout => None,
    };
    let place = match (destination, partial.as_mut()) {
        (Some(destination), Some(p)) => {
            // Durable before visible: sync the data, then put it in place.
            let f = std::fs::File::open(&p.path).map_err(write_err(&p.path))?;
            f.sync_all().map_err(write_err(&p.path))?;
            let placed = match destination {
                Destination::NewIn(d) => place_new(&p.path, d, &name)?,
                Destination::Exactly(t) => rename_over(&p.path, &t)?,
            };
            p.committed = true;
            Some(placed)
        }
        _ => None,
    };
    Ok(Report {
        name: place.map_or(name, |t| t.display().to_string()),
        bytes: got,
        seconds: started.elapsed().as_secs_f64(),
        sha256,
        stats: conn.stats(),
    })
}

/// Where a verified file is put.
enum Destination<'a> {
    /// In this directory, under a name not taken yet.
    NewIn(&'a Path),
    /// At exactly this path, replacing a file there.
    Exactly(PathBuf),
}

/// Moves `tmp` to `target`, replacing whatever file is there.
fn rename_over(tmp: &Path, target: &Path) -> Result<PathBuf, TransferError> {
    std::fs::rename(tmp, target).map_err(|source| TransferError::Write {
        path: target.display().to_string(),
        source,
    })?;
    Ok(target.to_path_buf())
}

/// Puts `tmp` in `dir` under `name`, or `name` with `.1`, `.2`... before
/// its extension if that exists, never replacing a file: a hard link fails
/// if the name is taken, even one created a moment ago.
fn place_new(tmp: &Path, dir: &Path, name: &str) -> Result<PathBuf, TransferError> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    for n in 0..=MAX_RENAMES {
        let candidate = match n {
            0 => dir.join(name),
            n => dir.join(format!("{stem}.{n}{ext}")),
        };
        match std::fs::hard_link(tmp, &candidate) {
            Ok(()) => {
                let _ = std::fs::remove_file(tmp);
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(TransferError::Write {
                    path: candidate.display().to_string(),
                    source,
                })
            }
        }
    }
    Err(TransferError::Refused(format!(
        "{name} and {MAX_RENAMES} other names for it already exist at the receiver"
    )))
}

/// Bytes free for us on the file system holding `dir`.
#[cfg(unix)]
fn free_space(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized,
    // zeroed statvfs that the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// Removes our temporary files in `dir` left by receivers that died
/// (SIGKILL, power loss) before they could clean up: those whose process
/// no longer runs. Returns how many were removed.
pub fn remove_stale_partials(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some((_, tail)) = name.rsplit_once(PARTIAL_MARK) else {
            continue;
        };
        let pid = tail.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let stale = name.starts_with('.') && is_file && pid.is_some_and(|p| !process_alive(p));
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(Output::from_arg(None), Ok(Output::Dir(".".into())));
        assert_eq!(Output::from_arg(Some(Path::new("-"))), Ok(Output::Stdout));
        assert_eq!(Output::from_arg(Some(d)), Ok(Output::Dir(d.into())));
        // `DIR/` is made (issue #26); one that cannot be is an error.
        let made = format!("{}/new/", d.display());
        assert_eq!(
            Output::from_arg(Some(Path::new(&made))),
            Ok(Output::Dir(made.clone().into()))
        );
        assert!(d.join("new").is_dir());
        std::fs::write(d.join("plain"), "x").unwrap();
        let impossible = format!("{}/plain/sub/", d.display());
        let e = Output::from_arg(Some(Path::new(&impossible))).unwrap_err();
        assert!(e.contains("cannot make the output directory"), "{e}");
        let in_missing = d.join("nope/file");
        assert!(Output::from_arg(Some(&in_missing)).is_err());
        let file = d.join("file");
        assert_eq!(
            Output::from_arg(Some(&file)),
            Ok(Output::File(file.clone()))
        );
    }

    #[test]
    fn existing_files_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.txt"), "old").unwrap();
        std::fs::write(d.join("a.1.txt"), "older").unwrap();
        let tmp = d.join(".tmp");
        std::fs::write(&tmp, "new").unwrap();
        let placed = place_new(&tmp, d, "a.txt").unwrap();
        assert_eq!(placed, d.join("a.2.txt"));
        assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "old");
        assert_eq!(std::fs::read_to_string(&placed).unwrap(), "new");
        assert!(!tmp.exists());
    }

    #[test]
    fn only_partials_of_dead_receivers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ours = d.join(format!(".f{PARTIAL_MARK}{}-00", std::process::id()));
        // PID 0x7ffffff0 is above the kernel's pid_max: never alive.
        let dead = d.join(format!(".f{PARTIAL_MARK}{}-00", 0x7fff_fff0u32));
        let unrelated = d.join("f.rudp-partial-notes");
        for p in [&ours, &dead, &unrelated] {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_partials(d), 1);
        assert!(ours.exists() && unrelated.exists() && !dead.exists());
    }
}

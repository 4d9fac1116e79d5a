//! The receiving side: write to a temporary file, verify, then rename into
//! place (or stream to standard output).

use super::progress::bar;
use super::{safe_name, Offer, Report, Trailer, TransferError, Verdict, FORMAT_VERSION};
use crate::io::{Connection, Error as IoError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where received content goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into this directory, under the sender's file name.
    Dir(PathBuf),
    /// To exactly this path.
    File(PathBuf),
    /// To standard output (`--out -`): no rename, so a failed check can only
    /// be reported, not undone.
    Stdout,
}

impl Output {
    /// `--out` as given: `-`, an existing directory, or a file path; none
    /// means the current directory.
    pub fn from_arg(arg: Option<&Path>) -> Output {
        match arg {
            None => Output::Dir(PathBuf::from(".")),
            Some(p) if p == Path::new("-") => Output::Stdout,
            Some(p) if p.is_dir() => Output::Dir(p.to_path_buf()),
            Some(p) => Output::File(p.to_path_buf()),
        }
    }
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

/// Receives one transfer on `conn`. On failure the sender is told why
/// (when the connection still works) and nothing is left at the output.
pub async fn receive(
    conn: &Connection,
    out: &Output,
    timeout: Duration,
) -> Result<Report, TransferError> {
    let result = receive_inner(conn, out, timeout).await;
    let verdict = match &result {
        Ok(_) => Verdict::Ok,
        Err(e) => Verdict::Error {
            reason: e.to_string(),
        },
    };
    if !matches!(result, Err(TransferError::Connection(_))) {
        let _ = conn
            .send(Bytes::from(
                serde_json::to_vec(&verdict).unwrap_or_default(),
            ))
            .await;
        let _ = tokio::time::timeout(timeout, conn.close()).await;
    }
    result
}

async fn next(conn: &Connection, timeout: Duration) -> Result<Bytes, TransferError> {
    match tokio::time::timeout(timeout, conn.recv()).await {
        Err(_) => Err(TransferError::Stalled(timeout)),
        Ok(Err(e)) => Err(TransferError::Connection(e)),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(TransferError::Connection(IoError::Closed)),
    }
}

async fn receive_inner(
    conn: &Connection,
    out: &Output,
    timeout: Duration,
) -> Result<Report, TransferError> {
    let offer: Offer = serde_json::from_slice(&next(conn, timeout).await?)
        .map_err(|e| TransferError::Format(format!("unreadable offer: {e}")))?;
    if offer.version != FORMAT_VERSION {
        return Err(TransferError::Format(format!(
            "transfer format {} (this receiver speaks {FORMAT_VERSION})",
            offer.version
        )));
    }
    let name = safe_name(&offer.name)
        .ok_or_else(|| TransferError::Format(format!("unusable file name {:?}", offer.name)))?;
    let started = Instant::now();
    let target = match out {
        Output::Dir(d) => Some(d.join(&name)),
        Output::File(f) => Some(f.clone()),
        Output::Stdout => None,
    };
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TransferError::Write { path, source }
    };

    // The temporary file sits beside the target, so the rename is atomic.
    let mut partial = None;
    let mut sink: Box<dyn AsyncWrite + Unpin + Send> = match &target {
        Some(t) => {
            let dir = t
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = dir.join(format!(
                ".{name}.rudp-partial-{:016x}",
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
    let shown = target.as_deref().unwrap_or(Path::new("standard output"));

    let progress = bar(offer.size, &format!("receiving {name}"));
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    while got < offer.size {
        let chunk = next(conn, timeout).await?;
        if got + chunk.len() as u64 > offer.size {
            return Err(TransferError::Format(format!(
                "more data than the {} bytes offered",
                offer.size
            )));
        }
        hasher.update(&chunk);
        sink.write_all(&chunk).await.map_err(write_err(shown))?;
        got += chunk.len() as u64;
        progress.set_position(got);
    }
    progress.finish_and_clear();
    let trailer: Trailer = serde_json::from_slice(&next(conn, timeout).await?)
        .map_err(|e| TransferError::Format(format!("unreadable trailer: {e}")))?;
    let sha256 = hex::encode(hasher.finalize());
    if trailer.sha256 != sha256 {
        return Err(TransferError::Verify(format!(
            "sha256 {sha256} differs from the sender's {}",
            trailer.sha256
        )));
    }
    sink.flush().await.map_err(write_err(shown))?;
    drop(sink);
    if let (Some(t), Some(p)) = (&target, partial.as_mut()) {
        // Durable before visible: sync the data, then rename into place.
        let f = std::fs::File::open(&p.path).map_err(write_err(&p.path))?;
        f.sync_all().map_err(write_err(&p.path))?;
        std::fs::rename(&p.path, t).map_err(write_err(t))?;
        p.committed = true;
    }
    Ok(Report {
        name: target.map_or(name, |t| t.display().to_string()),
        bytes: got,
        seconds: started.elapsed().as_secs_f64(),
        sha256,
        stats: conn.stats(),
    })
}

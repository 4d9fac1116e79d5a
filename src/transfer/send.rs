//! The sending side: stream a file, then wait for the receiver's verdict.

use super::progress::bar;
use super::{Offer, Report, Stop, Trailer, TransferError, Verdict, CHUNK, FORMAT_VERSION};
use bytes::{Bytes, BytesMut};
use rudp::Endpoint;
use rudp_core::endpoint::EndpointConfig;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Sends `path` to a receiver at `to`. `timeout` bounds the handshake and
/// any wait for the receiver without progress. When `stop` completes
/// (Ctrl-C, SIGTERM), the transfer ends at once: the receiver is told in
/// the connection's CLOSE ([`Stop::Interrupted`]) and removes what it had
/// (issue #26).
pub async fn send_file(
    path: &Path,
    to: SocketAddr,
    config: EndpointConfig,
    timeout: Duration,
    trace: Option<(&Path, rudp::TraceLevel)>,
    stop: impl Future<Output = ()>,
) -> Result<Report, TransferError> {
    let read_err = |source| TransferError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let meta = file.metadata().await.map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());

    let endpoint = Endpoint::client(to, config)?;
    if let Some((t, level)) = trace {
        endpoint
            .trace_to_level(t, level)
            .map_err(|source| TransferError::Write {
                path: t.display().to_string(),
                source,
            })?;
    }
    tokio::pin!(stop);
    let conn = tokio::select! {
        c = endpoint.connect(to) => c?,
        () = &mut stop => return Err(TransferError::Interrupted { peer: "receiver" }),
    };
    let sending = Sending {
        path,
        file,
        name,
        size: meta.len(),
        timeout,
    };
    tokio::select! {
        r = sending.run(&conn) => {
            let r = r.map_err(|e| match e {
                TransferError::Connection(e) => TransferError::from_connection(e, "receiver"),
                e => e,
            });
            if let Err(TransferError::Read { .. }) = &r {
                conn.abort(Stop::Failed.code(), "the sender cannot read the file");
            }
            if !matches!(r, Err(TransferError::Connection(_))) {
                endpoint.linger(crate::LINGER).await;
            }
            r
        }
        () = &mut stop => {
            conn.abort(Stop::Interrupted.code(), "the sender was interrupted");
            endpoint.linger(crate::LINGER).await;
            Err(TransferError::Interrupted { peer: "receiver" })
        }
    }
}

/// One file on its way: what [`send_file`] streams once connected.
struct Sending<'a> {
    path: &'a Path,
    file: tokio::fs::File,
    name: String,
    size: u64,
    timeout: Duration,
}

impl Sending<'_> {
    async fn run(mut self, conn: &rudp::Connection) -> Result<Report, TransferError> {
        let read_err = |source| TransferError::Read {
            path: self.path.display().to_string(),
            source,
        };
        let (size, timeout) = (self.size, self.timeout);
        let started = Instant::now();
        let offer = Offer {
            version: FORMAT_VERSION,
            name: self.name.clone(),
            size,
        };
        conn.send(Bytes::from(json(&offer))).await?;

        let progress = bar(size, &format!("sending {}", self.name));
        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        loop {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = self.file.read(&mut buf).await.map_err(read_err)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            sent += n as u64;
            if sent > size {
                break;
            }
            hasher.update(&buf);
            tokio::time::timeout(timeout, conn.send(buf.freeze()))
                .await
                .map_err(|_| TransferError::Stalled(timeout))??;
            progress.set_position(sent);
        }
        progress.finish_and_clear();
        if sent != size {
            // The file changed while being read: the offer would be a lie.
            conn.abort(Stop::Failed.code(), "the file changed while being sent");
            return Err(read_err(std::io::Error::other(format!(
                "the file changed while being sent ({size} bytes announced, {sent} read)"
            ))));
        }
        let sha256 = hex::encode(hasher.finalize());
        conn.send(Bytes::from(json(&Trailer {
            sha256: sha256.clone(),
        })))
        .await?;

        // The receiver answers once everything arrived and verified; a
        // refusal comes as its CLOSE, with the reason.
        let verdict = tokio::time::timeout(timeout + Duration::from_secs(60), conn.recv())
            .await
            .map_err(|_| TransferError::Stalled(timeout))??
            .ok_or_else(|| TransferError::Format("the receiver closed without a verdict".into()))?;
        let verdict: Verdict = serde_json::from_slice(&verdict)
            .map_err(|e| TransferError::Format(format!("unreadable verdict: {e}")))?;
        let seconds = started.elapsed().as_secs_f64();
        let _ = tokio::time::timeout(timeout, conn.close()).await;
        match verdict {
            Verdict::Ok => Ok(Report {
                name: self.name,
                bytes: size,
                seconds,
                sha256,
                stats: conn.stats(),
            }),
            // The receiver's words, printed later: nothing a terminal acts on.
            Verdict::Error { reason } => {
                Err(TransferError::Refused(rudp_core::text::printable(&reason)))
            }
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

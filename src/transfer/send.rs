//! The sending side: stream a file, then wait for the receiver's verdict.

use super::progress::bar;
use super::{Offer, Report, Trailer, TransferError, Verdict, CHUNK, FORMAT_VERSION};
use bytes::{Bytes, BytesMut};
use rudp::Endpoint;
use rudp_core::endpoint::EndpointConfig;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Sends `path` to a receiver at `to`. `timeout` bounds the handshake and
/// any wait for the receiver without progress.
pub async fn send_file(
    path: &Path,
    to: SocketAddr,
    config: EndpointConfig,
    timeout: Duration,
    trace: Option<(&Path, rudp::TraceLevel)>,
) -> Result<Report, TransferError> {
    let read_err = |source| TransferError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
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
    let size = meta.len();

    let endpoint = Endpoint::client(to, config)?;
    if let Some((t, level)) = trace {
        endpoint
            .trace_to_level(t, level)
            .map_err(|source| TransferError::Write {
                path: t.display().to_string(),
                source,
            })?;
    }
    let conn = endpoint.connect(to).await?;
    let started = Instant::now();
    let offer = Offer {
        version: FORMAT_VERSION,
        name: name.clone(),
        size,
    };
    conn.send(Bytes::from(json(&offer))).await?;

    let progress = bar(size, &format!("sending {name}"));
    let mut hasher = Sha256::new();
    let mut sent = 0u64;
    loop {
        let mut buf = BytesMut::zeroed(CHUNK);
        let n = file.read(&mut buf).await.map_err(read_err)?;
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
        conn.abort(
            rudp::VarInt::from_u32(1),
            "the file changed while being sent",
        );
        return Err(read_err(std::io::Error::other(format!(
            "the file changed while being sent ({size} bytes announced, {sent} read)"
        ))));
    }
    let sha256 = hex::encode(hasher.finalize());
    conn.send(Bytes::from(json(&Trailer {
        sha256: sha256.clone(),
    })))
    .await?;

    // The receiver answers once everything arrived and verified.
    let verdict = tokio::time::timeout(timeout + Duration::from_secs(60), conn.recv())
        .await
        .map_err(|_| TransferError::Stalled(timeout))??
        .ok_or_else(|| TransferError::Format("the receiver closed without a verdict".into()))?;
    let verdict: Verdict = serde_json::from_slice(&verdict)
        .map_err(|e| TransferError::Format(format!("unreadable verdict: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    if let Ok(Ok(())) = tokio::time::timeout(timeout, conn.close()).await {
        endpoint.linger(crate::LINGER).await;
    }
    match verdict {
        Verdict::Ok => Ok(Report {
            name,
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

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

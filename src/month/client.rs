//! `rudp client`: asks the month service, one request per argument or per
//! line of input, and prints one line per request on standard output.
//!
//! Requests go out as soon as they are read, without waiting for earlier
//! answers; answers are printed (and flushed) as they arrive. Since rudp
//! delivers in order, the n-th answer is the n-th request's. A reader task
//! feeds requests and tells the printing loop, through a channel, what each
//! one expects, *before* sending it, so an answer can never overtake its
//! own entry in the queue.

use super::{answer, Answer, ERROR_PREFIX};
use bytes::Bytes;
use rudp::{Connection, Endpoint, Secs};
use rudp_core::config::Config;
use rudp_core::endpoint::EndpointConfig;
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Lines longer than this are rejected by the client itself (PROTOCOL
/// messages could be larger, but no month needs more).
pub const MAX_LINE: usize = 64 * 1024;

/// The client's exit status (docs/month.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientExit {
    /// Every request was answered with a month.
    AllMonths = 0,
    /// The server could not be reached or the connection failed.
    Failed = 1,
    /// At least one request was rejected.
    SomeRejected = 2,
    /// Ctrl-C or SIGTERM: the server was told at once (issue #26), and
    /// the status is 130, as shells report an interrupted command.
    Interrupted = 130,
}

/// Where requests come from.
pub enum Input {
    /// One request per command-line argument.
    Args(Vec<String>),
    /// One request per line; `prompt` shows `month> ` on standard error
    /// whenever every answer so far has been printed (when standard input
    /// is a terminal).
    Lines {
        reader: Box<dyn AsyncBufRead + Unpin + Send>,
        prompt: bool,
    },
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub server: SocketAddr,
    /// How long to wait without progress from the server.
    pub timeout: Duration,
    /// Write an event trace of the connection here (docs/trace.md).
    pub trace: Option<std::path::PathBuf>,
    /// What that trace records.
    pub trace_level: rudp::TraceLevel,
    /// Connection settings (key, congestion controller); the idle timeout
    /// is replaced by `timeout`.
    pub connection: Config,
}

impl ClientOptions {
    /// Options to ask `server`, waiting at most `timeout` for progress, with
    /// default connection settings and no trace.
    pub fn new(server: SocketAddr, timeout: Duration) -> Self {
        Self {
            server,
            timeout,
            trace: None,
            trace_level: rudp::TraceLevel::default(),
            connection: Config::default(),
        }
    }
}

/// What the printing loop expects next, in request order.
#[derive(Debug)]
enum Expect {
    /// An answer from the server.
    Answer,
    /// A request the client rejected itself; print this line.
    Local(String),
    /// The server's goodbye to `0`.
    Goodbye,
    /// No more requests.
    EndOfInput,
}

/// What a session did, for the summary line and `--stats-json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionReport {
    pub server: SocketAddr,
    pub seconds: f64,
    /// Message bytes received per second over the session.
    pub goodput_bytes_per_sec: f64,
    pub stats: rudp_core::conn::Stats,
}

impl SessionReport {
    pub fn summary(&self) -> String {
        format!(
            "stats: {}; goodput {:.1} kB/s over {:.2} s",
            self.stats.summary(),
            self.goodput_bytes_per_sec / 1e3,
            self.seconds
        )
    }
}

/// Runs one session. Answers go to `out`, everything else to `err`.
pub async fn run(
    opts: &ClientOptions,
    input: Input,
    out: &mut (impl AsyncWrite + Unpin),
    err: &mut impl Write,
) -> ClientExit {
    run_with_report(opts, input, out, err).await.0
}

/// Like [`run`], also returning what the connection did (none if no
/// connection was made).
pub async fn run_with_report(
    opts: &ClientOptions,
    input: Input,
    out: &mut (impl AsyncWrite + Unpin),
    err: &mut impl Write,
) -> (ClientExit, Option<SessionReport>) {
    run_until(opts, input, out, err, std::future::pending()).await
}

/// Like [`run_with_report`], ending early when `stop` completes (Ctrl-C,
/// SIGTERM): the connection is aborted with [`INTERRUPTED`] so that the
/// server lets it go at once instead of waiting for it.
pub async fn run_until(
    opts: &ClientOptions,
    input: Input,
    out: &mut (impl AsyncWrite + Unpin),
    err: &mut impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> (ClientExit, Option<SessionReport>) {
    let started = std::time::Instant::now();
    let (exit, conn) = session(opts, input, out, err, stop).await;
    let report = conn.map(|c| {
        let stats = c.stats();
        let seconds = started.elapsed().as_secs_f64();
        SessionReport {
            server: opts.server,
            seconds,
            goodput_bytes_per_sec: stats.received.bytes_delivered as f64 / seconds.max(1e-9),
            stats,
        }
    });
    (exit, report)
}

/// The application error code of a client's CLOSE when it is interrupted.
pub const INTERRUPTED: rudp::VarInt = rudp::VarInt::from_u32(130);

async fn session(
    opts: &ClientOptions,
    input: Input,
    out: &mut (impl AsyncWrite + Unpin),
    err: &mut impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> (ClientExit, Option<Connection>) {
    tokio::pin!(stop);
    let config = match opts
        .connection
        .to_builder()
        .idle_timeout(opts.timeout)
        .build()
    {
        Ok(c) => EndpointConfig::new(c),
        Err(e) => {
            let _ = writeln!(err, "error: --timeout: {e}");
            return (ClientExit::Failed, None);
        }
    };
    let endpoint = match Endpoint::client(opts.server, config) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "error: cannot open a socket: {e}");
            return (ClientExit::Failed, None);
        }
    };
    if let Some(path) = &opts.trace {
        if let Err(e) = endpoint.trace_to_level(path, opts.trace_level) {
            let _ = writeln!(err, "error: cannot write the trace {}: {e}", path.display());
            return (ClientExit::Failed, None);
        }
    }
    let connected = tokio::select! {
        c = endpoint.connect(opts.server) => c,
        () = &mut stop => return (ClientExit::Interrupted, None),
    };
    let conn = match connected {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            if let Some(hint) = crate::report::hint(&e) {
                let _ = writeln!(err, "{hint}");
            }
            return (ClientExit::Failed, None);
        }
    };
    let greeting = tokio::select! {
        g = tokio::time::timeout(opts.timeout, conn.recv()) => g,
        () = &mut stop => {
            conn.abort(INTERRUPTED, "the client was interrupted");
            endpoint.linger(crate::LINGER).await;
            return (ClientExit::Interrupted, Some(conn));
        }
    };
    match greeting {
        Ok(Ok(Some(greeting))) => {
            let _ = writeln!(err, "{}", rudp_core::text::printable_bytes(&greeting));
        }
        Ok(Ok(None)) => {
            let _ = writeln!(err, "error: the server closed the connection at once");
            return (ClientExit::Failed, Some(conn));
        }
        Ok(Err(e)) => {
            let _ = writeln!(err, "error: {e}");
            return (ClientExit::Failed, Some(conn));
        }
        Err(_) => {
            let _ = writeln!(
                err,
                "error: no greeting from {} after {}",
                opts.server,
                Secs(opts.timeout)
            );
            return (ClientExit::Failed, Some(conn));
        }
    }

    let prompt = matches!(input, Input::Lines { prompt: true, .. });
    let (tx, rx) = mpsc::unbounded_channel();
    let feeder = tokio::spawn(feed(conn.clone(), input, tx));
    let status = tokio::select! {
        s = print_answers(opts, &conn, rx, prompt, out, err) => s,
        () = &mut stop => {
            feeder.abort();
            conn.abort(INTERRUPTED, "the client was interrupted");
            endpoint.linger(crate::LINGER).await;
            return (ClientExit::Interrupted, Some(conn));
        }
    };
    feeder.abort();
    if status != ClientExit::Failed {
        match tokio::time::timeout(opts.timeout, conn.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = writeln!(err, "warning: closing the connection: {e}");
            }
            Err(_) => {
                let _ = writeln!(err, "warning: the server did not confirm the close");
            }
        }
        endpoint.linger(crate::LINGER).await;
    }
    (status, Some(conn))
}

/// The printing loop: one line per request, in order, flushed at once.
/// With `prompt`, shows `month> ` on `err` whenever every answer is out.
async fn print_answers(
    opts: &ClientOptions,
    conn: &Connection,
    mut rx: mpsc::UnboundedReceiver<Expect>,
    prompt: bool,
    out: &mut (impl AsyncWrite + Unpin),
    err: &mut impl Write,
) -> ClientExit {
    let mut queue: VecDeque<Expect> = VecDeque::new();
    let mut input_done = false;
    let mut rejected = false;
    let mut progress_at = tokio::time::Instant::now();
    let mut prompted = false;
    loop {
        if prompt && !prompted && queue.is_empty() && !input_done {
            let _ = write!(err, "month> ");
            let _ = err.flush();
            prompted = true;
        }
        // Lines the client rejected itself are printed once they are next.
        if print_local(&mut queue, out, &mut rejected).await.is_err() {
            return ClientExit::Failed;
        }
        if input_done && queue.is_empty() {
            return if rejected {
                ClientExit::SomeRejected
            } else {
                ClientExit::AllMonths
            };
        }
        let awaiting_server = !queue.is_empty();
        tokio::select! {
            // Announcements first: an answer must find its entry queued.
            biased;
            // The reader queued a request (or ran out of them).
            item = rx.recv(), if !input_done => match item {
                Some(Expect::EndOfInput) | None => input_done = true,
                Some(e) => {
                    if !awaiting_server {
                        progress_at = tokio::time::Instant::now();
                    }
                    queue.push_back(e);
                    prompted = false;
                }
            },
            // The server answered.
            msg = conn.recv() => {
                progress_at = tokio::time::Instant::now();
                match msg {
                    Ok(Some(m)) => {
                        // Every request is announced before it is sent, so
                        // this answer's announcement is in the channel by now
                        // if it is not yet in the queue: take them all.
                        while let Ok(e) = rx.try_recv() {
                            match e {
                                Expect::EndOfInput => input_done = true,
                                e => queue.push_back(e),
                            }
                        }
                        // Lines the client rejected itself come first.
                        if print_local(&mut queue, out, &mut rejected).await.is_err() {
                            return ClientExit::Failed;
                        }
                        // One line per answer, nothing the terminal acts on,
                        // whatever the server sends (issue #12 item 14).
                        let text = rudp_core::text::printable_bytes(&m);
                        match queue.pop_front() {
                            Some(Expect::Answer) => {
                                rejected |= text.starts_with(ERROR_PREFIX);
                                if write_line(out, &text).await.is_err() {
                                    return ClientExit::Failed;
                                }
                            }
                            Some(Expect::Goodbye) => {
                                let _ = writeln!(err, "{text}");
                                input_done = true;
                            }
                            other => {
                                let _ = writeln!(err, "error: unexpected message from the server: {text:?}");
                                if let Some(o) = other { queue.push_front(o); }
                                return ClientExit::Failed;
                            }
                        }
                    }
                    Ok(None) => {
                        let pending = queue.iter().filter(|e| matches!(e, Expect::Answer)).count();
                        if pending > 0 {
                            let _ = writeln!(err, "error: the server closed the connection with {pending} request(s) unanswered");
                            return ClientExit::Failed;
                        }
                        if !input_done {
                            let _ = writeln!(err, "error: the server closed the connection");
                            return ClientExit::Failed;
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(err, "error: {e}");
                        return ClientExit::Failed;
                    }
                }
            }
            // Requests are outstanding and the server has been silent too long.
            () = tokio::time::sleep_until(progress_at + opts.timeout), if awaiting_server => {
                let _ = writeln!(err, "error: no answer from {} for {}", opts.server, Secs(opts.timeout));
                return ClientExit::Failed;
            }
        }
    }
}

/// Prints the client's own rejections at the front of the queue.
async fn print_local(
    queue: &mut VecDeque<Expect>,
    out: &mut (impl AsyncWrite + Unpin),
    rejected: &mut bool,
) -> std::io::Result<()> {
    while let Some(Expect::Local(line)) = queue.front() {
        write_line(out, line).await?;
        *rejected = true;
        queue.pop_front();
    }
    Ok(())
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes()).await?;
    out.write_all(b"\n").await?;
    out.flush().await
}

/// The reader task: turns input into requests, in order.
async fn feed(conn: Connection, input: Input, tx: mpsc::UnboundedSender<Expect>) {
    match input {
        Input::Args(args) => {
            for a in args {
                if !request(&conn, a.into_bytes(), false, &tx).await {
                    break;
                }
            }
        }
        Input::Lines { mut reader, .. } => loop {
            match read_line_capped(&mut reader, MAX_LINE).await {
                Ok(Some((line, too_long))) => {
                    if !request(&conn, line, too_long, &tx).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("error: cannot read standard input: {e}");
                    break;
                }
            }
        },
    }
    let _ = tx.send(Expect::EndOfInput);
}

/// Sends one request; false once the session must end.
async fn request(
    conn: &Connection,
    line: Vec<u8>,
    too_long: bool,
    tx: &mpsc::UnboundedSender<Expect>,
) -> bool {
    if too_long {
        let why = format!(
            "{ERROR_PREFIX}request too long (more than {MAX_LINE} bytes): send a number from 1 to 12"
        );
        return tx.send(Expect::Local(why)).is_ok();
    }
    let end = answer(&line) == Answer::End;
    let expect = if end { Expect::Goodbye } else { Expect::Answer };
    // Announce before sending: the answer cannot arrive before its entry.
    if tx.send(expect).is_err() {
        return false;
    }
    if conn.send(Bytes::from(line)).await.is_err() {
        return false; // The printing loop reports the connection's failure.
    }
    !end
}

/// Reads one line without its `\n` (or `\r\n`), keeping at most `cap`
/// bytes; the flag says whether the line was longer. `None` at end of input.
pub async fn read_line_capped(
    reader: &mut (impl AsyncBufRead + Unpin),
    cap: usize,
) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut saw_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        saw_any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = cap.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !saw_any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some((line, too_long)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_split() {
        let data = b"1\r\n\nabcdefgh\nlast".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(3, &data[..]);
        let mut got = Vec::new();
        while let Some(l) = read_line_capped(&mut r, 4).await.unwrap() {
            got.push(l);
        }
        assert_eq!(
            got,
            vec![
                (b"1".to_vec(), false),
                (b"".to_vec(), false),
                (b"abcd".to_vec(), true),
                (b"last".to_vec(), false)
            ]
        );
    }
}

//! Version 2 through the async API (issue #14, PROTOCOL.md §15): streams
//! opened and accepted by either side, their `Stream`/`Sink` adapters,
//! expiring messages, datagrams, resets, and a version-1 server.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rudp::{
    Config, Connection, Delivery, Endpoint, EndpointConfig, Error, Received, Reliability,
    StreamOptions, VarInt,
};
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn pair_with(server_config: Config) -> (Endpoint, Endpoint, Connection, Connection) {
    let server = Endpoint::server(loopback(), EndpointConfig::new(server_config)).expect("bind");
    let addr = server.local_addr();
    let client = Endpoint::client(addr, EndpointConfig::default()).expect("bind");
    let c = client.connect(addr).await.expect("connect");
    c.send(Bytes::from_static(b"hello")).await.unwrap();
    let s = tokio::time::timeout(LIMIT, server.accept())
        .await
        .expect("accepted in time")
        .expect("a connection");
    assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"hello"[..]));
    (client, server, c, s)
}

#[tokio::test]
async fn streams_open_both_ways_and_adapt_to_stream_and_sink() {
    let (_ce, _se, c, s) = pair_with(Config::default()).await;
    assert_eq!(c.version(), 2);
    let a = c.open_stream(StreamOptions::new()).await.unwrap();
    let mut sink = a.sink(Reliability::Reliable);
    for i in 0..100u32 {
        sink.send(Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    sink.close().await.unwrap();
    let incoming = tokio::time::timeout(LIMIT, s.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .expect("a stream");
    assert_eq!(incoming.id(), a.id());
    let got: Vec<Received> = incoming.messages().map(|r| r.unwrap()).collect().await;
    let want: Vec<Received> = (0..100u32)
        .map(|i| Received::Message(Bytes::from(i.to_be_bytes().to_vec())))
        .collect();
    assert_eq!(got, want, "in order, then the end of the stream");
    // The server opens one of its own; the client accepts it.
    let b = s
        .open_stream(StreamOptions::new().priority(3))
        .await
        .unwrap();
    b.send(Bytes::from_static(b"from the server"))
        .await
        .unwrap();
    let on_client = tokio::time::timeout(LIMIT, c.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .expect("a stream");
    assert_eq!(
        on_client.recv().await.unwrap(),
        Some(Received::Message(Bytes::from_static(b"from the server")))
    );
}

/// A side that waits for the peer's streams learns when there will be no
/// more: the peer's graceful close (its first stream's end, §15.9) ends
/// `accept_stream` with `None` after every stream it opened, without this
/// side closing first.
#[tokio::test]
async fn accept_stream_ends_when_the_peer_closes() {
    let (_ce, _se, c, s) = pair_with(Config::default()).await;
    let opened = c.open_stream(StreamOptions::new()).await.unwrap();
    opened
        .send(Bytes::from_static(b"last words"))
        .await
        .unwrap();
    opened.finish().unwrap();
    let closing = tokio::spawn(async move { c.close().await });
    let mut accepted = Vec::new();
    let ended = tokio::time::timeout(LIMIT, async {
        while let Some(stream) = s.accept_stream().await.unwrap() {
            accepted.push(stream.recv().await.unwrap());
        }
    })
    .await;
    assert!(ended.is_ok(), "accept_stream waited for our own close");
    assert_eq!(
        accepted,
        vec![Some(Received::Message(Bytes::from_static(b"last words")))]
    );
    s.close().await.unwrap();
    closing.await.unwrap().unwrap();
}

/// Issue #24 item 5: an accepted stream shows how the peer sends on it;
/// priorities are each side's own.
#[tokio::test]
async fn an_accepted_stream_shows_its_mode() {
    let (_ce, _se, c, s) = pair_with(Config::default()).await;
    let ticks = c
        .open_stream(StreamOptions::new().unordered().priority(7))
        .await
        .unwrap();
    ticks.send(Bytes::from_static(b"tick")).await.unwrap();
    let accepted = tokio::time::timeout(LIMIT, s.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .expect("a stream");
    let info = accepted.info().unwrap();
    assert_eq!(
        (info.sending, info.receiving, info.priority),
        (Delivery::Ordered, Delivery::Unordered, 0)
    );
    let mine = ticks.info().unwrap();
    assert_eq!((mine.sending, mine.priority), (Delivery::Unordered, 7));
}

#[tokio::test]
async fn datagrams_and_resets_reach_the_peer() {
    let (_ce, _se, c, s) = pair_with(Config::default()).await;
    let max = c.max_datagram_payload().expect("datagrams allowed");
    assert!(matches!(
        c.send_datagram(Bytes::from(vec![0; max + 1])),
        Err(Error::DatagramTooLarge { .. })
    ));
    // A datagram is never resent: on a busy machine one can be lost to a
    // full socket buffer, so send it again until one arrives.
    let mut got = None;
    for _ in 0..50 {
        c.send_datagram(Bytes::from_static(b"tick")).unwrap();
        if let Ok(d) = tokio::time::timeout(Duration::from_millis(400), s.recv_datagram()).await {
            got = Some(d.unwrap());
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"tick"[..]));

    let a = c.open_stream(StreamOptions::new()).await.unwrap();
    a.send_with(
        Bytes::from_static(b"x"),
        Reliability::Lifetime(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    a.reset(VarInt::from_u32(42)).unwrap();
    let incoming = tokio::time::timeout(LIMIT, s.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .expect("a stream");
    // The message may or may not have arrived before the reset; the reset
    // always does.
    let mut outcome = incoming.recv().await;
    if matches!(outcome, Ok(Some(_))) {
        outcome = incoming.recv().await;
    }
    assert!(
        matches!(outcome, Err(Error::StreamReset { code: 42 })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_version_1_server_leaves_the_first_stream_working() {
    let old = Config::builder().version(1).build().unwrap();
    let (_ce, _se, c, s) = pair_with(old).await;
    assert_eq!(c.version(), 1);
    assert!(matches!(
        c.open_stream(StreamOptions::new()).await,
        Err(Error::Unsupported)
    ));
    assert!(matches!(
        c.send_datagram(Bytes::from_static(b"x")),
        Err(Error::Unsupported)
    ));
    assert!(matches!(
        c.set_datagram_priority(3),
        Err(Error::Unsupported)
    ));
    s.send(Bytes::from_static(b"still here")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().as_deref(), Some(&b"still here"[..]));
}

#[tokio::test]
async fn each_refusal_names_its_own_reason() {
    // A version-2 peer that takes no datagrams is not a version-1 peer.
    let no_datagrams = Config::builder()
        .datagram_receive_queue(0)
        .idle_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let (_ce, se, c, s) = pair_with(no_datagrams).await;
    assert_eq!(c.version(), 2);
    let refused = c.send_datagram(Bytes::from_static(b"x"));
    assert!(
        matches!(refused, Err(Error::DatagramsRefused)),
        "{refused:?}"
    );
    let refused = c.set_datagram_priority(3);
    assert!(
        matches!(refused, Err(Error::DatagramsRefused)),
        "{refused:?}"
    );
    // The first stream ends with the connection, and says so.
    let first = c.stream();
    assert!(matches!(
        first.reset(VarInt::from_u32(1)),
        Err(Error::FirstStream)
    ));
    assert!(matches!(
        first.stop(VarInt::from_u32(1)),
        Err(Error::FirstStream)
    ));
    // The version stays readable after the connection is gone.
    let (closed, _) = tokio::time::timeout(LIMIT, async { tokio::join!(c.close(), s.close()) })
        .await
        .expect("closed in time");
    closed.unwrap();
    // The server's side lingers until its short idle timeout, then goes.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while se.connection_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.version(), 2, "once the connection is gone");
}

/// Who opened the stream under test.
#[derive(Clone, Copy, Debug)]
enum Opener {
    Client,
    Server,
}

/// Which side writes in the direction under test.
#[derive(Clone, Copy, Debug)]
enum Writer {
    Opener,
    Acceptor,
}

/// How the direction under test ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Fin,
    NotYet,
    Reset,
    Stop,
}

async fn next(stream: &rudp::Stream) -> Result<Option<Received>, Error> {
    tokio::time::timeout(LIMIT, stream.recv())
        .await
        .expect("an answer in time")
}

fn message(m: &'static [u8]) -> Option<Received> {
    Some(Received::Message(Bytes::from_static(m)))
}

/// One case of §15.2's "streams are bidirectional": the direction under
/// test carries two messages and ends as `ending` says; the other
/// direction then still carries a message and a FIN; and once both
/// directions are over, reading goes on answering "finished".
async fn one_direction(opener: Opener, writer: Writer, ending: Ending) {
    let case = format!("{opener:?} opens, {writer:?} writes, ending {ending:?}");
    let (_ce, _se, c, s) = pair_with(Config::default()).await;
    let (o_conn, a_conn) = match opener {
        Opener::Client => (&c, &s),
        Opener::Server => (&s, &c),
    };
    let o = o_conn.open_stream(StreamOptions::new()).await.unwrap();
    o.send(Bytes::from_static(b"hello")).await.unwrap();
    let a = tokio::time::timeout(LIMIT, a_conn.accept_stream())
        .await
        .expect("accepted in time")
        .unwrap()
        .expect("a stream");
    assert_eq!(next(&a).await.unwrap(), message(b"hello"), "{case}");
    let (w, r, w_conn) = match writer {
        Writer::Opener => (&o, &a, o_conn),
        Writer::Acceptor => (&a, &o, a_conn),
    };
    w.send(Bytes::from_static(b"m1")).await.unwrap();
    w.send(Bytes::from_static(b"m2")).await.unwrap();
    assert_eq!(next(r).await.unwrap(), message(b"m1"), "{case}");
    assert_eq!(next(r).await.unwrap(), message(b"m2"), "{case}");
    match ending {
        Ending::Fin => {
            w.finish().unwrap();
            let delivered = tokio::time::timeout(LIMIT, w.delivered()).await;
            assert!(matches!(delivered, Ok(Ok(()))), "{case}: {delivered:?}");
            let buffered = w_conn.stats().buffers.send_buffered;
            assert_eq!(buffered, 0, "{case}: delivered, yet still buffered");
            assert_eq!(next(r).await.unwrap(), None, "{case}");
        }
        Ending::NotYet => {
            let wait = tokio::time::timeout(Duration::from_millis(100), r.recv()).await;
            assert!(wait.is_err(), "{case}: still open, got {wait:?}");
            let delivered = tokio::time::timeout(LIMIT, w.delivered()).await;
            assert!(matches!(delivered, Ok(Ok(()))), "{case}: {delivered:?}");
        }
        Ending::Reset => {
            w.reset(VarInt::from_u32(7)).unwrap();
            let got = next(r).await;
            assert!(
                matches!(got, Err(Error::StreamReset { code: 7 })),
                "{case}: {got:?}"
            );
            let delivered = w.delivered().await;
            assert!(
                matches!(delivered, Err(Error::StreamFinished)),
                "{case}: {delivered:?}"
            );
        }
        Ending::Stop => {
            r.stop(VarInt::from_u32(9)).unwrap();
            let deadline = tokio::time::Instant::now() + LIMIT;
            let stopped = loop {
                match w.send(Bytes::from_static(b"more")).await {
                    Err(e) => break e,
                    Ok(()) => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "{case}: never stopped"
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            assert!(
                matches!(stopped, Error::StreamStopped { code: 9 }),
                "{case}: {stopped:?}"
            );
            let delivered = w.delivered().await;
            assert!(
                matches!(delivered, Err(Error::StreamStopped { code: 9 })),
                "{case}: {delivered:?}"
            );
        }
    }
    // The other direction is untouched by how this one ended.
    r.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(next(w).await.unwrap(), message(b"back"), "{case}");
    r.finish().unwrap();
    assert_eq!(next(w).await.unwrap(), None, "{case}");
    // Once both directions are over, the stream may be forgotten: reading
    // still answers "finished", never "no such stream".
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(next(w).await.unwrap(), None, "{case}: read again");
    if let Ending::Fin = ending {
        assert_eq!(next(r).await.unwrap(), None, "{case}: read again");
    }
    // Every direction ends, however it ended (§15.8.7: a stopped direction
    // that never sent a FIN is reset), so a graceful close completes.
    let (closed_c, closed_s) =
        tokio::time::timeout(LIMIT, async { tokio::join!(c.close(), s.close()) })
            .await
            .unwrap_or_else(|_| panic!("{case}: the graceful close hangs"));
    assert!(
        closed_c.is_ok() && closed_s.is_ok(),
        "{case}: {closed_c:?} {closed_s:?}"
    );
}

#[tokio::test]
async fn streams_carry_both_directions_whoever_opened_them() {
    for opener in [Opener::Client, Opener::Server] {
        for writer in [Writer::Opener, Writer::Acceptor] {
            for ending in [Ending::Fin, Ending::NotYet, Ending::Reset, Ending::Stop] {
                one_direction(opener, writer, ending).await;
            }
        }
    }
}

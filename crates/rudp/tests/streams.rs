//! Version 2 through the async API (issue #14, PROTOCOL.md §15): streams
//! opened and accepted by either side, their `Stream`/`Sink` adapters,
//! expiring messages, datagrams, resets, and a version-1 server.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rudp::{
    Config, Connection, Endpoint, EndpointConfig, Error, Received, Reliability, StreamOptions,
    VarInt,
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
    s.send(Bytes::from_static(b"still here")).await.unwrap();
    assert_eq!(c.recv().await.unwrap().as_deref(), Some(&b"still here"[..]));
}

//! The async API's primitives and adapters (issue #13): `poll_*` under the
//! async methods, the `Stream` and `Sink` adapters, `closed()`,
//! `connect_with`, checked abort codes, cancel-safe `recv`, and the
//! constructors that bind without awaiting.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rudp::{
    Config, Connection, ConnectionError, Endpoint, EndpointConfig, Error, Received, Reliability,
    VarInt,
};
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server whose connections are handed to the test through a channel.
fn server() -> (Endpoint, tokio::sync::mpsc::UnboundedReceiver<Connection>) {
    let ep = Endpoint::server(loopback(), EndpointConfig::default()).expect("bind");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let accepting = ep.clone();
    tokio::spawn(async move {
        while let Some(c) = accepting.accept().await {
            if tx.send(c).is_err() {
                break;
            }
        }
    });
    (ep, rx)
}

async fn pair() -> (Endpoint, Endpoint, Connection, Connection) {
    let (server, mut incoming) = server();
    let addr = server.local_addr();
    let client = Endpoint::client(addr, EndpointConfig::default()).expect("bind");
    let c = client.connect(addr).await.expect("connect");
    // The server announces a connection once the client has sent DATA.
    c.send(Bytes::from_static(b"hello")).await.unwrap();
    let s = tokio::time::timeout(LIMIT, incoming.recv())
        .await
        .expect("accepted in time")
        .expect("a connection");
    assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"hello"[..]));
    (client, server, c, s)
}

#[tokio::test]
async fn addresses_and_rtt_are_reported() {
    let (client, server, c, s) = pair().await;
    assert_eq!(c.remote_addr(), server.local_addr());
    assert_eq!(c.local_addr(), client.local_addr());
    assert_eq!(s.local_addr(), server.local_addr());
    assert_eq!(s.remote_addr(), client.local_addr());
    s.send(Bytes::from_static(b"x")).await.unwrap();
    c.recv().await.unwrap();
    assert!(c.rtt() > Duration::ZERO);
    assert_eq!(c.stats().path.congestion, "bbr");
}

#[tokio::test]
async fn the_stream_adapter_yields_every_message_then_ends() {
    let (_client, _server, c, s) = pair().await;
    let sender = tokio::spawn(async move {
        for i in 0..100u32 {
            c.send(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
        }
        c.close().await.unwrap();
    });
    let got: Vec<Received> =
        tokio::time::timeout(LIMIT, s.stream().messages().map(|m| m.unwrap()).collect())
            .await
            .expect("the stream ends");
    let want: Vec<Received> = (0..100u32)
        .map(|i| Received::Message(Bytes::from(i.to_be_bytes().to_vec())))
        .collect();
    assert_eq!(got, want);
    // A graceful close needs both sides: the sender's close returns once
    // this side has closed too.
    tokio::time::timeout(LIMIT, s.close())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_sink_adapter_queues_in_order_and_close_closes_gracefully() {
    let (_client, _server, c, s) = pair().await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(m) = s.recv().await.unwrap() {
            got.push(m);
        }
        got
    });
    let mut sink = c.stream().sink(Reliability::Reliable);
    // Large enough to fill the send buffer several times: the sink must
    // wait for room rather than fail.
    let msg = Bytes::from(vec![7u8; 100_000]);
    for _ in 0..200 {
        tokio::time::timeout(LIMIT, sink.send(msg.clone()))
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(LIMIT, sink.close())
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|m| *m == msg));
    assert!(matches!(c.closed().await, Ok(())));
}

#[tokio::test]
async fn closed_reports_the_peers_abort_code_and_reason() {
    let (_client, _server, c, s) = pair().await;
    let waiting = tokio::spawn(async move { c.closed().await });
    s.abort(VarInt::from_u32(42), "done with you");
    let outcome = tokio::time::timeout(LIMIT, waiting).await.unwrap().unwrap();
    match outcome {
        Err(Error::Connection {
            source: ConnectionError::PeerAborted { code, reason },
            ..
        }) => {
            assert_eq!(code, VarInt::from_u32(42));
            assert_eq!(reason, "done with you");
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    // The aborting side sees its own abort as Closed.
    assert!(matches!(s.recv().await, Err(Error::Closed)));
}

/// A sender still pushing messages when the peer aborts learns the peer's
/// code and reason from `send`, never a bare "closed": the core may read
/// the CLOSE before the driver passes the event on, and `send` must ask
/// the core then (a refused `rudp send` once printed "the connection is
/// closed" instead of the receiver's reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sender_learns_the_peers_abort_reason() {
    for round in 0..50 {
        let (_client, _server, c, s) = pair().await;
        let sender = tokio::spawn(async move {
            let msg = Bytes::from(vec![1u8; 20_000]);
            loop {
                if let Err(e) = c.send(msg.clone()).await {
                    return e;
                }
            }
        });
        for _ in 0..5 {
            s.recv().await.unwrap();
        }
        s.abort(VarInt::from_u32(3), "too big");
        let e = tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
        match e {
            Error::Connection {
                source: ConnectionError::PeerAborted { code, reason },
                ..
            } => {
                assert_eq!(code, VarInt::from_u32(3));
                assert_eq!(reason, "too big");
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

#[test]
fn abort_codes_are_checked_not_masked() {
    assert!(VarInt::from_u64(1 << 62).is_err());
    assert_eq!(VarInt::from_u64((1 << 62) - 1).unwrap(), VarInt::MAX);
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let (_client, _server, c, s) = pair().await;
    let sender = tokio::spawn(async move {
        for i in 0..50u8 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            c.send(Bytes::from(vec![i])).await.unwrap();
        }
        c
    });
    // A recv that is cancelled (by a short timeout) again and again loses
    // nothing: every message still arrives once, in order.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while got.len() < 50 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            m = s.recv() => got.push(m.unwrap().unwrap()[0]),
            () = tokio::time::sleep(Duration::from_micros(300)) => {}
        }
    }
    assert_eq!(got, (0..50u8).collect::<Vec<_>>());
    let _c = sender.await.unwrap();
}

#[tokio::test]
async fn poll_primitives_make_a_hand_written_future() {
    let (_client, _server, c, s) = pair().await;
    c.send(Bytes::from_static(b"polled")).await.unwrap();
    let first = s.stream();
    let m = std::future::poll_fn(|cx| first.poll_recv(cx))
        .await
        .unwrap();
    assert_eq!(m, Some(Received::Message(Bytes::from_static(b"polled"))));
    let msg = Bytes::from_static(b"back");
    std::future::poll_fn(|cx| first.poll_send_with(cx, &msg, Reliability::Reliable))
        .await
        .unwrap();
    assert_eq!(c.recv().await.unwrap().as_deref(), Some(&b"back"[..]));
}

#[tokio::test]
async fn connect_with_gives_one_connection_its_own_settings() {
    let (server, _incoming) = server();
    let addr = server.local_addr();
    let client = Endpoint::client(addr, EndpointConfig::default()).unwrap();
    let config = Config::builder()
        .max_message_size(1000)
        .receive_window(10_000)
        .build()
        .expect("valid settings");
    let c = client.connect_with(config, addr).await.expect("connect");
    // The server learned the client's limits from its HANDSHAKE; the
    // endpoint's own default (1 MiB) applies to others.
    let other = client.connect(addr).await.expect("connect");
    other
        .send(Bytes::from(vec![0u8; 5000]))
        .await
        .expect("default limits");
    assert_eq!(c.stats().buffers.receive_window, 10_000);
}

#[test]
fn invalid_settings_are_a_typed_error_not_an_io_error() {
    let e = Config::builder()
        .max_message_size(1 << 20)
        .receive_window(1000)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("receive_window"), "{e}");
    let e = EndpointConfig::builder()
        .max_connections(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_connections"), "{e}");
}

#[tokio::test]
async fn constructors_bind_without_awaiting() {
    // Not async: the address is known at once, and a port in use is an
    // error at once.
    let ep = Endpoint::server(loopback(), EndpointConfig::default()).unwrap();
    let taken = ep.local_addr();
    assert_ne!(taken.port(), 0);
    assert!(matches!(
        Endpoint::server(taken, EndpointConfig::default()),
        Err(Error::Io(_))
    ));
}

#[tokio::test]
async fn server_on_takes_a_blocking_socket_and_serves() {
    // A socket as std makes it, blocking: the endpoint must not stall on it.
    let socket = std::net::UdpSocket::bind(loopback()).unwrap();
    let server = Endpoint::server_on(socket, EndpointConfig::default()).unwrap();
    let addr = server.local_addr();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(c) = accepting.accept().await {
            tokio::spawn(async move {
                while let Ok(Some(m)) = c.recv().await {
                    let _ = c.send(m).await;
                }
            });
        }
    });
    let client = Endpoint::client(addr, EndpointConfig::default()).unwrap();
    let c = tokio::time::timeout(LIMIT, client.connect(addr))
        .await
        .unwrap()
        .unwrap();
    c.send(Bytes::from_static(b"echo")).await.unwrap();
    let m = tokio::time::timeout(LIMIT, c.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.as_deref(), Some(&b"echo"[..]));
}

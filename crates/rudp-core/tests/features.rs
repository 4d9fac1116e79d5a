//! The connection features of issue #2, each checked in virtual time:
//! keepalive and idle timeout (with its boundary), abort codes, bounded
//! memory with back-pressure, and large messages under loss.

mod common;

use bytes::Bytes;
use common::FirstStream;
use rudp_core::conn::{Event, SendError};
use rudp_core::endpoint::{ConnectionHandle, EndpointConfig, EndpointEvent};
use rudp_core::impair::{Blackout, ImpairConfig};
use rudp_core::sim::Sim;
use rudp_core::{Config, ConnectionError};
use std::sync::Arc;
use std::time::Duration;

struct Pair {
    sim: Sim,
    c: ConnectionHandle,
    s: ConnectionHandle,
    client_outcome: Option<Result<(), ConnectionError>>,
    server_outcome: Option<Result<(), ConnectionError>>,
}

impl Pair {
    /// Connects over `link` (both ways) with `config` on both sides.
    fn new(seed: u64, config: Config, link: ImpairConfig) -> Pair {
        let config = Arc::new(config);
        let client = EndpointConfig::builder()
            .connection(config.clone())
            .build()
            .expect("valid settings");
        let server = EndpointConfig::builder()
            .connection(config)
            .build()
            .expect("valid settings");
        let mut sim = Sim::new(seed, client, server, link.clone(), link);
        let (c, s) = sim.connect(100_000).expect("handshake");
        Pair {
            sim,
            c,
            s,
            client_outcome: None,
            server_outcome: None,
        }
    }

    /// Steps until `done` or `limit` of virtual time passes; records outcomes.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let end = self.sim.elapsed() + limit;
        while self.sim.elapsed() < end {
            while let Some(e) = self.sim.client.poll_event() {
                if let EndpointEvent::Connection(h, Event::Closed(o)) = e {
                    if h == self.c {
                        self.client_outcome = Some(o);
                    }
                }
            }
            while let Some(e) = self.sim.server.poll_event() {
                if let EndpointEvent::Connection(h, Event::Closed(o)) = e {
                    if h == self.s {
                        self.server_outcome = Some(o);
                    }
                }
            }
            if done(self) || !self.sim.step() {
                break;
            }
        }
    }
}

fn clean() -> ImpairConfig {
    ImpairConfig {
        delay: Duration::from_millis(10),
        ..ImpairConfig::default()
    }
}

// ---- Keepalive and idle timeout -----------------------------------------

#[test]
fn quiet_connection_with_keepalive_stays_open() {
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(3))
        .build()
        .expect("valid settings");
    let mut p = Pair::new(1, config, clean());
    p.run_until(Duration::from_secs(60), |_| false);
    assert_eq!(p.client_outcome, None);
    assert_eq!(p.server_outcome, None);
    // Keepalive PINGs flowed: the client sent far more than the handshake.
    let stats = p.sim.client.connection(p.c).unwrap().stats();
    assert!(stats.sent.packets > 20, "{stats:?}");
    // And the connection still works.
    p.sim
        .client
        .with_connection(p.c, |x| x.send(Bytes::from_static(b"still here")))
        .unwrap()
        .unwrap();
    let mut got = None;
    p.run_until(Duration::from_secs(1), |p| {
        got = p.sim.server.with_connection(p.s, |x| x.recv()).flatten();
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some(&b"still here"[..]));
}

#[test]
fn without_keepalive_a_quiet_connection_times_out_at_the_idle_timeout() {
    let idle = Duration::from_secs(2);
    let config = Config::builder()
        .idle_timeout(idle)
        .keep_alive(None)
        .build()
        .expect("valid settings");
    let mut p = Pair::new(2, config, clean());
    let start = p.sim.elapsed();
    p.run_until(Duration::from_secs(10), |p| {
        p.client_outcome.is_some() && p.server_outcome.is_some()
    });
    assert_eq!(p.client_outcome, Some(Err(ConnectionError::TimedOut(idle))));
    assert_eq!(p.server_outcome, Some(Err(ConnectionError::TimedOut(idle))));
    let took = p.sim.elapsed() - start;
    assert!(
        took >= idle - Duration::from_millis(50) && took <= idle + Duration::from_millis(100),
        "{took:?}"
    );
}

#[test]
fn link_cut_longer_than_the_idle_timeout_fails_at_the_boundary() {
    // The link goes dark at 1 s for 30 s; the idle timeout is 3 s.
    let idle = Duration::from_secs(3);
    let link = ImpairConfig {
        blackouts: vec![Blackout {
            at: Duration::from_secs(1),
            length: Duration::from_secs(30),
        }],
        ..clean()
    };
    let config = Config::builder()
        .idle_timeout(idle)
        .build()
        .expect("valid settings");
    let mut p = Pair::new(3, config, link);
    // Keep traffic flowing so the cut is noticed by unanswered data.
    for i in 0..100u8 {
        p.sim
            .client
            .with_connection(p.c, |x| x.send(Bytes::from(vec![i; 500])))
            .unwrap()
            .unwrap();
    }
    p.run_until(Duration::from_secs(20), |p| {
        p.client_outcome.is_some() && p.server_outcome.is_some()
    });
    assert_eq!(p.client_outcome, Some(Err(ConnectionError::TimedOut(idle))));
    assert_eq!(p.server_outcome, Some(Err(ConnectionError::TimedOut(idle))));
    // The last datagram got through just before 1 s; both sides give up
    // within one idle timeout (plus the restart on a later send) of it.
    let t = p.sim.elapsed();
    assert!(
        t >= Duration::from_secs(1) + idle && t <= Duration::from_secs(1) + 2 * idle,
        "{t:?}"
    );
}

// ---- Abort ----------------------------------------------------------------

#[test]
fn abort_reports_the_code_and_reason_to_the_peer() {
    let mut p = Pair::new(4, Config::default(), clean());
    let now = p.sim.now();
    p.sim
        .client
        .with_connection(p.c, |x| {
            x.abort(
                now,
                rudp_core::error::VarInt::from_u32(7),
                "changed my mind",
            )
        })
        .unwrap();
    p.run_until(Duration::from_secs(5), |p| p.server_outcome.is_some());
    assert_eq!(
        p.server_outcome,
        Some(Err(ConnectionError::PeerAborted {
            code: rudp_core::error::VarInt::from_u32(7),
            reason: "changed my mind".into()
        }))
    );
    assert_eq!(
        p.client_outcome,
        Some(Err(ConnectionError::LocallyAborted {
            code: rudp_core::error::VarInt::from_u32(7)
        }))
    );
    // Both ends are removed after closing/draining.
    p.run_until(Duration::from_secs(5), |_| false);
    assert!(p.sim.client.connection(p.c).is_none() && p.sim.server.connection(p.s).is_none());
}

// ---- Bounded memory -------------------------------------------------------

#[test]
fn a_receiver_that_does_not_read_bounds_memory_and_the_sender_is_pushed_back() {
    let window = 64 * 1024;
    let config = Config::builder()
        .max_message_size(16 * 1024)
        .receive_window(window)
        .send_buffer(128 * 1024)
        .build()
        .expect("valid settings");
    let mut p = Pair::new(5, config, clean());
    let msg = Bytes::from(vec![9u8; 10_000]);
    let mut queued = 0usize;
    let mut pushed_back = 0;
    // The application writes whenever it may; nobody reads. Once the
    // receiver's window and the sender's buffer are full, every attempt is
    // pushed back, however long the network runs in between.
    while pushed_back < 5 && queued < 1000 {
        match p
            .sim
            .client
            .with_connection(p.c, |x| x.send(msg.clone()))
            .unwrap()
        {
            Ok(()) => {
                queued += 1;
                pushed_back = 0;
            }
            Err(SendError::Blocked) => {
                pushed_back += 1;
                p.run_until(Duration::from_millis(200), |_| false);
                let s = p.sim.server.connection(p.s).unwrap().stats();
                assert!(
                    s.buffers.receive_buffered <= window,
                    "receiver holds {} > window {window}",
                    s.buffers.receive_buffered
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        pushed_back, 5,
        "the sender was never pushed back ({queued} messages queued)"
    );
    // Window plus send buffer, in 10 kB messages: about 19 fit.
    assert!((15..=25).contains(&queued), "{queued} messages queued");
    let client = p.sim.client.connection(p.c).unwrap().stats();
    assert!(
        client.buffers.send_buffered <= 128 * 1024 + 10_008,
        "{client:?}"
    );
    // Now the receiver reads everything: all messages arrive, in order, once.
    let mut got = 0;
    p.run_until(Duration::from_secs(30), |p| {
        while let Some(m) = p.sim.server.with_connection(p.s, |x| x.recv()).flatten() {
            assert_eq!(m, msg);
            got += 1;
        }
        got == queued
    });
    assert_eq!(got, queued);
}

// ---- Large messages -------------------------------------------------------

#[test]
fn one_mebibyte_messages_both_ways_through_10_percent_loss() {
    let link = ImpairConfig {
        loss: 0.1,
        duplicate: 0.02,
        reorder: 0.05,
        ..clean()
    };
    let mut p = Pair::new(6, Config::default(), link);
    let big = |seed: u8| {
        Bytes::from(
            (0..1 << 20)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>(),
        )
    };
    let (a, b) = (big(3), big(7));
    p.sim
        .client
        .with_connection(p.c, |x| x.send(a.clone()))
        .unwrap()
        .unwrap();
    p.sim
        .server
        .with_connection(p.s, |x| x.send(b.clone()))
        .unwrap()
        .unwrap();
    let (mut at_server, mut at_client) = (None, None);
    p.run_until(Duration::from_secs(600), |p| {
        if at_server.is_none() {
            at_server = p.sim.server.with_connection(p.s, |x| x.recv()).flatten();
        }
        if at_client.is_none() {
            at_client = p.sim.client.with_connection(p.c, |x| x.recv()).flatten();
        }
        at_server.is_some() && at_client.is_some()
    });
    assert!(
        at_server == Some(a),
        "the client's 1 MiB message arrived damaged or not at all"
    );
    assert!(
        at_client == Some(b),
        "the server's 1 MiB message arrived damaged or not at all"
    );
    let s = p.sim.client.connection(p.c).unwrap().stats();
    assert!(
        s.sent.packets_retransmitted > 0,
        "no loss was repaired: {s:?}"
    );
}

// ---- Reordering ---------------------------------------------------------

/// A link that loses nothing but reorders (jitter of half the delay): after
/// the first spurious losses the thresholds adapt (PROTOCOL.md §9.2), so few
/// packets are declared lost and resent for nothing.
#[test]
fn reordering_without_loss_causes_few_spurious_retransmissions() {
    let link = ImpairConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        ..ImpairConfig::default()
    };
    // 1200-byte datagrams, as the threshold below was set for: with path
    // MTU discovery's 64 KiB datagrams the same 2 MB is 140 packets, and
    // three losses are already 2%.
    let config = Config::builder()
        .max_datagram_size(1200)
        .build()
        .expect("valid settings");
    let mut p = Pair::new(7, config, link);
    let msg = Bytes::from(vec![1u8; 100_000]);
    for _ in 0..20 {
        p.sim
            .client
            .with_connection(p.c, |x| x.send(msg.clone()))
            .unwrap()
            .unwrap();
    }
    let mut got = 0;
    p.run_until(Duration::from_secs(120), |p| {
        while p
            .sim
            .server
            .with_connection(p.s, |x| x.recv())
            .flatten()
            .is_some()
        {
            got += 1;
        }
        got == 20
    });
    assert_eq!(got, 20);
    let s = p.sim.client.connection(p.c).unwrap().stats();
    let share = s.sent.packets_lost as f64 / s.sent.packets as f64;
    eprintln!(
        "declared lost {} of {} packets ({:.1}%), {} found spurious",
        s.sent.packets_lost,
        s.sent.packets,
        share * 100.0,
        s.sent.spurious_losses
    );
    assert!(
        s.sent.spurious_losses > 0,
        "no reordering was detected: {s:?}"
    );

    assert!(
        share < 0.02,
        "{:.1}% of packets declared lost on a lossless link",
        share * 100.0
    );
}

// ---- Flow control on a long path ---------------------------------------

/// Moves 48 MiB over a 50 ms RTT link to a reader that takes every message
/// at once; returns the virtual time it took and the receiver's final
/// window. Checks that buffered data never exceeds the window in force.
fn long_path_transfer(config: Config) -> (Duration, u64) {
    let link = ImpairConfig {
        delay: Duration::from_millis(25),
        ..ImpairConfig::default()
    };
    let mut p = Pair::new(11, config, link);
    let msg = Bytes::from(vec![7u8; 1 << 20]);
    let total = 48;
    let (mut queued, mut got) = (0, 0);
    let start = p.sim.elapsed();
    p.run_until(Duration::from_secs(60), |p| {
        while queued < total {
            match p.sim.client.with_connection(p.c, |x| x.send(msg.clone())) {
                Some(Ok(())) => queued += 1,
                _ => break,
            }
        }
        if let Some(s) = p.sim.server.connection(p.s).map(|c| c.stats()) {
            assert!(
                s.buffers.receive_buffered <= s.buffers.receive_window,
                "{s:?}"
            );
        }
        while p
            .sim
            .server
            .with_connection(p.s, |x| x.recv())
            .flatten()
            .is_some()
        {
            got += 1;
        }
        got == total
    });
    assert_eq!(got, total);
    let window = p
        .sim
        .server
        .connection(p.s)
        .unwrap()
        .stats()
        .buffers
        .receive_window;
    (p.sim.elapsed() - start, window)
}

/// 25 ms each way: a fixed 4 MiB window allows 4 MiB per RTT. With a fast
/// reader the window grows (PROTOCOL.md §8.3 auto-tuning), up to its
/// maximum, and the same transfer finishes much sooner.
#[test]
fn receive_window_grows_on_a_long_fast_path() {
    let fixed = Config::builder()
        .max_receive_window(4 << 20)
        .build()
        .expect("valid settings");
    let (slow, fixed_window) = long_path_transfer(fixed);
    let (fast, window) = long_path_transfer(Config::default());
    eprintln!("48 MiB over 50 ms RTT: fixed 4 MiB window {slow:?}, auto-tuned {fast:?} (window {window} B)");
    assert_eq!(fixed_window, 4 << 20);
    assert!(window > 4 << 20 && window <= 64 << 20, "{window}");
    assert!(
        fast * 2 < slow,
        "auto-tuning gained too little: {fast:?} vs {slow:?}"
    );
}

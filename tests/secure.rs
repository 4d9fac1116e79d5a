//! Version 3 (PROTOCOL.md §16): every connection authenticated and
//! encrypted through a Noise IK handshake. Each test drives the sans-IO
//! endpoints over the simulated network and checks one line of the threat
//! model (§16.7, docs/security.md).

use bytes::Bytes;
use rudp_core::config::Config;
use rudp_core::endpoint::{EndpointConfig, RetryPolicy};
use rudp_core::error::{ConnectionError, TransportCode};
use rudp_core::impair::ImpairConfig;
use rudp_core::noise::{
    AuthorizedKeys, Keypair, PinnedKey, PublicKey, Security, ServerKeyVerifier,
};
use rudp_core::psk::Psk;
use rudp_core::sim::Sim;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

fn server_key() -> Keypair {
    Keypair::generate([1; 32])
}

fn client_key() -> Keypair {
    Keypair::generate([2; 32])
}

fn server_config(security: Security) -> EndpointConfig {
    let conn = Config::builder()
        .version(3)
        .security(security)
        .build()
        .expect("valid");
    EndpointConfig::builder()
        .connection_config(conn)
        .retry(RetryPolicy::Never)
        .build()
        .expect("valid")
}

fn client_config(security: Security) -> EndpointConfig {
    let conn = Config::builder()
        .version(3)
        .security(security)
        .build()
        .expect("valid");
    EndpointConfig::new(conn)
}

fn serving() -> Security {
    Security {
        identity: Some(server_key()),
        ..Security::default()
    }
}

fn pinned(key: PublicKey) -> Security {
    Security {
        identity: Some(client_key()),
        verifier: Some(Arc::new(PinnedKey(key))),
        ..Security::default()
    }
}

/// Remembers the first key it sees and trusts only that one, as ssh's
/// known_hosts does.
#[derive(Debug, Default)]
struct FirstUse(Mutex<Option<PublicKey>>);

impl ServerKeyVerifier for FirstUse {
    fn expected(&self, _: SocketAddr) -> Option<PublicKey> {
        *self.0.lock().unwrap()
    }
    fn verify(&self, _: SocketAddr, key: &PublicKey) -> Result<(), String> {
        let mut known = self.0.lock().unwrap();
        match *known {
            Some(k) if k != *key => Err("a different key than last time".into()),
            _ => {
                *known = Some(*key);
                Ok(())
            }
        }
    }
}

fn sim(seed: u64, client: EndpointConfig, server: EndpointConfig, loss: f64) -> Sim {
    let link = ImpairConfig {
        loss,
        ..ImpairConfig::default()
    };
    Sim::new(seed, client, server, link.clone(), link)
}

/// Sends `n` messages each way and checks they arrive, in order.
fn exchange(
    sim: &mut Sim,
    c: rudp_core::endpoint::ConnectionHandle,
    s: rudp_core::endpoint::ConnectionHandle,
    n: usize,
) {
    for i in 0..n {
        let msg = Bytes::from(format!("secret message {i}"));
        sim.client.connection_mut(c).unwrap().send(msg).unwrap();
        let reply = Bytes::from(format!("secret reply {i}"));
        sim.server.connection_mut(s).unwrap().send(reply).unwrap();
    }
    let (mut got_s, mut got_c) = (Vec::new(), Vec::new());
    for _ in 0..100_000 {
        if got_s.len() == n && got_c.len() == n {
            break;
        }
        sim.step();
        while let Some(m) = sim.server.connection_mut(s).and_then(|mut x| x.recv()) {
            got_s.push(m);
        }
        while let Some(m) = sim.client.connection_mut(c).and_then(|mut x| x.recv()) {
            got_c.push(m);
        }
    }
    assert_eq!(got_s.len(), n, "server received");
    assert_eq!(got_c.len(), n, "client received");
    for i in 0..n {
        assert_eq!(got_s[i], format!("secret message {i}"));
        assert_eq!(got_c[i], format!("secret reply {i}"));
    }
}

#[test]
fn a_pinned_key_connects_in_one_round_trip_and_both_sides_know_each_other() {
    let mut sim = sim(
        1,
        client_config(pinned(server_key().public())),
        server_config(serving()),
        0.0,
    );
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let log = seen.clone();
    sim.set_filter(Box::new(move |_, _, d: &[u8]| {
        log.lock().unwrap().push(d.to_vec());
        false // Keep every datagram; only look.
    }));
    let (c, s) = sim.connect(10_000).expect("handshake");
    let rtt_steps = sim.elapsed();
    exchange(&mut sim, c, s, 20);
    let client = sim.client.connection(c).unwrap();
    let server = sim.server.connection(s).unwrap();
    assert_eq!(client.version(), 3);
    assert_eq!(client.peer_key(), Some(server_key().public()));
    assert_eq!(server.peer_key(), Some(client_key().public()));
    assert_eq!(client.stats().received.retries, 0, "no extra round trip");
    // Nothing readable on the wire: no message text, no parameters.
    let wire = seen.lock().unwrap();
    for d in wire.iter() {
        let hay = String::from_utf8_lossy(d);
        assert!(!hay.contains("secret"), "plaintext on the wire");
    }
    println!(
        "pinned key: connected after {rtt_steps:?}, {} datagrams",
        wire.len()
    );
}

/// Connects; on failure returns the client's outcome.
fn connect(
    sim: &mut Sim,
) -> Result<
    (
        rudp_core::endpoint::ConnectionHandle,
        rudp_core::endpoint::ConnectionHandle,
    ),
    Option<Result<(), ConnectionError>>,
> {
    sim.connect(100_000).map_err(|e| e.outcome)
}

#[test]
fn trust_on_first_use_learns_the_key_once_then_pins_it() {
    let verifier = Arc::new(FirstUse::default());
    let security = Security {
        verifier: Some(verifier.clone()),
        ..Security::default()
    };
    let mut sim = sim(
        2,
        client_config(security.clone()),
        server_config(serving()),
        0.0,
    );
    let (c, s) = connect(&mut sim).expect("first use");
    exchange(&mut sim, c, s, 3);
    assert_eq!(*verifier.0.lock().unwrap(), Some(server_key().public()));
    let client = sim.client.connection(c).unwrap();
    assert_eq!(
        client.stats().received.retries,
        1,
        "one round trip to learn the key"
    );
    assert_eq!(sim.server.stats().keys_sent, 1);
    // The next connection knows the key: no extra round trip.
    let (c2, _) = connect(&mut sim).expect("second use");
    assert_eq!(
        sim.client.connection(c2).unwrap().stats().received.retries,
        0
    );

    // A different server at the same address (a man in the middle with its
    // own key, or a reinstalled server): refused before any data.
    let other = Security {
        identity: Some(Keypair::generate([7; 32])),
        ..Security::default()
    };
    let mut sim2 = Sim::new(
        3,
        client_config(security),
        server_config(other),
        ImpairConfig::default(),
        ImpairConfig::default(),
    );
    // The verifier expects the first key: IK to a server that cannot read
    // it, which answers with its own key; the verifier refuses that one.
    match connect(&mut sim2) {
        Err(Some(Err(ConnectionError::ServerKey { reason }))) => {
            assert!(reason.contains("different key"), "{reason}")
        }
        other => panic!("expected a refused key, got {other:?}"),
    }
    assert_eq!(sim2.server.stats().dropped_unauthenticated, 1);
    assert_eq!(sim2.server.stats().connections_accepted, 0);
}

#[test]
fn a_client_that_learns_a_different_key_refuses_it() {
    // Knows nothing yet, but refuses whatever it is shown.
    #[derive(Debug)]
    struct Never;
    impl ServerKeyVerifier for Never {
        fn expected(&self, _: SocketAddr) -> Option<PublicKey> {
            None
        }
        fn verify(&self, _: SocketAddr, _: &PublicKey) -> Result<(), String> {
            Err("not the key in known_hosts".into())
        }
    }
    let security = Security {
        verifier: Some(Arc::new(Never)),
        ..Security::default()
    };
    let mut sim = sim(4, client_config(security), server_config(serving()), 0.0);
    match connect(&mut sim) {
        Err(Some(Err(ConnectionError::ServerKey { reason }))) => {
            assert!(reason.contains("known_hosts"), "{reason}")
        }
        other => panic!("expected a refused key, got {other:?}"),
    }
    assert_eq!(
        sim.server.stats().connections_accepted,
        0,
        "nothing kept on the server"
    );
}

#[test]
fn an_unknown_client_key_is_refused_with_a_reason() {
    let mut allowed = std::collections::BTreeSet::new();
    allowed.insert(Keypair::generate([9; 32]).public());
    let server = Security {
        identity: Some(server_key()),
        clients: Some(Arc::new(AuthorizedKeys(allowed.clone()))),
        ..Security::default()
    };
    let mut sim1 = sim(
        5,
        client_config(pinned(server_key().public())),
        server_config(server.clone()),
        0.0,
    );
    match connect(&mut sim1) {
        Err(Some(Err(ConnectionError::PeerTransportClose { code, reason }))) => {
            assert_eq!(code, TransportCode::ConnectionRefused);
            assert!(reason.contains("authorized-keys"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The listed key gets in.
    let mut security = pinned(server_key().public());
    security.identity = Some(Keypair::generate([9; 32]));
    let mut sim2 = sim(6, client_config(security), server_config(server), 0.0);
    connect(&mut sim2).expect("an authorized key connects");
}

#[test]
fn clear_clients_are_refused_unless_allowed() {
    let clear = EndpointConfig::default(); // version 2, no keys
    let mut sim1 = sim(7, clear.clone(), server_config(serving()), 0.0);
    match connect(&mut sim1) {
        Err(Some(Err(ConnectionError::PeerTransportClose { code, reason }))) => {
            assert_eq!(code, TransportCode::ConnectionRefused);
            assert!(reason.contains("requires encryption"), "{reason}");
            assert!(reason.contains("--insecure"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let allowing = Security {
        allow_insecure: true,
        ..serving()
    };
    let mut sim2 = sim(8, clear, server_config(allowing.clone()), 0.0);
    let (c, s) = connect(&mut sim2).expect("allowed");
    assert_eq!(sim2.client.connection(c).unwrap().version(), 2);
    exchange(&mut sim2, c, s, 3);
    // And that server still serves secure clients.
    let mut sim3 = sim(
        9,
        client_config(pinned(server_key().public())),
        server_config(allowing),
        0.0,
    );
    let (c, _) = connect(&mut sim3).expect("secure");
    assert_eq!(sim3.client.connection(c).unwrap().version(), 3);
}

#[test]
fn a_secure_client_never_falls_back_to_clear() {
    let v2 = EndpointConfig::default(); // a server that speaks 1 and 2 only
    let mut sim = sim(10, client_config(pinned(server_key().public())), v2, 0.0);
    match connect(&mut sim) {
        Err(Some(Err(ConnectionError::VersionMismatch { ours, theirs }))) => {
            assert_eq!(ours, 3);
            assert!(!theirs.contains(&3));
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

#[test]
fn a_pre_shared_key_is_a_second_factor() {
    let psk_a = Psk::new(&[1; 32]).unwrap();
    let psk_b = Psk::new(&[2; 32]).unwrap();
    let with_psk = |c: EndpointConfig, psk: &Psk| {
        let conn = c
            .connection()
            .to_builder()
            .psk(Some(psk.clone()))
            .build()
            .unwrap();
        c.to_builder().connection_config(conn).build().unwrap()
    };
    let client = client_config(pinned(server_key().public()));
    let server = server_config(serving());
    let mut same = sim(
        11,
        with_psk(client.clone(), &psk_a),
        with_psk(server.clone(), &psk_a),
        0.0,
    );
    let (c, s) = connect(&mut same).expect("same key");
    exchange(&mut same, c, s, 2);
    let mut different = sim(12, with_psk(client, &psk_a), with_psk(server, &psk_b), 0.0);
    match connect(&mut different) {
        Err(Some(Err(ConnectionError::ServerKey { .. } | ConnectionError::TimedOut(_)))) => {}
        other => panic!("expected a failed handshake, got {other:?}"),
    }
}

/// The handshake and the data survive loss, duplication and reordering of
/// any of its packets: seeded, with the seed printed.
#[test]
fn handshakes_complete_through_a_lossy_link() {
    let seeds: u64 = std::env::var("RUDP_SECURE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 0..seeds {
        let link = ImpairConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.1,
            delay: std::time::Duration::from_millis(20),
            ..ImpairConfig::default()
        };
        let verifier = Arc::new(FirstUse::default());
        let tofu = seed % 2 == 0;
        let security = if tofu {
            Security {
                verifier: Some(verifier),
                ..Security::default()
            }
        } else {
            pinned(server_key().public())
        };
        let mut sim = Sim::new(
            seed,
            client_config(security),
            server_config(serving()),
            link.clone(),
            link,
        );
        let (c, s) = sim
            .connect(200_000)
            .unwrap_or_else(|e| panic!("seed {seed} (tofu {tofu}): {e:?}"));
        exchange(&mut sim, c, s, 5);
    }
}

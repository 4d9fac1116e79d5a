//! What a version-3 handshake costs (PROTOCOL.md §16; docs/benchmarks.md):
//! the Noise IK messages alone, and whole connections through the sans-IO
//! endpoints (INITIAL to the client's first DATA), on one core, beside a
//! clear (version 2) handshake for comparison. Prints figures; asserts
//! nothing about speed.
//!
//! `cargo bench --bench handshake` (`-- N` for another count).

use rudp_core::config::Config;
use rudp_core::endpoint::{EndpointConfig, RetryPolicy};
use rudp_core::impair::ImpairConfig;
use rudp_core::noise::{
    prologue, HandshakeInputs, Initiator, Keypair, PinnedKey, Responder, Security,
};
use rudp_core::sim::Sim;
use rudp_core::wire::ConnectionId;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let server = Keypair::generate([1; 32]);
    let client = Keypair::generate([2; 32]);

    // The Noise messages alone: what the server spends per client (one
    // message read, one written) and the client likewise.
    let start = Instant::now();
    for i in 0..n {
        let p = prologue(3, &[3], ConnectionId(u64::from(i) + 1));
        let inputs = |seed: u8| HandshakeInputs {
            prologue: &p,
            psk: None,
            seed: [seed; 32],
            fixed_ephemeral: None,
        };
        let initiator = Initiator::start(&client, &server.public(), &inputs(3), b"params")
            .expect("first message");
        let responder = Responder::read(&server, &inputs(4), initiator.message()).expect("read");
        let (answer, _) = responder.answer(b"params").expect("second message");
        initiator.finish(&answer).expect("read the answer");
    }
    let noise = start.elapsed() / n;

    // Whole connections through both endpoints, in virtual time.
    let connect = |secure: bool| {
        let (client_conn, server_conn) = if secure {
            (
                Config::builder()
                    .version(3)
                    .security(Security {
                        verifier: Some(Arc::new(PinnedKey(server.public()))),
                        ..Security::default()
                    })
                    .build()
                    .expect("valid"),
                Config::builder()
                    .version(3)
                    .security(Security {
                        identity: Some(server.clone()),
                        ..Security::default()
                    })
                    .build()
                    .expect("valid"),
            )
        } else {
            (Config::default(), Config::default())
        };
        let server_cfg = EndpointConfig::builder()
            .connection_config(server_conn)
            .retry(RetryPolicy::Never)
            .max_connections_per_source(1_000_000)
            .max_pending_per_source(1_000_000)
            .build()
            .expect("valid");
        let clean = ImpairConfig::default();
        let mut sim = Sim::new(
            1,
            EndpointConfig::new(client_conn),
            server_cfg,
            clean.clone(),
            clean,
        );
        let count = n / 4;
        let start = Instant::now();
        for _ in 0..count {
            sim.connect(1000).expect("handshake");
        }
        start.elapsed() / count
    };
    let clear = connect(false);
    let secure = connect(true);
    println!("version-3 handshake cost, one core ({n} handshakes; release build):");
    println!(
        "  Noise IK messages (both sides):    {:>7.1} us  ({:>6.0} handshakes/s)",
        noise.as_secs_f64() * 1e6,
        1.0 / noise.as_secs_f64()
    );
    println!(
        "  whole connection, version 3:       {:>7.1} us  ({:>6.0} connections/s, both endpoints)",
        secure.as_secs_f64() * 1e6,
        1.0 / secure.as_secs_f64()
    );
    println!(
        "  whole connection, version 2 clear: {:>7.1} us  ({:>6.0} connections/s, both endpoints)",
        clear.as_secs_f64() * 1e6,
        1.0 / clear.as_secs_f64()
    );
}

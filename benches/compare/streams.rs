//! The `streams` section (issue #14): small messages next to a bulk
//! transfer on one connection, through the proxy with 5% loss each way,
//! 10 ms one-way delay and a 50 Mbit/s bottleneck with a queue. Prints the
//! small messages' latency in every arrangement side by side, then checks
//! each of the criteria and prints whether it holds, with the
//! figures it compared (a benchmark reports; it does not assert).

use rudp_cli::demo_streams::{run_case, Case, CaseResult, StreamsDemo};
use serde_json::{json, Value};
use std::time::Duration;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "holds"
    } else {
        "DOES NOT HOLD"
    }
}

pub async fn section(seed: u64, duration: Duration) -> Value {
    crate::heading(&format!(
        "Streams, priorities and datagrams: an 8-byte message every 10 ms next to a bulk \
         transfer (5% loss each way, 10 ms delay, 50 Mbit/s bottleneck, 100-datagram queue; \
         {} s a case, seed {seed})",
        duration.as_secs_f64()
    ));
    let demo = StreamsDemo::new(seed, duration);
    let lifetime = Duration::from_millis(100);
    let cases = [
        Case::Alone,
        Case::BulkOnly,
        Case::SharedStream,
        Case::OwnStream,
        Case::Datagrams,
        Case::SecondConnection,
        Case::SecondConnectionDatagrams,
        Case::Lifetime(lifetime),
    ];
    let mut results: Vec<CaseResult> = Vec::new();
    for case in cases {
        match run_case(&demo, case).await {
            Ok(r) => results.push(r),
            Err(e) => {
                println!("{}: failed: {e}", case.label());
                return json!({ "error": e.to_string() });
            }
        }
    }
    // Run-to-run noise of the bulk goodput: the bulk transfer alone again,
    // with the link's next seed.
    let noise = match run_case(&StreamsDemo::new(seed + 1, duration), Case::BulkOnly).await {
        Ok(again) => {
            let first = results
                .iter()
                .find(|r| r.case == Case::BulkOnly)
                .map_or(0.0, |r| r.bulk_goodput);
            (again.bulk_goodput - first).abs() / first.max(1.0)
        }
        Err(e) => {
            println!("bulk alone, second run: failed: {e}");
            0.0
        }
    };
    println!(
        "| small messages | p50 ms | p99 ms | max ms | delivered | skipped | twice | bulk Mbit/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {}/{} | {} | {} | {:.1} |",
            r.case.label(),
            ms(r.percentile(50)),
            ms(r.percentile(99)),
            ms(r.max()),
            r.delivered,
            r.sent,
            r.skipped,
            r.duplicates,
            r.bulk_goodput * 8.0 / 1e6
        );
    }
    let get = |c: Case| {
        results
            .iter()
            .find(|r| r.case == c)
            .expect("every case ran")
    };
    let second_dgram = get(Case::SecondConnectionDatagrams);
    let (alone, bulk_only, shared, own, dgram, second, life) = (
        get(Case::Alone),
        get(Case::BulkOnly),
        get(Case::SharedStream),
        get(Case::OwnStream),
        get(Case::Datagrams),
        get(Case::SecondConnection),
        get(Case::Lifetime(lifetime)),
    );
    let p99 = |r: &CaseResult| ms(r.percentile(99));
    // The queueing delay the bulk flow adds at the bottleneck, as a second
    // connection through it sees.
    let queueing = (p99(second) - p99(alone)).max(0.0);
    let own_bound = p99(alone) + queueing;
    let own_ok = p99(own) <= own_bound;
    let factor = p99(shared) / p99(own).max(1e-3);
    let share = dgram.delivered as f64 / dgram.sent.max(1) as f64;
    let link_delay = 10.0;
    let dgram_literal = 1.2 * link_delay;
    // The loaded link's own one-way delay, as datagrams on a second
    // connection see it (no repair, no scheduling inside a connection).
    let loaded_delay = p99(second_dgram);
    let dgram_loaded_bound = 1.2 * loaded_delay;
    let late = life.later_than(lifetime);
    let stalled = life.delivered + life.skipped < life.sent;
    let small_share = {
        // What the small flow costs the link: its packets (payload, STREAM
        // or DATAGRAM frame, header and CRC, about 50 bytes each) and their
        // acknowledgements, against 50 Mbit/s.
        let per_second = 1.0 / 0.010;
        per_second * 2.0 * 50.0 * 8.0 / 50e6
    };
    let drop = |r: &CaseResult| 1.0 - r.bulk_goodput / bulk_only.bulk_goodput.max(1.0);
    println!();
    println!(
        "- own stream, higher priority: p99 {:.1} ms; bound: idle p99 {:.1} ms + the bulk flow's \
         queueing {:.1} ms (second connection p99 {:.1} ms) = {:.1} ms: {}",
        p99(own),
        p99(alone),
        queueing,
        p99(second),
        own_bound,
        verdict(own_ok)
    );
    println!(
        "- own stream vs one shared stream: {:.1} ms vs {:.1} ms, {factor:.1}x better (at least 5x): {}",
        p99(own),
        p99(shared),
        verdict(factor >= 5.0)
    );
    println!(
        "- datagrams: {:.1}% arrived (5% loss each way), {} twice: {}",
        share * 100.0,
        dgram.duplicates,
        verdict(dgram.duplicates == 0 && share >= 0.9)
    );
    println!(
        "- datagrams' p99 {:.1} ms against 1.2 x the link's one-way delay, no jitter \
         ({dgram_literal:.1} ms): {}; against 1.2 x the loaded link's p99 one-way delay, as \
         datagrams on a second connection see it ({loaded_delay:.1} ms -> \
         {dgram_loaded_bound:.1} ms): {}",
        p99(dgram),
        verdict(p99(dgram) <= dgram_literal),
        verdict(p99(dgram) <= dgram_loaded_bound)
    );
    println!(
        "- 100 ms lifetime: {late} delivered later than their lifetime, {} skipped, {} \
         unaccounted (stalled): {}",
        life.skipped,
        life.sent - life.delivered.min(life.sent) - life.skipped.min(life.sent),
        verdict(late == 0 && !stalled)
    );
    for r in [own, dgram, shared] {
        println!(
            "- bulk goodput with the small flow {}: {:.1} Mbit/s, {:.1}% below the bulk alone \
             ({:.1} Mbit/s); the small flow's share of the link is about {:.2}%, and two runs \
             of the bulk alone differ by {:.1}%: {}",
            r.case.label(),
            r.bulk_goodput * 8.0 / 1e6,
            drop(r) * 100.0,
            bulk_only.bulk_goodput * 8.0 / 1e6,
            small_share * 100.0,
            noise * 100.0,
            verdict(drop(r) <= small_share + noise)
        );
    }
    let row = |r: &CaseResult| {
        json!({
            "case": r.case.label(),
            "p50_ms": ms(r.percentile(50)),
            "p99_ms": ms(r.percentile(99)),
            "max_ms": ms(r.max()),
            "sent": r.sent,
            "delivered": r.delivered,
            "skipped": r.skipped,
            "duplicates": r.duplicates,
            "bulk_mbit_s": r.bulk_goodput * 8.0 / 1e6,
        })
    };
    let at_defaults = at_proxy_defaults(seed, duration).await;
    json!({
        "seed": seed,
        "bulk_noise": noise,
        "duration_s": duration.as_secs_f64(),
        "cases": results.iter().map(row).collect::<Vec<_>>(),
        "at_proxy_defaults": at_defaults.iter().map(row).collect::<Vec<_>>(),
    })
}

/// Issue #25: the same small flow through a link as `rudp proxy --loss 5%
/// --delay 10ms --rate 50mbit` sets it at its defaults (a queue of 1000
/// datagrams or 50 ms, 1472-byte datagrams), nothing set on the endpoints: what a user
/// who sets nothing gets. Prints the table; returns its rows.
async fn at_proxy_defaults(seed: u64, duration: Duration) -> Vec<CaseResult> {
    let mut demo = StreamsDemo::new(seed, duration);
    demo.link.queue = rudp_core::impair::DEFAULT_QUEUE;
    demo.link.queue_delay = Some(rudp_cli::proxy::DEFAULT_QUEUE_DELAY);
    demo.link.mtu = Some(rudp_cli::proxy::DEFAULT_MTU);
    println!();
    println!(
        "At the proxy's defaults (`rudp proxy --loss 5% --delay 10ms --rate 50mbit`: a queue of \
         {} datagrams or {:?}, {}-byte datagrams; nothing set on the endpoints):",
        demo.link.queue,
        rudp_cli::proxy::DEFAULT_QUEUE_DELAY,
        rudp_cli::proxy::DEFAULT_MTU
    );
    println!();
    println!("| small messages | p50 ms | p99 ms | delivered | bulk Mbit/s |");
    println!("|---|---|---|---|---|");
    let mut rows = Vec::new();
    for case in [
        Case::Alone,
        Case::OwnStream,
        Case::Datagrams,
        Case::BulkOnly,
    ] {
        match run_case(&demo, case).await {
            Ok(r) => {
                println!(
                    "| {} | {:.1} | {:.1} | {}/{} | {:.1} |",
                    r.case.label(),
                    ms(r.percentile(50)),
                    ms(r.percentile(99)),
                    r.delivered,
                    r.sent,
                    r.bulk_goodput * 8.0 / 1e6
                );
                rows.push(r);
            }
            Err(e) => println!("{}: failed: {e}", case.label()),
        }
    }
    rows
}

//! The impairment model measured against its configuration.

use super::*;

const N: usize = 50_000;

fn run(config: ImpairConfig, seed: u64, n: usize) -> (Impairment, Vec<Delivery>) {
    let t0 = Instant::now();
    let mut m = Impairment::new(config, seed, t0);
    let mut out = Vec::new();
    for i in 0..n {
        let now = t0 + Duration::from_micros(100 * i as u64);
        let mut d = (i as u32).to_be_bytes().to_vec();
        d.resize(100, 0);
        out.extend(m.process(now, d));
    }
    out.extend(m.poll_release(t0 + Duration::from_secs(3600)));
    (m, out)
}

fn within(measured: f64, expected: f64, tolerance: f64) {
    assert!(
        (measured - expected).abs() <= tolerance,
        "measured {measured}, expected {expected} ± {tolerance}"
    );
}

#[test]
fn random_loss_rate() {
    let (m, out) = run(
        ImpairConfig {
            loss: 0.3,
            ..Default::default()
        },
        1,
        N,
    );
    within(m.stats().dropped_loss as f64 / N as f64, 0.3, 0.01);
    assert_eq!(out.len() as u64, m.stats().forwarded);
}

#[test]
fn burst_loss_rate_and_length() {
    let config = ImpairConfig {
        loss: 0.1,
        loss_burst: Some(4.0),
        ..Default::default()
    };
    let (m, out) = run(config, 2, N);
    within(m.stats().dropped_burst as f64 / N as f64, 0.1, 0.015);
    // Mean length of runs of consecutive missing sequence numbers.
    let mut seen = vec![false; N];
    for d in &out {
        seen[u32::from_be_bytes(d.data[..4].try_into().unwrap()) as usize] = true;
    }
    let (mut runs, mut lost, mut prev) = (0, 0, true);
    for s in seen {
        if !s {
            lost += 1;
            if prev {
                runs += 1;
            }
        }
        prev = s;
    }
    within(lost as f64 / runs as f64, 4.0, 0.4);
}

#[test]
fn duplication_and_reordering_rates() {
    let config = ImpairConfig {
        duplicate: 0.05,
        reorder: 0.1,
        ..Default::default()
    };
    let (m, out) = run(config, 3, N);
    within(m.stats().duplicated as f64 / N as f64, 0.05, 0.005);
    within(m.stats().reordered as f64 / (N as f64 * 1.05), 0.1, 0.01);
    assert_eq!(out.len(), N + m.stats().duplicated as usize);
    // Reordered datagrams really arrive after later ones.
    let mut sorted = out.clone();
    sorted.sort_by_key(|d| d.at);
    let seqs: Vec<u32> = sorted
        .iter()
        .map(|d| u32::from_be_bytes(d.data[..4].try_into().unwrap()))
        .collect();
    let inversions = seqs.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(
        inversions as f64 > N as f64 * 0.05,
        "{inversions} inversions"
    );
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let (m, out) = run(
        ImpairConfig {
            corrupt: 0.2,
            ..Default::default()
        },
        4,
        N,
    );
    within(m.stats().corrupted as f64 / N as f64, 0.2, 0.01);
    let flipped = out
        .iter()
        .filter(|d| {
            let seq = u32::from_be_bytes(d.data[..4].try_into().unwrap()) as usize;
            let mut expect = (seq as u32).to_be_bytes().to_vec();
            expect.resize(100, 0);
            let bits: u32 = d
                .data
                .iter()
                .zip(&expect)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert!(bits <= 1);
            bits == 1
        })
        .count();
    // A flip in the sequence number itself can make a datagram look clean.
    within(flipped as f64 / N as f64, 0.2, 0.02);
}

#[test]
fn same_seed_same_decisions_and_independent_streams() {
    let config = ImpairConfig {
        loss: 0.2,
        duplicate: 0.1,
        reorder: 0.1,
        jitter: Duration::from_millis(5),
        ..Default::default()
    };
    // Deliveries as (delay from the run's start, bytes): each run has its own
    // start instant.
    let relative = |seed| {
        let t0 = Instant::now();
        let mut m = Impairment::new(config.clone(), seed, t0);
        let mut out = Vec::new();
        for i in 0..5000u32 {
            let now = t0 + Duration::from_micros(100 * u64::from(i));
            for d in m.process(now, i.to_be_bytes().to_vec()) {
                out.push((d.at - t0, d.data));
            }
        }
        out
    };
    let (a, b, c) = (relative(7), relative(7), relative(8));
    assert!(a == b, "same seed, different decisions");
    assert!(a != c, "different seeds, same decisions");
    // Turning corruption on leaves the loss decisions unchanged.
    let (m1, _) = run(config.clone(), 7, 5000);
    let (m2, _) = run(
        ImpairConfig {
            corrupt: 0.5,
            ..config
        },
        7,
        5000,
    );
    assert_eq!(m1.stats().dropped_loss, m2.stats().dropped_loss);
    assert_eq!(m1.stats().duplicated, m2.stats().duplicated);
}

#[test]
fn rate_limit_holds() {
    // 1000-byte datagrams offered at 10 MB/s into a 1 MB/s bottleneck.
    let t0 = Instant::now();
    let config = ImpairConfig {
        rate: Some(1_000_000),
        queue: 50,
        ..Default::default()
    };
    let mut m = Impairment::new(config, 5, t0);
    let mut last = t0;
    let mut bytes = 0u64;
    for i in 0..20_000u64 {
        for d in m.process(t0 + Duration::from_micros(100 * i), vec![0; 1000]) {
            last = last.max(d.at);
            bytes += d.data.len() as u64;
        }
    }
    let rate = bytes as f64 / last.duration_since(t0).as_secs_f64();
    within(rate, 1_000_000.0, 20_000.0);
    assert!(m.stats().dropped_queue > 15_000);
}

/// A queue bounded in time (the proxy's `--queue-delay`): no datagram
/// waits longer than the bound for the rate, whatever the datagram count
/// allows; one that would is dropped and counted as a queue drop.
#[test]
fn a_queue_bounded_in_time_holds_no_longer_than_its_delay() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        rate: Some(1_000_000),
        queue: DEFAULT_QUEUE,
        queue_delay: Some(Duration::from_millis(10)),
        ..Default::default()
    };
    let mut m = Impairment::new(config, 5, t0);
    let mut longest = Duration::ZERO;
    let mut delivered = 0;
    // A burst of 100 1000-byte datagrams at once: 1 ms each at 1 MB/s.
    for _ in 0..100 {
        for d in m.process(t0, vec![0; 1000]) {
            longest = longest.max(d.at.duration_since(t0));
            delivered += 1;
        }
    }
    // Those that start leaving within 10 ms: 11 (the last leaves at 11 ms).
    assert_eq!(delivered, 11);
    assert_eq!(m.stats().dropped_queue, 89);
    assert!(longest <= Duration::from_millis(11), "{longest:?}");
    // Once the queue drains, the bound admits datagrams again.
    assert_eq!(
        m.process(t0 + Duration::from_millis(20), vec![0; 1000])
            .len(),
        1
    );
    // Without the bound the count alone decides: all 100 are queued.
    let mut m = Impairment::new(
        ImpairConfig {
            rate: Some(1_000_000),
            queue: DEFAULT_QUEUE,
            ..Default::default()
        },
        5,
        t0,
    );
    let all: usize = (0..100).map(|_| m.process(t0, vec![0; 1000]).len()).sum();
    assert_eq!(all, 100);
}

#[test]
fn blackout_drops_exactly_its_interval() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        blackouts: vec![Blackout {
            at: Duration::from_secs(1),
            length: Duration::from_millis(500),
        }],
        ..Default::default()
    };
    let mut m = Impairment::new(config, 6, t0);
    for ms in 0..3000u64 {
        let out = m.process(t0 + Duration::from_millis(ms), vec![1]);
        let dark = (1000..1500).contains(&ms);
        assert_eq!(out.is_empty(), dark, "at {ms} ms");
    }
    assert_eq!(m.stats().dropped_blackout, 500);
}

/// `mtu`: datagrams larger than it are dropped and counted, the rest pass,
/// and the verdict names the reason (`rudp proxy --mtu`, issue #15).
#[test]
fn datagrams_above_the_mtu_are_dropped() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        mtu: Some(1200),
        ..Default::default()
    };
    let mut m = Impairment::new(config, 7, t0);
    for len in [1usize, 1199, 1200, 1201, 1500, 9000] {
        let (out, verdict) = m.process_verdict(t0, 0, vec![0; len]);
        let fits = len <= 1200;
        assert_eq!(out.len(), usize::from(fits), "{len} bytes");
        assert_eq!(
            verdict.dropped,
            (!fits).then_some(DropReason::Mtu),
            "{len} bytes"
        );
    }
    assert_eq!(m.stats().dropped_mtu, 3);
    assert_eq!(m.stats().forwarded, 3);
    // Lowered mid-run (a black hole appears): from now on, 1200 is too big.
    m.set_config(ImpairConfig {
        mtu: Some(1100),
        ..Default::default()
    });
    assert!(m.process(t0, vec![0; 1200]).is_empty());
    assert_eq!(m.stats().dropped_mtu, 4);
}

#[test]
fn delay_and_jitter_bounds() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        ..Default::default()
    };
    let mut m = Impairment::new(config, 9, t0);
    for _ in 0..1000 {
        for d in m.process(t0, vec![0]) {
            let delay = d.at - t0;
            assert!(delay >= Duration::from_millis(10) && delay <= Duration::from_millis(15));
        }
    }
}

#[test]
fn kept_order_jitter_never_reorders() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(32),
        jitter_order: JitterOrder::Keep,
        ..Default::default()
    };
    let mut m = Impairment::new(config.clone(), 3, t0);
    let mut last = t0;
    let mut waits = Vec::new();
    for i in 0..1000u64 {
        let now = t0 + Duration::from_millis(20 * i);
        for d in m.process(now, vec![0]) {
            assert!(d.at >= last, "datagram {i} overtook the one before");
            assert!(d.at - now >= Duration::from_millis(30));
            last = d.at;
            waits.push(d.at - now);
        }
    }
    // Sent 20 ms apart, the 30..62 ms delays rarely need to wait for the
    // datagram ahead: the average stays near the middle, 46 ms.
    let avg = waits.iter().sum::<Duration>() / waits.len() as u32;
    assert!(
        avg > Duration::from_millis(44) && avg < Duration::from_millis(52),
        "{avg:?}"
    );
    // Without `Keep`, the same jitter reorders some datagrams.
    let mut m = Impairment::new(
        ImpairConfig {
            jitter_order: JitterOrder::Reorder,
            ..config
        },
        3,
        t0,
    );
    let ats: Vec<Instant> = (0..1000u64)
        .flat_map(|i| m.process(t0 + Duration::from_millis(20 * i), vec![0]))
        .map(|d| d.at)
        .collect();
    assert!(ats.windows(2).any(|w| w[1] < w[0]));
}

#[test]
fn held_datagram_is_released_without_later_traffic() {
    let t0 = Instant::now();
    let config = ImpairConfig {
        reorder: 1.0,
        ..Default::default()
    };
    let mut m = Impairment::new(config, 1, t0);
    assert!(m.process(t0, vec![1]).is_empty());
    let at = m.next_release().unwrap();
    assert!(at <= t0 + MAX_HOLD);
    assert!(m.poll_release(at - Duration::from_micros(1)).is_empty());
    assert_eq!(m.poll_release(at).len(), 1);
}

/// `--schedule`: changing the configuration keeps the random streams, so
/// the same seed and the same changes give the same decisions, and the new
/// settings take effect at once.
#[test]
fn changes_are_reproducible() {
    let once = || {
        let t0 = Instant::now();
        let mut m = Impairment::new(
            ImpairConfig {
                loss: 0.1,
                queue: DEFAULT_QUEUE,
                ..ImpairConfig::default()
            },
            9,
            t0,
        );
        let mut verdicts = Vec::new();
        for i in 0..4000u32 {
            if i == 2000 {
                m.set_config(ImpairConfig {
                    loss: 0.5,
                    duplicate: 0.2,
                    queue: DEFAULT_QUEUE,
                    ..ImpairConfig::default()
                });
            }
            let now = t0 + Duration::from_micros(100 * u64::from(i));
            verdicts.push(m.process(now, i.to_be_bytes().to_vec()).len());
        }
        (verdicts, m.stats().clone())
    };
    let (a, stats) = once();
    let (b, _) = once();
    assert_eq!(a, b, "same seed, same changes, other decisions");
    let after: usize = a[2000..].iter().filter(|&&n| n == 0).count();
    let before: usize = a[..2000].iter().filter(|&&n| n == 0).count();
    within(before as f64 / 2000.0, 0.1, 0.03);
    within(after as f64 / 2000.0, 0.5, 0.05);
    assert!(stats.duplicated > 0);
}

/// Loss with `loss_burst_time`, one datagram every `every`, for `n`
/// datagrams: which were lost.
fn timed_bursts(loss: f64, burst: Duration, every: Duration, n: usize, seed: u64) -> Vec<bool> {
    let t0 = Instant::now();
    let mut m = Impairment::new(
        ImpairConfig {
            loss,
            loss_burst_time: Some(burst),
            queue: DEFAULT_QUEUE,
            ..ImpairConfig::default()
        },
        seed,
        t0,
    );
    (0..n)
        .map(|i| m.process(t0 + every * i as u32, vec![0; 10]).is_empty())
        .collect()
}

/// Issue #16: bursts of a mean duration in time. Sampled every
/// millisecond, the share lost is the configured loss and a run of losses
/// lasts the mean burst duration.
#[test]
fn timed_bursts_have_the_configured_share_and_duration() {
    let lost = timed_bursts(
        0.1,
        Duration::from_millis(20),
        Duration::from_millis(1),
        400_000,
        3,
    );
    let share = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
    within(share, 0.1, 0.015);
    let runs: Vec<usize> = lost
        .split(|&l| !l)
        .map(<[bool]>::len)
        .filter(|&n| n > 0)
        .collect();
    let mean_run_ms = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
    // An exponential burst of mean 20 ms covers about 20 one-ms samples
    // (at least one: a burst is only seen when a sample falls in it).
    within(mean_run_ms, 20.0, 3.0);
}

/// A sparse flow (a probe a second) through 50 ms bursts: a loss says
/// nothing about the next datagram a second later, unlike a burst counted
/// in datagrams, which lasts until enough datagrams pass.
#[test]
fn timed_bursts_end_without_traffic() {
    let lost = timed_bursts(
        0.2,
        Duration::from_millis(50),
        Duration::from_secs(1),
        20_000,
        4,
    );
    let share = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
    within(share, 0.2, 0.02);
    let after_loss: Vec<bool> = lost.windows(2).filter(|w| w[0]).map(|w| w[1]).collect();
    let again = after_loss.iter().filter(|&&l| l).count() as f64 / after_loss.len() as f64;
    within(again, 0.2, 0.04);
    // The same seed gives the same losses.
    assert_eq!(
        lost,
        timed_bursts(
            0.2,
            Duration::from_millis(50),
            Duration::from_secs(1),
            20_000,
            4
        )
    );
}

/// Delays (ms) of `n` datagrams, one a millisecond, through `config`.
fn delays(config: ImpairConfig, n: usize) -> Vec<f64> {
    let t0 = Instant::now();
    let mut m = Impairment::new(config, 5, t0);
    (0..n)
        .filter_map(|i| {
            let (_, v) = m.process_verdict(t0 + Duration::from_millis(i as u64), 0, vec![0; 10]);
            v.copies[0].map(|c| c.delay.as_secs_f64() * 1000.0)
        })
        .collect()
}

fn mean_sd_lag1(x: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let cov = x
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum::<f64>()
        / (n - 1.0);
    (mean, var.sqrt(), cov / var)
}

fn jittered(distribution: DelayDistribution, correlation: f64) -> ImpairConfig {
    ImpairConfig {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        jitter_distribution: distribution,
        jitter_correlation: correlation,
        queue: DEFAULT_QUEUE,
        ..ImpairConfig::default()
    }
}

/// Issue #16: each delay distribution has the documented mean and spread
/// (docs/proxy.md): uniform 50..60 ms; the others 50 ms ± 10 ms.
#[test]
fn delay_distributions_have_the_documented_mean_and_spread() {
    let (mean, sd, lag1) = mean_sd_lag1(&delays(jittered(DelayDistribution::Uniform, 0.0), N));
    within(mean, 55.0, 0.2);
    within(sd, 10.0 / 12f64.sqrt(), 0.1);
    within(lag1, 0.0, 0.03);
    for d in [
        DelayDistribution::Normal,
        DelayDistribution::Pareto,
        DelayDistribution::ParetoNormal,
    ] {
        let x = delays(jittered(d, 0.0), 200_000);
        let (mean, sd, _) = mean_sd_lag1(&x);
        // Normal is clamped at 0 five deviations down: no visible effect.
        within(mean, 50.0, 0.3);
        within(
            sd,
            10.0,
            if d == DelayDistribution::Normal {
                0.2
            } else {
                1.0
            },
        );
        if d == DelayDistribution::Pareto {
            // The heavy tail: no delay below 50 - 5.8 ms, some far above.
            let min = x.iter().copied().fold(f64::MAX, f64::min);
            assert!(min > 44.0, "{min}");
            assert!(x.iter().any(|&v| v > 100.0));
        }
    }
}

/// A correlation keeps the mean and spread and gives that lag-1
/// correlation.
#[test]
fn delay_correlation_is_the_lag1_correlation() {
    let (mean, sd, lag1) = mean_sd_lag1(&delays(jittered(DelayDistribution::Normal, 0.5), 200_000));
    within(mean, 50.0, 0.3);
    within(sd, 10.0, 0.3);
    within(lag1, 0.5, 0.02);
}

/// Correlated loss keeps the average and has the lag-1 correlation asked.
#[test]
fn correlated_loss_keeps_its_average() {
    let t0 = Instant::now();
    let mut m = Impairment::new(
        ImpairConfig {
            loss: 0.1,
            loss_correlation: 0.6,
            queue: DEFAULT_QUEUE,
            ..ImpairConfig::default()
        },
        8,
        t0,
    );
    let lost: Vec<f64> = (0..200_000u64)
        .map(|i| {
            let out = m.process(t0 + Duration::from_micros(i), vec![0; 10]);
            if out.is_empty() {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let (share, _, lag1) = mean_sd_lag1(&lost);
    within(share, 0.1, 0.01);
    within(lag1, 0.6, 0.02);
}

/// Issue #16: the slotting model. Slots every 10 ms carrying at most 3
/// datagrams: datagrams that arrive every millisecond leave only at slot
/// times, never before they are ready, at most 3 at a time, in order.
#[test]
fn slots_deliver_in_bursts() {
    let t0 = Instant::now();
    let ms = Duration::from_millis(1);
    let mut m = Impairment::new(
        ImpairConfig {
            slot: Some(Slots {
                min: 10 * ms,
                max: 10 * ms,
                packets: Some(3),
                bytes: None,
            }),
            queue: DEFAULT_QUEUE,
            ..ImpairConfig::default()
        },
        2,
        t0,
    );
    let mut times = Vec::new();
    for i in 0..100u32 {
        let now = t0 + ms * (i / 4); // a little faster than the slots carry
        for d in m.process(now, vec![0; 100]) {
            assert!(d.at >= now, "left before it arrived");
            times.push(d.at);
        }
    }
    assert_eq!(times.len(), 100);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of order");
    let mut per_slot = std::collections::BTreeMap::new();
    for t in &times {
        let since = t.duration_since(t0);
        assert_eq!(
            since.as_nanos() % (10 * ms).as_nanos(),
            0,
            "{since:?} is not a slot time"
        );
        *per_slot.entry(since).or_insert(0) += 1;
    }
    assert!(per_slot.values().all(|&n| n <= 3), "{per_slot:?}");
    assert_eq!(per_slot.values().filter(|&&n| n == 3).count(), 33);
}

/// A byte budget per slot: 250 bytes carry two 100-byte datagrams; a
/// datagram larger than the budget still goes, alone.
#[test]
fn slot_byte_budget() {
    let t0 = Instant::now();
    let ms = Duration::from_millis(1);
    let mut m = Impairment::new(
        ImpairConfig {
            slot: Some(Slots {
                min: 5 * ms,
                max: 15 * ms,
                packets: None,
                bytes: Some(250),
            }),
            queue: DEFAULT_QUEUE,
            ..ImpairConfig::default()
        },
        3,
        t0,
    );
    let mut at = Vec::new();
    for len in [100, 100, 100, 400, 100] {
        at.extend(m.process(t0, vec![0; len]).into_iter().map(|d| d.at));
    }
    assert_eq!(at[0], at[1]);
    assert!(at[2] > at[1] && at[3] > at[2] && at[4] > at[3]);
    let gaps: Vec<Duration> = at
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| !g.is_zero())
        .collect();
    assert!(
        gaps.iter().all(|g| (5 * ms..=15 * ms).contains(g)),
        "{gaps:?}"
    );
}

/// Issue #22: the per-datagram blackout lookup is a binary search over an
/// index; it answers as the linear scan over the list did, overlaps and
/// nested intervals included.
#[test]
fn the_blackout_index_answers_as_the_list_does() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    for _ in 0..200 {
        let blackouts: Vec<Blackout> = (0..rng.gen_range(0..20))
            .map(|_| Blackout {
                at: Duration::from_millis(rng.gen_range(0..1000)),
                length: Duration::from_millis(rng.gen_range(0..300)),
            })
            .collect();
        let index = super::BlackoutIndex::new(&blackouts);
        for t in (0..1400).map(Duration::from_millis) {
            assert_eq!(
                index.contains(t),
                blackouts.iter().any(|b| b.contains(t)),
                "t {t:?} in {blackouts:?}"
            );
        }
    }
}

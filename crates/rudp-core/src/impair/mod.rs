//! A seeded, I/O-free model of a misbehaving network path, for one
//! direction.
//!
//! The simulated-network tests ([`crate::sim`]) and `rudp proxy` both run
//! datagrams through it, so what the tests exercise is what users get.
//! Feed datagrams with [`Impairment::process`]; it answers with the
//! deliveries to make and when. Held-back (reordered) datagrams come out of
//! later calls, or of [`Impairment::poll_release`] once their hold time ends.
//!
//! Each impairment draws from its own random stream, derived from the seed
//! and the impairment's name, so that turning one impairment on does not
//! change the decisions of another.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
/// An interval during which a link drops everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    /// When it starts, from the link's creation.
    pub at: Duration,
    /// How long it lasts.
    pub length: Duration,
}

impl Blackout {
    /// Whether time `t` (from the link's creation) falls in the interval.
    pub fn contains(&self, t: Duration) -> bool {
        t >= self.at && t < self.at + self.length
    }
}

/// Blackouts sorted by start, with the latest end among each prefix, so
/// that whether a time falls in any of them takes one binary search
/// (O(log n) per datagram, however many there are; issue #22).
#[derive(Debug, Clone, Default)]
struct BlackoutIndex {
    /// (start, the latest end of this and every earlier-starting one).
    starts: Vec<(Duration, Duration)>,
}

impl BlackoutIndex {
    fn new(blackouts: &[Blackout]) -> Self {
        let mut sorted: Vec<(Duration, Duration)> = blackouts
            .iter()
            .map(|b| (b.at, b.at.saturating_add(b.length)))
            .collect();
        sorted.sort_unstable();
        let mut latest = Duration::ZERO;
        for (_, end) in &mut sorted {
            latest = latest.max(*end);
            *end = latest;
        }
        Self { starts: sorted }
    }

    /// Whether `t` falls in any blackout: the latest end among those that
    /// started by `t` is after it.
    fn contains(&self, t: Duration) -> bool {
        let started = self.starts.partition_point(|&(at, _)| at <= t);
        started > 0 && self.starts[started - 1].1 > t
    }
}

/// What to do to the datagrams of one direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImpairConfig {
    /// Share of datagrams lost, 0.0..=1.0.
    pub loss: f64,
    /// With a mean burst length (datagrams, > 1), loss comes in bursts
    /// (Gilbert-Elliott model) at the same average rate `loss`.
    pub loss_burst: Option<f64>,
    /// With a mean burst duration, loss comes in bursts in time: the link
    /// alternates between good and bad periods of exponentially
    /// distributed length, the bad ones `loss_burst_time` on average and the
    /// good ones so that the share of time in bad is `loss`; every datagram
    /// in a bad period is lost. Unlike `loss_burst`, a burst ends when its
    /// time is up, however few datagrams pass (a stalled connection's
    /// probes get through). Takes precedence over `loss_burst`.
    pub loss_burst_time: Option<Duration>,
    /// Share of datagrams sent twice.
    pub duplicate: f64,
    /// Share of datagrams held back and released after later ones.
    pub reorder: f64,
    /// Base one-way delay.
    pub delay: Duration,
    /// The spread of the extra delay: with [`DelayDistribution::Uniform`]
    /// the extra delay is uniform in 0..=jitter; with the others, jitter is
    /// its standard deviation around `delay` (docs/proxy.md).
    pub jitter: Duration,
    /// How the extra delay is drawn.
    pub jitter_distribution: DelayDistribution,
    /// Lag-1 correlation of successive extra delays, 0..1.
    pub jitter_correlation: f64,
    /// Lag-1 correlation of successive random losses, 0..1: a datagram is
    /// lost with probability `loss + c(1 - loss)` after a loss and
    /// `loss(1 - c)` after a delivery, so the average stays `loss`. Not
    /// used with a burst model, which has its own.
    pub loss_correlation: f64,
    /// Whether jitter may reorder datagrams.
    pub jitter_order: JitterOrder,
    /// Share of datagrams with one bit flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bytes per second.
    pub rate: Option<u64>,
    /// Datagrams the bottleneck queue holds; more are dropped.
    pub queue: usize,
    /// The bottleneck queue bounded in time, as real bottlenecks are
    /// sized: a datagram that would wait longer than this before the rate
    /// lets it leave is dropped (tbf's `latency`). `None`: only `queue`.
    pub queue_delay: Option<Duration>,
    /// Intervals, from the model's start, during which everything is dropped.
    pub blackouts: Vec<Blackout>,
    /// Largest datagram (UDP payload, bytes) the link carries: larger ones
    /// are dropped, as a path with a smaller MTU drops them (RFC 8899's
    /// black hole when it is set mid-run). `None`: no limit.
    pub mtu: Option<usize>,
    /// Deliveries in bursts (netem's `slot`): datagrams leave only when a
    /// slot opens, slots open at intervals uniform in `min..=max`, and
    /// each carries at most `packets` datagrams and `bytes` bytes.
    pub slot: Option<Slots>,
}

/// The slotting model: links that deliver in bursts (Wi-Fi, cellular).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Shortest interval between slots (more than zero).
    pub min: Duration,
    /// Longest interval between slots (at least `min`).
    pub max: Duration,
    /// Datagrams a slot carries at most.
    pub packets: Option<u32>,
    /// Bytes a slot carries at most (a datagram larger than this still
    /// goes, alone).
    pub bytes: Option<u64>,
}

impl ImpairConfig {
    /// Whether the configuration changes anything at all.
    pub fn is_clean(&self) -> bool {
        *self
            == Self {
                queue: self.queue,
                queue_delay: self.queue_delay,
                ..Self::default()
            }
    }
}

/// How the extra delay of `jitter` is drawn (docs/proxy.md has the
/// formulas). The names are netem's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayDistribution {
    /// Uniform in 0..=jitter.
    #[default]
    Uniform,
    /// Normal: delay + jitter·Z, Z ~ N(0, 1).
    Normal,
    /// Pareto (shape 3), standardized: a heavy tail of long delays.
    Pareto,
    /// A quarter normal, three quarters Pareto, standardized.
    ParetoNormal,
}

impl std::str::FromStr for DelayDistribution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "normal" => Ok(Self::Normal),
            "pareto" => Ok(Self::Pareto),
            "paretonormal" => Ok(Self::ParetoNormal),
            _ => Err(format!(
                "'{s}' is not a delay distribution: use uniform, normal, pareto or paretonormal"
            )),
        }
    }
}

impl DelayDistribution {
    /// The name the flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Normal => "normal",
            Self::Pareto => "pareto",
            Self::ParetoNormal => "paretonormal",
        }
    }
}

/// What jitter does to the order of datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitterOrder {
    /// Each datagram gets its own delay, so a later one may overtake an
    /// earlier one (a path with several routes).
    #[default]
    Reorder,
    /// A datagram never leaves before the one sent ahead of it (a FIFO
    /// link whose delay varies), as in KCP's latency test.
    Keep,
}

impl std::str::FromStr for JitterOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reorder" => Ok(JitterOrder::Reorder),
            "keep" => Ok(JitterOrder::Keep),
            _ => Err(format!(
                "'{s}' is not a jitter order: use 'reorder' or 'keep'"
            )),
        }
    }
}

/// Default bottleneck queue length, in datagrams.
pub const DEFAULT_QUEUE: usize = 1000;
/// Longest a reordered datagram is held when no later datagram comes.
pub const MAX_HOLD: Duration = Duration::from_millis(20);

crate::counters! {
    /// What the model did, counted per direction.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    pub struct ImpairStats {
        /// Datagrams offered to the model.
        pub datagrams_in: u64,
        /// Their bytes.
        pub bytes_in: u64,
        /// Datagrams delivered (copies included).
        pub forwarded: u64,
        /// Their bytes.
        pub bytes_forwarded: u64,
        /// Dropped by random loss.
        pub dropped_loss: u64,
        /// Dropped in a loss burst.
        pub dropped_burst: u64,
        /// Dropped because the rate limiter's queue was full.
        pub dropped_queue: u64,
        /// Dropped during a blackout.
        pub dropped_blackout: u64,
        /// Dropped for being larger than the MTU.
        pub dropped_mtu: u64,
        /// Sent twice.
        pub duplicated: u64,
        /// Held back and released after later ones.
        pub reordered: u64,
        /// Delivered with a flipped bit.
        pub corrupted: u64,
    }
}

/// A datagram to deliver at `at`. `tag` is whatever the caller passed with
/// it (the proxy uses it to remember which client a datagram belongs to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When to deliver it.
    pub at: Instant,
    /// The caller's tag.
    pub tag: u64,
    /// The datagram (perhaps corrupted).
    pub data: Vec<u8>,
}

/// What the model did to one datagram (`rudp proxy --pcap` writes it
/// beside the datagram).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why it was dropped, if it was.
    pub dropped: Option<DropReason>,
    /// Each copy sent (two when duplicated): its fate.
    pub copies: [Option<CopyFate>; 2],
}

/// Why the model dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// A loss burst.
    Burst,
    /// The rate limiter's queue was full.
    Queue,
    /// A blackout.
    Blackout,
    /// Larger than the link's MTU.
    Mtu,
}

/// What happened to one copy of a datagram that was not dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFate {
    /// How long after its arrival it is due to leave (bottleneck queue,
    /// delay and jitter); a held copy may leave later.
    pub delay: Duration,
    /// The bit flipped in this copy, if it was corrupted.
    pub corrupted_bit: Option<usize>,
    /// Held back to be released after later datagrams (reordering).
    pub held: bool,
}

impl std::fmt::Display for Verdict {
    /// One line for people: `forwarded after 12.3 ms`, `dropped: loss`,
    /// `duplicated: ...; ...`, with corruption and reordering named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = self.dropped {
            let why = match d {
                DropReason::Loss => "random loss",
                DropReason::Burst => "burst loss",
                DropReason::Queue => "bottleneck queue full",
                DropReason::Blackout => "blackout",
                DropReason::Mtu => "larger than the MTU",
            };
            return write!(f, "dropped: {why}");
        }
        let copies: Vec<&CopyFate> = self.copies.iter().flatten().collect();
        if copies.len() > 1 {
            write!(f, "duplicated: ")?;
        }
        for (i, c) in copies.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            let verb = if c.held {
                "reordered (held back), due"
            } else {
                "forwarded"
            };
            write!(f, "{verb} after {:.3} ms", c.delay.as_secs_f64() * 1000.0)?;
            if let Some(bit) = c.corrupted_bit {
                write!(f, ", corrupted: bit {bit} (byte {}) flipped", bit / 8)?;
            }
        }
        Ok(())
    }
}

/// One random stream per impairment (see the module docs).
#[derive(Debug, Clone)]
struct Streams {
    loss: ChaCha8Rng,
    duplicate: ChaCha8Rng,
    reorder: ChaCha8Rng,
    jitter: ChaCha8Rng,
    corrupt: ChaCha8Rng,
    slot: ChaCha8Rng,
}

impl Streams {
    fn new(seed: u64) -> Self {
        let stream = |id: u64| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(id);
            r
        };
        Self {
            loss: stream(1),
            duplicate: stream(2),
            reorder: stream(3),
            jitter: stream(4),
            corrupt: stream(5),
            slot: stream(6),
        }
    }
}

/// The Gilbert-Elliott channel state for bursty loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Good,
    Bad,
}

#[derive(Debug, Clone)]
struct Held {
    tag: u64,
    data: Vec<u8>,
    /// Release after this many later datagrams...
    after: u32,
    /// ...or at this instant, whichever comes first.
    deadline: Instant,
}

/// The impairment model of one direction.
#[derive(Debug, Clone)]
pub struct Impairment {
    config: ImpairConfig,
    /// `config.blackouts`, indexed for the per-datagram lookup.
    blackouts: BlackoutIndex,
    start: Instant,
    rng: Streams,
    channel: Channel,
    /// `loss_burst_time`: when the current good or bad period ends.
    period_end: Option<Instant>,
    /// `jitter_correlation`: the previous standardized jitter draw.
    last_z: f64,
    /// `loss_correlation`: whether the previous datagram was lost.
    last_lost: bool,
    /// `slot`: when the current slot opens, and what it carries so far.
    slot_at: Option<Instant>,
    slot_packets: u32,
    slot_bytes: u64,
    /// Departure times of datagrams in the bottleneck queue.
    queue: VecDeque<Instant>,
    held: Vec<Held>,
    stats: ImpairStats,
    /// Delivery time of the latest datagram, for `JitterOrder::Keep`.
    last_delivery: Option<Instant>,
}

impl Impairment {
    /// A model that starts its clock (for blackouts) at `start`.
    pub fn new(config: ImpairConfig, seed: u64, start: Instant) -> Self {
        Self {
            blackouts: BlackoutIndex::new(&config.blackouts),
            config,
            start,
            rng: Streams::new(seed),
            channel: Channel::Good,
            period_end: None,
            last_z: 0.0,
            last_lost: false,
            slot_at: None,
            slot_packets: 0,
            slot_bytes: 0,
            queue: VecDeque::new(),
            held: Vec::new(),
            stats: ImpairStats::default(),
            last_delivery: None,
        }
    }

    /// The impairments in force.
    pub fn config(&self) -> &ImpairConfig {
        &self.config
    }

    /// Changes the impairments from now on (`rudp proxy --schedule`).
    /// The random streams, the queue, held datagrams and the statistics
    /// carry on, so the same seed and the same changes at the same points
    /// give the same decisions.
    pub fn set_config(&mut self, config: ImpairConfig) {
        if config.blackouts != self.config.blackouts {
            self.blackouts = BlackoutIndex::new(&config.blackouts);
        }
        self.config = config;
    }

    /// What the model did so far.
    pub fn stats(&self) -> &ImpairStats {
        &self.stats
    }

    /// Runs one datagram through the model at `now`.
    pub fn process(&mut self, now: Instant, original: Vec<u8>) -> Vec<Delivery> {
        self.process_tagged(now, 0, original)
    }

    /// Like [`Self::process`], with a tag that comes back with each delivery.
    pub fn process_tagged(&mut self, now: Instant, tag: u64, original: Vec<u8>) -> Vec<Delivery> {
        self.process_verdict(now, tag, original).0
    }

    /// Like [`Self::process_tagged`], also saying what was done to the
    /// datagram.
    pub fn process_verdict(
        &mut self,
        now: Instant,
        tag: u64,
        mut original: Vec<u8>,
    ) -> (Vec<Delivery>, Verdict) {
        let mut verdict = Verdict::default();
        let data = &original;
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        let mut out = Vec::new();
        // Datagrams held for reordering leave after this one passes.
        self.release_held(now, true, &mut out);

        let since_start = now.saturating_duration_since(self.start);
        if self.blackouts.contains(since_start) {
            self.stats.dropped_blackout += 1;
            verdict.dropped = Some(DropReason::Blackout);
            return (out, verdict);
        }
        if self.config.mtu.is_some_and(|mtu| data.len() > mtu) {
            self.stats.dropped_mtu += 1;
            verdict.dropped = Some(DropReason::Mtu);
            return (out, verdict);
        }
        if let Some(lost) = self.draw_loss(now) {
            match lost {
                LossKind::Random => self.stats.dropped_loss += 1,
                LossKind::Burst => self.stats.dropped_burst += 1,
            }
            verdict.dropped = Some(match lost {
                LossKind::Random => DropReason::Loss,
                LossKind::Burst => DropReason::Burst,
            });
            return (out, verdict);
        }
        let Some(departure) = self.enqueue(now, data.len()) else {
            self.stats.dropped_queue += 1;
            verdict.dropped = Some(DropReason::Queue);
            return (out, verdict);
        };
        let copies = if self.rng.duplicate.gen_bool(clamp(self.config.duplicate)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let mut data = if copy + 1 == copies {
                std::mem::take(&mut original)
            } else {
                original.clone()
            };
            let mut corrupted_bit = None;
            if self.rng.corrupt.gen_bool(clamp(self.config.corrupt)) && !data.is_empty() {
                let bit = self.rng.corrupt.gen_range(0..data.len() * 8);
                data[bit / 8] ^= 1 << (bit % 8);
                self.stats.corrupted += 1;
                corrupted_bit = Some(bit);
            }
            let mut at = departure + self.draw_delay();
            at = self.slot_for(at, data.len());
            if self.config.jitter_order == JitterOrder::Keep {
                at = self.last_delivery.map_or(at, |last| at.max(last));
                self.last_delivery = Some(at);
            }
            let held = self.rng.reorder.gen_bool(clamp(self.config.reorder));
            verdict.copies[copy] = Some(CopyFate {
                delay: at.saturating_duration_since(now),
                corrupted_bit,
                held,
            });
            if held {
                self.stats.reordered += 1;
                let after = self.rng.reorder.gen_range(1..=3);
                self.held.push(Held {
                    tag,
                    data,
                    after,
                    deadline: at + MAX_HOLD,
                });
                continue;
            }
            self.stats.forwarded += 1;
            self.stats.bytes_forwarded += data.len() as u64;
            out.push(Delivery { at, tag, data });
        }
        (out, verdict)
    }

    /// Releases held datagrams whose hold time is over.
    pub fn poll_release(&mut self, now: Instant) -> Vec<Delivery> {
        let mut out = Vec::new();
        self.release_held(now, false, &mut out);
        out
    }

    /// When [`Self::poll_release`] next has something to release.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.deadline).min()
    }

    fn release_held(&mut self, now: Instant, one_passed: bool, out: &mut Vec<Delivery>) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            if one_passed {
                h.after = h.after.saturating_sub(1);
            }
            if h.after == 0 || h.deadline <= now {
                let h = self.held.swap_remove(i);
                self.stats.forwarded += 1;
                self.stats.bytes_forwarded += h.data.len() as u64;
                // Leaves just after the datagram that let it go.
                out.push(Delivery {
                    at: now + self.config.delay + Duration::from_micros(1),
                    tag: h.tag,
                    data: h.data,
                });
            } else {
                i += 1;
            }
        }
    }

    fn draw_loss(&mut self, now: Instant) -> Option<LossKind> {
        let p = clamp(self.config.loss);
        if let Some(mean_bad) = self.config.loss_burst_time {
            if !mean_bad.is_zero() && p > 0.0 && p < 1.0 {
                return self.timed_burst(now, mean_bad, p);
            }
        }
        if self.config.loss_burst.is_none() && self.config.loss_correlation > 0.0 {
            // Exact marginal `p`, lag-1 correlation `c` (docs/proxy.md).
            let c = clamp(self.config.loss_correlation);
            let q = if self.last_lost {
                p + c * (1.0 - p)
            } else {
                p * (1.0 - c)
            };
            self.last_lost = self.rng.loss.gen_bool(clamp(q));
            return self.last_lost.then_some(LossKind::Random);
        }
        match self.config.loss_burst {
            Some(burst) if burst > 1.0 && p > 0.0 && p < 1.0 => {
                // Gilbert: lose everything in Bad, nothing in Good. Mean stay
                // in Bad is `burst`; the Good->Bad probability is chosen so
                // the share of time in Bad is `p`.
                let bad_to_good = 1.0 / burst;
                let good_to_bad = (p * bad_to_good / (1.0 - p)).min(1.0);
                let flip = match self.channel {
                    Channel::Good => good_to_bad,
                    Channel::Bad => bad_to_good,
                };
                if self.rng.loss.gen_bool(flip) {
                    self.channel = match self.channel {
                        Channel::Good => Channel::Bad,
                        Channel::Bad => Channel::Good,
                    };
                }
                (self.channel == Channel::Bad).then_some(LossKind::Burst)
            }
            _ => self.rng.loss.gen_bool(p).then_some(LossKind::Random),
        }
    }

    /// The continuous-time Gilbert model of `loss_burst_time`: bad periods
    /// last `mean_bad` on average, good ones `mean_bad * (1 - p) / p`, both
    /// exponential, so the share of time in bad is `p`.
    fn timed_burst(&mut self, now: Instant, mean_bad: Duration, p: f64) -> Option<LossKind> {
        let mean_good = mean_bad.as_secs_f64() * (1.0 - p) / p;
        let mean_bad = mean_bad.as_secs_f64();
        let rng = &mut self.rng.loss;
        let mut draw = |mean: f64| {
            // Exponential with this mean: -mean * ln(1 - U), U in [0, 1).
            let u: f64 = rng.gen();
            Duration::from_secs_f64((-mean * (1.0 - u).ln()).min(1e6))
        };
        let mut end = match self.period_end {
            Some(end) => end,
            None => {
                self.channel = Channel::Good;
                now + draw(mean_good)
            }
        };
        // A long silence: the chain has forgotten its state. Exponential
        // periods make the stationary draw exact, and keep the work per
        // datagram bounded however long the link was idle.
        if now.saturating_duration_since(end).as_secs_f64() > 20.0 * (mean_good + mean_bad) {
            let bad = draw(1.0).as_secs_f64() < -(1.0 - p).ln();
            self.channel = if bad { Channel::Bad } else { Channel::Good };
            end = now + draw(if bad { mean_bad } else { mean_good });
        }
        while now >= end {
            self.channel = match self.channel {
                Channel::Good => Channel::Bad,
                Channel::Bad => Channel::Good,
            };
            end += draw(match self.channel {
                Channel::Good => mean_good,
                Channel::Bad => mean_bad,
            });
        }
        self.period_end = Some(end);
        (self.channel == Channel::Bad).then_some(LossKind::Burst)
    }

    /// The one-way delay of the next datagram: `delay` plus the extra
    /// delay `jitter` and its distribution call for, never below zero.
    fn draw_delay(&mut self) -> Duration {
        let d = self.config.delay.as_secs_f64();
        let j = self.config.jitter.as_secs_f64();
        if j == 0.0 {
            return self.config.delay;
        }
        // A standardized draw (mean 0, standard deviation 1)...
        let rng = &mut self.rng.jitter;
        let x = match self.config.jitter_distribution {
            DelayDistribution::Uniform => (rng.gen::<f64>() - 0.5) * 12f64.sqrt(),
            DelayDistribution::Normal => rng.sample::<f64, _>(StandardNormal),
            DelayDistribution::Pareto => standard_pareto(rng),
            DelayDistribution::ParetoNormal => {
                let n: f64 = rng.sample(StandardNormal);
                (0.25 * n + 0.75 * standard_pareto(rng)) / 0.625f64.sqrt()
            }
        };
        // ...correlated with the last one as an AR(1), which keeps the mean
        // and the spread and makes the lag-1 correlation `c`.
        let c = clamp(self.config.jitter_correlation);
        let z = c * self.last_z + (1.0 - c * c).sqrt() * x;
        self.last_z = z;
        let extra = match self.config.jitter_distribution {
            // Uniform in 0..=jitter (without correlation): mean j/2.
            DelayDistribution::Uniform => j / 2.0 + j / 12f64.sqrt() * z,
            _ => j * z,
        };
        Duration::from_secs_f64((d + extra).clamp(0.0, 1e6))
    }

    /// `slot`: the first slot at or after `ready` with room for `len` bytes;
    /// without a slot model, `ready` itself.
    fn slot_for(&mut self, ready: Instant, len: usize) -> Instant {
        let Some(slots) = self.config.slot else {
            return ready;
        };
        let (min, max) = (
            slots.min.max(Duration::from_micros(1)),
            slots.max.max(slots.min),
        );
        let rng = &mut self.rng.slot;
        let mut next = |from: Instant| {
            from + Duration::from_secs_f64(rng.gen_range(min.as_secs_f64()..=max.as_secs_f64()))
        };
        let mut at = match self.slot_at {
            Some(at) => at,
            None => next(self.start),
        };
        // Idle for many slots: start again just after `ready`, so the work
        // per datagram stays bounded however long the link was quiet.
        if ready.saturating_duration_since(at) > max * 1000 {
            at = next(ready);
            self.slot_packets = 0;
            self.slot_bytes = 0;
        }
        let full = |packets: u32, bytes: u64| {
            slots.packets.is_some_and(|p| packets >= p)
                || slots
                    .bytes
                    .is_some_and(|b| packets > 0 && bytes + len as u64 > b)
        };
        while at < ready || full(self.slot_packets, self.slot_bytes) {
            at = next(at);
            self.slot_packets = 0;
            self.slot_bytes = 0;
        }
        self.slot_packets += 1;
        self.slot_bytes += len as u64;
        self.slot_at = Some(at);
        at
    }

    /// The bottleneck: returns when the datagram leaves, or `None` if the
    /// queue is full.
    fn enqueue(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.config.rate else {
            return Some(now);
        };
        while self.queue.front().is_some_and(|&t| t <= now) {
            self.queue.pop_front();
        }
        if self.queue.len() >= self.config.queue.max(1) {
            return None;
        }
        let start = self.queue.back().copied().unwrap_or(now).max(now);
        if self
            .config
            .queue_delay
            .is_some_and(|limit| start.saturating_duration_since(now) > limit)
        {
            return None;
        }
        let serialise = Duration::from_secs_f64(len as f64 / rate.max(1) as f64);
        let departure = start + serialise;
        self.queue.push_back(departure);
        Some(departure)
    }
}

enum LossKind {
    Random,
    Burst,
}

/// A Pareto draw (scale 1, shape 3: mean 3/2, variance 3/4), standardized
/// to mean 0 and standard deviation 1.
fn standard_pareto(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen();
    // Inverse CDF: x_m / (1 - U)^(1/α).
    let p = (1.0 - u).powf(-1.0 / 3.0);
    (p - 1.5) / 0.75f64.sqrt()
}

fn clamp(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests;

//! The impairment flags of `rudp proxy` (docs/proxy.md): every impairment
//! NAME exists as `--NAME` (both directions), `--up-NAME` (client to
//! server) and `--down-NAME` (server to client); a per-direction value
//! overrides the two-way one.
//!
//! The flags are generated from one table, so that the three forms of
//! every impairment cannot drift apart.

use crate::units::{parse_blackout, parse_duration, parse_probability, parse_rate, parse_size};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use rudp_core::impair::{DelayDistribution, ImpairConfig, JitterOrder, Slots, DEFAULT_QUEUE};
use std::time::Duration;

/// One impairment's flags.
struct Spec {
    name: &'static str,
    value: &'static str,
    help: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Probability,
    BurstLength,
    BurstTime,
    Correlation,
    Distribution,
    Slot,
    SlotPackets,
    SlotBytes,
    Duration,
    Rate,
    Queue,
    QueueDelay,
    Blackout,
    Order,
    Mtu,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "loss",
        value: "PROBABILITY",
        help: "random loss, 0.1 or 10%",
        kind: Kind::Probability,
    },
    Spec {
        name: "loss-burst",
        value: "N",
        help: "make loss bursty: mean burst length in datagrams (> 1), same average loss",
        kind: Kind::BurstLength,
    },
    Spec {
        name: "loss-burst-time",
        value: "DURATION",
        help: "make loss bursty in time: mean burst duration (e.g. 50ms), same average loss",
        kind: Kind::BurstTime,
    },
    Spec {
        name: "loss-correlation",
        value: "CORRELATION",
        help: "correlate random losses: lag-1 correlation 0..1 (or 0%..100%), same average loss",
        kind: Kind::Correlation,
    },
    Spec {
        name: "duplicate",
        value: "PROBABILITY",
        help: "send a second copy of a share of datagrams",
        kind: Kind::Probability,
    },
    Spec {
        name: "reorder",
        value: "PROBABILITY",
        help: "hold a share of datagrams back and release them after later ones",
        kind: Kind::Probability,
    },
    Spec {
        name: "delay",
        value: "DURATION",
        help: "one-way delay, e.g. 20ms",
        kind: Kind::Duration,
    },
    Spec {
        name: "jitter",
        value: "DURATION",
        help: "extra random delay, uniform in 0..D",
        kind: Kind::Duration,
    },
    Spec {
        name: "jitter-distribution",
        value: "NAME",
        help: "how the extra delay is drawn: uniform (0..jitter, default), or normal, pareto, paretonormal (jitter is then the standard deviation)",
        kind: Kind::Distribution,
    },
    Spec {
        name: "jitter-correlation",
        value: "CORRELATION",
        help: "correlate successive delays: lag-1 correlation 0..1 (or 0%..100%)",
        kind: Kind::Correlation,
    },
    Spec {
        name: "jitter-order",
        value: "ORDER",
        help: "'reorder' (default): jitter lets datagrams overtake each other; 'keep': each leaves no earlier than the one before",
        kind: Kind::Order,
    },
    Spec {
        name: "corrupt",
        value: "PROBABILITY",
        help: "flip one bit in a share of datagrams",
        kind: Kind::Probability,
    },
    Spec {
        name: "rate",
        value: "RATE",
        help: "bottleneck rate, e.g. 10mbit or 2MB/s",
        kind: Kind::Rate,
    },
    Spec {
        name: "queue",
        value: "N",
        help: "bottleneck queue in datagrams (default 1000)",
        kind: Kind::Queue,
    },
    Spec {
        name: "queue-delay",
        value: "DURATION",
        help: "bottleneck queue in time: a datagram that would wait longer than this for the rate is dropped, as at a real bottleneck (default 50ms; 'none' for --queue alone)",
        kind: Kind::QueueDelay,
    },
    Spec {
        name: "slot",
        value: "MIN[..MAX]",
        help: "deliver in bursts: slots open every MIN to MAX (e.g. 10ms..30ms); datagrams wait for the next one",
        kind: Kind::Slot,
    },
    Spec {
        name: "slot-packets",
        value: "N",
        help: "datagrams a slot carries at most",
        kind: Kind::SlotPackets,
    },
    Spec {
        name: "slot-bytes",
        value: "SIZE",
        help: "bytes a slot carries at most (e.g. 15kB)",
        kind: Kind::SlotBytes,
    },
    Spec {
        name: "mtu",
        value: "BYTES",
        help: "drop datagrams (UDP payloads) larger than BYTES, as a path with a smaller MTU does, e.g. 1400; default 1472 (a 1500-byte Ethernet MTU), 'none' for no limit",
        kind: Kind::Mtu,
    },
    Spec {
        name: "blackout",
        value: "AT+FOR",
        help: "drop everything during this interval from the start, e.g. 5s+2s (repeatable)",
        kind: Kind::Blackout,
    },
];

/// Parsed impairments for both directions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImpairArgs {
    pub up: ImpairConfig,
    pub down: ImpairConfig,
}

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The proxy's default `--mtu`: the UDP payload of a 1500-byte Ethernet
/// frame over IPv4. A proxy models a link, and real links carry 1500-byte
/// packets: without it, path MTU discovery over loopback reaches 65,507
/// bytes, which no real path carries (issue #25).
pub const DEFAULT_MTU: usize = 1472;

/// The proxy's default `--queue-delay`: its bottleneck queue holds what the
/// rate sends in 50 ms, as a router's buffer is sized in time (Linux tbf's
/// `latency`); the 1000 datagrams of `--queue` held 235 ms at 50 Mbit/s
/// and 12 s at 1 Mbit/s, which no real link queues (issue #25).
pub const DEFAULT_QUEUE_DELAY: Duration = Duration::from_millis(50);

impl ImpairArgs {
    /// No impairment in either direction: the queue and the MTU at their
    /// defaults.
    pub fn new() -> Self {
        let clean = ImpairConfig {
            queue: DEFAULT_QUEUE,
            queue_delay: Some(DEFAULT_QUEUE_DELAY),
            mtu: Some(DEFAULT_MTU),
            ..ImpairConfig::default()
        };
        Self {
            up: clean.clone(),
            down: clean,
        }
    }

    fn direction_mut(&mut self, d: Direction) -> &mut ImpairConfig {
        match d {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        }
    }

    /// Applies one setting by its flag name without the dashes (`loss`,
    /// `up-delay`, `down-rate`, ...), as `--schedule` lines and the flags
    /// give them: a two-way name sets both directions. The value is parsed
    /// as the flag's; a `blackout` is added to those already set. Nothing
    /// changes if the name or the value is bad.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let (dirs, base): (&[Direction], &str) = match name {
            n if n.starts_with("up-") => (&[Direction::Up], &n[3..]),
            n if n.starts_with("down-") => (&[Direction::Down], &n[5..]),
            n => (&[Direction::Up, Direction::Down], n),
        };
        let spec = SPECS
            .iter()
            .find(|s| s.name == base)
            .ok_or_else(|| format!("'{name}' is not an impairment (see rudp proxy --help)"))?;
        // `set` changes nothing when the value is bad, and the value is the
        // same for both directions: no copy of the settings is needed (a
        // copy per item made long blackout lists quadratic, issue #22).
        for &d in dirs {
            set(self.direction_mut(d), spec, value)?;
        }
        Ok(())
    }
}

/// Blackouts a direction holds at most (flags, schedule and control API):
/// each datagram looks them up in O(log n), and a list is applied in time
/// linear in its length.
pub const MAX_BLACKOUTS: usize = 100_000;

/// The value that removes a rate, a burst model or the blackouts (in
/// `--schedule` lines and the control API; the flags have no use for it).
pub const NONE: &str = "none";

impl ImpairArgs {
    /// Every setting of both directions by its flag name (`up-loss`,
    /// `down-delay`, ...), and by its two-way name (`loss`) where the two
    /// directions agree: what `GET /impairments` answers. Probabilities,
    /// burst lengths and queues are numbers; durations, rates (with their
    /// unit) and orders strings as the flags take them; blackouts a
    /// list; an absent rate or burst model `null`. Posted back as it is,
    /// every value means the same.
    pub fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value};
        let dur = |d: std::time::Duration| Value::String(humantime::format_duration(d).to_string());
        let mut out = serde_json::Map::new();
        for (prefix, c) in [("up-", &self.up), ("down-", &self.down)] {
            for spec in SPECS {
                let v = match spec.name {
                    "loss" => json!(c.loss),
                    "loss-burst" => json!(c.loss_burst),
                    "loss-burst-time" => c.loss_burst_time.map_or(Value::Null, dur),
                    "loss-correlation" => json!(c.loss_correlation),
                    "jitter-distribution" => json!(c.jitter_distribution.name()),
                    "jitter-correlation" => json!(c.jitter_correlation),
                    "slot" => c.slot.map_or(Value::Null, |s| {
                        json!(format!(
                            "{}..{}",
                            humantime::format_duration(s.min),
                            humantime::format_duration(s.max)
                        ))
                    }),
                    "slot-packets" => json!(c.slot.and_then(|s| s.packets)),
                    "slot-bytes" => json!(c.slot.and_then(|s| s.bytes)),
                    "duplicate" => json!(c.duplicate),
                    "reorder" => json!(c.reorder),
                    "delay" => dur(c.delay),
                    "jitter" => dur(c.jitter),
                    "jitter-order" => json!(match c.jitter_order {
                        JitterOrder::Reorder => "reorder",
                        JitterOrder::Keep => "keep",
                    }),
                    "corrupt" => json!(c.corrupt),
                    // With its unit, as every rate is written (issue #26).
                    "rate" => json!(c.rate.map(crate::units::format_rate)),
                    "queue" => json!(c.queue),
                    "queue-delay" => c.queue_delay.map_or(Value::Null, dur),
                    "mtu" => json!(c.mtu),
                    _ => Value::Array(
                        c.blackouts
                            .iter()
                            .map(|b| {
                                Value::String(format!(
                                    "{}+{}",
                                    humantime::format_duration(b.at),
                                    humantime::format_duration(b.length)
                                ))
                            })
                            .collect(),
                    ),
                };
                out.insert(format!("{prefix}{}", spec.name), v);
            }
        }
        // The two-way name too, where both directions agree (`loss` as
        // well as `up-loss` and `down-loss`), as the flags would set it.
        for spec in SPECS {
            let up = out.get(&format!("up-{}", spec.name));
            if up.is_some() && up == out.get(&format!("down-{}", spec.name)) {
                let v = up.cloned().unwrap_or(Value::Null);
                out.insert(spec.name.to_string(), v);
            }
        }
        out
    }

    /// Applies a JSON object of settings (`POST /impairments`) all at once:
    /// numbers and strings as the flags take them, `null` for `none`, a
    /// list for blackouts (replacing those set). Nothing changes if any
    /// name or value is bad.
    pub fn apply_json(
        &mut self,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        use serde_json::Value;
        let mut next = self.clone();
        for (name, value) in settings {
            let texts: Vec<String> = match value {
                Value::Null => vec![NONE.to_string()],
                Value::String(s) => vec![s.clone()],
                // A rate needs its unit, here as on the command line
                // (issue #26): GET answers "50mbit", which posts back as is.
                Value::Number(n) if name.ends_with("rate") => {
                    return Err(format!(
                    "{name}: {n} needs a unit, as a string: \"{n}mbit\" or \"{n}B/s\", for example"
                ))
                }
                Value::Number(n) => vec![n.to_string()],
                Value::Array(items) if name.ends_with("blackout") => {
                    let mut v = vec![NONE.to_string()];
                    for item in items {
                        match item {
                            Value::String(s) => v.push(s.clone()),
                            other => return Err(format!("{name}: {other} is not AT+FOR")),
                        }
                    }
                    v
                }
                other => return Err(format!("{name}: {other} is not a value for it")),
            };
            for t in texts {
                next.apply(name, &t).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        *self = next;
        Ok(())
    }
}

/// Parses `value` as `spec`'s flag does and sets it in `c`.
fn set(c: &mut ImpairConfig, spec: &Spec, value: &str) -> Result<(), String> {
    match spec.kind {
        Kind::Probability => {
            let v = parse_probability(value).map_err(|e| e.0)?;
            match spec.name {
                "loss" => c.loss = v,
                "duplicate" => c.duplicate = v,
                "reorder" => c.reorder = v,
                _ => c.corrupt = v,
            }
        }
        // The two burst models exclude each other: setting one clears the
        // other.
        Kind::BurstLength if value == NONE => c.loss_burst = None,
        Kind::BurstLength => {
            c.loss_burst = Some(check_burst(value)?);
            c.loss_burst_time = None;
        }
        Kind::BurstTime if value == NONE => c.loss_burst_time = None,
        Kind::BurstTime => {
            let d = parse_duration(value).map_err(|e| e.0)?;
            if d.is_zero() {
                return Err(format!("'{value}' is not a burst duration (more than 0)"));
            }
            c.loss_burst_time = Some(d);
            c.loss_burst = None;
        }
        Kind::Duration => {
            let v = parse_duration(value).map_err(|e| e.0)?;
            if spec.name == "delay" {
                c.delay = v;
            } else {
                c.jitter = v;
            }
        }
        Kind::Correlation => {
            let v = parse_probability(value).map_err(|e| e.0)?;
            if spec.name == "loss-correlation" {
                c.loss_correlation = v;
            } else {
                c.jitter_correlation = v;
            }
        }
        Kind::Distribution => c.jitter_distribution = value.parse::<DelayDistribution>()?,
        Kind::Slot if value == NONE => c.slot = None,
        Kind::Slot => {
            let (min, max) = parse_slot(value)?;
            let (packets, bytes) = c.slot.map_or((None, None), |s| (s.packets, s.bytes));
            c.slot = Some(Slots {
                min,
                max,
                packets,
                bytes,
            });
        }
        Kind::SlotPackets | Kind::SlotBytes => {
            let Some(slot) = c.slot.as_mut() else {
                // Removing a limit that is not there changes nothing (and
                // is what `GET /impairments` reports for such a direction).
                if value == NONE {
                    return Ok(());
                }
                return Err(format!("--{} needs --slot", spec.name));
            };
            let limit = if value == NONE {
                None
            } else {
                Some(parse_slot_limit(value)?)
            };
            if spec.kind == Kind::SlotPackets {
                slot.packets = limit.map(|n| n.min(u64::from(u32::MAX)) as u32);
            } else {
                slot.bytes = limit;
            }
        }
        Kind::Rate if value == NONE => c.rate = None,
        Kind::Rate => c.rate = Some(parse_rate(value).map_err(|e| e.0)?),
        Kind::Order => c.jitter_order = value.parse::<JitterOrder>()?,
        Kind::Queue => c.queue = check_queue(value)?,
        Kind::QueueDelay if value == NONE => c.queue_delay = None,
        Kind::QueueDelay => c.queue_delay = Some(check_queue_delay(value)?),
        Kind::Mtu if value == NONE => c.mtu = None,
        Kind::Mtu => c.mtu = Some(check_mtu(value)?),
        Kind::Blackout if value == NONE => c.blackouts.clear(),
        Kind::Blackout => {
            let b = parse_blackout(value).map_err(|e| e.0)?;
            if c.blackouts.len() >= MAX_BLACKOUTS {
                return Err(format!(
                    "at most {MAX_BLACKOUTS} blackouts a direction; '{value}' is one more"
                ));
            }
            c.blackouts.push(b);
        }
    }
    Ok(())
}

fn check_burst(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n > 1.0 && n <= 10_000.0 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a mean burst length (a number above 1 and at most 10000)"
        )),
    }
}

fn check_queue(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a queue length (1 to 1000000 datagrams)"
        )),
    }
}

/// `--queue-delay`: more than zero (a bottleneck that queues nothing would
/// drop every datagram that arrives while one is leaving).
fn check_queue_delay(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!(
            "'{s}' is not a queue delay (more than 0, or 'none')"
        )),
        Err(e) => Err(e.0),
    }
}

/// `--slot MIN[..MAX]`: the interval between slots.
fn parse_slot(value: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = match value.split_once("..") {
        Some((a, b)) => (a, b),
        None => (value, value),
    };
    let min = parse_duration(min).map_err(|e| e.0)?;
    let max = parse_duration(max).map_err(|e| e.0)?;
    if min.is_zero() || max < min {
        return Err(format!(
            "'{value}' is not a slot interval (MIN[..MAX], 0 < MIN <= MAX, e.g. 10ms..30ms)"
        ));
    }
    Ok((min, max))
}

/// A positive count or size for a slot (`4`, `15kB`).
fn parse_slot_limit(value: &str) -> Result<u64, String> {
    match parse_size(value) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{value}' is not a positive number (e.g. 4 or 15kB)"
        )),
    }
}

/// `--mtu`: a datagram size from 1 to 65,535 bytes (the largest UDP
/// payload), plain or with a unit (`1400`, `9kB`).
fn check_mtu(value: &str) -> Result<usize, String> {
    match parse_size(value) {
        Ok(n) if (1..=65_535).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "'{value}' is not a datagram size from 1 to 65535 bytes (e.g. 1400)"
        )),
    }
}

/// `loss-burst-time`'s counterpart flag, `loss-burst` (with its prefix).
fn id_without_time(id: &str) -> String {
    id.trim_end_matches("-time").to_string()
}

fn arg(id: String, spec: &Spec, help: String) -> Arg {
    let counterpart = id_without_time(&id);
    let a = Arg::new(id.clone())
        .long(id)
        .value_name(spec.value)
        .help(help)
        .help_heading("Impairments");
    match spec.kind {
        Kind::Probability => a.value_parser(|s: &str| parse_probability(s).map_err(|e| e.0)),
        Kind::BurstLength => a.value_parser(check_burst),
        Kind::Correlation => a.value_parser(|s: &str| parse_probability(s).map_err(|e| e.0)),
        Kind::Distribution => a.value_parser(|s: &str| s.parse::<DelayDistribution>()),
        Kind::Slot => a.value_parser(parse_slot),
        Kind::SlotPackets | Kind::SlotBytes => a.value_parser(parse_slot_limit),
        Kind::BurstTime => a
            .value_parser(|s: &str| parse_duration(s).map_err(|e| e.0))
            .conflicts_with(counterpart),
        Kind::Duration => a.value_parser(|s: &str| parse_duration(s).map_err(|e| e.0)),
        Kind::Rate => a.value_parser(|s: &str| parse_rate(s).map_err(|e| e.0)),
        Kind::Queue => a.value_parser(check_queue),
        Kind::QueueDelay => a.value_parser(|s: &str| match s {
            NONE => Ok(NONE.to_string()),
            s => check_queue_delay(s).map(|_| s.to_string()),
        }),
        Kind::Mtu => a.value_parser(|s: &str| match s {
            NONE => Ok(NONE.to_string()),
            s => check_mtu(s).map(|_| s.to_string()),
        }),
        Kind::Order => a.value_parser(|s: &str| s.parse::<JitterOrder>()),
        Kind::Blackout => a
            .value_parser(|s: &str| parse_blackout(s).map_err(|e| e.0))
            .action(ArgAction::Append),
    }
}

impl Args for ImpairArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for spec in SPECS {
            cmd = cmd
                .arg(arg(spec.name.to_string(), spec, spec.help.to_string()))
                .arg(
                    arg(
                        format!("up-{}", spec.name),
                        spec,
                        format!("--{} for client to server only", spec.name),
                    )
                    .hide(true),
                )
                .arg(
                    arg(
                        format!("down-{}", spec.name),
                        spec,
                        format!("--{} for server to client only", spec.name),
                    )
                    .hide(true),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ImpairArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut out = ImpairArgs::new();
        for spec in SPECS {
            for (dir, prefix) in [(Direction::Up, "up-"), (Direction::Down, "down-")] {
                let own = format!("{prefix}{}", spec.name);
                // The per-direction flag wins over the two-way one.
                let id = if m.contains_id(&own) && m.value_source(&own).is_some() {
                    own
                } else {
                    spec.name.to_string()
                };
                let Some(values) = m.get_raw(&id) else {
                    continue;
                };
                // clap's value parser checked each value already; the same
                // setter as the schedule assigns it, so the two agree.
                for v in values {
                    let v = v.to_string_lossy();
                    let c = out.direction_mut(dir);
                    set(c, spec, &v).map_err(|e| {
                        clap::Error::raw(
                            clap::error::ErrorKind::ValueValidation,
                            format!("invalid value '{v}' for '--{id}': {e}\n"),
                        )
                    })?;
                }
            }
        }
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        impair: ImpairArgs,
    }

    fn parse(args: &[&str]) -> Result<ImpairArgs, clap::Error> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.impair)
    }

    #[test]
    fn two_way_and_per_direction_values() {
        let a = parse(&[
            "--loss",
            "10%",
            "--down-loss",
            "0.3",
            "--delay",
            "20ms",
            "--blackout",
            "5s+2s",
            "--blackout",
            "9s+1s",
        ])
        .unwrap();
        assert_eq!(a.up.loss, 0.1);
        assert_eq!(a.down.loss, 0.3);
        assert_eq!(a.up.delay, Duration::from_millis(20));
        assert_eq!(a.down.delay, Duration::from_millis(20));
        assert_eq!(a.up.blackouts.len(), 2);
        assert_eq!(a.up.queue, DEFAULT_QUEUE);
        assert_eq!((a.up.mtu, a.down.mtu), (Some(1472), Some(1472)));
        let open = parse(&["--mtu", "none"]).unwrap();
        assert_eq!((open.up.mtu, open.down.mtu), (None, None));
        let one_way = parse(&["--up-mtu", "none"]).unwrap();
        assert_eq!((one_way.up.mtu, one_way.down.mtu), (None, Some(1472)));
    }

    #[test]
    fn bad_values_name_the_flag_and_the_range() {
        for (args, flag, range) in [
            (vec!["--loss", "1.5"], "--loss", "0 to 1"),
            (vec!["--up-duplicate", "abc"], "--up-duplicate", "0 to 1"),
            (
                vec!["--delay", "20"],
                "--delay",
                "a whole number with a unit",
            ),
            (vec!["--loss-burst", "1"], "--loss-burst", "above 1"),
            (vec!["--rate", "fast"], "--rate", "10mbit"),
            (vec!["--queue", "0"], "--queue", "1 to 1000000"),
            (vec!["--queue-delay", "0ms"], "--queue-delay", "more than 0"),
            (vec!["--queue-delay", "5"], "--queue-delay", "with a unit"),
            (vec!["--blackout", "5s"], "--blackout", "AT+FOR"),
            (vec!["--mtu", "0"], "--mtu", "1 to 65535"),
            (vec!["--up-mtu", "70000"], "--up-mtu", "1 to 65535"),
        ] {
            let e = parse(&args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(msg.contains(flag) && msg.contains(range), "{args:?}: {msg}");
        }
    }

    /// The schedule's names are the flags' names without the dashes; a
    /// bad one changes nothing.
    #[test]
    fn settings_apply_by_name() {
        let mut a = ImpairArgs::new();
        a.apply("loss", "20%").unwrap();
        a.apply("up-delay", "50ms").unwrap();
        a.apply("down-rate", "1mbit").unwrap();
        a.apply("blackout", "1s+1s").unwrap();
        a.apply("blackout", "5s+1s").unwrap();
        assert_eq!((a.up.loss, a.down.loss), (0.2, 0.2));
        assert_eq!(
            (a.up.delay, a.down.delay),
            (Duration::from_millis(50), Duration::ZERO)
        );
        assert_eq!((a.up.rate, a.down.rate), (None, Some(125_000)));
        assert_eq!(a.up.blackouts.len(), 2);
        let before = a.clone();
        assert!(a
            .apply("lots", "1")
            .unwrap_err()
            .contains("not an impairment"));
        assert!(a.apply("loss", "150%").unwrap_err().contains("0 to 1"));
        assert!(a.apply("up-queue", "0").is_err());
        assert_eq!(a, before);
        // The flags give the same configuration as the names.
        let flags = parse(&[
            "--loss",
            "20%",
            "--up-delay",
            "50ms",
            "--down-rate",
            "1mbit",
            "--blackout",
            "1s+1s",
            "--blackout",
            "5s+1s",
        ])
        .unwrap();
        assert_eq!(flags, before);
    }

    /// `GET /impairments` posted back unchanged means the same, for every
    /// setting at once.
    #[test]
    fn settings_post_back_unchanged() {
        let mut a = ImpairArgs::new();
        for (n, v) in [
            ("loss", "12%"),
            ("up-loss-burst-time", "40ms"),
            ("down-loss-burst", "3"),
            ("loss-correlation", "0.25"),
            ("duplicate", "0.01"),
            ("reorder", "2%"),
            ("delay", "20ms"),
            ("jitter", "5ms"),
            ("jitter-distribution", "paretonormal"),
            ("jitter-correlation", "0.3"),
            ("jitter-order", "keep"),
            ("corrupt", "0.001"),
            ("rate", "10mbit"),
            ("queue", "500"),
            ("up-queue-delay", "none"),
            ("down-queue-delay", "120ms"),
            ("up-slot", "10ms..30ms"),
            ("up-slot-packets", "4"),
            ("up-slot-bytes", "15kB"),
            ("blackout", "5s+2s"),
        ] {
            a.apply(n, v).unwrap_or_else(|e| panic!("{n}={v}: {e}"));
        }
        let json = a.settings();
        let mut b = ImpairArgs::new();
        b.apply_json(&json).unwrap();
        assert_eq!(a, b, "{json:?}");
        assert!(b.apply("slot-packets", "4").is_err(), "down has no slot");
        assert!(a.apply("up-slot", "none").is_ok() && a.up.slot.is_none());
    }

    /// Issue #25 item 2: the bottleneck queue is bounded in time by
    /// default, per direction, and `none` leaves the datagram count alone.
    #[test]
    fn the_queue_is_bounded_in_time_by_default() {
        let a = parse(&["--rate", "50mbit"]).unwrap();
        assert_eq!(a.up.queue_delay, Some(DEFAULT_QUEUE_DELAY));
        assert_eq!(a.down.queue_delay, Some(DEFAULT_QUEUE_DELAY));
        assert_eq!(a.settings()["queue-delay"], serde_json::json!("50ms"));
        let a = parse(&["--queue-delay", "none", "--down-queue-delay", "200ms"]).unwrap();
        assert_eq!(a.up.queue_delay, None);
        assert_eq!(a.down.queue_delay, Some(Duration::from_millis(200)));
        assert_eq!(a.settings()["up-queue-delay"], serde_json::Value::Null);
        let mut a = a;
        a.apply("queue-delay", "none").unwrap();
        assert_eq!((a.up.queue_delay, a.down.queue_delay), (None, None));
        assert!(a.apply("queue-delay", "0s").is_err());
        assert_eq!(a.down.queue_delay, None, "a bad value changes nothing");
    }

    #[test]
    fn mtu_by_flag_by_direction_and_cleared_by_none() {
        let a = parse(&["--mtu", "1400", "--down-mtu", "9kB"]).unwrap();
        assert_eq!(a.up.mtu, Some(1400));
        assert_eq!(a.down.mtu, Some(9000));
        let mut a = a;
        a.apply("mtu", "none").unwrap();
        assert_eq!((a.up.mtu, a.down.mtu), (None, None));
        a.apply("up-mtu", "1300").unwrap();
        assert_eq!(a.settings()["up-mtu"], serde_json::json!(1300));
        assert_eq!(a.settings()["down-mtu"], serde_json::Value::Null);
    }
}

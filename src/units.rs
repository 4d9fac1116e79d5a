//! Parsing values as users write them on the command line and in schedule
//! files: `10%` or `0.1`, `20ms` or `1s 500ms`, `500MB`, `10mbit` or
//! `2MB/s`, `5s+2s`. The libraries take typed values (`Duration`, `u64`,
//! [`Blackout`]); turning text into them is the CLI's job.

use rudp_core::impair::Blackout;
use std::time::Duration;
use thiserror::Error;

/// A value that could not be parsed; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// `AT+FOR`, for example `5s+2s`: an interval during which a link drops
/// everything.
pub fn parse_blackout(s: &str) -> Result<Blackout, ParseError> {
    let (at, length) = s
        .split_once('+')
        .ok_or_else(|| ParseError(format!("'{s}' is not AT+FOR (for example 5s+2s)")))?;
    Ok(Blackout {
        at: parse_duration(at)?,
        length: parse_duration(length)?,
    })
}

/// A probability: `0.1` or `10%`, within 0..=1.
pub fn parse_probability(s: &str) -> Result<f64, ParseError> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        ParseError(format!(
            "'{s}' is not a probability (0 to 1, or 0% to 100%)"
        ))
    })?;
    if !(0.0..=1.0).contains(&v) || v.is_nan() {
        return Err(ParseError(format!(
            "'{s}' is outside the range 0 to 1 (0% to 100%)"
        )));
    }
    Ok(v)
}

/// The longest duration any flag takes: far beyond any use, and small
/// enough that adding it to a clock reading can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// A duration as people write it, parsed by `humantime`: a number with a
/// unit, or several (`20ms`, `1s 500ms`, `2min`, `1h`). Fractions are not
/// accepted (`1500ms`, not `1.5s`); neither is anything over
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        ParseError(format!(
            "'{s}' is not a duration ({e}; write a whole number with a unit, for example 20ms, 2s or 1min)"
        ))
    })?;
    if d > MAX_DURATION {
        return Err(ParseError(format!(
            "'{s}' is longer than the longest accepted duration ({}s)",
            MAX_DURATION.as_secs()
        )));
    }
    Ok(d)
}

/// A size in bytes: a plain number, or one with a unit (`500MB`, `2GiB`,
/// `15kB`), parsed by `bytesize`.
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            ParseError(format!(
                "'{s}' is not a size ({e}; for example 500MB or 2GiB)"
            ))
        })
}

/// A rate in bytes per second: `10mbit`, `500kbit`, `2MB/s`, `100kB/s`,
/// or a plain number of bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let bad = || {
        ParseError(format!(
            "'{s}' is not a rate (for example 10mbit, 500kbit, 2MB/s, 100kB/s)"
        ))
    };
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes_per_sec = match unit.trim() {
        // A bare number was bytes per second, which `--rate 10` meant
        // to nobody (issue #26): a rate needs its unit.
        "" => {
            return Err(ParseError(format!(
                "'{s}' needs a unit: bit, kbit, mbit, gbit (per second), or B/s, kB/s, MB/s, GB/s (for example 10mbit)"
            )))
        }
        "B/s" => v,
        "bit" | "bps" => v / 8.0,
        "kbit" => v * 1e3 / 8.0,
        "mbit" | "Mbit" => v * 1e6 / 8.0,
        "gbit" | "Gbit" => v * 1e9 / 8.0,
        "kB/s" | "KB/s" => v * 1e3,
        "MB/s" => v * 1e6,
        "GB/s" => v * 1e9,
        _ => return Err(bad()),
    };
    if !bytes_per_sec.is_finite() || bytes_per_sec < 1.0 {
        return Err(ParseError(format!(
            "'{s}' must be at least 1 byte per second"
        )));
    }
    Ok(bytes_per_sec as u64)
}

/// A rate in bytes per second as people write it and [`parse_rate`] reads
/// it back exactly: `50mbit`, `500kbit`, or `1234B/s` when neither fits.
pub fn format_rate(bytes_per_sec: u64) -> String {
    let bits = u128::from(bytes_per_sec) * 8;
    if bits % 1_000_000_000 == 0 {
        format!("{}gbit", bits / 1_000_000_000)
    } else if bits % 1_000_000 == 0 {
        format!("{}mbit", bits / 1_000_000)
    } else if bits % 1_000 == 0 {
        format!("{}kbit", bits / 1_000)
    } else {
        format!("{bytes_per_sec}B/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_rates_read_back_exactly() {
        for r in [1u64, 125, 6_250_000, 62_500, 1_234, 125_000_000, 7] {
            assert_eq!(
                parse_rate(&format_rate(r)).unwrap(),
                r,
                "{}",
                format_rate(r)
            );
        }
        assert_eq!(format_rate(6_250_000), "50mbit");
    }

    #[test]
    fn rates_need_their_unit() {
        assert_eq!(parse_rate("10mbit"), Ok(1_250_000));
        assert_eq!(parse_rate("100 B/s"), Ok(100));
        let e = parse_rate("10").unwrap_err().0;
        assert!(e.contains("needs a unit") && e.contains("mbit"), "{e}");
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.1"), Ok(0.1));
        assert_eq!(parse_probability("10%"), Ok(0.1));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("abc").is_err());
        assert!(parse_probability("-1%").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1s 500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        // Issue #12 item 11: huge values are an error, not a panic.
        assert!(parse_duration("1e20s").is_err());
        assert!(parse_duration("100000000000000000000s").is_err());
        assert!(parse_duration("2000000000s").is_err());
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10mbit"), Ok(1_250_000));
        assert_eq!(parse_rate("2MB/s"), Ok(2_000_000));
        assert_eq!(parse_rate("100kB/s"), Ok(100_000));
        assert_eq!(parse_rate("8000B/s"), Ok(8000));
        assert!(parse_rate("8000").is_err(), "a unit is needed");
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0mbit").is_err());
    }

    #[test]
    fn blackouts() {
        let b = parse_blackout("5s+2s").unwrap();
        assert!(!b.contains(Duration::from_millis(4999)));
        assert!(b.contains(Duration::from_secs(5)));
        assert!(!b.contains(Duration::from_secs(7)));
        assert!(parse_blackout("5s").is_err());
    }
}

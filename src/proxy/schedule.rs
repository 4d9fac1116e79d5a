//! `rudp proxy --schedule FILE`: a timeline of changes to the link
//! (docs/proxy.md), so that a script or a test can say "the link degrades
//! after 10 s and recovers after 30 s" without a control client.
//!
//! One change a line: `TIME NAME=VALUE ...` with the impairment flags'
//! names without the dashes (`10s loss=20% delay=50ms`, `20s up-rate=1mbit`),
//! or `TIME clear` to remove every impairment. `#` starts a comment. Times
//! count from the proxy's start; lines may come in any order and apply in
//! time order (lines with the same time, in file order).

use super::ImpairArgs;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// The largest schedule file read.
pub const MAX_SCHEDULE_BYTES: u64 = 1 << 20;

/// What one line of a schedule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set these impairments (NAME, VALUE); the others stay as they are.
    Set(Vec<(String, String)>),
    /// Remove every impairment, in both directions.
    Clear,
}

/// One timed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// From the proxy's start.
    pub at: Duration,
    pub action: Action,
    /// The line as written, for logs.
    pub text: String,
}

impl Change {
    /// The impairments after this change, from `current`.
    pub fn apply(&self, current: &ImpairArgs) -> ImpairArgs {
        match &self.action {
            Action::Clear => ImpairArgs::new(),
            Action::Set(pairs) => {
                let mut next = current.clone();
                for (name, value) in pairs {
                    // Checked when the schedule was read: cannot fail.
                    if let Err(e) = next.apply(name, value) {
                        tracing::warn!(change = %self.text, error = %e, "schedule change skipped");
                    }
                }
                next
            }
        }
    }
}

/// Why a schedule file cannot be used.
#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file of at most {MAX_SCHEDULE_BYTES} bytes")]
    NotAFile { path: String },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Reads and checks a schedule file: every name and value is validated
/// now, so nothing can fail while the proxy runs.
pub fn read(path: &Path) -> Result<Vec<Change>, ScheduleError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read_err = |source| ScheduleError::Read {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.len() > MAX_SCHEDULE_BYTES {
        return Err(ScheduleError::NotAFile { path: shown });
    }
    let mut text = String::new();
    file.take(MAX_SCHEDULE_BYTES)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    parse(&text).map_err(|(line, reason)| ScheduleError::Line {
        path: shown,
        line,
        reason,
    })
}

/// Parses a schedule; an error names the line (from 1) and what is wrong.
pub fn parse(text: &str) -> Result<Vec<Change>, (usize, String)> {
    let mut changes = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| (i + 1, reason);
        let mut words = line.split_whitespace();
        let time = words.next().unwrap_or("");
        let at = crate::units::parse_duration(time).map_err(|e| err(e.0))?;
        let rest: Vec<&str> = words.collect();
        let action = match rest.as_slice() {
            [] => {
                return Err(err(
                    "a time needs changes after it (NAME=VALUE or clear)".into()
                ))
            }
            ["clear"] => Action::Clear,
            settings => {
                let mut pairs = Vec::new();
                let mut check = ImpairArgs::new();
                for s in settings {
                    let (name, value) = s.split_once('=').ok_or_else(|| {
                        err(format!("'{s}' is not NAME=VALUE (or 'clear' alone)"))
                    })?;
                    check.apply(name, value).map_err(err)?;
                    pairs.push((name.to_string(), value.to_string()));
                }
                Action::Set(pairs)
            }
        };
        changes.push(Change {
            at,
            action,
            text: line.to_string(),
        });
    }
    // Stable: changes at the same time keep the file's order.
    changes.sort_by_key(|c| c.at);
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_in_time_order_and_apply() {
        let s = parse(
            "# the link degrades, then recovers\n\
             30s clear\n\
             10s loss=20% delay=50ms   # both directions\n\
             20s up-rate=1mbit\n",
        )
        .unwrap();
        let times: Vec<u64> = s.iter().map(|c| c.at.as_secs()).collect();
        assert_eq!(times, [10, 20, 30]);
        let a = s[0].apply(&ImpairArgs::new());
        assert_eq!((a.up.loss, a.down.delay), (0.2, Duration::from_millis(50)));
        let b = s[1].apply(&a);
        assert_eq!(
            (b.up.rate, b.down.rate, b.up.loss),
            (Some(125_000), None, 0.2)
        );
        assert_eq!(s[2].apply(&b), ImpairArgs::new());
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, what) in [
            ("10s loss=150%", 1, "0 to 1"),
            ("\n\nsoon loss=1%", 3, "not a duration"),
            ("10s", 1, "needs changes"),
            ("10s loss", 1, "NAME=VALUE"),
            ("10s warp=9", 1, "not an impairment"),
            ("10s clear loss=1%", 1, "not NAME=VALUE"),
        ] {
            let (l, reason) = parse(text).unwrap_err();
            assert_eq!(l, line, "{text:?}: {reason}");
            assert!(reason.contains(what), "{text:?}: {reason}");
        }
    }
}

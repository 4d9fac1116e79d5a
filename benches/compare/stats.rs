//! Latency summaries and CPU time.

use std::time::Duration;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Summary {
    /// Sorts `v` and summarises it.
    pub fn of(v: &mut [Duration]) -> Summary {
        if v.is_empty() {
            return Summary::default();
        }
        v.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |p: f64| us(v[((v.len() - 1) as f64 * p).round() as usize]);
        Summary {
            count: v.len(),
            mean_us: v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64,
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: us(v[v.len() - 1]),
        }
    }
}

/// User plus system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Formats microseconds for people: µs below 10 ms, else ms.
pub fn fmt_us(us: f64) -> String {
    if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

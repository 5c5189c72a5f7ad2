//! Latency histograms and the figures reported for one measurement.

use hdrhistogram::Histogram;
use std::time::Duration;

/// What one contender did in one measurement window.
pub struct Sample {
    /// Latencies in nanoseconds.
    pub hist: Histogram<u64>,
    /// Operations (or requests) completed in the window, errors included.
    pub ops: u64,
    /// Failed operations (or requests with an unexpected answer).
    pub errors: u64,
    /// The first error seen, for the log.
    pub first_error: Option<String>,
    /// Length of the window.
    pub elapsed: Duration,
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; values outside are clamped.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    hist.saturating_record(ns.max(1));
}

impl Sample {
    pub fn empty() -> Self {
        Sample {
            hist: histogram(),
            ops: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Adds another window of the same contender (interleaved runs).
    pub fn merge(&mut self, other: Sample) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
    }

    /// Operations per second.
    pub fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p50(&self) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(0.50))
    }

    pub fn p99(&self) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(0.99))
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.hist.max())
    }
}

/// `12.3 µs`, `4.56 ms`, `1.2 s`.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `123k`, `4.5k`, `812`.
pub fn fmt_rate(r: f64) -> String {
    if r >= 100_000.0 {
        format!("{:.0}k", r / 1000.0)
    } else if r >= 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else if r >= 1000.0 {
        format!("{:.2}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

/// `0.93×`, or `–` when there is nothing to compare with.
pub fn fmt_ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

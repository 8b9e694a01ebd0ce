//! Latency histograms: fixed buckets, one relaxed atomic per bucket.
//!
//! Recording is two relaxed atomic adds (the value's bucket and the sum): no lock, no
//! allocation, nothing a worker waits on. The total count is not kept apart but summed
//! from the buckets when read, which saves the hot path a third add and keeps the
//! Prometheus `+Inf` bucket and `_count` equal by construction.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (a value `v` lands in the first bucket
/// whose bound is `>= v`, as Prometheus's `le` says; above the last is `+Inf`).
///
/// Envoy's defaults start at 0.5 ms, but a proxy's own time and a local upstream's
/// answer are tens of microseconds, which would all fall in one bucket; so the scale
/// starts at 25 µs. It keeps the 1-2.5-5 steps of Prometheus's default buckets (all of
/// which, 5 ms to 10 s, are among these, so dashboards written for them work) and ends
/// at 5 minutes: longer streams are tunnels, whose length says nothing of latency.
pub const BOUNDS_US: [u64; 21] = [
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// The finite buckets and `+Inf`.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// One value is capped at a year so that a stray huge duration cannot wrap the sum
/// (2^64 µs is half a million such years).
const MAX_RECORD_US: u64 = 365 * 24 * 3600 * 1_000_000;

/// A latency distribution shared by every worker.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// The bucket index of a value in microseconds.
#[inline]
fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

impl Histogram {
    /// Adds one observation (microsecond resolution).
    #[inline]
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_RECORD_US);
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The values now. Each atomic is read on its own, so a record racing the read may
    /// show in the buckets and not yet in the sum; the buckets agree with each other.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `(upper bound in µs, None for +Inf; observations <= it)`, as Prometheus's
    /// cumulative `_bucket` series.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = BOUNDS_US.iter().map(|&b| Some(b)).chain([None]);
        bounds
            .zip(self.buckets.iter())
            .scan(0u64, |acc, (bound, &n)| {
                *acc += n;
                Some((bound, *acc))
            })
    }

    /// The `q` quantile (0..=1) in microseconds, None when empty. Linear inside the
    /// bucket the rank falls in (from 0 for the first), as Prometheus's
    /// `histogram_quantile` estimates; in the `+Inf` bucket it is the last finite
    /// bound, a lower limit.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            let upto = below + n;
            if n > 0 && upto as f64 >= rank {
                let Some(&upper) = BOUNDS_US.get(i) else {
                    return BOUNDS_US.last().copied();
                };
                let lower = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + ((upper - lower) as f64 * within).round() as u64);
            }
            below = upto;
        }
        BOUNDS_US.last().copied()
    }

    /// `{"count", "sum_us", "p50_us", "p90_us", "p99_us"}` (quantiles 0 when empty).
    pub fn to_json(&self) -> Value {
        let q = |q| self.quantile_us(q).unwrap_or(0);
        json!({
            "count": self.count(),
            "sum_us": self.sum_us,
            "p50_us": q(0.5),
            "p90_us": q(0.9),
            "p99_us": q(0.99),
        })
    }
}

/// Microseconds as exact decimal seconds (`2500` is `0.0025`), for the Prometheus text:
/// integer arithmetic, so bounds print the same on every platform.
pub fn us_as_seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn values_land_in_the_bucket_whose_bound_is_at_least_them() {
        let h = Histogram::default();
        for v in [0, 25, 26, 100, 1_000, 300_000_000, 300_000_001] {
            h.record(us(v));
        }
        h.record(Duration::from_nanos(999)); // 0 µs
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 3, "0, 25 and 999 ns are <= 25 µs");
        assert_eq!(s.buckets[1], 1, "26 µs is in (25, 50]");
        assert_eq!(s.buckets[2], 1, "100 µs is in (50, 100]");
        assert_eq!(s.buckets[5], 1, "1 ms is in (500 µs, 1 ms]");
        assert_eq!(s.buckets[BUCKETS - 2], 1, "300 s is the last finite bound");
        assert_eq!(s.buckets[BUCKETS - 1], 1, "above it is +Inf");
        assert_eq!(s.count(), 8);
        assert_eq!(
            s.sum_us,
            25 + 26 + 100 + 1_000 + 300_000_000 + 300_000_001,
            "sum in µs"
        );
        let cum: Vec<_> = s.cumulative().collect();
        assert_eq!(cum.len(), BUCKETS);
        assert_eq!(cum[0], (Some(25), 3));
        assert_eq!(cum[2], (Some(100), 5));
        assert_eq!(cum[BUCKETS - 1], (None, 8));
    }

    #[test]
    fn a_huge_duration_does_not_wrap_the_sum() {
        let h = Histogram::default();
        h.record(Duration::MAX);
        h.record(Duration::MAX);
        assert_eq!(h.snapshot().sum_us, 2 * MAX_RECORD_US);
        assert_eq!(h.snapshot().buckets[BUCKETS - 1], 2);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile_us(0.5), None);
        assert_eq!(h.snapshot().to_json()["p99_us"], 0);
        // 100 values in (100, 250] µs: the median is halfway through that bucket.
        for _ in 0..100 {
            h.record(us(200));
        }
        let s = h.snapshot();
        assert_eq!(s.quantile_us(0.5), Some(175));
        assert_eq!(s.quantile_us(0.9), Some(235));
        assert_eq!(s.quantile_us(1.0), Some(250));
        // 20 more in (1, 2.5] ms: the median stays in the first bucket (rank 60 of its
        // 100), p99 (rank 118.8) is 18.8 of the 20 into the second.
        for _ in 0..20 {
            h.record(us(2_000));
        }
        let s = h.snapshot();
        assert_eq!(s.quantile_us(0.5), Some(190));
        assert_eq!(s.quantile_us(0.99), Some(2_410));
        // Beyond the last bound the estimate is that bound.
        h.record(Duration::from_secs(3_600));
        assert_eq!(h.snapshot().quantile_us(1.0), Some(300_000_000));
        let j = h.snapshot().to_json();
        assert_eq!(j["count"], 121);
        assert_eq!(j["sum_us"], 100 * 200 + 20 * 2_000 + 3_600_000_000u64);
        assert_eq!(j["p50_us"], 191);
    }

    #[test]
    fn concurrent_records_all_count() {
        let h = Arc::new(Histogram::default());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.record(us((t * 10_000 + i) % 5_000));
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 80_000);
        let expected: u64 = (0..8u64)
            .flat_map(|t| (0..10_000u64).map(move |i| (t * 10_000 + i) % 5_000))
            .sum();
        assert_eq!(s.sum_us, expected);
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(us_as_seconds(0), "0");
        assert_eq!(us_as_seconds(25), "0.000025");
        assert_eq!(us_as_seconds(2_500), "0.0025");
        assert_eq!(us_as_seconds(1_000_000), "1");
        assert_eq!(us_as_seconds(2_500_000), "2.5");
        assert_eq!(us_as_seconds(300_000_123), "300.000123");
    }
}

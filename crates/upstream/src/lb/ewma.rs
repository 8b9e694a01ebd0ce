//! Per-host moving averages for LB_PEAK_EWMA, lock-free: each value is one atomic word
//! holding an f32 and the millisecond it was last updated.
//!
//! Decay follows MOSN's (`ewma.Alpha(e^-5, 30s)`): a value falls to e^-5 of itself in
//! 30 s, i.e. by e^(-dt / 6 s).
//! - latency: a peak-sensitive EWMA (Finagle's "peak EWMA", the algorithm the name
//!   refers to): a sample above the average replaces it; otherwise the average moves
//!   toward the sample with weight 1 - e^(-dt/τ); between samples it decays toward 0, so
//!   a host that was slow and then left alone is tried again.
//! - responses, client errors, server errors: MOSN's decayed counts
//!   (v = v·e^(-dt/τ) + α per event), whose ratios give the error rates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// MOSN's decay constant τ in seconds: e^-5 over 30 s.
pub const TAU_SECS: f64 = 6.0;

/// MOSN's α = 1 - e^(-1/τ): the weight of one event in a decayed count.
fn alpha() -> f64 {
    1.0 - (-1.0 / TAU_SECS).exp()
}

/// Milliseconds since the first call, never 0 (0 marks "no value yet"); wraps after
/// 49 days, which the wrapping differences below tolerate.
pub(crate) fn now_ms() -> u32 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u32;
    ms.max(1)
}

/// exp(-dt/τ) for `dt` ms between `then` and `now` (0 when the clock raced backwards).
fn decay(then: u32, now: u32) -> f64 {
    let dt = now.wrapping_sub(then);
    if dt > u32::MAX / 2 {
        return 1.0;
    }
    (-(f64::from(dt) / 1000.0) / TAU_SECS).exp()
}

/// An f32 and its update time in one atomic word.
#[derive(Debug, Default)]
struct Decaying(AtomicU64);

impl Decaying {
    fn unpack(word: u64) -> Option<(f64, u32)> {
        (word != 0).then(|| (f64::from(f32::from_bits(word as u32)), (word >> 32) as u32))
    }

    fn pack(value: f64, at: u32) -> u64 {
        (u64::from(at) << 32) | u64::from((value as f32).to_bits())
    }

    /// The value decayed to `now`; None before the first update.
    fn get(&self, now: u32) -> Option<f64> {
        Self::unpack(self.0.load(Ordering::Relaxed)).map(|(v, at)| v * decay(at, now))
    }

    /// Replaces the value with `f(previous value decayed to now, decay factor)`.
    fn update(&self, now: u32, f: impl Fn(Option<f64>, f64) -> f64) {
        let mut old = self.0.load(Ordering::Relaxed);
        loop {
            let (prev, w) = match Self::unpack(old) {
                Some((v, at)) => {
                    let w = decay(at, now);
                    (Some(v * w), w)
                }
                None => (None, 0.0),
            };
            let new = Self::pack(f(prev, w), now);
            match self
                .0
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => old = actual,
            }
        }
    }
}

/// What LB_PEAK_EWMA knows about a host. Fed by [`crate::Host::record_latency`] and
/// [`crate::Host::record_response`].
#[derive(Debug, Default)]
pub struct HostEwma {
    /// Microseconds.
    latency: Decaying,
    responses: Decaying,
    client_errors: Decaying,
    server_errors: Decaying,
}

/// A snapshot for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaSnapshot {
    /// Peak-EWMA latency in microseconds; None before the first response.
    pub latency_us: Option<f64>,
    /// Decayed 4xx count / (decayed response count + 1), MOSN's formula.
    pub client_error_rate: f64,
    /// Decayed 5xx count / (decayed response count + 1).
    pub server_error_rate: f64,
}

impl HostEwma {
    pub fn record_latency(&self, rtt: Duration) {
        let sample = rtt.as_secs_f64() * 1e6;
        self.latency.update(now_ms(), |prev, w| match prev {
            None => sample,
            Some(avg) => {
                let moved = avg + sample * (1.0 - w);
                moved.max(sample)
            }
        });
    }

    pub fn record_response(&self, status: u16) {
        let now = now_ms();
        let a = alpha();
        let add = |prev: Option<f64>, _| prev.unwrap_or(0.0) + a;
        self.responses.update(now, add);
        match status {
            400..=499 => self.client_errors.update(now, add),
            500..=599 => self.server_errors.update(now, add),
            _ => {}
        }
    }

    pub fn snapshot(&self) -> EwmaSnapshot {
        let now = now_ms();
        let total = self.responses.get(now).unwrap_or(0.0);
        EwmaSnapshot {
            latency_us: self.latency.get(now),
            client_error_rate: self.client_errors.get(now).unwrap_or(0.0) / (total + 1.0),
            server_error_rate: self.server_errors.get(now).unwrap_or(0.0) / (total + 1.0),
        }
    }

    /// The latency average now, for stats and dumps.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
            .get(now_ms())
            .map(|us| Duration::from_secs_f64((us / 1e6).max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_then_average() {
        let e = HostEwma::default();
        assert_eq!(e.snapshot().latency_us, None);
        e.record_latency(Duration::from_millis(10));
        let first = e.snapshot().latency_us.unwrap();
        assert!((first - 10_000.0).abs() < 50.0, "{first}");
        e.record_latency(Duration::from_millis(50));
        let peak = e.snapshot().latency_us.unwrap();
        assert!(peak > 49_000.0, "a slower sample is taken at once: {peak}");
        e.record_latency(Duration::from_millis(1));
        let after = e.snapshot().latency_us.unwrap();
        assert!(
            after > 40_000.0,
            "a faster sample moves the average only with time: {after}"
        );
    }

    #[test]
    fn decay_math() {
        assert_eq!(decay(5, 5), 1.0);
        assert!(
            (decay(0, 30_000) - (-5.0f64).exp()).abs() < 1e-9,
            "e^-5 over 30 s, as MOSN"
        );
        assert_eq!(decay(10, 5), 1.0, "a clock race does not decay");
        assert!(
            (decay(u32::MAX - 999, 1000) - (-2.0f64 / 1000.0 * 1000.0 / TAU_SECS).exp()).abs()
                < 1e-3
        );
    }

    #[test]
    fn error_rates() {
        let e = HostEwma::default();
        for _ in 0..10 {
            e.record_response(200);
        }
        for _ in 0..10 {
            e.record_response(503);
        }
        e.record_response(404);
        let s = e.snapshot();
        assert!(s.server_error_rate > s.client_error_rate);
        assert!(
            s.server_error_rate > 0.2 && s.server_error_rate < 0.5,
            "{s:?}"
        );
    }
}

//! MOSN's slow start (`slow_start`, mode `duration`): a host that joined or became
//! healthy again takes a growing share of its weight over `slow_start_duration`.
//!
//! factor = max(1 s, elapsed) / window, then factor^(1 / aggression), then at least
//! `min_weight_percent`; 1 once elapsed >= window. The weight is weight * factor.

use crate::host::Host;
use mosn_config::SlowStartConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// MOSN's defaults (pkg/config/v2/constants.go).
pub const DEFAULT_AGGRESSION: f64 = 1.0;
pub const DEFAULT_MIN_WEIGHT_PERCENT: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    pub window: Duration,
    pub aggression: f64,
    /// A fraction: 0.1 is 10%.
    pub min_weight_percent: f64,
}

impl SlowStart {
    /// None when slow start is off: no mode, or no window.
    pub fn from_config(cfg: &SlowStartConfig) -> Option<SlowStart> {
        if cfg.mode != "duration" {
            return None;
        }
        let window = cfg
            .slow_start_duration
            .map(|d| d.0)
            .filter(|d| !d.is_zero())?;
        let positive = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
        Some(SlowStart {
            window,
            aggression: positive(cfg.aggression).unwrap_or(DEFAULT_AGGRESSION),
            min_weight_percent: positive(cfg.min_weight_percent)
                .map(|m| m.min(1.0))
                .unwrap_or(DEFAULT_MIN_WEIGHT_PERCENT),
        })
    }

    /// The share of its weight a host warming since `since` gets at `now`.
    pub fn factor(&self, since: Instant, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= self.window {
            return 1.0;
        }
        let mut f = elapsed.as_secs_f64().max(1.0) / self.window.as_secs_f64();
        if f >= 1.0 {
            return 1.0;
        }
        if self.aggression != 1.0 {
            f = f.powf(1.0 / self.aggression);
        }
        f.max(self.min_weight_percent)
    }
}

/// Tracks whether any host of a balancer is still warming up, so that balancers read
/// the clock only while one is.
#[derive(Debug)]
pub(crate) struct Warmup {
    pub slow: SlowStart,
    /// When the last host's window ends.
    until: Instant,
    done: AtomicBool,
}

impl Warmup {
    /// None when slow start is off or no host is within its window now.
    pub fn new(slow: Option<SlowStart>, hosts: &[Arc<Host>]) -> Option<Warmup> {
        let slow = slow?;
        // A window past the clock's range (not on Linux) is left out rather than panic.
        let until = hosts
            .iter()
            .filter_map(|h| h.warm_since().checked_add(slow.window))
            .max()?;
        (until > Instant::now()).then(|| Warmup {
            slow,
            until,
            done: AtomicBool::new(false),
        })
    }

    /// The time now while some host is warming, None once all are warm.
    #[inline]
    pub fn now_if_warming(&self) -> Option<Instant> {
        if self.done.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if now >= self.until {
            self.done.store(true, Ordering::Relaxed);
            return None;
        }
        Some(now)
    }

    /// True once every host is warm (and the last rebuild may be due).
    #[inline]
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// `host`'s weight factor at `now`.
    #[inline]
    pub fn factor(&self, host: &Host, now: Instant) -> f64 {
        self.slow.factor(host.warm_since(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosn_config::GoDuration;

    fn cfg(window: u64, aggression: Option<f64>, min: Option<f64>) -> SlowStartConfig {
        SlowStartConfig {
            mode: "duration".into(),
            slow_start_duration: Some(GoDuration(Duration::from_secs(window))),
            aggression,
            min_weight_percent: min,
        }
    }

    #[test]
    fn off_without_mode_or_window() {
        assert!(SlowStart::from_config(&SlowStartConfig::default()).is_none());
        let mut c = cfg(10, None, None);
        c.slow_start_duration = None;
        assert!(SlowStart::from_config(&c).is_none());
        let s = SlowStart::from_config(&cfg(10, Some(0.0), Some(0.0))).unwrap();
        assert_eq!(
            (s.aggression, s.min_weight_percent),
            (1.0, 0.1),
            "0 takes MOSN's defaults"
        );
    }

    #[test]
    fn mosn_formula() {
        let t0 = Instant::now();
        let at = |s: &SlowStart, secs: f64| s.factor(t0, t0 + Duration::from_secs_f64(secs));
        let linear = SlowStart::from_config(&cfg(10, None, Some(0.05))).unwrap();
        assert_eq!(at(&linear, 0.0), 0.1, "elapsed counts as at least 1 s");
        assert!((at(&linear, 5.0) - 0.5).abs() < 1e-9);
        assert_eq!(at(&linear, 10.0), 1.0);
        assert_eq!(at(&linear, 99.0), 1.0);
        let aggressive = SlowStart::from_config(&cfg(100, Some(2.0), None)).unwrap();
        assert!((at(&aggressive, 25.0) - 0.5).abs() < 1e-9, "0.25^(1/2)");
        assert_eq!(at(&aggressive, 1.0), 0.1, "min_weight_percent floor");
    }
}

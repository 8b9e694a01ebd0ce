//! Outlier detection: Envoy's passive health checking, configured by a cluster's
//! `outlier_detection` (Envoy's field names and defaults; MOSN has none).
//!
//! The request path calls [`report`] once per upstream exchange; it touches only the
//! host's atomics ([`OutlierState`]). Consecutive-error ejection is decided when the
//! count reaches its threshold: `report` marks the host *pending*, and the cluster's
//! detector task (on the control runtime, which owns every ejection decision, the
//! `max_ejection_percent` check and the balancing-set rebuild) ejects it within
//! [`PENDING_POLL`] (100 ms). So `report` needs no cluster reference and a host's
//! counters survive cluster rebuilds.
//!
//! Every `interval` the detector returns hosts whose ejection time passed
//! (`base_ejection_time` × times ejected, capped at `max_ejection_time`, + jitter),
//! runs the success-rate and failure-percentage analyses over the interval's counters,
//! and decays the ejection multiplier of hosts back for at least one interval.
//! docs/health-and-outlier.md has the keys, defaults and the choices made.

use crate::host::{health, Host};
use crate::manager::ClusterManager;
use crate::task::AbortOnDrop;
use mosn_config::{OutlierDetectionConfig, OutlierSettings};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How soon a pending consecutive-error ejection is carried out, at most.
pub const PENDING_POLL: Duration = Duration::from_millis(100);
/// How often the supervisor looks for clusters whose detection starts, changes or stops.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What came of one upstream exchange, as the proxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A final response with this status (5xx count as errors; 502, 503 and 504 also as
    /// gateway failures).
    Success(u16),
    /// No response: connect failure, reset, timeout. Counts as a 503 (Envoy's mapping
    /// without `split_external_local_origin_errors`). Report it instead of the local
    /// reply the proxy then sends, not in addition to it.
    LocalOriginFailure,
}

/// The interval window packs the request count in the high 32 bits and the error
/// count in the low 32 bits, so one atomic add records both and one swap reads both.
const WINDOW_TOTAL: u64 = 1 << 32;
const PENDING_5XX: u32 = 1;
const PENDING_GATEWAY: u32 = 2;

/// A host's outlier detection state. The first fields are written by [`report`]; the
/// ejection fields only by the cluster's detector task.
#[derive(Debug, Default)]
pub struct OutlierState {
    /// Detection is on for the host's cluster (set by the detector).
    armed: AtomicBool,
    threshold_5xx: AtomicU32,
    threshold_gateway: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    window: AtomicU64,
    pending: AtomicU32,
    /// Milliseconds after the host's `added_at`, plus one; 0: not ejected by detection.
    ejected_at: AtomicU64,
    unejected_at: AtomicU64,
    /// This ejection's random extra time, in milliseconds.
    jitter_ms: AtomicU64,
    /// Envoy's ejection time multiplier: up by one per ejection, down by one per
    /// interval the host stays back.
    multiplier: AtomicU32,
}

impl OutlierState {
    /// The ejection multiplier (times ejected, decayed).
    pub fn multiplier(&self) -> u32 {
        self.multiplier.load(Relaxed)
    }

    /// Whether outlier detection ejected the host and has not returned it yet.
    pub fn is_ejected(&self) -> bool {
        self.ejected_at.load(Relaxed) != 0
    }

    fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Relaxed);
        self.consecutive_gateway.store(0, Relaxed);
        self.pending.store(0, Relaxed);
    }
}

/// Records one upstream exchange with `host`. Atomics only; a no-op (one load) when the
/// host's cluster has no outlier detection.
#[inline]
pub fn report(host: &Host, outcome: Outcome) {
    let s = &host.outlier;
    if !s.armed.load(Relaxed) {
        return;
    }
    let (error, gateway) = match outcome {
        Outcome::Success(code) => ((500..600).contains(&code), matches!(code, 502..=504)),
        Outcome::LocalOriginFailure => (true, true),
    };
    s.window.fetch_add(WINDOW_TOTAL | u64::from(error), Relaxed);
    if !error {
        reset(&s.consecutive_5xx);
        reset(&s.consecutive_gateway);
        return;
    }
    if gateway {
        bump(
            &s.consecutive_gateway,
            &s.threshold_gateway,
            PENDING_GATEWAY,
            s,
        );
    } else {
        reset(&s.consecutive_gateway);
    }
    bump(&s.consecutive_5xx, &s.threshold_5xx, PENDING_5XX, s);
}

#[inline]
fn reset(counter: &AtomicU32) {
    if counter.load(Relaxed) != 0 {
        counter.store(0, Relaxed);
    }
}

#[inline]
fn bump(counter: &AtomicU32, threshold: &AtomicU32, bit: u32, s: &OutlierState) {
    let n = counter.fetch_add(1, Relaxed).wrapping_add(1);
    let t = threshold.load(Relaxed);
    // Equality, as Envoy: one notice per run of errors until the counter is reset.
    if t != 0 && n == t {
        s.pending.fetch_or(bit, Relaxed);
    }
}

/// Milliseconds since the host joined, plus one (0 means "never").
fn now_ms(host: &Host) -> u64 {
    let ms = host.added_at.elapsed().as_millis();
    ms.min(u128::from(u64::MAX - 1)) as u64 + 1
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Why a host is ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    SuccessRate,
    FailurePercentage,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Consecutive5xx => "consecutive 5xx",
            Kind::ConsecutiveGatewayFailure => "consecutive gateway failure",
            Kind::SuccessRate => "success rate",
            Kind::FailurePercentage => "failure percentage",
        }
    }

    fn enforcing(self, s: &OutlierSettings) -> u32 {
        match self {
            Kind::Consecutive5xx => s.enforcing_consecutive_5xx,
            Kind::ConsecutiveGatewayFailure => s.enforcing_consecutive_gateway_failure,
            Kind::SuccessRate => s.enforcing_success_rate,
            Kind::FailurePercentage => s.enforcing_failure_percentage,
        }
    }
}

/// "A `percent` % chance".
fn roll(percent: u32) -> bool {
    percent >= 100 || (percent > 0 && fastrand::u32(0..100) < percent)
}

/// One cluster's detector: the settings and the cluster's counters.
#[derive(Debug)]
struct Detector {
    cluster: Arc<str>,
    s: OutlierSettings,
    /// Ejections refused by `max_ejection_percent` (Envoy's `ejections_overflow`).
    overflow: u64,
}

impl Detector {
    /// Points every host at the current thresholds (hosts come and go).
    fn arm(&self, hosts: &[Arc<Host>]) {
        for h in hosts {
            let o = &h.outlier;
            if o.threshold_5xx.load(Relaxed) != self.s.consecutive_5xx {
                o.threshold_5xx.store(self.s.consecutive_5xx, Relaxed);
            }
            if o.threshold_gateway.load(Relaxed) != self.s.consecutive_gateway_failure {
                o.threshold_gateway
                    .store(self.s.consecutive_gateway_failure, Relaxed);
            }
            if !o.armed.load(Relaxed) {
                o.armed.store(true, Relaxed);
            }
        }
    }

    /// Carries out pending consecutive-error ejections; true when a host was ejected.
    fn process_pending(&mut self, hosts: &[Arc<Host>]) -> bool {
        let mut changed = false;
        for h in hosts {
            let bits = h.outlier.pending.swap(0, Relaxed);
            if bits == 0 {
                continue;
            }
            if h.health_flags() & health::EJECTED != 0 {
                h.outlier.reset_consecutive();
                continue;
            }
            for (bit, kind, counter) in [
                (
                    PENDING_5XX,
                    Kind::Consecutive5xx,
                    &h.outlier.consecutive_5xx,
                ),
                (
                    PENDING_GATEWAY,
                    Kind::ConsecutiveGatewayFailure,
                    &h.outlier.consecutive_gateway,
                ),
            ] {
                if bits & bit == 0 {
                    continue;
                }
                // Reset so the next run of errors is noticed again (as Envoy).
                counter.store(0, Relaxed);
                if h.health_flags() & health::EJECTED == 0 {
                    changed |= self.eject(hosts, h, kind);
                }
            }
        }
        changed
    }

    /// Ejects `host` if `max_ejection_percent` allows and the enforcing roll says so.
    fn eject(&mut self, hosts: &[Arc<Host>], host: &Host, kind: Kind) -> bool {
        let ejected = hosts
            .iter()
            .filter(|h| h.health_flags() & health::EJECTED != 0)
            .count();
        let percent = 100.0 * (ejected + 1) as f64 / hosts.len().max(1) as f64;
        let allowed = percent <= f64::from(self.s.max_ejection_percent)
            || (self.s.always_eject_one_host && ejected == 0);
        if !allowed {
            self.overflow += 1;
            tracing::info!(
                "[upstream] [outlier detection] cluster {} host {}: {} outlier not ejected: \
                 max_ejection_percent {} reached ({} times so far)",
                self.cluster,
                host.addr,
                kind.name(),
                self.s.max_ejection_percent,
                self.overflow
            );
            return false;
        }
        if !roll(kind.enforcing(&self.s)) {
            tracing::debug!(
                "[upstream] [outlier detection] cluster {} host {}: {} outlier detected, \
                 not enforced",
                self.cluster,
                host.addr,
                kind.name()
            );
            return false;
        }
        let o = &host.outlier;
        host.set_health_flag(health::EJECTED);
        o.ejected_at.store(now_ms(host), Relaxed);
        let jitter = ms(self.s.max_ejection_time_jitter);
        o.jitter_ms.store(
            if jitter > 0 {
                fastrand::u64(0..=jitter)
            } else {
                0
            },
            Relaxed,
        );
        // Envoy stops raising the multiplier once the ejection time is at its cap.
        let m = u64::from(o.multiplier.load(Relaxed));
        if m * ms(self.s.base_ejection_time)
            < ms(self.s.max_ejection_time) + ms(self.s.base_ejection_time)
        {
            o.multiplier.fetch_add(1, Relaxed);
        }
        host.stats.ejections.fetch_add(1, Relaxed);
        tracing::info!(
            "[upstream] [outlier detection] cluster {} host {} ejected ({}) for {:?}",
            self.cluster,
            host.addr,
            kind.name(),
            self.ejection_time(host)
        );
        true
    }

    /// How long the host's current ejection lasts.
    fn ejection_time(&self, host: &Host) -> Duration {
        let o = &host.outlier;
        let base = self
            .s
            .base_ejection_time
            .saturating_mul(o.multiplier.load(Relaxed));
        base.min(self.s.max_ejection_time) + Duration::from_millis(o.jitter_ms.load(Relaxed))
    }

    /// The interval's work: returns, analyses, decay. True when a host changed.
    fn sweep(&mut self, hosts: &[Arc<Host>]) -> bool {
        let mut changed = false;
        // Returns, and the interval's counters (taken from every host, so each
        // interval starts from zero).
        let mut samples = Vec::with_capacity(hosts.len());
        for h in hosts {
            let o = &h.outlier;
            let at = o.ejected_at.load(Relaxed);
            if at != 0 && h.health_flags() & health::EJECTED == 0 {
                // The flag was cleared elsewhere: the host is back.
                uneject(h);
            } else if at != 0 {
                let elapsed = Duration::from_millis(now_ms(h).saturating_sub(at));
                if elapsed >= self.ejection_time(h) {
                    uneject(h);
                    tracing::info!(
                        "[upstream] [outlier detection] cluster {} host {} returned after {:?}",
                        self.cluster,
                        h.addr,
                        elapsed
                    );
                    changed = true;
                }
            }
            let w = o.window.swap(0, Relaxed);
            let (total, errors) = (w >> 32, w & 0xffff_ffff);
            if total > 0 && h.health_flags() & health::EJECTED == 0 {
                let success_rate = 100.0 * total.saturating_sub(errors) as f64 / total as f64;
                samples.push((h, total, success_rate));
            }
        }
        changed |= self.success_rate(hosts, &samples);
        changed |= self.failure_percentage(hosts, &samples);
        // Decay: a host back for at least an interval has its multiplier lowered.
        for h in hosts {
            let o = &h.outlier;
            let back = o.unejected_at.load(Relaxed);
            if h.health_flags() & health::EJECTED == 0
                && back != 0
                && Duration::from_millis(now_ms(h).saturating_sub(back)) >= self.s.interval
                && o.multiplier.load(Relaxed) > 0
            {
                o.multiplier.fetch_sub(1, Relaxed);
            }
        }
        changed
    }

    /// Envoy's success-rate analysis: with enough hosts of enough volume, eject those
    /// below mean - stdev × factor / 1000.
    fn success_rate(&mut self, hosts: &[Arc<Host>], samples: &[(&Arc<Host>, u64, f64)]) -> bool {
        let valid: Vec<_> = samples
            .iter()
            .filter(|(_, total, _)| *total >= u64::from(self.s.success_rate_request_volume))
            .collect();
        if valid.is_empty() || valid.len() < self.s.success_rate_minimum_hosts as usize {
            return false;
        }
        let n = valid.len() as f64;
        let mean = valid.iter().map(|(_, _, r)| r).sum::<f64>() / n;
        let variance = valid
            .iter()
            .map(|(_, _, r)| (r - mean).powi(2))
            .sum::<f64>()
            / n;
        let threshold =
            mean - variance.sqrt() * f64::from(self.s.success_rate_stdev_factor) / 1000.0;
        let mut changed = false;
        for (h, _, rate) in valid {
            if *rate < threshold && h.health_flags() & health::EJECTED == 0 {
                tracing::debug!(
                    "[upstream] [outlier detection] cluster {} host {}: success rate {rate:.1}% \
                     below {threshold:.1}% (mean {mean:.1}%)",
                    self.cluster,
                    h.addr
                );
                changed |= self.eject(hosts, h, Kind::SuccessRate);
            }
        }
        changed
    }

    /// Envoy's failure-percentage analysis.
    fn failure_percentage(
        &mut self,
        hosts: &[Arc<Host>],
        samples: &[(&Arc<Host>, u64, f64)],
    ) -> bool {
        let valid: Vec<_> = samples
            .iter()
            .filter(|(_, total, _)| *total >= u64::from(self.s.failure_percentage_request_volume))
            .collect();
        if valid.is_empty() || valid.len() < self.s.failure_percentage_minimum_hosts as usize {
            return false;
        }
        let mut changed = false;
        for (h, _, rate) in valid {
            if 100.0 - rate >= f64::from(self.s.failure_percentage_threshold)
                && h.health_flags() & health::EJECTED == 0
            {
                changed |= self.eject(hosts, h, Kind::FailurePercentage);
            }
        }
        changed
    }
}

/// Returns an ejected host: clears the flag and the consecutive counters.
fn uneject(host: &Host) {
    let o = &host.outlier;
    host.clear_health_flag(health::EJECTED);
    o.ejected_at.store(0, Relaxed);
    o.unejected_at.store(now_ms(host), Relaxed);
    o.reset_consecutive();
}

/// Envoy's `successful_active_health_check_uneject_host`: a passed active health check
/// returns a host outlier detection ejected. True when it did (the caller refreshes
/// the cluster).
pub(crate) fn uneject_after_health_check(host: &Host) -> bool {
    let flags = host.health_flags();
    if flags & health::EJECTED == 0
        || flags & health::FAILED_ACTIVE_HC != 0
        || !host.outlier.is_ejected()
    {
        return false;
    }
    uneject(host);
    true
}

/// Turns detection off for these hosts and returns the ones it ejected.
fn disarm(hosts: &[Arc<Host>]) -> bool {
    let mut changed = false;
    for h in hosts {
        let o = &h.outlier;
        o.armed.store(false, Relaxed);
        o.threshold_5xx.store(0, Relaxed);
        o.threshold_gateway.store(0, Relaxed);
        o.window.store(0, Relaxed);
        o.multiplier.store(0, Relaxed);
        if o.is_ejected() {
            uneject(h);
            changed = true;
        }
        o.reset_consecutive();
    }
    changed
}

/// One cluster's detector task.
async fn run_detector(manager: Arc<ClusterManager>, cluster: Arc<str>, s: OutlierSettings) {
    let poll = PENDING_POLL.min(s.interval);
    let interval = s.interval;
    let mut detector = Detector {
        cluster: cluster.clone(),
        s,
        overflow: 0,
    };
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sweep = tokio::time::Instant::now() + interval;
    loop {
        ticker.tick().await;
        let Some(c) = manager.get(&cluster) else {
            continue;
        };
        let hosts = c.hosts();
        detector.arm(&hosts);
        let mut changed = detector.process_pending(&hosts);
        let now = tokio::time::Instant::now();
        if now >= next_sweep {
            changed |= detector.sweep(&hosts);
            next_sweep = now + interval;
        }
        if changed {
            c.refresh_health();
        }
    }
}

/// Starts outlier detection on the current runtime: a detector task per cluster with
/// `outlier_detection`, started, restarted and stopped as clusters come, change and go
/// (checked every [`RESCAN_INTERVAL`]). Aborting the handle stops every detector.
pub fn spawn_outlier_detection(manager: Arc<ClusterManager>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<Arc<str>, (OutlierDetectionConfig, AbortOnDrop)> = HashMap::new();
        loop {
            let clusters = manager.all();
            let names: HashSet<&str> = clusters.iter().map(|c| &*c.name).collect();
            running.retain(|name, _| names.contains(&**name));
            for c in &clusters {
                match &c.config.outlier_detection {
                    Some(cfg) => {
                        if running.get(&c.name).is_some_and(|(old, _)| old == cfg) {
                            continue;
                        }
                        tracing::info!(
                            "[upstream] [outlier detection] cluster {}: detection on",
                            c.name
                        );
                        let task = tokio::spawn(run_detector(
                            manager.clone(),
                            c.name.clone(),
                            cfg.settings(),
                        ));
                        running.insert(c.name.clone(), (cfg.clone(), AbortOnDrop(task)));
                    }
                    None => {
                        if running.remove(&c.name).is_some() {
                            tracing::info!(
                                "[upstream] [outlier detection] cluster {}: detection off",
                                c.name
                            );
                            if disarm(&c.hosts()) {
                                c.refresh_health();
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(RESCAN_INTERVAL).await;
        }
    })
}

/// The host's outlier detection state, for stats and dumps.
pub fn host_json(host: &Host) -> serde_json::Value {
    let o = &host.outlier;
    serde_json::json!({
        "ejected": o.is_ejected(),
        "ejection_multiplier": o.multiplier(),
        "consecutive_5xx": o.consecutive_5xx.load(Relaxed),
        "consecutive_gateway_failure": o.consecutive_gateway.load(Relaxed),
    })
}

#[cfg(test)]
mod tests;

//! The load-aware balancers: MOSN's LB_LEAST_REQUEST, LB_LEAST_CONNECTION and
//! LB_PEAK_EWMA, one engine with three load measures.
//!
//! Equal weights (and no host warming up): the power of `choice_count` random choices
//! (default 2) — sample that many hosts, take the least loaded; with no more hosts than
//! choices, look at all of them from a random start. MOSN and Envoy do the same.
//!
//! Weights differ, or slow start is ramping a host: MOSN and Envoy run an EDF scheduler
//! over the effective weight `weight × slow_start_factor / load`, recomputed at every
//! pick. Here the same distribution comes from a weighted random draw over effective
//! weights computed at the pick (no scheduler, so no lock): over every host, or over a
//! random run of 64 consecutive hosts in larger sets.
//!
//! Load: least request `(rq_active + 1)^active_request_bias`; least connection
//! `(cx_active + 1)^active_request_bias`; peak EWMA MOSN's score
//! `latency × (rq_active + 1)^active_request_bias / success`, success =
//! `max(0.1, (1 − client_error_rate)^client_error_bias × (1 − server_error_rate)^server_error_bias)`.
//! In the unweighted form least request and least connection compare the raw counts,
//! as MOSN does.

use super::slow_start::Warmup;
use super::{lb_weight, weights_differ, LbContext, LbSettings, LoadBalancer, MAX_CHOICES};
use crate::host::Host;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Hosts one weighted pick looks at.
const WINDOW: usize = MAX_CHOICES as usize;
/// MOSN's floor of the peak-EWMA success factor.
const MIN_SUCCESS_RATE: f64 = 0.1;

/// What "load" means for a [`LeastLoadLb`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMetric {
    /// Requests in flight (`HostStats::rq_active`, kept by `ActiveRequest`).
    Requests,
    /// Open connections (`HostStats::cx_active`, kept by `ActiveConnection`).
    Connections,
    /// MOSN's peak-EWMA score (`Host::record_latency`, `Host::record_response`).
    PeakEwma,
}

#[derive(Debug)]
pub struct LeastLoadLb {
    hosts: Vec<Arc<Host>>,
    metric: LoadMetric,
    choice: usize,
    active_bias: f64,
    client_error_bias: f64,
    server_error_bias: f64,
    /// Latency of a host nothing is known about when no candidate knows either.
    default_latency_us: f64,
    weights_differ: bool,
    warmup: Option<Warmup>,
}

impl LeastLoadLb {
    pub fn new(hosts: Vec<Arc<Host>>, metric: LoadMetric, settings: &LbSettings) -> Self {
        LeastLoadLb {
            weights_differ: weights_differ(&hosts),
            warmup: Warmup::new(settings.slow_start, &hosts),
            hosts,
            metric,
            choice: settings.choice_count.clamp(1, MAX_CHOICES) as usize,
            active_bias: settings.active_request_bias,
            client_error_bias: settings.client_error_bias,
            server_error_bias: settings.server_error_bias,
            default_latency_us: settings.default_latency.as_secs_f64() * 1e6,
        }
    }

    #[inline]
    fn active(&self, h: &Host) -> f64 {
        match self.metric {
            LoadMetric::Connections => h.active_connections() as f64,
            LoadMetric::Requests | LoadMetric::PeakEwma => h.active_requests() as f64,
        }
    }

    #[inline]
    fn biased(&self, active: f64) -> f64 {
        if self.active_bias == 1.0 {
            active + 1.0
        } else {
            (active + 1.0).powf(self.active_bias)
        }
    }

    /// The load of each candidate (lower is better, above 0). `raw`: the unweighted
    /// least-request/connection form compares plain counts.
    fn loads(&self, candidates: &[usize], out: &mut [f64], raw: bool) {
        if self.metric != LoadMetric::PeakEwma {
            for (o, &i) in out.iter_mut().zip(candidates) {
                let active = self.active(&self.hosts[i]);
                *o = if raw { active } else { self.biased(active) };
            }
            return;
        }
        let mut snaps = [None; WINDOW];
        let (mut sum, mut known) = (0.0, 0u32);
        for (s, &i) in snaps.iter_mut().zip(candidates) {
            let snap = self.hosts[i].ewma.snapshot();
            if let Some(l) = snap.latency_us {
                sum += l;
                known += 1;
            }
            *s = Some(snap);
        }
        // MOSN falls back to the cluster's average latency; the candidates' is the
        // nearest thing at hand.
        let fallback = if known > 0 {
            sum / f64::from(known)
        } else {
            self.default_latency_us
        };
        for ((o, &i), snap) in out.iter_mut().zip(candidates).zip(snaps) {
            let Some(snap) = snap else { continue };
            let latency = snap.latency_us.unwrap_or(fallback).max(1.0);
            let success = ((1.0 - snap.client_error_rate)
                .max(0.0)
                .powf(self.client_error_bias)
                * (1.0 - snap.server_error_rate)
                    .max(0.0)
                    .powf(self.server_error_bias))
            .max(MIN_SUCCESS_RATE);
            *o = latency * self.biased(self.active(&self.hosts[i])) / success;
        }
    }

    /// Power of `choice` random choices.
    fn choose_unweighted(&self, avoid: Option<SocketAddr>) -> usize {
        let n = self.hosts.len();
        let mut candidates = [0usize; WINDOW];
        let count = if n <= self.choice {
            let start = fastrand::usize(..n);
            let mut c = 0;
            for k in 0..n {
                let i = (start + k) % n;
                if Some(self.hosts[i].addr) != avoid {
                    candidates[c] = i;
                    c += 1;
                }
            }
            c
        } else {
            for slot in candidates.iter_mut().take(self.choice) {
                let mut i = fastrand::usize(..n);
                if Some(self.hosts[i].addr) == avoid {
                    i = (i + 1 + fastrand::usize(..n - 1)) % n;
                }
                *slot = i;
            }
            self.choice
        };
        if count == 0 {
            return 0;
        }
        let mut loads = [0.0f64; WINDOW];
        self.loads(&candidates[..count], &mut loads[..count], true);
        let mut best = 0;
        for k in 1..count {
            if loads[k] < loads[best] {
                best = k;
            }
        }
        candidates[best]
    }

    /// A weighted random draw over effective weights.
    fn choose_weighted(&self, avoid: Option<SocketAddr>, now: Option<Instant>) -> usize {
        let n = self.hosts.len();
        let (start, count) = if n <= WINDOW {
            (0, n)
        } else {
            (fastrand::usize(..n), WINDOW)
        };
        let mut candidates = [0usize; WINDOW];
        for (k, c) in candidates.iter_mut().take(count).enumerate() {
            *c = (start + k) % n;
        }
        let mut eff = [0.0f64; WINDOW];
        self.loads(&candidates[..count], &mut eff[..count], false);
        let mut total = 0.0;
        for (e, &i) in eff.iter_mut().zip(&candidates[..count]) {
            let h = &self.hosts[i];
            let mut w = f64::from(lb_weight(h));
            if let (Some(now), Some(warmup)) = (now, &self.warmup) {
                w *= warmup.factor(h, now);
            }
            *e = if Some(h.addr) == avoid { 0.0 } else { w / *e };
            if !e.is_finite() {
                *e = 0.0;
            }
            total += *e;
        }
        if total <= 0.0 || !total.is_finite() {
            // Nothing to weigh by (only the avoided host, or no numbers): any other host.
            let pick = candidates[fastrand::usize(..count)];
            return match avoid {
                Some(a) if self.hosts[pick].addr == a => (pick + 1) % n,
                _ => pick,
            };
        }
        let mut target = fastrand::f64() * total;
        for k in 0..count {
            if eff[k] > 0.0 {
                if target < eff[k] {
                    return candidates[k];
                }
                target -= eff[k];
            }
        }
        // Rounding left the target past the end: the last weighed candidate.
        (0..count)
            .rev()
            .find(|&k| eff[k] > 0.0)
            .map_or(candidates[0], |k| candidates[k])
    }
}

impl LoadBalancer for LeastLoadLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let n = self.hosts.len();
        if n <= 1 {
            return self.hosts.first().cloned();
        }
        let now = self.warmup.as_ref().and_then(Warmup::now_if_warming);
        let i = if self.weights_differ || now.is_some() {
            self.choose_weighted(ctx.avoid, now)
        } else {
            self.choose_unweighted(ctx.avoid)
        };
        Some(self.hosts[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LbKind, SlowStart};
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn lb(hosts: &[Arc<Host>], metric: LoadMetric) -> LeastLoadLb {
        LeastLoadLb::new(
            hosts.to_vec(),
            metric,
            &LbSettings::new(LbKind::LeastRequest),
        )
    }

    fn set_rq(h: &Host, n: u64) {
        h.stats.rq_active.store(n, Ordering::Relaxed);
    }

    #[test]
    fn least_request_prefers_the_less_loaded() {
        // Two hosts, two choices: both are looked at, the idle one always wins.
        let hs = equal_hosts(2);
        set_rq(&hs[0], 5);
        let two = lb(&hs, LoadMetric::Requests);
        assert_eq!(
            count(&hs, 200, || two.choose(&LbContext::default())),
            [0, 200]
        );
        // Ten hosts, one idle: it wins whenever sampled, 1 - (9/10)^2 = 19% vs 9% each.
        let hs = equal_hosts(10);
        for h in &hs[1..] {
            set_rq(h, 3);
        }
        let ten = lb(&hs, LoadMetric::Requests);
        let seen = count(&hs, 20_000, || ten.choose(&LbContext::default()));
        assert!(seen[0] > 3_400 && seen[0] < 4_200, "{seen:?}");
        assert!(seen[1..].iter().all(|&n| n < 2_300), "{seen:?}");
    }

    #[test]
    fn weighted_least_request_uses_weight_over_load() {
        let hs = weighted_hosts(&[1, 3]);
        let l = lb(&hs, LoadMetric::Requests);
        let seen = count(&hs, 20_000, || l.choose(&LbContext::default()));
        assert!(
            (seen[1] as f64 / 20_000.0 - 0.75).abs() < 0.02,
            "idle: by weight {seen:?}"
        );
        // 1/(0+1) against 3/(5+1): two to one for the light host.
        set_rq(&hs[1], 5);
        let seen = count(&hs, 20_000, || l.choose(&LbContext::default()));
        assert!(
            (seen[0] as f64 / 20_000.0 - 2.0 / 3.0).abs() < 0.02,
            "{seen:?}"
        );
    }

    #[test]
    fn least_connection_reads_cx_active() {
        let hs = equal_hosts(2);
        let _c1 = crate::host::ActiveConnection::new(&hs[1]);
        let _c2 = crate::host::ActiveConnection::new(&hs[1]);
        assert_eq!(hs[1].active_connections(), 2);
        set_rq(&hs[0], 100); // requests do not count here
        let l = lb(&hs, LoadMetric::Connections);
        assert_eq!(
            count(&hs, 100, || l.choose(&LbContext::default())),
            [100, 0]
        );
        drop((_c1, _c2));
        assert_eq!(hs[1].active_connections(), 0);
    }

    #[test]
    fn peak_ewma_prefers_fast_and_successful_hosts() {
        let hs = equal_hosts(2);
        hs[0].record_latency(Duration::from_millis(100));
        hs[1].record_latency(Duration::from_millis(2));
        let l = lb(&hs, LoadMetric::PeakEwma);
        assert_eq!(
            count(&hs, 100, || l.choose(&LbContext::default())),
            [0, 100]
        );
        // Same latency; one host answers 5xx.
        let hs = equal_hosts(2);
        for h in &hs {
            h.record_latency(Duration::from_millis(5));
        }
        for _ in 0..20 {
            hs[0].record_response(503);
            hs[1].record_response(200);
        }
        let l = lb(&hs, LoadMetric::PeakEwma);
        assert_eq!(
            count(&hs, 100, || l.choose(&LbContext::default())),
            [0, 100]
        );
        // A host nothing is known about borrows the others' latency: it is not starved.
        let hs = equal_hosts(2);
        hs[0].record_latency(Duration::from_millis(5));
        set_rq(&hs[0], 1);
        let l = lb(&hs, LoadMetric::PeakEwma);
        assert_eq!(
            count(&hs, 100, || l.choose(&LbContext::default())),
            [0, 100]
        );
    }

    #[test]
    fn avoid_is_honoured_in_both_forms() {
        for weights in [[1, 1, 1], [1, 5, 1]] {
            let hs = weighted_hosts(&weights);
            set_rq(&hs[0], 9);
            set_rq(&hs[2], 9);
            for metric in [
                LoadMetric::Requests,
                LoadMetric::Connections,
                LoadMetric::PeakEwma,
            ] {
                let l = lb(&hs, metric);
                let ctx = LbContext {
                    avoid: Some(hs[1].addr),
                    ..Default::default()
                };
                for _ in 0..300 {
                    assert_ne!(
                        l.choose(&ctx).unwrap().addr,
                        hs[1].addr,
                        "{weights:?} {metric:?}"
                    );
                }
            }
        }
        // Many hosts (sampling) and two choices.
        let hs = equal_hosts(5);
        let l = lb(&hs, LoadMetric::Requests);
        let ctx = LbContext {
            avoid: Some(hs[3].addr),
            ..Default::default()
        };
        for _ in 0..500 {
            assert_ne!(l.choose(&ctx).unwrap().addr, hs[3].addr);
        }
        assert!(lb(&[], LoadMetric::Requests).choose(&ctx).is_none());
    }

    #[test]
    fn slow_start_turns_on_the_weighted_form() {
        let hs = vec![
            aged_host(3200, 1, Duration::from_secs(1000)),
            aged_host(3201, 1, Duration::ZERO),
        ];
        let mut settings = LbSettings::new(LbKind::LeastRequest);
        settings.slow_start = Some(SlowStart {
            window: Duration::from_secs(60),
            aggression: 1.0,
            min_weight_percent: 0.1,
        });
        let l = LeastLoadLb::new(hs.clone(), LoadMetric::Requests, &settings);
        let seen = count(&hs, 22_000, || l.choose(&LbContext::default()));
        // 1 : 0.1 while the second host warms up.
        assert!((seen[1] as f64 - 2_000.0).abs() < 300.0, "{seen:?}");
    }

    #[test]
    fn large_sets_use_a_window() {
        let weights: Vec<u32> = (0..200).map(|i| 1 + (i % 2)).collect();
        let hs = weighted_hosts_from(4000, &weights);
        let l = lb(&hs, LoadMetric::Requests);
        let seen = count(&hs, 30_000, || l.choose(&LbContext::default()));
        let light: usize = seen.iter().step_by(2).sum();
        assert!(
            (light as f64 / 30_000.0 - 1.0 / 3.0).abs() < 0.03,
            "{light}"
        );
    }
}

//! The Prometheus text of the clusters' runtime state: per host (MOSN's host stats,
//! `upstream_*{cluster="C",host="IP:port"}`, the same families as the cluster totals
//! the stats registry renders, the `upstream_request_duration_time_seconds` histogram
//! among them), host health and weight, membership, and the circuit breakers. Reads
//! atomics only.

use crate::breaker::Resource;
use crate::host::health;
use crate::ClusterManager;
use mosn_observe::prometheus::{help, metric_name, Exposition, Kind};
use std::sync::atomic::Ordering::Relaxed;

/// Adds every cluster's hosts and breakers to `out`.
pub fn write_prometheus(manager: &ClusterManager, out: &mut Exposition) {
    // The cluster totals' family (the stats registry's), so hosts join it.
    let (request_time, _) = metric_name(
        "upstream",
        "upstream_request_duration_time",
        Kind::Histogram,
    );
    for cluster in manager.all() {
        let name: &str = &cluster.name;
        let hosts = cluster.hosts();
        let healthy = hosts.iter().filter(|h| h.is_healthy()).count();
        out.sample(
            "upstream_hosts",
            Kind::Gauge,
            "Hosts in the cluster.",
            &[("cluster", name)],
            hosts.len(),
        );
        out.sample(
            "upstream_hosts_healthy",
            Kind::Gauge,
            "Hosts in the cluster that take traffic (not failing health checks, not ejected).",
            &[("cluster", name)],
            healthy,
        );
        for h in &hosts {
            let addr = h.addr.to_string();
            let l: &[(&str, &str)] = &[("cluster", name), ("host", &addr)];
            let s = &h.stats;
            let counter = |out: &mut Exposition, metric: &str, help: &str, v: u64| {
                out.sample(metric, Kind::Counter, help, l, v)
            };
            let gauge = |out: &mut Exposition, metric: &str, help: &str, v: u64| {
                out.sample(metric, Kind::Gauge, help, l, v)
            };
            counter(
                out,
                "upstream_request_total",
                "Upstream requests sent.",
                s.rq_total.load(Relaxed),
            );
            gauge(
                out,
                "upstream_request_active",
                "Upstream requests in flight.",
                s.rq_active.load(Relaxed),
            );
            counter(
                out,
                "upstream_connection_total",
                "Upstream connections opened.",
                s.cx_total.load(Relaxed),
            );
            gauge(
                out,
                "upstream_connection_active",
                "Upstream connections open.",
                s.cx_active.load(Relaxed),
            );
            counter(
                out,
                "upstream_connection_con_fail_total",
                "Upstream connection attempts failed.",
                s.cx_connect_fail.load(Relaxed),
            );
            out.histogram(
                &request_time,
                help("upstream_request_duration_time"),
                l,
                &s.request_duration_time.snapshot(),
            );
            counter(
                out,
                "upstream_host_rq_error_total",
                "Upstream requests that got a 5xx or no response.",
                s.rq_error.load(Relaxed),
            );
            counter(
                out,
                "upstream_host_ejection_total",
                "Times outlier detection ejected the host.",
                s.ejections.load(Relaxed),
            );
            counter(
                out,
                "healthcheck_failure_total",
                "Active health checks of the host that failed.",
                s.hc_failures.load(Relaxed),
            );
            counter(
                out,
                "healthcheck_attempt_total",
                "Active health checks of the host run.",
                s.hc_attempts.load(Relaxed),
            );
            counter(
                out,
                "healthcheck_success_total",
                "Active health checks of the host that passed.",
                s.hc_successes.load(Relaxed),
            );
            gauge(
                out,
                "upstream_host_healthy",
                "1 when the host takes traffic, 0 when it fails health checks or is ejected.",
                u64::from(h.is_healthy()),
            );
            gauge(
                out,
                "upstream_host_failed_active_health_check",
                "1 while the host fails active health checks.",
                u64::from(h.health_flags() & health::FAILED_ACTIVE_HC != 0),
            );
            gauge(
                out,
                "upstream_host_ejected",
                "1 while outlier detection has the host ejected.",
                u64::from(h.health_flags() & health::EJECTED != 0),
            );
            gauge(
                out,
                "upstream_host_weight",
                "The host's load-balancing weight.",
                u64::from(h.weight),
            );
        }
        let b = &cluster.breakers;
        let resources: [(&str, &Resource); 4] = [
            ("connections", &b.connections),
            ("pending_requests", &b.pending_requests),
            ("requests", &b.requests),
            ("retries", &b.retries),
        ];
        for (resource, r) in resources {
            let l: &[(&str, &str)] = &[("cluster", name), ("resource", resource)];
            out.sample(
                "upstream_circuit_breaker_max",
                Kind::Gauge,
                "The circuit breaker's cap (0: no cap).",
                l,
                r.max(),
            );
            out.sample(
                "upstream_circuit_breaker_current",
                Kind::Gauge,
                "Units of the resource in use.",
                l,
                r.current(),
            );
            out.sample(
                "upstream_circuit_breaker_overflow_total",
                Kind::Counter,
                "Times the circuit breaker refused.",
                l,
                r.overflows.load(Relaxed),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosn_config::ClusterConfig;
    use mosn_observe::StatsRegistry;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn hosts_join_the_clusters_request_time_family() {
        let cfg: ClusterConfig = serde_json::from_value(serde_json::json!({
            "name": "c", "type": "SIMPLE", "hosts": [{"address": "127.0.0.1:80"}]
        }))
        .unwrap();
        let stats = Arc::new(StatsRegistry::default());
        let manager = ClusterManager::build(&[cfg], stats.clone());
        let host = manager.get("c").unwrap().hosts()[0].clone();
        host.stats
            .request_done(Duration::from_micros(80), Some(200));
        host.stats.request_done(Duration::from_secs(1), None);
        stats
            .cluster("c")
            .upstream_request_duration_time
            .record(Duration::from_micros(80));

        let mut out = Exposition::new();
        stats.write_prometheus(&mut out);
        write_prometheus(&manager, &mut out);
        let text = out.render();
        let name = "upstream_request_duration_time_seconds";
        assert_eq!(
            text.matches(&format!("# TYPE {name} histogram\n")).count(),
            1
        );
        for line in [
            format!("{name}_bucket{{cluster=\"c\",le=\"0.0001\"}} 1"),
            format!("{name}_bucket{{cluster=\"c\",host=\"127.0.0.1:80\",le=\"0.00005\"}} 0"),
            format!("{name}_bucket{{cluster=\"c\",host=\"127.0.0.1:80\",le=\"0.0001\"}} 1"),
            format!("{name}_bucket{{cluster=\"c\",host=\"127.0.0.1:80\",le=\"+Inf\"}} 1"),
            format!("{name}_sum{{cluster=\"c\",host=\"127.0.0.1:80\"}} 0.00008"),
            format!("{name}_count{{cluster=\"c\",host=\"127.0.0.1:80\"}} 1"),
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
        }
        // The family's samples stay together: the hosts' come right after the cluster's.
        let family: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with(&format!("# TYPE {name}")))
            .skip(1)
            .take_while(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(family.len(), 2 * (mosn_observe::histogram::BUCKETS + 2));
    }
}

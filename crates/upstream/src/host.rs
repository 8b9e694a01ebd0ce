//! Upstream hosts: address, weight, metadata, health and per-host stats.
//!
//! A host object outlives config updates that keep its address, so its health state,
//! counters and slow-start clock survive them. Everything mutable is atomic: workers,
//! health checkers and outlier detection all touch it without locks.

use crate::lb::ewma::HostEwma;
use mosn_config::HostConfig;
use mosn_observe::addr_text::TextedAddr;
use mosn_observe::Histogram;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reasons a host is out of load balancing; a host is healthy when none is set.
pub mod health {
    /// Failed active health checks.
    pub const FAILED_ACTIVE_HC: u32 = 1;
    /// Ejected by outlier detection.
    pub const EJECTED: u32 = 2;
}

/// Counters of one host, all relaxed atomics.
#[derive(Debug, Default)]
pub struct HostStats {
    pub rq_total: AtomicU64,
    pub rq_active: AtomicU64,
    /// Requests answered 5xx or not answered at all (Envoy's host `rq_error`); kept by
    /// [`HostStats::request_done`].
    pub rq_error: AtomicU64,
    pub cx_total: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub ejections: AtomicU64,
    pub hc_failures: AtomicU64,
    /// Active health checks run and passed (MOSN's healthcheck `attempt`, `success`).
    pub hc_attempts: AtomicU64,
    pub hc_successes: AtomicU64,
    /// Open connections (LB_LEAST_CONNECTION). Whoever opens upstream connections holds
    /// an [`ActiveConnection`] for each one's life.
    pub cx_active: AtomicU64,
    /// MOSN's per-host `request_duration_time`: request sent to response received.
    pub request_duration_time: Histogram,
}

impl HostStats {
    /// The proxy calls this once per finished upstream request: `Some(status)` when a
    /// response came, None when none did (connect failure, reset, timeout). A response
    /// records its time, as MOSN records `request_duration_time` only on a response (a
    /// refused connection's few microseconds would pull the latencies down); a 5xx or
    /// no response counts in `rq_error`. Relaxed atomics only.
    pub fn request_done(&self, elapsed: Duration, status: Option<u16>) {
        let failed = match status {
            Some(status) => {
                self.request_duration_time.record(elapsed);
                status >= 500
            }
            None => true,
        };
        if failed {
            self.rq_error.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One upstream endpoint.
#[derive(Debug)]
pub struct Host {
    pub addr: SocketAddr,
    /// `addr` with its text, made once: access logs and spans write it for each
    /// request the host serves.
    pub addr_text: TextedAddr,
    pub hostname: String,
    pub weight: u32,
    /// What a request without a Host header is sent with: the hostname, else the address.
    pub authority: String,
    /// MOSN's `metadata.filter_metadata["mosn.lb"]`, flattened to strings, for subsets.
    pub metadata: BTreeMap<String, String>,
    pub stats: HostStats,
    health: AtomicU32,
    /// Set once the host left its cluster: pooled connections to it are closed.
    removed: AtomicBool,
    /// When the host joined; slow start ramps its weight from here.
    pub added_at: Instant,
    /// Milliseconds after `added_at` at which the host last became healthy again (0:
    /// never left); slow start restarts there, as MOSN's `LastHealthCheckPassTime`.
    healthy_again_ms: AtomicU64,
    /// Latency and response-class moving averages (LB_PEAK_EWMA).
    pub ewma: HostEwma,
    /// Outlier detection's counters and ejection state (crate::outlier).
    pub outlier: crate::outlier::OutlierState,
}

impl Host {
    pub fn new(
        addr: SocketAddr,
        hostname: &str,
        weight: u32,
        metadata: BTreeMap<String, String>,
    ) -> Host {
        Host {
            addr,
            addr_text: TextedAddr::new(addr),
            authority: if hostname.is_empty() {
                addr.to_string()
            } else {
                hostname.to_string()
            },
            hostname: hostname.to_string(),
            weight: weight.max(1),
            metadata,
            stats: HostStats::default(),
            health: AtomicU32::new(0),
            removed: AtomicBool::new(false),
            added_at: Instant::now(),
            healthy_again_ms: AtomicU64::new(0),
            ewma: HostEwma::default(),
            outlier: Default::default(),
        }
    }

    /// Builds from config; None when the address does not parse (validation caught it).
    pub fn from_config(cfg: &HostConfig) -> Option<Host> {
        let addr = cfg.address.parse().ok()?;
        Some(Host::new(
            addr,
            &cfg.hostname,
            cfg.weight.unwrap_or(1),
            lb_metadata(&cfg.metadata),
        ))
    }

    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.health.load(Ordering::Relaxed) == 0
    }

    pub fn health_flags(&self) -> u32 {
        self.health.load(Ordering::Relaxed)
    }

    pub fn set_health_flag(&self, flag: u32) {
        self.health.fetch_or(flag, Ordering::Relaxed);
    }

    pub fn clear_health_flag(&self, flag: u32) {
        let before = self.health.fetch_and(!flag, Ordering::Relaxed);
        if before != 0 && before & !flag == 0 {
            let ms = self.added_at.elapsed().as_millis().max(1);
            self.healthy_again_ms
                .store(ms.min(u64::MAX as u128) as u64, Ordering::Relaxed);
        }
    }

    /// A host that is part of a cluster from its start: it has nothing to warm up
    /// from, so slow start treats it as long warm (it applies to hosts that join a
    /// running cluster, or come back to health). One day back is far beyond any window.
    pub fn already_warm(mut self) -> Host {
        if let Some(past) = self
            .added_at
            .checked_sub(std::time::Duration::from_secs(24 * 3600))
        {
            self.added_at = past;
        }
        self
    }

    /// Where slow start measures from: when the host joined or last became healthy.
    pub fn warm_since(&self) -> Instant {
        let ms = self.healthy_again_ms.load(Ordering::Relaxed);
        self.added_at + std::time::Duration::from_millis(ms)
    }

    /// Open connections to this host (for least-connection balancing).
    #[inline]
    pub fn active_connections(&self) -> u64 {
        self.stats.cx_active.load(Ordering::Relaxed)
    }

    /// The proxy calls this when an upstream response has been received in full, with
    /// the time from sending the request (LB_PEAK_EWMA's latency).
    pub fn record_latency(&self, rtt: std::time::Duration) {
        self.ewma.record_latency(rtt);
    }

    /// The proxy calls this once per upstream response with its status code
    /// (LB_PEAK_EWMA's success rate: 4xx are client errors, 5xx server errors).
    pub fn record_response(&self, status: u16) {
        self.ewma.record_response(status);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    /// Requests in flight to this host (for least-request balancing).
    #[inline]
    pub fn active_requests(&self) -> u64 {
        self.stats.rq_active.load(Ordering::Relaxed)
    }

    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        serde_json::json!({
            "address": self.addr.to_string(),
            "hostname": self.hostname,
            "weight": self.weight,
            "healthy": self.is_healthy(),
            "failed_active_health_check": self.health_flags() & health::FAILED_ACTIVE_HC != 0,
            "ejected": self.health_flags() & health::EJECTED != 0,
            "metadata": self.metadata,
            "rq_total": s.rq_total.load(Ordering::Relaxed),
            "rq_active": s.rq_active.load(Ordering::Relaxed),
            "rq_error": s.rq_error.load(Ordering::Relaxed),
            "cx_total": s.cx_total.load(Ordering::Relaxed),
            "cx_connect_fail": s.cx_connect_fail.load(Ordering::Relaxed),
            "cx_active": s.cx_active.load(Ordering::Relaxed),
            "ejections": s.ejections.load(Ordering::Relaxed),
            "hc_failures": s.hc_failures.load(Ordering::Relaxed),
            "hc_attempts": s.hc_attempts.load(Ordering::Relaxed),
            "hc_successes": s.hc_successes.load(Ordering::Relaxed),
            "request_duration_time": s.request_duration_time.snapshot().to_json(),
            "outlier": crate::outlier::host_json(self),
        })
    }
}

/// Counts a request to a host from start to end.
pub struct ActiveRequest<'a>(&'a Host);

impl<'a> ActiveRequest<'a> {
    pub fn new(host: &'a Host) -> Self {
        host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        host.stats.rq_active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(host)
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.stats.rq_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an open upstream connection from connect to close (LB_LEAST_CONNECTION reads
/// the count): keep it alongside the connection.
#[derive(Debug)]
pub struct ActiveConnection(Arc<Host>);

impl ActiveConnection {
    pub fn new(host: &Arc<Host>) -> Self {
        host.stats.cx_active.fetch_add(1, Ordering::Relaxed);
        ActiveConnection(host.clone())
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.stats.cx_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// MOSN writes host metadata as `{"filter_metadata": {"mosn.lb": {"k": "v"}}}`; a flat
/// `{"k": "v"}` map is accepted too. Values that are not strings are kept as JSON text.
pub fn lb_metadata(metadata: &Value) -> BTreeMap<String, String> {
    let map = metadata
        .get("filter_metadata")
        .and_then(|f| f.get("mosn.lb"))
        .or(Some(metadata))
        .and_then(Value::as_object);
    map.map(|m| {
        m.iter()
            .filter(|(k, _)| k.as_str() != "filter_metadata")
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_in_mosn_and_flat_shapes() {
        let mosn = serde_json::json!({"filter_metadata": {"mosn.lb": {"stage": "blue", "n": 1}}});
        let m = lb_metadata(&mosn);
        assert_eq!(m.get("stage").map(String::as_str), Some("blue"));
        assert_eq!(m.get("n").map(String::as_str), Some("1"));
        let flat = serde_json::json!({"zone": "a"});
        assert_eq!(
            lb_metadata(&flat).get("zone").map(String::as_str),
            Some("a")
        );
        assert!(lb_metadata(&Value::Null).is_empty());
    }

    #[test]
    fn request_done_records_responses_and_counts_errors() {
        let h = Host::new("127.0.0.1:1".parse().unwrap(), "", 1, BTreeMap::new());
        let ms = Duration::from_millis;
        h.stats.request_done(ms(2), Some(200));
        h.stats.request_done(ms(3), Some(404));
        h.stats.request_done(ms(4), Some(503));
        h.stats.request_done(ms(5), None);
        assert_eq!(h.stats.rq_error.load(Ordering::Relaxed), 2);
        let t = h.stats.request_duration_time.snapshot();
        assert_eq!(
            (t.count(), t.sum_us),
            (3, 9_000),
            "no time without a response"
        );
        let j = h.to_json();
        assert_eq!(j["rq_error"], 2);
        assert_eq!(j["request_duration_time"]["count"], 3);
    }

    #[test]
    fn health_flags_combine() {
        let h = Host::new("127.0.0.1:1".parse().unwrap(), "", 0, BTreeMap::new());
        assert_eq!(h.weight, 1);
        assert!(h.is_healthy());
        h.set_health_flag(health::FAILED_ACTIVE_HC);
        h.set_health_flag(health::EJECTED);
        h.clear_health_flag(health::FAILED_ACTIVE_HC);
        assert!(!h.is_healthy());
        h.clear_health_flag(health::EJECTED);
        assert!(h.is_healthy());
    }
}

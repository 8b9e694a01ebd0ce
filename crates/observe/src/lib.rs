//! Stats: relaxed atomic counters, gauges and latency histograms grouped per listener
//! and per cluster.
//!
//! Recording is one relaxed atomic add (two for a histogram; no lock on the hot path).
//! Groups are looked up by name only while a config snapshot is built, so the same
//! counters survive a rebuild and keep counting.

pub mod addr_text;
pub mod clock;
pub mod histogram;
pub mod prometheus;

pub use histogram::{Histogram, HistogramSnapshot};

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (active connections, requests in flight).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declares a stats group: a struct of counters, gauges and histograms that renders
/// to JSON (a histogram as an object, see [`HistogramSnapshot::to_json`]).
macro_rules! stats_group {
    ($(#[$meta:meta])* $name:ident {
        counters: [$($c:ident),* $(,)?],
        gauges: [$($g:ident),* $(,)?],
        histograms: [$($h:ident),* $(,)?] $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(pub $c: Counter,)*
            $(pub $g: Gauge,)*
            $(pub $h: Histogram,)*
        }

        impl $name {
            pub fn to_json(&self) -> Value {
                let mut map = Map::new();
                $(map.insert(stringify!($c).into(), json!(self.$c.get()));)*
                $(map.insert(stringify!($g).into(), json!(self.$g.get()));)*
                $(map.insert(stringify!($h).into(), self.$h.snapshot().to_json());)*
                Value::Object(map)
            }

            /// Every stat with its name, counters first (for the Prometheus text).
            pub fn each(&self, f: &mut dyn FnMut(&'static str, prometheus::Sample)) {
                $(f(stringify!($c), prometheus::Sample::Counter(self.$c.get()));)*
                $(f(stringify!($g), prometheus::Sample::Gauge(self.$g.get()));)*
                $(f(stringify!($h), prometheus::Sample::Histogram(self.$h.snapshot()));)*
            }
        }
    };
}

stats_group!(
    /// Downstream side of one listener.
    ListenerStats {
        counters: [
            downstream_connection_total,
            downstream_connection_destroy,
            downstream_request_total,
            downstream_response_1xx,
            downstream_response_2xx,
            downstream_response_3xx,
            downstream_response_4xx,
            downstream_response_5xx,
            downstream_bytes_read_total,
            downstream_bytes_write_total,
            downstream_bad_request,
            downstream_request_timeout,
            no_route,
            direct_response,
            no_healthy_upstream,
            upstream_connect_failure,
            upstream_reset,
            upstream_timeout,
            upstream_overflow,
            downstream_cancel,
            no_filter_chain,
            tls_handshake_success,
            tls_handshake_failure,
            proxy_protocol_error,
        ],
        gauges: [downstream_connection_active, downstream_request_active],
        // MOSN's `request_time` (pkg/metrics/downstream.go): from the request's first
        // byte to the end of its response (or its failure).
        histograms: [downstream_request_time],
    }
);

stats_group!(
    /// Upstream side of one cluster.
    ClusterStats {
        counters: [
            upstream_connection_total,
            upstream_connection_reused,
            upstream_connection_connect_fail,
            upstream_connection_connect_timeout,
            upstream_request_total,
            upstream_request_timeout,
            upstream_request_reset,
            upstream_request_pending_overflow,
            upstream_request_overflow,
            upstream_connection_overflow,
            upstream_request_retry,
            upstream_request_retry_overflow,
            upstream_response_1xx,
            upstream_response_2xx,
            upstream_response_3xx,
            upstream_response_4xx,
            upstream_response_5xx,
        ],
        gauges: [upstream_request_active],
        // MOSN's `request_duration_time` (pkg/metrics/upstream.go): from sending the
        // upstream request to receiving its response; MOSN records it only when a
        // response came (pkg/proxy/upstream.go, endStream from OnReceive).
        histograms: [upstream_request_duration_time],
    }
);

impl ListenerStats {
    /// Counts a response sent downstream by its status class.
    pub fn response(&self, status: u16) {
        match status / 100 {
            1 => self.downstream_response_1xx.inc(),
            2 => self.downstream_response_2xx.inc(),
            3 => self.downstream_response_3xx.inc(),
            4 => self.downstream_response_4xx.inc(),
            _ => self.downstream_response_5xx.inc(),
        }
    }
}

impl ClusterStats {
    /// Counts a response received from upstream by its status class.
    pub fn response(&self, status: u16) {
        match status / 100 {
            1 => self.upstream_response_1xx.inc(),
            2 => self.upstream_response_2xx.inc(),
            3 => self.upstream_response_3xx.inc(),
            4 => self.upstream_response_4xx.inc(),
            _ => self.upstream_response_5xx.inc(),
        }
    }
}

/// All stats groups of the process, by name.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    listeners: Mutex<BTreeMap<String, Arc<ListenerStats>>>,
    clusters: Mutex<BTreeMap<String, Arc<ClusterStats>>>,
}

impl StatsRegistry {
    /// The listener's group, created on first use (build time only, never per request).
    pub fn listener(&self, name: &str) -> Arc<ListenerStats> {
        let mut map = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    pub fn cluster(&self, name: &str) -> Arc<ClusterStats> {
        let mut map = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Every listener's group, by name (the map's lock is held only to copy it).
    pub fn listener_groups(&self) -> Vec<(String, Arc<ListenerStats>)> {
        let map = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn cluster_groups(&self) -> Vec<(String, Arc<ClusterStats>)> {
        let map = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// `{"listener": {name: {...}}, "cluster": {name: {...}}}`
    pub fn to_json(&self) -> Value {
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "listener": listeners.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>(),
            "cluster": clusters.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_shared_by_name_and_render() {
        let reg = StatsRegistry::default();
        reg.listener("a").downstream_request_total.inc();
        reg.listener("a").response(404);
        reg.cluster("c").upstream_request_total.add(2);
        reg.listener("a")
            .downstream_request_time
            .record(std::time::Duration::from_micros(40));
        let v = reg.to_json();
        assert_eq!(v["listener"]["a"]["downstream_request_total"], 1);
        assert_eq!(v["listener"]["a"]["downstream_response_4xx"], 1);
        assert_eq!(v["cluster"]["c"]["upstream_request_total"], 2);
        let t = &v["listener"]["a"]["downstream_request_time"];
        assert_eq!((&t["count"], &t["sum_us"]), (&1.into(), &40.into()));
        assert_eq!(
            v["cluster"]["c"]["upstream_request_duration_time"]["count"],
            0
        );
    }
}

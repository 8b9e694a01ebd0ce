//! The control plane's side of the admin API: cluster changes go to the cluster
//! manager, and the stats document joins the counters with per-host state; the
//! Prometheus text and MOSN's Prometheus sink endpoints.

use mosn_admin::{AdminError, ClusterAdmin};
use mosn_config::metrics::PrometheusSinkConfig;
use mosn_config::{ClusterConfig, HostConfig, MosnConfig};
use mosn_observe::prometheus::{Exposition, Kind};
use mosn_observe::StatsRegistry;
use mosn_upstream::{ClusterError, ClusterManager};
use serde_json::Value;
use std::sync::Arc;

pub struct ClusterControl(pub Arc<ClusterManager>);

fn admin_error(e: ClusterError) -> AdminError {
    match e {
        ClusterError::NotFound(_) => AdminError::NotFound(e.to_string()),
        ClusterError::Invalid(_) => AdminError::BadRequest(e.to_string()),
    }
}

impl ClusterAdmin for ClusterControl {
    fn clusters(&self) -> Value {
        self.0.to_json()
    }

    fn update_cluster(&self, cfg: ClusterConfig) -> Result<Vec<String>, AdminError> {
        let name = cfg.name.clone();
        let warnings = self.0.add_or_update(&cfg).map_err(admin_error)?;
        tracing::info!(cluster = %name, "cluster added or updated through the admin API");
        Ok(warnings.iter().map(ToString::to_string).collect())
    }

    fn delete_cluster(&self, name: &str) -> Result<(), AdminError> {
        self.0.remove(name).map_err(admin_error)?;
        tracing::info!(cluster = %name, "cluster removed through the admin API");
        Ok(())
    }

    fn update_hosts(&self, cluster: &str, hosts: Vec<HostConfig>) -> Result<(), AdminError> {
        self.0.set_hosts(cluster, &hosts).map_err(admin_error)?;
        tracing::info!(
            cluster,
            hosts = hosts.len(),
            "hosts replaced through the admin API"
        );
        Ok(())
    }
}

/// What the stats pages read: the stats groups, the clusters and hosts, the tracer.
#[derive(Clone)]
pub struct StatSources {
    pub stats: Arc<StatsRegistry>,
    pub clusters: Arc<ClusterManager>,
    pub tracer: Option<Arc<mosn_trace::Tracer>>,
}

impl StatSources {
    /// `{"listener": {...}, "cluster": {name: {counters..., "hosts": [...]}},
    /// "server": {...}, "tracing": {...}}`
    pub fn stats_document(&self) -> Value {
        let mut doc = self.stats.to_json();
        for cluster in self.clusters.all() {
            let entry = &mut doc["cluster"][&*cluster.name];
            if entry.is_null() {
                *entry = Value::Object(Default::default());
            }
            entry["hosts"] = Value::Array(cluster.hosts().iter().map(|h| h.to_json()).collect());
            entry["circuit_breakers"] = cluster.breakers.to_json();
        }
        doc["server"] = serde_json::json!({
            "access_log_dropped_lines": mosn_proxy::access_log::dropped_total(),
        });
        if let Some(t) = &self.tracer {
            let t = t.stats();
            doc["tracing"] = serde_json::json!({
                "spans_started": t.started,
                "not_sampled": t.not_sampled,
                "spans_exported": t.exported,
                "spans_dropped": t.dropped,
                "export_failures": t.export_failures,
                "spans_failed": t.failed_spans,
            });
        }
        doc
    }

    /// Every stat in Prometheus's text format: listeners and clusters (crates/observe),
    /// hosts and breakers (crates/upstream), the access logs' and the tracer's, and,
    /// when `process`, the `process_*` metrics.
    pub fn prometheus_text(&self, process: bool) -> String {
        let mut out = Exposition::new();
        self.stats.write_prometheus(&mut out);
        mosn_upstream::prometheus::write_prometheus(&self.clusters, &mut out);
        let mut counter = |name: &str, help: &str, value: u64| {
            out.sample(name, Kind::Counter, help, &[], value);
        };
        counter(
            "access_log_dropped_lines_total",
            "Access log lines dropped because their writer fell behind.",
            mosn_proxy::access_log::dropped_total(),
        );
        if let Some(t) = &self.tracer {
            let t = t.stats();
            counter(
                "tracing_spans_started_total",
                "Requests traced (sampled).",
                t.started,
            );
            counter(
                "tracing_spans_exported_total",
                "Spans the collector accepted.",
                t.exported,
            );
            counter(
                "tracing_spans_dropped_total",
                "Spans dropped because the export queue was full.",
                t.dropped,
            );
            counter(
                "tracing_spans_failed_total",
                "Spans lost to failed or rejected exports.",
                t.failed_spans,
            );
        }
        if process {
            mosn_observe::prometheus::write_process(&mut out);
        }
        out.render()
    }
}

/// A bound Prometheus endpoint of MOSN's `metrics.sinks`.
pub struct MetricsListener {
    listener: std::net::TcpListener,
    sink: PrometheusSinkConfig,
}

/// Binds every Prometheus sink's port now, so a taken port fails the start.
pub fn bind_metrics(config: &MosnConfig) -> Result<Vec<MetricsListener>, String> {
    let Some(metrics) = &config.metrics else {
        return Ok(Vec::new());
    };
    metrics
        .prometheus_sinks()
        .map(|sink| {
            let addr = sink.bind_address();
            let listener = std::net::TcpListener::bind(&addr)
                .map_err(|e| format!("metrics (prometheus sink) {addr}: {e}"))?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            tracing::info!(address = %addr, path = sink.endpoint(), "prometheus metrics listening");
            Ok(MetricsListener {
                listener,
                sink: sink.clone(),
            })
        })
        .collect()
}

/// Serves each bound Prometheus endpoint (on the control runtime).
pub fn serve_metrics(listeners: Vec<MetricsListener>, sources: &StatSources) {
    for m in listeners {
        let sources = sources.clone();
        let process = !m.sink.disable_collect_process;
        let render: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || sources.prometheus_text(process));
        match tokio::net::TcpListener::from_std(m.listener) {
            Ok(l) => {
                tokio::spawn(mosn_admin::serve_metrics(
                    l,
                    m.sink.endpoint().to_string(),
                    render,
                ));
            }
            Err(e) => tracing::error!(error = %e, "metrics listener"),
        }
    }
}

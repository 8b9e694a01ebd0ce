//! MOSN's top-level `metrics` object (`v2.MetricsConfig`): its `sinks`, of which MOSN
//! registers one type, `prometheus` (`pkg/metrics/sink/prometheus`): a pull endpoint on
//! its own port. The other keys of the object (`stats_matcher`, `shm_zone`, ...) are
//! parsed past with a warning (keys.rs).

use crate::error::Problems;
use crate::load::typed_from_value;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// MOSN's default path of the Prometheus endpoint.
pub const DEFAULT_PROMETHEUS_ENDPOINT: &str = "/metrics";
/// Where the Prometheus endpoint binds unless `address` says otherwise (MOSN binds
/// every interface; mosn-rs keeps it on this host unless told).
pub const DEFAULT_PROMETHEUS_ADDRESS: &str = "127.0.0.1";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricsConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<MetricsSinkConfig>,
}

/// A sink as MOSN writes it: a type and a free-form config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricsSinkConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// The typed `config` of a `prometheus` sink, filled by validation.
    #[serde(skip)]
    pub prometheus: Option<PrometheusSinkConfig>,
}

/// MOSN's `promConfig`, plus `address` (a mosn-rs extension).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PrometheusSinkConfig {
    pub port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// mosn-rs: the IP to bind (default 127.0.0.1; MOSN binds 0.0.0.0).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Pushgateway mode; MOSN refuses it, and so does mosn-rs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub export_url: String,
    /// Leaves out the `process_*` metrics.
    pub disable_collect_process: bool,
    /// MOSN leaves out the Go runtime's metrics; mosn-rs has none to leave out.
    pub disable_collect_go: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percentiles: Vec<u32>,
}

impl PrometheusSinkConfig {
    /// The path served: `endpoint`, else `/metrics`.
    pub fn endpoint(&self) -> &str {
        if self.endpoint.is_empty() {
            DEFAULT_PROMETHEUS_ENDPOINT
        } else {
            &self.endpoint
        }
    }

    /// The address to bind: `address:port`.
    pub fn bind_address(&self) -> String {
        let ip: IpAddr = self
            .address
            .parse()
            .unwrap_or_else(|_| DEFAULT_PROMETHEUS_ADDRESS.parse().unwrap());
        std::net::SocketAddr::new(ip, self.port).to_string()
    }
}

impl MetricsConfig {
    /// The Prometheus sinks (after validation).
    pub fn prometheus_sinks(&self) -> impl Iterator<Item = &PrometheusSinkConfig> {
        self.sinks.iter().filter_map(|s| s.prometheus.as_ref())
    }
}

/// Checks `metrics` and fills each Prometheus sink's typed config.
pub fn check(metrics: &mut MetricsConfig, problems: &mut Problems) {
    for (i, sink) in metrics.sinks.iter_mut().enumerate() {
        let path = format!("metrics.sinks[{i}]");
        if !sink.kind.eq_ignore_ascii_case("prometheus") {
            problems.warn(
                format!("{path}.type"),
                format!(
                    "metrics sink type {:?} is not supported (only \"prometheus\"): ignored",
                    sink.kind
                ),
            );
            continue;
        }
        let base = format!("{path}.config");
        let Some(cfg) = typed_from_value::<PrometheusSinkConfig>(&sink.config, &base, problems)
        else {
            continue;
        };
        let mut ok = true;
        if cfg.port == 0 {
            problems.error(format!("{base}.port"), "the prometheus sink needs a port");
            ok = false;
        }
        if !cfg.endpoint.is_empty() && !cfg.endpoint.starts_with('/') {
            problems.error(
                format!("{base}.endpoint"),
                format!("must start with \"/\": {:?}", cfg.endpoint),
            );
            ok = false;
        }
        if !cfg.address.is_empty() && cfg.address.parse::<IpAddr>().is_err() {
            problems.error(
                format!("{base}.address"),
                format!("not an IP address: {:?}", cfg.address),
            );
            ok = false;
        }
        if !cfg.export_url.is_empty() {
            problems.error(
                format!("{base}.export_url"),
                "Pushgateway mode is not supported (MOSN refuses it too); scrape the port instead",
            );
            ok = false;
        }
        if let Some(p) = cfg.percentiles.iter().find(|&&p| p > 100) {
            problems.error(
                format!("{base}.percentiles"),
                format!("percentile {p} is over 100"),
            );
            ok = false;
        } else if !cfg.percentiles.is_empty() {
            problems.warn(
                format!("{base}.percentiles"),
                "latency histograms are not recorded yet: ignored",
            );
        }
        if ok {
            sink.prometheus = Some(cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn with_metrics(metrics: &str) -> String {
        format!(r#"{{"servers": [{{"listeners": []}}], "metrics": {metrics}}}"#)
    }

    #[test]
    fn prometheus_sink_is_parsed_with_defaults() {
        let loaded = load_str(&with_metrics(
            r#"{"sinks": [{"type": "prometheus", "config": {"port": 34903}}], "shm_zone": "x"}"#,
        ))
        .unwrap();
        let m = loaded.config.metrics.as_ref().unwrap();
        let sinks: Vec<_> = m.prometheus_sinks().collect();
        assert_eq!(sinks.len(), 1);
        assert_eq!(sinks[0].endpoint(), "/metrics");
        assert_eq!(sinks[0].bind_address(), "127.0.0.1:34903");
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.path == "metrics.shm_zone" && w.message.contains("MOSN")),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn bad_prometheus_sinks_are_refused_with_their_path() {
        let err = load_str(&with_metrics(
            r#"{"sinks": [{"type": "prometheus", "config": {"endpoint": "metrics"}}]}"#,
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("metrics.sinks[0].config.port"), "{text}");
        assert!(text.contains("metrics.sinks[0].config.endpoint"), "{text}");
        let err = load_str(&with_metrics(
            r#"{"sinks": [{"type": "prometheus", "config": {"port": 1, "export_url": "http://x"}}]}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("export_url"), "{err}");
        let loaded = load_str(&with_metrics(
            r#"{"sinks": [{"type": "console", "config": {}}]}"#,
        ))
        .unwrap();
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.path == "metrics.sinks[0].type"));
    }
}

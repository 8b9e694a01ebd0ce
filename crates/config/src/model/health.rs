//! A cluster's `health_check` (MOSN's active health checks) and `outlier_detection`
//! (Envoy's passive health checking, with Envoy's field names in snake_case).
//! docs/health-and-outlier.md describes every key; the defaults live here.

use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn is_false(b: &bool) -> bool {
    !*b
}

/// MOSN's `health_check`. As in MOSN, checks run only when `service_name` is set (MOSN's
/// cluster creates its checker only then); zero values take MOSN's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HealthCheckConfig {
    /// `tcp` (also empty), `http` / `Http1`, or `grpc`; other names check by TCP connect,
    /// as MOSN does for protocols without a checker.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<GoDuration>,
    /// A duration despite its name (MOSN parses it as one): "30s".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_config: Option<HealthCheckSessionConfig>,
    /// MOSN writes one line per check there; not implemented yet (validation warns).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_log_path: String,
    /// MOSN's callbacks registered by name in Go code; nothing to register here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub common_callbacks: Vec<String>,
}

/// What kind of check `protocol` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckProtocol {
    Tcp,
    Http,
    Grpc,
}

/// MOSN's protocol names that have no health checker in MOSN (it checks them by TCP).
pub const MOSN_PROTOCOLS_CHECKED_BY_TCP: &[&str] = &[
    "auto",
    "http2",
    "bolt",
    "boltv2",
    "dubbo",
    "dubbothrift",
    "tars",
    "x",
];

/// MOSN's defaults (pkg/upstream/healthcheck).
pub const DEFAULT_HC_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_HC_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_HC_INTERVAL_JITTER: Duration = Duration::from_millis(5);
pub const DEFAULT_HC_INITIAL_DELAY: Duration = Duration::from_secs(1);
pub const DEFAULT_HC_HEALTHY_THRESHOLD: u32 = 1;
pub const DEFAULT_HC_UNHEALTHY_THRESHOLD: u32 = 1;

fn or_default(d: Option<GoDuration>, default: Duration) -> Duration {
    d.map(|d| d.0).filter(|d| !d.is_zero()).unwrap_or(default)
}

impl HealthCheckConfig {
    /// MOSN creates a checker only for a health check with a service name.
    pub fn enabled(&self) -> bool {
        !self.service_name.is_empty()
    }

    /// The check `protocol` selects (case-insensitive), and whether the name is known:
    /// other names are checked by TCP connect, as MOSN does.
    pub fn kind(&self) -> (HealthCheckProtocol, bool) {
        match self.protocol.to_ascii_lowercase().as_str() {
            "" | "tcp" => (HealthCheckProtocol::Tcp, true),
            "http" | "http1" => (HealthCheckProtocol::Http, true),
            "grpc" => (HealthCheckProtocol::Grpc, true),
            _ => (HealthCheckProtocol::Tcp, false),
        }
    }

    pub fn timeout(&self) -> Duration {
        or_default(self.timeout, DEFAULT_HC_TIMEOUT)
    }

    pub fn interval(&self) -> Duration {
        or_default(self.interval, DEFAULT_HC_INTERVAL)
    }

    pub fn interval_jitter(&self) -> Duration {
        or_default(self.interval_jitter, DEFAULT_HC_INTERVAL_JITTER)
    }

    pub fn initial_delay(&self) -> Duration {
        or_default(self.initial_delay_seconds, DEFAULT_HC_INITIAL_DELAY)
    }

    pub fn healthy_threshold(&self) -> u32 {
        self.healthy_threshold
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_HC_HEALTHY_THRESHOLD)
    }

    pub fn unhealthy_threshold(&self) -> u32 {
        self.unhealthy_threshold
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_HC_UNHEALTHY_THRESHOLD)
    }

    /// True for the all-zero object Go's encoder writes for a cluster without checks.
    pub fn is_zero(&self) -> bool {
        let zero = |d: Option<GoDuration>| d.is_none_or(|d| d.0.is_zero());
        self.protocol.is_empty()
            && zero(self.timeout)
            && zero(self.interval)
            && zero(self.interval_jitter)
            && zero(self.initial_delay_seconds)
            && self.healthy_threshold.unwrap_or(0) == 0
            && self.unhealthy_threshold.unwrap_or(0) == 0
            && self.service_name.is_empty()
            && self.check_config.is_none()
            && self.event_log_path.is_empty()
            && self.common_callbacks.is_empty()
    }
}

/// `check_config`: MOSN's `http_check_config`, or the same settings flat (with Envoy's
/// `host` and `expected_statuses`), and the gRPC check's `service_name` and `authority`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HealthCheckSessionConfig {
    /// MOSN's HTTP check settings; where set they win over the flat keys below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_check_config: Option<HttpCheckConfig>,
    /// HTTP: request path (and query); default "/".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// HTTP: request method; default GET.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// HTTP: Host header; default the checked address (ip:port).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// HTTP: check this port of the host's IP instead of the host's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// HTTP, Envoy's form: `[{"start": 200, "end": 300}]`, `end` exclusive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<StatusRange>,
    /// gRPC: the `service` of grpc.health.v1.HealthCheckRequest; default "" (the server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// gRPC: the `:authority`; default the checked address (ip:port).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority: String,
}

/// MOSN's `http_check_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpCheckConfig {
    /// Check this port of the host's IP; absent, 0 or out of range: the host's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// MOSN's HTTP client timeout (default 30s); the check's `timeout` bounds it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// `http` (default); `https` is not supported yet.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// The Host header.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Healthy statuses, `end` inclusive (MOSN); default 200 only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<StatusRange>,
}

/// A status range: `end` is inclusive in MOSN's `codes`, exclusive in Envoy's
/// `expected_statuses`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct StatusRange {
    pub start: i64,
    pub end: i64,
}

/// Envoy's `outlier_detection` in a MOSN cluster. Absent: no outlier detection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OutlierDetectionConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_time_jitter: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Eject one host even when that passes `max_ejection_percent` (Envoy, default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_eject_one_host: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_5xx: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_gateway_failure: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_minimum_hosts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_request_volume: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_stdev_factor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcing_success_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_minimum_hosts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_request_volume: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcing_failure_percentage: Option<u32>,
    /// A successful active health check returns an ejected host (Envoy, default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful_active_health_check_uneject_host: Option<bool>,
    /// Envoy's separate accounting of local-origin errors: not implemented (validation
    /// warns when true); local-origin failures count as 503s, Envoy's default.
    #[serde(skip_serializing_if = "is_false")]
    pub split_external_local_origin_errors: bool,
}

/// Envoy's outlier detection defaults.
pub mod outlier_defaults {
    use std::time::Duration;
    pub const CONSECUTIVE_5XX: u32 = 5;
    pub const CONSECUTIVE_GATEWAY_FAILURE: u32 = 5;
    pub const INTERVAL: Duration = Duration::from_secs(10);
    pub const BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
    pub const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
    pub const MAX_EJECTION_PERCENT: u32 = 10;
    pub const ENFORCING_CONSECUTIVE_5XX: u32 = 100;
    pub const ENFORCING_CONSECUTIVE_GATEWAY_FAILURE: u32 = 0;
    pub const SUCCESS_RATE_MINIMUM_HOSTS: u32 = 5;
    pub const SUCCESS_RATE_REQUEST_VOLUME: u32 = 100;
    pub const SUCCESS_RATE_STDEV_FACTOR: u32 = 1900;
    pub const ENFORCING_SUCCESS_RATE: u32 = 100;
    pub const FAILURE_PERCENTAGE_THRESHOLD: u32 = 85;
    pub const FAILURE_PERCENTAGE_MINIMUM_HOSTS: u32 = 5;
    pub const FAILURE_PERCENTAGE_REQUEST_VOLUME: u32 = 50;
    pub const ENFORCING_FAILURE_PERCENTAGE: u32 = 0;
}

/// `outlier_detection` with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierSettings {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_time_jitter: Duration,
    pub max_ejection_percent: u32,
    pub always_eject_one_host: bool,
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    pub enforcing_success_rate: u32,
    pub failure_percentage_threshold: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
    pub enforcing_failure_percentage: u32,
    pub successful_active_health_check_uneject_host: bool,
}

impl OutlierDetectionConfig {
    /// The settings with Envoy's defaults for absent keys. Envoy's default
    /// `max_ejection_time` is 300s or `base_ejection_time`, whichever is larger.
    pub fn settings(&self) -> OutlierSettings {
        use outlier_defaults as d;
        let dur = |v: Option<GoDuration>, default: Duration| v.map(|v| v.0).unwrap_or(default);
        let base = dur(self.base_ejection_time, d::BASE_EJECTION_TIME);
        OutlierSettings {
            consecutive_5xx: self.consecutive_5xx.unwrap_or(d::CONSECUTIVE_5XX),
            consecutive_gateway_failure: self
                .consecutive_gateway_failure
                .unwrap_or(d::CONSECUTIVE_GATEWAY_FAILURE),
            interval: dur(self.interval, d::INTERVAL),
            base_ejection_time: base,
            max_ejection_time: dur(self.max_ejection_time, d::MAX_EJECTION_TIME.max(base)),
            max_ejection_time_jitter: dur(self.max_ejection_time_jitter, Duration::ZERO),
            max_ejection_percent: self
                .max_ejection_percent
                .unwrap_or(d::MAX_EJECTION_PERCENT)
                .min(100),
            always_eject_one_host: self.always_eject_one_host.unwrap_or(false),
            enforcing_consecutive_5xx: self
                .enforcing_consecutive_5xx
                .unwrap_or(d::ENFORCING_CONSECUTIVE_5XX),
            enforcing_consecutive_gateway_failure: self
                .enforcing_consecutive_gateway_failure
                .unwrap_or(d::ENFORCING_CONSECUTIVE_GATEWAY_FAILURE),
            success_rate_minimum_hosts: self
                .success_rate_minimum_hosts
                .unwrap_or(d::SUCCESS_RATE_MINIMUM_HOSTS),
            success_rate_request_volume: self
                .success_rate_request_volume
                .unwrap_or(d::SUCCESS_RATE_REQUEST_VOLUME),
            success_rate_stdev_factor: self
                .success_rate_stdev_factor
                .unwrap_or(d::SUCCESS_RATE_STDEV_FACTOR),
            enforcing_success_rate: self
                .enforcing_success_rate
                .unwrap_or(d::ENFORCING_SUCCESS_RATE),
            failure_percentage_threshold: self
                .failure_percentage_threshold
                .unwrap_or(d::FAILURE_PERCENTAGE_THRESHOLD),
            failure_percentage_minimum_hosts: self
                .failure_percentage_minimum_hosts
                .unwrap_or(d::FAILURE_PERCENTAGE_MINIMUM_HOSTS),
            failure_percentage_request_volume: self
                .failure_percentage_request_volume
                .unwrap_or(d::FAILURE_PERCENTAGE_REQUEST_VOLUME),
            enforcing_failure_percentage: self
                .enforcing_failure_percentage
                .unwrap_or(d::ENFORCING_FAILURE_PERCENTAGE),
            successful_active_health_check_uneject_host: self
                .successful_active_health_check_uneject_host
                .unwrap_or(true),
        }
    }
}

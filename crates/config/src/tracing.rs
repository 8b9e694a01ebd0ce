//! MOSN's top-level `tracing` object (`v2.TracingConfig`: `enable`, `driver`, `config`)
//! and the typed settings mosn-rs derives from it.
//!
//! Drivers run by mosn-rs: `SkyWalking` (MOSN's `v2.SkyWalkingTraceConfig` keys:
//! `reporter`, `backend_service`, `service_name`, `max_send_queue_size`,
//! `authentication`, `tls.cert_file`, `tls.server_name_override`) and OpenTelemetry
//! (`OpenTelemetry`, or MOSN's name `otel`, with MOSN's keys `service_name`,
//! `report_method`, `endpoint`, `config_map`, plus `headers`). Driver names match
//! case-insensitively.
//!
//! mosn-rs extensions common to both drivers, all optional:
//! - `sample_rate` (0.0..=1.0, default 1.0): the share of new traces recorded. An
//!   incoming context's own decision (sw8's sample flag, traceparent's sampled flag)
//!   is always honoured, as parent-based samplers do.
//! - `max_queue_spans` (default 4096): spans waiting for export; past it new spans are
//!   dropped and counted. SkyWalking's `max_send_queue_size` sets it when this is absent.
//! - `batch_size` (default 512): spans per export call.
//! - `flush_interval` (Go duration, default "1s"): longest wait before a partial batch
//!   is sent.
//! - `service_instance` (SkyWalking): the instance name, else `<random hex>@<hostname>`.
//!
//! Drivers MOSN has that mosn-rs does not run (SOFATracer, Zipkin, jaeger,
//! PluginDriver) load with a warning and tracing off, so MOSN's samples still start.
//! An unknown driver name or a bad value is an error naming its JSON path.

use crate::duration::GoDuration;
use crate::error::{ConfigIssue, Problems};
use crate::load::typed_from_value;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Duration;

/// MOSN's default SkyWalking service name (`v2.DefaultServiceName`).
pub const DEFAULT_SKYWALKING_SERVICE_NAME: &str = "mosn";
pub const DEFAULT_SAMPLE_RATE: f64 = 1.0;
pub const DEFAULT_MAX_QUEUE_SPANS: usize = 4096;
pub const DEFAULT_BATCH_SIZE: usize = 512;
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A cap on `max_queue_spans`: each queued span holds a few hundred bytes, and a
/// queue past this size only hides a collector that cannot keep up.
pub const MAX_QUEUE_SPANS_LIMIT: usize = 1 << 20;

/// Drivers MOSN registers that mosn-rs does not run (lower-cased).
const MOSN_DRIVERS_NOT_RUN: &[&str] = &["sofatracer", "zipkin", "jaeger", "plugindriver"];

/// The `tracing` object as MOSN writes it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TracingConfig {
    pub enable: bool,
    /// Deprecated in MOSN and not read by it; kept so configs that carry it load.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tracer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub config: Value,
}

/// What tracing runs with, after the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub driver: DriverSettings,
    pub sample_rate: f64,
    pub max_queue_spans: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DriverSettings {
    SkyWalking(SkyWalkingSettings),
    OpenTelemetry(OtelSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkyWalkingSettings {
    pub reporter: Reporter,
    pub service_name: String,
    /// Configured instance name; None: the tracer makes one.
    pub service_instance: Option<String>,
    /// Sent as gRPC metadata `authentication` (the OAP's token check).
    pub authentication: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    pub reporter: Reporter,
    /// Configured service name; None: the tracer applies MOSN's default
    /// (`$COMP_NAME_sidecar`, else `default_sidecar`).
    pub service_name: Option<String>,
    /// gRPC metadata sent with every export (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Extra resource attributes (MOSN's `config_map`).
    pub resource: Vec<(String, String)>,
}

/// Where finished spans go.
#[derive(Debug, Clone, PartialEq)]
pub enum Reporter {
    /// A gRPC collector (SkyWalking OAP, OTLP collector).
    Grpc(Collector),
    /// The process log (SkyWalking's `log` reporter, OpenTelemetry's `console`).
    Log,
}

/// A collector's address and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub tls: Option<CollectorTls>,
}

impl Collector {
    /// `http[s]://host:port`, the form a gRPC client takes.
    pub fn uri(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectorTls {
    /// PEM file of the CA that signs the collector's certificate; None: the system's
    /// roots.
    pub ca_file: Option<String>,
    /// The name checked against the certificate; None: the host.
    pub server_name: Option<String>,
}

/// The keys common to both drivers (mosn-rs extensions).
struct CommonRaw {
    sample_rate: Option<f64>,
    max_queue_spans: Option<i64>,
    batch_size: Option<i64>,
    flush_interval: Option<GoDuration>,
}

/// MOSN's `v2.SkyWalkingTraceConfig`, plus mosn-rs keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct SkyWalkingRaw {
    reporter: Option<String>,
    backend_service: String,
    service_name: Option<String>,
    max_send_queue_size: i64,
    authentication: String,
    tls: SkyWalkingTlsRaw,
    service_instance: Option<String>,
    // Repeated from CommonRaw: serde's flatten would hide unknown keys from the
    // ignored-key warnings.
    sample_rate: Option<f64>,
    max_queue_spans: Option<i64>,
    batch_size: Option<i64>,
    flush_interval: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct SkyWalkingTlsRaw {
    cert_file: String,
    server_name_override: String,
}

/// MOSN's otel `TracerConfig`, plus `headers` and the common keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct OtelRaw {
    service_name: Option<String>,
    report_method: Option<String>,
    endpoint: String,
    config_map: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    sample_rate: Option<f64>,
    max_queue_spans: Option<i64>,
    batch_size: Option<i64>,
    flush_interval: Option<GoDuration>,
}

impl TracingConfig {
    /// The checked settings: None when tracing is off (disabled, no driver, or a
    /// driver mosn-rs does not run); the errors when the config is bad.
    pub fn settings(&self) -> Result<Option<TracingSettings>, Vec<ConfigIssue>> {
        let mut problems = Problems::default();
        let settings = resolve(self, &mut problems);
        if problems.errors.is_empty() {
            Ok(settings)
        } else {
            Err(problems.errors)
        }
    }
}

/// Checks `tracing` (called by validation).
pub fn check(cfg: &TracingConfig, problems: &mut Problems) {
    resolve(cfg, problems);
}

enum Driver {
    SkyWalking,
    OpenTelemetry,
}

fn resolve(cfg: &TracingConfig, problems: &mut Problems) -> Option<TracingSettings> {
    if !cfg.tracer.is_empty() {
        problems.warn(
            "tracing.tracer",
            "deprecated MOSN key, not read by MOSN either: use \"driver\"",
        );
    }
    if !cfg.enable {
        return None;
    }
    let driver = match cfg.driver.to_ascii_lowercase().as_str() {
        "" => {
            // MOSN turns tracing off when the driver is empty.
            problems.warn("tracing.driver", "no driver given: tracing is off");
            return None;
        }
        "skywalking" => Driver::SkyWalking,
        "opentelemetry" | "otel" => Driver::OpenTelemetry,
        name if MOSN_DRIVERS_NOT_RUN.contains(&name) => {
            problems.warn(
                "tracing.driver",
                format!(
                    "MOSN's {:?} driver is not implemented by mosn-rs: tracing is off \
                     (supported: \"SkyWalking\", \"OpenTelemetry\")",
                    cfg.driver
                ),
            );
            return None;
        }
        _ => {
            problems.error(
                "tracing.driver",
                format!(
                    "unknown tracing driver {:?} (supported: \"SkyWalking\", \"OpenTelemetry\")",
                    cfg.driver
                ),
            );
            return None;
        }
    };
    let errors_before = problems.errors.len();
    let settings = match driver {
        Driver::SkyWalking => skywalking(&cfg.config, problems),
        Driver::OpenTelemetry => otel(&cfg.config, problems),
    };
    if problems.errors.len() > errors_before {
        return None;
    }
    settings
}

const BASE: &str = "tracing.config";

fn skywalking(config: &Value, problems: &mut Problems) -> Option<TracingSettings> {
    let raw = typed_from_value::<SkyWalkingRaw>(config, BASE, problems)?;
    let mut common = CommonRaw {
        sample_rate: raw.sample_rate,
        max_queue_spans: raw.max_queue_spans,
        batch_size: raw.batch_size,
        flush_interval: raw.flush_interval,
    };
    if raw.max_send_queue_size > 0 {
        if common.max_queue_spans.is_some() {
            problems.warn(
                format!("{BASE}.max_send_queue_size"),
                "max_queue_spans is also given and wins",
            );
        } else {
            common.max_queue_spans = Some(raw.max_send_queue_size);
        }
    }
    let common = check_common(&common, problems);
    // MOSN's default reporter is "log"; it accepts exactly "log" and "gRPC".
    let reporter_name = raw.reporter.as_deref().unwrap_or("log");
    let reporter = if reporter_name.eq_ignore_ascii_case("grpc") {
        if raw.backend_service.is_empty() {
            problems.error(
                format!("{BASE}.backend_service"),
                "the gRPC reporter needs backend_service (host:port of the OAP)",
            );
            None
        } else {
            let tls = if raw.tls.cert_file.is_empty() {
                if !raw.tls.server_name_override.is_empty() {
                    problems.warn(
                        format!("{BASE}.tls.server_name_override"),
                        "ignored without tls.cert_file (MOSN reads it only with one)",
                    );
                }
                None
            } else {
                check_ca_file(
                    &raw.tls.cert_file,
                    &format!("{BASE}.tls.cert_file"),
                    problems,
                );
                Some(CollectorTls {
                    ca_file: Some(raw.tls.cert_file.clone()),
                    server_name: non_empty(&raw.tls.server_name_override),
                })
            };
            collector(
                &raw.backend_service,
                tls,
                &format!("{BASE}.backend_service"),
                problems,
            )
            .map(Reporter::Grpc)
        }
    } else if reporter_name == "log" {
        Some(Reporter::Log)
    } else {
        problems.error(
            format!("{BASE}.reporter"),
            format!("unknown reporter {reporter_name:?} (MOSN's are \"gRPC\" and \"log\")"),
        );
        None
    };
    let service_name = raw
        .service_name
        .unwrap_or_else(|| DEFAULT_SKYWALKING_SERVICE_NAME.to_string());
    if service_name.is_empty() {
        problems.error(format!("{BASE}.service_name"), "must not be empty");
    }
    if let Some(instance) = &raw.service_instance {
        if instance.is_empty() {
            problems.error(format!("{BASE}.service_instance"), "must not be empty");
        }
    }
    if !raw.authentication.is_empty() {
        check_metadata_value(
            &raw.authentication,
            &format!("{BASE}.authentication"),
            problems,
        );
    }
    let (reporter, common) = (reporter?, common?);
    Some(TracingSettings {
        driver: DriverSettings::SkyWalking(SkyWalkingSettings {
            reporter,
            service_name,
            service_instance: raw.service_instance,
            authentication: non_empty(&raw.authentication),
        }),
        sample_rate: common.sample_rate,
        max_queue_spans: common.max_queue_spans,
        batch_size: common.batch_size,
        flush_interval: common.flush_interval,
    })
}

fn otel(config: &Value, problems: &mut Problems) -> Option<TracingSettings> {
    let raw = typed_from_value::<OtelRaw>(config, BASE, problems)?;
    let common = check_common(
        &CommonRaw {
            sample_rate: raw.sample_rate,
            max_queue_spans: raw.max_queue_spans,
            batch_size: raw.batch_size,
            flush_interval: raw.flush_interval,
        },
        problems,
    );
    // MOSN: "console" unless a method and an endpoint are both given. mosn-rs also
    // takes an endpoint alone as OTLP/gRPC, the one protocol it exports.
    let method = raw.report_method.as_deref().map(str::to_ascii_lowercase);
    let reporter = match method.as_deref() {
        Some("console") => Some(Reporter::Log),
        None | Some("grpc") if raw.endpoint.is_empty() => {
            if method.is_some() {
                problems.warn(
                    format!("{BASE}.endpoint"),
                    "no endpoint: spans go to the log (as MOSN's console exporter)",
                );
            }
            Some(Reporter::Log)
        }
        None | Some("grpc") => {
            collector(&raw.endpoint, None, &format!("{BASE}.endpoint"), problems)
                .map(Reporter::Grpc)
        }
        Some("http") => {
            problems.error(
                format!("{BASE}.report_method"),
                "OTLP/HTTP is not supported by mosn-rs: use \"grpc\" (OTLP/gRPC, port 4317)",
            );
            None
        }
        Some(other) => {
            problems.error(
                format!("{BASE}.report_method"),
                format!("unknown report_method {other:?} (\"grpc\", \"http\" or \"console\")"),
            );
            None
        }
    };
    for (name, value) in &raw.headers {
        let path = format!("{BASE}.headers.{name}");
        check_metadata_name(name, &path, problems);
        check_metadata_value(value, &path, problems);
    }
    if raw.service_name.as_deref() == Some("") {
        problems.error(format!("{BASE}.service_name"), "must not be empty");
    }
    let (reporter, common) = (reporter?, common?);
    Some(TracingSettings {
        driver: DriverSettings::OpenTelemetry(OtelSettings {
            reporter,
            service_name: raw.service_name,
            headers: raw.headers.into_iter().collect(),
            resource: raw.config_map.into_iter().collect(),
        }),
        sample_rate: common.sample_rate,
        max_queue_spans: common.max_queue_spans,
        batch_size: common.batch_size,
        flush_interval: common.flush_interval,
    })
}

struct Common {
    sample_rate: f64,
    max_queue_spans: usize,
    batch_size: usize,
    flush_interval: Duration,
}

fn check_common(raw: &CommonRaw, problems: &mut Problems) -> Option<Common> {
    let mut ok = true;
    let sample_rate = raw.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE);
    if !(0.0..=1.0).contains(&sample_rate) {
        problems.error(
            format!("{BASE}.sample_rate"),
            format!("must be between 0.0 and 1.0, got {sample_rate}"),
        );
        ok = false;
    }
    let max_queue_spans = match raw.max_queue_spans {
        None => DEFAULT_MAX_QUEUE_SPANS,
        Some(n) if (1..=MAX_QUEUE_SPANS_LIMIT as i64).contains(&n) => n as usize,
        Some(n) => {
            problems.error(
                format!("{BASE}.max_queue_spans"),
                format!("must be between 1 and {MAX_QUEUE_SPANS_LIMIT}, got {n}"),
            );
            ok = false;
            DEFAULT_MAX_QUEUE_SPANS
        }
    };
    let batch_size = match raw.batch_size {
        // A batch bigger than the queue could never fill.
        None => DEFAULT_BATCH_SIZE.min(max_queue_spans),
        Some(n) if n >= 1 && n <= max_queue_spans as i64 => n as usize,
        Some(n) => {
            problems.error(
                format!("{BASE}.batch_size"),
                format!("must be between 1 and max_queue_spans ({max_queue_spans}), got {n}"),
            );
            ok = false;
            DEFAULT_BATCH_SIZE
        }
    };
    let flush_interval = raw.flush_interval.map_or(DEFAULT_FLUSH_INTERVAL, |d| d.0);
    if flush_interval < Duration::from_millis(1) || flush_interval > Duration::from_secs(3600) {
        problems.error(
            format!("{BASE}.flush_interval"),
            "must be between 1ms and 1h",
        );
        ok = false;
    }
    ok.then_some(Common {
        sample_rate,
        max_queue_spans,
        batch_size,
        flush_interval,
    })
}

/// Parses a collector address: `host:port`, optionally after `http://` (plain) or
/// `https://` (TLS with the system's roots unless `tls` says otherwise), with at most a
/// trailing `/`.
fn collector(
    text: &str,
    tls: Option<CollectorTls>,
    path: &str,
    problems: &mut Problems,
) -> Option<Collector> {
    match parse_collector(text, tls) {
        Ok(c) => Some(c),
        Err(why) => {
            problems.error(path, format!("{why}: {text:?}"));
            None
        }
    }
}

fn parse_collector(text: &str, tls: Option<CollectorTls>) -> Result<Collector, &'static str> {
    let (rest, https) = if let Some(rest) = text.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (rest, true)
    } else if text.contains("://") {
        return Err("only http:// and https:// collector addresses are supported");
    } else {
        (text, false)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("a collector address is host:port, without a path");
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or("the collector address needs a port (host:port)")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or("bad port in the collector address")?;
    let host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| "bad IPv6 address in the collector address")?;
        inner
    } else {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return Err("bad host in the collector address");
        }
        host
    };
    let tls = match (tls, https) {
        (Some(tls), _) => Some(tls),
        (None, true) => Some(CollectorTls::default()),
        (None, false) => None,
    };
    Ok(Collector {
        host: host.to_string(),
        port,
        tls,
    })
}

/// The file must be there at start, as MOSN reads it at start (relative to the
/// working directory, as MOSN's Go does), and hold a PEM certificate.
fn check_ca_file(file: &str, path: &str, problems: &mut Problems) {
    match std::fs::read_to_string(file) {
        Err(e) => problems.error(path, format!("cannot read {file:?}: {e}")),
        Ok(pem) if !pem.contains("-----BEGIN CERTIFICATE-----") => {
            problems.error(path, format!("no PEM certificate in {file:?}"))
        }
        Ok(_) => {}
    }
}

/// gRPC metadata names: lower-case letters, digits, `-`, `_`, `.`; binary (`-bin`)
/// and reserved (`grpc-`) names are refused.
fn check_metadata_name(name: &str, path: &str, problems: &mut Problems) {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !name.ends_with("-bin")
        && !name.starts_with("grpc-")
        && !name.starts_with(':');
    if !valid {
        problems.error(path, format!("not a usable gRPC metadata name: {name:?}"));
    }
}

fn check_metadata_value(value: &str, path: &str, problems: &mut Problems) {
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        problems.error(path, "a gRPC metadata value must be printable ASCII");
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    fn with_tracing(tracing: &str) -> String {
        format!(r#"{{"servers": [{{"listeners": []}}], "tracing": {tracing}}}"#)
    }

    fn settings(tracing: &str) -> Option<TracingSettings> {
        let loaded = load_str(&with_tracing(tracing)).unwrap();
        loaded.config.tracing.unwrap().settings().unwrap()
    }

    fn errors(tracing: &str) -> String {
        load_str(&with_tracing(tracing)).unwrap_err().to_string()
    }

    #[test]
    fn mosn_skywalking_sample_config_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/mosn-configs/trace/skywalking/http/config.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            // shared/ is beside the work tree on developer machines and in CI.
            eprintln!("skipped: {path} not found");
            return;
        };
        let loaded = load_str(&text).unwrap();
        assert!(
            !loaded
                .warnings
                .iter()
                .any(|w| w.path.starts_with("tracing")),
            "{:?}",
            loaded.warnings
        );
        let s = loaded.config.tracing.unwrap().settings().unwrap().unwrap();
        let DriverSettings::SkyWalking(sw) = &s.driver else {
            panic!("{s:?}")
        };
        assert_eq!(sw.service_name, "MOSN");
        assert_eq!(
            sw.reporter,
            Reporter::Grpc(Collector {
                host: "127.0.0.1".into(),
                port: 11800,
                tls: None
            })
        );
        assert_eq!(s.sample_rate, 1.0);
        assert_eq!(s.max_queue_spans, DEFAULT_MAX_QUEUE_SPANS);
        assert_eq!(s.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(s.flush_interval, DEFAULT_FLUSH_INTERVAL);
    }

    #[test]
    fn keys_match_case_insensitively_and_defaults_follow_mosn() {
        let s = settings(r#"{"Enable": true, "Driver": "skywalking"}"#).unwrap();
        let DriverSettings::SkyWalking(sw) = s.driver else {
            panic!()
        };
        // MOSN's defaults: the log reporter and service "mosn".
        assert_eq!(sw.reporter, Reporter::Log);
        assert_eq!(sw.service_name, "mosn");
    }

    #[test]
    fn skywalking_extras_map_to_settings() {
        let s = settings(
            r#"{"enable": true, "driver": "SkyWalking", "config": {
                "reporter": "gRPC", "backend_service": "oap.local:11800",
                "max_send_queue_size": 100, "authentication": "token",
                "service_instance": "i1", "sample_rate": 0.25, "batch_size": 10,
                "flush_interval": "200ms"}}"#,
        )
        .unwrap();
        assert_eq!(s.max_queue_spans, 100);
        assert_eq!(s.batch_size, 10);
        assert_eq!(s.sample_rate, 0.25);
        assert_eq!(s.flush_interval, Duration::from_millis(200));
        let DriverSettings::SkyWalking(sw) = s.driver else {
            panic!()
        };
        assert_eq!(sw.authentication.as_deref(), Some("token"));
        assert_eq!(sw.service_instance.as_deref(), Some("i1"));
        let Reporter::Grpc(c) = sw.reporter else {
            panic!()
        };
        assert_eq!(c.uri(), "http://oap.local:11800");
    }

    #[test]
    fn otel_endpoint_headers_and_mosn_name() {
        let s = settings(
            r#"{"enable": true, "driver": "otel", "config": {
                "endpoint": "http://[::1]:4317/", "service_name": "edge",
                "headers": {"x-token": "abc"}, "config_map": {"env": "prod"}}}"#,
        )
        .unwrap();
        let DriverSettings::OpenTelemetry(o) = s.driver else {
            panic!()
        };
        let Reporter::Grpc(c) = &o.reporter else {
            panic!()
        };
        assert_eq!(c.uri(), "http://[::1]:4317");
        assert_eq!(o.service_name.as_deref(), Some("edge"));
        assert_eq!(o.headers, vec![("x-token".into(), "abc".into())]);
        assert_eq!(o.resource, vec![("env".into(), "prod".into())]);
        let s = settings(r#"{"enable": true, "driver": "OpenTelemetry"}"#).unwrap();
        let DriverSettings::OpenTelemetry(o) = s.driver else {
            panic!()
        };
        assert_eq!(o.reporter, Reporter::Log);
        let s = settings(
            r#"{"enable": true, "driver": "OpenTelemetry", "config": {"endpoint": "https://c:443"}}"#,
        )
        .unwrap();
        let DriverSettings::OpenTelemetry(o) = s.driver else {
            panic!()
        };
        assert_eq!(
            o.reporter,
            Reporter::Grpc(Collector {
                host: "c".into(),
                port: 443,
                tls: Some(CollectorTls::default())
            })
        );
    }

    #[test]
    fn off_cases_load() {
        assert!(settings(r#"{"enable": false, "driver": "nonsense"}"#).is_none());
        // MOSN's dubbo and uds samples.
        let loaded =
            load_str(&with_tracing(r#"{"enable": true, "driver": "SOFATracer"}"#)).unwrap();
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.path == "tracing.driver" && w.message.contains("not implemented")));
        assert!(loaded.config.tracing.unwrap().settings().unwrap().is_none());
        assert!(settings(r#"{"enable": true}"#).is_none());
        assert!(settings(
            r#"{"enable": true, "driver": "PluginDriver", "config": {"sopath": "x.so"}}"#
        )
        .is_none());
    }

    #[test]
    fn bad_values_name_their_paths() {
        let cases = [
            (r#"{"enable": true, "driver": "Datadog"}"#, "tracing.driver"),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"sample_rate": 1.5}}"#,
                "tracing.config.sample_rate",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"sample_rate": "x"}}"#,
                "tracing.config.sample_rate",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"reporter": "gRPC"}}"#,
                "tracing.config.backend_service",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"reporter": "gRPC", "backend_service": "oap"}}"#,
                "tracing.config.backend_service",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"reporter": "gRPC", "backend_service": "a b:1"}}"#,
                "tracing.config.backend_service",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"reporter": "kafka"}}"#,
                "tracing.config.reporter",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"reporter": "gRPC", "backend_service": "a:1", "tls": {"cert_file": "/nonexistent/ca.pem"}}}"#,
                "tracing.config.tls.cert_file",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"flush_interval": "soon"}}"#,
                "tracing.config.flush_interval",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"max_queue_spans": 0}}"#,
                "tracing.config.max_queue_spans",
            ),
            (
                r#"{"enable": true, "driver": "SkyWalking", "config": {"max_queue_spans": 8, "batch_size": 9}}"#,
                "tracing.config.batch_size",
            ),
            (
                r#"{"enable": true, "driver": "otel", "config": {"endpoint": "c:4318", "report_method": "http"}}"#,
                "tracing.config.report_method",
            ),
            (
                r#"{"enable": true, "driver": "otel", "config": {"endpoint": "grpc://c:4317"}}"#,
                "tracing.config.endpoint",
            ),
            (
                r#"{"enable": true, "driver": "otel", "config": {"endpoint": "c:4317/v1"}}"#,
                "tracing.config.endpoint",
            ),
            (
                r#"{"enable": true, "driver": "otel", "config": {"endpoint": "c:4317", "headers": {"grpc-timeout": "1"}}}"#,
                "tracing.config.headers.grpc-timeout",
            ),
        ];
        for (config, path) in cases {
            let text = errors(config);
            assert!(text.contains(path), "{config}: {text}");
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let loaded = load_str(&with_tracing(
            r#"{"enable": true, "driver": "SkyWalking", "tracer": "x", "config": {"colour": 1}}"#,
        ))
        .unwrap();
        let paths: Vec<_> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
        assert!(paths.contains(&"tracing.config.colour"), "{paths:?}");
        assert!(paths.contains(&"tracing.tracer"), "{paths:?}");
    }
}

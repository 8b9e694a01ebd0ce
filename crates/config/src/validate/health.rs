//! Checks of a cluster's `health_check` and `outlier_detection`.

use crate::error::Problems;
use crate::model::*;

/// Both blocks of one cluster at `path`.
pub fn check_health(cluster: &ClusterConfig, path: &str, problems: &mut Problems) {
    if let Some(hc) = &cluster.health_check {
        check_health_check(hc, &format!("{path}.health_check"), problems);
    }
    if let Some(od) = &cluster.outlier_detection {
        check_outlier(od, &format!("{path}.outlier_detection"), problems);
    }
}

fn check_health_check(hc: &HealthCheckConfig, p: &str, problems: &mut Problems) {
    if !hc.enabled() {
        if !hc.is_zero() {
            problems.warn(
                format!("{p}.service_name"),
                "MOSN runs health checks only for a health_check with a service_name: \
                 without one this health_check is off",
            );
        }
        return;
    }
    let (kind, known) = hc.kind();
    if !known {
        let lower = hc.protocol.to_ascii_lowercase();
        let msg = if MOSN_PROTOCOLS_CHECKED_BY_TCP.contains(&lower.as_str()) {
            format!(
                "MOSN has no {:?} health checker: hosts are checked by TCP connect, as MOSN does",
                hc.protocol
            )
        } else {
            format!(
                "unknown health check protocol {:?} (tcp, http, grpc): hosts are checked by \
                 TCP connect, as MOSN does",
                hc.protocol
            )
        };
        problems.warn(format!("{p}.protocol"), msg);
    }
    for (key, v) in [
        ("healthy_threshold", hc.healthy_threshold),
        ("unhealthy_threshold", hc.unhealthy_threshold),
    ] {
        if v == Some(0) {
            problems.warn(
                format!("{p}.{key}"),
                format!("{key} 0 means MOSN's default, 1"),
            );
        }
    }
    if hc.timeout() >= hc.interval() {
        problems.warn(
            format!("{p}.timeout"),
            format!(
                "timeout {} is not shorter than interval {}: a host that does not answer is \
                 checked only every timeout + interval",
                crate::duration::format_go_duration(hc.timeout()),
                crate::duration::format_go_duration(hc.interval()),
            ),
        );
    }
    if !hc.event_log_path.is_empty() {
        problems.warn(
            format!("{p}.event_log_path"),
            "the health check event log is not implemented by mosn-rs yet: ignored \
             (transitions are logged at INFO)",
        );
    }
    if !hc.common_callbacks.is_empty() {
        problems.warn(
            format!("{p}.common_callbacks"),
            "common_callbacks name Go callbacks registered in MOSN's code: ignored",
        );
    }
    let Some(cc) = &hc.check_config else {
        return;
    };
    let cp = format!("{p}.check_config");
    let http_keys = cc.http_check_config.is_some()
        || !cc.path.is_empty()
        || !cc.method.is_empty()
        || !cc.host.is_empty()
        || cc.port.is_some()
        || !cc.expected_statuses.is_empty();
    let grpc_keys = !cc.service_name.is_empty() || !cc.authority.is_empty();
    match kind {
        HealthCheckProtocol::Http => check_http(cc, &cp, problems),
        _ if http_keys => problems.warn(
            &cp,
            "HTTP check settings are used only with protocol \"http\": ignored",
        ),
        _ => {}
    }
    match kind {
        HealthCheckProtocol::Grpc => {
            for (key, v) in [
                ("service_name", &cc.service_name),
                ("authority", &cc.authority),
            ] {
                if has_ctl_or_space(v) {
                    problems.error(
                        format!("{cp}.{key}"),
                        format!("{key} must not contain spaces or control characters"),
                    );
                }
            }
        }
        _ if grpc_keys => problems.warn(
            &cp,
            "service_name and authority are used only with protocol \"grpc\": ignored",
        ),
        _ => {}
    }
}

fn has_ctl_or_space(s: &str) -> bool {
    s.bytes().any(|b| b <= b' ' || b == 0x7f)
}

fn check_http(cc: &HealthCheckSessionConfig, cp: &str, problems: &mut Problems) {
    let mosn = cc.http_check_config.as_ref();
    let hp = format!("{cp}.http_check_config");
    for (path, v) in [
        (format!("{cp}.path"), cc.path.as_str()),
        (format!("{hp}.path"), mosn.map_or("", |m| m.path.as_str())),
    ] {
        if !v.is_empty() && (!v.starts_with('/') || has_ctl_or_space(v)) {
            problems.error(
                path,
                format!("bad path {v:?}: it must start with / and have no spaces"),
            );
        }
    }
    for (path, v) in [
        (format!("{cp}.method"), cc.method.as_str()),
        (
            format!("{hp}.method"),
            mosn.map_or("", |m| m.method.as_str()),
        ),
    ] {
        if !v.is_empty()
            && !v
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
        {
            problems.error(path, format!("bad HTTP method {v:?}"));
        }
    }
    for (path, v) in [
        (format!("{cp}.host"), cc.host.as_str()),
        (
            format!("{hp}.domain"),
            mosn.map_or("", |m| m.domain.as_str()),
        ),
    ] {
        if has_ctl_or_space(v) {
            problems.error(
                path,
                "a Host header must not contain spaces or control characters",
            );
        }
    }
    for (path, v) in [
        (format!("{cp}.port"), cc.port),
        (format!("{hp}.port"), mosn.and_then(|m| m.port)),
    ] {
        if let Some(port) = v.filter(|&p| p != 0 && !(1..65535).contains(&p)) {
            problems.warn(
                path,
                format!(
                    "port {port} is out of range: the host's own port is checked, as MOSN does"
                ),
            );
        }
    }
    if let Some(m) = mosn {
        match m.scheme.to_ascii_lowercase().as_str() {
            "" | "http" => {}
            "https" => problems.error(
                format!("{hp}.scheme"),
                "https health checks are valid MOSN but not supported by mosn-rs yet",
            ),
            other => problems.error(
                format!("{hp}.scheme"),
                format!("unknown scheme {other:?} (http)"),
            ),
        }
        for (i, r) in m.codes.iter().enumerate() {
            check_range(r, true, &format!("{hp}.codes[{i}]"), problems);
        }
    }
    for (i, r) in cc.expected_statuses.iter().enumerate() {
        check_range(r, false, &format!("{cp}.expected_statuses[{i}]"), problems);
    }
}

fn check_range(r: &StatusRange, inclusive: bool, path: &str, problems: &mut Problems) {
    let last = if inclusive { r.end } else { r.end - 1 };
    if !(100..=599).contains(&r.start) || !(100..=599).contains(&last) {
        problems.error(
            path,
            format!(
                "status range {}..{} is outside 100-599 ({})",
                r.start,
                r.end,
                if inclusive {
                    "end inclusive"
                } else {
                    "end exclusive"
                }
            ),
        );
    } else if last < r.start {
        problems.error(
            path,
            format!(
                "empty status range: start {} is after end {} ({})",
                r.start,
                r.end,
                if inclusive {
                    "end inclusive"
                } else {
                    "end exclusive"
                }
            ),
        );
    }
}

fn check_outlier(od: &OutlierDetectionConfig, p: &str, problems: &mut Problems) {
    for (key, v) in [
        ("max_ejection_percent", od.max_ejection_percent),
        ("enforcing_consecutive_5xx", od.enforcing_consecutive_5xx),
        (
            "enforcing_consecutive_gateway_failure",
            od.enforcing_consecutive_gateway_failure,
        ),
        ("enforcing_success_rate", od.enforcing_success_rate),
        (
            "failure_percentage_threshold",
            od.failure_percentage_threshold,
        ),
        (
            "enforcing_failure_percentage",
            od.enforcing_failure_percentage,
        ),
    ] {
        if let Some(v) = v.filter(|&v| v > 100) {
            problems.error(
                format!("{p}.{key}"),
                format!("{key} is a percentage: 0 to 100, not {v}"),
            );
        }
    }
    for (key, v) in [
        ("interval", od.interval),
        ("base_ejection_time", od.base_ejection_time),
        ("max_ejection_time", od.max_ejection_time),
    ] {
        if v.is_some_and(|d| d.0.is_zero()) {
            problems.error(format!("{p}.{key}"), format!("{key} must be above 0"));
        }
    }
    let s = od.settings();
    if od.max_ejection_time.is_some() && s.max_ejection_time < s.base_ejection_time {
        problems.error(
            format!("{p}.max_ejection_time"),
            "max_ejection_time cannot be shorter than base_ejection_time",
        );
    }
    for (key, v) in [
        ("consecutive_5xx", od.consecutive_5xx),
        (
            "consecutive_gateway_failure",
            od.consecutive_gateway_failure,
        ),
    ] {
        if v == Some(0) {
            problems.warn(
                format!("{p}.{key}"),
                format!("{key} 0 never triggers: this ejection is off"),
            );
        }
    }
    if od.consecutive_gateway_failure.is_some_and(|n| n > 0)
        && od.enforcing_consecutive_gateway_failure.is_none()
    {
        problems.warn(
            format!("{p}.enforcing_consecutive_gateway_failure"),
            "enforcing_consecutive_gateway_failure defaults to 0, as in Envoy: consecutive \
             gateway failures are counted but eject no host",
        );
    }
    if od.split_external_local_origin_errors {
        problems.warn(
            format!("{p}.split_external_local_origin_errors"),
            "split_external_local_origin_errors is not implemented by mosn-rs yet: local \
             origin failures count as 503 responses",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{load_str, ConfigError};
    use serde_json::{json, Value};

    /// A whole config whose one cluster carries `extra`; errors, then warnings, each
    /// as "path: message".
    fn issues(extra: Value) -> (Vec<String>, Vec<String>) {
        let mut cluster = json!({"name": "c", "hosts": [{"address": "127.0.0.1:8080"}]});
        for (k, v) in extra.as_object().unwrap() {
            cluster[k] = v.clone();
        }
        let config = json!({
            "servers": [{"listeners": [{"name": "l", "address": "127.0.0.1:2045", "bind_port": true,
                "filter_chains": [{"filters": [{"type": "tcp_proxy",
                    "config": {"cluster": "c"}}]}]}]}],
            "cluster_manager": {"clusters": [cluster]},
        });
        match load_str(&config.to_string()) {
            Ok(loaded) => (
                vec![],
                loaded.warnings.iter().map(ToString::to_string).collect(),
            ),
            Err(ConfigError::Invalid(list)) => {
                (list.iter().map(ToString::to_string).collect(), vec![])
            }
            Err(other) => panic!("{other}"),
        }
    }

    const C: &str = "cluster_manager.clusters[0]";

    fn has(list: &[String], prefix: &str) -> bool {
        list.iter().any(|i| i.starts_with(prefix))
    }

    #[test]
    fn a_good_health_check_and_outlier_detection_load_quietly() {
        let (errors, warnings) = issues(json!({
            "health_check": {
                "protocol": "http", "service_name": "svc", "timeout": "1s",
                "interval": "5s", "interval_jitter": "100ms", "initial_delay_seconds": "2s",
                "healthy_threshold": 2, "unhealthy_threshold": 3,
                "check_config": {"http_check_config": {"path": "/status", "port": 8081,
                    "codes": [{"start": 200, "end": 299}], "domain": "svc.local"}}
            },
            "outlier_detection": {"consecutive_5xx": 3, "interval": "5s",
                "base_ejection_time": "10s", "max_ejection_percent": 50,
                "enforcing_failure_percentage": 100}
        }));
        assert_eq!((errors, warnings), (vec![], vec![]));
        // The all-zero object Go writes for a cluster without checks: no warning.
        let (errors, warnings) = issues(json!({"health_check": {"timeout": "0s",
            "interval": "0s", "interval_jitter": "0s"}}));
        assert_eq!((errors, warnings), (vec![], vec![]));
    }

    #[test]
    fn health_check_problems_name_their_paths() {
        let p = format!("{C}.health_check");
        let (_, warnings) = issues(json!({"health_check": {"protocol": "htpp",
            "service_name": "s", "healthy_threshold": 0, "timeout": "5s", "interval": "5s",
            "event_log_path": "/tmp/hc.log"}}));
        for key in ["protocol", "healthy_threshold", "timeout", "event_log_path"] {
            assert!(
                has(&warnings, &format!("{p}.{key}: ")),
                "{key}: {warnings:?}"
            );
        }
        let (_, warnings) = issues(json!({"health_check": {"protocol": "bolt",
            "service_name": "s"}}));
        assert!(
            has(&warnings, &format!("{p}.protocol: MOSN has no")),
            "{warnings:?}"
        );
        let (_, warnings) = issues(json!({"health_check": {"protocol": "tcp"}}));
        assert!(
            has(&warnings, &format!("{p}.service_name: ")),
            "{warnings:?}"
        );
        let (_, warnings) = issues(json!({"health_check": {"protocol": "tcp",
            "service_name": "s", "check_config": {"path": "/x"}}}));
        assert!(
            has(&warnings, &format!("{p}.check_config: ")),
            "{warnings:?}"
        );

        let (errors, _) = issues(json!({"health_check": {"protocol": "http",
            "service_name": "s", "check_config": {
                "path": "no-slash", "method": "GE T", "host": "a b",
                "expected_statuses": [{"start": 300, "end": 300}],
                "http_check_config": {"scheme": "https",
                    "codes": [{"start": 200, "end": 700}]}}}}));
        let cp = format!("{p}.check_config");
        for at in [
            format!("{cp}.path: "),
            format!("{cp}.method: "),
            format!("{cp}.host: "),
            format!("{cp}.expected_statuses[0]: empty status range"),
            format!("{cp}.http_check_config.scheme: "),
            format!("{cp}.http_check_config.codes[0]: "),
        ] {
            assert!(has(&errors, &at), "{at}: {errors:?}");
        }
        let (errors, _) = issues(json!({"health_check": {"interval": "5 minutes"}}));
        assert!(
            has(&errors, &format!("{p}.interval: invalid duration")),
            "{errors:?}"
        );
        let (errors, _) = issues(json!({"health_check": {"unhealthy_threshold": -1}}));
        assert!(
            has(&errors, &format!("{p}.unhealthy_threshold: ")),
            "{errors:?}"
        );
    }

    #[test]
    fn outlier_problems_name_their_paths() {
        let p = format!("{C}.outlier_detection");
        let (errors, _) = issues(json!({"outlier_detection": {
            "max_ejection_percent": 101, "enforcing_success_rate": 200,
            "failure_percentage_threshold": 150, "interval": "0s",
            "base_ejection_time": "60s", "max_ejection_time": "30s"}}));
        for key in [
            "max_ejection_percent",
            "enforcing_success_rate",
            "failure_percentage_threshold",
            "interval",
            "max_ejection_time",
        ] {
            assert!(has(&errors, &format!("{p}.{key}: ")), "{key}: {errors:?}");
        }
        let (errors, _) = issues(json!({"outlier_detection": {"base_ejection_time": "30"}}));
        assert!(has(
            &errors,
            &format!("{p}.base_ejection_time: invalid duration")
        ));
        let (_, warnings) = issues(json!({"outlier_detection": {"consecutive_5xx": 0,
            "consecutive_gateway_failure": 3, "split_external_local_origin_errors": true}}));
        for key in [
            "consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            "split_external_local_origin_errors",
        ] {
            assert!(
                has(&warnings, &format!("{p}.{key}: ")),
                "{key}: {warnings:?}"
            );
        }
        let (_, warnings) = issues(json!({"outlier_detection": {"bogus": 1}}));
        assert!(
            has(&warnings, &format!("{p}.bogus: unknown key")),
            "{warnings:?}"
        );
    }
}

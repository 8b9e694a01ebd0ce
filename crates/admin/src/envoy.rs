//! Envoy's `/clusters` and `/listeners`: text lines (`cluster::host::field::value`,
//! `name::address`), or Envoy's JSON shapes with `?format=json`.

use crate::{AdminError, AdminState, Reply, Request};
use serde_json::{json, Value};

fn json_format(req: &Request) -> Result<bool, AdminError> {
    match req.param("format") {
        None | Some("text") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => Err(AdminError::BadRequest(format!(
            "format {other:?} is not text or json"
        ))),
    }
}

/// `IP:port` as Envoy's `socket_address`.
fn socket_address(addr: &str) -> Value {
    let (ip, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    json!({"socket_address": {"address": ip, "port_value": port.parse::<u64>().unwrap_or(0)}})
}

/// Per-host counters, in Envoy's names (Envoy's order).
const HOST_COUNTERS: &[&str] = &["cx_connect_fail", "cx_total", "rq_error", "rq_total"];
const HOST_GAUGES: &[&str] = &["cx_active", "rq_active"];
/// Our breaker names onto Envoy's threshold fields.
const BREAKERS: &[(&str, &str)] = &[
    ("connections", "max_connections"),
    ("pending_requests", "max_pending_requests"),
    ("requests", "max_requests"),
    ("retries", "max_retries"),
];

/// Envoy's health flags: `healthy`, or `/failed_active_hc`, `/failed_outlier_check`.
fn health_flags(host: &Value) -> String {
    let mut flags = String::new();
    if host["failed_active_health_check"] == true {
        flags.push_str("/failed_active_hc");
    }
    if host["ejected"] == true {
        flags.push_str("/failed_outlier_check");
    }
    if flags.is_empty() {
        "healthy".into()
    } else {
        flags
    }
}

pub fn clusters(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let as_json = json_format(req)?;
    let doc = s.clusters.clusters();
    let clusters = doc.as_array().cloned().unwrap_or_default();
    if as_json {
        let statuses: Vec<Value> = clusters
            .iter()
            .map(|c| {
                let hosts: Vec<Value> = c["hosts"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|h| {
                        let mut stats: Vec<Value> = HOST_COUNTERS
                            .iter()
                            .map(|k| json!({"name": k, "value": h[*k].as_u64().unwrap_or(0).to_string()}))
                            .collect();
                        stats.extend(HOST_GAUGES.iter().map(|k| {
                            json!({"name": k, "type": "GAUGE", "value": h[*k].as_u64().unwrap_or(0).to_string()})
                        }));
                        json!({
                            "address": socket_address(h["address"].as_str().unwrap_or("")),
                            "hostname": h["hostname"],
                            "weight": h["weight"],
                            "stats": stats,
                            "health_status": {
                                "eds_health_status": "HEALTHY",
                                "failed_active_health_check": h["failed_active_health_check"] == true,
                                "failed_outlier_check": h["ejected"] == true,
                            },
                        })
                    })
                    .collect();
                let thresholds: serde_json::Map<String, Value> = BREAKERS
                    .iter()
                    .map(|(ours, envoy)| (envoy.to_string(), c["circuit_breakers"][*ours]["max"].clone()))
                    .collect();
                json!({
                    "name": c["name"],
                    "circuit_breakers": {"thresholds": [thresholds]},
                    "host_statuses": hosts,
                })
            })
            .collect();
        return Ok(Reply::json(200, &json!({"cluster_statuses": statuses})));
    }
    let mut out = String::new();
    for c in &clusters {
        let name = c["name"].as_str().unwrap_or("");
        for (ours, envoy) in BREAKERS {
            let max = &c["circuit_breakers"][*ours]["max"];
            out.push_str(&format!("{name}::default_priority::{envoy}::{max}\n"));
        }
        for h in c["hosts"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let addr = h["address"].as_str().unwrap_or("");
            let mut fields: Vec<&str> = HOST_COUNTERS.iter().chain(HOST_GAUGES).copied().collect();
            fields.sort_unstable();
            for k in fields {
                let v = h[k].as_u64().unwrap_or(0);
                out.push_str(&format!("{name}::{addr}::{k}::{v}\n"));
            }
            let hostname = h["hostname"].as_str().unwrap_or("");
            out.push_str(&format!("{name}::{addr}::hostname::{hostname}\n"));
            out.push_str(&format!(
                "{name}::{addr}::health_flags::{}\n",
                health_flags(h)
            ));
            out.push_str(&format!(
                "{name}::{addr}::weight::{}\n",
                h["weight"].as_u64().unwrap_or(0)
            ));
        }
    }
    Ok(Reply::text(200, out))
}

pub fn listeners(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    if json_format(req)? {
        let statuses: Vec<Value> = s
            .info
            .listeners
            .iter()
            .map(|l| json!({"name": l.name, "local_address": socket_address(&l.address)}))
            .collect();
        return Ok(Reply::json(200, &json!({"listener_statuses": statuses})));
    }
    let mut out = String::new();
    for l in &s.info.listeners {
        out.push_str(&format!("{}::{}\n", l.name, l.address));
    }
    Ok(Reply::text(200, out))
}

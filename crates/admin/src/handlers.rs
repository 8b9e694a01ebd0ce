//! The endpoints, MOSN's (`pkg/admin/server/apis.go`) in MOSN's answer shapes, and
//! Envoy's lifecycle ones. Envoy's `/clusters` and `/listeners` are in envoy.rs.

use crate::{AdminError, AdminState, Reply, Request, ENDPOINTS};
use mosn_config::{ClusterConfig, HostConfig};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub fn index(_: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let width = ENDPOINTS.iter().map(|e| e.path.len()).max().unwrap_or(0);
    let mut out = String::from("supported APIs:\n");
    for e in ENDPOINTS {
        out.push_str(&format!("{:<4} {:<width$}  {}\n", e.method, e.path, e.help));
    }
    Ok(Reply::text(200, out))
}

pub fn config_dump(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let mut config = (s.config)();
    redact_secrets(&mut config);
    Ok(Reply::json(200, &config))
}

/// What replaces a secret in the config dump.
pub const REDACTED: &str = "[redacted]";

/// Replaces secrets in a config document: TLS private keys given inline (PEM; a
/// file path stays, it tells where the key is without giving it away) and MOSN's
/// session ticket keys (`ticket`).
pub fn redact_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let key = k.to_ascii_lowercase();
                match child {
                    Value::String(s)
                        if key == "private_key" && mosn_config::tls::is_inline_pem(s) =>
                    {
                        *s = REDACTED.into()
                    }
                    Value::String(s) if key == "ticket" && !s.is_empty() => *s = REDACTED.into(),
                    _ => redact_secrets(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

pub fn stats(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    Ok(Reply::json(200, &(s.stats)()))
}

/// MOSN's `stats_glob` answers the proxy's global totals as `key:value` lines; with
/// `pattern`, every stat of `/api/v1/stats` whose dotted name matches it.
pub fn stats_glob(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let doc = (s.stats)();
    let mut lines = BTreeMap::new();
    match req.param("pattern") {
        None => {
            let mut totals: BTreeMap<String, i128> = BTreeMap::new();
            if let Some(listeners) = doc.get("listener").and_then(Value::as_object) {
                for stats in listeners.values().filter_map(Value::as_object) {
                    for (k, v) in stats {
                        if let Some(n) = v.as_i64() {
                            *totals.entry(k.clone()).or_default() += i128::from(n);
                        } else if let Some(n) = v.as_u64() {
                            *totals.entry(k.clone()).or_default() += i128::from(n);
                        }
                    }
                }
            }
            for (k, v) in totals {
                lines.insert(k, v.to_string());
            }
        }
        Some("") => {
            return Err(AdminError::BadRequest(
                "pattern is empty (e.g. ?pattern=cluster.*.upstream_request_total)".into(),
            ))
        }
        Some(pattern) => {
            let mut all = BTreeMap::new();
            flatten(&doc, String::new(), &mut all);
            lines = all
                .into_iter()
                .filter(|(k, _)| glob_match(pattern.as_bytes(), k.as_bytes()))
                .collect();
        }
    }
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&k);
        out.push(':');
        out.push_str(&v);
        out.push('\n');
    }
    Ok(Reply::text(200, out))
}

/// Numeric and boolean leaves by dotted name; array items are named by their
/// `address` when they have one (hosts), else by index.
fn flatten(v: &Value, name: String, out: &mut BTreeMap<String, String>) {
    let join = |seg: &str| {
        if name.is_empty() {
            seg.to_string()
        } else {
            format!("{name}.{seg}")
        }
    };
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                flatten(child, join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let seg = item
                    .get("address")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                flatten(item, join(&seg), out);
            }
        }
        Value::Number(n) => {
            out.insert(name, n.to_string());
        }
        Value::Bool(b) => {
            out.insert(name, b.to_string());
        }
        _ => {}
    }
}

/// Shell-style match: `*` any run of characters (dots included), `?` one character.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

pub fn prometheus(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    Ok(Reply::new(
        200,
        mosn_observe::prometheus::CONTENT_TYPE,
        (s.prometheus)().into_bytes(),
    ))
}

pub fn clusters_json(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    Ok(Reply::json(200, &s.clusters.clusters()))
}

fn body_json(body: &[u8]) -> Result<Value, AdminError> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::BadRequest(format!("body is not JSON: {e}")))
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, AdminError> {
    mosn_config::parse_value::<T>(value, what)
        .map(|(v, _)| v)
        .map_err(|errors| {
            AdminError::BadRequest(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

/// Body: one cluster in MOSN's JSON shape.
pub fn update_cluster(state: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let cfg: ClusterConfig = typed(&body_json(req.body)?, "cluster")?;
    let warnings = state.clusters.update_cluster(cfg)?;
    Ok(Reply::json(
        200,
        &json!({"status": "ok", "warnings": warnings}),
    ))
}

/// Body: `{"name": "cluster"}`.
pub fn delete_cluster(state: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let v = body_json(req.body)?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::BadRequest("body needs \"name\"".into()))?;
    state.clusters.delete_cluster(name)?;
    Ok(Reply::json(200, &json!({"status": "ok"})))
}

/// Body: `{"cluster": "name", "hosts": [{"address": "IP:port", ...}]}`.
pub fn update_hosts(state: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let v = body_json(req.body)?;
    let name = v
        .get("cluster")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::BadRequest("body needs \"cluster\"".into()))?;
    let hosts: Vec<HostConfig> = typed(v.get("hosts").unwrap_or(&Value::Null), "hosts")?;
    state.clusters.update_hosts(name, hosts)?;
    Ok(Reply::json(200, &json!({"status": "ok"})))
}

pub fn get_loglevel(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let map: Map<String, Value> = s
        .logs
        .loggers()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(Reply::json(200, &Value::Object(map)))
}

/// MOSN's body: `{"log_path": "...", "log_level": "DEBUG"}`; answers as MOSN does.
pub fn update_loglevel(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let v = body_json(req.body)?;
    let field = |name: &str| -> Result<String, AdminError> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(AdminError::BadRequest(format!("{name} must be a string"))),
        }
    };
    if !v.is_object() {
        return Err(AdminError::BadRequest(
            "body must be {\"log_path\": PATH, \"log_level\": LEVEL}".into(),
        ));
    }
    let path = field("log_path")?;
    let level = field("log_level")?.to_ascii_uppercase();
    if !mosn_config::validate::LOG_LEVELS.contains(&level.as_str()) {
        return Err(AdminError::BadRequest(format!(
            "log_level {:?} is not one of {}",
            level,
            mosn_config::validate::LOG_LEVELS.join(", ")
        )));
    }
    s.logs.set_level(&path, &level)?;
    tracing::info!(log_path = %path, log_level = %level, "log level changed through the admin API");
    Ok(Reply::text(200, "update logger success\n"))
}

/// MOSN's body: the logger's path, as plain text.
fn log_path(req: &Request) -> Result<String, AdminError> {
    std::str::from_utf8(req.body)
        .map(|s| s.trim().to_string())
        .map_err(|_| AdminError::BadRequest("body (a logger path) is not UTF-8".into()))
}

pub fn enable_log(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let path = log_path(req)?;
    s.logs.set_enabled(&path, true)?;
    tracing::info!(log_path = %path, "logger enabled through the admin API");
    Ok(Reply::text(200, "enable logger success\n"))
}

pub fn disable_log(s: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let path = log_path(req)?;
    // Said before, as the logger may be the one that falls silent.
    if path.is_empty() || s.logs.loggers().contains_key(&path) {
        tracing::info!(log_path = %path, "logger disabled through the admin API");
    }
    s.logs.set_enabled(&path, false)?;
    Ok(Reply::text(200, "disable logger success\n"))
}

/// The xDS client's state; 404 when the proxy runs without xDS.
pub fn xds(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    match &s.xds {
        Some(state) => Ok(Reply::json(200, &state())),
        None => Ok(Reply::text(
            404,
            "xDS is not configured (no dynamic_resources)\n",
        )),
    }
}

/// MOSN: `pid=N&state=S`.
pub fn states(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    Ok(Reply::text(
        200,
        format!(
            "pid={}&state={}\n",
            std::process::id(),
            s.lifecycle.mosn_state()
        ),
    ))
}

/// MOSN's feature gates (`pkg/featuregate`); mosn-rs enables none of them.
const FEATURES: &[(&str, bool)] = &[
    ("XdsMtlsEnable", false),
    ("PayLoadLimitEnable", false),
    ("MultiTenantMode", false),
];

pub fn features(_: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    match req.param("key") {
        // MOSN answers false for a feature it does not know.
        Some(key) => Ok(Reply::text(
            200,
            FEATURES
                .iter()
                .find(|(k, _)| *k == key)
                .is_some_and(|(_, on)| *on)
                .to_string(),
        )),
        None => Ok(Reply::json(
            200,
            &Value::Object(
                FEATURES
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::Bool(*v)))
                    .collect(),
            ),
        )),
    }
}

/// MOSN: `mosn version: V`.
pub fn version(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    Ok(Reply::text(
        200,
        format!("mosn version: {} (mosn-rs)\n", s.info.version),
    ))
}

/// MOSN: `{"env": {NAME: value}, "not_found": [NAME]}` for each `key`.
pub fn env(_: &AdminState, req: &Request) -> Result<Reply, AdminError> {
    let keys = req.params("key");
    if keys.is_empty() {
        return Err(AdminError::BadRequest(
            "no env key: ask with ?key=NAME (repeatable)".into(),
        ));
    }
    let mut found = Map::new();
    let mut not_found = Vec::new();
    for key in keys {
        match std::env::var(key) {
            Ok(v) => {
                found.insert(key.to_string(), Value::String(v));
            }
            Err(_) => not_found.push(key.to_string()),
        }
    }
    let mut out = json!({"env": found});
    if !not_found.is_empty() {
        out["not_found"] = json!(not_found);
    }
    Ok(Reply::json(200, &out))
}

/// Envoy: 200 `LIVE`, else 503 with the state.
pub fn ready(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let state = s.lifecycle.state();
    let status = if state == "LIVE" { 200 } else { 503 };
    Ok(Reply::text(status, format!("{state}\n")))
}

/// Envoy's `ServerInfo` fields that apply.
pub fn server_info(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let uptime = format!("{}s", s.lifecycle.uptime().as_secs());
    Ok(Reply::json(
        200,
        &json!({
            "version": format!("mosn-rs/{}", s.info.version),
            "state": s.lifecycle.state(),
            "uptime_current_epoch": uptime,
            "uptime_all_epochs": uptime,
            "hot_restart_version": "disabled",
            "command_line_options": {
                "config_path": s.info.config_path,
                "concurrency": s.info.concurrency,
            },
            "pid": std::process::id(),
        }),
    ))
}

pub fn healthcheck_fail(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    s.lifecycle.set_health_check_failed(true);
    tracing::info!("health checks failed through the admin API: /ready answers 503");
    Ok(Reply::text(200, "OK\n"))
}

pub fn healthcheck_ok(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    s.lifecycle.set_health_check_failed(false);
    tracing::info!("health checks pass again through the admin API");
    Ok(Reply::text(200, "OK\n"))
}

/// Answers, then stops the process as SIGTERM does.
pub fn quit(s: &AdminState, _: &Request) -> Result<Reply, AdminError> {
    let lifecycle = s.lifecycle.clone();
    Ok(Reply::text(200, "OK\n").then(move || {
        tracing::info!("/quitquitquit: stopping");
        lifecycle.request_stop()
    }))
}

//! Key handling that makes MOSN's JSON load as MOSN loads it: Go's encoding/json
//! matches keys case-insensitively (`"Name"` fills `name`), and keys the model does
//! not know are reported, split into MOSN keys not implemented yet and unknown keys.

use serde_json::{Map, Value};

/// Objects under these keys are free-form maps whose keys are data, not field names.
const FREE_FORM_KEYS: &[&str] = &[
    "metadata",
    "metadata_match",
    "filter_metadata",
    "extend_config",
    "per_filter_config",
    "labels",
    // lb_subset_config.default_subset: host metadata keys
    "default_subset",
    // tracing.config.config_map: OpenTelemetry resource attribute names
    "config_map",
    // the xDS bootstrap is Envoy's JSON, read by crates/xds as it is written
    "static_resources",
    "dynamic_resources",
];

/// Lower-cases every field name, except inside free-form maps.
pub fn normalize_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, child) in map {
                let lower = key.to_ascii_lowercase();
                let child = if FREE_FORM_KEYS.contains(&lower.as_str()) {
                    child
                } else {
                    normalize_keys(child)
                };
                // On a clash ("name" and "Name"), the first spelling wins, as the
                // key that appears first is the one a reader sees first.
                out.entry(lower).or_insert(child);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

/// Keys of MOSN's v2 configuration that this build parses past without acting on.
const MOSN_KEYS_NOT_YET: &[&str] = &[
    // metrics (its sinks are read)
    "stats_matcher",
    "shm_zone",
    "shm_size",
    "flush_mosn",
    "lazy_flush",
    "sample",
    "ewma",
    "pprof",
    "plugin",
    "third_part_codec",
    "extends",
    "close_graceful",
    "wasm_global_plugins",
    "debug",
    "cluster_manager_extend",
    "auto_discovery",
    "registry_use_health_check",
    // servers[] and listeners[]
    "global_log_roller",
    "optimize_local_write",
    "log_path",
    "log_level",
    "type",
    "perconnection_buffer_limit_bytes",
    "per_connection_buffer_limit_bytes",
    "metadata",
    "cluster_manager_tls",
    // clusters[] and hosts[]
    "circuit_breakers",
    "spec",
    "idle_timeout",
    "dns_resolvers",
    "dns_resolver_file",
    "dns_resolver_port",
    "tls_disable",
    "cluster_pool_enable",
    "connection_pool",
    "upstream_protocol",
    // routes
    "per_filter_config",
    "request_mirror_policy",
    "dsl_expressions",
    "require_tls",
    "timeout_config",
    // network filters
    "extend_config",
    "name",
    "stat_prefix",
    "max_connect_attempts",
    "proxy_general_extend_config",
];

/// Classifies an ignored key path: true when its last key is a MOSN key.
pub fn is_mosn_key(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    MOSN_KEYS_NOT_YET.contains(&last)
}

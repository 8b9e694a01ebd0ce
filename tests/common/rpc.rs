//! Helpers of the RPC (Bolt, Dubbo) proxy tests: a proxy config in MOSN's shape and
//! checks on the JSON the tests/peers clients print.

use super::peers::{x_client, XClient};
use super::{free_port, Mosn};
use serde_json::{json, Value};

/// An RPC proxy (`protocol`: bolt, dubbo, X, Auto) on a free port: routes (MOSN's
/// shape) to clusters of `(name, port)`. Returns it, its port and its admin port.
pub fn rpc_proxy(routes: Value, clusters: &[(&str, u16)], protocol: &str) -> (Mosn, u16, u16) {
    rpc_proxy_with(routes, clusters, protocol, json!({}))
}

/// [`rpc_proxy`] with more keys on its listener (`access_logs`, ...).
pub fn rpc_proxy_with(
    routes: Value,
    clusters: &[(&str, u16)],
    protocol: &str,
    listener_extra: Value,
) -> (Mosn, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, p)| {
            json!({"name": name, "type": "SIMPLE", "lb_type": "LB_RANDOM",
            "hosts": [{"address": format!("127.0.0.1:{p}")}]})
        })
        .collect();
    let mut config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"], "routers": routes}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": protocol, "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": clusters},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    if let (Some(l), Some(extra)) = (
        config["servers"][0]["listeners"][0].as_object_mut(),
        listener_extra.as_object(),
    ) {
        l.extend(extra.clone());
    }
    (
        Mosn::start(&config.to_string(), &[port, admin]),
        port,
        admin,
    )
}

pub fn any_service(cluster: &str) -> Value {
    json!([{"match": {"headers": [{"name": "service", "value": ".*"}]}, "route": {"cluster_name": cluster}}])
}

#[track_caller]
pub fn assert_all_matched(v: &Value, n: u64, tag: &str) {
    assert_eq!(v["calls"], n, "{v}");
    assert_eq!(v["matched"], n, "{v}");
    assert_eq!(v["mismatched"], 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["tags"][tag], n, "{v}");
}

/// One call through `port` fails with the proxy's own error answer (the client reads
/// a server error) well before the client's own 3 s timeout.
#[track_caller]
pub fn assert_prompt_error(client: XClient, port: u16) {
    let started = std::time::Instant::now();
    let (ok, v) = x_client(client, port, &["echo", "1", "1"]);
    assert!(!ok, "{v}");
    assert_eq!(v["errors"], 1, "{v}");
    let sample = v["error_samples"].to_string().to_ascii_lowercase();
    assert!(!sample.contains("timeout"), "an answer, not a timeout: {v}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "{v}"
    );
}

//! Active health checks of a TLS cluster run over TLS, with the cluster's context:
//! an HTTP check passes through a verified handshake, and fails (the host leaves
//! rotation) when the upstream's certificate is not from the cluster's CA. The TLS
//! upstream is a second mosn-rs terminating TLS (a real TLS server; nginx would do too).

mod common;

use common::tls::{CertPair, Pki};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// A TLS server answering 200 "ok" to everything, on its own mosn-rs.
fn tls_upstream(pair: &CertPair) -> (Mosn, u16) {
    let port = free_port();
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": "ok"}}]}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"tls_context": {"status": true, "cert_chain": pair.cert_path(), "private_key": pair.key_path()},
                    "filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": []}
    });
    (Mosn::start(&config.to_string(), &[port]), port)
}

/// A proxy whose cluster reaches `upstream` over TLS verified against `ca`, checked
/// by HTTP every 100 ms; returns it and its admin port.
fn checking_proxy(upstream: u16, ca: &str) -> (Mosn, u16) {
    let (port, admin) = (free_port(), free_port());
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": [{"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}]}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": [{"name": "up", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN",
            "hosts": [{"address": format!("127.0.0.1:{upstream}"), "hostname": "backend.test"}],
            "tls_context": {"status": true, "ca_cert": ca, "server_name": "backend.test"},
            "health_check": {"protocol": "http", "service_name": "up", "timeout": "1s", "interval": "100ms",
                "initial_delay_seconds": "0s", "healthy_threshold": 1, "unhealthy_threshold": 1,
                "check_config": {"http_check_config": {"path": "/health"}}}}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    (Mosn::start(&config.to_string(), &[port, admin]), admin)
}

fn host_stats(admin: u16) -> serde_json::Value {
    admin_stats(admin)["cluster"]["up"]["hosts"][0].clone()
}

/// Waits until `ok` holds for the host's stats, or gives up after 5 s.
fn wait_for(admin: u16, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let h = host_stats(admin);
        if ok(&h) || Instant::now() > deadline {
            return h;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn http_health_checks_of_a_tls_cluster_use_its_tls_context() {
    let Some(pki) = Pki::new() else { return };
    let pair = pki.server("backend", "backend.test", &["DNS:backend.test"]);
    let (_up, up_port) = tls_upstream(&pair);

    // The right CA: checks pass (and count no failure) over TLS.
    let (_good, admin) = checking_proxy(up_port, &pki.ca_cert_path());
    std::thread::sleep(Duration::from_millis(600));
    let h = host_stats(admin);
    assert_eq!(h["healthy"], true, "{h}");
    assert_eq!(h["hc_failures"], 0, "{h}");

    // A CA that did not sign the upstream's certificate: the handshake fails, the
    // host fails its check and leaves rotation.
    let other = pki.new_ca("other-ca", "Other CA");
    let (_bad, admin) = checking_proxy(up_port, &other.cert_path());
    let h = wait_for(admin, |h| h["healthy"] == false);
    assert_eq!(h["healthy"], false, "{h}");
    assert!(h["hc_failures"].as_u64().unwrap() >= 1, "{h}");
}

//! Envoy's http_inspector on plaintext connections: filter chains that name
//! `application_protocols` `http/1.1`, `http/1.0` or `h2c` are matched by the
//! connection's first bytes (Istio's protocol sniffing); anything else takes the
//! chain without them (here a tcp_proxy to an echo server). And Envoy's
//! `prefix_ranges`: chains picked by the destination address.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};

fn echo_server() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn plaintext_chains_are_picked_by_the_sniffed_protocol() {
    let echo = echo_server();
    let (port, admin) = (free_port(), free_port());
    let answer = |body: &str| {
        json!({"router_config_name": body, "virtual_hosts": [{"name": "h", "domains": ["*"],
            "routers": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": body}}]}]})
    };
    let chain = |protocols: &[&str], router: &str, protocol: &str| {
        json!({"filter_chain_match": {"application_protocols": protocols},
            "filters": [{"type": "proxy", "config": {"downstream_protocol": protocol, "router_config_name": router}}]})
    };
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [answer("http1"), answer("h2c")],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [
                    chain(&["http/1.1", "http/1.0"], "http1", "Http1"),
                    chain(&["h2c"], "h2c", "Http2"),
                    {"filters": [{"type": "tcp_proxy", "config": {"cluster": "echo"}}]}
                ]}]}],
        "cluster_manager": {"clusters": [{"name": "echo", "type": "SIMPLE", "lb_type": "LB_RANDOM",
            "hosts": [{"address": echo.to_string()}]}]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    let _m = Mosn::start(&config.to_string(), &[admin]);
    // The listener is up once the admin is (both bound before the workers start).
    let r = http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.body_text(), "http1");
    let r = http_exchange(port, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    assert_eq!(r.body_text(), "http1");
    if let Some(out) = common::tls::curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{port}/"),
    ]) {
        assert_eq!(out.stdout, "h2c", "{out:?}");
    }
    // Not HTTP: the chain without application protocols (tcp_proxy) echoes it.
    let mut s = connect(port);
    s.write_all(b"hello there\n").unwrap();
    let mut back = [0u8; 12];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello there\n");
}

/// Envoy's `prefix_ranges`: the chain whose destination-IP range holds the address
/// the client reached (the longest range wins) serves it.
#[test]
fn chains_are_picked_by_destination_address() {
    let (port, admin) = (free_port(), free_port());
    let answer = |body: &str| {
        json!({"router_config_name": body, "virtual_hosts": [{"name": "h", "domains": ["*"],
            "routers": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": body}}]}]})
    };
    let chain = |ranges: serde_json::Value, router: &str| {
        json!({"filter_chain_match": {"prefix_ranges": ranges},
            "filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1", "router_config_name": router}}]})
    };
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "routers": [answer("wide"), answer("exact"), answer("v6")],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [
                    chain(json!([{"address_prefix": "127.0.0.0", "prefix_len": 8}]), "wide"),
                    chain(json!([{"address_prefix": "127.0.0.1", "prefix_len": 32}]), "exact"),
                    chain(json!([{"address_prefix": "::1", "prefix_len": 128}]), "v6")
                ]}]}],
        "cluster_manager": {"clusters": []},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    let _m = Mosn::start(&config.to_string(), &[admin]);
    let r = http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.body_text(), "exact");
}

//! MOSN's tcp_proxy through the real binary: bytes both ways, half-close, routes by
//! destination port, idle timeout, and connect failure.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

fn tcp_config(port: u16, filter: &str, clusters: &[(&str, SocketAddr)]) -> String {
    let clusters: Vec<String> = clusters
        .iter()
        .map(|(name, addr)| format!(r#"{{"name": "{name}", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": [{{"address": "{addr}"}}]}}"#))
        .collect();
    format!(
        r#"{{"servers": [{{"default_log_level": "DEBUG", "listeners": [{{"name": "tcp", "address": "127.0.0.1:{port}", "bind_port": true,
          "filter_chains": [{{"filters": [{{"type": "tcp_proxy", "config": {filter}}}]}}]}}]}}],
          "cluster_manager": {{"clusters": [{}]}}}}"#,
        clusters.join(", ")
    )
}

/// Echoes everything, then half-closes after the client's EOF, then writes "bye".
fn echo_server() -> Upstream {
    Upstream::start(|mut s| {
        let mut b = [0u8; 65536];
        loop {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&b[..n]).unwrap(),
            }
        }
        let _ = s.write_all(b"bye");
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Answers with its tag on connect.
fn tag_server(tag: &'static [u8]) -> Upstream {
    Upstream::start(move |mut s| {
        let _ = s.write_all(tag);
        let _ = s.shutdown(Shutdown::Write);
    })
}

#[test]
fn relays_bytes_both_ways_and_passes_half_close() {
    let up = echo_server();
    let port = free_port();
    let _m = Mosn::start(
        &tcp_config(port, r#"{"cluster": "c"}"#, &[("c", up.addr)]),
        &[port],
    );
    let mut s = connect(port);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), payload.len() + 3);
    assert_eq!(&back[..payload.len()], &payload[..]);
    assert_eq!(&back[payload.len()..], b"bye");
}

#[test]
fn routes_pick_the_cluster_by_destination_port_then_fall_back() {
    let a = tag_server(b"A");
    let b = tag_server(b"B");
    let port = free_port();
    let filter = format!(
        r#"{{"cluster": "b", "routes": [{{"cluster": "a", "destination_port": "{port}", "source_addrs": [{{"address": "127.0.0.0", "length": 8}}]}}]}}"#
    );
    let _m = Mosn::start(
        &tcp_config(port, &filter, &[("a", a.addr), ("b", b.addr)]),
        &[port],
    );
    let mut got = String::new();
    connect(port).read_to_string(&mut got).unwrap();
    assert_eq!(got, "A");

    let port2 = free_port();
    let filter = r#"{"cluster": "b", "routes": [{"cluster": "a", "destination_port": "1-2"}]}"#;
    let _m2 = Mosn::start(
        &tcp_config(port2, filter, &[("a", a.addr), ("b", b.addr)]),
        &[port2],
    );
    let mut got = String::new();
    connect(port2).read_to_string(&mut got).unwrap();
    assert_eq!(got, "B", "no route matched: the filter's own cluster");
}

#[test]
fn idle_timeout_closes_both_sides() {
    let (tx, rx) = std::sync::mpsc::channel();
    let up = Upstream::start(move |mut s| {
        let mut b = [0u8; 16];
        let closed = matches!(s.read(&mut b), Ok(0) | Err(_));
        let _ = tx.send(closed);
    });
    let port = free_port();
    let filter = r#"{"cluster": "c", "idle_timeout": "300ms"}"#;
    let _m = Mosn::start(&tcp_config(port, filter, &[("c", up.addr)]), &[port]);
    let mut s = connect(port);
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    assert!(rx.recv_timeout(Duration::from_secs(3)).unwrap());
}

#[test]
fn connect_failure_closes_the_client() {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let _m = Mosn::start(
        &tcp_config(port, r#"{"cluster": "c"}"#, &[("c", dead)]),
        &[port],
    );
    let mut s = connect(port);
    assert!(closed_within(&mut s, Duration::from_secs(3)));
}

/// MOSN's proxy-fallback-example shape: an `Auto` proxy that hands connections that
/// are not HTTP to the tcp_proxy after it; HTTP still goes through the router.
#[test]
fn auto_proxy_falls_back_to_tcp_proxy_for_unknown_protocols() {
    let echo = echo_server();
    let http = echo_upstream();
    let port = free_port();
    let config = format!(
        r#"{{"servers": [{{
          "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
            "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "http"}}}}]}}]}}],
          "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true, "filter_chains": [{{"filters": [
            {{"type": "proxy", "config": {{"fallback_for_unknown_protocol": true, "downstream_protocol": "Auto",
              "upstream_protocol": "Http1", "router_config_name": "r"}}}},
            {{"type": "tcp_proxy", "config": {{"cluster": "tcp"}}}}]}}]}}]}}],
          "cluster_manager": {{"clusters": [
            {{"name": "http", "hosts": [{{"address": "{}"}}]}},
            {{"name": "tcp", "hosts": [{{"address": "{}"}}]}}]}}}}"#,
        http.addr, echo.addr
    );
    let _m = Mosn::start(&config, &[port]);
    let r = http_exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body_text().starts_with("GET /x HTTP/1.1"));

    // Neither HTTP nor an RPC codec's magic (0x01/0x02 would be Bolt, 0xdabb Dubbo).
    let mut s = connect(port);
    s.write_all(b"\x05\x06binary protocol").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"\x05\x06binary protocolbye");
}

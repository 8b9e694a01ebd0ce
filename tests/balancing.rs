//! Subsets, slow start and the route idle timeout through the real binary.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn subset_config(
    port: u16,
    fallback: u32,
    blue: std::net::SocketAddr,
    green: std::net::SocketAddr,
) -> String {
    format!(
        r#"{{"servers": [{{"default_log_level": "WARN", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": [
    {{"match": {{"prefix": "/blue"}}, "route": {{"cluster_name": "c", "metadata_match": {{"filter_metadata": {{"mosn.lb": {{"stage": "blue"}}}}}}}}}},
    {{"match": {{"prefix": "/red"}}, "route": {{"cluster_name": "c", "metadata_match": {{"filter_metadata": {{"mosn.lb": {{"stage": "red"}}}}}}}}}},
    {{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c"}}}}]}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{{"name": "c", "lb_type": "LB_ROUNDROBIN",
    "lb_subset_config": {{"fall_back_policy": {fallback}, "subset_selectors": [["stage"]]}},
    "hosts": [
      {{"address": "{blue}", "metadata": {{"filter_metadata": {{"mosn.lb": {{"stage": "blue"}}}}}}}},
      {{"address": "{green}", "metadata": {{"filter_metadata": {{"mosn.lb": {{"stage": "green"}}}}}}}}]}}]}}}}"#
    )
}

fn bodies(port: u16, path: &str, n: usize) -> Vec<Response> {
    (0..n)
        .map(|_| {
            http_exchange(
                port,
                format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
            )
        })
        .collect()
}

#[test]
fn metadata_match_picks_the_subset_and_falls_back_per_policy() {
    let (blue, green) = (tagged_upstream("blue"), tagged_upstream("green"));
    // fall_back_policy 1: any endpoint.
    let port = free_port();
    let _m = Mosn::start(&subset_config(port, 1, blue.addr, green.addr), &[port]);
    assert!(bodies(port, "/blue", 10)
        .iter()
        .all(|r| r.body_text() == "blue"));
    let red: Vec<String> = bodies(port, "/red", 10)
        .iter()
        .map(Response::body_text)
        .collect();
    assert!(
        red.contains(&"blue".into()) && red.contains(&"green".into()),
        "{red:?}"
    );
    let all: Vec<String> = bodies(port, "/", 10)
        .iter()
        .map(Response::body_text)
        .collect();
    assert!(all.contains(&"green".into()));

    // fall_back_policy 0: no fallback, so no host.
    let port = free_port();
    let _m2 = Mosn::start(&subset_config(port, 0, blue.addr, green.addr), &[port]);
    assert!(bodies(port, "/blue", 5)
        .iter()
        .all(|r| r.body_text() == "blue"));
    assert!(bodies(port, "/red", 5).iter().all(|r| r.status == 503));
}

#[test]
fn slow_start_ramps_a_new_hosts_share() {
    let (old, new) = (tagged_upstream("old"), tagged_upstream("new"));
    let mut cfg = HttpConfig::new(&[old.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    cfg.cluster_extra =
        r#", "lb_type": "LB_WEIGHTED_ROUNDROBIN", "slow_start": {"mode": "duration", "slow_start_duration": "4s", "aggression": 1.0, "min_weight_percent": 0.1}"#
            .into();
    let text = cfg
        .render()
        .replace(r#""lb_type": "LB_ROUNDROBIN", "hosts""#, r#""hosts""#);
    let _m = Mosn::start(&text, &[cfg.port, cfg.admin_port]);
    let body = format!(
        r#"{{"cluster": "up", "hosts": [{{"address": "{}"}}, {{"address": "{}"}}]}}"#,
        old.addr, new.addr
    );
    let req = format!(
        "POST /api/v1/update_hosts HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(http_exchange(cfg.admin_port, req.as_bytes()).status, 200);
    let share = |n: usize| {
        let mut s = connect(cfg.port);
        let mut new_count = 0;
        for _ in 0..n {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            if read_response(&mut s, false).unwrap().body == b"new" {
                new_count += 1;
            }
        }
        new_count as f64 / n as f64
    };
    let early = share(200);
    std::thread::sleep(Duration::from_millis(4200));
    let late = share(400);
    assert!(
        early < 0.3,
        "a host in slow start took {early:.2} of requests"
    );
    assert!(
        (0.4..=0.6).contains(&late),
        "after slow start the share is {late:.2}"
    );
}

#[test]
fn route_idle_timeout_cuts_a_stalled_response_body() {
    let up = Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.routes =
        r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "up", "idle_timeout": "300ms"}}"#
            .into();
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "the stalled response was not cut"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

//! Upstream changes at runtime through the admin API, and circuit breakers, against
//! the real binary.

mod common;
use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn post(admin: u16, path: &str, body: &str) -> Response {
    let req = format!("POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    http_exchange(admin, req.as_bytes())
}

fn get_body(port: u16) -> String {
    http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").body_text()
}

fn hosts_json(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs
        .iter()
        .map(|a| format!(r#"{{"address": "{a}"}}"#))
        .collect();
    format!("[{}]", list.join(", "))
}

/// POSTs to the admin API on `admin` that cluster `up`'s hosts are now `addrs`.
fn update_hosts(admin: u16, addrs: &[SocketAddr]) -> Response {
    post(
        admin,
        "/api/v1/update_hosts",
        &format!(r#"{{"cluster": "up", "hosts": {}}}"#, hosts_json(addrs)),
    )
}

#[test]
fn hosts_are_replaced_at_runtime_and_bad_updates_are_refused_whole() {
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let cfg = HttpConfig::new(&[a.addr]);
    let _m = cfg.start();
    assert_eq!(get_body(cfg.port), "A");

    let r = update_hosts(cfg.admin_port, &[b.addr]);
    assert_eq!(r.status, 200, "{}", r.body_text());
    for _ in 0..5 {
        assert_eq!(get_body(cfg.port), "B");
    }

    // A bad host list is refused whole; the running hosts stay.
    let r = post(
        cfg.admin_port,
        "/api/v1/update_hosts",
        r#"{"cluster": "up", "hosts": [{"address": "127.0.0.1:1"}, {"address": "nope"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body_text().contains("hosts[1].address"),
        "{}",
        r.body_text()
    );
    assert_eq!(get_body(cfg.port), "B");

    let r = post(
        cfg.admin_port,
        "/api/v1/update_hosts",
        r#"{"cluster": "nope", "hosts": []}"#,
    );
    assert_eq!(r.status, 404);

    let clusters = http_exchange(
        cfg.admin_port,
        b"GET /api/v1/clusters HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let v: serde_json::Value = serde_json::from_slice(&clusters.body).unwrap();
    assert_eq!(v[0]["hosts"][0]["address"], b.addr.to_string());
    assert_eq!(v[0]["hosts"][0]["healthy"], true);
}

#[test]
fn clusters_are_updated_and_deleted_at_runtime() {
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let cfg = HttpConfig::new(&[a.addr]);
    let _m = cfg.start();
    let body = format!(
        r#"{{"name": "up", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": {}}}"#,
        hosts_json(&[b.addr])
    );
    let r = post(cfg.admin_port, "/api/v1/update_cluster", &body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(get_body(cfg.port), "B");

    let r = post(
        cfg.admin_port,
        "/api/v1/update_cluster",
        r#"{"name": "up", "type": "LOGICAL_DNS"}"#,
    );
    assert_eq!(r.status, 400, "unsupported type refused");
    assert_eq!(get_body(cfg.port), "B", "the running cluster stays");

    let r = post(
        cfg.admin_port,
        "/api/v1/delete_cluster",
        r#"{"name": "up"}"#,
    );
    assert_eq!(r.status, 200);
    let resp = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        resp.status, 503,
        "a route to a deleted cluster has no upstream"
    );
    assert_eq!(
        post(
            cfg.admin_port,
            "/api/v1/delete_cluster",
            r#"{"name": "up"}"#
        )
        .status,
        404
    );
}

#[test]
fn pooled_connections_to_removed_hosts_are_closed() {
    let (tx, rx) = std::sync::mpsc::channel();
    let a = Upstream::start(move |mut s| {
        while read_request(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA");
        }
        let _ = tx.send(());
    });
    let b = tagged_upstream("B");
    let mut cfg = HttpConfig::new(&[a.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let _m = cfg.start();
    assert_eq!(get_body(cfg.port), "A");
    let r = update_hosts(cfg.admin_port, &[b.addr]);
    assert_eq!(r.status, 200);
    assert_eq!(get_body(cfg.port), "B");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the idle connection to the removed host was closed");
}

#[test]
fn hosts_replaced_under_load_lose_no_request() {
    let Some(wrk) = ["/usr/bin/wrk", "/usr/local/bin/wrk"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "wrk is not installed; scripts/setup.sh installs it"
        );
        eprintln!("skipping: wrk not installed");
        return;
    };
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let cfg = HttpConfig::new(&[a.addr]);
    let _m = cfg.start();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (admin, a, b) = (cfg.admin_port, a.addr, b.addr);
        std::thread::spawn(move || {
            let mut swaps = 0;
            while !stop.load(Ordering::Relaxed) {
                let hosts: &[SocketAddr] = if swaps % 2 == 0 { &[b] } else { &[a, b] };
                let r = update_hosts(admin, hosts);
                assert_eq!(r.status, 200);
                swaps += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            swaps
        })
    };
    let out = Command::new(wrk)
        .args([
            "-t1",
            "-c16",
            "-d3s",
            &format!("http://127.0.0.1:{}/", cfg.port),
        ])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(swaps >= 10, "{swaps} swaps");
    assert!(text.contains("requests in"), "{text}");
    assert!(
        !text.contains("Non-2xx"),
        "failed requests while hosts changed:\n{text}"
    );
    assert!(
        !text.contains("Socket errors"),
        "socket errors while hosts changed:\n{text}"
    );
}

/// An upstream that holds every request for `delay` before answering.
fn slow(delay: Duration) -> Upstream {
    Upstream::start(move |mut s| {
        while read_request(&mut s).is_some() {
            std::thread::sleep(delay);
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
        }
    })
}

/// Starts `n` requests at once on separate connections; returns their statuses.
fn concurrent_statuses(port: u16, n: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150 * i as u64));
                http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    statuses
}

/// max_requests and max_connections, each at 1 with two overlapping slow requests.
/// (max_pending_requests covers requests waiting for a new connection; loopback
/// connects finish too fast to overlap, so it is unit-tested in the upstream crate.)
#[test]
fn each_circuit_breaker_answers_503_at_once() {
    let up = slow(Duration::from_millis(600));
    for (threshold, stat) in [
        ("max_requests", "upstream_request_overflow"),
        ("max_connections", "upstream_connection_overflow"),
    ] {
        let mut cfg = HttpConfig::new(&[up.addr]);
        cfg.cluster_extra = format!(r#", "circuit_breakers": [{{"{threshold}": 1}}]"#);
        // One worker: an idle pooled connection still counts against max_connections,
        // and only its own worker can reuse it.
        cfg.server_extra = r#", "processor": 1"#.into();
        let _m = cfg.start();
        let started = Instant::now();
        let statuses = concurrent_statuses(cfg.port, 2);
        assert_eq!(statuses, vec![200, 503], "{threshold}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no request waited for the breaker"
        );
        let stats = admin_stats(cfg.admin_port);
        assert_eq!(
            stats["cluster"]["up"][stat], 1,
            "{threshold}: {}",
            stats["cluster"]["up"]
        );
        assert_eq!(stats["listener"]["l"]["upstream_overflow"], 1);
        // The breaker closes again once the first request is done.
        assert_eq!(
            http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
            200
        );
    }
}

//! Active health checks, outlier detection and weighted balancing through the real
//! binary, against upstreams that misbehave on demand.

mod common;
use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An upstream that names itself, answers `/health` with 200 or 500 as `healthy`
/// says, and other paths with 200 or 503 as `serving` says.
fn switchable(tag: &'static str, healthy: Arc<AtomicBool>, serving: Arc<AtomicBool>) -> Upstream {
    Upstream::start(move |mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let status = if head.starts_with("GET /health") {
                if healthy.load(Ordering::SeqCst) {
                    200
                } else {
                    500
                }
            } else if serving.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{tag}",
                tag.len()
            );
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    })
}

fn flag(v: bool) -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(v))
}

fn bodies(port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| http_exchange(port, b"GET /work HTTP/1.1\r\nHost: a\r\n\r\n").body_text())
        .collect()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn host_field(admin: u16, index: usize, field: &str) -> serde_json::Value {
    let r = http_exchange(admin, b"GET /api/v1/clusters HTTP/1.1\r\nHost: a\r\n\r\n");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v[0]["hosts"][index][field].clone()
}

#[test]
fn a_host_failing_http_health_checks_leaves_rotation_and_comes_back() {
    let a = switchable("A", flag(true), flag(true));
    let b_healthy = flag(true);
    let b = switchable("B", b_healthy.clone(), flag(true));
    let mut cfg = HttpConfig::new(&[a.addr, b.addr]);
    cfg.cluster_extra =
        r#", "health_check": {"protocol": "http", "service_name": "app", "timeout": "200ms",
        "interval": "100ms", "interval_jitter": "0s", "initial_delay_seconds": "0s",
        "healthy_threshold": 1, "unhealthy_threshold": 2, "check_config": {"path": "/health"}}"#
            .into();
    let _m = cfg.start();
    assert!(bodies(cfg.port, 10).contains(&"B".to_string()));
    b_healthy.store(false, Ordering::SeqCst);
    // interval x unhealthy_threshold = 200 ms; allow for scheduling.
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), || host_field(
            cfg.admin_port,
            1,
            "healthy"
        ) == false),
        "B never marked unhealthy"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        bodies(cfg.port, 20).iter().all(|b| b == "A"),
        "B still gets traffic"
    );
    b_healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(3), || host_field(
            cfg.admin_port,
            1,
            "healthy"
        ) == true),
        "B never came back"
    );
    assert!(bodies(cfg.port, 10).contains(&"B".to_string()));
}

#[test]
fn consecutive_5xx_eject_a_host_and_it_returns_on_its_own() {
    let a = switchable("A", flag(true), flag(true));
    let b_serving = flag(false);
    let b = switchable("B", flag(true), b_serving.clone());
    let mut cfg = HttpConfig::new(&[a.addr, b.addr]);
    cfg.cluster_extra = r#", "outlier_detection": {"consecutive_5xx": 3, "interval": "100ms",
        "base_ejection_time": "600ms", "max_ejection_percent": 100}"#
        .into();
    let _m = cfg.start();
    // Round robin sends half the requests to B until it is ejected.
    let mut fives = 0;
    for _ in 0..20 {
        if http_exchange(cfg.port, b"GET /work HTTP/1.1\r\nHost: a\r\n\r\n").status == 503 {
            fives += 1;
        }
    }
    assert!(fives >= 3, "{fives}");
    assert!(
        wait_until(Duration::from_secs(2), || host_field(
            cfg.admin_port,
            1,
            "ejected"
        ) == true),
        "B not ejected"
    );
    assert!(
        bodies(cfg.port, 20).iter().all(|b| b == "A"),
        "an ejected host got traffic"
    );
    b_serving.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(3), || host_field(
            cfg.admin_port,
            1,
            "ejected"
        ) == false),
        "B never returned"
    );
    assert!(bodies(cfg.port, 10).contains(&"B".to_string()));
    assert_eq!(host_field(cfg.admin_port, 1, "ejections"), 1);
}

#[test]
fn weighted_round_robin_follows_host_weights_exactly() {
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let mut cfg = HttpConfig::new(&[]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let text = cfg.render().replace(
        r#""hosts": [] "#,
        &format!(r#""lb_type": "LB_WEIGHTED_ROUNDROBIN", "hosts": [{{"address": "{}", "weight": 3}}, {{"address": "{}", "weight": 1}}] "#, a.addr, b.addr),
    );
    let text = text.replace(r#""lb_type": "LB_ROUNDROBIN", "lb_type""#, r#""lb_type""#);
    let _m = Mosn::start(&text, &[cfg.port]);
    let mut s = connect(cfg.port);
    let mut a_count = 0;
    for _ in 0..1000 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if read_response(&mut s, false).unwrap().body == b"A" {
            a_count += 1;
        }
    }
    assert_eq!(a_count, 750, "weights 3:1 over 1000 requests");
}

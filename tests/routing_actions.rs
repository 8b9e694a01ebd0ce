//! Route actions and retries through the real binary: weighted clusters,
//! cluster_header, redirects, rewrites, host rewrites, mirroring, consistent hashing,
//! and retry rules with their counts.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn get(port: u16, path: &str, extra: &str) -> Response {
    http_exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n").as_bytes(),
    )
}

fn start(routes: &str, clusters: &[(&str, Vec<std::net::SocketAddr>, &str)]) -> (Mosn, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let m = Mosn::start(
        &multi_cluster_config(port, admin, routes, clusters),
        &[port, admin],
    );
    (m, port, admin)
}

fn cluster_stat(admin: u16, cluster: &str, name: &str) -> u64 {
    admin_stats(admin)["cluster"][cluster][name]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn weighted_clusters_split_by_weight() {
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"weighted_clusters": [
        {"cluster": {"name": "a", "weight": 80}}, {"cluster": {"name": "b", "weight": 20}}]}}]"#;
    let (_m, port, _) = start(routes, &[("a", vec![a.addr], ""), ("b", vec![b.addr], "")]);
    let mut s = connect(port);
    let mut a_count = 0;
    for _ in 0..1000 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if read_response(&mut s, false).unwrap().body == b"A" {
            a_count += 1;
        }
    }
    assert!(
        (740..=860).contains(&a_count),
        "{a_count} of 1000 went to the 80% cluster"
    );
}

#[test]
fn cluster_header_picks_the_cluster_and_its_absence_is_a_503() {
    let (a, b) = (tagged_upstream("A"), tagged_upstream("B"));
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_header": "x-cluster"}}]"#;
    let (_m, port, _) = start(routes, &[("a", vec![a.addr], ""), ("b", vec![b.addr], "")]);
    assert_eq!(get(port, "/", "X-Cluster: b\r\n").body_text(), "B");
    assert_eq!(get(port, "/", "X-Cluster: a\r\n").body_text(), "A");
    // No header, or a cluster that is not there: no cluster to send to (Envoy: 503).
    assert_eq!(get(port, "/", "").status, 503);
    assert_eq!(get(port, "/", "X-Cluster: nope\r\n").status, 503);
}

#[test]
fn redirects_answer_with_location() {
    let routes = r#"[
      {"match": {"prefix": "/old"}, "redirect": {"path_redirect": "/new", "response_code": 308}},
      {"match": {"prefix": "/secure"}, "redirect": {"scheme_redirect": "https", "host_redirect": "secure.example.com"}},
      {"match": {"prefix": "/p/"}, "redirect": {"prefix_rewrite": "/q/", "response_code": 302}}]"#;
    let (_m, port, _) = start(routes, &[]);
    let r = get(port, "/old?x=1", "");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://example.com/new?x=1")
    );
    let r = get(port, "/secure/a", "");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://secure.example.com/secure/a")
    );
    let r = get(port, "/p/file", "");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://example.com/q/file")
    );
}

#[test]
fn path_and_host_rewrites_reach_the_upstream() {
    let up = echo_upstream();
    let routes = r#"[
      {"match": {"prefix": "/api/"}, "route": {"cluster_name": "c", "prefix_rewrite": "/v2/", "host_rewrite": "internal.svc"}},
      {"match": {"prefix": "/re/"}, "route": {"cluster_name": "c", "regex_rewrite": {"pattern": {"regex": "^/re/(\\w+)$"}, "substitution": "/x/\\1"}}},
      {"match": {"prefix": "/auto"}, "route": {"cluster_name": "named", "auto_host_rewrite": true}}]"#;
    let (port, admin) = (free_port(), free_port());
    let config = multi_cluster_config(port, admin, routes, &[("c", vec![up.addr], "")]).replace(
        r#""clusters": ["#,
        &format!(r#""clusters": [{{"name": "named", "hosts": [{{"address": "{}", "hostname": "up.internal"}}]}}, "#, up.addr),
    );
    let _m = Mosn::start(&config, &[port]);
    let seen = get(port, "/api/users?id=7", "").body_text();
    assert!(
        seen.starts_with("GET /v2/users?id=7 HTTP/1.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("Host: internal.svc\r\n"), "{seen}");
    let seen = get(port, "/re/abc", "").body_text();
    assert!(seen.starts_with("GET /x/abc HTTP/1.1\r\n"), "{seen}");
    let seen = get(port, "/auto", "").body_text();
    assert!(seen.contains("Host: up.internal\r\n"), "{seen}");
}

#[test]
fn mirrored_requests_go_to_the_mirror_and_never_hold_the_original() {
    let up = tagged_upstream("main");
    let (tx, rx) = std::sync::mpsc::channel();
    let shadow = Upstream::start(move |mut s| {
        while let Some((head, body)) = read_request(&mut s) {
            let _ = tx.send((head, body));
            // A slow mirror must not delay the original.
            std::thread::sleep(Duration::from_millis(500));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "main"},
        "request_mirror_policies": {"cluster": "shadow", "percent": 100}}]"#;
    let (_m, port, _) = start(
        routes,
        &[
            ("main", vec![up.addr], ""),
            ("shadow", vec![shadow.addr], ""),
        ],
    );
    let started = Instant::now();
    let r = http_exchange(
        port,
        b"POST /m HTTP/1.1\r\nHost: shop\r\nContent-Length: 4\r\n\r\nbody",
    );
    assert_eq!(r.body_text(), "main");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the original waited for the mirror"
    );
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("the mirror got a copy");
    assert!(head.starts_with("POST /m HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Host: shop-shadow\r\n"), "{head}");
    assert_eq!(body, b"body");

    // A dead mirror changes nothing for the client.
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_m2, port2, _) = start(
        routes,
        &[("main", vec![up.addr], ""), ("shadow", vec![dead], "")],
    );
    assert_eq!(get(port2, "/", "").body_text(), "main");
}

#[test]
fn hash_policy_keeps_a_key_on_one_host() {
    let hosts: Vec<Upstream> = ["h0", "h1", "h2", "h3"]
        .iter()
        .map(|t| tagged_upstream(t))
        .collect();
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "hash_policy": [{"header": {"key": "x-user"}}]}}]"#;
    let addrs = hosts.iter().map(|h| h.addr).collect();
    let (_m, port, _) = start(routes, &[("c", addrs, r#", "lb_type": "LB_MAGLEV""#)]);
    let mut distinct = std::collections::HashSet::new();
    for user in 0..20 {
        let header = format!("X-User: user-{user}\r\n");
        let first = get(port, "/", &header).body_text();
        for _ in 0..3 {
            assert_eq!(
                get(port, "/", &header).body_text(),
                first,
                "user-{user} moved"
            );
        }
        distinct.insert(first);
    }
    assert!(distinct.len() >= 3, "20 keys spread over {distinct:?}");
}

#[test]
fn retries_on_5xx_go_to_another_host_and_are_counted() {
    let (bad, good) = (status_upstream(503), tagged_upstream("good"));
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "1ms"}}}}]"#;
    let (_m, port, admin) = start(
        routes,
        &[(
            "c",
            vec![bad.addr, good.addr],
            r#", "lb_type": "LB_RANDOM""#,
        )],
    );
    for _ in 0..20 {
        let r = get(port, "/", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.body_text(), "good");
    }
    // Every try that met the bad host was retried once, on the good host.
    let retries = cluster_stat(admin, "c", "upstream_request_retry");
    assert!(retries >= 1, "20 random first picks never met the bad host");
    assert_eq!(retries, cluster_stat(admin, "c", "upstream_response_5xx"));
    assert_eq!(
        cluster_stat(admin, "c", "upstream_request_total"),
        20 + retries
    );
}

#[test]
fn out_of_retries_relays_the_upstream_answer() {
    let bad = status_upstream(503);
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "1ms"}}}}]"#;
    let (_m, port, admin) = start(routes, &[("c", vec![bad.addr], "")]);
    assert_eq!(get(port, "/", "").status, 503);
    assert_eq!(cluster_stat(admin, "c", "upstream_request_retry"), 2);
    assert_eq!(cluster_stat(admin, "c", "upstream_request_total"), 3);
}

#[test]
fn connect_failures_are_retried_even_for_post() {
    let good = tagged_upstream("good");
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "connect-failure,5xx", "num_retries": 1, "retry_back_off": {"base_interval": "1ms"}}}}]"#;
    let (_m, port, admin) = start(
        routes,
        &[("c", vec![dead, good.addr], r#", "lb_type": "LB_RANDOM""#)],
    );
    for _ in 0..20 {
        let r = http_exchange(
            port,
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(r.status, 200);
    }
    let retries = cluster_stat(admin, "c", "upstream_request_retry");
    assert!(retries >= 1);
    assert_eq!(
        retries,
        cluster_stat(admin, "c", "upstream_connection_connect_fail")
    );
}

#[test]
fn non_idempotent_requests_are_not_retried_on_5xx() {
    let (bad, good) = (status_upstream(503), tagged_upstream("good"));
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "5xx", "num_retries": 3}}}]"#;
    let (_m, port, admin) = start(routes, &[("c", vec![bad.addr, good.addr], "")]);
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            http_exchange(
                port,
                b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
            )
            .status
        })
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert_eq!(cluster_stat(admin, "c", "upstream_request_retry"), 0);
}

#[test]
fn bodies_over_the_replay_limit_are_not_retried() {
    let (bad, good) = (status_upstream(503), tagged_upstream("good"));
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "5xx", "num_retries": 3}}}]"#;
    let (_m, port, admin) = start(routes, &[("c", vec![bad.addr, good.addr], "")]);
    let body = vec![b'x'; 100 * 1024];
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut req = format!(
            "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        statuses.push(http_exchange(port, &req).status);
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert_eq!(cluster_stat(admin, "c", "upstream_request_retry"), 0);
}

#[test]
fn per_try_timeout_moves_to_the_next_host() {
    let stall = Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        std::thread::sleep(Duration::from_secs(3));
    });
    let good = tagged_upstream("good");
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c", "timeout": "5s",
        "retry_policy": {"retry_on": "reset", "num_retries": 1, "per_try_timeout": "200ms", "retry_back_off": {"base_interval": "1ms"}}}}]"#;
    let (_m, port, admin) = start(routes, &[("c", vec![stall.addr, good.addr], "")]);
    for _ in 0..2 {
        let started = Instant::now();
        let r = get(port, "/", "");
        assert_eq!(r.status, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let retries = cluster_stat(admin, "c", "upstream_request_retry");
    assert!(
        retries >= 1,
        "round robin met the stalled host at least once"
    );
    assert_eq!(
        retries,
        cluster_stat(admin, "c", "upstream_request_timeout")
    );
}

#[test]
fn max_retries_breaker_caps_retries() {
    let bad = status_upstream(503);
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "c",
        "retry_policy": {"retry_on": "5xx", "num_retries": 5, "retry_back_off": {"base_interval": "200ms", "max_interval": "200ms"}}}}]"#;
    let (_m, port, admin) = start(
        routes,
        &[(
            "c",
            vec![bad.addr],
            r#", "circuit_breakers": [{"max_retries": 1}]"#,
        )],
    );
    // Two requests at once: only one retry may be in flight.
    let handles: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(port, "/", "").status))
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 503);
    }
    assert!(cluster_stat(admin, "c", "upstream_request_retry_overflow") >= 1);
}

#[test]
fn retriable_status_codes_and_gateway_errors_are_retried_as_configured() {
    // 429 is retried only when listed; 500 is not a gateway error, 502 is.
    for (status, retry_on, codes, expect_retry) in [
        (429u16, "retriable-status-codes", "[429]", true),
        (429, "retriable-status-codes", "[503]", false),
        (502, "gateway-error", "[]", true),
        (500, "gateway-error", "[]", false),
    ] {
        let (bad, good) = (status_upstream(status), tagged_upstream("good"));
        let routes = format!(
            r#"[{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c",
            "retry_policy": {{"retry_on": "{retry_on}", "retriable_status_codes": {codes}, "num_retries": 1,
              "retry_back_off": {{"base_interval": "1ms"}}}}}}}}]"#
        );
        // Request round robin: every request starts at the first host.
        let (_m, port, admin) = start(
            &routes,
            &[(
                "c",
                vec![bad.addr, good.addr],
                r#", "lb_type": "LB_REQUEST_ROUNDROBIN""#,
            )],
        );
        let r = get(port, "/", "");
        if expect_retry {
            assert_eq!(
                (r.status, r.body_text()),
                (200, "good".to_string()),
                "{status} {retry_on}"
            );
            assert_eq!(cluster_stat(admin, "c", "upstream_request_retry"), 1);
        } else {
            assert_eq!(r.status, status, "{retry_on} must not retry {status}");
            assert_eq!(cluster_stat(admin, "c", "upstream_request_retry"), 0);
        }
    }
}

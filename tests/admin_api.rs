//! Every admin endpoint against the real binary: status, body shape, methods, bad
//! requests; log level changes reaching the running log; readiness; `/quitquitquit`.

mod common;
use common::tls::Pki;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

fn get(port: u16, target: &str) -> Response {
    http_exchange(
        port,
        format!("GET {target} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    )
}

fn post(port: u16, target: &str, body: &str) -> Response {
    http_exchange(
        port,
        format!(
            "POST {target} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body_text()))
}

fn proxied(port: u16) -> u16 {
    http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Every path the admin API serves (the index must list them all).
const PATHS: &[&str] = &[
    "/",
    "/api/v1/config_dump",
    "/api/v1/stats",
    "/api/v1/stats_glob",
    "/stats/prometheus",
    "/api/v1/clusters",
    "/api/v1/update_cluster",
    "/api/v1/delete_cluster",
    "/api/v1/update_hosts",
    "/api/v1/get_loglevel",
    "/api/v1/update_loglevel",
    "/api/v1/enable_log",
    "/api/v1/disable_log",
    "/api/v1/states",
    "/api/v1/features",
    "/api/v1/version",
    "/api/v1/env",
    "/ready",
    "/server_info",
    "/clusters",
    "/listeners",
    "/healthcheck/fail",
    "/healthcheck/ok",
    "/quitquitquit",
];

const POST_ONLY: &[&str] = &[
    "/api/v1/update_cluster",
    "/api/v1/delete_cluster",
    "/api/v1/update_hosts",
    "/api/v1/update_loglevel",
    "/api/v1/enable_log",
    "/api/v1/disable_log",
    "/healthcheck/fail",
    "/healthcheck/ok",
    "/quitquitquit",
];

#[test]
fn every_read_endpoint_answers_in_its_shape() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let m = cfg.start();
    for _ in 0..3 {
        assert_eq!(proxied(cfg.port), 200);
    }
    let a = cfg.admin_port;

    // The index: one line per endpoint, method, path and a description.
    let r = get(a, "/");
    assert_eq!(r.status, 200);
    let index = r.body_text();
    for path in PATHS {
        let line = index
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(path))
            .unwrap_or_else(|| panic!("{path} not on the index:\n{index}"));
        let method = if POST_ONLY.contains(path) {
            "POST"
        } else {
            "GET"
        };
        assert!(line.starts_with(method), "{line}");
        assert!(
            line.split_whitespace().count() > 2,
            "no description: {line}"
        );
    }

    // MOSN's.
    let v = json_of(&get(a, "/api/v1/config_dump"));
    assert_eq!(v["cluster_manager"]["clusters"][0]["name"], "up");
    let v = json_of(&get(a, "/api/v1/stats"));
    assert_eq!(v["listener"]["l"]["downstream_request_total"], 3);
    assert_eq!(
        v["cluster"]["up"]["hosts"][0]["address"],
        up.addr.to_string()
    );

    let r = get(a, "/api/v1/stats_glob");
    assert_eq!(r.status, 200);
    let text = r.body_text();
    assert!(
        text.lines().any(|l| l == "downstream_request_total:3"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.split_once(':').is_some()), "{text}");
    let text = get(a, "/api/v1/stats_glob?pattern=cluster.up.hosts.*.rq_total").body_text();
    assert_eq!(text, format!("cluster.up.hosts.{}.rq_total:3\n", up.addr));
    let text = get(
        a,
        "/api/v1/stats_glob?pattern=listener.?.downstream_response_2xx",
    )
    .body_text();
    assert_eq!(text, "listener.l.downstream_response_2xx:3\n");

    let v = json_of(&get(a, "/api/v1/clusters"));
    assert_eq!(v[0]["name"], "up");
    assert_eq!(v[0]["hosts"][0]["rq_total"], 3);

    let v = json_of(&get(a, "/api/v1/get_loglevel"));
    assert_eq!(v, json!({"stderr": "DEBUG"}));

    let text = get(a, "/api/v1/states").body_text();
    assert_eq!(text, format!("pid={}&state=6\n", m.pid()));

    let v = json_of(&get(a, "/api/v1/features"));
    assert!(
        v.as_object().unwrap().values().all(Value::is_boolean),
        "{v}"
    );
    assert_eq!(
        get(a, "/api/v1/features?key=MultiTenantMode").body_text(),
        "false"
    );

    let text = get(a, "/api/v1/version").body_text();
    assert_eq!(
        text,
        format!("mosn version: {} (mosn-rs)\n", env!("CARGO_PKG_VERSION"))
    );

    let v = json_of(&get(a, "/api/v1/env?key=PATH&key=MOSN_RS_NO_SUCH_VAR"));
    assert_eq!(v["env"]["PATH"], std::env::var("PATH").unwrap());
    assert_eq!(v["not_found"], json!(["MOSN_RS_NO_SUCH_VAR"]));

    // Envoy's.
    let r = get(a, "/ready");
    assert_eq!((r.status, r.body_text().as_str()), (200, "LIVE\n"));

    let v = json_of(&get(a, "/server_info"));
    assert_eq!(
        v["version"],
        format!("mosn-rs/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(v["state"], "LIVE");
    assert!(v["uptime_current_epoch"].as_str().unwrap().ends_with('s'));
    assert_eq!(v["command_line_options"]["concurrency"], 2);
    assert!(v["command_line_options"]["config_path"]
        .as_str()
        .unwrap()
        .ends_with("config.json"));

    let text = get(a, "/clusters").body_text();
    let host = up.addr.to_string();
    for line in [
        "up::default_priority::max_connections::1024".to_string(),
        "up::default_priority::max_retries::3".to_string(),
        format!("up::{host}::rq_total::3"),
        format!("up::{host}::rq_active::0"),
        format!("up::{host}::health_flags::healthy"),
        format!("up::{host}::weight::1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    assert!(text.lines().all(|l| l.split("::").count() >= 3), "{text}");
    let v = json_of(&get(a, "/clusters?format=json"));
    let hs = &v["cluster_statuses"][0]["host_statuses"][0];
    assert_eq!(v["cluster_statuses"][0]["name"], "up");
    assert_eq!(
        hs["address"]["socket_address"]["port_value"],
        up.addr.port()
    );
    assert_eq!(hs["weight"], 1);
    assert!(hs["stats"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "rq_total" && s["value"] == "3"));

    assert_eq!(
        get(a, "/listeners").body_text(),
        format!("l::127.0.0.1:{}\n", cfg.port)
    );
    let v = json_of(&get(a, "/listeners?format=json"));
    assert_eq!(v["listener_statuses"][0]["name"], "l");
    assert_eq!(
        v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"],
        cfg.port
    );

    let r = get(a, "/stats/prometheus");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(r
        .body_text()
        .contains("downstream_request_total{listener=\"l\"} 3\n"));
}

#[test]
fn wrong_methods_get_405_with_allow_and_bad_requests_400_with_a_reason() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let a = cfg.admin_port;
    for path in PATHS {
        let (r, allow) = if POST_ONLY.contains(path) {
            (get(a, path), "POST")
        } else {
            (post(a, path, ""), "GET")
        };
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{path}");
    }
    let r = get(a, "/no/such/path");
    assert_eq!(r.status, 404);
    assert!(json_of(&r)["paths"].as_array().unwrap().len() >= PATHS.len());

    let reason = |r: &Response| -> String {
        assert_eq!(r.status, 400, "{}", r.body_text());
        json_of(r)["error"].as_str().unwrap().to_string()
    };
    assert!(reason(&post(a, "/api/v1/update_loglevel", "{nope")).contains("not JSON"));
    assert!(reason(&post(
        a,
        "/api/v1/update_loglevel",
        r#"{"log_path": "stderr", "log_level": "LOUD"}"#
    ))
    .contains("LOUD"));
    assert!(reason(&post(
        a,
        "/api/v1/update_loglevel",
        r#"{"log_path": "/var/log/other.log", "log_level": "INFO"}"#
    ))
    .contains("other.log"));
    assert!(reason(&post(a, "/api/v1/disable_log", "/var/log/other.log")).contains("other.log"));
    assert!(reason(&get(a, "/api/v1/env")).contains("key"));
    assert!(reason(&get(a, "/api/v1/stats_glob?pattern=")).contains("pattern"));
    assert!(reason(&get(a, "/clusters?format=yaml")).contains("yaml"));
    assert!(reason(&get(a, "/api/v1/stats?verbose=1")).contains("verbose"));
    assert!(reason(&get(a, "/ready?x=%zz")).contains("percent"));
    assert!(reason(&post(
        a,
        "/api/v1/update_cluster",
        r#"{"name": "x", "hosts": 5}"#
    ))
    .starts_with("cluster.hosts"));
    // Nothing refused changed anything.
    assert_eq!(
        json_of(&get(a, "/api/v1/get_loglevel")),
        json!({"stderr": "DEBUG"})
    );
    assert_eq!(proxied(cfg.port), 200);
}

#[test]
fn config_dump_redacts_inline_private_keys() {
    let Some(pki) = Pki::new() else { return };
    let pair = pki.server("server", "server.test", &["DNS:server.test"]);
    let cfg = HttpConfig::new(&[]);
    let mut v: Value = serde_json::from_str(&cfg.render()).unwrap();
    v["servers"][0]["listeners"][0]["filter_chains"][0]["tls_context"] = json!({
        "status": true, "cert_chain": pair.cert_pem(), "private_key": pair.key_pem()
    });
    let _m = Mosn::start(&v.to_string(), &[cfg.port, cfg.admin_port]);
    let r = get(cfg.admin_port, "/api/v1/config_dump");
    assert_eq!(r.status, 200);
    let dump = json_of(&r);
    let tls = &dump["servers"][0]["listeners"][0]["filter_chains"][0]["tls_context"];
    assert_eq!(tls["private_key"], "[redacted]");
    assert_eq!(
        tls["cert_chain"],
        pair.cert_pem(),
        "certificates are public"
    );
    let text = r.body_text();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let key_body: String = pair.key_pem().lines().nth(1).unwrap().to_string();
    assert!(!text.contains(&key_body));
}

#[test]
fn log_level_changes_reach_the_running_log() {
    // A host nobody listens on: each request logs "upstream connect failed" at DEBUG.
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = HttpConfig::new(&[dead]);
    let text = cfg.render().replace(
        r#""default_log_level": "DEBUG""#,
        r#""default_log_level": "INFO""#,
    );
    let m = Mosn::start(&text, &[cfg.port, cfg.admin_port]);
    let a = cfg.admin_port;
    let debug_lines = || {
        m.log_text()
            .lines()
            .filter(|l| l.contains("DEBUG") && l.contains("upstream connect failed"))
            .count()
    };
    assert_eq!(proxied(cfg.port), 503);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(debug_lines(), 0, "INFO hides DEBUG:\n{}", m.log_text());
    assert_eq!(
        json_of(&get(a, "/api/v1/get_loglevel")),
        json!({"stderr": "INFO"})
    );

    let r = post(
        a,
        "/api/v1/update_loglevel",
        r#"{"log_path": "stderr", "log_level": "DEBUG"}"#,
    );
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "update logger success\n")
    );
    assert_eq!(
        json_of(&get(a, "/api/v1/get_loglevel")),
        json!({"stderr": "DEBUG"})
    );
    assert_eq!(proxied(cfg.port), 503);
    assert!(
        wait_until(Duration::from_secs(5), || debug_lines() >= 1),
        "DEBUG shows after the change:\n{}",
        m.log_text()
    );

    // Disabled: nothing at all is written, not even INFO or WARN lines.
    assert_eq!(post(a, "/api/v1/disable_log", "stderr").status, 200);
    std::thread::sleep(Duration::from_millis(100));
    let before = m.log_text().len();
    assert_eq!(proxied(cfg.port), 503);
    assert_eq!(get(a, "/nope").status, 404); // logs a refusal at INFO when enabled
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        m.log_text().len(),
        before,
        "a disabled log stays silent:\n{}",
        &m.log_text()[before..]
    );

    // Enabled again, at the level it had.
    assert_eq!(post(a, "/api/v1/enable_log", "stderr").status, 200);
    let seen = debug_lines();
    assert_eq!(proxied(cfg.port), 503);
    assert!(
        wait_until(Duration::from_secs(5), || debug_lines() > seen),
        "{}",
        m.log_text()
    );

    // Back to WARN: the DEBUG lines stop.
    let r = post(
        a,
        "/api/v1/update_loglevel",
        r#"{"log_path": "stderr", "log_level": "WARN"}"#,
    );
    assert_eq!(r.status, 200);
    let seen = debug_lines();
    assert_eq!(proxied(cfg.port), 503);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(debug_lines(), seen, "{}", m.log_text());
}

#[test]
fn healthcheck_fail_takes_readiness_away_while_traffic_still_flows() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let a = cfg.admin_port;
    assert_eq!(get(a, "/ready").status, 200);
    let r = post(a, "/healthcheck/fail", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "OK\n"));
    let r = get(a, "/ready");
    assert_eq!((r.status, r.body_text().as_str()), (503, "DRAINING\n"));
    assert_eq!(json_of(&get(a, "/server_info"))["state"], "DRAINING");
    // Envoy: failing health checks is for load balancers; the proxy keeps serving.
    assert_eq!(proxied(cfg.port), 200);
    assert_eq!(post(a, "/healthcheck/ok", "").status, 200);
    let r = get(a, "/ready");
    assert_eq!((r.status, r.body_text().as_str()), (200, "LIVE\n"));
    assert_eq!(json_of(&get(a, "/server_info"))["state"], "LIVE");
}

#[test]
fn quitquitquit_drains_like_sigterm_and_exits_0() {
    // An upstream that takes a second to answer: a request is in flight when the
    // stop is asked for, and must still be answered.
    let slow = Upstream::start(|mut s| {
        while read_request(&mut s).is_some() {
            std::thread::sleep(Duration::from_millis(1000));
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
                .is_err()
            {
                return;
            }
        }
    });
    let cfg = HttpConfig::new(&[slow.addr]);
    let mut m = cfg.start();
    let port = cfg.port;
    let in_flight =
        std::thread::spawn(move || http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    std::thread::sleep(Duration::from_millis(300));
    let r = post(cfg.admin_port, "/quitquitquit", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "OK\n"));
    // Draining: readiness is gone, MOSN's state is GracefulStopping (8).
    assert!(wait_until(Duration::from_millis(500), || get(
        cfg.admin_port,
        "/ready"
    )
    .status
        == 503));
    assert_eq!(get(cfg.admin_port, "/ready").body_text(), "DRAINING\n");
    assert!(get(cfg.admin_port, "/api/v1/states")
        .body_text()
        .ends_with("&state=8\n"));
    let answer = in_flight.join().unwrap();
    assert_eq!((answer.status, answer.body_text().as_str()), (200, "slow"));
    assert_eq!(m.wait_exit(Duration::from_secs(10)), Some(0));
    let log = m.log_text();
    assert!(log.contains("/quitquitquit: draining"), "{log}");
}

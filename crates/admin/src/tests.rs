//! Routing, methods, parameters and answer shapes, over stand-ins for the cluster
//! manager and the loggers (the real ones are exercised by the black-box tests).

use super::*;
use std::sync::Mutex;

#[derive(Default)]
struct Fake {
    updated: Mutex<Vec<String>>,
}

impl ClusterAdmin for Fake {
    fn clusters(&self) -> Value {
        json!([{
            "name": "c",
            "hosts": [
                {"address": "127.0.0.1:1", "hostname": "a", "weight": 2, "healthy": true,
                 "failed_active_health_check": false, "ejected": false,
                 "rq_total": 5, "rq_active": 1, "rq_error": 0, "cx_total": 2, "cx_connect_fail": 0, "cx_active": 1},
                {"address": "127.0.0.1:2", "hostname": "", "weight": 1, "healthy": false,
                 "failed_active_health_check": true, "ejected": true,
                 "rq_total": 0, "rq_active": 0, "rq_error": 0, "cx_total": 0, "cx_connect_fail": 3, "cx_active": 0}
            ],
            "circuit_breakers": {
                "connections": {"max": 1024, "current": 1, "overflows": 0},
                "pending_requests": {"max": 1024, "current": 0, "overflows": 0},
                "requests": {"max": 1024, "current": 0, "overflows": 0},
                "retries": {"max": 3, "current": 0, "overflows": 0}
            }
        }])
    }
    fn update_cluster(&self, cfg: ClusterConfig) -> Result<Vec<String>, AdminError> {
        self.updated.lock().unwrap().push(cfg.name);
        Ok(vec![])
    }
    fn delete_cluster(&self, name: &str) -> Result<(), AdminError> {
        if name == "c" {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("no cluster named {name:?}")))
        }
    }
    fn update_hosts(&self, _: &str, hosts: Vec<HostConfig>) -> Result<(), AdminError> {
        assert_eq!(hosts.len(), 1);
        Ok(())
    }
}

#[derive(Default)]
struct FakeLogs {
    level: Mutex<String>,
    enabled: Mutex<bool>,
}

impl LogControl for FakeLogs {
    fn loggers(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("stderr".to_string(), self.level.lock().unwrap().clone())])
    }
    fn set_level(&self, path: &str, level: &str) -> Result<(), AdminError> {
        if path != "stderr" && !path.is_empty() {
            return Err(AdminError::BadRequest(format!("no logger {path:?}")));
        }
        *self.level.lock().unwrap() = level.into();
        Ok(())
    }
    fn set_enabled(&self, path: &str, enabled: bool) -> Result<(), AdminError> {
        if path != "stderr" && !path.is_empty() {
            return Err(AdminError::BadRequest(format!("no logger {path:?}")));
        }
        *self.enabled.lock().unwrap() = enabled;
        Ok(())
    }
}

struct Fixture {
    state: AdminState,
    fake: Arc<Fake>,
    logs: Arc<FakeLogs>,
}

fn fixture() -> Fixture {
    let fake = Arc::new(Fake::default());
    let logs = Arc::new(FakeLogs {
        level: Mutex::new("INFO".into()),
        enabled: Mutex::new(true),
    });
    let state = AdminState {
        config: Box::new(move || {
            json!({
                "servers": [{"listeners": [{"filter_chains": [{"tls_context": {
                    "cert_chain": "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----",
                    "ticket": "ticket-secret"
                }}]}]}],
                "cluster_manager": {"clusters": [{"tls_context": {"private_key": "/etc/keys/client.key"}}]}
            })
        }),
        xds: None,
        stats: Box::new(|| {
            json!({
                "listener": {"a": {"downstream_request_total": 2, "downstream_connection_active": 1,
                                   "downstream_request_time": {"count": 2, "sum_us": 90, "p50_us": 40, "p90_us": 48, "p99_us": 50}},
                             "b": {"downstream_request_total": 3, "downstream_connection_active": 0}},
                "cluster": {"c": {"upstream_request_total": 5,
                                  "hosts": [{"address": "127.0.0.1:1", "rq_total": 5, "healthy": true, "hostname": "a"}]}}
            })
        }),
        prometheus: Box::new(|| "# HELP x y\n# TYPE x gauge\nx 1\n".into()),
        clusters: fake.clone(),
        logs: logs.clone(),
        lifecycle: Arc::new(Lifecycle::new()),
        info: ServerInfo {
            version: "9.9.9".into(),
            config_path: "/etc/mosn.json".into(),
            concurrency: 2,
            listeners: vec![ListenerInfo {
                name: "l".into(),
                address: "127.0.0.1:2045".into(),
            }],
        },
    };
    Fixture { state, fake, logs }
}

fn call(s: &AdminState, method: &str, target: &str, body: &str) -> Reply {
    let req = Request::parse(method.as_bytes(), target.as_bytes(), body.as_bytes()).unwrap();
    route(s, &req)
}

fn body_json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body_text()))
}

#[test]
fn reads_are_get_and_changes_are_post() {
    let f = fixture();
    let s = &f.state;
    assert_eq!(call(s, "GET", "/api/v1/stats", "").status, 200);
    assert_eq!(call(s, "GET", "/api/v1/config_dump", "").status, 200);
    let r = call(s, "POST", "/api/v1/stats", "");
    assert_eq!((r.status, r.allow), (405, Some("GET")));
    let r = call(s, "GET", "/api/v1/update_cluster", "");
    assert_eq!((r.status, r.allow), (405, Some("POST")));
    for path in [
        "/healthcheck/fail",
        "/healthcheck/ok",
        "/quitquitquit",
        "/api/v1/update_loglevel",
        "/api/v1/enable_log",
        "/api/v1/disable_log",
    ] {
        assert_eq!(call(s, "GET", path, "").status, 405, "{path}");
    }
    assert_eq!(call(s, "GET", "/nope", "").status, 404);
    let r = call(
        s,
        "POST",
        "/api/v1/update_cluster",
        r#"{"Name": "new", "hosts": []}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(f.fake.updated.lock().unwrap().as_slice(), ["new"]);
}

#[test]
fn every_endpoint_is_listed_on_the_index() {
    let f = fixture();
    let r = call(&f.state, "GET", "/", "");
    assert_eq!(r.status, 200);
    let text = r.body_text();
    for e in ENDPOINTS {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(e.path))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", e.path));
        assert!(line.starts_with(e.method), "{line}");
        assert!(!e.help.is_empty());
    }
}

#[test]
fn bad_bodies_and_parameters_get_400_with_a_reason() {
    let f = fixture();
    let s = &f.state;
    let r = call(s, "POST", "/api/v1/update_cluster", "{nope");
    assert_eq!(r.status, 400);
    assert!(body_json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
    let r = call(
        s,
        "POST",
        "/api/v1/update_cluster",
        r#"{"name": "x", "hosts": "no"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(body_json(&r)["error"]
        .as_str()
        .unwrap()
        .starts_with("cluster.hosts"));
    assert_eq!(
        call(s, "POST", "/api/v1/delete_cluster", r#"{"name": "zz"}"#).status,
        404
    );
    assert_eq!(call(s, "POST", "/api/v1/delete_cluster", "{}").status, 400);
    assert_eq!(
        call(
            s,
            "POST",
            "/api/v1/update_hosts",
            r#"{"cluster": "c", "hosts": [{"address": "127.0.0.1:1"}]}"#
        )
        .status,
        200
    );
    let r = call(s, "GET", "/api/v1/stats?x=1", "");
    assert_eq!(r.status, 400);
    assert!(body_json(&r)["error"].as_str().unwrap().contains("\"x\""));
    assert_eq!(call(s, "GET", "/clusters?format=xml", "").status, 400);
    assert_eq!(
        call(s, "GET", "/api/v1/stats_glob?pattern=", "").status,
        400
    );
    assert_eq!(call(s, "GET", "/api/v1/env", "").status, 400);
}

#[test]
fn config_dump_redacts_inline_private_keys_and_tickets() {
    let f = fixture();
    let v = body_json(&call(&f.state, "GET", "/api/v1/config_dump", ""));
    let tls = &v["servers"][0]["listeners"][0]["filter_chains"][0]["tls_context"];
    assert_eq!(tls["private_key"], "[redacted]");
    assert_eq!(tls["ticket"], "[redacted]");
    assert!(tls["cert_chain"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE"));
    assert_eq!(
        v["cluster_manager"]["clusters"][0]["tls_context"]["private_key"],
        "/etc/keys/client.key"
    );
    assert!(!v.to_string().contains("secret"));
}

#[test]
fn stats_glob_totals_and_patterns() {
    let f = fixture();
    let r = call(&f.state, "GET", "/api/v1/stats_glob", "");
    assert_eq!(
        r.body_text(),
        "downstream_connection_active:1\ndownstream_request_total:5\n"
    );
    let r = call(
        &f.state,
        "GET",
        "/api/v1/stats_glob?pattern=*.downstream_request_total",
        "",
    );
    assert_eq!(
        r.body_text(),
        "listener.a.downstream_request_total:2\nlistener.b.downstream_request_total:3\n"
    );
    let r = call(
        &f.state,
        "GET",
        "/api/v1/stats_glob?pattern=cluster.c.hosts.*",
        "",
    );
    assert_eq!(
        r.body_text(),
        "cluster.c.hosts.127.0.0.1:1.healthy:true\ncluster.c.hosts.127.0.0.1:1.rq_total:5\n"
    );
    // A histogram is an object: its leaves match by dotted name, and the totals
    // (which add listeners up) leave it out, as quantiles do not add.
    let r = call(
        &f.state,
        "GET",
        "/api/v1/stats_glob?pattern=*.downstream_request_time.p*",
        "",
    );
    assert_eq!(
        r.body_text(),
        "listener.a.downstream_request_time.p50_us:40\nlistener.a.downstream_request_time.p90_us:48\nlistener.a.downstream_request_time.p99_us:50\n"
    );
    assert!(handlers::glob_match(b"a?c*", b"abcdef"));
    assert!(!handlers::glob_match(b"a?c", b"abcd"));
    assert!(handlers::glob_match(b"*", b""));
}

#[test]
fn log_endpoints_take_mosn_bodies() {
    let f = fixture();
    let s = &f.state;
    let r = call(
        s,
        "POST",
        "/api/v1/update_loglevel",
        r#"{"log_path": "stderr", "log_level": "debug"}"#,
    );
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "update logger success\n")
    );
    assert_eq!(*f.logs.level.lock().unwrap(), "DEBUG");
    assert_eq!(
        body_json(&call(s, "GET", "/api/v1/get_loglevel", "")),
        json!({"stderr": "DEBUG"})
    );
    let r = call(
        s,
        "POST",
        "/api/v1/update_loglevel",
        r#"{"log_path": "stderr", "log_level": "LOUD"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body_text().contains("LOUD"));
    let r = call(
        s,
        "POST",
        "/api/v1/update_loglevel",
        r#"{"log_path": "/nope.log", "log_level": "INFO"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(call(s, "POST", "/api/v1/disable_log", "stderr").status, 200);
    assert!(!*f.logs.enabled.lock().unwrap());
    assert_eq!(
        call(s, "POST", "/api/v1/enable_log", "stderr\n").status,
        200
    );
    assert!(*f.logs.enabled.lock().unwrap());
    assert_eq!(call(s, "POST", "/api/v1/enable_log", "/x.log").status, 400);
}

#[test]
fn readiness_follows_health_check_fail_and_drain() {
    let f = fixture();
    let s = &f.state;
    let r = call(s, "GET", "/ready", "");
    assert_eq!((r.status, r.body_text().as_str()), (200, "LIVE\n"));
    assert_eq!(call(s, "POST", "/healthcheck/fail", "").status, 200);
    let r = call(s, "GET", "/ready", "");
    assert_eq!((r.status, r.body_text().as_str()), (503, "DRAINING\n"));
    assert_eq!(
        body_json(&call(s, "GET", "/server_info", ""))["state"],
        "DRAINING"
    );
    assert!(call(s, "GET", "/api/v1/states", "")
        .body_text()
        .ends_with("&state=6\n"));
    assert_eq!(call(s, "POST", "/healthcheck/ok", "").status, 200);
    assert_eq!(call(s, "GET", "/ready", "").status, 200);
    s.lifecycle.set_draining();
    assert_eq!(call(s, "GET", "/ready", "").status, 503);
    assert!(call(s, "GET", "/api/v1/states", "")
        .body_text()
        .ends_with("&state=8\n"));
}

#[test]
fn quit_stops_after_answering() {
    let f = fixture();
    let r = call(&f.state, "POST", "/quitquitquit", "");
    assert_eq!(r.status, 200);
    let then = r.then.expect("a stop after the answer");
    then();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            f.state.lifecycle.stop_requested(),
        )
        .await
        .expect("stop requested");
    });
}

#[test]
fn envoy_clusters_and_listeners() {
    let f = fixture();
    let s = &f.state;
    let text = call(s, "GET", "/clusters", "").body_text();
    for line in [
        "c::default_priority::max_connections::1024",
        "c::default_priority::max_retries::3",
        "c::127.0.0.1:1::rq_total::5",
        "c::127.0.0.1:1::rq_active::1",
        "c::127.0.0.1:1::cx_active::1",
        "c::127.0.0.1:1::hostname::a",
        "c::127.0.0.1:1::health_flags::healthy",
        "c::127.0.0.1:1::weight::2",
        "c::127.0.0.1:2::health_flags::/failed_active_hc/failed_outlier_check",
        "c::127.0.0.1:2::cx_connect_fail::3",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    let v = body_json(&call(s, "GET", "/clusters?format=json", ""));
    let host = &v["cluster_statuses"][0]["host_statuses"][0];
    assert_eq!(host["address"]["socket_address"]["port_value"], 1);
    assert_eq!(host["weight"], 2);
    assert_eq!(
        v["cluster_statuses"][0]["host_statuses"][1]["health_status"]["failed_active_health_check"],
        true
    );
    assert_eq!(
        call(s, "GET", "/listeners", "").body_text(),
        "l::127.0.0.1:2045\n"
    );
    let v = body_json(&call(s, "GET", "/listeners?format=json", ""));
    assert_eq!(
        v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"],
        2045
    );
}

#[test]
fn mosn_info_endpoints() {
    let f = fixture();
    let s = &f.state;
    assert_eq!(
        call(s, "GET", "/api/v1/version", "").body_text(),
        "mosn version: 9.9.9 (mosn-rs)\n"
    );
    let v = body_json(&call(s, "GET", "/api/v1/features", ""));
    assert_eq!(v["MultiTenantMode"], false);
    assert_eq!(
        call(s, "GET", "/api/v1/features?key=XdsMtlsEnable", "").body_text(),
        "false"
    );
    std::env::set_var("MOSN_ADMIN_TEST_ENV", "yes");
    let v = body_json(&call(
        s,
        "GET",
        "/api/v1/env?key=MOSN_ADMIN_TEST_ENV&key=MOSN_ADMIN_TEST_ABSENT",
        "",
    ));
    assert_eq!(
        v,
        json!({"env": {"MOSN_ADMIN_TEST_ENV": "yes"}, "not_found": ["MOSN_ADMIN_TEST_ABSENT"]})
    );
    let v = body_json(&call(s, "GET", "/server_info", ""));
    assert_eq!(v["version"], "mosn-rs/9.9.9");
    assert_eq!(v["state"], "LIVE");
    assert_eq!(v["command_line_options"]["concurrency"], 2);
    let r = call(s, "GET", "/stats/prometheus", "");
    assert_eq!(r.content_type, mosn_observe::prometheus::CONTENT_TYPE);
    assert!(r.body_text().contains("# TYPE x gauge"));
}

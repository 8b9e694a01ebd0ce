//! The admin API and process logging, against the real binary.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn admin_dumps_the_running_config_and_counts_traffic() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    for _ in 0..3 {
        assert_eq!(
            http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
            200
        );
    }
    let dump = http_exchange(
        cfg.admin_port,
        b"GET /api/v1/config_dump HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(dump.status, 200);
    assert_eq!(
        dump.header("content-type").as_deref(),
        Some("application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&dump.body).unwrap();
    assert_eq!(
        v["servers"][0]["listeners"][0]["address"],
        format!("127.0.0.1:{}", cfg.port)
    );
    assert_eq!(v["cluster_manager"]["clusters"][0]["name"], "up");

    let stats = admin_stats(cfg.admin_port);
    let l = &stats["listener"]["l"];
    assert_eq!(l["downstream_request_total"], 3);
    assert_eq!(l["downstream_response_2xx"], 3);
    assert_eq!(stats["cluster"]["up"]["upstream_request_total"], 3);
    assert_eq!(stats["cluster"]["up"]["upstream_response_2xx"], 3);

    let r = http_exchange(cfg.admin_port, b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 404);
    let r = http_exchange(
        cfg.admin_port,
        b"POST /api/v1/stats HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn logs_go_to_the_configured_file_at_the_configured_level() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/mosn.log");
    // A host nobody listens on: the request fails with a DEBUG-level log line.
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = HttpConfig::new(&[dead]);
    let text = cfg
        .render()
        .replace(
            r#""default_log_path": "stderr""#,
            &format!(r#""default_log_path": "{}""#, log.display()),
        )
        .replace(
            r#""default_log_level": "DEBUG""#,
            r#""default_log_level": "INFO""#,
        );
    let m = Mosn::start(&text, &[cfg.port]);
    assert_eq!(
        http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
        503
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&log).expect("log file created, folder included");
        if text.contains("started") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.contains("started"), "INFO lines are written: {text}");
    assert!(
        !text.contains("DEBUG"),
        "INFO level hides DEBUG lines: {text}"
    );
    assert!(
        m.log_text().is_empty(),
        "nothing on stdout/stderr: {}",
        m.log_text()
    );
}

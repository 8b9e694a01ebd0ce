//! Access logs (MOSN's `access_logs`): lines checked field by field for MOSN's
//! default format, a custom format with request headers and response flags, the JSON
//! option, reopening on SIGUSR1 (logrotate), and a bad format refused at start.

mod common;

use common::cli::validate_fails_with;
use common::*;
use std::time::{Duration, Instant};

/// The log's lines once it has at least `n`, or after 5 s.
fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logging_proxy(up: &Upstream, log: &std::path::Path, format: &str, json: bool) -> HttpConfig {
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.routes = r#"{"match": {"prefix": "/none"}, "direct_response": {"status": 204}},
        {"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}"#
        .into();
    let format = if format.is_empty() {
        String::new()
    } else {
        format!(r#", "log_format": {format:?}"#)
    };
    cfg.listener_extra = format!(
        r#", "access_logs": [{{"log_path": {:?}{format}, "json": {json}}}]"#,
        log.display().to_string()
    );
    cfg
}

#[test]
fn mosns_default_format_field_by_field() {
    let up = tagged_upstream("hello");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = logging_proxy(&up, &log, "", false);
    let _m = cfg.start();
    let r = http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    let got = lines(&log, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let f: Vec<&str> = got[0].split(' ').collect();
    // start_time is two fields: date and time.
    assert_eq!(f.len(), 15, "{}", got[0]);
    assert!(
        f[0].len() == 10 && f[0].as_bytes()[4] == b'/',
        "date: {}",
        got[0]
    );
    assert!(f[1].len() == 12 && f[1].contains(':'), "time: {}", got[0]);
    for (i, name) in [
        (2, "request_received"),
        (3, "response_received"),
        (8, "duration"),
    ] {
        assert!(f[i].ends_with('s'), "{name}: {}", got[0]);
    }
    let sent: usize = f[4].parse().unwrap();
    assert!(
        sent >= r.head.len() + r.body.len(),
        "bytes_sent: {}",
        got[0]
    );
    // The request head, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n".
    assert_eq!(f[5], "28", "bytes_received: {}", got[0]);
    assert_eq!(f[6], "HTTP1");
    assert_eq!((f[7], f[9], f[10]), ("200", "false", "200"));
    assert!(
        f[11].starts_with("127.0.0.1:"),
        "upstream_local_address: {}",
        got[0]
    );
    assert_eq!(f[12], format!("127.0.0.1:{}", cfg.port));
    assert!(
        f[13].starts_with("127.0.0.1:"),
        "downstream_remote_address: {}",
        got[0]
    );
    assert_eq!(f[14], up.addr.to_string());
}

#[test]
fn custom_format_json_and_reopen_on_sigusr1() {
    let up = tagged_upstream("hello");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let format =
        "%response_code% %response_flags% %request_header_x-id% %upstream_host% %upstream_cluster%";
    let cfg = logging_proxy(&up, &log, format, false);
    let m = cfg.start();
    http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Id: 42\r\n\r\n");
    http_exchange(cfg.port, b"GET /none HTTP/1.1\r\nHost: a\r\n\r\n");
    let got = lines(&log, 2);
    assert_eq!(got[0], format!("200 - 42 {} up", up.addr));
    assert_eq!(got[1], "204 - - - -");
    // logrotate: the file is moved away, SIGUSR1 makes the proxy write a new one.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    m.signal(10);
    std::thread::sleep(Duration::from_millis(200));
    http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Id: 7\r\n\r\n");
    let got = lines(&log, 1);
    assert_eq!(got, vec![format!("200 - 7 {} up", up.addr)]);
    assert_eq!(lines(&rotated, 2).len(), 2);

    // JSON, and a no-route answer's flag.
    let log = dir.path().join("json.log");
    let mut cfg = logging_proxy(
        &up,
        &log,
        "%response_code% %response_flags% %request_header_x-id%",
        true,
    );
    cfg.routes = r#"{"match": {"prefix": "/only"}, "route": {"cluster_name": "up"}}"#.into();
    let _m2 = cfg.start();
    http_exchange(
        cfg.port,
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-Id: \"q\"\r\n\r\n",
    );
    let got = lines(&log, 1);
    let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["response_code"], "404");
    assert_eq!(v["response_flags"], "NR");
    assert_eq!(v["request_header_x-id"], "\"q\"");
}

#[test]
fn an_unknown_variable_is_a_config_error_with_its_path() {
    let up = tagged_upstream("x");
    let dir = tempfile::tempdir().unwrap();
    let cfg = logging_proxy(&up, &dir.path().join("a.log"), "%nonsense%", false);
    let err = validate_fails_with(&cfg.render());
    assert!(
        err.contains(
            "servers[0].listeners[0].access_logs[0].log_format: unknown variable %nonsense%"
        ),
        "{err}"
    );
}

//! Access logs (MOSN's `access_logs`): lines checked field by field for MOSN's
//! default format, a custom format with request headers and response flags, the JSON
//! option, reopening on SIGUSR1 (logrotate), and a bad format refused at start; the
//! same logs for HTTP/2 streams (curl), tcp_proxy connections and SOFA Bolt calls
//! (the real sofa-rpc-node client and server); response header fields; the dropped
//! lines stat on the admin API.

mod common;

use common::cli::validate_fails_with;
use common::peers::{node_peers, x_client, XClient, XServer};
use common::rpc::rpc_proxy_with;
use common::tls::curl;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
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
    // Two connections may land on two workers, whose buffered lines reach the file
    // in either order.
    let mut got = lines(&log, 2);
    got.sort();
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

/// An upstream that answers with an `X-Up` header and a 5-byte body.
fn header_upstream() -> Upstream {
    fixed_upstream(
        b"HTTP/1.1 200 OK\r\nX-Up: seven\r\nContent-Length: 5\r\n\r\nhello",
        false,
    )
}

#[test]
fn response_header_fields_are_logged_for_http1() {
    let up = header_upstream();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let format = "%response_header_x-up% %response_header_nope% %request_header_x-id%";
    let cfg = logging_proxy(&up, &log, format, false);
    let _m = cfg.start();
    let r = http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Id: 9\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(lines(&log, 1), vec!["seven - 9".to_string()]);
}

/// A proxy with an h2c listener logging in `format` to a file in a temp dir, in
/// front of `header_upstream()`: the upstream, the dir (kept while it lives), the
/// log's path, the config and the running proxy.
fn h2_logging_proxy(
    format: &str,
) -> (
    Upstream,
    tempfile::TempDir,
    std::path::PathBuf,
    HttpConfig,
    Mosn,
) {
    let up = header_upstream();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = logging_proxy(&up, &log, format, false);
    let config = cfg.render().replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
    );
    let m = Mosn::start(&config, &[cfg.port, cfg.admin_port]);
    (up, dir, log, cfg, m)
}

#[test]
fn http2_streams_are_logged_like_http1_requests() {
    let Some(_) = common::peers::peer_program("curl") else {
        return;
    };
    let format = "%protocol% %response_code% %response_flags% %bytes_received% %bytes_sent% %request_header_x-id% %response_header_x-up% %upstream_host% %upstream_cluster% %downstream_local_address%";
    let (up, _dir, log, cfg, _m) = h2_logging_proxy(format);
    let url = format!("http://127.0.0.1:{}/x", cfg.port);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "x-id: 5",
        "--data-binary",
        "0123456789",
        &url,
    ])
    .unwrap();
    assert_eq!(out.stdout, "hello", "{}", out.stderr);
    // The stream's line is written when the proxy ends the stream, which may come
    // after curl has its answer: wait for it, so that the lines are in order.
    assert_eq!(lines(&log, 1).len(), 1);
    let nothing = format!("http://127.0.0.1:{}/none", cfg.port);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &nothing,
    ])
    .unwrap();
    assert_eq!(out.stdout, "204");
    let got = lines(&log, 2);
    assert_eq!(
        got[0],
        format!(
            "HTTP2 200 - 10 5 5 seven {} up 127.0.0.1:{}",
            up.addr, cfg.port
        )
    );
    assert_eq!(
        got[1],
        format!("HTTP2 204 - 0 0 - - - - 127.0.0.1:{}", cfg.port)
    );
}

/// The streams of one HTTP/2 connection share its addresses' texts (made at the
/// first stream that logs): every line names the same two addresses.
#[test]
fn http2_streams_of_one_connection_log_its_addresses() {
    let Some(h2load) = common::peers::peer_program("h2load") else {
        return;
    };
    let format = "%protocol% %downstream_local_address% %downstream_remote_address%";
    let (_up, _dir, log, cfg, _m) = h2_logging_proxy(format);
    // One connection, three streams one after another. (Not curl with three URLs:
    // curl 7.88 fails to reuse a prior-knowledge h2 connection, curl/curl#10634.)
    let out = std::process::Command::new(h2load)
        .args(["-n", "3", "-c", "1", "-m", "1"])
        .arg(format!("http://127.0.0.1:{}/x", cfg.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 succeeded"), "{text}");
    let got = lines(&log, 3);
    let local = format!("127.0.0.1:{}", cfg.port);
    let first: Vec<&str> = got[0].split(' ').collect();
    assert_eq!(first[..2], ["HTTP2", local.as_str()], "{got:?}");
    let remote: std::net::SocketAddr = first[2].parse().expect("the client's address");
    assert!(
        remote.ip().is_loopback() && remote.port() != cfg.port,
        "{got:?}"
    );
    assert!(got.iter().all(|line| line == &got[0]), "{got:?}");
}

/// An HTTP/1.1 request to an HTTP/2 upstream is logged with the host and cluster
/// that answered (the HTTP/1-to-HTTP/2 engine once left them out). The h2c upstream
/// is a second mosn-rs in front of the HTTP/1.1 one.
#[test]
fn http1_requests_to_an_http2_upstream_log_their_host() {
    let Some(_) = common::peers::peer_program("curl") else {
        return;
    };
    let up = header_upstream();
    let front = HttpConfig::new(&[up.addr]);
    let front_config = front.render().replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
    );
    let _front = Mosn::start(&front_config, &[front.port, front.admin_port]);
    let h2c: std::net::SocketAddr = format!("127.0.0.1:{}", front.port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut cfg = HttpConfig::new(&[h2c]);
    cfg.listener_extra = format!(
        r#", "access_logs": [{{"log_path": {:?}, "log_format": "%protocol% %response_code% %upstream_host% %upstream_cluster%"}}]"#,
        log.display().to_string()
    );
    let config = cfg.render().replace(
        r#""upstream_protocol": "Http1""#,
        r#""upstream_protocol": "Http2""#,
    );
    let _m = Mosn::start(&config, &[cfg.port, cfg.admin_port]);
    let url = format!("http://127.0.0.1:{}/x", cfg.port);
    let out = curl(&["--http1.1", &url]).unwrap();
    assert_eq!(out.stdout, "hello", "{}", out.stderr);
    assert_eq!(lines(&log, 1), [format!("HTTP1 200 {h2c} up")]);
}

#[test]
fn tcp_proxy_connections_are_logged_when_they_end() {
    let up = echo_tcp_upstream();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tcp.log");
    let (port, dead_port, admin) = (free_port(), free_port(), free_port());
    // Bound and released: nothing listens there.
    let closed_port = free_port();
    let config = json!({
        "servers": [{"default_log_path": "stderr", "processor": 1,
            "listeners": [
                {"name": "t", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                 "access_logs": [{"log_path": log.display().to_string(),
                    "log_format": "%protocol% %bytes_received% %bytes_sent% %upstream_host% %upstream_cluster% %response_flags%"}],
                 "filter_chains": [{"filters": [{"type": "tcp_proxy", "config": {"cluster": "echo"}}]}]},
                {"name": "dead", "address": format!("127.0.0.1:{dead_port}"), "bind_port": true,
                 "access_logs": [{"log_path": log.display().to_string(),
                    "log_format": "%protocol% %bytes_received% %bytes_sent% %upstream_host% %upstream_cluster% %response_flags%"}],
                 "filter_chains": [{"filters": [{"type": "tcp_proxy", "config": {"cluster": "gone"}}]}]}
            ]}],
        "cluster_manager": {"clusters": [
            {"name": "echo", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": [{"address": up.to_string()}]},
            {"name": "gone", "type": "SIMPLE", "lb_type": "LB_RANDOM", "hosts": [{"address": format!("127.0.0.1:{closed_port}")}]}
        ]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    let _m = Mosn::start(&config.to_string(), &[port, dead_port, admin]);
    // The start-up probes of both ports are connections too: the lines looked for
    // are the ones with bytes, and a failed connect's.
    let mut s = connect(port);
    s.write_all(b"ping-pong").unwrap();
    let mut back = [0u8; 9];
    s.read_exact(&mut back).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let want = format!("TCP 9 9 {up} echo -");
    let got = lines_until(&log, |l| l == want);
    assert!(got.contains(&want), "{got:?}");
    // A connect failure is a line with its flag, and its upstream host.
    let got = lines_until(&log, |l| l.ends_with(" gone UF"));
    let failed = got.iter().find(|l| l.ends_with(" gone UF"));
    assert!(
        failed.is_some_and(|l| l.starts_with(&format!("TCP 0 0 127.0.0.1:{closed_port} "))),
        "{got:?}"
    );
}

/// The log's lines once one satisfies `done`, or after 5 s.
fn lines_until(path: &std::path::Path, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = lines(path, 0);
        if got.iter().any(|l| done(l)) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw TCP echo server (a thread per connection), for tcp_proxy.
fn echo_tcp_upstream() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn bolt_calls_and_hijacks_are_logged_with_their_service() {
    let Some(_) = node_peers() else { return };
    let server = XServer::bolt("A");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rpc.log");
    let routes = json!([
        {"match": {"headers": [{"name": "service", "value": "com.mosn.test.EchoService:1.0"}]}, "route": {"cluster_name": "c"}}
    ]);
    let extra = json!({"access_logs": [{"log_path": log.display().to_string(),
        "log_format": "%protocol% %response_code% %response_flags% %request_header_service% %upstream_cluster% %upstream_host% %downstream_local_address% %downstream_remote_address%"}]});
    let (_m, port, _admin) = rpc_proxy_with(routes, &[("c", server.port)], "bolt", extra);
    let (ok, v) = x_client(XClient::BoltNode, port, &["echo", "3", "1"]);
    assert!(ok, "{v}");
    let got = lines(&log, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    for line in &got {
        let (head, client) = line.rsplit_once(' ').unwrap();
        assert_eq!(
            head,
            &format!(
                "bolt 0 - com.mosn.test.EchoService:1.0 c 127.0.0.1:{} 127.0.0.1:{port}",
                server.port
            )
        );
        let client: std::net::SocketAddr = client.parse().expect("the client's address");
        assert!(client.ip().is_loopback(), "{line}");
    }
    // The three calls came on one connection: its address texts, made once, in
    // every line.
    assert!(got.iter().all(|line| line == &got[0]), "{got:?}");
    // No route: the proxy's own answer (MOSN's 404 hijack), flagged NR.
    let (ok, _) = common::peers::x_client_args(
        XClient::BoltNode,
        &[
            &format!("127.0.0.1:{port}"),
            "echo",
            "1",
            "1",
            "--service",
            "other.Service",
        ],
        common::peers::CLIENT_LIMIT,
    );
    assert!(!ok);
    let got = lines(&log, 4);
    assert!(
        got[3].starts_with(&format!(
            "bolt 404 NR other.Service:1.0 - - 127.0.0.1:{port} "
        )),
        "{got:?}"
    );
}

#[test]
fn dropped_lines_are_counted_on_the_admin_api() {
    let up = tagged_upstream("x");
    let dir = tempfile::tempdir().unwrap();
    let cfg = logging_proxy(&up, &dir.path().join("a.log"), "", false);
    let _m = cfg.start();
    http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let stats = admin_stats(cfg.admin_port);
    assert_eq!(stats["server"]["access_log_dropped_lines"], 0, "{stats}");
    let prom = http_exchange(
        cfg.admin_port,
        b"GET /stats/prometheus HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert!(
        prom.body_text()
            .contains("access_log_dropped_lines_total 0"),
        "{}",
        prom.body_text()
    );
}

#[test]
fn buffered_lines_are_written_before_exit() {
    let up = tagged_upstream("x");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("exit.log");
    let cfg = logging_proxy(&up, &log, "%response_code%", false);
    let mut m = cfg.start();
    for _ in 0..3 {
        http_exchange(cfg.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    // At once: the lines are still in the workers' buffers.
    m.signal(15);
    assert_eq!(m.wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text.lines().filter(|l| *l == "200").count(), 3, "{text}");
}

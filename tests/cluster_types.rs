//! Cluster types through the real binary: a STRICT_DNS cluster resolving `localhost`,
//! an EDS cluster that starts empty and is filled by the admin API, an ORIGINAL_DST
//! cluster behind a tcp_proxy listener, and validation of the types' keys.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1 listener on `port` routing `/` to cluster `c` (`cluster`: its JSON members
/// besides the name), and an admin listener.
fn http_config(port: u16, admin: u16, cluster: &str) -> String {
    format!(
        r#"{{"servers": [{{"default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
    "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c"}}}}]}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{{"name": "c", {cluster}}}]}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}}}}"#
    )
}

fn get(port: u16) -> Response {
    http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
}

/// Sends `GET /` until the answer is `status`, for up to 5 s; returns the last answer.
fn get_until(port: u16, status: u16) -> Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(port);
        if r.status == status || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post(admin: u16, path: &str, body: &str) -> Response {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_exchange(admin, req.as_bytes())
}

fn clusters_json(admin: u16) -> serde_json::Value {
    let r = http_exchange(
        admin,
        b"GET /api/v1/clusters HTTP/1.1\r\nHost: admin\r\n\r\n",
    );
    serde_json::from_slice(&r.body).expect("clusters JSON")
}

#[test]
fn strict_dns_cluster_resolves_localhost() {
    let up = tagged_upstream("DNS");
    let (port, admin) = (free_port(), free_port());
    let cluster = format!(
        r#""type": "STRICT_DNS", "dns_refresh_rate": "1s", "dns_lookup_family": "V4_ONLY",
           "hosts": [{{"address": "localhost:{}", "weight": 2}}]"#,
        up.addr.port()
    );
    let m = Mosn::start(&http_config(port, admin, &cluster), &[port, admin]);
    let r = get_until(port, 200);
    assert_eq!(r.status, 200, "{}", m.log_text());
    assert_eq!(r.body_text(), "DNS");
    for _ in 0..3 {
        assert_eq!(get(port).body_text(), "DNS");
    }
    let doc = clusters_json(admin);
    let c = doc
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "c"))
        .expect("cluster c")
        .clone();
    assert_eq!(c["type"], "STRICT_DNS");
    let hosts = c["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "{c}");
    let text = hosts[0].to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", up.addr.port())),
        "{text}"
    );
    assert!(
        text.contains("localhost"),
        "the name is the host's hostname: {text}"
    );
    assert!(
        m.log_text().contains("[strict dns] cluster c: hosts now ["),
        "{}",
        m.log_text()
    );
}

#[test]
fn eds_cluster_without_hosts_answers_503_until_hosts_are_set() {
    let up = tagged_upstream("EDS");
    let (port, admin) = (free_port(), free_port());
    let _m = Mosn::start(
        &http_config(port, admin, r#""type": "EDS""#),
        &[port, admin],
    );
    assert_eq!(get(port).status, 503, "no host yet");
    let body = format!(
        r#"{{"cluster": "c", "hosts": [{{"address": "{}"}}]}}"#,
        up.addr
    );
    let r = post(admin, "/api/v1/update_hosts", &body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let r = get_until(port, 200);
    assert_eq!((r.status, r.body_text().as_str()), (200, "EDS"));
    // A host name is refused for an EDS cluster (names need STRICT_DNS).
    let r = post(
        admin,
        "/api/v1/update_hosts",
        r#"{"cluster": "c", "hosts": [{"address": "localhost:1"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body_text().contains("STRICT_DNS"), "{}", r.body_text());
    assert_eq!(get(port).body_text(), "EDS");
}

/// An ORIGINAL_DST cluster behind a tcp_proxy listener: the original destination of a
/// connection is the listener's own address (no iptables redirect here), so the
/// listener is bound on 127.0.0.2:P and `replace_local` sends the connection to
/// 127.0.0.1:P, where the test's upstream listens.
#[test]
fn original_dst_cluster_connects_to_the_destination_port_on_loopback() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = upstream.local_addr().unwrap().port();
    if TcpListener::bind(("127.0.0.2", p)).is_err() {
        eprintln!("skipping: cannot bind 127.0.0.2:{p} on this machine");
        return;
    }
    std::thread::spawn(move || {
        for s in upstream.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(b"ORIGINAL");
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    });
    let admin = free_port();
    let config = format!(
        r#"{{"servers": [{{"default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 1,
  "listeners": [{{"name": "t", "address": "127.0.0.2:{p}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "tcp_proxy", "config": {{"cluster": "o"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{{"name": "o", "type": "ORIGINAL_DST", "lb_type": "LB_ORIGINAL_DST",
    "original_dst_lb_config": {{"replace_local": true}}}}]}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}}}}"#
    );
    let m = Mosn::start(&config, &[admin]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.2", p)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("127.0.0.2:{p}: {e}\n{}", m.log_text()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, b"ORIGINAL", "{}", m.log_text());
}

fn validate(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .expect("run mosn-rs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn validation_names_the_paths_of_cluster_type_mistakes() {
    let bad = http_config(
        2045,
        34901,
        r#""type": "STRICT_DNS", "dns_lookup_family": "V4", "hosts": [{"address": "bad host:80"}, {"address": "ok.test:"}]"#,
    );
    let (code, text) = validate(&bad);
    assert_eq!(code, Some(2), "{text}");
    for line in [
        "cluster_manager.clusters[0].dns_lookup_family: unknown dns_lookup_family \"V4\"",
        "cluster_manager.clusters[0].hosts[0].address: bad address \"bad host:80\"",
        "cluster_manager.clusters[0].hosts[1].address: bad address \"ok.test:\": missing port",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let (code, text) = validate(&http_config(
        2045,
        34901,
        r#""type": "ORIGINAL_DST", "lb_type": "LB_ROUNDROBIN""#,
    ));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cluster_manager.clusters[0].lb_type: an ORIGINAL_DST cluster balances with LB_ORIGINAL_DST"),
        "{text}"
    );
    // Valid, with warnings: hosts on ORIGINAL_DST, a name without a port.
    let (code, text) = validate(&http_config(
        2045,
        34901,
        r#""type": "ORIGINAL_DST", "hosts": [{"address": "127.0.0.1:80"}]"#,
    ));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("cluster_manager.clusters[0].hosts: an ORIGINAL_DST cluster"),
        "{text}"
    );
    let (code, text) = validate(&http_config(
        2045,
        34901,
        r#""type": "STRICT_DNS", "respect_dns_ttl": true, "hosts": [{"address": "example.com"}]"#,
    ));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("port 80 is used"), "{text}");
    assert!(text.contains("reports no TTL"), "{text}");
}

/// MOSN's `original_dst_lb_config.use_header`: an HTTP request names its destination.
#[test]
fn original_dst_over_http_follows_the_configured_header() {
    let up = tagged_upstream("dst");
    let (port, admin) = (free_port(), free_port());
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "odst"}}]"#;
    let config = multi_cluster_config(port, admin, routes, &[]).replace(
        r#""clusters": []"#,
        r#""clusters": [{"name": "odst", "type": "ORIGINAL_DST", "lb_type": "LB_ORIGINAL_DST",
            "original_dst_lb_config": {"use_header": true, "header_name": "x-dst"}}]"#,
    );
    let _m = Mosn::start(&config, &[port]);
    let r = http_exchange(
        port,
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Dst: {}\r\n\r\n", up.addr).as_bytes(),
    );
    assert_eq!((r.status, r.body_text()), (200, "dst".to_string()));
    let r = http_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 503, "no header, no destination");
}

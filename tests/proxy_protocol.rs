//! PROXY protocol listener filter (Envoy's `proxy_protocol`): the client address comes
//! from a balancer's v1 or v2 header and is what X-Forwarded-For carries; a connection
//! without a header, or with a malformed one, is closed unless the listener allows
//! connections without one. curl's `--haproxy-protocol` is the real peer (it sends v1
//! with the true addresses); spoofed sources are sent as raw bytes by the test.

mod common;

use common::peers::peer_program;
use common::*;
use std::io::Write;
use std::time::Duration;

fn start(allow_missing: bool) -> (Mosn, HttpConfig, Upstream) {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.listener_extra = format!(
        r#", "listener_filters": [{{"type": "proxy_protocol", "config": {{"allow_requests_without_proxy_protocol": {allow_missing}}}}}]"#
    );
    let m = cfg.start();
    (m, cfg, up)
}

/// Sends `prefix` then a GET; returns the response (None if the proxy closed).
fn exchange_with(port: u16, prefix: &[u8]) -> Option<Response> {
    let mut s = connect(port);
    s.write_all(prefix).unwrap();
    s.write_all(b"GET /pp HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    read_response(&mut s, false)
}

#[test]
fn v1_header_sets_the_client_address() {
    let (_m, cfg, _up) = start(false);
    let resp = exchange_with(cfg.port, b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
        .expect("answered");
    assert_eq!(resp.status, 200);
    let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 203.0.113.7"), "{body}");
}

#[test]
fn v2_header_sets_the_client_address_and_keep_alive_goes_on() {
    let (_m, cfg, _up) = start(false);
    let mut v2 = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00,
        0x24,
    ];
    let src: std::net::Ipv6Addr = "2001:db8::9".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    v2.extend_from_slice(&src.octets());
    v2.extend_from_slice(&dst.octets());
    v2.extend_from_slice(&[0x9C, 0x40, 0x00, 0x50]);
    let mut s = connect(cfg.port);
    s.write_all(&v2).unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /pp HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let resp = read_response(&mut s, false).expect("answered");
        assert_eq!(resp.status, 200);
        let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
        assert!(body.contains("x-forwarded-for: 2001:db8::9"), "{body}");
    }
}

#[test]
fn header_split_across_writes_is_read_whole() {
    let (_m, cfg, _up) = start(false);
    let mut s = connect(cfg.port);
    s.write_all(b"PROXY TCP4 198.51.100.").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"4 127.0.0.1 1 2\r\nGET /pp HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false).expect("answered");
    let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 198.51.100.4"), "{body}");
}

#[test]
fn missing_or_malformed_header_closes_and_the_proxy_goes_on() {
    let (_m, cfg, _up) = start(false);
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
    ] {
        let mut s = connect(cfg.port);
        s.write_all(bad).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(5)), "{bad:?}");
    }
    // A client that never sends a byte is closed by the handshake timeout, not held;
    // here only check that good clients are still served meanwhile.
    let _idle = connect(cfg.port);
    let resp = exchange_with(cfg.port, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n").expect("served");
    assert_eq!(resp.status, 200);
    // Four refusals (the harness's own readiness probe, which sends nothing, may add one).
    let stats = admin_stats(cfg.admin_port);
    let refused = stats["listener"]["l"]["proxy_protocol_error"]
        .as_u64()
        .unwrap();
    assert!((4..=5).contains(&refused), "{stats}");
}

#[test]
fn allowed_without_header_uses_the_socket_address() {
    let (_m, cfg, _up) = start(true);
    let resp = exchange_with(cfg.port, b"").expect("answered");
    let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    let resp =
        exchange_with(cfg.port, b"PROXY TCP4 192.0.2.8 127.0.0.1 1 2\r\n").expect("answered");
    let body = String::from_utf8_lossy(&resp.body).to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 192.0.2.8"), "{body}");
}

#[test]
fn curl_haproxy_protocol_is_served() {
    let Some(curl) = peer_program("curl") else {
        return;
    };
    let (_m, cfg, _up) = start(false);
    let out = std::process::Command::new(curl)
        .args(["-s", "--max-time", "10", "--haproxy-protocol"])
        .arg(format!("http://127.0.0.1:{}/pp", cfg.port))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
}

#[test]
fn bad_listener_filters_are_config_errors_with_paths() {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.listener_extra =
        r#", "use_original_dst": "nat", "listener_filters": [{"type": "proxy_protocl"}]"#.into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, cfg.render()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mosn-rs"))
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"servers[0].listeners[0].use_original_dst: expected "redirect" or "tproxy", got "nat""#), "{err}");
    assert!(err.contains(r#"servers[0].listeners[0].listener_filters[0].type: unknown listener filter "proxy_protocl""#), "{err}");
}

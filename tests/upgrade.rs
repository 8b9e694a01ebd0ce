//! HTTP/1.1 Upgrade through the real binary: a tunnel only after the upstream's 101,
//! no tunnel otherwise, and h2c upgrades never passed on.

mod common;
use common::*;
use std::io::{Read, Write};

/// Answers an Upgrade with 101 (then echoes bytes upper-cased), or with 200 when
/// `refuse` is set (then keeps speaking HTTP).
fn upgrading_upstream(refuse: bool) -> Upstream {
    Upstream::start(move |mut s| {
        let Some((head, _)) = read_request(&mut s) else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        if refuse || !lower.contains("upgrade: websocket") || !lower.contains("connection: upgrade")
        {
            let body = format!("no switch; saw: {}", head.lines().next().unwrap_or(""));
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            // Anything that follows is HTTP again.
            while let Some((h, _)) = read_request(&mut s) {
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                        h.len(),
                        h
                    )
                    .as_bytes(),
                );
            }
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n");
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_101_turns_the_connection_into_a_tunnel() {
    let up = upgrading_upstream(false);
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(UPGRADE).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(r.header("sec-websocket-accept").as_deref(), Some("x"));
    for msg in ["hello", "tunnel bytes"] {
        s.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.to_ascii_uppercase().as_bytes());
    }
}

#[test]
fn no_101_means_no_tunnel() {
    let up = upgrading_upstream(true);
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(UPGRADE).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    // The connection is still HTTP: a smuggled request would be parsed as one.
    s.write_all(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body_text().starts_with("GET /next HTTP/1.1"),
        "{}",
        r.body_text()
    );
}

#[test]
fn h2c_upgrade_is_stripped() {
    let up = upgrading_upstream(false);
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let r = http_exchange(
        cfg.port,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body_text().starts_with("no switch"), "{}", r.body_text());
}

/// A real WebSocket client and server (Python `websockets`) through the proxy.
#[test]
fn websocket_echo_with_a_real_client_and_server() {
    use common::peers::{peers_dir, venv_python};
    use std::process::Command;
    let Some(python) = venv_python() else { return };
    let (mut server, ws_port) = ws_echo_server(&python);
    let cfg = HttpConfig::new(&[format!("127.0.0.1:{ws_port}").parse().unwrap()]);
    let _m = cfg.start();
    let out = Command::new(&python)
        .arg(peers_dir().join("ws_echo.py"))
        .args(["client", &format!("ws://127.0.0.1:{}/chat", cfg.port), "20"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"sent\": 20"), "{text}");
}

/// CONNECT is tunnelled only through a route made for it (no path condition).
#[test]
fn connect_tunnels_through_a_matching_route_only() {
    let echo = Upstream::start(|mut s| {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let mut cfg = HttpConfig::new(&[echo.addr]);
    cfg.routes = r#"{"match": {"headers": [{"name": ":method", "value": "CONNECT"}]}, "route": {"cluster_name": "up"}}"#.into();
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\nearly")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    let mut got = [0u8; 5];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"early", "bytes sent with the CONNECT went through");
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");

    // A prefix "/" route does not open tunnels.
    let cfg = HttpConfig::new(&[echo.addr]);
    let _m2 = cfg.start();
    let r = http_exchange(
        cfg.port,
        b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n",
    );
    assert_eq!(r.status, 404);
}

/// Starts tests/peers/ws_echo.py as a WebSocket echo server; returns it and its port.
fn ws_echo_server(python: &std::path::Path) -> (std::process::Child, u16) {
    use common::peers::peers_dir;
    use std::process::{Command, Stdio};
    let ws_port = free_port();
    let mut server = Command::new(python)
        .arg(peers_dir().join("ws_echo.py"))
        .args(["server", &ws_port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");
    (server, ws_port)
}

/// RFC 8441: a WebSocket opened with extended CONNECT over HTTP/2 (Python `h2` client,
/// frames built by tests/peers/h2_websocket.py) reaches a real HTTP/1.1 WebSocket
/// server (Python `websockets`) as an Upgrade, and messages echo both ways.
#[test]
fn websocket_over_http2_to_an_http1_server() {
    use common::peers::{peers_dir, venv_python};
    use std::process::Command;
    let Some(python) = venv_python() else { return };
    let (mut server, ws_port) = ws_echo_server(&python);
    let mut cfg = HttpConfig::new(&[format!("127.0.0.1:{ws_port}").parse().unwrap()]);
    cfg.proxy_extra = r#", "http2": {"allow_connect": true}"#.into();
    let text = cfg.render().replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
    );
    let _m = Mosn::start(&text, &[cfg.port, cfg.admin_port]);
    let out = Command::new(&python)
        .arg(peers_dir().join("h2_websocket.py"))
        .args([&cfg.port.to_string(), "/chat", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"sent\": 20"), "{stdout}");
    assert!(stdout.contains("\"status\": 200"), "{stdout}");

    // Without allow_connect the proxy does not advertise extended CONNECT.
    let plain = HttpConfig::new(&[format!("127.0.0.1:{ws_port}").parse().unwrap()]);
    let text = plain.render().replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
    );
    let _m2 = Mosn::start(&text, &[plain.port, plain.admin_port]);
    let out = Command::new(&python)
        .arg(peers_dir().join("h2_websocket.py"))
        .args([&plain.port.to_string(), "/chat", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("\"connect_enabled\": false"), "{stdout}");
    let _ = server.kill();
    let _ = server.wait();
}

/// RFC 8441 to an upstream that does not switch protocols: its answer (not 101) goes
/// back as a plain HTTP/2 response and no tunnel is made.
#[test]
fn websocket_over_http2_gets_the_upstreams_refusal() {
    use common::peers::{peers_dir, venv_python};
    use std::process::Command;
    let Some(python) = venv_python() else { return };
    let up = fixed_upstream(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", true);
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.proxy_extra = r#", "http2": {"allow_connect": true}"#.into();
    let text = cfg.render().replace(
        r#""downstream_protocol": "Http1""#,
        r#""downstream_protocol": "Http2""#,
    );
    let _m = Mosn::start(&text, &[cfg.port, cfg.admin_port]);
    let out = Command::new(&python)
        .arg(peers_dir().join("h2_websocket.py"))
        .args([&cfg.port.to_string(), "/chat", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"status\": 403"), "{stdout}");
}

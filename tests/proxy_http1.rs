//! HTTP/1.1 proxying through the real binary: forwarding exactness, local replies,
//! streaming, keep-alive, cancellation and graceful stop. Upstreams are scripted
//! servers in the test where a behaviour must be scripted (slow, resetting, chunked).

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn forwards_method_path_query_headers_and_body_exactly() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let req = b"POST /a/b%20c?x=1&y=%2F HTTP/1.1\r\nHost: example.com\r\nX-Custom: v1\r\nX-Custom: v2\r\n\
Connection: keep-alive, X-Hop\r\nX-Hop: gone\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\n\
Content-Length: 11\r\n\r\nhello world";
    let resp = http_exchange(cfg.port, req);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-upstream").as_deref(), Some("echo"));
    let seen = resp.body_text();
    assert!(
        seen.starts_with("POST /a/b%20c?x=1&y=%2F HTTP/1.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("Host: example.com\r\n"));
    assert!(
        seen.contains("X-Custom: v1\r\nX-Custom: v2\r\n"),
        "order and repeats kept: {seen}"
    );
    assert!(
        seen.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(
        !seen.contains("X-Hop"),
        "header named in Connection is hop-by-hop: {seen}"
    );
    assert!(!seen.to_ascii_lowercase().contains("keep-alive"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nhello world"), "{seen}");
}

#[test]
fn x_forwarded_for_can_be_turned_off() {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.proxy_extra = r#", "http1": {"add_x_forwarded_for": false}"#.into();
    let _m = cfg.start();
    let resp = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(!resp.body_text().contains("X-Forwarded-For"));
}

#[test]
fn route_header_mutations_apply_both_ways() {
    let up = Upstream::start(|mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let body = head.into_bytes();
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nServer: secret\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            s.write_all(&out).unwrap();
        }
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.routes = r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "up",
        "request_headers_to_add": [{"header": {"key": "X-Added", "value": "yes"}}],
        "response_headers_to_add": [{"header": {"key": "X-Resp", "value": "r"}, "append": false}]},
        "request_headers_to_remove": ["x-secret"], "response_headers_to_remove": ["server"]}"#
        .into();
    let _m = cfg.start();
    let resp = http_exchange(
        cfg.port,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Secret: s\r\n\r\n",
    );
    let seen = resp.body_text();
    assert!(seen.contains("X-Added: yes\r\n"), "{seen}");
    assert!(!seen.contains("X-Secret"), "{seen}");
    assert_eq!(resp.header("x-resp").as_deref(), Some("r"));
    assert_eq!(resp.header("server"), None);
}

#[test]
fn local_replies_have_their_status_body_and_stat() {
    // No route: only /only is routed.
    let up = echo_upstream();
    let dead_port = free_port();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.routes = r#"{"match": {"path": "/only"}, "route": {"cluster_name": "up"}}"#.into();
    let m = cfg.start();
    let r = http_exchange(cfg.port, b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(!r.body.is_empty());
    assert_eq!(listener_stat(cfg.admin_port, "no_route"), 1);
    drop(m);

    // No host: the cluster is empty.
    let cfg = HttpConfig::new(&[]);
    let m = cfg.start();
    let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(listener_stat(cfg.admin_port, "no_healthy_upstream"), 1);
    drop(m);

    // Connect failure: nothing listens on the host's port.
    let cfg = HttpConfig::new(&[format!("127.0.0.1:{dead_port}").parse().unwrap()]);
    let m = cfg.start();
    let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(listener_stat(cfg.admin_port, "upstream_connect_failure"), 1);
    drop(m);

    // Upstream reset before the response.
    let resetting = Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let cfg = HttpConfig::new(&[resetting.addr]);
    let m = cfg.start();
    let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 502);
    assert_eq!(listener_stat(cfg.admin_port, "upstream_reset"), 1);
    drop(m);

    // Route timeout.
    let slow = Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        std::thread::sleep(Duration::from_secs(3));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let mut cfg = HttpConfig::new(&[slow.addr]);
    cfg.routes =
        r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "up", "timeout": "300ms"}}"#.into();
    let _m = cfg.start();
    let started = Instant::now();
    let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(listener_stat(cfg.admin_port, "upstream_timeout"), 1);
}

#[test]
fn direct_response_answers_without_upstream() {
    let mut cfg = HttpConfig::new(&[]);
    cfg.routes =
        r#"{"match": {"prefix": "/"}, "direct_response": {"status": 201, "body": "made"}}"#.into();
    let _m = cfg.start();
    let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 201);
    assert_eq!(r.body_text(), "made");
}

#[test]
fn keep_alive_reuses_upstream_connections_and_honours_max_request_per_conn() {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    for _ in 0..5 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "one upstream connection carries all requests"
    );

    let up2 = echo_upstream();
    let mut cfg = HttpConfig::new(&[up2.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    cfg.cluster_extra = r#", "max_request_per_conn": 2"#.into();
    let _m2 = cfg.start();
    let mut s = connect(cfg.port);
    for _ in 0..5 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    }
    assert_eq!(up2.connections(), 3, "2 requests per upstream connection");
}

#[test]
fn chunked_request_and_response_are_streamed() {
    let up = Upstream::start(|mut s| {
        // Read a chunked request head, then echo the raw chunked body bytes back
        // as a chunked response, with a trailer.
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        while find(&buf, b"0\r\n\r\n").is_none() {
            let n = s.read(&mut b).unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&b[..n]);
        }
        let head_end = find(&buf, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        let body = &buf[head_end..];
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        out.extend_from_slice(&body[..body.len() - 5]);
        out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        s.write_all(&out).unwrap();
    });
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let r = http_exchange(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.body_text(), "hello world");
}

#[test]
fn close_delimited_response_is_rechunked_for_http11_and_raw_for_http10() {
    let up = Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
    });
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.body_text(), "until close");
    // The client connection stays usable.
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut s, false).unwrap().body_text(),
        "until close"
    );

    let r = http_exchange(cfg.port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body_text(), "until close");
}

#[test]
fn head_response_has_no_body_and_connection_stays_in_sync() {
    let up = Upstream::start(|mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let out: &[u8] = if head.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            };
            s.write_all(out).unwrap();
        }
    });
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.header("content-length").as_deref(), Some("5"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().body_text(), "hello");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .unwrap();
    let interim = read_response(&mut s, false).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"data").unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    let seen = r.body_text();
    assert!(seen.ends_with("data"));
    assert!(
        !seen.to_ascii_lowercase().contains("expect"),
        "Expect is not forwarded: {seen}"
    );
}

#[test]
fn client_disconnect_cancels_the_upstream_request() {
    let (tx, rx) = std::sync::mpsc::channel();
    let up = Upstream::start(move |mut s| {
        let _ = read_request(&mut s);
        // Wait for the proxy to give up on this request: EOF on our side.
        let started = Instant::now();
        let mut b = [0u8; 16];
        let eof = matches!(s.read(&mut b), Ok(0) | Err(_));
        let _ = tx.send((eof, started.elapsed()));
    });
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    let (eof, waited) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("upstream saw the cancel");
    assert!(eof);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(listener_stat(cfg.admin_port, "downstream_cancel"), 1);
}

#[test]
fn upstream_connection_that_failed_mid_response_is_not_reused() {
    let up = Upstream::start(|mut s| {
        let mut n = 0;
        while let Some((head, _)) = read_request(&mut s) {
            n += 1;
            if head.starts_with("GET /broken") {
                // Promise 10 bytes, send 3, close.
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
                return;
            }
            let body = format!("req {n}");
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"GET /broken HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // The client gets the head and 3 bytes, then the connection closes.
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).ends_with("abc"));
    let r = http_exchange(cfg.port, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        r.body_text(),
        "req 1",
        "a fresh upstream connection served it"
    );
    assert_eq!(up.connections(), 2);
}

#[test]
fn stale_pooled_connection_is_retried_for_bodyless_requests() {
    // Upstream answers one request per connection, then closes without saying so.
    let up = Upstream::start(|mut s| {
        if read_request(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let _m = cfg.start();
    for _ in 0..3 {
        let r = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn hundred_mib_bodies_stream_both_ways_with_bounded_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let up = Upstream::start(|mut s| {
        // Read the whole request body, counting, then stream SIZE bytes back.
        let mut buf = Vec::new();
        let mut b = vec![0u8; 256 * 1024];
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut b).unwrap();
            buf.extend_from_slice(&b[..n]);
        };
        let mut got = buf.len() - head_end;
        while got < SIZE {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0);
            got += n;
        }
        assert_eq!(got, SIZE);
        s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes())
            .unwrap();
        let block = vec![b'y'; 256 * 1024];
        let mut sent = 0;
        while sent < SIZE {
            s.write_all(&block).unwrap();
            sent += block.len();
        }
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.server_extra = r#", "processor": 1"#.into();
    let m = cfg.start();
    let rss_before = m.rss_kib();
    let mut s = connect(cfg.port);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(
        format!("POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let block = vec![b'x'; 256 * 1024];
    let mut sent = 0;
    while sent < SIZE {
        s.write_all(&block).unwrap();
        sent += block.len();
    }
    let mut head = Vec::new();
    let mut b = vec![0u8; 256 * 1024];
    let head_end = loop {
        if let Some(i) = find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).unwrap();
        head.extend_from_slice(&b[..n]);
    };
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let mut got = head.len() - head_end;
    while got < SIZE {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "EOF after {got} bytes");
        got += n;
    }
    assert_eq!(got, SIZE);
    let grown = m.peak_rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 16 * 1024,
        "proxy memory grew by {grown} KiB while streaming 2 x 100 MiB"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    let up = Upstream::start(|mut s| {
        while read_request(&mut s).is_some() {
            std::thread::sleep(Duration::from_millis(800));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
        }
    });
    let cfg = HttpConfig::new(&[up.addr]);
    let mut m = cfg.start();
    // An idle keep-alive connection, which must be closed by the drain.
    let mut idle = connect(cfg.port);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 200);
    let mut inflight = connect(cfg.port);
    inflight
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    m.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", cfg.port)).is_err(),
        "new connections are refused while draining"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)),
        "idle keep-alive closed"
    );
    let r = read_response(&mut inflight, false).expect("in-flight request completes");
    assert_eq!(r.body_text(), "slow");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(m.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn sigint_exits_at_once() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let mut m = cfg.start();
    let started = Instant::now();
    m.signal(libc::SIGINT);
    m.wait_exit(Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_body_timeout() {
    let (tx, rx) = std::sync::mpsc::channel();
    let up = Upstream::start(move |mut s| {
        let _ = read_request(&mut s);
        let size = 256 * 1024 * 1024;
        let _ =
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes());
        let block = vec![b'z'; 1024 * 1024];
        let started = Instant::now();
        let mut sent = 0;
        while sent < size {
            if s.write_all(&block).is_err() {
                break;
            }
            sent += block.len();
        }
        let _ = tx.send((sent < size, started.elapsed()));
    });
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.proxy_extra = r#", "http1": {"body_timeout": "300ms"}"#.into();
    let _m = cfg.start();
    let mut s = connect(cfg.port);
    s.write_all(b"GET /huge HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // Never read: the proxy's writes stall, and it must give up on both sides.
    let (cut, took) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("upstream write stopped");
    assert!(
        cut,
        "the upstream was cut off rather than allowed to send everything"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

//! Strict HTTP/1.1 input through the real binary: every request the codec must refuse
//! gets its exact status and a closed connection, and never reaches the upstream;
//! upstream responses are held to the same rules (502, connection discarded); interim
//! responses, pipelining and the head/body/idle timers behave as documented.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for anything the proxy must do "at once" (a reply, a close).
const PROMPT: Duration = Duration::from_secs(2);

/// An echo upstream and a proxy in front of it; `proxy_extra` goes into the proxy
/// filter config (e.g. `, "http1": {...}`).
fn proxy_to_echo(proxy_extra: &str) -> (Mosn, HttpConfig, Upstream) {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.proxy_extra = proxy_extra.into();
    let m = cfg.start();
    (m, cfg, up)
}

/// A client connection that keeps bytes read past one response for the next one,
/// so interim and pipelined responses can be read one by one. Bodies are
/// Content-Length framed (all responses in these tests are).
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(port: u16) -> Client {
        let s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response, 1xx included; None on EOF or timeout before a head.
    fn response(&mut self) -> Option<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let mut resp = Response {
            status,
            head,
            body: Vec::new(),
        };
        assert!(
            resp.header("transfer-encoding").is_none(),
            "unexpected chunked response: {}",
            resp.head
        );
        let len = if status < 200 || status == 204 || status == 304 {
            0
        } else {
            let cl = resp.header("content-length");
            cl.unwrap_or_else(|| panic!("no Content-Length: {}", resp.head))
                .parse::<usize>()
                .unwrap()
        };
        while self.buf.len() < head_end + len {
            assert!(self.fill(), "EOF inside body");
        }
        resp.body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Some(resp)
    }

    fn closed_within(&mut self, limit: Duration) -> bool {
        closed_within(&mut self.s, limit)
    }
}

/// Sends `request` on a new connection; asserts the reply status and that the proxy
/// closes the connection after it.
fn expect_rejected(port: u16, request: &[u8], status: u16, what: &str) {
    let mut c = Client::new(port);
    // A large request may be cut short by the proxy's reply; that is fine.
    let _ = c.s.write_all(request);
    let resp = c
        .response()
        .unwrap_or_else(|| panic!("{what}: no response"));
    assert_eq!(resp.status, status, "{what}: {}", resp.head);
    assert!(c.closed_within(PROMPT), "{what}: connection left open");
}

fn expect_ok(port: u16, request: &[u8], what: &str) -> Response {
    let mut c = Client::new(port);
    c.send(request);
    let resp = c
        .response()
        .unwrap_or_else(|| panic!("{what}: no response"));
    assert_eq!(resp.status, 200, "{what}: {}", resp.head);
    resp
}

#[test]
fn content_length_with_transfer_encoding_is_refused_by_default() {
    let (_m, cfg, up) = proxy_to_echo("");
    expect_rejected(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        "CL + TE",
    );
    assert_eq!(up.connections(), 0);
}

/// An upstream that reads one request with a chunked body to its last chunk and
/// answers with the raw request (head and chunked body) as a Content-Length body.
fn raw_chunked_echo() -> Upstream {
    Upstream::start(|mut s| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"\r\n0\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", buf.len()).into_bytes();
        out.extend_from_slice(&buf);
        let _ = s.write_all(&out);
    })
}

#[test]
fn allow_chunked_length_forwards_chunked_without_content_length() {
    let up = raw_chunked_echo();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.proxy_extra = r#", "http1": {"allow_chunked_length": true}"#.into();
    let _m = cfg.start();
    let resp = expect_ok(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "CL + TE allowed",
    );
    let seen = resp.body_text();
    let lower = seen.to_ascii_lowercase();
    assert!(!lower.contains("content-length"), "{seen}");
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{seen}");
    assert!(seen.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{seen}");
}

#[test]
fn content_length_values_must_agree_and_be_numbers() {
    let (_m, cfg, up) = proxy_to_echo("");
    expect_rejected(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
        "two different Content-Lengths",
    );
    expect_rejected(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nhello",
        400,
        "Content-Length: abc",
    );
    assert_eq!(up.connections(), 0);
    let resp = expect_ok(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "two identical Content-Lengths",
    );
    assert!(
        resp.body_text().ends_with("\r\n\r\nhello"),
        "{}",
        resp.body_text()
    );
}

#[test]
fn transfer_encoding_must_end_in_one_chunked() {
    let (_m, cfg, up) = proxy_to_echo("");
    let cases: [(&[u8], u16, &str); 3] = [
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            400,
            "TE: gzip",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: bogus, chunked\r\n\r\n0\r\n\r\n",
            501,
            "TE: bogus, chunked",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            400,
            "TE: chunked, chunked",
        ),
    ];
    for (req, status, what) in cases {
        expect_rejected(cfg.port, req, status, what);
    }
    assert_eq!(up.connections(), 0);
}

#[test]
fn long_request_lines_get_414() {
    let (_m, cfg, up) = proxy_to_echo("");
    let mut req = b"GET /".to_vec();
    req.extend_from_slice("a".repeat(9 * 1024).as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_rejected(cfg.port, &req, 414, "request line over 8 KiB");
    assert_eq!(up.connections(), 0);

    let (_m, cfg, up) = proxy_to_echo(r#", "http1": {"max_request_line_bytes": 100}"#);
    let target = "a".repeat(199);
    let req = format!("GET /{target} HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_rejected(
        cfg.port,
        req.as_bytes(),
        414,
        "200-byte target over a 100-byte limit",
    );
    assert_eq!(up.connections(), 0);
    // Under the limit still passes.
    let req = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(40));
    expect_ok(cfg.port, req.as_bytes(), "short target under the limit");
}

fn request_with_headers(count: usize) -> Vec<u8> {
    // `count` header fields in all, Host included.
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..count {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn header_section_limits_get_431() {
    let (_m, cfg, up) = proxy_to_echo("");
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend_from_slice("b".repeat(61 * 1024).as_bytes());
    big.extend_from_slice(b"\r\n\r\n");
    expect_rejected(cfg.port, &big, 431, "header section over 60 KiB");
    expect_rejected(cfg.port, &request_with_headers(101), 431, "101 headers");
    assert_eq!(up.connections(), 0);
    expect_ok(cfg.port, &request_with_headers(100), "100 headers");

    let (_m, cfg, up) = proxy_to_echo(r#", "http1": {"max_headers": 10}"#);
    expect_rejected(
        cfg.port,
        &request_with_headers(11),
        431,
        "11 headers, max 10",
    );
    assert_eq!(up.connections(), 0);
    expect_ok(cfg.port, &request_with_headers(10), "10 headers, max 10");
}

/// Sends `partial` (a request cut short) to `port` and asserts that a 408 comes after
/// a 300 ms timeout (not before 250 ms, within [`PROMPT`]) and the connection closes.
#[track_caller]
fn assert_408_after_300ms_timeout(port: u16, partial: &[u8]) {
    let mut c = Client::new(port);
    let started = Instant::now();
    c.send(partial);
    let resp = c.response().expect("a 408");
    let waited = started.elapsed();
    assert_eq!(resp.status, 408, "{}", resp.head);
    assert!(
        waited >= Duration::from_millis(250),
        "too early: {waited:?}"
    );
    assert!(waited < PROMPT, "too late: {waited:?}");
    assert!(c.closed_within(PROMPT));
}

#[test]
fn incomplete_head_times_out_with_408() {
    let (_m, cfg, up) = proxy_to_echo(r#", "http1": {"request_head_timeout": "300ms"}"#);
    assert_408_after_300ms_timeout(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Partial: ");
    assert_eq!(up.connections(), 0);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_connection_idle_timeout() {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.listener_extra = r#", "connection_idle_timeout": "300ms""#.into();
    let _m = cfg.start();
    let mut c = Client::new(cfg.port);
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = c.response().expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), None, "kept alive: {}", resp.head);
    let idle_from = Instant::now();
    // The proxy closes without sending anything.
    c.s.set_read_timeout(Some(PROMPT)).unwrap();
    let mut rest = Vec::new();
    let eof = match c.s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    let idle = idle_from.elapsed();
    assert!(eof, "connection still open after {idle:?}");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        idle >= Duration::from_millis(200),
        "closed too early: {idle:?}"
    );
}

#[test]
fn stalled_body_times_out_with_408() {
    let (_m, cfg, _up) = proxy_to_echo(r#", "http1": {"body_timeout": "300ms"}"#);
    assert_408_after_300ms_timeout(
        cfg.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
    );
}

/// Malformed heads, each refused with 400 before anything is sent upstream; the
/// process survives them all and still serves.
#[test]
fn malformed_request_heads_get_400_and_the_process_survives() {
    let (mut m, cfg, up) = proxy_to_echo("");
    let cases: &[(&[u8], &str)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
            "obs-fold",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n",
            "NUL in a value",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
            "bare CR in a value",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
            "whitespace before the colon",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
            "empty field name",
        ),
        (b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", "missing Host"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "duplicate Host",
        ),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", "HTTP/1.10"),
        (
            b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
            "fragment in the target",
        ),
        (
            b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
            "control byte in the target",
        ),
        (
            b"GET /a\xffb HTTP/1.1\r\nHost: a\r\n\r\n",
            "8-bit byte in the target",
        ),
        (b"GET /\r\n", "HTTP/0.9 request line"),
        (
            b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\nContent-Length: 5\r\n\r\nhello",
            "CONNECT with Content-Length",
        ),
    ];
    for (req, what) in cases {
        expect_rejected(cfg.port, req, 400, what);
        assert_eq!(up.connections(), 0, "{what} reached the upstream");
    }
    assert!(
        m.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "mosn-rs died:\n{}",
        m.log_text()
    );
    assert!(!m.log_text().contains("panicked"), "{}", m.log_text());
    let resp = expect_ok(
        cfg.port,
        b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\n",
        "normal request",
    );
    assert!(resp.body_text().starts_with("GET /fine HTTP/1.1\r\n"));
}

#[test]
fn malformed_chunked_bodies_get_400() {
    let (_m, cfg, _up) = proxy_to_echo("");
    let cases: &[(&[u8], &str)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            "chunk size line ending in bare LF",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            "chunk data not followed by CRLF",
        ),
    ];
    // The head goes upstream before the body is decoded; the bad framing still ends
    // the exchange with 400 and a close.
    for (req, what) in cases {
        expect_rejected(cfg.port, req, 400, what);
    }
}

/// Which upstream connection (by accept order) served which path, in order.
type ServedLog = Arc<Mutex<Vec<(usize, String)>>>;

/// An upstream that answers each request by its path: `bad` for `/bad`, a plain 200
/// otherwise. Records which connection served which path.
fn scripted_upstream(bad: &'static [u8]) -> (Upstream, ServedLog) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let next_id = Arc::new(AtomicUsize::new(0));
    let seen = log.clone();
    let up = Upstream::start(move |mut s| {
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        while let Some((head, _)) = read_request(&mut s) {
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let out: &[u8] = if path == "/bad" {
                bad
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            seen.lock().unwrap().push((id, path));
            if s.write_all(out).is_err() {
                return;
            }
        }
    });
    (up, log)
}

/// A malformed upstream response becomes a 502; the upstream connection is dropped,
/// so the next request on the same client connection opens a new one.
fn bad_upstream_response_gives_502(bad: &'static [u8], what: &str) {
    let (up, log) = scripted_upstream(bad);
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut c = Client::new(cfg.port);
    c.send(b"GET /bad HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = c
        .response()
        .unwrap_or_else(|| panic!("{what}: no response"));
    assert_eq!(resp.status, 502, "{what}: {}", resp.head);
    c.send(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = c
        .response()
        .unwrap_or_else(|| panic!("{what}: no second response"));
    assert_eq!(resp.status, 200, "{what}: {}", resp.head);
    assert_eq!(resp.body, b"ok");
    assert_eq!(up.connections(), 2, "{what}: the bad connection was reused");
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "{what}: {log:?}");
    assert_ne!(log[0].0, log[1].0, "{what}: {log:?}");
}

#[test]
fn upstream_content_length_with_transfer_encoding_gives_502() {
    bad_upstream_response_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "CL + TE",
    );
}

#[test]
fn upstream_conflicting_content_lengths_give_502() {
    bad_upstream_response_gives_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        "two Content-Lengths",
    );
}

#[test]
fn upstream_header_section_over_60k_gives_502() {
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let mut r = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        r.extend_from_slice("b".repeat(61 * 1024).as_bytes());
        r.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
        r
    });
    bad_upstream_response_gives_502(big, "60 KiB response head");
}

#[test]
fn upstream_obs_fold_gives_502() {
    bad_upstream_response_gives_502(
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok",
        "obs-fold",
    );
}

#[test]
fn upstream_garbage_status_line_gives_502() {
    bad_upstream_response_gives_502(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "garbage status line");
}

/// An upstream that sends `interim` before the 200 of `/first`; other paths get a
/// plain 200.
fn interim_upstream(interim: &'static [u8]) -> Upstream {
    Upstream::start(move |mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let mut out = Vec::new();
            if head.starts_with("GET /first ") {
                out.extend_from_slice(interim);
            }
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            if s.write_all(&out).is_err() {
                return;
            }
        }
    })
}

/// Asserts that the next response on `c` is the final 200 "ok", and that a second
/// request on `c` gets 200 "ok" too, over the same connection to `up`.
#[track_caller]
fn assert_final_ok_then_reused(c: &mut Client, up: &Upstream) {
    let fin = c.response().expect("the 200");
    assert_eq!(fin.status, 200, "{}", fin.head);
    assert_eq!(fin.body, b"ok");
    c.send(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
    let second = c.response().expect("the second 200");
    assert_eq!(second.status, 200, "{}", second.head);
    assert_eq!(second.body, b"ok");
    assert_eq!(
        up.connections(),
        1,
        "the upstream connection was not reused"
    );
}

#[test]
fn early_hints_are_relayed_before_the_final_response() {
    let up = interim_upstream(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut c = Client::new(cfg.port);
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    let hints = c.response().expect("the 103");
    assert_eq!(hints.status, 103, "{}", hints.head);
    assert_eq!(hints.header("link").as_deref(), Some("</a>"));
    assert_final_ok_then_reused(&mut c, &up);
}

#[test]
fn unsolicited_100_continue_is_dropped() {
    let up = interim_upstream(b"HTTP/1.1 100 Continue\r\n\r\n");
    let cfg = HttpConfig::new(&[up.addr]);
    let _m = cfg.start();
    let mut c = Client::new(cfg.port);
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_final_ok_then_reused(&mut c, &up);
}

#[test]
fn pipelined_requests_get_responses_in_order() {
    let (_m, cfg, _up) = proxy_to_echo("");
    let mut c = Client::new(cfg.port);
    c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    let first = c.response().expect("first response");
    assert_eq!(first.status, 200);
    assert!(
        first.body_text().starts_with("GET /one HTTP/1.1\r\n"),
        "{}",
        first.body_text()
    );
    let second = c.response().expect("second response");
    assert_eq!(second.status, 200);
    let body = second.body_text();
    assert!(body.starts_with("POST /two HTTP/1.1\r\n"), "{body}");
    assert!(body.ends_with("\r\n\r\nabc"), "{body}");
}

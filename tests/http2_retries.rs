//! Retries and mirrors for HTTP/2 (h2c) clients through the real binary: streams an
//! upstream never processed (GOAWAY, REFUSED_STREAM) sent again, the route's
//! `retry_policy` (retriable statuses, resets, per-try timeouts, connect failures;
//! bodies up to 64 KiB replayed, bigger ones streamed and never retried; only
//! idempotent methods retried once the upstream may have acted), and
//! `request_mirror_policies`. Each case runs against an HTTP/2 upstream
//! (tests/peers/h2_upstream.py, a scripted h2c server that logs every request) and,
//! where it applies, an HTTP/1.1 upstream that records what it gets. Clients: curl
//! and h2load. The retry cases run once more with an HTTP/1.1 client (curl --http1.1
//! to an Http1 listener) before an HTTP/2 upstream: the HTTP/1-to-HTTP/2 engine.

mod common;
use common::peers::{peer_program, peers_dir, start_ready_peer, venv_python};
use common::*;
use serde_json::Value;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one client command may run before it is killed.
const LIMIT: Duration = Duration::from_secs(20);
/// How long to wait for an upstream to log what it got.
const SEEN_LIMIT: Duration = Duration::from_secs(5);
/// A back-off of at most a millisecond, so retries do not slow the tests.
const BACK_OFF: &str = r#""retry_back_off": {"base_interval": "1ms"}"#;
/// The replay limit of the proxy is 64 KiB: 1 KiB is held, 100 KiB streams.
const SMALL: usize = 1024;
const BIG: usize = 100 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn config_name(self) -> &'static str {
        match self {
            Proto::H1 => "Http1",
            Proto::H2 => "Http2",
        }
    }
}

/// What the very first request an upstream gets meets; later ones are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    Answered,
    /// RST_STREAM REFUSED_STREAM (HTTP/2 only).
    Refused,
    /// HTTP/2: RST_STREAM INTERNAL_ERROR; HTTP/1.1: the connection closed unanswered.
    Reset,
    /// Never answered.
    Stalled,
}

thread_local! {
    /// The client's protocol and the listener's `downstream_protocol` for the case
    /// running on this thread (each test has its own): HTTP/2 but in the
    /// `from_http1` tests, so that a case runs unchanged from either.
    static DOWNSTREAM: std::cell::Cell<Proto> = const { std::cell::Cell::new(Proto::H2) };
}

fn downstream() -> Proto {
    DOWNSTREAM.with(std::cell::Cell::get)
}

/// Are the peers a case needs installed? (Outside CI a missing one skips the test.)
fn peers_ready(proto: Proto) -> bool {
    peer_program("curl").is_some() && (proto == Proto::H1 || venv_python().is_some())
}

/// Runs `cmd` with its output captured; kills it after [`LIMIT`].
fn run_bounded(cmd: Command) -> Output {
    run_bounded_with(cmd, Stdio::null())
}

fn run_bounded_with(mut cmd: Command, stdin: Stdio) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("client output"),
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = rx.recv_timeout(Duration::from_secs(5));
            panic!("{what} ran over {LIMIT:?}");
        }
    }
}

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// The upstream connection it came on (1, 2, ... in accept order).
    conn: u64,
    method: String,
    path: String,
    authority: String,
    /// The Content-Length header, if any.
    content_length: Option<String>,
    /// Request body length.
    body: usize,
    /// A digest of the body (comparable between requests of one upstream).
    digest: String,
    /// The status it got, or "refused", "reset", "stalled", "held".
    answer: String,
}

// ---- the HTTP/2 upstream: tests/peers/h2_upstream.py

struct H2Peer {
    child: Child,
    /// Held open: the peer exits when its stdin closes.
    _stdin: ChildStdin,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
}

impl H2Peer {
    fn start(args: &[&str]) -> H2Peer {
        let python = venv_python().expect("the venv of scripts/setup.sh (h2)");
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("h2_upstream.py"))
            .arg("0")
            .args(args);
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let peer = start_ready_peer(
            cmd,
            "h2_upstream.py",
            move |line| match serde_json::from_str::<Value>(&line) {
                Ok(v) => log.lock().unwrap().push(v),
                Err(_) => eprintln!("h2_upstream.py: {line}"),
            },
        );
        H2Peer {
            child: peer.child,
            _stdin: peer.stdin,
            port: peer.port,
            events,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn requests(&self) -> Vec<Seen> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "request")
            .map(|e| Seen {
                conn: e["conn"].as_u64().unwrap_or(0),
                method: e["method"].as_str().unwrap_or("").to_string(),
                path: e["path"].as_str().unwrap_or("").to_string(),
                authority: e["authority"].as_str().unwrap_or("").to_string(),
                content_length: e["content_length"].as_str().map(str::to_string),
                body: e["body"].as_u64().unwrap_or(0) as usize,
                digest: e["sha256"].as_str().unwrap_or("").to_string(),
                answer: match &e["answer"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect()
    }

    /// The first event of `kind`, waiting for it up to [`SEEN_LIMIT`].
    fn wait_event(&self, kind: &str) -> Option<Value> {
        let deadline = Instant::now() + SEEN_LIMIT;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e["event"] == kind) {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for H2Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the HTTP/1.1 upstream: records each request, answers by a status sequence

struct H1Peer {
    up: Upstream,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// FNV-1a, 64 bits: enough to tell two bodies apart.
fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

impl H1Peer {
    /// Answers the i-th answered request with `statuses[i]` (the last repeats), after
    /// `delay`, with the body `h1 conn=<c> method=<m> path=<p> body=<len>`.
    fn start(statuses: Vec<u16>, first: First, delay: Duration) -> H1Peer {
        assert!(first != First::Refused, "HTTP/1.1 has no REFUSED_STREAM");
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let (conns, requests, answered) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let log = seen.clone();
        let up = Upstream::start(move |mut s| {
            let conn = conns.fetch_add(1, Ordering::SeqCst) as u64 + 1;
            while let Some((head, body)) = read_request(&mut s) {
                let n = requests.fetch_add(1, Ordering::SeqCst);
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("").to_string();
                let header = |name: &str| {
                    head.lines().skip(1).find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                };
                let authority = header("host").unwrap_or_default();
                let content_length = header("content-length");
                let mut record = Seen {
                    conn,
                    method,
                    path,
                    authority,
                    content_length,
                    body: body.len(),
                    digest: fnv(&body),
                    answer: String::new(),
                };
                if n == 0 && first == First::Reset {
                    record.answer = "reset".into();
                    log.lock().unwrap().push(record);
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
                if n == 0 && first == First::Stalled {
                    record.answer = "stalled".into();
                    log.lock().unwrap().push(record);
                    std::thread::sleep(Duration::from_secs(3));
                    return;
                }
                let i = answered.fetch_add(1, Ordering::SeqCst);
                let status = statuses[i.min(statuses.len() - 1)];
                record.answer = status.to_string();
                let text = format!(
                    "h1 conn={conn} method={} path={} body={}",
                    record.method,
                    record.path,
                    body.len()
                );
                log.lock().unwrap().push(record);
                std::thread::sleep(delay);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Conn: {conn}\r\n\r\n{text}",
                    text.len()
                );
                if s.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
        });
        H1Peer { up, seen }
    }
}

// ---- either upstream

enum Peer {
    H1(H1Peer),
    H2(H2Peer),
}

impl Peer {
    /// An upstream of `proto` answering by `statuses` ("503,200": the first answered
    /// request gets 503, the others 200).
    fn start(proto: Proto, statuses: &str, first: First) -> Peer {
        match proto {
            Proto::H1 => {
                let codes = statuses.split(',').map(|s| s.parse().unwrap()).collect();
                Peer::H1(H1Peer::start(codes, first, Duration::ZERO))
            }
            Proto::H2 => {
                let mut args = vec!["--status-sequence", statuses];
                match first {
                    First::Answered => {}
                    First::Refused => args.push("--refuse-first"),
                    First::Reset => args.push("--reset-first"),
                    First::Stalled => args.push("--stall-first"),
                }
                Peer::H2(H2Peer::start(&args))
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Peer::H1(p) => p.up.addr,
            Peer::H2(p) => SocketAddr::from(([127, 0, 0, 1], p.port)),
        }
    }

    fn requests(&self) -> Vec<Seen> {
        match self {
            Peer::H1(p) => p.seen.lock().unwrap().clone(),
            Peer::H2(p) => p.requests(),
        }
    }

    /// Every request seen, once at least `n` were (waiting up to [`SEEN_LIMIT`]) and a
    /// moment more has passed, so that one request too many shows too.
    fn seen(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + SEEN_LIMIT;
        while self.requests().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.requests()
    }
}

// ---- the proxy: an h2c listener, one or more clusters, an admin listener

struct Proxy {
    m: Mosn,
    port: u16,
    admin: u16,
}

impl Proxy {
    /// Starts mosn-rs with one worker (so that every client connection shares one
    /// upstream pool), `routes` (a JSON list) and `clusters` `(name, hosts, extra keys)`.
    fn start(up: Proto, routes: &str, clusters: &[(&str, Vec<SocketAddr>, &str)]) -> Proxy {
        let (port, admin) = (free_port(), free_port());
        let clusters: Vec<String> = clusters
            .iter()
            .map(|(name, hosts, extra)| {
                let hosts: Vec<String> = hosts
                    .iter()
                    .map(|h| format!(r#"{{"address": "{h}"}}"#))
                    .collect();
                format!(
                    r#"{{"name": "{name}", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN", "hosts": [{}] {extra}}}"#,
                    hosts.join(", ")
                )
            })
            .collect();
        let config = format!(
            r#"{{"servers": [{{"default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": {routes}}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "{down}", "upstream_protocol": "{up}", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{clusters}]}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}}}}"#,
            up = up.config_name(),
            down = downstream().config_name(),
            clusters = clusters.join(", "),
        );
        let m = Mosn::start(&config, &[port, admin]);
        Proxy { m, port, admin }
    }

    /// One upstream cluster `up` with `host`, every request routed to it with
    /// `route_extra` (e.g. a retry policy) added to the route action.
    fn to(up: Proto, host: SocketAddr, route_extra: &str) -> Proxy {
        Proxy::start(up, &route_to("up", route_extra), &[("up", vec![host], "")])
    }

    fn stat(&self, cluster: &str, name: &str) -> u64 {
        admin_stats(self.admin)["cluster"][cluster][name]
            .as_u64()
            .unwrap_or(0)
    }

    fn retries(&self) -> u64 {
        self.stat("up", "upstream_request_retry")
    }
}

/// A route list sending everything to `cluster`, `extra` added to the route action.
fn route_to(cluster: &str, extra: &str) -> String {
    format!(r#"[{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "{cluster}"{extra}}}}}]"#)
}

/// `, "retry_policy": {...}` with the given keys and a 1 ms back-off.
fn retry(keys: &str) -> String {
    format!(r#", "retry_policy": {{{keys}, {BACK_OFF}}}"#)
}

// ---- the client: curl with prior knowledge

#[derive(Debug)]
struct Reply {
    /// 0 when no response came (a reset stream, a broken connection).
    status: u16,
    body: String,
    secs: f64,
    /// Shown (by Debug) when an assertion fails.
    #[allow(dead_code)]
    stderr: String,
}

/// `curl --http2-prior-knowledge` (`--http1.1` for an HTTP/1.1 client: see
/// [`DOWNSTREAM`]) with the options every request here uses.
fn curl_command(method: &str, headers: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/curl");
    cmd.args([
        "-sS",
        match downstream() {
            Proto::H2 => "--http2-prior-knowledge",
            Proto::H1 => "--http1.1",
        },
        "--max-time",
        "15",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{time_total}",
        "-X",
        method,
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd
}

fn reply(out: Output) -> Reply {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let mut tail = tail.split_whitespace();
    Reply {
        status: tail.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        secs: tail.next().and_then(|s| s.parse().ok()).unwrap_or(0.0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One request by curl; `body` is sent as is, with its Content-Length.
fn curl(port: u16, method: &str, path: &str, body: Option<&[u8]>, headers: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = curl_command(method, headers);
    if let Some(body) = body {
        let file = dir.path().join("body");
        std::fs::write(&file, body).unwrap();
        cmd.arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .args(["-H", "Content-Type: application/octet-stream"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    reply(run_bounded(cmd))
}

/// A PUT whose body curl uploads from its stdin: a length it does not know, so the
/// request has no Content-Length (as a gRPC call has none).
fn curl_unknown_length(port: u16, path: &str, body: &[u8]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let mut cmd = curl_command("PUT", &["Content-Type: application/octet-stream"]);
    cmd.args(["-T", "-"])
        .arg(format!("http://127.0.0.1:{port}{path}"));
    reply(run_bounded_with(
        cmd,
        Stdio::from(std::fs::File::open(&file).unwrap()),
    ))
}

/// A body whose bytes differ along its length (so a replay that mixed up or lost
/// parts would show in the digest).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---- streams the upstream never processed: sent again whatever the route says

/// The GOAWAY scenario: connection 1 of an HTTP/2 upstream answers a warm-up request,
/// then holds 4 concurrent GETs of one client until all have arrived, and sends GOAWAY
/// keeping the first of them and dropping the other 3 unanswered. Checks that the
/// client got 4 answers and the GOAWAY went as planned; returns the upstream, the
/// proxy and the requests of the 4 GETs as the upstream saw them, `None` when a peer
/// is missing.
fn goaway_scenario() -> Option<(Peer, Proxy, Vec<Seen>)> {
    if !peers_ready(Proto::H2) {
        return None;
    }
    let h2load = peer_program("h2load")?;
    let peer = Peer::H2(H2Peer::start(&[
        "--goaway-after",
        "4",
        "--goaway-skip",
        "1",
    ]));
    let p = Proxy::to(Proto::H2, peer.addr(), "");
    // The warm-up opens the worker's upstream connection first, so that the 4
    // concurrent streams below share it whatever the pool does with streams that
    // arrive together before it has a connection (today: one connection each).
    let warm = curl(p.port, "GET", "/warm", None, &[]);
    assert_eq!(warm.status, 200, "{warm:?}");
    assert!(warm.body.starts_with("conn=1 "), "{warm:?}");

    // 4 concurrent GETs on one client connection.
    let mut cmd = Command::new(h2load);
    cmd.args(["-n4", "-c1", "-m4"])
        .arg(format!("http://127.0.0.1:{}/g", p.port));
    let out = run_bounded(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 succeeded, 0 failed"),
        "{text}\n{}",
        p.m.log_text()
    );
    assert!(text.contains("status codes: 4 2xx"), "{text}");

    let Peer::H2(up) = &peer else { unreachable!() };
    let goaway = up.wait_event("goaway").expect("the upstream sent GOAWAY");
    assert_eq!(goaway["conn"], 1, "{goaway}");
    assert_eq!(goaway["answered"].as_array().unwrap().len(), 1, "{goaway}");
    assert_eq!(goaway["dropped"].as_array().unwrap().len(), 3, "{goaway}");
    let seen = peer.seen(1 + 4 + 3);
    let g: Vec<Seen> = seen.into_iter().filter(|s| s.path == "/g").collect();
    let held = g.iter().filter(|s| s.conn == 1).count();
    assert_eq!(held, 4, "4 held on connection 1: {g:#?}");
    assert!(
        g.iter().filter(|s| s.conn == 1).all(|s| s.answer == "held"),
        "{g:#?}"
    );
    Some((peer, p, g))
}

/// An HTTP/2 upstream's GOAWAY: the streams above its last stream id were never
/// processed and go again on a new connection (without any retry policy); the client
/// sees every request answered.
#[test]
fn streams_cut_by_an_upstream_goaway_are_sent_again_on_a_new_connection() {
    let Some((_peer, p, g)) = goaway_scenario() else {
        return;
    };
    let again: Vec<&Seen> = g.iter().filter(|s| s.conn != 1).collect();
    assert_eq!(
        again.len(),
        3,
        "the 3 dropped streams arrive again on new connections: {g:#?}"
    );
    assert!(
        again
            .iter()
            .all(|s| s.answer == "200" && s.method == "GET" && s.body == 0),
        "{g:#?}"
    );
    assert_eq!(p.retries(), 3, "one resend counted per dropped stream");
}

/// The 3 streams sent again after the GOAWAY share one new connection (connection
/// 2): the pool opens another connection only when the ones it has are full, and a
/// connection being opened has room for all 3.
#[test]

fn streams_sent_again_after_a_goaway_share_one_new_connection() {
    let Some((_peer, _p, g)) = goaway_scenario() else {
        return;
    };
    let conns: Vec<u64> = g.iter().filter(|s| s.conn != 1).map(|s| s.conn).collect();
    assert_eq!(
        conns,
        [2, 2, 2],
        "upstream connection of each stream sent again: {g:#?}"
    );
}

/// REFUSED_STREAM: the request was never processed; it goes again on a new connection.
#[test]
fn a_refused_stream_is_sent_again_on_a_new_connection() {
    if !peers_ready(Proto::H2) {
        return;
    }
    let up = Peer::start(Proto::H2, "200", First::Refused);
    let p = Proxy::to(Proto::H2, up.addr(), "");
    let r = curl(p.port, "GET", "/r", None, &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert_eq!(r.body, "conn=2 stream=1 method=GET path=/r body=0", "{r:?}");
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!((seen[0].conn, seen[0].answer.as_str()), (1, "refused"));
    assert_eq!((seen[1].conn, seen[1].answer.as_str()), (2, "200"));
    assert_eq!(p.retries(), 1);
}

/// Under a retry policy a refused stream whose body is held (1 KiB with its
/// Content-Length) is sent again with the same body, even a POST: the upstream never
/// acted on it.
#[test]
fn a_refused_stream_with_a_held_body_is_sent_again_with_it() {
    if !peers_ready(Proto::H2) {
        return;
    }
    let policy = retry(r#""retry_on": "5xx", "num_retries": 1"#);
    let up = Peer::start(Proto::H2, "200", First::Refused);
    let p = Proxy::to(Proto::H2, up.addr(), &policy);
    let r = curl(p.port, "POST", "/small", Some(&payload(SMALL)), &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert!(
        r.body.ends_with(&answer_of("POST", "/small", SMALL)),
        "{r:?}"
    );
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].answer, "refused");
    assert_eq!((seen[1].body, &seen[1].digest), (SMALL, &seen[0].digest));
    assert_eq!(seen[1].content_length.as_deref(), Some("1024"));
    assert_eq!(p.retries(), 1);
}

/// A body the proxy did not hold (over 64 KiB, or of unknown length) went upstream as
/// it streamed; once the upstream refuses the stream after that, the body is gone and
/// the request cannot be sent again, whatever the policy: the client gets the 503.
/// (A resend would carry the request head with no body at all.)
#[test]
fn a_refused_stream_whose_body_streamed_is_not_sent_again() {
    if !peers_ready(Proto::H2) {
        return;
    }
    let policy = retry(r#""retry_on": "5xx", "num_retries": 1"#);
    let up = Peer::start(Proto::H2, "200", First::Refused);
    let p = Proxy::to(Proto::H2, up.addr(), &policy);
    let r = curl(p.port, "PUT", "/big", Some(&payload(BIG)), &[]);
    let seen = up.seen(1);
    assert_eq!(
        (r.status, seen.len()),
        (503, 1),
        "a 100 KiB body streamed, then refused: {r:?}\n{seen:#?}"
    );
    assert_eq!((seen[0].body, seen[0].answer.as_str()), (BIG, "refused"));
    assert_eq!(p.retries(), 0);

    let up = Peer::start(Proto::H2, "200", First::Refused);
    let p = Proxy::to(Proto::H2, up.addr(), &policy);
    let r = curl_unknown_length(p.port, "/stream", &payload(SMALL));
    let seen = up.seen(1);
    assert_eq!(
        (r.status, seen.len()),
        (503, 1),
        "1 KiB of unknown length streamed, then refused: {r:?}\n{seen:#?}"
    );
    assert_eq!(seen[0].content_length, None, "{seen:#?}");
    assert_eq!((seen[0].body, seen[0].answer.as_str()), (SMALL, "refused"));
    assert_eq!(p.retries(), 0);
}

// ---- retry_policy, for an HTTP/2 and an HTTP/1.1 upstream

/// Declares one #[test] per upstream protocol for a case `fn(Proto)`; with
/// `from_http1: name`, one more where an HTTP/1.1 client meets the HTTP/2 upstream.
macro_rules! per_upstream {
    ($case:ident: $h2:ident, $h1:ident; from_http1: $from_h1:ident) => {
        per_upstream!($case: $h2, $h1);
        #[test]
        fn $from_h1() {
            if peers_ready(Proto::H2) {
                DOWNSTREAM.with(|d| d.set(Proto::H1));
                $case(Proto::H2);
            }
        }
    };
    ($case:ident: $h2:ident, $h1:ident) => {
        #[test]
        fn $h2() {
            if peers_ready(Proto::H2) {
                $case(Proto::H2);
            }
        }
        #[test]
        fn $h1() {
            if peers_ready(Proto::H1) {
                $case(Proto::H1);
            }
        }
    };
}

/// How the answer of either upstream to a request ends (see the peers).
fn answer_of(method: &str, path: &str, body: usize) -> String {
    format!("method={method} path={path} body={body}")
}

fn a_503_is_retried(proto: Proto) {
    let up = Peer::start(proto, "503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 1"#),
    );
    let r = curl(p.port, "GET", "/r", None, &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert!(r.body.ends_with(&answer_of("GET", "/r", 0)), "{r:?}");
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen.iter().all(|s| s.method == "GET" && s.path == "/r"));
    assert_eq!(
        (seen[0].answer.as_str(), seen[1].answer.as_str()),
        ("503", "200")
    );
    assert_eq!(p.retries(), 1);
}
per_upstream!(a_503_is_retried: a_503_from_an_h2_upstream_is_retried, a_503_from_an_http1_upstream_is_retried;
    from_http1: an_http1_client_s_503_from_an_h2_upstream_is_retried);

/// Up to `num_retries` retries; out of retries, the upstream's own last answer is
/// relayed.
fn retries_stop_at_num_retries(proto: Proto) {
    let up = Peer::start(proto, "503,503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 2"#),
    );
    let r = curl(p.port, "GET", "/two", None, &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert_eq!(up.seen(3).len(), 3);
    assert_eq!(p.retries(), 2);

    let up = Peer::start(proto, "503,503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 1"#),
    );
    let r = curl(p.port, "GET", "/one", None, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body.ends_with(&answer_of("GET", "/one", 0)),
        "the upstream's own 503 is relayed: {r:?}"
    );
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(p.retries(), 1);
}
per_upstream!(retries_stop_at_num_retries: h2_upstream_retries_stop_at_num_retries, http1_upstream_retries_stop_at_num_retries;
    from_http1: an_http1_client_s_retries_to_an_h2_upstream_stop_at_num_retries);

/// A 1 KiB PUT body is held and sent again, identical.
fn a_small_body_is_replayed(proto: Proto) {
    let up = Peer::start(proto, "503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 1"#),
    );
    let r = curl(p.port, "PUT", "/put", Some(&payload(SMALL)), &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert!(r.body.ends_with(&answer_of("PUT", "/put", SMALL)), "{r:?}");
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen.iter().all(|s| s.method == "PUT"
            && s.body == SMALL
            && s.content_length.as_deref() == Some("1024")),
        "{seen:#?}"
    );
    assert_eq!(seen[0].digest, seen[1].digest, "the replayed body differs");
    assert_eq!(p.retries(), 1);
}
per_upstream!(a_small_body_is_replayed: a_small_body_is_replayed_to_an_h2_upstream, a_small_body_is_replayed_to_an_http1_upstream;
    from_http1: an_http1_client_s_small_body_is_replayed_to_an_h2_upstream);

/// A POST may have been acted on: a 503 is not retried (HTTP/1 engine's rule too).
fn a_post_is_not_retried_on_503(proto: Proto) {
    let up = Peer::start(proto, "503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 3"#),
    );
    let r = curl(p.port, "POST", "/post", Some(&payload(SMALL)), &[]);
    assert_eq!(r.status, 503, "{r:?}");
    let seen = up.seen(1);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(p.retries(), 0);
}
per_upstream!(a_post_is_not_retried_on_503: an_h2_upstream_post_is_not_retried_on_503, an_http1_upstream_post_is_not_retried_on_503;
    from_http1: an_http1_client_s_post_to_an_h2_upstream_is_not_retried_on_503);

/// A 100 KiB body streams through and is never retried: the 503 is relayed.
fn a_big_body_is_not_retried(proto: Proto) {
    let up = Peer::start(proto, "503,200", First::Answered);
    let p = Proxy::to(
        proto,
        up.addr(),
        &retry(r#""retry_on": "5xx", "num_retries": 3"#),
    );
    let r = curl(p.port, "PUT", "/big", Some(&payload(BIG)), &[]);
    assert_eq!(r.status, 503, "{r:?}");
    let seen = up.seen(1);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].body, BIG, "the body streamed through whole");
    assert_eq!(p.retries(), 0);
}
per_upstream!(a_big_body_is_not_retried: a_big_body_to_an_h2_upstream_is_not_retried, a_big_body_to_an_http1_upstream_is_not_retried;
    from_http1: an_http1_client_s_big_body_to_an_h2_upstream_is_not_retried);

/// Without a retry policy a 503 is relayed as it is.
fn no_policy_no_retry(proto: Proto) {
    let up = Peer::start(proto, "503,200", First::Answered);
    let p = Proxy::to(proto, up.addr(), "");
    let r = curl(p.port, "GET", "/n", None, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.ends_with(&answer_of("GET", "/n", 0)), "{r:?}");
    assert_eq!(up.seen(1).len(), 1);
    assert_eq!(p.retries(), 0);
}
per_upstream!(no_policy_no_retry: without_a_policy_an_h2_upstream_503_is_relayed, without_a_policy_an_http1_upstream_503_is_relayed;
    from_http1: without_a_policy_an_h2_upstream_503_to_an_http1_client_is_relayed);

/// An upstream failing before its response head: retried on `reset` for a GET, not
/// for a POST.
fn a_reset_is_retried_for_idempotent_methods(proto: Proto) {
    let policy = retry(r#""retry_on": "reset", "num_retries": 1"#);
    let up = Peer::start(proto, "200", First::Reset);
    let p = Proxy::to(proto, up.addr(), &policy);
    let r = curl(p.port, "GET", "/get", None, &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[0].answer.as_str(), seen[1].answer.as_str()),
        ("reset", "200")
    );
    assert_eq!(p.retries(), 1);

    let up = Peer::start(proto, "200", First::Reset);
    let p = Proxy::to(proto, up.addr(), &policy);
    let r = curl(p.port, "POST", "/post", Some(&payload(SMALL)), &[]);
    assert_ne!(r.status, 200, "{r:?}");
    let seen = up.seen(1);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(p.retries(), 0);
}
per_upstream!(a_reset_is_retried_for_idempotent_methods: an_h2_upstream_reset_is_retried_for_get_only, an_http1_upstream_reset_is_retried_for_get_only;
    from_http1: an_h2_upstream_reset_is_retried_for_an_http1_client_s_get_only);

/// An upstream that does not answer within the per-try timeout: the next try answers.
fn per_try_timeout_tries_again(proto: Proto) {
    let up = Peer::start(proto, "200", First::Stalled);
    let routes = route_to(
        "up",
        &format!(
            r#", "timeout": "5s"{}"#,
            retry(r#""retry_on": "reset", "num_retries": 1, "per_try_timeout": "300ms""#)
        ),
    );
    let p = Proxy::start(proto, &routes, &[("up", vec![up.addr()], "")]);
    let r = curl(p.port, "GET", "/slow", None, &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    assert!(
        r.secs >= 0.29 && r.secs < 2.5,
        "answered after {} s (per-try timeout 300 ms)",
        r.secs
    );
    let seen = up.seen(2);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[0].answer.as_str(), seen[1].answer.as_str()),
        ("stalled", "200")
    );
    assert_eq!(p.retries(), 1);
}
per_upstream!(per_try_timeout_tries_again: an_h2_upstream_per_try_timeout_tries_again, an_http1_upstream_per_try_timeout_tries_again;
    from_http1: an_h2_upstream_per_try_timeout_tries_again_for_an_http1_client);

/// A host that refuses connections: retried on `connect-failure`, even for a POST
/// with a body (nothing of it reached an upstream).
fn connect_failures_are_retried(proto: Proto) {
    let up = Peer::start(proto, "200", First::Answered);
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Proxy::start(
        proto,
        &route_to(
            "up",
            &retry(r#""retry_on": "connect-failure", "num_retries": 1"#),
        ),
        &[("up", vec![dead, up.addr()], "")],
    );
    for i in 0..4 {
        let r = curl(
            p.port,
            "POST",
            &format!("/c{i}"),
            Some(&payload(SMALL)),
            &[],
        );
        assert_eq!(r.status, 200, "{r:?}\n{}", p.m.log_text());
    }
    let seen = up.seen(4);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(seen.iter().all(|s| s.body == SMALL), "{seen:#?}");
    let retries = p.retries();
    assert!(
        retries >= 1,
        "round robin over 2 hosts never met the dead one"
    );
    assert_eq!(retries, p.stat("up", "upstream_connection_connect_fail"));
}
per_upstream!(connect_failures_are_retried: connect_failures_to_h2_hosts_are_retried, connect_failures_to_http1_hosts_are_retried;
    from_http1: an_http1_client_s_connect_failures_to_h2_hosts_are_retried);

// ---- request_mirror_policies

/// A copy goes to the mirror cluster with `-shadow` appended to the authority; the
/// client gets the primary's answer, without waiting for the mirror.
fn mirrored(proto: Proto) {
    let main = Peer::start(proto, "200", First::Answered);
    // The HTTP/1.1 mirror answers late: the client must not wait for it.
    let shadow = match proto {
        Proto::H1 => Peer::H1(H1Peer::start(
            vec![200],
            First::Answered,
            Duration::from_millis(500),
        )),
        Proto::H2 => Peer::start(proto, "200", First::Answered),
    };
    let routes = r#"[{"match": {"prefix": "/"}, "route": {"cluster_name": "main"},
        "request_mirror_policies": {"cluster": "shadow", "percent": 100}}]"#;
    let p = Proxy::start(
        proto,
        routes,
        &[
            ("main", vec![main.addr()], ""),
            ("shadow", vec![shadow.addr()], ""),
        ],
    );
    let r = curl(p.port, "POST", "/m", Some(b"body"), &["Host: shop"]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.ends_with(&answer_of("POST", "/m", 4)), "{r:?}");
    if proto == Proto::H1 {
        assert!(
            r.secs < 0.4,
            "the client waited {} s for the mirror",
            r.secs
        );
    }
    let primary = main.seen(1);
    assert_eq!(primary.len(), 1, "{primary:#?}");
    assert_eq!(primary[0].authority, "shop");
    let copy = shadow.seen(1);
    assert_eq!(copy.len(), 1, "the mirror got one copy: {copy:#?}");
    assert_eq!(
        (
            copy[0].method.as_str(),
            copy[0].path.as_str(),
            copy[0].authority.as_str(),
            copy[0].body
        ),
        ("POST", "/m", "shop-shadow", 4),
        "{copy:#?}"
    );
    assert_eq!(
        copy[0].digest, primary[0].digest,
        "the mirror's body differs"
    );
}
per_upstream!(mirrored: an_h2_request_is_mirrored_to_an_h2_cluster, an_h2_request_is_mirrored_to_an_http1_cluster;
    from_http1: an_http1_request_is_mirrored_to_an_h2_cluster);

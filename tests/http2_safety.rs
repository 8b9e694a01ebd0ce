//! HTTP/2 attack resistance through the real binary, driven frame by frame by
//! tests/peers/h2_frames.py: malformed requests (RFC 9113 §8), header and stream
//! limits, Rapid Reset (CVE-2023-44487), and PING, SETTINGS, CONTINUATION, HPACK and
//! empty-DATA floods. Every case checks the exact frame the proxy answers with, that
//! nothing malformed reached the upstream, and that the proxy still serves afterwards.
//! See docs/http2.md.

mod common;
use common::peers::venv_python;
use common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// An HTTP/1.1 upstream answering 200 "ok" that counts complete requests: a request
/// whose body never arrived in full is not counted.
struct Counting {
    up: Upstream,
    requests: Arc<AtomicUsize>,
}

impl Counting {
    fn start() -> Counting {
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        let up = Upstream::start(move |mut s| {
            use std::io::Write;
            while read_request(&mut s).is_some() {
                seen.fetch_add(1, Ordering::SeqCst);
                if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .is_err()
                {
                    return;
                }
            }
        });
        Counting { up, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An upstream that reads a request and never answers (holds streams open).
fn silent_upstream() -> Upstream {
    Upstream::start(|mut s| {
        let _ = read_request(&mut s);
        let mut b = [0u8; 64];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    })
}

/// An h2c listener (HTTP/1.1 upstreams): `/hold` to `hold`, `/direct` answered by the
/// proxy, everything else to `up`; `http2` is the proxy filter's `http2` object.
fn start(up: SocketAddr, hold: SocketAddr, http2: &str) -> (Mosn, u16) {
    let port = free_port();
    let config = format!(
        r#"{{"servers": [{{"default_log_level": "WARN", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": [
    {{"match": {{"prefix": "/hold"}}, "route": {{"cluster_name": "hold"}}}},
    {{"match": {{"prefix": "/direct"}}, "direct_response": {{"status": 200, "body": "direct"}}}},
    {{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "up"}}}}]}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http2", "upstream_protocol": "Http1", "router_config_name": "r", "http2": {http2}}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [
    {{"name": "up", "hosts": [{{"address": "{up}"}}]}},
    {{"name": "hold", "hosts": [{{"address": "{hold}"}}]}}]}}}}"#
    );
    (Mosn::start(&config, &[port]), port)
}

/// Runs one case of h2_frames.py and returns the JSON it printed.
fn case(port: u16, case: &str, n: usize) -> Value {
    let python = venv_python().expect("the venv of scripts/setup.sh (h2)");
    let child = Command::new(python)
        .arg(common::peers::peers_dir().join("h2_frames.py"))
        .args([port.to_string(), case.to_string(), n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn h2_frames.py");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(30)) else {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        panic!("h2_frames.py {case} ran over 30 s");
    };
    let out = out.expect("h2_frames.py output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "h2_frames.py {case} printed no JSON:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn frames(v: &Value) -> &Vec<Value> {
    v["frames"].as_array().expect("frames")
}

/// Frames on `stream` (HEADERS, DATA, RST_STREAM) as (type, status or error code).
fn on_stream(v: &Value, stream: u64) -> Vec<(String, Value)> {
    frames(v)
        .iter()
        .filter(|f| f["stream"] == json!(stream))
        .map(|f| {
            let detail = match f["type"].as_str() {
                Some("HEADERS") => f["status"].clone(),
                Some("RST_STREAM") => f["error"].clone(),
                _ => Value::Null,
            };
            (f["type"].as_str().unwrap_or("").to_string(), detail)
        })
        .collect()
}

fn goaways(v: &Value) -> Vec<&Value> {
    frames(v).iter().filter(|f| f["type"] == "GOAWAY").collect()
}

/// The case ended with RST_STREAM `error` on stream 1 and nothing else on it, the
/// connection stayed open and served the next request.
fn assert_stream_error(v: &Value, error: &str) {
    assert_eq!(
        on_stream(v, 1),
        vec![("RST_STREAM".to_string(), json!(error))],
        "{v}"
    );
    assert!(goaways(v).is_empty(), "{v}");
    assert_eq!(v["closed"], json!(false), "{v}");
    assert_eq!(v["same_conn"], json!(200), "{v}");
    assert_eq!(v["after"], json!(200), "{v}");
}

/// The case ended with one GOAWAY `error` and the connection closed; the proxy then
/// served a new connection.
fn assert_connection_error(v: &Value, error: &str) {
    let g = goaways(v);
    assert_eq!(g.len(), 1, "{v}");
    assert_eq!(g[0]["error"], json!(error), "{v}");
    assert_eq!(v["closed"], json!(true), "{v}");
    assert_eq!(v["after"], json!(200), "{v}");
}

/// The normal requests a case made after its own frames (same connection, new one).
fn follow_ups(v: &Value) -> usize {
    usize::from(v["same_conn"] == json!(200)) + usize::from(v["after"] == json!(200))
}

/// The upstream saw exactly the case's follow-up requests (+ `own` of the case's).
fn assert_forwarded(up: &Counting, before: usize, v: &Value, own: usize) {
    // The follow-ups were answered, so they were counted; nothing else may arrive.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(up.requests() - before, follow_ups(v) + own, "{v}");
}

#[test]
fn malformed_requests_are_reset_and_never_forwarded() {
    let Some(_) = venv_python() else { return };
    let up = Counting::start();
    let hold = silent_upstream();
    let (_m, port) = start(up.up.addr, hold.addr, "{}");
    // Well-formed controls: forwarded.
    for name in ["normal", "te_trailers"] {
        let before = up.requests();
        let v = case(port, name, 0);
        assert_eq!(on_stream(&v, 1)[0], ("HEADERS".into(), json!(200)), "{v}");
        assert_forwarded(&up, before, &v, 1);
    }
    // Stream errors: RST_STREAM(PROTOCOL_ERROR), the connection lives on. The first
    // group is `h2`'s, the `:path` rules are mosn-rs's (h2 lets them through).
    for name in [
        "connection",
        "keep_alive",
        "proxy_connection",
        "transfer_encoding",
        "upgrade",
        "te_gzip",
        "missing_method",
        "missing_scheme",
        "missing_path",
        "empty_path",
        "duplicate_method",
        "duplicate_path",
        "late_pseudo",
        "status_in_request",
        "cl_data_longer",
        "cl_data_shorter",
        "cl_end_stream_on_headers",
        "cl_data_longer_late",
        "missing_path_no_authority",
        "relative_path",
    ] {
        let before = up.requests();
        let v = case(port, name, 0);
        assert_stream_error(&v, "PROTOCOL_ERROR");
        assert_forwarded(&up, before, &v, 0);
    }
    // Field names `h2`'s HPACK decoder cannot take (uppercase, unknown pseudo-header)
    // fail the whole header block: a connection error (RFC 9113 §5.4.1 allows one).
    for name in ["uppercase_name", "unknown_pseudo"] {
        let before = up.requests();
        let v = case(port, name, 0);
        assert_connection_error(&v, "PROTOCOL_ERROR");
        assert!(on_stream(&v, 1).is_empty(), "{v}");
        assert_forwarded(&up, before, &v, 0);
    }
}

#[test]
fn header_count_and_size_limits() {
    let Some(_) = venv_python() else { return };
    let up = Counting::start();
    let hold = silent_upstream();
    let (m, port) = start(up.up.addr, hold.addr, "{}");
    // 100 fields (41 of them cookie crumbs) pass; 101 get 431 and are not forwarded
    // (as one `cookie` line they would be 61).
    let before = up.requests();
    let v = case(port, "headers", 100);
    assert_eq!(on_stream(&v, 1)[0], ("HEADERS".into(), json!(200)), "{v}");
    assert_forwarded(&up, before, &v, 1);
    let before = up.requests();
    let v = case(port, "headers", 101);
    assert_eq!(
        on_stream(&v, 1),
        vec![("HEADERS".into(), json!(431)), ("DATA".into(), Value::Null)],
        "{v}"
    );
    assert_eq!(v["same_conn"], json!(200), "{v}");
    assert_forwarded(&up, before, &v, 0);
    // A header list over 60 KiB (decoded): h2 answers 431 itself.
    let before = up.requests();
    let v = case(port, "header_list_too_large", 0);
    assert_eq!(
        on_stream(&v, 1),
        vec![("HEADERS".into(), json!(431))],
        "{v}"
    );
    assert!(goaways(&v).is_empty(), "{v}");
    assert_eq!(v["same_conn"], json!(200), "{v}");
    assert_forwarded(&up, before, &v, 0);
    // HPACK bomb: one 4000-byte table entry referenced again and again. 20 times is
    // over the list limit (431); 16,000 times (64 MB decoded from a 16 KB frame) is
    // past h2's abuse limit (4x the list size): the connection goes, memory stays flat.
    let before = up.requests();
    let v = case(port, "hpack_bomb", 20);
    assert_eq!(
        on_stream(&v, 1),
        vec![("HEADERS".into(), json!(431))],
        "{v}"
    );
    assert_eq!(v["same_conn"], json!(200), "{v}");
    assert_forwarded(&up, before, &v, 0);
    let rss_before = m.peak_rss_kib();
    let before = up.requests();
    let v = case(port, "hpack_bomb", 16_000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    assert_eq!(
        goaways(&v)[0]["debug"],
        json!("header_list_way_too_large"),
        "{v}"
    );
    assert_forwarded(&up, before, &v, 0);
    let grown = m.peak_rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "peak RSS grew {grown} KiB");
    // The limits are the listener's to choose.
    let (_m2, port2) = start(up.up.addr, hold.addr, r#"{"max_headers": 150}"#);
    let v = case(port2, "headers", 101);
    assert_eq!(on_stream(&v, 1)[0], ("HEADERS".into(), json!(200)), "{v}");
}

#[test]
fn advertised_settings_and_refused_streams() {
    let Some(_) = venv_python() else { return };
    let up = Counting::start();
    let hold = silent_upstream();
    let (_m, port) = start(up.up.addr, hold.addr, "{}");
    // 101 streams at once to an upstream that never answers: the SETTINGS said 100,
    // so the 101st (stream 201) is refused, the others are all forwarded.
    let v = case(port, "concurrent", 101);
    let s = &v["settings"];
    assert_eq!(s["MAX_CONCURRENT_STREAMS"], json!(100), "{v}");
    assert_eq!(s["INITIAL_WINDOW_SIZE"], json!(65536), "{v}");
    assert_eq!(s["MAX_HEADER_LIST_SIZE"], json!(61440), "{v}");
    // The connection window: 65,535 by the RFC, raised to 1 MiB.
    assert_eq!(
        s["connection_window_increment"],
        json!(1024 * 1024 - 65535),
        "{v}"
    );
    let resets: Vec<&Value> = frames(&v)
        .iter()
        .filter(|f| f["type"] == "RST_STREAM")
        .collect();
    assert_eq!(resets.len(), 1, "{v}");
    assert_eq!(resets[0]["stream"], json!(201), "{v}");
    assert_eq!(resets[0]["error"], json!("REFUSED_STREAM"), "{v}");
    assert_eq!(v["after"], json!(200), "{v}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while hold.connections() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(hold.connections(), 100);
    // Configured otherwise.
    let (_m2, port2) = start(
        up.up.addr,
        hold.addr,
        r#"{"max_concurrent_streams": 10, "initial_stream_window_size": 1048576,
            "initial_connection_window_size": 4194304, "max_header_list_size": 8192}"#,
    );
    let v = case(port2, "concurrent", 11);
    let s = &v["settings"];
    assert_eq!(s["MAX_CONCURRENT_STREAMS"], json!(10), "{v}");
    assert_eq!(s["INITIAL_WINDOW_SIZE"], json!(1048576), "{v}");
    assert_eq!(s["MAX_HEADER_LIST_SIZE"], json!(8192), "{v}");
    assert_eq!(
        s["connection_window_increment"],
        json!(4 * 1024 * 1024 - 65535),
        "{v}"
    );
    let refused: Vec<&Value> = frames(&v)
        .iter()
        .filter(|f| f["type"] == "RST_STREAM")
        .collect();
    assert_eq!(refused.len(), 1, "{v}");
    assert_eq!(refused[0]["stream"], json!(21), "{v}");
    assert_eq!(refused[0]["error"], json!("REFUSED_STREAM"), "{v}");
}

#[test]
fn rapid_reset_gets_goaway() {
    let Some(_) = venv_python() else { return };
    let up = Counting::start();
    let hold = silent_upstream();
    // Defaults: 1000 streams opened and reset in one burst. `h2` sees more than 20
    // reset streams waiting to be accepted and sends GOAWAY ENHANCE_YOUR_CALM.
    let (_m, port) = start(up.up.addr, hold.addr, "{}");
    let v = case(port, "rapid_reset", 1000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    assert_eq!(goaways(&v)[0]["debug"], json!("too_many_resets"), "{v}");
    // Paced (10 streams per write) the resets do not pile up in h2's accept queue;
    // mosn-rs's own rule closes the connection: 500 streams, over half of them
    // reset within a second of opening. Its GOAWAY carries no debug data. (On a
    // loaded machine the writes can bunch up and h2's guard may still come first.)
    let v = case(port, "rapid_reset_paced", 1000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    let debug = &goaways(&v)[0]["debug"];
    assert!(
        *debug == json!("") || *debug == json!("too_many_resets"),
        "{v}"
    );
    assert!(goaways(&v)[0]["last_stream"].as_u64() < Some(1999), "{v}");
    // With h2's guard out of the way, mosn-rs's rule alone: it closes the connection
    // once 500 streams were opened, all reset at once.
    let (_m2, port2) = start(
        up.up.addr,
        hold.addr,
        r#"{"max_pending_accept_reset_streams": 1000000}"#,
    );
    let v = case(port2, "rapid_reset", 1000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    assert_eq!(goaways(&v)[0]["debug"], json!(""), "{v}");
    let paced = case(port2, "rapid_reset_paced", 1000);
    assert_connection_error(&paced, "ENHANCE_YOUR_CALM");
    assert_eq!(goaways(&paced)[0]["debug"], json!(""), "{paced}");
    // 400 such streams are below the rule's 500: the connection serves on.
    let v = case(port2, "rapid_reset", 400);
    assert!(goaways(&v).is_empty(), "{v}");
    assert_eq!(v["same_conn"], json!(200), "{v}");
    // Off (rapid_reset_min_streams 0): 1000 resets are tolerated.
    let (_m3, port3) = start(
        up.up.addr,
        hold.addr,
        r#"{"max_pending_accept_reset_streams": 1000000, "rapid_reset_min_streams": 0}"#,
    );
    let v = case(port3, "rapid_reset", 1000);
    assert!(goaways(&v).is_empty(), "{v}");
    assert_eq!(v["same_conn"], json!(200), "{v}");
}

#[test]
fn floods_are_bounded() {
    let Some(_) = venv_python() else { return };
    let up = Counting::start();
    let hold = silent_upstream();
    let (m, port) = start(up.up.addr, hold.addr, "{}");
    let rss_before = m.peak_rss_kib();
    // 10,000 PINGs: each answered (h2 reads the next frame only once the previous
    // answer is buffered, so a client that does not read stalls itself).
    let v = case(port, "ping_flood", 10_000);
    assert_eq!(v["counts"]["PING"], json!(10_000), "{v}");
    assert_eq!(v["same_conn"], json!(200), "{v}");
    assert_eq!(v["after"], json!(200), "{v}");
    // 10,000 SETTINGS, each changing INITIAL_WINDOW_SIZE: each acknowledged.
    let v = case(port, "settings_flood", 10_000);
    assert!(
        v["counts"]["SETTINGS"].as_u64().unwrap_or(0) > 10_000,
        "{v}"
    );
    assert_eq!(v["same_conn"], json!(200), "{v}");
    // CONTINUATION without END_HEADERS, 10,000 times: a connection error after a few
    // (h2 allows a header list's worth of frames, at least 5).
    let v = case(port, "continuation_flood", 10_000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    assert_eq!(
        goaways(&v)[0]["debug"],
        json!("too_many_continuations"),
        "{v}"
    );
    // Empty DATA frames: h2 allows 100 per connection.
    let v = case(port, "empty_data_flood", 1000);
    assert_connection_error(&v, "ENHANCE_YOUR_CALM");
    assert_eq!(
        goaways(&v)[0]["debug"],
        json!("too_many_data_frames"),
        "{v}"
    );
    // Streams the proxy must reset for protocol errors: 1024 per connection, then
    // GOAWAY. Empty HEADERS (no pseudo-headers) are h2's to reset and count; streams
    // without `:path` are mosn-rs's (same limit, its GOAWAY has no debug data). The
    // last few RST_STREAMs may be dropped in favour of the GOAWAY.
    for (name, debug) in [
        ("empty_headers_flood", "too_many_internal_resets"),
        ("malformed_flood", ""),
    ] {
        let v = case(port, name, 1500);
        assert_connection_error(&v, "ENHANCE_YOUR_CALM");
        assert_eq!(goaways(&v)[0]["debug"], json!(debug), "{v}");
        let resets = v["counts"]["RST_STREAM:PROTOCOL_ERROR"]
            .as_u64()
            .unwrap_or(0);
        assert!((1000..=1024).contains(&resets), "{resets} resets: {v}");
    }
    let grown = m.peak_rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "peak RSS grew {grown} KiB");
}

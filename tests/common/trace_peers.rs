//! Real peers for the tracing tests (tests/peers/README.md, "Tracing peers"), run by
//! the venv's Python:
//! - [`SwCollector`]: tests/peers/sw_collector.py, the gRPC side of a SkyWalking OAP
//!   (v3 data-collect protocol, on the generated code inside apache-skywalking) that
//!   hands over every trace segment it receives as JSON;
//! - [`SwHttpService`]: tests/peers/sw_http_service.py, an HTTP/1.1 upstream run under
//!   the real SkyWalking Python agent, which continues the trace of an incoming `sw8`
//!   header and reports its segment to a collector;
//! - [`OtlpCollector`]: tests/peers/otlp_collector.py, an OTLP/gRPC trace collector
//!   (opentelemetry-proto) that hands over every span it receives as JSON.
//!
//! Outside CI a test skips itself when the venv lacks these packages (`start`
//! returns None after a note); in CI (env `CI` set) that fails the test instead.
//! Every peer is killed when its handle drops.

use super::peers::{peers_dir, start_ready_peer, ReadyPeer};
use super::repo_root;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The venv's Python when scripts/setup.sh built it with apache-skywalking and
/// opentelemetry-proto (its marker names them); None (after a note) otherwise.
/// Panics instead when env `CI` is set.
pub fn trace_python() -> Option<PathBuf> {
    let venv = repo_root().join(".venv");
    let python = venv.join("bin/python");
    let marker = std::fs::read_to_string(venv.join(".mosn-setup-ok")).unwrap_or_default();
    if python.exists()
        && marker.contains("apache-skywalking==")
        && marker.contains("opentelemetry-proto==")
    {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the venv has no apache-skywalking / opentelemetry-proto: run scripts/setup.sh");
    }
    eprintln!("skipping: no tracing peers in .venv (run scripts/setup.sh)");
    None
}

/// A running peer script that prints one JSON value per line after READY.
struct JsonPeer {
    port: u16,
    child: Child,
    /// Held open: the peer exits when its stdin closes (so it never outlives us).
    _stdin: ChildStdin,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl JsonPeer {
    fn start(script: &str, args: &[&str]) -> Option<JsonPeer> {
        let python = trace_python()?;
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join(script)).args(args);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let ReadyPeer {
            child,
            stdin,
            port,
            stderr,
        } = start_ready_peer(cmd, script, move |line| {
            let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "unparsed": line }));
            sink.lock().unwrap().push(v);
        });
        Some(JsonPeer {
            port,
            child,
            _stdin: stdin,
            lines,
            stderr,
        })
    }

    fn all(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Polls until `predicate` holds over everything received so far, or `timeout`
    /// passed; returns everything received (check the predicate again to tell).
    fn wait(&self, timeout: Duration, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if predicate(&all) || Instant::now() >= deadline {
                return all;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for JsonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/peers/sw_collector.py on a free port of 127.0.0.1: a SkyWalking collector
/// (OAP gRPC side). Every segment it receives (TraceSegmentReportService collect and
/// collectInSync) becomes one JSON value:
/// `{"trace_id","segment_id","service","instance","spans":[{"span_id",
/// "parent_span_id","operation","peer","span_type" ("Entry"|"Exit"|"Local"),
/// "span_layer" ("Http", ...),"component_id","is_error","start_time","end_time",
/// "tags":{k:v},"logs":[..],"refs":[{"ref_type" ("CrossProcess"|"CrossThread"),
/// "trace_id","parent_segment_id","parent_span_id","parent_service",
/// "parent_instance","parent_endpoint","network_address"}]}]}`.
/// The other services (management, configuration discovery, meter, log, profile,
/// ...) answer empty Commands; their calls are listed by [`SwCollector::calls`].
pub struct SwCollector {
    peer: JsonPeer,
}

impl SwCollector {
    /// Starts it and waits until it serves; None (skip) when the venv lacks the
    /// tracing peers outside CI.
    pub fn start() -> Option<SwCollector> {
        Some(SwCollector {
            peer: JsonPeer::start("sw_collector.py", &["0"])?,
        })
    }

    pub fn port(&self) -> u16 {
        self.peer.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.peer.port))
    }

    /// Waits until `predicate` holds over the segments received so far (in arrival
    /// order), or `timeout` passed; returns the segments received.
    pub fn segments(&self, timeout: Duration, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.peer.wait(timeout, predicate)
    }

    /// The segments received so far.
    pub fn all_segments(&self) -> Vec<Value> {
        self.peer.all()
    }

    /// The other calls taken so far, one line each in order:
    /// `CALL <service>/<method> <json>`, e.g.
    /// `CALL skywalking.v3.ManagementService/keepAlive {"service": "s", "serviceInstance": "i"}`
    /// (client streams: `{"messages": n}`).
    pub fn calls(&self) -> Vec<String> {
        self.peer
            .stderr_text()
            .lines()
            .filter(|l| l.starts_with("CALL "))
            .map(str::to_string)
            .collect()
    }

    pub fn stderr_text(&self) -> String {
        self.peer.stderr_text()
    }
}

/// tests/peers/sw_http_service.py on a free port of 127.0.0.1: an HTTP/1.1 server
/// (Python's http.server) under the real SkyWalking Python agent, reporting as
/// service `name` to the collector on 127.0.0.1:`collector_port`. Answers every
/// request 200 with `{"name","method","path","sw8","traceparent"}` (the headers it
/// got, or null); the agent's Entry span (operation = the path, component 7000)
/// continues an incoming `sw8`. Its segment reaches the collector within a few tens
/// of milliseconds of the answer.
pub struct SwHttpService {
    peer: JsonPeer,
}

impl SwHttpService {
    /// Starts it (after the agent started) and waits until it listens; None (skip)
    /// when the venv lacks the tracing peers outside CI. Start the collector first:
    /// the agent drops the segments of a report that fails (unreachable collector,
    /// UNIMPLEMENTED), it does not retry them.
    pub fn start(collector_port: u16, name: &str) -> Option<SwHttpService> {
        let collector = format!("127.0.0.1:{collector_port}");
        Some(SwHttpService {
            peer: JsonPeer::start("sw_http_service.py", &["0", &collector, name])?,
        })
    }

    pub fn port(&self) -> u16 {
        self.peer.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.peer.port))
    }

    /// What the agent logged (warnings and errors) on stderr.
    pub fn stderr_text(&self) -> String {
        self.peer.stderr_text()
    }
}

/// tests/peers/otlp_collector.py on a free port of 127.0.0.1: an OTLP/gRPC trace
/// collector. Every span it receives becomes one JSON value:
/// `{"service" (resource service.name),"trace_id" (32 hex),"span_id" (16 hex),
/// "parent_span_id" (16 hex or ""),"trace_state","name","kind" (int),"start_ns",
/// "end_ns","attributes":{k: plain value},"status_code" (int),"status_message",
/// "scope","flags","events":[..]}`.
pub struct OtlpCollector {
    peer: JsonPeer,
}

impl OtlpCollector {
    /// Starts it and waits until it serves; None (skip) when the venv lacks the
    /// tracing peers outside CI.
    pub fn start() -> Option<OtlpCollector> {
        Some(OtlpCollector {
            peer: JsonPeer::start("otlp_collector.py", &["0"])?,
        })
    }

    pub fn port(&self) -> u16 {
        self.peer.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.peer.port))
    }

    /// Waits until `predicate` holds over the spans received so far (in arrival
    /// order), or `timeout` passed; returns the spans received.
    pub fn spans(&self, timeout: Duration, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.peer.wait(timeout, predicate)
    }

    /// The spans received so far.
    pub fn all_spans(&self) -> Vec<Value> {
        self.peer.all()
    }

    pub fn stderr_text(&self) -> String {
        self.peer.stderr_text()
    }
}

/// Runs `otlp_collector.py --selftest-client 127.0.0.1:PORT`: one Export with the
/// fixed span its docstring describes. Returns (it succeeded, the JSON it printed).
pub fn otlp_selftest_client(port: u16) -> (bool, Value) {
    let Some(python) = trace_python() else {
        return (false, json!({"ok": false, "error": "no venv"}));
    };
    let child = Command::new(python)
        .arg(peers_dir().join("otlp_collector.py"))
        .arg("--selftest-client")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn otlp_collector.py --selftest-client");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(Duration::from_secs(15)) else {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = rx.recv_timeout(Duration::from_secs(5));
        return (
            false,
            json!({"ok": false, "error": "the OTLP selftest client ran over 15 s"}),
        );
    };
    let output = output.expect("otlp selftest client output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| {
            json!({"ok": false, "stdout": stdout,
                   "stderr": String::from_utf8_lossy(&output.stderr)})
        });
    (output.status.success() && value["ok"] == json!(true), value)
}

/// Standard base64 with padding (what SkyWalking's `sw8` fields use).
pub fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The fields of an `sw8` header (SkyWalking cross-process propagation v3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sw8 {
    pub trace_id: String,
    pub parent_segment_id: String,
    pub parent_span_id: i32,
    pub parent_service: String,
    pub parent_instance: String,
    pub parent_endpoint: String,
    /// The address the caller used to reach the callee (`host:port`).
    pub address: String,
}

impl Sw8 {
    /// `1-<b64 traceId>-<b64 parentSegmentId>-<parentSpanId>-<b64 parentService>-
    /// <b64 parentInstance>-<b64 parentEndpoint>-<b64 addressUsedAtClient>`. The
    /// Python agent ignores the whole header when any field is empty.
    pub fn header(&self) -> String {
        format!(
            "1-{}-{}-{}-{}-{}-{}-{}",
            b64(&self.trace_id),
            b64(&self.parent_segment_id),
            self.parent_span_id,
            b64(&self.parent_service),
            b64(&self.parent_instance),
            b64(&self.parent_endpoint),
            b64(&self.address),
        )
    }
}

/// The segments of `service` among `segments`.
pub fn segments_of<'a>(segments: &'a [Value], service: &str) -> Vec<&'a Value> {
    segments
        .iter()
        .filter(|s| s["service"] == service)
        .collect()
}

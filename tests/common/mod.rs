//! Harness for black-box tests: start the real `mosn-rs` binary on a config with free
//! loopback ports, talk to it over sockets, and run scripted upstream servers.
//! Everything started here is stopped when its handle drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mosn-rs");

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    // The kernel may hand the same ephemeral port out again once its listener is
    // closed: a test that asks for two ports could get one twice (seen in CI: a
    // listener and the admin API on one port). Never return a port twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running mosn-rs process.
pub struct Mosn {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Mosn {
    /// Writes `config` to a file and starts `mosn-rs start -c FILE`; waits until every
    /// port in `wait_ports` accepts connections.
    pub fn start(config: &str, wait_ports: &[u16]) -> Mosn {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, config).unwrap();
        Self::start_file(&cfg, dir, wait_ports)
    }

    pub fn start_file(cfg: &Path, dir: tempfile::TempDir, wait_ports: &[u16]) -> Mosn {
        let log = dir.path().join("mosn.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["start", "-c"])
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("spawn mosn-rs");
        let mut m = Mosn {
            child: Some(child),
            dir,
            log,
        };
        for &port in wait_ports {
            m.wait_port(port);
        }
        // Another process may hold a port picked by free_port (the race every such
        // picker has): then mosn-rs exits (address in use) while the port answers.
        // Say so here rather than as a stray answer later.
        if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "mosn-rs exited with {status} after its ports answered (taken by another process?):\n{}",
                m.log_text()
            );
        }
        m
    }

    fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "mosn-rs exited with {status} before listening on {port}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("mosn-rs did not listen on {port}:\n{}", self.log_text());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for exit up to `limit`; returns the exit code (None when killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("mosn-rs did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }
}

pub fn proc_status_kib(pid: i32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

impl Drop for Mosn {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A MOSN config: one HTTP/1 proxy listener on `port` routing `/` to cluster `up` with
/// `hosts`, plus an admin listener. `extra_route` JSON lets a test put routes first;
/// `proxy_extra` adds keys to the proxy filter config; `cluster_extra` to the cluster.
pub struct HttpConfig {
    pub port: u16,
    pub admin_port: u16,
    pub hosts: Vec<SocketAddr>,
    pub routes: String,
    pub proxy_extra: String,
    pub cluster_extra: String,
    pub listener_extra: String,
    pub server_extra: String,
}

impl HttpConfig {
    pub fn new(hosts: &[SocketAddr]) -> Self {
        HttpConfig {
            port: free_port(),
            admin_port: free_port(),
            hosts: hosts.to_vec(),
            routes: r#"{"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}"#.into(),
            proxy_extra: String::new(),
            cluster_extra: String::new(),
            listener_extra: String::new(),
            server_extra: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!(r#"{{"address": "{h}"}}"#))
            .collect();
        format!(
            r#"{{
  "servers": [{{
    "default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 2 {server_extra},
    "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": [{routes}]}}]}}],
    "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true {listener_extra},
      "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "upstream_protocol": "Http1", "router_config_name": "r" {proxy_extra}}}}}]}}]}}]
  }}],
  "cluster_manager": {{"clusters": [{{"name": "up", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN", "hosts": [{hosts}] {cluster_extra}}}]}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}}
}}"#,
            server_extra = self.server_extra,
            routes = self.routes,
            port = self.port,
            listener_extra = self.listener_extra,
            proxy_extra = self.proxy_extra,
            hosts = hosts.join(", "),
            cluster_extra = self.cluster_extra,
            admin = self.admin_port,
        )
    }

    pub fn start(&self) -> Mosn {
        Mosn::start(&self.render(), &[self.port, self.admin_port])
    }
}

/// A config with one HTTP/1 listener `l` routing by `routes` (a JSON list of routes)
/// to the named clusters, each `(name, hosts, extra cluster keys)`.
pub fn multi_cluster_config(
    port: u16,
    admin_port: u16,
    routes: &str,
    clusters: &[(&str, Vec<SocketAddr>, &str)],
) -> String {
    let clusters: Vec<String> = clusters
        .iter()
        .map(|(name, hosts, extra)| {
            let hosts: Vec<String> = hosts.iter().map(|h| format!(r#"{{"address": "{h}"}}"#)).collect();
            format!(r#"{{"name": "{name}", "type": "SIMPLE", "lb_type": "LB_ROUNDROBIN", "hosts": [{}] {extra}}}"#, hosts.join(", "))
        })
        .collect();
    format!(
        r#"{{"servers": [{{"default_log_path": "stderr", "default_log_level": "DEBUG", "processor": 1,
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"], "routers": {routes}}}]}}],
  "listeners": [{{"name": "l", "address": "127.0.0.1:{port}", "bind_port": true,
    "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}]}}],
  "cluster_manager": {{"clusters": [{}]}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin_port}}}}}}}}}"#,
        clusters.join(", ")
    )
}

/// Reads the admin stats as JSON.
pub fn admin_stats(admin_port: u16) -> serde_json::Value {
    let resp = http_exchange(
        admin_port,
        b"GET /api/v1/stats HTTP/1.1\r\nHost: admin\r\n\r\n",
    );
    serde_json::from_slice(&resp.body).expect("stats JSON")
}

pub fn listener_stat(admin_port: u16, name: &str) -> u64 {
    admin_stats(admin_port)["listener"]["l"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no stat {name}"))
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends raw bytes on a new connection and reads one response.
pub fn http_exchange(port: u16, request: &[u8]) -> Response {
    let mut s = connect(port);
    s.write_all(request).unwrap();
    read_response(&mut s, request.starts_with(b"HEAD")).expect("a response")
}

/// Reads one response (skipping nothing: a 1xx is returned as is). Handles
/// Content-Length, chunked and close-delimited bodies. None on EOF before a head.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Option<Response> {
    let mut buf = Vec::new();
    let head_end = read_head(s, &mut buf)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut resp = Response {
        status,
        head,
        body: Vec::new(),
    };
    let mut rest = buf[head_end..].to_vec();
    if status < 200 || status == 204 || status == 304 || head_request {
        // Put back what belongs to the next message.
        PUSHBACK.with(|p| *p.borrow_mut() = rest);
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            let mut chunk = vec![0u8; 65536];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "EOF inside body");
            rest.extend_from_slice(&chunk[..n]);
        }
        resp.body = rest[..len].to_vec();
        PUSHBACK.with(|p| *p.borrow_mut() = rest[len..].to_vec());
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        resp.body = read_chunked(s, rest);
    } else {
        s.read_to_end(&mut rest).unwrap();
        resp.body = rest;
    }
    Some(resp)
}

/// Reads into `buf` until it holds a blank line (the end of a message head); where the
/// head ends in `buf`. None on EOF or a read error first.
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

thread_local! {
    /// Bytes read past a response (tests that pipeline look here).
    pub static PUSHBACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn read_chunked(s: &mut TcpStream, mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf, b"\r\n") {
                break i;
            }
            fill(s, &mut buf);
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&buf[..line_end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers until an empty line.
            loop {
                if let Some(i) = find(&buf, b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return body;
                    }
                } else {
                    fill(s, &mut buf);
                }
            }
        }
        while buf.len() < size + 2 {
            fill(s, &mut buf);
        }
        body.extend_from_slice(&buf[..size]);
        assert_eq!(&buf[size..size + 2], b"\r\n");
        buf.drain(..size + 2);
    }
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = vec![0u8; 65536];
    let n = s.read(&mut chunk).unwrap();
    assert!(n > 0, "EOF inside chunked body");
    buf.extend_from_slice(&chunk[..n]);
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// True when the peer closed the connection (EOF within `limit`).
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A scripted upstream: a listener on a free port whose connections each run
/// `handler` on its own thread. Counts accepted connections.
pub struct Upstream {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start<F>(handler: F) -> Upstream
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (acc, st) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        acc.fetch_add(1, Ordering::SeqCst);
                        let h = handler.clone();
                        std::thread::spawn(move || h(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head (up to the blank line) and its Content-Length body.
/// None on EOF. Returns (head text, body).
pub fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = read_head(s, &mut buf)?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end..].to_vec();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    while body.len() < len {
        let mut b = vec![0u8; 65536];
        let n = s.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&b[..n]);
    }
    Some((head, body))
}

/// An upstream that names itself in every response body (`tag`).
pub fn tagged_upstream(tag: &'static str) -> Upstream {
    Upstream::start(move |mut s| {
        while read_request(&mut s).is_some() {
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{tag}",
                tag.len()
            );
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// An upstream that answers every request with `status` and an empty body.
pub fn status_upstream(status: u16) -> Upstream {
    Upstream::start(move |mut s| {
        while read_request(&mut s).is_some() {
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// An upstream that answers every request on a connection with `200` and a body
/// that echoes the request head and body: `<head>` + body.
pub fn echo_upstream() -> Upstream {
    Upstream::start(|mut s| {
        while let Some((head, body)) = read_request(&mut s) {
            let mut payload = head.into_bytes();
            payload.extend_from_slice(&body);
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Upstream: echo\r\n\r\n",
                payload.len()
            )
            .into_bytes();
            out.extend_from_slice(&payload);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    })
}

/// An upstream that sends `response` (raw bytes) to each request, then closes if `close`.
pub fn fixed_upstream(response: &'static [u8], close: bool) -> Upstream {
    Upstream::start(move |mut s| {
        while read_request(&mut s).is_some() {
            if s.write_all(response).is_err() || close {
                let _ = s.shutdown(Shutdown::Both);
                return;
            }
        }
    })
}

/// The repository root (for examples/ and scripts).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// MOSN's example configs, shipped beside the repository as `../shared/mosn-configs`.
pub fn mosn_corpus() -> Option<PathBuf> {
    let p = repo_root().join("../shared/mosn-configs");
    p.exists().then_some(p)
}

/// [`mosn_corpus`], or None after a note when it is absent outside CI (the test then
/// does nothing); panics when it is absent in CI.
pub fn require_mosn_corpus() -> Option<PathBuf> {
    match mosn_corpus() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("the MOSN config corpus (../shared/mosn-configs) is missing")
        }
        None => {
            eprintln!("MOSN config corpus not found; skipping");
            None
        }
    }
}

pub mod cli;
pub mod corpus;
pub mod nginx;
pub mod peers;
pub mod rpc;
pub mod tls;
pub mod trace_peers;
pub mod xds;

//! Real HTTP/2 and gRPC peers for black-box tests: the grpcio server and client in
//! tests/peers/ (run by the Python of the venv that scripts/setup.sh builds at
//! `.venv`), and the HTTP/2 command-line clients h2load, nghttp and curl. Also the
//! SOFA Bolt and Dubbo peers: the Node servers and clients of tests/peers/node and
//! the dubbo-ssl-python client ([`XServer`], [`x_client`]).
//!
//! Outside CI a test skips itself when a peer is not installed
//! (`let Some(_) = venv_python() else { return };`); in CI (env `CI` set) a missing
//! peer fails the test instead, since scripts/setup.sh must have installed it.

use super::repo_root;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a client case may run before it is killed (each case needs well under 5 s).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// tests/peers: echo.proto, grpc_server.py, grpc_client.py.
pub fn peers_dir() -> PathBuf {
    repo_root().join("tests/peers")
}

/// The venv's Python with grpcio, or None (after a note on stderr) when scripts/setup.sh
/// has not built it. Panics instead when env `CI` is set.
pub fn venv_python() -> Option<PathBuf> {
    let venv = repo_root().join(".venv");
    let python = venv.join("bin/python");
    if python.exists() && venv.join(".mosn-setup-ok").exists() {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: run scripts/setup.sh (it builds the venv with grpcio)",
            python.display()
        );
    }
    eprintln!("skipping: no gRPC test peers (run scripts/setup.sh to build .venv)");
    None
}

/// A peer program such as `h2load`, `nghttp` or `curl`, or None (after a note) when
/// it is not installed. Panics instead when env `CI` is set.
pub fn peer_program(program: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = PathBuf::from(dir).join(program);
        if p.exists() {
            return Some(p);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is not installed; scripts/setup.sh installs it");
    }
    eprintln!("skipping: {program} not installed (run scripts/setup.sh)");
    None
}

/// A peer script started by [`start_ready_peer`].
pub struct ReadyPeer {
    pub child: Child,
    /// To be held open: the peer scripts exit when their stdin closes (so they never
    /// outlive a test).
    pub stdin: ChildStdin,
    /// The port it said it listens on.
    pub port: u16,
    /// Everything it has written to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

/// Spawns `cmd`, a peer script called `name`, with its stdin, stdout and stderr
/// piped; collects its stderr on a thread and reads its stdout on another: waits up
/// to 20 s for the first line, `READY PORT` (it binds before saying so, so there is
/// no race for the port), and hands every later line to `on_line`. Kills it and
/// panics, with its stderr, when it does not get ready.
pub fn start_ready_peer(
    mut cmd: Command,
    name: &str,
    mut on_line: impl FnMut(String) + Send + 'static,
) -> ReadyPeer {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();

    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });

    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match ready.take() {
                Some(tx) => {
                    let _ = tx.send(line);
                }
                None => on_line(line),
            }
        }
    });

    let ready = ready_rx.recv_timeout(Duration::from_secs(20));
    let port = ready.as_deref().ok().and_then(|line| {
        line.strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
    });
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(50));
        match ready {
            Ok(line) => panic!("{name} said {line:?}, not READY"),
            Err(_) => panic!("{name} did not get ready:\n{}", stderr.lock().unwrap()),
        }
    };
    ReadyPeer {
        child,
        stdin,
        port,
        stderr,
    }
}

/// tests/peers/grpc_server.py: serves `mosn.test.Echo` (and with `health`, the
/// grpc.health.v1 service) on 127.0.0.1:`port`. Every call it takes is logged as an
/// event; see [`GrpcServer::events`]. Killed when dropped.
pub struct GrpcServer {
    pub port: u16,
    pub child: Child,
    /// Held open: the server exits when its stdin closes (so it never outlives us).
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl GrpcServer {
    /// Starts a server on a free port (the server binds port 0 and reports the port
    /// it got, so there is no race) and waits until it serves. Panics when the venv
    /// is missing: check [`venv_python`] first.
    pub fn start(health: bool) -> GrpcServer {
        Self::start_on(0, health)
    }

    /// Like [`GrpcServer::start`] on a given port (0: any), e.g. to bring a server
    /// back on the port of one that was stopped.
    pub fn start_on(port: u16, health: bool) -> GrpcServer {
        let python = venv_python().expect("the venv of scripts/setup.sh (grpcio)");
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("grpc_server.py"))
            .arg(port.to_string());
        if health {
            cmd.arg("--health");
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let peer = start_ready_peer(cmd, "grpc_server.py", move |line| {
            log.lock().unwrap().push(line)
        });
        GrpcServer {
            port: peer.port,
            child: peer.child,
            stdin: Some(peer.stdin),
            events,
            stderr: peer.stderr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every line the server printed after READY, in order:
    /// `CALL <Method> {"peer": "ipv4:127.0.0.1:P", "metadata": {...}}` when a call
    /// starts, `CANCEL <Method> {"sent": N}` when one ended before its handler
    /// finished (cancel, deadline, reset stream).
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to `limit` for an event that starts with `prefix` (e.g.
    /// `"CANCEL ServerStream"`) and returns it.
    pub fn wait_event(&self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e.starts_with(prefix)) {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many calls of `method` ("Unary", "Check", ...) the server has taken.
    pub fn calls(&self, method: &str) -> usize {
        let prefix = format!("CALL {method} ");
        self.events()
            .iter()
            .filter(|e| e.starts_with(&prefix))
            .count()
    }

    /// The client addresses ("ipv4:127.0.0.1:P") of the calls so far, one per call:
    /// how many connections a proxy used is the number of distinct values.
    pub fn call_peers(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e.strip_prefix("CALL "))
            .filter_map(|e| e.split_once(' '))
            .filter_map(|(_, j)| serde_json::from_str::<Value>(j).ok())
            .filter_map(|v| v["peer"].as_str().map(str::to_string))
            .collect()
    }

    /// With `--health`: turns "" and "mosn.test.Echo" to SERVING or NOT_SERVING.
    pub fn set_serving(&self, serving: bool) {
        let sig = if serving {
            libc::SIGUSR2
        } else {
            libc::SIGUSR1
        };
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        // The signal is handled between the main loop's waits (every 200 ms at most).
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
        self.stdin.take();
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs tests/peers/grpc_client.py against 127.0.0.1:`target_port` with `case`
/// (e.g. `&["unary"]`, `&["server_stream", "10"]`, `&["health", ""]`) and returns
/// (expectation held, the JSON it printed). See the script for every case.
pub fn grpc_client(target_port: u16, case: &[&str]) -> (bool, Value) {
    let target = format!("127.0.0.1:{target_port}");
    let mut args = vec![target.as_str()];
    args.extend_from_slice(case);
    grpc_client_args(&args)
}

/// Runs grpc_client.py with raw arguments: options first (`--metadata k=v`,
/// `--authority host`), then TARGET, CASE and its arguments.
pub fn grpc_client_args(args: &[&str]) -> (bool, Value) {
    let python = venv_python().expect("the venv of scripts/setup.sh (grpcio)");
    let child = Command::new(python)
        .arg(peers_dir().join("grpc_client.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grpc_client.py");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(CLIENT_LIMIT) {
        Ok(out) => out.expect("grpc_client.py output"),
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return (
                false,
                json!({"ok": false, "error": format!("grpc_client.py {args:?} ran over {CLIENT_LIMIT:?}")}),
            );
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| {
            json!({
                "ok": false,
                "error": "grpc_client.py printed no JSON",
                "stdout": stdout,
                "stderr": String::from_utf8_lossy(&output.stderr),
            })
        });
    (output.status.success() && value["ok"] == json!(true), value)
}

// SOFA Bolt and Dubbo peers: the Node scripts in tests/peers/node (sofa-rpc-node with
// sofa-bolt-node or dubbo-remoting, installed by scripts/setup.sh with `npm ci`) and
// tests/peers/dubbo_client.py (dubbo-ssl-python, in the venv).

/// tests/peers/node: bolt_server.js, bolt_client.js, dubbo_server.js, dubbo_client.js.
pub fn node_peers_dir() -> PathBuf {
    peers_dir().join("node")
}

/// `node`, when it is on PATH and scripts/setup.sh has installed the npm packages of
/// tests/peers/node; None (after a note on stderr) otherwise. Panics instead when
/// env `CI` is set.
pub fn node_peers() -> Option<PathBuf> {
    let installed = node_peers_dir()
        .join("node_modules/.mosn-setup-ok")
        .exists();
    let node = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("node"))
            .find(|p| p.is_file())
    });
    if let Some(node) = node.filter(|_| installed) {
        return Some(node);
    }
    if std::env::var_os("CI").is_some() {
        panic!("node or tests/peers/node/node_modules is missing: run scripts/setup.sh");
    }
    eprintln!("skipping: no Bolt/Dubbo test peers (run scripts/setup.sh: node + npm ci)");
    None
}

/// The venv's Python when it has dubbo-ssl-python (the marker of scripts/setup.sh
/// names it); None (after a note) otherwise. Panics instead when env `CI` is set.
pub fn dubbo_python() -> Option<PathBuf> {
    let venv = repo_root().join(".venv");
    let python = venv.join("bin/python");
    let marker = std::fs::read_to_string(venv.join(".mosn-setup-ok")).unwrap_or_default();
    if python.exists() && marker.contains("dubbo-ssl-python==") {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the venv has no dubbo-ssl-python: run scripts/setup.sh");
    }
    eprintln!("skipping: no dubbo-ssl-python in .venv (run scripts/setup.sh)");
    None
}

/// The two xprotocol peers' protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XProtocol {
    /// SOFA Bolt v1 with hessian2 (bolt_server.js, bolt_client.js).
    Bolt,
    /// Dubbo (magic 0xdabb) with hessian2 (dubbo_server.js, dubbo_client.js and
    /// dubbo_client.py).
    Dubbo,
}

/// A sofa-rpc-node server from tests/peers/node on 127.0.0.1: bolt_server.js (service
/// `com.mosn.test.EchoService`, version 1.0) or dubbo_server.js
/// (`com.mosn.test.DubboEcho`, version 1.0.0), each with `echo(String)` answering
/// `"<tag>:<s>"`, `sleep(int ms)` and `fail()`. Every connection, call and heartbeat
/// it takes is an event (see [`XServer::events`]). Killed when dropped.
pub struct XServer {
    pub port: u16,
    pub protocol: XProtocol,
    pub child: Child,
    /// Held open: the server exits when its stdin closes.
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl XServer {
    /// bolt_server.js on a free port, answering with `tag`. Panics when the Node
    /// peers are missing: check [`node_peers`] first.
    pub fn bolt(tag: &str) -> XServer {
        Self::start(XProtocol::Bolt, 0, &["--tag", tag])
    }

    /// dubbo_server.js on a free port, answering with `tag`.
    pub fn dubbo(tag: &str) -> XServer {
        Self::start(XProtocol::Dubbo, 0, &["--tag", tag])
    }

    /// The server of `protocol` on `port` (0: any) with more options of its script
    /// (`--tag T`, `--service NAME`, `--version V`, `--group G`), waiting until it
    /// listens.
    pub fn start(protocol: XProtocol, port: u16, args: &[&str]) -> XServer {
        let node = node_peers().expect("node and tests/peers/node/node_modules");
        let script = match protocol {
            XProtocol::Bolt => "bolt_server.js",
            XProtocol::Dubbo => "dubbo_server.js",
        };
        let mut cmd = Command::new(node);
        cmd.arg(node_peers_dir().join(script))
            .arg(port.to_string())
            .args(args);
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let peer = start_ready_peer(cmd, script, move |line| log.lock().unwrap().push(line));
        XServer {
            port: peer.port,
            protocol,
            child: peer.child,
            stdin: Some(peer.stdin),
            events,
            stderr: peer.stderr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every line the server printed after READY, in order, each `KIND {json}`:
    /// `CONN {"peer":"127.0.0.1:P"}`, `CLOSE {"peer":..}`,
    /// `CALL {"peer":..,"id":..,"service":"NAME:VERSION","method":..,"args":[..],
    /// "props":{..},"timeout":..}` (props: Bolt's SofaRequest requestProps, Dubbo's
    /// attachments; timeout: Bolt's header timeout) and `HEARTBEAT {"peer":..,"id":..}`.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// The JSON of every event of `kind` ("CALL", "CONN", "CLOSE", "HEARTBEAT").
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        let prefix = format!("{kind} ");
        self.events()
            .iter()
            .filter_map(|e| e.strip_prefix(&prefix))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    }

    /// How many calls of `method` ("echo", "sleep", "fail") the server has taken.
    pub fn calls(&self, method: &str) -> usize {
        self.events_of("CALL")
            .iter()
            .filter(|c| c["method"] == method)
            .count()
    }

    /// [`XServer::calls`] once it reached `want`, or after 5 s: the server's event
    /// lines are read on another thread and may trail the client's answers.
    pub fn calls_when(&self, method: &str, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.calls(method);
            if n >= want || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.events_of("CONN").len()
    }

    /// Waits up to `limit` for an event that starts with `prefix` and returns it.
    pub fn wait_event(&self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e.starts_with(prefix)) {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
        self.stdin.take();
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The xprotocol clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XClient {
    /// tests/peers/node/bolt_client.js (sofa-rpc-node, Bolt v1).
    BoltNode,
    /// tests/peers/node/dubbo_client.js (sofa-rpc-node with dubbo-remoting).
    DubboNode,
    /// tests/peers/dubbo_client.py (dubbo-ssl-python).
    DubboPython,
}

impl XClient {
    /// The program and script that run this client, or None (after a note; a panic in
    /// CI) when it is not installed.
    pub fn command(self) -> Option<Command> {
        let (program, script) = match self {
            XClient::BoltNode => (node_peers()?, node_peers_dir().join("bolt_client.js")),
            XClient::DubboNode => (node_peers()?, node_peers_dir().join("dubbo_client.js")),
            XClient::DubboPython => (dubbo_python()?, peers_dir().join("dubbo_client.py")),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script);
        Some(cmd)
    }
}

/// Runs `client` against 127.0.0.1:`port` with `case` (e.g. `&["echo", "200", "64"]`,
/// `&["fail"]`, `&["timeout", "2000", "300"]`) within [`CLIENT_LIMIT`] and returns
/// (the case held, the JSON it printed). Panics when the client is not installed:
/// check [`node_peers`] / [`dubbo_python`] first.
pub fn x_client(client: XClient, port: u16, case: &[&str]) -> (bool, Value) {
    let target = format!("127.0.0.1:{port}");
    let mut args = vec![target.as_str()];
    args.extend_from_slice(case);
    x_client_args(client, &args, CLIENT_LIMIT)
}

/// Runs `client` with raw arguments (options such as `--service NAME`, `--timeout MS`,
/// `--size N`, `--expect-tag T`, then HOST:PORT, CASE and its arguments), killing it
/// after `limit`.
pub fn x_client_args(client: XClient, args: &[&str], limit: Duration) -> (bool, Value) {
    let mut cmd = client.command().expect("the xprotocol client is installed");
    cmd.args(args);
    run_json_client(cmd, &format!("{client:?}"), limit)
}

/// Runs a client that prints one JSON line with `"ok"` and exits 0 when its case
/// held; kills it after `limit`. Returns (exit 0 and ok, that JSON, or one with the
/// error, stdout and stderr when it printed none).
pub fn run_json_client(mut cmd: Command, name: &str, limit: Duration) -> (bool, Value) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{name} output: {e}")),
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return (
                false,
                json!({"ok": false, "error": format!("{name} ran over {limit:?}")}),
            );
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| {
            json!({
                "ok": false,
                "error": format!("{name} printed no JSON"),
                "stdout": stdout,
                "stderr": String::from_utf8_lossy(&output.stderr),
            })
        });
    (output.status.success() && value["ok"] == json!(true), value)
}

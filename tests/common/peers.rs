//! Real HTTP/2 and gRPC peers for black-box tests: the grpcio server and client in
//! tests/peers/ (run by the Python of the venv that scripts/setup.sh builds at
//! `.venv`), and the HTTP/2 command-line clients h2load, nghttp and curl.
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
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if health {
            cmd.arg("--health");
        }
        let mut child = cmd.spawn().expect("spawn grpc_server.py");
        let stdin = child.stdin.take();
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

        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match ready.take() {
                    Some(tx) => {
                        let _ = tx.send(line);
                    }
                    None => log.lock().unwrap().push(line),
                }
            }
        });

        let mut server = GrpcServer {
            port: 0,
            child,
            stdin,
            events,
            stderr,
        };
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                server.port = line
                    .strip_prefix("READY ")
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or_else(|| panic!("grpc_server.py said {line:?}, not READY"));
            }
            Err(_) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "grpc_server.py did not get ready:\n{}",
                    server.stderr_text()
                );
            }
        }
        server
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

//! Health checks against real sockets on 127.0.0.1: an HTTP/1.1 server that answers
//! 200, 500 or closes on demand, a real h2 gRPC health server, closed ports.

use super::*;
use bytes::Bytes;
use mosn_config::ClusterConfig;
use mosn_observe::StatsRegistry;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OK: u8 = 0;
const FAIL: u8 = 1;
const CLOSE: u8 = 2;
const SILENT: u8 = 3;
const GARBAGE: u8 = 4;

struct TestServer {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

impl TestServer {
    fn set(&self, mode: u8) {
        self.mode.store(mode, SeqCst);
    }
}

/// Answers each request by its mode: 200, 500, close without answering, never answer,
/// or a malformed status line.
async fn http_server() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mode = Arc::new(AtomicU8::new(OK));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (m, r, c) = (mode.clone(), requests.clone(), count.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (m, r, c) = (m.clone(), r.clone(), c.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                    if n == buf.len() {
                        return;
                    }
                }
                c.fetch_add(1, SeqCst);
                r.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let reply: &[u8] = match m.load(SeqCst) {
                    OK => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    FAIL => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                    SILENT => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        return;
                    }
                    GARBAGE => b"HTTP/1.1 2x0 OK\r\n\r\n",
                    _ => return,
                };
                let _ = s.write_all(reply).await;
            });
        }
    });
    TestServer {
        addr,
        mode,
        requests,
        count,
    }
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn cluster(name: &str, hosts: &[SocketAddr], hc: Option<Value>) -> ClusterConfig {
    let mut v = json!({
        "name": name,
        "type": "SIMPLE",
        "hosts": hosts.iter().map(|a| json!({"address": a.to_string()})).collect::<Vec<_>>(),
    });
    if let Some(hc) = hc {
        v["health_check"] = hc;
    }
    let (cfg, warnings) = mosn_config::parse_value::<ClusterConfig>(&v, "cluster").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let warnings = mosn_config::check_cluster(&cfg).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg
}

fn manager(clusters: &[ClusterConfig]) -> Arc<ClusterManager> {
    Arc::new(ClusterManager::build(
        clusters,
        Arc::new(StatsRegistry::default()),
    ))
}

fn eligible(m: &ClusterManager, name: &str, addr: SocketAddr) -> bool {
    m.get(name)
        .is_some_and(|c| c.eligible_hosts().0.iter().any(|h| h.addr == addr))
}

/// Failed its health checks (a lone host stays eligible: Envoy's panic mode).
fn failed(m: &ClusterManager, name: &str, addr: SocketAddr) -> bool {
    host(m, name, addr).health_flags() & health::FAILED_ACTIVE_HC != 0
}

fn host(m: &ClusterManager, name: &str, addr: SocketAddr) -> Arc<Host> {
    m.get(name)
        .and_then(|c| c.hosts().into_iter().find(|h| h.addr == addr))
        .unwrap()
}

/// How long until `f` holds, polling every 2 ms; None after `limit`.
async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

const INTERVAL: Duration = Duration::from_millis(50);
const JITTER: Duration = Duration::from_millis(5);
/// Scheduling noise on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(200);

#[tokio::test]
async fn http_failures_take_a_host_out_and_passes_bring_it_back() {
    let (a, b) = (http_server().await, http_server().await);
    let hc = json!({
        "protocol": "http",
        "service_name": "svc",
        "timeout": "40ms",
        "interval": "50ms",
        "interval_jitter": "5ms",
        "initial_delay_seconds": "10ms",
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
        "check_config": {"path": "/health?deep=1", "host": "health.local"},
    });
    let m = manager(&[cluster("c", &[a.addr, b.addr], Some(hc))]);
    // A new host is healthy before any check.
    assert!(eligible(&m, "c", a.addr) && eligible(&m, "c", b.addr));
    let runner = spawn_health_checks(m.clone());
    wait_until(Duration::from_secs(1), || a.count.load(SeqCst) > 0)
        .await
        .expect("first check after the initial delay");
    assert!(eligible(&m, "c", a.addr));

    a.set(FAIL);
    let out = wait_until(Duration::from_secs(2), || !eligible(&m, "c", a.addr))
        .await
        .expect("a failing host leaves rotation");
    // Two failures in a row: at least one interval, at most two (plus a check).
    assert!(out >= INTERVAL - Duration::from_millis(5), "{out:?}");
    assert!(out <= (INTERVAL + JITTER) * 2 + SLACK, "{out:?}");
    let h = host(&m, "c", a.addr);
    assert_ne!(h.health_flags() & health::FAILED_ACTIVE_HC, 0);
    assert!(h.stats.hc_failures.load(SeqCst) >= 2);
    let c = m.get("c").unwrap();
    let (set, panic) = c.eligible_hosts();
    assert!(!panic);
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].addr, b.addr);

    a.set(OK);
    let back = wait_until(Duration::from_secs(2), || eligible(&m, "c", a.addr))
        .await
        .expect("a recovered host comes back");
    assert!(back >= INTERVAL - Duration::from_millis(5), "{back:?}");
    assert!(back <= (INTERVAL + JITTER) * 2 + SLACK, "{back:?}");
    assert!(h.is_healthy());

    let first = a.requests.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("GET /health?deep=1 HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(first.contains("\r\nHost: health.local\r\n"), "{first}");
    assert!(first.contains("\r\nConnection: close\r\n"), "{first}");
    runner.abort();
}

#[tokio::test]
async fn tcp_check_on_a_closed_port_fails() {
    let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_addr = open.local_addr().unwrap();
    let closed = closed_port();
    let spec = CheckSpec::from_config(&HealthCheckConfig {
        protocol: "tcp".into(),
        service_name: "svc".into(),
        ..Default::default()
    });
    assert_eq!(spec.kind, CheckKind::Tcp);
    let err = spec.check_addr(closed).await.unwrap_err();
    assert!(err.contains("connect"), "{err}");
    assert!(spec.check_addr(open_addr).await.is_ok());

    // Through the runner, with MOSN's default thresholds (1): out after one failure.
    let hc = json!({"service_name": "svc", "timeout": "40ms", "interval": "50ms",
                    "initial_delay_seconds": "10ms"});
    let m = manager(&[cluster("t", &[open_addr, closed], Some(hc))]);
    let runner = spawn_health_checks(m.clone());
    wait_until(Duration::from_secs(1), || !eligible(&m, "t", closed))
        .await
        .expect("the closed port leaves rotation");
    assert!(eligible(&m, "t", open_addr));
    assert!(host(&m, "t", closed).stats.hc_failures.load(SeqCst) >= 1);
    assert_eq!(host(&m, "t", open_addr).stats.hc_failures.load(SeqCst), 0);
    // Every check counts as an attempt; only the open port's pass.
    let closed_stats = &host(&m, "t", closed).stats;
    assert_eq!(
        closed_stats.hc_attempts.load(SeqCst),
        closed_stats.hc_failures.load(SeqCst)
    );
    assert_eq!(closed_stats.hc_successes.load(SeqCst), 0);
    wait_until(Duration::from_secs(1), || {
        host(&m, "t", open_addr).stats.hc_successes.load(SeqCst) >= 1
    })
    .await
    .expect("the open port passes its checks");
    runner.abort();
}

#[tokio::test]
async fn http_check_fails_on_bad_answers() {
    let s = http_server().await;
    let spec = |cc: Value| {
        CheckSpec::from_config(&HealthCheckConfig {
            protocol: "Http1".into(),
            service_name: "svc".into(),
            timeout: Some(mosn_config::GoDuration(Duration::from_millis(200))),
            check_config: Some(serde_json::from_value(cc).unwrap()),
            ..Default::default()
        })
    };
    let default = spec(json!({}));
    assert!(default.check_addr(s.addr).await.is_ok());
    s.set(FAIL);
    assert!(default
        .check_addr(s.addr)
        .await
        .unwrap_err()
        .contains("500"));
    // MOSN's codes, end inclusive.
    let mosn = spec(json!({"http_check_config": {"codes": [{"start": 500, "end": 500}]}}));
    assert!(mosn.check_addr(s.addr).await.is_ok());
    // Envoy's expected_statuses, end exclusive.
    let envoy = spec(json!({"expected_statuses": [{"start": 200, "end": 500}]}));
    assert!(envoy.check_addr(s.addr).await.is_err());
    s.set(CLOSE);
    let err = default.check_addr(s.addr).await.unwrap_err();
    assert!(err.contains("closed"), "{err}");
    s.set(GARBAGE);
    let err = default.check_addr(s.addr).await.unwrap_err();
    assert!(err.contains("malformed"), "{err}");
    s.set(SILENT);
    let started = Instant::now();
    let err = default.check_addr(s.addr).await.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // MOSN's check port: the host's IP, another port.
    s.set(OK);
    let other_port = spec(json!({"http_check_config": {"port": s.addr.port()}}));
    assert!(other_port.check_addr(closed_port()).await.is_ok());
}

/// A gRPC health server on h2: service "" and "up" are SERVING, "down" NOT_SERVING,
/// "broken" answers a trailers-only UNAVAILABLE.
async fn grpc_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(answer_grpc(req, respond));
                }
            });
        }
    });
    addr
}

async fn answer_grpc(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let path = req.uri().path().to_string();
    let grpc = req.headers().get("content-type").map(|v| v.as_bytes()) == Some(b"application/grpc");
    let mut body = req.into_body();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    // [flag][len x4][0x0a][len][service]
    let service = String::from_utf8_lossy(data.get(7..).unwrap_or_default()).into_owned();
    if path != "/grpc.health.v1.Health/Check" || !grpc {
        let resp = http::Response::builder().status(404).body(()).unwrap();
        let _ = respond.send_response(resp, true);
        return;
    }
    let status = match service.as_str() {
        "" | "up" => 1u8,
        "down" => 2,
        _ => {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .header("grpc-message", "unavailable")
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
            return;
        }
    };
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(resp, false) else {
        return;
    };
    let _ = send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

#[tokio::test]
async fn grpc_health_check_over_h2() {
    let addr = grpc_server().await;
    let check = |service: &str| grpc::GrpcCheck {
        service: service.into(),
        authority: String::new(),
    };
    let timeout = Duration::from_secs(2);
    let run = |c: grpc::GrpcCheck| async move {
        tokio::time::timeout(timeout, c.check_addr(addr))
            .await
            .unwrap()
    };
    assert_eq!(run(check("")).await, Ok(()));
    assert_eq!(run(check("up")).await, Ok(()));
    let err = run(check("down")).await.unwrap_err();
    assert!(err.contains("NOT_SERVING"), "{err}");
    let err = run(check("broken")).await.unwrap_err();
    assert!(err.contains("grpc-status 14"), "{err}");
    // An HTTP/1.1 server is no gRPC server.
    let http1 = http_server().await;
    let err = tokio::time::timeout(timeout, check("").check_addr(http1.addr))
        .await
        .unwrap()
        .unwrap_err();
    assert!(!err.is_empty());
    assert!(check("").check_addr(closed_port()).await.is_err());

    // Through the runner: "down" takes the host out.
    let hc = json!({
        "protocol": "grpc",
        "service_name": "svc",
        "timeout": "40ms",
        "interval": "50ms",
        "initial_delay_seconds": "10ms",
        "check_config": {"service_name": "down"},
    });
    let m = manager(&[cluster("g", &[addr], Some(hc))]);
    let runner = spawn_health_checks(m.clone());
    wait_until(Duration::from_secs(2), || failed(&m, "g", addr))
        .await
        .expect("NOT_SERVING takes the host out");
    runner.abort();
}

#[tokio::test]
async fn runner_follows_hosts_and_clusters_at_runtime() {
    let a = http_server().await;
    let hc = json!({
        "protocol": "http",
        "service_name": "svc",
        "timeout": "40ms",
        "interval": "50ms",
        "initial_delay_seconds": "10ms",
    });
    let m = manager(&[cluster("d", &[a.addr], Some(hc.clone()))]);
    let runner = spawn_health_checks(m.clone());
    wait_until(Duration::from_secs(1), || a.count.load(SeqCst) > 0)
        .await
        .unwrap();

    // A host added at runtime is checked: on a closed port it goes out.
    let closed = closed_port();
    let hosts = cluster("d", &[a.addr, closed], None).hosts;
    m.set_hosts("d", &hosts).unwrap();
    let limit = RESCAN_INTERVAL + Duration::from_secs(1);
    wait_until(limit, || !eligible(&m, "d", closed))
        .await
        .expect("the new host is checked");
    let gone = host(&m, "d", closed);

    // A removed host's checks stop.
    m.set_hosts("d", &cluster("d", &[a.addr], None).hosts)
        .unwrap();
    tokio::time::sleep(RESCAN_INTERVAL + Duration::from_millis(200)).await;
    let failures = gone.stats.hc_failures.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.stats.hc_failures.load(SeqCst), failures);

    // health_check removed by a config update: verdicts are dropped.
    a.set(FAIL);
    wait_until(Duration::from_secs(1), || failed(&m, "d", a.addr))
        .await
        .unwrap();
    m.add_or_update(&cluster("d", &[a.addr], None)).unwrap();
    wait_until(limit, || !failed(&m, "d", a.addr))
        .await
        .expect("no health_check, no verdict");
    assert!(host(&m, "d", a.addr).is_healthy());

    // Back on, then the cluster removed: no more checks.
    m.add_or_update(&cluster("d", &[a.addr], Some(hc))).unwrap();
    wait_until(limit, || failed(&m, "d", a.addr))
        .await
        .expect("checks resume");
    m.remove("d").unwrap();
    tokio::time::sleep(RESCAN_INTERVAL + Duration::from_millis(200)).await;
    let seen = a.count.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.count.load(SeqCst), seen);
    runner.abort();
}

#[tokio::test]
async fn without_service_name_there_are_no_checks_as_in_mosn() {
    let closed = closed_port();
    let hc = json!({"protocol": "tcp", "interval": "50ms", "initial_delay_seconds": "10ms"});
    let v = json!({"name": "n", "hosts": [{"address": closed.to_string()}], "health_check": hc});
    let (cfg, _) = mosn_config::parse_value::<ClusterConfig>(&v, "cluster").unwrap();
    let warnings = mosn_config::check_cluster(&cfg).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "cluster.health_check.service_name"),
        "{warnings:?}"
    );
    let m = manager(&[cfg]);
    let runner = spawn_health_checks(m.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(eligible(&m, "n", closed));
    assert_eq!(host(&m, "n", closed).stats.hc_failures.load(SeqCst), 0);
    runner.abort();
}

#[tokio::test]
async fn aborting_the_runner_stops_every_check() {
    let a = http_server().await;
    let hc = json!({"protocol": "http", "service_name": "svc", "timeout": "15ms",
                    "interval": "20ms", "initial_delay_seconds": "5ms"});
    let m = manager(&[cluster("s", &[a.addr], Some(hc))]);
    let runner = spawn_health_checks(m.clone());
    wait_until(Duration::from_secs(1), || a.count.load(SeqCst) > 1)
        .await
        .unwrap();
    runner.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = a.count.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.count.load(SeqCst), seen);
}

//! Prometheus: MOSN's `metrics.sinks[{"type": "prometheus"}]` endpoint and the admin's
//! `/stats/prometheus`, checked with `promtool check metrics` and scraped by the real
//! Prometheus server (Debian's `prometheus` package), whose query API must read back
//! what the proxy counted.

mod common;
use common::peers::peer_program;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cfg` with a Prometheus sink on `port` (`sink` holds extra sink config keys).
fn with_sink(cfg: &HttpConfig, port: u16, sink: Value) -> String {
    let mut v: Value = serde_json::from_str(&cfg.render()).unwrap();
    let mut config = json!({"port": port});
    for (k, val) in sink.as_object().unwrap() {
        config[k] = val.clone();
    }
    v["metrics"] = json!({"sinks": [{"type": "prometheus", "config": config}]});
    v.to_string()
}

fn get(port: u16, target: &str) -> Response {
    http_exchange(
        port,
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
}

/// Runs `promtool check metrics` on `text`: its exit status and output.
fn promtool_check(promtool: &Path, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the sample of `text` whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_string)
}

#[test]
fn both_expositions_pass_promtool_and_count_the_traffic() {
    let Some(promtool) = peer_program("promtool") else {
        return;
    };
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let metrics_port = free_port();
    let m = Mosn::start(
        &with_sink(
            &cfg,
            metrics_port,
            json!({"endpoint": "/custom/metrics", "disable_collect_process": true}),
        ),
        &[cfg.port, cfg.admin_port, metrics_port],
    );
    for _ in 0..5 {
        assert_eq!(
            http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
            200
        );
    }
    // The proxy ends its bookkeeping of a request (the active gauge) just after the
    // client has the response: wait until it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sample(
        &get(cfg.admin_port, "/stats/prometheus").body_text(),
        "downstream_request_active{listener=\"l\"}",
    )
    .as_deref()
        != Some("0")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let sink = get(metrics_port, "/custom/metrics");
    assert_eq!(sink.status, 200, "{}", m.log_text());
    assert_eq!(
        sink.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let admin = get(cfg.admin_port, "/stats/prometheus");
    assert_eq!(admin.status, 200);
    for (what, text) in [("sink", sink.body_text()), ("admin", admin.body_text())] {
        let (ok, said) = promtool_check(&promtool, &text);
        assert!(
            ok,
            "promtool check metrics refused the {what} text: {said}\n{text}"
        );
        assert!(said.trim().is_empty(), "promtool: {said}");
        let host = up.addr.to_string();
        for (series, value) in [
            ("downstream_request_total{listener=\"l\"}", "5"),
            (
                "downstream_response_total{listener=\"l\",code_class=\"2xx\"}",
                "5",
            ),
            ("downstream_request_active{listener=\"l\"}", "0"),
            ("upstream_request_total{cluster=\"up\"}", "5"),
            (
                &format!("upstream_request_total{{cluster=\"up\",host=\"{host}\"}}"),
                "5",
            ),
            (
                &format!("upstream_host_healthy{{cluster=\"up\",host=\"{host}\"}}"),
                "1",
            ),
            ("upstream_hosts{cluster=\"up\"}", "1"),
            (
                "upstream_circuit_breaker_max{cluster=\"up\",resource=\"retries\"}",
                "3",
            ),
        ] {
            assert_eq!(
                sample(&text, series).as_deref(),
                Some(value),
                "{what}: {series}\n{text}"
            );
        }
        assert!(text.contains("# TYPE downstream_request_total counter\n"));
        assert!(text.contains("# TYPE downstream_connection_active gauge\n"));
        assert!(text.contains("# HELP upstream_request_total "));
        // Counters end in _total, gauges do not.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(
                parts[2].ends_with("_total"),
                parts[3] == "counter",
                "{line}"
            );
        }
        let has_process = text.contains("process_resident_memory_bytes ");
        assert_eq!(has_process, what == "admin", "disable_collect_process");
    }

    // Only the endpoint, only GET.
    assert_eq!(get(metrics_port, "/metrics").status, 404);
    let r = http_exchange(
        metrics_port,
        b"POST /custom/metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
}

#[test]
fn a_bad_sink_stops_the_start_and_a_taken_port_fails_it() {
    let cfg = HttpConfig::new(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, with_sink(&cfg, 0, json!({"endpoint": "metrics"}))).unwrap();
    let out = Command::new(BIN)
        .args(["start", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("metrics.sinks[0].config.port"), "{err}");
    assert!(err.contains("metrics.sinks[0].config.endpoint"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(&path, with_sink(&cfg, port, json!({}))).unwrap();
    let out = Command::new(BIN)
        .args(["start", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// A Prometheus server in a temp dir, killed on drop.
struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `target` at `/metrics` every second; waits until
    /// it is ready.
    fn start(binary: &Path, target: SocketAddr) -> PrometheusServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: mosn\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut server = PrometheusServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && get(port, "/-/ready").status == 200
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query through the HTTP API: the result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let r = get(
            self.port,
            &format!("/api/v1/query?query={}", encode(promql)),
        );
        assert_eq!(r.status, 200, "{promql}: {}", r.body_text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `promql`, when there is exactly one series.
    fn value(&self, promql: &str) -> Option<String> {
        match self.query(promql).as_slice() {
            [one] => one["value"][1].as_str().map(str::to_string),
            _ => None,
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn real_prometheus_scrapes_mosn_and_reads_the_counts_back() {
    let Some(binary) = peer_program("prometheus") else {
        return;
    };
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let metrics_port = free_port();
    let m = Mosn::start(
        &with_sink(&cfg, metrics_port, json!({})),
        &[cfg.port, cfg.admin_port, metrics_port],
    );
    let prom = PrometheusServer::start(
        &binary,
        format!("127.0.0.1:{metrics_port}").parse().unwrap(),
    );
    const N: usize = 7;
    for _ in 0..N {
        assert_eq!(
            http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
            200
        );
    }
    let host = up.addr.to_string();
    let queries = [
        "up{job=\"mosn\"}".to_string(),
        "downstream_request_total{job=\"mosn\",listener=\"l\"}".to_string(),
        format!("upstream_request_total{{cluster=\"up\",host=\"{host}\"}}"),
        "sum(downstream_response_total{listener=\"l\",code_class=\"2xx\"})".to_string(),
    ];
    let want = ["1", &N.to_string(), &N.to_string(), &N.to_string()];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<Option<String>> = queries.iter().map(|q| prom.value(q)).collect();
        if got.iter().zip(want).all(|(g, w)| g.as_deref() == Some(w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not read the counts back in 30 s: {queries:?} = {got:?}\n\
             targets: {}\nprometheus log:\n{}\nmosn log:\n{}",
            get(prom.port, "/api/v1/targets").body_text(),
            prom.log(),
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The scrape kept the labels that name the owner.
    let series = prom.query("upstream_request_total{job=\"mosn\"}");
    let labels: Vec<&Value> = series.iter().map(|s| &s["metric"]).collect();
    assert!(
        labels
            .iter()
            .any(|l| l["cluster"] == "up" && l["host"].is_null()),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l["cluster"] == "up" && l["host"] == host.as_str()),
        "{labels:?}"
    );
}

/// Latency histograms and per-host errors, as the engines record them: listener
/// `request_time`, cluster and host `request_duration_time` (MOSN's keys) count every
/// request, a 5xx counts in the host's `rq_error`, and the Prometheus text carries
/// the histogram families with cumulative buckets.
#[test]
fn request_time_histograms_and_host_errors_count_every_request() {
    let ok = tagged_upstream("fine");
    let bad = status_upstream(503);
    let (port, admin) = (free_port(), free_port());
    let routes = r#"[{"match": {"prefix": "/bad"}, "route": {"cluster_name": "bad"}},
        {"match": {"prefix": "/"}, "route": {"cluster_name": "ok"}}]"#;
    let config = multi_cluster_config(
        port,
        admin,
        routes,
        &[("ok", vec![ok.addr], ""), ("bad", vec![bad.addr], "")],
    );
    let _m = Mosn::start(&config, &[port, admin]);
    for _ in 0..7 {
        assert_eq!(get(port, "/x").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(port, "/bad").status, 503);
    }
    // A request's time is recorded when the proxy is done with it, which may be just
    // after the client has the response: wait for the last one.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut stats = admin_stats(admin);
    while stats["listener"]["l"]["downstream_request_time"]["count"] != 10
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        stats = admin_stats(admin);
    }
    let listener = &stats["listener"]["l"]["downstream_request_time"];
    assert_eq!(listener["count"], 10, "{stats}");
    assert!(listener["p50_us"].as_f64().unwrap() > 0.0, "{listener}");
    let ok_cluster = &stats["cluster"]["ok"];
    assert_eq!(
        ok_cluster["upstream_request_duration_time"]["count"], 7,
        "{stats}"
    );
    let host = &ok_cluster["hosts"][0];
    assert_eq!(host["request_duration_time"]["count"], 7, "{host}");
    assert_eq!(host["rq_error"], 0, "{host}");
    // Every exchange's connection closed (http_exchange reads to the end).
    let deadline = Instant::now() + Duration::from_secs(3);
    while admin_stats(admin)["listener"]["l"]["downstream_connection_destroy"]
        .as_u64()
        .unwrap_or(0)
        < 10
    {
        assert!(Instant::now() < deadline, "{}", admin_stats(admin));
        std::thread::sleep(Duration::from_millis(20));
    }
    let bad_host = &stats["cluster"]["bad"]["hosts"][0];
    assert_eq!(bad_host["rq_error"], 3, "{bad_host}");
    assert_eq!(bad_host["request_duration_time"]["count"], 3, "{bad_host}");

    let text = get(admin, "/stats/prometheus").body_text();
    assert_eq!(
        sample(
            &text,
            r#"downstream_request_time_seconds_count{listener="l"}"#
        )
        .as_deref(),
        Some("10"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"downstream_request_time_seconds_bucket{listener="l",le="+Inf"}"#
        )
        .as_deref(),
        Some("10"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"upstream_request_duration_time_seconds_count{cluster="ok"}"#
        )
        .as_deref(),
        Some("7"),
        "{text}"
    );
    let bad_series = format!(
        r#"upstream_host_rq_error_total{{cluster="bad",host="{}"}}"#,
        bad.addr
    );
    assert_eq!(sample(&text, &bad_series).as_deref(), Some("3"), "{text}");
    if let Some(promtool) = peer_program("promtool") {
        let (ok, out) = promtool_check(&promtool, &text);
        assert!(ok, "{out}");
    }
}

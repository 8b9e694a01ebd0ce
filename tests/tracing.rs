//! Tracing through mosn-rs with real peers (tests/peers/README.md, "Tracing peers"):
//! - SkyWalking: mosn-rs (MOSN's `tracing` config, driver SkyWalking, gRPC reporter)
//!   in front of an HTTP service run under the real SkyWalking Python agent; the test
//!   collector (SkyWalking's own v3 protocol) receives both sides' segments, and the
//!   agent's segment continues ours: same trace id, our segment and exit span as its
//!   parent. A client's own `sw8` is continued by both. HTTP/1.1 and HTTP/2 clients.
//! - OpenTelemetry: spans exported over OTLP/gRPC to an opentelemetry-proto collector;
//!   the `traceparent` the upstream gets names our span, and a client's trace id,
//!   parent and `tracestate` carry through.
//! - Sampling, a collector that is down, and a bad config.

mod common;

use common::cli::validate_fails_with;
use common::tls::curl;
use common::trace_peers::*;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a span may take to reach a collector (flush_interval is 100 ms here).
const REPORT_LIMIT: Duration = Duration::from_secs(10);

/// A proxy config: listener `l` (downstream `protocol`) routing everything to `up`,
/// with MOSN's `tracing` object.
fn traced_proxy(upstream: SocketAddr, protocol: &str, tracing: Value) -> (Mosn, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let config = json!({
        "servers": [{"default_log_path": "stderr", "default_log_level": "INFO", "processor": 1,
            "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h", "domains": ["*"],
                "routers": [{"match": {"prefix": "/"}, "route": {"cluster_name": "up"}}]}]}],
            "listeners": [{"name": "l", "address": format!("127.0.0.1:{port}"), "bind_port": true,
                "filter_chains": [{"filters": [{"type": "proxy", "config": {
                    "downstream_protocol": protocol, "upstream_protocol": "Http1",
                    "router_config_name": "r"}}]}]}]}],
        "cluster_manager": {"clusters": [{"name": "up", "type": "SIMPLE", "lb_type": "LB_RANDOM",
            "hosts": [{"address": upstream.to_string()}]}]},
        "tracing": tracing,
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    });
    (
        Mosn::start(&config.to_string(), &[port, admin]),
        port,
        admin,
    )
}

fn skywalking(collector: SocketAddr, extra: Value) -> Value {
    let mut config = json!({"reporter": "gRPC", "backend_service": collector.to_string(),
        "service_name": "mosn-edge", "flush_interval": "100ms"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"enable": true, "driver": "SkyWalking", "config": config})
}

fn otel(collector: SocketAddr, extra: Value) -> Value {
    let mut config = json!({"endpoint": format!("http://{collector}"), "service_name": "mosn-otel",
        "flush_interval": "100ms"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"enable": true, "driver": "OpenTelemetry", "config": config})
}

fn get(port: u16, path: &str, extra_headers: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: svc.local\r\n{extra_headers}\r\n");
    http_exchange(port, req.as_bytes())
}

/// The one segment of `service` whose entry span is `operation`, within the limit.
fn segment_of(collector: &SwCollector, service: &str, operation: &str) -> Value {
    let found = |segs: &[Value]| {
        segs.iter()
            .find(|s| s["service"] == service && s["spans"][0]["operation"] == operation)
            .cloned()
    };
    let segs = collector.segments(REPORT_LIMIT, |s| found(s).is_some());
    found(&segs).unwrap_or_else(|| {
        panic!(
            "no segment of {service} for {operation}: {segs:?}\ncollector:\n{}",
            collector.stderr_text()
        )
    })
}

fn span_of<'a>(segment: &'a Value, kind: &str) -> &'a Value {
    segment["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["span_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} span in {segment}"))
}

/// Our segment (entry + exit span) and the agent's continue one trace: the agent's
/// CrossProcess reference names our segment, our exit span, our service and the
/// address we called it by.
#[track_caller]
fn assert_continued(ours: &Value, theirs: &Value, upstream: SocketAddr, operation: &str) {
    assert_eq!(ours["trace_id"], theirs["trace_id"], "{ours}\n{theirs}");
    let entry = span_of(ours, "Entry");
    let exit = span_of(ours, "Exit");
    assert_eq!(entry["span_id"], 0, "{ours}");
    assert_eq!(exit["span_id"], 1, "{ours}");
    assert_eq!(exit["parent_span_id"], 0, "{ours}");
    assert_eq!(exit["peer"], upstream.to_string(), "{ours}");
    assert_eq!(entry["operation"], operation, "{ours}");
    assert_eq!(entry["span_layer"], "Http", "{ours}");
    assert_eq!(entry["is_error"], false, "{ours}");
    assert_eq!(entry["tags"]["http.method"], "GET", "{ours}");
    let r = &span_of(theirs, "Entry")["refs"][0];
    assert_eq!(r["ref_type"], "CrossProcess", "{theirs}");
    assert_eq!(r["trace_id"], ours["trace_id"], "{theirs}");
    assert_eq!(r["parent_segment_id"], ours["segment_id"], "{theirs}");
    assert_eq!(r["parent_span_id"], 1, "{theirs}");
    assert_eq!(r["parent_service"], "mosn-edge", "{theirs}");
    assert_eq!(r["parent_instance"], ours["instance"], "{theirs}");
    assert_eq!(r["parent_endpoint"], operation, "{theirs}");
    assert_eq!(r["network_address"], upstream.to_string(), "{theirs}");
}

#[test]
fn skywalking_agent_upstream_continues_the_trace_mosn_started() {
    let Some(collector) = SwCollector::start() else {
        return;
    };
    let Some(service) = SwHttpService::start(collector.port(), "py-upstream") else {
        return;
    };
    let (_m, port, admin) = traced_proxy(
        service.addr(),
        "Auto",
        skywalking(collector.addr(), json!({})),
    );

    // HTTP/1.1, no context from the client: mosn-rs starts the trace.
    let r = get(port, "/orders?id=7", "");
    assert_eq!(r.status, 200);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["name"], "py-upstream");
    assert!(
        body["sw8"].as_str().is_some_and(|s| s.starts_with("1-")),
        "{body}"
    );
    let ours = segment_of(&collector, "mosn-edge", "/orders");
    // MOSN's url tag: host and request URI, query included.
    let url = span_of(&ours, "Entry")["tags"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.ends_with("/orders?id=7"), "{ours}");
    let theirs = segment_of(&collector, "py-upstream", "/orders");
    assert_continued(&ours, &theirs, service.addr(), "/orders");
    assert!(span_of(&ours, "Entry")["refs"]
        .as_array()
        .is_none_or(|r| r.is_empty()));

    // HTTP/2 (prior knowledge on the Auto listener), with the client's own sw8: both
    // mosn-rs and the agent continue the client's trace.
    let client = Sw8 {
        trace_id: "client-trace-42".into(),
        parent_segment_id: "client-segment-1".into(),
        parent_span_id: 4,
        parent_service: "web-client".into(),
        parent_instance: "web-client@host".into(),
        parent_endpoint: "/click".into(),
        address: format!("127.0.0.1:{port}"),
    };
    if let Some(out) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &format!("sw8: {}", client.header()),
        &format!("http://127.0.0.1:{port}/pay"),
    ]) {
        assert!(out.stdout.contains("py-upstream"), "{out:?}");
        let ours = segment_of(&collector, "mosn-edge", "/pay");
        let theirs = segment_of(&collector, "py-upstream", "/pay");
        assert_eq!(ours["trace_id"], "client-trace-42", "{ours}");
        assert_continued(&ours, &theirs, service.addr(), "/pay");
        let r = &span_of(&ours, "Entry")["refs"][0];
        assert_eq!(r["parent_segment_id"], "client-segment-1", "{ours}");
        assert_eq!(r["parent_span_id"], 4, "{ours}");
        assert_eq!(r["parent_service"], "web-client", "{ours}");
    }

    let stats = admin_stats(admin);
    assert!(
        stats["tracing"]["spans_exported"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["tracing"]["spans_dropped"], 0, "{stats}");
}

#[test]
fn skywalking_marks_a_failed_request_as_an_error() {
    let Some(collector) = SwCollector::start() else {
        return;
    };
    // Nothing listens upstream: a connect failure, answered 503 by the proxy.
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_m, port, _admin) = traced_proxy(dead, "Http1", skywalking(collector.addr(), json!({})));
    assert_eq!(get(port, "/down", "").status, 503);
    let ours = segment_of(&collector, "mosn-edge", "/down");
    let entry = span_of(&ours, "Entry");
    assert_eq!(entry["is_error"], true, "{ours}");
    // MOSN's tag names.
    assert_eq!(entry["tags"]["status_code"], "503", "{ours}");
    assert_eq!(entry["tags"]["mosn.response_flags"], "UF", "{ours}");
    assert_eq!(span_of(&ours, "Exit")["peer"], dead.to_string(), "{ours}");
}

/// An upstream that answers with the trace headers it received, as JSON.
fn header_echo() -> Upstream {
    use std::io::Write;
    Upstream::start(|mut s| {
        while let Some((head, _)) = read_request(&mut s) {
            let find = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .map_or(Value::Null, Value::String)
            };
            let body = json!({"traceparent": find("traceparent"), "tracestate": find("tracestate"),
                "sw8": find("sw8")})
            .to_string();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    })
}

fn echoed(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{}", r.body_text()))
}

#[test]
fn opentelemetry_spans_reach_an_otlp_collector_and_traceparent_names_our_span() {
    let Some(collector) = OtlpCollector::start() else {
        return;
    };
    let up = header_echo();
    let (_m, port, _admin) = traced_proxy(up.addr, "Http1", otel(collector.addr(), json!({})));

    // A new trace: the upstream's parent is our span.
    let r = get(port, "/a/b?q=1", "");
    assert_eq!(r.status, 200);
    let sent = echoed(&r)["traceparent"].as_str().unwrap().to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{sent}");
    let spans = collector.spans(REPORT_LIMIT, |s| s.iter().any(|x| x["span_id"] == parts[2]));
    let span = spans
        .iter()
        .find(|x| x["span_id"] == parts[2])
        .unwrap_or_else(|| panic!("no span {sent}: {spans:?}\n{}", collector.stderr_text()));
    assert_eq!(span["trace_id"], parts[1], "{span}");
    assert_eq!(span["parent_span_id"], "", "{span}");
    assert_eq!(span["service"], "mosn-otel", "{span}");
    assert_eq!(span["kind"], 2, "SERVER: {span}");
    let a = &span["attributes"];
    assert_eq!(a["http.request.method"], "GET", "{span}");
    assert_eq!(a["url.path"], "/a/b", "{span}");
    assert_eq!(a["url.query"], "q=1", "{span}");
    assert_eq!(a["http.response.status_code"], 200, "{span}");
    assert_eq!(a["mosn.upstream.cluster"], "up", "{span}");
    assert_eq!(a["mosn.upstream.host"], up.addr.to_string(), "{span}");
    assert_ne!(span["status_code"], 2, "not an error: {span}");

    // The client's context: its trace id and tracestate carry through, its span is
    // our parent, and ours the upstream's.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get(
        port,
        "/c",
        &format!("traceparent: 00-{trace}-00f067aa0ba902b7-01\r\ntracestate: vendor=x\r\n"),
    );
    let e = echoed(&r);
    let sent = e["traceparent"].as_str().unwrap().to_string();
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
    assert!(!sent.contains("00f067aa0ba902b7"), "{sent}");
    assert_eq!(e["tracestate"], "vendor=x");
    let ours = sent.split('-').nth(2).unwrap().to_string();
    let spans = collector.spans(REPORT_LIMIT, |s| s.iter().any(|x| x["span_id"] == ours));
    let span = spans.iter().find(|x| x["span_id"] == ours).unwrap();
    assert_eq!(span["trace_id"], trace, "{span}");
    assert_eq!(span["parent_span_id"], "00f067aa0ba902b7", "{span}");
    assert_eq!(span["trace_state"], "vendor=x", "{span}");
}

/// Spans wait in their worker's buffer (up to 50 ms) and in the exporter's batch (up
/// to `flush_interval`, an hour here): a graceful stop exports them before exit.
#[test]
fn a_graceful_stop_exports_the_spans_of_finished_requests() {
    let Some(collector) = OtlpCollector::start() else {
        return;
    };
    let up = header_echo();
    let (mut m, port, _admin) = traced_proxy(
        up.addr,
        "Http1",
        otel(collector.addr(), json!({"flush_interval": "1h"})),
    );
    let mut ours = Vec::new();
    for i in 0..3 {
        let r = get(port, &format!("/stop/{i}"), "");
        assert_eq!(r.status, 200);
        let sent = echoed(&r)["traceparent"].as_str().unwrap().to_string();
        ours.push(sent.split('-').nth(2).unwrap().to_string());
    }
    m.signal(libc::SIGTERM);
    assert_eq!(m.wait_exit(Duration::from_secs(10)), Some(0));
    let has_all = |s: &[Value]| ours.iter().all(|id| s.iter().any(|x| &x["span_id"] == id));
    let spans = collector.spans(REPORT_LIMIT, has_all);
    assert!(
        has_all(&spans),
        "spans {ours:?} not exported at exit: {spans:?}"
    );
}

#[test]
fn opentelemetry_over_http2_and_an_error_status() {
    let Some(collector) = OtlpCollector::start() else {
        return;
    };
    let Some(_) = common::peers::peer_program("curl") else {
        return;
    };
    let up = header_echo();
    let (_m, port, _admin) = traced_proxy(up.addr, "Http2", otel(collector.addr(), json!({})));
    let out = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{port}/h2?x=2"),
    ])
    .unwrap();
    let e: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    let ours = e["traceparent"]
        .as_str()
        .unwrap()
        .split('-')
        .nth(2)
        .unwrap()
        .to_string();
    let spans = collector.spans(REPORT_LIMIT, |s| s.iter().any(|x| x["span_id"] == ours));
    let span = spans.iter().find(|x| x["span_id"] == ours).unwrap();
    assert_eq!(span["attributes"]["url.path"], "/h2", "{span}");
    assert_eq!(span["attributes"]["url.query"], "x=2", "{span}");
    assert_eq!(
        span["attributes"]["network.protocol.version"], "2",
        "{span}"
    );

    // No upstream: 503 from the proxy, an ERROR span with the flag.
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_m2, port, _admin2) = traced_proxy(dead, "Http2", otel(collector.addr(), json!({})));
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/gone"),
    ])
    .unwrap();
    assert_eq!(out.stdout, "503");
    let spans = collector.spans(REPORT_LIMIT, |s| {
        s.iter().any(|x| x["attributes"]["url.path"] == "/gone")
    });
    let span = spans
        .iter()
        .find(|x| x["attributes"]["url.path"] == "/gone")
        .unwrap();
    assert_eq!(span["status_code"], 2, "ERROR: {span}");
    assert_eq!(
        span["attributes"]["http.response.status_code"], 503,
        "{span}"
    );
    assert_eq!(span["attributes"]["mosn.response_flags"], "UF", "{span}");
}

#[test]
fn sampling_zero_traces_nothing_and_passes_the_clients_context_untouched() {
    let Some(collector) = OtlpCollector::start() else {
        return;
    };
    let up = header_echo();
    let (_m, port, admin) = traced_proxy(
        up.addr,
        "Http1",
        otel(collector.addr(), json!({"sample_rate": 0.0})),
    );
    for _ in 0..5 {
        let e = echoed(&get(port, "/s", ""));
        assert!(e["traceparent"].is_null(), "{e}");
    }
    // A client's unsampled context goes through as it was.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let e = echoed(&get(port, "/s", &format!("traceparent: {unsampled}\r\n")));
    assert_eq!(e["traceparent"], unsampled);
    let stats = admin_stats(admin);
    assert_eq!(stats["tracing"]["spans_started"], 0, "{stats}");
    assert_eq!(stats["tracing"]["not_sampled"], 6, "{stats}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(collector.all_spans().is_empty());
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing() {
    let up = header_echo();
    let nowhere: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_m, port, admin) = traced_proxy(up.addr, "Http1", otel(nowhere, json!({})));
    for _ in 0..50 {
        assert_eq!(get(port, "/x", "").status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = admin_stats(admin);
        let t = &stats["tracing"];
        assert_eq!(t["spans_started"], 50, "{stats}");
        if t["export_failures"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(t["spans_exported"], 0, "{stats}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_tracing_configs_are_refused_with_their_path_and_mosns_other_drivers_load() {
    let up = header_echo();
    let render = |tracing: Value| {
        let cfg = HttpConfig::new(&[up.addr]);
        let mut v: Value = serde_json::from_str(&cfg.render()).unwrap();
        v["tracing"] = tracing;
        v.to_string()
    };
    let err = validate_fails_with(&render(json!({"enable": true, "driver": "SkyWalking",
        "config": {"reporter": "gRPC", "backend_service": "127.0.0.1:11800", "sample_rate": 2}})));
    assert!(err.contains("tracing.config.sample_rate"), "{err}");
    let err = validate_fails_with(&render(json!({"enable": true, "driver": "NoSuchTracer"})));
    assert!(err.contains("tracing.driver"), "{err}");
    // MOSN's SOFATracer (its dubbo sample config) starts, with tracing off.
    let cfg = HttpConfig::new(&[up.addr]);
    let mut v: Value = serde_json::from_str(&cfg.render()).unwrap();
    v["tracing"] = json!({"enable": true, "driver": "SOFATracer"});
    let m = Mosn::start(&v.to_string(), &[cfg.port, cfg.admin_port]);
    assert_eq!(get(cfg.port, "/", "").status, 200);
    assert!(admin_stats(cfg.admin_port)["tracing"].is_null());
    drop(m);
}

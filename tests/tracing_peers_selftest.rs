//! The tracing peers on their own, without mosn-rs: the real SkyWalking Python agent
//! (in tests/peers/sw_http_service.py) continues a hand-built `sw8` and reports its
//! segment to tests/peers/sw_collector.py; tests/peers/otlp_collector.py takes an
//! OTLP Export. When a tracing test of the proxy fails, this tells whether the
//! harness or the proxy is at fault.

mod common;
use common::trace_peers::*;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long a segment may take from the answer to the collector (it takes tens of
/// milliseconds; generous for a loaded machine).
const REPORT_LIMIT: Duration = Duration::from_secs(8);

fn get(port: u16, path: &str, extra_headers: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra_headers}\r\n");
    http_exchange(port, req.as_bytes())
}

fn has_segment(segs: &[Value], service: &str, operation: &str) -> bool {
    segs.iter()
        .any(|s| s["service"] == service && s["spans"][0]["operation"] == operation)
}

#[test]
fn skywalking_agent_continues_the_sw8_trace() {
    let started = Instant::now();
    let Some(collector) = SwCollector::start() else {
        return;
    };
    let Some(service) = SwHttpService::start(collector.port(), "sw-upstream") else {
        return;
    };
    let sw8 = Sw8 {
        trace_id: "mosn-selftest-trace-1".into(),
        parent_segment_id: "mosn-selftest-segment-1".into(),
        parent_span_id: 3,
        parent_service: "mosn-selftest".into(),
        parent_instance: "mosn-selftest@127.0.0.1".into(),
        parent_endpoint: "/front".into(),
        address: format!("127.0.0.1:{}", service.port()),
    };
    let header = sw8.header();

    let resp = get(service.port(), "/hello?x=1", &format!("sw8: {header}\r\n"));
    let answered = Instant::now();
    assert_eq!(resp.status, 200);
    let body: Value = serde_json::from_slice(&resp.body).expect("a JSON body");
    assert_eq!(body["name"], "sw-upstream");
    assert_eq!(body["path"], "/hello?x=1");
    assert_eq!(body["sw8"], header.as_str());
    assert!(body["traceparent"].is_null());

    let segs = collector.segments(REPORT_LIMIT, |s| has_segment(s, "sw-upstream", "/hello"));
    let took = answered.elapsed();
    let seg = segs
        .iter()
        .find(|s| s["service"] == "sw-upstream")
        .unwrap_or_else(|| {
            panic!(
                "no segment of sw-upstream within {REPORT_LIMIT:?}: {segs:?}\nagent:\n{}\ncollector:\n{}",
                service.stderr_text(),
                collector.stderr_text()
            )
        });
    eprintln!("segment reported {took:?} after the answer");

    // The agent's own trace id is replaced by the caller's.
    assert_eq!(seg["trace_id"], "mosn-selftest-trace-1", "{seg}");
    assert!(
        seg["instance"]
            .as_str()
            .unwrap()
            .starts_with("sw-upstream-"),
        "{seg}"
    );
    assert_ne!(seg["segment_id"], "mosn-selftest-segment-1");
    let spans = seg["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{seg}");
    let span = &spans[0];
    assert_eq!(span["span_type"], "Entry", "{span}");
    assert_eq!(span["span_layer"], "Http", "{span}");
    assert_eq!(span["component_id"], 7000, "{span}");
    assert_eq!(span["span_id"], 0);
    assert_eq!(span["parent_span_id"], -1);
    assert_eq!(span["operation"], "/hello");
    assert_eq!(span["is_error"], false);
    assert_eq!(span["tags"]["http.method"], "GET");
    assert_eq!(span["tags"]["http.status_code"], "200");
    let url = span["tags"]["http.url"].as_str().unwrap();
    assert!(url.ends_with("/hello?x=1"), "{url}");
    assert!(span["start_time"].as_i64().unwrap() <= span["end_time"].as_i64().unwrap());

    let refs = span["refs"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{span}");
    let r = &refs[0];
    assert_eq!(r["ref_type"], "CrossProcess");
    assert_eq!(r["trace_id"], "mosn-selftest-trace-1");
    assert_eq!(r["parent_segment_id"], "mosn-selftest-segment-1");
    assert_eq!(r["parent_span_id"], 3);
    assert_eq!(r["parent_service"], "mosn-selftest");
    assert_eq!(r["parent_instance"], "mosn-selftest@127.0.0.1");
    assert_eq!(r["parent_endpoint"], "/front");
    assert_eq!(r["network_address"], sw8.address.as_str());

    // The agent registered its instance and beats, as against an OAP.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !collector
        .calls()
        .iter()
        .any(|c| c.contains("ManagementService/keepAlive"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let calls = collector.calls();
    assert!(
        calls.iter().any(|c| c
            .starts_with("CALL skywalking.v3.ManagementService/reportInstanceProperties")
            && c.contains("sw-upstream")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("ManagementService/keepAlive")),
        "{calls:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn skywalking_agent_starts_a_trace_without_sw8_and_ignores_an_invalid_one() {
    let started = Instant::now();
    let Some(collector) = SwCollector::start() else {
        return;
    };
    let Some(service) = SwHttpService::start(collector.port(), "sw-plain") else {
        return;
    };

    // An sw8 with an empty field (here the endpoint) is invalid: the agent then
    // traces nothing for that request (no segment at all), but still answers.
    let bad = Sw8 {
        trace_id: "bad-trace".into(),
        parent_segment_id: "bad-segment".into(),
        parent_span_id: 1,
        parent_service: "mosn".into(),
        parent_instance: "mosn-1".into(),
        parent_endpoint: String::new(),
        address: "127.0.0.1:1".into(),
    };
    let resp = get(
        service.port(),
        "/invalid",
        &format!("sw8: {}\r\n", bad.header()),
    );
    assert_eq!(resp.status, 200);

    // Keep-alive: two requests on one connection, one segment each.
    let mut s = connect(service.port());
    use std::io::Write;
    for path in ["/first", "/second"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut s, false).expect("an answer");
        assert_eq!(resp.status, 200);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(body["sw8"].is_null());
        assert_eq!(body["path"], path);
    }

    let segs = collector.segments(REPORT_LIMIT, |s| {
        has_segment(s, "sw-plain", "/first") && has_segment(s, "sw-plain", "/second")
    });
    let mine = segments_of(&segs, "sw-plain");
    let ops: Vec<&Value> = mine.iter().map(|s| &s["spans"][0]["operation"]).collect();
    assert!(
        has_segment(&segs, "sw-plain", "/first") && has_segment(&segs, "sw-plain", "/second"),
        "{segs:?}\nagent:\n{}",
        service.stderr_text()
    );
    // Segments go out in the order they ended; /invalid came first and has none.
    assert!(!ops.iter().any(|o| *o == "/invalid"), "{ops:?}");
    for seg in &mine {
        assert!(
            seg["spans"][0]["refs"].as_array().unwrap().is_empty(),
            "{seg}"
        );
        assert_eq!(seg["spans"][0]["span_type"], "Entry");
        assert_ne!(seg["trace_id"], "bad-trace");
    }
    assert_ne!(
        mine[0]["trace_id"], mine[1]["trace_id"],
        "a new trace per request"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn otlp_collector_prints_an_exported_span() {
    let started = Instant::now();
    let Some(collector) = OtlpCollector::start() else {
        return;
    };
    let (ok, v) = otlp_selftest_client(collector.port());
    assert!(ok, "{v}\n{}", collector.stderr_text());
    let spans = collector.spans(Duration::from_secs(5), |s| !s.is_empty());
    assert_eq!(spans.len(), 1, "{spans:?}");
    let s = &spans[0];
    assert_eq!(s["service"], "selftest");
    assert_eq!(s["trace_id"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(s["span_id"], "a1a2a3a4a5a6a7a8");
    assert_eq!(s["parent_span_id"], "b1b2b3b4b5b6b7b8");
    assert_eq!(s["trace_state"], "k=v");
    assert_eq!(s["name"], "selftest-span");
    assert_eq!(s["kind"], 2);
    assert_eq!(s["start_ns"], 1_000_000_000u64);
    assert_eq!(s["end_ns"], 1_500_000_000u64);
    assert_eq!(s["attributes"]["http.method"], "GET");
    assert_eq!(s["attributes"]["n"], 7);
    assert_eq!(s["attributes"]["ok"], true);
    assert_eq!(s["attributes"]["ratio"], 0.5);
    assert_eq!(s["attributes"]["list"], serde_json::json!(["a", 1]));
    assert_eq!(s["status_code"], 2);
    assert_eq!(s["status_message"], "boom");
    assert_eq!(s["scope"], "selftest-scope");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn sw8_header_encoding() {
    assert_eq!(b64(""), "");
    assert_eq!(b64("f"), "Zg==");
    assert_eq!(b64("fo"), "Zm8=");
    assert_eq!(b64("foo"), "Zm9v");
    assert_eq!(b64("127.0.0.1:8080"), "MTI3LjAuMC4xOjgwODA=");
    let h = Sw8 {
        trace_id: "t".into(),
        parent_segment_id: "s".into(),
        parent_span_id: 0,
        parent_service: "a".into(),
        parent_instance: "b".into(),
        parent_endpoint: "/".into(),
        address: "h:1".into(),
    }
    .header();
    assert_eq!(h, "1-dA==-cw==-0-YQ==-Yg==-Lw==-aDox");
}

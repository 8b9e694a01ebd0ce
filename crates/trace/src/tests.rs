//! Tests of the tracer as the proxy uses it: header handling, sampling, the queue,
//! and export to in-process collectors.

mod bench;
mod collector;
mod encoding;
mod reference;

use crate::otel::proto as otlp;
use crate::skywalking::proto as sw;
use crate::{sw8, traceparent, Span, SpanEnd, Tracer};
use collector::Collector;
use mosn_config::tracing::TracingConfig;
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tracer(driver: &str, config: serde_json::Value) -> Arc<Tracer> {
    let cfg = TracingConfig {
        enable: true,
        driver: driver.into(),
        config,
        tracer: String::new(),
    };
    Tracer::from_config(&cfg)
        .expect("tracer starts")
        .expect("tracing is on")
}

type Headers = HashMap<String, Vec<u8>>;

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn start(t: &Tracer, h: &Headers) -> Option<Span> {
    // Borrows from `h`, not from the name: the shape of the proxy's header lookups.
    let lookup = |name: &str| h.get(name).map(Vec::as_slice);
    t.start(&lookup)
}

fn end(status: u16, flags: &str) -> SpanEnd<'_> {
    SpanEnd {
        method: "GET",
        path: "/orders/7?x=1",
        authority: "shop.local:8080",
        protocol: "HTTP/1.1",
        listener: "ingress",
        route: Some("orders"),
        cluster: Some("backend"),
        upstream_host: Some("127.0.0.1:9001".parse().unwrap()),
        status,
        response_flags: flags,
        downstream_remote: "10.1.2.3:50000".parse().unwrap(),
        bytes_received: 100,
        bytes_sent: 2000,
        duration: None,
    }
}

fn upstream(span: &mut Span, name: &str, peer: &str) -> String {
    texts(&span.upstream_headers_named(peer))
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn texts(headers: &crate::UpstreamHeaders) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .map(|(n, v)| (n, String::from_utf8(v.to_vec()).expect("ASCII")))
        .collect()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const SW8_IN: &str = "1-MWYyZDRiZjQ3YmY3MTFlYWI3OTRhY2RlNDgwMDExMjI=-\
    MWU3YzIwNGE3YmY3MTFlYWI4NThhY2RlNDgwMDExMjI=-3-\
    c2VydmljZQ==-aW5zdGFuY2U=-L2FwcA==-MTI3LjAuMC4xOjgwODA=";
const TP_IN: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn skywalking_continues_an_incoming_trace() {
    let t = tracer(
        "SkyWalking",
        json!({"sample_rate": 0.0, "service_name": "edge", "service_instance": "i1"}),
    );
    let h = headers(&[("sw8", SW8_IN), (":path", "/orders/7?x=1")]);
    // sample_rate 0, but the incoming context is sampled: honoured.
    let mut span = start(&t, &h).expect("sampled in");
    assert_eq!(span.owned_headers(), &["sw8"]);
    let out = sw8::parse(upstream(&mut span, "sw8", "10.0.0.9:80").as_bytes()).unwrap();
    assert!(out.sampled);
    assert_eq!(out.trace_id, "1f2d4bf47bf711eab794acde48001122");
    assert_ne!(out.segment_id, "1e7c204a7bf711eab858acde48001122");
    assert_eq!(out.span_id, 1);
    assert_eq!(out.service, "edge");
    assert_eq!(out.instance, "i1");
    assert_eq!(out.endpoint, "/orders/7");
    assert_eq!(out.address, "10.0.0.9:80");
    // A retry names the new peer, in the same segment.
    let again = sw8::parse(upstream(&mut span, "sw8", "10.0.0.10:80").as_bytes()).unwrap();
    assert_eq!(again.segment_id, out.segment_id);
    assert_eq!(again.address, "10.0.0.10:80");
    span.finish(&end(200, ""));
    assert_eq!(t.stats().started, 1);
}

#[test]
fn skywalking_sampling_and_malformed_headers() {
    let t = tracer("SkyWalking", json!({"sample_rate": 0.0}));
    let not_sampled = SW8_IN.replacen('1', "0", 1);
    assert!(start(&t, &headers(&[("sw8", &not_sampled)])).is_none());
    // No context: the dice, at rate 0, say no.
    assert!(start(&t, &headers(&[])).is_none());
    assert_eq!(t.stats().not_sampled, 2);

    let t = tracer("SkyWalking", json!({}));
    let mut span = start(&t, &headers(&[("sw8", "garbage")])).expect("a new trace");
    let out = sw8::parse(upstream(&mut span, "sw8", "p:1").as_bytes()).unwrap();
    assert_eq!(out.trace_id.len(), 32);
    assert_eq!(out.service, "mosn");
    assert!(out.instance.contains('@'), "{}", out.instance);
    // No :path answered: the endpoint is empty, never an error.
    assert_eq!(out.endpoint, "");
}

#[test]
fn otel_continues_an_incoming_trace() {
    let t = tracer("OpenTelemetry", json!({"sample_rate": 0.0}));
    let h = headers(&[("traceparent", TP_IN), ("tracestate", "congo=t61rcWkgMzE")]);
    let mut span = start(&t, &h).expect("sampled in");
    assert_eq!(span.owned_headers(), &["traceparent", "tracestate"]);
    let out = texts(&span.upstream_headers("10.0.0.9:80".parse().unwrap()));
    let tp = traceparent::parse(out[0].1.as_bytes()).unwrap();
    assert_eq!(out[0].0, "traceparent");
    assert_eq!(tp.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_ne!(tp.parent_id, 0xb7ad6b7169203331);
    assert!(tp.sampled());
    assert_eq!(out[1], ("tracestate", "congo=t61rcWkgMzE".to_string()));
}

#[test]
fn otel_sampling_and_invalid_headers() {
    let t = tracer("otel", json!({"sample_rate": 0.0}));
    let off = TP_IN.replace("-01", "-00");
    assert!(start(&t, &headers(&[("traceparent", &off)])).is_none());
    assert!(start(&t, &headers(&[])).is_none());
    let t = tracer("otel", json!({"sample_rate": 1.0}));
    let h = headers(&[("traceparent", "00-xyz"), ("tracestate", "a=b")]);
    let mut span = start(&t, &h).expect("a new trace");
    let out = texts(&span.upstream_headers_named("p:1"));
    // The invalid parent's tracestate goes with it.
    assert_eq!(out.len(), 1);
    assert!(traceparent::parse(out[0].1.as_bytes()).is_some());
}

#[test]
fn sample_rate_is_a_share() {
    let t = tracer("otel", json!({"sample_rate": 0.5}));
    let h = headers(&[]);
    let sampled = (0..2000).filter(|_| start(&t, &h).is_some()).count();
    assert!((800..1200).contains(&sampled), "{sampled}");
}

#[test]
fn a_full_queue_drops_and_counts() {
    // A collector that accepts and never answers: the first export hangs, the queue
    // (1 span) fills, the rest are dropped without blocking.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = blackhole.local_addr().unwrap();
    let t = tracer(
        "otel",
        json!({"endpoint": addr.to_string(), "max_queue_spans": 1, "batch_size": 1, "flush_interval": "1ms"}),
    );
    let h = headers(&[]);
    let began = Instant::now();
    for _ in 0..50 {
        start(&t, &h).unwrap().finish(&end(200, ""));
    }
    assert!(began.elapsed() < Duration::from_secs(1));
    let stats = t.stats();
    assert_eq!(stats.started, 50);
    assert!(stats.dropped >= 47, "{stats:?}");
}

/// A tracer writing to the log (no collector): what reaches its exporter counts as
/// exported.
fn log_tracer(extra: serde_json::Value) -> Arc<Tracer> {
    let mut config = json!({"report_method": "console"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    tracer("otel", config)
}

#[test]
fn a_span_takes_the_proxys_times() {
    let t = log_tracer(json!({}));
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let span = t.start_at(&|_| None, at).unwrap();
    let end = SpanEnd {
        duration: Some(Duration::from_micros(1500)),
        ..end(200, "")
    };
    let (record, _) = span.into_record(&end);
    assert_eq!(record.start_ns, 1_700_000_000_000_000_000);
    assert_eq!(record.end_ns - record.start_ns, 1_500_000);
}

#[test]
fn spans_wait_in_their_thread_until_it_flushes() {
    let t = log_tracer(json!({"flush_interval": "1ms"}));
    for _ in 0..3 {
        start(&t, &headers(&[])).unwrap().finish(&end(200, ""));
    }
    // Nothing was handed over: the exporter cannot have them, however long it runs.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(t.stats().exported, 0);
    crate::flush_local();
    wait_for("the flushed spans", || t.stats().exported == 3);
    assert_eq!(t.stats().dropped, 0);
}

#[test]
fn a_full_thread_buffer_goes_without_a_flush() {
    // max_queue_spans 16: a thread hands over every 2 spans.
    let t = log_tracer(json!({"max_queue_spans": 16, "flush_interval": "1ms"}));
    for _ in 0..5 {
        start(&t, &headers(&[])).unwrap().finish(&end(200, ""));
    }
    wait_for("two chunks", || t.stats().exported == 4);
    assert!(t.flush_blocking(Duration::from_secs(5)));
    assert_eq!(t.stats().exported, 5);
}

#[test]
fn another_tracers_span_sends_the_buffered_ones_on() {
    let a = log_tracer(json!({"flush_interval": "1ms"}));
    let b = log_tracer(json!({"flush_interval": "1ms"}));
    start(&a, &headers(&[])).unwrap().finish(&end(200, ""));
    start(&b, &headers(&[])).unwrap().finish(&end(200, ""));
    wait_for("a's span", || a.stats().exported == 1);
    assert_eq!(b.stats().exported, 0, "b's span waits for a flush");
    assert!(b.flush_blocking(Duration::from_secs(5)));
    assert_eq!(b.stats().exported, 1);
}

#[test]
fn a_thread_that_ends_hands_its_spans_over() {
    let t = log_tracer(json!({"flush_interval": "1ms"}));
    let worker = t.clone();
    std::thread::spawn(move || {
        for _ in 0..2 {
            start(&worker, &headers(&[])).unwrap().finish(&end(200, ""));
        }
    })
    .join()
    .unwrap();
    wait_for("the ended thread's spans", || t.stats().exported == 2);
}

fn decode_segments(call: &collector::Call) -> Vec<sw::SegmentObject> {
    call.messages
        .iter()
        .map(|m| sw::SegmentObject::decode(m.clone()).expect("a SegmentObject"))
        .collect()
}

fn tag<'a>(tags: &'a [sw::KeyStringValuePair], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

#[test]
fn skywalking_reports_to_the_oap() {
    let oap = Collector::start("127.0.0.1:0");
    let t = tracer(
        "SkyWalking",
        json!({"reporter": "gRPC", "backend_service": oap.addr.to_string(), "service_name": "edge",
               "service_instance": "i1", "authentication": "s3cret", "flush_interval": "10ms"}),
    );
    let props = oap.next("/reportInstanceProperties");
    assert_eq!(props.headers["authentication"], "s3cret");
    let props = sw::InstanceProperties::decode(props.messages[0].clone()).unwrap();
    assert_eq!(
        (props.service.as_str(), props.service_instance.as_str()),
        ("edge", "i1")
    );
    assert!(props.properties.iter().any(|p| p.key == "language"));
    let ping = sw::InstancePingPkg::decode(oap.next("/keepAlive").messages[0].clone()).unwrap();
    assert_eq!(ping.service_instance, "i1");

    // One continued trace, with an upstream, failing; one new trace, no upstream.
    let h = headers(&[("sw8", SW8_IN), (":path", "/orders/7?x=1")]);
    let mut span = start(&t, &h).unwrap();
    let sent = sw8::parse(upstream(&mut span, "sw8", "127.0.0.1:9001").as_bytes()).unwrap();
    span.finish(&end(503, "UF"));
    let mut lone = end(0, "");
    lone.upstream_host = None;
    lone.cluster = None;
    start(&t, &headers(&[])).unwrap().finish(&lone);
    assert!(t.flush_blocking(Duration::from_secs(5)));

    let mut segments = Vec::new();
    while segments.len() < 2 {
        let call = oap.next("/collect");
        assert_eq!(
            call.path,
            "/skywalking.v3.TraceSegmentReportService/collect"
        );
        assert_eq!(call.headers["authentication"], "s3cret");
        segments.extend(decode_segments(&call));
    }
    let seg = &segments[0];
    assert_eq!(seg.trace_id, "1f2d4bf47bf711eab794acde48001122");
    assert_eq!(seg.trace_segment_id, sent.segment_id);
    assert_eq!(
        (seg.service.as_str(), seg.service_instance.as_str()),
        ("edge", "i1")
    );
    assert_eq!(seg.spans.len(), 2);
    let entry = &seg.spans[0];
    assert_eq!((entry.span_id, entry.parent_span_id), (0, -1));
    assert_eq!(entry.span_type, sw::SpanType::Entry as i32);
    assert_eq!(entry.span_layer, sw::SpanLayer::Http as i32);
    assert_eq!(entry.component_id, 5003);
    assert_eq!(entry.operation_name, "/orders/7");
    assert_eq!(entry.peer, "10.1.2.3:50000");
    assert!(entry.is_error);
    assert!(entry.start_time > 1_600_000_000_000 && entry.end_time >= entry.start_time);
    assert_eq!(tag(&entry.tags, "http.method"), Some("GET"));
    assert_eq!(
        tag(&entry.tags, "url"),
        Some("shop.local:8080/orders/7?x=1")
    );
    assert_eq!(tag(&entry.tags, "status_code"), Some("503"));
    assert_eq!(tag(&entry.tags, "mosn.response_flags"), Some("UF"));
    assert_eq!(tag(&entry.tags, "mosn.cluster"), Some("backend"));
    assert!(!entry.logs.is_empty());
    let r = &entry.refs[0];
    assert_eq!(r.ref_type, sw::RefType::CrossProcess as i32);
    assert_eq!(r.trace_id, "1f2d4bf47bf711eab794acde48001122");
    assert_eq!(
        r.parent_trace_segment_id,
        "1e7c204a7bf711eab858acde48001122"
    );
    assert_eq!(r.parent_span_id, 3);
    assert_eq!(r.parent_service, "service");
    assert_eq!(r.parent_service_instance, "instance");
    assert_eq!(r.parent_endpoint, "/app");
    assert_eq!(r.network_address_used_at_peer, "127.0.0.1:8080");
    let exit = &seg.spans[1];
    assert_eq!((exit.span_id, exit.parent_span_id), (1, 0));
    assert_eq!(exit.span_type, sw::SpanType::Exit as i32);
    assert_eq!(exit.peer, "127.0.0.1:9001");
    assert!(exit.refs.is_empty());

    let lone = &segments[1];
    assert_eq!(lone.trace_id.len(), 32);
    assert_eq!(lone.spans.len(), 1, "no upstream, no exit span");
    assert!(lone.spans[0].refs.is_empty());
    assert!(lone.spans[0].is_error, "no response is an error");
    assert_eq!(tag(&lone.spans[0].tags, "status_code"), None);
    let stats = t.stats();
    assert_eq!((stats.started, stats.exported, stats.dropped), (2, 2, 0));
}

fn attr<'a>(span: &'a otlp::Span, key: &str) -> Option<&'a otlp::any_value::Value> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(span: &'a otlp::Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(otlp::any_value::Value::String(s)) => Some(s),
        _ => None,
    }
}

fn int_attr(span: &otlp::Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(otlp::any_value::Value::Int(i)) => Some(*i),
        _ => None,
    }
}

#[test]
fn otel_exports_to_the_collector() {
    let collector = Collector::start("127.0.0.1:0");
    let t = tracer(
        "OpenTelemetry",
        json!({"endpoint": format!("http://{}", collector.addr), "service_name": "edge",
               "headers": {"x-api-key": "k1"}, "config_map": {"deployment.environment": "test"}}),
    );
    let h = headers(&[("traceparent", TP_IN), ("tracestate", "congo=t61rcWkgMzE")]);
    let mut span = start(&t, &h).unwrap();
    let sent = traceparent::parse(upstream(&mut span, "traceparent", "127.0.0.1:9001").as_bytes())
        .unwrap();
    span.finish(&end(200, ""));
    start(&t, &headers(&[])).unwrap().finish(&end(502, ""));
    assert!(t.flush_blocking(Duration::from_secs(5)));

    let call = collector.next("/Export");
    assert_eq!(
        call.path,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(call.headers["x-api-key"], "k1");
    assert_eq!(call.messages.len(), 1);
    let req = otlp::ExportTraceServiceRequest::decode(call.messages[0].clone()).unwrap();
    let rs = &req.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    let res_attr = |k: &str| {
        resource
            .attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
    };
    assert_eq!(
        res_attr("service.name").and_then(|v| v.value),
        Some(otlp::any_value::Value::String("edge".into()))
    );
    assert!(res_attr("deployment.environment").is_some());
    let spans = &rs.scope_spans[0].spans;
    assert_eq!(spans.len(), 2);
    let s = &spans[0];
    assert_eq!(
        s.trace_id,
        0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes()
    );
    assert_eq!(s.span_id, sent.parent_id.to_be_bytes());
    assert_eq!(s.parent_span_id, 0xb7ad6b7169203331_u64.to_be_bytes());
    assert_eq!(s.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(s.kind, otlp::SpanKind::Server as i32);
    assert_eq!(s.name, "HTTP/1.1 GET /orders/7");
    assert_eq!(s.flags & 0x301, 0x301);
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
    assert_eq!(str_attr(s, "http.request.method"), Some("GET"));
    assert_eq!(str_attr(s, "url.path"), Some("/orders/7"));
    assert_eq!(str_attr(s, "url.query"), Some("x=1"));
    assert_eq!(int_attr(s, "http.response.status_code"), Some(200));
    assert_eq!(str_attr(s, "server.address"), Some("shop.local"));
    assert_eq!(int_attr(s, "server.port"), Some(8080));
    assert_eq!(str_attr(s, "network.peer.address"), Some("10.1.2.3"));
    assert_eq!(str_attr(s, "mosn.upstream.cluster"), Some("backend"));
    assert_eq!(str_attr(s, "mosn.upstream.host"), Some("127.0.0.1:9001"));
    assert_eq!(str_attr(s, "mosn.route"), Some("orders"));
    assert!(s.status.is_none());

    let fresh = &spans[1];
    assert_ne!(fresh.trace_id, s.trace_id);
    assert!(fresh.parent_span_id.is_empty());
    assert_eq!(fresh.flags & 0x300, 0x100, "a root span: parent not remote");
    let status = fresh.status.as_ref().unwrap();
    assert_eq!(status.code, otlp::StatusCode::Error as i32);
    assert_eq!(str_attr(fresh, "error.type"), Some("502"));
}

#[test]
fn a_collectors_error_status_fails_the_batch_in_either_shape() {
    // INVALID_ARGUMENT (3) is not worth another try: the batch's spans are lost
    // at once, and counted as failed, whether the status came trailers-only or
    // after a message.
    for answer in [
        collector::Answer::TrailersOnly(3),
        collector::Answer::AfterMessage(3),
    ] {
        let collector = Collector::start_answering("127.0.0.1:0", answer);
        let t = tracer(
            "otel",
            json!({"endpoint": collector.addr.to_string(), "flush_interval": "10ms"}),
        );
        start(&t, &headers(&[])).unwrap().finish(&end(200, ""));
        crate::flush_local();
        let call = collector.next("/Export");
        assert_eq!(call.messages.len(), 1, "{answer:?}");
        wait_for("the failure to count", || t.stats().failed_spans == 1);
        let stats = t.stats();
        assert_eq!(stats.export_failures, 1, "{answer:?}: one try, no retry");
        assert_eq!(stats.exported, 0, "{answer:?}");
    }
}

#[test]
fn a_collector_down_at_start_gets_the_spans_later() {
    // Find a free port, leave it closed while the first export fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t = tracer(
        "otel",
        json!({"endpoint": addr.to_string(), "flush_interval": "10ms"}),
    );
    start(&t, &headers(&[])).unwrap().finish(&end(200, ""));
    // Hand the span over, as the proxy's workers do every 50 ms.
    crate::flush_local();
    wait_for("a failed export", || t.stats().export_failures >= 1);
    let collector = Collector::start(&addr.to_string());
    let call = collector.next("/Export");
    let req = otlp::ExportTraceServiceRequest::decode(call.messages[0].clone()).unwrap();
    assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 1);
    wait_for("the export to count", || t.stats().exported == 1);
    assert_eq!(t.stats().failed_spans, 0);
}

#[test]
fn log_reporters_need_no_collector() {
    for (driver, config) in [
        ("SkyWalking", json!({"reporter": "log"})),
        ("otel", json!({"report_method": "console"})),
    ] {
        let t = tracer(driver, config);
        let mut span = start(&t, &headers(&[])).unwrap();
        let _ = span.upstream_headers("127.0.0.1:1".parse().unwrap());
        span.finish(&end(200, ""));
        assert!(t.flush_blocking(Duration::from_secs(5)));
        assert_eq!(t.stats().exported, 1, "{driver}");
    }
}

#[test]
fn drivers_we_do_not_run_give_no_tracer() {
    for (enable, driver) in [(true, "SOFATracer"), (false, "SkyWalking"), (true, "")] {
        let cfg = TracingConfig {
            enable,
            driver: driver.into(),
            ..Default::default()
        };
        assert!(Tracer::from_config(&cfg).unwrap().is_none(), "{driver}");
    }
    let bad = TracingConfig {
        enable: true,
        driver: "SkyWalking".into(),
        config: json!({"sample_rate": 2}),
        ..Default::default()
    };
    let err = Tracer::from_config(&bad).err().expect("refused");
    assert!(
        err.to_string().contains("tracing.config.sample_rate"),
        "{err}"
    );
}

#[test]
fn spans_are_send_and_the_tracer_is_shared() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<Span>();
    shared::<Tracer>();
}

/// MOSN's sample certificates: a CA and a server certificate for 127.0.0.1.
fn mosn_certs() -> Option<std::path::PathBuf> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mosn-configs/certs");
    dir.join("ca.pem").is_file().then_some(dir)
}

#[test]
fn skywalking_tls_uses_the_configured_ca() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(certs) = mosn_certs() else {
        eprintln!("skipped: shared/mosn-configs/certs not found");
        return;
    };
    let chain = CertificateDer::pem_file_iter(certs.join("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs.join("key.pem")).unwrap();
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec()];
    let oap = Collector::start_tls(
        "127.0.0.1:0",
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    );
    let t = tracer(
        "SkyWalking",
        json!({"reporter": "gRPC", "backend_service": oap.addr.to_string(),
               "tls": {"cert_file": certs.join("ca.pem"), "server_name_override": "127.0.0.1"}}),
    );
    start(&t, &headers(&[])).unwrap().finish(&end(200, ""));
    assert!(t.flush_blocking(Duration::from_secs(5)));
    let call = oap.next("/collect");
    assert_eq!(decode_segments(&call).len(), 1);
}

#[test]
fn tls_setup_problems_surface_at_start() {
    let dir = std::env::temp_dir().join(format!("mosn-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not-a-ca.pem");
    std::fs::write(&bad, "not PEM").unwrap();
    let cfg = TracingConfig {
        enable: true,
        driver: "SkyWalking".into(),
        config: json!({"reporter": "gRPC", "backend_service": "127.0.0.1:11800",
                       "tls": {"cert_file": bad}}),
        ..Default::default()
    };
    let result = Tracer::from_config(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        result.is_err(),
        "a CA file without a certificate is refused"
    );
}

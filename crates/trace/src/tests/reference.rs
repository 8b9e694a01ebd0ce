//! The exporters' messages built the straightforward way, as prost structs with an
//! owned String per attribute and tag (how mosn-trace encoded them before it wrote
//! them field by field): the oracle the hand-written encoding must match byte for
//! byte, and the benchmarks' baseline.

use crate::otel::proto as otlp;
use crate::otel::split_authority;
use crate::record::{non_empty, Ctx, Field, Finished};
use crate::skywalking::proto as sw;
use crate::{ids, skywalking, SKYWALKING_COMPONENT_ID};
use otlp::{any_value, AnyValue, KeyValue};
use sw::KeyStringValuePair;

pub fn string_kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::String(value.into())),
        }),
    }
}

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::Int(value)),
        }),
    }
}

fn kv(key: &str, value: impl Into<String>) -> KeyStringValuePair {
    KeyStringValuePair {
        key: key.to_string(),
        value: value.into(),
    }
}

fn error_kind(f: &Finished) -> String {
    f.error_kind(&mut itoa::Buffer::new()).to_string()
}

fn upstream(f: &Finished) -> Option<String> {
    f.upstream().map(|u| u.to_string())
}

/// One export request for a batch.
pub fn otlp_request(batch: &[Finished], resource: &[KeyValue]) -> otlp::ExportTraceServiceRequest {
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: resource.to_vec(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(otlp::InstrumentationScope {
                    name: "mosn-rs".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                }),
                spans: batch.iter().filter_map(otlp_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn otlp_span(f: &Finished) -> Option<otlp::Span> {
    let Ctx::Otel(ctx) = &f.ctx else {
        return None;
    };
    let method = f.end.method;
    let target = f.end.path;
    let path = f.path_only();
    let mut attributes = vec![
        string_kv("http.request.method", method),
        string_kv("url.path", path),
    ];
    if let Some((_, query)) = target.split_once('?') {
        attributes.push(string_kv("url.query", query));
    }
    if f.end.status != 0 {
        attributes.push(int_kv("http.response.status_code", i64::from(f.end.status)));
    }
    let (host, port) = split_authority(f.end.authority);
    if !host.is_empty() {
        attributes.push(string_kv("server.address", host));
    }
    if let Some(port) = port {
        attributes.push(int_kv("server.port", i64::from(port)));
    }
    attributes.push(string_kv(
        "network.peer.address",
        f.end.downstream_remote.addr().ip().to_string(),
    ));
    attributes.push(int_kv(
        "network.peer.port",
        i64::from(f.end.downstream_remote.addr().port()),
    ));
    let version = f
        .end
        .protocol
        .strip_prefix("HTTP/")
        .unwrap_or(f.end.protocol);
    attributes.push(string_kv("network.protocol.version", version));
    attributes.push(string_kv("mosn.listener", f.end.listener));
    if let Some(route) = non_empty(f.end.route) {
        attributes.push(string_kv("mosn.route", route));
    }
    if let Some(cluster) = non_empty(f.end.cluster) {
        attributes.push(string_kv("mosn.upstream.cluster", cluster));
    }
    if let Some(host) = upstream(f) {
        attributes.push(string_kv("mosn.upstream.host", host));
    }
    if let Some(flags) = non_empty(Some(f.end.response_flags)) {
        attributes.push(string_kv("mosn.response_flags", flags));
    }
    attributes.push(int_kv(
        "mosn.bytes_received",
        i64::try_from(f.end.bytes_received).unwrap_or(i64::MAX),
    ));
    attributes.push(int_kv(
        "mosn.bytes_sent",
        i64::try_from(f.end.bytes_sent).unwrap_or(i64::MAX),
    ));
    let status = if f.is_error() {
        let kind = error_kind(f);
        attributes.push(string_kv("error.type", kind.clone()));
        Some(otlp::Status {
            message: kind,
            code: otlp::StatusCode::Error as i32,
        })
    } else {
        None
    };
    let mut flags =
        u32::from(crate::traceparent::FLAG_SAMPLED) | otlp::SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
    if ctx.parent_span_id.is_some() {
        flags |= otlp::SPAN_FLAGS_CONTEXT_IS_REMOTE;
    }
    Some(otlp::Span {
        trace_id: ctx.trace_id.to_be_bytes().to_vec(),
        span_id: ctx.span_id.to_be_bytes().to_vec(),
        trace_state: f.text.get(Field::TraceState).to_string(),
        parent_span_id: ctx
            .parent_span_id
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: format!("{} {method} {path}", f.end.protocol),
        kind: otlp::SpanKind::Server as i32,
        start_time_unix_nano: f.start_ns,
        end_time_unix_nano: f.end_ns,
        attributes,
        status,
        flags,
    })
}

fn millis(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

/// The segment of one request.
pub fn sw_segment(f: &Finished, service: &str, instance: &str) -> Option<sw::SegmentObject> {
    let Ctx::SkyWalking(ctx) = &f.ctx else {
        return None;
    };
    let operation = f.path_only().to_string();
    let is_error = f.is_error();
    let url = format!("{}{}", f.end.authority, f.end.path);
    let method = f.end.method;
    let status = (f.end.status != 0).then(|| f.end.status.to_string());
    let error_logs = || {
        if is_error {
            vec![sw::Log {
                time: millis(f.end_ns),
                data: vec![
                    kv("event", "error"),
                    kv("error.kind", error_kind(f)),
                    kv("message", "Errors on upstream service"),
                ],
            }]
        } else {
            Vec::new()
        }
    };
    let mut tags = vec![kv("http.method", method), kv("url", url.clone())];
    if let Some(code) = &status {
        tags.push(kv("status_code", code.clone()));
    }
    tags.push(kv("mosn.protocol", f.end.protocol));
    tags.push(kv("mosn.listener", f.end.listener));
    for (key, value) in [
        ("mosn.route", f.end.route),
        ("mosn.cluster", f.end.cluster),
        ("mosn.response_flags", Some(f.end.response_flags)),
    ] {
        if let Some(value) = non_empty(value) {
            tags.push(kv(key, value));
        }
    }
    let trace_id = match ctx.new_trace_id {
        Some(id) => ids::hex128(id).as_str().to_string(),
        None => f.text.get(Field::TraceId).to_string(),
    };
    let refs = ctx
        .parent_span_id
        .iter()
        .map(|&parent_span_id| sw::SegmentReference {
            ref_type: sw::RefType::CrossProcess as i32,
            trace_id: f.text.get(Field::TraceId).to_string(),
            parent_trace_segment_id: f.text.get(Field::ParentSegment).to_string(),
            parent_span_id,
            parent_service: f.text.get(Field::ParentService).to_string(),
            parent_service_instance: f.text.get(Field::ParentInstance).to_string(),
            parent_endpoint: f.text.get(Field::ParentEndpoint).to_string(),
            network_address_used_at_peer: f.text.get(Field::ParentAddress).to_string(),
        })
        .collect();
    let http_span = sw::SpanObject {
        end_time: millis(f.end_ns),
        span_layer: sw::SpanLayer::Http as i32,
        component_id: SKYWALKING_COMPONENT_ID,
        is_error,
        logs: error_logs(),
        ..sw::SpanObject::default()
    };
    let mut spans = vec![sw::SpanObject {
        span_id: skywalking::ENTRY_SPAN_ID,
        parent_span_id: -1,
        start_time: millis(f.start_ns),
        refs,
        operation_name: operation.clone(),
        peer: f.end.downstream_remote.to_string(),
        span_type: sw::SpanType::Entry as i32,
        tags,
        ..http_span.clone()
    }];
    if let Some(peer) = f.exit_peer().map(|p| p.to_string()).or_else(|| upstream(f)) {
        let mut tags = vec![kv("http.method", method), kv("url", url)];
        if let Some(code) = status {
            tags.push(kv("status_code", code));
        }
        spans.push(sw::SpanObject {
            span_id: skywalking::EXIT_SPAN_ID,
            parent_span_id: skywalking::ENTRY_SPAN_ID,
            start_time: millis(f.exit_start_ns.unwrap_or(f.start_ns)),
            operation_name: operation,
            peer,
            span_type: sw::SpanType::Exit as i32,
            tags,
            ..http_span
        });
    }
    Some(sw::SegmentObject {
        trace_id,
        trace_segment_id: ids::hex128(ctx.segment_id).as_str().to_string(),
        spans,
        service: service.to_string(),
        service_instance: instance.to_string(),
        is_size_limited: false,
    })
}

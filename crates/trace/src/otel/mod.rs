//! OpenTelemetry: one SERVER span per request, exported over OTLP/gRPC (or to the
//! log).

pub(crate) mod proto;

use crate::export::grpc::{Destination, GrpcTarget};
use crate::record::{Ctx, Field, Finished};
use crate::TraceError;
use mosn_config::tracing::{OtelSettings, Reporter};
use proto::{int_kv, string_kv, KeyValue, SpanKind, StatusCode};

/// The instrumentation scope spans are reported under.
const SCOPE_NAME: &str = "mosn-rs";

/// The OpenTelemetry destination, prepared at start.
pub(crate) struct Plan {
    pub service: String,
    resource: Vec<KeyValue>,
    grpc: Option<GrpcTarget>,
}

impl Plan {
    pub fn new(settings: &OtelSettings) -> Result<Self, TraceError> {
        let service = settings
            .service_name
            .clone()
            .unwrap_or_else(default_service_name);
        let mut resource = vec![
            string_kv("service.name", service.clone()),
            string_kv("telemetry.sdk.name", "mosn-rs"),
            string_kv("telemetry.sdk.language", "rust"),
            string_kv("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        // MOSN's config_map: extra resource attributes (service.name may be overridden).
        for (key, value) in &settings.resource {
            resource.retain(|kv| &kv.key != key);
            resource.push(string_kv(key, value.clone()));
        }
        let grpc = match &settings.reporter {
            Reporter::Grpc(collector) => Some(GrpcTarget::new(collector, &settings.headers)?),
            Reporter::Log => None,
        };
        Ok(Plan {
            service,
            resource,
            grpc,
        })
    }
}

/// MOSN's default: `<$COMP_NAME>_sidecar`, else `default_sidecar`.
fn default_service_name() -> String {
    match std::env::var("COMP_NAME") {
        Ok(app) if !app.is_empty() => format!("{app}_sidecar"),
        _ => "default_sidecar".to_string(),
    }
}

pub(crate) struct Sink {
    resource: Vec<KeyValue>,
    to: Destination,
}

impl Sink {
    /// Runs inside the exporter's runtime (the gRPC channel needs one).
    pub fn new(plan: Plan) -> Self {
        Sink {
            to: Destination::new(plan.grpc.as_ref()),
            resource: plan.resource,
        }
    }

    pub fn target(&self) -> &str {
        &self.to.name
    }

    /// Sends a batch; Ok holds how many spans the collector rejected.
    pub async fn export(&mut self, batch: &[Finished]) -> Result<usize, tonic::Status> {
        let request = request(batch, &self.resource);
        match &mut self.to.client {
            Some(client) => {
                let response: proto::ExportTraceServiceResponse =
                    client.unary(proto::EXPORT_PATH, request).await?;
                let rejected = response
                    .partial_success
                    .map_or(0, |p| p.rejected_spans.max(0) as usize);
                Ok(rejected)
            }
            None => {
                for rs in &request.resource_spans {
                    for ss in &rs.scope_spans {
                        for span in &ss.spans {
                            tracing::info!(target: "mosn_trace::otel", "span {span:?}");
                        }
                    }
                }
                Ok(0)
            }
        }
    }
}

/// One export request for a batch.
pub(crate) fn request(
    batch: &[Finished],
    resource: &[KeyValue],
) -> proto::ExportTraceServiceRequest {
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: resource.to_vec(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                }),
                spans: batch.iter().filter_map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The span of one request.
pub(crate) fn span(f: &Finished) -> Option<proto::Span> {
    let Ctx::Otel(ctx) = &f.ctx else {
        return None;
    };
    let method = f.text.get(Field::Method);
    let target = f.text.get(Field::Path);
    let path = f.path_only();
    let mut attributes = vec![
        string_kv("http.request.method", method),
        string_kv("url.path", path),
    ];
    if let Some((_, query)) = target.split_once('?') {
        attributes.push(string_kv("url.query", query));
    }
    if f.status != 0 {
        attributes.push(int_kv("http.response.status_code", i64::from(f.status)));
    }
    let (host, port) = split_authority(f.text.get(Field::Authority));
    if !host.is_empty() {
        attributes.push(string_kv("server.address", host));
    }
    if let Some(port) = port {
        attributes.push(int_kv("server.port", i64::from(port)));
    }
    attributes.push(string_kv(
        "network.peer.address",
        f.downstream_remote.ip().to_string(),
    ));
    attributes.push(int_kv(
        "network.peer.port",
        i64::from(f.downstream_remote.port()),
    ));
    let version = f.protocol.strip_prefix("HTTP/").unwrap_or(f.protocol);
    attributes.push(string_kv("network.protocol.version", version));
    attributes.push(string_kv("mosn.listener", f.text.get(Field::Listener)));
    if let Some(route) = f.text.opt(Field::Route) {
        attributes.push(string_kv("mosn.route", route));
    }
    if let Some(cluster) = f.text.opt(Field::Cluster) {
        attributes.push(string_kv("mosn.upstream.cluster", cluster));
    }
    if let Some(host) = f.upstream() {
        attributes.push(string_kv("mosn.upstream.host", host));
    }
    if let Some(flags) = f.text.opt(Field::Flags) {
        attributes.push(string_kv("mosn.response_flags", flags));
    }
    attributes.push(int_kv(
        "mosn.bytes_received",
        i64::try_from(f.bytes_received).unwrap_or(i64::MAX),
    ));
    attributes.push(int_kv(
        "mosn.bytes_sent",
        i64::try_from(f.bytes_sent).unwrap_or(i64::MAX),
    ));
    let status = if f.is_error() {
        let kind = f.error_kind();
        attributes.push(string_kv("error.type", kind.clone()));
        Some(proto::Status {
            message: kind,
            code: StatusCode::Error as i32,
        })
    } else {
        None
    };
    let mut flags =
        u32::from(crate::traceparent::FLAG_SAMPLED) | proto::SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
    if ctx.parent_span_id.is_some() {
        flags |= proto::SPAN_FLAGS_CONTEXT_IS_REMOTE;
    }
    Some(proto::Span {
        trace_id: ctx.trace_id.to_be_bytes().to_vec(),
        span_id: ctx.span_id.to_be_bytes().to_vec(),
        trace_state: ctx.tracestate.clone().unwrap_or_default(),
        parent_span_id: ctx
            .parent_span_id
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        // MOSN's span name: "<protocol> <method> <path>" (here without the query).
        name: format!("{} {method} {path}", f.protocol),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: f.start_ns,
        end_time_unix_nano: f.end_ns,
        attributes,
        status,
        flags,
    })
}

/// Host and port of an authority (`host`, `host:port`, `[v6]:port`).
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[test]
    fn authorities_split() {
        assert_eq!(split_authority("a.b:8080"), ("a.b", Some(8080)));
        assert_eq!(split_authority("a.b"), ("a.b", None));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_authority("[::1]"), ("::1", None));
        assert_eq!(split_authority("a:x"), ("a:x", None));
        assert_eq!(split_authority(""), ("", None));
    }
}

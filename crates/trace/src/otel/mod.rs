//! OpenTelemetry: one SERVER span per request, exported over OTLP/gRPC (or to the
//! log).

pub(crate) mod proto;

use crate::export::grpc::{Destination, Encoded, GrpcTarget};
use crate::export::wire::{Size, Wire};
use crate::local::Chunk;
use crate::record::{Ctx, Field, Finished, Upstream};
use crate::TraceError;
use bytes::Bytes;
use mosn_config::tracing::{OtelSettings, Reporter};
use mosn_observe::addr_text::AddrText;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use proto::{string_kv, KeyValue, SpanKind, StatusCode};

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
    fixed: Fixed,
    to: Destination,
}

impl Sink {
    /// Runs inside the exporter's runtime (the gRPC channel needs one).
    pub fn new(plan: Plan) -> Self {
        Sink {
            to: Destination::new(plan.grpc.as_ref()),
            fixed: Fixed::new(&plan.resource),
        }
    }

    pub fn target(&self) -> &str {
        &self.to.name
    }

    /// Sends a batch (one request: the envelope, then the chunks' spans as they
    /// are); Ok holds how many spans the collector rejected.
    pub async fn export(&mut self, batch: &[Chunk]) -> Result<usize, tonic::Status> {
        let spans_len = batch.iter().map(|c| c.bytes.len()).sum();
        let mut pieces = Vec::with_capacity(batch.len() + 1);
        pieces.push(self.fixed.envelope(spans_len));
        pieces.extend(batch.iter().map(|c| c.bytes.clone()));
        let messages = vec![Encoded::Pieces(pieces)];
        match &mut self.to.client {
            Some(client) => {
                let response: proto::ExportTraceServiceResponse =
                    client.send_encoded(proto::EXPORT_PATH, messages).await?;
                let rejected = response
                    .partial_success
                    .map_or(0, |p| p.rejected_spans.max(0) as usize);
                Ok(rejected)
            }
            None => {
                // The console reporter: not the fast path, so it reads the request
                // back to log each span as the message it is.
                for message in messages {
                    let request = proto::ExportTraceServiceRequest::decode(message.to_bytes())
                        .map_err(|e| tonic::Status::internal(e.to_string()))?;
                    for rs in &request.resource_spans {
                        for ss in &rs.scope_spans {
                            for span in &ss.spans {
                                tracing::info!(target: "mosn_trace::otel", "span {span:?}");
                            }
                        }
                    }
                }
                Ok(0)
            }
        }
    }
}

/// What every export request repeats, encoded once: the `Resource` (field 1 of
/// `ResourceSpans`) and the `InstrumentationScope` (field 1 of `ScopeSpans`).
pub(crate) struct Fixed {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Fixed {
    pub fn new(resource: &[KeyValue]) -> Self {
        let resource = proto::Resource {
            attributes: resource.to_vec(),
            dropped_attributes_count: 0,
        };
        let scope = proto::InstrumentationScope {
            name: SCOPE_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut fixed = Fixed {
            resource: Vec::new(),
            scope: Vec::new(),
        };
        prost::encoding::message::encode(1, &resource, &mut fixed.resource);
        prost::encoding::message::encode(1, &scope, &mut fixed.scope);
        fixed
    }
}

// Field numbers of the OTLP messages written here (see proto.rs).
const RESOURCE_SPANS: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SPANS: u32 = 2;
const ATTRIBUTES: u32 = 9;
const STATUS: u32 = 15;

impl Fixed {
    /// The start of an `ExportTraceServiceRequest` whose spans (fields of its one
    /// `ScopeSpans`, `spans_len` bytes) follow: one `ResourceSpans` with one
    /// `ScopeSpans`. Their `schema_url`s (3) are empty: left out.
    pub fn envelope(&self, spans_len: usize) -> Bytes {
        let scope_len = self.scope.len() + spans_len;
        let resource_len = self.resource.len()
            + key_len(SCOPE_SPANS)
            + encoded_len_varint(scope_len as u64)
            + scope_len;
        let mut head = Vec::with_capacity(self.resource.len() + self.scope.len() + 16);
        encode_key(RESOURCE_SPANS, WireType::LengthDelimited, &mut head);
        encode_varint(resource_len as u64, &mut head);
        head.extend_from_slice(&self.resource);
        encode_key(SCOPE_SPANS, WireType::LengthDelimited, &mut head);
        encode_varint(scope_len as u64, &mut head);
        head.extend_from_slice(&self.scope);
        Bytes::from(head)
    }
}

/// One `ExportTraceServiceRequest` for a batch, in one buffer (what the exporter
/// sends in pieces).
#[cfg(test)]
pub(crate) fn encode_request(w: &mut Wire, batch: &[Finished], fixed: &Fixed) {
    let mut spans = Wire::default();
    spans.begin_batch();
    for f in batch {
        encode_span(&mut spans, f);
    }
    let (spans, _) = spans.take_all();
    w.raw(&fixed.envelope(spans.len()));
    w.raw(&spans);
}

/// The `Span` of one request, as a field of a `ScopeSpans`.
pub(crate) fn encode_span(w: &mut Wire, f: &Finished) {
    let Ctx::Otel(ctx) = &f.ctx else {
        return;
    };
    let method = f.text.get(Field::Method);
    let target = f.text.get(Field::Path);
    let path = f.path_only();
    let span = w.begin(SPANS, Size::Medium);
    w.bytes_field(1, &ctx.trace_id.to_be_bytes());
    w.bytes_field(2, &ctx.span_id.to_be_bytes());
    w.string(3, &[f.text.get(Field::TraceState)]);
    if let Some(parent) = ctx.parent_span_id {
        w.bytes_field(4, &parent.to_be_bytes());
    }
    // MOSN's span name: "<protocol> <method> <path>" (here without the query).
    w.string(5, &[f.protocol, " ", method, " ", path]);
    w.varint(6, SpanKind::Server as u64);
    w.fixed64(7, f.start_ns);
    w.fixed64(8, f.end_ns);

    w.kv_str(ATTRIBUTES, "http.request.method", &[method]);
    w.kv_str(ATTRIBUTES, "url.path", &[path]);
    if let Some((_, query)) = target.split_once('?') {
        w.kv_str(ATTRIBUTES, "url.query", &[query]);
    }
    if f.status != 0 {
        w.kv_int(ATTRIBUTES, "http.response.status_code", i64::from(f.status));
    }
    let (host, port) = split_authority(f.text.get(Field::Authority));
    if !host.is_empty() {
        w.kv_str(ATTRIBUTES, "server.address", &[host]);
    }
    if let Some(port) = port {
        w.kv_int(ATTRIBUTES, "server.port", i64::from(port));
    }
    let peer_ip = AddrText::ip(f.downstream_remote.ip());
    w.kv_ascii(ATTRIBUTES, "network.peer.address", peer_ip.as_bytes());
    w.kv_int(
        ATTRIBUTES,
        "network.peer.port",
        i64::from(f.downstream_remote.port()),
    );
    let version = f.protocol.strip_prefix("HTTP/").unwrap_or(f.protocol);
    w.kv_str(ATTRIBUTES, "network.protocol.version", &[version]);
    w.kv_str(ATTRIBUTES, "mosn.listener", &[f.text.get(Field::Listener)]);
    if let Some(route) = f.text.opt(Field::Route) {
        w.kv_str(ATTRIBUTES, "mosn.route", &[route]);
    }
    if let Some(cluster) = f.text.opt(Field::Cluster) {
        w.kv_str(ATTRIBUTES, "mosn.upstream.cluster", &[cluster]);
    }
    match f.upstream() {
        Some(Upstream::Host(host)) => {
            let host = AddrText::new(host);
            w.kv_ascii(ATTRIBUTES, "mosn.upstream.host", host.as_bytes());
        }
        Some(Upstream::Peer(peer)) => w.kv_str(ATTRIBUTES, "mosn.upstream.host", &[peer]),
        None => {}
    }
    if let Some(flags) = f.text.opt(Field::Flags) {
        w.kv_str(ATTRIBUTES, "mosn.response_flags", &[flags]);
    }
    w.kv_int(
        ATTRIBUTES,
        "mosn.bytes_received",
        i64::try_from(f.bytes_received).unwrap_or(i64::MAX),
    );
    w.kv_int(
        ATTRIBUTES,
        "mosn.bytes_sent",
        i64::try_from(f.bytes_sent).unwrap_or(i64::MAX),
    );
    if f.is_error() {
        let mut digits = itoa::Buffer::new();
        let kind = f.error_kind(&mut digits);
        w.kv_str(ATTRIBUTES, "error.type", &[kind]);
        let status = w.begin(STATUS, Size::Small);
        w.string(2, &[kind]);
        w.varint(3, StatusCode::Error as u64);
        w.end(status);
    }
    let mut flags =
        u32::from(crate::traceparent::FLAG_SAMPLED) | proto::SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE;
    if ctx.parent_span_id.is_some() {
        flags |= proto::SPAN_FLAGS_CONTEXT_IS_REMOTE;
    }
    w.fixed32(16, flags);
    w.end(span);
}

/// Host and port of an authority (`host`, `host:port`, `[v6]:port`).
pub(crate) fn split_authority(authority: &str) -> (&str, Option<u16>) {
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

//! OpenTelemetry: one SERVER span per request, exported over OTLP/gRPC (or to the
//! log).

pub(crate) mod proto;

use crate::export::grpc::{Destination, Encoded, GrpcTarget};
use crate::export::wire::{attr_key, Size, Wire};
use crate::local::Chunk;
use crate::record::{non_empty, Ctx, Field, Finished, Upstream};
use crate::TraceError;
use bytes::Bytes;
use mosn_config::tracing::{OtelSettings, Reporter};
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
    let end = f.end;
    let method = end.method;
    let (path, query) = split_query(end.path);
    let span = w.begin(SPANS, Size::Medium);
    w.bytes_field(1, &ctx.trace_id.to_be_bytes());
    w.bytes_field(2, &ctx.span_id.to_be_bytes());
    w.string(3, &[f.text.get(Field::TraceState)]);
    if let Some(parent) = ctx.parent_span_id {
        w.bytes_field(4, &parent.to_be_bytes());
    }
    // MOSN's span name: "<protocol> <method> <path>" (here without the query).
    match name_prefix(end.protocol, method) {
        Some(prefix) => w.string(5, &[prefix, path]),
        None => w.string(5, &[end.protocol, " ", method, " ", path]),
    }
    w.varint(6, SpanKind::Server as u64);
    w.fixed64(7, f.start_ns);
    w.fixed64(8, f.end_ns);

    w.attr_str(
        ATTRIBUTES,
        attr_key!("http.request.method"),
        method.as_bytes(),
    );
    w.attr_str(ATTRIBUTES, attr_key!("url.path"), path.as_bytes());
    if let Some(query) = query {
        w.attr_str(ATTRIBUTES, attr_key!("url.query"), query.as_bytes());
    }
    if end.status != 0 {
        let status = i64::from(end.status);
        w.attr_int(ATTRIBUTES, attr_key!("http.response.status_code"), status);
    }
    let (host, port) = split_authority(end.authority);
    if !host.is_empty() {
        w.attr_str(ATTRIBUTES, attr_key!("server.address"), host.as_bytes());
    }
    if let Some(port) = port {
        w.attr_int(ATTRIBUTES, attr_key!("server.port"), i64::from(port));
    }
    end.downstream_remote.with_ip_text(|ip| {
        w.attr_str(ATTRIBUTES, attr_key!("network.peer.address"), ip);
    });
    let peer_port = i64::from(end.downstream_remote.addr().port());
    w.attr_int(ATTRIBUTES, attr_key!("network.peer.port"), peer_port);
    let version = end.protocol.strip_prefix("HTTP/").unwrap_or(end.protocol);
    w.attr_str(
        ATTRIBUTES,
        attr_key!("network.protocol.version"),
        version.as_bytes(),
    );
    w.attr_str(
        ATTRIBUTES,
        attr_key!("mosn.listener"),
        end.listener.as_bytes(),
    );
    if let Some(route) = non_empty(end.route) {
        w.attr_str(ATTRIBUTES, attr_key!("mosn.route"), route.as_bytes());
    }
    if let Some(cluster) = non_empty(end.cluster) {
        w.attr_str(
            ATTRIBUTES,
            attr_key!("mosn.upstream.cluster"),
            cluster.as_bytes(),
        );
    }
    let upstream_key = attr_key!("mosn.upstream.host");
    match f.upstream() {
        Some(Upstream::Host(host)) => {
            host.with_text(|text| w.attr_str(ATTRIBUTES, upstream_key, text));
        }
        Some(Upstream::Peer(peer)) => w.attr_str(ATTRIBUTES, upstream_key, peer.as_bytes()),
        None => {}
    }
    if !end.response_flags.is_empty() {
        let flags = end.response_flags.as_bytes();
        w.attr_str(ATTRIBUTES, attr_key!("mosn.response_flags"), flags);
    }
    let received = i64::try_from(end.bytes_received).unwrap_or(i64::MAX);
    w.attr_int(ATTRIBUTES, attr_key!("mosn.bytes_received"), received);
    let sent = i64::try_from(end.bytes_sent).unwrap_or(i64::MAX);
    w.attr_int(ATTRIBUTES, attr_key!("mosn.bytes_sent"), sent);
    if f.is_error() {
        let mut digits = itoa::Buffer::new();
        let kind = f.error_kind(&mut digits);
        w.attr_str(ATTRIBUTES, attr_key!("error.type"), kind.as_bytes());
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

/// The span name's `"<protocol> <method> "` for the usual protocols and methods:
/// the name is then two appends, not five (an append is a capacity check and a
/// `memcpy` call, and this is written for every span).
fn name_prefix(protocol: &str, method: &str) -> Option<&'static str> {
    macro_rules! prefixes {
        ($($method:literal),*) => {
            match (protocol, method) {
                $(("HTTP/1.1", $method) => Some(concat!("HTTP/1.1 ", $method, " ")),)*
                $(("HTTP/2", $method) => Some(concat!("HTTP/2 ", $method, " ")),)*
                _ => None,
            }
        };
    }
    prefixes!("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
}

/// Path and query of a request target. A byte loop: paths are short, and
/// `split_once`'s searcher costs more to set up than the search.
fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.bytes().position(|b| b == b'?') {
        Some(at) => (target.get(..at).unwrap_or(target), target.get(at + 1..)),
        None => (target, None),
    }
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
    fn name_prefixes_are_protocol_method_space() {
        use super::name_prefix;
        for protocol in ["HTTP/1.1", "HTTP/2"] {
            for method in ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"] {
                let want = format!("{protocol} {method} ");
                assert_eq!(name_prefix(protocol, method), Some(want.as_str()));
            }
        }
        assert_eq!(name_prefix("HTTP/1.1", "PROPFIND"), None);
        assert_eq!(name_prefix("HTTP/1.0", "GET"), None);
        assert_eq!(name_prefix("HTTP/1.1", "get"), None);
    }

    #[test]
    fn queries_split() {
        use super::split_query;
        assert_eq!(split_query("/a/b?q=1&r"), ("/a/b", Some("q=1&r")));
        assert_eq!(split_query("/a?"), ("/a", Some("")));
        assert_eq!(split_query("/a"), ("/a", None));
        assert_eq!(split_query("/é?x=ü"), ("/é", Some("x=ü")));
    }

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

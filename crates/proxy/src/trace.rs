//! Tracing of proxied HTTP requests; crates/trace does the drivers' work. A span
//! starts with the request (continuing the client's context when it sent one), its
//! context headers replace the client's on every upstream try, and it ends with the
//! request's record (the access log [`Entry`]), which a traced request always has.

use crate::access_log::{flags, Entry};
use mosn_trace::{Span, SpanEnd, UpstreamHeaders};

/// The trace context of one upstream try.
pub struct UpstreamContext {
    /// Header names the span owns: dropped from the client's request.
    pub owned: &'static [&'static str],
    /// The span's own context headers, sent instead.
    pub add: UpstreamHeaders,
}

impl UpstreamContext {
    /// The context for a try to `peer`.
    pub fn for_try(span: &mut Span, peer: std::net::SocketAddr) -> UpstreamContext {
        UpstreamContext {
            owned: span.owned_headers(),
            add: span.upstream_headers(peer),
        }
    }

    /// Is `name` one the span replaces?
    pub fn owns(&self, name: &[u8]) -> bool {
        self.owned
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(name))
    }

    /// Replaces the client's context headers in an HTTP/2 request's headers.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in self.owned {
            headers.remove(*name);
        }
        for (name, value) in self.add.iter() {
            if let Ok(v) = http::HeaderValue::from_bytes(value) {
                headers.insert(name, v);
            }
        }
    }
}

/// What the request was, for its span's end.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// Path and query (the span's name and `url.path` drop the query; OTLP's
    /// `url.query` and SkyWalking's `url` tag keep it).
    pub path: &'a str,
    pub authority: &'a str,
    pub protocol: &'static str,
    pub listener: &'a str,
}

/// Ends a span with what the request's record says (its end, too: mark it with
/// [`Entry::end`] first).
pub fn finish(span: Span, e: &Entry, request: &RequestFacts<'_>) {
    let response_flags = flags::text(e.flags);
    span.finish(&SpanEnd {
        method: request.method,
        path: request.path,
        authority: request.authority,
        protocol: request.protocol,
        listener: request.listener,
        route: None,
        cluster: e.upstream_cluster.as_deref(),
        upstream_host: e.upstream_host,
        status: e.response_code,
        response_flags: &response_flags,
        downstream_remote: e.downstream_remote,
        bytes_received: e.bytes_received,
        bytes_sent: e.bytes_sent,
        duration: Some(e.duration()),
    });
}

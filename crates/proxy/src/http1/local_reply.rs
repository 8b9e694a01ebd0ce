//! Answers the proxy writes itself: no route, no upstream, timeouts, bad requests.

use mosn_observe::ListenerStats;
use mosn_protocol::http1::{reason_phrase, HeadWriter};

/// Why the proxy answered instead of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReply {
    BadRequest(u16, &'static str),
    RequestTimeout,
    NoRoute,
    NoHealthyUpstream,
    ConnectFailure,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamProtocolError,
    /// A circuit breaker of the cluster is open.
    Overflow,
}

impl LocalReply {
    /// The access log's response flag for this answer.
    pub fn flag(&self) -> u16 {
        use crate::access_log::flags;
        match self {
            LocalReply::BadRequest(..) | LocalReply::RequestTimeout => flags::BAD_REQUEST,
            LocalReply::NoRoute => flags::NO_ROUTE,
            LocalReply::NoHealthyUpstream => flags::NO_HEALTHY_UPSTREAM,
            LocalReply::ConnectFailure => flags::CONNECT_FAILURE,
            LocalReply::UpstreamReset | LocalReply::UpstreamProtocolError => flags::UPSTREAM_RESET,
            LocalReply::UpstreamTimeout => flags::UPSTREAM_TIMEOUT,
            LocalReply::Overflow => flags::OVERFLOW,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            LocalReply::BadRequest(status, _) => *status,
            LocalReply::RequestTimeout => 408,
            LocalReply::NoRoute => 404,
            LocalReply::NoHealthyUpstream | LocalReply::ConnectFailure | LocalReply::Overflow => {
                503
            }
            LocalReply::UpstreamReset | LocalReply::UpstreamProtocolError => 502,
            LocalReply::UpstreamTimeout => 504,
        }
    }

    /// Counts the reply under its cause.
    pub fn count(&self, stats: &ListenerStats) {
        let counter = match self {
            LocalReply::BadRequest(..) => &stats.downstream_bad_request,
            LocalReply::RequestTimeout => &stats.downstream_request_timeout,
            LocalReply::NoRoute => &stats.no_route,
            LocalReply::NoHealthyUpstream => &stats.no_healthy_upstream,
            LocalReply::ConnectFailure => &stats.upstream_connect_failure,
            LocalReply::UpstreamReset | LocalReply::UpstreamProtocolError => &stats.upstream_reset,
            LocalReply::UpstreamTimeout => &stats.upstream_timeout,
            LocalReply::Overflow => &stats.upstream_overflow,
        };
        counter.inc();
    }

    /// A short body saying what happened, without internal detail.
    pub fn body(&self) -> &'static str {
        match self {
            LocalReply::BadRequest(_, reason) => reason,
            LocalReply::RequestTimeout => "request timeout",
            LocalReply::NoRoute => "no route for this request",
            LocalReply::NoHealthyUpstream => "no healthy upstream",
            LocalReply::ConnectFailure => "upstream connect failure",
            LocalReply::UpstreamReset => "upstream reset before response",
            LocalReply::UpstreamTimeout => "upstream request timeout",
            LocalReply::UpstreamProtocolError => "upstream sent a malformed response",
            LocalReply::Overflow => "upstream overflow: circuit breaker open",
        }
    }
}

/// Writes a complete response with a text body into `out`.
pub fn render(out: &mut Vec<u8>, status: u16, body: &[u8], close: bool, head_only: bool) {
    render_with(out, status, &[], body, close, head_only)
}

/// Like [`render`], with extra header fields (a redirect's Location, route headers).
pub fn render_with(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(&[u8], &[u8])],
    body: &[u8],
    close: bool,
    head_only: bool,
) {
    let mut w = HeadWriter::new(out);
    w.status_line(status, reason_phrase(status).as_bytes());
    for (name, value) in extra {
        w.header(name, value);
    }
    if !body.is_empty() {
        w.header(b"Content-Type", b"text/plain");
    }
    w.content_length(body.len() as u64);
    if close {
        w.header(b"Connection", b"close");
    }
    w.finish();
    if !head_only {
        out.extend_from_slice(body);
    }
}

//! What a finished request leaves for the exporter: its trace context and the facts
//! of `SpanEnd`, owned. Strings are packed into one buffer so `finish` allocates once
//! for them; encoding happens on the exporter thread.

use crate::sw8::Sw8;
use crate::SpanEnd;
use std::net::SocketAddr;

/// The trace context of one request, per driver.
#[derive(Debug)]
pub(crate) enum Ctx {
    SkyWalking(SkyCtx),
    Otel(OtelCtx),
}

#[derive(Debug)]
pub(crate) struct SkyCtx {
    /// The incoming trace id, or a new one.
    pub trace_id: String,
    pub segment_id: String,
    /// The incoming context, when there was a valid one.
    pub parent: Option<Box<Sw8>>,
    /// Our entry endpoint (the request path without its query), sent in sw8.
    pub endpoint: String,
}

#[derive(Debug)]
pub(crate) struct OtelCtx {
    pub trace_id: u128,
    pub span_id: u64,
    /// The incoming parent span, when there was a valid traceparent.
    pub parent_span_id: Option<u64>,
    /// The incoming tracestate, passed on unchanged.
    pub tracestate: Option<String>,
}

/// The last upstream attempt: where it went and when.
#[derive(Debug)]
pub(crate) struct Exit {
    pub peer: String,
    pub start_ns: u64,
}

/// The text fields of `SpanEnd`, in this order, in one buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    Method,
    Path,
    Authority,
    Listener,
    Route,
    Cluster,
    Flags,
}

const FIELDS: usize = 7;

#[derive(Debug)]
pub(crate) struct Texts {
    buf: String,
    ends: [usize; FIELDS],
}

impl Texts {
    fn new(parts: [&str; FIELDS]) -> Self {
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; FIELDS];
        for (end, part) in ends.iter_mut().zip(parts) {
            buf.push_str(part);
            *end = buf.len();
        }
        Texts { buf, ends }
    }

    pub fn get(&self, field: Field) -> &str {
        let i = field as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// The field, None when empty (route and cluster are optional).
    pub fn opt(&self, field: Field) -> Option<&str> {
        Some(self.get(field)).filter(|s| !s.is_empty())
    }
}

/// One finished request.
#[derive(Debug)]
pub(crate) struct Finished {
    pub ctx: Ctx,
    pub start_ns: u64,
    pub end_ns: u64,
    pub exit: Option<Exit>,
    pub text: Texts,
    pub protocol: &'static str,
    pub upstream_host: Option<SocketAddr>,
    pub status: u16,
    pub downstream_remote: SocketAddr,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

impl Finished {
    pub fn new(
        ctx: Ctx,
        start_ns: u64,
        end_ns: u64,
        exit: Option<Exit>,
        end: &SpanEnd<'_>,
    ) -> Self {
        Finished {
            ctx,
            start_ns,
            end_ns,
            exit,
            text: Texts::new([
                end.method,
                end.path,
                end.authority,
                end.listener,
                end.route.unwrap_or(""),
                end.cluster.unwrap_or(""),
                end.response_flags,
            ]),
            protocol: end.protocol,
            upstream_host: end.upstream_host,
            status: end.status,
            downstream_remote: end.downstream_remote,
            bytes_received: end.bytes_received,
            bytes_sent: end.bytes_sent,
        }
    }

    /// The error flag: a 5xx, no response at all, or any response flag.
    pub fn is_error(&self) -> bool {
        self.status >= 500 || self.status == 0 || !self.text.get(Field::Flags).is_empty()
    }

    /// Why the request is an error, for logs and status messages.
    pub fn error_kind(&self) -> String {
        let flags = self.text.get(Field::Flags);
        if !flags.is_empty() {
            flags.to_string()
        } else if self.status == 0 {
            "no response".to_string()
        } else {
            self.status.to_string()
        }
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        path_only(self.text.get(Field::Path))
    }

    /// Where the request went upstream: the host that answered, else the last peer
    /// tried.
    pub fn upstream(&self) -> Option<String> {
        self.upstream_host
            .map(|a| a.to_string())
            .or_else(|| self.exit.as_ref().map(|e| e.peer.clone()))
    }
}

/// The path of a request target, without the query.
pub(crate) fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

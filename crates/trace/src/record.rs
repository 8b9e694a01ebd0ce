//! What a span carries from `start` to its encoding at `finish`: its trace context
//! (ids as integers, formatted only when a header or an export needs them) and its
//! own text fields, packed into one buffer. A span allocates its buffer once, at
//! `start`, sized for a typical request; `upstream_headers` appends the peer to it.
//! The request's text at `finish` is read where the proxy has it (`SpanEnd`), not
//! copied.

use crate::{SpanEnd, TextedAddr};
use std::net::SocketAddr;

/// The trace context of one request, per driver.
#[derive(Debug)]
pub(crate) enum Ctx {
    SkyWalking(SkyCtx),
    Otel(OtelCtx),
}

#[derive(Debug)]
pub(crate) struct SkyCtx {
    /// A new trace's id; None when the incoming one is continued (its text, which
    /// need not be hex, is `Field::TraceId`).
    pub new_trace_id: Option<u128>,
    pub segment_id: u128,
    /// The incoming context's span id, when there was a valid `sw8`; its other
    /// fields are the `Field::Parent*` texts.
    pub parent_span_id: Option<i32>,
}

#[derive(Debug)]
pub(crate) struct OtelCtx {
    pub trace_id: u128,
    pub span_id: u64,
    /// The incoming parent span, when there was a valid traceparent (the incoming
    /// tracestate, passed on unchanged, is `Field::TraceState`).
    pub parent_span_id: Option<u64>,
}

/// The text fields of a span, in the order they are filled: the context's at
/// `start`, the upstream peer at each `upstream_headers` (a retry rewrites it, which
/// works because it is the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Field {
    /// SkyWalking, from the incoming sw8.
    TraceId,
    ParentSegment,
    ParentService,
    ParentInstance,
    ParentEndpoint,
    ParentAddress,
    /// SkyWalking: our entry endpoint (the request path without its query), sent
    /// in sw8.
    Endpoint,
    /// OpenTelemetry: the incoming tracestate (empty: none).
    TraceState,
    /// The last upstream tried.
    Peer,
}

const FIELDS: usize = Field::Peer as usize + 1;

/// Room for what `upstream_headers` appends later (the peer: an address's text is
/// at most 58 bytes), so that a span's text is one allocation.
const LATER_TEXT: usize = 64;

/// Text fields in one buffer. Offsets are u32 (a span lives in every traced
/// request's record, so it is kept small); text beyond 4 GiB could never come
/// through the proxy and would be left out rather than wrap.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    buf: String,
    ends: [u32; FIELDS],
    /// Fields set so far: later ones read as empty.
    filled: u8,
}

impl Texts {
    /// Makes room for `known` bytes now and a request's usual fields later: the
    /// span's one allocation, when the guess holds.
    pub fn reserve(&mut self, known: usize) {
        self.buf.reserve(known + LATER_TEXT);
    }

    /// Where `field` starts (fields before it that were never set are empty).
    fn start_of(&self, field: Field) -> usize {
        let i = (field as usize).min(usize::from(self.filled));
        if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize
        }
    }

    /// Sets `field` to `text`. Fields are set in order: setting one drops any later
    /// ones already set (the peer is rewritten this way) and leaves skipped ones empty.
    pub fn set(&mut self, field: Field, text: &str) {
        self.open(field);
        self.push_str(text);
        self.seal(field);
    }

    /// Sets `field` to what `write` appends to the buffer.
    pub fn set_with(&mut self, field: Field, write: impl FnOnce(&mut String)) {
        self.open(field);
        let start = self.buf.len();
        write(&mut self.buf);
        if u32::try_from(self.buf.len()).is_err() {
            self.buf.truncate(start);
        }
        self.seal(field);
    }

    /// Starts `field` for text appended with `push_str`, then `seal`: drops what
    /// was set from `field` on, and makes the skipped fields before it empty.
    fn open(&mut self, field: Field) {
        let i = field as usize;
        let start = self.start_of(field);
        self.buf.truncate(start);
        let from = usize::from(self.filled).min(i);
        for e in &mut self.ends[from..i] {
            *e = start as u32;
        }
        self.filled = i as u8;
    }

    /// Ends `field` (opened with `open`) where the buffer ends now.
    fn seal(&mut self, field: Field) {
        let i = field as usize;
        self.ends[i] = self.buf.len() as u32;
        self.filled = i as u8 + 1;
    }

    fn push_str(&mut self, text: &str) {
        if u32::try_from(self.buf.len() + text.len()).is_ok() {
            self.buf.push_str(text);
        }
    }

    pub fn get(&self, field: Field) -> &str {
        let i = field as usize;
        if i >= usize::from(self.filled) {
            return "";
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf.get(start..self.ends[i] as usize).unwrap_or("")
    }

    /// The field, None when empty (route and cluster are optional).
    pub fn opt(&self, field: Field) -> Option<&str> {
        Some(self.get(field)).filter(|s| !s.is_empty())
    }

    /// Sets the SkyWalking parent fields from an incoming sw8 (the first fields, so
    /// before any other); None, and nothing set, when it is malformed.
    pub fn set_sw8_parent(&mut self, value: &[u8]) -> Option<crate::sw8::Head> {
        let mut field = Field::TraceId;
        let head = crate::sw8::parse_with(value, |text| {
            self.set(field, text);
            field = next_parent_field(field);
        });
        if head.is_none() {
            self.buf.clear();
            self.filled = 0;
        }
        head
    }
}

/// The order in which sw8 hands over its text fields.
fn next_parent_field(f: Field) -> Field {
    match f {
        Field::TraceId => Field::ParentSegment,
        Field::ParentSegment => Field::ParentService,
        Field::ParentService => Field::ParentInstance,
        Field::ParentInstance => Field::ParentEndpoint,
        _ => Field::ParentAddress,
    }
}

/// One finished request: the span's own record, and what the proxy said at its end
/// (borrowed: the encoders read the request's text where it already is).
#[derive(Debug)]
pub(crate) struct Finished<'e> {
    pub ctx: Ctx,
    pub text: Texts,
    pub start_ns: u64,
    pub end_ns: u64,
    /// When the last upstream try began (SkyWalking's exit span; OpenTelemetry,
    /// which never reads it, records the span's start); None when no try was made.
    pub exit_start_ns: Option<u64>,
    /// The last try's peer when it was an address whose text was not needed yet
    /// (OpenTelemetry); None: its text is `Field::Peer`.
    pub exit_addr: Option<SocketAddr>,
    pub end: &'e SpanEnd<'e>,
}

impl Finished<'_> {
    /// The error flag: a 5xx, no response at all, or any response flag.
    pub fn is_error(&self) -> bool {
        self.end.status >= 500 || self.end.status == 0 || !self.end.response_flags.is_empty()
    }

    /// Why the request is an error, for logs and status messages; `digits` holds
    /// the status code's text when that is the reason.
    pub fn error_kind<'a>(&'a self, digits: &'a mut itoa::Buffer) -> &'a str {
        let flags = self.end.response_flags;
        if !flags.is_empty() {
            flags
        } else if self.end.status == 0 {
            "no response"
        } else {
            digits.format(self.end.status)
        }
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        path_only(self.end.path)
    }

    /// The last upstream peer tried, when there was a try.
    pub fn exit_peer(&self) -> Option<Upstream<'_>> {
        self.exit_start_ns?;
        Some(match self.exit_addr {
            Some(addr) => Upstream::Host(addr.into()),
            None => Upstream::Peer(self.text.get(Field::Peer)),
        })
    }

    /// Where the request went upstream: the host that answered, else the last peer
    /// tried.
    pub fn upstream(&self) -> Option<Upstream<'_>> {
        match self.end.upstream_host {
            Some(host) => Some(Upstream::Host(host)),
            None => self.exit_peer(),
        }
    }
}

/// The end's optional text: None when empty (route, cluster).
pub(crate) fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|s| !s.is_empty())
}

/// An upstream as text, written where it is needed instead of into its own String.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Upstream<'a> {
    Host(TextedAddr),
    Peer(&'a str),
}

impl std::fmt::Display for Upstream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Host(host) => host.fmt(f),
            Upstream::Peer(peer) => f.write_str(peer),
        }
    }
}

/// The path of a request target, without the query.
pub(crate) fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_set_in_order_and_the_peer_is_rewritten() {
        let mut t = Texts::default();
        t.reserve(0);
        t.set(Field::Endpoint, "/a");
        t.set(Field::Peer, "10.0.0.1:80");
        assert_eq!(t.get(Field::TraceId), "");
        assert_eq!(t.get(Field::TraceState), "");
        assert_eq!(t.get(Field::Peer), "10.0.0.1:80");
        t.set(Field::Peer, "p:1");
        assert_eq!(t.get(Field::Peer), "p:1");
        assert_eq!(t.get(Field::Endpoint), "/a");
        assert_eq!(t.opt(Field::TraceState), None);
    }

    #[test]
    fn sw8_parents_are_set_whole_or_not_at_all() {
        let mut t = Texts::default();
        assert!(t
            .set_sw8_parent(b"1-YQ==-Yg==-0-Yw==-ZA==-!!!-Zg==")
            .is_none());
        assert_eq!(t.get(Field::TraceId), "");
        assert_eq!(t.get(Field::ParentService), "");
        let head = t
            .set_sw8_parent(b"1-YQ==-Yg==-4-Yw==-ZA==-ZQ==-Zg==")
            .expect("valid");
        assert_eq!((head.sampled, head.span_id), (true, 4));
        t.set(Field::Endpoint, "/a");
        let got: Vec<&str> = [
            Field::TraceId,
            Field::ParentSegment,
            Field::ParentService,
            Field::ParentInstance,
            Field::ParentEndpoint,
            Field::ParentAddress,
            Field::Endpoint,
        ]
        .into_iter()
        .map(|f| t.get(f))
        .collect();
        assert_eq!(got, ["a", "b", "c", "d", "e", "f", "/a"]);
    }
}

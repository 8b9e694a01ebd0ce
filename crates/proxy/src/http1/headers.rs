//! Writing the heads a proxy sends on: the upstream request and the downstream
//! response, with hop-by-hop fields dropped (RFC 9110 §7.6.1), route header
//! mutations applied, and framing chosen for the next hop.

use crate::xfcc::Action;
use mosn_protocol::http1::{HeadWriter, RequestHead, ResponseHead};
use mosn_router::{HeaderAdd, RequestView};

const XFCC: &[u8] = crate::xfcc::HEADER.as_bytes();

/// Lets the router read a parsed request head (and the client's address).
pub struct RouterView<'a>(pub &'a RequestHead, pub std::net::IpAddr);

impl RequestView for RouterView<'_> {
    fn method(&self) -> &[u8] {
        self.0.method()
    }
    fn query(&self) -> &[u8] {
        let pq = self.0.path_and_query();
        match memchr::memchr(b'?', pq) {
            Some(i) => &pq[i + 1..],
            None => b"",
        }
    }
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        Some(self.1)
    }
    fn host(&self) -> &[u8] {
        self.0.host()
    }
    fn path(&self) -> &[u8] {
        self.0.path()
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        match lower_name {
            ":method" => Some(self.0.method()),
            ":path" => Some(self.0.path_and_query()),
            ":authority" => Some(self.0.host()),
            name => self.0.header(name),
        }
    }
}

/// Is `name` removed, or replaced by a non-appending add?
fn is_overridden(name: &[u8], remove: &[String], add: &[HeaderAdd]) -> bool {
    remove
        .iter()
        .any(|r| r.as_bytes().eq_ignore_ascii_case(name))
        || add
            .iter()
            .any(|a| !a.append && a.lower_name.as_bytes().eq_ignore_ascii_case(name))
}

fn write_adds(w: &mut HeadWriter<'_>, add: &[HeaderAdd]) {
    for a in add {
        w.header(a.name.as_bytes(), a.value.as_bytes());
    }
}

/// What the upstream request head needs beyond the downstream head.
pub struct UpstreamRequest<'a> {
    /// The path and query to send (a route's rewrite), else the request's own.
    pub target: Option<&'a [u8]>,
    /// The Host to send (a route's host rewrite), else the request's own.
    pub host: Option<&'a [u8]>,
    pub remove: &'a [String],
    pub add: &'a [HeaderAdd],
    /// The client's address for X-Forwarded-For, when that is on.
    pub forwarded_for: Option<&'a str>,
    /// Drop `Expect: 100-continue` (the proxy answered it itself).
    pub drop_expect: bool,
    /// Host to send when the request carried none (HTTP/1.0).
    pub fallback_host: &'a str,
    /// An upgrade to pass on (`Upgrade: websocket`): Connection and Upgrade are kept.
    pub upgrade: Option<&'a [u8]>,
    /// What happens to X-Forwarded-Client-Cert.
    pub xfcc: crate::xfcc::Action<'a>,
    /// A traced request's context headers, in place of the client's.
    pub trace: Option<&'a crate::trace::UpstreamContext>,
}

pub fn write_upstream_request(out: &mut Vec<u8>, head: &RequestHead, up: &UpstreamRequest<'_>) {
    let mut w = HeadWriter::new(out);
    w.request_line(head.method(), up.target.unwrap_or(head.path_and_query()));
    let mut saw_host = false;
    let mut xff: Option<&[u8]> = None;
    let mut xff_extra = Vec::new();
    let mut xfcc_prior: Vec<&[u8]> = Vec::new();
    for h in &head.headers {
        let name = head.name(h);
        if head.is_hop_header(h) || is_overridden(name, up.remove, up.add) {
            continue;
        }
        if up.trace.is_some_and(|t| t.owns(name)) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            saw_host = true;
            // An absolute-form target names the authority; Host must agree with it.
            w.header(name, up.host.unwrap_or(head.host()));
            continue;
        }
        if head.info.chunked && name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        if up.drop_expect && name.eq_ignore_ascii_case(b"expect") {
            continue;
        }
        if name.len() == XFCC.len() && name.eq_ignore_ascii_case(XFCC) {
            match up.xfcc {
                Action::Keep => w.header(name, head.value(h)),
                Action::Append(_) => xfcc_prior.push(head.value(h)),
                Action::Remove | Action::Set(_) => {}
            }
            continue;
        }
        if up.forwarded_for.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // Several X-Forwarded-For lines merge into one list, in order.
            match xff {
                None => xff = Some(head.value(h)),
                Some(_) => xff_extra.push(head.value(h)),
            }
            continue;
        }
        w.header(name, head.value(h));
    }
    if !saw_host {
        w.header(b"Host", up.host.unwrap_or(up.fallback_host.as_bytes()));
    }
    write_adds(&mut w, up.add);
    if let Some(trace) = up.trace {
        for (name, value) in trace.add.iter() {
            w.header(name.as_bytes(), value);
        }
    }
    match up.xfcc {
        Action::Set(element) => w.header(XFCC, element.as_bytes()),
        Action::Append(element) => {
            let mut value = xfcc_prior.join(&b","[..]);
            if !value.is_empty() {
                value.push(b',');
            }
            value.extend_from_slice(element.as_bytes());
            w.header(XFCC, &value);
        }
        Action::Keep | Action::Remove => {}
    }
    if let Some(client) = up.forwarded_for {
        let mut value = Vec::with_capacity(64);
        for prior in xff.into_iter().chain(xff_extra) {
            value.extend_from_slice(prior);
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(client.as_bytes());
        w.header(b"X-Forwarded-For", &value);
    }
    if head.info.chunked {
        w.header(b"Transfer-Encoding", b"chunked");
    }
    if let Some(protocol) = up.upgrade {
        w.header(b"Connection", b"Upgrade");
        w.header(b"Upgrade", protocol);
    }
    w.finish();
}

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamBody {
    /// As framed by upstream (none, or Content-Length passed through).
    AsIs,
    /// Re-chunked for an HTTP/1.1 client (upstream chunked or close-delimited).
    Chunked,
    /// Raw bytes, then close (HTTP/1.0 client without a length).
    UntilClose,
}

pub struct DownstreamResponse<'a> {
    pub remove: &'a [String],
    pub add: &'a [HeaderAdd],
    pub body: DownstreamBody,
    /// Close the client connection after this response.
    pub close: bool,
    /// The client is HTTP/1.0 and asked for keep-alive.
    pub keep_alive_10: bool,
}

pub fn write_downstream_response(
    out: &mut Vec<u8>,
    head: &ResponseHead,
    down: &DownstreamResponse<'_>,
) {
    let mut w = HeadWriter::new(out);
    w.status_line(head.status, head.reason());
    for h in &head.headers {
        let name = head.name(h);
        if head.is_hop_header(h) || is_overridden(name, down.remove, down.add) {
            continue;
        }
        if down.body != DownstreamBody::AsIs && name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        w.header(name, head.value(h));
    }
    write_adds(&mut w, down.add);
    if down.body == DownstreamBody::Chunked {
        w.header(b"Transfer-Encoding", b"chunked");
    }
    if down.close {
        w.header(b"Connection", b"close");
    } else if down.keep_alive_10 {
        w.header(b"Connection", b"keep-alive");
    }
    w.finish();
}

/// A 101 Switching Protocols relayed to the client: hop-by-hop fields dropped, the
/// upgrade restated.
pub fn write_switching(out: &mut Vec<u8>, head: &ResponseHead, protocol: &[u8]) {
    let mut w = HeadWriter::new(out);
    w.status_line(101, head.reason());
    for h in &head.headers {
        if !head.is_hop_header(h) {
            w.header(head.name(h), head.value(h));
        }
    }
    w.header(b"Connection", b"Upgrade");
    w.header(b"Upgrade", protocol);
    w.finish();
}

/// An interim (1xx) response relayed to the client, hop-by-hop fields dropped.
pub fn write_interim(out: &mut Vec<u8>, head: &ResponseHead) {
    let mut w = HeadWriter::new(out);
    w.status_line(head.status, head.reason());
    for h in &head.headers {
        if !head.is_hop_header(h) {
            w.header(head.name(h), head.value(h));
        }
    }
    w.finish();
}

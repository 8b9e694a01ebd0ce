//! Parsing and checking of HTTP/1.x message heads.
//!
//! A head is kept as the bytes it arrived in plus spans into them: nothing is copied
//! into a header map, and forwarding writes the original bytes back out.

use bytes::{Bytes, BytesMut};

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A byte range within a head's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// One header field: spans of its name and value within the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderField {
    pub name: Span,
    pub value: Span,
}

/// Limits applied while a head is read.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line (requests only).
    pub max_line: usize,
    /// Largest head in bytes.
    pub max_head: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Accept Content-Length beside Transfer-Encoding: chunked, dropping the length.
    pub allow_chunked_length: bool,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_line: 8 * 1024,
            max_head: 60 * 1024,
            max_headers: 100,
            allow_chunked_length: false,
        }
    }
}

/// Why a head was refused, with the status a server answers it with (a proxy answers
/// a bad upstream head with 502 instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ParseError {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> ParseError {
    ParseError {
        status: 400,
        reason,
    }
}

/// What a head's headers say about framing and the connection.
#[derive(Debug, Clone, Default)]
pub struct HeadInfo {
    pub content_length: Option<u64>,
    /// Transfer-Encoding present (with its last coding in `chunked`).
    pub has_transfer_encoding: bool,
    pub chunked: bool,
    pub connection_close: bool,
    pub connection_keep_alive: bool,
    /// Header names listed in Connection, which are hop-by-hop for this message.
    pub connection_tokens: Vec<Span>,
    /// Connection lists `upgrade` (RFC 9110 §7.8).
    pub connection_upgrade: bool,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub buf: Bytes,
    method: Span,
    target: Span,
    /// Where the path starts inside the target (after the authority of an absolute-form).
    path: Span,
    authority: Option<Span>,
    pub version: Version,
    pub headers: Vec<HeaderField>,
    host: Option<Span>,
    pub info: HeadInfo,
    pub expect_continue: bool,
}

impl RequestHead {
    pub fn method(&self) -> &[u8] {
        self.method.get(&self.buf)
    }
    /// The request target as received.
    pub fn target(&self) -> &[u8] {
        self.target.get(&self.buf)
    }
    /// Path and query in origin-form (an absolute-form target loses scheme and authority).
    pub fn path_and_query(&self) -> &[u8] {
        match self.path.get(&self.buf) {
            b"" => b"/",
            pq => pq,
        }
    }
    /// [`RequestHead::method`] and [`RequestHead::path_and_query`] as text, with one
    /// UTF-8 check of the bytes from the method's start to the path's end (the parser
    /// let only a token and visible ASCII through; the check never fails on a parsed
    /// head, and then gives empty texts).
    pub fn method_and_path_text(&self) -> (&str, &str) {
        let (from, to) = (self.method.start as usize, self.path.end as usize);
        let line = self
            .buf
            .get(from..to.max(from))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("");
        let method = line
            .get(..(self.method.end as usize).saturating_sub(from))
            .unwrap_or("");
        let path = match line.get((self.path.start as usize).saturating_sub(from)..) {
            Some("") | None => "/",
            Some(path) => path,
        };
        (method, path)
    }
    /// The path without its query.
    pub fn path(&self) -> &[u8] {
        let pq = self.path_and_query();
        match memchr::memchr(b'?', pq) {
            Some(i) => &pq[..i],
            None => pq,
        }
    }
    /// The authority the request is for: an absolute-form target's, else Host's.
    pub fn host(&self) -> &[u8] {
        match (self.authority, self.host) {
            (Some(a), _) => a.get(&self.buf),
            (None, Some(h)) => h.get(&self.buf),
            (None, None) => b"",
        }
    }
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }
    pub fn is_connect(&self) -> bool {
        self.method() == b"CONNECT"
    }
    pub fn name(&self, h: &HeaderField) -> &[u8] {
        h.name.get(&self.buf)
    }
    pub fn value(&self, h: &HeaderField) -> &[u8] {
        h.value.get(&self.buf)
    }
    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_lookup(&self.buf, &self.headers, name)
    }
    /// Should the connection stay open after this exchange, as far as the client said?
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.info.connection_close,
            Version::Http10 => self.info.connection_keep_alive && !self.info.connection_close,
        }
    }
    /// Is this header hop-by-hop for this message (fixed list or named in Connection)?
    pub fn is_hop_header(&self, h: &HeaderField) -> bool {
        is_hop(&self.buf, &self.info, h)
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub buf: Bytes,
    pub status: u16,
    reason: Span,
    pub version: Version,
    pub headers: Vec<HeaderField>,
    pub info: HeadInfo,
}

impl ResponseHead {
    pub fn reason(&self) -> &[u8] {
        self.reason.get(&self.buf)
    }
    pub fn name(&self, h: &HeaderField) -> &[u8] {
        h.name.get(&self.buf)
    }
    pub fn value(&self, h: &HeaderField) -> &[u8] {
        h.value.get(&self.buf)
    }
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_lookup(&self.buf, &self.headers, name)
    }
    pub fn is_hop_header(&self, h: &HeaderField) -> bool {
        is_hop(&self.buf, &self.info, h)
    }
    /// May the connection carry another exchange after this response?
    pub fn allows_reuse(&self) -> bool {
        match self.version {
            Version::Http11 => !self.info.connection_close,
            Version::Http10 => self.info.connection_keep_alive && !self.info.connection_close,
        }
    }
}

fn header_lookup<'a>(buf: &'a [u8], headers: &[HeaderField], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.get(buf))
}

fn is_hop(buf: &[u8], info: &HeadInfo, h: &HeaderField) -> bool {
    let name = h.name.get(buf);
    super::is_hop_by_hop(name)
        || info
            .connection_tokens
            .iter()
            .any(|t| t.get(buf).eq_ignore_ascii_case(name))
}

/// Fixed-size header array on the stack for the common case; more headers spill to
/// the heap.
const STACK_HEADERS: usize = 128;

/// `max` header slots: on the stack for the common limit, on the heap above it.
fn header_slots<'s, 'b>(
    stack: &'s mut [httparse::Header<'b>; STACK_HEADERS],
    heap: &'s mut Vec<httparse::Header<'b>>,
    max: usize,
) -> &'s mut [httparse::Header<'b>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize(max, httparse::EMPTY_HEADER);
        heap
    }
}

/// Parses a request head from the front of `buf`. `Ok(None)`: more bytes needed.
/// On success the head's bytes are split off `buf`.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, ParseError> {
    check_request_line_length(buf, limits.max_line)?;
    let (mut stack, mut heap) = ([httparse::EMPTY_HEADER; STACK_HEADERS], Vec::new());
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head {
                return Err(ParseError {
                    status: 431,
                    reason: "request header section too large",
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ParseError {
                status: 431,
                reason: "too many request headers",
            })
        }
        Err(httparse::Error::Version) => return Err(bad("malformed HTTP version")),
        Err(httparse::Error::Token) => return Err(bad("malformed request line")),
        Err(httparse::Error::HeaderName) => return Err(bad("malformed header name")),
        Err(httparse::Error::HeaderValue) => return Err(bad("malformed header value")),
        Err(_) => return Err(bad("malformed request head")),
    };
    if len > limits.max_head {
        return Err(ParseError {
            status: 431,
            reason: "request header section too large",
        });
    }
    let base: &[u8] = buf;
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("").as_bytes();
    let version = if req.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    check_target(target, method)?;
    let (authority, path) = split_absolute_form(target)?;
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut host = None;
    let mut host_count = 0;
    let mut expect_continue = false;
    let mut info = HeadInfo::default();
    let mut te = TeState::default();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        check_field_value(value)?;
        headers.push(HeaderField {
            name: Span::of(base, name),
            value: Span::of(base, value),
        });
        if name.eq_ignore_ascii_case(b"host") {
            host_count += 1;
            host = Some(Span::of(base, value));
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else {
            read_framing_header(base, name, value, &mut info, &mut te, 400)?;
        }
    }
    if host_count > 1 {
        return Err(bad("duplicate Host header"));
    }
    if host_count == 0 && version == Version::Http11 {
        return Err(bad("missing Host header"));
    }
    if info.has_transfer_encoding {
        if version == Version::Http10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        te.finish(&mut info, 400)?;
        if info.content_length.is_some() {
            if !limits.allow_chunked_length {
                return Err(bad("both Content-Length and Transfer-Encoding"));
            }
            info.content_length = None;
        }
    }
    if method == "CONNECT"
        && (info.has_transfer_encoding || info.content_length.is_some_and(|n| n > 0))
    {
        return Err(bad("CONNECT with a body"));
    }
    let method = Span::of(base, method.as_bytes());
    let target_span = Span::of(base, target);
    let path = Span::of(base, path);
    let authority = authority.map(|a| Span::of(base, a));
    let head = buf.split_to(len).freeze();
    Ok(Some(RequestHead {
        buf: head,
        method,
        target: target_span,
        path,
        authority,
        version,
        headers,
        host,
        info,
        expect_continue,
    }))
}

/// Parses a response head from the front of `buf`; errors carry status 502.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<ResponseHead>, ParseError> {
    let upstream = |reason| ParseError {
        status: 502,
        reason,
    };
    let (mut stack, mut heap) = ([httparse::EMPTY_HEADER; STACK_HEADERS], Vec::new());
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut res = httparse::Response::new(slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head {
                return Err(upstream("upstream response head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(upstream("too many upstream response headers"))
        }
        Err(_) => return Err(upstream("malformed upstream response head")),
    };
    if len > limits.max_head {
        return Err(upstream("upstream response head too large"));
    }
    let base: &[u8] = buf;
    let status = res.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(upstream("upstream status code out of range"));
    }
    let version = if res.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    let reason = Span::of(base, res.reason.unwrap_or("").as_bytes());
    let mut headers = Vec::with_capacity(res.headers.len());
    let mut info = HeadInfo::default();
    let mut te = TeState::default();
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        check_field_value(h.value).map_err(|_| upstream("malformed upstream header value"))?;
        headers.push(HeaderField {
            name: Span::of(base, name),
            value: Span::of(base, h.value),
        });
        read_framing_header(base, name, h.value, &mut info, &mut te, 502)?;
    }
    if info.has_transfer_encoding {
        te.finish(&mut info, 502)?;
        if info.content_length.is_some() {
            return Err(upstream(
                "upstream sent both Content-Length and Transfer-Encoding",
            ));
        }
    }
    let head = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        buf: head,
        status,
        reason,
        version,
        headers,
        info,
    }))
}

/// Oversized request lines get 414 before the whole head is read.
fn check_request_line_length(buf: &[u8], max_line: usize) -> Result<(), ParseError> {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let window = &buf[start..buf.len().min(start + max_line + 2)];
    match memchr::memchr(b'\n', window) {
        Some(end) if end > max_line + 1 => Err(ParseError {
            status: 414,
            reason: "request line too long",
        }),
        Some(_) => Ok(()),
        None if window.len() > max_line => Err(ParseError {
            status: 414,
            reason: "request line too long",
        }),
        None => Ok(()),
    }
}

/// Request target: visible ASCII only, no fragment, in a form that fits the method.
fn check_target(target: &[u8], method: &str) -> Result<(), ParseError> {
    if target.is_empty() {
        return Err(bad("empty request target"));
    }
    if let Some(b) = target.iter().find(|&&b| !(0x21..=0x7e).contains(&b)) {
        return Err(if *b >= 0x80 {
            bad("8-bit byte in request target")
        } else {
            bad("control byte in request target")
        });
    }
    if target.contains(&b'#') {
        return Err(bad("fragment in request target"));
    }
    let ok = match target[0] {
        b'/' => method != "CONNECT",
        b'*' => target == b"*" && method == "OPTIONS",
        _ if method == "CONNECT" => true,
        _ => {
            starts_with_ignore_case(target, b"http://")
                || starts_with_ignore_case(target, b"https://")
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad("request target form not allowed for this method"))
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Splits an absolute-form target into authority and origin-form path ("/" when empty).
fn split_absolute_form(target: &[u8]) -> Result<(Option<&[u8]>, &[u8]), ParseError> {
    let after_scheme = if starts_with_ignore_case(target, b"http://") {
        &target[7..]
    } else if starts_with_ignore_case(target, b"https://") {
        &target[8..]
    } else {
        return Ok((None, target));
    };
    let end = after_scheme
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..end];
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(bad("bad authority in absolute-form target"));
    }
    let rest = &after_scheme[end..];
    // A target "http://h" has no path; its origin-form is "/", which lies in static memory
    // rather than the head, so point at the authority's end and let an empty path mean "/".
    Ok((
        Some(authority),
        if rest.is_empty() { &target[..0] } else { rest },
    ))
}

/// Field values: no NUL, no bare CR or LF (httparse already refuses other controls).
fn check_field_value(value: &[u8]) -> Result<(), ParseError> {
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(bad("NUL, CR or LF in a header value"));
    }
    Ok(())
}

/// Transfer-Encoding codings seen so far across header lines.
#[derive(Default)]
struct TeState {
    codings: u32,
    chunked_at: Option<u32>,
    chunked_count: u32,
    unknown: bool,
}

impl TeState {
    fn add(&mut self, value: &[u8]) {
        for coding in value.split(|&b| b == b',') {
            let coding = trim(coding);
            if coding.is_empty() {
                continue;
            }
            self.codings += 1;
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.chunked_at = Some(self.codings);
            } else if !KNOWN_CODINGS.iter().any(|k| coding.eq_ignore_ascii_case(k)) {
                self.unknown = true;
            }
        }
    }

    /// Requests must end in exactly one `chunked`; responses without a final
    /// `chunked` are read until close (RFC 9112 §6.3).
    fn finish(&self, info: &mut HeadInfo, status: u16) -> Result<(), ParseError> {
        let err = |reason| ParseError { status, reason };
        if self.unknown {
            return Err(ParseError {
                status: if status == 400 { 501 } else { status },
                reason: "unknown transfer coding",
            });
        }
        if self.codings == 0 {
            return Err(err("empty Transfer-Encoding"));
        }
        if self.chunked_count > 1
            || (self.chunked_count == 1 && self.chunked_at != Some(self.codings))
        {
            return Err(err("chunked must be the final transfer coding, once"));
        }
        if self.chunked_count == 0 && status == 400 {
            return Err(err("request Transfer-Encoding does not end in chunked"));
        }
        info.chunked = self.chunked_count == 1;
        Ok(())
    }
}

const KNOWN_CODINGS: &[&[u8]] = &[
    b"gzip",
    b"x-gzip",
    b"deflate",
    b"compress",
    b"x-compress",
    b"identity",
];

fn read_framing_header(
    base: &[u8],
    name: &[u8],
    value: &[u8],
    info: &mut HeadInfo,
    te: &mut TeState,
    status: u16,
) -> Result<(), ParseError> {
    let err = |reason| ParseError { status, reason };
    if name.eq_ignore_ascii_case(b"content-length") {
        // Repeated or listed lengths are accepted only when all agree (RFC 9110 §8.6).
        for part in value.split(|&b| b == b',') {
            let part = trim(part);
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(err("malformed Content-Length"));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(err("malformed Content-Length"))?;
            match info.content_length {
                Some(prev) if prev != n => return Err(err("conflicting Content-Length values")),
                _ => info.content_length = Some(n),
            }
        }
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        info.has_transfer_encoding = true;
        te.add(value);
    } else if name.eq_ignore_ascii_case(b"connection") {
        for token in value.split(|&b| b == b',') {
            let token = trim(token);
            if token.eq_ignore_ascii_case(b"close") {
                info.connection_close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                info.connection_keep_alive = true;
            } else if !token.is_empty() {
                if token.eq_ignore_ascii_case(b"upgrade") {
                    info.connection_upgrade = true;
                }
                info.connection_tokens.push(Span::of(base, token));
            }
        }
    }
    Ok(())
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

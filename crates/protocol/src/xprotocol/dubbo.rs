//! Dubbo (magic 0xdabb) with hessian2 bodies, as Dubbo clients and MOSN speak it
//! (docs/xprotocol-wire.md section 4).
//!
//! A frame is a 16-byte head (magic, flag, status, u64 request id, u32 body length)
//! and a body. Frames are forwarded as received, but for the request id. The header
//! map the router sees is read from the hessian2 body of requests (section 4.6):
//!
//! | header | value |
//! |---|---|
//! | `dubbo` | body field 1, the Dubbo protocol version |
//! | `service` | body field 2, the service path; replaced by the `interface` attachment when there is one |
//! | `version` | body field 3, the service version (`""` for a null) |
//! | `method` | body field 4, the method name |
//! | every attachment (`group`, `interface`, `path`, `timeout`, ...) | its string value |
//!
//! Where mosn-rs differs from MOSN, on purpose:
//!
//! * MOSN reads the attachments only on listeners named `ingress_dubbo`/`egress_dubbo`
//!   (and there lets any attachment overwrite the four body fields, in Go's random map
//!   order). mosn-rs always reads them, but the four body fields keep their values: an
//!   attachment named `dubbo`, `service`, `version` or `method` is not exposed (the Node
//!   client's `service` attachment is `path:version`, which would otherwise turn
//!   `service` into something else than it is on MOSN's ordinary listeners). MOSN's
//!   `interface` rule is kept: an `interface` attachment becomes `service`, also when
//!   the frame has a `service` attachment (in MOSN either may win).
//! * A request body MOSN cannot read (a serialization other than hessian2, a field of
//!   the wrong type, arguments it cannot skip) makes MOSN close the connection without
//!   an answer. mosn-rs keeps the frame with the headers it could read (the body
//!   fields before the first unreadable one; the attachments only if the whole map
//!   could be read); routing on what is missing then fails, the client gets a "no
//!   route" error response, and the connection keeps serving.
//! * A request without the two-way bit (`0x82`) is [`FrameKind::OneWay`]: nothing waits
//!   for a reply and none is sent. MOSN treats it as two-way and, after its timeout,
//!   sends the client an error reply it never asked for.
//! * Heartbeat replies carry one hessian null (`4e`), as Java, dubbo-remoting and
//!   dubbo-ssl-python servers answer; MOSN writes two (`4e 4e`).
//! * mosn-rs sends heartbeats on idle upstream connections ([`Codec::heartbeat`]);
//!   MOSN sends none.
//! * Frames are limited to the proxy's `max_frame` (MOSN has no limit), and at most
//!   [`MAX_ATTACHMENTS`] distinct attachments become headers (MOSN: all).

use super::hessian2::{self, Reader, Str};
use super::{derived, Codec, CodecError, Detected, Frame, FrameKind, Hijack};
use bytes::{BufMut, BytesMut};
use std::ops::Range;

pub struct Dubbo;

/// Response statuses (Dubbo's `Response` constants).
pub mod status {
    pub const OK: u8 = 20;
    pub const CLIENT_TIMEOUT: u8 = 30;
    pub const SERVER_TIMEOUT: u8 = 31;
    pub const BAD_REQUEST: u8 = 40;
    pub const BAD_RESPONSE: u8 = 50;
    pub const SERVICE_NOT_FOUND: u8 = 60;
    pub const SERVICE_ERROR: u8 = 70;
    pub const SERVER_ERROR: u8 = 80;
    pub const CLIENT_ERROR: u8 = 90;
    pub const SERVER_THREADPOOL_EXHAUSTED_ERROR: u8 = 100;
}

const MAGIC: [u8; 2] = [0xda, 0xbb];
const HEAD: usize = 16;
const FLAG_REQUEST: u8 = 0x80;
const FLAG_TWO_WAY: u8 = 0x40;
const FLAG_EVENT: u8 = 0x20;
const SERIALIZATION: u8 = 0x1f;
/// The serialization id of hessian2, the only one whose bodies mosn-rs reads.
const HESSIAN2: u8 = 2;

/// The four header names read from the body, which attachments do not override.
const BODY_FIELDS: [&[u8]; 4] = [b"dubbo", b"service", b"version", b"method"];

/// At most this many distinct attachments become headers; later new keys are left
/// out (real clients send fewer than 10). It keeps the header map, and each lookup
/// in it, small whatever a client sends (MOSN keeps them all).
pub const MAX_ATTACHMENTS: usize = 128;

fn decode_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
    // The magic is checked as soon as its bytes arrive.
    if buf.iter().zip(MAGIC).any(|(b, m)| *b != m) {
        return Err(CodecError::Malformed("not a Dubbo frame (magic)"));
    }
    if buf.len() < HEAD {
        return Ok(None);
    }
    let body_len = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
    let len = HEAD.saturating_add(body_len);
    if len > max_frame {
        return Err(CodecError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    let flag = buf[2];
    let kind = match (
        flag & FLAG_REQUEST != 0,
        flag & FLAG_EVENT != 0,
        flag & FLAG_TWO_WAY != 0,
    ) {
        // Every event request (heartbeat, or a read-only notice) is answered as a
        // heartbeat, as MOSN does; the two-way bit does not matter for events.
        (true, true, _) => FrameKind::Heartbeat,
        (true, false, true) => FrameKind::Request,
        (true, false, false) => FrameKind::OneWay,
        (false, true, _) => FrameKind::HeartbeatAck,
        (false, false, _) => FrameKind::Response,
    };
    let status = match kind {
        FrameKind::Response | FrameKind::HeartbeatAck => u32::from(buf[3]),
        _ => 0,
    };
    let mut id = [0; 8];
    id.copy_from_slice(&buf[4..12]);
    let id = u64::from_be_bytes(id);
    let raw = buf.split_to(len);
    let headers = if matches!(kind, FrameKind::Request | FrameKind::OneWay)
        && flag & SERIALIZATION == HESSIAN2
    {
        request_headers(&raw)
    } else {
        Vec::new()
    };
    Ok(Some(Frame {
        kind,
        id,
        raw,
        headers,
        status,
        // Dubbo frames carry no timeout the proxy uses (the `timeout` attachment is
        // ignored, as by MOSN): the route's timeout applies.
        timeout_ms: None,
    }))
}

type Headers = Vec<(Range<usize>, Range<usize>)>;

/// The header map of a hessian2 request: whatever could be read before the first
/// problem (a body mosn-rs cannot read is not an error: see the module docs).
fn request_headers(raw: &[u8]) -> Headers {
    let mut headers = Vec::with_capacity(8);
    let mut r = Reader::new_at(raw, HEAD);
    let _ = read_request(raw, &mut r, &mut headers);
    headers
}

/// A string's bytes, when they are contiguous in the frame and valid UTF-8. A chunked
/// string (over 32768 characters from Java and hessian.js, over 4096 from dubbo-go) is
/// not exposed as a header value, nor one with characters outside the BMP (which
/// hessian2 writes as CESU-8 surrogates, not UTF-8).
fn text(raw: &[u8], s: &Str) -> Option<Range<usize>> {
    s.bytes
        .clone()
        .filter(|b| std::str::from_utf8(&raw[b.clone()]).is_ok())
}

fn read_request(raw: &[u8], r: &mut Reader, headers: &mut Headers) -> hessian2::Result<()> {
    // Dubbo version, service path, service version (may be null), method name.
    let mut push = |name: Range<usize>, s: Option<Str>, at: usize| {
        let value = match s {
            Some(s) => text(raw, &s),
            None => Some(at..at),
        };
        if let Some(v) = value {
            headers.push((name, v));
        }
    };
    let s = r.string()?;
    push(derived::DUBBO, Some(s), 0);
    let s = r.string()?;
    push(derived::SERVICE, Some(s), 0);
    let at = r.pos();
    let s = r.string_or_null()?;
    push(derived::VERSION, s, at);
    let s = r.string()?;
    push(derived::METHOD, Some(s), 0);

    // Skip the arguments, counted from the parameter descriptor, to reach the
    // attachments.
    let desc = r.string()?;
    let args = match &desc.bytes {
        Some(b) => argument_count(&raw[b.clone()]),
        None => argument_count(
            Reader::new_at(raw, desc.span.start)
                .read_string()?
                .as_bytes(),
        ),
    };
    for _ in 0..args {
        r.skip_value()?;
    }
    // The attachments go straight into the header map; only a map read to its end
    // counts (all attachments or none), so on an error the map is put back as the
    // four body fields left it.
    let fixed = headers.len();
    let service = headers
        .iter()
        .find(|(n, _)| *n == derived::SERVICE)
        .map(|(_, v)| v.clone());
    if let Err(e) = r.string_map(|k, v| attachment(raw, headers, fixed, &k, &v)) {
        headers.truncate(fixed);
        if let (Some(v), Some((_, now))) = (
            service,
            headers.iter_mut().find(|(n, _)| *n == derived::SERVICE),
        ) {
            *now = v;
        }
        return Err(e);
    }
    Ok(())
}

/// Adds one attachment to the header map (`fixed`: the headers from the body fields).
fn attachment(raw: &[u8], headers: &mut Headers, fixed: usize, k: &Str, v: &Str) {
    let (Some(k), Some(v)) = (text(raw, k), text(raw, v)) else {
        return;
    };
    let key = &raw[k.clone()];
    if key == b"interface" {
        // MOSN: "use the interface value, convenient for service discovery".
        match headers.iter_mut().find(|(n, _)| *n == derived::SERVICE) {
            Some((_, service)) => *service = v.clone(),
            None => headers.push((derived::SERVICE, v.clone())),
        }
    }
    if BODY_FIELDS.contains(&key) {
        return;
    }
    // A key repeated in the map: the later value wins, as in MOSN's map. (The map is
    // capped, so this search is too.)
    let room = headers.len() < fixed + MAX_ATTACHMENTS;
    match headers
        .iter_mut()
        .find(|(n, _)| raw.get(n.clone()) == Some(key))
    {
        Some((_, value)) => *value = v,
        None if room => headers.push((k, v)),
        None => {}
    }
}

/// How many arguments a JVM parameter descriptor lists, by MOSN's rule
/// (`getArgumentCount`): `[` is ignored, each of `VZBCDFIJS` counts one, `L` counts one
/// and everything up to the next `;` is skipped. E.g. `Ljava/lang/String;[IJ` is 3.
pub fn argument_count(desc: &[u8]) -> usize {
    let mut count = 0;
    let mut in_class = false;
    for &c in desc {
        match c {
            b';' => in_class = false,
            _ if in_class => {}
            b'V' | b'Z' | b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' => count += 1,
            b'L' => {
                count += 1;
                in_class = true;
            }
            _ => {}
        }
    }
    count
}

fn head(out: &mut BytesMut, flag: u8, status: u8, id: u64, body_len: usize) {
    out.put_slice(&MAGIC);
    out.put_u8(flag);
    out.put_u8(status);
    out.put_u64(id);
    out.put_u32(body_len as u32);
}

/// MOSN's Dubbo status and message for why it answers (docs/xprotocol-wire.md 4.11):
/// MOSN's code, `|`, its text. dubbo-remoting raises the message as the error;
/// dubbo-ssl-python raises the status name with it. (dubbo-ssl-python knows only the
/// statuses 20..90: status 100, SERVER_THREADPOOL_EXHAUSTED_ERROR, would kill its
/// reader thread, which is one more reason to keep MOSN's 40 for an overflow.)
pub fn hijack_status(why: Hijack) -> (u8, &'static str) {
    match why {
        Hijack::NoRoute => (status::SERVICE_NOT_FOUND, "404|router unavailable"),
        Hijack::NoHealthyUpstream => (status::SERVICE_NOT_FOUND, "502|no health upstream"),
        Hijack::Overflow => (status::BAD_REQUEST, "503|upstream overflow"),
        Hijack::Timeout => (status::CLIENT_TIMEOUT, "504|timeout"),
        Hijack::UpstreamClosed => (status::SERVICE_ERROR, "500|internal error"),
        Hijack::BadRequest => (status::SERVICE_ERROR, "0|codec exception"),
    }
}

/// An error response: flag `0x02`, the status, the request's id, and as body the
/// message as one hessian2 string (a non-OK response has no result flag; Java's
/// `readUTF`, dubbo-remoting's `readUTF` and dubbo-ssl-python's `read_next` read it,
/// and the two clients raise `Error: 404|router unavailable` and
/// `DubboResponseException: 404|router unavailable`).
///
/// The flag always names hessian2, as MOSN's does, because the body is hessian2: for
/// the hessian2 requests mosn-rs routes that is the request's own serialization id,
/// and a request in another serialization (which has no headers, so it only ever gets
/// `NoRoute`) gets a reply whose flag matches its body, which a Java client decodes
/// by that flag.
fn hijack(request: &Frame, why: Hijack) -> Option<BytesMut> {
    if request.kind != FrameKind::Request {
        return None;
    }
    let (status, message) = hijack_status(why);
    let mut body = BytesMut::with_capacity(message.len() + 3);
    hessian2::write_string(&mut body, message);
    let mut out = BytesMut::with_capacity(HEAD + body.len());
    head(&mut out, HESSIAN2, status, request.id, body.len());
    out.extend_from_slice(&body);
    Some(out)
}

/// The answer to an event request: flag `0x22` (event response, hessian2), status OK,
/// the request's id, body one hessian null — byte for byte what Java, dubbo-remoting
/// (captured: tests/fixtures/xprotocol/dubbo_heartbeat_ack.bin) and dubbo-ssl-python
/// servers send.
fn heartbeat_ack(request: &Frame) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEAD + 1);
    head(&mut out, FLAG_EVENT | HESSIAN2, status::OK, request.id, 1);
    hessian2::write_null(&mut out);
    out
}

/// A heartbeat request: flag `0xe2` (request, two-way, event, hessian2), body one
/// hessian null, as Java and dubbo-remoting clients send.
fn heartbeat(id: u64) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEAD + 1);
    head(
        &mut out,
        FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | HESSIAN2,
        0,
        id,
        1,
    );
    hessian2::write_null(&mut out);
    out
}

impl Codec for Dubbo {
    fn name(&self) -> &'static str {
        "dubbo"
    }

    /// Dubbo's OK is 20.
    fn is_success(&self, status: u32) -> bool {
        status == 20
    }

    /// Two bytes suffice: `da bb` (MOSN waits for all 16 of the head).
    fn detect(&self, buf: &[u8]) -> Detected {
        match buf {
            [] | [0xda] => Detected::NeedMore,
            [0xda, 0xbb, ..] => Detected::Yes,
            _ => Detected::No,
        }
    }

    fn decode(&self, buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
        decode_frame(buf, max_frame)
    }

    fn set_id(&self, frame: &mut Frame, id: u64) {
        if let Some(at) = frame.raw.get_mut(4..12) {
            at.copy_from_slice(&id.to_be_bytes());
        }
        frame.id = id;
    }

    fn hijack(&self, request: &Frame, why: Hijack) -> Option<BytesMut> {
        hijack(request, why)
    }

    fn heartbeat_ack(&self, request: &Frame) -> BytesMut {
        heartbeat_ack(request)
    }

    /// MOSN sends no Dubbo heartbeats upstream. mosn-rs does, as Dubbo's own clients
    /// do (Java every 60 s idle): every Dubbo server answers them (a Java provider
    /// closes a connection that stays silent for three heartbeat periods), and an
    /// unanswered one tells the proxy that an idle upstream connection is dead before
    /// a request is lost on it.
    fn heartbeat(&self, id: u64) -> Option<BytesMut> {
        Some(heartbeat(id))
    }

    fn max_id(&self) -> u64 {
        u64::MAX
    }
}

#[cfg(test)]
mod tests;

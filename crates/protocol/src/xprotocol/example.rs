//! An example protocol, to show how one is added (docs/xprotocol.md walks through it).
//! It is made up, and deliberately not registered in [`super::codecs`]: no config can
//! select it. Its frames:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `XP` |
//! | 2 | 1 | kind: 1 request, 2 one-way request, 3 response, 4 heartbeat, 5 heartbeat ack |
//! | 3 | 1 | status, in responses (0 OK; [`status`]); 0 in requests |
//! | 4 | 4 | request id, u32 big-endian |
//! | 8 | 2 | service length, u16 |
//! | 10 | 4 | body length, u32 |
//! | 14 | service length | the service name, UTF-8: the header `service` |
//! | … | body length | the body, opaque |

use super::{derived, Codec, CodecError, Detected, Frame, FrameKind, Hijack};
use bytes::{BufMut, BytesMut};

pub struct Example;

const MAGIC: &[u8; 2] = b"XP";
const HEAD: usize = 14;

const KIND_REQUEST: u8 = 1;
const KIND_ONEWAY: u8 = 2;
const KIND_RESPONSE: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;
const KIND_HEARTBEAT_ACK: u8 = 5;

/// Response statuses.
pub mod status {
    pub const OK: u8 = 0;
    pub const NO_ROUTE: u8 = 1;
    pub const UNAVAILABLE: u8 = 2;
    pub const BUSY: u8 = 3;
    pub const TIMEOUT: u8 = 4;
    pub const ERROR: u8 = 5;
    pub const BAD_REQUEST: u8 = 6;
}

/// A frame of `kind` with `status`, `id`, `service` and `body`.
pub fn frame(kind: u8, status: u8, id: u32, service: &str, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEAD + service.len() + body.len());
    out.put_slice(MAGIC);
    out.put_u8(kind);
    out.put_u8(status);
    out.put_u32(id);
    out.put_u16(service.len() as u16);
    out.put_u32(body.len() as u32);
    out.put_slice(service.as_bytes());
    out.put_slice(body);
    out
}

/// A request to `service`.
pub fn request(id: u32, service: &str, body: &[u8]) -> BytesMut {
    frame(KIND_REQUEST, 0, id, service, body)
}

impl Codec for Example {
    fn name(&self) -> &'static str {
        "example"
    }

    /// `XP`; one byte `X` may still become it.
    fn detect(&self, buf: &[u8]) -> Detected {
        match buf {
            [] | [b'X'] => Detected::NeedMore,
            [b'X', b'P', ..] => Detected::Yes,
            _ => Detected::No,
        }
    }

    fn decode(&self, buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
        // 1. Refuse what is not this protocol as early as possible.
        if buf.iter().zip(MAGIC).any(|(b, m)| b != m) {
            return Err(CodecError::Malformed("not an example frame (magic)"));
        }
        // 2. Wait for the fixed head, then learn the frame's length from it and check
        //    the limit before waiting for the rest.
        if buf.len() < HEAD {
            return Ok(None);
        }
        let service_len = usize::from(u16::from_be_bytes([buf[8], buf[9]]));
        let body_len = u32::from_be_bytes([buf[10], buf[11], buf[12], buf[13]]) as usize;
        let len = HEAD.saturating_add(service_len).saturating_add(body_len);
        if len > max_frame {
            return Err(CodecError::TooLarge {
                len,
                max: max_frame,
            });
        }
        if buf.len() < len {
            return Ok(None);
        }
        // 3. The whole frame is there: classify it, read what the proxy needs, and
        //    move (not copy) its bytes out of the buffer.
        let kind = match buf[2] {
            KIND_REQUEST => FrameKind::Request,
            KIND_ONEWAY => FrameKind::OneWay,
            KIND_RESPONSE => FrameKind::Response,
            KIND_HEARTBEAT => FrameKind::Heartbeat,
            KIND_HEARTBEAT_ACK => FrameKind::HeartbeatAck,
            _ => return Err(CodecError::Malformed("unknown example frame kind")),
        };
        let service = HEAD..HEAD + service_len;
        if std::str::from_utf8(&buf[service.clone()]).is_err() {
            return Err(CodecError::Malformed("example service name is not UTF-8"));
        }
        let id = u64::from(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
        let status = match kind {
            FrameKind::Response | FrameKind::HeartbeatAck => u32::from(buf[3]),
            _ => 0,
        };
        // The key `service` is not in the frame's bytes: a derived name.
        let headers = if service_len > 0 {
            vec![(derived::SERVICE, service)]
        } else {
            Vec::new()
        };
        Ok(Some(Frame {
            kind,
            id,
            raw: buf.split_to(len),
            headers,
            status,
            timeout_ms: None,
        }))
    }

    fn set_id(&self, frame: &mut Frame, id: u64) {
        let id = id as u32;
        if let Some(at) = frame.raw.get_mut(4..8) {
            at.copy_from_slice(&id.to_be_bytes());
        }
        frame.id = u64::from(id);
    }

    fn hijack(&self, request: &Frame, why: Hijack) -> Option<BytesMut> {
        if request.kind != FrameKind::Request {
            return None;
        }
        let (status, message) = match why {
            Hijack::NoRoute => (status::NO_ROUTE, "no route"),
            Hijack::NoHealthyUpstream => (status::UNAVAILABLE, "no healthy upstream"),
            Hijack::Overflow => (status::BUSY, "upstream overflow"),
            Hijack::Timeout => (status::TIMEOUT, "timeout"),
            Hijack::UpstreamClosed => (status::ERROR, "upstream connection closed"),
            Hijack::BadRequest => (status::BAD_REQUEST, "bad request"),
        };
        Some(frame(
            KIND_RESPONSE,
            status,
            request.id as u32,
            "",
            message.as_bytes(),
        ))
    }

    fn heartbeat_ack(&self, request: &Frame) -> BytesMut {
        frame(KIND_HEARTBEAT_ACK, status::OK, request.id as u32, "", b"")
    }

    fn heartbeat(&self, id: u64) -> Option<BytesMut> {
        Some(frame(KIND_HEARTBEAT, 0, id as u32, "", b""))
    }

    // `max_id`: the default, u32::MAX, fits the 4-byte id.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xprotocol::{codec, DEFAULT_MAX_FRAME};

    #[test]
    fn a_request_decodes_with_its_service_header() {
        let mut buf = request(7, "com.example.Echo", b"hello");
        let len = buf.len();
        let f = Example
            .decode(&mut buf, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty());
        assert_eq!((f.kind, f.id, f.raw.len()), (FrameKind::Request, 7, len));
        assert_eq!(f.header(b"service"), Some(&b"com.example.Echo"[..]));
        let pairs: Vec<_> = f.header_pairs().collect();
        assert_eq!(pairs, [(&b"service"[..], &b"com.example.Echo"[..])]);
        // Not registered: no config can name it.
        assert!(codec("example").is_none());
    }

    #[test]
    fn prefixes_wait_and_frames_come_apart() {
        let one = request(1, "svc", b"body");
        for cut in 0..one.len() {
            let mut part = BytesMut::from(&one[..cut]);
            assert_eq!(
                Example.decode(&mut part, DEFAULT_MAX_FRAME),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(part.len(), cut);
        }
        let mut two = one.clone();
        two.extend_from_slice(&Example.heartbeat(2).unwrap());
        let a = Example
            .decode(&mut two, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        let b = Example
            .decode(&mut two, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.kind, b.kind, b.id),
            (FrameKind::Request, FrameKind::Heartbeat, 2)
        );
        assert!(two.is_empty());
    }

    #[test]
    fn ids_replies_limits_and_garbage() {
        let mut buf = request(1, "svc", b"body");
        let original = buf.clone();
        let mut f = Example
            .decode(&mut buf, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        Example.set_id(&mut f, 0xAABB_CCDD);
        assert_eq!(&f.raw[4..8], &[0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!((&f.raw[..4], &f.raw[8..]), (&original[..4], &original[8..]));

        let mut out = Example.hijack(&f, Hijack::Timeout).unwrap();
        let r = Example
            .decode(&mut out, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.kind, r.id, r.status),
            (FrameKind::Response, 0xAABB_CCDD, 4)
        );
        assert!(r.raw.ends_with(b"timeout"));

        let mut oneway = frame(KIND_ONEWAY, 0, 3, "svc", b"");
        let ow = Example
            .decode(&mut oneway, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(Example.hijack(&ow, Hijack::NoRoute), None);

        let mut hb = Example.heartbeat(9).unwrap();
        let hb = Example.decode(&mut hb, DEFAULT_MAX_FRAME).unwrap().unwrap();
        let mut ack = Example.heartbeat_ack(&hb);
        let ack = Example
            .decode(&mut ack, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ack.kind, ack.id, ack.status),
            (FrameKind::HeartbeatAck, 9, 0)
        );

        let mut head_only = BytesMut::from(&request(1, "svc", &[0; 100])[..HEAD]);
        assert!(matches!(
            Example.decode(&mut head_only, 64),
            Err(CodecError::TooLarge { len: 117, max: 64 })
        ));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"XQ",
            &frame(9, 0, 1, "", b"")[..],
        ] {
            let mut b = BytesMut::from(bad);
            assert!(
                Example.decode(&mut b, DEFAULT_MAX_FRAME).is_err(),
                "{bad:?}"
            );
        }
        let mut not_utf8 = request(1, "svc", b"");
        not_utf8[HEAD] = 0xff;
        assert!(Example.decode(&mut not_utf8, DEFAULT_MAX_FRAME).is_err());
        assert_eq!(Example.detect(b"X"), Detected::NeedMore);
        assert_eq!(Example.detect(b"XP"), Detected::Yes);
        assert_eq!(Example.detect(&[0xda, 0xbb]), Detected::No);
    }
}

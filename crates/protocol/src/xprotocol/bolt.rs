//! SOFA Bolt v1 (protocol byte 0x01) and v2 (0x02), as SOFA RPC and MOSN speak them
//! (docs/xprotocol-wire.md sections 2 and 3).
//!
//! Both codecs read frames of either version (as MOSN's do); frames keep their own
//! version when forwarded, and the proxy's own replies (heartbeat acks, error
//! responses) take the version of the request they answer. Bolt v2's CRC32 trailer
//! (ver1 2 with switch bit 0) is checked on the way in and recomputed when a request
//! id is rewritten (MOSN ignores it and loses the frame boundary).

use super::{Codec, CodecError, Detected, Frame, FrameKind, Hijack};
use bytes::{BufMut, BytesMut};
use std::ops::Range;

pub struct BoltV1;
pub struct BoltV2;

/// Response statuses (sofa-bolt's ResponseStatus).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const SERVER_EXCEPTION: u16 = 0x0002;
    pub const UNKNOWN: u16 = 0x0003;
    pub const SERVER_THREADPOOL_BUSY: u16 = 0x0004;
    pub const NO_PROCESSOR: u16 = 0x0006;
    pub const TIMEOUT: u16 = 0x0007;
    pub const CODEC_EXCEPTION: u16 = 0x0009;
    pub const CONNECTION_CLOSED: u16 = 0x0010;
}

const CMD_HEARTBEAT: u16 = 0;
const CMD_REQUEST: u16 = 1;
const CMD_RESPONSE: u16 = 2;
const TYPE_RESPONSE: u8 = 0;
const TYPE_REQUEST: u8 = 1;
const TYPE_ONEWAY: u8 = 2;
/// The hessian2 codec byte, as MOSN writes in frames it makes.
const CODEC_HESSIAN2: u8 = 1;

/// Where a version's fields sit. v2 inserts `ver1` after `proto` (shifting everything
/// by one) and `switch` after `codec` (shifting the rest by two).
#[derive(Clone, Copy)]
struct Layout {
    version: u8,
}

impl Layout {
    fn shift(self) -> usize {
        usize::from(self.version == 2)
    }
    fn type_at(self) -> usize {
        1 + self.shift()
    }
    fn cmd_at(self) -> usize {
        2 + self.shift()
    }
    fn id_at(self) -> usize {
        5 + self.shift()
    }
    fn codec_at(self) -> usize {
        9 + self.shift()
    }
    /// First field after `codec` (and v2's `switch`).
    fn after_codec(self) -> usize {
        10 + 2 * self.shift()
    }
    fn request_head(self) -> usize {
        self.after_codec() + 12
    }
    fn response_head(self) -> usize {
        self.after_codec() + 10
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Does this v2 frame carry a CRC32 trailer (Java's rule: ver1 2 and switch bit 0)?
fn has_crc(b: &[u8], l: Layout) -> bool {
    l.version == 2 && b[1] == 2 && b[l.codec_at() + 1] & 0x01 != 0
}

fn decode_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
    let Some(&proto) = buf.first() else {
        return Ok(None);
    };
    let l = match proto {
        1 => Layout { version: 1 },
        2 => Layout { version: 2 },
        _ => return Err(CodecError::Malformed("not a Bolt frame (protocol byte)")),
    };
    if buf.len() <= l.type_at() {
        return Ok(None);
    }
    let kind_byte = buf[l.type_at()];
    let head = match kind_byte {
        TYPE_RESPONSE => l.response_head(),
        TYPE_REQUEST | TYPE_ONEWAY => l.request_head(),
        _ => return Err(CodecError::Malformed("unknown Bolt command type")),
    };
    if buf.len() < head {
        return Ok(None);
    }
    let lens_at = head - 8;
    let class_len = usize::from(u16_at(buf, lens_at));
    let header_len = usize::from(u16_at(buf, lens_at + 2));
    let content_len = u32_at(buf, lens_at + 4) as usize;
    let crc = if has_crc(buf, l) { 4 } else { 0 };
    let len = head
        .saturating_add(class_len)
        .saturating_add(header_len)
        .saturating_add(content_len)
        .saturating_add(crc);
    if len > max_frame {
        return Err(CodecError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    if crc == 4 {
        let want = u32_at(buf, len - 4);
        if crc32fast::hash(&buf[..len - 4]) != want {
            return Err(CodecError::Malformed("Bolt v2 CRC32 does not match"));
        }
    }
    let cmd = u16_at(buf, l.cmd_at());
    let kind = match (kind_byte, cmd) {
        (TYPE_RESPONSE, CMD_HEARTBEAT) => FrameKind::HeartbeatAck,
        (TYPE_RESPONSE, CMD_RESPONSE) => FrameKind::Response,
        (TYPE_REQUEST, CMD_HEARTBEAT) => FrameKind::Heartbeat,
        (TYPE_REQUEST, CMD_REQUEST) => FrameKind::Request,
        (TYPE_ONEWAY, CMD_REQUEST) => FrameKind::OneWay,
        _ => return Err(CodecError::Malformed("unsupported Bolt command code")),
    };
    let headers_at = head + class_len;
    let headers = header_map(&buf[headers_at..headers_at + header_len], headers_at)?;
    let id = u64::from(u32_at(buf, l.id_at()));
    let (status, timeout_ms) = if kind_byte == TYPE_RESPONSE {
        (u32::from(u16_at(buf, l.after_codec())), None)
    } else {
        (0, Some(i64::from(u32_at(buf, l.after_codec()) as i32)))
    };
    Ok(Some(Frame {
        kind,
        id,
        raw: buf.split_to(len),
        headers,
        status,
        timeout_ms,
    }))
}

/// The header map's pairs as ranges (offset by `base`). Java's rule for negative
/// lengths: the pair is dropped (MOSN misreads a negative key length).
#[allow(clippy::type_complexity)]
fn header_map(b: &[u8], base: usize) -> Result<Vec<(Range<usize>, Range<usize>)>, CodecError> {
    let mut out = Vec::new();
    let mut at = 0;
    let field = |at: &mut usize| -> Result<Option<Range<usize>>, CodecError> {
        if b.len() - *at < 4 {
            return Err(CodecError::Malformed("Bolt header map cut short"));
        }
        let len = u32_at(b, *at) as i32;
        *at += 4;
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        if b.len() - *at < len {
            return Err(CodecError::Malformed("Bolt header map cut short"));
        }
        let r = base + *at..base + *at + len;
        *at += len;
        Ok(Some(r))
    };
    while at < b.len() {
        let key = field(&mut at)?;
        let value = field(&mut at)?;
        if let (Some(k), Some(v)) = (key, value) {
            out.push((k, v));
        }
    }
    Ok(out)
}

fn layout_of(frame: &Frame) -> Layout {
    Layout {
        version: if frame.raw.first() == Some(&2) { 2 } else { 1 },
    }
}

fn set_id(frame: &mut Frame, id: u64) {
    let l = layout_of(frame);
    let at = l.id_at();
    frame.raw[at..at + 4].copy_from_slice(&(id as u32).to_be_bytes());
    frame.id = u64::from(id as u32);
    if has_crc(&frame.raw, l) {
        let end = frame.raw.len() - 4;
        let crc = crc32fast::hash(&frame.raw[..end]);
        frame.raw[end..].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A frame without class, header map or content: a response with `status`, or a
/// request (heartbeat) with a timeout of -1 (none), in `version`.
fn bare(version: u8, request: bool, cmd: u16, id: u32, codec: u8, status: u16) -> BytesMut {
    let l = Layout { version };
    let mut out = BytesMut::with_capacity(l.request_head());
    out.put_u8(version);
    if version == 2 {
        out.put_u8(1); // ver1: no CRC
    }
    out.put_u8(if request { TYPE_REQUEST } else { TYPE_RESPONSE });
    out.put_u16(cmd);
    out.put_u8(1); // ver2
    out.put_u32(id);
    out.put_u8(codec);
    if version == 2 {
        out.put_u8(0); // switch: no CRC
    }
    if request {
        out.put_i32(-1);
    } else {
        out.put_u16(status);
    }
    out.put_u16(0);
    out.put_u16(0);
    out.put_u32(0);
    out
}

/// MOSN's mapping of why it answers to a Bolt status (docs/xprotocol-wire.md 2.11).
fn hijack_status(why: Hijack) -> u16 {
    match why {
        Hijack::NoRoute | Hijack::NoHealthyUpstream => status::NO_PROCESSOR,
        Hijack::Overflow => status::SERVER_THREADPOOL_BUSY,
        Hijack::Timeout => status::TIMEOUT,
        Hijack::UpstreamClosed | Hijack::BadRequest => status::UNKNOWN,
    }
}

fn hijack(request: &Frame, why: Hijack) -> Option<BytesMut> {
    if request.kind != FrameKind::Request {
        return None;
    }
    let l = layout_of(request);
    Some(bare(
        l.version,
        false,
        CMD_RESPONSE,
        request.id as u32,
        request.raw[l.codec_at()],
        hijack_status(why),
    ))
}

fn heartbeat_ack(request: &Frame) -> BytesMut {
    let l = layout_of(request);
    bare(
        l.version,
        false,
        CMD_HEARTBEAT,
        request.id as u32,
        request.raw[l.codec_at()],
        status::SUCCESS,
    )
}

macro_rules! bolt_codec {
    ($ty:ident, $name:literal, $version:literal) => {
        impl Codec for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn detect(&self, buf: &[u8]) -> Detected {
                match buf.first() {
                    None => Detected::NeedMore,
                    Some(&$version) => Detected::Yes,
                    Some(_) => Detected::No,
                }
            }
            fn decode(
                &self,
                buf: &mut BytesMut,
                max_frame: usize,
            ) -> Result<Option<Frame>, CodecError> {
                decode_frame(buf, max_frame)
            }
            fn set_id(&self, frame: &mut Frame, id: u64) {
                set_id(frame, id)
            }
            fn hijack(&self, request: &Frame, why: Hijack) -> Option<BytesMut> {
                hijack(request, why)
            }
            fn heartbeat_ack(&self, request: &Frame) -> BytesMut {
                heartbeat_ack(request)
            }
            fn heartbeat(&self, id: u64) -> Option<BytesMut> {
                Some(bare(
                    $version,
                    true,
                    CMD_HEARTBEAT,
                    id as u32,
                    CODEC_HESSIAN2,
                    0,
                ))
            }
        }
    };
}

bolt_codec!(BoltV1, "bolt", 1);
bolt_codec!(BoltV2, "boltv2", 2);

#[cfg(test)]
mod tests;

//! XProtocol: MOSN's framework for multiplexed RPC protocols (SOFA Bolt, Dubbo, ...).
//!
//! A protocol implements [`Codec`] once: recognise its first bytes, cut frames out of
//! a read buffer (each frame's bytes are moved, never copied, and forwarded untouched
//! but for the request id), tell requests, one-way requests, responses and heartbeats
//! apart, expose the header map the router matches on, rewrite request ids in place,
//! and build the protocol's own replies (heartbeat acks, error responses). A protocol
//! is one module plus one line in [`codecs`]. docs/xprotocol.md shows how, with an
//! example protocol; docs/xprotocol-wire.md has the wire formats.

pub mod bolt;
pub mod dubbo;
pub mod example;
pub mod hessian2;

use bytes::BytesMut;
use std::ops::Range;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Yes,
    No,
    /// Too few bytes to tell.
    NeedMore,
}

/// The kinds of frames the proxy treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A request that expects a response.
    Request,
    /// A request that expects none.
    OneWay,
    Response,
    /// A keepalive request: answered by whoever receives it, never forwarded.
    Heartbeat,
    /// The answer to a heartbeat.
    HeartbeatAck,
}

/// Why the proxy answers a request itself, in MOSN's terms (docs/xprotocol-wire.md 6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hijack {
    /// No route, or its cluster does not exist (MOSN code 404).
    NoRoute,
    /// No host can take it, or the upstream could not be reached or written (502).
    NoHealthyUpstream,
    /// A circuit breaker is full (503).
    Overflow,
    /// The request's deadline passed (504).
    Timeout,
    /// The upstream connection closed with the request in flight (500).
    UpstreamClosed,
    /// The request's own bytes could not be decoded (MOSN's codec exception).
    BadRequest,
}

/// A decoded frame: its whole bytes, plus what the proxy needs to know about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    /// The request id as on the wire (Bolt: u32; Dubbo: u64).
    pub id: u64,
    /// The frame as received, forwarded as it is (after [`Codec::set_id`]).
    pub raw: BytesMut,
    /// The header map the router sees: byte ranges of keys and values in `raw`. A key
    /// may also be one of the [`derived`] names (past the end of `raw`): read keys with
    /// [`Frame::key`], [`Frame::header`] or [`Frame::header_pairs`], never `raw[k]`.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// Responses: the protocol's status.
    pub status: u32,
    /// Requests: the timeout the client asked for, in ms (Bolt); None: not given.
    pub timeout_ms: Option<i64>,
}

/// Header names a codec derives from a frame rather than finding them among its bytes
/// (Dubbo's `service`, `method`, `version` and `dubbo` come from hessian2 body fields;
/// only their values are in the frame). As a key in [`Frame::headers`], each is an
/// empty range past the end of any frame, which [`Frame::key`] turns into the name.
pub mod derived {
    use std::ops::Range;

    const NAMES: [&str; 4] = ["service", "method", "version", "dubbo"];

    const fn key(i: usize) -> Range<usize> {
        usize::MAX - i..usize::MAX - i
    }

    pub const SERVICE: Range<usize> = key(0);
    pub const METHOD: Range<usize> = key(1);
    pub const VERSION: Range<usize> = key(2);
    pub const DUBBO: Range<usize> = key(3);

    /// The name a derived key stands for.
    pub fn name(key: &Range<usize>) -> Option<&'static [u8]> {
        let i = usize::MAX.checked_sub(key.start)?;
        NAMES
            .get(i)
            .filter(|_| key.is_empty())
            .map(|n| n.as_bytes())
    }
}

impl Frame {
    /// A header key's bytes: in `raw`, or a [`derived`] name.
    pub fn key(&self, key: &Range<usize>) -> &[u8] {
        match self.raw.get(key.clone()) {
            Some(k) => k,
            None => derived::name(key).unwrap_or_default(),
        }
    }

    /// The first value of header `name` (exact, case-sensitive: MOSN's map lookup).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| self.key(k) == name)
            .map(|(_, v)| &self.raw[v.clone()])
    }

    /// Every header, in wire order.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(k, v)| (self.key(k), &self.raw[v.clone()]))
    }

    pub fn is_request(&self) -> bool {
        matches!(self.kind, FrameKind::Request | FrameKind::OneWay)
    }
}

/// A frame that cannot be read: the connection it came on is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("frame of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// One RPC protocol.
pub trait Codec: Send + Sync + 'static {
    /// The name configs use (`downstream_protocol`).
    fn name(&self) -> &'static str;

    /// Does a connection starting with `buf` speak this protocol?
    fn detect(&self, buf: &[u8]) -> Detected;

    /// Cuts the next frame off the front of `buf`. `Ok(None)`: not all of it is there
    /// yet (nothing is consumed). A frame longer than `max_frame` is an error as soon
    /// as its header says so, before its bytes arrive.
    fn decode(&self, buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError>;

    /// Writes `id` into the frame's bytes (and `frame.id`).
    fn set_id(&self, frame: &mut Frame, id: u64);

    /// The protocol's error response to `request` for `why`; None for a request that
    /// takes no response.
    fn hijack(&self, request: &Frame, why: Hijack) -> Option<BytesMut>;

    /// The answer to a heartbeat request.
    fn heartbeat_ack(&self, request: &Frame) -> BytesMut;

    /// A heartbeat to keep an idle upstream connection alive; None: the protocol has
    /// no upstream keepalive.
    fn heartbeat(&self, id: u64) -> Option<BytesMut>;

    /// Does a response with this status mean success (for stats and outlier
    /// detection)? Bolt: 0; Dubbo: 20.
    fn is_success(&self, status: u32) -> bool {
        status == 0
    }

    /// The largest request id the protocol carries (ids wrap around below it).
    fn max_id(&self) -> u64 {
        u64::from(u32::MAX)
    }
}

/// Every protocol this build speaks.
pub fn codecs() -> &'static [&'static dyn Codec] {
    static CODECS: &[&dyn Codec] = &[&bolt::BoltV1, &bolt::BoltV2, &dubbo::Dubbo];
    CODECS
}

/// A protocol by its config name (case-insensitive).
pub fn codec(name: &str) -> Option<&'static dyn Codec> {
    codecs()
        .iter()
        .copied()
        .find(|c| c.name().eq_ignore_ascii_case(name))
}

/// What a connection's first bytes say among several protocols.
pub enum Detection {
    Found(&'static dyn Codec),
    /// Too few bytes for at least one of them.
    NeedMore,
    /// None of them.
    Unknown,
}

/// The protocol a connection's first bytes speak, among `candidates`.
pub fn detect(candidates: &[&'static dyn Codec], buf: &[u8]) -> Detection {
    let mut need_more = false;
    for c in candidates {
        match c.detect(buf) {
            Detected::Yes => return Detection::Found(*c),
            Detected::NeedMore => need_more = true,
            Detected::No => {}
        }
    }
    if need_more {
        Detection::NeedMore
    } else {
        Detection::Unknown
    }
}

/// Default largest frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

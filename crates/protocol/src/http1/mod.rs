//! HTTP/1.1: message heads, body framing, chunked coding, and serialization.

mod chunked;
mod encode;
mod framing;
mod head;
mod status;

pub use chunked::{ChunkError, ChunkedDecoder, ChunkedItem};
pub use encode::{chunk, last_chunk, write_chunk_prefix, HeadWriter};
pub use framing::{request_framing, response_framing, BodyFraming};
pub use head::{
    parse_request, parse_response, HeadLimits, HeaderField, ParseError, RequestHead, ResponseHead,
    Version,
};
pub use status::reason_phrase;

/// Headers that describe one connection hop, never forwarded (RFC 9110 §7.6.1), plus
/// the framing headers the proxy re-derives for each hop.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Is `name` (any case) one of [`HOP_BY_HOP`]?
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;

//! How long a message body is (RFC 9112 §6.3).

use super::head::{RequestHead, ResponseHead};

/// The way a body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

impl BodyFraming {
    pub fn has_body(&self) -> bool {
        !matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// A request has a body only when it says so.
pub fn request_framing(head: &RequestHead) -> BodyFraming {
    if head.info.chunked {
        BodyFraming::Chunked
    } else {
        match head.info.content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    }
}

/// A response's body depends on the request method and the status too.
pub fn response_framing(head: &ResponseHead, request_was_head: bool) -> BodyFraming {
    if request_was_head || head.status < 200 || head.status == 204 || head.status == 304 {
        return BodyFraming::None;
    }
    if head.info.has_transfer_encoding {
        return if head.info.chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        };
    }
    match head.info.content_length {
        Some(0) => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    }
}

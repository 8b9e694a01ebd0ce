//! The client's request body as the upstream tries see it: streamed once, or held in
//! memory so that a retry or a mirror can send it again.

use super::body::{end, send_all, PipeError};
use crate::retry::REPLAY_BODY_MAX;
use bytes::{Bytes, BytesMut};
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use std::cell::Cell;

pub(super) enum ClientBody {
    /// Passed on as it arrives; `None` once a try has taken it (it cannot be sent again).
    Stream(Option<RecvStream>),
    /// All of it, with its trailers: no body, or a small one the route may resend.
    Held {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
}

impl ClientBody {
    /// Holds the body when it may be sent more than once (`replay`) and is small
    /// enough by its declared content-length; a body of unknown length streams (a
    /// gRPC stream must not wait for its end before it is forwarded). `Err`: the
    /// client reset its stream while the body was read.
    pub(super) async fn new(
        mut body: RecvStream,
        content_length: Option<u64>,
        replay: bool,
    ) -> Result<ClientBody, Reason> {
        if body.is_end_stream() {
            return Ok(ClientBody::held_empty());
        }
        match content_length {
            Some(n) if replay && n <= REPLAY_BODY_MAX => {}
            _ => return Ok(ClientBody::Stream(Some(body))),
        }
        // `h2` holds the client to its content-length, so this stays within the limit.
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| e.reason().unwrap_or(Reason::CANCEL))?;
            data.extend_from_slice(&chunk);
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| e.reason().unwrap_or(Reason::CANCEL))?;
        Ok(ClientBody::Held {
            data: data.freeze(),
            trailers,
        })
    }

    fn held_empty() -> ClientBody {
        ClientBody::Held {
            data: Bytes::new(),
            trailers: None,
        }
    }

    /// Can a later try send the body again?
    pub(super) fn resendable(&self) -> bool {
        matches!(self, ClientBody::Held { .. })
    }

    /// Can another try send the whole body: held, or streamed but not taken yet?
    pub(super) fn intact(&self) -> bool {
        !matches!(self, ClientBody::Stream(None))
    }

    /// Is there no body at all (the request's HEADERS ended the stream)? A body a
    /// failed try took is not empty: it is gone, and such a request is never resent.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            ClientBody::Held { data, trailers } => data.is_empty() && trailers.is_none(),
            ClientBody::Stream(s) => s.as_ref().is_some_and(RecvStream::is_end_stream),
        }
    }

    /// The held bytes, for a mirror.
    pub(super) fn held(&self) -> Option<&Bytes> {
        match self {
            ClientBody::Held { data, .. } => Some(data),
            ClientBody::Stream(_) => None,
        }
    }

    /// Sends the body on an upstream stream whose HEADERS did not end it; a streamed
    /// body's bytes are counted in `read` as they are taken from the client.
    pub(super) async fn send_h2(
        &mut self,
        to: &mut SendStream<Bytes>,
        read: &Cell<u64>,
    ) -> Result<(), PipeError> {
        match self {
            ClientBody::Held { data, trailers } => {
                if trailers.is_none() {
                    return send_all(to, data.clone(), true)
                        .await
                        .map_err(|_| PipeError::Sink);
                }
                send_all(to, data.clone(), false)
                    .await
                    .map_err(|_| PipeError::Sink)?;
                end(to, trailers.clone()).map_err(|_| PipeError::Sink)
            }
            ClientBody::Stream(stream) => match stream.take() {
                Some(mut s) => super::body::pipe(&mut s, to, read).await,
                None => Err(PipeError::Sink),
            },
        }
    }
}

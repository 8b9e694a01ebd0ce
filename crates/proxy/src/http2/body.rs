//! Moving an HTTP/2 body from one stream to another under flow control, and passing
//! resets both ways.

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use std::cell::Cell;
use std::future::poll_fn;

/// Why a pipe stopped early.
#[derive(Debug)]
pub enum PipeError {
    /// The sending side failed or reset; reset the receiving side with this.
    Source(Reason),
    /// The receiving side reset or closed the stream.
    Sink,
}

/// Copies DATA and trailers from `from` to `to`. Window is given back to `from`'s
/// peer only after the bytes went out on `to`, so a slow reader on either side slows
/// the writer on the other and the proxy holds at most one window per stream.
/// `moved` counts the DATA bytes passed on (access logs).
pub async fn pipe(
    from: &mut RecvStream,
    to: &mut SendStream<Bytes>,
    moved: &Cell<u64>,
) -> Result<(), PipeError> {
    loop {
        let next = tokio::select! {
            chunk = from.data() => chunk,
            reason = poll_fn(|cx| to.poll_reset(cx)) => {
                let _ = reason;
                return Err(PipeError::Sink);
            }
        };
        let Some(chunk) = next else { break };
        let mut data =
            chunk.map_err(|e| PipeError::Source(e.reason().unwrap_or(Reason::CANCEL)))?;
        let len = data.len();
        while !data.is_empty() {
            to.reserve_capacity(data.len());
            let granted = match poll_fn(|cx| to.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(_)) | None => return Err(PipeError::Sink),
            };
            let part = data.split_to(granted.min(data.len()));
            to.send_data(part, false).map_err(|_| PipeError::Sink)?;
        }
        moved.set(moved.get() + len as u64);
        let _ = from.flow_control().release_capacity(len);
    }
    let trailers = from
        .trailers()
        .await
        .map_err(|e| PipeError::Source(e.reason().unwrap_or(Reason::CANCEL)))?;
    end(to, trailers).map_err(|_| PipeError::Sink)
}

/// Ends `to` with trailers, or with an empty final DATA frame.
pub fn end(to: &mut SendStream<Bytes>, trailers: Option<HeaderMap>) -> Result<(), Reason> {
    let sent = match trailers {
        Some(t) => to.send_trailers(t),
        None => to.send_data(Bytes::new(), true),
    };
    sent.map_err(|e| e.reason().unwrap_or(Reason::CANCEL))
}

/// Sends `data` on `to`, waiting for window as needed; `end` closes the stream after.
pub async fn send_all(
    to: &mut SendStream<Bytes>,
    mut data: Bytes,
    end_stream: bool,
) -> Result<(), Reason> {
    if data.is_empty() {
        return if end_stream {
            to.send_data(Bytes::new(), true)
                .map_err(|e| e.reason().unwrap_or(Reason::CANCEL))
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| to.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e.reason().unwrap_or(Reason::CANCEL)),
            None => return Err(Reason::CANCEL),
        };
        let part = data.split_to(granted.min(data.len()));
        let last = end_stream && data.is_empty();
        to.send_data(part, last)
            .map_err(|e| e.reason().unwrap_or(Reason::CANCEL))?;
    }
    Ok(())
}

/// [`send_all`], counting the bytes in `moved` (access logs).
pub async fn send_counted(
    to: &mut SendStream<Bytes>,
    moved: &Cell<u64>,
    data: Bytes,
    end_stream: bool,
) -> Result<(), Reason> {
    moved.set(moved.get() + data.len() as u64);
    send_all(to, data, end_stream).await
}

//! Sending a request upstream: the head, then the body, streamed from the client or
//! replayed from a buffer (retries).

use super::io::{read_some, write_all, write_all_vectored};
use super::Downstream;
use bytes::{Buf, Bytes};
use mosn_protocol::http1::{write_chunk_prefix, BodyFraming, ChunkedDecoder, ChunkedItem};
use mosn_upstream::PooledConn;
use std::io::IoSlice;
use std::time::Duration;
use tokio::time::timeout;

/// Bodies up to this size that are already buffered go out in the same write as the head.
pub(super) const INLINE_BODY_MAX: usize = 16 * 1024;

/// Why sending the request upstream stopped.
pub(super) enum SendError {
    Upstream,
    DownstreamTimeout,
    DownstreamClosed,
    BadBody(&'static str),
}

/// Reads a whole Content-Length body from the client so that it can be sent more than
/// once (retries, mirrors). The caller bounds `len`.
pub(super) async fn buffer_body(conn: &mut Downstream<'_>, len: usize) -> Result<Bytes, SendError> {
    let body_timeout = conn.listener.options.body_timeout.0;
    while conn.buf.len() < len {
        read_body(conn, body_timeout, len - conn.buf.len()).await?;
    }
    Ok(conn.buf.split_to(len).freeze())
}

/// Sends the head and a body already in memory.
pub(super) async fn send_buffered(
    conn: &Downstream<'_>,
    up: &mut PooledConn,
    head_out: &[u8],
    body: &[u8],
) -> Result<(), SendError> {
    let body_timeout = conn.listener.options.body_timeout.0;
    let mut parts = [IoSlice::new(head_out), IoSlice::new(body)];
    write_all_vectored(&mut up.stream, &mut parts, body_timeout)
        .await
        .map_err(|_| SendError::Upstream)
}

/// Sends the head and streams the body from the client. The body is never held whole: each read from
/// the client is written upstream before the next.
pub(super) async fn send_request(
    conn: &mut Downstream<'_>,
    up: &mut PooledConn,
    head_out: &[u8],
    framing: BodyFraming,
) -> Result<(), SendError> {
    let body_timeout = conn.listener.options.body_timeout.0;
    let read_max = conn.listener.options.body_buffer_bytes;
    match framing {
        BodyFraming::None | BodyFraming::UntilClose => {
            write_all(&mut up.stream, head_out, body_timeout)
                .await
                .map_err(|_| SendError::Upstream)
        }
        BodyFraming::Length(total) => {
            let inline = (conn.buf.len() as u64).min(total) as usize;
            let mut remaining = total;
            if inline <= INLINE_BODY_MAX {
                let mut parts = [IoSlice::new(head_out), IoSlice::new(&conn.buf[..inline])];
                write_all_vectored(&mut up.stream, &mut parts, body_timeout)
                    .await
                    .map_err(|_| SendError::Upstream)?;
                conn.buf.advance(inline);
                remaining -= inline as u64;
            } else {
                write_all(&mut up.stream, head_out, body_timeout)
                    .await
                    .map_err(|_| SendError::Upstream)?;
            }
            while remaining > 0 {
                if conn.buf.is_empty() {
                    read_body(conn, body_timeout, read_max).await?;
                }
                let take = (conn.buf.len() as u64).min(remaining) as usize;
                write_all(&mut up.stream, &conn.buf[..take], body_timeout)
                    .await
                    .map_err(|_| SendError::Upstream)?;
                conn.buf.advance(take);
                remaining -= take as u64;
            }
            Ok(())
        }
        BodyFraming::Chunked => {
            write_all(&mut up.stream, head_out, body_timeout)
                .await
                .map_err(|_| SendError::Upstream)?;
            let mut decoder = ChunkedDecoder::new(conn.listener.limits.max_head);
            loop {
                match decoder
                    .next(&mut conn.buf)
                    .map_err(|e| SendError::BadBody(e.0))?
                {
                    Some(ChunkedItem::Data(data)) => {
                        let mut prefix = [0u8; 20];
                        let n = write_chunk_prefix(data.len(), &mut prefix);
                        let mut parts = [
                            IoSlice::new(&prefix[..n]),
                            IoSlice::new(&data),
                            IoSlice::new(b"\r\n"),
                        ];
                        write_all_vectored(&mut up.stream, &mut parts, body_timeout)
                            .await
                            .map_err(|_| SendError::Upstream)?;
                    }
                    Some(ChunkedItem::End(trailers)) => {
                        let mut parts = [
                            IoSlice::new(b"0\r\n"),
                            IoSlice::new(&trailers),
                            IoSlice::new(b"\r\n"),
                        ];
                        write_all_vectored(&mut up.stream, &mut parts, body_timeout)
                            .await
                            .map_err(|_| SendError::Upstream)?;
                        return Ok(());
                    }
                    None => read_body(conn, body_timeout, read_max).await?,
                }
            }
        }
    }
}

async fn read_body(
    conn: &mut Downstream<'_>,
    body_timeout: Duration,
    max: usize,
) -> Result<(), SendError> {
    match timeout(
        body_timeout,
        read_some(&mut conn.stream, &mut conn.buf, max),
    )
    .await
    {
        Err(_) => Err(SendError::DownstreamTimeout),
        Ok(Ok(0)) | Ok(Err(_)) => Err(SendError::DownstreamClosed),
        Ok(Ok(n)) => {
            conn.read_bytes(n as u64);
            Ok(())
        }
    }
}

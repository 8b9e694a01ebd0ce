//! Answers the proxy writes itself, and the small write helpers every step shares.

use super::io::{read_some, write_all, READ_CHUNK};
use super::local_reply::{self, LocalReply};
use super::{Downstream, Next};
use bytes::BytesMut;
use mosn_observe::Gauge;
use mosn_protocol::http1::RequestHead;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout_at, Instant};

/// After an error reply, unread request bytes are drained for at most this long so the
/// client sees the reply instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Decrements a gauge when dropped.
pub(crate) struct Active<'a>(&'a Gauge);

impl<'a> Active<'a> {
    pub(crate) fn new(g: &'a Gauge) -> Self {
        g.inc();
        Active(g)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub(super) fn next_after(close: bool) -> Next {
    if close {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

pub(super) async fn write_down(conn: &mut Downstream<'_>, bytes: &[u8]) -> std::io::Result<()> {
    write_all(
        &mut conn.stream,
        bytes,
        conn.listener.options.body_timeout.0,
    )
    .await?;
    conn.wrote_bytes(bytes.len() as u64);
    Ok(())
}

/// Sends a local reply for `head` and says how the connection goes on.
pub(super) async fn reply(
    conn: &mut Downstream<'_>,
    local: LocalReply,
    close: bool,
    head: &RequestHead,
) -> Next {
    send_local_reply(conn, local, close, head.is_head()).await;
    next_after(close)
}

/// Writes (and counts) a local reply; when the connection closes after it, lingers so
/// the client reads the reply rather than a reset caused by its own unread bytes.
pub(super) async fn send_local_reply(
    conn: &mut Downstream<'_>,
    reply: LocalReply,
    close: bool,
    head_only: bool,
) {
    reply.count(conn.stats);
    conn.note(|e| e.flags |= reply.flag());
    let mut out = Vec::with_capacity(192);
    local_reply::render(
        &mut out,
        reply.status(),
        reply.body().as_bytes(),
        close,
        head_only,
    );
    conn.responded(reply.status());
    if write_down(conn, &out).await.is_ok() && close {
        linger_close(conn).await;
    }
}

/// Writes a response the proxy makes itself (direct response, redirect), with the
/// route's response header changes, and closes after it when `close`.
pub(super) async fn send_generated(
    conn: &mut Downstream<'_>,
    status: u16,
    extra_headers: &[(&[u8], &[u8])],
    body: &[u8],
    close: bool,
    head: &RequestHead,
) -> Next {
    let mut out = Vec::with_capacity(160 + body.len());
    local_reply::render_with(&mut out, status, extra_headers, body, close, head.is_head());
    conn.responded(status);
    if write_down(conn, &out).await.is_err() {
        return Next::Close;
    }
    if close {
        linger_close(conn).await;
    }
    next_after(close)
}

/// Half-closes, then reads and discards what the client still sends, for a bounded
/// time and amount (nginx's lingering close).
pub(super) async fn linger_close(conn: &mut Downstream<'_>) {
    let _ = conn.stream.shutdown().await;
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    let mut sink = BytesMut::new();
    while drained < LINGER_BYTES {
        sink.clear();
        match timeout_at(deadline, read_some(&mut conn.stream, &mut sink, READ_CHUNK)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

//! The admin API's HTTP/1.1 server: one request per connection, bodies up to 1 MiB.

use crate::AdminState;
use bytes::BytesMut;
use mosn_protocol::http1::{
    parse_request, reason_phrase, request_framing, BodyFraming, HeadLimits, HeadWriter,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Time a client gets to send its whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body (a cluster with many hosts fits easily).
const MAX_BODY: u64 = 1024 * 1024;

pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &state)).await;
        });
    }
}

async fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let limits = HeadLimits {
        max_head: 16 * 1024,
        max_headers: 64,
        ..HeadLimits::default()
    };
    let head = loop {
        match parse_request(&mut buf, &limits) {
            Ok(Some(head)) => break head,
            Ok(None) => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
            }
            Err(e) => {
                return respond(&mut stream, e.status, "text/plain", e.reason.as_bytes()).await
            }
        }
    };
    let body_len = match request_framing(&head) {
        BodyFraming::None => 0,
        BodyFraming::Length(n) if n <= MAX_BODY => n as usize,
        BodyFraming::Length(_) => {
            return respond(&mut stream, 413, "text/plain", b"body too large").await
        }
        _ => return respond(&mut stream, 411, "text/plain", b"send a Content-Length").await,
    };
    while buf.len() < body_len {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let (status, body) = crate::route(head.method(), head.path(), &buf[..body_len], state);
    let text = serde_json::to_string_pretty(&body).unwrap_or_else(|_| "{}".into());
    if status >= 400 {
        tracing::info!(status, path = %String::from_utf8_lossy(head.path()), "admin request refused: {text}");
    }
    respond(&mut stream, status, "application/json", text.as_bytes()).await
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 128);
    let mut w = HeadWriter::new(&mut out);
    w.status_line(status, reason_phrase(status).as_bytes());
    w.header(b"Content-Type", content_type.as_bytes());
    w.content_length(body.len() as u64);
    w.header(b"Connection", b"close");
    w.finish();
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

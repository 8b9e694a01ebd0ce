//! The admin API's HTTP/1.1 server: one request per connection, bodies up to 1 MiB.

use crate::{Reply, Request};
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

/// Answers each request with what `handler` returns.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

pub async fn serve(listener: TcpListener, handler: Handler) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &handler)).await;
        });
    }
}

async fn handle(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
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
    let reply = match Request::parse(head.method(), head.path_and_query(), &buf[..body_len]) {
        Ok(req) => handler(&req),
        Err(reason) => Reply::error(400, reason),
    };
    if reply.status >= 400 {
        tracing::info!(
            status = reply.status,
            path = %String::from_utf8_lossy(head.path()),
            "admin request refused: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let then = reply.then;
    let written = respond_with(
        &mut stream,
        reply.status,
        reply.content_type,
        reply.allow,
        &reply.body,
    )
    .await;
    if let Some(then) = then {
        then();
    }
    written
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_with(stream, status, content_type, None, body).await
}

async fn respond_with(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    allow: Option<&str>,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 128);
    let mut w = HeadWriter::new(&mut out);
    w.status_line(status, reason_phrase(status).as_bytes());
    w.header(b"Content-Type", content_type.as_bytes());
    if let Some(allow) = allow {
        w.header(b"Allow", allow.as_bytes());
    }
    w.content_length(body.len() as u64);
    w.header(b"Connection", b"close");
    w.finish();
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

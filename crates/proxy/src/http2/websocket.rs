//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol websocket`
//! goes to an HTTP/1.1 upstream as an `Upgrade: websocket` GET with a key of the
//! proxy's own; only when the upstream answers 101 with the matching
//! Sec-WebSocket-Accept does the stream get its 200 and become a two-way byte tunnel
//! (DATA frames <-> the upstream connection) until either side ends or it idles.
//! Any other answer goes to the client as a plain response; no tunnel.

use super::body::send_all;
use super::stream::{local_reply, Upstream};
use crate::http1::exchange::open_connection;
use crate::http1::io::{read_some, write_all, READ_CHUNK};
use crate::http1::local_reply::LocalReply;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use mosn_protocol::http1::{is_hop_by_hop, parse_response, HeadWriter};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// RFC 6455's GUID for Sec-WebSocket-Accept.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Is this an RFC 8441 WebSocket request?
pub(super) fn requested(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::CONNECT
        && parts
            .extensions
            .get::<h2::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

pub(super) async fn forward(
    up: &Upstream<'_>,
    parts: &http::request::Parts,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    idle: Duration,
) {
    let (ctx, cluster, host) = (up.ctx, up.cluster, &up.host);
    let reply =
        |respond: &mut SendResponse<Bytes>, r: LocalReply| local_reply(ctx, respond, r, false);
    // A tunnel owns its connection: never a pooled one, never pooled after.
    let mut conn = match open_connection(cluster, host, false).await {
        Ok(c) => c,
        Err(r) => {
            if r == LocalReply::ConnectFailure {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
            }
            return reply(&mut respond, r);
        }
    };
    let key = websocket_key();
    let head = upgrade_request(up, parts, &key);
    let limit = up.listener.options.body_timeout.0;
    if write_all(&mut conn.stream, &head, limit).await.is_err() {
        return reply(&mut respond, LocalReply::UpstreamReset);
    }
    let deadline = up
        .try_deadline
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let resp = loop {
        match parse_response(&mut buf, &up.listener.upstream_limits) {
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(_) => return reply(&mut respond, LocalReply::UpstreamProtocolError),
        }
        match tokio::time::timeout_at(deadline, read_some(&mut conn.stream, &mut buf, READ_CHUNK))
            .await
        {
            Err(_) => return reply(&mut respond, LocalReply::UpstreamTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return reply(&mut respond, LocalReply::UpstreamReset),
            Ok(Ok(_)) => {}
        }
    };
    outlier::report(host, OutlierOutcome::Success(resp.status));
    cluster.stats.response(resp.status);
    let mut headers = HeaderMap::new();
    let mut accept_ok = false;
    for h in &resp.headers {
        let (name, value) = (resp.name(h), resp.value(h));
        if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
            accept_ok = value == expected_accept(&key).as_bytes();
            continue;
        }
        if resp.is_hop_header(h) || is_hop_by_hop(name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&name.to_ascii_lowercase()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    if resp.status != 101 {
        // No tunnel: the upstream's status goes back as a plain answer.
        ctx.responded(resp.status);
        let mut out = Response::builder()
            .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY));
        if let Some(h) = out.headers_mut() {
            *h = up.response_headers(headers);
        }
        if let Ok(out) = out.body(()) {
            let _ = respond.send_response(out, true);
        }
        return;
    }
    if !accept_ok {
        tracing::debug!(upstream = %host.addr, "WebSocket upgrade: Sec-WebSocket-Accept does not match the key");
        return reply(&mut respond, LocalReply::UpstreamProtocolError);
    }
    ctx.responded(200);
    let mut out = Response::builder().status(StatusCode::OK);
    if let Some(h) = out.headers_mut() {
        *h = up.response_headers(headers);
    }
    let Ok(out) = out.body(()) else { return };
    let Ok(mut down) = respond.send_response(out, false) else {
        return;
    };
    // Bytes the upstream sent right after its 101 belong to the tunnel.
    if !buf.is_empty()
        && send_all(&mut down, buf.split().freeze(), false)
            .await
            .is_err()
    {
        return;
    }
    let last = std::cell::Cell::new(Instant::now());
    let (mut up_read, mut up_write) = tokio::io::split(&mut conn.stream);
    let client_to_upstream = async {
        while let Some(chunk) = body.data().await {
            let Ok(data) = chunk else { return };
            last.set(Instant::now());
            let len = data.len();
            if up_write.write_all(&data).await.is_err() {
                return;
            }
            let _ = body.flow_control().release_capacity(len);
        }
        // The client's END_STREAM: half-close towards the upstream.
        let _ = up_write.shutdown().await;
        std::future::pending::<()>().await;
    };
    let upstream_to_client = async {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            match read_some(&mut up_read, &mut rbuf, READ_CHUNK).await {
                Ok(0) | Err(_) => {
                    let _ = down.send_data(Bytes::new(), true);
                    return;
                }
                Ok(_) => {
                    last.set(Instant::now());
                    if send_all(&mut down, rbuf.split().freeze(), false)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let idle_watch = async {
        loop {
            let until = last.get() + idle;
            tokio::time::sleep_until(until).await;
            if last.get().elapsed() >= idle {
                return;
            }
        }
    };
    tokio::select! {
        () = client_to_upstream => {}
        () = upstream_to_client => {}
        () = idle_watch => {}
    }
}

/// The HTTP/1.1 upgrade request for an extended CONNECT: `:path` and `:authority`
/// (as the route rewrites them), the client's fields except those RFC 8441 says the
/// HTTP/2 client omits and the proxy makes itself.
fn upgrade_request(up: &Upstream<'_>, parts: &http::request::Parts, key: &str) -> Vec<u8> {
    let headers = up.request_headers(parts);
    let mut head = Vec::with_capacity(512);
    let mut w = HeadWriter::new(&mut head);
    w.request_line(b"GET", up.path_and_query(parts).as_bytes());
    w.header(b"Host", up.authority(parts).as_bytes());
    for (name, value) in headers.iter() {
        let n = name.as_str().as_bytes();
        if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"sec-websocket-key") {
            continue;
        }
        w.header(n, value.as_bytes());
    }
    w.header(b"Connection", b"Upgrade");
    w.header(b"Upgrade", b"websocket");
    w.header(b"Sec-WebSocket-Key", key.as_bytes());
    if !headers.contains_key("sec-websocket-version") {
        w.header(b"Sec-WebSocket-Version", b"13");
    }
    w.finish();
    head
}

/// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
fn websocket_key() -> String {
    let bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    base64(&bytes)
}

/// The Sec-WebSocket-Accept an upstream must answer to `key` (RFC 6455 §4.2.2).
fn expected_accept(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(WS_GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64(digest.as_ref())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_of_rfc6455s_example() {
        assert_eq!(
            expected_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(websocket_key().len(), 24);
    }
}

//! An HTTP/2 stream forwarded to an HTTP/1.1 upstream: the request converted to an
//! HTTP/1.1 head (`:authority` becomes Host), the body streamed (chunked when its
//! length is unknown, trailers carried), the response converted back.

use super::body::{self, send_counted};
use super::client_body::ClientBody;
use super::forward::TryEnd;
use super::stream::Upstream;
use crate::http1::exchange::take_connection;
use crate::http1::io::{read_some, write_all, READ_CHUNK};
use crate::http1::local_reply::LocalReply;
use crate::retry::{self, TryFailure};
use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use mosn_protocol::http1::{
    chunk, is_hop_by_hop, last_chunk, parse_response, response_framing, BodyFraming,
    ChunkedDecoder, ChunkedItem, HeadWriter,
};
use mosn_router::RetryPolicy;
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::pool;
use std::time::Duration;
use tokio::time::Instant;

/// One try on an HTTP/1.1 upstream: send the converted request, read the response
/// head, and relay the response unless the policy retries its status.
pub(super) async fn try_once<'c>(
    up: &Upstream<'c>,
    parts: &http::request::Parts,
    body: &mut ClientBody,
    respond: &mut SendResponse<Bytes>,
    status_retry: Option<&RetryPolicy>,
) -> TryEnd<'c> {
    let (ctx, cluster, host) = (up.ctx, up.cluster, &up.host);
    let write_limit = up.listener.options.body_timeout.0;
    let mut conn = match take_connection(cluster, host).await {
        Ok(c) => c,
        Err(LocalReply::ConnectFailure) => {
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, Duration::ZERO, None);
            return TryEnd::Failed(TryFailure::Connect);
        }
        Err(reply) => return TryEnd::Reply(reply),
    };
    let started = Instant::now();
    let reused = conn.reused;
    // The head: a known length is kept; otherwise a body goes chunked.
    let headers = up.request_headers(parts);
    let has_body = !body.is_empty();
    let chunked = has_body && !headers.contains_key(http::header::CONTENT_LENGTH);
    let head = request_head(
        parts.method.as_str(),
        &up.path_and_query(parts),
        &up.authority(parts),
        &headers,
        chunked,
    );
    let write_failed = TryEnd::Failed(TryFailure::Reset {
        stale_pooled: reused,
    });
    if write_all(&mut conn.stream, &head, write_limit)
        .await
        .is_err()
    {
        return write_failed;
    }
    // The body, each DATA frame written before its window is given back.
    match body {
        ClientBody::Held { data, trailers } => {
            let sent = if chunked {
                let mut out = chunk(data);
                out.extend_from_slice(&end_chunk(trailers.as_ref()));
                write_all(&mut conn.stream, &out, write_limit).await
            } else {
                write_all(&mut conn.stream, data, write_limit).await
            };
            if sent.is_err() {
                return write_failed;
            }
        }
        ClientBody::Stream(stream) => {
            let Some(mut stream) = stream.take() else {
                return TryEnd::Reply(LocalReply::UpstreamReset);
            };
            while let Some(frame) = stream.data().await {
                // The client reset: drop the upstream connection.
                let Ok(data) = frame else { return TryEnd::Done };
                let len = data.len();
                ctx.body_in.set(ctx.body_in.get() + len as u64);
                let sent = if chunked {
                    write_all(&mut conn.stream, &chunk(&data), write_limit).await
                } else {
                    write_all(&mut conn.stream, &data, write_limit).await
                };
                if sent.is_err() {
                    return TryEnd::Reply(LocalReply::UpstreamReset);
                }
                let _ = stream.flow_control().release_capacity(len);
            }
            let trailers = stream.trailers().await.ok().flatten();
            if chunked
                && write_all(&mut conn.stream, &end_chunk(trailers.as_ref()), write_limit)
                    .await
                    .is_err()
            {
                return TryEnd::Reply(LocalReply::UpstreamReset);
            }
        }
    }
    // The response head, interim responses skipped.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let deadline = up
        .try_deadline
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
    let resp = loop {
        match parse_response(&mut buf, &up.listener.upstream_limits) {
            Ok(Some(r)) if r.status >= 200 => break r,
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(_) => {
                cluster.request_done(host, started.elapsed(), None);
                return TryEnd::Reply(LocalReply::UpstreamProtocolError);
            }
        }
        match tokio::time::timeout_at(deadline, read_some(&mut conn.stream, &mut buf, READ_CHUNK))
            .await
        {
            Err(_) => {
                cluster.request_done(host, started.elapsed(), None);
                return up.timed_out();
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                // A pooled connection the upstream had closed is not the host's fault.
                let stale_pooled = reused && buf.is_empty();
                if !stale_pooled {
                    outlier::report(host, OutlierOutcome::LocalOriginFailure);
                    cluster.request_done(host, started.elapsed(), None);
                }
                return TryEnd::Failed(TryFailure::Reset { stale_pooled });
            }
            Ok(Ok(_)) => {}
        }
    };
    outlier::report(host, OutlierOutcome::Success(resp.status));
    cluster.request_done(host, started.elapsed(), Some(resp.status));
    cluster.stats.response(resp.status);
    if status_retry.is_some_and(|p| p.retry_on_status(resp.status)) {
        match retry::permit(cluster) {
            // The connection is dropped with the unread response.
            Some(permit) => return TryEnd::RetryStatus(resp.status, permit),
            None => cluster.stats.upstream_request_retry_overflow.inc(),
        }
    }
    ctx.responded(resp.status);
    let framing = response_framing(&resp, parts.method == http::Method::HEAD);
    let mut out_headers = HeaderMap::new();
    for h in &resp.headers {
        if resp.is_hop_header(h) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(resp.name(h)),
            HeaderValue::from_bytes(resp.value(h)),
        ) {
            out_headers.append(n, v);
        }
    }
    ctx.keep_response(&out_headers);
    let mut out = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(h) = out.headers_mut() {
        *h = up.response_headers(out_headers);
    }
    let Ok(out) = out.body(()) else {
        return TryEnd::Done;
    };
    let end = framing == BodyFraming::None;
    let Ok(mut down) = respond.send_response(out, end) else {
        return TryEnd::Done;
    };
    if end {
        if resp.allows_reuse() && buf.is_empty() {
            pool::checkin(conn);
        }
        return TryEnd::Done;
    }
    let stall = up.listener.options.body_timeout.0;
    let clean = match framing {
        BodyFraming::Length(mut remaining) => loop {
            let take = (buf.len() as u64).min(remaining) as usize;
            if take > 0 {
                if send_counted(
                    &mut down,
                    &ctx.body_out,
                    buf.split_to(take).freeze(),
                    take as u64 == remaining,
                )
                .await
                .is_err()
                {
                    break false;
                }
                remaining -= take as u64;
            }
            if remaining == 0 {
                break true;
            }
            if !matches!(tokio::time::timeout(stall, read_some(&mut conn.stream, &mut buf, READ_CHUNK)).await, Ok(Ok(n)) if n > 0)
            {
                down.send_reset(h2::Reason::INTERNAL_ERROR);
                break false;
            }
        },
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(up.listener.upstream_limits.max_head);
            loop {
                match decoder.next(&mut buf) {
                    Ok(Some(ChunkedItem::Data(data))) => {
                        if send_counted(&mut down, &ctx.body_out, data, false)
                            .await
                            .is_err()
                        {
                            break false;
                        }
                    }
                    Ok(Some(ChunkedItem::End(trailers))) => {
                        let _ = body::end(&mut down, parse_trailers(&trailers));
                        break true;
                    }
                    Ok(None) => {
                        if !matches!(tokio::time::timeout(stall, read_some(&mut conn.stream, &mut buf, READ_CHUNK)).await, Ok(Ok(n)) if n > 0)
                        {
                            down.send_reset(h2::Reason::INTERNAL_ERROR);
                            break false;
                        }
                    }
                    Err(_) => {
                        down.send_reset(h2::Reason::PROTOCOL_ERROR);
                        break false;
                    }
                }
            }
        }
        BodyFraming::UntilClose => loop {
            if !buf.is_empty()
                && send_counted(&mut down, &ctx.body_out, buf.split().freeze(), false)
                    .await
                    .is_err()
            {
                break false;
            }
            match tokio::time::timeout(stall, read_some(&mut conn.stream, &mut buf, READ_CHUNK))
                .await
            {
                Ok(Ok(0)) => {
                    let _ = body::end(&mut down, None);
                    break false; // the connection is spent
                }
                Ok(Ok(_)) => {}
                _ => {
                    down.send_reset(h2::Reason::INTERNAL_ERROR);
                    break false;
                }
            }
        },
        BodyFraming::None => true,
    };
    if clean && framing != BodyFraming::UntilClose && resp.allows_reuse() && !buf.has_remaining() {
        pool::checkin(conn);
    }
    TryEnd::Done
}

/// The HTTP/1.1 request head for an HTTP/2 request: `:authority` as Host,
/// connection-specific fields dropped, cookie crumbs joined into one field.
pub(super) fn request_head(
    method: &str,
    path_and_query: &str,
    authority: &str,
    headers: &HeaderMap,
    chunked: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let mut w = HeadWriter::new(&mut head);
    w.request_line(method.as_bytes(), path_and_query.as_bytes());
    w.header(b"Host", authority.as_bytes());
    for (name, value) in headers.iter() {
        if is_hop_by_hop(name.as_str().as_bytes()) || name == http::header::COOKIE {
            continue;
        }
        w.header(name.as_str().as_bytes(), value.as_bytes());
    }
    // HTTP/2 may split Cookie into crumbs; HTTP/1.1 wants one field (RFC 9113 §8.2.3).
    let crumbs: Vec<&[u8]> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if !crumbs.is_empty() {
        w.header(b"Cookie", &crumbs.join(&b"; "[..]));
    }
    if chunked {
        w.header(b"Transfer-Encoding", b"chunked");
    }
    w.finish();
    head
}

/// The last chunk of a chunked body, carrying the trailers.
fn end_chunk(trailers: Option<&HeaderMap>) -> Vec<u8> {
    last_chunk(
        trailers
            .into_iter()
            .flatten()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    )
}

/// Trailer lines of a chunked body as an `http::HeaderMap` (already validated).
pub(crate) fn parse_trailers(raw: &[u8]) -> Option<HeaderMap> {
    if raw.is_empty() {
        return None;
    }
    let mut map = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    Some(map)
}

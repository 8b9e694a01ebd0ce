//! An HTTP/1.1 request forwarded to an HTTP/2 upstream: Host becomes `:authority`,
//! connection-specific fields are dropped, the body streams as DATA under the
//! upstream's flow control, and the response comes back as HTTP/1.1 (chunked when its
//! length is unknown, with trailers).

use super::headers::RouterView;
use super::io::{read_some, write_all, READ_CHUNK};
use super::local_reply::LocalReply;
use super::reply::{next_after, reply, write_down};
use super::{Downstream, Next};
use crate::http2::body::{end as end_stream, send_all};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_protocol::http1::{
    chunk, is_hop_by_hop, last_chunk, reason_phrase, BodyFraming, ChunkedDecoder, ChunkedItem,
    HeadWriter, RequestHead,
};
use mosn_router::{ClusterAction, RequestView, Route};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::{ActiveRequest, Cluster, Host};
use std::sync::Arc;
use tokio::time::Instant;

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    framing: BodyFraming,
    route: &Route,
    action: &ClusterAction,
    cluster: &Cluster,
    host: &Arc<Host>,
    drop_expect: bool,
    close_after_reply: bool,
) -> Next {
    let _active = ActiveRequest::new(host);
    cluster.stats.upstream_request_total.inc();
    let (mut sender, _slot) =
        match crate::http2::pool::sender(cluster, host, &conn.listener.http2).await {
            Ok(s) => s,
            Err(local) => {
                if local == LocalReply::ConnectFailure {
                    outlier::report(host, OutlierOutcome::LocalOriginFailure);
                }
                return reply(conn, local, close_after_reply, head).await;
            }
        };
    let view = RouterView(head, conn.peer);
    let hostname = (!host.hostname.is_empty()).then_some(host.hostname.as_str());
    let authority = match action.host_rewrite.host(&view, hostname) {
        Some(h) => h.to_vec(),
        None if !view.host().is_empty() => view.host().to_vec(),
        None => host.authority.as_bytes().to_vec(),
    };
    let path = action
        .rewrite_path(head.path_and_query())
        .unwrap_or_else(|| head.path_and_query().to_vec());
    let uri = format!(
        "http://{}{}",
        String::from_utf8_lossy(&authority),
        String::from_utf8_lossy(&path)
    );
    let mut headers = HeaderMap::new();
    for h in &head.headers {
        let name = head.name(h);
        if head.is_hop_header(h)
            || name.eq_ignore_ascii_case(b"host")
            || (drop_expect && name.eq_ignore_ascii_case(b"expect"))
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&name.to_ascii_lowercase()),
            HeaderValue::from_bytes(head.value(h)),
        ) {
            headers.append(n, v);
        }
    }
    // HTTP/2 allows `te: trailers` only (gRPC needs it); the other TE values are hop-by-hop.
    if head
        .header("te")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"trailers"))
    {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if head.info.chunked {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    crate::http2::apply_header_ops(
        &mut headers,
        &route.headers.request_remove,
        &route.headers.request_add,
    );
    if conn.listener.options.add_x_forwarded_for {
        crate::http2::append_forwarded_for(&mut headers, conn.peer);
    }
    crate::xfcc::apply(&mut headers, conn.client_cert.action(conn.listener.xfcc));
    if let Some(span) = conn.span.as_deref_mut() {
        crate::trace::UpstreamContext::for_try(span, host.addr).apply(&mut headers);
    }
    let mut builder = Request::builder()
        .method(head.method())
        .uri(uri)
        .version(http::Version::HTTP_2);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(request) = builder.body(()) else {
        return reply(
            conn,
            LocalReply::BadRequest(400, "request not expressible in HTTP/2"),
            true,
            head,
        )
        .await;
    };
    let has_body = framing.has_body();
    let started = Instant::now();
    let (response, mut up) = match sender.send_request(request, !has_body) {
        Ok(pair) => pair,
        Err(_) => return reply(conn, LocalReply::UpstreamReset, true, head).await,
    };
    if has_body && send_body(conn, &mut up, framing).await.is_err() {
        up.send_reset(h2::Reason::CANCEL);
        return reply(conn, LocalReply::UpstreamReset, true, head).await;
    }
    let timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    let response = match timeout {
        Some(t) => match tokio::time::timeout_at(Instant::now() + t, response).await {
            Ok(r) => r,
            Err(_) => {
                cluster.stats.upstream_request_timeout.inc();
                cluster.request_done(host, started.elapsed(), None);
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                return reply(conn, LocalReply::UpstreamTimeout, close_after_reply, head).await;
            }
        },
        None => response.await,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            cluster.stats.upstream_request_reset.inc();
            if crate::http2::never_processed(&e) {
                // Refused, or cut by the upstream's GOAWAY: forget that connection; the
                // client gets a 503 it may retry.
                crate::http2::pool::forget(host.addr);
                return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
            }
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, started.elapsed(), None);
            return reply(conn, LocalReply::UpstreamReset, close_after_reply, head).await;
        }
    };
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    cluster.request_done(host, started.elapsed(), Some(status));
    outlier::report(host, OutlierOutcome::Success(status));
    cluster.stats.response(status);
    conn.responded(status);
    if let Some(e) = conn.log.as_deref_mut() {
        conn.listener.access_logs.keep_response(e, |name| {
            parts.headers.get(name).map(http::HeaderValue::as_bytes)
        });
    }
    // The head for the client: a known length is kept, else chunked (HTTP/1.1) or close.
    let client_11 = head.version == mosn_protocol::http1::Version::Http11;
    let no_body = head.is_head()
        || status == 204
        || status == 304
        || body.is_end_stream() && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let length_known = parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let chunked = !no_body && !length_known && client_11;
    let close = close_after_reply && has_body
        || !head.wants_keep_alive()
        || (!no_body && !length_known && !client_11);
    let mut out = Vec::with_capacity(256);
    let mut w = HeadWriter::new(&mut out);
    w.status_line(status, reason_phrase(status).as_bytes());
    for (name, value) in parts.headers.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n.as_bytes())
            || route
                .headers
                .response_remove
                .iter()
                .any(|r| r.eq_ignore_ascii_case(n))
            || route
                .headers
                .response_add
                .iter()
                .any(|a| !a.append && a.lower_name == n)
        {
            continue;
        }
        w.header(n.as_bytes(), value.as_bytes());
    }
    for a in &route.headers.response_add {
        w.header(a.name.as_bytes(), a.value.as_bytes());
    }
    if no_body && !length_known && !head.is_head() && status != 204 && status != 304 {
        w.content_length(0);
    }
    if chunked {
        w.header(b"Transfer-Encoding", b"chunked");
    }
    if close {
        w.header(b"Connection", b"close");
    }
    w.finish();
    if write_down(conn, &out).await.is_err() {
        return Next::Close;
    }
    if no_body {
        return next_after(close);
    }
    let limit = conn.listener.options.body_timeout.0;
    while let Some(frame) = body.data().await {
        let Ok(data) = frame else { return Next::Close };
        let len = data.len();
        let written = if chunked {
            write_all(&mut conn.stream, &chunk(&data), limit).await
        } else {
            write_all(&mut conn.stream, &data, limit).await
        };
        if written.is_err() {
            return Next::Close;
        }
        let _ = body.flow_control().release_capacity(len);
    }
    if chunked {
        let trailers = body.trailers().await.ok().flatten();
        let end = last_chunk(
            trailers
                .iter()
                .flatten()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        );
        if write_all(&mut conn.stream, &end, limit).await.is_err() {
            return Next::Close;
        }
    }
    next_after(close)
}

/// Streams the client's body as DATA frames (trailers of a chunked body become
/// HTTP/2 trailers).
async fn send_body(
    conn: &mut Downstream<'_>,
    up: &mut h2::SendStream<Bytes>,
    framing: BodyFraming,
) -> Result<(), ()> {
    match framing {
        BodyFraming::Length(mut remaining) => {
            while remaining > 0 {
                if conn.buf.is_empty() {
                    read_client(conn).await?;
                }
                let take = (conn.buf.len() as u64).min(remaining) as usize;
                remaining -= take as u64;
                let data = conn.buf.split_to(take).freeze();
                send_all(up, data, remaining == 0).await.map_err(|_| ())?;
            }
            Ok(())
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(conn.listener.limits.max_head);
            loop {
                match decoder.next(&mut conn.buf).map_err(|_| ())? {
                    Some(ChunkedItem::Data(data)) => {
                        send_all(up, data, false).await.map_err(|_| ())?
                    }
                    Some(ChunkedItem::End(trailers)) => {
                        let map = crate::http2::h1_trailers(&trailers);
                        return end_stream(up, map).map_err(|_| ());
                    }
                    None => read_client(conn).await?,
                }
            }
        }
        _ => Ok(()),
    }
}

/// One read of the client's body, within the body timeout.
async fn read_client(conn: &mut Downstream<'_>) -> Result<(), ()> {
    let limit = conn.listener.options.body_timeout.0;
    match tokio::time::timeout(
        limit,
        read_some(&mut conn.stream, &mut conn.buf, READ_CHUNK),
    )
    .await
    {
        Ok(Ok(n)) if n > 0 => {
            conn.read_bytes(n as u64);
            Ok(())
        }
        _ => Err(()),
    }
}

//! One request/response exchange: route, pick a host, forward the request, relay the
//! response, and decide whether both connections can carry another exchange.

use super::headers::{self, DownstreamBody, DownstreamResponse, RouterView, UpstreamRequest};
use super::io::{peer_gone, read_some, write_all, write_all_vectored, READ_CHUNK};
use super::local_reply::{self, LocalReply};
use super::{Downstream, Next};
use crate::shutdown::Shutdown;
use bytes::{Buf, BytesMut};
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_observe::Gauge;
use mosn_protocol::http1::{
    parse_response, request_framing, response_framing, write_chunk_prefix, BodyFraming,
    ChunkedDecoder, ChunkedItem, RequestHead, ResponseHead, Version,
};
use mosn_router::{Route, RouteAction};
use mosn_upstream::breaker::try_acquire_owned;
use mosn_upstream::{pool, ActiveRequest, Cluster, Host, LbContext, PooledConn};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, timeout_at, Instant};

/// Bodies up to this size that are already buffered go out in the same write as the head.
const INLINE_BODY_MAX: usize = 16 * 1024;
/// After an error reply, unread request bytes are drained for at most this long so the
/// client sees the reply instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Decrements a gauge when dropped.
struct Active<'a>(&'a Gauge);

impl<'a> Active<'a> {
    fn new(g: &'a Gauge) -> Self {
        g.inc();
        Active(g)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub(super) async fn run(conn: &mut Downstream<'_>, head: RequestHead, shutdown: &Shutdown) -> Next {
    let stats = conn.stats;
    stats.downstream_request_total.inc();
    let _active = Active::new(&stats.downstream_request_active);
    let framing = request_framing(&head);
    // Any local reply sent before the request body was read must close the
    // connection: the unread body would otherwise be taken for the next request.
    let close_after_reply =
        framing.has_body() || !head.wants_keep_alive() || shutdown.is_draining();
    if head.is_connect() {
        let unsupported = LocalReply::BadRequest(501, "CONNECT is not supported");
        send_local_reply(conn, unsupported, true, false).await;
        return Next::Close;
    }
    let Some(route) = conn.listener.routes.route(&RouterView(&head)) else {
        return reply(conn, LocalReply::NoRoute, close_after_reply, &head).await;
    };
    match &route.action {
        RouteAction::DirectResponse { status, body } => {
            stats.direct_response.inc();
            let mut out = Vec::with_capacity(128 + body.len());
            local_reply::render(&mut out, *status, body, close_after_reply, head.is_head());
            stats.response(*status);
            if write_down(conn, &out).await.is_err() {
                return Next::Close;
            }
            if close_after_reply {
                linger_close(conn).await;
            }
            next_after(close_after_reply)
        }
        RouteAction::Cluster { name, timeout } => {
            let Some(cluster) = conn.listener.clusters.get(name) else {
                return reply(
                    conn,
                    LocalReply::NoHealthyUpstream,
                    close_after_reply,
                    &head,
                )
                .await;
            };
            let route_timeout = timeout.unwrap_or(DEFAULT_ROUTE_TIMEOUT);
            forward(
                conn,
                &head,
                framing,
                route,
                &cluster,
                route_timeout,
                shutdown,
            )
            .await
        }
    }
}

fn next_after(close: bool) -> Next {
    if close {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

/// Why sending the request upstream stopped.
enum SendError {
    Upstream,
    DownstreamTimeout,
    DownstreamClosed,
    BadBody(&'static str),
}

/// Why relaying the response stopped before its head was sent downstream.
enum ResponseError {
    /// The upstream closed or failed; `nothing_received` allows a retry.
    Reset {
        nothing_received: bool,
    },
    Timeout,
    Protocol,
    DownstreamGone,
}

async fn forward(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    framing: BodyFraming,
    route: &Route,
    cluster: &Cluster,
    route_timeout: Duration,
    shutdown: &Shutdown,
) -> Next {
    let stats = conn.stats;
    let close_after_reply =
        framing.has_body() || !head.wants_keep_alive() || shutdown.is_draining();
    let Some(host) = cluster.choose_host(&LbContext::default()) else {
        return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
    };
    // The cluster's request breaker: over the cap, refuse at once.
    let Some(_request_permit) = cluster.breakers.requests.try_acquire() else {
        cluster.stats.upstream_request_overflow.inc();
        return reply(conn, LocalReply::Overflow, close_after_reply, head).await;
    };
    let _host_active = ActiveRequest::new(&host);
    // Like Envoy and nginx, answer `Expect: 100-continue` here once the request has an
    // upstream, so a client never waits on an upstream that ignores Expect.
    let answer_continue =
        head.expect_continue && framing.has_body() && head.version == Version::Http11;
    if answer_continue
        && write_down(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Next::Close;
    }
    let mut head_out = Vec::with_capacity(head.buf.len() + 128);
    headers::write_upstream_request(
        &mut head_out,
        head,
        &UpstreamRequest {
            remove: &route.headers.request_remove,
            add: &route.headers.request_add,
            forwarded_for: conn
                .listener
                .options
                .add_x_forwarded_for
                .then_some(conn.peer_ip.as_str()),
            drop_expect: answer_continue,
            fallback_host: &host.authority,
        },
    );
    // A request without a body can be sent again when a pooled connection turns out
    // to have been closed by the upstream before it read anything (the keep-alive race).
    let can_retry = !framing.has_body();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut up = match take_connection(cluster, &host).await {
            Ok(up) => up,
            Err(failure) => return reply(conn, failure, close_after_reply, head).await,
        };
        let reused = up.reused;
        cluster.stats.upstream_request_total.inc();
        let _up_active = Active::new(&cluster.stats.upstream_request_active);
        match send_request(conn, &mut up, &head_out, framing).await {
            Ok(()) => {}
            Err(SendError::Upstream) if reused && can_retry && attempt == 1 => continue,
            Err(SendError::Upstream) => {
                cluster.stats.upstream_request_reset.inc();
                send_local_reply(conn, LocalReply::UpstreamReset, true, head.is_head()).await;
                return Next::Close;
            }
            Err(SendError::DownstreamTimeout) => {
                send_local_reply(conn, LocalReply::RequestTimeout, true, false).await;
                return Next::Close;
            }
            Err(SendError::BadBody(reason)) => {
                send_local_reply(conn, LocalReply::BadRequest(400, reason), true, false).await;
                return Next::Close;
            }
            Err(SendError::DownstreamClosed) => {
                stats.downstream_cancel.inc();
                return Next::Close;
            }
        }
        match relay_response(
            conn,
            up,
            host.addr,
            head,
            route,
            cluster,
            route_timeout,
            shutdown,
        )
        .await
        {
            Ok(next) => return next,
            Err(ResponseError::Reset {
                nothing_received: true,
            }) if reused && can_retry && attempt == 1 => continue,
            Err(ResponseError::Reset { .. }) => {
                cluster.stats.upstream_request_reset.inc();
                return reply(conn, LocalReply::UpstreamReset, close_after_reply, head).await;
            }
            Err(ResponseError::Timeout) => {
                cluster.stats.upstream_request_timeout.inc();
                return reply(conn, LocalReply::UpstreamTimeout, close_after_reply, head).await;
            }
            Err(ResponseError::Protocol) => {
                return reply(
                    conn,
                    LocalReply::UpstreamProtocolError,
                    close_after_reply,
                    head,
                )
                .await;
            }
            Err(ResponseError::DownstreamGone) => {
                stats.downstream_cancel.inc();
                return Next::Close;
            }
        }
    }
}

/// An idle pooled connection of this worker, or a new one within the cluster's
/// connection and pending-request breakers.
async fn take_connection(cluster: &Cluster, host: &Arc<Host>) -> Result<PooledConn, LocalReply> {
    if let Some(conn) = pool::checkout(host.addr) {
        cluster.stats.upstream_connection_reused.inc();
        return Ok(conn);
    }
    let Some(_pending) = cluster.breakers.pending_requests.try_acquire() else {
        cluster.stats.upstream_request_pending_overflow.inc();
        return Err(LocalReply::Overflow);
    };
    let Some(cx_permit) = try_acquire_owned(&cluster.breakers.connections) else {
        cluster.stats.upstream_connection_overflow.inc();
        return Err(LocalReply::Overflow);
    };
    cluster.stats.upstream_connection_total.inc();
    match pool::connect(host, cluster.connect_timeout, Some(cx_permit)).await {
        Ok(conn) => Ok(conn),
        Err(e) => {
            if matches!(e, mosn_upstream::ConnectError::Timeout(_)) {
                cluster.stats.upstream_connection_connect_timeout.inc();
            }
            cluster.stats.upstream_connection_connect_fail.inc();
            tracing::debug!(error = %e, "upstream connect failed");
            Err(LocalReply::ConnectFailure)
        }
    }
}

/// Sends the head and streams the body. The body is never held whole: each read from
/// the client is written upstream before the next.
async fn send_request(
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
            conn.stats.downstream_bytes_read_total.add(n as u64);
            Ok(())
        }
    }
}

/// Reads the response head (relaying interim responses), then streams the response.
#[allow(clippy::too_many_arguments)]
async fn relay_response(
    conn: &mut Downstream<'_>,
    mut up: PooledConn,
    addr: std::net::SocketAddr,
    head: &RequestHead,
    route: &Route,
    cluster: &Cluster,
    route_timeout: Duration,
    shutdown: &Shutdown,
) -> Result<Next, ResponseError> {
    let deadline = Instant::now() + route_timeout;
    let mut ubuf = BytesMut::with_capacity(READ_CHUNK);
    let mut interim_seen = false;
    let pipeline_limit = conn.listener.limits.max_head;
    let resp: ResponseHead = loop {
        if !ubuf.is_empty() {
            match parse_response(&mut ubuf, &conn.listener.upstream_limits) {
                Ok(Some(r)) if r.status >= 200 => break r,
                Ok(Some(r)) => {
                    interim_seen = true;
                    if r.status == 101 {
                        // Upgrades are not forwarded yet (hop-by-hop Upgrade was dropped),
                        // so a 101 here is an upstream that ignored that.
                        return Err(ResponseError::Protocol);
                    }
                    if r.status == 103 && head.version == Version::Http11 {
                        let mut out = Vec::with_capacity(r.buf.len());
                        headers::write_interim(&mut out, &r);
                        write_down(conn, &out)
                            .await
                            .map_err(|_| ResponseError::DownstreamGone)?;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => return Err(ResponseError::Protocol),
            }
        }
        tokio::select! {
            read = timeout_at(deadline, read_some(&mut up.stream, &mut ubuf, READ_CHUNK)) => match read {
                Err(_) => return Err(ResponseError::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(ResponseError::Reset { nothing_received: ubuf.is_empty() && !interim_seen })
                }
                Ok(Ok(_)) => {}
            },
            _ = peer_gone(&conn.stream, &mut conn.buf, pipeline_limit) => return Err(ResponseError::DownstreamGone),
        }
    };
    let stats = conn.stats;
    cluster.stats.response(resp.status);
    stats.response(resp.status);
    let framing = response_framing(&resp, head.is_head());
    let client_11 = head.version == Version::Http11;
    let body_mode = match framing {
        BodyFraming::None | BodyFraming::Length(_) => DownstreamBody::AsIs,
        BodyFraming::Chunked | BodyFraming::UntilClose if client_11 => DownstreamBody::Chunked,
        BodyFraming::Chunked | BodyFraming::UntilClose => DownstreamBody::UntilClose,
    };
    let close = !head.wants_keep_alive()
        || body_mode == DownstreamBody::UntilClose
        || shutdown.is_draining();
    let mut out = Vec::with_capacity(resp.buf.len() + 64);
    headers::write_downstream_response(
        &mut out,
        &resp,
        &DownstreamResponse {
            remove: &route.headers.response_remove,
            add: &route.headers.response_add,
            body: body_mode,
            close,
            keep_alive_10: !client_11 && !close,
        },
    );
    // A small body already read travels with the head in one write.
    if let BodyFraming::Length(n) = framing {
        if (n as usize) <= INLINE_BODY_MAX && ubuf.len() as u64 >= n {
            out.extend_from_slice(&ubuf[..n as usize]);
            ubuf.advance(n as usize);
            write_down(conn, &out)
                .await
                .map_err(|_| ResponseError::DownstreamGone)?;
            return Ok(finish(up, addr, &resp, framing, &ubuf, cluster, close));
        }
    }
    if write_down(conn, &out).await.is_err() {
        return Err(ResponseError::DownstreamGone);
    }
    match stream_response_body(conn, &mut up, &mut ubuf, framing, body_mode).await {
        Ok(()) => Ok(finish(up, addr, &resp, framing, &ubuf, cluster, close)),
        // The head is out: the only way left to signal failure is to close.
        Err(()) => Ok(Next::Close),
    }
}

/// After a complete response: pool the upstream connection when it is clean.
fn finish(
    up: PooledConn,
    addr: std::net::SocketAddr,
    resp: &ResponseHead,
    framing: BodyFraming,
    leftover: &BytesMut,
    cluster: &Cluster,
    close: bool,
) -> Next {
    let under_limit =
        cluster.max_request_per_conn == 0 || up.requests < cluster.max_request_per_conn;
    if framing != BodyFraming::UntilClose
        && resp.allows_reuse()
        && leftover.is_empty()
        && under_limit
    {
        pool::checkin(addr, up);
    }
    next_after(close)
}

/// Streams the response body from upstream to the client in the chosen framing.
/// `Err(())`: either side failed; both connections are then closed.
async fn stream_response_body(
    conn: &mut Downstream<'_>,
    up: &mut PooledConn,
    ubuf: &mut BytesMut,
    framing: BodyFraming,
    mode: DownstreamBody,
) -> Result<(), ()> {
    let body_timeout = conn.listener.options.body_timeout.0;
    let read_max = conn.listener.options.body_buffer_bytes;
    match framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(total) => {
            let mut remaining = total;
            loop {
                let take = (ubuf.len() as u64).min(remaining) as usize;
                if take > 0 {
                    write_down(conn, &ubuf[..take]).await.map_err(|_| ())?;
                    ubuf.advance(take);
                    remaining -= take as u64;
                }
                if remaining == 0 {
                    return Ok(());
                }
                if read_upstream(up, ubuf, body_timeout, read_max).await? == 0 {
                    return Err(());
                }
            }
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(conn.listener.upstream_limits.max_head);
            loop {
                match decoder.next(ubuf).map_err(|_| ())? {
                    Some(ChunkedItem::Data(data)) => send_body_piece(conn, &data, mode).await?,
                    Some(ChunkedItem::End(trailers)) => {
                        if mode == DownstreamBody::Chunked {
                            let mut parts = [
                                IoSlice::new(b"0\r\n"),
                                IoSlice::new(&trailers),
                                IoSlice::new(b"\r\n"),
                            ];
                            write_all_vectored(
                                &mut conn.stream,
                                &mut parts,
                                conn.listener.options.body_timeout.0,
                            )
                            .await
                            .map_err(|_| ())?;
                        }
                        return Ok(());
                    }
                    None => {
                        if read_upstream(up, ubuf, body_timeout, read_max).await? == 0 {
                            return Err(());
                        }
                    }
                }
            }
        }
        BodyFraming::UntilClose => loop {
            if !ubuf.is_empty() {
                let data = ubuf.split().freeze();
                send_body_piece(conn, &data, mode).await?;
            }
            if read_upstream(up, ubuf, body_timeout, read_max).await? == 0 {
                if mode == DownstreamBody::Chunked {
                    write_down(conn, b"0\r\n\r\n").await.map_err(|_| ())?;
                }
                return Ok(());
            }
        },
    }
}

async fn read_upstream(
    up: &mut PooledConn,
    ubuf: &mut BytesMut,
    body_timeout: Duration,
    max: usize,
) -> Result<usize, ()> {
    match timeout(body_timeout, read_some(&mut up.stream, ubuf, max)).await {
        Ok(Ok(n)) => Ok(n),
        _ => Err(()),
    }
}

async fn send_body_piece(
    conn: &mut Downstream<'_>,
    data: &[u8],
    mode: DownstreamBody,
) -> Result<(), ()> {
    if mode == DownstreamBody::Chunked {
        let mut prefix = [0u8; 20];
        let n = write_chunk_prefix(data.len(), &mut prefix);
        let mut parts = [
            IoSlice::new(&prefix[..n]),
            IoSlice::new(data),
            IoSlice::new(b"\r\n"),
        ];
        write_all_vectored(
            &mut conn.stream,
            &mut parts,
            conn.listener.options.body_timeout.0,
        )
        .await
        .map_err(|_| ())?;
        conn.stats
            .downstream_bytes_write_total
            .add((n + data.len() + 2) as u64);
        Ok(())
    } else {
        write_down(conn, data).await.map_err(|_| ())
    }
}

async fn write_down(conn: &mut Downstream<'_>, bytes: &[u8]) -> std::io::Result<()> {
    write_all(
        &mut conn.stream,
        bytes,
        conn.listener.options.body_timeout.0,
    )
    .await?;
    conn.stats
        .downstream_bytes_write_total
        .add(bytes.len() as u64);
    Ok(())
}

/// Sends a local reply for `head` and says how the connection goes on.
async fn reply(
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
    let mut out = Vec::with_capacity(192);
    local_reply::render(
        &mut out,
        reply.status(),
        reply.body().as_bytes(),
        close,
        head_only,
    );
    conn.stats.response(reply.status());
    if write_down(conn, &out).await.is_ok() && close {
        linger_close(conn).await;
    }
}

/// Half-closes, then reads and discards what the client still sends, for a bounded
/// time and amount (nginx's lingering close).
async fn linger_close(conn: &mut Downstream<'_>) {
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

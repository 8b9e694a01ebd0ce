//! Reading the upstream's response head and relaying the response to the client.

use super::headers::{self, DownstreamBody, DownstreamResponse};
use super::io::{peer_gone, read_some, write_all_vectored, READ_CHUNK};
use super::read_bufs;
use super::reply::{next_after, write_down};
use super::send::INLINE_BODY_MAX;
use super::{Downstream, Next};
use crate::shutdown::Shutdown;
use bytes::{Buf, BytesMut};
use mosn_protocol::http1::{
    parse_response, response_framing, write_chunk_prefix, BodyFraming, ChunkedDecoder, ChunkedItem,
    RequestHead, ResponseHead, Version,
};
use mosn_router::{Route, RouteAction};
use mosn_upstream::{pool, Cluster, PooledConn};
use std::io::IoSlice;
use std::time::Duration;
use tokio::time::{timeout, timeout_at, Instant};

/// Why no response head could be relayed.
pub(super) enum ResponseError {
    /// The upstream closed or failed; `nothing_received` allows a retry.
    Reset {
        nothing_received: bool,
    },
    Timeout,
    Protocol,
    DownstreamGone,
}

/// Reads the final response head by `deadline`, relaying 103 to HTTP/1.1 clients and
/// dropping other interim responses, while watching the client for a disconnect.
pub(super) async fn read_response_head(
    conn: &mut Downstream<'_>,
    up: &mut PooledConn,
    head: &RequestHead,
    deadline: Instant,
) -> Result<(ResponseHead, BytesMut), ResponseError> {
    let mut ubuf = read_bufs::take();
    let mut interim_seen = false;
    let pipeline_limit = conn.listener.limits.max_head;
    loop {
        if !ubuf.is_empty() {
            match parse_response(&mut ubuf, &conn.listener.upstream_limits) {
                Ok(Some(r)) if r.status >= 200 => return Ok((r, ubuf)),
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
            _ = peer_gone(&mut conn.stream, &mut conn.buf, pipeline_limit) => return Err(ResponseError::DownstreamGone),
        }
    }
}

/// Longest pause in the upstream's response body: the route's `idle_timeout` (Envoy's;
/// `"0s"` disables it), else the listener's `body_timeout`.
fn response_stall_timeout(conn: &Downstream<'_>, route: &Route) -> Duration {
    match &route.action {
        RouteAction::Cluster(action) => match action.idle_timeout {
            Some(d) if d.is_zero() => Duration::from_secs(365 * 24 * 3600),
            Some(d) => d,
            None => conn.listener.options.body_timeout.0,
        },
        _ => conn.listener.options.body_timeout.0,
    }
}

/// Sends the response head and body to the client; pools the upstream connection
/// when the exchange ended cleanly.
pub(super) async fn send_response(
    conn: &mut Downstream<'_>,
    mut up: PooledConn,
    (resp, mut ubuf): (ResponseHead, BytesMut),
    head: &RequestHead,
    route: &Route,
    cluster: &Cluster,
    shutdown: &Shutdown,
) -> Next {
    cluster.stats.response(resp.status);
    conn.responded(resp.status);
    if let Some(e) = conn.log.as_deref_mut() {
        conn.listener
            .access_logs
            .keep_response(e, |name| resp.header(name));
    }
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
            if write_down(conn, &out).await.is_err() {
                return Next::Close;
            }
            let next = finish(up, &resp, framing, &ubuf, cluster, close);
            // The head shares the buffer's memory: gone first, the buffer is whole.
            drop(resp);
            read_bufs::give_back(ubuf);
            return next;
        }
    }
    if write_down(conn, &out).await.is_err() {
        return Next::Close;
    }
    match stream_response_body(
        conn,
        &mut up,
        &mut ubuf,
        framing,
        body_mode,
        response_stall_timeout(conn, route),
    )
    .await
    {
        Ok(()) => {
            let next = finish(up, &resp, framing, &ubuf, cluster, close);
            drop(resp);
            read_bufs::give_back(ubuf);
            next
        }
        // The head is out: the only way left to signal failure is to close.
        Err(()) => Next::Close,
    }
}

/// After a complete response: pool the upstream connection when it is clean.
fn finish(
    up: PooledConn,
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
        pool::checkin(up);
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
    body_timeout: Duration,
) -> Result<(), ()> {
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
        conn.wrote_bytes((n + data.len() + 2) as u64);
        Ok(())
    } else {
        write_down(conn, data).await.map_err(|_| ())
    }
}

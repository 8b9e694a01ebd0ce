//! An HTTP/1.1 request forwarded to an HTTP/2 upstream: Host becomes `:authority`,
//! connection-specific fields are dropped, the body streams as DATA under the
//! upstream's flow control, and the response comes back as HTTP/1.1 (chunked when its
//! length is unknown, with trailers). A request the upstream never processed (GOAWAY,
//! REFUSED_STREAM) is sent again, as from an HTTP/2 client, when its body is held; the
//! route's retry policy applies as on the other engines.

use super::headers::RouterView;
use super::io::{read_some, write_all, READ_CHUNK};
use super::local_reply::LocalReply;
use super::reply::{next_after, reply, write_down};
use super::{Downstream, Next};
use crate::http2::body::{end as end_stream, send_all};
use crate::http2::pool::{self, NoStream, Resends};
use crate::retry::{self, Retries, TryFailure, REPLAY_BODY_MAX};
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
use mosn_upstream::{ActiveRequest, Cluster, Host, LbContext};
use std::sync::Arc;
use tokio::time::Instant;

/// How the request is to be sent.
pub(super) struct ClientRequest {
    pub framing: BodyFraming,
    /// The whole body, when the caller read it already (to mirror it).
    pub held: Option<Bytes>,
    /// `Expect: 100-continue` was answered here: not sent on.
    pub drop_expect: bool,
    pub close_after_reply: bool,
}

pub(super) async fn forward(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    route: &Route,
    action: &ClusterAction,
    cluster: &Cluster,
    lb: LbContext<'_>,
    request: ClientRequest,
) -> Next {
    let ClientRequest {
        framing,
        held,
        drop_expect,
        close_after_reply,
    } = request;
    let has_body = framing.has_body();
    let mut body = match held {
        Some(held) => ClientBody::read_already(held),
        None => ClientBody::new(framing, conn.listener.limits.max_head),
    };
    let timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    let policy = action.retry.as_ref();
    let mut retries = Retries::new(policy, cluster, head.method());
    // The route timeout runs from the first wait for the response head, over retries
    // and resends.
    let mut deadline: Option<Option<Instant>> = None;
    // A request the upstream never processed is sent again (the GOAWAY race of a
    // multiplexed connection), a bounded number of times, as from an HTTP/2 client;
    // a dropped connection once, for an idempotent request. Only with its whole body:
    // none, or all that was read of it still held. Beyond those, the route's retry
    // policy decides, as for an HTTP/1.1 or HTTP/2 upstream.
    let mut resends = Resends::default();
    let mut avoid = lb.avoid;
    loop {
        let ctx = LbContext { avoid, ..lb };
        let Some(host) = cluster.choose_host(&ctx) else {
            return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
        };
        avoid = Some(host.addr);
        conn.note(|e| e.upstream(&host, &cluster.name));
        let active = ActiveRequest::new(&host);
        cluster.stats.upstream_request_total.inc();
        let Some(request) = upstream_request(conn, head, route, action, &host, drop_expect) else {
            return reply(
                conn,
                LocalReply::BadRequest(400, "request not expressible in HTTP/2"),
                true,
                head,
            )
            .await;
        };
        let own_connection = resends.own_connection();
        let options = &conn.listener.http2;
        let sent =
            pool::send_request(cluster, &host, options, request, !has_body, own_connection).await;
        // A status retry's permit, taken before its response is dropped.
        let mut granted = None;
        let failure = 'try_once: {
            let (response, mut up, slot) = match sent {
                Ok(sent) => sent,
                // The connection went away before the stream was opened: nothing was sent.
                Err(NoStream::Unprocessed) => break 'try_once TryFailure::Refused,
                Err(NoStream::Reply(LocalReply::ConnectFailure)) => {
                    outlier::report(&host, OutlierOutcome::LocalOriginFailure);
                    break 'try_once TryFailure::Connect;
                }
                Err(NoStream::Reply(local)) => {
                    return reply(conn, local, close_after_reply, head).await;
                }
            };
            let started = Instant::now();
            if has_body {
                match body.send(conn, &mut up).await {
                    Ok(()) => {}
                    Err(BodyError::Client) => {
                        up.send_reset(h2::Reason::CANCEL);
                        return reply(conn, LocalReply::UpstreamReset, true, head).await;
                    }
                    // The upstream's stream failed or was reset: its response, or its
                    // error, tells why.
                    Err(BodyError::Upstream) => {}
                }
            }
            let route_deadline =
                *deadline.get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
            let response = match retry::try_deadline(policy, route_deadline) {
                Some(d) => match tokio::time::timeout_at(d, response).await {
                    Ok(r) => r,
                    // Dropping the stream cancels it upstream.
                    Err(_) => {
                        cluster.stats.upstream_request_timeout.inc();
                        cluster.request_done(&host, started.elapsed(), None);
                        outlier::report(&host, OutlierOutcome::LocalOriginFailure);
                        break 'try_once match route_deadline {
                            Some(r) if Instant::now() >= r => TryFailure::RouteTimeout,
                            _ => TryFailure::PerTryTimeout,
                        };
                    }
                },
                None => response.await,
            };
            let e = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry_status = retries
                        .status_retry(body.replayable())
                        .is_some_and(|p| p.retry_on_status(status));
                    if retry_status {
                        match retry::permit(cluster) {
                            Some(permit) => {
                                cluster.request_done(&host, started.elapsed(), Some(status));
                                outlier::report(&host, OutlierOutcome::Success(status));
                                cluster.stats.response(status);
                                granted = Some(permit);
                                // Dropping the response and the stream cancels it.
                                break 'try_once TryFailure::Status(status);
                            }
                            // No retry can follow: the upstream's own answer goes on.
                            None => cluster.stats.upstream_request_retry_overflow.inc(),
                        }
                    }
                    // The host counts the request active until its answer is relayed.
                    let _active = active;
                    let up = Upstream {
                        host: &host,
                        started,
                        _stream: up,
                        _slot: slot,
                    };
                    let to = Relay {
                        route,
                        cluster,
                        has_body,
                        close_after_reply,
                    };
                    return relay(conn, head, r, up, to).await;
                }
                Err(e) => e,
            };
            cluster.stats.upstream_request_reset.inc();
            // Refused, or above a GOAWAY's last stream id: the upstream never looked at
            // it, and its connection takes no more streams.
            if crate::http2::never_processed(&e) {
                slot.retire();
                break 'try_once TryFailure::Refused;
            }
            // The connection itself dropped (a closing upstream racing its GOAWAY, or a
            // stale connection).
            if e.is_io() {
                slot.retire();
                break 'try_once TryFailure::Reset {
                    stale_pooled: crate::retry::is_idempotent(head.method()),
                };
            }
            outlier::report(&host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(&host, started.elapsed(), None);
            TryFailure::Reset {
                stale_pooled: false,
            }
        };
        retries.try_ended();
        if resends.again(failure, body.replayable()) {
            // Not the host's fault: it may take the request again.
            avoid = lb.avoid;
            cluster.stats.upstream_request_retry.inc();
            continue;
        }
        // What was read of a body and let go cannot be sent again; what is held can.
        let resendable = body.replayable();
        match retries.next(failure, resendable, resendable, granted, deadline.flatten()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return reply(conn, failure.local_reply(), close_after_reply, head).await,
        }
    }
}

/// The upstream that answered: its host, when the try began, and its stream and
/// connection slot, kept until the response is relayed.
struct Upstream<'h> {
    host: &'h Host,
    started: Instant,
    _stream: h2::SendStream<Bytes>,
    _slot: pool::Slot,
}

/// What relaying a response needs of the request's route.
struct Relay<'r> {
    route: &'r Route,
    cluster: &'r Cluster,
    has_body: bool,
    close_after_reply: bool,
}

/// Relays an HTTP/2 response to the HTTP/1.1 client.
async fn relay(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    response: http::Response<h2::RecvStream>,
    up: Upstream<'_>,
    to: Relay<'_>,
) -> Next {
    let Relay {
        route,
        cluster,
        has_body,
        close_after_reply,
    } = to;
    let (host, started) = (up.host, up.started);
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

/// Sends a copy of the request, with its whole `body`, to the mirror `cluster` over
/// the listener's upstream protocol (the HTTP/2 engine's mirror): the route's
/// rewrite, `-shadow` on the authority, the client's X-Forwarded-For and XFCC.
pub(super) fn mirror(
    conn: &Downstream<'_>,
    head: &RequestHead,
    action: &ClusterAction,
    body: Bytes,
    cluster: &str,
) {
    // The body is the whole of a Content-Length body (or none): its length stands.
    let headers = h2_fields(head, true);
    let uri = format!(
        "http://{}{}",
        String::from_utf8_lossy(head.host()),
        String::from_utf8_lossy(head.path_and_query())
    );
    let Ok(copy) = http::Request::builder()
        .method(head.method())
        .uri(uri)
        .body(())
    else {
        return;
    };
    let (mut parts, ()) = copy.into_parts();
    parts.headers = headers;
    let from = crate::http2::mirror::From {
        peer: conn.peer,
        xfcc: conn.client_cert.action(conn.listener.xfcc),
    };
    crate::http2::mirror::spawn(from, conn.listener, action, &parts, body, cluster);
}

/// The request's header fields as HTTP/2 takes them: lower-case names, without the
/// connection-specific ones and Host (it becomes `:authority`), and without Expect
/// when it was answered here.
fn h2_fields(head: &RequestHead, drop_expect: bool) -> HeaderMap {
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
    headers
}

/// The HTTP/2 request for a try: Host becomes `:authority`, connection-specific fields
/// are dropped; None when it cannot be expressed in HTTP/2.
fn upstream_request(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    route: &Route,
    action: &ClusterAction,
    host: &Arc<Host>,
    drop_expect: bool,
) -> Option<Request<()>> {
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
    let mut headers = h2_fields(head, drop_expect);
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
    if let Some(span) = conn.log.as_deref_mut().and_then(|e| e.span.as_mut()) {
        crate::trace::UpstreamContext::for_try(span, host.addr).apply(&mut headers);
    }
    let mut builder = Request::builder()
        .method(head.method())
        .uri(uri)
        .version(http::Version::HTTP_2);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder.body(()).ok()
}

/// Why a body was not sent whole.
enum BodyError {
    /// The client's body failed: read error, timeout, bad chunk.
    Client,
    /// The upstream's stream failed or was reset.
    Upstream,
}

/// The client's body as the tries send it: read from the client once, and held as it
/// is read (up to [`REPLAY_BODY_MAX`]) so that a try the upstream never processed can
/// send all of it again. A larger body streams and is never sent again once a try has
/// read some of it.
struct ClientBody {
    left: Left,
    /// All that was read so far, unless `lost`.
    held: Vec<Bytes>,
    held_len: u64,
    /// A chunked body's trailers, once read (and held).
    trailers: Option<HeaderMap>,
    /// The body may be held (its declared length is within the limit).
    fits: bool,
    /// Something read was not held: the body cannot be sent again.
    lost: bool,
}

/// What is left to read of the client's body.
enum Left {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

impl ClientBody {
    fn new(framing: BodyFraming, max_head: usize) -> ClientBody {
        let (left, fits) = match framing {
            BodyFraming::Length(n) if n > 0 => (Left::Length(n), n <= REPLAY_BODY_MAX),
            BodyFraming::Chunked => (Left::Chunked(ChunkedDecoder::new(max_head)), true),
            _ => (Left::Done, true),
        };
        ClientBody {
            left,
            held: Vec::new(),
            held_len: 0,
            trailers: None,
            fits,
            lost: false,
        }
    }

    /// A body read whole already.
    fn read_already(body: Bytes) -> ClientBody {
        let held_len = body.len() as u64;
        ClientBody {
            left: Left::Done,
            held: if body.is_empty() {
                Vec::new()
            } else {
                vec![body]
            },
            held_len,
            trailers: None,
            fits: true,
            lost: false,
        }
    }

    /// Can a new try send the whole body (nothing read of it was let go)?
    fn replayable(&self) -> bool {
        !self.lost
    }

    /// Holds `data`, read from the client, for a later try, within the limit.
    fn hold(&mut self, data: &Bytes) {
        if self.lost {
            return;
        }
        self.held_len += data.len() as u64;
        if !self.fits || self.held_len > REPLAY_BODY_MAX {
            self.lost = true;
            self.held = Vec::new();
        } else {
            self.held.push(data.clone());
        }
    }

    /// Sends the body on `up` as DATA frames (the trailers of a chunked body become
    /// HTTP/2 trailers): first what an earlier try read (held), then the rest as the
    /// client sends it.
    async fn send(
        &mut self,
        conn: &mut Downstream<'_>,
        up: &mut h2::SendStream<Bytes>,
    ) -> Result<(), BodyError> {
        let read_all = matches!(self.left, Left::Done);
        let last = self.held.len();
        for (i, data) in self.held.iter().enumerate() {
            let end = read_all && i + 1 == last && self.trailers.is_none();
            send_all(up, data.clone(), end)
                .await
                .map_err(|_| BodyError::Upstream)?;
            if end {
                return Ok(());
            }
        }
        if read_all {
            return end_stream(up, self.trailers.clone()).map_err(|_| BodyError::Upstream);
        }
        loop {
            match &mut self.left {
                Left::Length(remaining) => {
                    if conn.buf.is_empty() {
                        read_client(conn).await.map_err(|_| BodyError::Client)?;
                    }
                    let take = (conn.buf.len() as u64).min(*remaining) as usize;
                    *remaining -= take as u64;
                    let end = *remaining == 0;
                    let data = conn.buf.split_to(take).freeze();
                    if end {
                        self.left = Left::Done;
                    }
                    self.hold(&data);
                    send_all(up, data, end)
                        .await
                        .map_err(|_| BodyError::Upstream)?;
                    if end {
                        return Ok(());
                    }
                }
                Left::Chunked(decoder) => {
                    match decoder.next(&mut conn.buf).map_err(|_| BodyError::Client)? {
                        Some(ChunkedItem::Data(data)) => {
                            self.hold(&data);
                            send_all(up, data, false)
                                .await
                                .map_err(|_| BodyError::Upstream)?;
                        }
                        Some(ChunkedItem::End(trailers)) => {
                            let map = crate::http2::h1_trailers(&trailers);
                            self.left = Left::Done;
                            if !self.lost {
                                self.trailers.clone_from(&map);
                            }
                            return end_stream(up, map).map_err(|_| BodyError::Upstream);
                        }
                        None => read_client(conn).await.map_err(|_| BodyError::Client)?,
                    }
                }
                Left::Done => return Ok(()),
            }
        }
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

//! A stream routed to a cluster: pick a host, forward (to an HTTP/2 or an HTTP/1.1
//! upstream), and try again as the route's retry policy allows; mirrors get a copy.

use super::body::PipeError;
use super::client_body::ClientBody;
use super::pool::{self, NoStream, Resends};
use super::stream::{local_reply, never_processed, H2View, StreamContext, Upstream};
use super::{h1_upstream, mirror};
use crate::access_log::flags;
use crate::http1::local_reply::LocalReply;
use crate::http1::reply::Active;
use crate::http1::HttpListener;
use crate::retry::{self, Retries, TryFailure};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response};
use mosn_config::filters::ProxyProtocol;
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_router::{ClusterAction, RetryPolicy, Route};
use mosn_upstream::breaker::Permit;
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::{ActiveRequest, LbContext};
use std::future::poll_fn;
use std::net::SocketAddr;
use tokio::time::Instant;

/// How one try on one host ended.
pub(super) enum TryEnd<'c> {
    /// The client got the upstream's answer, or reset, or left: this is the end.
    Done,
    /// The client is to get this local reply; no retry.
    Reply(LocalReply),
    /// The try failed before anything reached the client; a retry may mend it.
    Failed(TryFailure),
    /// The upstream reset its stream with this reason before answering.
    UpstreamReset(h2::Reason),
    /// The response has a status the policy retries; a retry permit was taken before
    /// the response was dropped (so it is never dropped without a retry).
    RetryStatus(u16, Permit<'c>),
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    ctx: &StreamContext,
    listener: &HttpListener,
    parts: &http::request::Parts,
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
    route: &Route,
    action: &ClusterAction,
    grpc: bool,
) {
    let view = H2View {
        parts,
        peer: ctx.peer,
    };
    let Some(choice) = action.pick_cluster(&view, fastrand::u64(..)) else {
        // cluster_header with no usable value: no cluster (503, as Envoy).
        return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, grpc);
    };
    let Some(cluster) = listener.clusters.get(choice.name) else {
        return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, grpc);
    };
    let Some(_request_permit) = cluster.breakers.requests.try_acquire() else {
        cluster.stats.upstream_request_overflow.inc();
        return local_reply(ctx, &mut respond, LocalReply::Overflow, grpc);
    };
    // RFC 8441: a WebSocket goes to an HTTP/1.1 upstream as an Upgrade, unretried.
    let websocket = super::websocket::requested(parts);
    if websocket && listener.upstream_for(&cluster) == Some(ProxyProtocol::Http2) {
        return local_reply(
            ctx,
            &mut respond,
            LocalReply::BadRequest(501, "WebSocket over HTTP/2 needs an HTTP/1.1 upstream"),
            grpc,
        );
    }
    let policy = action.retry.as_ref().filter(|_| !websocket);
    let mirrors: Vec<_> = action.mirrors_for(fastrand::u64(..)).collect();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let replay = policy.is_some() || !mirrors.is_empty();
    let Ok(mut body) = ClientBody::new(body, content_length, replay).await else {
        ctx.client_gone();
        return;
    };
    if let Some(held) = body.held() {
        ctx.body_in.set(held.len() as u64);
    }
    if let Some(held) = body.held() {
        for m in &mirrors {
            let from = mirror::From {
                peer: ctx.peer,
                xfcc: ctx.client_cert.action(listener.xfcc),
            };
            mirror::spawn(from, listener, action, parts, held.clone(), &m.cluster);
        }
    }
    // The route timeout, capped by the client's own gRPC deadline.
    let route_timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    let limit = match (route_timeout, super::grpc::timeout(&parts.headers)) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    };
    let deadline = limit.map(|d| Instant::now() + d);
    let hash = if cluster.uses_hash {
        action.hash(&view)
    } else {
        None
    };
    let mut retries = Retries::new(policy, &cluster, parts.method.as_str().as_bytes());
    let mut avoid: Option<SocketAddr> = None;
    // A stream the upstream never processed is sent again even without a policy (the
    // GOAWAY race of a multiplexed connection, like HTTP/1's stale keep-alive), a
    // bounded number of times: an upstream that keeps refusing gets its answer.
    let mut resends = Resends::default();
    loop {
        let lb = LbContext {
            hash,
            metadata_match: choice.metadata_match.map(|m| m.map()),
            avoid,
            original_dst: None,
        };
        let Some(host) = cluster.choose_host(&lb) else {
            return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, grpc);
        };
        avoid = Some(host.addr);
        ctx.note(|e| e.upstream(&host, &cluster.name));
        let _host_active = ActiveRequest::new(&host);
        let _up_active = Active::new(&cluster.stats.upstream_request_active);
        cluster.stats.upstream_request_total.inc();
        let up = Upstream {
            ctx,
            listener,
            route,
            action,
            cluster: &cluster,
            host: host.clone(),
            deadline,
            try_deadline: retry::try_deadline(policy, deadline),
        };
        if websocket {
            let body = match std::mem::replace(&mut body, ClientBody::Stream(None)) {
                ClientBody::Stream(Some(s)) => s,
                _ => return,
            };
            let idle = action
                .idle_timeout
                .filter(|d| !d.is_zero())
                .unwrap_or(listener.idle_timeout);
            return super::websocket::forward(&up, parts, body, respond, idle).await;
        }
        let status_retry = retries.status_retry(body.resendable());
        let end = match listener
            .upstream_for(&cluster)
            .unwrap_or(ProxyProtocol::Http2)
        {
            ProxyProtocol::Http1 => {
                h1_upstream::try_once(&up, parts, &mut body, &mut respond, status_retry).await
            }
            _ => {
                let own_connection = resends.own_connection();
                try_h2(
                    &up,
                    parts,
                    &mut body,
                    &mut respond,
                    status_retry,
                    own_connection,
                )
                .await
            }
        };
        retries.try_ended();
        let (failure, granted, reset) = match end {
            TryEnd::Done => return,
            TryEnd::Reply(reply) => return local_reply(ctx, &mut respond, reply, grpc),
            TryEnd::Failed(f) => (f, None, None),
            TryEnd::UpstreamReset(reason) => (
                TryFailure::Reset {
                    stale_pooled: false,
                },
                None,
                Some(reason),
            ),
            TryEnd::RetryStatus(status, permit) => (TryFailure::Status(status), Some(permit), None),
        };
        if resends.again(failure, body.resendable()) {
            avoid = None;
            cluster.stats.upstream_request_retry.inc();
            continue;
        }
        match retries.next(failure, body.resendable(), body.intact(), granted, deadline) {
            Some(wait) => tokio::time::sleep(wait).await,
            // A stream the upstream reset with an error before answering is reset for
            // the client with the same reason; other failures get a local reply.
            None => match reset {
                Some(reason) => {
                    ctx.note(|e| e.flags |= flags::UPSTREAM_RESET);
                    return respond.send_reset(reason);
                }
                None => return local_reply(ctx, &mut respond, failure.local_reply(), grpc),
            },
        }
    }
}

/// One try on an HTTP/2 upstream: open a stream on a pooled connection (a new one of
/// its own when `own_connection`), send the request (the body flows while the response
/// is awaited: bidirectional streams), and relay the response unless the policy
/// retries its status.
async fn try_h2<'c>(
    up: &Upstream<'c>,
    parts: &http::request::Parts,
    body: &mut ClientBody,
    respond: &mut SendResponse<Bytes>,
    status_retry: Option<&RetryPolicy>,
    own_connection: bool,
) -> TryEnd<'c> {
    let (cluster, host) = (up.cluster, &up.host);
    let uri = format!("http://{}{}", up.authority(parts), up.path_and_query(parts));
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_2);
    if let Some(h) = request.headers_mut() {
        *h = up.request_headers(parts);
    }
    let Ok(request) = request.body(()) else {
        return TryEnd::Reply(LocalReply::BadRequest(400, "bad request URI"));
    };
    let end = body.is_empty();
    let options = &up.listener.http2;
    let sent = pool::send_request(cluster, host, options, request, end, own_connection).await;
    let (response, mut up_send, slot) = match sent {
        Ok(sent) => sent,
        // The connection went away before the stream was opened: nothing was sent.
        Err(NoStream::Unprocessed) => return TryEnd::Failed(TryFailure::Refused),
        Err(NoStream::Reply(LocalReply::ConnectFailure)) => {
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, std::time::Duration::ZERO, None);
            return TryEnd::Failed(TryFailure::Connect);
        }
        Err(NoStream::Reply(reply)) => return TryEnd::Reply(reply),
    };
    let started = Instant::now();
    let request_side = async {
        if end {
            return;
        }
        match body.send_h2(&mut up_send, &up.ctx.body_in).await {
            Ok(()) | Err(PipeError::Sink) => {}
            // The client reset its stream: reset the upstream's too.
            Err(PipeError::Source(reason)) => up_send.send_reset(reason),
        }
    };
    let response_side = relay_h2(
        up,
        &parts.method,
        response,
        &slot,
        respond,
        status_retry,
        started,
    );
    tokio::pin!(request_side, response_side);
    let mut request_sent = false;
    let outcome = loop {
        tokio::select! {
            () = &mut request_side, if !request_sent => request_sent = true,
            outcome = &mut response_side => break outcome,
        }
    };
    // After a relayed response the request side may still be streaming (a client
    // stream outliving the upstream's answer); a failed try drops it, which resets
    // the upstream stream.
    if matches!(outcome, TryEnd::Done) && !request_sent {
        request_side.await;
    }
    outcome
}

/// Awaits an HTTP/2 upstream's response head and relays the response.
async fn relay_h2<'c>(
    up: &Upstream<'c>,
    up_method: &http::Method,
    response: h2::client::ResponseFuture,
    slot: &pool::Slot,
    respond: &mut SendResponse<Bytes>,
    status_retry: Option<&RetryPolicy>,
    started: Instant,
) -> TryEnd<'c> {
    let (ctx, cluster, host) = (up.ctx, up.cluster, &up.host);
    let head = tokio::select! {
        r = wait(up.try_deadline, response) => r,
        reason = poll_fn(|cx| respond.poll_reset(cx)) => {
            // The client gave up; dropping the upstream stream cancels it.
            let _ = reason;
            ctx.client_gone();
            return TryEnd::Done;
        }
    };
    let response = match head {
        Err(Waited::Timeout) => {
            cluster.request_done(host, started.elapsed(), None);
            return up.timed_out();
        }
        Err(Waited::Failed(e)) => {
            cluster.stats.upstream_request_reset.inc();
            // Refused, or above a GOAWAY's last stream id: the upstream never looked
            // at it, and its connection takes no more streams.
            if never_processed(&e) {
                slot.retire();
                return TryEnd::Failed(TryFailure::Refused);
            }
            // The connection itself dropped (a closing upstream racing its GOAWAY, or
            // a stale connection): like HTTP/1's stale keep-alive, an idempotent
            // request is sent again on a new connection.
            if e.is_io() {
                slot.retire();
                return TryEnd::Failed(TryFailure::Reset {
                    stale_pooled: crate::retry::is_idempotent(up_method.as_str().as_bytes()),
                });
            }
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, started.elapsed(), None);
            return match e
                .reason()
                .filter(|r| e.is_reset() && e.is_remote() && *r != h2::Reason::NO_ERROR)
            {
                Some(reason) => TryEnd::UpstreamReset(reason),
                None => TryEnd::Failed(TryFailure::Reset {
                    stale_pooled: false,
                }),
            };
        }
        Ok(r) => r,
    };
    let (rparts, mut rbody) = response.into_parts();
    let status = rparts.status.as_u16();
    cluster.request_done(host, started.elapsed(), Some(status));
    outlier::report(host, OutlierOutcome::Success(status));
    cluster.stats.response(status);
    if status_retry.is_some_and(|p| p.retry_on_status(status)) {
        match retry::permit(cluster) {
            Some(permit) => return TryEnd::RetryStatus(status, permit),
            // No retry can follow: the upstream's own answer goes to the client.
            None => cluster.stats.upstream_request_retry_overflow.inc(),
        }
    }
    ctx.responded(status);
    ctx.keep_response(&rparts.headers);
    let mut out = Response::builder().status(rparts.status);
    if let Some(h) = out.headers_mut() {
        *h = up.response_headers(rparts.headers);
    }
    let Ok(out) = out.body(()) else {
        return TryEnd::Done;
    };
    let end = rbody.is_end_stream();
    let Ok(mut down_send) = respond.send_response(out, end) else {
        return TryEnd::Done;
    };
    if end {
        return TryEnd::Done;
    }
    match super::body::pipe(&mut rbody, &mut down_send, &ctx.body_out).await {
        Ok(()) => {}
        // The upstream reset mid-response: pass the reset on.
        Err(PipeError::Source(reason)) => {
            ctx.note(|e| e.flags |= flags::UPSTREAM_RESET);
            down_send.send_reset(reason)
        }
        // The client reset: dropping the upstream body cancels the upstream stream.
        Err(PipeError::Sink) => ctx.client_gone(),
    }
    TryEnd::Done
}

impl Upstream<'_> {
    /// The try's deadline passed before the response head: counted against the host;
    /// a retry may follow unless it was the route's own deadline.
    pub(super) fn timed_out<'c>(&self) -> TryEnd<'c> {
        self.cluster.stats.upstream_request_timeout.inc();
        outlier::report(&self.host, OutlierOutcome::LocalOriginFailure);
        let route_over = self.deadline.is_some_and(|d| Instant::now() >= d);
        TryEnd::Failed(if route_over {
            TryFailure::RouteTimeout
        } else {
            TryFailure::PerTryTimeout
        })
    }
}

pub(super) enum Waited {
    Timeout,
    Failed(h2::Error),
}

async fn wait<F>(deadline: Option<Instant>, response: F) -> Result<Response<RecvStream>, Waited>
where
    F: std::future::Future<Output = Result<Response<RecvStream>, h2::Error>>,
{
    match deadline {
        None => response.await.map_err(Waited::Failed),
        Some(d) => match tokio::time::timeout_at(d, response).await {
            Err(_) => Err(Waited::Timeout),
            Ok(r) => r.map_err(Waited::Failed),
        },
    }
}

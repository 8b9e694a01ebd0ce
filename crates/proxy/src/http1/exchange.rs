//! One request/response exchange: route it, carry out the route's action, and for a
//! cluster pick a host and forward, retrying as the route's policy allows.

use super::headers::{self, RouterView, UpstreamRequest};
use super::local_reply::LocalReply;
use super::reply::{reply, send_generated, send_local_reply, write_down, Active};
use super::response::{read_response_head, send_response, ResponseError};
use super::send::{buffer_body, send_buffered, send_request, SendError};
use super::{mirror, Downstream, Next};
use crate::access_log::Entry;
use crate::retry::{self, Retries, TryFailure, REPLAY_BODY_MAX};
use crate::shutdown::Shutdown;
use crate::trace::UpstreamContext;
use bytes::Bytes;
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_protocol::http1::{request_framing, BodyFraming, RequestHead, Version};
use mosn_router::{ClusterAction, RequestView, RetryPolicy, Route, RouteAction, RouteTable};
use mosn_upstream::breaker::{try_acquire_owned, Permit};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::{pool, ActiveRequest, Cluster, Host, LbContext, PooledConn, UpstreamTls};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One request, read since `started`, to the end of its response, with its record
/// and span when the listener logs or traces. (One function, not a wrapper around
/// another: each async layer keeps its arguments in the boxed future of every
/// request.)
pub(super) async fn run(
    conn: &mut Downstream<'_>,
    head: RequestHead,
    started: Instant,
    shutdown: &Shutdown,
) -> Next {
    let started = started.into_std();
    // The request's wall-clock start, derived once for the span and the record.
    let mut wall = None;
    let span = match &conn.listener.tracer {
        Some(tracer) => {
            let view = RouterView(&head, conn.peer);
            let at = *wall.insert(mosn_observe::clock::wall_at(started));
            tracer.start_at(&|name| view.header(name), at)
        }
        None => None,
    };
    if conn.listener.access_logs.is_empty() && span.is_none() {
        let next = exchange(conn, &head, shutdown).await;
        conn.stats.downstream_request_time.record(started.elapsed());
        return next;
    }
    // What the exchange did is noted on the connection as it goes.
    let (read, written) = (conn.bytes_in, conn.bytes_out);
    let wall = wall.unwrap_or_else(|| mosn_observe::clock::wall_at(started));
    let (local, remote) = conn.addr_texts.get(conn.local, conn.remote);
    let mut entry = Entry::boxed_at("HTTP1", local, remote, started, wall);
    entry.span = span;
    conn.log = Some(entry);
    let next = exchange(conn, &head, shutdown).await;
    // One clock read for the end: the record, the span and request_time share it.
    let took = match conn.log.take() {
        Some(mut e) => {
            e.end();
            e.bytes_received = conn.bytes_in - read + head.buf.len() as u64;
            e.bytes_sent = conn.bytes_out - written;
            conn.listener.access_logs.log(&e, |name| head.header(name));
            if let Some(span) = e.span.take() {
                // Text without a copy: the parser let only a token and visible ASCII
                // through the request line (a Host with other bytes is left out).
                let (method, path) = head.method_and_path_text();
                crate::trace::finish(
                    span,
                    &e,
                    &crate::trace::RequestFacts {
                        method,
                        path,
                        authority: std::str::from_utf8(head.host()).unwrap_or(""),
                        protocol: "HTTP/1.1",
                        listener: conn.listener_name,
                    },
                );
            }
            let took = e.duration();
            e.give_back();
            took
        }
        None => started.elapsed(),
    };
    conn.stats.downstream_request_time.record(took);
    next
}

/// One exchange, from a parsed head to the end of the response, routed by the
/// listener's current route table (xDS may have replaced it since the last request).
async fn exchange(conn: &mut Downstream<'_>, head: &RequestHead, shutdown: &Shutdown) -> Next {
    let table = conn.listener.routes.take(&mut conn.routes);
    let next = routed(conn, head, shutdown, &table).await;
    conn.routes.put_back(table);
    next
}

async fn routed(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    shutdown: &Shutdown,
    table: &RouteTable,
) -> Next {
    let stats = conn.stats;
    stats.downstream_request_total.inc();
    let _active = Active::new(&stats.downstream_request_active);
    let framing = request_framing(head);
    // Any local reply sent before the request body was read must close the
    // connection: the unread body would otherwise be taken for the next request.
    let close_after_reply =
        framing.has_body() || !head.wants_keep_alive() || shutdown.is_draining();
    // The rarer paths are boxed: their state inline would enlarge the (boxed,
    // memcpy'd) future of every plain request.
    if head.is_connect() {
        return Box::pin(super::upgrade::connect(conn, head, table)).await;
    }
    let view = RouterView(head, conn.peer);
    let Some(route) = table.route(&view) else {
        return reply(conn, LocalReply::NoRoute, close_after_reply, head).await;
    };
    match &route.action {
        RouteAction::DirectResponse { status, body } => {
            stats.direct_response.inc();
            let extra = response_adds(route);
            send_generated(conn, *status, &extra, body, close_after_reply, head).await
        }
        RouteAction::Redirect(redirect) => {
            stats.direct_response.inc();
            let location = redirect.location(&view);
            let mut extra = response_adds(route);
            extra.push((b"Location", location.as_bytes()));
            send_generated(conn, redirect.status, &extra, b"", close_after_reply, head).await
        }
        RouteAction::Cluster(action) => forward(conn, head, framing, route, action, shutdown).await,
    }
}

/// The route's response header additions, for answers the proxy makes itself.
fn response_adds(route: &Route) -> Vec<(&[u8], &[u8])> {
    route
        .headers
        .response_add
        .iter()
        .map(|a| (a.name.as_bytes(), a.value.as_bytes()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    conn: &mut Downstream<'_>,
    head: &RequestHead,
    framing: BodyFraming,
    route: &Route,
    action: &ClusterAction,
    shutdown: &Shutdown,
) -> Next {
    let close_after_reply =
        framing.has_body() || !head.wants_keep_alive() || shutdown.is_draining();
    let view = RouterView(head, conn.peer);
    let Some(choice) = action.pick_cluster(&view, fastrand::u64(..)) else {
        // cluster_header with no usable value: no cluster to send to (503, as Envoy
        // answers for a cluster it does not have).
        return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
    };
    let Some(cluster) = conn.listener.clusters.get(choice.name) else {
        return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
    };
    // The cluster's request breaker: over the cap, refuse at once.
    let Some(_request_permit) = cluster.breakers.requests.try_acquire() else {
        cluster.stats.upstream_request_overflow.inc();
        return reply(conn, LocalReply::Overflow, close_after_reply, head).await;
    };
    let hash = if cluster.uses_hash {
        action.hash(&view)
    } else {
        None
    };
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
    if let Some(protocol) = super::upgrade::requested(head, framing) {
        let ctx = LbContext {
            hash,
            metadata_match: choice.metadata_match.map(|m| m.map()),
            avoid: None,
            original_dst: None,
        };
        let Some(host) = cluster.choose_host(&ctx) else {
            return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
        };
        return Box::pin(super::upgrade::forward(
            conn, head, route, action, &cluster, &host, &protocol, shutdown,
        ))
        .await;
    }
    if conn.listener.upstream_for(&cluster) == Some(mosn_config::filters::ProxyProtocol::Http2) {
        let ctx = LbContext {
            hash,
            metadata_match: choice.metadata_match.map(|m| m.map()),
            avoid: None,
            original_dst: None,
        };
        // Mirrors need the whole body first, as on an HTTP/1.1 upstream: none, or a
        // Content-Length within the replay limit (else the request is not mirrored).
        let mirrors: Vec<_> = action.mirrors_for(fastrand::u64(..)).collect();
        let held = match framing {
            _ if mirrors.is_empty() => None,
            BodyFraming::None => Some(Bytes::new()),
            BodyFraming::Length(n) if n <= REPLAY_BODY_MAX => {
                match buffer_body(conn, n as usize).await {
                    Ok(body) => Some(body),
                    Err(e) => return send_failure(conn, e).await,
                }
            }
            _ => None,
        };
        if let Some(body) = &held {
            for m in &mirrors {
                super::to_h2::mirror(conn, head, action, body.clone(), &m.cluster);
            }
        }
        let request = super::to_h2::ClientRequest {
            framing,
            held,
            drop_expect: answer_continue,
            close_after_reply,
        };
        return Box::pin(super::to_h2::forward(
            conn, head, route, action, &cluster, ctx, request,
        ))
        .await;
    }
    let policy = action.retry.as_ref();
    let mirrors: Vec<_> = action.mirrors_for(fastrand::u64(..)).collect();
    // Hold a small body in memory when it may be sent more than once.
    let replay: Option<Bytes> = match framing {
        BodyFraming::None => Some(Bytes::new()),
        BodyFraming::Length(n)
            if n <= REPLAY_BODY_MAX && (policy.is_some() || !mirrors.is_empty()) =>
        {
            match buffer_body(conn, n as usize).await {
                Ok(body) => Some(body),
                Err(e) => return send_failure(conn, e).await,
            }
        }
        _ => None,
    };
    let rewritten = action.rewrite_path(head.path_and_query());
    let target = rewritten.as_deref();
    if let Some(body) = &replay {
        for m in &mirrors {
            mirror::spawn(conn, head, target, body.clone(), &m.cluster);
        }
    }
    let route_timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    // The route timeout runs from when the request is ready to go upstream; so does
    // the first try's latency (pool wait and connect included, as Envoy's
    // upstream_rq_time): one clock read for both.
    let now = Instant::now();
    let deadline = route_timeout.map(|t| now + t);
    let mut first_try = Some(now);
    let mut retries = Retries::new(policy, &cluster, head.method());
    let mut last_host: Option<std::net::SocketAddr> = None;
    let mut stale_retry_used = false;
    let original_dst = if cluster.lb_type == "LB_ORIGINAL_DST" {
        original_destination(conn, head, &cluster)
    } else {
        None
    };
    loop {
        let ctx = LbContext {
            hash,
            metadata_match: choice.metadata_match.map(|m| m.map()),
            avoid: last_host,
            original_dst,
        };
        let Some(host) = cluster.choose_host(&ctx) else {
            return reply(conn, LocalReply::NoHealthyUpstream, close_after_reply, head).await;
        };
        last_host = Some(host.addr);
        conn.note(|e| e.upstream(&host, &cluster.name));
        let hostname = (!host.hostname.is_empty()).then_some(host.hostname.as_str());
        let trace = conn
            .log
            .as_deref_mut()
            .and_then(|e| e.span.as_mut())
            .map(|s| UpstreamContext::for_try(s, host.addr));
        // Room for what is added: Host, X-Forwarded-For, trace context headers.
        let mut head_out = Vec::with_capacity(head.buf.len() + 256);
        headers::write_upstream_request(
            &mut head_out,
            head,
            &UpstreamRequest {
                target,
                host: action.host_rewrite.host(&view, hostname),
                remove: &route.headers.request_remove,
                add: &route.headers.request_add,
                forwarded_for: conn
                    .listener
                    .options
                    .add_x_forwarded_for
                    .then_some(conn.peer_ip.as_str()),
                drop_expect: answer_continue,
                fallback_host: &host.authority,
                upgrade: None,
                xfcc: conn.client_cert.action(conn.listener.xfcc),
                trace: trace.as_ref(),
            },
        );
        let try_started = first_try.take().unwrap_or_else(Instant::now);
        let (failure, granted) = match try_once(
            conn,
            &cluster,
            &host,
            try_started,
            &head_out,
            framing,
            replay.as_ref(),
            head,
            route,
            shutdown,
            deadline,
            policy,
            retries.status_retry(replay.is_some()),
        )
        .await
        {
            Outcome::Done(next) => return next,
            Outcome::Reply(local) => {
                return reply(conn, local, close_after_reply || replay.is_none(), head).await
            }
            Outcome::Failed(f) => (f, None),
            Outcome::RetryStatus(status, permit) => (TryFailure::Status(status), Some(permit)),
        };
        retries.try_ended();
        // The keep-alive race: a pooled connection the upstream had closed. Sending
        // again on a fresh connection is safe when nothing of the body was consumed.
        if let TryFailure::Reset { stale_pooled: true } = failure {
            if !stale_retry_used && replay.is_some() {
                stale_retry_used = true;
                last_host = None;
                continue;
            }
        }
        // A connect failure comes before any of a streamed body is read.
        match retries.next(failure, replay.is_some(), true, granted, deadline) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                let local = failure.local_reply();
                return reply(conn, local, close_after_reply || replay.is_none(), head).await;
            }
        }
    }
}

/// Where an ORIGINAL_DST cluster sends the request: MOSN's `original_dst_lb_config`
/// header (`ip[:port]`, port 80 when absent) when `use_header` is set, else the address
/// the client connected to.
fn original_destination(
    conn: &Downstream<'_>,
    head: &RequestHead,
    cluster: &Cluster,
) -> Option<std::net::SocketAddr> {
    match &cluster.config.original_dst_lb_config {
        Some(cfg) if cfg.use_header => {
            let name = if cfg.header_name.is_empty() {
                "host"
            } else {
                cfg.header_name.as_str()
            };
            let value = std::str::from_utf8(head.header(&name.to_ascii_lowercase())?)
                .ok()?
                .trim();
            value.parse().ok().or_else(|| {
                let ip: std::net::IpAddr = value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()?;
                Some(std::net::SocketAddr::new(ip, 80))
            })
        }
        _ => Some(conn.local),
    }
}

/// How a try ended.
enum Outcome<'c> {
    /// The response was relayed, or the client was answered or left: this is the end.
    Done(Next),
    /// The exchange ends with this local reply.
    Reply(LocalReply),
    /// The try failed in a way a retry may mend.
    Failed(TryFailure),
    /// The response has a status the policy retries, and a retry permit was taken
    /// before the response was dropped (so it is never dropped without a retry).
    RetryStatus(u16, Permit<'c>),
}

/// One try on one host, begun at `started`: connect, send, read the response head,
/// and relay it unless the policy retries its status.
#[allow(clippy::too_many_arguments)]
async fn try_once<'c>(
    conn: &mut Downstream<'_>,
    cluster: &'c Cluster,
    host: &Arc<Host>,
    started: Instant,
    head_out: &[u8],
    framing: BodyFraming,
    replay: Option<&Bytes>,
    head: &RequestHead,
    route: &Route,
    shutdown: &Shutdown,
    deadline: Option<Instant>,
    policy: Option<&RetryPolicy>,
    status_retry: Option<&RetryPolicy>,
) -> Outcome<'c> {
    let mut up = match take_connection(cluster, host).await {
        Ok(up) => {
            conn.note(|e| e.upstream_local = up.local);
            up
        }
        Err(LocalReply::ConnectFailure) => {
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, started.elapsed(), None);
            return Outcome::Failed(TryFailure::Connect);
        }
        Err(other) => return Outcome::Reply(other),
    };
    let _host_active = ActiveRequest::new(host);
    cluster.stats.upstream_request_total.inc();
    let _up_active = Active::new(&cluster.stats.upstream_request_active);
    let reused = up.reused;
    let sent = match replay {
        Some(body) => send_buffered(conn, &mut up, head_out, body).await,
        None => send_request(conn, &mut up, head_out, framing).await,
    };
    match sent {
        Ok(()) => {}
        Err(SendError::Upstream) => {
            if !reused {
                cluster.request_done(host, started.elapsed(), None);
            }
            return Outcome::Failed(TryFailure::Reset {
                stale_pooled: reused,
            });
        }
        Err(e) => return Outcome::Done(send_failure(conn, e).await),
    }
    let try_deadline = retry::try_deadline(policy, deadline);
    // No deadline at all (timeout 0): wait as long as the body timeout allows at most.
    let try_deadline =
        try_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
    let (resp, ubuf) = match read_response_head(conn, &mut up, head, try_deadline).await {
        Ok(r) => r,
        Err(ResponseError::Reset { nothing_received }) => {
            // A stale pooled connection is not the host's fault.
            if !(reused && nothing_received) {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                cluster.request_done(host, started.elapsed(), None);
            }
            return Outcome::Failed(TryFailure::Reset {
                stale_pooled: reused && nothing_received,
            });
        }
        Err(ResponseError::Timeout) => {
            outlier::report(host, OutlierOutcome::LocalOriginFailure);
            cluster.request_done(host, started.elapsed(), None);
            cluster.stats.upstream_request_timeout.inc();
            let route_over = deadline.is_some_and(|d| Instant::now() >= d);
            return Outcome::Failed(if route_over {
                TryFailure::RouteTimeout
            } else {
                TryFailure::PerTryTimeout
            });
        }
        Err(ResponseError::Protocol) => {
            cluster.request_done(host, started.elapsed(), None);
            return Outcome::Reply(LocalReply::UpstreamProtocolError);
        }
        Err(ResponseError::DownstreamGone) => {
            conn.stats.downstream_cancel.inc();
            return Outcome::Done(Next::Close);
        }
    };
    // Passive health and latency: outlier detection and the EWMA balancer learn from
    // every response head (latency is time to the response head).
    outlier::report(host, OutlierOutcome::Success(resp.status));
    let elapsed = started.elapsed();
    cluster.request_done(host, elapsed, Some(resp.status));
    // Only a latency-aware balancer learns from it.
    if cluster.tracks_latency {
        host.record_response(resp.status);
        host.record_latency(elapsed);
    }
    if status_retry.is_some_and(|p| p.retry_on_status(resp.status)) {
        match retry::permit(cluster) {
            Some(permit) => {
                cluster.stats.response(resp.status);
                return Outcome::RetryStatus(resp.status, permit);
            }
            // No retry can follow: the upstream's own answer goes to the client.
            None => cluster.stats.upstream_request_retry_overflow.inc(),
        }
    }
    Outcome::Done(send_response(conn, up, (resp, ubuf), head, route, cluster, shutdown).await)
}

/// Answers a failure while the request body was being read from the client.
async fn send_failure(conn: &mut Downstream<'_>, e: SendError) -> Next {
    match e {
        SendError::DownstreamTimeout => {
            send_local_reply(conn, LocalReply::RequestTimeout, true, false).await
        }
        SendError::BadBody(reason) => {
            send_local_reply(conn, LocalReply::BadRequest(400, reason), true, false).await
        }
        SendError::DownstreamClosed => conn.stats.downstream_cancel.inc(),
        SendError::Upstream => send_local_reply(conn, LocalReply::UpstreamReset, true, false).await,
    }
    Next::Close
}

/// An idle pooled connection of this worker, or a new one.
pub(crate) async fn take_connection(
    cluster: &Cluster,
    host: &Arc<Host>,
) -> Result<PooledConn, LocalReply> {
    let transport = pool::transport_id(match &cluster.tls {
        UpstreamTls::On(tls) => Some(tls),
        _ => None,
    });
    if let Some(conn) = pool::checkout(host.addr, transport) {
        cluster.stats.upstream_connection_reused.inc();
        return Ok(conn);
    }
    open_connection(cluster, host, false).await
}

/// A new connection within the cluster's connection and pending-request breakers.
/// `h2`: for an HTTP/2 pool (TLS offers ALPN h2).
pub(crate) async fn open_connection(
    cluster: &Cluster,
    host: &Arc<Host>,
    h2: bool,
) -> Result<PooledConn, LocalReply> {
    let tls = match &cluster.tls {
        UpstreamTls::Off => None,
        UpstreamTls::On(tls) => Some(tls),
        UpstreamTls::Failed(e) => {
            tracing::warn!(cluster = %cluster.name, error = %e, "no connection: the cluster's TLS context failed");
            return Err(LocalReply::ConnectFailure);
        }
    };
    let Some(_pending) = cluster.breakers.pending_requests.try_acquire() else {
        cluster.stats.upstream_request_pending_overflow.inc();
        return Err(LocalReply::Overflow);
    };
    let Some(cx_permit) = try_acquire_owned(&cluster.breakers.connections) else {
        cluster.stats.upstream_connection_overflow.inc();
        return Err(LocalReply::Overflow);
    };
    cluster.stats.upstream_connection_total.inc();
    let transport = pool::Transport { tls, h2 };
    match pool::connect(host, cluster.connect_timeout, Some(cx_permit), transport).await {
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

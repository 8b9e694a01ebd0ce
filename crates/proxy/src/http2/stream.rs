//! One HTTP/2 stream: route it, carry out the route's action, forward it to an
//! HTTP/2 or HTTP/1.1 upstream, and relay the response with resets passed both ways.

use super::body::{pipe, send_all, PipeError};
use super::{grpc, h1_upstream, pool};
use crate::http1::local_reply::LocalReply;
use crate::http1::HttpListener;
use crate::shutdown::Shutdown;
use crate::snapshot::{ListenerKind, ListenerRuntime};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use mosn_config::filters::ProxyProtocol;
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_router::{ClusterAction, HeaderAdd, RequestView, Route, RouteAction};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::{ActiveRequest, Cluster, Host, LbContext};
use std::future::poll_fn;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// What a stream task needs from its connection (owned: stream tasks are 'static).
pub struct StreamContext {
    pub(super) runtime: Arc<ListenerRuntime>,
    peer: IpAddr,
}

impl StreamContext {
    pub fn new(runtime: Arc<ListenerRuntime>, peer: IpAddr) -> Self {
        StreamContext { runtime, peer }
    }

    pub(super) fn listener(&self) -> Option<&HttpListener> {
        match &self.runtime.kind {
            ListenerKind::Http(h) => Some(h),
            ListenerKind::Tcp(_) => None,
        }
    }
}

/// Lets the router read an HTTP/2 request.
pub(super) struct H2View<'a> {
    pub parts: &'a http::request::Parts,
    pub peer: IpAddr,
}

impl RequestView for H2View<'_> {
    fn host(&self) -> &[u8] {
        match self.parts.uri.authority() {
            Some(a) => a.as_str().as_bytes(),
            None => self
                .parts
                .headers
                .get(http::header::HOST)
                .map(HeaderValue::as_bytes)
                .unwrap_or(b""),
        }
    }
    fn path(&self) -> &[u8] {
        self.parts.uri.path().as_bytes()
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        match lower_name {
            ":method" => Some(self.parts.method.as_str().as_bytes()),
            ":path" => self
                .parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().as_bytes()),
            ":authority" => Some(self.host()),
            ":scheme" => Some(self.scheme()),
            name => self.parts.headers.get(name).map(HeaderValue::as_bytes),
        }
    }
    fn query(&self) -> &[u8] {
        self.parts.uri.query().unwrap_or("").as_bytes()
    }
    fn method(&self) -> &[u8] {
        self.parts.method.as_str().as_bytes()
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        Some(self.peer)
    }
}

/// Counts a request as active while it lives.
struct ActiveGauge<'a>(&'a mosn_observe::Gauge);

impl Drop for ActiveGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn handle(
    ctx: StreamContext,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    _shutdown: Shutdown,
) {
    let Some(listener) = ctx.listener() else {
        return;
    };
    let stats = &ctx.runtime.stats;
    stats.downstream_request_total.inc();
    stats.downstream_request_active.inc();
    let _active = ActiveGauge(&stats.downstream_request_active);
    let (parts, body) = request.into_parts();
    let grpc = grpc::is_grpc(&parts.headers);
    let view = H2View {
        parts: &parts,
        peer: ctx.peer,
    };
    let Some(route) = listener.routes.route(&view) else {
        return local_reply(&ctx, &mut respond, LocalReply::NoRoute, grpc);
    };
    match &route.action {
        RouteAction::DirectResponse { status, body } => {
            stats.direct_response.inc();
            generated(&ctx, &mut respond, *status, &[], body.clone(), route).await;
        }
        RouteAction::Redirect(redirect) => {
            stats.direct_response.inc();
            let location = redirect.location(&view);
            generated(
                &ctx,
                &mut respond,
                redirect.status,
                &[("location", location)],
                Bytes::new(),
                route,
            )
            .await;
        }
        RouteAction::Cluster(action) => {
            forward(&ctx, listener, &parts, body, respond, route, action, grpc).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
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
        return local_reply(ctx, &mut respond, LocalReply::NoRoute, grpc);
    };
    let Some(cluster) = listener.clusters.get(choice.name) else {
        return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, grpc);
    };
    let Some(_request_permit) = cluster.breakers.requests.try_acquire() else {
        cluster.stats.upstream_request_overflow.inc();
        return local_reply(ctx, &mut respond, LocalReply::Overflow, grpc);
    };
    let lb = LbContext {
        hash: if cluster.uses_hash {
            action.hash(&view)
        } else {
            None
        },
        metadata_match: choice.metadata_match.map(|m| m.map()),
        avoid: None,
        original_dst: None,
    };
    let Some(host) = cluster.choose_host(&lb) else {
        return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, grpc);
    };
    let _host_active = ActiveRequest::new(&host);
    cluster.stats.upstream_request_total.inc();
    // The route timeout, capped by the client's own gRPC deadline.
    let route_timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    let limit = match (route_timeout, grpc::timeout(&parts.headers)) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    };
    let deadline = limit.map(|d| Instant::now() + d);
    let upstream = Upstream {
        ctx,
        listener,
        route,
        action,
        cluster: &cluster,
        host: &host,
        grpc,
        deadline,
    };
    match listener.upstream.unwrap_or(ProxyProtocol::Http2) {
        ProxyProtocol::Http1 => h1_upstream::forward(&upstream, parts, body, respond).await,
        _ => forward_h2(&upstream, parts, body, respond).await,
    }
}

/// What forwarding a stream to one host needs.
pub(super) struct Upstream<'a> {
    pub ctx: &'a StreamContext,
    pub listener: &'a HttpListener,
    pub route: &'a Route,
    pub action: &'a ClusterAction,
    pub cluster: &'a Cluster,
    pub host: &'a Arc<Host>,
    pub grpc: bool,
    pub deadline: Option<Instant>,
}

impl Upstream<'_> {
    /// The authority to send: the route's host rewrite, else the request's.
    pub fn authority(&self, parts: &http::request::Parts) -> String {
        let view = H2View {
            parts,
            peer: self.ctx.peer,
        };
        let hostname = (!self.host.hostname.is_empty()).then_some(self.host.hostname.as_str());
        match self.action.host_rewrite.host(&view, hostname) {
            Some(h) => String::from_utf8_lossy(h).into_owned(),
            None if !view.host().is_empty() => String::from_utf8_lossy(view.host()).into_owned(),
            None => self.host.authority.clone(),
        }
    }

    /// Path and query to send (the route's rewrite applied).
    pub fn path_and_query(&self, parts: &http::request::Parts) -> String {
        let original = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        match self.action.rewrite_path(original.as_bytes()) {
            Some(p) => String::from_utf8_lossy(&p).into_owned(),
            None => original.to_string(),
        }
    }

    /// Request headers for the upstream: route removals and additions applied,
    /// X-Forwarded-For appended, Host dropped (the authority carries it).
    pub fn request_headers(&self, parts: &http::request::Parts) -> HeaderMap {
        let mut headers = parts.headers.clone();
        headers.remove(http::header::HOST);
        apply(
            &mut headers,
            &self.route.headers.request_remove,
            &self.route.headers.request_add,
        );
        if self.listener.options.add_x_forwarded_for {
            let peer = self.ctx.peer.to_string();
            let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prior) => format!("{prior}, {peer}"),
                None => peer,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert("x-forwarded-for", v);
            }
        }
        headers
    }

    /// Response headers for the client: route removals and additions applied.
    pub fn response_headers(&self, mut headers: HeaderMap) -> HeaderMap {
        apply(
            &mut headers,
            &self.route.headers.response_remove,
            &self.route.headers.response_add,
        );
        headers
    }
}

/// Route header mutations on an `http::HeaderMap`.
pub(crate) fn apply(headers: &mut HeaderMap, remove: &[String], add: &[HeaderAdd]) {
    for name in remove {
        headers.remove(name.as_str());
    }
    for a in add {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(a.lower_name.as_bytes()),
            HeaderValue::from_str(&a.value),
        ) else {
            continue;
        };
        if a.append {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
}

async fn forward_h2(
    up: &Upstream<'_>,
    parts: &http::request::Parts,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
) {
    let (ctx, cluster, host) = (up.ctx, up.cluster, up.host);
    let (mut sender, _slot) = match pool::sender(cluster, host, &up.listener.http2).await {
        Ok(s) => s,
        Err(reply) => {
            if reply == LocalReply::ConnectFailure {
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
            }
            return local_reply(ctx, &mut respond, reply, up.grpc);
        }
    };
    let build = || {
        let uri = format!("http://{}{}", up.authority(parts), up.path_and_query(parts));
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .version(http::Version::HTTP_2);
        if let Some(h) = builder.headers_mut() {
            *h = up.request_headers(parts);
        }
        builder.body(()).ok()
    };
    let Some(request) = build() else {
        return local_reply(
            ctx,
            &mut respond,
            LocalReply::BadRequest(400, "bad request URI"),
            up.grpc,
        );
    };
    let end = body.is_end_stream();
    let (response, mut up_send) = match sender.send_request(request, end) {
        Ok(pair) => pair,
        Err(_) => return local_reply(ctx, &mut respond, LocalReply::UpstreamReset, up.grpc),
    };
    // The request body flows while the response is awaited (bidirectional streams).
    let request_side = async {
        if end {
            return;
        }
        match pipe(&mut body, &mut up_send).await {
            Ok(()) | Err(PipeError::Sink) => {}
            // The client reset its stream: reset the upstream's too.
            Err(PipeError::Source(reason)) => up_send.send_reset(reason),
        }
    };
    let response_side = async {
        let head = tokio::select! {
            r = wait(up.deadline, response) => r,
            reason = poll_fn(|cx| respond.poll_reset(cx)) => {
                // The client gave up; dropping the upstream stream cancels it.
                let _ = reason;
                ctx.runtime.stats.downstream_cancel.inc();
                return;
            }
        };
        // A stream the upstream refused (REFUSED_STREAM, or above a GOAWAY's last stream
        // id) was never processed: a request without a body is sent once more, on a
        // new connection.
        let head = match head {
            Err(Waited::Failed(e)) if end && never_processed(&e) => {
                pool::forget(host.addr);
                cluster.stats.upstream_request_retry.inc();
                match pool::sender(cluster, host, &up.listener.http2).await {
                    Ok((mut again, _retry_slot)) => {
                        match build().map(|r| again.send_request(r, true)) {
                            Some(Ok((retry, _))) => wait(up.deadline, retry).await,
                            _ => {
                                return local_reply(
                                    ctx,
                                    &mut respond,
                                    LocalReply::UpstreamReset,
                                    up.grpc,
                                )
                            }
                        }
                    }
                    Err(reply) => return local_reply(ctx, &mut respond, reply, up.grpc),
                }
            }
            other => other,
        };
        let response = match head {
            Err(Waited::Timeout) => {
                cluster.stats.upstream_request_timeout.inc();
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                return local_reply(ctx, &mut respond, LocalReply::UpstreamTimeout, up.grpc);
            }
            Err(Waited::Failed(e)) => {
                cluster.stats.upstream_request_reset.inc();
                if never_processed(&e) {
                    // Refused or cut by GOAWAY before the upstream looked at it: not the
                    // host's fault, and the client gets an answer it may retry (503).
                    return local_reply(ctx, &mut respond, LocalReply::NoHealthyUpstream, up.grpc);
                }
                outlier::report(host, OutlierOutcome::LocalOriginFailure);
                // A stream the upstream reset with an error before answering is reset for
                // the client with the same reason; other failures get a local reply.
                match e
                    .reason()
                    .filter(|r| e.is_reset() && e.is_remote() && *r != h2::Reason::NO_ERROR)
                {
                    Some(reason) => respond.send_reset(reason),
                    None => local_reply(ctx, &mut respond, LocalReply::UpstreamReset, up.grpc),
                }
                return;
            }
            Ok(r) => r,
        };
        let (rparts, mut rbody) = response.into_parts();
        let status = rparts.status.as_u16();
        outlier::report(host, OutlierOutcome::Success(status));
        cluster.stats.response(status);
        ctx.runtime.stats.response(status);
        let mut out = Response::builder().status(rparts.status);
        if let Some(h) = out.headers_mut() {
            *h = up.response_headers(rparts.headers);
        }
        let Ok(out) = out.body(()) else { return };
        let end = rbody.is_end_stream();
        let Ok(mut down_send) = respond.send_response(out, end) else {
            return;
        };
        if end {
            return;
        }
        match pipe(&mut rbody, &mut down_send).await {
            Ok(()) => {}
            // The upstream reset mid-response: pass the reset on.
            Err(PipeError::Source(reason)) => down_send.send_reset(reason),
            // The client reset: dropping the upstream body cancels the upstream stream.
            Err(PipeError::Sink) => ctx.runtime.stats.downstream_cancel.inc(),
        }
    };
    tokio::join!(request_side, response_side);
}

/// A stream the upstream never processed: refused (REFUSED_STREAM), or above the last
/// stream id of a GOAWAY (RFC 9113 §6.8), which `h2` reports as a GOAWAY error.
pub(crate) fn never_processed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
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

/// Answers a stream without an upstream: plain text, or gRPC's trailers-only form.
pub(super) fn local_reply(
    ctx: &StreamContext,
    respond: &mut SendResponse<Bytes>,
    reply: LocalReply,
    grpc: bool,
) {
    reply.count(&ctx.runtime.stats);
    let (status, end) = if grpc {
        (200, true)
    } else {
        (reply.status(), false)
    };
    ctx.runtime.stats.response(status);
    let mut b =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    if grpc {
        b = b
            .header("content-type", "application/grpc")
            .header("grpc-status", grpc::status_for(reply).to_string())
            .header("grpc-message", reply.body());
    } else {
        b = b.header("content-type", "text/plain");
    }
    let Ok(response) = b.body(()) else { return };
    if let Ok(mut send) = respond.send_response(response, end) {
        if !end {
            let _ = send.send_data(Bytes::from_static(reply.body().as_bytes()), true);
        }
    }
}

async fn generated(
    ctx: &StreamContext,
    respond: &mut SendResponse<Bytes>,
    status: u16,
    extra: &[(&str, String)],
    body: Bytes,
    route: &Route,
) {
    ctx.runtime.stats.response(status);
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    for (k, v) in extra {
        b = b.header(*k, v.as_str());
    }
    let Ok(mut response) = b.body(()) else { return };
    apply(
        response.headers_mut(),
        &route.headers.response_remove,
        &route.headers.response_add,
    );
    let end = body.is_empty();
    if let Ok(mut send) = respond.send_response(response, end) {
        if !end {
            let _ = send_all(&mut send, body, true).await;
        }
    }
}

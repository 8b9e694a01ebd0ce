//! One HTTP/2 stream: route it, carry out the route's action, forward it to an
//! HTTP/2 or HTTP/1.1 upstream, and relay the response with resets passed both ways.

use super::body::send_all;
use super::grpc;
use crate::access_log::{flags, Entry};
use crate::http1::local_reply::LocalReply;
use crate::http1::reply::Active;
use crate::http1::HttpListener;
use crate::shutdown::Shutdown;
use crate::snapshot::{ListenerKind, ListenerRuntime};
use crate::trace::UpstreamContext;
use crate::xfcc::ClientCert;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use mosn_observe::addr_text::TextedAddr;
use mosn_router::{ClusterAction, HeaderAdd, RequestView, Route, RouteAction};
use mosn_upstream::{Cluster, Host};
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use tokio::time::Instant;

/// What a stream task needs from its connection (owned: stream tasks are 'static).
pub struct StreamContext {
    pub(super) runtime: Arc<ListenerRuntime>,
    pub(super) peer: IpAddr,
    /// The listener address the client reached, and the client's.
    local: SocketAddr,
    remote: SocketAddr,
    /// The same with their texts, when the listener logs or traces (made once per
    /// connection: see [`StreamContext::new`]).
    texts: Option<(TextedAddr, TextedAddr)>,
    pub(super) client_cert: Rc<ClientCert>,
    /// The stream's record, when the listener logs or the stream is traced; noted as
    /// the stream goes. It holds the stream's span, when it is traced (started by
    /// [`Self::start_span`]).
    log: RefCell<Option<Box<Entry>>>,
    /// Body bytes read from the client and sent to it on this stream.
    pub(super) body_in: Cell<u64>,
    pub(super) body_out: Cell<u64>,
}

impl StreamContext {
    /// `conn_texts` is the connection's: the addresses' texts are made at its first
    /// stream that logs or is traced, and copied for the others.
    pub fn new(
        runtime: Arc<ListenerRuntime>,
        accepted: crate::Accepted,
        client_cert: Rc<ClientCert>,
        conn_texts: &crate::AddrTexts,
    ) -> Self {
        let observed = match &runtime.kind {
            ListenerKind::Http(h) => !h.access_logs.is_empty() || h.tracer.is_some(),
            _ => false,
        };
        let texts = observed.then(|| conn_texts.get(accepted.local, accepted.peer));
        // A traced stream gets a record too; start_span makes it.
        let log = match (&runtime.kind, texts) {
            (ListenerKind::Http(h), Some(texts)) => h.access_logs.entry("HTTP2", || texts),
            _ => None,
        };
        StreamContext {
            runtime,
            peer: accepted.peer.ip(),
            local: accepted.local,
            remote: accepted.peer,
            texts,
            client_cert,
            log: RefCell::new(log),
            body_in: Cell::new(0),
            body_out: Cell::new(0),
        }
    }

    /// A response head with `status` went to the client.
    pub(super) fn responded(&self, status: u16) {
        self.runtime.stats.response(status);
        self.note(|e| e.responded(status));
    }

    /// Notes what the access log says about the stream (when it logs).
    pub(super) fn note(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.log.borrow_mut().as_deref_mut() {
            f(e);
        }
    }

    /// Keeps what the access logs print of the response head.
    pub(super) fn keep_response(&self, headers: &HeaderMap) {
        if let (Some(e), Some(l)) = (self.log.borrow_mut().as_deref_mut(), self.listener()) {
            l.access_logs
                .keep_response(e, |name| headers.get(name).map(HeaderValue::as_bytes));
        }
    }

    /// The client left: the stream's upstream side is cancelled.
    pub(super) fn client_gone(&self) {
        self.runtime.stats.downstream_cancel.inc();
        self.note(|e| e.flags |= flags::DOWNSTREAM_CLOSED);
    }

    /// Starts the stream's span when the listener traces and the request is sampled.
    fn start_span(&self, parts: &http::request::Parts) {
        let Some(tracer) = self.listener().and_then(|l| l.tracer.as_ref()) else {
            return;
        };
        let view = H2View {
            parts,
            peer: self.peer,
        };
        let Some(span) = tracer.start(&|name| view.header(name)) else {
            return;
        };
        let (local, remote) = self
            .texts
            .unwrap_or_else(|| (self.local.into(), self.remote.into()));
        let mut log = self.log.borrow_mut();
        log.get_or_insert_with(|| Entry::boxed("HTTP2", local, remote))
            .span = Some(span);
    }

    /// The trace context for a try to `peer`, when the stream is traced.
    pub(super) fn trace_context(&self, peer: SocketAddr) -> Option<UpstreamContext> {
        let mut log = self.log.borrow_mut();
        log.as_deref_mut()
            .and_then(|e| e.span.as_mut())
            .map(|s| UpstreamContext::for_try(s, peer))
    }

    /// Writes the stream's access log lines and ends its span.
    fn finish(&self, parts: &http::request::Parts) {
        let Some(mut e) = self.log.borrow_mut().take() else {
            return;
        };
        let Some(listener) = self.listener() else {
            return;
        };
        e.bytes_received = self.body_in.get();
        e.bytes_sent = self.body_out.get();
        e.end();
        let view = H2View {
            parts,
            peer: self.peer,
        };
        listener.access_logs.log(&e, |name| view.header(name));
        if let Some(span) = e.span.take() {
            let authority = std::str::from_utf8(view.host()).unwrap_or("");
            crate::trace::finish(
                span,
                &e,
                &crate::trace::RequestFacts {
                    method: parts.method.as_str(),
                    path: parts
                        .uri
                        .path_and_query()
                        .map_or_else(|| parts.uri.path(), |pq| pq.as_str()),
                    authority,
                    protocol: "HTTP/2",
                    listener: &self.runtime.name,
                },
            );
        }
        e.give_back();
    }

    pub(super) fn listener(&self) -> Option<&HttpListener> {
        match &self.runtime.kind {
            ListenerKind::Http(h) => Some(h),
            ListenerKind::Tcp(_) | ListenerKind::Rpc(_) => None,
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

pub async fn handle(
    ctx: StreamContext,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    _shutdown: Shutdown,
) {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    ctx.start_span(&parts);
    route(&ctx, &parts, body, respond).await;
    ctx.runtime
        .stats
        .downstream_request_time
        .record(started.elapsed());
    ctx.finish(&parts);
}

/// Routes a stream and carries out the route's action.
async fn route(
    ctx: &StreamContext,
    parts: &http::request::Parts,
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
) {
    let Some(listener) = ctx.listener() else {
        return;
    };
    let stats = &ctx.runtime.stats;
    stats.downstream_request_total.inc();
    let _active = Active::new(&stats.downstream_request_active);
    let grpc = grpc::is_grpc(&parts.headers);
    let view = H2View {
        parts,
        peer: ctx.peer,
    };
    // The listener's current route table (xDS may have replaced it since the
    // connection opened).
    let table = listener.routes.load();
    let Some(route) = table.route(&view) else {
        return local_reply(ctx, &mut respond, LocalReply::NoRoute, grpc);
    };
    match &route.action {
        RouteAction::DirectResponse { status, body } => {
            stats.direct_response.inc();
            generated(ctx, &mut respond, *status, &[], body.clone(), route).await;
        }
        RouteAction::Redirect(redirect) => {
            stats.direct_response.inc();
            let location = redirect.location(&view);
            generated(
                ctx,
                &mut respond,
                redirect.status,
                &[("location", location)],
                Bytes::new(),
                route,
            )
            .await;
        }
        RouteAction::Cluster(action) => {
            super::forward::forward(ctx, listener, parts, body, respond, route, action, grpc).await
        }
    }
}

/// What forwarding a stream to one host needs.
pub(super) struct Upstream<'a> {
    pub ctx: &'a StreamContext,
    pub listener: &'a HttpListener,
    pub route: &'a Route,
    pub action: &'a ClusterAction,
    pub cluster: &'a Cluster,
    pub host: Arc<Host>,
    /// The route's deadline (the whole exchange, retries included).
    pub deadline: Option<Instant>,
    /// This try's deadline: the route's, shortened by the per-try timeout.
    pub try_deadline: Option<Instant>,
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
            append_forwarded_for(&mut headers, self.ctx.peer);
        }
        crate::xfcc::apply(
            &mut headers,
            self.ctx.client_cert.action(self.listener.xfcc),
        );
        if let Some(trace) = self.ctx.trace_context(self.host.addr) {
            trace.apply(&mut headers);
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

/// Appends the client's address to X-Forwarded-For.
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let peer = peer.to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", v);
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

/// A stream the upstream never processed: refused (REFUSED_STREAM), or above the last
/// stream id of a GOAWAY (RFC 9113 §6.8), which `h2` reports as a GOAWAY error.
pub(crate) fn never_processed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
}

/// Answers a stream without an upstream: plain text, or gRPC's trailers-only form.
pub(super) fn local_reply(
    ctx: &StreamContext,
    respond: &mut SendResponse<Bytes>,
    reply: LocalReply,
    grpc: bool,
) {
    reply.count(&ctx.runtime.stats);
    ctx.note(|e| e.flags |= reply.flag());
    let (status, end) = if grpc {
        (200, true)
    } else {
        (reply.status(), false)
    };
    ctx.responded(status);
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
    ctx.responded(status);
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
            ctx.body_out.set(body.len() as u64);
            let _ = send_all(&mut send, body, true).await;
        }
    }
}

//! The HTTP/1.1 proxy: one task per downstream connection reads requests in order,
//! routes each, forwards it to an upstream connection from this worker's pool and
//! streams the response back.

pub(crate) mod exchange;
pub(crate) mod headers;
pub(crate) mod io;
pub(crate) mod local_reply;
mod mirror;
pub(crate) mod read_bufs;
pub(crate) mod reply;
mod response;
mod send;
mod to_h2;
mod upgrade;

use crate::shutdown::Shutdown;
use crate::tcp::TcpProxyListener;
use bytes::BytesMut;
use mosn_config::filters::{
    ClientCertDetails, ForwardClientCertDetails, Http2Options, ProxyProtocol,
};
use mosn_config::{Http1Options, ProxyFilterConfig};
use mosn_observe::ListenerStats;
use mosn_protocol::http1::{parse_request, HeadLimits, RequestHead};
use mosn_tls::Stream;
use mosn_upstream::ClusterManager;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use local_reply::LocalReply;

/// A listener running the `proxy` filter over HTTP/1.1.
pub struct HttpListener {
    pub routes: Arc<crate::routes::SharedRoutes>,
    pub clusters: Arc<ClusterManager>,
    pub limits: HeadLimits,
    pub upstream_limits: HeadLimits,
    pub options: Http1Options,
    pub idle_timeout: Duration,
    /// Set for `downstream_protocol: "Auto"`: check the first bytes before serving.
    pub detect: Option<Detect>,
    /// `downstream_protocol: "Http2"`: the connection speaks HTTP/2 from its first byte.
    pub http2_only: bool,
    /// The upstream protocol; None: the same as the downstream request's.
    pub upstream: Option<ProxyProtocol>,
    pub http2: Http2Options,
    /// The listener's access logs.
    pub access_logs: crate::access_log::AccessLogs,
    /// The process's tracer, when tracing is on.
    pub tracer: Option<Arc<mosn_trace::Tracer>>,
    /// `Auto`: the RPC proxy for connections that start with an RPC protocol's magic.
    pub rpc: Option<Box<crate::rpc::RpcListener>>,
    /// X-Forwarded-Client-Cert handling (Envoy's modes).
    pub xfcc: ForwardClientCertDetails,
    pub xfcc_details: ClientCertDetails,
}

/// Protocol detection of an `Auto` listener (HTTP/1 only, for now).
pub struct Detect {
    /// MOSN's `fallback_for_unknown_protocol`: the tcp_proxy that takes connections
    /// that are not HTTP/1; without one they are closed.
    pub fallback: Option<TcpProxyListener>,
}

/// Methods MOSN's HTTP/1 detection recognizes at the start of a connection.
const HTTP1_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// HTTP/2's connection preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Does `start` begin HTTP/2's preface? None: too few bytes to tell.
fn looks_like_http2(start: &[u8]) -> Option<bool> {
    let n = start.len().min(H2_PREFACE.len());
    if start[..n] != H2_PREFACE[..n] {
        Some(false)
    } else if n == H2_PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Does `start` begin an HTTP/1 request? None: too few bytes to tell.
fn looks_like_http1(start: &[u8]) -> Option<bool> {
    let mut undecided = false;
    for m in HTTP1_METHODS {
        let n = m.len().min(start.len());
        if start[..n] == m[..n] {
            if n == m.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    if undecided {
        None
    } else {
        Some(false)
    }
}

impl HttpListener {
    /// The HTTP protocol spoken to `cluster`: its own (Envoy's per-cluster protocol
    /// options, from xDS), else the proxy filter's `upstream_protocol` (None: the
    /// client's).
    pub fn upstream_for(&self, cluster: &mosn_upstream::Cluster) -> Option<ProxyProtocol> {
        cluster.config.http_protocol().or(self.upstream)
    }

    pub fn new(
        cfg: &ProxyFilterConfig,
        routes: Arc<crate::routes::SharedRoutes>,
        clusters: Arc<ClusterManager>,
        idle_timeout: Duration,
    ) -> Self {
        let o = &cfg.http1;
        let limits = HeadLimits {
            max_line: o.max_request_line_bytes,
            max_head: o.max_header_bytes,
            max_headers: o.max_headers,
            allow_chunked_length: o.allow_chunked_length,
        };
        HttpListener {
            routes,
            clusters,
            limits,
            upstream_limits: HeadLimits {
                allow_chunked_length: false,
                ..limits
            },
            options: o.clone(),
            idle_timeout,
            detect: None,
            http2_only: cfg.downstream() == ProxyProtocol::Http2,
            upstream: cfg.upstream(),
            http2: cfg.http2.clone(),
            rpc: None,
            access_logs: Default::default(),
            tracer: None,
            xfcc: cfg.forward_client_cert_details,
            xfcc_details: cfg.set_current_client_cert_details.clone(),
        }
    }
}

/// State of one downstream connection, kept across its requests.
struct Downstream<'a> {
    stream: Stream,
    /// The client's IP, for source-IP hashing, and as text for X-Forwarded-For.
    peer: std::net::IpAddr,
    peer_ip: String,
    /// The destination the client meant (its original one, when redirected).
    local: SocketAddr,
    /// The client's certificate, for X-Forwarded-Client-Cert.
    client_cert: crate::xfcc::ClientCert,
    /// The client's address and port (access logs).
    remote: SocketAddr,
    /// `local` and `remote` with their texts, made for the connection's first logged
    /// or traced request and kept for the others.
    addr_texts: crate::AddrTexts,
    /// Bytes read from and written to the client over the connection's life.
    bytes_in: u64,
    bytes_out: u64,
    /// The current exchange's record (and span), when the listener logs or the
    /// exchange is traced.
    log: Option<Box<crate::access_log::Entry>>,
    listener_name: &'a str,
    /// The route table the last request used (refreshed when xDS replaced it).
    routes: crate::routes::RoutesCache,
    listener: &'a HttpListener,
    stats: &'a ListenerStats,
    /// Bytes read from the client and not yet consumed.
    buf: BytesMut,
}

impl Downstream<'_> {
    /// Counts bytes read from the client.
    fn read_bytes(&mut self, n: u64) {
        self.bytes_in += n;
        self.stats.downstream_bytes_read_total.add(n);
    }

    /// Counts bytes written to the client.
    fn wrote_bytes(&mut self, n: u64) {
        self.bytes_out += n;
        self.stats.downstream_bytes_write_total.add(n);
    }

    /// A response head with `status` went to the client.
    fn responded(&mut self, status: u16) {
        self.stats.response(status);
        if let Some(e) = &mut self.log {
            e.responded(status);
        }
    }

    /// Notes what the access log says about the exchange (when it logs).
    fn note(&mut self, f: impl FnOnce(&mut crate::access_log::Entry)) {
        if let Some(e) = &mut self.log {
            f(e);
        }
    }
}

/// How the connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

pub async fn serve(
    mut stream: Stream,
    accepted: crate::Accepted,
    runtime: &Arc<crate::snapshot::ListenerRuntime>,
    listener: &HttpListener,
    stats: &ListenerStats,
    mut shutdown: Shutdown,
) {
    let peer = accepted.peer;
    let mut buf = BytesMut::new();
    if listener.http2_only || stream.alpn() == Some(b"h2") {
        // Boxed: the HTTP/2 connection state must not enlarge every HTTP/1 connection task.
        return Box::pin(crate::http2::serve(
            stream,
            buf.freeze(),
            accepted,
            runtime.clone(),
            shutdown,
        ))
        .await;
    }
    // ALPN already said http/1.1: nothing to detect.
    let detect = match stream.alpn() {
        Some(b"http/1.1") => None,
        _ => listener.detect.as_ref(),
    };
    if let Some(detect) = detect {
        let deadline = Instant::now() + listener.options.request_head_timeout.0;
        loop {
            // MOSN's Auto also detects its RPC codecs by their first bytes (no overlap
            // with HTTP: Bolt starts with 0x01/0x02, Dubbo with 0xdabb).
            if let Some(rpc) = &listener.rpc {
                let codecs = mosn_protocol::xprotocol::codecs();
                if let mosn_protocol::xprotocol::Detection::Found(codec) =
                    mosn_protocol::xprotocol::detect(codecs, &buf)
                {
                    return Box::pin(crate::rpc::serve(
                        stream,
                        buf,
                        accepted,
                        rpc,
                        codec,
                        &runtime.stats,
                        shutdown,
                    ))
                    .await;
                }
            }
            match (looks_like_http2(&buf), looks_like_http1(&buf)) {
                (Some(true), _) => {
                    return Box::pin(crate::http2::serve(
                        stream,
                        buf.freeze(),
                        accepted,
                        runtime.clone(),
                        shutdown,
                    ))
                    .await;
                }
                (_, Some(true)) => break,
                (Some(false), Some(false)) => {
                    match &detect.fallback {
                        Some(tcp) => {
                            Box::pin(crate::tcp::serve(stream, accepted, tcp, stats, &buf)).await
                        }
                        None => {
                            stats.downstream_bad_request.inc();
                            tracing::debug!(%peer, "neither HTTP/1 nor HTTP/2, and no fallback: closing");
                        }
                    }
                    return;
                }
                _ => match tokio::time::timeout_at(
                    deadline,
                    io::read_some(&mut stream, &mut buf, 1024),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => stats.downstream_bytes_read_total.add(n as u64),
                    _ => return,
                },
            }
        }
    }
    let client_cert = if stream.is_tls() {
        crate::xfcc::ClientCert::of(&stream, listener.xfcc, &listener.xfcc_details)
    } else {
        crate::xfcc::ClientCert::default()
    };
    let mut conn = Downstream {
        stream,
        peer: peer.ip(),
        peer_ip: peer.ip().to_string(),
        local: accepted.local,
        client_cert,
        remote: peer,
        addr_texts: crate::AddrTexts::default(),
        bytes_in: 0,
        bytes_out: 0,
        log: None,
        listener_name: &runtime.name,
        routes: Default::default(),
        listener,
        stats,
        buf,
    };
    loop {
        if conn.buf.is_empty() {
            // Idle between requests: give the read buffer back so an idle connection
            // costs little more than its socket, and wait without one.
            read_bufs::give_back(std::mem::take(&mut conn.buf));
            tokio::select! {
                ready = tokio::time::timeout(listener.idle_timeout, wait_readable(&mut conn)) => {
                    if !matches!(ready, Ok(true)) {
                        return;
                    }
                }
                _ = shutdown.draining() => return,
            }
        }
        let (head, started) = match read_request_head(&mut conn).await {
            Ok(Some(read)) => read,
            Ok(None) => return,
            Err(reply) => {
                reply::send_local_reply(&mut conn, reply, true, false).await;
                return;
            }
        };
        // The exchange future is large; boxing it keeps this idle loop's state small.
        let next = Box::pin(exchange::run(&mut conn, head, started, &shutdown)).await;
        if next == Next::Close || shutdown.is_draining() {
            return;
        }
    }
}

/// Waits for the client's next request; false when it closed. A plain socket is
/// waited on without a buffer; TLS must read (and decrypt) to know.
async fn wait_readable(conn: &mut Downstream<'_>) -> bool {
    match &conn.stream {
        Stream::Plain(s) => s.readable().await.is_ok(),
        _ => match read_bufs::read_into_spare(&mut conn.stream, &mut conn.buf).await {
            Ok(n) if n > 0 => {
                conn.read_bytes(n as u64);
                true
            }
            _ => false,
        },
    }
}

/// Reads until a complete head is parsed; with it, when reading began (the request's
/// start for its `request_time`: the client's bytes were there or just coming).
/// `Ok(None)`: the client closed (or stalled with nothing sent) and there is nothing
/// to answer.
async fn read_request_head(
    conn: &mut Downstream<'_>,
) -> Result<Option<(RequestHead, Instant)>, LocalReply> {
    let started = Instant::now();
    let deadline = started + conn.listener.options.request_head_timeout.0;
    if conn.buf.capacity() == 0 {
        conn.buf = read_bufs::take();
    }
    loop {
        if !conn.buf.is_empty() {
            match parse_request(&mut conn.buf, &conn.listener.limits) {
                Ok(Some(head)) => return Ok(Some((head, started))),
                Ok(None) => {}
                Err(e) => return Err(LocalReply::BadRequest(e.status, e.reason)),
            }
        }
        match tokio::time::timeout_at(
            deadline,
            io::read_some(&mut conn.stream, &mut conn.buf, io::READ_CHUNK),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
            Ok(Ok(n)) => conn.read_bytes(n as u64),
            Err(_) if conn.buf.is_empty() => return Ok(None),
            Err(_) => return Err(LocalReply::RequestTimeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_http1;

    #[test]
    fn detects_http1_by_method() {
        assert_eq!(looks_like_http1(b"GET / HTTP/1.1"), Some(true));
        assert_eq!(looks_like_http1(b"OPTIONS * HTTP/1.1"), Some(true));
        assert_eq!(looks_like_http1(b"PO"), None);
        assert_eq!(looks_like_http1(b""), None);
        assert_eq!(looks_like_http1(b"\x01\x01\x00"), Some(false));
        assert_eq!(looks_like_http1(b"PRI * HTTP/2.0"), Some(false));
        assert_eq!(
            super::looks_like_http2(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(true)
        );
        assert_eq!(super::looks_like_http2(b"PRI * H"), None);
        assert_eq!(super::looks_like_http2(b"GET /"), Some(false));
        assert_eq!(looks_like_http1(b"GETX"), Some(false));
    }
}

//! The XProtocol RPC proxy (SOFA Bolt, Dubbo): frames from many clients are routed by
//! their header map (MOSN routes on `service`) and multiplexed over one connection per
//! upstream host and worker, their request ids rewritten on the way up and restored on
//! the way back. The proxy answers heartbeats itself and answers a request it cannot
//! forward with the protocol's own error response (hijack), as MOSN does
//! (docs/xprotocol-wire.md, docs/xprotocol.md).

mod upstream;

use crate::access_log::{flags, AccessLogs, Entry};
use crate::shutdown::Shutdown;
use crate::Accepted;
use bytes::BytesMut;
use mosn_config::DEFAULT_ROUTE_TIMEOUT;
use mosn_observe::ListenerStats;
use mosn_protocol::xprotocol::{Codec, Frame, FrameKind, Hijack};
use mosn_router::{RequestView, RouteAction};
use mosn_tls::Stream;
use mosn_upstream::{ClusterManager, Host, LbContext};
use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// An RPC proxy listener (or the RPC side of an `Auto` one).
pub struct RpcListener {
    pub routes: Arc<crate::routes::SharedRoutes>,
    pub clusters: Arc<ClusterManager>,
    /// The codec every connection speaks; None: detected per connection (`Auto`).
    pub codec: Option<&'static dyn Codec>,
    /// Largest frame accepted from a client or an upstream.
    pub max_frame: usize,
    pub idle_timeout: Duration,
    /// Bytes queued for a client that does not read, before its connection is closed.
    pub max_queued_bytes: usize,
    pub access_logs: AccessLogs,
}

/// Lets the router read an RPC frame: its header map (exact keys, as MOSN's map).
struct RpcView<'a> {
    frame: &'a Frame,
    peer: IpAddr,
}

impl RequestView for RpcView<'_> {
    fn host(&self) -> &[u8] {
        b""
    }
    fn path(&self) -> &[u8] {
        b""
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        self.frame.header(lower_name.as_bytes())
    }
    fn query(&self) -> &[u8] {
        b""
    }
    fn method(&self) -> &[u8] {
        self.frame.header(b"method").unwrap_or(b"")
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        Some(self.peer)
    }
}

/// What the upstream side needs to answer a client: where its answers go, and how
/// many of its requests are in flight.
#[derive(Clone)]
pub(crate) struct ClientSide {
    out: mpsc::UnboundedSender<BytesMut>,
    /// The listener's stats (request time is recorded when the answer comes).
    stats: Arc<ListenerStats>,
    queued: Rc<Cell<usize>>,
    in_flight: Rc<Cell<usize>>,
    /// The connection's listener and client addresses with their texts, made at
    /// its first logged request.
    addr_texts: Rc<crate::AddrTexts>,
}

impl ClientSide {
    /// Queues bytes for the client (dropped when its connection is gone).
    pub(crate) fn send(&self, bytes: BytesMut) {
        self.queued.set(self.queued.get() + bytes.len());
        let _ = self.out.send(bytes);
    }
}

/// Serves one client connection speaking `codec`; `prefix` holds bytes read already.
pub async fn serve(
    stream: Stream,
    prefix: BytesMut,
    accepted: Accepted,
    listener: &RpcListener,
    codec: &'static dyn Codec,
    stats: &Arc<ListenerStats>,
    mut shutdown: Shutdown,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (out, mut rx) = mpsc::unbounded_channel::<BytesMut>();
    let queued = Rc::new(Cell::new(0usize));
    let client = ClientSide {
        out,
        stats: stats.clone(),
        queued: queued.clone(),
        in_flight: Rc::new(Cell::new(0)),
        addr_texts: Rc::default(),
    };
    // One writer per connection: answers are written as they come, in any order.
    let write_stats = stats.clone();
    let write_queued = queued.clone();
    let writer_task = async move {
        while let Some(first) = rx.recv().await {
            let mut batch = first;
            while let Ok(more) = rx.try_recv() {
                batch.extend_from_slice(&more);
                if batch.len() > 64 * 1024 {
                    break;
                }
            }
            write_queued.set(write_queued.get().saturating_sub(batch.len()));
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            write_stats
                .downstream_bytes_write_total
                .add(batch.len() as u64);
        }
        let _ = writer.shutdown().await;
    };
    let reader_task = async {
        let mut buf = prefix;
        loop {
            loop {
                match codec.decode(&mut buf, listener.max_frame) {
                    Ok(Some(frame)) => handle(frame, codec, listener, &client, accepted, stats),
                    Ok(None) => break,
                    Err(e) => {
                        stats.downstream_bad_request.inc();
                        tracing::info!(peer = %accepted.peer, protocol = codec.name(), error = %e, "bad frame from client: closing");
                        return;
                    }
                }
            }
            if queued.get() > listener.max_queued_bytes {
                tracing::info!(peer = %accepted.peer, "client does not read its answers: closing");
                return;
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            tokio::select! {
                read = tokio::time::timeout(listener.idle_timeout, reader.read_buf(&mut buf)) => match read {
                    Ok(Ok(n)) if n > 0 => stats.downstream_bytes_read_total.add(n as u64),
                    _ => return,
                },
                _ = shutdown.draining() => return,
            }
        }
    };
    tokio::pin!(writer_task);
    tokio::select! {
        () = reader_task => {}
        () = &mut writer_task => return,
    }
    // Reading is over: let the answers still in flight reach the client (bounded by
    // the requests' own deadlines), then close.
    let drain = async {
        while client.in_flight.get() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(DEFAULT_ROUTE_TIMEOUT, drain).await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}

/// An RPC request's access log entry, carried with the request to its answer.
pub(crate) struct RequestLog {
    entry: Box<Entry>,
    logs: AccessLogs,
}

impl RequestLog {
    /// The upstream's answer (its protocol status) went to the client.
    pub(crate) fn answered(mut self, status: u32, bytes: usize) {
        let e = &mut self.entry;
        e.bytes_sent = bytes as u64;
        e.responded(u16::try_from(status).unwrap_or(u16::MAX));
        self.logs.log_kept(e);
    }

    /// The proxy answered itself (`bytes`: the answer's size; 0 when none was sent).
    pub(crate) fn hijacked(mut self, why: Hijack, bytes: usize) {
        let e = &mut self.entry;
        let (code, flag) = match why {
            Hijack::NoRoute => (404, flags::NO_ROUTE),
            Hijack::NoHealthyUpstream => (502, flags::NO_HEALTHY_UPSTREAM),
            Hijack::Overflow => (503, flags::OVERFLOW),
            Hijack::Timeout => (504, flags::UPSTREAM_TIMEOUT),
            Hijack::UpstreamClosed => (500, flags::UPSTREAM_RESET),
            Hijack::BadRequest => (400, flags::BAD_REQUEST),
        };
        e.flags |= flag;
        e.bytes_sent = bytes as u64;
        e.responded(code);
        self.logs.log_kept(e);
    }

    /// The request goes to `host` of `cluster`.
    pub(crate) fn upstream(&mut self, host: &Host, cluster: &Arc<str>) {
        self.entry.upstream(host, cluster);
    }
}

/// One frame from a client.
fn handle(
    frame: Frame,
    codec: &'static dyn Codec,
    listener: &RpcListener,
    client: &ClientSide,
    accepted: Accepted,
    stats: &ListenerStats,
) {
    match frame.kind {
        FrameKind::Heartbeat => return client.send(codec.heartbeat_ack(&frame)),
        FrameKind::Request | FrameKind::OneWay => {}
        // A client has nothing to answer; MOSN drops these too.
        FrameKind::Response | FrameKind::HeartbeatAck => return,
    }
    stats.downstream_request_total.inc();
    let mut log = listener.access_logs.entry(codec.name(), || {
        client.addr_texts.get(accepted.local, accepted.peer)
    });
    if let Some(e) = log.as_deref_mut() {
        e.bytes_received = frame.raw.len() as u64;
        listener
            .access_logs
            .keep_request(e, |name| frame.header(name.as_bytes()));
    }
    let mut log = log.map(|e| RequestLog {
        entry: e,
        logs: listener.access_logs.clone(),
    });
    let mut hijack = |frame: &Frame, why: Hijack| {
        let reply = codec.hijack(frame, why);
        if let Some(l) = log.take() {
            l.hijacked(why, reply.as_ref().map_or(0, |r| r.len()));
        }
        if let Some(reply) = reply {
            client.send(reply);
        }
    };
    let view = RpcView {
        frame: &frame,
        peer: accepted.peer.ip(),
    };
    // A guard, not a reference count: no await while it is held.
    let table = listener.routes.current();
    let Some(route) = table.route(&view) else {
        stats.no_route.inc();
        return hijack(&frame, Hijack::NoRoute);
    };
    let RouteAction::Cluster(action) = &route.action else {
        stats.no_route.inc();
        return hijack(&frame, Hijack::NoRoute);
    };
    let Some(choice) = action.pick_cluster(&view, fastrand::u64(..)) else {
        stats.no_route.inc();
        return hijack(&frame, Hijack::NoRoute);
    };
    let Some(cluster) = listener.clusters.get(choice.name) else {
        stats.no_route.inc();
        return hijack(&frame, Hijack::NoRoute);
    };
    let lb = LbContext {
        hash: if cluster.uses_hash {
            action.hash(&view)
        } else {
            None
        },
        metadata_match: choice.metadata_match.map(|m| m.map()),
        avoid: None,
        original_dst: Some(accepted.local),
    };
    let Some(host) = cluster.choose_host(&lb) else {
        stats.no_healthy_upstream.inc();
        return hijack(&frame, Hijack::NoHealthyUpstream);
    };
    // The deadline: the client's own timeout (Bolt) when it gave one, else the route's.
    let route_timeout = match action.timeout {
        None => Some(DEFAULT_ROUTE_TIMEOUT),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    };
    let timeout = match frame.timeout_ms {
        Some(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
        _ => route_timeout,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let request = upstream::Outbound {
        frame,
        client: client.clone(),
        deadline,
        log: log.take(),
    };
    upstream::forward(request, codec, cluster, host, stats, listener.max_frame);
}

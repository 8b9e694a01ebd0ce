//! Per-worker multiplexed upstream connections for RPC: one connection per host,
//! codec and transport on each worker. Requests get fresh ids from the connection's
//! counter; responses are matched back by id and sent to their client with the
//! client's id restored. A request waits at most until its deadline (then the client
//! gets the protocol's timeout answer); a connection that closes answers everything
//! in flight with "upstream closed". Idle connections are kept alive with the
//! protocol's heartbeat, and closed after six go unanswered (MOSN's keepalive).

use super::{ClientSide, RequestLog};
use crate::http1::exchange::open_connection;
use crate::http1::local_reply::LocalReply;
use bytes::BytesMut;
use mosn_observe::ListenerStats;
use mosn_protocol::xprotocol::{Codec, Frame, FrameKind, Hijack};
use mosn_upstream::cluster::{try_request, RequestPermit};
use mosn_upstream::outlier::{self, Outcome as OutlierOutcome};
use mosn_upstream::pool::ConnGuard;
use mosn_upstream::FastMap;
use mosn_upstream::{Cluster, Host, UpstreamTls};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often deadlines of requests in flight are checked.
const DEADLINE_TICK: Duration = Duration::from_millis(50);
/// MOSN's keepalive: a heartbeat after this long without reading anything (and every
/// cluster `keepalive.interval`, when set) ...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// ... answered within this (cluster `keepalive.timeout`) ...
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// ... or, after this many unanswered in a row, the connection is closed.
const KEEPALIVE_MISSES: u32 = 6;

/// A client's request on its way up.
pub(super) struct Outbound {
    pub frame: Frame,
    /// Where its answer goes.
    pub client: ClientSide,
    pub deadline: Option<Instant>,
    /// Its access log entry, when the listener logs.
    pub log: Option<RequestLog>,
}

/// A request waiting for its response.
struct Pending {
    client: ClientSide,
    /// The request as the client sent it (its own id), for a hijack answer.
    request: Frame,
    deadline: Option<Instant>,
    /// When it was sent (request time stats).
    sent: Instant,
    log: Option<RequestLog>,
    _permit: RequestPermit,
}

/// The connection's state: requests queue while it connects.
enum State {
    Connecting(Vec<BytesMut>),
    Ready(mpsc::UnboundedSender<BytesMut>),
}

struct Mux {
    codec: &'static dyn Codec,
    cluster: Arc<Cluster>,
    host: Arc<Host>,
    state: RefCell<State>,
    pending: RefCell<FastMap<u64, Pending>>,
    next_id: Cell<u64>,
    /// The id of the heartbeat awaiting its ack, and how many went unanswered.
    heartbeat: Cell<Option<(u64, Instant)>>,
    misses: Cell<u32>,
    last_read: Cell<Instant>,
    last_heartbeat: Cell<Instant>,
    key: Key,
    /// Largest frame accepted from the upstream.
    max_frame: usize,
}

type Key = (SocketAddr, &'static str, usize);

thread_local! {
    static MUXES: RefCell<FastMap<Key, Rc<Mux>>> = RefCell::new(FastMap::default());
}

impl Mux {
    fn next_id(&self) -> u64 {
        let mut id = self.next_id.get().wrapping_add(1);
        if id > self.codec.max_id() || id == 0 {
            id = 1;
        }
        self.next_id.set(id);
        id
    }

    fn send(&self, bytes: BytesMut) {
        match &mut *self.state.borrow_mut() {
            State::Connecting(queue) => queue.push(bytes),
            State::Ready(tx) => {
                let _ = tx.send(bytes);
            }
        }
    }

    /// Answers every request in flight with `why` and forgets the connection.
    fn fail_all(&self, why: Hijack) {
        MUXES.with(|m| {
            let mut m = m.borrow_mut();
            if m.get(&self.key)
                .is_some_and(|x| std::ptr::eq(Rc::as_ptr(x), self))
            {
                m.remove(&self.key);
            }
        });
        let drained: Vec<Pending> = self.pending.borrow_mut().drain().map(|(_, p)| p).collect();
        for p in drained {
            answer(self, p, why);
        }
    }
}

/// Answers a request in flight with the proxy's own error.
fn answer(mux: &Mux, p: Pending, why: Hijack) {
    let elapsed = p.sent.elapsed();
    mux.cluster.request_done(&mux.host, elapsed, None);
    p.client.stats.downstream_request_time.record(elapsed);
    let reply = mux.codec.hijack(&p.request, why);
    if let Some(log) = p.log {
        log.hijacked(why, reply.as_ref().map_or(0, |r| r.len()));
    }
    if let Some(reply) = reply {
        p.client.send(reply);
    }
    p.client
        .in_flight
        .set(p.client.in_flight.get().saturating_sub(1));
}

/// Sends a client's request upstream (the answer comes back through `client`).
pub(super) fn forward(
    request: Outbound,
    codec: &'static dyn Codec,
    cluster: Arc<Cluster>,
    host: Arc<Host>,
    stats: &ListenerStats,
    max_frame: usize,
) {
    let Outbound {
        mut frame,
        client,
        deadline,
        mut log,
    } = request;
    if let Some(l) = &mut log {
        l.upstream(&host, &cluster.name);
    }
    let hijack = |frame: &Frame, why: Hijack, log: Option<RequestLog>| {
        let reply = codec.hijack(frame, why);
        if let Some(l) = log {
            l.hijacked(why, reply.as_ref().map_or(0, |r| r.len()));
        }
        if let Some(r) = reply {
            client.send(r);
        }
    };
    let tls = match &cluster.tls {
        UpstreamTls::On(t) => Some(t.clone()),
        UpstreamTls::Off => None,
        UpstreamTls::Failed(_) => {
            stats.upstream_connect_failure.inc();
            return hijack(&frame, Hijack::NoHealthyUpstream, log);
        }
    };
    let Some(permit) = try_request(&cluster) else {
        cluster.stats.upstream_request_overflow.inc();
        stats.upstream_overflow.inc();
        return hijack(&frame, Hijack::Overflow, log);
    };
    let key: Key = (
        host.addr,
        codec.name(),
        mosn_upstream::pool::transport_id(tls.as_ref()),
    );
    let mux = MUXES
        .with(|m| m.borrow().get(&key).cloned())
        .unwrap_or_else(|| {
            let mux = Rc::new(Mux {
                codec,
                cluster: cluster.clone(),
                host: host.clone(),
                state: RefCell::new(State::Connecting(Vec::new())),
                pending: RefCell::new(FastMap::default()),
                next_id: Cell::new(0),
                heartbeat: Cell::new(None),
                misses: Cell::new(0),
                last_read: Cell::new(Instant::now()),
                last_heartbeat: Cell::new(Instant::now()),
                key,
                max_frame,
            });
            MUXES.with(|m| m.borrow_mut().insert(key, mux.clone()));
            tokio::task::spawn_local(run(mux.clone()));
            mux
        });
    cluster.stats.upstream_request_total.inc();
    let id = mux.next_id();
    // The hijack template keeps the client's id: copied before the id is rewritten.
    let request = Frame {
        kind: frame.kind,
        id: frame.id,
        raw: BytesMut::from(&frame.raw[..frame.raw.len().min(32)]),
        headers: Vec::new(),
        status: 0,
        timeout_ms: None,
    };
    codec.set_id(&mut frame, id);
    if frame.kind == FrameKind::Request {
        client.in_flight.set(client.in_flight.get() + 1);
        mux.pending.borrow_mut().insert(
            id,
            Pending {
                client,
                request,
                deadline,
                sent: Instant::now(),
                log,
                _permit: permit,
            },
        );
    } else if let Some(l) = log {
        // One-way: nothing will answer; logged as sent, with no response code.
        l.answered(0, 0);
    }
    mux.send(frame.raw);
}

/// Connects, then drives the connection: writes, reads and matches responses,
/// deadlines, keepalive.
async fn run(mux: Rc<Mux>) {
    let conn = match open_connection(&mux.cluster, &mux.host, false).await {
        Ok(c) => c,
        Err(reply) => {
            if reply == LocalReply::ConnectFailure {
                outlier::report(&mux.host, OutlierOutcome::LocalOriginFailure);
            }
            let why = if reply == LocalReply::Overflow {
                Hijack::Overflow
            } else {
                Hijack::NoHealthyUpstream
            };
            return mux.fail_all(why);
        }
    };
    let (stream, _guard): (_, ConnGuard) = conn.into_stream();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();
    let queued = match std::mem::replace(&mut *mux.state.borrow_mut(), State::Ready(tx)) {
        State::Connecting(q) => q,
        State::Ready(_) => Vec::new(),
    };
    let writes = async {
        for bytes in queued {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        while let Some(first) = rx.recv().await {
            let mut batch = first;
            while let Ok(more) = rx.try_recv() {
                batch.extend_from_slice(&more);
                if batch.len() > 64 * 1024 {
                    break;
                }
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
        }
    };
    let reads = async {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            loop {
                match mux.codec.decode(&mut buf, mux.max_frame) {
                    Ok(Some(frame)) => on_frame(&mux, frame),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(upstream = %mux.host.addr, error = %e, "bad frame from upstream: closing");
                        return;
                    }
                }
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            match reader.read_buf(&mut buf).await {
                Ok(n) if n > 0 => mux.last_read.set(Instant::now()),
                _ => return,
            }
        }
    };
    let timers = async {
        let mut tick = tokio::time::interval(DEADLINE_TICK);
        loop {
            tick.tick().await;
            expire(&mux);
            if !keepalive(&mux) {
                tracing::info!(upstream = %mux.host.addr, "{KEEPALIVE_MISSES} heartbeats unanswered: closing");
                return;
            }
        }
    };
    tokio::select! {
        () = writes => {}
        () = reads => {}
        () = timers => {}
    }
    mux.fail_all(Hijack::UpstreamClosed);
}

fn on_frame(mux: &Mux, mut frame: Frame) {
    match frame.kind {
        FrameKind::Response => {
            let Some(p) = mux.pending.borrow_mut().remove(&frame.id) else {
                return; // late (timed out) or unknown: dropped, as MOSN does
            };
            let ok = mux.codec.is_success(frame.status);
            let code = if ok { 200 } else { 500 };
            let elapsed = p.sent.elapsed();
            mux.cluster.request_done(&mux.host, elapsed, Some(code));
            p.client.stats.downstream_request_time.record(elapsed);
            mux.cluster.stats.response(code);
            outlier::report(&mux.host, OutlierOutcome::Success(code));
            mux.codec.set_id(&mut frame, p.request.id);
            if let Some(log) = p.log {
                log.answered(frame.status, frame.raw.len());
            }
            p.client.send(frame.raw);
            p.client
                .in_flight
                .set(p.client.in_flight.get().saturating_sub(1));
        }
        FrameKind::HeartbeatAck => {
            if mux.heartbeat.get().is_some_and(|(id, _)| id == frame.id) {
                mux.heartbeat.set(None);
                mux.misses.set(0);
            }
        }
        FrameKind::Heartbeat => mux.send(mux.codec.heartbeat_ack(&frame)),
        FrameKind::Request | FrameKind::OneWay => {}
    }
}

/// Answers requests whose deadline passed.
fn expire(mux: &Mux) {
    let now = Instant::now();
    let late: Vec<u64> = mux
        .pending
        .borrow()
        .iter()
        .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
        .map(|(id, _)| *id)
        .collect();
    for id in late {
        if let Some(p) = mux.pending.borrow_mut().remove(&id) {
            mux.cluster.stats.upstream_request_timeout.inc();
            answer(mux, p, Hijack::Timeout);
        }
    }
}

/// MOSN's keepalive; false when the connection is to be closed.
fn keepalive(mux: &Mux) -> bool {
    let now = Instant::now();
    let cfg = mux.cluster.config.keepalive.as_ref();
    let timeout = cfg
        .and_then(|k| k.timeout)
        .map_or(KEEPALIVE_TIMEOUT, |d| d.0);
    let interval = cfg.and_then(|k| k.interval).map(|d| d.0);
    if let Some((_, sent)) = mux.heartbeat.get() {
        if now.duration_since(sent) < timeout {
            return true;
        }
        mux.heartbeat.set(None);
        mux.misses.set(mux.misses.get() + 1);
        if mux.misses.get() >= KEEPALIVE_MISSES {
            return false;
        }
    }
    let idle = now.duration_since(mux.last_read.get()) >= KEEPALIVE_IDLE;
    let scheduled = interval.is_some_and(|i| now.duration_since(mux.last_heartbeat.get()) >= i);
    if (idle || scheduled) && mux.heartbeat.get().is_none() {
        let id = mux.next_id();
        if let Some(hb) = mux.codec.heartbeat(id) {
            mux.heartbeat.set(Some((id, now)));
            mux.last_heartbeat.set(now);
            // Counts as activity: the next idle one only after another idle period.
            mux.last_read.set(now);
            mux.send(hb);
        }
    }
    true
}

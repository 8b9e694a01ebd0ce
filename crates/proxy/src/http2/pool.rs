//! Per-worker HTTP/2 upstream connections: multiplexed connections per host and
//! worker, opened on demand. A stream goes on the first connection with room under the
//! peer's SETTINGS_MAX_CONCURRENT_STREAMS; when all are full another is opened (within
//! the cluster's connection breaker). A connection that fails is dropped and replaced.

use crate::http1::exchange::open_connection;
use crate::http1::local_reply::LocalReply;
use bytes::Bytes;
use h2::client::SendRequest;
use mosn_config::filters::Http2Options;
use mosn_upstream::{Cluster, Host};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::Notify;

struct Entry {
    send: SendRequest<Bytes>,
    /// Streams this worker has open on the connection.
    active: Rc<Cell<usize>>,
}

thread_local! {
    static CONNS: RefCell<HashMap<SocketAddr, Vec<Entry>>> = RefCell::new(HashMap::new());
    /// Connections being opened, per host: streams that find no room wait for one
    /// instead of each opening their own, as many as it will take.
    static OPENING: RefCell<HashMap<SocketAddr, Opening>> = RefCell::new(HashMap::new());
    /// The peer's last seen SETTINGS_MAX_CONCURRENT_STREAMS per host: how many streams
    /// a connection being opened is expected to take (1 until a connection has told).
    static KNOWN_MAX: RefCell<HashMap<SocketAddr, usize>> = RefCell::new(HashMap::new());
}

/// A connection being opened to a host, and the streams waiting for it.
#[derive(Clone)]
struct Opening {
    done: Rc<Notify>,
    waiting: Rc<Cell<usize>>,
}

/// Unregisters the connection being opened when dropped, and wakes its waiters.
struct OpeningGuard(SocketAddr, Rc<Notify>);

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        OPENING.with(|o| {
            let mut o = o.borrow_mut();
            if o.get(&self.0).is_some_and(|e| Rc::ptr_eq(&e.done, &self.1)) {
                o.remove(&self.0);
            }
        });
        self.1.notify_waiters();
    }
}

/// Counts a stream as waiting for a connection being opened, while it lives.
struct Waiting(Rc<Cell<usize>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// A stream's place on a connection, given back when the stream is done.
pub struct Slot(Rc<Cell<usize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

fn take_slot(active: &Rc<Cell<usize>>) -> Slot {
    active.set(active.get() + 1);
    Slot(active.clone())
}

/// A handle ready to open a stream to `host`, and the stream's slot (hold it until the
/// stream ends).
/// How many times a request tries a connection it opened that went away before the
/// request got a stream on it.
const FRESH_CONNECTION_TRIES: usize = 3;

/// A stream slot on a pooled connection to `host`, or on a new one.
pub async fn sender(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
) -> Result<(SendRequest<Bytes>, Slot), LocalReply> {
    let mut tries = 0;
    loop {
        match sender_once(cluster, host, o).await {
            // Other requests took the new connection's streams and the upstream
            // closed it (GOAWAY after its request limit) before this one got a
            // stream: nothing was sent, so another connection may take it.
            Err(Opened::Gone) if tries + 1 < FRESH_CONNECTION_TRIES => tries += 1,
            Err(Opened::Gone) => return Err(LocalReply::UpstreamReset),
            Err(Opened::Reply(reply)) => return Err(reply),
            Ok(pair) => return Ok(pair),
        }
    }
}

/// Why [`sender_once`] has no stream.
enum Opened {
    /// The connection it opened went away before it got a stream.
    Gone,
    Reply(LocalReply),
}

async fn sender_once(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
) -> Result<(SendRequest<Bytes>, Slot), Opened> {
    loop {
        let candidate = CONNS.with(|c| {
            c.borrow().get(&host.addr).and_then(|list| {
                if let Some(e) = list.last() {
                    let max = e.send.current_max_send_streams();
                    KNOWN_MAX.with(|k| k.borrow_mut().insert(host.addr, max));
                }
                list.iter()
                    .find(|e| e.active.get() < e.send.current_max_send_streams())
                    .map(|e| (e.send.clone(), e.active.clone()))
            })
        });
        let Some((send, active)) = candidate else {
            // A connection being opened takes this stream too if it has room for it
            // (its opener holds one slot).
            let opening = OPENING.with(|o| o.borrow().get(&host.addr).cloned());
            let expected = KNOWN_MAX.with(|k| k.borrow().get(&host.addr).copied().unwrap_or(1));
            match opening {
                Some(o) if o.waiting.get() + 1 < expected => {
                    o.waiting.set(o.waiting.get() + 1);
                    let _waiting = Waiting(o.waiting.clone());
                    o.done.notified().await;
                    continue;
                }
                _ => break,
            }
        };
        if !host.is_removed() {
            if let Ok(ready) = send.ready().await {
                cluster.stats.upstream_connection_reused.inc();
                return Ok((ready, take_slot(&active)));
            }
        }
        // Failed or retired: forget this connection and look again.
        CONNS.with(|c| {
            if let Some(list) = c.borrow_mut().get_mut(&host.addr) {
                list.retain(|e| !Rc::ptr_eq(&e.active, &active));
            }
        });
    }
    let done = Rc::new(Notify::new());
    OPENING.with(|o| {
        o.borrow_mut().entry(host.addr).or_insert_with(|| Opening {
            done: done.clone(),
            waiting: Rc::new(Cell::new(0)),
        });
    });
    let _opening = OpeningGuard(host.addr, done);
    let conn = open_connection(cluster, host, true)
        .await
        .map_err(Opened::Reply)?;
    let (stream, guard) = conn.into_stream();
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(o.initial_stream_window_size)
        .initial_connection_window_size(o.initial_connection_window_size)
        .max_header_list_size(o.max_header_list_size);
    let (send, connection) = match builder.handshake::<_, Bytes>(stream).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "http2 upstream handshake failed");
            return Err(Opened::Reply(LocalReply::ConnectFailure));
        }
    };
    let addr = host.addr;
    tokio::task::spawn_local(async move {
        let _guard = guard;
        if let Err(e) = connection.await {
            tracing::debug!(%addr, error = %e, "http2 upstream connection ended");
        }
    });
    let active = Rc::new(Cell::new(0));
    CONNS.with(|c| {
        c.borrow_mut().entry(addr).or_default().push(Entry {
            send: send.clone(),
            active: active.clone(),
        });
    });
    match send.ready().await {
        Ok(ready) => Ok((ready, take_slot(&active))),
        Err(_) => {
            CONNS.with(|c| {
                if let Some(list) = c.borrow_mut().get_mut(&addr) {
                    list.retain(|e| !Rc::ptr_eq(&e.active, &active));
                }
            });
            Err(Opened::Gone)
        }
    }
}

/// Drops this worker's connections to `addr` (one refused a stream or is going away);
/// the next stream opens a new one.
pub fn forget(addr: SocketAddr) {
    CONNS.with(|c| c.borrow_mut().remove(&addr));
}

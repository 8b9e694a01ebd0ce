//! Per-worker HTTP/2 upstream connections: multiplexed connections per host and
//! worker, opened on demand. A stream goes on the first connection with room under the
//! peer's SETTINGS_MAX_CONCURRENT_STREAMS; when all are full another is opened (within
//! the cluster's connection breaker). A connection that fails is dropped and replaced.
//! A request the upstream turned away unprocessed may ask for a new connection of its
//! own, where it is the first stream.

use crate::http1::exchange::open_connection;
use crate::http1::local_reply::LocalReply;
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use http::Request;
use mosn_config::filters::Http2Options;
use mosn_upstream::FastMap;
use mosn_upstream::{Cluster, Host};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::Notify;

/// How many times a request the upstream never processed is sent again without a
/// retry policy (HTTP/2 and HTTP/1.1 clients alike).
pub(crate) const UNPROCESSED_RESENDS_MAX: u32 = 10;
/// After this many such resends a request goes on a connection of its own (see
/// [`send_request`]): an upstream that closes its connections after a few streams
/// processes it there, however many other streams race it for new connections.
pub(crate) const OWN_CONNECTION_AFTER: u32 = 2;

/// A request's sends outside the retry policy (HTTP/2 and HTTP/1.1 clients alike): a
/// stream the upstream never processed goes again up to [`UNPROCESSED_RESENDS_MAX`]
/// times, a dropped connection's idempotent request once (the upstream may have acted
/// on it: never a query-of-death amplifier).
#[derive(Default)]
pub(crate) struct Resends {
    unprocessed: u32,
    stale: bool,
}

impl Resends {
    /// Should the next try take a connection of its own?
    pub(crate) fn own_connection(&self) -> bool {
        self.unprocessed >= OWN_CONNECTION_AFTER
    }

    /// Is a try that ended in `failure` sent again as it is (counted), when its
    /// request can be?
    pub(crate) fn again(&mut self, failure: crate::retry::TryFailure, resendable: bool) -> bool {
        use crate::retry::TryFailure;
        let again = resendable
            && match failure {
                TryFailure::Refused => self.unprocessed < UNPROCESSED_RESENDS_MAX,
                TryFailure::Reset { stale_pooled: true } => !self.stale,
                _ => false,
            };
        if again {
            match failure {
                TryFailure::Refused => self.unprocessed += 1,
                _ => self.stale = true,
            }
        }
        again
    }
}

struct Entry {
    send: SendRequest<Bytes>,
    /// Streams this worker has open on the connection.
    active: Rc<Cell<usize>>,
}

thread_local! {
    static CONNS: RefCell<FastMap<SocketAddr, Vec<Entry>>> = RefCell::new(FastMap::default());
    /// Connections being opened, per host: streams that find no room wait for one
    /// instead of each opening their own, as many as it will take.
    static OPENING: RefCell<FastMap<SocketAddr, Opening>> = RefCell::new(FastMap::default());
    /// The peer's last seen SETTINGS_MAX_CONCURRENT_STREAMS per host: how many streams
    /// a connection being opened is expected to take (1 until a connection has told).
    static KNOWN_MAX: RefCell<FastMap<SocketAddr, usize>> = RefCell::new(FastMap::default());
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
pub struct Slot {
    active: Rc<Cell<usize>>,
    addr: SocketAddr,
}

impl Slot {
    /// The stream's connection went away (GOAWAY, refused stream, closed): no further
    /// stream is put on it (the worker's other connections to the host stay).
    pub fn retire(&self) {
        retire(self.addr, &self.active);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.set(self.active.get().saturating_sub(1));
    }
}

fn take_slot(active: &Rc<Cell<usize>>, addr: SocketAddr) -> Slot {
    active.set(active.get() + 1);
    Slot {
        active: active.clone(),
        addr,
    }
}

/// Takes the connection whose streams `active` counts out of the pool.
fn retire(addr: SocketAddr, active: &Rc<Cell<usize>>) {
    CONNS.with(|c| {
        if let Some(list) = c.borrow_mut().get_mut(&addr) {
            list.retain(|e| !Rc::ptr_eq(&e.active, active));
        }
    });
}

/// Why no stream was opened.
pub enum NoStream {
    /// The connection went away before the request was sent on it: the upstream never
    /// saw it, so it may be sent again.
    Unprocessed,
    Reply(LocalReply),
}

/// A connection just opened: entered in the pool when dropped (after its opener sent
/// its request, the connection's first stream), which wakes the streams waiting for it.
struct Fresh {
    addr: SocketAddr,
    entry: Option<Entry>,
    /// Dropped after the entry is in the pool.
    _opening: OpeningGuard,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            CONNS.with(|c| c.borrow_mut().entry(self.addr).or_default().push(entry));
        }
    }
}

/// Sends `request`'s head (its end too when `end_of_stream`) on a new stream to `host`:
/// on a pooled connection with room, or on a new one. `own_connection`: always on a
/// new connection, as its first stream, which no other stream can take first: the
/// upstream turned the request away before, and a connection that closes after a few
/// streams (GOAWAY) surely processes its first; on a shared new connection other
/// streams may take those first places every time.
pub async fn send_request(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
    request: Request<()>,
    end_of_stream: bool,
    own_connection: bool,
) -> Result<(ResponseFuture, SendStream<Bytes>, Slot), NoStream> {
    let (mut send, slot, fresh) = acquire(cluster, host, o, own_connection).await?;
    let sent = send.send_request(request, end_of_stream);
    // The request has its stream: others may take the new connection's next ones.
    drop(fresh);
    match sent {
        Ok((response, stream)) => Ok((response, stream, slot)),
        // The connection went away before the stream was opened: nothing was sent.
        Err(_) => {
            slot.retire();
            Err(NoStream::Unprocessed)
        }
    }
}

/// A handle ready to open a stream to `host`, and the stream's slot (hold it until the
/// stream ends): on a pooled connection with room, or on a new one.
pub async fn sender(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
) -> Result<(SendRequest<Bytes>, Slot), LocalReply> {
    match acquire(cluster, host, o, false).await {
        Ok((send, slot, _fresh)) => Ok((send, slot)),
        Err(NoStream::Unprocessed) => Err(LocalReply::UpstreamReset),
        Err(NoStream::Reply(reply)) => Err(reply),
    }
}

/// A ready handle and a slot on a pooled connection, or on a new one (always when
/// `own_connection`), with the new connection to enter in the pool.
async fn acquire(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
    own_connection: bool,
) -> Result<(SendRequest<Bytes>, Slot, Option<Fresh>), NoStream> {
    if !own_connection {
        if let Some((send, slot)) = pooled(cluster, host).await {
            return Ok((send, slot, None));
        }
    }
    let done = Rc::new(Notify::new());
    OPENING.with(|o| {
        o.borrow_mut().entry(host.addr).or_insert_with(|| Opening {
            done: done.clone(),
            waiting: Rc::new(Cell::new(0)),
        });
    });
    let opening = OpeningGuard(host.addr, done);
    let conn = open_connection(cluster, host, true)
        .await
        .map_err(NoStream::Reply)?;
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
            return Err(NoStream::Reply(LocalReply::ConnectFailure));
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
    let entry = Entry {
        send: send.clone(),
        active: active.clone(),
    };
    // Not yet polled, the connection has no error: the handle is ready at once.
    let ready = send.ready().await.map_err(|_| NoStream::Unprocessed)?;
    let fresh = Fresh {
        addr,
        entry: Some(entry),
        _opening: opening,
    };
    Ok((ready, take_slot(&active, addr), Some(fresh)))
}

/// A ready handle and a slot on a pooled connection with room (or on one being opened
/// that will have room), or None: a new connection is needed.
async fn pooled(cluster: &Cluster, host: &Arc<Host>) -> Option<(SendRequest<Bytes>, Slot)> {
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
                _ => return None,
            }
        };
        if !host.is_removed() {
            if let Ok(ready) = send.ready().await {
                cluster.stats.upstream_connection_reused.inc();
                return Some((ready, take_slot(&active, host.addr)));
            }
        }
        // Failed or retired: forget this connection and look again.
        retire(host.addr, &active);
    }
}

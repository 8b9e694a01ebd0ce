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

struct Entry {
    send: SendRequest<Bytes>,
    /// Streams this worker has open on the connection.
    active: Rc<Cell<usize>>,
}

thread_local! {
    static CONNS: RefCell<HashMap<SocketAddr, Vec<Entry>>> = RefCell::new(HashMap::new());
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
pub async fn sender(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
) -> Result<(SendRequest<Bytes>, Slot), LocalReply> {
    loop {
        let candidate = CONNS.with(|c| {
            c.borrow().get(&host.addr).and_then(|list| {
                list.iter()
                    .find(|e| e.active.get() < e.send.current_max_send_streams())
                    .map(|e| (e.send.clone(), e.active.clone()))
            })
        });
        let Some((send, active)) = candidate else {
            break;
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
    let conn = open_connection(cluster, host, true).await?;
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
            return Err(LocalReply::ConnectFailure);
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
    let ready = send.ready().await.map_err(|_| LocalReply::UpstreamReset)?;
    Ok((ready, take_slot(&active)))
}

/// Drops this worker's connections to `addr` (one refused a stream or is going away);
/// the next stream opens a new one.
pub fn forget(addr: SocketAddr) {
    CONNS.with(|c| c.borrow_mut().remove(&addr));
}

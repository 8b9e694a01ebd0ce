//! Per-worker HTTP/2 upstream connections: one multiplexed connection per host and
//! worker, opened on demand and replaced when it fails. `h2` queues streams beyond
//! the peer's MAX_CONCURRENT_STREAMS until one ends.

use crate::http1::exchange::open_connection;
use crate::http1::local_reply::LocalReply;
use bytes::Bytes;
use h2::client::SendRequest;
use mosn_config::filters::Http2Options;
use mosn_upstream::{Cluster, Host};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

thread_local! {
    static CONNS: RefCell<HashMap<SocketAddr, SendRequest<Bytes>>> = RefCell::new(HashMap::new());
}

/// A handle ready to open a stream to `host`.
pub async fn sender(
    cluster: &Cluster,
    host: &Arc<Host>,
    o: &Http2Options,
) -> Result<SendRequest<Bytes>, LocalReply> {
    let existing = CONNS.with(|c| c.borrow().get(&host.addr).cloned());
    if let Some(send) = existing {
        if !host.is_removed() {
            if let Ok(ready) = send.ready().await {
                cluster.stats.upstream_connection_reused.inc();
                return Ok(ready);
            }
        }
        CONNS.with(|c| c.borrow_mut().remove(&host.addr));
    }
    let conn = open_connection(cluster, host).await?;
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
    CONNS.with(|c| c.borrow_mut().insert(addr, send.clone()));
    send.ready().await.map_err(|_| LocalReply::UpstreamReset)
}

/// Drops this worker's connection to `addr` (it refused a stream or is going away);
/// the next stream opens a new one.
pub fn forget(addr: SocketAddr) {
    CONNS.with(|c| c.borrow_mut().remove(&addr));
}

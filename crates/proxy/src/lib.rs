//! The Proxy layer: what a listener does with an accepted connection.
//!
//! A [`Snapshot`] is the immutable runtime form of one config: listeners with their
//! route tables and the cluster manager. Workers read the current snapshot when they
//! accept a connection and keep it for that connection's life.

pub mod access_log;
mod chain;
mod client_hello;
pub mod http1;
pub mod http2;
mod listener_filter;
pub mod proxy_protocol;
pub(crate) mod retry;
pub mod routes;
pub mod rpc;
pub mod shutdown;
pub mod snapshot;
pub mod tcp;
pub mod trace;
pub(crate) mod xfcc;

pub use chain::FilterChain;
pub use shutdown::{ConnectionGuard, Shutdown};
pub use snapshot::{ListenerKind, ListenerRuntime, Snapshot, SnapshotError};

use mosn_observe::addr_text::TextedAddr;
use mosn_tls::Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Serves one accepted connection on `listener` until it closes. `snapshot` is the
/// config it was accepted under (an `original_dst` listener hands the connection to
/// another of its listeners).
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerRuntime>,
    snapshot: Arc<Snapshot>,
    shutdown: Shutdown,
) {
    // Counted on the accepting listener, whichever listener serves it.
    let accepting_stats = listener.stats.clone();
    let _guard = ConnectionGuard::new(&accepting_stats);
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut conn = Accepted { peer, local };
    let mut listener = listener;
    if !listener.listener_filters.is_empty() {
        match Box::pin(listener_filter::run(&stream, conn, listener, &snapshot)).await {
            Some((accepted, target)) => {
                conn = accepted;
                listener = target;
            }
            None => return,
        }
    }
    if listener.chains.is_empty() {
        // One plain chain: no inspection, no TLS.
        return serve_chain(Stream::Plain(stream), conn, &listener, shutdown).await;
    }
    // Boxed: TLS and chain selection must not enlarge every plain connection's task.
    Box::pin(chain::serve(stream, conn, &listener, shutdown)).await
}

/// A connection's addresses as the proxy uses them: the client's (from a PROXY
/// protocol header when there is one) and the destination (the original one of a
/// redirected connection).
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// A connection's local and remote addresses with their texts, made at its first
/// request that logs or is traced and copied for the others (every engine's
/// records print them).
#[derive(Default)]
pub(crate) struct AddrTexts(std::cell::Cell<Option<(TextedAddr, TextedAddr)>>);

impl AddrTexts {
    pub(crate) fn get(&self, local: SocketAddr, remote: SocketAddr) -> (TextedAddr, TextedAddr) {
        if let Some(texts) = self.0.get() {
            return texts;
        }
        let texts = (local.into(), remote.into());
        self.0.set(Some(texts));
        texts
    }
}

/// Serves a connection with the chain's network filter; a TLS connection's ALPN picks
/// the HTTP version.
pub(crate) async fn serve_chain(
    stream: Stream,
    conn: Accepted,
    runtime: &Arc<ListenerRuntime>,
    shutdown: Shutdown,
) {
    match &runtime.kind {
        ListenerKind::Http(http) => {
            http1::serve(stream, conn, runtime, http, &runtime.stats, shutdown).await
        }
        // Boxed: its connect (and TLS handshake) state must not enlarge every HTTP
        // connection's task.
        ListenerKind::Tcp(tcp) => {
            Box::pin(tcp::serve(stream, conn, tcp, &runtime.stats, &[])).await
        }
        ListenerKind::Rpc(rpc) => {
            let Some(codec) = rpc.codec else { return };
            Box::pin(rpc::serve(
                stream,
                bytes::BytesMut::new(),
                conn,
                rpc,
                codec,
                &runtime.stats,
                shutdown,
            ))
            .await
        }
    }
}

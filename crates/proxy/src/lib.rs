//! The Proxy layer: what a listener does with an accepted connection.
//!
//! A [`Snapshot`] is the immutable runtime form of one config: listeners with their
//! route tables and the cluster manager. Workers read the current snapshot when they
//! accept a connection and keep it for that connection's life.

mod chain;
pub mod http1;
pub mod http2;
pub(crate) mod retry;
pub mod shutdown;
pub mod snapshot;
pub mod tcp;

pub use chain::FilterChain;
pub use shutdown::{ConnectionGuard, Shutdown};
pub use snapshot::{ListenerKind, ListenerRuntime, Snapshot, SnapshotError};

use mosn_tls::Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Serves one accepted connection on `listener` until it closes.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerRuntime>,
    shutdown: Shutdown,
) {
    let _guard = ConnectionGuard::new(&listener.stats);
    let _ = stream.set_nodelay(true);
    if listener.chains.is_empty() {
        // One plain chain: no inspection, no TLS.
        return serve_chain(Stream::Plain(stream), peer, &listener, shutdown).await;
    }
    // Boxed: TLS and chain selection must not enlarge every plain connection's task.
    Box::pin(chain::serve(stream, peer, &listener, shutdown)).await
}

/// Serves a connection with the chain's network filter; a TLS connection's ALPN picks
/// the HTTP version.
pub(crate) async fn serve_chain(
    stream: Stream,
    peer: SocketAddr,
    runtime: &Arc<ListenerRuntime>,
    shutdown: Shutdown,
) {
    match &runtime.kind {
        ListenerKind::Http(http) => {
            http1::serve(stream, peer, runtime, http, &runtime.stats, shutdown).await
        }
        ListenerKind::Tcp(tcp) => tcp::serve(stream, peer, tcp, &runtime.stats, &[]).await,
    }
}

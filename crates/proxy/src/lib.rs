//! The Proxy layer: what a listener does with an accepted connection.
//!
//! A [`Snapshot`] is the immutable runtime form of one config: listeners with their
//! route tables and the cluster manager. Workers read the current snapshot when they
//! accept a connection and keep it for that connection's life.

pub mod http1;
pub mod http2;
pub(crate) mod retry;
pub mod shutdown;
pub mod snapshot;
pub mod tcp;

pub use shutdown::{ConnectionGuard, Shutdown};
pub use snapshot::{ListenerKind, ListenerRuntime, Snapshot, SnapshotError};

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
    match &listener.kind {
        ListenerKind::Http(http) => {
            http1::serve(stream, peer, &listener, http, &listener.stats, shutdown).await
        }
        ListenerKind::Tcp(tcp) => tcp::serve(stream, peer, tcp, &listener.stats, &[]).await,
    }
}

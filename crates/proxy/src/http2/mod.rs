//! The HTTP/2 proxy (h2c with prior knowledge, or detected by `Auto`): one task per
//! connection accepts streams; each stream is routed and forwarded on its own task,
//! to an HTTP/2 upstream (multiplexed, one connection per host and worker) or to an
//! HTTP/1.1 upstream (converted). Bodies flow under HTTP/2 flow control end to end:
//! the proxy gives window back to a sender only once it has passed the bytes on.

pub(crate) mod body;
mod grpc;
mod h1_upstream;
mod io;
pub(crate) mod pool;
mod stream;

use crate::shutdown::Shutdown;
use crate::snapshot::{ListenerKind, ListenerRuntime};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

pub(crate) use h1_upstream::parse_trailers as h1_trailers;
pub use io::PrefixedIo;

/// Serves one HTTP/2 connection; `prefix` holds bytes already read by detection.
pub async fn serve(
    stream: TcpStream,
    prefix: Bytes,
    peer: SocketAddr,
    runtime: Arc<ListenerRuntime>,
    mut shutdown: Shutdown,
) {
    let ListenerKind::Http(listener) = &runtime.kind else {
        return;
    };
    let stats = &runtime.stats;
    let o = &listener.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(o.max_concurrent_streams)
        .initial_window_size(o.initial_stream_window_size)
        .initial_connection_window_size(o.initial_connection_window_size)
        .max_header_list_size(o.max_header_list_size)
        .max_send_buffer_size(o.initial_stream_window_size as usize);
    let io = PrefixedIo::new(prefix, stream);
    let handshake = tokio::time::timeout(
        listener.options.request_head_timeout.0,
        builder.handshake::<_, Bytes>(io),
    );
    let mut conn = match handshake.await {
        Ok(Ok(conn)) => conn,
        _ => {
            stats.downstream_bad_request.inc();
            return;
        }
    };
    let peer_ip = peer.ip();
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let ctx = stream::StreamContext::new(runtime.clone(), peer_ip);
                    // Streams run on this worker; each owns what it needs.
                    tokio::task::spawn_local(stream::handle(ctx, request, respond, shutdown.clone()));
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "http2 connection error");
                    return;
                }
                None => return,
            },
            _ = shutdown.draining() => {
                // Finish open streams, refuse new ones, then close.
                conn.graceful_shutdown();
                while let Some(Ok((request, respond))) = conn.accept().await {
                    let ctx = stream::StreamContext::new(runtime.clone(), peer_ip);
                    tokio::task::spawn_local(stream::handle(ctx, request, respond, shutdown.clone()));
                }
                return;
            }
        }
    }
}

//! Workers: one thread each, running a single-threaded tokio runtime with its own
//! listening sockets (SO_REUSEPORT) and its own upstream pools. Nothing on a worker's
//! request path is shared with another worker except the read-only config snapshot
//! and relaxed atomic stats.

use arc_swap::ArcSwap;
use mosn_proxy::{serve_connection, Shutdown, Snapshot};
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::LocalSet;

/// One listener socket given to one worker.
pub struct WorkerSocket {
    pub listener_name: String,
    pub socket: StdListener,
}

/// Starts a worker thread serving `sockets` until shutdown drains it.
pub fn spawn(
    index: usize,
    sockets: Vec<WorkerSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("mosn-worker-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "cannot start worker runtime");
                    return;
                }
            };
            let local = LocalSet::new();
            local.block_on(&runtime, async move {
                let mut accepts = Vec::new();
                for ws in sockets {
                    match TcpListener::from_std(ws.socket) {
                        Ok(listener) => accepts.push(tokio::task::spawn_local(accept_loop(
                            listener,
                            ws.listener_name,
                            snapshot.clone(),
                            shutdown.clone(),
                        ))),
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "cannot register listener")
                        }
                    }
                }
                // Idle upstream connections that are no use any more close within a
                // sweep interval instead of at the next request.
                let sweeper = tokio::task::spawn_local(async {
                    let mut tick = tokio::time::interval(mosn_upstream::pool::SWEEP_INTERVAL);
                    loop {
                        tick.tick().await;
                        mosn_upstream::pool::sweep();
                    }
                });
                for a in accepts {
                    let _ = a.await;
                }
                sweeper.abort();
                // Listeners are closed; keep the runtime alive while connections drain.
                // The process exits when they are done or the graceful timeout ends.
                std::future::pending::<()>().await;
            });
        })
}

async fn accept_loop(
    listener: TcpListener,
    name: String,
    snapshot: Arc<ArcSwap<Snapshot>>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let snap = snapshot.load_full();
                    let Some(runtime) = snap.listener(&name).cloned() else {
                        continue;
                    };
                    tokio::task::spawn_local(serve_connection(stream, peer, runtime, snap, shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.draining() => {
                tracing::info!(listener = %name, "stopped accepting");
                return;
            }
        }
    }
}

//! Workers: one thread each, running a single-threaded tokio runtime with its own
//! listening sockets (SO_REUSEPORT) and its own upstream pools. Nothing on a worker's
//! request path is shared with another worker except the read-only config snapshot
//! and relaxed atomic stats.
//!
//! Listeners come and go at runtime (xDS): a worker takes [`ListenerCommand`]s. A
//! removed listener stops accepting and its connections drain as on SIGTERM (the
//! exchange in flight finishes, then they close), while the others run on.

use arc_swap::ArcSwap;
use mosn_proxy::{serve_connection, Shutdown, Snapshot};
use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::LocalSet;

/// One listener socket given to one worker.
pub struct WorkerSocket {
    pub listener_name: String,
    pub socket: StdListener,
}

/// A change to a worker's listeners.
pub enum ListenerCommand {
    /// Start accepting on this socket.
    Add(WorkerSocket),
    /// Stop accepting on the named listener and drain its connections.
    Remove(String),
}

/// Starts a worker thread serving `sockets` (and those `commands` add) until
/// shutdown drains it.
pub fn spawn(
    index: usize,
    sockets: Vec<WorkerSocket>,
    mut commands: mpsc::UnboundedReceiver<ListenerCommand>,
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
                let mut running: HashMap<String, watch::Sender<bool>> = HashMap::new();
                for ws in sockets {
                    start_listener(index, ws, &snapshot, &shutdown, &mut running);
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
                // Access log lines and finished spans wait in per-worker buffers;
                // hand them over now and then, until the process ends (draining
                // connections still log and trace).
                tokio::task::spawn_local(async {
                    let mut tick = tokio::time::interval(mosn_proxy::access_log::FLUSH_INTERVAL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        tick.tick().await;
                        mosn_proxy::access_log::flush_local();
                        mosn_trace::flush_local();
                    }
                });
                let mut draining = shutdown.clone();
                loop {
                    tokio::select! {
                        command = commands.recv() => match command {
                            Some(ListenerCommand::Add(ws)) => {
                                start_listener(index, ws, &snapshot, &shutdown, &mut running);
                            }
                            Some(ListenerCommand::Remove(name)) => {
                                if let Some(stop) = running.remove(&name) {
                                    let _ = stop.send(true);
                                }
                            }
                            // The control side is gone (the process is ending).
                            None => draining.draining().await,
                        },
                        _ = draining.draining() => break,
                    }
                }
                sweeper.abort();
                // Listeners are closed; keep the runtime alive while connections drain.
                // The process exits when they are done or the graceful timeout ends.
                std::future::pending::<()>().await;
            });
        })
}

/// Starts accepting on one socket; its connections drain when the process drains
/// or when the listener is removed (`running` holds the listener's switch).
fn start_listener(
    worker: usize,
    ws: WorkerSocket,
    snapshot: &Arc<ArcSwap<Snapshot>>,
    process: &Shutdown,
    running: &mut HashMap<String, watch::Sender<bool>>,
) {
    let listener = match TcpListener::from_std(ws.socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker, listener = %ws.listener_name, error = %e, "cannot register listener");
            return;
        }
    };
    let (stop, own) = Shutdown::channel();
    // The listener drains with the process, too (until it drained on its own).
    let (mut process, mut removed) = (process.clone(), own.clone());
    let relay = stop.clone();
    tokio::task::spawn_local(async move {
        tokio::select! {
            _ = process.draining() => {
                let _ = relay.send(true);
            }
            _ = removed.draining() => {}
        }
    });
    if let Some(previous) = running.insert(ws.listener_name.clone(), stop) {
        let _ = previous.send(true);
    }
    tokio::task::spawn_local(accept_loop(
        listener,
        ws.listener_name,
        snapshot.clone(),
        own,
    ));
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

//! Graceful stop: a signal every connection can wait on, and a count of open
//! connections the process waits to reach zero.

use mosn_observe::ListenerStats;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Connections open in this process (all listeners, all workers).
pub fn open_connections() -> usize {
    OPEN_CONNECTIONS.load(Ordering::Acquire)
}

/// Counts a connection from accept to close.
pub struct ConnectionGuard<'a> {
    stats: &'a ListenerStats,
}

impl<'a> ConnectionGuard<'a> {
    pub fn new(stats: &'a ListenerStats) -> Self {
        OPEN_CONNECTIONS.fetch_add(1, Ordering::AcqRel);
        stats.downstream_connection_total.inc();
        stats.downstream_connection_active.inc();
        ConnectionGuard { stats }
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.stats.downstream_connection_active.dec();
        self.stats.downstream_connection_destroy.inc();
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells connections that the process is draining: finish the exchange in flight,
/// then close; idle connections close at once.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A sender to start draining and the first receiver.
    pub fn channel() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    pub fn is_draining(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once draining has begun (or the sender is gone).
    pub async fn draining(&mut self) {
        let _ = self.rx.wait_for(|d| *d).await;
    }
}

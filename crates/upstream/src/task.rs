//! Small helpers for the control-plane tasks (health checks, DNS, outlier detection).

use tokio::task::JoinHandle;

/// Aborts its task when dropped, so dropping a runner's bookkeeping stops its tasks.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

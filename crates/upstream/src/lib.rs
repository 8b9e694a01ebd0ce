//! Upstream management: the cluster manager, hosts, load balancers and the per-worker
//! connection pools.

pub mod cluster;
pub mod lb;
pub mod pool;

pub use cluster::{Cluster, ClusterManager, Host};
pub use pool::{connect, ConnectError, PooledConn};

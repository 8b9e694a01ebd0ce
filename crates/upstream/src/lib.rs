//! Upstream management: the cluster manager, clusters, hosts, load balancers, circuit
//! breakers and the per-worker connection pools.

pub mod breaker;
pub mod cluster;
pub mod dns;
pub mod health;
pub mod host;
pub mod lb;
pub mod manager;
pub mod outlier;
pub mod pool;
pub mod prometheus;
mod task;

#[cfg(test)]
mod cluster_types_tests;

pub use cluster::{Cluster, UpstreamTls};

/// A hash map for the request path (keys from config, xDS and our own ids, not
/// from clients' bytes): foldhash, seeded per process, instead of SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub use host::{ActiveRequest, Host};
pub use lb::LbContext;
pub use manager::{ClusterError, ClusterManager};
pub use pool::{connect, ConnectError, PooledConn, Transport};

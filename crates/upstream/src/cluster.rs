//! Clusters and hosts, built from config into immutable objects shared by workers.

use crate::lb::LoadBalancer;
use mosn_config::{ClusterConfig, DEFAULT_CONNECT_TIMEOUT};
use mosn_observe::{ClusterStats, StatsRegistry};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One upstream endpoint.
#[derive(Debug)]
pub struct Host {
    pub addr: SocketAddr,
    pub hostname: String,
    pub weight: u32,
    /// What a request without a Host header is sent with: the hostname, else the address.
    pub authority: String,
}

/// A named group of hosts with its balancing policy and connection settings.
#[derive(Debug)]
pub struct Cluster {
    pub name: Arc<str>,
    pub hosts: Vec<Arc<Host>>,
    lb: LoadBalancer,
    pub connect_timeout: Duration,
    /// Requests an upstream connection carries before it is retired; 0 = no limit.
    pub max_request_per_conn: u32,
    pub stats: Arc<ClusterStats>,
}

impl Cluster {
    /// Builds a cluster from a validated config (addresses are known to parse).
    pub fn from_config(cfg: &ClusterConfig, stats: &StatsRegistry) -> Cluster {
        let hosts = cfg
            .hosts
            .iter()
            .filter_map(|h| {
                h.address.parse().ok().map(|addr| {
                    Arc::new(Host {
                        addr,
                        authority: if h.hostname.is_empty() {
                            addr.to_string()
                        } else {
                            h.hostname.clone()
                        },
                        hostname: h.hostname.clone(),
                        weight: h.weight.unwrap_or(1).max(1),
                    })
                })
            })
            .collect();
        Cluster {
            name: Arc::from(cfg.name.as_str()),
            hosts,
            lb: LoadBalancer::from_lb_type(&cfg.lb_type),
            connect_timeout: cfg
                .connect_timeout
                .map(|d| d.0)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            max_request_per_conn: cfg.max_request_per_conn,
            stats: stats.cluster(&cfg.name),
        }
    }

    /// The host for the next request, or None when the cluster has no host.
    #[inline]
    pub fn choose_host(&self) -> Option<&Arc<Host>> {
        self.lb.pick(self.hosts.len()).map(|i| &self.hosts[i])
    }
}

/// Every cluster of a config snapshot, by name.
#[derive(Debug, Default)]
pub struct ClusterManager {
    clusters: HashMap<Arc<str>, Arc<Cluster>>,
}

impl ClusterManager {
    pub fn build(configs: &[ClusterConfig], stats: &StatsRegistry) -> ClusterManager {
        let clusters = configs
            .iter()
            .map(|c| {
                let cluster = Arc::new(Cluster::from_config(c, stats));
                (cluster.name.clone(), cluster)
            })
            .collect();
        ClusterManager { clusters }
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.clusters.values()
    }
}

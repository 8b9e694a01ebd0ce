//! The cluster manager: every cluster by name, replaceable at runtime. Lookups load an
//! atomic snapshot of the map (no lock); writers (config, admin API, later xDS) build
//! a new map and swap it in, one at a time.

use crate::cluster::Cluster;
use crate::FastMap;
use arc_swap::ArcSwap;
use mosn_config::{ClusterConfig, ConfigIssue, HostConfig};
use mosn_observe::StatsRegistry;
use serde_json::Value;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid cluster: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigIssue>),
    #[error("no cluster named {0:?}")]
    NotFound(String),
}

type ClusterMap = FastMap<Arc<str>, Arc<Cluster>>;

#[derive(Debug)]
pub struct ClusterManager {
    clusters: ArcSwap<ClusterMap>,
    stats: Arc<StatsRegistry>,
    writer: Mutex<()>,
}

impl ClusterManager {
    /// Builds from validated configs.
    pub fn build(configs: &[ClusterConfig], stats: Arc<StatsRegistry>) -> ClusterManager {
        let map = configs
            .iter()
            .map(|c| {
                let cluster = Arc::new(Cluster::from_config(c, &stats, None));
                (cluster.name.clone(), cluster)
            })
            .collect();
        ClusterManager {
            clusters: ArcSwap::from_pointee(map),
            stats,
            writer: Mutex::new(()),
        }
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<Arc<Cluster>> {
        self.clusters.load().get(name).cloned()
    }

    /// Every cluster, by name order.
    pub fn all(&self) -> Vec<Arc<Cluster>> {
        let mut list: Vec<_> = self.clusters.load().values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Adds a cluster or replaces one of the same name. A bad config is refused whole
    /// and the running cluster stays.
    pub fn add_or_update(&self, cfg: &ClusterConfig) -> Result<Vec<ConfigIssue>, ClusterError> {
        let warnings = mosn_config::check_cluster(cfg).map_err(ClusterError::Invalid)?;
        // A TLS context that cannot be built refuses the update; the running one stays.
        crate::cluster::UpstreamTls::build(cfg, "cluster").map_err(|e| {
            ClusterError::Invalid(vec![mosn_config::ConfigIssue {
                path: e.path.clone(),
                message: e.reason.clone(),
            }])
        })?;
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut map: ClusterMap = (**self.clusters.load()).clone();
        let previous = map.get(cfg.name.as_str()).cloned();
        let cluster = Arc::new(Cluster::from_config(cfg, &self.stats, previous.as_deref()));
        if let Some(old) = &previous {
            // Hosts the new cluster did not keep are gone for good.
            let kept = cluster.hosts();
            for h in old
                .hosts()
                .iter()
                .filter(|h| !kept.iter().any(|k| Arc::ptr_eq(k, h)))
            {
                h.mark_removed();
            }
        }
        map.insert(cluster.name.clone(), cluster);
        self.clusters.store(Arc::new(map));
        Ok(warnings)
    }

    /// Removes a cluster; its pooled connections close as they are next touched.
    pub fn remove(&self, name: &str) -> Result<(), ClusterError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut map: ClusterMap = (**self.clusters.load()).clone();
        let gone = map
            .remove(name)
            .ok_or_else(|| ClusterError::NotFound(name.to_string()))?;
        gone.retire();
        self.clusters.store(Arc::new(map));
        Ok(())
    }

    /// Replaces a cluster's hosts (EDS-style). Addresses are checked first; a bad list
    /// is refused whole.
    pub fn set_hosts(&self, name: &str, hosts: &[HostConfig]) -> Result<(), ClusterError> {
        let cluster = self
            .get(name)
            .ok_or_else(|| ClusterError::NotFound(name.to_string()))?;
        if cluster.config.kind == "STRICT_DNS" {
            // Its hosts are names to resolve (MOSN's UpdateHosts of a STRICT_DNS
            // cluster): rebuild it; crate::dns resolves the new names.
            let mut cfg = cluster.config.clone();
            cfg.hosts = hosts.to_vec();
            return self.add_or_update(&cfg).map(drop);
        }
        let mut probe = cluster.config.clone();
        probe.hosts = hosts.to_vec();
        mosn_config::check_cluster(&probe).map_err(ClusterError::Invalid)?;
        cluster.set_hosts(hosts);
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.all().iter().map(|c| c.to_json()).collect())
    }
}

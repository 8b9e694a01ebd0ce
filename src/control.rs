//! The control plane's side of the admin API: cluster changes go to the cluster
//! manager, and the stats document joins the counters with per-host state.

use mosn_admin::{AdminError, ClusterAdmin};
use mosn_config::{ClusterConfig, HostConfig};
use mosn_observe::StatsRegistry;
use mosn_upstream::{ClusterError, ClusterManager};
use serde_json::Value;
use std::sync::Arc;

pub struct ClusterControl(pub Arc<ClusterManager>);

fn admin_error(e: ClusterError) -> AdminError {
    match e {
        ClusterError::NotFound(_) => AdminError::NotFound(e.to_string()),
        ClusterError::Invalid(_) => AdminError::BadRequest(e.to_string()),
    }
}

impl ClusterAdmin for ClusterControl {
    fn clusters(&self) -> Value {
        self.0.to_json()
    }

    fn update_cluster(&self, cfg: ClusterConfig) -> Result<Vec<String>, AdminError> {
        let name = cfg.name.clone();
        let warnings = self.0.add_or_update(&cfg).map_err(admin_error)?;
        tracing::info!(cluster = %name, "cluster added or updated through the admin API");
        Ok(warnings.iter().map(ToString::to_string).collect())
    }

    fn delete_cluster(&self, name: &str) -> Result<(), AdminError> {
        self.0.remove(name).map_err(admin_error)?;
        tracing::info!(cluster = %name, "cluster removed through the admin API");
        Ok(())
    }

    fn update_hosts(&self, cluster: &str, hosts: Vec<HostConfig>) -> Result<(), AdminError> {
        self.0.set_hosts(cluster, &hosts).map_err(admin_error)?;
        tracing::info!(
            cluster,
            hosts = hosts.len(),
            "hosts replaced through the admin API"
        );
        Ok(())
    }
}

/// `{"listener": {...}, "cluster": {name: {counters..., "hosts": [...]}}}`
pub fn stats_document(stats: &StatsRegistry, clusters: &ClusterManager) -> Value {
    let mut doc = stats.to_json();
    for cluster in clusters.all() {
        let entry = &mut doc["cluster"][&*cluster.name];
        if entry.is_null() {
            *entry = Value::Object(Default::default());
        }
        entry["hosts"] = Value::Array(cluster.hosts().iter().map(|h| h.to_json()).collect());
        entry["circuit_breakers"] = cluster.breakers.to_json();
    }
    doc
}

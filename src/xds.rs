//! Puts what the xDS control plane sends into service (crates/xds converts it):
//! checks the whole composed config first (the same validation a MOSN file gets, the
//! snapshot build, binding new listener ports), and only then changes anything:
//! clusters (hosts-only changes touch only the hosts), the snapshot new connections
//! load (with its route tables, which open connections take at their next request),
//! and the workers' listener sockets. A request in flight finishes with the config
//! it started with, so none is dropped.

use crate::workers::{ListenerCommand, WorkerSocket};
use arc_swap::ArcSwap;
use mosn_config::error::Problems;
use mosn_config::{ClusterConfig, MosnConfig, ServerConfig};
use mosn_observe::StatsRegistry;
use mosn_proxy::Snapshot;
use mosn_upstream::ClusterManager;
use mosn_xds::state::{Applier, XdsConfig};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

pub struct RuntimeApplier {
    /// The file's config (bootstrap static clusters included): xDS adds to it.
    pub base: MosnConfig,
    pub stats: Arc<StatsRegistry>,
    pub clusters: Arc<ClusterManager>,
    pub tracer: Option<Arc<mosn_trace::Tracer>>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub workers: Vec<UnboundedSender<ListenerCommand>>,
    /// The running config as JSON, for the admin's config_dump.
    pub running: Arc<Mutex<Value>>,
    /// What the last accepted update applied.
    applied: XdsConfig,
    /// xDS listeners with open sockets, by name.
    bound: BTreeMap<String, SocketAddr>,
}

impl RuntimeApplier {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        base: MosnConfig,
        stats: Arc<StatsRegistry>,
        clusters: Arc<ClusterManager>,
        tracer: Option<Arc<mosn_trace::Tracer>>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        workers: Vec<UnboundedSender<ListenerCommand>>,
        running: Arc<Mutex<Value>>,
    ) -> Self {
        RuntimeApplier {
            base,
            stats,
            clusters,
            tracer,
            snapshot,
            workers,
            running,
            applied: XdsConfig::default(),
            bound: BTreeMap::new(),
        }
    }

    /// The file's config with the xDS part added.
    fn compose(&self, x: &XdsConfig) -> Result<MosnConfig, String> {
        let mut full = self.base.clone();
        let static_clusters: HashSet<&str> = self
            .base
            .cluster_manager
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for c in &x.clusters {
            if static_clusters.contains(c.name.as_str()) {
                return Err(format!(
                    "cluster {:?}: a static cluster has that name",
                    c.name
                ));
            }
        }
        if full.servers.is_empty() {
            full.servers.push(ServerConfig::default());
        }
        let server = &mut full.servers[0];
        let firsts = (
            server.listeners.len(),
            server.routers.len(),
            full.cluster_manager.clusters.len(),
        );
        server.listeners.extend(x.listeners.iter().cloned());
        server.routers.extend(x.routers.iter().cloned());
        full.cluster_manager
            .clusters
            .extend(x.clusters.iter().cloned());
        // A route to a cluster not (yet) there answers 503, as in Envoy.
        let mut problems = Problems::for_xds();
        mosn_config::validate::validate(&mut full, &mut problems);
        if !problems.errors.is_empty() {
            let list: Vec<String> = problems
                .errors
                .iter()
                .map(|i| format!("{}: {}", xds_path(&i.path, firsts, x), i.message))
                .collect();
            return Err(list.join("; "));
        }
        Ok(full)
    }

    /// Applies the cluster changes: added or changed clusters rebuilt (their kept
    /// hosts and pooled connections stay), hosts-only changes as host updates,
    /// removed clusters retired.
    fn apply_clusters(&self, x: &XdsConfig) -> Result<(), String> {
        let before: BTreeMap<&str, &ClusterConfig> = self
            .applied
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c))
            .collect();
        for c in &x.clusters {
            match before.get(c.name.as_str()) {
                Some(old) if same_but_hosts(old, c) => {
                    if !same_hosts(old, c) {
                        self.clusters
                            .set_hosts(&c.name, &c.hosts)
                            .map_err(|e| format!("cluster {:?}: {e}", c.name))?;
                    }
                }
                _ => {
                    self.clusters
                        .add_or_update(c)
                        .map_err(|e| format!("cluster {:?}: {e}", c.name))?;
                }
            }
        }
        let now: HashSet<&str> = x.clusters.iter().map(|c| c.name.as_str()).collect();
        for gone in before.keys().filter(|n| !now.contains(*n)) {
            let _ = self.clusters.remove(gone);
        }
        Ok(())
    }
}

/// A validation path inside the composed config, said in the xDS resource's terms
/// (`route configuration "rc"...` rather than `servers[0].routers[3]...`), so the
/// NACK names what the control plane sent.
fn xds_path(path: &str, firsts: (usize, usize, usize), x: &XdsConfig) -> String {
    let (listeners, routers, clusters) = firsts;
    let rename = |prefix: &str, first: usize, names: &dyn Fn(usize) -> Option<String>| {
        let rest = path.strip_prefix(prefix)?;
        let (index, tail) = rest.split_once(']')?;
        let i: usize = index.parse().ok()?;
        let name = names(i.checked_sub(first)?)?;
        Some(format!("{name}{tail}"))
    };
    rename("servers[0].listeners[", listeners, &|i| {
        x.listeners.get(i).map(|l| format!("listener {:?}", l.name))
    })
    .or_else(|| {
        rename("servers[0].routers[", routers, &|i| {
            x.routers
                .get(i)
                .map(|r| format!("route configuration {:?}", r.router_config_name))
        })
    })
    .or_else(|| {
        rename("cluster_manager.clusters[", clusters, &|i| {
            x.clusters.get(i).map(|c| format!("cluster {:?}", c.name))
        })
    })
    .unwrap_or_else(|| path.to_string())
}

fn json(c: &ClusterConfig) -> Value {
    serde_json::to_value(c).unwrap_or_default()
}

fn same_but_hosts(a: &ClusterConfig, b: &ClusterConfig) -> bool {
    let (mut a, mut b) = (json(a), json(b));
    a["hosts"] = Value::Null;
    b["hosts"] = Value::Null;
    a == b
}

fn same_hosts(a: &ClusterConfig, b: &ClusterConfig) -> bool {
    json(a)["hosts"] == json(b)["hosts"]
}

impl Applier for RuntimeApplier {
    fn apply(&mut self, x: &XdsConfig) -> Result<(), String> {
        // 1. Check everything before anything changes.
        let full = self.compose(x)?;
        let snapshot = Snapshot::build(
            &full,
            &self.stats,
            self.clusters.clone(),
            self.tracer.clone(),
        )
        .map_err(|e| e.to_string())?;
        let mut new_sockets = Vec::new();
        let mut wanted: BTreeMap<String, SocketAddr> = BTreeMap::new();
        for l in &x.listeners {
            let Some(runtime) = snapshot.listener(&l.name) else {
                continue;
            };
            if !runtime.bind {
                continue;
            }
            wanted.insert(l.name.clone(), runtime.addr);
            if self.bound.get(&l.name) == Some(&runtime.addr) {
                continue;
            }
            // A listener that moved to another address gets its new socket first.
            let taken_by_moved = self.bound.values().any(|a| *a == runtime.addr);
            if taken_by_moved {
                return Err(format!(
                    "listener {:?}: address {} is still held by another listener; move it in a later update",
                    l.name, runtime.addr
                ));
            }
            let sockets =
                mosn_net::bind_per_worker(runtime.addr, self.workers.len(), runtime.transparent())
                    .map_err(|e| format!("listener {:?}: bind {}: {e}", l.name, runtime.addr))?;
            new_sockets.push((l.name.clone(), sockets));
        }
        // 2. Commit: clusters, then the snapshot, then the sockets.
        self.apply_clusters(x)?;
        // Open connections take the new route tables at their next request.
        snapshot.publish_routes();
        self.snapshot.store(Arc::new(snapshot));
        for (name, addr) in &self.bound {
            if wanted.get(name) != Some(addr) {
                tracing::info!(listener = %name, address = %addr, "xDS: listener removed, draining");
                for w in &self.workers {
                    let _ = w.send(ListenerCommand::Remove(name.clone()));
                }
            }
        }
        for (name, sockets) in new_sockets {
            tracing::info!(listener = %name, address = ?wanted.get(&name), "xDS: listener added");
            for (w, socket) in self.workers.iter().zip(sockets) {
                let _ = w.send(ListenerCommand::Add(WorkerSocket {
                    listener_name: name.clone(),
                    socket,
                }));
            }
        }
        self.bound = wanted;
        self.applied = x.clone();
        if let Ok(mut running) = self.running.lock() {
            *running = serde_json::to_value(&full).unwrap_or_default();
        }
        Ok(())
    }
}

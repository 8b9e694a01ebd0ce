//! Builds the runtime objects of one config: route tables, clusters, listeners.

use crate::http1::{Detect, HttpListener};
use crate::tcp::TcpProxyListener;
use mosn_config::filters::ProxyProtocol;
use mosn_config::{FilterConfig, MosnConfig, NetworkFilter, DEFAULT_CONNECTION_IDLE_TIMEOUT};
use mosn_observe::{ListenerStats, StatsRegistry};
use mosn_router::{RouterError, RouterSet};
use mosn_upstream::ClusterManager;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("servers[{server}].routers: {source}")]
    Router {
        server: usize,
        #[source]
        source: RouterError,
    },
    #[error("listener {0:?}: its filter chain has no proxy or tcp_proxy filter")]
    NoTerminalFilter(String),
}

/// What a listener does with a connection.
pub enum ListenerKind {
    Http(Box<HttpListener>),
    Tcp(TcpProxyListener),
}

/// One listener of the running config.
pub struct ListenerRuntime {
    pub name: String,
    pub addr: SocketAddr,
    /// MOSN's `bind_port`: false means the listener opens no socket.
    pub bind: bool,
    pub stats: Arc<ListenerStats>,
    pub kind: ListenerKind,
}

/// The immutable runtime form of a config, shared by every worker.
pub struct Snapshot {
    pub listeners: Vec<Arc<ListenerRuntime>>,
    pub clusters: Arc<ClusterManager>,
}

impl Snapshot {
    /// Builds from a validated config.
    /// `clusters` is the process's cluster manager, which outlives snapshots (clusters
    /// and hosts change at runtime without a new snapshot).
    pub fn build(
        config: &MosnConfig,
        stats: &StatsRegistry,
        clusters: Arc<ClusterManager>,
    ) -> Result<Snapshot, SnapshotError> {
        let mut listeners = Vec::new();
        for (si, server) in config.servers.iter().enumerate() {
            let routers = RouterSet::build(&server.routers)
                .map_err(|source| SnapshotError::Router { server: si, source })?;
            for l in &server.listeners {
                let Ok(addr) = l.address.parse::<SocketAddr>() else {
                    continue;
                };
                let listener_stats = stats.listener(&l.name);
                let idle_timeout = l
                    .connection_idle_timeout
                    .map(|d| d.0)
                    .unwrap_or(DEFAULT_CONNECTION_IDLE_TIMEOUT);
                let filters = l
                    .filter_chains
                    .first()
                    .map(|c| c.filters.as_slice())
                    .unwrap_or(&[]);
                let kind = build_kind(filters, &routers, &clusters, idle_timeout)
                    .ok_or_else(|| SnapshotError::NoTerminalFilter(l.name.clone()))?;
                listeners.push(Arc::new(ListenerRuntime {
                    name: l.name.clone(),
                    addr,
                    bind: l.bind_port,
                    stats: listener_stats,
                    kind,
                }));
            }
        }
        Ok(Snapshot {
            listeners,
            clusters,
        })
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRuntime>> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// The listener's behaviour from its filter chain: the first proxy or tcp_proxy
/// filter; a proxy with `fallback_for_unknown_protocol` takes the tcp_proxy after it
/// as its fallback.
fn build_kind(
    filters: &[FilterConfig],
    routers: &RouterSet,
    clusters: &Arc<ClusterManager>,
    idle_timeout: std::time::Duration,
) -> Option<ListenerKind> {
    let (index, first) = filters
        .iter()
        .enumerate()
        .find_map(|(i, f)| f.parsed.as_ref().map(|p| (i, p)))?;
    match first {
        NetworkFilter::TcpProxy(t) => Some(ListenerKind::Tcp(TcpProxyListener::new(
            t,
            clusters.clone(),
        ))),
        NetworkFilter::Proxy(p) => {
            let routes = routers.get(&p.router_config_name)?.clone();
            let mut http = HttpListener::new(p, routes, clusters.clone(), idle_timeout);
            if p.downstream() == ProxyProtocol::Auto {
                let fallback = filters[index + 1..].iter().find_map(|f| match &f.parsed {
                    Some(NetworkFilter::TcpProxy(t)) if p.fallback_for_unknown_protocol => {
                        Some(TcpProxyListener::new(t, clusters.clone()))
                    }
                    _ => None,
                });
                http.detect = Some(Detect { fallback });
            }
            Some(ListenerKind::Http(Box::new(http)))
        }
    }
}

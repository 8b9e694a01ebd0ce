//! Builds the runtime objects of one config: route tables, clusters, listeners.

use crate::access_log::{AccessLog, AccessLogs};
use crate::chain::FilterChain;
use crate::http1::{Detect, HttpListener};
use crate::rpc::RpcListener;
use crate::tcp::TcpProxyListener;

use crate::routes::{self, SharedRoutes};
use mosn_config::filters::ProxyProtocol;
use mosn_config::listener_filters::{ListenerFilter, OriginalDstMode};
use mosn_config::tls::DEFAULT_HANDSHAKE_TIMEOUT;
use mosn_config::{
    FilterChainConfig, FilterConfig, MosnConfig, NetworkFilter, DEFAULT_CONNECTION_IDLE_TIMEOUT,
};
use mosn_observe::{ListenerStats, StatsRegistry};
use mosn_router::{RouteTable, RouterError, RouterSet};
use mosn_tls::ServerTlsSet;
use mosn_upstream::ClusterManager;
use std::collections::HashMap;
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
    #[error(transparent)]
    Tls(#[from] mosn_tls::TlsError),
    #[error("{0}")]
    AccessLog(mosn_config::ConfigIssue),
}

/// What a listener does with a connection.
pub enum ListenerKind {
    Http(Box<HttpListener>),
    Tcp(TcpProxyListener),
    /// An XProtocol RPC proxy (Bolt, Dubbo).
    Rpc(Box<RpcListener>),
}

/// One listener of the running config.
pub struct ListenerRuntime {
    pub name: String,
    pub addr: SocketAddr,
    /// MOSN's `bind_port`: false means the listener opens no socket.
    pub bind: bool,
    pub stats: Arc<ListenerStats>,
    /// The first chain's network filter (the only one of a plain single-chain listener).
    pub kind: ListenerKind,
    /// Every chain, when the listener has TLS or several chains; empty for one plain
    /// chain (connections go straight to `kind`).
    pub chains: Vec<FilterChain>,
    /// MOSN's `inspector`: plaintext and TLS on one port.
    pub inspector: bool,
    /// How long a connection may take to show its first byte and finish TLS (and
    /// send its PROXY protocol header).
    pub handshake_timeout: std::time::Duration,
    /// Run on each accepted socket before a chain is chosen.
    pub listener_filters: Vec<ListenerFilter>,
}

impl ListenerRuntime {
    /// Its sockets need IP_TRANSPARENT (an `original_dst` filter in TPROXY mode).
    pub fn transparent(&self) -> bool {
        self.listener_filters.iter().any(|f| {
            matches!(
                f,
                ListenerFilter::OriginalDst {
                    mode: OriginalDstMode::Tproxy,
                    ..
                }
            )
        })
    }
}

/// The immutable runtime form of a config, shared by every worker.
pub struct Snapshot {
    pub listeners: Vec<Arc<ListenerRuntime>>,
    pub clusters: Arc<ClusterManager>,
    /// Route tables that replace ones open connections already use: stored by
    /// [`Snapshot::publish_routes`] when this snapshot goes into service.
    pending_routes: Vec<(Arc<SharedRoutes>, Arc<RouteTable>)>,
}

impl Snapshot {
    /// Builds from a validated config.
    /// `clusters` is the process's cluster manager, which outlives snapshots (clusters
    /// and hosts change at runtime without a new snapshot).
    /// `tracer`: the process's tracer, when tracing is on (it outlives snapshots).
    pub fn build(
        config: &MosnConfig,
        stats: &StatsRegistry,
        clusters: Arc<ClusterManager>,
        tracer: Option<Arc<mosn_trace::Tracer>>,
    ) -> Result<Snapshot, SnapshotError> {
        let mut listeners = Vec::new();
        let mut pending_routes = Vec::new();
        for (si, server) in config.servers.iter().enumerate() {
            let built = RouterSet::build(&server.routers)
                .map_err(|source| SnapshotError::Router { server: si, source })?;
            let mut routers = HashMap::new();
            for r in &server.routers {
                let name = &r.router_config_name;
                if let Some(table) = built.get(name) {
                    let (shared, existed) = routes::shared(&format!("{si}/{name}"), table);
                    if existed {
                        pending_routes.push((shared.clone(), table.clone()));
                    }
                    routers.insert(name.clone(), shared);
                }
            }
            for (li, l) in server.listeners.iter().enumerate() {
                let Ok(addr) = l.address.parse::<SocketAddr>() else {
                    continue;
                };
                let listener_stats = stats.listener(&l.name);
                let idle_timeout = l
                    .connection_idle_timeout
                    .map(|d| d.0)
                    .unwrap_or(DEFAULT_CONNECTION_IDLE_TIMEOUT);
                let lpath = format!("servers[{si}].listeners[{li}]");
                let logs = access_logs(l, &lpath).map_err(SnapshotError::AccessLog)?;
                // Validated already: the problems sink is only a formality here.
                let listener_filters = mosn_config::listener_filters::listener_filters(
                    l,
                    &lpath,
                    &mut mosn_config::error::Problems::default(),
                );
                let mut chains = Vec::new();
                for (ci, c) in l.filter_chains.iter().enumerate() {
                    let kind = build_kind(&c.filters, &routers, &clusters, idle_timeout)
                        .ok_or_else(|| SnapshotError::NoTerminalFilter(l.name.clone()))?;
                    let kind = with_recorders(kind, &logs, &tracer);
                    let tls = build_tls(c, &format!("{lpath}.filter_chains[{ci}]"), &kind)?;
                    let runtime = Arc::new(ListenerRuntime {
                        name: l.name.clone(),
                        addr,
                        bind: l.bind_port,
                        stats: listener_stats.clone(),
                        kind,
                        chains: Vec::new(),
                        inspector: l.inspector,
                        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                        listener_filters: listener_filters.clone(),
                    });
                    let criteria = c.filter_chain_match.clone().unwrap_or_default();
                    chains.push(FilterChain::new(criteria, tls, runtime));
                }
                let first = chains
                    .first()
                    .ok_or_else(|| SnapshotError::NoTerminalFilter(l.name.clone()))?;
                if chains.len() == 1 && first.tls.is_none() && !l.inspector {
                    // (Its runtime already carries the listener filters.)
                    // One plain chain: its runtime is the listener.
                    listeners.push(first.runtime.clone());
                    continue;
                }
                // The listener's own `kind` is the first chain's (built once more:
                // connections are served by the chains).
                let kind = build_kind(
                    &l.filter_chains[0].filters,
                    &routers,
                    &clusters,
                    idle_timeout,
                )
                .ok_or_else(|| SnapshotError::NoTerminalFilter(l.name.clone()))?;
                let kind = with_recorders(kind, &logs, &tracer);
                let handshake_timeout = chains
                    .iter()
                    .filter_map(|c| c.tls.as_ref().map(|t| t.handshake_timeout()))
                    .max()
                    .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
                listeners.push(Arc::new(ListenerRuntime {
                    name: l.name.clone(),
                    addr,
                    bind: l.bind_port,
                    stats: listener_stats,
                    kind,
                    chains,
                    inspector: l.inspector,
                    handshake_timeout,
                    listener_filters,
                }));
            }
        }
        Ok(Snapshot {
            listeners,
            clusters,
            pending_routes,
        })
    }

    /// Puts this snapshot's route tables into service for connections that opened
    /// under an earlier one (call when the snapshot itself goes into service).
    pub fn publish_routes(&self) {
        for (shared, table) in &self.pending_routes {
            shared.store(table.clone());
        }
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRuntime>> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// The listener's access logs.
fn access_logs(
    l: &mosn_config::ListenerConfig,
    at: &str,
) -> Result<AccessLogs, mosn_config::ConfigIssue> {
    let logs = l
        .access_logs
        .iter()
        .enumerate()
        .filter(|(_, a)| a.log_path.as_deref().is_some_and(|p| !p.is_empty()))
        .map(|(i, a)| {
            let path = a.log_path.as_deref().unwrap_or_default();
            AccessLog::new(path, a.log_format.as_deref(), a.json)
                .map(Arc::new)
                .map_err(|message| mosn_config::ConfigIssue {
                    path: format!("{at}.access_logs[{i}].log_format"),
                    message,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessLogs::new(logs))
}

/// Checks every access log format of a config (unknown variables stop the start).
pub fn check_access_logs(config: &MosnConfig) -> Vec<mosn_config::ConfigIssue> {
    let mut issues = Vec::new();
    for (si, server) in config.servers.iter().enumerate() {
        for (li, l) in server.listeners.iter().enumerate() {
            let at = format!("servers[{si}].listeners[{li}]");
            for (i, a) in l.access_logs.iter().enumerate() {
                if let Some(format) = a.log_format.as_deref() {
                    if let Err(message) = crate::access_log::check_format(format) {
                        issues.push(mosn_config::ConfigIssue {
                            path: format!("{at}.access_logs[{i}].log_format"),
                            message,
                        });
                    }
                }
            }
        }
    }
    issues
}

/// Gives a listener its access logs, and an HTTP one the tracer (RPC calls and
/// tcp_proxy connections are not traced).
fn with_recorders(
    kind: ListenerKind,
    logs: &AccessLogs,
    tracer: &Option<Arc<mosn_trace::Tracer>>,
) -> ListenerKind {
    match kind {
        ListenerKind::Http(mut h) => {
            h.access_logs = logs.clone();
            h.tracer = tracer.clone();
            if let Some(rpc) = &mut h.rpc {
                rpc.access_logs = logs.clone();
            }
            ListenerKind::Http(h)
        }
        ListenerKind::Rpc(mut r) => {
            r.access_logs = logs.clone();
            ListenerKind::Rpc(r)
        }
        ListenerKind::Tcp(mut t) => {
            t.access_logs = logs.clone();
            ListenerKind::Tcp(t)
        }
    }
}

/// Builds every TLS context of a config (listeners' and clusters'), so that a
/// certificate that is missing, unreadable or does not match its key stops the start
/// with the field's JSON path.
pub fn check_tls(config: &MosnConfig) -> Vec<mosn_tls::TlsError> {
    let mut errors = Vec::new();
    for (si, server) in config.servers.iter().enumerate() {
        for (li, l) in server.listeners.iter().enumerate() {
            for (ci, c) in l.filter_chains.iter().enumerate() {
                let at = format!("servers[{si}].listeners[{li}].filter_chains[{ci}]");
                if let Err(e) = tls_contexts(c, &at, &["h2", "http/1.1"]) {
                    errors.push(e);
                }
            }
        }
    }
    for (i, cluster) in config.cluster_manager.clusters.iter().enumerate() {
        let at = format!("cluster_manager.clusters[{i}]");
        if let Err(e) = mosn_upstream::UpstreamTls::build(cluster, &at) {
            errors.push(e);
        }
    }
    errors
}

/// The chain's server TLS contexts, offering by ALPN what its filter speaks.
fn build_tls(
    chain: &FilterChainConfig,
    at: &str,
    kind: &ListenerKind,
) -> Result<Option<ServerTlsSet>, mosn_tls::TlsError> {
    let alpn: &[&str] = match kind {
        ListenerKind::Tcp(_) | ListenerKind::Rpc(_) => &[],
        ListenerKind::Http(h) if h.http2_only => &["h2"],
        ListenerKind::Http(h) if h.detect.is_some() => &["h2", "http/1.1"],
        ListenerKind::Http(_) => &["http/1.1"],
    };
    tls_contexts(chain, at, alpn)
}

fn tls_contexts(
    chain: &FilterChainConfig,
    at: &str,
    alpn: &[&str],
) -> Result<Option<ServerTlsSet>, mosn_tls::TlsError> {
    let mut contexts = Vec::new();
    for (ti, t) in chain.tls_context_set.iter().enumerate() {
        if t.status {
            contexts.push((t, format!("{at}.tls_context_set[{ti}]")));
        }
    }
    if contexts.is_empty() {
        if let Some(t) = chain.tls_context.as_ref().filter(|t| t.status) {
            contexts.push((t, format!("{at}.tls_context")));
        }
    }
    if contexts.is_empty() {
        return Ok(None);
    }
    ServerTlsSet::build(&contexts, alpn).map(Some)
}

/// The listener's behaviour from its filter chain: the first proxy or tcp_proxy
/// filter; a proxy with `fallback_for_unknown_protocol` takes the tcp_proxy after it
/// as its fallback.
fn build_kind(
    filters: &[FilterConfig],
    routers: &HashMap<String, Arc<SharedRoutes>>,
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
            let rpc = |codec| RpcListener {
                routes: routes.clone(),
                clusters: clusters.clone(),
                codec,
                max_frame: p.rpc.max_frame_bytes,
                idle_timeout,
                max_queued_bytes: p.rpc.max_queued_bytes,
                access_logs: Default::default(),
            };
            if let ProxyProtocol::Rpc(name) = p.downstream() {
                let codec = mosn_protocol::xprotocol::codec(name)?;
                return Some(ListenerKind::Rpc(Box::new(rpc(Some(codec)))));
            }
            let mut http = HttpListener::new(p, routes.clone(), clusters.clone(), idle_timeout);
            if p.downstream() == ProxyProtocol::Auto {
                http.rpc = Some(Box::new(rpc(None)));
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

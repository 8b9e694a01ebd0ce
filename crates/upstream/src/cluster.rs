//! A cluster: settings, circuit breakers, stats, and its current host set with the
//! balancer built for it. The host set is swapped atomically (arc-swap) when hosts
//! change or their health changes; requests in flight keep the set they started with.

use crate::breaker::CircuitBreakers;
use crate::host::Host;
use crate::lb::{self, HostSet, LbContext, LoadBalancer, DEFAULT_PANIC_THRESHOLD_PERCENT};
use arc_swap::ArcSwap;
use mosn_config::{ClusterConfig, HostConfig, DEFAULT_CONNECT_TIMEOUT};
use mosn_observe::{ClusterStats, StatsRegistry};
use mosn_tls::ClientTls;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cluster's transport to its hosts.
#[derive(Clone)]
pub enum UpstreamTls {
    Off,
    On(Arc<ClientTls>),
    /// Configured but its context could not be built (checked before start, so only
    /// a certificate file changed in between): connections fail rather than go plain.
    Failed(Arc<str>),
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamTls::Off => f.write_str("Off"),
            UpstreamTls::On(_) => f.write_str("On"),
            UpstreamTls::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

impl UpstreamTls {
    /// The cluster's client context, built from its `tls_context`.
    /// `at`: the JSON path of the cluster, for errors.
    pub fn build(
        cfg: &ClusterConfig,
        at: &str,
    ) -> Result<Option<Arc<ClientTls>>, mosn_tls::TlsError> {
        match &cfg.tls_context {
            Some(t) if t.status => {
                let at = format!("{at}.tls_context");
                if t.insecure_skip {
                    tracing::warn!(cluster = %cfg.name, "tls_context.insecure_skip: upstream certificates are NOT verified");
                }
                ClientTls::build(t, &at).map(|c| Some(Arc::new(c)))
            }
            _ => Ok(None),
        }
    }

    fn from_config(cfg: &ClusterConfig) -> UpstreamTls {
        match Self::build(cfg, &format!("cluster {:?}", cfg.name)) {
            Ok(None) => UpstreamTls::Off,
            Ok(Some(c)) => UpstreamTls::On(c),
            Err(e) => {
                tracing::error!(error = %e, "cluster TLS context failed; its connections will fail");
                UpstreamTls::Failed(Arc::from(e.to_string()))
            }
        }
    }
}

/// A unit of a cluster's `max_requests` breaker held by something that outlives a
/// borrow (an RPC request waiting for its multiplexed response).
#[derive(Debug)]
pub struct RequestPermit(Arc<Cluster>);

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.0.breakers.requests.release();
    }
}

/// Takes a unit of the cluster's request breaker, or None when it is full.
pub fn try_request(cluster: &Arc<Cluster>) -> Option<RequestPermit> {
    let permit = cluster.breakers.requests.try_acquire()?;
    std::mem::forget(permit);
    Some(RequestPermit(cluster.clone()))
}

/// The host set and the balancer over it, replaced as one.
#[derive(Debug)]
struct ClusterState {
    set: HostSet,
    lb: Box<dyn LoadBalancer>,
}

/// A named group of hosts with its balancing policy and connection settings.
#[derive(Debug)]
pub struct Cluster {
    pub name: Arc<str>,
    /// `lb_type` as configured ("" is LB_ROUNDROBIN); LB_ORIGINAL_DST for ORIGINAL_DST.
    pub lb_type: String,
    /// The balancer picks by the route's hash (LB_MAGLEV, ring hash): compute it.
    pub uses_hash: bool,
    /// The balancer weighs hosts by latency (LB_PEAK_EWMA): record it.
    pub tracks_latency: bool,
    pub connect_timeout: Duration,
    /// Requests an upstream connection carries before it is retired; 0 = no limit.
    pub max_request_per_conn: u32,
    pub stats: Arc<ClusterStats>,
    pub breakers: CircuitBreakers,
    /// The config it was built from (config dumps, rebuilds).
    pub config: ClusterConfig,
    /// TLS to the hosts, from `tls_context`.
    pub tls: UpstreamTls,
    panic_threshold_percent: f64,
    state: ArcSwap<ClusterState>,
    /// Serializes host-set writers (admin, health checks, outlier detection); the
    /// request path never takes it.
    writer: Mutex<()>,
}

impl Cluster {
    /// One upstream request to `host` ended, `elapsed` after it was sent: `Some(status)`
    /// when a response head came (its time goes into the cluster's and the host's
    /// `request_duration_time`), None when none did (connect failure, reset, timeout:
    /// the host's `rq_error`). Relaxed atomics only.
    pub fn request_done(&self, host: &Host, elapsed: std::time::Duration, status: Option<u16>) {
        if status.is_some() {
            self.stats.upstream_request_duration_time.record(elapsed);
        }
        host.stats.request_done(elapsed, status);
    }

    /// Builds from a validated config. Hosts of `previous` with the same address and
    /// settings are kept, with their health and counters.
    pub fn from_config(
        cfg: &ClusterConfig,
        stats: &StatsRegistry,
        previous: Option<&Cluster>,
    ) -> Cluster {
        let reuse = previous.map(|p| p.hosts()).unwrap_or_default();
        // A STRICT_DNS cluster's names get hosts as they resolve (crate::dns).
        let dns_hosts = (cfg.kind == "STRICT_DNS").then(|| crate::dns::starting_hosts(cfg, &reuse));
        // Hosts of a new cluster start together: none of them slow-starts.
        let hosts = merge_hosts(
            dns_hosts.as_deref().unwrap_or(&cfg.hosts),
            &reuse,
            previous.is_none(),
        );
        let panic_threshold_percent = DEFAULT_PANIC_THRESHOLD_PERCENT;
        let set = HostSet::new(hosts, panic_threshold_percent);
        let lb = lb::build(&lb::LbSettings::from_config(cfg), &set);
        Cluster {
            name: Arc::from(cfg.name.as_str()),
            // An ORIGINAL_DST cluster balances with LB_ORIGINAL_DST, as in MOSN.
            lb_type: if cfg.kind == "ORIGINAL_DST" {
                "LB_ORIGINAL_DST".into()
            } else {
                cfg.lb_type.clone()
            },
            uses_hash: matches!(cfg.lb_type.as_str(), "LB_MAGLEV" | "LB_RING_HASH"),
            tracks_latency: cfg.lb_type == "LB_PEAK_EWMA",
            connect_timeout: cfg
                .connect_timeout
                .map(|d| d.0)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            max_request_per_conn: cfg.max_request_per_conn,
            stats: stats.cluster(&cfg.name),
            breakers: CircuitBreakers::from_config(&cfg.circuit_breakers),
            config: cfg.clone(),
            tls: UpstreamTls::from_config(cfg),
            panic_threshold_percent,
            state: ArcSwap::from_pointee(ClusterState { set, lb }),
            writer: Mutex::new(()),
        }
    }

    /// The host for the next request, or None when no host can take it.
    #[inline]
    pub fn choose_host(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        self.state.load().lb.choose(ctx)
    }

    /// Every host, healthy or not.
    pub fn hosts(&self) -> Vec<Arc<Host>> {
        self.state.load().set.all.clone()
    }

    /// Hosts balancing uses now, and whether that is panic mode.
    pub fn eligible_hosts(&self) -> (Vec<Arc<Host>>, bool) {
        let state = self.state.load();
        (state.set.eligible.clone(), state.set.panic)
    }

    /// Replaces the hosts. Hosts that stay keep their state; removed hosts are marked
    /// so their pooled connections close; requests in flight finish where they are.
    pub fn set_hosts(&self, configs: &[HostConfig]) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.state.load().set.all.clone();
        let hosts = merge_hosts(configs, &old, false);
        for gone in old
            .iter()
            .filter(|o| !hosts.iter().any(|h| Arc::ptr_eq(h, o)))
        {
            gone.mark_removed();
        }
        self.publish(hosts);
    }

    /// Rebuilds the balancing set after a host's health changed.
    pub fn refresh_health(&self) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let hosts = self.state.load().set.all.clone();
        self.publish(hosts);
    }

    fn publish(&self, hosts: Vec<Arc<Host>>) {
        let set = HostSet::new(hosts, self.panic_threshold_percent);
        let lb = lb::build(&lb::LbSettings::from_config(&self.config), &set);
        self.state.store(Arc::new(ClusterState { set, lb }));
    }

    /// Marks every host removed (the cluster was deleted).
    pub fn retire(&self) {
        for h in self.hosts() {
            h.mark_removed();
        }
    }

    pub fn to_json(&self) -> Value {
        let state = self.state.load();
        serde_json::json!({
            "name": &*self.name,
            "type": if self.config.kind.is_empty() { "SIMPLE" } else { &self.config.kind },
            "lb_type": if self.lb_type.is_empty() { "LB_ROUNDROBIN" } else { &self.lb_type },
            "panic_mode": state.set.panic,
            "hosts": state.set.all.iter().map(|h| h.to_json()).collect::<Vec<_>>(),
            "circuit_breakers": self.breakers.to_json(),
        })
    }
}

/// Hosts for `configs`, taking the existing object where address and settings match.
/// `initial`: the cluster is new, so its hosts count as warm.
fn merge_hosts(configs: &[HostConfig], existing: &[Arc<Host>], initial: bool) -> Vec<Arc<Host>> {
    let by_addr: HashMap<SocketAddr, &Arc<Host>> = existing.iter().map(|h| (h.addr, h)).collect();
    configs
        .iter()
        .filter_map(|cfg| {
            let fresh = Host::from_config(cfg)?;
            let fresh = if initial { fresh.already_warm() } else { fresh };
            match by_addr.get(&fresh.addr) {
                Some(old) if same_settings(old, &fresh) => Some((*old).clone()),
                _ => Some(Arc::new(fresh)),
            }
        })
        .collect()
}

pub(crate) fn same_settings(a: &Host, b: &Host) -> bool {
    a.hostname == b.hostname && a.weight == b.weight && a.metadata == b.metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str]) -> ClusterConfig {
        ClusterConfig {
            name: "c".into(),
            hosts: hosts
                .iter()
                .map(|a| HostConfig {
                    address: a.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn set_hosts_keeps_survivors_and_retires_the_rest() {
        let stats = StatsRegistry::default();
        let c = Cluster::from_config(&cfg(&["127.0.0.1:1", "127.0.0.1:2"]), &stats, None);
        let before = c.hosts();
        before[0].set_health_flag(crate::host::health::EJECTED);
        c.set_hosts(&cfg(&["127.0.0.1:1", "127.0.0.1:3"]).hosts);
        let after = c.hosts();
        assert!(
            Arc::ptr_eq(&before[0], &after[0]),
            "same host object survives"
        );
        assert!(!after[0].is_healthy(), "with its health state");
        assert!(before[1].is_removed());
        assert!(!after[1].is_removed());
        assert_eq!(after[1].addr.port(), 3);
    }

    #[test]
    fn health_refresh_takes_hosts_out_of_rotation() {
        let stats = StatsRegistry::default();
        let c = Cluster::from_config(
            &cfg(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]),
            &stats,
            None,
        );
        c.hosts()[1].set_health_flag(crate::host::health::FAILED_ACTIVE_HC);
        c.refresh_health();
        for _ in 0..30 {
            assert_ne!(c.choose_host(&LbContext::default()).unwrap().addr.port(), 2);
        }
    }
}

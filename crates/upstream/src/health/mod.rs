//! Active health checks, as MOSN's `health_check` (pkg/upstream/healthcheck).
//!
//! [`spawn_health_checks`] runs on the control runtime. Every second it compares the
//! cluster manager's clusters with the checks running: one task per (cluster, host),
//! each with its own timer, started for new hosts and stopped for hosts and clusters
//! that went away (or whose `health_check` changed or was removed).
//!
//! A host task waits `initial_delay_seconds`, then checks every `interval` (+ a random
//! part of `interval_jitter`), counted from the end of the previous check, as MOSN does.
//! A new host is healthy until it fails `unhealthy_threshold` checks in a row (MOSN
//! starts every host healthy); a failed host comes back after `healthy_threshold`
//! passes in a row. Transitions set or clear `FAILED_ACTIVE_HC`, rebuild the cluster's
//! balancing set and are logged at INFO; every failed check counts in the host's
//! `hc_failures`. docs/health-and-outlier.md has the keys and defaults.

mod grpc;
mod http1;

use crate::host::{health, Host};
use crate::manager::ClusterManager;
use crate::task::AbortOnDrop;
use mosn_config::{HealthCheckConfig, HealthCheckProtocol};
use mosn_tls::{ClientTls, Stream};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How often the runner looks for new or removed clusters and hosts.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What one check does.
#[derive(Debug, Clone, PartialEq)]
enum CheckKind {
    Tcp,
    Http(http1::HttpCheck),
    Grpc(grpc::GrpcCheck),
}

/// One cluster's `health_check`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
struct CheckSpec {
    kind: CheckKind,
    timeout: Duration,
    interval: Duration,
    jitter: Duration,
    initial_delay: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl CheckSpec {
    fn from_config(cfg: &HealthCheckConfig) -> CheckSpec {
        let cc = cfg.check_config.as_ref();
        let mut timeout = cfg.timeout();
        let kind = match cfg.kind().0 {
            HealthCheckProtocol::Tcp => CheckKind::Tcp,
            HealthCheckProtocol::Http => {
                let check = http1::HttpCheck::from_config(cc);
                if let Some(t) = check.client_timeout {
                    timeout = timeout.min(t);
                }
                CheckKind::Http(check)
            }
            HealthCheckProtocol::Grpc => CheckKind::Grpc(grpc::GrpcCheck::from_config(cc)),
        };
        CheckSpec {
            kind,
            timeout,
            interval: cfg.interval(),
            jitter: cfg.interval_jitter(),
            initial_delay: cfg.initial_delay(),
            healthy_threshold: cfg.healthy_threshold(),
            unhealthy_threshold: cfg.unhealthy_threshold(),
        }
    }

    /// A plain check of a bare address (unit tests).
    #[cfg(test)]
    async fn check_addr(&self, addr: SocketAddr) -> Result<(), String> {
        let host = Host::new(addr, "", 1, Default::default());
        self.check(&host, None).await
    }

    fn next_interval(&self) -> Duration {
        let jitter = self.jitter.as_nanos().min(u64::MAX as u128) as u64;
        let extra = if jitter > 0 {
            fastrand::u64(0..jitter)
        } else {
            0
        };
        self.interval + Duration::from_nanos(extra)
    }

    /// One check of `host` (at `addr`, or the check's own port), over the cluster's
    /// transport, bounded by the timeout. With TLS a TCP check is a full handshake.
    async fn check(&self, host: &Host, tls: Option<&Arc<ClientTls>>) -> Result<(), String> {
        let run = async {
            match &self.kind {
                CheckKind::Tcp => connect(host, host.addr, tls, false).await.map(drop),
                CheckKind::Http(http) => http.check(host, tls).await,
                CheckKind::Grpc(grpc) => grpc.check(host, tls).await,
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {:?}", self.timeout)),
        }
    }
}

/// A checker's connection to `target` (one of `host`'s ports): TLS with the cluster's
/// context when it has one (ALPN h2 for gRPC checks), else plain TCP.
pub(crate) async fn connect(
    host: &Host,
    target: SocketAddr,
    tls: Option<&Arc<ClientTls>>,
    h2: bool,
) -> Result<Stream, String> {
    let tcp = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name = tls.server_name(&host.hostname, target.ip());
    tls.connector(h2)
        .connect(name, tcp)
        .await
        .map(|s| Stream::Client(Box::new(s)))
        .map_err(|e| format!("TLS handshake with {target}: {e}"))
}

/// The checks running for one cluster.
#[derive(Debug)]
struct ClusterChecks {
    config: HealthCheckConfig,
    /// The cluster's TLS context the checks were started with.
    tls: Option<Arc<ClientTls>>,
    spec: Arc<CheckSpec>,
    /// The cluster object last seen under this name (replaced on config updates).
    cluster_ptr: usize,
    /// By host object identity; each entry keeps its host alive, so ids stay unique.
    hosts: HashMap<usize, (Arc<Host>, AbortOnDrop)>,
}

/// Starts the health check runner on the current runtime; it follows the manager's
/// clusters and hosts until the returned handle is aborted (which stops every check).
pub fn spawn_health_checks(manager: Arc<ClusterManager>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<Arc<str>, ClusterChecks> = HashMap::new();
        loop {
            scan(&manager, &mut running);
            tokio::time::sleep(RESCAN_INTERVAL).await;
        }
    })
}

fn scan(manager: &Arc<ClusterManager>, running: &mut HashMap<Arc<str>, ClusterChecks>) {
    let clusters = manager.all();
    let names: HashSet<&str> = clusters.iter().map(|c| &*c.name).collect();
    running.retain(|name, _| names.contains(&**name));
    for cluster in &clusters {
        let cfg = cluster
            .config
            .health_check
            .as_ref()
            .filter(|hc| hc.enabled());
        let Some(cfg) = cfg else {
            if running.remove(&cluster.name).is_some() {
                // Checks were turned off: their verdicts no longer hold.
                let mut changed = false;
                for h in cluster.hosts() {
                    if h.health_flags() & health::FAILED_ACTIVE_HC != 0 {
                        h.clear_health_flag(health::FAILED_ACTIVE_HC);
                        changed = true;
                    }
                }
                if changed {
                    cluster.refresh_health();
                }
                tracing::info!(
                    "[upstream] [health check] cluster {}: health checks stopped",
                    cluster.name
                );
            }
            continue;
        };
        let ptr = Arc::as_ptr(cluster) as usize;
        let tls = match &cluster.tls {
            crate::cluster::UpstreamTls::On(t) => Some(t.clone()),
            _ => None,
        };
        let same_tls = |r: &ClusterChecks| match (&r.tls, &tls) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        let fresh = running
            .get(&cluster.name)
            .is_none_or(|r| r.config != *cfg || !same_tls(r));
        if fresh {
            tracing::info!(
                "[upstream] [health check] cluster {}: checking {} hosts ({})",
                cluster.name,
                cluster.hosts().len(),
                if cfg.protocol.is_empty() {
                    "tcp"
                } else {
                    &cfg.protocol
                }
            );
            running.insert(
                cluster.name.clone(),
                ClusterChecks {
                    config: cfg.clone(),
                    tls: tls.clone(),
                    spec: Arc::new(CheckSpec::from_config(cfg)),
                    cluster_ptr: ptr,
                    hosts: HashMap::new(),
                },
            );
        }
        let Some(entry) = running.get_mut(&cluster.name) else {
            continue;
        };
        if entry.cluster_ptr != ptr {
            // The cluster was rebuilt (config update): a transition that raced with the
            // rebuild may have refreshed the old object only.
            entry.cluster_ptr = ptr;
            cluster.refresh_health();
        }
        let hosts = cluster.hosts();
        let ids: HashSet<usize> = hosts.iter().map(|h| Arc::as_ptr(h) as usize).collect();
        entry.hosts.retain(|id, _| ids.contains(id));
        for host in hosts {
            let id = Arc::as_ptr(&host) as usize;
            if entry.hosts.contains_key(&id) {
                continue;
            }
            let task = tokio::spawn(run_host(
                manager.clone(),
                cluster.name.clone(),
                entry.spec.clone(),
                entry.tls.clone(),
                host.clone(),
            ));
            entry.hosts.insert(id, (host, AbortOnDrop(task)));
        }
    }
}

/// Counts consecutive results against the thresholds, as MOSN's session checker: a
/// healthy host counts failures only, a failed host counts passes only.
#[derive(Debug, Default)]
struct Verdict {
    passes: u32,
    failures: u32,
}

/// What a result changed.
#[derive(Debug, PartialEq, Eq)]
enum Transition {
    None,
    BecameHealthy,
    BecameUnhealthy,
}

impl Verdict {
    fn record(&mut self, host: &Host, ok: bool, spec: &CheckSpec) -> Transition {
        let failed = host.health_flags() & health::FAILED_ACTIVE_HC != 0;
        host.stats.hc_attempts.fetch_add(1, Ordering::Relaxed);
        if ok {
            host.stats.hc_successes.fetch_add(1, Ordering::Relaxed);
            self.failures = 0;
            if failed {
                self.passes += 1;
                if self.passes >= spec.healthy_threshold {
                    self.passes = 0;
                    host.clear_health_flag(health::FAILED_ACTIVE_HC);
                    return Transition::BecameHealthy;
                }
            }
        } else {
            host.stats.hc_failures.fetch_add(1, Ordering::Relaxed);
            self.passes = 0;
            if !failed {
                self.failures += 1;
                if self.failures >= spec.unhealthy_threshold {
                    self.failures = 0;
                    host.set_health_flag(health::FAILED_ACTIVE_HC);
                    return Transition::BecameUnhealthy;
                }
            }
        }
        Transition::None
    }
}

async fn run_host(
    manager: Arc<ClusterManager>,
    cluster: Arc<str>,
    spec: Arc<CheckSpec>,
    tls: Option<Arc<ClientTls>>,
    host: Arc<Host>,
) {
    tokio::time::sleep(spec.initial_delay).await;
    let mut verdict = Verdict::default();
    while !host.is_removed() {
        let result = spec.check(&host, tls.as_ref()).await;
        if let Err(why) = &result {
            tracing::debug!(
                "[upstream] [health check] cluster {cluster} host {}: check failed: {why}",
                host.addr
            );
        }
        let transition = verdict.record(&host, result.is_ok(), &spec);
        let mut refresh = transition != Transition::None;
        match transition {
            Transition::BecameHealthy => tracing::info!(
                "[upstream] [health check] cluster {cluster} host {} is healthy",
                host.addr
            ),
            Transition::BecameUnhealthy => tracing::info!(
                "[upstream] [health check] cluster {cluster} host {} is unhealthy: {}",
                host.addr,
                result.as_ref().err().map_or("", String::as_str)
            ),
            Transition::None => {}
        }
        let current = manager.get(&cluster);
        if result.is_ok() {
            // Envoy's successful_active_health_check_uneject_host (default true).
            let uneject = current
                .as_ref()
                .and_then(|c| c.config.outlier_detection.as_ref())
                .is_some_and(|od| od.settings().successful_active_health_check_uneject_host);
            if uneject && crate::outlier::uneject_after_health_check(&host) {
                tracing::info!(
                    "[upstream] [outlier detection] cluster {cluster} host {} returned by a \
                     passed health check",
                    host.addr
                );
                refresh = true;
            }
        }
        if refresh {
            if let Some(c) = current {
                c.refresh_health();
            }
        }
        tokio::time::sleep(spec.next_interval()).await;
    }
}

#[cfg(test)]
mod tests;

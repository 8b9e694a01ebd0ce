//! STRICT_DNS clusters, as MOSN's `strict_dns_cluster`: every host `address` that is a
//! name (`host:port`, or `host` for port 80) is resolved with the system resolver
//! (`getaddrinfo`: /etc/hosts, then DNS as /etc/resolv.conf says) every
//! `dns_refresh_rate` (default 5 s), and each answer kept by `dns_lookup_family` becomes
//! one host with the entry's `hostname` (the name itself when there is none), `weight`
//! and `metadata`. IP addresses are used as they are, never resolved.
//!
//! [`spawn_dns_refresh`] runs on the control runtime. Every second it compares the
//! cluster manager's STRICT_DNS clusters with the refresh tasks running: one task per
//! cluster object, started for a new or rebuilt cluster (whose first resolution then
//! starts at once) and stopped when the cluster goes away or is replaced. A task resolves
//! the cluster's names concurrently, each bounded by [`RESOLVE_TIMEOUT`], and when the
//! answers change replaces the hosts through [`Cluster::set_hosts`]: hosts whose address
//! and settings stay keep their objects (health, counters, pooled connections). A name
//! that fails to resolve, or has no answer of the wanted family, keeps the hosts it had
//! (logged at WARN when it starts failing). docs/clusters.md has the keys.
//!
//! A cluster rebuilt at runtime (`update_cluster`, `update_hosts`) starts with the hosts
//! the cluster it replaces had resolved for the names it still has (see
//! [`starting_hosts`]), so a config change does not empty it until the next resolution.

use crate::cluster::{same_settings, Cluster};
use crate::host::Host;
use crate::manager::ClusterManager;
use crate::task::AbortOnDrop;
use mosn_config::dns::{self, HostAddress, LookupFamily};
use mosn_config::{ClusterConfig, HostConfig};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the runner looks for new, replaced or removed STRICT_DNS clusters.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// How long one lookup may take before it counts as failed (MOSN's refresh timeout).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The cluster type this module serves.
const STRICT_DNS: &str = "STRICT_DNS";

/// The addresses a lookup found, or why it failed.
type Answer = Result<Vec<IpAddr>, String>;

/// Looks a name up: the addresses for (name, port) as the system resolver answers.
type Resolver =
    Arc<dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// Starts the STRICT_DNS refresh runner on the current runtime; it follows the
/// manager's clusters until the returned handle is aborted (which stops every refresh).
pub fn spawn_dns_refresh(manager: Arc<ClusterManager>) -> JoinHandle<()> {
    spawn_with(
        manager,
        Arc::new(|name, port| Box::pin(system_lookup(name, port))),
    )
}

fn spawn_with(manager: Arc<ClusterManager>, resolver: Resolver) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<Arc<str>, Running> = HashMap::new();
        loop {
            scan(&manager, &resolver, &mut running);
            tokio::time::sleep(RESCAN_INTERVAL).await;
        }
    })
}

/// `getaddrinfo` for (name, port), off the runtime's threads.
async fn system_lookup(name: String, port: u16) -> Answer {
    tokio::net::lookup_host((name.as_str(), port))
        .await
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .map_err(|e| e.to_string())
}

/// The refresh task of one cluster object.
#[derive(Debug)]
struct Running {
    cluster: Arc<Cluster>,
    _task: AbortOnDrop,
}

fn scan(
    manager: &Arc<ClusterManager>,
    resolver: &Resolver,
    running: &mut HashMap<Arc<str>, Running>,
) {
    let clusters: Vec<Arc<Cluster>> = manager
        .all()
        .into_iter()
        .filter(|c| c.config.kind == STRICT_DNS)
        .collect();
    // A cluster that went away or was rebuilt (another object) stops its task; the
    // rebuilt one gets a new task below, with its new config.
    running.retain(|name, r| {
        let keep = clusters
            .iter()
            .any(|c| c.name == *name && Arc::ptr_eq(c, &r.cluster));
        if !keep {
            tracing::debug!("[upstream] [strict dns] cluster {name}: refresh stopped");
        }
        keep
    });
    for cluster in clusters {
        if running.contains_key(&cluster.name) {
            continue;
        }
        tracing::info!(
            "[upstream] [strict dns] cluster {}: resolving {} host names every {:?}",
            cluster.name,
            targets(&cluster.config)
                .iter()
                .filter(|t| matches!(t, Target::Name { .. }))
                .count(),
            cluster.config.dns_refresh_rate()
        );
        let task = tokio::spawn(refresh_cluster(
            manager.clone(),
            cluster.clone(),
            resolver.clone(),
        ));
        running.insert(
            cluster.name.clone(),
            Running {
                cluster,
                _task: AbortOnDrop(task),
            },
        );
    }
}

/// One `hosts[]` entry of a STRICT_DNS cluster.
#[derive(Debug, Clone)]
enum Target {
    /// An IP address: this host as it is.
    Fixed(HostConfig),
    /// A name: one host per answer, made from `template` (address left empty).
    Name {
        name: String,
        port: u16,
        template: HostConfig,
    },
}

/// The cluster's entries; addresses validation refused (not reachable here) are skipped.
fn targets(cfg: &ClusterConfig) -> Vec<Target> {
    cfg.hosts
        .iter()
        .filter_map(|h| match dns::parse_host_address(&h.address).ok()? {
            HostAddress::Ip { addr, .. } => Some(Target::Fixed(HostConfig {
                address: addr.to_string(),
                ..h.clone()
            })),
            HostAddress::Name { name, port, .. } => Some(Target::Name {
                template: HostConfig {
                    address: String::new(),
                    hostname: if h.hostname.is_empty() {
                        name.clone()
                    } else {
                        h.hostname.clone()
                    },
                    ..h.clone()
                },
                name,
                port,
            }),
        })
        .collect()
}

/// The host config of one answer.
fn answer_host(template: &HostConfig, ip: IpAddr, port: u16) -> HostConfig {
    HostConfig {
        address: SocketAddr::new(ip, port).to_string(),
        ..template.clone()
    }
}

impl Target {
    /// The hosts among `hosts` this entry would have made (same port and settings).
    fn matching(&self, hosts: &[Arc<Host>]) -> Vec<HostConfig> {
        match self {
            Target::Fixed(h) => vec![h.clone()],
            Target::Name { port, template, .. } => hosts
                .iter()
                .filter(|h| h.addr.port() == *port)
                .filter_map(|h| {
                    let cfg = answer_host(template, h.addr.ip(), *port);
                    let fresh = Host::from_config(&cfg)?;
                    same_settings(h, &fresh).then_some(cfg)
                })
                .collect(),
        }
    }
}

/// The hosts a STRICT_DNS cluster built from `cfg` starts with: its IP addresses, and
/// the hosts of `previous` (the cluster it replaces) that its names would make again.
/// A new cluster has no previous hosts: its names get hosts at the first resolution.
pub(crate) fn starting_hosts(cfg: &ClusterConfig, previous: &[Arc<Host>]) -> Vec<HostConfig> {
    let parts: Vec<Vec<HostConfig>> = targets(cfg).iter().map(|t| t.matching(previous)).collect();
    assemble(&parts)
}

/// The entries' hosts in order, each address once (the first entry that has it wins).
fn assemble(parts: &[Vec<HostConfig>]) -> Vec<HostConfig> {
    let mut seen = HashSet::new();
    parts
        .iter()
        .flatten()
        .filter(|h| seen.insert(h.address.clone()))
        .cloned()
        .collect()
}

fn same_hosts(a: &[HostConfig], b: &[HostConfig]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.address == y.address
                && x.hostname == y.hostname
                && x.weight == y.weight
                && x.metadata == y.metadata
        })
}

/// Resolves (name, port) with the family's choice of answers, bounded in time.
async fn resolve(resolver: &Resolver, name: &str, port: u16, family: LookupFamily) -> Answer {
    let lookup = resolver(name.to_string(), port);
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
        Ok(Err(e)) => Err(e),
        Ok(Ok(answers)) => {
            let kept = family.select(answers);
            if kept.is_empty() {
                Err(format!("no {} address in the answer", family.wanted()))
            } else {
                Ok(kept)
            }
        }
    }
}

/// Keeps one cluster object's hosts in line with the answers until aborted, or until
/// the cluster is no longer the manager's.
async fn refresh_cluster(manager: Arc<ClusterManager>, cluster: Arc<Cluster>, resolver: Resolver) {
    let cfg = &cluster.config;
    let targets = targets(cfg);
    let family = cfg.dns_lookup_family();
    let rate = cfg.dns_refresh_rate();
    // Until a name resolves, it keeps the hosts the cluster started with for it.
    let current = cluster.hosts();
    let mut parts: Vec<Vec<HostConfig>> = targets.iter().map(|t| t.matching(&current)).collect();
    let mut failing = vec![false; targets.len()];
    let mut applied: Option<Vec<HostConfig>> = None;
    loop {
        let lookups: Vec<Option<JoinHandle<Answer>>> = targets
            .iter()
            .map(|t| match t {
                Target::Fixed(_) => None,
                Target::Name { name, port, .. } => {
                    let (resolver, name, port) = (resolver.clone(), name.clone(), *port);
                    Some(tokio::spawn(async move {
                        resolve(&resolver, &name, port, family).await
                    }))
                }
            })
            .collect();
        for (i, lookup) in lookups.into_iter().enumerate() {
            let (
                Some(lookup),
                Target::Name {
                    name,
                    port,
                    template,
                },
            ) = (lookup, &targets[i])
            else {
                continue;
            };
            let result = lookup
                .await
                .unwrap_or_else(|e| Err(format!("lookup task failed: {e}")));
            match result {
                Ok(ips) => {
                    if failing[i] {
                        tracing::info!(
                            "[upstream] [strict dns] cluster {}: {name} resolves again",
                            cluster.name
                        );
                    }
                    failing[i] = false;
                    parts[i] = ips
                        .into_iter()
                        .map(|ip| answer_host(template, ip, *port))
                        .collect();
                }
                Err(why) if !failing[i] => {
                    failing[i] = true;
                    tracing::warn!(
                        "[upstream] [strict dns] cluster {}: resolving {name} failed: {why}; \
                         keeping its {} previous hosts",
                        cluster.name,
                        parts[i].len()
                    );
                }
                Err(why) => tracing::debug!(
                    "[upstream] [strict dns] cluster {}: resolving {name} still fails: {why}",
                    cluster.name
                ),
            }
        }
        let hosts = assemble(&parts);
        if applied.as_deref().is_none_or(|a| !same_hosts(a, &hosts)) {
            // A cluster rebuilt meanwhile belongs to its own task now.
            let ours = manager
                .get(&cluster.name)
                .is_some_and(|c| Arc::ptr_eq(&c, &cluster));
            if !ours {
                return;
            }
            cluster.set_hosts(&hosts);
            tracing::info!(
                "[upstream] [strict dns] cluster {}: hosts now [{}]",
                cluster.name,
                hosts
                    .iter()
                    .map(|h| h.address.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            applied = Some(hosts);
        }
        tokio::time::sleep(rate).await;
    }
}

#[cfg(test)]
mod tests;

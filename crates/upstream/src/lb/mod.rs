//! Load balancers. A balancer is built for one host set (rebuilt when hosts or their
//! health change) and picks with atomics or thread-local randomness: no lock, no
//! allocation per pick.

mod basic;

pub use basic::{RandomLb, RoundRobinLb};

use crate::host::Host;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a pick may depend on.
#[derive(Debug, Default, Clone, Copy)]
pub struct LbContext<'a> {
    /// From the route's `hash_policy` (consistent-hash balancers).
    pub hash: Option<u64>,
    /// From the route's `metadata_match` (subset balancing).
    pub metadata_match: Option<&'a BTreeMap<String, String>>,
    /// A host to avoid when another is available (a retry).
    pub avoid: Option<SocketAddr>,
    /// The downstream connection's original destination (ORIGINAL_DST clusters).
    pub original_dst: Option<SocketAddr>,
}

/// Picks a host for a request.
pub trait LoadBalancer: Send + Sync + std::fmt::Debug {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>>;
}

/// The hosts a balancer picks from.
#[derive(Debug, Clone, Default)]
pub struct HostSet {
    /// Every host of the cluster, in config order.
    pub all: Vec<Arc<Host>>,
    /// The hosts balancing uses: the healthy ones, or all of them in panic mode.
    pub eligible: Vec<Arc<Host>>,
    /// Too few hosts are healthy: balance over all of them (Envoy's panic mode).
    pub panic: bool,
}

/// Envoy's default: below 50% healthy hosts, route to all hosts.
pub const DEFAULT_PANIC_THRESHOLD_PERCENT: f64 = 50.0;

impl HostSet {
    pub fn new(all: Vec<Arc<Host>>, panic_threshold_percent: f64) -> HostSet {
        let healthy: Vec<Arc<Host>> = all.iter().filter(|h| h.is_healthy()).cloned().collect();
        let panic = !all.is_empty()
            && (healthy.len() as f64) * 100.0 < panic_threshold_percent * all.len() as f64;
        let eligible = if panic { all.clone() } else { healthy };
        HostSet {
            all,
            eligible,
            panic,
        }
    }
}

/// Picks among `hosts` starting at `start`, skipping `avoid` when another host exists.
pub(crate) fn pick_avoiding(
    hosts: &[Arc<Host>],
    start: usize,
    avoid: Option<SocketAddr>,
) -> Option<Arc<Host>> {
    let n = hosts.len();
    if n == 0 {
        return None;
    }
    let first = &hosts[start % n];
    match avoid {
        Some(addr) if n > 1 && first.addr == addr => Some(hosts[(start + 1) % n].clone()),
        _ => Some(first.clone()),
    }
}

/// Builds the balancer named by MOSN's `lb_type` over `set`. Names not implemented yet
/// fall back to round robin (validation warned about them).
pub fn build(lb_type: &str, set: &HostSet) -> Box<dyn LoadBalancer> {
    match lb_type {
        "LB_RANDOM" => Box::new(RandomLb::new(set.eligible.clone())),
        _ => Box::new(RoundRobinLb::new(set.eligible.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        (0..n)
            .map(|i| {
                Arc::new(Host::new(
                    format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                    "",
                    1,
                    BTreeMap::new(),
                ))
            })
            .collect()
    }

    #[test]
    fn unhealthy_hosts_leave_the_set_until_panic() {
        let all = hosts(4);
        all[0].set_health_flag(crate::host::health::EJECTED);
        let set = HostSet::new(all.clone(), DEFAULT_PANIC_THRESHOLD_PERCENT);
        assert_eq!(set.eligible.len(), 3);
        assert!(!set.panic);
        all[1].set_health_flag(crate::host::health::FAILED_ACTIVE_HC);
        all[2].set_health_flag(crate::host::health::FAILED_ACTIVE_HC);
        let set = HostSet::new(all, DEFAULT_PANIC_THRESHOLD_PERCENT);
        assert!(set.panic, "1 of 4 healthy is below 50%");
        assert_eq!(set.eligible.len(), 4);
    }

    #[test]
    fn avoid_moves_to_the_next_host() {
        let all = hosts(3);
        let avoid = Some(all[1].addr);
        assert_eq!(pick_avoiding(&all, 1, avoid).unwrap().addr, all[2].addr);
        assert_eq!(
            pick_avoiding(&all[..1], 0, Some(all[0].addr)).unwrap().addr,
            all[0].addr
        );
    }
}

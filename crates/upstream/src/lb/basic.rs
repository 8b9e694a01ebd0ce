//! Round robin and random: MOSN's LB_ROUNDROBIN and LB_RANDOM.

use super::{pick_avoiding, LbContext, LoadBalancer};
use crate::host::Host;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct RoundRobinLb {
    hosts: Vec<Arc<Host>>,
    next: AtomicUsize,
}

impl RoundRobinLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        // Start at a random place so that many proxies do not all begin with host 0.
        RoundRobinLb {
            hosts,
            next: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }
}

impl LoadBalancer for RoundRobinLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        pick_avoiding(&self.hosts, start, ctx.avoid)
    }
}

#[derive(Debug)]
pub struct RandomLb {
    hosts: Vec<Arc<Host>>,
}

impl RandomLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        RandomLb { hosts }
    }
}

impl LoadBalancer for RandomLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        if self.hosts.is_empty() {
            return None;
        }
        pick_avoiding(&self.hosts, fastrand::usize(..self.hosts.len()), ctx.avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        (0..n)
            .map(|i| {
                Arc::new(Host::new(
                    format!("127.0.0.1:{}", 2000 + i).parse().unwrap(),
                    "",
                    1,
                    BTreeMap::new(),
                ))
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles_through_every_host() {
        let hs = hosts(3);
        let lb = RoundRobinLb::new(hs.clone());
        let mut seen = [0; 3];
        for _ in 0..300 {
            let h = lb.choose(&LbContext::default()).unwrap();
            seen[hs.iter().position(|x| x.addr == h.addr).unwrap()] += 1;
        }
        assert_eq!(seen, [100, 100, 100]);
    }

    #[test]
    fn random_spreads_and_handles_empty() {
        let hs = hosts(4);
        let lb = RandomLb::new(hs.clone());
        let mut seen = [0; 4];
        for _ in 0..4000 {
            let h = lb.choose(&LbContext::default()).unwrap();
            seen[hs.iter().position(|x| x.addr == h.addr).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert!(RandomLb::new(vec![])
            .choose(&LbContext::default())
            .is_none());
    }
}

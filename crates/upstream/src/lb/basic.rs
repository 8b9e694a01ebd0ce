//! Round robin, random and request round robin: MOSN's LB_ROUNDROBIN, LB_RANDOM and
//! LB_REQUEST_ROUNDROBIN.

use super::weighted::AliasTable;
use super::{avoiding, lb_weight, pick_avoiding, weights_differ, LbContext, LoadBalancer};
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

/// A uniform random pick, or weighted by host weight (1..=128) when weights differ.
#[derive(Debug)]
pub struct RandomLb {
    hosts: Vec<Arc<Host>>,
    /// Some when weights differ.
    weighted: Option<AliasTable>,
}

impl RandomLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        let weighted = if weights_differ(&hosts) {
            let weights: Vec<f64> = hosts.iter().map(|h| f64::from(lb_weight(h))).collect();
            AliasTable::new(&weights)
        } else {
            None
        };
        RandomLb { hosts, weighted }
    }

    #[inline]
    fn draw(&self) -> usize {
        match &self.weighted {
            Some(table) => table.pick(),
            None => fastrand::usize(..self.hosts.len()),
        }
    }
}

impl LoadBalancer for RandomLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        if self.hosts.is_empty() {
            return None;
        }
        avoiding(&self.hosts, ctx.avoid, self.draw(), || self.draw())
    }
}

/// MOSN's LB_REQUEST_ROUNDROBIN: every request starts at the first host and a retry
/// moves on to the host after the one it avoids: a fixed failover order, not a spread.
#[derive(Debug)]
pub struct RequestRoundRobinLb {
    hosts: Vec<Arc<Host>>,
}

impl RequestRoundRobinLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        RequestRoundRobinLb { hosts }
    }
}

impl LoadBalancer for RequestRoundRobinLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let start = match ctx
            .avoid
            .and_then(|a| self.hosts.iter().position(|h| h.addr == a))
        {
            Some(previous) => (previous + 1) % n,
            None => 0,
        };
        pick_avoiding(&self.hosts, start, ctx.avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{count, weighted_hosts_from};
    use super::*;

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        weighted_hosts_from(2000, &vec![1; n])
    }

    #[test]
    fn round_robin_cycles_through_every_host() {
        let hs = hosts(3);
        let lb = RoundRobinLb::new(hs.clone());
        assert_eq!(
            count(&hs, 300, || lb.choose(&LbContext::default())),
            [100, 100, 100]
        );
    }

    #[test]
    fn random_spreads_and_handles_empty() {
        let hs = hosts(4);
        let lb = RandomLb::new(hs.clone());
        let seen = count(&hs, 4000, || lb.choose(&LbContext::default()));
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert!(RandomLb::new(vec![])
            .choose(&LbContext::default())
            .is_none());
    }

    #[test]
    fn random_is_weighted_when_weights_differ() {
        let hs = weighted_hosts_from(2100, &[1, 2, 7]);
        let lb = RandomLb::new(hs.clone());
        let seen = count(&hs, 20_000, || lb.choose(&LbContext::default()));
        for (i, want) in [2_000.0, 4_000.0, 14_000.0].iter().enumerate() {
            assert!((seen[i] as f64 - want).abs() < want * 0.08, "{seen:?}");
        }
    }

    #[test]
    fn avoid_is_honoured_by_round_robin_and_random() {
        let hs = hosts(3);
        let ctx = LbContext {
            avoid: Some(hs[1].addr),
            ..Default::default()
        };
        let rr = RoundRobinLb::new(hs.clone());
        let random = RandomLb::new(hs.clone());
        let weighted = RandomLb::new(weighted_hosts_from(2000, &[1, 50, 1]));
        for _ in 0..300 {
            assert_ne!(rr.choose(&ctx).unwrap().addr, hs[1].addr);
            assert_ne!(random.choose(&ctx).unwrap().addr, hs[1].addr);
            assert_ne!(weighted.choose(&ctx).unwrap().addr, hs[1].addr);
        }
    }

    #[test]
    fn request_round_robin_is_a_failover_order() {
        let hs = hosts(3);
        let lb = RequestRoundRobinLb::new(hs.clone());
        for _ in 0..10 {
            assert_eq!(lb.choose(&LbContext::default()).unwrap().addr, hs[0].addr);
        }
        let retry = |a: usize| {
            lb.choose(&LbContext {
                avoid: Some(hs[a].addr),
                ..Default::default()
            })
            .unwrap()
            .addr
        };
        assert_eq!(retry(0), hs[1].addr);
        assert_eq!(retry(1), hs[2].addr);
        assert_eq!(retry(2), hs[0].addr);
        assert!(RequestRoundRobinLb::new(vec![])
            .choose(&LbContext::default())
            .is_none());
    }
}

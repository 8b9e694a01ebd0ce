//! Load balancers. A pick is a relaxed atomic add or a thread-local random number:
//! no lock, no allocation.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The balancing policy of a cluster (MOSN's `lb_type`).
#[derive(Debug)]
pub enum LoadBalancer {
    RoundRobin(AtomicUsize),
    Random,
}

impl LoadBalancer {
    /// MOSN's names; names of balancers not implemented yet fall back to round robin
    /// (validation has warned about them).
    pub fn from_lb_type(lb_type: &str) -> Self {
        match lb_type {
            "LB_RANDOM" => LoadBalancer::Random,
            _ => LoadBalancer::RoundRobin(AtomicUsize::new(fastrand::usize(..1024))),
        }
    }

    /// Index of the host to use among `count` hosts.
    #[inline]
    pub fn pick(&self, count: usize) -> Option<usize> {
        if count == 0 {
            return None;
        }
        Some(match self {
            LoadBalancer::RoundRobin(next) => next.fetch_add(1, Ordering::Relaxed) % count,
            LoadBalancer::Random => fastrand::usize(..count),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_through_every_host() {
        let lb = LoadBalancer::from_lb_type("LB_ROUNDROBIN");
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[lb.pick(3).unwrap()] += 1;
        }
        assert_eq!(seen, [100, 100, 100]);
    }

    #[test]
    fn random_stays_in_range_and_spreads() {
        let lb = LoadBalancer::from_lb_type("LB_RANDOM");
        let mut seen = [0; 4];
        for _ in 0..4000 {
            seen[lb.pick(4).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(lb.pick(0), None);
    }
}

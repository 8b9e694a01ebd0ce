//! LB_RING_HASH (Envoy's RING_HASH; MOSN has no ring hash): a ketama-style ring. Every
//! host is hashed onto a 64-bit ring many times (in proportion to its weight); a
//! request's hash picks the first host point at or after it, wrapping around.
//! Removing one host moves only the keys it owned (about 1/N); adding one takes
//! about 1/(N+1).

use super::hash::{host_key, mix64};
use super::{lb_weight, LbContext, LoadBalancer};
use crate::host::Host;
use std::sync::Arc;

/// Points per host of average weight: with 2048 a host's share of the ring is within a
/// few percent of its due (standard deviation about 1/sqrt(2048) = 2.2%).
pub const POINTS_PER_HOST: u64 = 2048;
/// Envoy's minimum ring size.
pub const MIN_RING_SIZE: u64 = 1024;
/// Ring size cap (12 bytes a point: 6 MiB). Large clusters get fewer points per host.
pub const MAX_RING_SIZE: u64 = 1 << 19;

#[derive(Debug)]
pub struct RingHashLb {
    hosts: Vec<Arc<Host>>,
    /// Sorted point hashes, and the host index of each point.
    points: Box<[u64]>,
    owners: Box<[u32]>,
}

impl RingHashLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        let n = hosts.len() as u64;
        if n == 0 {
            return RingHashLb {
                hosts,
                points: Box::new([]),
                owners: Box::new([]),
            };
        }
        let total_weight: u64 = hosts.iter().map(|h| u64::from(lb_weight(h))).sum();
        let ring_size = (n * POINTS_PER_HOST).clamp(MIN_RING_SIZE, MAX_RING_SIZE);
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(ring_size as usize + hosts.len());
        for (i, h) in hosts.iter().enumerate() {
            let share = ring_size as f64 * f64::from(lb_weight(h)) / total_weight as f64;
            let count = (share.round() as u64).max(1);
            let key = host_key(&h.addr);
            let base = super::hash::hash_bytes(key.as_bytes(), 0);
            for replica in 0..count {
                ring.push((mix64(base ^ mix64(replica + 1)), i as u32));
            }
        }
        ring.sort_unstable();
        let (points, owners): (Vec<u64>, Vec<u32>) = ring.into_iter().unzip();
        RingHashLb {
            hosts,
            points: points.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
        }
    }

    fn point_for(&self, hash: u64) -> usize {
        let h = mix64(hash);
        let i = self.points.partition_point(|&p| p < h);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }
}

impl LoadBalancer for RingHashLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let mut point = match ctx.hash {
            Some(hash) => self.point_for(hash),
            None => fastrand::usize(..self.points.len()),
        };
        let mut host = &self.hosts[self.owners[point] as usize];
        if let Some(avoid) = ctx.avoid.filter(|a| n > 1 && host.addr == *a) {
            // A retry walks on clockwise to the next other host.
            for _ in 0..self.points.len() {
                point = (point + 1) % self.points.len();
                host = &self.hosts[self.owners[point] as usize];
                if host.addr != avoid {
                    break;
                }
            }
        }
        Some(host.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn owner(lb: &RingHashLb, key: u64) -> std::net::SocketAddr {
        lb.choose(&hashed(key)).unwrap().addr
    }

    /// Each host's exact share of the ring (arc lengths).
    fn shares(lb: &RingHashLb) -> Vec<f64> {
        let mut s = vec![0.0; lb.hosts.len()];
        let len = lb.points.len();
        for i in 0..len {
            let prev = if i == 0 {
                lb.points[len - 1]
            } else {
                lb.points[i - 1]
            };
            let arc = lb.points[i].wrapping_sub(prev);
            s[lb.owners[i] as usize] += arc as f64 / 2f64.powi(64);
        }
        s
    }

    #[test]
    fn even_ring_and_even_keys() {
        let hs = equal_hosts(10);
        let lb = RingHashLb::new(hs.clone());
        let worst = shares(&lb)
            .iter()
            .map(|s| (s - 0.1).abs() / 0.1)
            .fold(0.0, f64::max);
        assert!(worst < 0.06, "worst share off by {:.1}%", worst * 100.0);
        let seen = count(&hs, 10_000, || lb.choose(&hashed(fastrand::u64(..))));
        assert!(
            seen.iter().all(|&n| (n as f64 - 1000.0).abs() < 160.0),
            "{seen:?}"
        );
    }

    #[test]
    fn removing_one_host_remaps_only_its_keys() {
        let hs = equal_hosts(10);
        let before = RingHashLb::new(hs.clone());
        let after = RingHashLb::new(hs[..9].to_vec());
        let gone = hs[9].addr;
        let mut moved = 0;
        for key in 0..10_000u64 {
            let (a, b) = (owner(&before, key), owner(&after, key));
            if a != b {
                assert_eq!(a, gone, "key {key} left a host that stayed");
                moved += 1;
            }
        }
        assert!((800..=1200).contains(&moved), "{moved} of 10000 keys moved");
    }

    #[test]
    fn weights_and_avoid() {
        let hs = weighted_hosts(&[1, 3]);
        let lb = RingHashLb::new(hs.clone());
        let s = shares(&lb);
        assert!((s[1] - 0.75).abs() < 0.03, "{s:?}");
        for key in 0..200 {
            let first = owner(&lb, key);
            let ctx = LbContext {
                hash: Some(key),
                avoid: Some(first),
                ..Default::default()
            };
            assert_ne!(lb.choose(&ctx).unwrap().addr, first);
        }
        let seen = count(&hs, 2000, || lb.choose(&LbContext::default()));
        assert!(seen[0] > 300, "no hash: random by ring share {seen:?}");
        assert!(RingHashLb::new(vec![]).choose(&hashed(7)).is_none());
    }
}

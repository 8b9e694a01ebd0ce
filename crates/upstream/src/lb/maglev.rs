//! MOSN's LB_MAGLEV: Google's Maglev consistent hashing (NSDI '16). Each host fills a
//! lookup table of prime size in its own permutation order; a request's hash indexes
//! the table. Removing one of N hosts remaps about 1/N of the keys, and every host
//! owns an almost equal share of the table.
//!
//! Weights (1..=128) are honoured as Envoy does (a host takes a turn in proportion to
//! its weight); MOSN's table ignores them, which equal weights reproduce.

use super::hash::{hash_bytes, host_key, mix64};
use super::{avoiding, lb_weight, LbContext, LoadBalancer};
use crate::host::Host;
use std::sync::Arc;

/// MOSN's table size (go-maglev's SmallM): a prime.
pub const TABLE_SIZE: u64 = 65_537;
/// MOSN switches to this prime (go-maglev's BigM) from 30,000 hosts on.
pub const BIG_TABLE_SIZE: u64 = 655_373;
const BIG_TABLE_FROM_HOSTS: usize = 30_000;

const OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

#[derive(Debug)]
pub struct MaglevLb {
    hosts: Vec<Arc<Host>>,
    /// Host index of every table slot; empty without hosts.
    table: Box<[u32]>,
}

impl MaglevLb {
    pub fn new(hosts: Vec<Arc<Host>>) -> Self {
        if hosts.is_empty() || hosts.len() >= BIG_TABLE_SIZE as usize {
            return MaglevLb {
                hosts,
                table: Box::new([]),
            };
        }
        let m = if hosts.len() >= BIG_TABLE_FROM_HOSTS {
            BIG_TABLE_SIZE
        } else {
            TABLE_SIZE
        };
        let table = build_table(&hosts, m);
        MaglevLb { hosts, table }
    }
}

/// Maglev's population: hosts take turns claiming their next preferred free slot. A
/// host of weight w takes a turn in w of every max-weight rounds.
fn build_table(hosts: &[Arc<Host>], m: u64) -> Box<[u32]> {
    struct Entry {
        offset: u64,
        skip: u64,
        next: u64,
        weight: u64,
        target: u64,
    }
    let max_weight = hosts
        .iter()
        .map(|h| u64::from(lb_weight(h)))
        .max()
        .unwrap_or(1);
    let mut entries: Vec<Entry> = hosts
        .iter()
        .map(|h| {
            let key = host_key(&h.addr);
            Entry {
                offset: hash_bytes(key.as_bytes(), OFFSET_SEED) % m,
                skip: hash_bytes(key.as_bytes(), SKIP_SEED) % (m - 1) + 1,
                next: 0,
                weight: u64::from(lb_weight(h)),
                target: max_weight,
            }
        })
        .collect();
    const EMPTY: u32 = u32::MAX;
    let mut table = vec![EMPTY; m as usize];
    let mut filled = 0u64;
    let mut round = 1u64;
    while filled < m {
        for (i, e) in entries.iter_mut().enumerate() {
            if filled == m {
                break;
            }
            if round * e.weight < e.target {
                continue;
            }
            e.target += max_weight;
            let mut slot = (e.offset + e.skip * e.next) % m;
            while table[slot as usize] != EMPTY {
                e.next += 1;
                slot = (e.offset + e.skip * e.next) % m;
            }
            table[slot as usize] = i as u32;
            e.next += 1;
            filled += 1;
        }
        round += 1;
    }
    table.into_boxed_slice()
}

impl LoadBalancer for MaglevLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        if self.table.is_empty() {
            // No hosts, or more than the table holds (MOSN refuses those too): random.
            if self.hosts.is_empty() {
                return None;
            }
            let n = self.hosts.len();
            return avoiding(&self.hosts, ctx.avoid, fastrand::usize(..n), || {
                fastrand::usize(..n)
            });
        }
        let n = self.hosts.len();
        let first = match ctx.hash {
            Some(hash) => self.table[(mix64(hash) % self.table.len() as u64) as usize] as usize,
            None => fastrand::usize(..n),
        };
        // A retry goes to the next host in order, as MOSN's maglev does.
        let mut step = first;
        avoiding(&self.hosts, ctx.avoid, first, || {
            step += 1;
            step
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn owner(lb: &MaglevLb, key: u64) -> std::net::SocketAddr {
        lb.choose(&hashed(key)).unwrap().addr
    }

    #[test]
    fn even_table_and_even_keys() {
        let hs = equal_hosts(10);
        let lb = MaglevLb::new(hs.clone());
        let mut slots = [0u64; 10];
        for &i in lb.table.iter() {
            slots[i as usize] += 1;
        }
        let mean = TABLE_SIZE as f64 / 10.0;
        let worst = slots
            .iter()
            .map(|&s| (s as f64 - mean).abs() / mean)
            .fold(0.0, f64::max);
        assert!(worst < 0.01, "table shares {slots:?}");
        let seen = count(&hs, 10_000, || lb.choose(&hashed(fastrand::u64(..))));
        assert!(
            seen.iter().all(|&n| (n as f64 - 1000.0).abs() < 130.0),
            "{seen:?}"
        );
    }

    #[test]
    fn removing_one_host_remaps_about_one_nth() {
        let hs = equal_hosts(10);
        let before = MaglevLb::new(hs.clone());
        let after = MaglevLb::new(hs[..9].to_vec());
        let gone = hs[9].addr;
        let (mut moved, mut moved_needlessly) = (0, 0);
        for key in 0..10_000u64 {
            let (a, b) = (owner(&before, key), owner(&after, key));
            if a != b {
                moved += 1;
                if a != gone {
                    moved_needlessly += 1;
                }
            }
        }
        assert!((800..=1200).contains(&moved), "{moved} of 10000 keys moved");
        assert!(
            moved_needlessly < 300,
            "{moved_needlessly} keys left a host that stayed"
        );
    }

    #[test]
    fn same_key_same_host_and_weights() {
        let hs = weighted_hosts(&[1, 3]);
        let lb = MaglevLb::new(hs.clone());
        assert_eq!(owner(&lb, 42), owner(&MaglevLb::new(hs.clone()), 42));
        let heavy = lb.table.iter().filter(|&&i| i == 1).count() as f64 / TABLE_SIZE as f64;
        assert!((heavy - 0.75).abs() < 0.01, "{heavy}");
    }

    #[test]
    fn no_hash_is_random_and_avoid_moves_on() {
        let hs = equal_hosts(3);
        let lb = MaglevLb::new(hs.clone());
        let seen = count(&hs, 3000, || lb.choose(&LbContext::default()));
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        for key in 0..200 {
            let first = owner(&lb, key);
            let ctx = LbContext {
                hash: Some(key),
                avoid: Some(first),
                ..Default::default()
            };
            assert_ne!(lb.choose(&ctx).unwrap().addr, first);
        }
        assert!(MaglevLb::new(vec![]).choose(&hashed(1)).is_none());
    }
}

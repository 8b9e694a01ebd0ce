//! Weighted picking: nginx's smooth weighted round robin (MOSN's
//! LB_WEIGHTED_ROUNDROBIN), and the alias table weighted random picks use.

use super::slow_start::{SlowStart, Warmup};
use super::{avoiding, lb_weight, LbContext, LoadBalancer};
use crate::host::Host;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Longest smooth schedule kept (entries are u32 host indexes: 256 KiB).
pub const SMOOTH_MAX_LEN: u64 = 1 << 16;
/// Most work (schedule length x hosts) spent building a smooth schedule.
const SMOOTH_BUILD_BUDGET: u64 = 1 << 23;
/// 2^64 / golden ratio: the step of the low-discrepancy sequence of stride picks.
const GOLDEN_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// One cycle of picks, by host index.
#[derive(Debug)]
pub(crate) enum Schedule {
    /// nginx's smooth weighted round robin, one whole cycle: every host appears
    /// weight/gcd times, spread out (weights 5,1,1 give a a b a c a a).
    Smooth(Box<[u32]>),
    /// For weights whose cycle is too long, or not whole (slow start): pick k takes the
    /// host whose cumulative-weight interval holds frac(k / golden ratio), a
    /// low-discrepancy sequence, so any run of picks matches the weights closely.
    Stride { cumulative: Box<[f64]>, total: f64 },
}

impl Schedule {
    pub fn new(weights: &[f64]) -> Schedule {
        let whole = weights
            .iter()
            .all(|w| w.fract() == 0.0 && *w >= 1.0 && *w <= f64::from(u32::MAX));
        if whole && !weights.is_empty() {
            let ints: Vec<u64> = weights.iter().map(|&w| w as u64).collect();
            let g = ints.iter().fold(0, |g, &w| gcd(g, w)).max(1);
            let len: u64 = ints.iter().map(|w| w / g).sum();
            if len <= SMOOTH_MAX_LEN && len.saturating_mul(ints.len() as u64) <= SMOOTH_BUILD_BUDGET
            {
                let reduced: Vec<i64> = ints.iter().map(|w| (w / g) as i64).collect();
                return Schedule::Smooth(smooth_cycle(&reduced));
            }
        }
        let mut total = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Schedule::Stride { cumulative, total }
    }

    /// The host index of pick `k` (`n` hosts, n > 0).
    #[inline]
    pub fn pick(&self, k: u64) -> usize {
        match self {
            Schedule::Smooth(cycle) => cycle[(k % cycle.len() as u64) as usize] as usize,
            Schedule::Stride { cumulative, total } => {
                let u = (k.wrapping_mul(GOLDEN_STEP) >> 11) as f64 / (1u64 << 53) as f64;
                let target = u * total;
                cumulative
                    .partition_point(|&c| c <= target)
                    .min(cumulative.len() - 1)
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// nginx's smooth weighted round robin: each step every host gains its weight, the
/// one with the most is picked and pays the total.
fn smooth_cycle(weights: &[i64]) -> Box<[u32]> {
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        cycle.push(best as u32);
    }
    cycle.into_boxed_slice()
}

/// Walker's alias table: a weighted random pick in O(1) from two random numbers.
#[derive(Debug)]
pub(crate) struct AliasTable {
    prob: Box<[f64]>,
    alias: Box<[u32]>,
}

impl AliasTable {
    /// None for an empty list or one without positive weight.
    pub fn new(weights: &[f64]) -> Option<AliasTable> {
        let n = weights.len();
        let total: f64 = weights.iter().map(|w| w.max(0.0)).sum();
        if n == 0 || total <= 0.0 || !total.is_finite() {
            return None;
        }
        let mut scaled: Vec<f64> = weights
            .iter()
            .map(|w| w.max(0.0) * n as f64 / total)
            .collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Some(AliasTable {
            prob: prob.into_boxed_slice(),
            alias: alias.into_boxed_slice(),
        })
    }

    #[inline]
    pub fn pick(&self) -> usize {
        let i = fastrand::usize(..self.prob.len());
        if fastrand::f64() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// MOSN's LB_WEIGHTED_ROUNDROBIN: smooth weighted round robin by host weight (1..=128),
/// with slow start. Lock-free: a precomputed cycle indexed by an atomic counter.
#[derive(Debug)]
pub struct WeightedRoundRobinLb {
    hosts: Vec<Arc<Host>>,
    schedule: ArcSwap<Schedule>,
    next: AtomicU64,
    warmup: Option<WarmingSchedule>,
}

/// While hosts warm up, the schedule is rebuilt from the current slow-start weights every
/// `every_ms` by whichever pick notices first (one allocation per rebuild, none per pick).
#[derive(Debug)]
struct WarmingSchedule {
    warmup: Warmup,
    built_at: Instant,
    every_ms: u64,
    next_rebuild_ms: AtomicU64,
}

impl WeightedRoundRobinLb {
    pub fn new(hosts: Vec<Arc<Host>>, slow_start: Option<SlowStart>) -> Self {
        let warmup = Warmup::new(slow_start, &hosts).map(|warmup| WarmingSchedule {
            every_ms: (warmup.slow.window.as_millis() as u64 / 20).clamp(10, 1000),
            warmup,
            built_at: Instant::now(),
            next_rebuild_ms: AtomicU64::new(0),
        });
        let schedule = Schedule::new(&weights_at(
            &hosts,
            warmup.as_ref().map(|w| (&w.warmup, Instant::now())),
        ));
        WeightedRoundRobinLb {
            hosts,
            schedule: ArcSwap::from_pointee(schedule),
            // Start at a random place so that many proxies do not all begin alike.
            next: AtomicU64::new(fastrand::u64(..1 << 20)),
            warmup,
        }
    }

    fn rebuild_if_due(&self, w: &WarmingSchedule) {
        let now = Instant::now();
        let at_ms = now.duration_since(w.built_at).as_millis() as u64;
        let due = w.next_rebuild_ms.load(Ordering::Relaxed);
        if at_ms < due
            || w.next_rebuild_ms
                .compare_exchange(
                    due,
                    at_ms + w.every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        // After the last window ends this builds the plain weights once more, for good.
        let warming = w.warmup.now_if_warming().map(|now| (&w.warmup, now));
        self.schedule
            .store(Arc::new(Schedule::new(&weights_at(&self.hosts, warming))));
    }
}

/// Host weights, times their slow-start factor while warming.
fn weights_at(hosts: &[Arc<Host>], warming: Option<(&Warmup, Instant)>) -> Vec<f64> {
    hosts
        .iter()
        .map(|h| {
            let w = f64::from(lb_weight(h));
            match warming {
                Some((warmup, now)) => w * warmup.factor(h, now),
                None => w,
            }
        })
        .collect()
}

impl LoadBalancer for WeightedRoundRobinLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        if self.hosts.is_empty() {
            return None;
        }
        if let Some(w) = self.warmup.as_ref().filter(|w| !w.warmup.is_done()) {
            self.rebuild_if_due(w);
        }
        let schedule = self.schedule.load();
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        avoiding(&self.hosts, ctx.avoid, schedule.pick(k), || {
            schedule.pick(self.next.fetch_add(1, Ordering::Relaxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::time::Duration;

    #[test]
    fn smooth_cycle_is_nginx_order() {
        assert_eq!(&*smooth_cycle(&[5, 1, 1]), &[0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(&*smooth_cycle(&[1, 1, 1]), &[0, 1, 2]);
        match Schedule::new(&[10.0, 20.0, 30.0]) {
            Schedule::Smooth(c) => assert_eq!(c.len(), 6, "reduced by the gcd"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn weighted_round_robin_within_one_percent() {
        let hs = weighted_hosts(&[1, 2, 3, 4]);
        let lb = WeightedRoundRobinLb::new(hs.clone(), None);
        let seen = count(&hs, 10_000, || lb.choose(&LbContext::default()));
        for (i, &n) in seen.iter().enumerate() {
            let want = 10_000.0 * (i + 1) as f64 / 10.0;
            assert!(
                (n as f64 - want).abs() <= want * 0.01,
                "host {i}: {n} vs {want} ({seen:?})"
            );
        }
    }

    #[test]
    fn stride_schedule_for_long_cycles_keeps_the_weights() {
        // A cycle of 2^17 + ... entries is too long to precompute.
        let weights: Vec<f64> = vec![70_001.0, 30_001.0, 1.0, 99_999.0];
        let s = Schedule::new(&weights);
        assert!(matches!(s, Schedule::Stride { .. }));
        let total: f64 = weights.iter().sum();
        let mut seen = [0u64; 4];
        for k in 0..100_000u64 {
            seen[s.pick(k)] += 1;
        }
        for (i, w) in weights.iter().enumerate() {
            let want = 100_000.0 * w / total;
            assert!(
                (seen[i] as f64 - want).abs() <= want.max(100.0) * 0.01 + 2.0,
                "{i}: {seen:?}"
            );
        }
        // Fractional weights (slow start) take the same path.
        assert!(matches!(
            Schedule::new(&[0.5, 1.0]),
            Schedule::Stride { .. }
        ));
    }

    #[test]
    fn alias_table_matches_weights() {
        let t = AliasTable::new(&[1.0, 3.0, 6.0]).unwrap();
        let mut seen = [0u32; 3];
        for _ in 0..100_000 {
            seen[t.pick()] += 1;
        }
        for (i, want) in [10_000.0, 30_000.0, 60_000.0].iter().enumerate() {
            assert!((f64::from(seen[i]) - want).abs() < want * 0.05, "{seen:?}");
        }
        assert!(AliasTable::new(&[]).is_none());
        assert!(AliasTable::new(&[0.0, 0.0]).is_none());
    }

    #[test]
    fn avoid_is_honoured() {
        let hs = weighted_hosts(&[1, 100]);
        let lb = WeightedRoundRobinLb::new(hs.clone(), None);
        let ctx = LbContext {
            avoid: Some(hs[1].addr),
            ..Default::default()
        };
        for _ in 0..500 {
            assert_eq!(lb.choose(&ctx).unwrap().addr, hs[0].addr);
        }
        let one = weighted_hosts(&[3]);
        let lb = WeightedRoundRobinLb::new(one.clone(), None);
        let ctx = LbContext {
            avoid: Some(one[0].addr),
            ..Default::default()
        };
        assert_eq!(
            lb.choose(&ctx).unwrap().addr,
            one[0].addr,
            "the only host is still used"
        );
        assert!(WeightedRoundRobinLb::new(vec![], None)
            .choose(&LbContext::default())
            .is_none());
    }

    #[test]
    fn slow_start_ramps_a_new_host() {
        let slow = SlowStart {
            window: Duration::from_secs(100),
            aggression: 1.0,
            min_weight_percent: 0.1,
        };
        let hs = vec![
            aged_host(3100, 1, Duration::from_secs(1000)),
            aged_host(3101, 1, Duration::ZERO),
        ];
        let lb = WeightedRoundRobinLb::new(hs.clone(), Some(slow));
        let seen = count(&hs, 11_000, || lb.choose(&LbContext::default()));
        // 1 : 0.1 (the new host's elapsed time counts as 1 s of 100, floored at 10%).
        assert!((seen[1] as i64 - 1000).abs() <= 20, "{seen:?}");
        // Nobody warming: no warm-up state, no clock reads.
        let warm = vec![
            aged_host(3102, 1, Duration::from_secs(1000)),
            aged_host(3103, 2, Duration::from_secs(500)),
        ];
        assert!(Warmup::new(Some(slow), &warm).is_none());
        let lb = WeightedRoundRobinLb::new(warm.clone(), Some(slow));
        assert!(lb.warmup.is_none());
        let seen = count(&warm, 3_000, || lb.choose(&LbContext::default()));
        assert_eq!(seen, vec![1000, 2000]);
    }

    #[test]
    fn warm_weights_follow_the_clock() {
        let slow = SlowStart {
            window: Duration::from_secs(10),
            aggression: 1.0,
            min_weight_percent: 0.1,
        };
        let hs = vec![aged_host(3110, 4, Duration::ZERO)];
        let w = Warmup::new(Some(slow), &hs).unwrap();
        let t0 = hs[0].warm_since();
        assert_eq!(
            weights_at(&hs, Some((&w, t0 + Duration::from_secs(5)))),
            vec![2.0]
        );
        assert_eq!(
            weights_at(&hs, Some((&w, t0 + Duration::from_secs(10)))),
            vec![4.0]
        );
        assert_eq!(weights_at(&hs, None), vec![4.0]);
    }
}

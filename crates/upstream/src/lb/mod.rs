//! Load balancers. A balancer is built for one host set (rebuilt when hosts or their
//! health change) and picks with atomics or thread-local randomness: no lock, no
//! allocation per pick. docs/load-balancing.md describes each one.

mod basic;
pub mod ewma;
mod hash;
mod least;
mod maglev;
mod original_dst;
mod ring_hash;
mod slow_start;
mod subset;
#[cfg(test)]
mod testutil;
mod weighted;

pub use basic::{RandomLb, RequestRoundRobinLb, RoundRobinLb};
pub use least::{LeastLoadLb, LoadMetric};
pub use maglev::MaglevLb;
pub use original_dst::OriginalDstLb;
pub use ring_hash::RingHashLb;
pub use slow_start::SlowStart;
pub use subset::SubsetLb;
pub use weighted::WeightedRoundRobinLb;

use crate::host::Host;
use mosn_config::{ClusterConfig, SubsetFallbackPolicy, DEFAULT_CONNECT_TIMEOUT};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// How many times a balancer draws again when it drew the host to avoid, before it
/// takes the next other host in order.
const AVOID_REDRAWS: usize = 3;

/// `hosts[first]`, unless that is `avoid` and another host exists: then a host from
/// `redraw` that is not `avoid`, after a few tries the next other host in order.
#[inline]
pub(crate) fn avoiding(
    hosts: &[Arc<Host>],
    avoid: Option<SocketAddr>,
    first: usize,
    mut redraw: impl FnMut() -> usize,
) -> Option<Arc<Host>> {
    let n = hosts.len();
    if n == 0 {
        return None;
    }
    let i = first % n;
    let Some(avoid) = avoid.filter(|a| n > 1 && hosts[i].addr == *a) else {
        return Some(hosts[i].clone());
    };
    for _ in 0..AVOID_REDRAWS {
        let j = redraw() % n;
        if hosts[j].addr != avoid {
            return Some(hosts[j].clone());
        }
    }
    let other = (1..n)
        .map(|k| (i + k) % n)
        .find(|&j| hosts[j].addr != avoid)
        .unwrap_or(i);
    Some(hosts[other].clone())
}

/// MOSN clamps host weights to 1..=128 (validation warns about larger ones).
pub const MAX_HOST_WEIGHT: u32 = 128;

/// A host's weight as the weighted balancers read it.
#[inline]
pub(crate) fn lb_weight(host: &Host) -> u32 {
    host.weight.clamp(1, MAX_HOST_WEIGHT)
}

/// True when not every host has the same weight.
pub(crate) fn weights_differ(hosts: &[Arc<Host>]) -> bool {
    hosts
        .windows(2)
        .any(|w| lb_weight(&w[0]) != lb_weight(&w[1]))
}

/// MOSN's `lb_type` values, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LbKind {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastRequest,
    LeastConnection,
    PeakEwma,
    Maglev,
    RingHash,
    RequestRoundRobin,
    OriginalDst,
}

impl LbKind {
    /// MOSN's name; "" is LB_ROUNDROBIN (MOSN's default). None for unknown names.
    pub fn from_name(name: &str) -> Option<LbKind> {
        Some(match name {
            "" | "LB_ROUNDROBIN" => LbKind::RoundRobin,
            "LB_WEIGHTED_ROUNDROBIN" => LbKind::WeightedRoundRobin,
            "LB_RANDOM" => LbKind::Random,
            "LB_LEAST_REQUEST" => LbKind::LeastRequest,
            "LB_LEAST_CONNECTION" => LbKind::LeastConnection,
            "LB_PEAK_EWMA" => LbKind::PeakEwma,
            "LB_MAGLEV" => LbKind::Maglev,
            "LB_RING_HASH" => LbKind::RingHash,
            "LB_REQUEST_ROUNDROBIN" => LbKind::RequestRoundRobin,
            "LB_ORIGINAL_DST" => LbKind::OriginalDst,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LbKind::RoundRobin => "LB_ROUNDROBIN",
            LbKind::WeightedRoundRobin => "LB_WEIGHTED_ROUNDROBIN",
            LbKind::Random => "LB_RANDOM",
            LbKind::LeastRequest => "LB_LEAST_REQUEST",
            LbKind::LeastConnection => "LB_LEAST_CONNECTION",
            LbKind::PeakEwma => "LB_PEAK_EWMA",
            LbKind::Maglev => "LB_MAGLEV",
            LbKind::RingHash => "LB_RING_HASH",
            LbKind::RequestRoundRobin => "LB_REQUEST_ROUNDROBIN",
            LbKind::OriginalDst => "LB_ORIGINAL_DST",
        }
    }

    /// The balancers MOSN builds on its EDF scheduler, which apply slow start.
    pub fn applies_slow_start(self) -> bool {
        matches!(
            self,
            LbKind::WeightedRoundRobin
                | LbKind::LeastRequest
                | LbKind::LeastConnection
                | LbKind::PeakEwma
        )
    }
}

/// MOSN's defaults of `lbconfig`.
pub const DEFAULT_CHOICE_COUNT: u32 = 2;
pub const DEFAULT_BIAS: f64 = 1.0;
/// The most hosts one pick of a load-aware balancer looks at.
pub const MAX_CHOICES: u32 = 64;

/// Subset balancing settings (MOSN's `lb_subset_config`), normalized: every selector's
/// keys sorted and unique, no empty or repeated selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubsetSettings {
    pub fallback: SubsetFallbackPolicy,
    pub default_subset: BTreeMap<String, String>,
    pub selectors: Vec<Vec<String>>,
}

/// MOSN's `original_dst_lb_config`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OriginalDstSettings {
    /// Connect to 127.0.0.1 (::1 for IPv6) on the original destination's port.
    pub replace_local: bool,
    /// The proxy takes the destination from this header (default `host`) when set;
    /// the balancer sees the result as `LbContext::original_dst`.
    pub use_header: bool,
    pub header_name: String,
}

/// Everything a balancer is built from: the cluster's balancing keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LbSettings {
    pub kind: LbKind,
    /// `lbconfig.choice_count`, 1..=MAX_CHOICES.
    pub choice_count: u32,
    pub active_request_bias: f64,
    pub client_error_bias: f64,
    pub server_error_bias: f64,
    /// LB_PEAK_EWMA's latency for hosts nothing is known about: the connect timeout
    /// (MOSN: connect + idle timeout, else 10 s).
    pub default_latency: Duration,
    pub slow_start: Option<SlowStart>,
    /// Some when subset balancing is on (`subset_selectors` not empty).
    pub subset: Option<SubsetSettings>,
    pub original_dst: OriginalDstSettings,
}

impl Default for LbSettings {
    fn default() -> Self {
        LbSettings::new(LbKind::RoundRobin)
    }
}

impl LbSettings {
    /// `kind` with every other setting at MOSN's default.
    pub fn new(kind: LbKind) -> LbSettings {
        LbSettings {
            kind,
            choice_count: DEFAULT_CHOICE_COUNT,
            active_request_bias: DEFAULT_BIAS,
            client_error_bias: DEFAULT_BIAS,
            server_error_bias: DEFAULT_BIAS,
            default_latency: DEFAULT_CONNECT_TIMEOUT,
            slow_start: None,
            subset: None,
            original_dst: OriginalDstSettings::default(),
        }
    }

    /// From a validated cluster config. An ORIGINAL_DST cluster balances with
    /// LB_ORIGINAL_DST whatever its `lb_type` says, as in MOSN.
    pub fn from_config(cfg: &ClusterConfig) -> LbSettings {
        let kind = if cfg.kind == "ORIGINAL_DST" {
            LbKind::OriginalDst
        } else {
            LbKind::from_name(&cfg.lb_type).unwrap_or_default()
        };
        let mut s = LbSettings::new(kind);
        if let Some(c) = &cfg.lbconfig {
            s.choice_count = c
                .choice_count
                .unwrap_or(DEFAULT_CHOICE_COUNT)
                .clamp(1, MAX_CHOICES);
            let bias = |v: Option<f64>| {
                v.filter(|b| b.is_finite() && *b >= 0.0)
                    .unwrap_or(DEFAULT_BIAS)
            };
            s.active_request_bias = bias(c.active_request_bias);
            s.client_error_bias = bias(c.client_error_bias);
            s.server_error_bias = bias(c.server_error_bias);
        }
        s.default_latency = cfg
            .connect_timeout
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        s.slow_start = cfg.slow_start.as_ref().and_then(SlowStart::from_config);
        s.subset = cfg.lb_subset_config.as_ref().and_then(|c| {
            let mut selectors: Vec<Vec<String>> = Vec::new();
            for sel in &c.subset_selectors {
                let mut keys: Vec<String> = sel.iter().filter(|k| !k.is_empty()).cloned().collect();
                keys.sort();
                keys.dedup();
                if !keys.is_empty() && !selectors.contains(&keys) {
                    selectors.push(keys);
                }
            }
            (!selectors.is_empty()).then(|| SubsetSettings {
                fallback: c.fall_back_policy,
                default_subset: c.default_subset.clone(),
                selectors,
            })
        });
        if let Some(o) = &cfg.original_dst_lb_config {
            s.original_dst = OriginalDstSettings {
                replace_local: o.replace_local,
                use_header: o.use_header,
                header_name: if o.header_name.is_empty() {
                    "host".into()
                } else {
                    o.header_name.clone()
                },
            };
        }
        s
    }
}

/// Builds the balancer `settings` describe over `set`'s eligible hosts: the subset
/// balancer when subsets are configured, else the `lb_type` balancer.
pub fn build(settings: &LbSettings, set: &HostSet) -> Box<dyn LoadBalancer> {
    match &settings.subset {
        Some(subset) => Box::new(SubsetLb::new(settings, subset, set.eligible.clone())),
        None => build_plain(settings, set.eligible.clone()),
    }
}

/// The `lb_type` balancer over `hosts` (subsets ignored).
pub(crate) fn build_plain(settings: &LbSettings, hosts: Vec<Arc<Host>>) -> Box<dyn LoadBalancer> {
    match settings.kind {
        LbKind::RoundRobin => Box::new(RoundRobinLb::new(hosts)),
        LbKind::WeightedRoundRobin => {
            Box::new(WeightedRoundRobinLb::new(hosts, settings.slow_start))
        }
        LbKind::Random => Box::new(RandomLb::new(hosts)),
        LbKind::LeastRequest => Box::new(LeastLoadLb::new(hosts, LoadMetric::Requests, settings)),
        LbKind::LeastConnection => {
            Box::new(LeastLoadLb::new(hosts, LoadMetric::Connections, settings))
        }
        LbKind::PeakEwma => Box::new(LeastLoadLb::new(hosts, LoadMetric::PeakEwma, settings)),
        LbKind::Maglev => Box::new(MaglevLb::new(hosts)),
        LbKind::RingHash => Box::new(RingHashLb::new(hosts)),
        LbKind::RequestRoundRobin => Box::new(RequestRoundRobinLb::new(hosts)),
        LbKind::OriginalDst => Box::new(OriginalDstLb::new(hosts, &settings.original_dst)),
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

    const ALL_KINDS: [LbKind; 10] = [
        LbKind::RoundRobin,
        LbKind::WeightedRoundRobin,
        LbKind::Random,
        LbKind::LeastRequest,
        LbKind::LeastConnection,
        LbKind::PeakEwma,
        LbKind::Maglev,
        LbKind::RingHash,
        LbKind::RequestRoundRobin,
        LbKind::OriginalDst,
    ];

    #[test]
    fn names_round_trip() {
        for kind in ALL_KINDS {
            assert_eq!(LbKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(LbKind::from_name(""), Some(LbKind::RoundRobin));
        assert_eq!(LbKind::from_name("RING_HASH"), None);
    }

    #[test]
    fn every_balancer_honours_avoid_and_empty_sets() {
        for kind in ALL_KINDS.into_iter().filter(|k| *k != LbKind::OriginalDst) {
            for weights in [&[1u32, 1, 1][..], &[2, 5, 1][..], &[1, 1][..]] {
                let hs = testutil::weighted_hosts(weights);
                let set = HostSet::new(hs.clone(), DEFAULT_PANIC_THRESHOLD_PERCENT);
                let lb = build(&LbSettings::new(kind), &set);
                for i in 0..200u64 {
                    let avoid = hs[(i % hs.len() as u64) as usize].addr;
                    for hash in [None, Some(i)] {
                        let ctx = LbContext {
                            hash,
                            avoid: Some(avoid),
                            ..Default::default()
                        };
                        let h = lb.choose(&ctx).expect("a host");
                        assert_ne!(h.addr, avoid, "{kind:?} {weights:?}");
                    }
                }
                let one = testutil::weighted_hosts(&[1]);
                let lb = build(
                    &LbSettings::new(kind),
                    &HostSet::new(one.clone(), DEFAULT_PANIC_THRESHOLD_PERCENT),
                );
                let ctx = LbContext {
                    avoid: Some(one[0].addr),
                    hash: Some(1),
                    ..Default::default()
                };
                assert_eq!(
                    lb.choose(&ctx).map(|h| h.addr),
                    Some(one[0].addr),
                    "{kind:?}: only host"
                );
            }
            let empty = build(&LbSettings::new(kind), &HostSet::default());
            assert!(
                empty
                    .choose(&LbContext {
                        hash: Some(3),
                        ..Default::default()
                    })
                    .is_none(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn settings_from_config() {
        use mosn_config::{GoDuration, LbConfig, OriginalDstLbConfig, SlowStartConfig};
        let mut cfg = ClusterConfig {
            lb_type: "LB_PEAK_EWMA".into(),
            ..Default::default()
        };
        let s = LbSettings::from_config(&cfg);
        assert_eq!(s, LbSettings::new(LbKind::PeakEwma));
        cfg.lbconfig = Some(LbConfig {
            choice_count: Some(1000),
            active_request_bias: Some(0.5),
            client_error_bias: None,
            server_error_bias: Some(2.0),
        });
        cfg.slow_start = Some(SlowStartConfig {
            mode: "duration".into(),
            slow_start_duration: Some(GoDuration(Duration::from_secs(30))),
            aggression: Some(2.0),
            min_weight_percent: None,
        });
        cfg.connect_timeout = Some(GoDuration(Duration::from_secs(3)));
        cfg.original_dst_lb_config = Some(OriginalDstLbConfig {
            use_header: true,
            ..Default::default()
        });
        let s = LbSettings::from_config(&cfg);
        assert_eq!(s.choice_count, MAX_CHOICES);
        assert_eq!(
            (
                s.active_request_bias,
                s.client_error_bias,
                s.server_error_bias
            ),
            (0.5, 1.0, 2.0)
        );
        let slow = s.slow_start.unwrap();
        assert_eq!(
            (slow.window, slow.aggression, slow.min_weight_percent),
            (Duration::from_secs(30), 2.0, 0.1)
        );
        assert_eq!(s.default_latency, Duration::from_secs(3));
        assert_eq!(s.original_dst.header_name, "host");
        cfg.kind = "ORIGINAL_DST".into();
        assert_eq!(LbSettings::from_config(&cfg).kind, LbKind::OriginalDst);
    }
}

//! MOSN's subset load balancing (`lb_subset_config`, subset_loadbalancer.go).
//!
//! At build time every selector (a set of metadata keys) splits the hosts by the values
//! they have for those keys: one subset per value combination that some host has,
//! each with its own balancer of the cluster's `lb_type`. Subsets sit in a trie by
//! (key, value) pairs in key order, as MOSN's. A pick with a `metadata_match` walks the
//! trie with the match's pairs; a match whose keys are exactly a selector's, with
//! values some hosts have, lands on that subset. Otherwise, or when the subset has no
//! host to give, the fallback policy applies: NO_FALLBACK gives no host, ANY_ENDPOINT
//! any host of the cluster, DEFAULT_SUBSET a host matching `default_subset`.
//! A pick without `metadata_match` balances over every host.

use super::{build_plain, LbContext, LbSettings, LoadBalancer, SubsetSettings};
use crate::host::Host;
use mosn_config::SubsetFallbackPolicy;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Level = HashMap<String, HashMap<String, Node>>;

#[derive(Debug, Default)]
struct Node {
    /// The subset ending at this pair, when a selector ends here.
    lb: Option<Box<dyn LoadBalancer>>,
    children: Level,
}

#[derive(Debug)]
enum Fallback {
    None,
    /// Reuses the balancer over every host.
    Any,
    Default(Box<dyn LoadBalancer>),
}

#[derive(Debug)]
pub struct SubsetLb {
    all: Box<dyn LoadBalancer>,
    fallback: Fallback,
    root: Level,
    /// How many subsets were made (MOSN's lb_subsets_created).
    pub subsets: usize,
}

impl SubsetLb {
    pub fn new(settings: &LbSettings, subset: &SubsetSettings, hosts: Vec<Arc<Host>>) -> Self {
        let all = build_plain(settings, hosts.clone());
        let fallback = match subset.fallback {
            SubsetFallbackPolicy::NoFallback => Fallback::None,
            SubsetFallbackPolicy::AnyEndpoint => Fallback::Any,
            SubsetFallbackPolicy::DefaultSubset => {
                let matching = hosts
                    .iter()
                    .filter(|h| matches(h, &subset.default_subset))
                    .cloned()
                    .collect();
                Fallback::Default(build_plain(settings, matching))
            }
        };
        let mut root = Level::new();
        let mut subsets = 0;
        for keys in &subset.selectors {
            // Hosts by their values for these keys; hosts lacking a key are in none.
            let mut groups: BTreeMap<Vec<&str>, Vec<Arc<Host>>> = BTreeMap::new();
            for h in &hosts {
                let values: Option<Vec<&str>> = keys
                    .iter()
                    .map(|k| h.metadata.get(k).map(String::as_str))
                    .collect();
                if let Some(values) = values {
                    groups.entry(values).or_default().push(h.clone());
                }
            }
            for (values, members) in groups {
                let pairs: Vec<(&str, &str)> =
                    keys.iter().map(String::as_str).zip(values).collect();
                if let Some(node) = node_for(&mut root, &pairs) {
                    if node.lb.is_none() {
                        node.lb = Some(build_plain(settings, members));
                        subsets += 1;
                    }
                }
            }
        }
        SubsetLb {
            all,
            fallback,
            root,
            subsets,
        }
    }

    /// The subset for `criteria` (sorted key/value pairs), if one was made.
    fn find(&self, criteria: &BTreeMap<String, String>) -> Option<&dyn LoadBalancer> {
        let mut level = &self.root;
        let mut found = None;
        for (k, v) in criteria {
            let node = level.get(k.as_str())?.get(v.as_str())?;
            found = Some(node);
            level = &node.children;
        }
        found?.lb.as_deref()
    }
}

/// The trie node for `pairs` (in key order), made as needed; None for no pairs.
fn node_for<'a>(level: &'a mut Level, pairs: &[(&str, &str)]) -> Option<&'a mut Node> {
    let ((k, v), rest) = pairs.split_first()?;
    let node = level
        .entry(k.to_string())
        .or_default()
        .entry(v.to_string())
        .or_default();
    if rest.is_empty() {
        Some(node)
    } else {
        node_for(&mut node.children, rest)
    }
}

fn matches(h: &Host, criteria: &BTreeMap<String, String>) -> bool {
    criteria.iter().all(|(k, v)| h.metadata.get(k) == Some(v))
}

impl LoadBalancer for SubsetLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let criteria = match ctx.metadata_match {
            Some(c) if !c.is_empty() => c,
            _ => return self.all.choose(ctx),
        };
        if let Some(host) = self.find(criteria).and_then(|lb| lb.choose(ctx)) {
            return Some(host);
        }
        match &self.fallback {
            Fallback::None => None,
            Fallback::Any => self.all.choose(ctx),
            Fallback::Default(lb) => lb.choose(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::LbKind;
    use super::*;

    fn hosts() -> Vec<Arc<Host>> {
        vec![
            meta_host(5000, &[("stage", "blue"), ("zone", "a")]),
            meta_host(5001, &[("stage", "blue"), ("zone", "b")]),
            meta_host(5002, &[("stage", "green"), ("zone", "a")]),
            meta_host(
                5003,
                &[("stage", "green"), ("zone", "b"), ("canary", "yes")],
            ),
            meta_host(5004, &[]),
        ]
    }

    fn settings(
        fallback: SubsetFallbackPolicy,
        selectors: &[&[&str]],
    ) -> (LbSettings, SubsetSettings) {
        let sub = SubsetSettings {
            fallback,
            default_subset: [("zone".to_string(), "b".to_string())].into(),
            selectors: selectors
                .iter()
                .map(|s| s.iter().map(|k| k.to_string()).collect())
                .collect(),
        };
        (LbSettings::new(LbKind::RoundRobin), sub)
    }

    fn criteria(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn picks(lb: &SubsetLb, m: &BTreeMap<String, String>) -> Vec<u16> {
        let mut ports: Vec<u16> = (0..40)
            .filter_map(|_| {
                lb.choose(&LbContext {
                    metadata_match: Some(m),
                    ..Default::default()
                })
            })
            .map(|h| h.addr.port())
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    #[test]
    fn subsets_by_selector_and_values() {
        let (s, sub) = settings(
            SubsetFallbackPolicy::NoFallback,
            &[&["stage"], &["stage", "zone"]],
        );
        let lb = SubsetLb::new(&s, &sub, hosts());
        assert_eq!(lb.subsets, 6, "blue, green, and four stage+zone pairs");
        assert_eq!(picks(&lb, &criteria(&[("stage", "blue")])), [5000, 5001]);
        assert_eq!(
            picks(&lb, &criteria(&[("stage", "green"), ("zone", "a")])),
            [5002]
        );
        // Keys that are no selector's, or values nobody has: no fallback, no host.
        assert!(picks(&lb, &criteria(&[("zone", "a")])).is_empty());
        assert!(picks(&lb, &criteria(&[("stage", "red")])).is_empty());
        assert!(picks(
            &lb,
            &criteria(&[("stage", "blue"), ("zone", "a"), ("canary", "yes")])
        )
        .is_empty());
        // No metadata_match: every host.
        let all = count(&hosts(), 50, || lb.choose(&LbContext::default()));
        assert_eq!(all, [10, 10, 10, 10, 10]);
    }

    #[test]
    fn fallback_policies() {
        let m = criteria(&[("stage", "red")]);
        let (s, sub) = settings(SubsetFallbackPolicy::AnyEndpoint, &[&["stage"]]);
        let any = SubsetLb::new(&s, &sub, hosts());
        assert_eq!(picks(&any, &m), [5000, 5001, 5002, 5003, 5004]);
        let (s, sub) = settings(SubsetFallbackPolicy::DefaultSubset, &[&["stage"]]);
        let default = SubsetLb::new(&s, &sub, hosts());
        assert_eq!(picks(&default, &m), [5001, 5003], "zone=b");
        // An empty subset (its hosts went unhealthy and left the set) falls back too.
        let healthy: Vec<Arc<Host>> = hosts()
            .into_iter()
            .filter(|h| h.addr.port() < 5002)
            .collect();
        let lb = SubsetLb::new(&s, &sub, healthy);
        assert_eq!(picks(&lb, &criteria(&[("stage", "green")])), [5001]);
    }

    #[test]
    fn inner_balancer_honours_avoid() {
        let (mut s, sub) = settings(SubsetFallbackPolicy::NoFallback, &[&["stage"]]);
        s.kind = LbKind::Random;
        let lb = SubsetLb::new(&s, &sub, hosts());
        let m = criteria(&[("stage", "blue")]);
        let ctx = LbContext {
            metadata_match: Some(&m),
            avoid: Some(addr(5000)),
            ..Default::default()
        };
        for _ in 0..100 {
            assert_eq!(lb.choose(&ctx).unwrap().addr.port(), 5001);
        }
    }

    #[test]
    fn built_through_settings() {
        use mosn_config::{ClusterConfig, LbSubsetConfig};
        let cfg = ClusterConfig {
            lb_type: "LB_RANDOM".into(),
            lb_subset_config: Some(LbSubsetConfig {
                fall_back_policy: SubsetFallbackPolicy::AnyEndpoint,
                default_subset: BTreeMap::new(),
                subset_selectors: vec![
                    vec!["zone".into(), "stage".into(), "zone".into()],
                    vec![],
                    vec!["stage".into(), "zone".into()],
                ],
            }),
            ..Default::default()
        };
        let s = LbSettings::from_config(&cfg);
        let sub = s.subset.clone().unwrap();
        assert_eq!(
            sub.selectors,
            vec![vec!["stage".to_string(), "zone".to_string()]],
            "sorted, deduplicated"
        );
        let set =
            super::super::HostSet::new(hosts(), super::super::DEFAULT_PANIC_THRESHOLD_PERCENT);
        let lb = super::super::build(&s, &set);
        let m = criteria(&[("zone", "b"), ("stage", "green")]);
        let h = lb
            .choose(&LbContext {
                metadata_match: Some(&m),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(h.addr.port(), 5003);
    }
}

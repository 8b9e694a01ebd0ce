//! Hosts and counting for the balancer tests.

use super::LbContext;
use crate::host::Host;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Hosts 127.0.0.1:3000.. with these weights.
pub(crate) fn weighted_hosts(weights: &[u32]) -> Vec<Arc<Host>> {
    weighted_hosts_from(3000, weights)
}

pub(crate) fn weighted_hosts_from(first_port: u16, weights: &[u32]) -> Vec<Arc<Host>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Arc::new(Host::new(
                addr(first_port + i as u16),
                "",
                w,
                BTreeMap::new(),
            ))
        })
        .collect()
}

pub(crate) fn equal_hosts(n: usize) -> Vec<Arc<Host>> {
    weighted_hosts(&vec![1; n])
}

/// A host that joined `age` ago (slow start measures from there).
pub(crate) fn aged_host(port: u16, weight: u32, age: Duration) -> Arc<Host> {
    let mut h = Host::new(addr(port), "", weight, BTreeMap::new());
    h.added_at = Instant::now().checked_sub(age).unwrap_or(h.added_at);
    Arc::new(h)
}

pub(crate) fn meta_host(port: u16, meta: &[(&str, &str)]) -> Arc<Host> {
    let m = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(Host::new(addr(port), "", 1, m))
}

/// How often each of `hosts` came out of `picks` calls of `pick`.
pub(crate) fn count(
    hosts: &[Arc<Host>],
    picks: usize,
    mut pick: impl FnMut() -> Option<Arc<Host>>,
) -> Vec<usize> {
    let mut seen = vec![0; hosts.len()];
    for _ in 0..picks {
        let h = pick().expect("a host");
        let i = hosts
            .iter()
            .position(|x| x.addr == h.addr)
            .expect("one of the hosts");
        seen[i] += 1;
    }
    seen
}

/// A context carrying a hash.
pub(crate) fn hashed(hash: u64) -> LbContext<'static> {
    LbContext {
        hash: Some(hash),
        ..Default::default()
    }
}

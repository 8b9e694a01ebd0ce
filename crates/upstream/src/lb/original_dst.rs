//! MOSN's LB_ORIGINAL_DST: the host is the connection's original destination
//! (`LbContext::original_dst`: SO_ORIGINAL_DST of a redirected connection, or the
//! address the proxy took from the `original_dst_lb_config` header). With
//! `replace_local`, the port is kept and the IP becomes loopback.
//!
//! A destination that is one of the cluster's hosts gets that host. Any other needs a
//! `Host` made on the fly: one allocation when an address is first seen; after that
//! it is found in a small direct-mapped cache (one atomic load per pick, no lock), so
//! its counters carry on until another address takes its slot.

use super::hash::mix64;
use super::{LbContext, LoadBalancer, OriginalDstSettings};
use crate::host::Host;
use arc_swap::ArcSwapOption;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Slots of the cache of hosts made on the fly.
pub const CACHE_SLOTS: usize = 256;

#[derive(Debug)]
pub struct OriginalDstLb {
    known: HashMap<SocketAddr, Arc<Host>>,
    cache: Box<[ArcSwapOption<Host>]>,
    replace_local: bool,
}

impl OriginalDstLb {
    pub fn new(hosts: Vec<Arc<Host>>, settings: &OriginalDstSettings) -> Self {
        OriginalDstLb {
            known: hosts.into_iter().map(|h| (h.addr, h)).collect(),
            cache: (0..CACHE_SLOTS).map(|_| ArcSwapOption::empty()).collect(),
            replace_local: settings.replace_local,
        }
    }

    fn slot(addr: &SocketAddr) -> usize {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => {
                let n = u128::from(v6);
                (n as u64) ^ ((n >> 64) as u64)
            }
        };
        (mix64(ip ^ (u64::from(addr.port()) << 48)) % CACHE_SLOTS as u64) as usize
    }
}

impl LoadBalancer for OriginalDstLb {
    fn choose(&self, ctx: &LbContext<'_>) -> Option<Arc<Host>> {
        let mut dst = ctx.original_dst?;
        if self.replace_local {
            let local = if dst.is_ipv4() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            };
            dst = SocketAddr::new(local, dst.port());
        }
        if let Some(h) = self.known.get(&dst) {
            return Some(h.clone());
        }
        let slot = &self.cache[Self::slot(&dst)];
        if let Some(h) = slot.load().as_ref().filter(|h| h.addr == dst) {
            return Some(h.clone());
        }
        let host = Arc::new(Host::new(dst, "", 1, BTreeMap::new()));
        slot.store(Some(host.clone()));
        Some(host)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn ctx(dst: SocketAddr) -> LbContext<'static> {
        LbContext {
            original_dst: Some(dst),
            ..Default::default()
        }
    }

    #[test]
    fn picks_the_original_destination() {
        let lb = OriginalDstLb::new(vec![], &OriginalDstSettings::default());
        assert!(
            lb.choose(&LbContext::default()).is_none(),
            "no destination, no host"
        );
        let dst: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let a = lb.choose(&ctx(dst)).unwrap();
        assert_eq!(a.addr, dst);
        let b = lb.choose(&ctx(dst)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the host made on the fly is reused");
        // `avoid` cannot apply: there is one possible host.
        let retry = LbContext {
            original_dst: Some(dst),
            avoid: Some(dst),
            ..Default::default()
        };
        assert_eq!(lb.choose(&retry).unwrap().addr, dst);
    }

    #[test]
    fn known_hosts_and_replace_local() {
        let hs = equal_hosts(1);
        let lb = OriginalDstLb::new(hs.clone(), &OriginalDstSettings::default());
        assert!(Arc::ptr_eq(&lb.choose(&ctx(hs[0].addr)).unwrap(), &hs[0]));
        let local = OriginalDstLb::new(
            vec![],
            &OriginalDstSettings {
                replace_local: true,
                ..Default::default()
            },
        );
        let h = local
            .choose(&ctx("10.9.9.9:9090".parse().unwrap()))
            .unwrap();
        assert_eq!(h.addr, "127.0.0.1:9090".parse::<SocketAddr>().unwrap());
        let h6 = local
            .choose(&ctx("[2001:db8::1]:443".parse().unwrap()))
            .unwrap();
        assert_eq!(h6.addr, "[::1]:443".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn many_destinations_share_the_cache() {
        let lb = OriginalDstLb::new(vec![], &OriginalDstSettings::default());
        for port in 1..2000u16 {
            let dst = SocketAddr::from(([10, 0, 0, 1], port));
            assert_eq!(lb.choose(&ctx(dst)).unwrap().addr, dst);
        }
    }
}

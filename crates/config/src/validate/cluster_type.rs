//! Checks of a cluster's `type` and what depends on it: host address forms, MOSN's DNS
//! keys (STRICT_DNS), and the balancer of ORIGINAL_DST. docs/clusters.md has the rules.

use crate::dns::{self, HostAddress, LookupFamily, LOOKUP_FAMILIES};
use crate::error::Problems;
use crate::model::*;
use std::net::SocketAddr;

/// The cluster types mosn-rs runs (MOSN's names; empty is SIMPLE).
pub const CLUSTER_TYPES: &[&str] = &[
    "SIMPLE",
    "STATIC",
    "EDS",
    "DYNAMIC",
    "STRICT_DNS",
    "ORIGINAL_DST",
];

/// `type`, the DNS keys and the type's demands on `lb_type` and `hosts`.
pub fn check_cluster_type(cluster: &ClusterConfig, path: &str, problems: &mut Problems) {
    let kind = cluster.kind.as_str();
    match kind {
        "" => {}
        k if CLUSTER_TYPES.contains(&k) => {}
        "LOGICAL_DNS" => problems.error(
            format!("{path}.type"),
            "cluster type \"LOGICAL_DNS\" (Envoy's) is not supported by mosn-rs: use STRICT_DNS",
        ),
        other => problems.error(
            format!("{path}.type"),
            format!(
                "unknown cluster type {other:?} (one of {})",
                CLUSTER_TYPES.join(", ")
            ),
        ),
    }
    if kind == "STRICT_DNS" {
        check_dns_keys(cluster, path, problems);
    } else {
        let set = [
            ("dns_refresh_rate", cluster.dns_refresh_rate.is_some()),
            ("respect_dns_ttl", cluster.respect_dns_ttl),
            ("dns_lookup_family", !cluster.dns_lookup_family.is_empty()),
        ];
        for (key, _) in set.iter().filter(|(_, present)| *present) {
            problems.warn(
                format!("{path}.{key}"),
                format!("{key} is used only by STRICT_DNS clusters: ignored"),
            );
        }
    }
    if kind == "ORIGINAL_DST" {
        let lb = cluster.lb_type.as_str();
        if !lb.is_empty() && lb != "LB_ORIGINAL_DST" {
            problems.error(
                format!("{path}.lb_type"),
                format!(
                    "an ORIGINAL_DST cluster balances with LB_ORIGINAL_DST, not {lb:?} \
                     (leave lb_type out or set LB_ORIGINAL_DST)"
                ),
            );
        }
        if !cluster.hosts.is_empty() {
            problems.warn(
                format!("{path}.hosts"),
                "an ORIGINAL_DST cluster connects to each connection's original destination \
                 and needs no hosts: they are not balanced over (a host whose address is the \
                 destination only lends its settings)",
            );
        }
    }
}

fn check_dns_keys(cluster: &ClusterConfig, path: &str, problems: &mut Problems) {
    if LookupFamily::parse(&cluster.dns_lookup_family).is_none() {
        problems.error(
            format!("{path}.dns_lookup_family"),
            format!(
                "unknown dns_lookup_family {:?} (one of {}; absent: IPv4 answers, else IPv6)",
                cluster.dns_lookup_family,
                LOOKUP_FAMILIES.join(", ")
            ),
        );
    }
    if cluster.respect_dns_ttl {
        problems.warn(
            format!("{path}.respect_dns_ttl"),
            format!(
                "the system resolver reports no TTL: names are resolved every \
                 dns_refresh_rate ({:?})",
                cluster.dns_refresh_rate()
            ),
        );
    }
    if let Some(rate) = cluster.dns_refresh_rate.map(|d| d.0) {
        if !rate.is_zero() && rate < dns::MIN_REFRESH_RATE {
            problems.warn(
                format!("{path}.dns_refresh_rate"),
                format!(
                    "dns_refresh_rate {rate:?} is below {:?}: {:?} is used",
                    dns::MIN_REFRESH_RATE,
                    dns::MIN_REFRESH_RATE
                ),
            );
        }
    }
    if cluster.hosts.is_empty() {
        problems.warn(
            format!("{path}.hosts"),
            "a STRICT_DNS cluster without hosts has no name to resolve: it has no host",
        );
    }
}

/// One `hosts[i].address` at `path`: `IP:port`, or for STRICT_DNS also a host name.
pub fn check_host_address(
    cluster: &ClusterConfig,
    address: &str,
    path: &str,
    problems: &mut Problems,
) {
    if cluster.kind != "STRICT_DNS" {
        if let Err(e) = address.parse::<SocketAddr>() {
            let hint = match dns::parse_host_address(address) {
                Ok(HostAddress::Name { .. }) => {
                    " (a host name needs a cluster of type STRICT_DNS)".to_string()
                }
                _ => String::new(),
            };
            problems.error(
                path,
                format!("bad address {address:?}: {e} (expected IP:port){hint}"),
            );
        }
        return;
    }
    match dns::parse_host_address(address) {
        Err(e) => problems.error(
            path,
            format!("bad address {address:?}: {e} (expected host:port or IP:port)"),
        ),
        Ok(a) if a.default_port() => problems.warn(
            path,
            format!(
                "{address:?} has no port: port {} is used, as MOSN",
                dns::DEFAULT_PORT
            ),
        ),
        Ok(_) => {}
    }
}

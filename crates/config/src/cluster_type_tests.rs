//! Cluster types: STRICT_DNS, EDS, DYNAMIC, ORIGINAL_DST, and their keys.

use super::*;

/// A full config with one cluster `c` made of `cluster` (JSON members, name excluded).
fn with_cluster(cluster: &str) -> String {
    format!(
        r#"{{
  "servers": [{{
    "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
      "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c"}}}}]}}]}}],
    "listeners": [{{"name": "l", "address": "127.0.0.1:2045", "bind_port": true,
      "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}]
  }}],
  "cluster_manager": {{"clusters": [{{"name": "c", {cluster}}}]}}
}}"#
    )
}

fn load(cluster: &str) -> Result<LoadedConfig, Vec<String>> {
    load_str(&with_cluster(cluster)).map_err(|e| e.issues())
}

fn warnings(cluster: &str) -> Vec<String> {
    load(cluster)
        .unwrap_or_else(|e| panic!("{cluster}: {e:?}"))
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn errors(cluster: &str) -> Vec<String> {
    load(cluster)
        .err()
        .unwrap_or_else(|| panic!("{cluster}: valid"))
}

const P: &str = "cluster_manager.clusters[0]";

#[test]
fn strict_dns_takes_names_and_mosn_keys() {
    let loaded = load(
        r#""type": "STRICT_DNS", "dns_refresh_rate": "30s", "dns_lookup_family": "V4_ONLY",
           "hosts": [{"address": "localhost:8080", "hostname": "api", "weight": 3},
                     {"address": "10.0.0.1:80"}, {"address": "svc.ns.svc.cluster.local.:9090"}]"#,
    )
    .expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config.cluster_manager.clusters[0];
    assert_eq!(c.dns_refresh_rate(), std::time::Duration::from_secs(30));
    assert_eq!(c.dns_lookup_family(), dns::LookupFamily::V4Only);
    // Keys are MOSN's, case-insensitive like Go; they survive a dump.
    let loaded = load(
        r#""type": "STRICT_DNS", "DNS_Refresh_Rate": "2s", "Dns_Lookup_Family": "V6_ONLY",
           "hosts": [{"address": "localhost:1"}]"#,
    )
    .expect("valid");
    let c = &loaded.config.cluster_manager.clusters[0];
    assert_eq!(c.dns_lookup_family(), dns::LookupFamily::V6Only);
    let dumped = serde_json::to_value(c).unwrap();
    assert_eq!(dumped["dns_refresh_rate"], "2s");
    assert_eq!(dumped["dns_lookup_family"], "V6_ONLY");
    assert!(dumped.get("respect_dns_ttl").is_none());
}

#[test]
fn strict_dns_bad_addresses_and_keys_name_their_paths() {
    let errs = errors(
        r#""type": "STRICT_DNS", "dns_lookup_family": "V5_ONLY",
           "hosts": [{"address": "bad_host!:80"}, {"address": "ok.example:"}, {"address": "a..b:1"},
                     {"address": "host:99999"}, {"address": "300.1.1.1:80"}]"#,
    );
    let expect = [
        format!("{P}.dns_lookup_family: unknown dns_lookup_family \"V5_ONLY\" (one of V4_ONLY, V6_ONLY, V4_PREFERRED, AUTO, ALL; absent: IPv4 answers, else IPv6)"),
        format!("{P}.hosts[0].address: bad address \"bad_host!:80\": character '!' is not allowed in a host name (expected host:port or IP:port)"),
        format!("{P}.hosts[1].address: bad address \"ok.example:\": missing port after ':' (expected host:port or IP:port)"),
        format!("{P}.hosts[2].address: bad address \"a..b:1\": empty label in host name \"a..b\" (expected host:port or IP:port)"),
        format!("{P}.hosts[3].address: bad address \"host:99999\": port 99999 is out of range (1-65535) (expected host:port or IP:port)"),
        format!("{P}.hosts[4].address: bad address \"300.1.1.1:80\": not a valid IP address, nor a host name (expected host:port or IP:port)"),
    ];
    assert_eq!(errs, expect);
}

#[test]
fn strict_dns_warnings() {
    let w = warnings(
        r#""type": "STRICT_DNS", "respect_dns_ttl": true, "dns_refresh_rate": "1ms",
           "hosts": [{"address": "example.com"}]"#,
    );
    assert_eq!(
        w,
        [
            format!("{P}.respect_dns_ttl: the system resolver reports no TTL: names are resolved every dns_refresh_rate (100ms)"),
            format!("{P}.dns_refresh_rate: dns_refresh_rate 1ms is below 100ms: 100ms is used"),
            format!("{P}.hosts[0].address: \"example.com\" has no port: port 80 is used, as MOSN"),
        ]
    );
    let w = warnings(r#""type": "STRICT_DNS""#);
    assert_eq!(
        w,
        [format!(
            "{P}.hosts: a STRICT_DNS cluster without hosts has no name to resolve: it has no host"
        )]
    );
    // Custom resolvers stay unimplemented.
    let w = warnings(
        r#""type": "STRICT_DNS", "dns_resolvers": {"servers": ["8.8.8.8"]}, "hosts": [{"address": "a.b:1"}]"#,
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "{P}.dns_resolvers: valid MOSN key, not implemented"
        )),
        "{w:?}"
    );
}

#[test]
fn dns_keys_on_other_types_are_ignored_with_a_warning() {
    let w = warnings(
        r#""type": "SIMPLE", "dns_refresh_rate": "1s", "respect_dns_ttl": true, "dns_lookup_family": "V4_ONLY",
           "hosts": [{"address": "127.0.0.1:1"}]"#,
    );
    assert_eq!(
        w,
        [
            format!("{P}.dns_refresh_rate: dns_refresh_rate is used only by STRICT_DNS clusters: ignored"),
            format!("{P}.respect_dns_ttl: respect_dns_ttl is used only by STRICT_DNS clusters: ignored"),
            format!("{P}.dns_lookup_family: dns_lookup_family is used only by STRICT_DNS clusters: ignored"),
        ]
    );
}

#[test]
fn names_need_strict_dns() {
    for kind in ["SIMPLE", "STATIC", "EDS", "DYNAMIC"] {
        let errs = errors(&format!(
            r#""type": "{kind}", "hosts": [{{"address": "localhost:80"}}]"#
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!(
                "{P}.hosts[0].address: bad address \"localhost:80\""
            )),
            "{errs:?}"
        );
        assert!(
            errs[0]
                .ends_with("(expected IP:port) (a host name needs a cluster of type STRICT_DNS)"),
            "{errs:?}"
        );
    }
}

#[test]
fn eds_and_dynamic_start_with_or_without_hosts() {
    for kind in ["EDS", "DYNAMIC"] {
        assert!(warnings(&format!(r#""type": "{kind}""#)).is_empty());
        assert!(warnings(&format!(
            r#""type": "{kind}", "hosts": [{{"address": "127.0.0.1:8080"}}]"#
        ))
        .is_empty());
    }
}

#[test]
fn original_dst_pairs_with_its_balancer() {
    assert!(warnings(r#""type": "ORIGINAL_DST""#).is_empty());
    assert!(warnings(
        r#""type": "ORIGINAL_DST", "lb_type": "LB_ORIGINAL_DST", "original_dst_lb_config": {"replace_local": true}"#
    )
    .is_empty());
    assert_eq!(
        errors(r#""type": "ORIGINAL_DST", "lb_type": "LB_RANDOM""#),
        [format!("{P}.lb_type: an ORIGINAL_DST cluster balances with LB_ORIGINAL_DST, not \"LB_RANDOM\" (leave lb_type out or set LB_ORIGINAL_DST)")]
    );
    let w = warnings(r#""type": "ORIGINAL_DST", "hosts": [{"address": "127.0.0.1:80"}]"#);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "{P}.hosts: an ORIGINAL_DST cluster connects to each connection's original destination"
        )),
        "{w:?}"
    );
}

#[test]
fn unknown_and_logical_types() {
    assert_eq!(
        errors(r#""type": "LOGICAL_DNS", "hosts": [{"address": "127.0.0.1:80"}]"#),
        [format!("{P}.type: cluster type \"LOGICAL_DNS\" (Envoy's) is not supported by mosn-rs: use STRICT_DNS")]
    );
    assert_eq!(
        errors(r#""type": "strict_dns", "hosts": [{"address": "127.0.0.1:80"}]"#),
        [format!("{P}.type: unknown cluster type \"strict_dns\" (one of SIMPLE, STATIC, EDS, DYNAMIC, STRICT_DNS, ORIGINAL_DST)")]
    );
}

#[test]
fn runtime_check_of_a_strict_dns_cluster() {
    let c = ClusterConfig {
        name: "d".into(),
        kind: "STRICT_DNS".into(),
        hosts: vec![HostConfig {
            address: "localhost:80".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(check_cluster(&c).map(|w| w.len()), Ok(0));
    let bad = ClusterConfig {
        dns_lookup_family: "V4".into(),
        ..c
    };
    let errs = check_cluster(&bad).unwrap_err();
    assert_eq!(errs[0].path, "cluster.dns_lookup_family");
}

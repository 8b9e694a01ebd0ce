//! EDS and ORIGINAL_DST clusters at the cluster level (STRICT_DNS: crate::dns).

use crate::{ClusterManager, LbContext};
use mosn_config::{ClusterConfig, HostConfig};
use mosn_observe::StatsRegistry;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

fn manager(cluster: serde_json::Value) -> ClusterManager {
    let cfg: ClusterConfig = serde_json::from_value(cluster).unwrap();
    assert!(
        mosn_config::check_cluster(&cfg).is_ok(),
        "valid test cluster"
    );
    ClusterManager::build(&[cfg], Arc::new(StatsRegistry::default()))
}

fn dst(addr: &str) -> LbContext<'static> {
    LbContext {
        original_dst: Some(addr.parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn eds_cluster_starts_empty_and_takes_hosts_at_runtime() {
    let m = manager(json!({"name": "e", "type": "EDS"}));
    let c = m.get("e").unwrap();
    assert!(
        c.choose_host(&LbContext::default()).is_none(),
        "no host yet"
    );
    m.set_hosts(
        "e",
        &[HostConfig {
            address: "127.0.0.1:9".into(),
            ..Default::default()
        }],
    )
    .unwrap();
    let h = c.choose_host(&LbContext::default()).unwrap();
    assert_eq!(h.addr, "127.0.0.1:9".parse::<SocketAddr>().unwrap());
    assert_eq!(c.to_json()["type"], "EDS");
}

#[test]
fn original_dst_cluster_picks_the_destination() {
    let m = manager(json!({"name": "o", "type": "ORIGINAL_DST"}));
    let c = m.get("o").unwrap();
    assert!(
        c.choose_host(&LbContext::default()).is_none(),
        "no destination, no host"
    );
    let h = c.choose_host(&dst("10.1.2.3:8080")).unwrap();
    assert_eq!(h.addr.to_string(), "10.1.2.3:8080");
    let j = c.to_json();
    assert_eq!(
        (j["type"].as_str(), j["lb_type"].as_str()),
        (Some("ORIGINAL_DST"), Some("LB_ORIGINAL_DST"))
    );

    let m = manager(
        json!({"name": "o", "type": "ORIGINAL_DST", "lb_type": "LB_ORIGINAL_DST",
        "original_dst_lb_config": {"replace_local": true}}),
    );
    let h = m
        .get("o")
        .unwrap()
        .choose_host(&dst("127.0.0.2:4321"))
        .unwrap();
    assert_eq!(h.addr.to_string(), "127.0.0.1:4321");
}

//! Load-balancing keys of clusters: parsing MOSN's forms and validation.

use super::*;

/// A full config with one cluster whose extra keys are `cluster_extra` (JSON members).
fn with_cluster(cluster_extra: &str) -> String {
    format!(
        r#"{{
  "servers": [{{
    "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
      "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "c"}}}}]}}]}}],
    "listeners": [{{"name": "l", "address": "127.0.0.1:2045", "bind_port": true,
      "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}]
  }}],
  "cluster_manager": {{"clusters": [{{"name": "c", "type": "SIMPLE",
    "hosts": [{{"address": "127.0.0.1:8080"}}], {cluster_extra}}}]}}
}}"#
    )
}

fn load(extra: &str) -> Result<LoadedConfig, Vec<String>> {
    load_str(&with_cluster(extra)).map_err(|e| e.issues())
}

fn warnings(extra: &str) -> Vec<String> {
    load(extra)
        .expect("valid")
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_lb_type_is_accepted_without_warning() {
    for lb in validate::LB_TYPES {
        let w = warnings(&format!(r#""lb_type": "{lb}""#));
        assert!(w.is_empty(), "{lb}: {w:?}");
    }
    let errs = load(r#""lb_type": "LB_FASTEST""#).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(r#"cluster_manager.clusters[0].lb_type: unknown lb_type "LB_FASTEST" (one of LB_ROUNDROBIN"#),
        "{errs:?}"
    );
}

#[test]
fn mosn_subset_config_parses() {
    let loaded = load(
        r#""lb_type": "LB_RANDOM", "lb_subset_config": {"fall_back_policy": 2,
           "default_subset": {"Stage": "blue"}, "subset_selectors": [["Stage"], ["stage", "zone"]]}"#,
    )
    .expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sub = loaded.config.cluster_manager.clusters[0]
        .lb_subset_config
        .clone()
        .unwrap();
    assert_eq!(sub.fall_back_policy, SubsetFallbackPolicy::DefaultSubset);
    assert_eq!(
        sub.default_subset.get("Stage").map(String::as_str),
        Some("blue"),
        "metadata keys keep their case"
    );
    assert_eq!(sub.subset_selectors[0], vec!["Stage".to_string()]);
    // Envoy's spelling and names.
    let loaded = load(
        r#""lb_subset_config": {"fallback_policy": "ANY_ENDPOINT", "subset_selectors": [["a"]]}"#,
    )
    .unwrap();
    let sub = loaded.config.cluster_manager.clusters[0]
        .lb_subset_config
        .clone()
        .unwrap();
    assert_eq!(sub.fall_back_policy, SubsetFallbackPolicy::AnyEndpoint);
    // MOSN's dumps write empty objects.
    assert!(
        warnings(r#""lb_subset_config": {}, "original_dst_lb_config": {}"#)
            .iter()
            .all(|w| w.contains("original_dst_lb_config"))
    );
    // Serialized as MOSN writes it.
    let json = serde_json::to_value(&sub).unwrap();
    assert_eq!(json["fall_back_policy"], 1);
}

#[test]
fn bad_subset_config() {
    let errs = load(r#""lb_subset_config": {"fall_back_policy": 7}"#).unwrap_err();
    assert!(errs[0].starts_with("cluster_manager.clusters[0].lb_subset_config.fall_back_policy: unknown fall_back_policy 7"), "{errs:?}");
    let errs =
        load(r#""lb_subset_config": {"subset_selectors": [[], ["a", "", "a"]]}"#).unwrap_err();
    assert_eq!(
        errs,
        vec![
            "cluster_manager.clusters[0].lb_subset_config.subset_selectors[0]: a subset selector needs at least one key",
            "cluster_manager.clusters[0].lb_subset_config.subset_selectors[1][1]: empty metadata key",
            r#"cluster_manager.clusters[0].lb_subset_config.subset_selectors[1][2]: duplicate key "a""#,
        ]
    );
    let w = warnings(r#""lb_subset_config": {"fall_back_policy": 2, "subset_selectors": [["a"]]}"#);
    assert!(
        w[0].contains("DEFAULT_SUBSET fallback with an empty default_subset"),
        "{w:?}"
    );
    let w = warnings(
        r#""lb_subset_config": {"default_subset": {"a": "b"}, "subset_selectors": [["a"]]}"#,
    );
    assert!(
        w[0].contains("default_subset is used only with fall_back_policy 2"),
        "{w:?}"
    );
    let w = warnings(r#""lb_subset_config": {"fall_back_policy": 1}"#);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn slow_start_values() {
    let ok = r#""lb_type": "LB_WEIGHTED_ROUNDROBIN", "slow_start": {"mode": "duration",
        "slow_start_duration": "30s", "aggression": 2.0, "min_weight_percent": 0.2}"#;
    let loaded = load(ok).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = loaded.config.cluster_manager.clusters[0]
        .slow_start
        .clone()
        .unwrap();
    assert_eq!(
        s.slow_start_duration.unwrap().0,
        std::time::Duration::from_secs(30)
    );
    let errs = load(
        r#""slow_start": {"mode": "linear", "slow_start_duration": "1s", "aggression": -1, "min_weight_percent": 10}"#,
    )
    .unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with(
        r#"cluster_manager.clusters[0].slow_start.mode: unknown slow start mode "linear""#
    ));
    assert!(errs[1].starts_with("cluster_manager.clusters[0].slow_start.aggression:"));
    assert!(errs[2].starts_with("cluster_manager.clusters[0].slow_start.min_weight_percent: min_weight_percent is a fraction"));
    let w = warnings(
        r#""lb_type": "LB_MAGLEV", "slow_start": {"mode": "duration", "slow_start_duration": "10s"}"#,
    );
    assert!(
        w[0].contains("slow_start applies to LB_WEIGHTED_ROUNDROBIN"),
        "{w:?}"
    );
    let w = warnings(r#""lb_type": "LB_LEAST_REQUEST", "slow_start": {"mode": "duration"}"#);
    assert!(w[0].contains("needs a slow_start_duration"), "{w:?}");
}

#[test]
fn lbconfig_values() {
    let loaded = load(
        r#""lb_type": "LB_PEAK_EWMA", "lbconfig": {"choice_count": 3, "active_request_bias": 0.5,
        "client_error_bias": 2, "server_error_bias": 0}"#,
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config.cluster_manager.clusters[0]
        .lbconfig
        .clone()
        .unwrap();
    assert_eq!((c.choice_count, c.client_error_bias), (Some(3), Some(2.0)));
    assert!(
        load(r#""lb_type": "LB_LEAST_REQUEST", "lb_config": {"choice_count": 5}"#).is_ok(),
        "alias"
    );
    let errs = load(r#""lb_type": "LB_LEAST_REQUEST", "lbconfig": {"choice_count": 0, "active_request_bias": -1}"#)
        .unwrap_err();
    assert_eq!(
        errs,
        vec![
            "cluster_manager.clusters[0].lbconfig.choice_count: choice_count must be at least 1",
            "cluster_manager.clusters[0].lbconfig.active_request_bias: active_request_bias must be 0 or more, not -1",
        ]
    );
    let w = warnings(r#""lbconfig": {"choice_count": 3}"#);
    assert!(
        w[0].contains("lbconfig is not used by LB_ROUNDROBIN"),
        "{w:?}"
    );
}

#[test]
fn original_dst_and_weights() {
    let loaded = load(
        r#""lb_type": "LB_ORIGINAL_DST", "original_dst_lb_config": {"use_header": true, "header_name": "x-dst", "replace_local": true}"#,
    )
    .unwrap();
    let o = loaded.config.cluster_manager.clusters[0]
        .original_dst_lb_config
        .clone()
        .unwrap();
    assert!(o.use_header && o.replace_local && o.header_name == "x-dst");
    let text = with_cluster(r#""lb_type": "LB_WEIGHTED_ROUNDROBIN""#).replace(
        r#"{"address": "127.0.0.1:8080"}"#,
        r#"{"address": "127.0.0.1:8080", "weight": 500}"#,
    );
    let w: Vec<String> = load_str(&text)
        .unwrap()
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        w,
        vec!["cluster_manager.clusters[0].hosts[0].weight: weight 500 is above MOSN's maximum 128: 128 is used"]
    );
}

//! The TcpProxy network filter into MOSN's `tcp_proxy`.

use super::any;
use super::error::{ConvertError, Ctx};
use super::proto;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tp;
use envoy_types::pb::google::protobuf::Any;
use mosn_config::FilterConfig;
use serde_json::{json, Map, Value};

/// Envoy's idle timeout of a proxied TCP connection when none is set.
const ENVOY_TCP_IDLE_TIMEOUT: &str = "1h";

pub(crate) fn convert(any: &Any, ctx: &mut Ctx, p: &str) -> Result<FilterConfig, ConvertError> {
    let t: tp::TcpProxy = any::decode(any, ctx, p)?;
    use tp::tcp_proxy::ClusterSpecifier as C;
    let cluster = match &t.cluster_specifier {
        Some(C::Cluster(c)) if !c.is_empty() => c.clone(),
        Some(C::WeightedClusters(w)) => match w.clusters.as_slice() {
            [one] if one.metadata_match.is_none() => one.name.clone(),
            _ => {
                return Err(ctx.refuse(
                    &format!("{p}.weighted_clusters"),
                    "tcp_proxy splits to one cluster only (no weights, no metadata_match)",
                ))
            }
        },
        _ => return Err(ctx.invalid(p, "cluster or weighted_clusters is required")),
    };
    for (field, set) in [
        ("metadata_match", t.metadata_match.is_some()),
        ("tunneling_config", t.tunneling_config.is_some()),
        ("on_demand", t.on_demand.is_some()),
        ("proxy_protocol_tlvs", !t.proxy_protocol_tlvs.is_empty()),
    ] {
        if set {
            return Err(ctx.refuse(&format!("{p}.{field}"), "not supported"));
        }
    }
    for (field, set) in [
        (
            "downstream_idle_timeout",
            t.downstream_idle_timeout.is_some(),
        ),
        ("upstream_idle_timeout", t.upstream_idle_timeout.is_some()),
        ("access_log", !t.access_log.is_empty()),
        ("max_connect_attempts", t.max_connect_attempts.is_some()),
        ("hash_policy", !t.hash_policy.is_empty()),
        (
            "max_downstream_connection_duration",
            t.max_downstream_connection_duration.is_some(),
        ),
        ("upstream_connect_mode", t.upstream_connect_mode != 0),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored");
        }
    }
    let mut config = Map::new();
    if !t.stat_prefix.is_empty() {
        config.insert("stat_prefix".into(), json!(t.stat_prefix));
    }
    config.insert("cluster".into(), json!(cluster));
    match &t.idle_timeout {
        None => {
            config.insert("idle_timeout".into(), json!(ENVOY_TCP_IDLE_TIMEOUT));
        }
        Some(d) => {
            let d = proto::duration(d, ctx, &format!("{p}.idle_timeout"))?;
            // 0 turns the timeout off in Envoy; absent does in the model.
            if !d.is_zero() {
                config.insert(
                    "idle_timeout".into(),
                    json!(mosn_config::duration::format_go_duration(d)),
                );
            }
        }
    }
    Ok(FilterConfig {
        kind: "tcp_proxy".into(),
        config: Value::Object(config),
        parsed: None,
    })
}

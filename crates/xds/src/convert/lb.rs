//! A cluster's load balancing: `lb_policy` with its per-policy config, the newer
//! `load_balancing_policy`, subsets, slow start and `common_lb_config`.

use super::any;
use super::error::{ConvertError, Ctx};
use super::proto;
use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3::RuntimeDouble;
use envoy_types::pb::envoy::extensions::load_balancing_policies as policies;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use mosn_config::{
    ClusterConfig, LbConfig, LbSubsetConfig, OriginalDstLbConfig, SlowStartConfig,
    SubsetFallbackPolicy,
};

/// Envoy's header for ORIGINAL_DST's `use_http_header` (MOSN's default is `host`).
const ENVOY_ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";

/// Sets `lb_type`, `lbconfig`, `slow_start` and `original_dst_lb_config`.
pub(crate) fn balancer(
    c: &cl::Cluster,
    original_dst: bool,
    ctx: &mut Ctx,
    out: &mut ClusterConfig,
) -> Result<(), ConvertError> {
    if let Some(policy) = &c.load_balancing_policy {
        return typed_policy(policy, original_dst, ctx, out);
    }
    use cl::cluster::LbPolicy as P;
    let policy = P::try_from(c.lb_policy)
        .map_err(|_| ctx.invalid("lb_policy", format!("unknown value {}", c.lb_policy)))?;
    if original_dst {
        if policy != P::ClusterProvided {
            return Err(ctx.invalid(
                "lb_policy",
                format!(
                    "{} is not valid for an ORIGINAL_DST cluster (CLUSTER_PROVIDED)",
                    policy.as_str_name()
                ),
            ));
        }
        out.lb_type = "LB_ORIGINAL_DST".into();
        return original_dst_config(c, ctx, out);
    }
    use cl::cluster::LbConfig as C;
    out.lb_type = match policy {
        // Envoy's round robin honours weights.
        P::RoundRobin => "LB_WEIGHTED_ROUNDROBIN",
        P::LeastRequest => "LB_LEAST_REQUEST",
        P::Random => "LB_RANDOM",
        P::RingHash => "LB_RING_HASH",
        P::Maglev => "LB_MAGLEV",
        P::ClusterProvided => {
            return Err(ctx.invalid("lb_policy", "CLUSTER_PROVIDED is for ORIGINAL_DST clusters"))
        }
        P::LoadBalancingPolicyConfig => {
            return Err(ctx.invalid(
                "lb_policy",
                "LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy",
            ))
        }
    }
    .into();
    match &c.lb_config {
        None => {}
        Some(C::RoundRobinLbConfig(rr)) if policy == P::RoundRobin => {
            if let Some(s) = &rr.slow_start_config {
                out.slow_start = Some(slow_start(
                    &s.slow_start_window,
                    &s.aggression,
                    &s.min_weight_percent,
                    ctx,
                    "round_robin_lb_config.slow_start_config",
                )?);
            }
        }
        Some(C::LeastRequestLbConfig(lr)) if policy == P::LeastRequest => {
            out.lbconfig = Some(LbConfig {
                choice_count: proto::u32v(&lr.choice_count),
                active_request_bias: lr.active_request_bias.as_ref().map(|b| b.default_value),
                ..Default::default()
            });
            if let Some(s) = &lr.slow_start_config {
                out.slow_start = Some(slow_start(
                    &s.slow_start_window,
                    &s.aggression,
                    &s.min_weight_percent,
                    ctx,
                    "least_request_lb_config.slow_start_config",
                )?);
            }
        }
        Some(C::RingHashLbConfig(rh)) if policy == P::RingHash => ring_hash(rh, ctx),
        Some(C::MaglevLbConfig(m)) if policy == P::Maglev => maglev(m, ctx),
        Some(_) => ctx.warn(
            "lb_config",
            format!("ignored: it does not belong to {}", policy.as_str_name()),
        ),
    }
    Ok(())
}

fn ring_hash(rh: &cl::cluster::RingHashLbConfig, ctx: &mut Ctx) {
    if rh.minimum_ring_size.is_some() || rh.maximum_ring_size.is_some() || rh.hash_function != 0 {
        ctx.warn(
            "ring_hash_lb_config",
            "ignored: the ring's size and hash function are fixed",
        );
    }
}

fn maglev(m: &cl::cluster::MaglevLbConfig, ctx: &mut Ctx) {
    if m.table_size.is_some() {
        ctx.warn(
            "maglev_lb_config.table_size",
            "ignored: the table size is fixed",
        );
    }
}

/// `load_balancing_policy`: the first policy mosn-rs knows, as Envoy takes the first
/// it supports.
fn typed_policy(
    policy: &cl::LoadBalancingPolicy,
    original_dst: bool,
    ctx: &mut Ctx,
    out: &mut ClusterConfig,
) -> Result<(), ConvertError> {
    for (i, pol) in policy.policies.iter().enumerate() {
        let p = format!("load_balancing_policy.policies[{i}].typed_extension_config");
        let Some(cfg) = pol
            .typed_extension_config
            .as_ref()
            .and_then(|t| t.typed_config.as_ref())
        else {
            return Err(ctx.invalid(&p, "a typed_config is required"));
        };
        let tp = format!("{p}.typed_config");
        if original_dst {
            if any::is::<policies::cluster_provided::v3::ClusterProvided>(cfg) {
                out.lb_type = "LB_ORIGINAL_DST".into();
                return Ok(());
            }
            continue;
        }
        let (lb, slow) = if any::is::<policies::round_robin::v3::RoundRobin>(cfg) {
            let rr: policies::round_robin::v3::RoundRobin = any::decode(cfg, ctx, &tp)?;
            ("LB_WEIGHTED_ROUNDROBIN", rr.slow_start_config)
        } else if any::is::<policies::least_request::v3::LeastRequest>(cfg) {
            let lr: policies::least_request::v3::LeastRequest = any::decode(cfg, ctx, &tp)?;
            out.lbconfig = Some(LbConfig {
                choice_count: proto::u32v(&lr.choice_count),
                active_request_bias: lr.active_request_bias.as_ref().map(|b| b.default_value),
                ..Default::default()
            });
            ("LB_LEAST_REQUEST", lr.slow_start_config)
        } else if any::is::<policies::random::v3::Random>(cfg) {
            ("LB_RANDOM", None)
        } else if any::is::<policies::ring_hash::v3::RingHash>(cfg) {
            ("LB_RING_HASH", None)
        } else if any::is::<policies::maglev::v3::Maglev>(cfg) {
            ("LB_MAGLEV", None)
        } else {
            ctx.warn(
                &tp,
                format!(
                    "{} is not supported: the next policy is tried",
                    any::type_name(&cfg.type_url)
                ),
            );
            continue;
        };
        out.lb_type = lb.into();
        if let Some(s) = slow {
            out.slow_start = Some(slow_start(
                &s.slow_start_window,
                &s.aggression,
                &s.min_weight_percent,
                ctx,
                &format!("{tp}.slow_start_config"),
            )?);
        }
        return Ok(());
    }
    Err(ctx.refuse(
        "load_balancing_policy",
        if original_dst {
            "an ORIGINAL_DST cluster needs the cluster_provided policy"
        } else {
            "no policy mosn-rs supports (round_robin, least_request, random, ring_hash, maglev)"
        },
    ))
}

/// Envoy's slow start (both of its config messages have these three fields).
fn slow_start(
    window: &Option<PbDuration>,
    aggression: &Option<RuntimeDouble>,
    min_weight: &Option<Percent>,
    ctx: &Ctx,
    p: &str,
) -> Result<SlowStartConfig, ConvertError> {
    Ok(SlowStartConfig {
        mode: "duration".into(),
        slow_start_duration: proto::opt_duration(window, ctx, &format!("{p}.slow_start_window"))?,
        aggression: aggression.as_ref().map(|a| a.default_value),
        // Envoy's is a percentage, MOSN's a fraction.
        min_weight_percent: min_weight.as_ref().map(|m| proto::percent(m) / 100.0),
    })
}

fn original_dst_config(
    c: &cl::Cluster,
    ctx: &Ctx,
    out: &mut ClusterConfig,
) -> Result<(), ConvertError> {
    let Some(cl::cluster::LbConfig::OriginalDstLbConfig(o)) = &c.lb_config else {
        return Ok(());
    };
    if o.upstream_port_override.is_some() {
        return Err(ctx.refuse(
            "original_dst_lb_config.upstream_port_override",
            "not supported",
        ));
    }
    if o.metadata_key.is_some() {
        return Err(ctx.refuse("original_dst_lb_config.metadata_key", "not supported"));
    }
    if o.use_http_header {
        out.original_dst_lb_config = Some(OriginalDstLbConfig {
            use_header: true,
            header_name: if o.http_header_name.is_empty() {
                ENVOY_ORIGINAL_DST_HEADER.into()
            } else {
                o.http_header_name.clone()
            },
            replace_local: false,
        });
    }
    Ok(())
}

pub(crate) fn subsets(
    c: &cl::Cluster,
    ctx: &mut Ctx,
    out: &mut ClusterConfig,
) -> Result<(), ConvertError> {
    let Some(s) = &c.lb_subset_config else {
        return Ok(());
    };
    let p = "lb_subset_config";
    use cl::cluster::lb_subset_config::LbSubsetFallbackPolicy as F;
    let fall_back_policy = match F::try_from(s.fallback_policy) {
        Ok(F::NoFallback) => SubsetFallbackPolicy::NoFallback,
        Ok(F::AnyEndpoint) => SubsetFallbackPolicy::AnyEndpoint,
        Ok(F::DefaultSubset) => SubsetFallbackPolicy::DefaultSubset,
        Err(_) => {
            return Err(ctx.invalid(
                &format!("{p}.fallback_policy"),
                format!("unknown value {}", s.fallback_policy),
            ))
        }
    };
    let default_subset = s
        .default_subset
        .as_ref()
        .map(proto::struct_json)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    let mut selectors = Vec::with_capacity(s.subset_selectors.len());
    for (i, sel) in s.subset_selectors.iter().enumerate() {
        if sel.fallback_policy != 0
            || !sel.fallback_keys_subset.is_empty()
            || sel.single_host_per_subset
        {
            return Err(ctx.refuse(
                &format!("{p}.subset_selectors[{i}]"),
                "per-selector fallback policies and single_host_per_subset are not supported",
            ));
        }
        selectors.push(sel.keys.clone());
    }
    for (field, set) in [
        ("locality_weight_aware", s.locality_weight_aware),
        ("scale_locality_weight", s.scale_locality_weight),
        ("panic_mode_any", s.panic_mode_any),
        ("list_as_any", s.list_as_any),
        ("metadata_fallback_policy", s.metadata_fallback_policy != 0),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored");
        }
    }
    out.lb_subset_config = Some(LbSubsetConfig {
        fall_back_policy,
        default_subset,
        subset_selectors: selectors,
    });
    Ok(())
}

pub(crate) fn common(c: &cl::Cluster, ctx: &mut Ctx) {
    let Some(cm) = &c.common_lb_config else {
        return;
    };
    let p = "common_lb_config";
    if cm
        .healthy_panic_threshold
        .as_ref()
        .is_some_and(|t| proto::percent(t) != 50.0)
    {
        ctx.warn(
            &format!("{p}.healthy_panic_threshold"),
            "ignored: panic mode starts below 50% healthy hosts",
        );
    }
    for (field, set) in [
        ("locality_config", cm.locality_config_specifier.is_some()),
        (
            "consistent_hashing_lb_config",
            cm.consistent_hashing_lb_config.is_some(),
        ),
        (
            "ignore_new_hosts_until_first_hc",
            cm.ignore_new_hosts_until_first_hc,
        ),
        (
            "close_connections_on_host_set_change",
            cm.close_connections_on_host_set_change,
        ),
        ("override_host_status", cm.override_host_status.is_some()),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored");
        }
    }
}

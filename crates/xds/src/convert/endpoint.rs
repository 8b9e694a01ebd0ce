//! EDS: a ClusterLoadAssignment (or a cluster's inline `load_assignment`) into the
//! model's `hosts`.
//!
//! - Health: hosts EDS reports UNHEALTHY, DRAINING or TIMEOUT are left out (Envoy
//!   routes nothing to them); DEGRADED hosts are kept as healthy (warned).
//! - Priorities: the model has none. The lowest priority that has a usable host is
//!   taken and higher ones are dropped (warned): traffic fails over to priority 1
//!   only when EDS leaves priority 0 without a usable host, not on Envoy's
//!   overprovisioned health percentage.
//! - Weights: kept; when one exceeds the model's 1..=128 all are scaled down
//!   proportionally (warned) rather than clipped.
//! - Metadata: `filter_metadata["envoy.lb"]` becomes MOSN's
//!   `{"filter_metadata": {"mosn.lb": ...}}`, what subsets read.

use super::error::{ConvertError, Converted, Ctx};
use super::proto;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use mosn_config::validate::MAX_HOST_WEIGHT;
use mosn_config::{HostConfig, LB_METADATA_KEY};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn load_assignment(
    cla: &ep::ClusterLoadAssignment,
) -> Result<Converted<Vec<HostConfig>>, ConvertError> {
    let mut ctx = Ctx::new("cluster load assignment", &cla.cluster_name);
    let hosts = hosts(cla, false, &mut ctx, "")?;
    Ok(ctx.finish(hosts))
}

/// The hosts of `cla`; `names`: addresses may be DNS names (STRICT_DNS clusters).
pub(crate) fn hosts(
    cla: &ep::ClusterLoadAssignment,
    names: bool,
    ctx: &mut Ctx,
    base: &str,
) -> Result<Vec<HostConfig>, ConvertError> {
    let at = |field: &str| super::error::join(base, field);
    if !cla.named_endpoints.is_empty() {
        return Err(ctx.refuse(&at("named_endpoints"), "not supported"));
    }
    if let Some(policy) = &cla.policy {
        let dropping = policy.drop_overloads.iter().any(|d| {
            d.drop_percentage
                .as_ref()
                .is_some_and(|f| proto::fraction_percent(f) > 0.0)
        });
        if dropping {
            return Err(ctx.refuse(
                &at("policy.drop_overloads"),
                "dropping requests is not supported",
            ));
        }
        if policy.overprovisioning_factor.is_some() {
            ctx.warn(
                &at("policy.overprovisioning_factor"),
                "ignored: hosts have no priorities",
            );
        }
        if policy.endpoint_stale_after.is_some() {
            ctx.warn(
                &at("policy.endpoint_stale_after"),
                "ignored: hosts stay until the next assignment",
            );
        }
    }
    // Priority -> usable hosts, with the weights still Envoy's.
    let mut levels: BTreeMap<u32, Vec<(HostConfig, u32)>> = BTreeMap::new();
    let mut degraded = 0usize;
    for (li, locality) in cla.endpoints.iter().enumerate() {
        let lp = at(&format!("endpoints[{li}]"));
        // Locality weights count only with locality-weighted balancing, which Envoy
        // turns on per cluster (common_lb_config, warned there): ignored, as Envoy does.
        #[allow(deprecated)]
        let extra = match &locality.lb_config {
            None => &[][..],
            Some(ep::locality_lb_endpoints::LbConfig::LoadBalancerEndpoints(list)) => {
                &list.lb_endpoints[..]
            }
            Some(ep::locality_lb_endpoints::LbConfig::LedsClusterLocalityConfig(_)) => {
                return Err(ctx.refuse(
                    &format!("{lp}.leds_cluster_locality_config"),
                    "LEDS is not supported",
                ))
            }
        };
        let level = levels.entry(locality.priority).or_default();
        for (ei, e) in locality.lb_endpoints.iter().chain(extra).enumerate() {
            let epath = format!("{lp}.lb_endpoints[{ei}]");
            match HealthStatus::try_from(e.health_status) {
                Ok(HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout) => {
                    continue
                }
                Ok(HealthStatus::Degraded) => degraded += 1,
                _ => {}
            }
            let entry = host(e, names, ctx, &epath)?;
            level.push(entry);
        }
    }
    if degraded > 0 {
        ctx.warn(
            &at("endpoints"),
            format!("{degraded} DEGRADED host(s) are used as healthy"),
        );
    }
    let mut usable = levels.into_iter().filter(|(_, hosts)| !hosts.is_empty());
    let Some((priority, chosen)) = usable.next() else {
        return Ok(Vec::new());
    };
    let dropped: Vec<String> = usable
        .map(|(p, hosts)| format!("priority {p} ({} host(s))", hosts.len()))
        .collect();
    if !dropped.is_empty() || priority > 0 {
        ctx.warn(
            &at("endpoints"),
            format!("hosts have no priorities: priority {priority} is used, {dropped:?} dropped (they are used when EDS leaves no usable host in the priorities before them)"),
        );
    }
    Ok(scale_weights(chosen, ctx, &at("endpoints")))
}

fn host(
    e: &ep::LbEndpoint,
    names: bool,
    ctx: &mut Ctx,
    p: &str,
) -> Result<(HostConfig, u32), ConvertError> {
    let endpoint = match &e.host_identifier {
        Some(ep::lb_endpoint::HostIdentifier::Endpoint(en)) => en,
        Some(ep::lb_endpoint::HostIdentifier::EndpointName(n)) => {
            return Err(ctx.refuse(
                &format!("{p}.endpoint_name"),
                format!("named endpoint {n:?} is not supported"),
            ))
        }
        None => return Err(ctx.invalid(p, "an endpoint is required")),
    };
    let address = proto::socket_address(
        endpoint.address.as_ref(),
        names,
        ctx,
        &format!("{p}.endpoint.address"),
    )?;
    if !endpoint.additional_addresses.is_empty() {
        ctx.warn(
            &format!("{p}.endpoint.additional_addresses"),
            "ignored: only the first address is used",
        );
    }
    if let Some(hc) = &endpoint.health_check_config {
        if hc.port_value != 0
            || hc.address.is_some()
            || !hc.hostname.is_empty()
            || hc.disable_active_health_check
        {
            ctx.warn(
                &format!("{p}.endpoint.health_check_config"),
                "ignored: active health checks use the host's own address",
            );
        }
    }
    let metadata = match proto::lb_metadata(e.metadata.as_ref()) {
        Some(lb) => json!({"filter_metadata": {LB_METADATA_KEY: lb}}),
        None => Value::Null,
    };
    // Envoy's default weight is 1; 0 is refused by Envoy's validation.
    let weight = match proto::u32v(&e.load_balancing_weight) {
        Some(0) => {
            return Err(ctx.invalid(&format!("{p}.load_balancing_weight"), "must be at least 1"))
        }
        Some(w) => w,
        None => 1,
    };
    Ok((
        HostConfig {
            address,
            hostname: endpoint.hostname.clone(),
            weight: None,
            metadata,
        },
        weight,
    ))
}

/// Weights within the model's range, in proportion to Envoy's.
fn scale_weights(hosts: Vec<(HostConfig, u32)>, ctx: &mut Ctx, p: &str) -> Vec<HostConfig> {
    let max = hosts.iter().map(|(_, w)| *w).max().unwrap_or(1);
    if max > MAX_HOST_WEIGHT {
        ctx.warn(
            p,
            format!("weights up to {max} are scaled to the model's 1..={MAX_HOST_WEIGHT}, in proportion"),
        );
    }
    hosts
        .into_iter()
        .map(|(mut h, w)| {
            let scaled = if max > MAX_HOST_WEIGHT {
                let s = (u64::from(w) * u64::from(MAX_HOST_WEIGHT)).div_ceil(u64::from(max));
                // At most MAX_HOST_WEIGHT by construction.
                u32::try_from(s).unwrap_or(MAX_HOST_WEIGHT).max(1)
            } else {
                w
            };
            h.weight = Some(scaled);
            h
        })
        .collect()
}

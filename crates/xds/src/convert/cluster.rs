//! CDS: an Envoy Cluster into the model's `clusters[]` entry. Hosts of an EDS
//! cluster arrive separately (`load_assignment`); STATIC and STRICT_DNS clusters
//! carry theirs inline.

use super::endpoint;
use super::error::{ConvertError, Converted, Ctx};
use super::health;
use super::lb;
use super::proto;
use super::tls;
use super::upstream_http::{self, UpstreamProtocol};
use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use mosn_config::{CircuitBreakerThresholds, ClusterConfig, GoDuration, OutlierDetectionConfig};
use std::time::Duration;

/// Envoy's connect timeout when a cluster sets none (the model's default is 10 s).
const ENVOY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A converted cluster.
#[derive(Debug, Clone)]
pub struct ClusterOut {
    pub cluster: ClusterConfig,
    /// Some for type EDS: the hosts come from EDS under this name
    /// (`eds_cluster_config.service_name`, else the cluster's name).
    pub eds_service: Option<String>,
    /// SDS secrets its TLS context needs (see `apply_secrets`).
    pub secrets: Vec<String>,
    /// The HTTP protocol Envoy would speak to its hosts (also set as the cluster's
    /// `upstream_protocol`).
    pub upstream_protocol: UpstreamProtocol,
}

pub fn cluster(c: &cl::Cluster) -> Result<Converted<ClusterOut>, ConvertError> {
    let mut ctx = Ctx::new("cluster", &c.name);
    let out = convert(c, &mut ctx)?;
    super::check::cluster(&out.cluster, &mut ctx)?;
    Ok(ctx.finish(out))
}

fn convert(c: &cl::Cluster, ctx: &mut Ctx) -> Result<ClusterOut, ConvertError> {
    use cl::cluster::{ClusterDiscoveryType as D, DiscoveryType as T};
    if c.name.is_empty() {
        return Err(ctx.invalid("name", "a cluster needs a name"));
    }
    let kind = match &c.cluster_discovery_type {
        None => T::Static,
        Some(D::Type(t)) => {
            T::try_from(*t).map_err(|_| ctx.invalid("type", format!("unknown value {t}")))?
        }
        Some(D::ClusterType(custom)) => {
            return Err(ctx.refuse(
                "cluster_type",
                format!("custom cluster type {:?} is not supported", custom.name),
            ))
        }
    };
    let mut out = ClusterConfig {
        name: c.name.clone(),
        connect_timeout: Some(match &c.connect_timeout {
            Some(d) => proto::go_duration(d, ctx, "connect_timeout")?,
            None => GoDuration(ENVOY_CONNECT_TIMEOUT),
        }),
        ..Default::default()
    };
    let mut eds_service = None;
    let dns = matches!(kind, T::StrictDns | T::LogicalDns);
    match kind {
        T::Static => out.kind = "STATIC".into(),
        T::StrictDns => out.kind = "STRICT_DNS".into(),
        T::LogicalDns => {
            out.kind = "STRICT_DNS".into();
            ctx.warn(
                "type",
                "LOGICAL_DNS runs as STRICT_DNS: every address of the answer is a host, not only the first",
            );
        }
        T::Eds => {
            out.kind = "EDS".into();
            let service = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.name.clone());
            eds_service = Some(service);
        }
        T::OriginalDst => out.kind = "ORIGINAL_DST".into(),
    }
    if dns {
        dns_settings(c, ctx, &mut out)?;
    }
    match (&c.load_assignment, kind) {
        (Some(cla), T::Static | T::StrictDns | T::LogicalDns) => {
            out.hosts = endpoint::hosts(cla, dns, ctx, "load_assignment")?;
        }
        (Some(_), T::Eds | T::OriginalDst) => ctx.warn(
            "load_assignment",
            "ignored for this cluster type (as in Envoy)",
        ),
        (None, _) => {}
    }
    lb::balancer(c, kind == T::OriginalDst, ctx, &mut out)?;
    lb::subsets(c, ctx, &mut out)?;
    lb::common(c, ctx);
    if let Some(cb) = &c.circuit_breakers {
        out.circuit_breakers = circuit_breakers(cb, ctx)?;
    }
    if let Some(od) = &c.outlier_detection {
        out.outlier_detection = Some(outlier(od, ctx)?);
    }
    out.health_check = health::health_checks(&c.health_checks, &c.name, ctx, "health_checks")?;
    let mut secrets = Vec::new();
    if !c.transport_socket_matches.is_empty() || c.transport_socket_matcher.is_some() {
        return Err(ctx.refuse(
            "transport_socket_matches",
            "choosing TLS per endpoint (Istio's auto mTLS) is not supported: one transport_socket per cluster",
        ));
    }
    if let Some(ts) = &c.transport_socket {
        if let Some(t) = tls::upstream(ts, ctx, "transport_socket")? {
            out.tls_context = Some(t.tls);
            secrets = t.secrets;
        }
    }
    let upstream_protocol = upstream_http::protocol(c, ctx, &mut out)?;
    // The cluster says how its hosts are spoken to, over the listener's default.
    out.upstream_protocol = match upstream_protocol {
        UpstreamProtocol::Http1 => "Http1".into(),
        UpstreamProtocol::Http2 => "Http2".into(),
        UpstreamProtocol::Downstream => String::new(),
    };
    ignored_fields(c, ctx)?;
    Ok(ClusterOut {
        cluster: out,
        eds_service,
        secrets,
        upstream_protocol,
    })
}

fn dns_settings(
    c: &cl::Cluster,
    ctx: &mut Ctx,
    out: &mut ClusterConfig,
) -> Result<(), ConvertError> {
    use cl::cluster::DnsLookupFamily as F;
    #[allow(deprecated)]
    {
        out.dns_refresh_rate = proto::opt_duration(&c.dns_refresh_rate, ctx, "dns_refresh_rate")?;
        out.respect_dns_ttl = c.respect_dns_ttl;
        if !c.dns_resolvers.is_empty()
            || c.dns_resolution_config.is_some()
            || c.typed_dns_resolver_config.is_some()
        {
            ctx.warn("dns_resolvers", "ignored: the system resolver is used");
        }
        if c.dns_failure_refresh_rate.is_some() || c.dns_jitter.is_some() {
            ctx.warn(
                "dns_failure_refresh_rate",
                "ignored: dns_refresh_rate applies after failures too",
            );
        }
    }
    out.dns_lookup_family = match F::try_from(c.dns_lookup_family) {
        Ok(f) => f.as_str_name().to_owned(),
        Err(_) => {
            return Err(ctx.invalid(
                "dns_lookup_family",
                format!("unknown value {}", c.dns_lookup_family),
            ))
        }
    };
    Ok(())
}

fn circuit_breakers(
    cb: &cl::CircuitBreakers,
    ctx: &mut Ctx,
) -> Result<Vec<CircuitBreakerThresholds>, ConvertError> {
    let mut out = Vec::new();
    for (i, t) in cb.thresholds.iter().enumerate() {
        let p = format!("circuit_breakers.thresholds[{i}]");
        if t.priority != RoutingPriority::Default as i32 {
            ctx.warn(
                &p,
                "ignored: routes have no priorities, the DEFAULT thresholds apply",
            );
            continue;
        }
        if !out.is_empty() {
            ctx.warn(&p, "ignored: a second DEFAULT entry");
            continue;
        }
        if t.retry_budget.is_some() {
            ctx.warn(&format!("{p}.retry_budget"), "ignored: max_retries applies");
        }
        if t.max_connection_pools.is_some() {
            ctx.warn(&format!("{p}.max_connection_pools"), "ignored");
        }
        out.push(CircuitBreakerThresholds {
            max_connections: proto::u32v(&t.max_connections),
            max_pending_requests: proto::u32v(&t.max_pending_requests),
            max_requests: proto::u32v(&t.max_requests),
            max_retries: proto::u32v(&t.max_retries),
        });
    }
    if !cb.per_host_thresholds.is_empty() {
        ctx.warn("circuit_breakers.per_host_thresholds", "ignored");
    }
    Ok(out)
}

fn outlier(
    od: &cl::OutlierDetection,
    ctx: &mut Ctx,
) -> Result<OutlierDetectionConfig, ConvertError> {
    let p = "outlier_detection";
    if !od.monitors.is_empty() {
        return Err(ctx.refuse(&format!("{p}.monitors"), "not supported"));
    }
    if proto::boolv(&od.detect_degraded_hosts) == Some(true) {
        ctx.warn(&format!("{p}.detect_degraded_hosts"), "ignored");
    }
    if od.split_external_local_origin_errors {
        let local = od.consecutive_local_origin_failure.is_some()
            || od.enforcing_consecutive_local_origin_failure.is_some()
            || od.enforcing_local_origin_success_rate.is_some()
            || od.enforcing_failure_percentage_local_origin.is_some();
        if local {
            ctx.warn(
                p,
                "the local-origin thresholds are ignored: local-origin failures count as 503s",
            );
        }
    }
    let d = |v: &Option<envoy_types::pb::google::protobuf::Duration>, f: &str| {
        proto::opt_duration(v, ctx, &format!("{p}.{f}"))
    };
    let u = proto::u32v;
    Ok(OutlierDetectionConfig {
        consecutive_5xx: u(&od.consecutive_5xx),
        consecutive_gateway_failure: u(&od.consecutive_gateway_failure),
        interval: d(&od.interval, "interval")?,
        base_ejection_time: d(&od.base_ejection_time, "base_ejection_time")?,
        max_ejection_time: d(&od.max_ejection_time, "max_ejection_time")?,
        max_ejection_time_jitter: d(&od.max_ejection_time_jitter, "max_ejection_time_jitter")?,
        max_ejection_percent: u(&od.max_ejection_percent),
        always_eject_one_host: proto::boolv(&od.always_eject_one_host),
        enforcing_consecutive_5xx: u(&od.enforcing_consecutive_5xx),
        enforcing_consecutive_gateway_failure: u(&od.enforcing_consecutive_gateway_failure),
        success_rate_minimum_hosts: u(&od.success_rate_minimum_hosts),
        success_rate_request_volume: u(&od.success_rate_request_volume),
        success_rate_stdev_factor: u(&od.success_rate_stdev_factor),
        enforcing_success_rate: u(&od.enforcing_success_rate),
        failure_percentage_threshold: u(&od.failure_percentage_threshold),
        failure_percentage_minimum_hosts: u(&od.failure_percentage_minimum_hosts),
        failure_percentage_request_volume: u(&od.failure_percentage_request_volume),
        enforcing_failure_percentage: u(&od.enforcing_failure_percentage),
        successful_active_health_check_uneject_host: proto::boolv(
            &od.successful_active_health_check_uneject_host,
        ),
        split_external_local_origin_errors: od.split_external_local_origin_errors,
    })
}

/// Fields with no counterpart: refused when they change what is sent where, warned
/// when they only tune.
fn ignored_fields(c: &cl::Cluster, ctx: &mut Ctx) -> Result<(), ConvertError> {
    if c.per_connection_buffer_limit_bytes.is_some() {
        ctx.warn("per_connection_buffer_limit_bytes", "ignored");
    }
    if c.upstream_bind_config.is_some() {
        ctx.warn(
            "upstream_bind_config",
            "ignored: upstream connections use the system's source address",
        );
    }
    if c.upstream_connection_options.is_some() {
        ctx.warn("upstream_connection_options", "ignored (TCP keepalive)");
    }
    if c.close_connections_on_host_health_failure {
        ctx.warn("close_connections_on_host_health_failure", "ignored");
    }
    if c.connection_pool_per_downstream_connection {
        ctx.warn(
            "connection_pool_per_downstream_connection",
            "ignored: pools are shared",
        );
    }
    if c.lrs_server.is_some() {
        ctx.warn("lrs_server", "ignored: no load reports are sent");
    }
    for (i, f) in c.filters.iter().enumerate() {
        let cfg = f.typed_config.as_ref();
        if super::any::istio_skipped(&f.name, cfg) {
            ctx.warn(&format!("filters[{i}]"), format!("{}: skipped", f.name));
        } else {
            return Err(ctx.refuse(
                &format!("filters[{i}]"),
                format!("upstream network filter {:?} is not supported", f.name),
            ));
        }
    }
    if let Some(u) = &c.upstream_config {
        return Err(ctx.refuse("upstream_config", format!("{:?} is not supported", u.name)));
    }
    Ok(())
}

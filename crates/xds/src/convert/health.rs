//! A cluster's active health checks (Envoy's `health_checks`) into MOSN's
//! `health_check`. MOSN runs a checker only for a health check with a
//! `service_name`, so the cluster's name is given.

use super::error::{ConvertError, Ctx};
use super::proto;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::r#type::v3::CodecClientType;
use mosn_config::{HealthCheckConfig, HealthCheckSessionConfig, StatusRange};

pub(crate) fn health_checks(
    list: &[core::HealthCheck],
    cluster: &str,
    ctx: &mut Ctx,
    p: &str,
) -> Result<Option<HealthCheckConfig>, ConvertError> {
    let Some(hc) = list.first() else {
        return Ok(None);
    };
    if list.len() > 1 {
        return Err(ctx.refuse(p, "more than one health check per cluster is not supported"));
    }
    let p = format!("{p}[0]");
    let required = |d: &Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        d.as_ref()
            .ok_or_else(|| ctx.invalid(&format!("{p}.{field}"), "required"))
            .and_then(|d| proto::go_duration(d, ctx, &format!("{p}.{field}")))
    };
    let mut out = HealthCheckConfig {
        service_name: cluster.to_owned(),
        timeout: Some(required(&hc.timeout, "timeout")?),
        interval: Some(required(&hc.interval, "interval")?),
        interval_jitter: proto::opt_duration(
            &hc.interval_jitter,
            ctx,
            &format!("{p}.interval_jitter"),
        )?,
        // Envoy waits a random time up to initial_jitter; MOSN waits a fixed delay.
        initial_delay_seconds: proto::opt_duration(
            &hc.initial_jitter,
            ctx,
            &format!("{p}.initial_jitter"),
        )?,
        healthy_threshold: Some(
            proto::u32v(&hc.healthy_threshold)
                .ok_or_else(|| ctx.invalid(&format!("{p}.healthy_threshold"), "required"))?,
        ),
        unhealthy_threshold: Some(
            proto::u32v(&hc.unhealthy_threshold)
                .ok_or_else(|| ctx.invalid(&format!("{p}.unhealthy_threshold"), "required"))?,
        ),
        ..Default::default()
    };
    if hc.interval_jitter_percent != 0 {
        ctx.warn(&format!("{p}.interval_jitter_percent"), "ignored");
    }
    for (field, set) in [
        ("unhealthy_interval", hc.unhealthy_interval.is_some()),
        (
            "unhealthy_edge_interval",
            hc.unhealthy_edge_interval.is_some(),
        ),
        ("healthy_edge_interval", hc.healthy_edge_interval.is_some()),
        ("tls_options", hc.tls_options.is_some()),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored");
        }
    }
    #[allow(deprecated)]
    if !hc.event_log_path.is_empty() || !hc.event_logger.is_empty() || hc.event_service.is_some() {
        ctx.warn(
            &format!("{p}.event_logger"),
            "ignored: transitions are logged at INFO",
        );
    }
    if hc.transport_socket_match_criteria.is_some() {
        return Err(ctx.refuse(
            &format!("{p}.transport_socket_match_criteria"),
            "not supported",
        ));
    }
    let alt_port = proto::u32v(&hc.alt_port);
    use core::health_check::HealthChecker as H;
    match &hc.health_checker {
        Some(H::HttpHealthCheck(h)) => {
            out.protocol = "http".into();
            out.check_config = Some(http(
                h,
                alt_port,
                cluster,
                ctx,
                &format!("{p}.http_health_check"),
            )?);
        }
        Some(H::TcpHealthCheck(t)) => {
            if t.send.is_some() || !t.receive.is_empty() || t.proxy_protocol_config.is_some() {
                return Err(ctx.refuse(
                    &format!("{p}.tcp_health_check"),
                    "TCP checks with payloads are not supported (a connect check is)",
                ));
            }
            no_alt_port(alt_port, ctx, &p)?;
            out.protocol = "tcp".into();
        }
        Some(H::GrpcHealthCheck(g)) => {
            if !g.initial_metadata.is_empty() {
                return Err(ctx.refuse(
                    &format!("{p}.grpc_health_check.initial_metadata"),
                    "not supported",
                ));
            }
            no_alt_port(alt_port, ctx, &p)?;
            out.protocol = "grpc".into();
            out.check_config = Some(HealthCheckSessionConfig {
                service_name: g.service_name.clone(),
                // Envoy's default authority is the cluster's name.
                authority: if g.authority.is_empty() {
                    cluster.to_owned()
                } else {
                    g.authority.clone()
                },
                ..Default::default()
            });
        }
        Some(H::CustomHealthCheck(c)) => {
            return Err(ctx.refuse(
                &format!("{p}.custom_health_check"),
                format!("custom health checker {:?} is not supported", c.name),
            ))
        }
        None => return Err(ctx.invalid(&p, "a health checker (http, tcp, grpc) is required")),
    }
    Ok(Some(out))
}

fn no_alt_port(alt_port: Option<u32>, ctx: &Ctx, p: &str) -> Result<(), ConvertError> {
    match alt_port {
        Some(port) if port != 0 => Err(ctx.refuse(
            &format!("{p}.alt_port"),
            "another port is supported for HTTP checks only",
        )),
        _ => Ok(()),
    }
}

fn http(
    h: &core::health_check::HttpHealthCheck,
    alt_port: Option<u32>,
    cluster: &str,
    ctx: &mut Ctx,
    p: &str,
) -> Result<HealthCheckSessionConfig, ConvertError> {
    if h.send.is_some() || !h.receive.is_empty() {
        return Err(ctx.refuse(p, "HTTP checks with payloads are not supported"));
    }
    if !h.request_headers_to_add.is_empty() || !h.request_headers_to_remove.is_empty() {
        return Err(ctx.refuse(
            p,
            "header mutations on health check requests are not supported",
        ));
    }
    if h.codec_client_type != CodecClientType::Http1 as i32 {
        return Err(ctx.refuse(
            &format!("{p}.codec_client_type"),
            "HTTP health checks speak HTTP/1.1 only",
        ));
    }
    if !h.retriable_statuses.is_empty() {
        ctx.warn(
            &format!("{p}.retriable_statuses"),
            "ignored: they count as failures",
        );
    }
    if h.service_name_matcher.is_some() {
        ctx.warn(&format!("{p}.service_name_matcher"), "ignored");
    }
    use core::RequestMethod as M;
    let method = match M::try_from(h.method) {
        Ok(M::MethodUnspecified) => "",
        Ok(M::Connect) | Err(_) => {
            return Err(ctx.invalid(
                &format!("{p}.method"),
                "not a method a health check may use",
            ))
        }
        Ok(m) => m.as_str_name(),
    };
    let port = match alt_port {
        Some(port) if port != 0 => Some(i64::from(port)),
        _ => None,
    };
    Ok(HealthCheckSessionConfig {
        path: h.path.clone(),
        method: method.to_owned(),
        // Envoy's default Host is the cluster's name.
        host: if h.host.is_empty() {
            cluster.to_owned()
        } else {
            h.host.clone()
        },
        port,
        expected_statuses: h
            .expected_statuses
            .iter()
            .map(|r| StatusRange {
                start: r.start,
                end: r.end,
            })
            .collect(),
        ..Default::default()
    })
}

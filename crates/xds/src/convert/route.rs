//! RDS: a RouteConfiguration (or an HttpConnectionManager's inline `route_config`)
//! into MOSN's `routers[]` entry. Policies Envoy inherits from the virtual host or the
//! route configuration (retry, mirrors) are copied into each route that has none,
//! since the model keeps them per route.

use super::any;
use super::error::{ConvertError, Converted, Ctx};
use super::proto;
use super::route_action;
use super::route_match;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::google::protobuf::Any;
use mosn_config::{RouteConfig, RouterConfiguration, VirtualHostConfig};
use std::collections::{HashMap, HashSet};

pub fn route_configuration(
    rc: &rt::RouteConfiguration,
) -> Result<Converted<RouterConfiguration>, ConvertError> {
    let mut ctx = Ctx::new("route configuration", &rc.name);
    if rc.name.is_empty() {
        return Err(ctx.invalid("name", "a route configuration needs a name"));
    }
    let out = convert(rc, &rc.name, &mut ctx, "")?;
    super::check::router(&out, &mut ctx)?;
    Ok(ctx.finish(out))
}

/// Converts `rc` under the router name `name`; `base` is the path of `rc` in the
/// resource (empty for an RDS resource).
pub(crate) fn convert(
    rc: &rt::RouteConfiguration,
    name: &str,
    ctx: &mut Ctx,
    base: &str,
) -> Result<RouterConfiguration, ConvertError> {
    let at = |field: &str| super::error::join(base, field);
    if rc.vhds.is_some() {
        return Err(ctx.refuse(&at("vhds"), "VHDS is not supported"));
    }
    if !rc.internal_only_headers.is_empty() {
        return Err(ctx.refuse(&at("internal_only_headers"), "not supported"));
    }
    if !rc.vhost_header.is_empty() {
        return Err(ctx.refuse(
            &at("vhost_header"),
            "not supported: the Host header picks the virtual host",
        ));
    }
    if !rc.cluster_specifier_plugins.is_empty() {
        return Err(ctx.refuse(&at("cluster_specifier_plugins"), "not supported"));
    }
    if !rc.route_specifiers.is_empty() {
        return Err(ctx.refuse(&at("route_specifiers"), "not supported"));
    }
    if rc.most_specific_header_mutations_wins {
        ctx.warn(
            &at("most_specific_header_mutations_wins"),
            "ignored: the route's header mutations apply first, then the virtual host's, then the route configuration's",
        );
    }
    if rc.ignore_path_parameters_in_path_matching {
        ctx.warn(
            &at("ignore_path_parameters_in_path_matching"),
            "ignored: path parameters are matched as written",
        );
    }
    per_filter_configs(
        &rc.typed_per_filter_config,
        ctx,
        &at("typed_per_filter_config"),
    )?;
    let mut out = RouterConfiguration {
        router_config_name: name.to_owned(),
        request_headers_to_add: proto::header_options(
            &rc.request_headers_to_add,
            ctx,
            &at("request_headers_to_add"),
        )?,
        request_headers_to_remove: rc.request_headers_to_remove.clone(),
        response_headers_to_add: proto::header_options(
            &rc.response_headers_to_add,
            ctx,
            &at("response_headers_to_add"),
        )?,
        response_headers_to_remove: rc.response_headers_to_remove.clone(),
        ..Default::default()
    };
    let inherited = Inherited {
        retry: None,
        mirrors: (&rc.request_mirror_policies, at("request_mirror_policies")),
    };
    let domains = Domains::of(rc);
    for (vi, vh) in rc.virtual_hosts.iter().enumerate() {
        let vhost = virtual_host(
            vh,
            &inherited,
            &domains,
            ctx,
            &at(&format!("virtual_hosts[{vi}]")),
        )?;
        out.virtual_hosts.push(vhost);
    }
    Ok(out)
}

/// Policies a route takes from its virtual host or route configuration when it has
/// none of its own, with the path they are at (for warnings, given once there).
pub(crate) struct Inherited<'a> {
    pub retry: Option<(&'a rt::RetryPolicy, String)>,
    pub mirrors: (&'a [rt::route_action::RequestMirrorPolicy], String),
}

fn virtual_host(
    vh: &rt::VirtualHost,
    parent: &Inherited<'_>,
    all_domains: &Domains,
    ctx: &mut Ctx,
    p: &str,
) -> Result<VirtualHostConfig, ConvertError> {
    use rt::virtual_host::TlsRequirementType as Tls;
    if vh.require_tls != Tls::None as i32 {
        return Err(ctx.refuse(&format!("{p}.require_tls"), "not supported"));
    }
    if vh.matcher.is_some() {
        return Err(ctx.refuse(
            &format!("{p}.matcher"),
            "the generic matcher API is not supported",
        ));
    }
    if !vh.rate_limits.is_empty() {
        return Err(ctx.refuse(
            &format!("{p}.rate_limits"),
            "rate limiting is not supported",
        ));
    }
    #[allow(deprecated)]
    if vh.cors.is_some() {
        return Err(ctx.refuse(&format!("{p}.cors"), "CORS policies are not supported"));
    }
    if vh.retry_policy_typed_config.is_some() {
        return Err(ctx.refuse(&format!("{p}.retry_policy_typed_config"), "not supported"));
    }
    if hedging(vh.hedge_policy.as_ref()) {
        return Err(ctx.refuse(
            &format!("{p}.hedge_policy"),
            "request hedging is not supported",
        ));
    }
    if !vh.route_specifiers.is_empty() {
        return Err(ctx.refuse(&format!("{p}.route_specifiers"), "not supported"));
    }
    if vh.include_request_attempt_count || vh.include_attempt_count_in_response {
        ctx.warn(p, "x-envoy-attempt-count is not set");
    }
    per_filter_configs(
        &vh.typed_per_filter_config,
        ctx,
        &format!("{p}.typed_per_filter_config"),
    )?;
    let inherited = Inherited {
        retry: match &vh.retry_policy {
            Some(r) => Some((r, format!("{p}.retry_policy"))),
            None => parent.retry.clone(),
        },
        mirrors: if vh.request_mirror_policies.is_empty() {
            parent.mirrors.clone()
        } else {
            (
                &vh.request_mirror_policies,
                format!("{p}.request_mirror_policies"),
            )
        },
    };
    let mut routers = Vec::with_capacity(vh.routes.len());
    for (ri, r) in vh.routes.iter().enumerate() {
        routers.push(route(r, &inherited, ctx, &format!("{p}.routes[{ri}]"))?);
    }
    Ok(VirtualHostConfig {
        name: vh.name.clone(),
        domains: all_domains.for_vhost(vh, ctx, &format!("{p}.domains")),
        routers,
        request_headers_to_add: proto::header_options(
            &vh.request_headers_to_add,
            ctx,
            &format!("{p}.request_headers_to_add"),
        )?,
        request_headers_to_remove: vh.request_headers_to_remove.clone(),
        response_headers_to_add: proto::header_options(
            &vh.response_headers_to_add,
            ctx,
            &format!("{p}.response_headers_to_add"),
        )?,
        response_headers_to_remove: vh.response_headers_to_remove.clone(),
    })
}

fn route(
    r: &rt::Route,
    inherited: &Inherited<'_>,
    ctx: &mut Ctx,
    p: &str,
) -> Result<RouteConfig, ConvertError> {
    per_filter_configs(
        &r.typed_per_filter_config,
        ctx,
        &format!("{p}.typed_per_filter_config"),
    )?;
    if !r.route_specifiers.is_empty() {
        return Err(ctx.refuse(&format!("{p}.route_specifiers"), "not supported"));
    }
    let m = r
        .r#match
        .as_ref()
        .ok_or_else(|| ctx.invalid(&format!("{p}.match"), "a route needs a match"))?;
    let matcher = route_match::route_match(m, ctx, &format!("{p}.match"))?;
    let mut out = RouteConfig {
        matcher,
        request_headers_to_add: proto::header_options(
            &r.request_headers_to_add,
            ctx,
            &format!("{p}.request_headers_to_add"),
        )?,
        request_headers_to_remove: r.request_headers_to_remove.clone(),
        response_headers_to_add: proto::header_options(
            &r.response_headers_to_add,
            ctx,
            &format!("{p}.response_headers_to_add"),
        )?,
        response_headers_to_remove: r.response_headers_to_remove.clone(),
        ..Default::default()
    };
    use rt::route::Action as A;
    match &r.action {
        Some(A::Route(a)) => {
            out.route = Some(route_action::route_action(
                a,
                &out.matcher,
                inherited,
                ctx,
                &format!("{p}.route"),
            )?)
        }
        Some(A::Redirect(rd)) => {
            out.redirect = Some(route_action::redirect(
                rd,
                &out.matcher,
                ctx,
                &format!("{p}.redirect"),
            )?)
        }
        Some(A::DirectResponse(d)) => {
            out.direct_response = Some(route_action::direct_response(
                d,
                ctx,
                &format!("{p}.direct_response"),
            )?)
        }
        Some(A::FilterAction(_)) => {
            return Err(ctx.refuse(&format!("{p}.filter_action"), "not supported"))
        }
        Some(A::NonForwardingAction(_)) => {
            return Err(ctx.refuse(&format!("{p}.non_forwarding_action"), "not supported"))
        }
        None => return Err(ctx.invalid(p, "a route needs route, redirect or direct_response")),
    }
    Ok(out)
}

pub(crate) fn hedging(h: Option<&rt::HedgePolicy>) -> bool {
    h.is_some_and(|h| {
        proto::u32v(&h.initial_requests).unwrap_or(1) > 1
            || h.additional_request_chance
                .as_ref()
                .is_some_and(|c| proto::fraction_percent(c) > 0.0)
            || h.hedge_on_per_try_timeout
    })
}

/// Per-route configs of HTTP filters: those of Istio's skipped filters are dropped
/// with a warning; any other would change what a filter mosn-rs does not run does.
pub(crate) fn per_filter_configs(
    map: &HashMap<String, Any>,
    ctx: &mut Ctx,
    p: &str,
) -> Result<(), ConvertError> {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        if any::istio_skipped(name, map.get(name)) {
            ctx.warn(
                &format!("{p}[{name:?}]"),
                "skipped (a filter mosn-rs does not run)",
            );
        } else {
            return Err(ctx.refuse(
                &format!("{p}[{name:?}]"),
                "per-route configs of HTTP filters are not supported",
            ));
        }
    }
    Ok(())
}

/// Every domain of a route configuration, to decide what to do with `host:port`
/// domains: the model's router compares the Host header without its port, so such a
/// domain never matches as written.
struct Domains {
    all: HashSet<String>,
}

impl Domains {
    fn of(rc: &rt::RouteConfiguration) -> Domains {
        Domains {
            all: rc
                .virtual_hosts
                .iter()
                .flat_map(|v| v.domains.iter().map(|d| d.to_ascii_lowercase()))
                .collect(),
        }
    }

    /// The vhost's domains with ports dropped: a `host:port` whose `host` the vhost
    /// lists too is left out (Istio lists both forms); else its port is dropped (it
    /// then matches that host on any port).
    fn for_vhost(&self, vh: &rt::VirtualHost, ctx: &mut Ctx, p: &str) -> Vec<String> {
        let own: HashSet<String> = vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        let mut out: Vec<String> = Vec::with_capacity(vh.domains.len());
        for (i, d) in vh.domains.iter().enumerate() {
            let Some(host) = without_port(d) else {
                out.push(d.clone());
                continue;
            };
            let lower = host.to_ascii_lowercase();
            if own.contains(&lower) {
                continue;
            }
            if self.all.contains(&lower) {
                ctx.warn(
                    &format!("{p}[{i}]"),
                    format!("{d:?} is dropped: requests for it go to the virtual host of {host:?} (the router compares hosts without their port)"),
                );
                continue;
            }
            if !out.iter().any(|o| o.eq_ignore_ascii_case(host)) {
                ctx.warn(
                    &format!("{p}[{i}]"),
                    format!("{d:?} matches {host:?} on any port (the router compares hosts without their port)"),
                );
                out.push(host.to_owned());
            }
        }
        out
    }
}

/// `host` of `host:port` (a bracketed IPv6 literal keeps its brackets); None when
/// the domain has no port.
fn without_port(domain: &str) -> Option<&str> {
    let (host, port) = domain.rsplit_once(':')?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let plain = !host.contains(':');
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    (digits && (bracketed || plain)).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::without_port;

    #[test]
    fn ports_are_found() {
        assert_eq!(without_port("a.b:80"), Some("a.b"));
        assert_eq!(without_port("[::1]:80"), Some("[::1]"));
        assert_eq!(without_port("::1"), None);
        assert_eq!(without_port("a.b"), None);
        assert_eq!(without_port("*"), None);
    }
}

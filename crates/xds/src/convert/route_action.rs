//! A route's action: forwarding (`route`), `redirect` or `direct_response`, with the
//! forwarding policies (retries, mirrors, hashing, rewrites, timeouts).

use super::error::{ConvertError, Ctx};
use super::proto;
use super::route::{self, Inherited};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use mosn_config::{
    ClusterWeightConfig, CookieHashPolicyConfig, DirectResponse, GoDuration, HashPolicyConfig,
    HeaderHashPolicyConfig, MetadataMatchConfig, PatternConfig, RedirectAction, RegexRewriteConfig,
    RequestMirrorPolicy, RetryBackOffConfig, RetryOnConfig, RetryPolicyConfig, RouteAction,
    RouteMatch, SourceIpHashPolicyConfig, WeightedClusterConfig, LB_METADATA_KEY,
    RETRY_ON_CONDITIONS,
};
use serde_json::{Map, Value};
use std::time::Duration;

/// Envoy's route timeout when a route sets none (the model's default is MOSN's 60 s).
const ENVOY_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn route_action(
    a: &rt::RouteAction,
    matcher: &RouteMatch,
    inherited: &Inherited<'_>,
    ctx: &mut Ctx,
    p: &str,
) -> Result<RouteAction, ConvertError> {
    use rt::route_action::ClusterSpecifier as C;
    let mut out = RouteAction::default();
    match &a.cluster_specifier {
        Some(C::Cluster(n)) => out.cluster_name = n.clone(),
        Some(C::ClusterHeader(h)) => out.cluster_header = h.clone(),
        Some(C::WeightedClusters(w)) => {
            out.weighted_clusters = weighted(w, ctx, &format!("{p}.weighted_clusters"))?
        }
        Some(C::ClusterSpecifierPlugin(_) | C::InlineClusterSpecifierPlugin(_)) => {
            return Err(ctx.refuse(p, "cluster specifier plugins are not supported"))
        }
        None => {
            return Err(ctx.invalid(
                p,
                "a route action needs cluster, cluster_header or weighted_clusters",
            ))
        }
    }
    if a.cluster_not_found_response_code != 0 {
        ctx.warn(
            &format!("{p}.cluster_not_found_response_code"),
            "ignored: a request for a cluster that does not exist gets 503",
        );
    }
    out.metadata_match = metadata_match(a.metadata_match.as_ref());
    if !a.prefix_rewrite.is_empty() {
        if matcher.prefix.is_none() && matcher.path.is_none() {
            return Err(ctx.refuse(
                &format!("{p}.prefix_rewrite"),
                "prefix_rewrite on a route matched by regex or path_separated_prefix is not supported (use regex_rewrite)",
            ));
        }
        out.prefix_rewrite = a.prefix_rewrite.clone();
    }
    if let Some(rw) = &a.regex_rewrite {
        out.regex_rewrite = Some(regex_rewrite(rw, ctx, &format!("{p}.regex_rewrite"))?);
    }
    for (field, set) in [
        ("path_rewrite_policy", a.path_rewrite_policy.is_some()),
        ("path_rewrite", !a.path_rewrite.is_empty()),
        (
            "retry_policy_typed_config",
            a.retry_policy_typed_config.is_some(),
        ),
        ("rate_limits", !a.rate_limits.is_empty()),
        (
            "internal_redirect_policy",
            a.internal_redirect_policy.is_some(),
        ),
    ] {
        if set {
            return Err(ctx.refuse(&format!("{p}.{field}"), "not supported"));
        }
    }
    #[allow(deprecated)]
    {
        if a.cors.is_some() {
            return Err(ctx.refuse(&format!("{p}.cors"), "CORS policies are not supported"));
        }
        if a.internal_redirect_action
            != rt::route_action::InternalRedirectAction::PassThroughInternalRedirect as i32
        {
            return Err(ctx.refuse(
                &format!("{p}.internal_redirect_action"),
                "internal redirects are not supported",
            ));
        }
        if a.max_grpc_timeout.is_some() || a.grpc_timeout_offset.is_some() {
            ctx.warn(
                p,
                "max_grpc_timeout and grpc_timeout_offset are ignored: grpc-timeout is not read",
            );
        }
    }
    if route::hedging(a.hedge_policy.as_ref()) {
        return Err(ctx.refuse(
            &format!("{p}.hedge_policy"),
            "request hedging is not supported",
        ));
    }
    if a.append_x_forwarded_host {
        ctx.warn(
            &format!("{p}.append_x_forwarded_host"),
            "ignored: x-forwarded-host is not set",
        );
    }
    if a.flush_timeout.is_some() {
        ctx.warn(&format!("{p}.flush_timeout"), "ignored");
    }
    if let Some(msd) = &a.max_stream_duration {
        let set = |d: &Option<envoy_types::pb::google::protobuf::Duration>| {
            d.as_ref().is_some_and(|d| d.seconds != 0 || d.nanos != 0)
        };
        if set(&msd.max_stream_duration)
            || set(&msd.grpc_timeout_header_max)
            || set(&msd.grpc_timeout_header_offset)
        {
            ctx.warn(
                &format!("{p}.max_stream_duration"),
                "ignored: streams are bounded by the route's timeout only",
            );
        }
    }
    out.timeout = Some(match &a.timeout {
        Some(t) => proto::go_duration(t, ctx, &format!("{p}.timeout"))?,
        None => GoDuration(ENVOY_ROUTE_TIMEOUT),
    });
    out.idle_timeout = proto::opt_duration(&a.idle_timeout, ctx, &format!("{p}.idle_timeout"))?;
    let own_retry = a
        .retry_policy
        .as_ref()
        .map(|r| (r, format!("{p}.retry_policy")));
    if let Some((r, at)) = own_retry.as_ref().or(inherited.retry.as_ref()) {
        out.retry_policy = retry(r, ctx, at)?;
    }
    let (mirrors, at) = if a.request_mirror_policies.is_empty() {
        (inherited.mirrors.0, inherited.mirrors.1.clone())
    } else {
        (
            &a.request_mirror_policies[..],
            format!("{p}.request_mirror_policies"),
        )
    };
    for (i, m) in mirrors.iter().enumerate() {
        out.request_mirror_policies
            .push(mirror(m, ctx, &format!("{at}[{i}]"))?);
    }
    for (i, h) in a.hash_policy.iter().enumerate() {
        if let Some(hp) = hash_policy(h, ctx, &format!("{p}.hash_policy[{i}]"))? {
            out.hash_policy.push(hp);
        }
    }
    host_rewrite(a, &mut out, ctx, p)?;
    Ok(out)
}

fn host_rewrite(
    a: &rt::RouteAction,
    out: &mut RouteAction,
    ctx: &Ctx,
    p: &str,
) -> Result<(), ConvertError> {
    use rt::route_action::HostRewriteSpecifier as H;
    match &a.host_rewrite_specifier {
        None => {}
        Some(H::HostRewriteLiteral(h)) => out.host_rewrite = h.clone(),
        Some(H::AutoHostRewrite(b)) => out.auto_host_rewrite = b.value,
        Some(H::HostRewriteHeader(h)) => out.auto_host_rewrite_header = h.clone(),
        Some(H::HostRewritePathRegex(_)) => {
            return Err(ctx.refuse(&format!("{p}.host_rewrite_path_regex"), "not supported"))
        }
        Some(H::HostRewrite(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.host_rewrite"),
                "formatted host rewrites are not supported",
            ))
        }
    }
    Ok(())
}

fn weighted(
    w: &rt::WeightedCluster,
    ctx: &mut Ctx,
    p: &str,
) -> Result<Vec<WeightedClusterConfig>, ConvertError> {
    use rt::weighted_cluster::RandomValueSpecifier as R;
    match &w.random_value_specifier {
        Some(R::HeaderName(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.header_name"),
                "choosing by a header's value is not supported",
            ))
        }
        Some(R::UseHashPolicy(b)) if b.value => {
            return Err(ctx.refuse(
                &format!("{p}.use_hash_policy"),
                "choosing by the hash policy is not supported",
            ))
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(w.clusters.len());
    for (i, c) in w.clusters.iter().enumerate() {
        let cp = format!("{p}.clusters[{i}]");
        if !c.cluster_header.is_empty() {
            return Err(ctx.refuse(
                &format!("{cp}.cluster_header"),
                "not supported in weighted_clusters",
            ));
        }
        if c.name.is_empty() {
            return Err(ctx.invalid(&format!("{cp}.name"), "a cluster name is required"));
        }
        let headers = !c.request_headers_to_add.is_empty()
            || !c.request_headers_to_remove.is_empty()
            || !c.response_headers_to_add.is_empty()
            || !c.response_headers_to_remove.is_empty();
        if headers {
            return Err(ctx.refuse(
                &cp,
                "header mutations per weighted cluster are not supported",
            ));
        }
        if c.host_rewrite_specifier.is_some() {
            return Err(ctx.refuse(
                &format!("{cp}.host_rewrite_literal"),
                "not supported per weighted cluster",
            ));
        }
        route::per_filter_configs(
            &c.typed_per_filter_config,
            ctx,
            &format!("{cp}.typed_per_filter_config"),
        )?;
        let weight = proto::u32v(&c.weight)
            .ok_or_else(|| ctx.invalid(&format!("{cp}.weight"), "a weight is required"))?;
        out.push(WeightedClusterConfig {
            cluster: ClusterWeightConfig {
                name: c.name.clone(),
                weight,
                metadata_match: metadata_match(c.metadata_match.as_ref()),
            },
        });
    }
    Ok(out)
}

/// `envoy.lb` metadata as MOSN's `mosn.lb` match. Envoy compares typed values; the
/// model compares strings, and host metadata is read as strings the same way (a
/// non-string value by its JSON text), so both sides are converted alike.
pub(crate) fn metadata_match(md: Option<&core::Metadata>) -> Option<MetadataMatchConfig> {
    let lb = proto::lb_metadata(md)?;
    let strings: Map<String, Value> = lb
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(_) => (k, v),
            other => (k, Value::String(other.to_string())),
        })
        .collect();
    let mut filter_metadata = std::collections::BTreeMap::new();
    filter_metadata.insert(LB_METADATA_KEY.to_owned(), strings);
    Some(MetadataMatchConfig { filter_metadata })
}

fn regex_rewrite(
    rw: &envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute,
    ctx: &Ctx,
    p: &str,
) -> Result<RegexRewriteConfig, ConvertError> {
    let pattern = rw
        .pattern
        .as_ref()
        .ok_or_else(|| ctx.invalid(&format!("{p}.pattern"), "a pattern is required"))?;
    Ok(RegexRewriteConfig {
        pattern: PatternConfig {
            regex: pattern.regex.clone(),
            google_re2: Value::Null,
        },
        substitution: rw.substitution.clone(),
    })
}

/// Envoy's retry policy; None when no condition it names is one mosn-rs retries on
/// (Envoy retries nothing without a condition either).
pub(crate) fn retry(
    r: &rt::RetryPolicy,
    ctx: &mut Ctx,
    p: &str,
) -> Result<Option<RetryPolicyConfig>, ConvertError> {
    if !r.retriable_headers.is_empty() || !r.retriable_request_headers.is_empty() {
        return Err(ctx.refuse(
            p,
            "retriable_headers and retriable_request_headers are not supported",
        ));
    }
    let (known, unknown): (Vec<&str>, Vec<&str>) = r
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .partition(|c| RETRY_ON_CONDITIONS.contains(c));
    if !unknown.is_empty() {
        ctx.warn(
            &format!("{p}.retry_on"),
            format!(
                "conditions {unknown:?} are not retried on (mosn-rs knows {})",
                RETRY_ON_CONDITIONS.join(", ")
            ),
        );
    }
    if known.is_empty() {
        return Ok(None);
    }
    if r.per_try_idle_timeout.is_some() {
        ctx.warn(&format!("{p}.per_try_idle_timeout"), "ignored");
    }
    if r.retry_priority.is_some() {
        ctx.warn(
            &format!("{p}.retry_priority"),
            "ignored: hosts have no priorities",
        );
    }
    for (i, h) in r.retry_host_predicate.iter().enumerate() {
        // A retry always avoids the host that failed: previous_hosts is built in.
        if h.name != "envoy.retry_host_predicates.previous_hosts" {
            ctx.warn(
                &format!("{p}.retry_host_predicate[{i}]"),
                format!("{:?} is ignored", h.name),
            );
        }
    }
    if r.rate_limited_retry_back_off.is_some() {
        ctx.warn(
            &format!("{p}.rate_limited_retry_back_off"),
            "ignored: retry_back_off is used",
        );
    }
    if !r.retry_options_predicates.is_empty() {
        ctx.warn(&format!("{p}.retry_options_predicates"), "ignored");
    }
    let back_off = match &r.retry_back_off {
        None => None,
        Some(b) => Some(RetryBackOffConfig {
            base_interval: proto::opt_duration(
                &b.base_interval,
                ctx,
                &format!("{p}.retry_back_off.base_interval"),
            )?,
            max_interval: proto::opt_duration(
                &b.max_interval,
                ctx,
                &format!("{p}.retry_back_off.max_interval"),
            )?,
        }),
    };
    Ok(Some(RetryPolicyConfig {
        retry_on: Some(RetryOnConfig::Conditions(known.join(","))),
        // Envoy's default is one retry, as the model's.
        num_retries: proto::u32v(&r.num_retries),
        per_try_timeout: proto::opt_duration(
            &r.per_try_timeout,
            ctx,
            &format!("{p}.per_try_timeout"),
        )?,
        retriable_status_codes: r.retriable_status_codes.clone(),
        retry_back_off: back_off,
        ..Default::default()
    }))
}

fn mirror(
    m: &rt::route_action::RequestMirrorPolicy,
    ctx: &mut Ctx,
    p: &str,
) -> Result<RequestMirrorPolicy, ConvertError> {
    if !m.cluster_header.is_empty() {
        return Err(ctx.refuse(
            &format!("{p}.cluster_header"),
            "mirroring to a cluster named by a header is not supported",
        ));
    }
    if !m.request_headers_mutations.is_empty() || !m.host_rewrite_literal.is_empty() {
        return Err(ctx.refuse(p, "rewriting mirrored requests is not supported"));
    }
    if m.cluster.is_empty() {
        return Err(ctx.invalid(&format!("{p}.cluster"), "a cluster is required"));
    }
    let pct = proto::runtime_percent(m.runtime_fraction.as_ref()).unwrap_or(100.0);
    // The model takes whole percents; keep any fraction above 0 mirrored.
    let mut percent = pct.round();
    if pct > 0.0 && percent == 0.0 {
        percent = 1.0;
    }
    if percent != pct {
        ctx.warn(
            &format!("{p}.runtime_fraction"),
            format!("{pct}% is mirrored as {percent}%"),
        );
    }
    Ok(RequestMirrorPolicy {
        cluster: m.cluster.clone(),
        // 0..=100 by the clamp in fraction_percent.
        percent: percent as u32,
        trace_sampled: proto::boolv(&m.trace_sampled).unwrap_or(false),
    })
}

fn hash_policy(
    h: &rt::route_action::HashPolicy,
    ctx: &mut Ctx,
    p: &str,
) -> Result<Option<HashPolicyConfig>, ConvertError> {
    use rt::route_action::hash_policy::PolicySpecifier as S;
    if h.terminal {
        ctx.warn(
            &format!("{p}.terminal"),
            "ignored: every hash policy is combined",
        );
    }
    let mut out = HashPolicyConfig::default();
    match &h.policy_specifier {
        Some(S::Header(hd)) => {
            if hd.regex_rewrite.is_some() {
                return Err(ctx.refuse(&format!("{p}.header.regex_rewrite"), "not supported"));
            }
            out.header = Some(HeaderHashPolicyConfig {
                key: hd.header_name.clone(),
            });
        }
        Some(S::Cookie(c)) => {
            if !c.attributes.is_empty() {
                ctx.warn(
                    &format!("{p}.cookie.attributes"),
                    "ignored: cookies are not generated",
                );
            }
            out.cookie = Some(CookieHashPolicyConfig {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: proto::opt_duration(&c.ttl, ctx, &format!("{p}.cookie.ttl"))?,
            });
        }
        Some(S::ConnectionProperties(c)) if c.source_ip => {
            out.source_ip = Some(SourceIpHashPolicyConfig {});
        }
        // Hashes nothing in Envoy either.
        Some(S::ConnectionProperties(_)) => return Ok(None),
        Some(S::QueryParameter(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.query_parameter"),
                "hashing a query parameter is not supported",
            ))
        }
        Some(S::FilterState(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.filter_state"),
                "hashing filter state is not supported",
            ))
        }
        None => return Err(ctx.invalid(p, "a hash policy needs a kind")),
    }
    Ok(Some(out))
}

pub(crate) fn redirect(
    r: &rt::RedirectAction,
    _matcher: &RouteMatch,
    ctx: &Ctx,
    p: &str,
) -> Result<RedirectAction, ConvertError> {
    use rt::redirect_action::{
        PathRewriteSpecifier as P, RedirectResponseCode as C, SchemeRewriteSpecifier as S,
    };
    let response_code = match C::try_from(r.response_code) {
        Ok(C::MovedPermanently) => 301,
        Ok(C::Found) => 302,
        Ok(C::SeeOther) => 303,
        Ok(C::TemporaryRedirect) => 307,
        Ok(C::PermanentRedirect) => 308,
        Err(_) => {
            return Err(ctx.invalid(
                &format!("{p}.response_code"),
                format!("unknown code {}", r.response_code),
            ))
        }
    };
    let mut out = RedirectAction {
        response_code,
        host_redirect: r.host_redirect.clone(),
        port_redirect: r.port_redirect,
        strip_query: r.strip_query,
        ..Default::default()
    };
    match &r.scheme_rewrite_specifier {
        None => {}
        Some(S::HttpsRedirect(b)) => out.https_redirect = *b,
        Some(S::SchemeRedirect(s)) => out.scheme_redirect = s.clone(),
    }
    match &r.path_rewrite_specifier {
        None => {}
        Some(P::PathRedirect(s)) => out.path_redirect = s.clone(),
        Some(P::PrefixRewrite(s)) => out.prefix_rewrite = s.clone(),
        Some(P::RegexRewrite(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.regex_rewrite"),
                "regex rewrites in redirects are not supported",
            ))
        }
        Some(P::PathRewrite(_)) => {
            return Err(ctx.refuse(&format!("{p}.path_rewrite"), "not supported"))
        }
    }
    Ok(out)
}

pub(crate) fn direct_response(
    d: &rt::DirectResponseAction,
    ctx: &Ctx,
    p: &str,
) -> Result<DirectResponse, ConvertError> {
    use core::data_source::Specifier as S;
    if d.body_format.is_some() {
        return Err(ctx.refuse(&format!("{p}.body_format"), "not supported"));
    }
    let status = u16::try_from(d.status)
        .ok()
        .filter(|s| (200..600).contains(s))
        .ok_or_else(|| {
            ctx.invalid(
                &format!("{p}.status"),
                format!("{} is not a final HTTP status", d.status),
            )
        })?;
    let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
        None => String::new(),
        Some(S::InlineString(s)) => s.clone(),
        Some(S::InlineBytes(b)) => String::from_utf8(b.clone()).map_err(|_| {
            ctx.refuse(
                &format!("{p}.body.inline_bytes"),
                "a body that is not UTF-8 is not supported",
            )
        })?,
        Some(S::Filename(_) | S::EnvironmentVariable(_)) => {
            return Err(ctx.refuse(&format!("{p}.body"), "only inline bodies are supported"))
        }
    };
    Ok(DirectResponse { status, body })
}

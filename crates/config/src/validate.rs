//! Semantic checks of a parsed config: cross references, addresses, patterns, and the
//! typed parse of each network filter. Every problem is reported with its JSON path.

use crate::error::Problems;
use crate::filters::{self, NetworkFilter, ProxyFilterConfig, TcpProxyConfig};
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

mod cluster_type;
mod health;

pub use cluster_type::CLUSTER_TYPES;

pub const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Checks `config`, fills each filter's typed form, and records problems.
pub fn validate(config: &mut MosnConfig, problems: &mut Problems) {
    let cluster_names = check_clusters(&config.cluster_manager, problems);
    // An xDS bootstrap may bring every listener from the control plane.
    if config.servers.is_empty() && config.dynamic_resources.is_none() {
        problems.error("servers", "at least one server is required");
    }
    let mut listener_names = HashSet::new();
    let mut listener_addrs = HashMap::new();
    for (si, server) in config.servers.iter_mut().enumerate() {
        let base = format!("servers[{si}]");
        if let Some(level) = &server.default_log_level {
            if !LOG_LEVELS.contains(&level.to_ascii_uppercase().as_str()) {
                problems.error(
                    format!("{base}.default_log_level"),
                    format!(
                        "unknown log level {level:?} (one of {})",
                        LOG_LEVELS.join(", ")
                    ),
                );
            }
        }
        let router_names = check_routers(&server.routers, &base, &cluster_names, problems);
        for (li, listener) in server.listeners.iter_mut().enumerate() {
            let path = format!("{base}.listeners[{li}]");
            check_listener(listener, &path, &router_names, &cluster_names, problems);
            if !listener.name.is_empty() && !listener_names.insert(listener.name.clone()) {
                problems.error(
                    format!("{path}.name"),
                    format!("duplicate listener name {:?}", listener.name),
                );
            }
            if let Ok(addr) = listener.address.parse::<SocketAddr>() {
                if let Some(first) = listener_addrs.insert(addr, path.clone()) {
                    problems.error(
                        format!("{path}.address"),
                        format!("address {addr} is already used by {first}"),
                    );
                }
            }
        }
    }
    if let Some(admin) = &config.admin {
        let sa = &admin.address.socket_address;
        if sa.address.parse::<IpAddr>().is_err() {
            problems.error(
                "admin.address.socket_address.address",
                format!("not an IP address: {:?}", sa.address),
            );
        }
    }
    if let Some(metrics) = &mut config.metrics {
        crate::metrics::check(metrics, problems);
    }
    if let Some(tracing) = &config.tracing {
        crate::tracing::check(tracing, problems);
    }
}

fn check_clusters(cm: &ClusterManagerConfig, problems: &mut Problems) -> HashSet<String> {
    let mut names = HashSet::new();
    for (ci, cluster) in cm.clusters.iter().enumerate() {
        let path = format!("cluster_manager.clusters[{ci}]");
        if !cluster.name.is_empty() && !names.insert(cluster.name.clone()) {
            problems.error(
                format!("{path}.name"),
                format!("duplicate cluster name {:?}", cluster.name),
            );
        }
        check_cluster(cluster, &path, problems);
    }
    names
}

/// Checks one cluster on its own (also used for clusters added at runtime).
pub fn check_cluster(cluster: &ClusterConfig, path: &str, problems: &mut Problems) {
    if !cluster.upstream_protocol.is_empty() && cluster.http_protocol().is_none() {
        problems.error(
            format!("{path}.upstream_protocol"),
            format!(
                "{:?}: a cluster speaks Http1 or Http2",
                cluster.upstream_protocol
            ),
        );
    }
    if cluster.name.is_empty() {
        problems.error(format!("{path}.name"), "a cluster needs a name");
    }
    cluster_type::check_cluster_type(cluster, path, problems);
    check_cluster_lb(cluster, path, problems);
    health::check_health(cluster, path, problems);
    if let Some(tls) = &cluster.tls_context {
        tls.check(&format!("{path}.tls_context"), false, problems);
    }
    for (hi, host) in cluster.hosts.iter().enumerate() {
        if host.address.starts_with("unix:") {
            problems.error(
                format!("{path}.hosts[{hi}].address"),
                "unix socket hosts are valid MOSN but not supported by mosn-rs yet",
            );
        } else {
            let hpath = format!("{path}.hosts[{hi}].address");
            cluster_type::check_host_address(cluster, &host.address, &hpath, problems);
        }
        if let Some(w) = host.weight.filter(|&w| w > MAX_HOST_WEIGHT) {
            problems.warn(
                format!("{path}.hosts[{hi}].weight"),
                format!("weight {w} is above MOSN's maximum {MAX_HOST_WEIGHT}: {MAX_HOST_WEIGHT} is used"),
            );
        }
    }
}

/// The `lb_type` names mosn-rs balances with (MOSN's names; see docs/load-balancing.md).
pub const LB_TYPES: &[&str] = &[
    "LB_ROUNDROBIN",
    "LB_WEIGHTED_ROUNDROBIN",
    "LB_RANDOM",
    "LB_LEAST_REQUEST",
    "LB_LEAST_CONNECTION",
    "LB_PEAK_EWMA",
    "LB_MAGLEV",
    "LB_RING_HASH",
    "LB_REQUEST_ROUNDROBIN",
    "LB_ORIGINAL_DST",
];

/// MOSN clamps host weights to 1..=128.
pub const MAX_HOST_WEIGHT: u32 = 128;

/// `lb_type`, `lbconfig`, `slow_start`, `lb_subset_config`, `original_dst_lb_config`.
fn check_cluster_lb(cluster: &ClusterConfig, path: &str, problems: &mut Problems) {
    let lb = cluster.lb_type.as_str();
    let known = lb.is_empty() || LB_TYPES.contains(&lb);
    let shown = if lb.is_empty() { "LB_ROUNDROBIN" } else { lb };
    if !known {
        problems.error(
            format!("{path}.lb_type"),
            format!("unknown lb_type {lb:?} (one of {})", LB_TYPES.join(", ")),
        );
    }
    // The balancers MOSN builds on its EDF scheduler: they read lbconfig and slow_start.
    let load_aware = matches!(
        lb,
        "LB_LEAST_REQUEST" | "LB_LEAST_CONNECTION" | "LB_PEAK_EWMA"
    );
    let weighted = load_aware || lb == "LB_WEIGHTED_ROUNDROBIN";
    if let Some(c) = &cluster.lbconfig {
        let p = format!("{path}.lbconfig");
        if c.choice_count == Some(0) {
            problems.error(
                format!("{p}.choice_count"),
                "choice_count must be at least 1",
            );
        }
        for (key, v) in [
            ("active_request_bias", c.active_request_bias),
            ("client_error_bias", c.client_error_bias),
            ("server_error_bias", c.server_error_bias),
        ] {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v < 0.0) {
                problems.error(
                    format!("{p}.{key}"),
                    format!("{key} must be 0 or more, not {v}"),
                );
            }
        }
        if !load_aware && known {
            problems.warn(&p, format!("lbconfig is not used by {shown}: ignored"));
        }
    }
    if let Some(s) = &cluster.slow_start {
        let p = format!("{path}.slow_start");
        match s.mode.as_str() {
            "" => {}
            "duration" => {
                if s.slow_start_duration.unwrap_or_default().0.is_zero() {
                    problems.warn(
                        format!("{p}.slow_start_duration"),
                        "slow start needs a slow_start_duration above 0: it is off",
                    );
                }
                if !weighted && known {
                    problems.warn(
                        &p,
                        format!(
                            "slow_start applies to LB_WEIGHTED_ROUNDROBIN, LB_LEAST_REQUEST, \
                         LB_LEAST_CONNECTION and LB_PEAK_EWMA, not {shown}: ignored"
                        ),
                    );
                }
            }
            other => problems.error(
                format!("{p}.mode"),
                format!("unknown slow start mode {other:?} (\"duration\", or empty for off)"),
            ),
        }
        if let Some(a) = s.aggression.filter(|a| !a.is_finite() || *a < 0.0) {
            problems.error(
                format!("{p}.aggression"),
                format!("aggression must be above 0 (0 or absent: 1.0), not {a}"),
            );
        }
        if let Some(m) = s
            .min_weight_percent
            .filter(|m| !m.is_finite() || *m < 0.0 || *m > 1.0)
        {
            problems.error(
                format!("{p}.min_weight_percent"),
                format!("min_weight_percent is a fraction from 0 to 1 (0.1 = 10%), not {m}"),
            );
        }
    }
    if let Some(sub) = &cluster.lb_subset_config {
        let p = format!("{path}.lb_subset_config");
        for (si, selector) in sub.subset_selectors.iter().enumerate() {
            let sp = format!("{p}.subset_selectors[{si}]");
            if selector.is_empty() {
                problems.error(&sp, "a subset selector needs at least one key");
            }
            let mut seen = HashSet::new();
            for (ki, key) in selector.iter().enumerate() {
                if key.is_empty() {
                    problems.error(format!("{sp}[{ki}]"), "empty metadata key");
                } else if !seen.insert(key) {
                    problems.error(format!("{sp}[{ki}]"), format!("duplicate key {key:?}"));
                }
            }
        }
        let default_policy = sub.fall_back_policy == SubsetFallbackPolicy::DefaultSubset;
        if sub.subset_selectors.is_empty() && (default_policy || !sub.default_subset.is_empty()) {
            problems.warn(
                format!("{p}.subset_selectors"),
                "no subset_selectors: subset load balancing is off",
            );
        } else if default_policy && sub.default_subset.is_empty() {
            problems.warn(
                format!("{p}.default_subset"),
                "DEFAULT_SUBSET fallback with an empty default_subset falls back to every host",
            );
        } else if !default_policy && !sub.default_subset.is_empty() {
            problems.warn(
                format!("{p}.default_subset"),
                format!(
                    "default_subset is used only with fall_back_policy 2 (DEFAULT_SUBSET), not {}: ignored",
                    sub.fall_back_policy.name()
                ),
            );
        }
    }
    if cluster.original_dst_lb_config.is_some()
        && lb != "LB_ORIGINAL_DST"
        && cluster.kind != "ORIGINAL_DST"
        && known
    {
        problems.warn(
            format!("{path}.original_dst_lb_config"),
            "original_dst_lb_config is used only by LB_ORIGINAL_DST: ignored",
        );
    }
}

fn check_routers(
    routers: &[RouterConfiguration],
    base: &str,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) -> HashSet<String> {
    let mut names = HashSet::new();
    for (ri, router) in routers.iter().enumerate() {
        let path = format!("{base}.routers[{ri}]");
        if router.router_config_name.is_empty() {
            problems.error(
                format!("{path}.router_config_name"),
                "a router needs a router_config_name",
            );
        } else if !names.insert(router.router_config_name.clone()) {
            problems.error(
                format!("{path}.router_config_name"),
                format!("duplicate router name {:?}", router.router_config_name),
            );
        }
        let mut domains_seen: HashMap<String, String> = HashMap::new();
        for (vi, vhost) in router.virtual_hosts.iter().enumerate() {
            let vpath = format!("{path}.virtual_hosts[{vi}]");
            for (di, domain) in vhost.domains.iter().enumerate() {
                let dpath = format!("{vpath}.domains[{di}]");
                if let Err(msg) = check_domain(domain) {
                    problems.error(&dpath, msg);
                }
                if let Some(first) = domains_seen.insert(domain.to_ascii_lowercase(), dpath.clone())
                {
                    problems.error(
                        &dpath,
                        format!("domain {domain:?} is already used by {first}"),
                    );
                }
            }
            for (ti, route) in vhost.routers.iter().enumerate() {
                check_route(route, &format!("{vpath}.routers[{ti}]"), clusters, problems);
            }
        }
    }
    names
}

/// Envoy's domain forms: exact, `*`, one leading `*` (suffix match) or one trailing `*`
/// (prefix match).
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain".into());
    }
    let stars = domain.matches('*').count();
    if stars > 1
        || (stars == 1 && domain != "*" && !domain.starts_with('*') && !domain.ends_with('*'))
    {
        return Err(format!(
            "bad domain {domain:?}: a wildcard may stand only at the start or the end"
        ));
    }
    Ok(())
}

fn check_route(
    route: &RouteConfig,
    path: &str,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) {
    check_route_match(&route.matcher, &format!("{path}.match"), problems);
    let actions = [
        route.route.is_some(),
        route.redirect.is_some(),
        route.direct_response.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    match actions {
        0 => problems.error(
            path,
            "a route needs one of route, redirect, direct_response",
        ),
        1 => {}
        _ => problems.error(path, "set only one of route, redirect, direct_response"),
    }
    if let Some(action) = &route.route {
        check_route_action(
            action,
            &route.matcher,
            &format!("{path}.route"),
            clusters,
            problems,
        );
    }
    if let Some(redirect) = &route.redirect {
        check_redirect(
            redirect,
            &route.matcher,
            &format!("{path}.redirect"),
            problems,
        );
    }
    if let Some(direct) = &route.direct_response {
        if !(200..=599).contains(&direct.status) {
            problems.error(
                format!("{path}.direct_response.status"),
                format!(
                    "status {} is not a final HTTP status (200-599)",
                    direct.status
                ),
            );
        }
    }
    check_mirror_policies(
        &route.request_mirror_policies,
        &format!("{path}.request_mirror_policies"),
        clusters,
        problems,
    );
    if !route.request_mirror_policies.is_empty() && route.route.is_none() {
        problems.warn(
            format!("{path}.request_mirror_policies"),
            "only a route to a cluster mirrors requests: ignored",
        );
    }
    check_header_mutations(&route.header_mutations(), path, problems);
}

fn check_regex(pattern: &str, path: String, problems: &mut Problems) {
    if let Err(e) = regex::Regex::new(pattern) {
        problems.error(path, format!("bad regex: {}", one_line(&e.to_string())));
    }
}

/// A value that ends up in a request or response head must not break it.
fn check_head_value(value: &str, path: String, problems: &mut Problems) {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        problems.error(path, "contains CR, LF or NUL");
    }
}

fn check_route_match(m: &RouteMatch, path: &str, problems: &mut Problems) {
    let kinds = [m.prefix.is_some(), m.path.is_some(), m.regex.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if kinds > 1 {
        problems.error(path, "set only one of prefix, path, regex");
    }
    if let Some(re) = &m.regex {
        check_regex(re, format!("{path}.regex"), problems);
    }
    for (hi, header) in m.headers.iter().enumerate() {
        let hpath = format!("{path}.headers[{hi}]");
        if header.name.is_empty() {
            problems.error(format!("{hpath}.name"), "a header matcher needs a name");
        }
        let specifiers = [
            header.value.is_some(),
            header.exact_match.is_some(),
            header.prefix_match.is_some(),
            header.suffix_match.is_some(),
            header.contains_match.is_some(),
            header.present_match.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if specifiers > 1 {
            problems.error(
                &hpath,
                "set only one of value, exact_match, prefix_match, suffix_match, contains_match, present_match",
            );
        }
        if header.regex {
            match &header.value {
                Some(value) => check_regex(value, format!("{hpath}.value"), problems),
                None => problems.error(format!("{hpath}.regex"), "regex needs a value"),
            }
        }
        for (field, value) in [
            ("prefix_match", &header.prefix_match),
            ("suffix_match", &header.suffix_match),
            ("contains_match", &header.contains_match),
        ] {
            if value.as_deref() == Some("") {
                problems.error(format!("{hpath}.{field}"), "must not be empty");
            }
        }
    }
    for (qi, query) in m.query_parameters.iter().enumerate() {
        let qpath = format!("{path}.query_parameters[{qi}]");
        if query.name.is_empty() {
            problems.error(
                format!("{qpath}.name"),
                "a query parameter matcher needs a name",
            );
        }
        if query.regex {
            match &query.value {
                Some(value) => check_regex(value, format!("{qpath}.value"), problems),
                None => problems.error(format!("{qpath}.regex"), "regex needs a value"),
            }
        }
    }
    for (vi, var) in m.variables.iter().enumerate() {
        let vpath = format!("{path}.variables[{vi}]");
        if var.name.is_empty() {
            problems.error(format!("{vpath}.name"), "a variable matcher needs a name");
        }
        if !var.regex.is_empty() {
            check_regex(&var.regex, format!("{vpath}.regex"), problems);
            if !var.value.is_empty() {
                problems.warn(
                    format!("{vpath}.value"),
                    "ignored: regex is set (as in MOSN)",
                );
            }
        } else if var.value.is_empty() {
            problems.warn(
                &vpath,
                "neither value nor regex: never matches (as in MOSN)",
            );
        }
        if !matches!(var.model.to_ascii_lowercase().as_str(), "" | "and" | "or") {
            problems.error(
                format!("{vpath}.model"),
                format!("unknown model {:?} (and, or)", var.model),
            );
        }
    }
}

fn check_route_action(
    action: &RouteAction,
    matcher: &RouteMatch,
    path: &str,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) {
    let check_cluster = |name: &str, at: String, problems: &mut Problems| {
        if name.is_empty() {
            problems.error(at, "a cluster name is required");
        } else if !clusters.contains(name) {
            problems.no_cluster(at, name);
        }
    };
    let specifiers: Vec<&str> = [
        ("weighted_clusters", !action.weighted_clusters.is_empty()),
        ("cluster_name", !action.cluster_name.is_empty()),
        ("cluster_header", !action.cluster_header.is_empty()),
        ("cluster_variable", !action.cluster_variable.is_empty()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    match specifiers.as_slice() {
        [] => problems.error(
            format!("{path}.cluster_name"),
            "a route needs a cluster_name (or weighted_clusters, cluster_header, cluster_variable)",
        ),
        [_] => {}
        [first, rest @ ..] => problems.warn(
            path,
            format!("{first} is used; {} ignored", rest.join(", ")),
        ),
    }
    if !action.cluster_name.is_empty() {
        check_cluster(
            &action.cluster_name,
            format!("{path}.cluster_name"),
            problems,
        );
    }
    if !action.weighted_clusters.is_empty() {
        let mut total: u64 = 0;
        for (wi, w) in action.weighted_clusters.iter().enumerate() {
            let wpath = format!("{path}.weighted_clusters[{wi}].cluster");
            check_cluster(&w.cluster.name, format!("{wpath}.name"), problems);
            total += u64::from(w.cluster.weight);
            if let Some(md) = &w.cluster.metadata_match {
                check_metadata_match(md, &format!("{wpath}.metadata_match"), problems);
            }
        }
        if total == 0 {
            problems.error(format!("{path}.weighted_clusters"), "the weights sum to 0");
        }
    }
    if !action.cluster_header.is_empty() && !action.cluster_header.bytes().all(is_token_byte) {
        problems.error(
            format!("{path}.cluster_header"),
            format!("bad header name {:?}", action.cluster_header),
        );
    }
    if let Some(md) = &action.metadata_match {
        check_metadata_match(md, &format!("{path}.metadata_match"), problems);
    }
    for (hi, hp) in action.hash_policy.iter().enumerate() {
        let hpath = format!("{path}.hash_policy[{hi}]");
        let kinds = [
            hp.header.is_some(),
            hp.cookie.is_some(),
            hp.source_ip.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if kinds != 1 {
            problems.error(&hpath, "set exactly one of header, cookie, source_ip");
        }
        if hp.header.as_ref().is_some_and(|h| h.key.is_empty()) {
            problems.error(
                format!("{hpath}.header.key"),
                "a header hash policy needs a key",
            );
        }
        if hp.cookie.as_ref().is_some_and(|c| c.name.is_empty()) {
            problems.error(
                format!("{hpath}.cookie.name"),
                "a cookie hash policy needs a name",
            );
        }
    }
    if let Some(retry) = &action.retry_policy {
        check_retry_policy(retry, &format!("{path}.retry_policy"), problems);
    }
    if !action.prefix_rewrite.is_empty() {
        check_head_value(
            &action.prefix_rewrite,
            format!("{path}.prefix_rewrite"),
            problems,
        );
        if matcher.prefix.is_none() && matcher.path.is_none() {
            problems.warn(
                format!("{path}.prefix_rewrite"),
                "has no effect without match.prefix or match.path (as in MOSN); use regex_rewrite",
            );
        }
        if action.regex_rewrite.is_some() {
            problems.warn(
                format!("{path}.regex_rewrite"),
                "ignored: prefix_rewrite is set (as in MOSN)",
            );
        }
    }
    if let Some(rw) = &action.regex_rewrite {
        let rpath = format!("{path}.regex_rewrite");
        if rw.pattern.regex.is_empty() {
            problems.error(format!("{rpath}.pattern.regex"), "a regex is required");
        } else {
            check_regex(
                &rw.pattern.regex,
                format!("{rpath}.pattern.regex"),
                problems,
            );
        }
        check_head_value(&rw.substitution, format!("{rpath}.substitution"), problems);
    }
    let host_rewrites: Vec<&str> = [
        ("host_rewrite", !action.host_rewrite.is_empty()),
        (
            "auto_host_rewrite_header",
            !action.auto_host_rewrite_header.is_empty(),
        ),
        ("auto_host_rewrite", action.auto_host_rewrite),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    if let [first, rest @ ..] = host_rewrites.as_slice() {
        if !rest.is_empty() {
            problems.warn(
                path,
                format!("{first} is used; {} ignored (as in MOSN)", rest.join(", ")),
            );
        }
    }
    check_head_value(
        &action.host_rewrite,
        format!("{path}.host_rewrite"),
        problems,
    );
    if !action.auto_host_rewrite_header.is_empty()
        && !action.auto_host_rewrite_header.bytes().all(is_token_byte)
    {
        problems.error(
            format!("{path}.auto_host_rewrite_header"),
            format!("bad header name {:?}", action.auto_host_rewrite_header),
        );
    }
    check_mirror_policies(
        &action.request_mirror_policies,
        &format!("{path}.request_mirror_policies"),
        clusters,
        problems,
    );
    check_header_mutations(&action.header_mutations(), path, problems);
}

fn check_metadata_match(md: &MetadataMatchConfig, path: &str, problems: &mut Problems) {
    for (key, map) in &md.filter_metadata {
        if key != LB_METADATA_KEY {
            problems.warn(
                format!("{path}.filter_metadata.{key}"),
                format!("ignored: only {LB_METADATA_KEY:?} is read (as in MOSN)"),
            );
            continue;
        }
        for (name, value) in map {
            if !value.is_string() {
                problems.warn(
                    format!("{path}.filter_metadata.{key}.{name}"),
                    "ignored: only string values are matched (as in MOSN)",
                );
            }
        }
    }
}

fn check_mirror_policies(
    list: &[RequestMirrorPolicy],
    path: &str,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) {
    for (mi, mirror) in list.iter().enumerate() {
        let mpath = if list.len() == 1 {
            path.to_owned()
        } else {
            format!("{path}[{mi}]")
        };
        if mirror.cluster.is_empty() {
            problems.error(
                format!("{mpath}.cluster"),
                "a mirror policy needs a cluster",
            );
        } else if !clusters.contains(&mirror.cluster) {
            problems.no_cluster(format!("{mpath}.cluster"), &mirror.cluster);
        }
        if mirror.percent > 100 {
            problems.error(
                format!("{mpath}.percent"),
                format!("{} is not a percentage (0-100)", mirror.percent),
            );
        } else if mirror.percent == 0 {
            problems.warn(
                format!("{mpath}.percent"),
                "is 0: nothing is mirrored (as in MOSN)",
            );
        }
    }
}

fn check_retry_policy(retry: &RetryPolicyConfig, path: &str, problems: &mut Problems) {
    if let Some(RetryOnConfig::Conditions(list)) = &retry.retry_on {
        for condition in list.split(',').map(str::trim) {
            if !RETRY_ON_CONDITIONS.contains(&condition) {
                problems.error(
                    format!("{path}.retry_on"),
                    format!(
                        "unknown retry condition {condition:?} (one of {})",
                        RETRY_ON_CONDITIONS.join(", ")
                    ),
                );
            }
        }
    }
    if retry.retry_timeout.is_some() && retry.per_try_timeout.is_some() {
        problems.error(path, "set retry_timeout or per_try_timeout, not both");
    }
    for (field, codes) in [
        ("status_codes", &retry.status_codes),
        ("retriable_status_codes", &retry.retriable_status_codes),
    ] {
        for (ci, code) in codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                problems.error(
                    format!("{path}.{field}[{ci}]"),
                    format!("{code} is not an HTTP status (100-599)"),
                );
            }
        }
    }
    if let Some(back_off) = &retry.retry_back_off {
        let base = back_off.base_interval.map(|d| d.0);
        let max = back_off.max_interval.map(|d| d.0);
        if base.is_some_and(|b| b.is_zero()) {
            problems.error(
                format!("{path}.retry_back_off.base_interval"),
                "must be greater than 0",
            );
        }
        if max.is_some_and(|m| m.is_zero()) {
            problems.error(
                format!("{path}.retry_back_off.max_interval"),
                "must be greater than 0",
            );
        }
        // Envoy's default base interval is 25 ms.
        let b = base.unwrap_or(std::time::Duration::from_millis(25));
        if max.is_some_and(|m| m < b) {
            problems.error(
                format!("{path}.retry_back_off.max_interval"),
                format!("must not be less than base_interval ({b:?})"),
            );
        }
    }
}

/// RFC 3986 scheme syntax, as MOSN checks it.
fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

fn check_redirect(r: &RedirectAction, matcher: &RouteMatch, path: &str, problems: &mut Problems) {
    if !matches!(r.response_code, 0 | 301 | 302 | 303 | 307 | 308) {
        problems.error(
            format!("{path}.response_code"),
            format!(
                "redirect code {} is not one of 301, 302, 303, 307, 308",
                r.response_code
            ),
        );
    }
    if !r.scheme_redirect.is_empty() {
        if !is_scheme(&r.scheme_redirect) {
            problems.error(
                format!("{path}.scheme_redirect"),
                format!("bad scheme {:?}", r.scheme_redirect),
            );
        }
        if r.https_redirect {
            problems.error(path, "set scheme_redirect or https_redirect, not both");
        }
    }
    if !r.path_redirect.is_empty() && !r.prefix_rewrite.is_empty() {
        problems.error(path, "set path_redirect or prefix_rewrite, not both");
    }
    if !r.prefix_rewrite.is_empty() && matcher.prefix.is_none() && matcher.path.is_none() {
        problems.warn(
            format!("{path}.prefix_rewrite"),
            "without match.prefix or match.path it is prepended to the path",
        );
    }
    if r.port_redirect > u32::from(u16::MAX) {
        problems.error(
            format!("{path}.port_redirect"),
            format!("{} is not a port", r.port_redirect),
        );
    }
    for (field, value) in [
        ("path_redirect", &r.path_redirect),
        ("host_redirect", &r.host_redirect),
        ("prefix_rewrite", &r.prefix_rewrite),
    ] {
        check_head_value(value, format!("{path}.{field}"), problems);
        let other_control = |b: u8| b.is_ascii_control() && !matches!(b, b'\r' | b'\n' | 0);
        if value.bytes().any(|b| b == b' ' || other_control(b)) {
            problems.error(
                format!("{path}.{field}"),
                "contains whitespace or a control byte",
            );
        }
    }
}
fn check_header_mutations(h: &HeaderMutations, path: &str, problems: &mut Problems) {
    for (i, add) in h
        .request_headers_to_add
        .iter()
        .chain(&h.response_headers_to_add)
        .enumerate()
    {
        let name = &add.header.key;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            problems.error(
                format!("{path}: header to add #{i}"),
                format!("bad header name {name:?}"),
            );
        }
        if add
            .header
            .value
            .bytes()
            .any(|b| b == b'\r' || b == b'\n' || b == 0)
        {
            problems.error(
                format!("{path}: header to add #{i}"),
                "header value contains CR, LF or NUL",
            );
        }
    }
}

/// Folds a multi-line library message (the regex crate draws a caret diagram) into
/// one line, so each config issue stays one `path: message` line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 9110 token characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_listener(
    listener: &mut ListenerConfig,
    path: &str,
    routers: &HashSet<String>,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) {
    if listener.name.is_empty() {
        // MOSN names an unnamed listener by its address.
        listener.name = listener.address.clone();
    }
    crate::listener_filters::listener_filters(listener, path, problems);
    match listener.network.as_deref() {
        None | Some("") | Some("tcp") => {
            if let Err(e) = listener.address.parse::<SocketAddr>() {
                problems.error(
                    format!("{path}.address"),
                    format!("bad address {:?}: {e} (expected IP:port)", listener.address),
                );
            }
        }
        Some(other @ ("udp" | "unix")) => problems.error(
            format!("{path}.network"),
            format!("network {other:?} is valid MOSN but not supported by mosn-rs yet"),
        ),
        Some(other) => problems.error(
            format!("{path}.network"),
            format!("unknown network {other:?}"),
        ),
    }
    if !listener.bind_port {
        problems.warn(
            format!("{path}.bind_port"),
            "is false: as in MOSN, this listener opens no socket",
        );
    }
    if listener.filter_chains.is_empty() {
        problems.error(
            format!("{path}.filter_chains"),
            "a listener needs a filter chain",
        );
    }
    // Envoy refuses two chains with the same criteria: which one a connection gets
    // would be arbitrary.
    for (ci, chain) in listener.filter_chains.iter().enumerate() {
        let criteria = chain.filter_chain_match.clone().unwrap_or_default();
        let twin = listener.filter_chains[..ci]
            .iter()
            .position(|c| c.filter_chain_match.clone().unwrap_or_default() == criteria);
        if let Some(first) = twin {
            problems.error(
                format!("{path}.filter_chains[{ci}].filter_chain_match"),
                format!("the same criteria as filter_chains[{first}]: give each chain its own filter_chain_match"),
            );
        }
    }
    for (ci, chain) in listener.filter_chains.iter_mut().enumerate() {
        let cpath = format!("{path}.filter_chains[{ci}]");
        if chain.filters.is_empty() {
            problems.error(format!("{cpath}.filters"), "a filter chain needs a filter");
        }
        if let Some(tls) = &chain.tls_context {
            tls.check(&format!("{cpath}.tls_context"), true, problems);
        }
        for (ti, tls) in chain.tls_context_set.iter().enumerate() {
            tls.check(&format!("{cpath}.tls_context_set[{ti}]"), true, problems);
        }
        if let Some(m) = &chain.filter_chain_match {
            m.check(&format!("{cpath}.filter_chain_match"), problems);
            if m.transport_protocol == "raw_buffer" && !chain.tls_contexts().is_empty() {
                problems.error(
                    format!("{cpath}.filter_chain_match.transport_protocol"),
                    "raw_buffer on a chain that terminates TLS",
                );
            }
        }
        // The one filter that may follow a terminal filter: the tcp_proxy that a proxy with
        // `fallback_for_unknown_protocol` hands undetected connections to.
        let mut fallback_allowed = false;
        let mut terminal_seen = false;
        for (fi, filter) in chain.filters.iter_mut().enumerate() {
            let fpath = format!("{cpath}.filters[{fi}]");
            let parsed = parse_network_filter(filter, &fpath, routers, clusters, problems);
            match &parsed {
                Some(NetworkFilter::TcpProxy(_)) if fallback_allowed => fallback_allowed = false,
                Some(_) if terminal_seen => problems.error(
                    &fpath,
                    "a filter chain may hold only one proxy or tcp_proxy filter",
                ),
                Some(NetworkFilter::Proxy(p)) => {
                    terminal_seen = true;
                    fallback_allowed = p.fallback_for_unknown_protocol;
                }
                Some(_) => terminal_seen = true,
                None => {}
            }
            filter.parsed = parsed;
        }
    }
    for (i, f) in listener.stream_filters.iter().enumerate() {
        problems.warn(
            format!("{path}.stream_filters[{i}]"),
            format!(
                "stream filter {:?} is not implemented yet and is skipped",
                f.kind
            ),
        );
    }
}

fn parse_network_filter(
    filter: &FilterConfig,
    path: &str,
    routers: &HashSet<String>,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) -> Option<NetworkFilter> {
    let cfg_path = format!("{path}.config");
    match filter.kind.as_str() {
        "proxy" => {
            let proxy: ProxyFilterConfig =
                crate::load::typed_from_value(&filter.config, &cfg_path, problems)?;
            if proxy.downstream_protocol == "X" {
                // MOSN's older shape: the codec is extend_config.sub_protocol.
                match proxy.sub_protocol() {
                    None => problems.error(
                        format!("{cfg_path}.extend_config.sub_protocol"),
                        "downstream_protocol \"X\" needs extend_config.sub_protocol (bolt, boltv2, dubbo)",
                    ),
                    Some(sub) => filters::check_protocol(
                        sub,
                        &format!("{cfg_path}.extend_config.sub_protocol"),
                        false,
                        problems,
                    ),
                }
            } else {
                filters::check_protocol(
                    &proxy.downstream_protocol,
                    &format!("{cfg_path}.downstream_protocol"),
                    false,
                    problems,
                );
            }
            // MOSN's "X" upstream means the downstream's codec (MOSN ignores the
            // proxy-level upstream protocol for RPC altogether).
            if proxy.upstream_protocol != "X" {
                filters::check_protocol(
                    &proxy.upstream_protocol,
                    &format!("{cfg_path}.upstream_protocol"),
                    true,
                    problems,
                );
            }

            if proxy.router_config_name.is_empty() {
                problems.error(
                    format!("{cfg_path}.router_config_name"),
                    "the proxy filter needs a router_config_name",
                );
            } else if !routers.contains(&proxy.router_config_name) {
                problems.error(
                    format!("{cfg_path}.router_config_name"),
                    format!("no router named {:?}", proxy.router_config_name),
                );
            }
            let o = &proxy.http1;
            for (name, value) in [
                ("max_request_line_bytes", o.max_request_line_bytes),
                ("max_header_bytes", o.max_header_bytes),
                ("max_headers", o.max_headers),
                ("body_buffer_bytes", o.body_buffer_bytes),
            ] {
                if value == 0 {
                    problems.error(format!("{cfg_path}.http1.{name}"), "must be greater than 0");
                }
            }
            let h2 = &proxy.http2;
            for (name, value) in [
                ("max_concurrent_streams", h2.max_concurrent_streams as usize),
                (
                    "initial_stream_window_size",
                    h2.initial_stream_window_size as usize,
                ),
                (
                    "initial_connection_window_size",
                    h2.initial_connection_window_size as usize,
                ),
                ("max_header_list_size", h2.max_header_list_size as usize),
                ("max_headers", h2.max_headers),
            ] {
                if value == 0 {
                    problems.error(format!("{cfg_path}.http2.{name}"), "must be greater than 0");
                }
            }
            // HTTP/2 windows are 31-bit (RFC 9113 §6.9.1).
            for (name, value) in [
                ("initial_stream_window_size", h2.initial_stream_window_size),
                (
                    "initial_connection_window_size",
                    h2.initial_connection_window_size,
                ),
            ] {
                if value > (1 << 31) - 1 {
                    problems.error(
                        format!("{cfg_path}.http2.{name}"),
                        "must be at most 2147483647",
                    );
                }
            }
            Some(NetworkFilter::Proxy(proxy))
        }
        "tcp_proxy" => {
            let tcp: TcpProxyConfig =
                crate::load::typed_from_value(&filter.config, &cfg_path, problems)?;
            check_tcp_proxy(&tcp, &cfg_path, clusters, problems);
            Some(NetworkFilter::TcpProxy(tcp))
        }
        kind if filters::LATER_NETWORK_FILTERS.contains(&kind) => {
            problems.error(
                format!("{path}.type"),
                format!("network filter {kind:?} is valid MOSN but not supported by mosn-rs yet"),
            );
            None
        }
        kind => {
            problems.error(
                format!("{path}.type"),
                format!("unknown network filter {kind:?} (supported: proxy, tcp_proxy)"),
            );
            None
        }
    }
}

fn check_tcp_proxy(
    tcp: &TcpProxyConfig,
    path: &str,
    clusters: &HashSet<String>,
    problems: &mut Problems,
) {
    if tcp.cluster.is_empty() && tcp.routes.is_empty() {
        problems.error(path, "tcp_proxy needs a cluster or routes");
    }
    if !tcp.cluster.is_empty() && !clusters.contains(&tcp.cluster) {
        problems.no_cluster(format!("{path}.cluster"), &tcp.cluster);
    }
    for (ri, route) in tcp.routes.iter().enumerate() {
        let rpath = format!("{path}.routes[{ri}]");
        if !clusters.contains(&route.cluster) {
            problems.no_cluster(format!("{rpath}.cluster"), &route.cluster);
        }
        for (field, list) in [
            ("source_addrs", &route.source_addrs),
            ("destination_addrs", &route.destination_addrs),
        ] {
            for (ai, cidr) in list.iter().enumerate() {
                let apath = format!("{rpath}.{field}[{ai}]");
                match cidr.address.parse::<IpAddr>() {
                    Err(_) => problems.error(
                        format!("{apath}.address"),
                        format!("not an IP address: {:?}", cidr.address),
                    ),
                    Ok(ip) => {
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        if cidr.length > max {
                            problems.error(
                                format!("{apath}.length"),
                                format!("prefix length {} exceeds {max}", cidr.length),
                            );
                        }
                    }
                }
            }
        }
        for (field, spec) in [
            ("source_port", &route.source_port),
            ("destination_port", &route.destination_port),
        ] {
            if !spec.is_empty() && parse_port_range(spec).is_none() {
                problems.error(
                    format!("{rpath}.{field}"),
                    format!("bad port or port range {spec:?} (\"80\" or \"8000-8080\")"),
                );
            }
        }
    }
}

/// Parses "80" or "8000-8080" into an inclusive range.
pub fn parse_port_range(spec: &str) -> Option<(u16, u16)> {
    match spec.split_once('-') {
        None => spec.trim().parse().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let lo: u16 = a.trim().parse().ok()?;
            let hi: u16 = b.trim().parse().ok()?;
            (lo <= hi).then_some((lo, hi))
        }
    }
}

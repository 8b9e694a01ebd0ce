//! Semantic checks of a parsed config: cross references, addresses, patterns, and the
//! typed parse of each network filter. Every problem is reported with its JSON path.

use crate::error::Problems;
use crate::filters::{self, NetworkFilter, ProxyFilterConfig, TcpProxyConfig};
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

pub const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Checks `config`, fills each filter's typed form, and records problems.
pub fn validate(config: &mut MosnConfig, problems: &mut Problems) {
    let cluster_names = check_clusters(&config.cluster_manager, problems);
    if config.servers.is_empty() {
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
    if cluster.name.is_empty() {
        problems.error(format!("{path}.name"), "a cluster needs a name");
    }
    match cluster.kind.as_str() {
        "" | "SIMPLE" | "STATIC" => {}
        "EDS" | "STRICT_DNS" | "LOGICAL_DNS" | "ORIGINAL_DST" | "DYNAMIC" => problems.error(
            format!("{path}.type"),
            format!("cluster type {:?} is valid MOSN but not supported by mosn-rs yet (supported: SIMPLE, STATIC)", cluster.kind),
        ),
        other => problems.error(
            format!("{path}.type"),
            format!("unknown cluster type {other:?} (supported: SIMPLE, STATIC)"),
        ),
    }
    match cluster.lb_type.as_str() {
        "" | "LB_ROUNDROBIN" | "LB_RANDOM" => {}
        "LB_WEIGHTED_ROUNDROBIN"
        | "LB_LEAST_REQUEST"
        | "LB_LEAST_CONNECTION"
        | "LB_PEAK_EWMA"
        | "LB_MAGLEV"
        | "LB_RING_HASH"
        | "LB_REQUEST_ROUNDROBIN"
        | "LB_ORIGINAL_DST" => problems.warn(
            format!("{path}.lb_type"),
            format!(
                "{} is valid MOSN but not implemented yet; using LB_ROUNDROBIN",
                cluster.lb_type
            ),
        ),
        other => problems.error(
            format!("{path}.lb_type"),
            format!("unknown lb_type {other:?} (supported: LB_ROUNDROBIN, LB_RANDOM)"),
        ),
    }
    if filters::tls_enabled(&cluster.tls_context) {
        problems.error(
            format!("{path}.tls_context"),
            "upstream TLS is valid MOSN but not supported by mosn-rs yet",
        );
    }
    for (hi, host) in cluster.hosts.iter().enumerate() {
        if host.address.starts_with("unix:") {
            problems.error(
                format!("{path}.hosts[{hi}].address"),
                "unix socket hosts are valid MOSN but not supported by mosn-rs yet",
            );
        } else if let Err(e) = host.address.parse::<SocketAddr>() {
            problems.error(
                format!("{path}.hosts[{hi}].address"),
                format!("bad address {:?}: {e} (expected IP:port)", host.address),
            );
        }
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
    let m = &route.matcher;
    let kinds = [m.prefix.is_some(), m.path.is_some(), m.regex.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if kinds > 1 {
        problems.error(
            format!("{path}.match"),
            "set only one of prefix, path, regex",
        );
    }
    if let Some(re) = &m.regex {
        if let Err(e) = regex::Regex::new(re) {
            problems.error(
                format!("{path}.match.regex"),
                format!("bad regex: {}", one_line(&e.to_string())),
            );
        }
    }
    for (hi, header) in m.headers.iter().enumerate() {
        let hpath = format!("{path}.match.headers[{hi}]");
        if header.name.is_empty() {
            problems.error(format!("{hpath}.name"), "a header matcher needs a name");
        }
        if header.regex {
            if let Err(e) = regex::Regex::new(&header.value) {
                problems.error(
                    format!("{hpath}.value"),
                    format!("bad regex: {}", one_line(&e.to_string())),
                );
            }
        }
    }
    match (&route.route, &route.direct_response) {
        (Some(_), Some(_)) => problems.error(path, "set either route or direct_response, not both"),
        (None, None) => problems.error(path, "a route needs a route or a direct_response"),
        (Some(action), None) => {
            if action.cluster_name.is_empty() {
                problems.error(
                    format!("{path}.route.cluster_name"),
                    "a route needs a cluster_name",
                );
            } else if !clusters.contains(&action.cluster_name) {
                problems.error(
                    format!("{path}.route.cluster_name"),
                    format!("no cluster named {:?}", action.cluster_name),
                );
            }
            check_header_mutations(
                &action.header_mutations(),
                &format!("{path}.route"),
                problems,
            );
        }
        (None, Some(direct)) => {
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
    }
    check_header_mutations(&route.header_mutations(), path, problems);
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
    if listener.filter_chains.len() > 1 {
        problems.warn(
            format!("{path}.filter_chains"),
            "several filter chains without filter_chain_match: only the first is used",
        );
    }
    for (ci, chain) in listener.filter_chains.iter_mut().enumerate() {
        let cpath = format!("{path}.filter_chains[{ci}]");
        if chain.filters.is_empty() {
            problems.error(format!("{cpath}.filters"), "a filter chain needs a filter");
        }
        // Serving plaintext where TLS is configured would be a silent downgrade: refuse.
        if filters::tls_enabled(&chain.tls_context) {
            problems.error(
                format!("{cpath}.tls_context"),
                "TLS is valid MOSN but not supported by mosn-rs yet",
            );
        }
        if chain
            .tls_context_set
            .as_array()
            .is_some_and(|set| set.iter().any(filters::tls_enabled))
        {
            problems.error(
                format!("{cpath}.tls_context_set"),
                "TLS is valid MOSN but not supported by mosn-rs yet",
            );
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
    if !listener.access_logs.is_empty() {
        problems.warn(
            format!("{path}.access_logs"),
            "access logs are not implemented yet",
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
            filters::check_protocol(
                &proxy.downstream_protocol,
                &format!("{cfg_path}.downstream_protocol"),
                false,
                problems,
            );
            filters::check_protocol(
                &proxy.upstream_protocol,
                &format!("{cfg_path}.upstream_protocol"),
                true,
                problems,
            );
            if let Some(sub) = proxy
                .extend_config
                .get("sub_protocol")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                problems.error(
                    format!("{cfg_path}.extend_config.sub_protocol"),
                    format!("XProtocol {sub:?} is valid MOSN but not supported by mosn-rs yet"),
                );
            }
            if proxy.downstream() == filters::ProxyProtocol::Auto {
                problems.warn(
                    format!("{cfg_path}.downstream_protocol"),
                    "\"Auto\" detects HTTP/1.1 only until HTTP/2 and the RPC codecs land",
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
        problems.error(
            format!("{path}.cluster"),
            format!("no cluster named {:?}", tcp.cluster),
        );
    }
    for (ri, route) in tcp.routes.iter().enumerate() {
        let rpath = format!("{path}.routes[{ri}]");
        if !clusters.contains(&route.cluster) {
            problems.error(
                format!("{rpath}.cluster"),
                format!("no cluster named {:?}", route.cluster),
            );
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

//! LDS: an Envoy Listener into the model's `listeners[]` entry, with the route
//! configurations (RDS names, inline ones) and SDS secrets it needs.

use super::any;
use super::chain;
use super::error::{ConvertError, Converted, Ctx};
use super::proto;
use envoy_types::pb::envoy::config::listener::v3 as lis;
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use mosn_config::{FilterConfig, ListenerConfig, RouterConfiguration};
use serde_json::json;

/// A converted listener.
#[derive(Debug, Clone)]
pub struct ListenerOut {
    pub listener: ListenerConfig,
    /// Route configuration names it needs from RDS (the proxy filters'
    /// `router_config_name`).
    pub rds: Vec<String>,
    /// Route configurations given inline (HttpConnectionManager `route_config`), named
    /// `<listener>/filter_chains[<i>]` (or `<listener>/default_filter_chain`).
    pub inline_routes: Vec<RouterConfiguration>,
    /// SDS secrets its TLS contexts need (see `apply_secrets`).
    pub secrets: Vec<String>,
}

pub fn listener(l: &lis::Listener) -> Result<Converted<ListenerOut>, ConvertError> {
    let mut ctx = Ctx::new("listener", &l.name);
    let out = convert(l, &mut ctx)?;
    super::check::listener(&out, &mut ctx)?;
    Ok(ctx.finish(out))
}

fn convert(l: &lis::Listener, ctx: &mut Ctx) -> Result<ListenerOut, ConvertError> {
    if l.name.is_empty() {
        return Err(ctx.invalid("name", "a listener needs a name"));
    }
    refused(l, ctx)?;
    let mut out = ListenerOut {
        listener: ListenerConfig {
            name: l.name.clone(),
            address: proto::socket_address(l.address.as_ref(), false, ctx, "address")?,
            bind_port: proto::boolv(&l.bind_to_port).unwrap_or(true),
            ..Default::default()
        },
        rds: Vec::new(),
        inline_routes: Vec::new(),
        secrets: Vec::new(),
    };
    let transparent = proto::boolv(&l.transparent).unwrap_or(false);
    let hand_off = proto::boolv(&l.use_original_dst).unwrap_or(false);
    // iptables TPROXY keeps the original destination as the socket's own address.
    let mode = if transparent { "tproxy" } else { "redirect" };
    if hand_off {
        out.listener.use_original_dst = json!(mode);
    } else if transparent {
        ctx.warn("transparent", "ignored without use_original_dst");
    }
    out.listener.listener_filters = listener_filters(l, hand_off, mode, ctx)?;

    let mut idle = Vec::new();
    let chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, fc)| (format!("filter_chains[{i}]"), fc))
        .chain(
            l.default_filter_chain
                .iter()
                .map(|fc| ("default_filter_chain".to_owned(), fc)),
        );
    for (path, fc) in chains {
        if path == "default_filter_chain" {
            ctx.warn(
                &path,
                "kept as a chain without criteria: it also takes connections that a more specific \
                 chain matched on some criteria but not all (Envoy sends those to no chain)",
            );
        }
        let c = chain::convert(fc, &format!("{}/{path}", l.name), ctx, &path)?;
        out.listener.filter_chains.push(c.chain);
        for name in c.rds {
            if !out.rds.contains(&name) {
                out.rds.push(name);
            }
        }
        out.inline_routes.extend(c.inline);
        for s in c.secrets {
            if !out.secrets.contains(&s) {
                out.secrets.push(s);
            }
        }
        idle.extend(c.idle_timeout);
    }
    // The model's idle timeout is the listener's; Envoy's is each HTTP connection
    // manager's.
    if let Some(first) = idle.first() {
        if idle.iter().any(|d| d != first) {
            ctx.warn(
                "filter_chains",
                "the chains' HTTP connection managers set different idle timeouts: the first applies to all",
            );
        }
        out.listener.connection_idle_timeout = Some(*first);
    }
    Ok(out)
}

fn listener_filters(
    l: &lis::Listener,
    hand_off: bool,
    mode: &str,
    ctx: &mut Ctx,
) -> Result<Vec<FilterConfig>, ConvertError> {
    let mut out = Vec::new();
    for (i, f) in l.listener_filters.iter().enumerate() {
        let p = format!("listener_filters[{i}]");
        let cfg = match &f.config_type {
            Some(lis::listener_filter::ConfigType::TypedConfig(a)) => Some(a),
            Some(lis::listener_filter::ConfigType::ConfigDiscovery(_)) => {
                return Err(ctx.refuse(&p, "extension config discovery is not supported"))
            }
            None => None,
        };
        let named = |n: &str| f.name == n;
        let is_a = |check: fn(&envoy_types::pb::google::protobuf::Any) -> bool, name: &str| {
            cfg.map_or(named(name), check)
        };
        if is_a(
            any::is::<TlsInspector>,
            "envoy.filters.listener.tls_inspector",
        ) || is_a(
            any::is::<HttpInspector>,
            "envoy.filters.listener.http_inspector",
        ) {
            // The model inspects the first bytes whenever a listener's chains need it;
            // chains that would need HTTP detection are refused where they are.
            continue;
        }
        if f.filter_disabled.is_some() {
            return Err(ctx.refuse(
                &format!("{p}.filter_disabled"),
                "conditional listener filters are not supported",
            ));
        }
        if is_a(
            any::is::<OriginalDst>,
            "envoy.filters.listener.original_dst",
        ) {
            // With use_original_dst the connection goes to the listener of its
            // original destination (MOSN's hand-off); without, as Istio's inbound
            // listener, the destination is only restored for this listener's chains.
            let config = if hand_off {
                json!({"type": mode})
            } else {
                json!({"type": mode, "hand_off": false})
            };
            out.push(FilterConfig {
                kind: "original_dst".into(),
                config,
                parsed: None,
            });
        } else if is_a(
            any::is::<ProxyProtocol>,
            "envoy.filters.listener.proxy_protocol",
        ) {
            let pp: ProxyProtocol = match cfg {
                Some(a) => any::decode(a, ctx, &format!("{p}.typed_config"))?,
                None => ProxyProtocol::default(),
            };
            if !pp.rules.is_empty() || pp.pass_through_tlvs.is_some() {
                ctx.warn(&p, "TLVs are not kept");
            }
            if !pp.disallowed_versions.is_empty() {
                return Err(ctx.refuse(
                    &format!("{p}.disallowed_versions"),
                    "not supported: v1 and v2 are accepted",
                ));
            }
            out.push(FilterConfig {
                kind: "proxy_protocol".into(),
                config: json!({"allow_requests_without_proxy_protocol": pp.allow_requests_without_proxy_protocol}),
                parsed: None,
            });
        } else {
            let what = cfg.map(any::describe).unwrap_or_default();
            return Err(ctx.refuse(
                &p,
                format!("listener filter {:?} {what} is not supported", f.name),
            ));
        }
    }
    Ok(out)
}

/// Fields that would change what the listener does: refused. Tuning fields: warned.
fn refused(l: &lis::Listener, ctx: &mut Ctx) -> Result<(), ConvertError> {
    for (field, set) in [
        ("additional_addresses", !l.additional_addresses.is_empty()),
        ("api_listener", l.api_listener.is_some()),
        ("udp_listener_config", l.udp_listener_config.is_some()),
        ("filter_chain_matcher", l.filter_chain_matcher.is_some()),
        ("fcds_config", l.fcds_config.is_some()),
        ("internal_listener", l.listener_specifier.is_some()),
    ] {
        if set {
            return Err(ctx.refuse(field, "not supported"));
        }
    }
    for (field, set) in [
        (
            "per_connection_buffer_limit_bytes",
            l.per_connection_buffer_limit_bytes.is_some(),
        ),
        ("socket_options", !l.socket_options.is_empty()),
        ("freebind", proto::boolv(&l.freebind) == Some(true)),
        ("access_log", !l.access_log.is_empty()),
        ("tcp_keepalive", l.tcp_keepalive.is_some()),
        ("enable_mptcp", l.enable_mptcp),
    ] {
        if set {
            ctx.warn(field, "ignored");
        }
    }
    if l.continue_on_listener_filters_timeout {
        ctx.warn(
            "continue_on_listener_filters_timeout",
            "ignored: a connection whose first bytes the listener must inspect and that sends \
             nothing within 10s is closed",
        );
    }
    Ok(())
}

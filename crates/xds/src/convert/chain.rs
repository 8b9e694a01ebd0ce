//! One listener filter chain: its match criteria, its TLS, and its network filters
//! (an HttpConnectionManager or a TcpProxy, with Istio's telemetry filters skipped).

use super::any;
use super::error::{ConvertError, Ctx};
use super::hcm;
use super::proto;
use super::tcp_proxy;
use super::tls;
use envoy_types::pb::envoy::config::listener::v3 as lis;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use mosn_config::tls::{CidrRange, FilterChainMatch};
use mosn_config::{FilterChainConfig, GoDuration, RouterConfiguration};

pub(crate) struct ChainOut {
    pub chain: FilterChainConfig,
    pub rds: Vec<String>,
    pub inline: Vec<RouterConfiguration>,
    pub secrets: Vec<String>,
    /// The idle timeout its HTTP connection manager sets (listener-level in the model).
    pub idle_timeout: Option<GoDuration>,
}

/// `inline_name`: the router name of an inline route configuration in this chain.
pub(crate) fn convert(
    fc: &lis::FilterChain,
    inline_name: &str,
    ctx: &mut Ctx,
    p: &str,
) -> Result<ChainOut, ConvertError> {
    #[allow(deprecated)]
    if proto::boolv(&fc.use_proxy_proto) == Some(true) {
        return Err(ctx.refuse(
            &format!("{p}.use_proxy_proto"),
            "use the proxy_protocol listener filter",
        ));
    }
    let mut out = ChainOut {
        chain: FilterChainConfig::default(),
        rds: Vec::new(),
        inline: Vec::new(),
        secrets: Vec::new(),
        idle_timeout: None,
    };
    if let Some(ts) = &fc.transport_socket {
        if let Some(t) = tls::downstream(ts, ctx, &format!("{p}.transport_socket"))? {
            let mut config = t.tls;
            config.handshake_timeout = proto::opt_duration(
                &fc.transport_socket_connect_timeout,
                ctx,
                &format!("{p}.transport_socket_connect_timeout"),
            )?;
            out.chain.tls_context = Some(config);
            out.secrets = t.secrets;
        }
    }
    if let Some(m) = &fc.filter_chain_match {
        let criteria = chain_match(m, ctx, &format!("{p}.filter_chain_match"))?;
        if criteria != FilterChainMatch::default() {
            out.chain.filter_chain_match = Some(criteria);
        }
    }
    for (i, f) in fc.filters.iter().enumerate() {
        let fp = format!("{p}.filters[{i}]");
        let config = match &f.config_type {
            Some(lis::filter::ConfigType::TypedConfig(a)) => Some(a),
            _ => None,
        };
        if any::istio_skipped(&f.name, config) {
            ctx.warn(
                &fp,
                format!("{}: skipped (Istio telemetry or metadata exchange)", f.name),
            );
            continue;
        }
        let Some(a) = config else {
            return Err(ctx.refuse(
                &fp,
                format!(
                    "network filter {:?} without typed_config is not supported",
                    f.name
                ),
            ));
        };
        let tp = format!("{fp}.typed_config");
        if any::is::<HttpConnectionManager>(a) {
            let h = hcm::convert(a, inline_name, ctx, &tp)?;
            out.chain.filters.push(h.filter);
            out.rds.extend(h.rds);
            out.inline.extend(h.inline);
            out.idle_timeout = Some(h.idle_timeout);
        } else if any::is::<TcpProxy>(a) {
            out.chain.filters.push(tcp_proxy::convert(a, ctx, &tp)?);
        } else {
            return Err(ctx.refuse(
                &fp,
                format!(
                    "network filter {:?} ({}) is not supported",
                    f.name,
                    any::describe(a)
                ),
            ));
        }
    }
    Ok(out)
}

fn chain_match(
    m: &lis::FilterChainMatch,
    ctx: &Ctx,
    p: &str,
) -> Result<FilterChainMatch, ConvertError> {
    for (field, set) in [
        (
            "address_suffix",
            !m.address_suffix.is_empty() || m.suffix_len.is_some(),
        ),
        (
            "direct_source_prefix_ranges",
            !m.direct_source_prefix_ranges.is_empty(),
        ),
        ("source_type", m.source_type != 0),
        ("source_ports", !m.source_ports.is_empty()),
    ] {
        if set {
            return Err(ctx.refuse(
                &format!("{p}.{field}"),
                "matching filter chains on it is not supported",
            ));
        }
    }
    let destination_port = match proto::u32v(&m.destination_port) {
        None => None,
        Some(port) => Some(u16::try_from(port).map_err(|_| {
            ctx.invalid(
                &format!("{p}.destination_port"),
                format!("{port} is not a port"),
            )
        })?),
    };
    if !matches!(m.transport_protocol.as_str(), "" | "tls" | "raw_buffer") {
        return Err(ctx.refuse(
            &format!("{p}.transport_protocol"),
            format!(
                "{:?} is not supported (tls, raw_buffer)",
                m.transport_protocol
            ),
        ));
    }
    let cidrs = |field: &str, ranges: &[envoy_types::pb::envoy::config::core::v3::CidrRange]| {
        ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let len = proto::u32v(&r.prefix_len).unwrap_or(0);
                let prefix_len = u8::try_from(len).map_err(|_| {
                    ctx.invalid(
                        &format!("{p}.{field}[{i}].prefix_len"),
                        format!("{len} is not a prefix length"),
                    )
                })?;
                Ok(CidrRange {
                    address_prefix: r.address_prefix.clone(),
                    prefix_len,
                })
            })
            .collect::<Result<Vec<_>, ConvertError>>()
    };
    let sources = cidrs("source_prefix_ranges", &m.source_prefix_ranges)?;
    Ok(FilterChainMatch {
        destination_port,
        prefix_ranges: cidrs("prefix_ranges", &m.prefix_ranges)?,
        server_names: m.server_names.clone(),
        transport_protocol: m.transport_protocol.clone(),
        application_protocols: m.application_protocols.clone(),
        source_prefix_ranges: sources,
    })
}

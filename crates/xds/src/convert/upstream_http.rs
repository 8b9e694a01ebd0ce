//! The HTTP protocol a cluster's hosts speak: `typed_extension_protocol_options`
//! (`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`) and the deprecated
//! cluster fields. The model has no per-cluster upstream protocol (the proxy filter's
//! `upstream_protocol` is per listener), so the choice is reported in `ClusterOut`.

use super::any;
use super::error::{ConvertError, Ctx};
use super::proto;
use envoy_types::pb::envoy::config::cluster::v3 as cl;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::envoy::extensions::upstreams::tcp::v3::TcpProtocolOptions;
use mosn_config::ClusterConfig;

/// The HTTP protocol Envoy would speak to a cluster's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1: Envoy's default when nothing says otherwise.
    #[default]
    Http1,
    /// HTTP/2 (h2c in plaintext, h2 by ALPN over TLS).
    Http2,
    /// Whatever the downstream request used (the model's proxy filter does this when
    /// its `upstream_protocol` is empty).
    Downstream,
}

pub(crate) fn protocol(
    c: &cl::Cluster,
    ctx: &mut Ctx,
    out: &mut ClusterConfig,
) -> Result<UpstreamProtocol, ConvertError> {
    let mut proto_choice = UpstreamProtocol::Http1;
    #[allow(deprecated)]
    {
        if let Some(h2) = &c.http2_protocol_options {
            proto_choice = UpstreamProtocol::Http2;
            http2_options(h2, ctx, "http2_protocol_options");
        }
        if c.protocol_selection
            == cl::cluster::ClusterProtocolSelection::UseDownstreamProtocol as i32
        {
            proto_choice = UpstreamProtocol::Downstream;
        }
        if let Some(common) = &c.common_http_protocol_options {
            common_options(common, ctx, "common_http_protocol_options", out);
        }
        if let Some(n) = proto::u32v(&c.max_requests_per_connection) {
            out.max_request_per_conn = n;
        }
        if c.upstream_http_protocol_options.is_some() {
            ctx.warn(
                "upstream_http_protocol_options",
                "ignored: the SNI is the cluster's or the host's name",
            );
        }
    }
    let mut keys: Vec<&String> = c.typed_extension_protocol_options.keys().collect();
    keys.sort();
    for key in keys {
        let Some(opts) = c.typed_extension_protocol_options.get(key) else {
            continue;
        };
        let p = format!("typed_extension_protocol_options[{key:?}]");
        if any::is::<uh::HttpProtocolOptions>(opts) {
            let o: uh::HttpProtocolOptions = any::decode(opts, ctx, &p)?;
            proto_choice = http_protocol_options(&o, ctx, &p, out)?;
        } else if any::is::<TcpProtocolOptions>(opts) {
            ctx.warn(&p, "ignored (idle and connection limits of TCP upstreams)");
        } else {
            ctx.warn(
                &p,
                format!(
                    "ignored: options of {} (not run by mosn-rs)",
                    any::describe(opts)
                ),
            );
        }
    }
    Ok(proto_choice)
}

fn http_protocol_options(
    o: &uh::HttpProtocolOptions,
    ctx: &mut Ctx,
    p: &str,
    out: &mut ClusterConfig,
) -> Result<UpstreamProtocol, ConvertError> {
    use uh::http_protocol_options::explicit_http_config::ProtocolConfig as E;
    use uh::http_protocol_options::UpstreamProtocolOptions as U;
    if let Some(common) = &o.common_http_protocol_options {
        common_options(
            common,
            ctx,
            &format!("{p}.common_http_protocol_options"),
            out,
        );
    }
    if o.upstream_http_protocol_options.is_some() {
        ctx.warn(
            &format!("{p}.upstream_http_protocol_options"),
            "ignored: the SNI is the cluster's or the host's name",
        );
    }
    for (i, f) in o.http_filters.iter().enumerate() {
        let fp = format!("{p}.http_filters[{i}]");
        let cfg = match &f.config_type {
            Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(a)) => Some(a),
            _ => None,
        };
        if f.name == "envoy.filters.http.upstream_codec" {
            continue;
        }
        if any::istio_skipped(&f.name, cfg) {
            ctx.warn(&fp, format!("{}: skipped", f.name));
        } else if !f.is_optional && !f.disabled {
            return Err(ctx.refuse(
                &fp,
                format!("upstream HTTP filter {:?} is not supported", f.name),
            ));
        }
    }
    for (field, set) in [
        (
            "request_mirror_policies",
            !o.request_mirror_policies.is_empty(),
        ),
        ("hash_policy", !o.hash_policy.is_empty()),
        ("retry_policy", o.retry_policy.is_some()),
    ] {
        if set {
            return Err(ctx.refuse(
                &format!("{p}.{field}"),
                "cluster-level route policies are not supported",
            ));
        }
    }
    if o.outlier_detection.is_some() {
        ctx.warn(
            &format!("{p}.outlier_detection"),
            "ignored: the cluster's outlier_detection applies",
        );
    }
    Ok(match &o.upstream_protocol_options {
        None => UpstreamProtocol::Http1,
        Some(U::ExplicitHttpConfig(e)) => match &e.protocol_config {
            Some(E::HttpProtocolOptions(_)) | None => UpstreamProtocol::Http1,
            Some(E::Http2ProtocolOptions(h2)) => {
                http2_options(h2, ctx, &format!("{p}.explicit_http_config.http2_protocol_options"));
                UpstreamProtocol::Http2
            }
            Some(E::Http3ProtocolOptions(_)) => {
                return Err(ctx.refuse(&format!("{p}.explicit_http_config.http3_protocol_options"), "HTTP/3 is not supported"))
            }
        },
        Some(U::UseDownstreamProtocolConfig(d)) => {
            if let Some(h2) = &d.http2_protocol_options {
                http2_options(h2, ctx, &format!("{p}.use_downstream_protocol_config.http2_protocol_options"));
            }
            UpstreamProtocol::Downstream
        }
        Some(U::AutoConfig(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.auto_config"),
                "choosing the upstream protocol by ALPN is not supported (use explicit_http_config or use_downstream_protocol_config)",
            ))
        }
    })
}

fn common_options(o: &core::HttpProtocolOptions, ctx: &mut Ctx, p: &str, out: &mut ClusterConfig) {
    if let Some(n) = proto::u32v(&o.max_requests_per_connection) {
        out.max_request_per_conn = n;
    }
    for (field, set) in [
        ("idle_timeout", o.idle_timeout.is_some()),
        (
            "max_connection_duration",
            o.max_connection_duration.is_some(),
        ),
        ("max_headers_count", o.max_headers_count.is_some()),
        ("max_stream_duration", o.max_stream_duration.is_some()),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored for upstream connections");
        }
    }
}

/// HTTP/2 settings toward a cluster: the model's HTTP/2 settings are the listener's
/// (the proxy filter's `http2`), used for upstream connections too.
fn http2_options(h2: &core::Http2ProtocolOptions, ctx: &mut Ctx, p: &str) {
    let set = h2.max_concurrent_streams.is_some()
        || h2.initial_stream_window_size.is_some()
        || h2.initial_connection_window_size.is_some()
        || h2.connection_keepalive.is_some();
    if set {
        ctx.warn(
            p,
            "ignored: HTTP/2 settings toward upstreams are the listener's proxy filter's",
        );
    }
}

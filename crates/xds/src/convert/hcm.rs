//! The HttpConnectionManager network filter into MOSN's `proxy` filter: codec,
//! routes (RDS name or inline), HTTP filters, and the codec options the model has.

use super::any;
use super::error::{ConvertError, Ctx};
use super::proto;
use super::route;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::Any;
use mosn_config::{FilterConfig, GoDuration, RouterConfiguration};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Envoy's idle timeout of a downstream HTTP connection when none is set.
const ENVOY_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Stands for Envoy's "no idle timeout", which the model cannot say.
const NO_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) struct HcmOut {
    pub filter: FilterConfig,
    /// The RDS route configuration it needs.
    pub rds: Option<String>,
    /// Its inline route configuration, named `inline_name`.
    pub inline: Option<RouterConfiguration>,
    /// The downstream connection's idle timeout (listener-level in the model).
    pub idle_timeout: GoDuration,
}

/// `inline_name`: the router name an inline `route_config` gets (unique per listener
/// chain, since inline route configurations have no global name).
pub(crate) fn convert(
    any: &Any,
    inline_name: &str,
    ctx: &mut Ctx,
    p: &str,
) -> Result<HcmOut, ConvertError> {
    let h: hcm::HttpConnectionManager = any::decode(any, ctx, p)?;
    use hcm::http_connection_manager::CodecType as Codec;
    let downstream = match Codec::try_from(h.codec_type) {
        Ok(Codec::Auto) => "Auto",
        Ok(Codec::Http1) => "Http1",
        Ok(Codec::Http2) => "Http2",
        Ok(Codec::Http3) => {
            return Err(ctx.refuse(&format!("{p}.codec_type"), "HTTP/3 is not supported"))
        }
        Err(_) => {
            return Err(ctx.invalid(
                &format!("{p}.codec_type"),
                format!("unknown value {}", h.codec_type),
            ))
        }
    };
    use hcm::http_connection_manager::RouteSpecifier as R;
    let (router_name, rds, inline) = match &h.route_specifier {
        Some(R::Rds(rds)) => {
            if rds.route_config_name.is_empty() {
                return Err(ctx.invalid(&format!("{p}.rds.route_config_name"), "required"));
            }
            (
                rds.route_config_name.clone(),
                Some(rds.route_config_name.clone()),
                None,
            )
        }
        Some(R::RouteConfig(rc)) => {
            let converted = route::convert(rc, inline_name, ctx, &format!("{p}.route_config"))?;
            (inline_name.to_owned(), None, Some(converted))
        }
        Some(R::ScopedRoutes(_)) => {
            return Err(ctx.refuse(
                &format!("{p}.scoped_routes"),
                "scoped routes are not supported",
            ))
        }
        None => return Err(ctx.invalid(p, "rds or route_config is required")),
    };
    http_filters(&h.http_filters, ctx, &format!("{p}.http_filters"))?;

    let mut config = Map::new();
    config.insert("downstream_protocol".into(), json!(downstream));
    config.insert("router_config_name".into(), json!(router_name));
    let mut http1 = Map::new();
    let mut http2 = Map::new();
    // Envoy appends the client's address to X-Forwarded-For only with use_remote_address.
    let xff = proto::boolv(&h.use_remote_address).unwrap_or(false) && !h.skip_xff_append;
    http1.insert("add_x_forwarded_for".into(), json!(xff));
    if let Some(kb) = proto::u32v(&h.max_request_headers_kb) {
        let bytes = u64::from(kb) * 1024;
        http1.insert("max_header_bytes".into(), json!(bytes));
        http2.insert(
            "max_header_list_size".into(),
            json!(bytes.min(u64::from(u32::MAX))),
        );
    }
    if let Some(t) = &h.request_headers_timeout {
        let d = proto::duration(t, ctx, &format!("{p}.request_headers_timeout"))?;
        if !d.is_zero() {
            http1.insert(
                "request_head_timeout".into(),
                json!(mosn_config::duration::format_go_duration(d)),
            );
        }
    }
    let mut idle = GoDuration(ENVOY_HTTP_IDLE_TIMEOUT);
    if let Some(common) = &h.common_http_protocol_options {
        let cp = format!("{p}.common_http_protocol_options");
        if let Some(t) = &common.idle_timeout {
            idle = proto::go_duration(t, ctx, &format!("{cp}.idle_timeout"))?;
            if idle.0.is_zero() {
                // Envoy's 0 turns the timeout off; the model's 0 would close at once.
                idle = GoDuration(NO_IDLE_TIMEOUT);
                ctx.warn(
                    &format!("{cp}.idle_timeout"),
                    "0 (no idle timeout) has no counterpart: a year is used",
                );
            }
        }
        if let Some(n) = proto::u32v(&common.max_headers_count) {
            http1.insert("max_headers".into(), json!(n));
            http2.insert("max_headers".into(), json!(n));
        }
        for (field, set) in [
            (
                "max_connection_duration",
                common.max_connection_duration.is_some(),
            ),
            ("max_stream_duration", common.max_stream_duration.is_some()),
            (
                "max_requests_per_connection",
                common.max_requests_per_connection.is_some(),
            ),
            (
                "headers_with_underscores_action",
                common.headers_with_underscores_action != 0,
            ),
        ] {
            if set {
                ctx.warn(&format!("{cp}.{field}"), "ignored");
            }
        }
    }
    if let Some(o) = &h.http_protocol_options {
        http1_options(o, ctx, &format!("{p}.http_protocol_options"), &mut http1);
    }
    if let Some(o) = &h.http2_protocol_options {
        http2_options(o, ctx, &format!("{p}.http2_protocol_options"), &mut http2);
    }
    config.insert("http1".into(), Value::Object(http1));
    if !http2.is_empty() {
        config.insert("http2".into(), Value::Object(http2));
    }
    client_cert(&h, ctx, p, &mut config)?;
    ignored(&h, ctx, p)?;
    Ok(HcmOut {
        filter: FilterConfig {
            kind: "proxy".into(),
            config: Value::Object(config),
            parsed: None,
        },
        rds,
        inline,
        idle_timeout: idle,
    })
}

/// Checks the HTTP filter list: it must end with the router; the filters mosn-rs does
/// not run are skipped when that changes nothing they were configured to do.
fn http_filters(list: &[hcm::HttpFilter], ctx: &mut Ctx, p: &str) -> Result<(), ConvertError> {
    let mut router_at = None;
    for (i, f) in list.iter().enumerate() {
        let fp = format!("{p}[{i}]");
        if router_at.is_some() {
            return Err(ctx.invalid(&fp, "no HTTP filter may follow the router"));
        }
        let cfg = match &f.config_type {
            Some(hcm::http_filter::ConfigType::TypedConfig(a)) => Some(a),
            Some(hcm::http_filter::ConfigType::ConfigDiscovery(_)) => None,
            None => None,
        };
        let discovered = matches!(
            f.config_type,
            Some(hcm::http_filter::ConfigType::ConfigDiscovery(_))
        );
        let name = f.name.as_str();
        let is_router = cfg.is_some_and(any::is::<Router>)
            || (cfg.is_none() && name == "envoy.filters.http.router");
        if is_router {
            if let Some(a) = cfg {
                let r: Router = any::decode(a, ctx, &format!("{fp}.typed_config"))?;
                router_options(&r, ctx, &fp)?;
            }
            router_at = Some(i);
            continue;
        }
        if any::istio_skipped(name, cfg) {
            ctx.warn(
                &fp,
                format!("{name}: skipped (Istio telemetry or metadata exchange)"),
            );
            continue;
        }
        if f.disabled {
            ctx.warn(&fp, format!("{name}: skipped (disabled)"));
            continue;
        }
        if let Some(a) = cfg.filter(|a| any::is::<HttpFault>(a)) {
            let fault: HttpFault = any::decode(a, ctx, &format!("{fp}.typed_config"))?;
            if fault.delay.is_some() || fault.abort.is_some() || fault.response_rate_limit.is_some()
            {
                return Err(ctx.refuse(&fp, "fault injection is not supported"));
            }
            ctx.warn(
                &fp,
                format!("{name}: skipped (it injects no fault; per-route faults are refused)"),
            );
            continue;
        }
        if cfg.is_some_and(any::is::<Cors>) {
            ctx.warn(
                &fp,
                format!("{name}: skipped (CORS policies are refused where routes set them)"),
            );
            continue;
        }
        if cfg.is_some_and(any::is::<GrpcWeb>) {
            ctx.warn(
                &fp,
                format!("{name}: skipped (gRPC-Web requests are forwarded unchanged)"),
            );
            continue;
        }
        if f.is_optional {
            ctx.warn(&fp, format!("{name}: skipped (optional, not supported)"));
            continue;
        }
        let what = match cfg {
            Some(a) => any::describe(a),
            None if discovered => "a config from extension config discovery".to_owned(),
            None => "no config".to_owned(),
        };
        return Err(ctx.refuse(
            &fp,
            format!("HTTP filter {name:?} ({what}) is not supported"),
        ));
    }
    if router_at.is_none() {
        return Err(ctx.invalid(
            p,
            "the router filter (envoy.filters.http.router) is required, last",
        ));
    }
    Ok(())
}

fn router_options(r: &Router, ctx: &mut Ctx, p: &str) -> Result<(), ConvertError> {
    for (i, f) in r.upstream_http_filters.iter().enumerate() {
        if f.name != "envoy.filters.http.upstream_codec" {
            return Err(ctx.refuse(
                &format!("{p}.upstream_http_filters[{i}]"),
                format!("upstream HTTP filter {:?} is not supported", f.name),
            ));
        }
    }
    if !r.upstream_log.is_empty() {
        ctx.warn(&format!("{p}.upstream_log"), "ignored");
    }
    Ok(())
}

fn http1_options(
    o: &core::Http1ProtocolOptions,
    ctx: &mut Ctx,
    p: &str,
    http1: &mut Map<String, Value>,
) {
    if o.allow_chunked_length {
        http1.insert("allow_chunked_length".into(), json!(true));
    }
    if o.accept_http_10 {
        ctx.warn(&format!("{p}.accept_http_10"), "ignored");
    }
    if o.header_key_format.is_some() {
        ctx.warn(
            &format!("{p}.header_key_format"),
            "ignored: header names are sent as received",
        );
    }
}

fn http2_options(
    o: &core::Http2ProtocolOptions,
    ctx: &mut Ctx,
    p: &str,
    http2: &mut Map<String, Value>,
) {
    for (key, v) in [
        ("max_concurrent_streams", &o.max_concurrent_streams),
        ("initial_stream_window_size", &o.initial_stream_window_size),
        (
            "initial_connection_window_size",
            &o.initial_connection_window_size,
        ),
    ] {
        if let Some(n) = proto::u32v(v) {
            http2.insert(key.into(), json!(n));
        }
    }
    if o.allow_connect {
        http2.insert("allow_connect".into(), json!(true));
    }
    if o.connection_keepalive.is_some() {
        ctx.warn(
            &format!("{p}.connection_keepalive"),
            "ignored: no HTTP/2 PINGs are sent",
        );
    }
}

fn client_cert(
    h: &hcm::HttpConnectionManager,
    ctx: &mut Ctx,
    p: &str,
    config: &mut Map<String, Value>,
) -> Result<(), ConvertError> {
    use hcm::http_connection_manager::ForwardClientCertDetails as F;
    let mode = match F::try_from(h.forward_client_cert_details) {
        Ok(f) => f.as_str_name(),
        Err(_) => {
            return Err(ctx.invalid(
                &format!("{p}.forward_client_cert_details"),
                format!("unknown value {}", h.forward_client_cert_details),
            ))
        }
    };
    config.insert("forward_client_cert_details".into(), json!(mode));
    if let Some(d) = &h.set_current_client_cert_details {
        if d.cert || d.chain || d.issuer {
            ctx.warn(
                &format!("{p}.set_current_client_cert_details"),
                "cert, chain and issuer are not added (Hash, Subject, URI and DNS are)",
            );
        }
        config.insert(
            "set_current_client_cert_details".into(),
            json!({"subject": proto::boolv(&d.subject).unwrap_or(false), "uri": d.uri, "dns": d.dns}),
        );
    }
    if h.forward_client_cert_matcher.is_some() {
        return Err(ctx.refuse(&format!("{p}.forward_client_cert_matcher"), "not supported"));
    }
    Ok(())
}

fn ignored(h: &hcm::HttpConnectionManager, ctx: &mut Ctx, p: &str) -> Result<(), ConvertError> {
    if !h.early_header_mutation_extensions.is_empty() {
        return Err(ctx.refuse(
            &format!("{p}.early_header_mutation_extensions"),
            "not supported",
        ));
    }
    if h.http3_protocol_options.is_some() {
        ctx.warn(&format!("{p}.http3_protocol_options"), "ignored");
    }
    let timeout_set = |d: &Option<envoy_types::pb::google::protobuf::Duration>| {
        d.as_ref().is_some_and(|d| d.seconds != 0 || d.nanos != 0)
    };
    if timeout_set(&h.request_timeout) {
        ctx.warn(
            &format!("{p}.request_timeout"),
            "ignored: routes' timeouts apply",
        );
    }
    for (field, set) in [
        ("tracing", h.tracing.is_some()),
        ("access_log", !h.access_log.is_empty()),
        ("via", !h.via.is_empty()),
        ("local_reply_config", h.local_reply_config.is_some()),
        (
            "original_ip_detection_extensions",
            !h.original_ip_detection_extensions.is_empty(),
        ),
        (
            "normalize_path",
            proto::boolv(&h.normalize_path) == Some(true),
        ),
        ("merge_slashes", h.merge_slashes),
        (
            "path_with_escaped_slashes_action",
            h.path_with_escaped_slashes_action > 1,
        ),
    ] {
        if set {
            ctx.warn(&format!("{p}.{field}"), "ignored");
        }
    }
    Ok(())
}
